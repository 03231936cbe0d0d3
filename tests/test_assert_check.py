"""tools/assert_check.py: a killed mutant's verdict must depend on its test's assertions (issue 11).

The neutraliser is checked by *running* small test sources before and after: a check that fails
must stop failing once neutralised, and a crash in the code a check evaluates must still crash.
One end-to-end run (marker `mutation`, a few seconds) plants real mutants with cosmic-ray in a tiny
synthetic project: one kill by an assertion, one by a crash, one that the named test does not make,
and one test that the neutralising breaks (caught by the control on the unmutated tree).
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("assert_check", ROOT / "tools" / "assert_check.py")
ac = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ac)


def _load(source: str) -> dict:
    ns: dict = {"__name__": "neutralised_test"}
    exec(compile(source, "<test source>", "exec"), ns)
    return ns


def _call(ns: dict, test: str):
    """Call `test` ("test_f" or "TestC::test_m") in an exec'd namespace, as pytest would."""
    if "::" in test:
        cls, meth = test.split("::")
        return getattr(ns[cls](), meth)()
    return ns[test]()


def _before_after(src: str, test: str) -> tuple[dict, dict, ac.Neutralised]:
    src = textwrap.dedent(src)
    out = ac.neutralise(src, test)
    return _load(src), _load(out.source), out


# One source per construct: the test fails as written (its check fails), passes neutralised, and
# the operands of the check are still evaluated (CALLS records them).
CHECK_FAILS = {
    "plain assert with message": '''
        CALLS = []
        def f(): CALLS.append("f"); return 1
        def test_t():
            assert f() == 2, "message " + str(CALLS)
        ''',
    "numpy assert_ function": '''
        import numpy as np
        CALLS = []
        def f(): CALLS.append("f"); return np.array([1, 2])
        def test_t():
            np.testing.assert_array_equal(f(), np.array([1, 3]), err_msg="differs")
        ''',
    "pandas assert_frame_equal": '''
        import pandas as pd
        CALLS = []
        def f(): CALLS.append("f"); return pd.DataFrame({"a": [1]})
        def test_t():
            pd.testing.assert_frame_equal(f(), pd.DataFrame({"a": [2]}), **{"check_dtype": True})
        ''',
    "pytest.raises block that does not raise": '''
        import pytest
        CALLS = []
        def f(): CALLS.append("f"); return 1
        def test_t():
            with pytest.raises(ValueError, match="bad") as info:
                f()
            assert info.type is ValueError and "bad" in str(info.value)
            info.match("bad")
        ''',
    "pytest.raises block that raises another exception": '''
        import pytest
        CALLS = []
        def f(): CALLS.append("f"); raise KeyError("other")
        def test_t():
            with pytest.raises(ValueError) as info:
                f()
            assert info.value.args == ("x",)
        ''',
    "pytest.raises call form": '''
        import pytest
        CALLS = []
        def f(x): CALLS.append("f"); return x
        def test_t():
            pytest.raises(ValueError, f, 3)
        ''',
    "pytest.fail": '''
        import pytest
        CALLS = []
        def test_t():
            CALLS.append("f")
            if CALLS:
                pytest.fail("reached")
        ''',
    "raise AssertionError": '''
        CALLS = []
        def test_t():
            CALLS.append("f")
            raise AssertionError("by hand")
        ''',
    "pytest.approx comparison": '''
        import pytest
        CALLS = []
        def f(): CALLS.append("f"); return 0.5
        def test_t():
            assert f() == pytest.approx(0.25, rel=1e-9)
        ''',
    "pytest.warns block without a warning": '''
        import pytest
        CALLS = []
        def test_t():
            with pytest.warns(DeprecationWarning) as record:
                CALLS.append("f")
            assert len(record) == 1 and record[0].message
        ''',
    "unittest-style self.assert* in a class": '''
        import unittest
        CALLS = []
        def f(): CALLS.append("f"); return 1
        class TestC(unittest.TestCase):
            def test_t(self):
                self.assertEqual(f(), 2)
                with self.assertRaises(KeyError) as cm:
                    pass
                self.assertIsNone(cm.exception)
                self.assertRaises(KeyError, {"k": f()}.get, "k")
                self.assertWarns(UserWarning, f)
        ''',
    "nested local helpers": '''
        CALLS = []
        def f(): CALLS.append("f"); return 1
        def inner(x):
            assert x == 2
        def outer(x):
            inner(x)
            assert_same(x, 3)
        def assert_same(a, b):
            assert a == b, "own helper named assert_*: its body is neutralised, the call kept"
        def test_t():
            outer(f())
        ''',
    "class-based test with a method helper from a base class": '''
        CALLS = []
        def f(): CALLS.append("f"); return 1
        class Base:
            def _check(self, v):
                assert v == 2
        class TestC(Base):
            def test_t(self):
                self._check(f())
                assert [f()] == [3]
        ''',
}


