#!/usr/bin/env python3
"""Does a test's verdict depend on its assertions?  A spot-check of killed mutants (issue 11).

Why: issue 11 asks that "no test in the suite passes with its assertions removed".  Mutation
testing (tools/mutate.py) counts a mutant *killed* when a test fails, but a test can fail without
ever checking anything: the mutant made the code under test raise, and the test crashed.  Such a
kill says the code crashes, not that the test would notice a wrong result.  This tool takes killed
mutants recorded in benchmarks/results/mutation.json (each entry names its killing test) and, in a
scratch copy of the tree (`mutate.make_copy`):

a. applies the mutant with cosmic-ray (`mutate.items_by_module` / `mutate.find_by_line`) and runs
   the killing test node alone: it must fail, else the kill is *not reproduced*;
b. rewrites the killing test's file with the checks of that test (and of the test-file-local
   helpers and fixtures it uses) *neutralised* (`neutralise`): every check's operands are still
   evaluated, so side effects and crashes are kept, but nothing is compared any more;
c. runs the neutralised test on the mutant: if it now passes, the kill *depends on the assertion*;
   if it still fails, the test caught the mutant only by a *crash* (the exception is reported);
d. runs the neutralised test on the unmutated tree (a control): it must pass, or the neutralising
   broke that test and step c says nothing (*control failed*).

The result is a table and a top-level key `assert_check` written into the mutation file (the other
keys are left as they are).  A `killed_mutants` entry names a mutant by line and operator only; when
a line holds several such mutants, the ones mutate.py's seeded draw picks are tried first, then the
others, and the first one the killing test still kills is taken (`candidates` in the row).
"""
from __future__ import annotations

import argparse
import ast
import datetime as _dt
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))   # tools/ is not a package
import mutate  # noqa: E402

ROOT = mutate.ROOT
DEFAULT_INPUT = ROOT / "benchmarks" / "results" / "mutation.json"
VERDICTS = ("depends-on-assert", "crash-only", "not-reproduced", "control-failed", "timeout",
            "not-found", "transform-failed")
# pytest's own checks, as tests/test_suite_honesty.py counts them (`pytest.<name>`).
_RAISES = ("raises",)
_WARNS = ("warns", "deprecated_call")
_UNITTEST_RAISES = ("assertRaises", "assertRaisesRegex")
_UNITTEST_WARNS = ("assertWarns", "assertWarnsRegex")
_EXC = "_assert_check_exc"

# Put at the top of a neutralised test file (after its docstring and `__future__` imports).
PRELUDE = '''
class _AssertCheckAnything:
    """What a neutralised check hands on when the checked thing did not happen (no exception was
    raised, no warning was given): every use of it succeeds and yields nothing."""
    def __getattr__(self, name): return self
    def __call__(self, *a, **k): return self
    def __getitem__(self, key): return self
    def __iter__(self): return iter(())
    def __len__(self): return 0
    def __bool__(self): return False
    def __contains__(self, item): return False
    def __index__(self): return 0
    def __float__(self): return 0.0
    def __str__(self): return ""
    def __enter__(self): return self
    def __exit__(self, *exc): return False


class _AssertCheckRaised:
    """Stands for pytest's ExceptionInfo (unittest's context) of a neutralised `raises` block."""
    def __init__(self, expected=None):
        self._expected, self._exc = expected, None
    def _caught(self, exc):
        try:
            ok = self._expected is None or isinstance(exc, self._expected)
        except TypeError:
            ok = False
        self._exc = exc if ok else None
    @property
    def value(self):
        return _AssertCheckAnything() if self._exc is None else self._exc
    exception = value
    @property
    def type(self):
        return _AssertCheckAnything() if self._exc is None else type(self._exc)
    def match(self, *a, **k): return True
    def __getattr__(self, name): return _AssertCheckAnything()


class _AssertCheckWarns:
    """A neutralised `pytest.warns` block: warnings are recorded (not raised, not checked)."""
    def __enter__(self):
        import warnings
        self._cm = warnings.catch_warnings(record=True)
        self._cm.__enter__()
        warnings.simplefilter("always")
        return _AssertCheckAnything()
    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def _assert_check_raises(expected, func, *args, **kwargs):
    """A neutralised `pytest.raises(E, func, ...)`: the call, any exception swallowed and handed
    on as pytest's call form does."""
    info = _AssertCheckRaised(expected)
    try:
        func(*args, **kwargs)
    except Exception as exc:
        info._caught(exc)
    return info
'''


