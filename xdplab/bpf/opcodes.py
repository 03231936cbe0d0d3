"""Opcode fields of the eBPF instruction set, as plain integers.

Every value here is copied from the kernel's UAPI headers
(linux:include/uapi/linux/bpf_common.h and include/uapi/linux/bpf.h) and matches
RFC 9669 ("BPF Instruction Set Architecture", 2024), sections 3-5.  They are plain
``int`` constants on purpose: an opcode is the bitwise OR of a class, a size or
operation, a mode or source bit, exactly as the kernel's macros compose it.
"""
from __future__ import annotations

from types import MappingProxyType

# Instruction classes: the low three bits of the opcode (bpf_common.h BPF_CLASS).
BPF_LD = 0x00
BPF_LDX = 0x01
BPF_ST = 0x02
BPF_STX = 0x03
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_JMP32 = 0x06  # bpf.h
BPF_ALU64 = 0x07  # bpf.h

CLASS_NAMES = MappingProxyType({
    BPF_LD: "ld", BPF_LDX: "ldx", BPF_ST: "st", BPF_STX: "stx",
    BPF_ALU: "alu", BPF_JMP: "jmp", BPF_JMP32: "jmp32", BPF_ALU64: "alu64",
})

# Load/store size (bpf_common.h BPF_SIZE) and its byte width.
BPF_W = 0x00
BPF_H = 0x08
BPF_B = 0x10
BPF_DW = 0x18  # bpf.h
SIZE_BYTES = MappingProxyType({BPF_B: 1, BPF_H: 2, BPF_W: 4, BPF_DW: 8})
BYTES_SIZE = MappingProxyType({v: k for k, v in SIZE_BYTES.items()})

# Load/store mode (bpf_common.h BPF_MODE; MEMSX and ATOMIC from bpf.h).
BPF_IMM = 0x00
BPF_ABS = 0x20
BPF_IND = 0x40
BPF_MEM = 0x60
BPF_MEMSX = 0x80  # sign-extending load, kernel "cpu v4" (RFC 9669 5.2)
BPF_ATOMIC = 0xC0

# Operand source (bpf_common.h BPF_SRC).
BPF_K = 0x00
BPF_X = 0x08

# ALU operations (bpf_common.h BPF_OP; MOV, ARSH, END from bpf.h).
BPF_ADD = 0x00
BPF_SUB = 0x10
BPF_MUL = 0x20
BPF_DIV = 0x30
BPF_OR = 0x40
BPF_AND = 0x50
BPF_LSH = 0x60
BPF_RSH = 0x70
BPF_NEG = 0x80
BPF_MOD = 0x90
BPF_XOR = 0xA0
BPF_MOV = 0xB0
BPF_ARSH = 0xC0
BPF_END = 0xD0

# Byte-swap direction, in the source bit of BPF_END (bpf.h BPF_TO_LE / BPF_TO_BE).
BPF_TO_LE = 0x00
BPF_TO_BE = 0x08

# Jump operations (bpf_common.h / bpf.h).
BPF_JA = 0x00
BPF_JEQ = 0x10
BPF_JGT = 0x20
BPF_JGE = 0x30
BPF_JSET = 0x40
BPF_JNE = 0x50
BPF_JSGT = 0x60
BPF_JSGE = 0x70
BPF_CALL = 0x80
BPF_EXIT = 0x90
BPF_JLT = 0xA0
BPF_JLE = 0xB0
BPF_JSLT = 0xC0
BPF_JSLE = 0xD0

CONDITIONAL_JUMPS = (BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE,
                     BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE)

# Atomic operations, carried in imm of BPF_STX|BPF_ATOMIC (bpf.h).
BPF_FETCH = 0x01
BPF_XCHG = 0xE0 | BPF_FETCH
BPF_CMPXCHG = 0xF0 | BPF_FETCH
ATOMIC_OPS = (BPF_ADD, BPF_OR, BPF_AND, BPF_XOR,
              BPF_ADD | BPF_FETCH, BPF_OR | BPF_FETCH, BPF_AND | BPF_FETCH, BPF_XOR | BPF_FETCH,
              BPF_XCHG, BPF_CMPXCHG)

# src_reg kinds of BPF_LD|BPF_IMM|BPF_DW (bpf.h, "BPF_PSEUDO_*" for ld_imm64).
BPF_PSEUDO_PLAIN = 0          # imm64 is the value
BPF_PSEUDO_MAP_FD = 1         # imm = map fd
BPF_PSEUDO_MAP_VALUE = 2      # imm = map fd, next imm = offset into the value
BPF_PSEUDO_BTF_ID = 3         # imm = BTF id of a kernel variable
BPF_PSEUDO_FUNC = 4           # imm = insn-relative offset of a subprogram
BPF_PSEUDO_MAP_IDX = 5        # imm = index into fd_array
BPF_PSEUDO_MAP_IDX_VALUE = 6  # imm = index into fd_array, next imm = offset
LD_IMM64_KINDS = MappingProxyType({
    BPF_PSEUDO_PLAIN: "plain", BPF_PSEUDO_MAP_FD: "map_fd", BPF_PSEUDO_MAP_VALUE: "map_value",
    BPF_PSEUDO_BTF_ID: "btf_id", BPF_PSEUDO_FUNC: "func", BPF_PSEUDO_MAP_IDX: "map_idx",
    BPF_PSEUDO_MAP_IDX_VALUE: "map_idx_value",
})

# src_reg kinds of BPF_JMP|BPF_CALL (bpf.h).
BPF_HELPER_CALL = 0           # imm = helper id
BPF_PSEUDO_CALL = 1           # imm = insn-relative offset of a subprogram
BPF_PSEUDO_KFUNC_CALL = 2     # imm = BTF id of the kfunc, off = fd_array index of module BTF

# Machine limits (linux:include/linux/filter.h MAX_BPF_STACK, include/linux/bpf_verifier.h
# MAX_CALL_FRAMES, include/linux/bpf.h MAX_BPF_REG).
MAX_BPF_STACK = 512
MAX_CALL_FRAMES = 8
MAX_BPF_REG = 11   # r0..r10; the hidden BPF_REG_AX (11) is never encoded by programs
BPF_REG_FP = 10
S16_MAX = 0x7FFF   # linux:include/linux/limits.h, used by bpf_patch placeholders

OPCODE_LD_IMM64 = BPF_LD | BPF_IMM | BPF_DW  # 0x18, the only two-slot instruction


def bpf_class(opcode: int) -> int:
    """BPF_CLASS(code): the instruction class."""
    return opcode & 0x07


def bpf_size(opcode: int) -> int:
    """BPF_SIZE(code): the load/store size field."""
    return opcode & 0x18


def bpf_mode(opcode: int) -> int:
    """BPF_MODE(code): the load/store mode field."""
    return opcode & 0xE0


def bpf_op(opcode: int) -> int:
    """BPF_OP(code): the ALU or jump operation."""
    return opcode & 0xF0


def bpf_src(opcode: int) -> int:
    """BPF_SRC(code): BPF_K (immediate) or BPF_X (register)."""
    return opcode & 0x08