@pytest.mark.parametrize("name", CHECK_FAILS)
def test_a_failing_check_passes_once_neutralised_and_its_operands_still_run(name):
    test = "TestC::test_t" if "class" in name else "test_t"
    before, after, out = _before_after(CHECK_FAILS[name], test)
    with pytest.raises((AssertionError, pytest.fail.Exception, KeyError)):
        _call(before, test)
    assert before["CALLS"], "the original test evaluated its operands before failing"
    _call(after, test)
    # the operands evaluated up to the failure are evaluated again (and the test goes on)
    assert after["CALLS"][:len(before["CALLS"])] == before["CALLS"]
    assert out.checks >= 1


# A crash inside what a check evaluates is kept: the neutralised test still raises it.
CRASHES = {
    "in an assert's operand": '''
        def test_t():
            assert [][1] == 0
        ''',
    "in an assert_ function's argument": '''
        import numpy as np
        def test_t():
            np.testing.assert_array_equal(np.array([1])[5], 1)
        ''',
    "in the file's own assert_ helper": '''
        def assert_valid(x):
            assert {}[x]
        def test_t():
            assert_valid("key")
        ''',
    "in a helper reached through self": '''
        class TestC:
            def _check(self, v):
                assert int(v) == 2
            def test_t(self):
                self._check("not a number")
        ''',
    "around a pytest.raises block": '''
        import pytest
        def test_t():
            with pytest.raises(ValueError) as info:
                int("3")
            info.value.no_such_attribute
            [][0]
        ''',
}


@pytest.mark.parametrize("name", CRASHES)
def test_a_crash_is_kept(name):
    test = "TestC::test_t" if "self" in name else "test_t"
    _, after, _ = _before_after(CRASHES[name], test)
    with pytest.raises((IndexError, KeyError, ValueError)):
        _call(after, test)


def test_the_expected_exception_is_still_handed_on():
    """`info.value` is the real exception when the block raised the expected type (code after the
    block may use it), a do-nothing stand-in otherwise."""
    src = '''
        import pytest
        SEEN = []
        def test_t():
            with pytest.raises(ValueError) as info:
                int("x")
            SEEN.append(info.value)
            with pytest.raises(ValueError) as other:
                raise KeyError("k")
            SEEN.append(other.value.args)
            SEEN.append(pytest.raises(ZeroDivisionError, divmod, 1, 0).value)
            SEEN.append(pytest.raises(ZeroDivisionError, divmod, 1, 1).value.args)
        '''
    _, after, _ = _before_after(src, "test_t")
    after["test_t"]()
    assert isinstance(after["SEEN"][0], ValueError)
    assert list(after["SEEN"][1]) == []                # the stand-in: iterates as empty
    assert isinstance(after["SEEN"][2], ZeroDivisionError)
    assert list(after["SEEN"][3]) == []


