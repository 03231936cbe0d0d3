"""Instruction text in LLVM's BPF syntax (what ``llvm-objdump -d`` prints).

The text round-trips: ``assemble(disassemble(p)) == p`` for every valid program, and every
line that LLVM 14 can assemble is accepted by ``llvm-mc -triple bpfel`` and yields the same
bytes.  Forms LLVM has no spelling for use small, documented extensions:

- BPF-to-BPF call ``call pc+N`` (bpftool's spelling), kfunc ``call kfunc(ID)`` or
  ``call kfunc(ID, OFF)``;
- ld_imm64 with a pseudo src_reg: ``r1 = map_fd(5) ll``, ``map_value(FD, OFF)``,
  ``btf_id(ID)``, ``func(+N)``, ``map_idx(I)``, ``map_idx_value(I, OFF)``.
"""
from __future__ import annotations

from types import MappingProxyType

from typing import Mapping

from . import opcodes as op
from .insn import Insn, Program

ALU_SYMBOL = MappingProxyType({
    op.BPF_ADD: "+=", op.BPF_SUB: "-=", op.BPF_MUL: "*=", op.BPF_DIV: "/=", op.BPF_OR: "|=",
    op.BPF_AND: "&=", op.BPF_LSH: "<<=", op.BPF_RSH: ">>=", op.BPF_MOD: "%=", op.BPF_XOR: "^=",
    op.BPF_MOV: "=", op.BPF_ARSH: "s>>=",
})
SIGNED_ALU_SYMBOL = MappingProxyType({op.BPF_DIV: "s/=", op.BPF_MOD: "s%="})
JMP_SYMBOL = MappingProxyType({
    op.BPF_JEQ: "==", op.BPF_JGT: ">", op.BPF_JGE: ">=", op.BPF_JSET: "&", op.BPF_JNE: "!=",
    op.BPF_JSGT: "s>", op.BPF_JSGE: "s>=", op.BPF_JLT: "<", op.BPF_JLE: "<=",
    op.BPF_JSLT: "s<", op.BPF_JSLE: "s<=",
})
ATOMIC_SYMBOL = MappingProxyType({op.BPF_ADD: "+=", op.BPF_AND: "&=", op.BPF_OR: "|=", op.BPF_XOR: "^="})
ATOMIC_NAME = MappingProxyType({op.BPF_ADD: "add", op.BPF_AND: "and", op.BPF_OR: "or", op.BPF_XOR: "xor"})
SIZE_BITS = MappingProxyType({op.BPF_B: 8, op.BPF_H: 16, op.BPF_W: 32, op.BPF_DW: 64})


def _signed_off(value: int) -> str:
    return f"+{value}" if value >= 0 else str(value)


def _mem(reg: int, off: int) -> str:
    return f"r{reg} + {off}" if off >= 0 else f"r{reg} - {-off}"


