"""The interpreter: kernel semantics, memory model, calls, budget, counts, fast path."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdplab.bpf import (BpfError, BpfExecuteError, BpfVerifyError, Env, Program, assemble, run,
                        run_detailed)
from xdplab.bpf import builders as B
from xdplab.bpf import opcodes as op
from xdplab.bpf.fastpath import compile_program
from xdplab.bpf.memory import POISON_BASE
from strategies import mostly_decodable_program_bytes, runnable_program

M64 = (1 << 64) - 1
INT64_MIN = 1 << 63


def both(text: str, mem: bytes = b"", **kw) -> int:
    """Run on both paths; they must agree."""
    p = assemble(text)
    a = run_detailed(p, mem, fast=True, **kw)
    b = run_detailed(p, mem, fast=False, **kw)
    assert (a.r0, a.insns, dict(a.by_class), dict(a.touches), a.mem) == \
           (b.r0, b.insns, dict(b.by_class), dict(b.touches), b.mem)
    return a.r0


# ------------------------------------------------------------------ arithmetic corner cases
@pytest.mark.parametrize("text, expected", [
    ("r0 = 7\nr1 = 0\nr0 /= r1\nexit", 0),                                  # div by 0 -> 0
    ("r0 = 7\nr1 = 0\nr0 %= r1\nexit", 7),                                  # mod by 0 -> dst
    ("r0 = -1 ll\nw1 = 0\nw0 %= w1\nexit", 0xFFFFFFFF),                     # 32-bit: low half, zero-extended
    ("r0 = -9223372036854775808 ll\nr1 = -1\nr0 s/= r1\nexit", INT64_MIN),  # INT_MIN / -1
    ("r0 = -9223372036854775808 ll\nr1 = -1\nr0 s%= r1\nexit", 0),
    ("w0 = -2147483648\nw1 = -1\nw0 s/= w1\nexit", 0x80000000),
    ("r0 = -7\nr1 = 2\nr0 s%= r1\nexit", M64),                              # remainder takes the dividend's sign
    ("r0 = -7\nr0 s/= 2\nexit", (-3) & M64),                                # truncation toward zero
    ("r0 = 1\nr1 = 65\nr0 <<= r1\nexit", 2),                                # shift count masked to 63
    ("w0 = 1\nw1 = 33\nw0 <<= w1\nexit", 2),                                # ... and to 31
    ("r0 = -1\nw0 += 1\nexit", 0),                                          # 32-bit result zero-extended
    ("r0 = -1 ll\nw0 = w0\nexit", 0xFFFFFFFF),
    ("w0 = -8\nw0 s>>= 1\nexit", 0xFFFFFFFC),
    ("r0 = -8\nr0 s>>= 1\nexit", (-4) & M64),
    ("r0 = 0x1122334455667788 ll\nr0 = le16 r0\nexit", 0x7788),             # le truncates on LE hosts
    ("r0 = 0x1122334455667788 ll\nr0 = be16 r0\nexit", 0x8877),
    ("r0 = 0x1122334455667788 ll\nr0 = be64 r0\nexit", 0x8877665544332211),
    ("r0 = 0x1122334455667788 ll\nr0 = bswap32 r0\nexit", 0x88776655),
    ("r0 = 0x80\nr0 = (s8)r0\nexit", M64 - 0x7F),
    ("w0 = 0x8000\nw0 = (s16)w0\nexit", 0xFFFF8000),
    ("r0 = 0\nr1 = -1\nif r1 s< 0 goto +1\nexit\nr0 = 1\nexit", 1),         # signed compare
    ("r0 = 0\nr1 = -1\nif r1 < 0 goto +1\nexit\nr0 = 1\nexit", 0),          # unsigned compare
    ("r0 = 0\nr1 = 0x100000000 ll\nif w1 == 0 goto +1\nexit\nr0 = 1\nexit", 1),  # jmp32 low half
    ("r0 = 0\nr1 = 0xffffffff ll\nif r1 == -1 goto +1\nr0 = 1\nexit", 1),   # imm sign-extended for JMP
])
def test_kernel_semantics(text, expected):
    assert both(text) == expected


def test_atomics_and_sign_extending_loads():
    text = """
    r1 = 5
    *(u64 *)(r10 - 8) = r1
    r2 = 3
    r2 = atomic_fetch_add((u64 *)(r10 - 8), r2)   # r2 = 5, mem = 8
    r0 = 8
    r3 = 100
    r0 = cmpxchg_64(r10 - 8, r0, r3)              # match: mem = 100, r0 = 8
    w4 = 7
    lock *(u32 *)(r10 - 8) ^= w4                  # low half: 100 ^ 7
    r5 = *(u64 *)(r10 - 8)
    *(u8 *)(r10 - 9) = 0x80
    r6 = *(s8 *)(r10 - 9)
    r0 = r5
    r0 += r2
    r0 += r6
    exit
    """
    assert both(text) == ((100 ^ 7) + 5 - 128) & M64


# ------------------------------------------------------------------ memory model
def test_mem_argument_and_bounds_message():
    mem = bytes(range(8))
    assert both("r0 = *(u32 *)(r1 + 4)\nexit", mem) == 0x07060504
    assert both("r0 = r2\nexit", mem) == 8
    for fast in (True, False):
        with pytest.raises(BpfExecuteError) as info:
            run(assemble("r0 = 1\nr0 = *(u64 *)(r1 + 8)\nexit"), mem, fast=fast)
        assert str(info.value) == "insn 1: 8-byte read at r1+8 is outside mem (8 bytes)"
        assert info.value.index == 1


def test_stack_is_512_bytes_below_r10():
    assert both("r1 = 9\n*(u64 *)(r10 - 512) = r1\nr0 = *(u64 *)(r10 - 512)\nexit") == 9
    with pytest.raises(BpfExecuteError, match=r"insn 0: 1-byte write at r10-513 is outside any mapped"):
        run(assemble("*(u8 *)(r10 - 513) = 1\nexit"))
    with pytest.raises(BpfExecuteError, match=r"4-byte write at r10\+0 is outside any mapped"):
        run(assemble("*(u32 *)(r10 + 0) = 1\nexit"))


def test_stores_reach_the_caller_copy_of_mem():
    result = run_detailed(assemble("*(u16 *)(r1 + 2) = 0x4142\nr0 = 0\nexit"), b"\0" * 4)
    assert result.mem == b"\0\0\x42\x41"


def test_counts_by_class_and_touches():
    res = run_detailed(assemble("r2 = *(u8 *)(r1 + 0)\n*(u64 *)(r10 - 8) = r2\nr0 = *(u64 *)(r10 - 8)\nexit"), b"x")
    assert res.insns == 4
    assert dict(res.by_class) == {"ldx": 2, "stx": 1, "jmp": 1}
    assert dict(res.touches) == {("mem", "read"): 1, ("stack", "write"): 1, ("stack", "read"): 1}


# ------------------------------------------------------------------ budget and verify
def test_budget_stops_an_endless_loop_at_the_exact_instruction():
    p = assemble("r0 = 0\nloop:\nr0 += 1\ngoto loop\nexit")
    # insn 0 once, then insns 1, 2 alternate: the 101st instruction to run is insn 2.
    for fast in (True, False):
        with pytest.raises(BpfExecuteError, match="budget of 100 exhausted") as info:
            run(p, max_insns=100, fast=fast)
        assert info.value.index == 2
        with pytest.raises(BpfExecuteError) as info:
            run(p, max_insns=101, fast=fast)
        assert info.value.index == 1


@pytest.mark.parametrize("text, message", [
    ("r10 = 1\nexit", "frame pointer is read only"),
    ("r0 = 1", "last insn is not an exit or jmp"),
    ("goto +5\nexit", "jump out of range from insn 0 to 6"),
    ("goto +1\nr0 = 1 ll\nexit", "into the middle of ld_imm64"),
    ("r0 |= r10\nexit", "R10 bitwise operator |= on pointer prohibited"),
    ("w0 += w10\nexit", "R10 32-bit pointer arithmetic prohibited"),
    ("r1 = map_fd(3) ll\nexit", "must be resolved by the loader"),
    ("call 99\nexit", "invalid func unknown#99"),
    ("call kfunc(4242)\nexit", "kernel btf_id 4242 is not a function"),
])
def test_verify_refusals(text, message):
    with pytest.raises(BpfVerifyError, match=message):
        run(assemble(text))


# ------------------------------------------------------------------ calls
def test_helpers_kfuncs_and_poisoned_argument_registers():
    seen = []

    def helper(ctx, r1, r2, r3, r4, r5):
        seen.append((r1, r2, ctx.index))
        return r1 + r2

    def kfunc(ctx, r1, r2, r3, r4, r5):
        return ctx.read(r1, 4) * 2

    env = Env(helpers={1: helper}, kfuncs={77: kfunc})
    text = "r1 = 2\nr2 = 40\ncall 1\nr6 = r0\nr1 = r10\nr1 += -4\n*(u32 *)(r10 - 4) = 21\ncall kfunc(77)\nr0 += r6\nexit"
    assert both(text, env=env) == 84
    assert seen[0] == (2, 40, 2)
    with pytest.raises(BpfExecuteError) as info:
        run(assemble("r1 = r10\ncall 1\nr0 = *(u64 *)(r1 - 8)\nexit"), env=env)
    assert "r1 holds poison left by the call at insn 1" in str(info.value)
    assert both("r1 = 1\ncall 1\nr0 = r1\nexit", env=env) == POISON_BASE + 1


def test_helper_that_raises_becomes_an_execute_error():
    env = Env(helpers={3: lambda ctx, *a: 1 // 0})
    with pytest.raises(BpfExecuteError, match="helper 3 failed: ZeroDivisionError"):
        run(assemble("call 3\nexit"), env=env)


def test_local_calls_have_their_own_stack_and_restore_r6_to_r10():
    text = """
    r6 = 6
    *(u64 *)(r10 - 8) = r6
    call f
    r0 += r6
    r1 = *(u64 *)(r10 - 8)
    r0 += r1
    exit