class Neutralised(NamedTuple):
    source: str                 # the whole test file, rewritten
    functions: tuple[str, ...]  # qualified names of the functions whose checks were neutralised
    checks: int                 # how many checks were neutralised


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _load(target: ast.expr) -> ast.expr:
    """`target` (an assignment target) as an expression to read."""
    return ast.parse(ast.unparse(target), mode="eval").body


def _call(name: str, args: list[ast.expr], keywords: list[ast.keyword] | None = None) -> ast.Call:
    return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=args, keywords=keywords or [])


def _without(keywords: list[ast.keyword], *names: str) -> list[ast.keyword]:
    return [k for k in keywords if k.arg not in names]


class _Neutraliser(ast.NodeTransformer):
    """Rewrites the checks of one function body (see `neutralise`).  `local` are the names of the
    test file's own functions and of the methods of the test's class: a call of one of them is kept
    even when its name starts with `assert` (its body is neutralised instead, so a crash in it
    still counts)."""

    def __init__(self, local: set[str], methods: set[str]):
        self.local, self.methods, self.count = local, methods, 0

    def _is_local(self, func: ast.expr) -> bool:
        if isinstance(func, ast.Name):
            return func.id in self.local
        return (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                and func.value.id in ("self", "cls") and func.attr in self.methods)

    def _pytest(self, node: ast.expr, names: tuple[str, ...]) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in names and _dotted(node.func.value) == "pytest")

    def _unittest(self, node: ast.expr, names: tuple[str, ...]) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in names and not self._is_local(node.func))

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:
        # `assert x, msg` -> `x`: the operands are evaluated (calls, crashes), nothing is checked.
        self.generic_visit(node)
        self.count += 1
        return ast.copy_location(ast.Expr(value=node.test), node)

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if exc is not None and _dotted(exc) in ("AssertionError", "pytest.fail.Exception"):
            self.count += 1
            return ast.copy_location(ast.Pass(), node)
        return self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> ast.expr:
        self.generic_visit(node)
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1] if name else ""
        if name == "pytest.fail":
            self.count += 1
            return ast.copy_location(ast.Constant(value=None), node)
        if self._pytest(node, _RAISES) and len(node.args) >= 2:
            # pytest.raises(E, func, *args, **kwargs): call func, swallow what it raises
            self.count += 1
            return ast.copy_location(_call("_assert_check_raises", node.args,
                                           _without(node.keywords, "match")), node)
        if self._pytest(node, _WARNS) and len(node.args) >= (2 if last == "warns" else 1):
            # pytest.warns(W, func, *args) / deprecated_call(func, *args): just the call
            self.count += 1
            args = node.args[1:] if last == "warns" else node.args
            return ast.copy_location(ast.Call(func=args[0], args=args[1:],
                                              keywords=_without(node.keywords, "match")), node)
        if last.startswith("assert") and not self._is_local(node.func):
            self.count += 1
            skip = {"assertRaises": 1, "assertRaisesRegex": 2, "assertWarns": 1,
                    "assertWarnsRegex": 2}.get(last)
            if skip is not None and len(node.args) > skip:
                # unittest's call form: assertRaises(E, func, *args) -> func(*args), swallowed;
                # assertWarns(W, func, *args) -> func(*args)
                rest = node.args[skip:]
                if last.startswith("assertRaises"):
                    return ast.copy_location(_call("_assert_check_raises", [node.args[0], *rest],
                                                   _without(node.keywords, "msg")), node)
                return ast.copy_location(ast.Call(func=rest[0], args=rest[1:],
                                                  keywords=_without(node.keywords, "msg")), node)
            # np.testing.assert_array_equal(a, b), self.assertEqual(a, b): (a, b) evaluated
            elts = list(node.args) + [k.value if k.arg else ast.Dict(keys=[None], values=[k.value])
                                      for k in node.keywords]
            return ast.copy_location(ast.Tuple(elts=elts, ctx=ast.Load()), node)
        return node

    def _with(self, node: ast.With) -> list[ast.stmt] | None:
        items = node.items
        kinds = []
        for it in items:
            e = it.context_expr
            if self._pytest(e, _RAISES) or self._unittest(e, _UNITTEST_RAISES):
                kinds.append("raises")
            elif self._pytest(e, _WARNS) or self._unittest(e, _UNITTEST_WARNS):
                kinds.append("warns")
            else:
                kinds.append("")
        if not any(kinds):
            return None
        body = [self.visit(s) for s in node.body]
        body = [s for x in body for s in (x if isinstance(x, list) else [x])]

        def build(i: int) -> list[ast.stmt]:
            if i == len(items):
                return body
            it, kind = items[i], kinds[i]
            if kind == "raises":
                # with pytest.raises(E) as info: body
                # -> info = _AssertCheckRaised(E); try: body / except Exception as e: info._caught(e)
                self.count += 1
                call = it.context_expr
                assert isinstance(call, ast.Call)
                expected = (call.args[0] if call.args else
                            next((k.value for k in call.keywords if k.arg == "expected_exception"),
                                 ast.Constant(value=None)))
                out: list[ast.stmt] = []
                handler: list[ast.stmt] = [ast.Pass()]
                if it.optional_vars is not None:
                    out.append(ast.Assign(targets=[it.optional_vars],
                                          value=_call("_AssertCheckRaised", [expected])))
                    handler = [ast.Expr(value=ast.Call(
                        func=ast.Attribute(value=_load(it.optional_vars), attr="_caught",
                                           ctx=ast.Load()),
                        args=[ast.Name(id=_EXC, ctx=ast.Load())], keywords=[]))]
                out.append(ast.Try(body=build(i + 1), handlers=[ast.ExceptHandler(
                    type=ast.Name(id="Exception", ctx=ast.Load()), name=_EXC, body=handler)],
                    orelse=[], finalbody=[]))
                return out
            if kind == "warns":
                self.count += 1
                it = ast.withitem(context_expr=_call("_AssertCheckWarns", []),
                                  optional_vars=it.optional_vars)
            else:
                it = self.visit(it)
            return [ast.With(items=[it], body=build(i + 1))]

        return [ast.copy_location(s, node) for s in build(0)]

    def visit_With(self, node: ast.With):
        out = self._with(node)
        return self.generic_visit(node) if out is None else out


