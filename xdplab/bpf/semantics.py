"""Arithmetic, comparison and byte-order semantics of eBPF, as pure functions.

Both the reference interpreter and the fast path call these (the fast path inlines the
simple cases), so one definition of each corner case serves both.  Sources: RFC 9669
sections 4.1-4.3, and the kernel interpreter linux:kernel/bpf/core.c ___bpf_prog_run
(ALU_DIV_X etc.), whose corner cases are:

- unsigned division by zero gives 0; modulo by zero leaves dst unchanged (for 32-bit
  operations: its low 32 bits, zero-extended);
- signed division (off = 1) of INT_MIN by -1 gives INT_MIN; signed modulo gives 0; the
  remainder takes the sign of the dividend (C truncation);
- shift counts are masked to 63 (64-bit) or 31 (32-bit);
- every 32-bit (BPF_ALU) result is zero-extended into the 64-bit register;
- an immediate is sign-extended to 64 bits for BPF_ALU64 and BPF_JMP, and used as its low
  32 bits for BPF_ALU and BPF_JMP32.
"""
from __future__ import annotations

from types import MappingProxyType

import operator

from . import opcodes as op

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
SIGN64 = 1 << 63
SIGN32 = 1 << 31


def s64(value: int) -> int:
    """Interpret a u64 as signed."""
    return value - (1 << 64) if value & SIGN64 else value


def s32(value: int) -> int:
    """Interpret the low 32 bits as signed."""
    value &= M32
    return value - (1 << 32) if value & SIGN32 else value


def sign_extend(value: int, bits: int) -> int:
    """Sign-extend the low ``bits`` of value to a u64."""
    mask = (1 << bits) - 1
    value &= mask
    if value >> (bits - 1):
        value |= M64 ^ mask
    return value


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def alu64(operation: int, off: int, dst: int, src: int) -> int:
    """Result of a BPF_ALU64 operation on u64 operands (src already sign-extended if K)."""
    if operation == op.BPF_ADD:
        return (dst + src) & M64
    if operation == op.BPF_SUB:
        return (dst - src) & M64
    if operation == op.BPF_MUL:
        return (dst * src) & M64
    if operation == op.BPF_DIV:
        if off == 1:
            if src == 0:
                return 0
            return _trunc_div(s64(dst), s64(src)) & M64
        return dst // src if src else 0
    if operation == op.BPF_MOD:
        if off == 1:
            if src == 0:
                return dst
            a, b = s64(dst), s64(src)
            return (a - _trunc_div(a, b) * b) & M64
        return dst % src if src else dst
    if operation == op.BPF_OR:
        return dst | src
    if operation == op.BPF_AND:
        return dst & src
    if operation == op.BPF_XOR:
        return dst ^ src
    if operation == op.BPF_LSH:
        return (dst << (src & 63)) & M64
    if operation == op.BPF_RSH:
        return dst >> (src & 63)
    if operation == op.BPF_ARSH:
        return (s64(dst) >> (src & 63)) & M64
    if operation == op.BPF_MOV:
        return sign_extend(src, off) if off else src
    if operation == op.BPF_NEG:
        return (-dst) & M64
    raise ValueError(f"no ALU64 operation {operation:#x}")  # pragma: no cover


def alu32(operation: int, off: int, dst: int, src: int) -> int:
    """Result of a BPF_ALU operation: computed on the low 32 bits, zero-extended."""
    a, b = dst & M32, src & M32
    if operation == op.BPF_ADD:
        return (a + b) & M32
    if operation == op.BPF_SUB:
        return (a - b) & M32
    if operation == op.BPF_MUL:
        return (a * b) & M32
    if operation == op.BPF_DIV:
        if off == 1:
            if b == 0:
                return 0
            return _trunc_div(s32(a), s32(b)) & M32
        return a // b if b else 0
    if operation == op.BPF_MOD:
        if off == 1:
            if b == 0:
                return a
            x, y = s32(a), s32(b)
            return (x - _trunc_div(x, y) * y) & M32
        return a % b if b else a
    if operation == op.BPF_OR:
        return a | b
    if operation == op.BPF_AND:
        return a & b
    if operation == op.BPF_XOR:
        return a ^ b
    if operation == op.BPF_LSH:
        return (a << (b & 31)) & M32
    if operation == op.BPF_RSH:
        return a >> (b & 31)
    if operation == op.BPF_ARSH:
        return (s32(a) >> (b & 31)) & M32
    if operation == op.BPF_MOV:
        return sign_extend(src, off) & M32 if off else b
    if operation == op.BPF_NEG:
        return (-a) & M32
    raise ValueError(f"no ALU operation {operation:#x}")  # pragma: no cover


def byteswap(value: int, bits: int) -> int:
    """Reverse the byte order of the low ``bits`` of value."""
    nbytes = bits // 8
    return int.from_bytes((value & ((1 << bits) - 1)).to_bytes(nbytes, "little"), "big")


def endian(cls: int, source: int, bits: int, value: int) -> int:
    """BPF_END on a little-endian machine (the RFC's targets, x86-64 and arm64).

    ALU ``le``: truncate to ``bits`` (no swap on LE); ALU ``be``: swap then truncate;
    ALU64 ``bswap``: swap unconditionally.
    """
    if cls == op.BPF_ALU and source == op.BPF_TO_LE:
        return value & ((1 << bits) - 1)
    return byteswap(value, bits)


# Conditional jumps as comparisons on (unsigned, signed) operand pairs.  The operators work on
# Python ints and on numpy arrays alike, so the lane machine uses the same table.
UNSIGNED_COMPARE = MappingProxyType({
    op.BPF_JEQ: operator.eq, op.BPF_JNE: operator.ne, op.BPF_JGT: operator.gt, op.BPF_JGE: operator.ge,
    op.BPF_JLT: operator.lt, op.BPF_JLE: operator.le, op.BPF_JSET: lambda a, b: (a & b) != 0,
})
SIGNED_COMPARE = MappingProxyType({
    op.BPF_JSGT: operator.gt, op.BPF_JSGE: operator.ge, op.BPF_JSLT: operator.lt, op.BPF_JSLE: operator.le,
})


def jump_taken(operation: int, is32: bool, dst: int, src: int) -> bool:
    """Whether a conditional jump is taken; src is already the u64 (or u32) operand."""
    if is32:
        a, b = dst & M32, src & M32
    else:
        a, b = dst, src
    if operation in SIGNED_COMPARE:
        sa, sb = (s32(a), s32(b)) if is32 else (s64(a), s64(b))
        return bool(SIGNED_COMPARE[operation](sa, sb))
    if operation in UNSIGNED_COMPARE:
        return bool(UNSIGNED_COMPARE[operation](a, b))
    raise ValueError(f"no jump operation {operation:#x}")  # pragma: no cover


def atomic_result(imm: int, old: int, src: int, width_mask: int) -> int:
    """New memory value of an atomic ADD/AND/OR/XOR/XCHG (not CMPXCHG)."""
    base = imm & ~op.BPF_FETCH
    if imm == op.BPF_XCHG:
        return src & width_mask
    if base == op.BPF_ADD:
        return (old + src) & width_mask
    if base == op.BPF_AND:
        return old & src & width_mask
    if base == op.BPF_OR:
        return (old | src) & width_mask
    if base == op.BPF_XOR:
        return (old ^ src) & width_mask
    raise ValueError(f"no atomic operation {imm:#x}")  # pragma: no cover