f:
    r6 = 100
    *(u64 *)(r10 - 8) = r6
    r0 = *(u64 *)(r10 - 8)
    exit
    """
    res = run_detailed(assemble(text))
    assert res.r0 == 100 + 6 + 6 and res.calls == {"local": 1} and not res.fast


def test_call_depth_limit_is_max_call_frames():
    def chain(depth):
        lines = []
        for i in range(depth):
            lines += [f"f{i}:", f"call f{i + 1}", "exit"]
        lines += [f"f{depth}:", "r0 = 7", "exit"]
        return "\n".join(lines)

    assert run(assemble(chain(op.MAX_CALL_FRAMES - 1))) == 7     # 8 frames in all
    with pytest.raises(BpfExecuteError, match=r"too deep: more than MAX_CALL_FRAMES \(8\)"):
        run(assemble(chain(op.MAX_CALL_FRAMES)))


def test_endless_recursion_is_a_bpf_error_not_a_recursion_error():
    with pytest.raises(BpfExecuteError, match="too deep"):
        run(assemble("f:\ncall f\nexit"))


# ------------------------------------------------------------------ properties
def _helper_env():
    return Env(helpers={1: lambda ctx, r1, r2, r3, r4, r5: (r1 ^ r2) + 1,
                        2: lambda ctx, r1, r2, r3, r4, r5: r3 * 3})


def _outcome(program, mem, fast, budget):
    try:
        r = run_detailed(program, mem, max_insns=budget, env=_helper_env(), fast=fast)
        return ("ok", r.r0, r.insns, dict(r.by_class), dict(r.touches), dict(r.calls), r.mem)
    except BpfError as exc:
        return ("error", type(exc).__name__, str(exc))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runnable_program(), st.binary(min_size=0, max_size=64), st.integers(1, 3000))
def test_fast_path_equals_reference_interpreter(program, mem, budget):
    assert compile_program(program) is not None
    assert _outcome(program, mem, True, budget) == _outcome(program, mem, False, budget)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=30).map(b"".join),
                 mostly_decodable_program_bytes, mostly_decodable_program_bytes),
       st.binary(max_size=16))
def test_random_programs_give_a_result_or_a_bpf_error(data, mem):
    """Random bytes (plain, or real opcodes with random fields, so that about a fifth of them
    run to a result): a decode error naming an instruction inside the data, or a program that
    re-encodes to the same bytes and then runs to the same outcome (result, counts, memory, or
    the same error at the same instruction) on the fast path and the reference interpreter."""
    try:
        program = Program.decode(data)
    except BpfError as exc:
        assert exc.index is None or 0 <= exc.index < len(data) // 8, (exc.index, len(data))
        return
    assert program.encode() == data
    fast, ref = _outcome(program, mem, True, 500), _outcome(program, mem, False, 500)
    assert fast == ref
    if fast[0] == "ok":
        assert 0 <= fast[1] < 2**64 and 1 <= fast[2] <= 500 and len(fast[6]) == len(mem)
        return
    with pytest.raises(BpfError) as info:
        run(program, mem, max_insns=500, env=_helper_env())
    assert isinstance(info.value, (BpfVerifyError, BpfExecuteError)), type(info.value)
    slots = len(data) // 8            # .index counts slots, as the kernel's "insn N" does
    assert info.value.index is None or 0 <= info.value.index < slots, (info.value.index, slots)


def test_bad_arguments_are_bpf_errors():
    p = assemble("exit")
    with pytest.raises(BpfError):
        run(p, "text")  # type: ignore[arg-type]
    with pytest.raises(BpfError):
        run(p, max_insns=-1)
    with pytest.raises(BpfError):
        run([B.BPF_EXIT_INSN()])  # type: ignore[arg-type]
    with pytest.raises(BpfError, match="no instructions"):
        run(Program([]))


@pytest.mark.parametrize("fast", [True, False])
def test_atomic_fetch_into_r0_returns_the_old_value(fast):
    """Found by the lane cross-check: a fetch whose src is R0 must leave the old value in R0."""
    text = "*(u64 *)(r10 - 8) = 5\nr0 = 7\nr0 = atomic_fetch_add((u64 *)(r10 - 8), r0)\nr1 = *(u64 *)(r10 - 8)\nr0 <<= 8\nr0 |= r1\nexit"
    assert run(assemble(text), fast=fast) == (5 << 8) | 12
    xchg = "*(u32 *)(r10 - 4) = 9\nw0 = 3\nw0 = xchg32_32(r10 - 4, w0)\nexit"
    assert run(assemble(xchg), fast=fast) == 9