def _fixture_name(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The fixture name of a `@pytest.fixture` / `@fixture(...)` function, else None."""
    for dec in fn.decorator_list:
        call = dec if isinstance(dec, ast.Call) else None
        target = call.func if call else dec
        if _dotted(target) in ("pytest.fixture", "fixture"):
            for k in (call.keywords if call else []):
                if k.arg == "name" and isinstance(k.value, ast.Constant):
                    return str(k.value.value)
            return fn.name
    return None


_FUNC = (ast.FunctionDef, ast.AsyncFunctionDef)
_Func = ast.FunctionDef | ast.AsyncFunctionDef


def _class_methods(cls: ast.ClassDef, classes: dict[str, ast.ClassDef],
                   seen: frozenset[str] = frozenset()) -> dict[str, _Func]:
    """Methods of `cls` and of its bases defined in the same file (the class's own win)."""
    out: dict[str, _Func] = {}
    for base in reversed(cls.bases):
        b = classes.get(_dotted(base))
        if b is not None and b.name not in seen:
            out.update(_class_methods(b, classes, seen | {cls.name}))
    out.update({f.name: f for f in cls.body if isinstance(f, _FUNC)})
    return out


def neutralise(source: str, test: str) -> Neutralised:
    """Rewrite the test file `source` so that test `test` (`"test_f"`, `"TestC::test_m"`: the part
    of a pytest node id after the file, parameters allowed) checks nothing, while still doing
    everything else it did.  Neutralised, in the test function, in the functions of the file it
    refers to (helpers, by name; `self.`/`cls.` methods of its class) and in the fixtures of the
    file it requests, transitively:

    * `assert x, msg` -> `x` (an expression statement: calls in `x` still run and may raise);
    * a call of an `assert...` function that is not the file's own (`np.testing.assert_*`,
      `pd.testing.assert_frame_equal`, `self.assertEqual`) -> the tuple of its arguments;
    * `with pytest.raises(E) as info:` (also unittest's `assertRaises`) -> a `try` whose
      `except Exception` swallows anything; `info` still answers `.value`, `.type`, `.match()`;
      the call form `pytest.raises(E, f, *a)` -> `f(*a)` with exceptions swallowed, its value
      handed on the same way;
    * `with pytest.warns(W)` / `deprecated_call()` -> warnings recorded and ignored;
    * `pytest.fail(...)` -> `None`; `raise AssertionError(...)` -> `pass`.

    `pytest.approx` needs nothing: a comparison with it is an expression like any other.
    The file's own `assert...` helpers keep their calls and lose their checks instead, so a crash
    inside them still counts as a crash.  Raises LookupError when the test is not in the file.
    """
    tree = ast.parse(source)
    parts = test.split("[", 1)[0].split("::")
    funcs: dict[str, _Func] = {n.name: n for n in tree.body if isinstance(n, _FUNC)}
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    fixtures = {name: f for f in funcs.values() if (name := _fixture_name(f))}

    cls: ast.ClassDef | None = None
    for i, part in enumerate(parts[:-1]):
        body = tree.body if cls is None else cls.body
        nxt = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == part), None)
        if nxt is None:
            raise LookupError(f"class {'::'.join(parts[:i + 1])} not found in the test file")
        cls = nxt
    methods = _class_methods(cls, classes) if cls is not None else {}
    target = (methods if cls is not None else funcs).get(parts[-1])
    if target is None:
        raise LookupError(f"test {test!r} not found in the test file")
    if cls is not None:
        fixtures.update({name: f for f in methods.values() if (name := _fixture_name(f))})

    # The functions the test reaches in this file (fixpoint over names read).
    chosen: dict[int, tuple[str, _Func]] = {}
    owners = ("self", "cls") + ((cls.name,) if cls is not None else ())
    todo: list[tuple[str, _Func]] = [(test.split("[", 1)[0], target)]
    while todo:
        qual, fn = todo.pop()
        if id(fn) in chosen:
            continue
        chosen[id(fn)] = (qual, fn)
        prefix = "::".join(parts[:-1]) + "::" if cls is not None else ""
        for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs):
            if a.arg in fixtures:
                todo.append((a.arg, fixtures[a.arg]))
        for stmt in fn.body:
            for n in ast.walk(stmt):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in funcs:
                    todo.append((n.id, funcs[n.id]))
                elif (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                      and n.value.id in owners and n.attr in methods):
                    todo.append((prefix + n.attr, methods[n.attr]))

    worker = _Neutraliser(local=set(funcs), methods=set(methods))
    for _qual, fn in chosen.values():
        new_body: list[ast.stmt] = []
        for stmt in fn.body:
            res = worker.visit(stmt)
            new_body.extend(res if isinstance(res, list) else [res])
        fn.body = new_body or [ast.Pass()]

    # The prelude goes after the docstring and the `from __future__` imports.
    at = 0
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        at = 1
    while at < len(body) and getattr(body[at], "module", None) == "__future__":
        at += 1
    tree.body[at:at] = ast.parse(PRELUDE).body
    ast.fix_missing_locations(tree)
    return Neutralised(ast.unparse(tree) + "\n", tuple(sorted(q for q, _ in chosen.values())),
                       worker.count)


