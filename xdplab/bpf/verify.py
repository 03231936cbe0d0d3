"""Load-time structural checks: what the kernel refuses before a program ever runs.

This is not the kernel verifier's abstract interpretation.  It is the part of
linux:kernel/bpf/verifier.c that looks at instructions one by one and at the control
graph's edges: reserved fields (check_alu_op, do_check), register numbers, writes to the
read-only frame pointer, pointer arithmetic on r10, jump and call targets
(check_subprogs, check_cfg: "jump out of range", "last insn is not an exit or jmp"),
ld_imm64 pairs and the calls a program may make.  Messages follow the kernel's wording
where it has one.
"""
from __future__ import annotations

from types import MappingProxyType

from typing import Container

from . import opcodes as op
from .disasm import branch_targets
from .errors import BpfVerifyError
from .insn import Insn, Program, encoding_problem

_BITWISE_NAMES = MappingProxyType({op.BPF_MUL: "*=", op.BPF_DIV: "/=", op.BPF_OR: "|=", op.BPF_AND: "&=",
                  op.BPF_LSH: "<<=", op.BPF_RSH: ">>=", op.BPF_MOD: "%=", op.BPF_XOR: "^=",
                  op.BPF_ARSH: "s>>=", op.BPF_NEG: "neg", op.BPF_END: "byte swap"})


def verify(program: Program, *, helpers: Container[int] | None = None,
           kfuncs: Container[int] | None = None) -> None:
    """Raise :class:`BpfVerifyError` (with the slot index) if the kernel would refuse it.

    ``helpers`` / ``kfuncs``: the ids that calls may name; None skips that check.
    """
    if not isinstance(program, Program):
        raise BpfVerifyError(f"expected a Program, got {type(program).__name__}")
    if len(program) == 0:
        raise BpfVerifyError("program has no instructions")
    nslots = program.slot_count
    for i, insn in enumerate(program):
        slot = program.slot_of(i)
        problem = encoding_problem(insn)
        if problem:
            raise BpfVerifyError(problem, slot)
        code, cls = insn.opcode, insn.opcode & 0x07
        operation = code & 0xF0
        if cls == op.BPF_LD and code != op.OPCODE_LD_IMM64:
            raise BpfVerifyError("legacy packet access (BPF_LD|BPF_ABS/IND) exists only for "
                                 "socket filters and is not simulated", slot)
        if code == op.OPCODE_LD_IMM64 and insn.src not in (op.BPF_PSEUDO_PLAIN, op.BPF_PSEUDO_FUNC):
            raise BpfVerifyError(f"ld_imm64 {op.LD_IMM64_KINDS[insn.src]} must be resolved by the "
                                 "loader (map or BTF reference) before it can run", slot)
        if _writes_fp(insn):
            raise BpfVerifyError("frame pointer is read only", slot)
        if cls in (op.BPF_ALU, op.BPF_ALU64) and code & 0x08 and insn.src == op.BPF_REG_FP \
                and operation != op.BPF_END:
            if cls == op.BPF_ALU:
                raise BpfVerifyError("R10 32-bit pointer arithmetic prohibited", slot)
            if operation in _BITWISE_NAMES:
                raise BpfVerifyError(f"R10 bitwise operator {_BITWISE_NAMES[operation]} on pointer "
                                     "prohibited", slot)
        for target in branch_targets(insn, slot):
            if not 0 <= target < nslots:
                raise BpfVerifyError(f"jump out of range from insn {slot} to {target}", slot)
            if program.index_at_slot(target) is None:
                raise BpfVerifyError(f"jump from insn {slot} into the middle of ld_imm64 at "
                                     f"insn {target - 1}", slot)
        if cls == op.BPF_JMP and operation == op.BPF_CALL and not code & 0x08:
            if insn.src == op.BPF_HELPER_CALL and helpers is not None and insn.imm not in helpers:
                raise BpfVerifyError(f"invalid func unknown#{insn.imm}", slot)
            if insn.src == op.BPF_PSEUDO_KFUNC_CALL and kfuncs is not None and insn.imm not in kfuncs:
                raise BpfVerifyError(f"kernel btf_id {insn.imm} is not a function", slot)
    last = program[-1]
    lcls, lop = last.opcode & 0x07, last.opcode & 0xF0
    if not (lcls in (op.BPF_JMP, op.BPF_JMP32) and lop in (op.BPF_EXIT, op.BPF_JA)):
        raise BpfVerifyError("last insn is not an exit or jmp", program.slot_of(len(program) - 1))


def _writes_fp(insn: Insn) -> bool:
    code, cls = insn.opcode, insn.opcode & 0x07
    fp = op.BPF_REG_FP
    if cls in (op.BPF_ALU, op.BPF_ALU64, op.BPF_LDX) or code == op.OPCODE_LD_IMM64:
        return insn.dst == fp
    if cls == op.BPF_STX and code & 0xE0 == op.BPF_ATOMIC:
        return bool(insn.imm & op.BPF_FETCH) and insn.imm != op.BPF_CMPXCHG and insn.src == fp
    return False
