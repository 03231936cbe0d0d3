"""Instruction builders named and shaped after the kernel's macros.

Each function mirrors the macro of the same name in linux:include/linux/filter.h, so that
driver unroll code reads like the RFC's C (``bpf_patch_append(patch, BPF_MOV64_IMM(...),
...)``).  Register arguments are plain ints 0..10; the ``BPF_REG_*`` names are provided.

Differences from the C macros, on purpose:
- ``BPF_LD_IMM64`` returns a single :class:`Insn` (our ld_imm64 value holds all 64 bits);
  the kernel macro expands to two ``struct bpf_insn``.
- ``BPF_EMIT_CALL`` takes the call's ``imm`` directly (a helper id, or a simulated kernel
  function's ``imm = fn - __bpf_call_base``); the C macro takes a function pointer.
"""
from __future__ import annotations

from . import opcodes as op
from .insn import Insn

BPF_REG_0, BPF_REG_1, BPF_REG_2, BPF_REG_3, BPF_REG_4, BPF_REG_5 = range(6)
BPF_REG_6, BPF_REG_7, BPF_REG_8, BPF_REG_9, BPF_REG_10 = range(6, 11)
BPF_REG_ARG1, BPF_REG_CTX, BPF_REG_FP = BPF_REG_1, BPF_REG_1, BPF_REG_10


def BPF_RAW_INSN(code: int, dst: int, src: int, off: int, imm: int) -> Insn:
    return Insn(code, dst, src, off, imm)


def BPF_ALU64_REG(alu_op: int, dst: int, src: int) -> Insn:
    return Insn(op.BPF_ALU64 | alu_op | op.BPF_X, dst, src, 0, 0)


def BPF_ALU32_REG(alu_op: int, dst: int, src: int) -> Insn:
    return Insn(op.BPF_ALU | alu_op | op.BPF_X, dst, src, 0, 0)


def BPF_ALU64_IMM(alu_op: int, dst: int, imm: int) -> Insn:
    return Insn(op.BPF_ALU64 | alu_op | op.BPF_K, dst, 0, 0, imm)


def BPF_ALU32_IMM(alu_op: int, dst: int, imm: int) -> Insn:
    return Insn(op.BPF_ALU | alu_op | op.BPF_K, dst, 0, 0, imm)


def BPF_ALU64_REG_OFF(alu_op: int, dst: int, src: int, off: int) -> Insn:
    """sdiv/smod (off = 1) and movsx (off = 8/16/32) register forms."""
    return Insn(op.BPF_ALU64 | alu_op | op.BPF_X, dst, src, off, 0)


def BPF_ALU32_REG_OFF(alu_op: int, dst: int, src: int, off: int) -> Insn:
    return Insn(op.BPF_ALU | alu_op | op.BPF_X, dst, src, off, 0)


def BPF_ALU64_IMM_OFF(alu_op: int, dst: int, imm: int, off: int) -> Insn:
    return Insn(op.BPF_ALU64 | alu_op | op.BPF_K, dst, 0, off, imm)


def BPF_ALU32_IMM_OFF(alu_op: int, dst: int, imm: int, off: int) -> Insn:
    return Insn(op.BPF_ALU | alu_op | op.BPF_K, dst, 0, off, imm)


def BPF_ENDIAN(kind: int, dst: int, length: int) -> Insn:
    """le16/le32/le64 (kind BPF_TO_LE) or be16/be32/be64 (BPF_TO_BE)."""
    return Insn(op.BPF_ALU | op.BPF_END | kind, dst, 0, 0, length)


def BPF_BSWAP(dst: int, length: int) -> Insn:
    """Unconditional byte swap, ALU64 class (cpu v4)."""
    return Insn(op.BPF_ALU64 | op.BPF_END | op.BPF_TO_LE, dst, 0, 0, length)


def BPF_MOV64_REG(dst: int, src: int) -> Insn:
    return BPF_ALU64_REG(op.BPF_MOV, dst, src)


def BPF_MOV32_REG(dst: int, src: int) -> Insn:
    return BPF_ALU32_REG(op.BPF_MOV, dst, src)


def BPF_MOV64_IMM(dst: int, imm: int) -> Insn:
    return BPF_ALU64_IMM(op.BPF_MOV, dst, imm)


def BPF_MOV32_IMM(dst: int, imm: int) -> Insn:
    return BPF_ALU32_IMM(op.BPF_MOV, dst, imm)


def BPF_MOVSX64_REG(dst: int, src: int, bits: int) -> Insn:
    return BPF_ALU64_REG_OFF(op.BPF_MOV, dst, src, bits)


def BPF_MOVSX32_REG(dst: int, src: int, bits: int) -> Insn:
    return BPF_ALU32_REG_OFF(op.BPF_MOV, dst, src, bits)