# ---------------------------------------------------------------------------------------------
# Running tests


class Run(NamedTuple):
    outcome: str      # passed | failed | skipped | timeout | error
    detail: str       # the failure: "ExcType: message" from pytest's short summary
    where: str        # the failure's location "path:line" (relative to the tree when inside it)
    seconds: float


_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")
_SUMMARY = re.compile(r"^(?:FAILED|ERROR) \S+(?: - (.*))?$", re.M)
_TBLINE = re.compile(r"^(\S+\.py):(\d+): ", re.M)


def run_node(tree: Path, node: str, timeout: float) -> Run:
    """Run one pytest node alone in `tree` (mutate.PYTEST's options, one-line tracebacks)."""
    # COLUMNS: pytest drops the exception from the summary line of a long node id in 80 columns
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", COLUMNS="1000")
    env.pop("PYTEST_ADDOPTS", None)
    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, *mutate.PYTEST, "--tb=line", node], cwd=tree,
                              env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Run("timeout", f"no result within {timeout:.0f} s", "", time.monotonic() - t0)
    secs = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    counts: dict[str, int] = {}
    for n, what in _COUNTS.findall(last):
        counts[what.rstrip("s") if what.startswith("error") else what] = int(n)
    m = _SUMMARY.search(out)
    detail = (m.group(1) or "").strip()[:300] if m else ""
    where = ""
    for w in _TBLINE.finditer(out):
        path = Path(w.group(1))
        try:
            path = path.resolve().relative_to(tree.resolve())
        except ValueError:
            pass
        where = f"{path.as_posix()}:{w.group(2)}"
    if proc.returncode == 0:
        outcome = "passed" if counts.get("passed", 0) + counts.get("xpassed", 0) else "skipped"
    elif proc.returncode == 1 and counts.get("failed"):
        outcome = "failed"
    else:
        outcome = "error"       # collection error, node not found, usage error
        detail = detail or (out.strip().splitlines()[-1][:300] if out.strip()
                            else f"pytest exit status {proc.returncode}")
    return Run(outcome, detail, where, secs)


