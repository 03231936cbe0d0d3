"""Every ALU and JMP operation, 32- and 64-bit, register and immediate forms, on operands biased
to the edges (0, +-1, INT32/INT64 limits, U32_MAX, 2^31, 2^32 +- 1, sign bits, shift counts),
checked against an independent model of RFC 9669 written here, on all three engines: the
reference interpreter, the fast path, and the numpy lane machine.

The model below restates RFC 9669 (and the kernel interpreter's corner cases, the ones the BPF
conformance suite pins) from the text, with its own opcode numbers; it does not import
xdplab.bpf.semantics, so a wrong rule there cannot make its own expectation.

Sources: RFC 9669 §3 (encoding: class 0x04 ALU, 0x07 ALU64, 0x05 JMP, 0x06 JMP32; source bit
0x08), §4.1 (arithmetic: 32-bit results zero-extended; imm sign-extended to 64 bits for ALU64
and JMP; division by zero -> 0, modulo by zero -> dst unchanged (its low 32 bits for ALU32);
SDIV/SMOD with offset 1, truncating toward zero; shift counts masked to 63 / 31; MOVSX with
offset 8/16/32), §4.2 (byte swaps: BPF_END with TO_LE 0x00 / TO_BE 0x08, ALU64 = bswap),
§4.3 (jumps: JMP32 compares the low 32 bits).  In the RFC era's kernel the same rules for the
v1-v3 operations: kernel/bpf/core.c@6.1.192:1728 ___bpf_prog_run (ALU32 results are `(u32)`,
ALU_ARSH_X :1826, MOD/DIV :1838-1869, END :1870) and the division-by-zero guards the verifier
patches in (kernel/bpf/verifier.c@6.1.192:14257-14279, chk_and_div / chk_and_mod).  SDIV/SMOD,
MOVSX and bswap are the v4 ISA (RFC 9669; Linux 6.6+), which xdplab also runs.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdplab.bpf import Insn, Program, run, run_detailed
from xdplab.bpf.lanes import LaneRegion, LaneSpace, run_lanes
from xdplab.bpf.machine import MEM_BASE
from strategies import EDGE_S32, EDGE_U64, edge_s32, edge_u64

M32, M64 = (1 << 32) - 1, (1 << 64) - 1

# ---- opcode numbers, from RFC 9669 §3-§4 (written out, not imported)
ALU, JMP, JMP32, ALU64 = 0x04, 0x05, 0x06, 0x07
K, X = 0x00, 0x08
LD_IMM64, LDX_DW, EXIT, MOV64_K = 0x18, 0x79, 0x95, 0xB7
ALU_OPS = {"add": 0x00, "sub": 0x10, "mul": 0x20, "div": 0x30, "or": 0x40, "and": 0x50, "lsh": 0x60,
           "rsh": 0x70, "neg": 0x80, "mod": 0x90, "xor": 0xA0, "mov": 0xB0, "arsh": 0xC0}
END = 0xD0
JMP_OPS = {"jeq": 0x10, "jgt": 0x20, "jge": 0x30, "jset": 0x40, "jne": 0x50, "jsgt": 0x60, "jsge": 0x70,
           "jlt": 0xA0, "jle": 0xB0, "jslt": 0xC0, "jsle": 0xD0}


# ---------------------------------------------------------------------------------- the model
def sx(value: int, bits: int) -> int:
    """The low ``bits`` of value as a signed integer."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def tdiv(a: int, b: int) -> int:
    """Signed division truncating toward zero (RFC 9669 §4.1 SDIV)."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def tmod(a: int, b: int) -> int:
    """Signed remainder with the dividend's sign (RFC 9669 §4.1 SMOD: a - b * trunc(a / b))."""
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def model_alu(name: str, is64: bool, off: int, dst: int, src: int) -> int:
    """dst (u64 register) op src (u64 register, or the immediate already widened as the RFC says)."""
    bits = 64 if is64 else 32
    mask = (1 << bits) - 1
    a, b = dst & mask, src & mask
    if name == "add":
        r = a + b
    elif name == "sub":
        r = a - b
    elif name == "mul":
        r = a * b
    elif name == "div":
        if off == 0:
            r = a // b if b else 0
        else:
            r = tdiv(sx(a, bits), sx(b, bits)) if b else 0
    elif name == "mod":
        if off == 0:
            r = a % b if b else a
        else:
            r = tmod(sx(a, bits), sx(b, bits)) if b else a
    elif name == "or":
        r = a | b
    elif name == "and":
        r = a & b
    elif name == "xor":
        r = a ^ b
    elif name == "lsh":
        r = a << (b & (bits - 1))
    elif name == "rsh":
        r = a >> (b & (bits - 1))
    elif name == "arsh":
        r = sx(a, bits) >> (b & (bits - 1))
    elif name == "neg":
        r = -a
    elif name == "mov":
        r = b if off == 0 else sx(b, off)
    else:
        raise AssertionError(name)
    return r & mask          # ALU32: the 32-bit result, zero-extended into the 64-bit register


