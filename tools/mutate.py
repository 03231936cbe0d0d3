#!/usr/bin/env python3
"""Sampled mutation testing of the modules that carry kernel facts and semantics (`make mutate`).

Why: a suite of a thousand tests can still pass with a wrong result (issue 11: 7 of 20 planted bugs
survived).  Mutation testing measures that: plant one small bug (a *mutant*), run the tests that
should notice, count it *killed* if they fail and *survived* if they pass.

The mutating is done by cosmic-ray (PyPI `cosmic-ray`): its operators enumerate the mutants of a
module (`cosmic_ray.commands.init`), its `mutate_and_test` writes one mutant to disk, runs the test
command in a subprocess with a timeout (without writing .pyc files) and puts the original back.
This wrapper only adds what the project needs on a shared 2-core machine:

* **A scratch copy.**  cosmic-ray mutates files in place, and other people run tests in this tree,
  so everything happens in a copy made at start (`--workdir`, default a fresh temp dir) — the
  working tree is never written.  The copy is also the *snapshot* that was measured.
* **A seeded sample.**  Per module, `--sample` mutation *sites* (distinct source positions) are
  drawn with `random.Random(f"{seed}:{module}")`, and one of cosmic-ray's mutants at each site.
  Mutants inside annotations (never evaluated: `from __future__ import annotations`) and on lines
  marked `# pragma: no mutate` are left out and counted.
* **Relevant tests only.**  Each module is run against the test files that exercise it (`TESTS`
  below, plus `tests/test_mutants_<stem>.py` when present) with `pytest -x -q`, and a per-mutant
  timeout of `4 x baseline + 10 s`.  A module whose unmutated baseline fails is reported and skipped.
* **One worker**, meant to be run under `nice` (the Makefile does).

Results go to `--out` (default benchmarks/results/mutation.json): score per module, and every
survivor with its line and diff.  Notes written by hand on a survivor (`status`, `why`) are carried
over from the previous file when the same mutant (module + diff lines) survives again.
`--rerun-survivors` re-runs only the survivors listed in `--out` (e.g. after adding tests).
"""
from __future__ import annotations

import argparse
import ast
import datetime as _dt
import fnmatch
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
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The modules that carry kernel facts and semantics (issue 11) and the test files that exercise
# them most directly (fastest and strongest first: `-x` stops at the first failure, and a survivor
# costs the whole list).  Files that do not exist (yet) are skipped; tests/test_mutants_<stem>.py is
# added when present.  The score is "killed by the module's tests", a lower bound of what the
# whole suite kills: each list holds the files that exercise the module directly (for a module
# the engines call, the engine-equivalence tests too), not the whole suite.
TESTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("xdplab/bpf/semantics.py", ("test_conformance.py", "test_edges.py")),
    ("xdplab/bpf/fastpath.py", ("test_conformance.py", "test_edges.py", "test_vm.py")),
    ("xdplab/bpf/lanes.py", ("test_lanes.py", "test_edges.py", "test_batch.py")),
    ("xdplab/bpf/machine.py", ("test_conformance.py", "test_vm.py", "test_edges.py")),
    ("xdplab/bpf/patch.py", ("test_patch.py", "test_splice.py", "test_drivers.py", "test_loader.py")),
    ("xdplab/bpf/splice.py", ("test_splice.py", "test_patch.py", "test_loader.py")),
    ("xdplab/kernel/structs.py", ("test_layouts.py", "test_loader.py", "test_batch.py")),
    ("xdplab/kernel/ctx_rewrite.py", ("test_loader.py", "test_delivery.py", "test_objects.py")),
    ("xdplab/kernel/xdp.py", ("test_delivery.py", "test_lab.py", "test_batch.py")),
    ("xdplab/kernel/skb.py", ("test_delivery.py", "test_mutants_xdp.py", "test_batch.py")),
    ("xdplab/kernel/loader.py", ("test_loader.py", "test_drivers.py", "test_mutants_driver.py", "test_objects.py",
                                 "test_annotate.py", "test_cli.py")),
    ("xdplab/kernel/driver.py", ("test_drivers.py", "test_mutants_drivers.py", "test_batch.py", "test_oracles.py",
                                 "test_fields.py", "test_op_counts.py")),
    ("xdplab/drivers/*.py", ("test_oracles.py", "test_field_oracles.py", "test_drivers.py", "test_layouts.py",
                             "test_op_counts.py", "test_fields.py", "test_mlx5.py", "test_batch.py",
                             "test_mutants_drivers.py")),
    ("xdplab/clocks.py", ("test_clocks.py", "test_oracles.py", "test_delayed_work.py", "test_batch.py")),
    ("xdplab/cost.py", ("test_cost.py", "test_op_counts.py", "test_claims.py")),
)
# Parameterised operators (need a config) are not used; these are cosmic-ray's own names.
EXCLUDED_OPERATORS = ("core/VariableReplacer", "core/VariableInserter")
PYTEST = ("-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
          "-o", "addopts=", "--no-header")
_COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".hypothesis",
                                      ".pytest_cache", "mutants", "*.pyc", ".ipynb_checkpoints")


def modules_and_tests(root: Path, patterns: list[str] | None) -> list[tuple[str, list[str]]]:
    """Expand `TESTS` against `root`; keep the modules matching any of `patterns` (fnmatch)."""
    out = []
    for pattern, tests in TESTS:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root).as_posix()
            if patterns and not any(fnmatch.fnmatch(rel, p) for p in patterns):
                continue
            stem = path.parent.name if path.stem == "__init__" else path.stem
            own = [f"test_mutants_{stem}.py"]
            files = [f"tests/{t}" for t in (*tests, *own) if (root / "tests" / t).exists()]
            out.append((rel, list(dict.fromkeys(files))))
    return out


_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)(?: - (\w[\w.]*))?", re.M)


def kill_kind(output: str) -> tuple[str, str]:
    """Which test killed a mutant, and how: ``assert`` (an assertion failed: a plain assert,
    ``pytest.raises`` that did not raise, numpy/pandas ``assert_*``), ``crash`` (any other exception:
    the test would have failed without its assertions), ``timeout``, or ``other`` (collection or
    import error).  Read from pytest's short summary (``-rfE``, on by default), which shows a
    failed plain ``assert`` (rewritten by pytest) as ``- assert <expression>``, not its type."""
    if output.strip() == "timeout":
        return "", "timeout"
    m = _FAILED.search(output)
    if not m:
        return "", "other"
    node, exc = m.group(1), (m.group(2) or "")
    if m.group(0).startswith("ERROR"):
        return node, "other"
    if exc == "assert" or exc.split(".")[-1] in ("AssertionError", "Failed"):
        return node, "assert"
    return node, "crash"


def killed_entry(line: int, operator_name: str, kind: str, by: str) -> str:
    """One entry of a module's `killed_mutants`: `"<line>:<operator> <kind> <test node>"`, the
    operator without cosmic-ray's `core/` prefix; `kind` and `by` as returned by `kill_kind`."""
    return f"{line}:{operator_name.split('/')[-1]} {kind} {by}"


def parse_killed_entry(entry: str) -> tuple[int, str, str, str]:
    """(line, operator, kind, killing test node) of a `killed_mutants` entry (`killed_entry`).
    Files written before the kind and the test were recorded hold `"<line>:<operator>"` only:
    kind and node are then "" (as they are for a timeout)."""
    head, _, rest = entry.strip().partition(" ")
    line, sep, operator = head.partition(":")
    if not sep or not line.isdigit() or not operator:
        raise ValueError(f"killed_mutants entry {entry!r}: expected '<line>:<operator> <kind> <test>'")
    kind, _, node = rest.partition(" ")
    return int(line), operator, kind, node.strip()


def items_by_module(db, module_paths: list[Path]) -> dict[str, list]:
    """cosmic-ray's mutants (work items) of each module, keyed by the module path as given (POSIX),
    in a stable order (operator, occurrence): `sample` draws from this order with a seed."""
    from cosmic_ray.commands.init import init as cr_init
    cr_init(module_paths, db, {})
    items: dict[str, list] = defaultdict(list)
    for item in db.pending_work_items:
        items[item.mutations[0].module_path.as_posix()].append(item)
    for lst in items.values():
        lst.sort(key=lambda it: (it.mutations[0].operator_name, it.mutations[0].occurrence))
    return items