# ---------------------------------------------------------------------------------------------
# Choosing mutants


class Kill(NamedTuple):
    module: str
    line: int
    operator: str
    kind: str         # as mutate.py recorded it (assert / crash)
    test: str         # the killing test's node id


def recorded_kills(result: dict) -> list[Kill]:
    """The killed mutants of a mutation file that name their killing test, in file order, each
    once (timeouts and collection errors name none)."""
    out: dict[Kill, None] = {}
    for mod, entry in result.get("modules", {}).items():
        for raw in entry.get("killed_mutants", []):
            line, op, kind, node = mutate.parse_killed_entry(raw)
            if node and kind in ("assert", "crash"):
                out[Kill(mod, line, op, kind, node)] = None
    return list(out)


def choose(kills: list[Kill], n: int, seed: int) -> list[Kill]:
    """`n` of `kills` drawn with `random.Random(seed)` (0 = all), in file order."""
    if n <= 0 or n >= len(kills):
        return list(kills)
    picked = set(random.Random(seed).sample(range(len(kills)), n))
    return [k for i, k in enumerate(kills) if i in picked]


def parse_mutant(text: str) -> tuple[str, int, str]:
    """`module:line:operator` -> (module, line, operator without `core/`)."""
    mod, line, op = (text.split(":", 2) + ["", ""])[:3]
    if not mod or not line.isdigit() or not op:
        raise ValueError(f"{text!r}: expected module:line:operator "
                         "(e.g. xdplab/clocks.py:171:NumberReplacer)")
    return mod, int(line), op.split("/")[-1]


def _draws(result: dict, module: str) -> list[tuple[int, int]]:
    """(sample per module, seed) of the runs that may have drawn `module`'s mutants."""
    draws = [(result["sample_per_module"], result["seed"])] if "seed" in result else []
    for run in result.get("partial_runs", []):
        if module in run.get("modules", ()):
            draws.append((run.get("sample_per_module", 0), run.get("seed", 0)))
    return draws


def _ordered_candidates(result: dict, kill: Kill, items: list, source: str) -> list:
    """The mutants at the kill's line and operator, those mutate.py's seeded draw picks first."""
    cands = mutate.find_by_line(items, kill.line, kill.operator)
    drawn: set[int] = set()
    for n, seed in _draws(result, kill.module):
        picked, _ = mutate.sample(items, kill.module, source, n, seed)
        drawn |= {id(it) for it in picked}
    return sorted(cands, key=lambda it: id(it) not in drawn)


# ---------------------------------------------------------------------------------------------
# The check


