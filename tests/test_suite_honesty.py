"""Every test can fail (issue 11): an AST scan of the suite for test functions that check nothing.

A test passes on a wrong result when its body holds no check: no `assert`, no `pytest.raises` /
`pytest.warns` / `pytest.fail`, no `raise AssertionError`, no call of an `assert...` function
(numpy/pandas testing) and no call of a helper that itself checks (found by a fixpoint over the
functions of the test tree, by name).  Such a test is a crash test at best.  The scan is by
construction syntactic: it cannot tell a strong assert from a weak one — mutation testing
(`make mutate`) measures that.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_DIRS = ("tests", "ui")
_PYTEST_CHECKS = {"raises", "warns", "fail", "deprecated_call"}

# Tests known to check nothing, each with the reason it is tolerated until fixed.  The scan fails on
# any test not listed here; an entry that has since gained a check is simply no longer reported.
KNOWN: dict[str, str] = {
    # The three crash-only fuzz tests named in issue 11: each accepts any result or a typed error,
    # so a wrong result passes.  Their oracle (e.g. fast path == reference machine, re-encoding
    # round trip) belongs in their own files; listed here until that lands.
    "tests/test_asm.py::test_random_text_gives_a_program_or_an_assemble_error":
        "crash-only fuzz: no result oracle (issue 11, test_asm.py:33)",
    "tests/test_objects.py::test_corrupted_objects_never_crash":
        "crash-only fuzz: no result oracle (issue 11, test_objects.py:94)",
    "tests/test_vm.py::test_random_programs_give_a_result_or_a_bpf_error":
        "crash-only fuzz: no result oracle (issue 11, test_vm.py:232)",
    "tests/test_elf_fuzz.py::test_bit_flips_anywhere_give_a_bpf_object_error_or_a_loadable_object":
        "crash-only fuzz of the ELF reader: only the absence of an untyped exception is checked",
    "tests/test_elf_fuzz.py::test_flips_in_btf_symbols_and_relocations_are_refused_or_harmless":
        "crash-only fuzz of the ELF reader: only the absence of an untyped exception is checked",
    "tests/test_verifier.py::test_accepted_programs_never_fault_on_any_packet_length":
        "a soundness property whose check is that no fault is raised; its harness is shown to "
        "catch a fault by test_the_exact_size_harness_catches_what_the_verifier_refuses",
}


def _files() -> list[Path]:
    return sorted(p for d in TEST_DIRS if (ROOT / d).is_dir() for p in (ROOT / d).rglob("*.py")
                  if "__pycache__" not in p.parts)


def _callee(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return ""


def _is_pytest_check(node: ast.Call) -> bool:
    f = node.func
    return (isinstance(f, ast.Attribute) and f.attr in _PYTEST_CHECKS
            and isinstance(f.value, ast.Name) and f.value.id == "pytest")


def _body_nodes(fn: ast.AST):
    """Nodes of a function's body, nested function definitions included (closures passed to a
    checking helper or to hypothesis run as part of the test)."""
    for stmt in fn.body:
        yield from ast.walk(stmt)


def _checks(fn: ast.AST, helpers: set[str]) -> bool:
    for node in _body_nodes(fn):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in ("AssertionError", "pytest.fail.Exception"):
                return True
        if isinstance(node, ast.Call):
            name = _callee(node)
            if _is_pytest_check(node) or name.startswith("assert") or name in helpers:
                return True
    return False


def _functions(tree: ast.Module):
    """(qualified name, node) of module-level functions and methods of module-level classes."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{node.name}.{sub.name}", sub


def scan() -> tuple[list[str], int]:
    """Return (tests that check nothing as 'path::name', number of test functions scanned)."""
    parsed = {p: ast.parse(p.read_text(), filename=str(p)) for p in _files()}
    funcs = [(p, q, fn) for p, tree in parsed.items() for q, fn in _functions(tree)]
    helpers: set[str] = set()
    changed = True
    while changed:               # a helper checks if it asserts or calls a helper that does
        changed = False
        for _p, q, fn in funcs:
            name = q.rsplit(".", 1)[-1]
            if name not in helpers and _checks(fn, helpers):
                helpers.add(name)
                changed = True
    tests = [(p, q, fn) for p, q, fn in funcs if q.rsplit(".", 1)[-1].startswith("test")
             and (("." not in q) or q.split(".")[0].startswith("Test"))]
    empty = [f"{p.relative_to(ROOT).as_posix()}::{q}" for p, q, fn in tests
             if not _checks(fn, helpers - {q.rsplit('.', 1)[-1]})]
    return empty, len(tests)