def swap_bytes(value: int, bits: int) -> int:
    return int.from_bytes((value & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")


def model_end(cls: int, source: int, bits: int, dst: int) -> int:
    """RFC 9669 §4.2 on a little-endian machine: TO_LE truncates to the width (zero-extends),
    TO_BE swaps, ALU64 (bswap) always swaps."""
    if cls == ALU and source == K:
        return dst & ((1 << bits) - 1)
    return swap_bytes(dst, bits)


def model_jmp(name: str, is64: bool, dst: int, src: int) -> bool:
    bits = 64 if is64 else 32
    a, b = dst & ((1 << bits) - 1), src & ((1 << bits) - 1)
    sa, sb = sx(a, bits), sx(b, bits)
    return {"jeq": a == b, "jne": a != b, "jgt": a > b, "jge": a >= b, "jlt": a < b, "jle": a <= b,
            "jset": bool(a & b), "jsgt": sa > sb, "jsge": sa >= sb, "jslt": sa < sb, "jsle": sa <= sb}[name]


# ---------------------------------------------------------------------------------- the cases
# (name, off) pairs for each class; MOVSX (mov with off 8/16/32) and SDIV/SMOD (off 1).
ALU64_CASES = [(n, 0) for n in ALU_OPS] + [("div", 1), ("mod", 1), ("mov", 8), ("mov", 16), ("mov", 32)]
ALU32_CASES = [(n, 0) for n in ALU_OPS] + [("div", 1), ("mod", 1), ("mov", 8), ("mov", 16)]
ALU_CASES = [(True, n, o) for n, o in ALU64_CASES] + [(False, n, o) for n, o in ALU32_CASES]
ALU_IMM_CASES = [c for c in ALU_CASES if c[1] != "neg" and not (c[1] == "mov" and c[2])]
END_CASES = [(cls, src, bits) for cls, src in ((ALU, K), (ALU, X), (ALU64, K)) for bits in (16, 32, 64)]


def ld64(reg: int, value: int) -> Insn:
    return Insn(LD_IMM64, reg, 0, 0, value & M64)


def alu_insn(is64: bool, name: str, off: int, form: int, imm: int = 0) -> Insn:
    """dst r0, src r1.  NEG takes no source (imm 0); MOVSX exists only in the register form."""
    if name == "neg":
        return Insn((ALU64 if is64 else ALU) | ALU_OPS[name], 0, 0, 0, 0)
    code = (ALU64 if is64 else ALU) | ALU_OPS[name] | form
    return Insn(code, 0, 1 if form == X else 0, off, imm if form == K else 0)


def forms(name: str, off: int) -> tuple[int, ...]:
    return (X,) if name == "mov" and off else (K, X)


def widened_imm(is64: bool, imm: int) -> int:
    """The immediate as the operation sees it: sign-extended to 64 bits (ALU64, JMP), its 32 bits
    (ALU32, JMP32) -- RFC 9669 §4.1/§4.3."""
    return sx(imm, 32) & (M64 if is64 else M32)


def alu_program_imm64(is64, name, off, form, a, b, imm) -> Program:
    """r0 = a ll; r1 = b ll; r0 op= r1 (or imm); exit."""
    return Program([ld64(0, a), ld64(1, b), alu_insn(is64, name, off, form, imm), Insn(JMP | EXIT)])


def jmp_program_imm64(is64, name, form, a, b, imm, dst=2, src=3) -> Program:
    """r2 = a ll; r3 = b ll; r0 = 0; if r2 op r3 (or imm) goto +1; exit; r0 = 1; exit."""
    code = (JMP if is64 else JMP32) | JMP_OPS[name] | form
    return Program([ld64(dst, a), ld64(src, b), Insn(MOV64_K, 0, 0, 0, 0),
                    Insn(code, dst, src if form == X else 0, 1, imm if form == K else 0),
                    Insn(JMP | EXIT), Insn(MOV64_K, 0, 0, 0, 1), Insn(JMP | EXIT)])


def on_scalar_engines(program: Program) -> tuple[int, int]:
    """(reference interpreter r0, fast path r0); asserts the fast path really ran."""
    fast = run_detailed(program, fast=True)
    assert fast.fast, "the fast path did not apply"
    return run(program, fast=False), fast.r0


def on_lanes(program: Program, mems: list[bytes]) -> list[int]:
    """r0 of each lane; lane i runs with r1 = MEM_BASE over its own copy of mems[i]."""
    n, size = len(mems), len(mems[0])
    space = LaneSpace(n)
    space.add(LaneRegion("mem", "mem", MEM_BASE, size, np.frombuffer(b"".join(mems), np.uint8)
                         .reshape(n, size).copy()))
    res = run_lanes(program, space, np.full(n, MEM_BASE, np.uint64), np.full(n, size, np.uint64),
                    max_insns=100, stack_bytes=512)
    assert all(e is None for e in res.errors), [e for e in res.errors if e][:3]
    return [int(v) for v in res.r0]


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------- hypothesis: ld_imm64 operands
@SETTINGS
@given(case=st.sampled_from(ALU_CASES), form=st.sampled_from([K, X]), a=edge_u64, b=edge_u64, imm=edge_s32)
def test_alu_edges_on_every_engine(case, form, a, b, imm):
    is64, name, off = case
    form = form if form in forms(name, off) else X
    program = alu_program_imm64(is64, name, off, form, a, b, imm)
    src = b if form == X else widened_imm(is64, imm)
    want = model_alu(name, is64, off, a, src)
    ref, fast = on_scalar_engines(program)
    lane = on_lanes(program, [b"\0" * 8])[0]
    assert (ref, fast, lane) == (want, want, want), (hex(a), hex(b), imm)


@pytest.mark.parametrize("is64, name, off", ALU_CASES, ids=[f"{'alu64' if c[0] else 'alu32'}-{c[1]}-{c[2]}"
                                                             for c in ALU_CASES])
@SETTINGS
@given(a=edge_u64, b=edge_u64, imm=edge_s32)
def test_each_alu_op_on_edges(is64, name, off, a, b, imm):
    """Per operation, so every op (and both forms) gets its own share of edge examples."""
    for form in forms(name, off):
        program = alu_program_imm64(is64, name, off, form, a, b, imm)
        want = model_alu(name, is64, off, a, b if form == X else widened_imm(is64, imm))
        assert on_scalar_engines(program) == (want, want), (form, hex(a), hex(b), imm)


@pytest.mark.parametrize("cls, source, bits", END_CASES)
@SETTINGS
@given(a=edge_u64)
def test_byte_swaps_on_edges(cls, source, bits, a):
    program = Program([ld64(0, a), Insn(cls | END | source, 0, 0, 0, bits), Insn(JMP | EXIT)])
    want = model_end(cls, source, bits, a)
    assert on_scalar_engines(program) == (want, want)
    assert on_lanes(program, [b"\0" * 8]) == [want]


@pytest.mark.parametrize("name", list(JMP_OPS))
@pytest.mark.parametrize("is64", [True, False], ids=["jmp", "jmp32"])
@SETTINGS
@given(a=edge_u64, b=edge_u64, imm=edge_s32)
def test_each_jump_on_edges(name, is64, a, b, imm):
    for form in (K, X):
        program = jmp_program_imm64(is64, name, form, a, b, imm)
        want = int(model_jmp(name, is64, a, b if form == X else widened_imm(is64, imm)))
        assert on_scalar_engines(program) == (want, want), (form, hex(a), hex(b), imm)
    lane = on_lanes(jmp_program_imm64(is64, name, X, a, b, imm), [b"\0" * 8])[0]
    assert lane == int(model_jmp(name, is64, a, b)), (hex(a), hex(b))


# ------------------------------------------------- every pair of edge values, all engines at once
def pair_mems(values_a, values_b) -> tuple[list[bytes], list[tuple[int, int]]]:
    pairs = [(a, b) for a in values_a for b in values_b]
    return [a.to_bytes(8, "little") + b.to_bytes(8, "little") for a, b in pairs], pairs


def from_mem(tail: list[Insn]) -> Program:
    """r0 = *(u64 *)(r1 + 0); r2 = *(u64 *)(r1 + 8); then ``tail`` (operands with high bits)."""
    return Program([Insn(LDX_DW, 0, 1, 0, 0), Insn(LDX_DW, 2, 1, 8, 0)] + tail)


def scalar_all(program: Program, mems: list[bytes]) -> tuple[list[int], list[int]]:
    ref = [run(program, m, fast=False) for m in mems]
    fast = []
    for m in mems:
        r = run_detailed(program, m, fast=True)
        assert r.fast
        fast.append(r.r0)
    return ref, fast


@pytest.mark.parametrize("is64, name, off", ALU_CASES, ids=[f"{'alu64' if c[0] else 'alu32'}-{c[1]}-{c[2]}"
                                                             for c in ALU_CASES])
def test_every_edge_pair_register_form(is64, name, off):
    """All |EDGE_U64|^2 (dst, src) pairs: lanes in one batch; reference and fast path on a
    third of them (every pair would be slow on the scalar machines, and hypothesis above covers
    them per example)."""
    mems, pairs = pair_mems(EDGE_U64, EDGE_U64)
    code = (ALU64 if is64 else ALU) | ALU_OPS[name] | (0 if name == "neg" else X)
    program = from_mem([Insn(code, 0, 0 if name == "neg" else 2, off, 0), Insn(JMP | EXIT)])
    want = [model_alu(name, is64, off, a, b) for a, b in pairs]
    assert on_lanes(program, mems) == want
    ref, fast = scalar_all(program, mems[::3])
    assert ref == want[::3] and fast == want[::3]


@pytest.mark.parametrize("is64, name, off", ALU_IMM_CASES,
                         ids=[f"{'alu64' if c[0] else 'alu32'}-{c[1]}-{c[2]}" for c in ALU_IMM_CASES])
def test_every_edge_immediate(is64, name, off):
    """Each edge immediate with every edge dst: lanes, and the fast path and reference on all."""
    mems, pairs = pair_mems(EDGE_U64, [0])
    for imm in EDGE_S32:
        code = (ALU64 if is64 else ALU) | ALU_OPS[name]
        program = from_mem([Insn(code, 0, 0, off, imm), Insn(JMP | EXIT)])
        want = [model_alu(name, is64, off, a, widened_imm(is64, imm)) for a, _ in pairs]
        assert on_lanes(program, mems) == want, imm
        ref, fast = scalar_all(program, mems)
        assert ref == want and fast == want, imm


@pytest.mark.parametrize("name", list(JMP_OPS))
@pytest.mark.parametrize("is64", [True, False], ids=["jmp", "jmp32"])
def test_every_edge_pair_jumps(name, is64):
    mems, pairs = pair_mems(EDGE_U64, EDGE_U64)
    code = (JMP if is64 else JMP32) | JMP_OPS[name]
    tail = [Insn(MOV64_K, 3, 0, 0, 0)]     # r3: taken?  (r0 keeps dst: the jump must not change it)
    program_x = from_mem(tail + [Insn(code | X, 0, 2, 1, 0), Insn(JMP | EXIT), Insn(MOV64_K, 0, 0, 0, 1),
                                 Insn(JMP | EXIT)])
    taken = [model_jmp(name, is64, a, b) for a, b in pairs]
    want = [1 if t else a for t, (a, _) in zip(taken, pairs)]
    assert on_lanes(program_x, mems) == want
    ref, fast = scalar_all(program_x, mems[::3])
    assert ref == want[::3] and fast == want[::3]
    imm_mems, imm_pairs = pair_mems(EDGE_U64, [0])
    for imm in EDGE_S32:
        program_k = from_mem(tail + [Insn(code | K, 0, 0, 1, imm), Insn(JMP | EXIT),
                                     Insn(MOV64_K, 0, 0, 0, 1), Insn(JMP | EXIT)])
        want_k = [1 if model_jmp(name, is64, a, widened_imm(is64, imm)) else a for a, _ in imm_pairs]
        assert on_lanes(program_k, imm_mems) == want_k, imm
        ref, fast = scalar_all(program_k, imm_mems)
        assert ref == want_k and fast == want_k, imm


# ------------------------------------------------------------- the survivor named in issue 11
@pytest.mark.parametrize("fast", [True, False])
def test_alu32_and_masks_the_high_half(fast):
    """r0 = -1 ll; r1 = -1 ll; w0 &= w1 must give 0xffffffff (a 32-bit result, zero-extended)."""
    for code in (ALU | 0x50 | X, ALU | 0x50 | K):
        program = Program([ld64(0, M64), ld64(1, M64), Insn(code, 0, 1 if code & X else 0, 0,
                                                            0 if code & X else -1), Insn(JMP | EXIT)])
        assert run(program, fast=fast) == 0xFFFF_FFFF
        assert on_lanes(program, [b"\0" * 8]) == [0xFFFF_FFFF]
