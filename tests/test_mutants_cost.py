"""Tests written for the mutants of xdplab/cost.py that survived `make mutate`
(benchmarks/results/mutation.json): the counts the cost model prices, taken from one run."""
from __future__ import annotations

from xdplab.bpf import Env, assemble, run_detailed
from xdplab.cost import RunCounts


def test_run_counts_of_one_scalar_run_are_that_run_as_one_lane():
    """Hand count: r0 = 0, r1 = 2 (alu64 2), a store to the stack (stx 1), a load back (ldx 1),
    a call of helper 7 (jmp 1), exit (jmp 1)."""
    program = assemble("r0 = 0\nr1 = 2\n*(u64 *)(r10 - 8) = r1\nr2 = *(u64 *)(r10 - 8)\n"
                       "call 7\nexit")
    result = run_detailed(program, env=Env(helpers={7: lambda ctx, *a: 3}))
    counts = RunCounts.of_run(result)
    assert {c: v.tolist() for c, v in counts.by_class.items()} == \
        {"alu64": [2], "stx": [1], "ldx": [1], "jmp": [2]}
    assert {k: v.tolist() for k, v in counts.touched.items()} == {"stack": [True]}
    assert {k: v.tolist() for k, v in counts.calls.items()} == {("helper", 7): [1]}
