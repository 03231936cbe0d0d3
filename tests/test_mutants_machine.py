"""Tests written for the mutants of xdplab/bpf/machine.py that survived `make mutate`
(benchmarks/results/mutation.json).  Expected values are worked out by hand: BPF memory is
little-endian on x86-64 (the target of the RFC), and a helper's N-byte store writes exactly N bytes
(as `*(u32 *)p = v` in a kernel helper does), leaving the neighbours as they were.
"""
from __future__ import annotations

import pytest

from xdplab.bpf import Env, assemble, run_detailed

PROGRAM = """
r1 = -1 ll
*(u64 *)(r10 - 8) = r1
*(u64 *)(r10 - 16) = r1
r1 = r10
r1 += -16
call 9
r0 = *(u64 *)(r10 - 16)
exit
"""


def _with_helper(fn):
    program = assemble(PROGRAM)
    env = Env(helpers={9: fn})
    return [run_detailed(program, env=env, fast=fast).r0 for fast in (True, False)]


@pytest.mark.parametrize("size, value, expected", [
    (1, 0x5A, 0xFFFF_FFFF_FFFF_FF5A),
    (2, 0x1234, 0xFFFF_FFFF_FFFF_1234),
    (4, 0x1122_3344, 0xFFFF_FFFF_1122_3344),
    (4, 0x99_1122_3344, 0xFFFF_FFFF_1122_3344),       # wider than 4 bytes: the low 4 only
    (8, 0x0102_0304_0506_0708, 0x0102_0304_0506_0708),
    (2, -2, 0xFFFF_FFFF_FFFF_FFFE),                   # a negative value: its two's complement
])
def test_a_helper_writes_exactly_size_little_endian_bytes(size, value, expected):
    def helper(ctx, r1, *_):
        ctx.write(r1, size, value)
        return 0
    assert _with_helper(helper) == [expected, expected]


def test_a_helper_reads_little_endian_ints():
    def helper(ctx, r1, *_):
        ctx.write(r1, 8, 0x8877_6655_4433_2211)
        # read back 2 bytes at +1 (0x3322) and 4 at +4 (0x88776655): little-endian
        return ctx.read(r1 + 1, 2) << 32 | ctx.read(r1 + 4, 4)

    program = assemble("r1 = r10\nr1 += -8\ncall 9\nexit")
    for fast in (True, False):
        assert run_detailed(program, env=Env(helpers={9: helper}), fast=fast).r0 == \
            0x3322_8877_6655


@pytest.mark.parametrize("text, expected, insns", [
    # ld_imm64 at slots 0-1, callx at 2, exit at 3, L at 4: the callee sets r0 = 42.
    ("r1 = func(L) ll\ncallx r1\nexit\nL:\nr0 = 42\nexit", 42, 5),
    # the callee is further down, past a decoy at slots 7-8; r6 (callee-saved) survives the call
    ("r6 = 1\nr1 = func(L) ll\nr0 = 3\ncallx r1\nr0 += r6\nexit\nr0 = 5\nexit\nL:\nr0 = 42\nexit",
     43, 8),
])
def test_callx_to_a_function_address_calls_that_function(text, expected, insns):
    """MODEL: `callx rN` (LLVM's BPF_CALL|BPF_X; the 6.1 verifier has no such insn) with rN
    holding a function address from `ld_imm64 BPF_PSEUDO_FUNC` calls that function.  The address
    is the one the simulation gives the target of `insn_idx + imm + 1`
    (kernel/bpf/verifier.c@6.1.192:10630): CODE_BASE + 8 x its slot, 8 bytes per insn."""
    for fast in (True, False):
        result = run_detailed(assemble(text), fast=fast)
        assert (result.r0, result.insns) == (expected, insns)


def test_callx_with_a_helper_id_returns_to_the_next_instruction():
    """MODEL: `callx rN` whose rN holds a helper id (not a function address) calls that helper
    and continues at the next slot.  The callx sits at odd slot 1 and again at even slot 4."""
    env = Env(helpers={7: lambda ctx, *a: 3})
    text = "r2 = 7\ncallx r2\nr6 = r0\nr2 = 7\ncallx r2\nr0 += r6\nexit"
    for fast in (True, False):
        result = run_detailed(assemble(text), env=env, fast=fast)
        assert (result.r0, result.insns) == (6, 7)


def test_ld_imm64_pseudo_func_backward_to_an_earlier_function():
    """BPF_PSEUDO_FUNC with a negative imm (insn offset, include/uapi/linux/bpf.h@6.1.192:1208-1216;
    target = insn_idx + imm + 1, kernel/bpf/verifier.c@6.1.192:10630): main calls A (slot 6),
    A loads the address of B, which comes before it (slot 4): imm = 4 - 6 - 1 = -3.
    MODEL address: CODE_BASE + 8 x slot."""
    from xdplab.bpf.machine import CODE_BASE
    text = "call A\nr0 = r0\nr0 += 0\nexit\nB:\nr0 = 0\nexit\nA:\nr1 = func(B) ll\nr0 = r1\nexit"
    for fast in (True, False):
        assert run_detailed(assemble(text), fast=fast).r0 == CODE_BASE + 8 * 4


@pytest.mark.parametrize("cls", ["Env"])
def test_the_machines_values_are_frozen(cls):
    """An Env is shared by every run of a loaded program (the kernel's tables): frozen, so a run
    cannot change what the next one sees (house rule: frozen values)."""
    import dataclasses

    import xdplab.bpf.machine as machine
    obj = getattr(machine, cls)()
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.helpers = {}