def check_one(tree: Path, result: dict, kill: Kill, items: list, timeout: float,
              controls: dict[str, Run]) -> dict:
    """Steps a-d for one killed mutant (see the module docstring); returns its table row."""
    from cosmic_ray.mutating import use_mutation
    from cosmic_ray.plugins import get_operator

    t0 = time.monotonic()
    row: dict = {"module": kill.module, "line": kill.line, "operator": kill.operator,
                 "test": kill.test, "recorded_kind": kill.kind}

    def done(verdict: str, run: Run | None = None, **extra) -> dict:
        row.update(extra, verdict=verdict)
        if run is not None and run.outcome != "passed":
            row.update(exception=run.detail, where=run.where)
        row["seconds"] = round(time.monotonic() - t0, 1)
        return row

    module_path = tree / kill.module
    source = module_path.read_text()
    cands = _ordered_candidates(result, kill, items, source)
    row["candidates"] = len(cands)
    if not cands:
        return done("not-found", note="no such mutant in this tree (the module changed?)")
    test_file = tree / kill.test.split("::", 1)[0]
    try:
        test_source = test_file.read_text()
        neutral = neutralise(test_source, kill.test.split("::", 1)[1])
    except (OSError, IndexError, LookupError, SyntaxError) as exc:
        return done("transform-failed", note=f"{type(exc).__name__}: {exc}")
    row.update(checks_neutralised=neutral.checks, functions=list(neutral.functions))

    verdict, run_c, tried = "not-reproduced", None, []
    for it in cands:
        m = it.mutations[0]
        with use_mutation(module_path, get_operator(m.operator_name)(), m.occurrence) as (_, mutated):
            if mutated is None:
                continue
            run_a = run_node(tree, kill.test, timeout)           # a: the kill, again
            tried.append(run_a.outcome)
            if run_a.outcome not in ("failed", "timeout"):
                continue
            row.update(occurrence=m.occurrence, killed_by=run_a.detail)
            try:
                test_file.write_text(neutral.source)             # b, c: neutralised, on the mutant
                run_c = run_node(tree, kill.test, timeout)
            finally:
                test_file.write_text(test_source)
            verdict = {"passed": "depends-on-assert", "timeout": "timeout",
                       "skipped": "transform-failed"}.get(run_c.outcome, "crash-only")
            break
    if run_c is None:
        return done(verdict, note="the killing test does not fail on the mutant (outcomes of the "
                                  f"{len(tried)} candidates tried: {', '.join(tried) or 'none'})")
    if run_c.outcome == "skipped":
        return done(verdict, note="the neutralised test was skipped on the mutant")
    if kill.test not in controls:                                 # d: neutralised, unmutated
        try:
            test_file.write_text(neutral.source)
            controls[kill.test] = run_node(tree, kill.test, timeout)
        finally:
            test_file.write_text(test_source)
    control = controls[kill.test]
    if control.outcome != "passed":
        return done("control-failed", control,
                    note="the neutralised test fails on the unmutated tree: the transform broke it")
    return done(verdict, run_c)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 3] + "..."


