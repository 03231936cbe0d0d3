"""Splicing a patch in place of one instruction, with the kernel's branch fix-ups."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdplab.bpf import BpfError, BpfVerifyError, Env, Program, assemble, run, run_detailed
from xdplab.bpf import builders as B
from xdplab.bpf import opcodes as op
from xdplab.bpf.splice import patch_insn_single
from strategies import runnable_program

ENV = Env(helpers={1: lambda c, a, b, *_: (a ^ b) + 1, 2: lambda c, a, b, d, *_: d * 3})


def outcome(program, mem):
    try:
        r = run_detailed(program, mem, max_insns=20_000, env=ENV)
        return ("ok", r.r0, r.mem)
    except BpfError as exc:
        return ("error", type(exc).__name__, "budget" in str(exc))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runnable_program(), st.binary(min_size=48, max_size=64), st.data())
def test_splicing_a_behaviour_preserving_patch_keeps_every_result(program, mem, data):
    """Replace a non-jump instruction X by [goto +1; r0 = 0xdead (skipped); X]."""
    candidates = [i for i, insn in enumerate(program)
                  if insn.opcode & 7 not in (op.BPF_JMP, op.BPF_JMP32) and insn.slots == 1]
    if not candidates:
        return
    i = data.draw(st.sampled_from(candidates))
    patch = (B.BPF_JMP_A(1), B.BPF_MOV64_IMM(0, 0xDEAD), program[i])
    spliced = patch_insn_single(program, program.slot_of(i), patch)
    assert spliced.slot_count == program.slot_count + 2
    before, after = outcome(program, mem), outcome(spliced, mem)
    if before[0] == "error" and before[2]:     # budget: the patched program runs more insns
        assert after[0] == "error"
    else:
        assert after == before


def test_forward_and_backward_jumps_across_the_patch():
    prog = assemble("""
        r0 = 0
        r1 = 3
    loop:
        r0 += 1          # slot 2: the patched instruction
        r1 -= 1
        if r1 != 0 goto loop
        if r0 == 3 goto done
        r0 = 99
    done:
        exit
    """)
    new = patch_insn_single(prog, 2, (B.BPF_ALU64_IMM(op.BPF_ADD, 0, 0), B.BPF_ALU64_IMM(op.BPF_ADD, 0, 1)))
    assert new[5].off == prog[4].off - 1     # backward jump across: off -= delta
    assert new[6].off == prog[5].off         # forward jump, both ends after the patch
    assert run(new) == run(prog) == 3


def test_calls_pseudo_func_and_gotol_are_adjusted():
    prog = assemble("""
        r0 = 0           # slot 0: patched below
        r2 = func(f) ll
        gotol over
        r0 = 5
    over:
        call f
        exit
    f:
        r0 = 1
        exit
    """)
    new = patch_insn_single(prog, 0, (B.BPF_MOV64_IMM(0, 0), B.BPF_MOV64_IMM(0, 0)))
    # everything after the patch moved together: relative offsets unchanged
    assert [i.imm for i in new][2:] == [i.imm for i in prog][1:]
    # a patch between the jumps and their targets moves the targets
    mid = patch_insn_single(prog, 4, (B.BPF_MOV64_IMM(0, 5), B.BPF_MOV64_IMM(0, 5)))
    assert mid[1].imm & 0xFFFFFFFF == (prog[1].imm & 0xFFFFFFFF) + 1   # ld_imm64 func
    assert mid[2].imm == prog[2].imm + 1                                # gotol over the patch
    assert run(mid) == run(prog) == 1


def test_offset_out_of_range_is_erange():
    body = [B.BPF_JMP_A(32767)] + [B.BPF_MOV64_IMM(0, 0)] * 32767 + [B.BPF_EXIT_INSN()]
    prog = Program(body)
    with pytest.raises(BpfVerifyError, match="cannot be patched due to 16-bit range"):
        patch_insn_single(prog, 1, (B.BPF_MOV64_IMM(0, 0), B.BPF_MOV64_IMM(0, 0)))


def test_patching_the_middle_of_ld_imm64_is_refused():
    prog = assemble("r0 = 1 ll\nexit")
    with pytest.raises(BpfVerifyError, match="not the start"):
        patch_insn_single(prog, 1, (B.BPF_EXIT_INSN(),))
    with pytest.raises(BpfVerifyError, match="ld_imm64"):
        patch_insn_single(prog, 0, (B.BPF_EXIT_INSN(),))
