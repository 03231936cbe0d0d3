"""Tests written for the mutants of xdplab/bpf/fastpath.py that survived `make mutate`
(benchmarks/results/mutation.json).  Each expected value is derived by hand from the kernel's rule
or the simulation's documented model, never taken from a run of the code under test; each runs on
the fast path (checked: `fast` is True) and on the reference interpreter.
"""
from __future__ import annotations

import pytest

from xdplab.bpf import Env, assemble, run_detailed
from xdplab.bpf.memory import CODE_BASE, POISON_BASE

ENV = Env(helpers={7: lambda ctx, *args: 5})


def _both(text: str, env: Env = ENV):
    program = assemble(text)
    fast = run_detailed(program, env=env, fast=True)
    ref = run_detailed(program, env=env, fast=False)
    assert fast.fast and not ref.fast
    return fast, ref


@pytest.mark.parametrize("reg", [1, 2, 3, 4, 5])
def test_a_call_leaves_poison_in_each_caller_saved_register(reg):
    """R1-R5 are caller-saved: after a call the verifier marks them NOT_INIT
    (kernel/bpf/verifier.c@6.1.192:1283 caller_saved[], :7688-7691 check_helper_call), so the
    value a JIT leaves there is arbitrary.  MODEL (xdplab/bpf/memory.py POISON_BASE): the
    simulation writes POISON_BASE + n into Rn so that a read is recognisable (xdplab's verifier
    does not track register liveness, so the read runs).  It must give exactly that value."""
    for result in _both(f"r1 = 11\nr2 = 12\nr3 = 13\nr4 = 14\nr5 = 15\ncall 7\nr0 = r{reg}\nexit"):
        assert result.r0 == 0xDEAD_BEEF_0000_0000 + reg == POISON_BASE + reg


def test_without_poisoning_the_arguments_survive_the_call():
    env = Env(helpers=ENV.helpers, poison_after_call=False)
    for result in _both("r3 = 13\ncall 7\nr0 = r3\nexit", env):
        assert result.r0 == 13


def test_counts_by_class_of_a_loop_are_the_executed_instructions():
    """Hand count: 2 movs, then 3 iterations of (add, sub, jne), then exit:
    alu64 = 2 + 3*2 = 8, jmp = 3 + 1 = 4, 12 instructions in all."""
    for result in _both("r0 = 0\nr1 = 3\nL:\nr0 += 2\nr1 -= 1\nif r1 != 0 goto L\nexit"):
        assert result.r0 == 6
        assert dict(result.by_class) == {"alu64": 8, "jmp": 4}
        assert result.insns == 12


def test_counts_by_class_across_blocks_with_memory():
    """Hand count of a program with a forward branch taken and a stack store/load:
    st(1) stx(1) ldx(1) alu64: r0=0, r1=7 (2) jmp: jgt taken (1), exit (1)."""
    text = ("r1 = 7\n*(u64 *)(r10 - 8) = 3\n*(u64 *)(r10 - 16) = r1\nr0 = *(u64 *)(r10 - 16)\n"
            "if r0 > 5 goto L\nr0 = 0\nL:\nexit")
    for result in _both(text):
        assert result.r0 == 7
        assert dict(result.by_class) == {"alu64": 1, "st": 1, "stx": 1, "ldx": 1, "jmp": 2}
        assert result.insns == 6


def test_ld_imm64_pseudo_func_loads_the_callee_address_forward():
    """BPF_PSEUDO_FUNC: insn[0].imm is the insn offset to the function
    (include/uapi/linux/bpf.h@6.1.192:1208-1216), the target being insn_idx + imm + 1
    (kernel/bpf/verifier.c@6.1.192:10630).  MODEL: a function's address is CODE_BASE + 8 x its
    slot (8-byte instructions).  Here the ld_imm64 is at slot 2 (two slots), L at slot 6."""
    text = "r2 = 1\nr3 = 2\nr1 = func(L) ll\nr0 = r1\nexit\nL:\nr0 = 0\nexit"
    for result in _both(text):
        assert result.r0 == CODE_BASE + 8 * 6 == 0xFFFF_FFFF_A000_0030


def test_ld_imm64_pseudo_func_address_in_a_later_slot():
    text = "r1 = func(L) ll\nr2 = 3\nr2 += 4\nr0 = r1\nexit\nL:\nr0 = 0\nexit"
    for result in _both(text):
        assert result.r0 == CODE_BASE + 8 * 6


def test_ld_imm64_pseudo_func_address_when_slot_and_distance_share_bits():
    """ld_imm64 at slot 2, L at slot 8: the address is CODE_BASE + 8 x (2 + 1 + 5); a slot and
    a distance with a common bit (2 and 6) tell ``slot + 1 + imm`` from other ways to combine them."""
    text = "r2 = 1\nr3 = 2\nr1 = func(L) ll\nr0 = r1\nr2 += 1\nr3 += 1\nexit\nL:\nr0 = 0\nexit"
    for result in _both(text):
        assert result.r0 == CODE_BASE + 8 * 8
