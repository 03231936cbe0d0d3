"""Replacing one instruction by many, with every branch fixed up, as the kernel does.

Model of linux:kernel/bpf/core.c ``bpf_patch_insn_single`` and ``bpf_adj_branches`` /
``bpf_adj_delta_to_off`` / ``bpf_adj_delta_to_imm`` (unchanged by the RFC), called through
``bpf_patch_insn_data`` in kernel/bpf/verifier.c.  For an instruction at slot ``curr`` of
the new program, with the patch occupying ``[pos, end_new)`` and ``delta = end_new - end_old``:

- ``curr < pos`` and its target ``curr + off + 1 >= end_old`` (a forward jump over or into
  the old instruction's successor): ``off += delta``;
- ``curr >= end_new`` and its target ``< end_new`` (a backward jump across the patch):
  ``off -= delta``;
- jumps inside the patch are left alone (hence ``bpf_patch_resolve_jmp``);
- BPF-to-BPF calls and ``ld_imm64`` with BPF_PSEUDO_FUNC adjust ``imm`` the same way;
  ``BPF_JMP32 | BPF_JA`` (gotol) adjusts ``imm``; other calls and exit are skipped.
An offset that leaves its range fails as the verifier logs it: "insn %d cannot be patched
due to 16-bit range" (-ERANGE).
"""
from __future__ import annotations

from typing import Sequence

from . import opcodes as op
from .errors import BpfVerifyError
from .insn import Insn, Program

S16_MIN, S16_MAX = -(1 << 15), (1 << 15) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1


def patch_insn_single(program: Program, slot: int, patch: Sequence[Insn]) -> Program:
    """``bpf_patch_insn_single(prog, off=slot, patch, len)``: the new program."""
    index = program.index_at_slot(slot)
    if index is None:
        raise BpfVerifyError(f"cannot patch slot {slot}: not the start of an instruction", slot)
    old = program[index]
    if old.slots != 1:
        raise BpfVerifyError("patching an ld_imm64 is not supported", slot)
    patch = tuple(patch)
    if not patch:
        raise BpfVerifyError("empty patch", slot)
    if len(patch) == 1:
        return Program(program.insns[:index] + patch + program.insns[index + 1:])
    new_insns = program.insns[:index] + patch + program.insns[index + 1:]
    patch_slots = sum(i.slots for i in patch)
    pos, end_old, end_new = slot, slot + 1, slot + patch_slots
    delta = end_new - end_old
    out: list[Insn] = []
    curr = 0
    for insn in new_insns:
        out.append(_adjust(insn, curr, pos, end_old, end_new, delta, slot))
        curr += insn.slots
    return Program(out)


def _moved(curr: int, rel: int, pos: int, end_old: int, end_new: int, delta: int) -> int:
    if curr < pos and curr + rel + 1 >= end_old:
        return rel + delta
    if curr >= end_new and curr + rel + 1 < end_new:
        return rel - delta
    return rel


def _adjust(insn: Insn, curr: int, pos: int, end_old: int, end_new: int, delta: int, patched: int) -> Insn:
    code = insn.opcode
    cls, operation = code & 0x07, code & 0xF0
    if code == op.OPCODE_LD_IMM64:
        if insn.src != op.BPF_PSEUDO_FUNC:
            return insn
        lo = insn.imm & 0xFFFFFFFF
        lo = lo - (1 << 32) if lo >> 31 else lo
        new = _moved(curr, lo, pos, end_old, end_new, delta)
        _fits(new, S32_MIN, S32_MAX, patched)
        return Insn(code, insn.dst, insn.src, insn.off, (insn.imm & ~0xFFFFFFFF) | (new & 0xFFFFFFFF))
    if cls not in (op.BPF_JMP, op.BPF_JMP32) or operation == op.BPF_EXIT:
        return insn
    if operation == op.BPF_CALL:
        if insn.src != op.BPF_PSEUDO_CALL or code & 0x08:
            return insn
        new = _moved(curr, insn.imm, pos, end_old, end_new, delta)
        _fits(new, S32_MIN, S32_MAX, patched)
        return Insn(code, insn.dst, insn.src, insn.off, new)
    if code == op.BPF_JMP32 | op.BPF_JA:
        new = _moved(curr, insn.imm, pos, end_old, end_new, delta)
        _fits(new, S32_MIN, S32_MAX, patched)
        return Insn(code, insn.dst, insn.src, insn.off, new)
    new = _moved(curr, insn.off, pos, end_old, end_new, delta)
    _fits(new, S16_MIN, S16_MAX, patched)
    return Insn(code, insn.dst, insn.src, new, insn.imm)


def _fits(value: int, lo: int, hi: int, patched: int) -> None:
    if not lo <= value <= hi:
        raise BpfVerifyError(f"insn {patched} cannot be patched due to 16-bit range", patched)
