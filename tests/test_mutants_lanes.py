"""Tests written for the mutants of xdplab/bpf/lanes.py that survived `make mutate`
(benchmarks/results/mutation.json): lanes that diverge (different branches, different loop
counts), loads at per-lane offsets below a region's stored part, helper writes at its edge.
Expected values are worked out by hand from the BPF rules (JGT/JNE compare unsigned: the
interpreter's COND_JMP(u, JGT, >), kernel/bpf/core.c@6.1.192:1978) and from the lane model
stated in lanes.py's docstring (MODEL: bytes below ``stored_from`` read as zeros, writes there
fault).
"""
from __future__ import annotations

import numpy as np

from xdplab.bpf import assemble
from xdplab.bpf.lanes import LaneRegion, LaneSpace, run_lanes
from xdplab.bpf.machine import MEM_BASE


def _run(text: str, r1, space: LaneSpace | None = None, **kw):
    r1 = np.asarray(r1, np.uint64)
    space = space or LaneSpace(len(r1))
    return run_lanes(assemble(text), space, r1, **kw)


def test_lanes_taking_different_branches():
    """JGT is unsigned: r1 > 5 for 9 and 6 (taken: r0 = r1 + 100, 4 insns), not for 3 and 5
    (r0 = 1, 3 insns)."""
    res = _run("if r1 > 5 goto L\nr0 = 1\nexit\nL:\nr0 = r1\nr0 += 100\nexit", [3, 9, 5, 6])
    assert list(res.errors) == [None] * 4
    assert res.r0.tolist() == [1, 109, 1, 106]
    assert res.insns.tolist() == [3, 4, 3, 4]
    # class 5 = BPF_JMP, 7 = BPF_ALU64 (include/uapi/linux/bpf_common.h@6.1.192:12,
    # include/uapi/linux/bpf.h@6.1.192:18)
    assert res.by_class[5].tolist() == [2, 2, 2, 2]
    assert res.by_class[7].tolist() == [1, 2, 1, 2]


def test_lanes_looping_a_different_number_of_times():
    """r0 counts the iterations: r1 of them; 1 mov + 3 per iteration + exit."""
    counts = [1, 4, 2, 7, 3]
    res = _run("r0 = 0\nL:\nr0 += 1\nr1 -= 1\nif r1 != 0 goto L\nexit", counts)
    assert list(res.errors) == [None] * 5
    assert res.r0.tolist() == counts
    assert res.insns.tolist() == [2 + 3 * n for n in counts]
    assert res.by_class[5].tolist() == [n + 1 for n in counts]


def test_divergent_lanes_rejoin_and_share_the_tail():
    """After the branch the lanes run the same tail (r0 *= 2) at their own values."""
    text = "r0 = 1\nif r1 == 2 goto L\nr0 = 10\nL:\nr0 *= 2\nexit"
    res = _run(text, [2, 3, 2, 0])
    assert res.r0.tolist() == [2, 20, 2, 20]
    assert res.insns.tolist() == [4, 5, 4, 5]


def _stored_suffix_region(n: int) -> tuple[LaneSpace, LaneRegion]:
    """A 16-byte region per lane whose bytes 8..15 are stored: lane i holds 0x10*i + 1.. ."""
    data = np.array([[0x10 * (i + 1) + j for j in range(8)] for i in range(n)], np.uint8)
    space = LaneSpace(n)
    region = space.add(LaneRegion("obj", "obj", MEM_BASE, 16, data, stored_from=8))
    return space, region


def test_loads_at_per_lane_offsets_below_the_stored_part_read_zero():
    """Lane 0 reads byte 7 (below stored_from: zero), lane 1 byte 8 (its first stored byte),
    lane 2 byte 9.  Different offsets per lane take the gather path."""
    space, _ = _stored_suffix_region(3)
    res = _run("r0 = *(u8 *)(r1 + 0)\nexit", [MEM_BASE + 7, MEM_BASE + 8, MEM_BASE + 9], space)
    assert list(res.errors) == [None] * 3
    assert res.r0.tolist() == [0, 0x20, 0x31]


def test_a_wide_load_straddling_the_stored_part_per_lane():
    """A u16 at byte 6 (both bytes below: 0) and one at byte 8 (two stored bytes, little endian)."""
    space, _ = _stored_suffix_region(2)
    res = _run("r0 = *(u16 *)(r1 + 0)\nexit", [MEM_BASE + 6, MEM_BASE + 8], space)
    assert res.r0.tolist() == [0, 0x2120]


def test_a_helper_may_write_from_the_first_stored_byte_but_not_below():
    """A scalar helper writes one byte at r1; at stored_from it lands in the row, one byte
    below it faults (MODEL: only the stored suffix exists to be written)."""
    def write(ctx, r1, *_):
        ctx.write_bytes(r1, b"\xAA")
        return 0
    space, region = _stored_suffix_region(2)
    res = _run("call 9\nr0 = 0\nexit", [MEM_BASE + 8, MEM_BASE + 7], space, helpers={9: write})
    assert res.errors[0] is None
    assert int(region.data[0, 0]) == 0xAA
    assert res.errors[1] is not None and "outside any writable region" in res.errors[1]
    assert int(region.data[1, 0]) == 0x20                 # lane 1's row is unchanged