def test_every_test_function_checks_something():
    empty, n = scan()
    assert n > 200                                  # the scan found the suite (functions, not cases)
    new = [t for t in empty if t not in KNOWN]
    assert not new, "tests with no assert / pytest.raises / checking helper:\n" + "\n".join(new)


def _constant(node: ast.AST, consts: frozenset[str] = frozenset()) -> bool:
    """An expression of literals, operators and module constants (`SEC = 10**9`) only: its value
    is fixed when written."""
    return all(isinstance(n, (ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop,
                              ast.Compare, ast.cmpop, ast.BoolOp, ast.boolop, ast.Tuple,
                              ast.List, ast.Load))
               or (isinstance(n, ast.Name) and n.id in consts)
               for n in ast.walk(node))


def _module_constants(tree: ast.Module) -> frozenset[str]:
    names: set[str] = set()
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and _constant(node.value, frozenset(names))):
            names.add(node.targets[0].id)
    return frozenset(names)


def _tautology(node: ast.Assert, consts: frozenset[str] = frozenset()) -> str | None:
    """Why an assert cannot fail (constant arithmetic, `x == x` without a call), or None."""
    t = node.test
    if _constant(t, consts):
        return "asserts constant arithmetic"
    if isinstance(t, ast.Compare) and len(t.ops) == 1 and isinstance(t.ops[0], (ast.Eq, ast.Is)):
        left, right = ast.dump(t.left), ast.dump(t.comparators[0])
        if left == right and not any(isinstance(n, ast.Call) for n in ast.walk(t.left)):
            return "compares an expression with itself"
    return None


# Asserts known to be tautologies, tolerated until fixed (issue 11 lists them).
KNOWN_TAUTOLOGIES: dict[str, str] = {
    "tests/test_clocks.py::test_bnxt_old_time_lags_and_a_stall_fails_after_about_3_3_s":
        "issue 11 (test_clocks.py:116): documents a number, checks nothing",
}


def test_no_assert_is_a_tautology():
    found = []
    for path in _files():
        tree = ast.parse(path.read_text())
        consts = _module_constants(tree)
        for q, fn in _functions(tree):
            if not q.rsplit(".", 1)[-1].startswith("test"):
                continue
            for node in _body_nodes(fn):
                why = isinstance(node, ast.Assert) and _tautology(node, consts)
                key = f"{path.relative_to(ROOT).as_posix()}::{q}"
                if why and key not in KNOWN_TAUTOLOGIES:
                    found.append(f"{key} line {node.lineno}: {why}")
    assert not found, "\n".join(found)


def test_the_tautology_check():
    consts = _module_constants(ast.parse("SEC = 10**9\nK = 2 * SEC\nX = f(1)"))
    assert consts == {"SEC", "K"}
    verdicts = [_tautology(ast.parse(src).body[0], consts) for src in (
        "assert (3 << 32) - 4 == 12884901884", "assert x == x", "assert K - SEC == 10**9",
        "assert f(1) == f(1)", "assert f(x) == 2", "assert x.y == x.z", "assert X == 3")]
    assert verdicts == ["asserts constant arithmetic", "compares an expression with itself",
                        "asserts constant arithmetic", None, None, None, None]


def test_the_scan_tells_a_check_from_none():
    """The scan itself, on small sources with a known answer."""
    src = '''
import pytest
def helper(x):
    assert x
def indirect(x):
    helper(x)
def test_plain(): f(1)
def test_assert(): assert f(1) == 2
def test_raises():
    with pytest.raises(ValueError):
        f(-1)
def test_helper(): indirect(3)
def test_np(): np.testing.assert_array_equal(a, b)
def test_nested():
    def inner(): assert g()
    given(inner)
class TestX:
    def test_m(self): f(2)
'''
    tree = ast.parse(src)
    funcs = list(_functions(tree))
    helpers: set[str] = set()
    for _ in range(3):
        helpers |= {q for q, fn in funcs if _checks(fn, helpers)}
    verdict = {q: _checks(fn, helpers - {q}) for q, fn in funcs if "test" in q}
    assert verdict == {"test_plain": False, "test_assert": True, "test_raises": True,
                       "test_helper": True, "test_np": True, "test_nested": True,
                       "TestX.test_m": False}
