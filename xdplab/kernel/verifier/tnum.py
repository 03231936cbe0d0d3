"""Tristate numbers: the verifier's bit-level knowledge of a 64-bit value.

A ``Tnum(value, mask)`` says: bits set in ``mask`` are unknown; the other bits equal the
bits of ``value`` (``value & mask == 0``).  Every operation follows kernel/bpf/tnum.c@6.1.192
(Edward Cree's "tristate numbers", also described in Vishwanathan et al., CGO 2022): the
same definitions, written again in Python over unsigned 64-bit ints.
"""
from __future__ import annotations

from typing import NamedTuple

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1


def s64(x: int) -> int:
    """(s64)x for an unsigned 64-bit int."""
    x &= U64
    return x - (1 << 64) if x >> 63 else x


def s32(x: int) -> int:
    """(s32)x: the low 32 bits as a signed int."""
    x &= U32
    return x - (1 << 32) if x >> 31 else x


class Tnum(NamedTuple):
    """``struct tnum`` (include/linux/tnum.h@6.1.192)."""

    value: int
    mask: int

    def is_const(self) -> bool:
        """tnum_is_const: no unknown bits."""
        return not self.mask

    def is_unknown(self) -> bool:
        """tnum_is_unknown: every bit unknown."""
        return self.mask == U64

    def equals_const(self, b: int) -> bool:
        """tnum_equals_const."""
        return not self.mask and self.value == (b & U64)

    def __str__(self) -> str:
        # tnum_strn (tnum.c@6.1.192): "(%#llx; %#llx)"; the kernel's vsnprintf prints 0 as 0x0.
        return f"({self.value:#x}; {self.mask:#x})"


UNKNOWN = Tnum(0, U64)   # tnum_unknown


def const(value: int) -> Tnum:
    """tnum_const."""
    return Tnum(value & U64, 0)


def trange(lo: int, hi: int) -> Tnum:
    """tnum_range: the smallest tnum holding every value in [lo, hi] (unsigned)."""
    chi = (lo ^ hi) & U64
    bits = chi.bit_length()           # fls64
    if bits > 63:
        return UNKNOWN
    delta = (1 << bits) - 1
    return Tnum(lo & ~delta & U64, delta)


def lshift(a: Tnum, shift: int) -> Tnum:
    return Tnum((a.value << shift) & U64, (a.mask << shift) & U64)


def rshift(a: Tnum, shift: int) -> Tnum:
    return Tnum(a.value >> shift, a.mask >> shift)


def arshift(a: Tnum, min_shift: int, insn_bitness: int) -> Tnum:
    """tnum_arshift: sign bits shift in; 32-bit form works on the subregister."""
    if insn_bitness == 32:
        return Tnum((s32(a.value) >> min_shift) & U32, (s32(a.mask) >> min_shift) & U32)
    return Tnum((s64(a.value) >> min_shift) & U64, (s64(a.mask) >> min_shift) & U64)


def add(a: Tnum, b: Tnum) -> Tnum:
    sm = (a.mask + b.mask) & U64
    sv = (a.value + b.value) & U64
    sigma = (sm + sv) & U64
    chi = sigma ^ sv
    mu = chi | a.mask | b.mask
    return Tnum(sv & ~mu & U64, mu)


def sub(a: Tnum, b: Tnum) -> Tnum:
    dv = (a.value - b.value) & U64
    alpha = (dv + a.mask) & U64
    beta = (dv - b.mask) & U64
    chi = alpha ^ beta
    mu = chi | a.mask | b.mask
    return Tnum(dv & ~mu & U64, mu)


def and_(a: Tnum, b: Tnum) -> Tnum:
    alpha = a.value | a.mask
    beta = b.value | b.mask
    v = a.value & b.value
    return Tnum(v, alpha & beta & ~v & U64)


def or_(a: Tnum, b: Tnum) -> Tnum:
    v = a.value | b.value
    mu = a.mask | b.mask
    return Tnum(v, mu & ~v & U64)


def xor(a: Tnum, b: Tnum) -> Tnum:
    v = a.value ^ b.value
    mu = a.mask | b.mask
    return Tnum(v & ~mu & U64, mu)


def mul(a: Tnum, b: Tnum) -> Tnum:
    """tnum_mul (the 6.1 version, "Harishankar et al." half-multiply)."""
    acc_v = (a.value * b.value) & U64
    acc_m = Tnum(0, 0)
    while a.value or a.mask:
        if a.value & 1:
            acc_m = add(acc_m, Tnum(0, b.mask))
        elif a.mask & 1:
            acc_m = add(acc_m, Tnum(0, b.value | b.mask))
        a = rshift(a, 1)
        b = lshift(b, 1)
    return add(Tnum(acc_v, 0), acc_m)


def intersect(a: Tnum, b: Tnum) -> Tnum:
    v = a.value | b.value
    mu = a.mask & b.mask
    return Tnum(v & ~mu & U64, mu)


def cast(a: Tnum, size: int) -> Tnum:
    """tnum_cast: keep the low ``size`` bytes."""
    m = (1 << (size * 8)) - 1
    return Tnum(a.value & m, a.mask & m)


def is_aligned(a: Tnum, size: int) -> bool:
    if not size:
        return True
    return not ((a.value | a.mask) & (size - 1))


def tin(a: Tnum, b: Tnum) -> bool:
    """tnum_in: is every value of ``b`` a value of ``a``?"""
    if b.mask & ~a.mask & U64:
        return False
    return a.value == (b.value & ~a.mask & U64)


def subreg(a: Tnum) -> Tnum:
    return cast(a, 4)


def clear_subreg(a: Tnum) -> Tnum:
    return lshift(rshift(a, 32), 32)


def const_subreg(a: Tnum, value: int) -> Tnum:
    return or_(clear_subreg(a), const(value & U32))