def test_lanes_that_leave_the_program_stop_and_the_others_finish():
    """An unverified program (the lane machine runs what it is given: the kernel ran unrolled
    code it never re-verified).  JGT is unsigned: lanes 9 and 6 jump +1 from slot 0 to slot 2,
    the second half of the ld_imm64 at slot 1 (check_cfg's "jump into the middle of ldimm64",
    kernel/bpf/verifier.c@6.1.192); they stop after that one instruction.  Lanes 3 and 5 run
    jgt, ld_imm64 (one instruction, two slots) and exit: r0 = 7, 3 instructions."""
    res = _run("if r1 > 5 goto +1\nr0 = 7 ll\nexit", [3, 9, 5, 6])
    mid = "insn 0: jump into the middle of ld_imm64 at insn 1"
    assert list(res.errors) == [None, mid, None, mid]
    assert res.r0.tolist() == [7, 0, 7, 0]
    assert res.insns.tolist() == [3, 1, 3, 1]
    # lanes 9 and 6 now jump +2, to slot 3: one past the last (3 slots)
    res = _run("if r1 > 5 goto +2\nr0 = 1\nexit", [3, 9, 5, 6])
    out = "insn 0: control leaves the program: jump to insn 3 of 3"
    assert list(res.errors) == [None, out, None, out]
    assert res.r0.tolist() == [1, 0, 1, 0] and res.insns.tolist() == [3, 1, 3, 1]


def test_every_lane_leaving_together_ends_the_run():
    """All lanes in step (the uniform mode) jump past the end at once: each gets the error of
    the jump at slot 1 after 2 instructions, and the run ends."""
    res = _run("r0 = 1\ngoto +1\nexit", [3, 9, 5])
    assert list(res.errors) == ["insn 1: control leaves the program: jump to insn 3 of 3"] * 3
    assert res.insns.tolist() == [2, 2, 2]


def test_lane_loads_at_unaligned_offsets_read_the_bytes_there():
    """A 4-byte load at offsets 1, 2, 3 of a row (the same offset for every lane: the
    column path) reads those four bytes little-endian (BPF_LDX_MEM | BPF_W, RFC 9669 §5.1),
    not the aligned word around them.  Row of lane k: bytes k*16 + 0..15."""
    data = (np.arange(32, dtype=np.uint8).reshape(2, 16))
    for off in (1, 2, 3, 5):
        space = LaneSpace(2)
        space.add(LaneRegion("obj", "obj", MEM_BASE, 16, data.copy()))
        res = _run(f"r0 = *(u32 *)(r1 + {off})\nexit", [MEM_BASE, MEM_BASE], space)
        expect = [int.from_bytes(bytes(range(16 * k + off, 16 * k + off + 4)), "little") for k in (0, 1)]
        assert res.r0.tolist() == expect, off


def test_a_helper_write_into_a_region_stored_from_an_offset_lands_on_its_byte():
    """LaneState.helper_write on a region whose rows hold bytes 8..15 only (stored_from 8):
    writing 2 bytes at offset 10 of lane 1 changes row 1, columns 2..3, nothing else."""
    from xdplab.bpf.lanes import LaneState
    space = LaneSpace(2)
    region = space.add(LaneRegion("obj", "obj", MEM_BASE, 16, np.zeros((2, 8), np.uint8), stored_from=8))
    st = LaneState(space, ("obj",))
    ok = st.helper_write(np.array([1]), np.array([MEM_BASE + 10], np.uint64), 2, np.array([0xBEEF], np.uint64))
    assert ok.tolist() == [True]
    assert region.data.tolist() == [[0] * 8, [0, 0, 0xEF, 0xBE, 0, 0, 0, 0]]


def test_lanes_in_two_regions_load_at_the_same_unaligned_offset():
    """Lanes 0 and 2 point at region A, lanes 1 and 3 at region B (so the addresses differ and
    each region's lanes share one offset): a 4-byte load at +3 reads bytes 3..6 of each lane's
    own row, little-endian.  Rows: A lane k = 16k + 0..15, B lane k = 100 + 16k + 0..15."""
    a = np.arange(64, dtype=np.uint8).reshape(4, 16)
    b = (np.arange(64, dtype=np.uint8) + 100).reshape(4, 16)
    space = LaneSpace(4)
    space.add(LaneRegion("a", "a", MEM_BASE, 16, a.copy()))
    space.add(LaneRegion("b", "b", MEM_BASE + 0x1000, 16, b.copy()))
    r1 = [MEM_BASE, MEM_BASE + 0x1000, MEM_BASE, MEM_BASE + 0x1000]
    res = _run("r0 = *(u32 *)(r1 + 3)\nexit", r1, space)
    rows = [a[0], b[1], a[2], b[3]]
    assert res.r0.tolist() == [int.from_bytes(bytes(row[3:7]), "little") for row in rows]