def find_by_line(items, line: int, operator: str) -> list:
    """The mutants in `items` (one module's, from `items_by_module`) at source line `line` made by
    `operator` (cosmic-ray's name, with or without its `core/` prefix), by occurrence.  A
    `killed_mutants` entry names only line and operator, and one line may hold several such
    mutants (two numbers, two comparisons): the caller decides among them."""
    short = operator.split("/")[-1]
    found = [it for it in items if it.mutations[0].start_pos[0] == line
             and it.mutations[0].operator_name.split("/")[-1] == short]
    return sorted(found, key=lambda it: it.mutations[0].occurrence)


def _annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Source spans of annotations (not evaluated at run time under PEP 563)."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        anns = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            anns.append(node.returns)
            a = node.args
            anns += [x.annotation for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
            anns += [x.annotation for x in (a.vararg, a.kwarg) if x is not None]
        elif isinstance(node, ast.AnnAssign):
            anns.append(node.annotation)
        spans += [((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)) for n in anns if n]
    return spans


def _excluded(mutation, source_lines: list[str], spans) -> str | None:
    line, col = mutation.start_pos
    if "pragma: no mutate" in source_lines[line - 1]:
        return "pragma"
    for (l0, c0), (l1, c1) in spans:
        if (l0, c0) <= (line, col) < (l1, c1):
            return "annotation"
    return None


def sample(items, module_rel: str, source: str, n: int, seed: int):
    """Pick `n` distinct mutation sites of one module (seeded), one cosmic-ray mutant per site."""
    lines = source.splitlines()
    spans = _annotation_spans(source)
    by_site: dict[tuple[int, int], list] = defaultdict(list)
    skipped: dict[str, int] = defaultdict(int)
    for item in items:
        m = item.mutations[0]
        if m.operator_name in EXCLUDED_OPERATORS:
            continue
        why = _excluded(m, lines, spans)
        if why:
            skipped[why] += 1
            continue
        by_site[tuple(m.start_pos)].append(item)
    rng = random.Random(f"{seed}:{module_rel}")
    sites = sorted(by_site)
    chosen = sorted(rng.sample(sites, min(n, len(sites)))) if n > 0 else sites
    picked = []
    for site in chosen:
        cands = sorted(by_site[site], key=lambda it: (it.mutations[0].operator_name,
                                                      it.mutations[0].occurrence))
        picked.append(rng.choice(cands))
    eligible = sum(len(v) for v in by_site.values())
    return picked, {"mutants": eligible, "sites": len(sites), "excluded": dict(skipped)}


def _diff_key(module: str, diff: str) -> str:
    body = [ln for ln in diff.splitlines()
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    return module + "\n" + "\n".join(ln.rstrip() for ln in body)


def _short_diff(diff: str) -> str:
    """cosmic-ray's unified diff without its header lines, context trimmed to 1 line."""
    lines = [ln for ln in diff.splitlines() if not ln.startswith(("--- ", "+++ "))]
    keep = set()
    for i, ln in enumerate(lines):
        if ln[:1] in "+-":
            keep.update((i - 1, i, i + 1))
    return "\n".join(lines[i] for i in sorted(keep) if 0 <= i < len(lines) and
                     not lines[i].startswith("@@"))


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def make_copy(workdir: Path, root: Path = ROOT) -> Path:
    """Snapshot the working tree (sources, tests, data) into `workdir/<name>`.

    The project's read-only neighbour `../shared` (the conformance suite, the RFC patches) is
    linked beside the copy, where the tests look for it.  `root` is another tree to copy (the
    tests of tools/assert_check.py use a tiny synthetic project)."""
    tree = workdir / root.name
    shutil.copytree(root, tree, ignore=_COPY_IGNORE, symlinks=True)
    shared = root.parent / "shared"
    if shared.is_dir() and not (workdir / "shared").exists():
        (workdir / "shared").symlink_to(shared)
    return tree


def run_baseline(tree: Path, tests: list[str], timeout: float) -> tuple[bool, float, str]:
    t0 = time.monotonic()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    try:
        proc = subprocess.run([sys.executable, *PYTEST, *tests], cwd=tree, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - t0, "baseline timed out"
    return proc.returncode == 0, time.monotonic() - t0, (proc.stdout + proc.stderr)[-3000:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", type=int, default=10, help="mutation sites per module (0 = all)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--modules", nargs="*", help="fnmatch patterns over module paths")
    ap.add_argument("--tests", nargs="*", help="run these test files instead of the module's own")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/mutation.json"))
    ap.add_argument("--workdir", help="scratch dir (default: a new temp dir, removed at the end)")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="re-run only the survivors listed in --out and update their outcome")
    ap.add_argument("--open-only", action="store_true",
                    help="with --rerun-survivors: only the survivors whose status is still 'open'")
    ap.add_argument("--list", action="store_true", help="print modules and test files, then exit")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    from cosmic_ray.mutating import mutate_and_test, mutate_code
    from cosmic_ray.plugins import get_operator
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    if args.list:
        for mod, tests in modules_and_tests(ROOT, args.modules):
            print(mod, " ".join(tests))
        return 0
    out_path = Path(args.out).resolve()
    previous = json.loads(out_path.read_text()) if out_path.exists() else {}
    notes = {_diff_key(s["module"], s["diff"]): s for s in previous.get("survivors", [])}
    if args.rerun_survivors and not previous.get("survivors"):
        ap.error(f"--rerun-survivors: no survivors listed in {out_path}")

    own_tmp = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="xdplab-mutate-")).resolve()
    if workdir == ROOT or (ROOT in workdir.parents and "mutants" not in workdir.parts):
        ap.error("--workdir must be outside the working tree (or under mutants/)")
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    snapshot = {
        "git_head": _git("rev-parse", "HEAD"),
        "dirty": [ln[3:] for ln in _git("status", "--porcelain").splitlines()
                  if ln[3:].startswith(("xdplab/", "tests/"))],
        "taken_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    tree = make_copy(workdir)
    say(f"snapshot of {ROOT} (HEAD {snapshot['git_head'][:10]}, {len(snapshot['dirty'])} dirty "
        f"files) in {tree}")
    cwd = os.getcwd()
    # SIGTERM (a killed `make mutate`) unwinds like Ctrl-C, so the scratch copy is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.chdir(tree)    # cosmic-ray runs the test command in the current directory
    # pytest fits its short summary to the terminal (80 columns in a pipe) and drops the exception
    # of a long (parametrised) node id, which `kill_kind` reads: give it room.
    os.environ["COLUMNS"] = "1000"
    modules: dict[str, dict] = {}
    survivors: list[dict] = []
    rerun_found: dict[str, str] = {}     # diff key of a listed survivor -> killed/survived/stale
    rerun_by: dict[str, tuple[str, str]] = {}   # diff key -> (killing test node, kill kind)
    interrupted = False
    try:
        plan = modules_and_tests(tree, args.modules)
        if args.tests:
            plan = [(m, list(args.tests)) for m, _ in plan]
        wanted: dict[str, list[dict]] = defaultdict(list)
        if args.rerun_survivors:
            for s in previous["survivors"]:
                if not args.open_only or s.get("status", "open") == "open":
                    wanted[s["module"]].append(s)
            plan = [(m, t) for m, t in plan if m in wanted]
        with use_db(str(workdir / "session.sqlite"), WorkDB.Mode.create) as db:
            items_by_mod = items_by_module(db, [Path(m) for m, _ in plan])

            for mod, tests in plan:
                source = (tree / mod).read_text()
                if args.rerun_survivors:
                    picked, info = [], {"rerun": len(wanted[mod])}
                    for s in wanted[mod]:
                        key = _diff_key(mod, s["diff"])
                        it = _find_mutant(items_by_mod[mod], s, key, source, mutate_code,
                                          get_operator, mod)
                        if it is None:
                            rerun_found[key] = "stale"
                        else:
                            picked.append(it)
                else:
                    picked, info = sample(items_by_mod[mod], mod, source, args.sample, args.seed)
                ok, base_s, base_out = run_baseline(tree, tests, timeout=600)
                entry = {"tests": tests, "baseline_seconds": round(base_s, 1), **info}
                modules[mod] = entry
                if not ok:
                    entry["baseline_failed"] = base_out[-1500:]
                    say(f"{mod}: baseline FAILED, skipped\n{base_out[-800:]}")
                    continue
                timeout = 4 * base_s + 10
                cmd = " ".join([sys.executable, *PYTEST, *tests])
                counts: dict[str, int] = defaultdict(int)
                t_mod = time.monotonic()
                for it in picked:
                    m = it.mutations[0]
                    res = mutate_and_test(it.mutations, cmd, timeout)
                    db.set_result(it.job_id, res)
                    if res.worker_outcome == WorkerOutcome.NO_TEST:
                        counts["no_mutation"] += 1
                        continue
                    if res.worker_outcome != WorkerOutcome.NORMAL:
                        counts["incompetent"] += 1
                        continue
                    diff = _short_diff(res.diff or "")
                    key = _diff_key(mod, diff)
                    if res.test_outcome == TestOutcome.SURVIVED:
                        counts["survived"] += 1
                        rerun_found[key] = "survived"
                        rec = {"module": mod, "line": m.start_pos[0], "operator": m.operator_name,
                               "occurrence": m.occurrence, "function": m.definition_name,
                               "diff": diff, "status": "open", "why": ""}
                        old = notes.get(key)
                        if old:
                            rec.update({k: old[k] for k in ("status", "why", "test") if k in old})
                            if rec["status"] == "killed-by-new-test":
                                rec["status"] = "open"   # the test written for it no longer kills it
                        survivors.append(rec)
                        say(f"  SURVIVED {mod}:{m.start_pos[0]} {m.operator_name}\n{diff}")
                    else:
                        counts["killed"] += 1
                        rerun_found[key] = "killed"
                        by, kind = kill_kind(res.output or "")
                        rerun_by[key] = (by, kind)
                        entry.setdefault("killed_mutants", []).append(
                            killed_entry(m.start_pos[0], m.operator_name, kind, by))
                        counts[f"kill_{kind}"] += 1
                        if kind == "timeout":
                            counts["timeout"] += 1
                scored = counts["killed"] + counts["survived"]
                entry.update(counts, sampled=len(picked), seconds=round(time.monotonic() - t_mod, 1),
                             timeout_seconds=round(timeout),
                             score=round(counts["killed"] / scored, 3) if scored else None)
                say(f"{mod}: {counts['killed']}/{scored} killed ({entry['seconds']} s)")
    except (KeyboardInterrupt, SystemExit):
        # Interrupted: keep what was measured (modules finished so far) and say so.
        interrupted = True
        for mod in [m for m, e in modules.items() if "sampled" not in e and "baseline_failed" not in e]:
            del modules[mod]
        survivors = [s for s in survivors if s["module"] in modules]
    finally:
        os.chdir(cwd)
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)

    seconds = round(time.monotonic() - started, 1)
    if args.rerun_survivors:
        # Keep the full run's table; record per listed survivor what the re-run found.
        result = dict(previous)
        new_surv = []
        for s in previous["survivors"]:
            found = rerun_found.get(_diff_key(s["module"], s["diff"]), "not-run")
            s = dict(s, rerun=found)
            if found == "killed":
                by, kind = rerun_by.get(_diff_key(s["module"], s["diff"]), ("", ""))
                s.update(killed_by=by, kill_kind=kind)
                s["status"] = ("killed-by-new-test" if not _test_existed(by, previous.get("snapshot", {}))
                               else "killed-by-other-tests")
            elif found == "survived" and s.get("status") == "killed-by-new-test":
                s["status"] = "open"
            new_surv.append(s)
        result["survivors"] = new_surv
        result["rerun"] = {"taken_utc": snapshot["taken_utc"], "git_head": snapshot["git_head"],
                           "dirty": snapshot["dirty"], "seconds": seconds,
                           "outcomes": {k: sum(1 for v in rerun_found.values() if v == k)
                                        for k in ("killed", "survived", "stale")}}
    else:
        killed = sum(e.get("killed", 0) for e in modules.values())
        survived = sum(e.get("survived", 0) for e in modules.values())
        result = {
            "tool": f"cosmic-ray {_version('cosmic-ray')}",
            "wrapper": "tools/mutate.py",
            "command": " ".join(["tools/mutate.py", *(sys.argv[1:] if argv is None else argv)]),
            "snapshot": snapshot,
            "sample_per_module": args.sample,
            "seed": args.seed,
            "excluded_operators": list(EXCLUDED_OPERATORS),
            "seconds": seconds,
            "total": {"killed": killed, "survived": survived,
                      "score": round(killed / (killed + survived), 3) if killed + survived else None},
            "modules": modules,
            "survivors": survivors,
        }
    if not args.rerun_survivors and args.modules and previous.get("modules"):
        # A partial run (--modules) updates its modules in the full run's table.
        merged = dict(previous)
        merged["modules"] = {**previous["modules"], **modules}
        merged["survivors"] = [s for s in previous.get("survivors", []) if s["module"] not in modules]
        merged["survivors"] += survivors
        merged.setdefault("partial_runs", []).append(
            {"modules": sorted(modules), "command": result["command"], "snapshot": snapshot,
             "seconds": seconds, "sample_per_module": args.sample, "seed": args.seed})
        k = sum(e.get("killed", 0) for e in merged["modules"].values())
        v = sum(e.get("survived", 0) for e in merged["modules"].values())
        merged["total"] = {"killed": k, "survived": v, "score": round(k / (k + v), 3) if k + v else None}
        result = merged
    if interrupted:
        (result["rerun"] if args.rerun_survivors else result)["interrupted"] = True
    _summarise(result)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1) + "\n")
    say(f"total {result['total']} in {seconds} s -> {out_path}")
    return 130 if interrupted else 0


