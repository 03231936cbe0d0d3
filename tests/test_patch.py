"""struct bpf_patch: growth, sticky errors, the insn_buf[16] limit, S16_MAX and labels."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdplab.bpf import BpfVerifyError, assemble, run
from xdplab.bpf import builders as B
from xdplab.bpf import opcodes as op
from xdplab.bpf.insn import Insn
from xdplab.bpf.patch import BpfPatch, check_patch

NOP = B.BPF_MOV64_REG(B.BPF_REG_0, B.BPF_REG_0)


def test_append_grows_16_then_doubling():
    p = BpfPatch()
    assert (len(p), p.capacity) == (0, 0)
    p.append(NOP)
    assert p.capacity == 16 and p.allocated == 16
    p.append(*[NOP] * 16)
    assert len(p) == 17 and p.capacity == 32 and p.heap_overflow is None
    p.append(*[NOP] * 16)
    assert len(p) == 33 and p.capacity == 64


def test_posted_capacity_defect_writes_past_the_allocation():
    """RFC v2 defect (a), 01/14 bpf_patch.c (01-bpf-introduce-bpf_patch.patch:118-132):
    capacity doubled, that many allocated, capacity doubled again."""
    p = BpfPatch(posted_capacity_defect=True)
    p.append(*[NOP] * 16)
    assert (p.allocated, p.capacity, p.heap_overflow) == (16, 32, None)
    p.append(NOP)                                   # the 17th lands past 16 allocated
    assert p.heap_overflow is not None and p.heap_overflow.index == 16
    assert p.heap_overflow.allocated == 16 and p.heap_overflow.capacity == 32
    assert p.lost == ()                             # nothing lost until the next krealloc


def test_posted_second_reallocation_allocates_64_and_loses_16_to_31():
    """The 33rd append: capacity 32 -> 64, krealloc_array(.., 64, ..), capacity -> 128.
    krealloc copies ksize(old) = 16 insns (mm/slab_common.c@6.1.192:1340): 16..31 are lost."""
    p = BpfPatch(posted_capacity_defect=True)
    p.append(*[B.BPF_MOV64_IMM(0, i) for i in range(33)])
    assert [(r.at_len, r.allocated, r.capacity, r.copied) for r in p.reallocations] == \
        [(0, 16, 32, 0), (32, 64, 128, 16)]
    assert p.lost == (range(16, 32),)
    view = p.kernel_view()
    assert [i.imm for i in view[:16]] == list(range(16)) and view[32].imm == 32
    assert all(i == Insn(0, 0, 0, 0, 0) for i in view[16:32])
    assert [i.imm for i in p.insns()] == list(range(33))     # what the driver appended


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=700))
def test_posted_allocations_are_16_times_4_to_the_k(n):
    """Allocated 16, 64, 256, 1024 when len reaches 0, 32, 128, 512; the fixed buffer
    allocates 16, 32, 64, ... exactly when full and never writes past its allocation."""
    posted, fixed = BpfPatch(posted_capacity_defect=True), BpfPatch()
    posted.append(*[NOP] * n)
    fixed.append(*[NOP] * n)
    expected = [(at, alloc) for at, alloc in ((0, 16), (32, 64), (128, 256), (512, 1024)) if at < n]
    assert [(r.at_len, r.allocated) for r in posted.reallocations] == expected
    assert posted.allocated * 2 == posted.capacity
    assert (posted.heap_overflow is not None) == (n > 16)
    assert fixed.heap_overflow is None and fixed.lost == () and fixed.allocated >= n
    assert fixed.allocated == max(16, 1 << (n - 1).bit_length())


def test_sticky_error_after_failed_realloc():
    p = BpfPatch(max_alloc=16)
    p.append(*[NOP] * 16)
    p.append(NOP)
    assert p.err == -12 and "krealloc_array" in p.reason
    p.append(NOP)          # no-op once err is set
    assert p.err == -12 and len(p) == 0


def test_insn_buf_16_mode_refuses_the_17th():
    p = BpfPatch(limit=16)
    p.append(*[NOP] * 16)
    assert p.err == 0
    p.append(NOP)
    assert p.err == -7 and "insn_buf[16]" in p.reason and len(p) == 16


def test_magles_registers_is_the_or_of_dst_regs():
    p = BpfPatch().append(B.BPF_MOV64_IMM(0, 1), B.BPF_MOV64_IMM(5, 1),
                          B.BPF_STX_MEM(op.BPF_DW, 3, 1, 0), B.BPF_JMP_IMM(op.BPF_JEQ, 4, 0, 1))
    assert p.magles_registers() == (1 << 0) | (1 << 5) | (1 << 3) | (1 << 4)


def _placeholders():
    return BpfPatch().append(
        B.BPF_JMP_REG(op.BPF_JNE, 2, 3, op.S16_MAX),    # JMP | X: both rules resolve it
        B.BPF_JMP_IMM(op.BPF_JEQ, 5, 0, op.S16_MAX),    # JMP | K: only PATCH v1 resolves it
        B.BPF_JMP32_REG(op.BPF_JNE, 2, 3, op.S16_MAX),  # JMP32: never
        B.BPF_JMP_REG(op.BPF_JNE, 2, 3, 5),             # not a placeholder
        B.BPF_MOV64_IMM(0, 1),
    )


def test_resolve_jmp_rfc_v2_rule_only_register_source():
    p = _placeholders()
    p.resolve_jmp("rfc-v2")
    offs = [i.off for i in p.insns()]
    assert offs[0] == 5 - 0 - 1          # to the first insn after the patch
    assert offs[1] == op.S16_MAX and offs[2] == op.S16_MAX and offs[3] == 5


def test_resolve_jmp_patch_v1_rule_all_jmp_class():
    p = _placeholders()
    p.resolve_jmp("patch-v1")
    offs = [i.off for i in p.insns()]
    assert offs[:4] == [4, 3, op.S16_MAX, 5]
    with pytest.raises(ValueError, match="unknown rule"):
        p.resolve_jmp("v3")


def test_labels_resolve_late_and_end_is_after_the_patch():
    p = BpfPatch()
    p.append_jump(B.BPF_JMP_IMM(op.BPF_JEQ, 1, 0, 0), to="zero")
    p.append(B.BPF_MOV64_IMM(0, 7))
    p.append_jump(B.BPF_JMP_A(0), to="end")
    p.label("zero").append(B.BPF_MOV64_IMM(0, 9))
    prog = assemble("r1 = 0\n") + p.insns() + assemble("exit")
    assert run(prog) == 9
    prog = assemble("r1 = 1\n") + p.insns() + assemble("exit")
    assert run(prog) == 7
    with pytest.raises(BpfVerifyError, match="undefined label"):
        BpfPatch().append_jump(B.BPF_JMP_A(0), to="nowhere").insns()
    with pytest.raises(BpfVerifyError, match="needs a jump"):
        BpfPatch().append_jump(B.BPF_MOV64_IMM(0, 1), to="end")


@pytest.mark.parametrize("insns, message", [
    ((B.BPF_MOV64_IMM(6, 1),), "writes r6, which belongs to the program"),
    ((B.BPF_STX_MEM(op.BPF_DW, 10, 0, -8),), "uses r10"),
    ((B.BPF_LDX_MEM(op.BPF_DW, 0, 10, -8),), "uses r10"),
    ((B.BPF_JMP_A(5),), "outside the patch"),
    ((B.BPF_CALL_KFUNC(0, 1),), "kfunc call"),
    ((B.BPF_EXIT_INSN(),), "exits the program"),
    ((B.BPF_MOV64_IMM(1, 0),), "writes r1"),
])
def test_check_patch_reports_contract_violations(insns, message):
    violations = check_patch(insns, allowed=frozenset({0, 2, 3, 4, 5}))
    assert any(message in v.message for v in violations), violations


def test_check_patch_accepts_the_preserving_r1_idiom():
    idiom = (B.BPF_EMIT_CALL(1000), B.BPF_MOV64_REG(1, 0), B.BPF_LDX_MEM(op.BPF_DW, 0, 1, 72))
    assert check_patch(idiom, allowed=frozenset({0, 2, 3, 4, 5})) == []