def BPF_LD_IMM64_RAW(dst: int, src: int, imm: int) -> Insn:
    return Insn(op.OPCODE_LD_IMM64, dst, src, 0, imm)


def BPF_LD_IMM64(dst: int, imm: int) -> Insn:
    return BPF_LD_IMM64_RAW(dst, op.BPF_PSEUDO_PLAIN, imm)


def BPF_LD_MAP_FD(dst: int, map_fd: int) -> Insn:
    return BPF_LD_IMM64_RAW(dst, op.BPF_PSEUDO_MAP_FD, map_fd)


def BPF_LD_MAP_VALUE(dst: int, map_fd: int, value_off: int) -> Insn:
    """ld_imm64 with BPF_PSEUDO_MAP_VALUE: low imm = fd, high imm = offset in the value."""
    return BPF_LD_IMM64_RAW(dst, op.BPF_PSEUDO_MAP_VALUE, (value_off << 32) | (map_fd & 0xFFFFFFFF))


def BPF_LD_ABS(size: int, imm: int) -> Insn:
    return Insn(op.BPF_LD | size | op.BPF_ABS, 0, 0, 0, imm)


def BPF_LD_IND(size: int, src: int, imm: int) -> Insn:
    return Insn(op.BPF_LD | size | op.BPF_IND, 0, src, 0, imm)


def BPF_LDX_MEM(size: int, dst: int, src: int, off: int) -> Insn:
    return Insn(op.BPF_LDX | size | op.BPF_MEM, dst, src, off, 0)


def BPF_LDX_MEMSX(size: int, dst: int, src: int, off: int) -> Insn:
    return Insn(op.BPF_LDX | size | op.BPF_MEMSX, dst, src, off, 0)


def BPF_STX_MEM(size: int, dst: int, src: int, off: int) -> Insn:
    return Insn(op.BPF_STX | size | op.BPF_MEM, dst, src, off, 0)


def BPF_ST_MEM(size: int, dst: int, off: int, imm: int) -> Insn:
    return Insn(op.BPF_ST | size | op.BPF_MEM, dst, 0, off, imm)


def BPF_ATOMIC_OP(size: int, atomic_op: int, dst: int, src: int, off: int) -> Insn:
    return Insn(op.BPF_STX | size | op.BPF_ATOMIC, dst, src, off, atomic_op)


def BPF_JMP_REG(jmp_op: int, dst: int, src: int, off: int) -> Insn:
    return Insn(op.BPF_JMP | jmp_op | op.BPF_X, dst, src, off, 0)


def BPF_JMP_IMM(jmp_op: int, dst: int, imm: int, off: int) -> Insn:
    return Insn(op.BPF_JMP | jmp_op | op.BPF_K, dst, 0, off, imm)


def BPF_JMP32_REG(jmp_op: int, dst: int, src: int, off: int) -> Insn:
    return Insn(op.BPF_JMP32 | jmp_op | op.BPF_X, dst, src, off, 0)


def BPF_JMP32_IMM(jmp_op: int, dst: int, imm: int, off: int) -> Insn:
    return Insn(op.BPF_JMP32 | jmp_op | op.BPF_K, dst, 0, off, imm)


def BPF_JMP_A(off: int) -> Insn:
    return Insn(op.BPF_JMP | op.BPF_JA, 0, 0, off, 0)


def BPF_JMP32_A(imm: int) -> Insn:
    """gotol: unconditional jump with a 32-bit offset in imm (cpu v4)."""
    return Insn(op.BPF_JMP32 | op.BPF_JA, 0, 0, 0, imm)


def BPF_EMIT_CALL(imm: int) -> Insn:
    """A call to a helper or, after fixup, to a kernel function (imm = fn - __bpf_call_base)."""
    return Insn(op.BPF_JMP | op.BPF_CALL, 0, op.BPF_HELPER_CALL, 0, imm)


def BPF_CALL_REL(imm: int) -> Insn:
    """A BPF-to-BPF call: imm is the insn-relative offset of the callee (target = pc+1+imm)."""
    return Insn(op.BPF_JMP | op.BPF_CALL, 0, op.BPF_PSEUDO_CALL, 0, imm)


def BPF_CALL_KFUNC(off: int, imm: int) -> Insn:
    """A kfunc call: imm = BTF id of the kfunc, off = fd_array index of its module BTF."""
    return Insn(op.BPF_JMP | op.BPF_CALL, 0, op.BPF_PSEUDO_KFUNC_CALL, off, imm)


def BPF_CALLX(reg: int) -> Insn:
    """Indirect call through a register (LLVM's callx; the target is in dst_reg)."""
    return Insn(op.BPF_JMP | op.BPF_CALL | op.BPF_X, reg, 0, 0, 0)


def BPF_EXIT_INSN() -> Insn:
    return Insn(op.BPF_JMP | op.BPF_EXIT, 0, 0, 0, 0)