def _test_existed(node: str, snapshot: dict) -> bool:
    """Whether the test function of ``node`` (``tests/f.py::test_x[...]``) was already in the
    tree the full run measured (its git HEAD): a survivor it kills now was missed because the
    module's test list left it out (``killed-by-other-tests``), not for want of a test."""
    path, _, name = node.partition("::")
    head = snapshot.get("git_head")
    if not (path and name and head):
        return False
    text = _git("show", f"{head}:{path}")
    return bool(text) and f"def {name.split('[')[0].split('::')[-1]}(" in text


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def _find_mutant(items, survivor: dict, key: str, source: str, mutate_code, get_operator, mod):
    """The work item whose mutant has the same diff lines as a listed survivor (or None)."""
    cands = [it for it in items if it.mutations[0].operator_name == survivor["operator"]]
    cands.sort(key=lambda it: abs(it.mutations[0].occurrence - survivor["occurrence"]))
    import difflib
    for it in cands:
        m = it.mutations[0]
        mutated = mutate_code(source, get_operator(m.operator_name)(), m.occurrence)
        if mutated is None:
            continue
        diff = "\n".join(difflib.unified_diff(source.split("\n"), mutated.split("\n"),
                                              lineterm=""))
        if _diff_key(mod, _short_diff(diff)) == key:
            return it
    return None