def _s64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def format_insn(insn: Insn, slot: int | None = None,
                labels: Mapping[int, str] | None = None) -> str:
    """One instruction as LLVM-syntax text.

    With ``slot`` and ``labels`` (slot -> name), jump and call targets that have a label
    are printed by name instead of as a relative offset.
    """
    code, dst, src, off, imm = insn.opcode, insn.dst, insn.src, insn.off, insn.imm
    cls = code & 0x07

    def target(rel: int) -> str:
        if labels is not None and slot is not None:
            name = labels.get(slot + 1 + rel)
            if name is not None:
                return name
        return _signed_off(rel)

    if code == op.OPCODE_LD_IMM64:
        kind = op.LD_IMM64_KINDS.get(src, "plain")
        lo, hi = imm & 0xFFFFFFFF, imm >> 32
        lo_s = lo - (1 << 32) if lo >> 31 else lo
        if kind == "plain":
            return f"r{dst} = {_s64(imm)} ll"
        if kind in ("map_value", "map_idx_value") or (kind == "btf_id" and hi):
            return f"r{dst} = {kind}({lo_s}, {hi - (1 << 32) if hi >> 31 else hi}) ll"
        if kind == "func":
            return f"r{dst} = func({target(lo_s)}) ll"
        return f"r{dst} = {kind}({lo_s}) ll"
    if cls in (op.BPF_ALU, op.BPF_ALU64):
        r = "r" if cls == op.BPF_ALU64 else "w"
        operation, source = code & 0xF0, code & 0x08
        if operation == op.BPF_NEG:
            return f"{r}{dst} = -{r}{dst}"
        if operation == op.BPF_END:
            if cls == op.BPF_ALU64:
                return f"r{dst} = bswap{imm} r{dst}"
            return f"r{dst} = {'be' if source == op.BPF_TO_BE else 'le'}{imm} r{dst}"
        if operation == op.BPF_MOV and source == op.BPF_X and off:
            return f"{r}{dst} = (s{off}){r}{src}"
        sym = SIGNED_ALU_SYMBOL[operation] if off == 1 and operation in SIGNED_ALU_SYMBOL \
            else ALU_SYMBOL.get(operation, f"<alu {operation:#x}>")
        rhs = f"{r}{src}" if source == op.BPF_X else str(imm)
        return f"{r}{dst} {sym} {rhs}"
    if cls in (op.BPF_JMP, op.BPF_JMP32):
        operation, source = code & 0xF0, code & 0x08
        if operation == op.BPF_JA:
            return f"gotol {target(imm)}" if cls == op.BPF_JMP32 else f"goto {target(off)}"
        if operation == op.BPF_EXIT:
            return "exit"
        if operation == op.BPF_CALL:
            if source == op.BPF_X:
                return f"callx r{dst}"
            if src == op.BPF_PSEUDO_CALL:
                name = labels.get(slot + 1 + imm) if labels is not None and slot is not None else None
                return f"call {name}" if name else f"call pc{_signed_off(imm)}"
            if src == op.BPF_PSEUDO_KFUNC_CALL:
                return f"call kfunc({imm}, {off})" if off else f"call kfunc({imm})"
            return f"call {imm}"
        r = "w" if cls == op.BPF_JMP32 else "r"
        rhs = f"{r}{src}" if source == op.BPF_X else str(imm)
        return f"if {r}{dst} {JMP_SYMBOL.get(operation, '?')} {rhs} goto {target(off)}"
    size = code & 0x18
    bits = SIZE_BITS[size]
    if cls == op.BPF_LDX:
        sign = "s" if code & 0xE0 == op.BPF_MEMSX else "u"
        return f"r{dst} = *({sign}{bits} *)({_mem(src, off)})"
    if cls == op.BPF_ST:
        return f"*(u{bits} *)({_mem(dst, off)}) = {imm}"
    if cls == op.BPF_STX:
        if code & 0xE0 == op.BPF_ATOMIC:
            r = "r" if size == op.BPF_DW else "w"
            suffix = "64" if size == op.BPF_DW else "32"
            base = imm & ~op.BPF_FETCH
            if imm == op.BPF_XCHG:
                fn = "xchg_64" if size == op.BPF_DW else "xchg32_32"
                return f"{r}{src} = {fn}({_mem(dst, off)}, {r}{src})"
            if imm == op.BPF_CMPXCHG:
                fn = "cmpxchg_64" if size == op.BPF_DW else "cmpxchg32_32"
                return f"{r}0 = {fn}({_mem(dst, off)}, {r}0, {r}{src})"
            if imm & op.BPF_FETCH:
                return (f"{r}{src} = atomic_fetch_{ATOMIC_NAME[base]}((u{suffix} *)"
                        f"({_mem(dst, off)}), {r}{src})")
            return f"lock *(u{suffix} *)({_mem(dst, off)}) {ATOMIC_SYMBOL[base]} {r}{src}"
        return f"*(u{bits} *)({_mem(dst, off)}) = r{src}"
    if cls == op.BPF_LD:  # legacy packet access
        if code & 0xE0 == op.BPF_ABS:
            return f"r0 = *(u{bits} *)skb[{imm}]"
        inner = f"r{src}" if imm == 0 else (f"r{src} + {imm}" if imm > 0 else f"r{src} - {-imm}")
        return f"r0 = *(u{bits} *)skb[{inner}]"
    return f"<unknown {code:#04x}>"  # pragma: no cover - encodings are checked on decode


def disassemble(program: Program, *, numbered: bool = False, labels: bool = False) -> str:
    """The program as LLVM-syntax text, one line per instruction.

    ``numbered=True`` prefixes each line with its kernel slot number (``  3: ``), as
    ``llvm-objdump`` and ``bpftool prog dump xlated`` do; such text still assembles.
    ``labels=True`` names every jump target ``LBB<slot>`` instead of relative offsets.
    """
    names: dict[int, str] = {}
    if labels:
        for i, insn in enumerate(program):
            slot = program.slot_of(i)
            for t in branch_targets(insn, slot):
                names.setdefault(t, f"LBB{t}")
    lines = []
    for i, insn in enumerate(program):
        slot = program.slot_of(i)
        if slot in names:
            lines.append(f"{names[slot]}:")
        text = format_insn(insn, slot, names if labels else None)
        lines.append(f"{slot:5d}: {text}" if numbered else text)
    return "\n".join(lines) + ("\n" if lines else "")


def branch_targets(insn: Insn, slot: int) -> tuple[int, ...]:
    """Slots that ``insn`` at ``slot`` may transfer control to, other than the next one."""
    code = insn.opcode
    cls, operation = code & 0x07, code & 0xF0
    if code == op.OPCODE_LD_IMM64 and insn.src == op.BPF_PSEUDO_FUNC:
        lo = insn.imm & 0xFFFFFFFF
        return (slot + 1 + (lo - (1 << 32) if lo >> 31 else lo),)
    if cls not in (op.BPF_JMP, op.BPF_JMP32):
        return ()
    if operation == op.BPF_EXIT:
        return ()
    if operation == op.BPF_CALL:
        if insn.src == op.BPF_PSEUDO_CALL and not code & 0x08:
            return (slot + 1 + insn.imm,)
        return ()
    if operation == op.BPF_JA and cls == op.BPF_JMP32:
        return (slot + 1 + insn.imm,)
    return (slot + 1 + insn.off,)
