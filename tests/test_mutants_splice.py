"""Tests written for the mutants of xdplab/bpf/splice.py that survived `make mutate`
(benchmarks/results/mutation.json): the 16-bit range of a jump offset after a patch.

bpf_adj_delta_to_off (kernel/bpf/core.c@6.1.192:367-392): a backward jump from behind the patch
to before it gets `off -= delta`, a forward jump over it `off += delta`; a result outside
[S16_MIN, S16_MAX] (:379-380) is -ERANGE, which bpf_patch_insn_data reports as "insn %d cannot
be patched due to 16-bit range" (kernel/bpf/verifier.c@6.1.192:13360-13362).
"""
from __future__ import annotations

import pytest

from xdplab.bpf import BpfVerifyError
from xdplab.bpf import builders as B
from xdplab.bpf.insn import Program
from xdplab.bpf.splice import patch_insn_single

NOP = B.BPF_MOV64_REG(0, 0)
PATCH = (B.BPF_MOV64_IMM(0, 1), B.BPF_MOV64_IMM(0, 2), B.BPF_MOV64_IMM(0, 3))   # delta = 2


def _backward(n_between: int) -> Program:
    """slot 0: the insn to patch; n_between nops; then `goto` back to slot 0; exit."""
    off = -(n_between + 2)                  # target = curr + off + 1 = 0
    return Program((NOP, *([NOP] * n_between), B.BPF_JMP_A(off), B.BPF_EXIT_INSN()))


def _forward(n_between: int) -> Program:
    """slot 0: `goto` past the insn to patch at slot 1 and n_between nops, to the exit."""
    off = n_between + 1                     # target = 0 + off + 1 = the exit's slot
    return Program((B.BPF_JMP_A(off), NOP, *([NOP] * n_between), B.BPF_EXIT_INSN()))


def test_a_backward_jump_may_reach_s16_min_exactly():
    # before: off = -(32762 + 2) = -32764; after: -32766 >= S16_MIN
    new = patch_insn_single(_backward(32762), 0, PATCH)
    jump = new[len(new) - 2]
    assert jump.off == -32766 and len(new) == 32762 + 5
    new = patch_insn_single(_backward(32764), 0, PATCH)
    assert new[len(new) - 2].off == -32768 == -(1 << 15)


def test_a_backward_jump_pushed_below_s16_min_cannot_be_patched():
    # before: off = -32767 (valid); after: -32769 < S16_MIN = -32768
    with pytest.raises(BpfVerifyError, match="cannot be patched due to 16-bit range"):
        patch_insn_single(_backward(32765), 0, PATCH)


def test_a_forward_jump_may_reach_s16_max_exactly_and_no_further():
    # before: off = 32765; after + 2: 32767 = S16_MAX
    new = patch_insn_single(_forward(32764), 1, PATCH)
    assert new[0].off == 32767 == (1 << 15) - 1
    with pytest.raises(BpfVerifyError, match="cannot be patched due to 16-bit range"):
        patch_insn_single(_forward(32765), 1, PATCH)


def test_a_bpf_to_bpf_call_over_the_patch_gets_its_imm_moved():
    """bpf_adj_branches (kernel/bpf/core.c@6.1.192:394-441) moves a BPF_PSEUDO_CALL's imm like
    a jump offset (:429-433: a BPF_CALL whose ``src_reg`` is BPF_PSEUDO_CALL goes to
    bpf_adj_delta_to_imm); helper and
    kfunc calls keep theirs.  Slot 0 calls the function at slot 3 (imm 2); patching slot 1 with
    3 instructions (delta 2) moves the function to slot 5: imm 4."""
    call = B.Insn(0x85, 0, 1, 0, 2)                    # call pc+2 (BPF_PSEUDO_CALL)
    helper = B.Insn(0x85, 0, 0, 0, 7)                  # call helper 7
    prog = Program((call, NOP, B.BPF_EXIT_INSN(), B.BPF_MOV64_IMM(0, 0), helper, B.BPF_EXIT_INSN()))
    new = patch_insn_single(prog, 1, PATCH)
    assert (new[0].src, new[0].imm) == (1, 4)
    assert new[len(new) - 2].imm == 7                  # the helper call is not moved
