"""The verifier log: instructions as the kernel prints them, register states, alignment.

- :func:`print_bpf_insn` is kernel/bpf/disasm.c@6.1.192:129 print_bpf_insn (the format of
  ``bpftool prog dump xlated`` and of every verifier log): ``(bf) r2 = r1``,
  ``(61) r2 = *(u32 *)(r1 +0)``, ``(2d) if r3 > r4 goto pc+1``, ``(85) call bpf_map_lookup_elem#1``.
  The verifier passes ``disasm_kfunc_name`` as cb_call (kfunc names) and no cb_imm.
- :func:`format_state` is print_verifier_state (verifier.c@6.1.192:783): ``R1=ctx(off=0,imm=0)``,
  ``R0_w=scalar(umax=255,var_off=(0x0; 0xff))``, ``R10=fp0``, ``fp-8=mmmmmmmm``.
  MODEL: liveness is shown as ``_w`` (REG_LIVE_WRITTEN) only; read marks (``_r``) are not
  tracked by this verifier, so they never appear.  Precision marks print as ``P``.
- :class:`VerifierLog` keeps the log with bpf_vlog_reset (truncation when a path is popped at
  log level 1) and print_insn_state's ``;`` alignment (vlog_alignment, verifier.c@6.1.192:923).
"""
from __future__ import annotations

from types import MappingProxyType

from typing import Callable

from .helper_ids import func_id_name
from .regstate import (CONST_PTR_TO_MAP, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, PTR_TO_STACK,
                       S32_MAX, S32_MIN, S64_MAX, S64_MIN, SCALAR_VALUE, Reg, base_type,
                       reg_type_str, type_is_pkt_pointer)
from .state import BPF_REG_SIZE, SLOT_CHAR, STACK_INVALID, FuncState
from .tnum import U32, U64, s64

# disasm.c@6.1.192:70-115
_ALU = MappingProxyType({0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=", 0x60: "<<=",
        0x70: ">>=", 0x80: "neg", 0x90: "%=", 0xA0: "^=", 0xB0: "=", 0xC0: "s>>=", 0xD0: "endian"})
_ATOMIC_ALU = MappingProxyType({0x00: "add", 0x50: "and", 0x40: "or", 0xA0: "xor"})
_LDST = MappingProxyType({0x00: "u32", 0x08: "u16", 0x10: "u8", 0x18: "u64"})
_JMP = MappingProxyType({0x00: "jmp", 0x10: "==", 0x20: ">", 0xA0: "<", 0x30: ">=", 0xB0: "<=", 0x40: "&",
        0x50: "!=", 0x60: "s>", 0xC0: "s<", 0x70: "s>=", 0xD0: "s<=", 0x80: "call", 0x90: "exit"})

BPF_LOG_ALIGNMENT = 40       # include/linux/bpf_verifier.h@6.1.192:455
BPF_LOG_MIN_ALIGNMENT = 8    # include/linux/bpf_verifier.h@6.1.192:454


def _u32(x: int) -> int:
    return x & U32


