"""The lane machine equals the scalar machine, lane by lane, on random programs and inputs."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdplab.bpf import BpfError, Env, run_detailed
from xdplab.bpf.lanes import LaneRegion, LaneSpace, lanes_applicable, run_lanes
from xdplab.bpf.machine import MEM_BASE
from xdplab.bpf.opcodes import CLASS_NAMES
from strategies import runnable_program

H1 = lambda c, a, b, *_: (a ^ b) + 1          # noqa: E731
H2 = lambda c, a, b, d, *_: d * 3              # noqa: E731


def scalar(program, mem, budget):
    try:
        r = run_detailed(program, mem, max_insns=budget, env=Env(helpers={1: H1, 2: H2}))
        kinds = {k for (k, _), n in r.touches.items() if n}
        return ("ok", r.r0, r.insns, dict(r.by_class), kinds, r.mem)
    except BpfError as exc:
        return ("error", str(exc).split(":")[0])


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runnable_program(), st.lists(st.binary(min_size=48, max_size=48), min_size=1, max_size=6),
       st.integers(1, 3000))
def test_every_lane_equals_the_scalar_run(program, mems, budget):
    assert lanes_applicable(program) is None
    n = len(mems)
    space = LaneSpace(n)
    region = space.add(LaneRegion("mem", "mem", MEM_BASE, 48, np.frombuffer(b"".join(mems), np.uint8).reshape(n, 48).copy()))
    res = run_lanes(program, space, np.full(n, MEM_BASE, np.uint64), np.full(n, 48, np.uint64),
                    helpers={1: H1, 2: H2}, max_insns=budget, stack_bytes=512)
    for i, mem in enumerate(mems):
        want = scalar(program, mem, budget)
        if want[0] == "error":
            assert res.errors[i] is not None and res.errors[i].split(":")[0] == want[1], (i, res.errors[i], want)
            continue
        assert res.errors[i] is None, res.errors[i]
        by_class = {CLASS_NAMES[c]: int(res.by_class[c, i]) for c in range(8) if res.by_class[c, i]}
        kinds = {k for j, k in enumerate(res.kind_names) if res.kinds[i] >> j & 1}
        got = ("ok", int(res.r0[i]), int(res.insns[i]), by_class, kinds, bytes(region.data[i]))
        assert got == want


def test_conformance_suite_on_lanes():
    """Every conformance case the lane machine applies to, as one lane each."""
    from pathlib import Path
    from xdplab.bpf.conformance import parse_data_file
    suite = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "tests"
    ran = 0
    for path in sorted(suite.glob("*.data")):
        case = parse_data_file(path.read_text(), path.name)
        program = case.program()
        if lanes_applicable(program):
            continue
        size = max(len(case.mem), 1)
        space = LaneSpace(1)
        if case.mem:
            space.add(LaneRegion("mem", "mem", MEM_BASE, size, np.frombuffer(case.mem, np.uint8).reshape(1, size).copy()))
        res = run_lanes(program, space, np.array([MEM_BASE if case.mem else 0], np.uint64),
                        np.array([len(case.mem)], np.uint64), helpers={5: lambda c, r1, *_: r1}, stack_bytes=512)
        assert res.errors[0] is None, (path.name, res.errors[0])
        assert int(res.r0[0]) == case.result, path.name
        ran += 1
    assert ran >= 300
