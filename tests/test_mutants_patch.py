"""Tests written for the mutants of xdplab/bpf/patch.py that survived `make mutate`
(benchmarks/results/mutation.json): which registers an atomic instruction writes, as seen by
`check_patch` (unrolled code may write only the registers its call clobbers).

The kernel's interpreter (kernel/bpf/core.c@6.1.192:2021-2072, STX_ATOMIC_W/DW): a plain atomic
op writes no register; `BOP | BPF_FETCH` and BPF_XCHG write SRC (:2032-2041, :2052-2060);
BPF_CMPXCHG writes BPF_R0 and leaves SRC alone (:2062-2070).  Opcode bits:
include/uapi/linux/bpf.h@6.1.192:22 (BPF_ATOMIC 0xc0), :48-50 (BPF_FETCH, BPF_XCHG, BPF_CMPXCHG).
"""
from __future__ import annotations

import pytest

from xdplab.bpf import builders as B
from xdplab.bpf import opcodes as op
from xdplab.bpf.patch import check_patch

ADD, AND, OR, XOR = 0x00, 0x50, 0x40, 0xA0       # include/uapi/linux/bpf_common.h@6.1.192:32-42
FETCH, XCHG, CMPXCHG = 0x01, 0xE1, 0xF1                 # include/uapi/linux/bpf.h@6.1.192:48-50


def _writes(insn, allowed: set[int]) -> list[str]:
    return [v.message for v in check_patch((insn,), allowed=frozenset(allowed))]


@pytest.mark.parametrize("size", [op.BPF_W, op.BPF_DW])
@pytest.mark.parametrize("aop", [ADD, AND, OR, XOR])
def test_a_plain_atomic_op_writes_no_register(size, aop):
    insn = B.BPF_ATOMIC_OP(size, aop, 2, 7, 0)          # *(r2 + 0) op= r7
    assert _writes(insn, {0, 2, 3, 4, 5}) == []


@pytest.mark.parametrize("size", [op.BPF_W, op.BPF_DW])
@pytest.mark.parametrize("aop", [ADD | FETCH, AND | FETCH, OR | FETCH, XOR | FETCH, XCHG])
def test_a_fetching_atomic_op_writes_its_source_register(size, aop):
    insn = B.BPF_ATOMIC_OP(size, aop, 2, 7, 0)          # r7 = atomic_fetch_op(r2 + 0, r7)
    msgs = _writes(insn, {0, 2, 3, 4, 5})
    assert len(msgs) == 1 and "writes r7" in msgs[0], msgs
    assert _writes(insn, {0, 2, 3, 4, 5, 7}) == []


@pytest.mark.parametrize("size", [op.BPF_W, op.BPF_DW])
def test_cmpxchg_writes_r0_not_its_source(size):
    insn = B.BPF_ATOMIC_OP(size, CMPXCHG, 2, 7, 0)      # r0 = cmpxchg(r2 + 0, r0, r7)
    msgs = _writes(insn, {2, 3, 4, 5, 7})
    assert len(msgs) == 1 and "writes r0" in msgs[0], msgs
    assert _writes(insn, {0, 2, 3, 4, 5}) == []          # r7 is only read


@pytest.mark.parametrize("jop", [op.BPF_JEQ, op.BPF_JGT, op.BPF_JSET])
def test_a_bpf_k_jumps_src_field_is_not_a_register_read(jop):
    """A BPF_K jump compares dst with imm; its src field is unused (reserved), so a stray 10
    there is not a use of r10.  The same jump as BPF_X (dst vs src) does read r10 and breaks
    the contract (unrolled code may not touch the program's stack)."""
    k = B.Insn(op.BPF_JMP | jop | op.BPF_K, 0, 10, 0, 5)
    x = B.Insn(op.BPF_JMP | jop | op.BPF_X, 0, 10, 0, 0)
    assert check_patch([k, B.BPF_MOV64_IMM(0, 1)], allowed=frozenset({0})) == []
    assert [(v.index, v.message) for v in check_patch([x, B.BPF_MOV64_IMM(0, 1)], allowed=frozenset({0}))] == \
        [(0, "uses r10: unrolled code may not touch the program's stack")]


def test_a_jump_may_land_on_the_patch_end_but_not_past_it():
    """check_patch: a jump's target is i + 1 + off (kernel/bpf/core.c@6.1.192:1942-1943 JMP_JA:
    insn += insn->off, after the insn++ of the dispatch); the end of the patch (n) is where
    the patched call continues, n + 1 is outside."""
    mov = B.BPF_MOV64_IMM(0, 1)
    assert check_patch([B.BPF_JMP_A(1), mov], allowed=frozenset({0})) == []
    assert [(v.index, v.message) for v in check_patch([B.BPF_JMP_A(2), mov], allowed=frozenset({0}))] == \
        [(0, "jumps to patch insn 3, outside the patch (0..2; 2 = the end)")]
    jeq = B.BPF_JMP_IMM(op.BPF_JEQ, 0, 0, 0)
    assert check_patch([mov, jeq, mov], allowed=frozenset({0})) == []        # off 0: the next insn


def test_an_empty_patch_has_nothing_allocated():
    """01/14: ``struct bpf_patch patch = {}`` (zeroed: no array, capacity 0) until the first
    append allocates 16."""
    from xdplab.bpf.patch import BpfPatch
    p = BpfPatch()
    assert (p.allocated, p.capacity, p.reallocations) == (0, 0, ())
    p.append(B.BPF_MOV64_IMM(0, 1))
    assert [(r.at_len, r.allocated, r.copied) for r in p.reallocations] == [(0, 16, 0)]


def test_a_patch_jump_is_a_frozen_value():
    """A pending jump (instruction + label) is recorded once and resolved from its fields at the
    end: frozen, so nothing can change it in between (house rule: frozen values)."""
    import dataclasses

    from xdplab.bpf.patch import _Jump
    j = _Jump(B.BPF_JMP_A(0), "end")
    with pytest.raises(dataclasses.FrozenInstanceError):
        j.to = "elsewhere"