def print_bpf_insn(code: int, dst: int, src: int, off: int, imm: int, imm_hi: int = 0,
                   kfunc_name: Callable[[int], str | None] | None = None) -> str:
    """One instruction in the kernel's log format (without the ``N: `` prefix or newline)."""
    cls = code & 7
    op = code & 0xF0
    if cls in (4, 7):
        w = "w" if cls == 4 else "r"
        if op == 0xD0:
            if cls == 7:
                return f"BUG_alu64_{code:02x}"
            return f"({code:02x}) r{dst} = {'be' if code & 8 else 'le'}{imm} r{dst}"
        if op == 0x80:
            return f"({code:02x}) {w}{dst} = -{w}{dst}"
        if code & 8:
            return f"({code:02x}) {w}{dst} {_ALU.get(op, '?')} {w}{src}"
        return f"({code:02x}) {w}{dst} {_ALU.get(op, '?')} {imm}"
    size = _LDST[code & 0x18]
    mode = code & 0xE0
    if cls == 3:
        if mode == 0x60:
            return f"({code:02x}) *({size} *)(r{dst} {off:+d}) = r{src}"
        if mode == 0xC0:
            bits = "64" if code & 0x18 == 0x18 else ""
            if imm in (0x00, 0x50, 0x40, 0xA0):
                return f"({code:02x}) lock *({size} *)(r{dst} {off:+d}) {_ALU[imm & 0xF0]} r{src}"
            if imm in (0x01, 0x51, 0x41, 0xA1):
                return (f"({code:02x}) r{src} = atomic{bits}_fetch_{_ATOMIC_ALU[imm & 0xF0]}"
                        f"(({size} *)(r{dst} {off:+d}), r{src})")
            if imm == 0xF1:
                return f"({code:02x}) r0 = atomic{bits}_cmpxchg(({size} *)(r{dst} {off:+d}), r0, r{src})"
            if imm == 0xE1:
                return f"({code:02x}) r{src} = atomic{bits}_xchg(({size} *)(r{dst} {off:+d}), r{src})"
        return f"BUG_{code:02x}"
    if cls == 2:
        if mode == 0x60:
            return f"({code:02x}) *({size} *)(r{dst} {off:+d}) = {imm}"
        return f"BUG_st_{code:02x}"
    if cls == 1:
        if mode != 0x60:
            return f"BUG_ldx_{code:02x}"
        return f"({code:02x}) r{dst} = *({size} *)(r{src} {off:+d})"
    if cls == 0:
        if mode == 0x20:
            return f"({code:02x}) r0 = *({size} *)skb[{imm}]"
        if mode == 0x40:
            return f"({code:02x}) r0 = *({size} *)skb[r{src} + {imm}]"
        if mode == 0 and code & 0x18 == 0x18:
            full = ((imm_hi & U32) << 32) | (imm & U32)
            return f"({code:02x}) r{dst} = 0x{full:x}"
        return f"BUG_ld_{code:02x}"
    # JMP / JMP32
    w = "w" if cls == 6 else "r"
    if op == 0x80:
        if src == 1:
            return f"({code:02x}) call pc{imm:+d}"
        name = None
        if src == 0 and 0 <= imm:
            n = func_id_name(imm)
            name = None if n == "unknown" else n
        if name is None and src == 2 and kfunc_name is not None:
            name = kfunc_name(imm)
        if name is None:
            name = "kernel-function" if src == 2 else "unknown"
        return f"({code:02x}) call {name}#{imm}"
    if code == 0x05:
        return f"({code:02x}) goto pc{off:+d}"
    if code == 0x95:
        return f"({code:02x}) exit"
    if code & 8:
        return f"({code:02x}) if {w}{dst} {_JMP.get(op, '?')} {w}{src} goto pc{off:+d}"
    return f"({code:02x}) if {w}{dst} {_JMP.get(op, '?')} {_u32(imm):#x} goto pc{off:+d}"