def _checks_in(fn: ast.AST) -> int:
    return sum(isinstance(n, (ast.Assert, ast.With, ast.Raise)) or
               (isinstance(n, ast.Call) and ast.unparse(n.func).rsplit(".", 1)[-1].startswith("assert"))
               for n in ast.walk(fn))


def test_only_the_test_and_what_it_reaches_are_neutralised():
    src = textwrap.dedent('''
        """Module docstring."""
        from __future__ import annotations
        import pytest

        def helper(x):
            assert x

        def unrelated(x):
            assert x

        @pytest.fixture
        def thing():
            assert True
            return 1

        @pytest.fixture(name="renamed")
        def _renamed_fixture(thing):
            assert thing
            return 2

        def test_t(renamed):
            helper(renamed)

        def test_other():
            assert unrelated(0)

        class TestC:
            def test_m(self):
                assert 1
        ''')
    out = ac.neutralise(src, "test_t")
    assert out.functions == ("helper", "renamed", "test_t", "thing")
    tree = ast.parse(out.source)
    assert ast.get_docstring(tree) == "Module docstring."     # docstring, then __future__, then prelude
    assert isinstance(tree.body[1], ast.ImportFrom) and tree.body[1].module == "__future__"
    fns = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    for name in ("helper", "thing", "_renamed_fixture", "test_t"):
        assert _checks_in(fns[name]) == 0, name
    for name in ("unrelated", "test_other", "test_m"):
        assert _checks_in(fns[name]) == 1, name
    # a node id's class part and parameters are understood
    assert ac.neutralise(src, "TestC::test_m[1-2]").functions == ("TestC::test_m",)
    with pytest.raises(LookupError):
        ac.neutralise(src, "test_missing")
    with pytest.raises(LookupError):
        ac.neutralise(src, "TestMissing::test_m")


def test_kills_are_read_sampled_and_named():
    result = {"modules": {"m.py": {"killed_mutants": [
        "3:AddNot assert tests/t.py::test_a[x y]", "3:AddNot assert tests/t.py::test_a[x y]",
        "5:NumberReplacer crash tests/t.py::test_b", "7:AddNot timeout ", "9:AddNot"]}}}
    kills = ac.recorded_kills(result)
    assert kills == [ac.Kill("m.py", 3, "AddNot", "assert", "tests/t.py::test_a[x y]"),
                     ac.Kill("m.py", 5, "NumberReplacer", "crash", "tests/t.py::test_b")]
    many = [ac.Kill("m.py", i, "AddNot", "assert", "t") for i in range(20)]
    assert ac.choose(many, 5, 1) == ac.choose(many, 5, 1) != ac.choose(many, 5, 2)
    assert len(ac.choose(many, 5, 1)) == 5 and ac.choose(many, 0, 1) == many
    assert ac.parse_mutant("xdplab/clocks.py:171:core/NumberReplacer") == \
        ("xdplab/clocks.py", 171, "NumberReplacer")
    for bad in ("xdplab/clocks.py:x:AddNot", "xdplab/clocks.py:3", "nothing"):
        with pytest.raises(ValueError):
            ac.parse_mutant(bad)


def _cli_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        ac.main(list(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_bad_command_lines_are_argparse_errors(tmp_path, capsys):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"modules": {"m.py": {"killed_mutants": ["3:AddNot"]}}}))
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"modules": {"m.py": {"killed_mutants": ["3:AddNot assert t.py::t"]}}}))
    assert "no killed mutant names its killing test" in _cli_error(capsys, "--input", str(old))
    listing = tmp_path / "list.json"
    listing.write_text("[]")
    assert "not a mutation file" in _cli_error(capsys, "--input", str(listing))
    assert "Is a directory" in _cli_error(capsys, "--input", str(tmp_path))
    assert "exclude each other" in _cli_error(capsys, "--input", str(new), "--sample", "2",
                                              "--mutants", "m.py:3:AddNot")
    assert "expected module:line:operator" in _cli_error(capsys, "--input", str(new),
                                                         "--mutants", "m.py:three:AddNot")
    assert "not a killed mutant" in _cli_error(capsys, "--input", str(new), "--mutants", "m.py:4:AddNot")


