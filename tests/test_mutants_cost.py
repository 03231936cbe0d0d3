"""Tests written for the mutants of xdplab/cost.py that survived `make mutate`
(benchmarks/results/mutation.json): the counts the cost model prices, taken from one run."""
from __future__ import annotations

import pytest

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


def _profile_json(name: str) -> dict:
    """The profile's numbers straight from data/cost.json (not through xdplab.cost)."""
    import json
    from pathlib import Path
    data = json.loads((Path(__file__).resolve().parent.parent / "data" / "cost.json").read_text())
    return {k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in data["profiles"][name].items()}


def test_price_of_a_run_with_a_kfunc_call_by_hand():
    """The model, worked by hand (xdplab/cost.py ``price`` docstring): the program's
    instructions by class at the profile's cycles, the call instruction's own slot replaced by
    ``direct_call_ns``, each region kind touched once, the routine's declared work, the
    invocation.  Counts: r0 = 0, r1 = 2 (alu64 2), a stack store and load (stx 1, ldx 1), call
    (jmp 1), exit (jmp 1); the routine: ldx 3, alu64 2, one multiply, one seqlock section,
    touching the descriptor and the clock."""
    from xdplab.cost import price, profile
    from xdplab.kernel.symbols import KernelFunction, KernelSymbols, OpCost
    syms = KernelSymbols()
    work = OpCost(insns={"ldx": 3, "alu64": 2}, touches={"descriptor": 1, "clock": 1}, muls=1, seqlock_reads=1)
    imm = syms.add(KernelFunction("routine", lambda ctx, *a: 0, cost=work))
    program = assemble(f"r0 = 0\nr1 = 2\n*(u64 *)(r10 - 8) = r1\nr2 = *(u64 *)(r10 - 8)\ncall {imm}\nexit")
    result = run_detailed(program, env=Env(helpers={imm: lambda ctx, *a: 0}))
    for name in ("e5-1650v4", "toke-mlx5"):
        p = _profile_json(name)
        ic, tc = p["insn_cycles"], p["touch_cycles"]
        c = price(RunCounts.of_run(result), syms, profile(name))
        program_cycles = (2 * ic["alu64"] + ic["stx"] + ic["ldx"] + 2 * ic["jmp"] - ic["jmp"]
                          + tc["stack"] + tc["descriptor"] + tc["clock"])
        routine_cycles = 3 * ic["ldx"] + 2 * ic["alu64"] + p["mul_cycles"] + 2 * ic["ldx"]
        assert float(c.program_ns[0]) == pytest.approx(program_cycles / p["ghz"], rel=1e-12)
        assert float(c.calls_ns[0]) == pytest.approx(p["direct_call_ns"], rel=1e-12)
        assert float(c.routines_ns[0]) == pytest.approx(routine_cycles / p["ghz"], rel=1e-12)
        assert float(c.driver_ns[0]) == 0.0
        assert float(c.invoke_ns[0]) == pytest.approx(p["prog_invoke_ns"], rel=1e-12)


def test_price_of_many_lanes_is_each_lanes_price():
    """Lanes with different counts (one made 2 calls, one none) are priced lane by lane: the
    same function for one run or many (issue 12)."""
    import numpy as np

    from xdplab.cost import price, profile
    from xdplab.kernel.symbols import KernelFunction, KernelSymbols, OpCost
    syms = KernelSymbols()
    imm = syms.add(KernelFunction("r", lambda ctx, *a: 0, cost=OpCost(insns={"alu64": 4}, spin_lock_bh=1)))
    counts = RunCounts({"alu64": np.array([3, 1]), "jmp": np.array([3, 1])},
                       {"stack": np.array([True, False])}, {("kfunc", imm): np.array([2, 0])})
    p, prof = _profile_json("e5-1650v4"), profile("e5-1650v4")
    ic, tc = p["insn_cycles"], p["touch_cycles"]
    c = price(counts, syms, prof)
    lane0 = (3 * ic["alu64"] + 3 * ic["jmp"] - 2 * ic["jmp"] + tc["stack"]) / p["ghz"]
    lane1 = (1 * ic["alu64"] + 1 * ic["jmp"]) / p["ghz"]
    assert c.program_ns.tolist() == pytest.approx([lane0, lane1], rel=1e-12)
    assert c.calls_ns.tolist() == pytest.approx([2 * p["direct_call_ns"], 0.0], rel=1e-12)
    assert c.routines_ns.tolist() == pytest.approx(
        [2 * (4 * ic["alu64"] / p["ghz"] + p["spin_lock_bh_ns"]), 0.0], rel=1e-12)
    # one value per lane in every part, the invocation included
    assert [np.shape(part) for part in (c.program_ns, c.calls_ns, c.routines_ns, c.driver_ns, c.invoke_ns)] == [(2,)] * 5
    assert c.invoke_ns.tolist() == [p["prog_invoke_ns"]] * 2


def test_an_old_profile_name_warns_at_the_callers_line():
    """A DeprecationWarning points at the code that used the old name (stacklevel: the
    caller of ``profile``), where it can be fixed."""
    import warnings

    from xdplab.cost import _cost_data, profile
    old = next(iter(_cost_data()["aliases"]))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        profile(old)
    assert [w.filename for w in seen if w.category is DeprecationWarning] == [__file__]


def test_btf_hints_driver_work_stores_what_the_struct_fill_writes():
    """Under BTF hints the driver fills the hints struct in the packet headroom every frame
    (xdplab.kernel.btf_hints.btf_hints_rows, Brouer's xdp-hints RFCv2) and moves data_meta.
    The stores are counted from what the fill really writes: the byte ranges it sets, one
    store per field, two adjacent u16 in one aligned u32 merged (rx_queue and vlan_tci: one
    4-byte store); plus the data_meta store into the xdp_buff (the wrapper)."""
    import numpy as np

    from xdplab.cost import btf_hints_driver_work
    from xdplab.kernel.btf_hints import XDP_HINTS_TIMESTAMP, btf_hints_rows
    from xdplab.kernel.symbols import OpCost
    rows = btf_hints_rows(rx_timestamp=np.array([0x0102030405060708]), rx_hash=np.array([0x11223344]),
                          vlan_tci=np.array([0x0ABC]), rx_queue=np.array([3]))
    written = [f for f, fld in XDP_HINTS_TIMESTAMP.fields.items()
               if np.asarray(rows).reshape(-1)[fld.offset:fld.offset + fld.size].any()]
    words = {XDP_HINTS_TIMESTAMP.fields[f].offset // 4 if XDP_HINTS_TIMESTAMP.fields[f].size < 4 else f
             for f in written}
    base = OpCost(insns={"ldx": 1}, touches={"clock": 1})
    work = btf_hints_driver_work(base)
    assert work.touches["packet"] == len(words) == 5
    assert work.insns["stx"] == len(words) + 1
    assert work.touches["clock"] == 1 and work.insns["ldx"] > 1        # the timestamp path kept