def format_reg(reg: Reg) -> str:
    """The value part of one register in print_verifier_state (after ``R1=``)."""
    t = reg.type
    mark = "P" if t == SCALAR_VALUE and reg.precise else ""
    if t in (SCALAR_VALUE, PTR_TO_STACK) and reg.var_off.is_const():
        prefix = "" if t == SCALAR_VALUE else reg_type_str(t)
        return f"{mark}{prefix}{s64(reg.var_off.value + reg.off)}"
    out = mark + reg_type_str(t)
    if base_type(t) == 16 and reg.btf_name:   # PTR_TO_BTF_ID: kernel_type_name
        out += reg.btf_name
    parts = []
    if reg.id:
        parts.append(f"id={reg.id}")
    if t != SCALAR_VALUE:
        parts.append(f"off={reg.off}")
    if type_is_pkt_pointer(t):
        parts.append(f"r={reg.range}")
    elif base_type(t) in (CONST_PTR_TO_MAP, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE) and reg.map is not None:
        parts.append(f"ks={reg.map.key_size},vs={reg.map.value_size}")
    if reg.var_off.is_const():
        parts.append(f"imm={reg.var_off.value:x}")
    else:
        # C compares the s64 bound with the u64 one as unsigned (verifier.c@6.1.192:848)
        if reg.smin & U64 != reg.umin and reg.smin != S64_MIN:
            parts.append(f"smin={reg.smin}")
        if reg.smax & U64 != reg.umax and reg.smax != S64_MAX:
            parts.append(f"smax={reg.smax}")
        if reg.umin != 0:
            parts.append(f"umin={reg.umin}")
        if reg.umax != U64:
            parts.append(f"umax={reg.umax}")
        if not reg.var_off.is_unknown():
            parts.append(f"var_off={reg.var_off}")
        if reg.s32_min != reg.smin and reg.s32_min != S32_MIN:
            parts.append(f"s32_min={reg.s32_min}")
        if reg.s32_max != reg.smax and reg.s32_max != S32_MAX:
            parts.append(f"s32_max={reg.s32_max}")
        # The kernel prints u32 bounds with %d (verifier.c@6.1.192:866): values >= 2^31 show negative.
        if reg.u32_min != (reg.umin & U64) and reg.u32_min != 0:
            parts.append(f"u32_min={_as_int(reg.u32_min)}")
        if reg.u32_max != reg.umax and reg.u32_max != U32:
            parts.append(f"u32_max={_as_int(reg.u32_max)}")
    return f"{out}({','.join(parts)})"


def _as_int(u: int) -> int:
    return u - (1 << 32) if u >> 31 else u


def format_state(state: FuncState, regs_mask: int, slots_mask: int) -> str:
    """print_verifier_state for the registers/slots selected by the scratch masks."""
    out = []
    if state.frameno:
        out.append(f" frame{state.frameno}:")
    for i, reg in enumerate(state.regs):
        if reg.type == 0 or not (regs_mask >> i) & 1:
            continue
        live = "_w" if reg.written else ""
        out.append(f" R{i}{live}={format_reg(reg)}")
    for i, slot in enumerate(state.stack):
        types = "".join(SLOT_CHAR[t] for t in slot.slot_type)
        if all(t == STACK_INVALID for t in slot.slot_type) or not (slots_mask >> i) & 1:
            continue
        live = "_w" if slot.spilled.written else ""
        text = f" fp{(-i - 1) * BPF_REG_SIZE}{live}"
        if slot.is_spilled_reg():
            r = slot.spilled
            text += "=" + ("" if r.type == SCALAR_VALUE else reg_type_str(r.type))
            if r.type == SCALAR_VALUE and r.precise:
                text += "P"
            if r.type == SCALAR_VALUE and r.var_off.is_const():
                text += str(s64(r.var_off.value + r.off))
        else:
            text += "=" + types
        out.append(text)
    return "".join(out)


def vlog_alignment(pos: int) -> int:
    """vlog_alignment: pad the state after an instruction to a column multiple of 8 (>= 40)."""
    base = max(pos + BPF_LOG_MIN_ALIGNMENT // 2, BPF_LOG_ALIGNMENT)
    return -(-base // BPF_LOG_MIN_ALIGNMENT) * BPF_LOG_MIN_ALIGNMENT - pos - 1


class VerifierLog:
    """``struct bpf_verifier_log`` as a growing text with truncation (bpf_vlog_reset)."""

    __slots__ = ("level", "_parts", "_len")

    def __init__(self, level: int) -> None:
        self.level = level
        self._parts: list[str] = []
        self._len = 0

    def __call__(self, text: str) -> None:
        if self.level:
            self._parts.append(text)
            self._len += len(text)

    @property
    def len_used(self) -> int:
        return self._len

    def reset(self, pos: int) -> None:
        """bpf_vlog_reset: drop everything after ``pos`` characters."""
        if not self.level or pos >= self._len:
            return
        parts = self._parts
        while parts and self._len - len(parts[-1]) >= pos:
            self._len -= len(parts.pop())
        if parts:
            keep = len(parts[-1]) - (self._len - pos)
            parts[-1] = parts[-1][:keep]
            self._len = pos

    def text(self) -> str:
        return "".join(self._parts)