def _summarise(result: dict) -> None:
    """Scores counting the survivors' notes: `killed-by-new-test` (a test written for it kills it
    now, checked with --rerun-survivors) and `killed-by-other-tests` (test files outside the
    module's list kill it: --rerun-survivors --tests ...) count as killed; `equivalent` (no test can tell it from
    the original; the note says why) leaves the denominator, as mutation scores are defined."""
    fixed: dict[str, int] = defaultdict(int)
    equiv: dict[str, int] = defaultdict(int)
    for s in result.get("survivors", []):
        if s.get("status") in ("killed-by-new-test", "killed-by-other-tests"):
            fixed[s["module"]] += 1
        elif s.get("status") == "equivalent":
            equiv[s["module"]] += 1
    tk = ts = te = 0
    for mod, e in result.get("modules", {}).items():
        k, s = e.get("killed", 0), e.get("survived", 0)
        if k + s:
            e["score_after_new_tests"] = round((k + fixed[mod]) / (k + s - equiv[mod]), 3)
            e["equivalent"] = equiv[mod]
        tk, ts, te = tk + k + fixed[mod], ts + s - fixed[mod], te + equiv[mod]
    if tk + ts:
        result["total"]["score_after_new_tests"] = round(tk / (tk + ts - te), 3)
        result["total"]["equivalent"] = te
        result["total"]["still_surviving_not_equivalent"] = ts - te


if __name__ == "__main__":
    sys.exit(main())