def _table(rows: list[dict]) -> str:
    head = ("module", "line", "operator", "test", "verdict", "s")
    lines = [(r["module"], str(r["line"]), r["operator"], _clip(r["test"].split("::", 1)[-1], 70),
              r["verdict"] + (f" ({_clip(r['exception'], 60)})" if r.get("exception") else ""),
              str(r["seconds"])) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(line, widths))
                     for line in (head, *lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", type=int, default=None,
                    help="killed mutants to check, drawn with --seed (default 5; 0 = all)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--mutants", nargs="+", metavar="MODULE:LINE:OPERATOR",
                    help="check these recorded kills instead of a sample")
    ap.add_argument("--input", default=str(DEFAULT_INPUT),
                    help="mutation file to read the kills from (default %(default)s)")
    ap.add_argument("--out", help="file to write: --input's content plus `assert_check` "
                                  "(default: --input itself)")
    ap.add_argument("--root", default=str(ROOT), help="the tree to copy (default %(default)s)")
    ap.add_argument("--workdir", help="scratch dir (default: a new temp dir, removed at the end)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per test run")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))

    if args.sample is not None and args.mutants:
        ap.error("--sample and --mutants exclude each other")
    if args.sample is not None and args.sample < 0:
        ap.error("--sample must be >= 0")
    if args.timeout <= 0:
        ap.error("--timeout must be > 0")
    root = Path(args.root).resolve()
    if not root.is_dir():
        ap.error(f"--root {root}: not a directory")
    in_path = Path(args.input).resolve()
    out_path = Path(args.out).resolve() if args.out else in_path
    try:
        result = json.loads(in_path.read_text())
    except (OSError, ValueError) as exc:
        ap.error(f"--input {in_path}: {exc}")
    if not isinstance(result, dict) or not isinstance(result.get("modules"), dict):
        ap.error(f"--input {in_path}: not a mutation file (no 'modules')")
    try:
        kills = recorded_kills(result)
    except ValueError as exc:
        ap.error(f"--input {in_path}: {exc}")
    if not kills:
        ap.error(f"--input {in_path}: no killed mutant names its killing test (a file written "
                 "before tools/mutate.py recorded them): re-run tools/mutate.py")
    if args.mutants:
        chosen = []
        for text in args.mutants:
            try:
                mod, line, op = parse_mutant(text)
            except ValueError as exc:
                ap.error(f"--mutants {exc}")
            match = [k for k in kills if (k.module, k.line, k.operator) == (mod, line, op)]
            if not match:
                ap.error(f"--mutants {text}: not a killed mutant with a recorded test in {in_path}")
            chosen += [k for k in match if k not in chosen]
    else:
        chosen = choose(kills, 5 if args.sample is None else args.sample, args.seed)

    from cosmic_ray.work_db import WorkDB, use_db

    own_tmp = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="xdplab-assert-check-")).resolve()
    if workdir == root or root in workdir.parents:
        ap.error("--workdir must be outside the tree")
    workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # unwind: the scratch dir goes
    started = time.monotonic()
    taken = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows: list[dict] = []
    head = mutate._git("rev-parse", "HEAD") if root == ROOT else ""
    if head and head != result.get("snapshot", {}).get("git_head", head):
        say(f"note: the kills were recorded at {result['snapshot']['git_head'][:10]}, the tree is at "
            f"{head[:10]}: moved lines show as not-found / not-reproduced")
    interrupted = False
    try:
        tree = mutate.make_copy(workdir, root)
        say(f"{len(chosen)} of {len(kills)} recorded kills, in a copy of {root} at {tree}")
        modules = sorted({k.module for k in chosen})
        missing = [m for m in modules if not (tree / m).is_file()]
        with use_db(str(workdir / "assert-check.sqlite"), WorkDB.Mode.create) as db:
            items = mutate.items_by_module(db, [tree / m for m in modules if m not in missing])
        controls: dict[str, Run] = {}
        for kill in chosen:
            if kill.module in missing:
                row = {"module": kill.module, "line": kill.line, "operator": kill.operator,
                       "test": kill.test, "recorded_kind": kill.kind, "verdict": "not-found",
                       "note": "module not in this tree", "seconds": 0.0}
            else:
                row = check_one(tree, result, kill, items.get((tree / kill.module).as_posix(), []),
                                args.timeout, controls)
            rows.append(row)
            say(f"  {kill.module}:{kill.line} {kill.operator} {kill.test}: {row['verdict']}"
                + (f" ({row['exception']})" if row.get("exception") else "")
                + f" [{row['seconds']} s]")
    except (KeyboardInterrupt, SystemExit):
        interrupted = True      # keep the rows measured so far, and say so
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)

    counts = {v: sum(1 for r in rows if r["verdict"] == v) for v in VERDICTS}
    check = {
        "taken_utc": taken,
        "git_head": head,
        "tool": "tools/assert_check.py",
        "command": " ".join(["tools/assert_check.py", *(sys.argv[1:] if argv is None else argv)]),
        "mutation_snapshot": result.get("snapshot", {}).get("taken_utc", ""),
        "recorded_kills": len(kills),
        "sampled": len(rows),
        "seed": args.seed,
        **{v.replace("-", "_"): n for v, n in counts.items()},
        "seconds": round(time.monotonic() - started, 1),
        "rows": rows,
    }
    if interrupted:
        check["interrupted"] = True
    say(_table(rows))
    say("  ".join(f"{v}: {n}" for v, n in counts.items() if n))

    # Write: the file's current content (re-read: a mutation run may have rewritten it meanwhile)
    # with `assert_check` set; refused when it no longer holds the run the kills came from.
    if out_path == in_path:
        current = json.loads(in_path.read_text())
        if current.get("snapshot") != result.get("snapshot"):
            print(f"error: {in_path} was rewritten by another mutation run while checking; "
                  "not written (re-run the check)", file=sys.stderr)
            return 1
    else:
        current = result
    current["assert_check"] = check
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(current, indent=1) + "\n")
    say(f"-> {out_path} (assert_check)")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