# --------------------------------------------------------------------------------------------
# End to end, on a synthetic project

CALC = '''\
def add(a, b):
    return a + b


def first(xs):
    return xs[0]
'''
TESTS = '''\
from pkg.calc import add, first


def test_add():
    assert add(2, 3) == 5


def test_first():
    assert first([7]) == 7


def test_add_zeros():
    assert add(0, 0) == 0


def test_that_needs_its_assertion_to_fail():
    try:
        assert add(1, 1) == 3
    except AssertionError:
        pass
    else:
        raise RuntimeError("the assert above is expected to fail")
    assert first([5]) == 5
'''


@pytest.mark.mutation
def test_end_to_end_on_a_synthetic_project_each_verdict(tmp_path):
    proj = tmp_path / "proj"
    (proj / "pkg").mkdir(parents=True)
    (proj / "tests").mkdir()
    (proj / "pytest.ini").write_text("[pytest]\n")
    (proj / "pkg" / "__init__.py").write_text("")
    (proj / "pkg" / "calc.py").write_text(CALC)
    (proj / "tests" / "test_calc.py").write_text(TESTS)
    recorded = {
        "snapshot": {"taken_utc": "2026-01-01T00:00:00Z"},
        "modules": {"pkg/calc.py": {"killed": 3, "killed_mutants": [
            "2:ReplaceBinaryOperator_Add_Sub assert tests/test_calc.py::test_add",  # 2 - 3 != 5
            "6:NumberReplacer crash tests/test_calc.py::test_first",               # [7][1]
            "2:ReplaceBinaryOperator_Add_Mul assert tests/test_calc.py::test_add_zeros",  # 0*0
            "6:NumberReplacer crash tests/test_calc.py::test_that_needs_its_assertion_to_fail"]}},
        "survivors": [],
    }
    src = proj / "mutation.json"
    src.write_text(json.dumps(recorded))
    digest = hashlib.sha256((proj / "pkg" / "calc.py").read_bytes()).hexdigest()
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "assert_check.py"), "--root", str(proj),
         "--input", str(src), "--out", str(out), "--sample", "0", "--timeout", "60",
         "--workdir", str(tmp_path / "work")],
        # the synthetic project needs no pytest plugin: not loading them saves ~1.5 s a run
        env=dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"),
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert {k: v for k, v in result.items() if k != "assert_check"} == recorded   # others kept
    check = result["assert_check"]
    rows = {r["test"].rsplit("::", 1)[1]: r for r in check["rows"]}
    assert rows["test_add"]["verdict"] == "depends-on-assert"
    assert rows["test_first"]["verdict"] == "crash-only"
    assert rows["test_first"]["exception"].startswith("IndexError")
    assert rows["test_first"]["where"] == "pkg/calc.py:6"      # raised in the module, not the test
    assert rows["test_first"]["candidates"] == 2               # xs[1] and xs[-1]: the first kills
    assert rows["test_add_zeros"]["verdict"] == "not-reproduced"
    assert "passed" in rows["test_add_zeros"]["note"]
    # the neutralised test fails without any mutant: its verdict cannot be judged
    assert rows["test_that_needs_its_assertion_to_fail"]["verdict"] == "control-failed"
    assert rows["test_that_needs_its_assertion_to_fail"]["exception"].startswith("RuntimeError")
    assert (check["sampled"], check["depends_on_assert"], check["crash_only"],
            check["not_reproduced"], check["control_failed"]) == (4, 1, 1, 1, 1)
    # the table names each verdict; the synthetic tree itself was never written
    assert "crash-only" in proc.stdout and "depends-on-assert" in proc.stdout
    assert hashlib.sha256((proj / "pkg" / "calc.py").read_bytes()).hexdigest() == digest
    assert (proj / "tests" / "test_calc.py").read_text() == TESTS
