"""Hypothesis strategies for instructions and programs."""
from __future__ import annotations

from hypothesis import strategies as st

from xdplab.bpf import Insn, Program
from xdplab.bpf import opcodes as op

S16 = st.integers(-(1 << 15), (1 << 15) - 1)
S32 = st.integers(-(1 << 31), (1 << 31) - 1)
REG = st.integers(0, 10)
SIZES = [op.BPF_B, op.BPF_H, op.BPF_W, op.BPF_DW]
ALU_OPS = [op.BPF_ADD, op.BPF_SUB, op.BPF_MUL, op.BPF_DIV, op.BPF_OR, op.BPF_AND, op.BPF_LSH,
           op.BPF_RSH, op.BPF_MOD, op.BPF_XOR, op.BPF_MOV, op.BPF_ARSH]
JMP_OPS = list(op.CONDITIONAL_JUMPS)


@st.composite
def alu_insn(draw, dst=REG, src=REG, imm=S32):
    cls = draw(st.sampled_from([op.BPF_ALU, op.BPF_ALU64]))
    kind = draw(st.sampled_from(["op", "neg", "end"]))
    d = draw(dst)
    if kind == "neg":
        return Insn(cls | op.BPF_NEG, d)
    if kind == "end":
        if cls == op.BPF_ALU64:
            return Insn(op.BPF_ALU64 | op.BPF_END, d, imm=draw(st.sampled_from([16, 32, 64])))
        return Insn(op.BPF_ALU | op.BPF_END | draw(st.sampled_from([op.BPF_TO_LE, op.BPF_TO_BE])), d,
                    imm=draw(st.sampled_from([16, 32, 64])))
    operation = draw(st.sampled_from(ALU_OPS))
    is_x = draw(st.booleans())
    off = 0
    if operation in (op.BPF_DIV, op.BPF_MOD):
        off = draw(st.sampled_from([0, 1]))
    elif operation == op.BPF_MOV and is_x:
        off = draw(st.sampled_from([0, 8, 16, 32] if cls == op.BPF_ALU64 else [0, 8, 16]))
    if is_x:
        return Insn(cls | operation | op.BPF_X, d, draw(src), off, 0)
    return Insn(cls | operation, d, 0, off, draw(imm))


@st.composite
def jmp_insn(draw, dst=REG, src=REG, off=S16, imm=S32):
    cls = draw(st.sampled_from([op.BPF_JMP, op.BPF_JMP32]))
    kind = draw(st.sampled_from(["cond", "cond", "cond", "ja"]))
    if kind == "ja":
        return (Insn(op.BPF_JMP | op.BPF_JA, off=draw(off)) if cls == op.BPF_JMP
                else Insn(op.BPF_JMP32 | op.BPF_JA, imm=draw(off)))
    operation = draw(st.sampled_from(JMP_OPS))
    if draw(st.booleans()):
        return Insn(cls | operation | op.BPF_X, draw(dst), draw(src), draw(off), 0)
    return Insn(cls | operation, draw(dst), 0, draw(off), draw(imm))


@st.composite
def mem_insn(draw, base=REG, reg=REG, off=S16, imm=S32):
    kind = draw(st.sampled_from(["ldx", "ldxsx", "st", "stx", "atomic"]))
    size = draw(st.sampled_from(SIZES))
    if kind == "ldx":
        return Insn(op.BPF_LDX | size | op.BPF_MEM, draw(reg), draw(base), draw(off), 0)
    if kind == "ldxsx":
        size = draw(st.sampled_from([op.BPF_B, op.BPF_H, op.BPF_W]))
        return Insn(op.BPF_LDX | size | op.BPF_MEMSX, draw(reg), draw(base), draw(off), 0)
    if kind == "st":
        return Insn(op.BPF_ST | size | op.BPF_MEM, draw(base), 0, draw(off), draw(imm))
    if kind == "stx":
        return Insn(op.BPF_STX | size | op.BPF_MEM, draw(base), draw(reg), draw(off), 0)
    size = draw(st.sampled_from([op.BPF_W, op.BPF_DW]))
    return Insn(op.BPF_STX | size | op.BPF_ATOMIC, draw(base), draw(reg), draw(off),
                draw(st.sampled_from(op.ATOMIC_OPS)))


@st.composite
def misc_insn(draw):
    kind = draw(st.sampled_from(["lddw", "call", "exit", "callx", "ldabs"]))
    if kind == "lddw":
        src = draw(st.sampled_from(list(op.LD_IMM64_KINDS)))
        top = (1 << 32) - 1 if src in (op.BPF_PSEUDO_MAP_FD, op.BPF_PSEUDO_FUNC, op.BPF_PSEUDO_MAP_IDX) \
            else (1 << 64) - 1
        return Insn(op.OPCODE_LD_IMM64, draw(REG), src, 0, draw(st.integers(0, top)))
    if kind == "call":
        src = draw(st.sampled_from([0, 1, 2]))
        return Insn(op.BPF_JMP | op.BPF_CALL, 0, src, draw(S16) if src == 2 else 0, draw(S32))
    if kind == "callx":
        return Insn(op.BPF_JMP | op.BPF_CALL | op.BPF_X, draw(REG))
    if kind == "ldabs":
        size = draw(st.sampled_from([op.BPF_B, op.BPF_H, op.BPF_W]))
        if draw(st.booleans()):
            return Insn(op.BPF_LD | size | op.BPF_ABS, imm=draw(S32))
        return Insn(op.BPF_LD | size | op.BPF_IND, 0, draw(REG), 0, draw(S32))
    return Insn(op.BPF_JMP | op.BPF_EXIT)


valid_insn = st.one_of(alu_insn(), jmp_insn(), mem_insn(), misc_insn())
valid_program = st.lists(valid_insn, min_size=1, max_size=40).map(Program)


# ---------------------------------------------------------------- runnable programs
WREG = st.sampled_from([0, 2, 3, 4, 5, 6, 7, 8, 9])   # r1 keeps pointing at mem
STACK_OFF = st.one_of(st.integers(-512, -8), st.integers(-512, -8), st.integers(-520, 8))


@st.composite
def runnable_program(draw, max_len=30):
    """Programs that pass verify(): random ALU, memory (stack via r10, mem via r1), jumps in
    range (loops included), helper calls to ids 1-2, ld_imm64; ends with exit."""
    n = draw(st.integers(1, max_len))
    body = []
    for i in range(n):
        kind = draw(st.sampled_from(["alu"] * 6 + ["mem"] * 4 + ["jmp"] * 2 + ["call", "lddw"]))
        if kind == "alu":
            insn = draw(alu_insn(dst=WREG, src=WREG, imm=st.one_of(S32, st.integers(-3, 70))))
        elif kind == "mem":
            base = draw(st.sampled_from([1, 10, 10, 10]))
            insn = draw(mem_insn(base=st.just(base), reg=WREG,
                                 off=STACK_OFF if base == 10 else st.integers(-4, 40),
                                 imm=S32))
            if insn.opcode & 0xE0 == op.BPF_ATOMIC and insn.imm & op.BPF_FETCH and insn.src == 10:
                insn = Insn(insn.opcode, insn.dst, 0, insn.off, insn.imm)
        elif kind == "jmp":
            insn = draw(jmp_insn(dst=WREG, src=WREG, off=st.just(0), imm=st.one_of(S32, st.integers(-2, 10))))
            target = draw(st.integers(0, n))   # slot index, fixed below
            body.append(("jmp", insn, target))
            continue
        elif kind == "call":
            insn = Insn(op.BPF_JMP | op.BPF_CALL, imm=draw(st.sampled_from([1, 2])))
        else:
            insn = Insn(op.OPCODE_LD_IMM64, draw(WREG), 0, 0, draw(st.integers(0, (1 << 64) - 1)))
        body.append(("plain", insn, None))
    # compute slots, then fix jump offsets to land on instruction starts
    slots = []
    s = 0
    for _, insn, _ in body:
        slots.append(s)
        s += insn.slots
    slots.append(s)   # the final exit
    out = []
    for i, (kind, insn, target) in enumerate(body):
        if kind == "jmp":
            rel = slots[target] - (slots[i] + 1)
            if insn.opcode & 0x07 == op.BPF_JMP32 and insn.opcode & 0xF0 == op.BPF_JA:
                insn = Insn(insn.opcode, imm=rel)
            else:
                insn = Insn(insn.opcode, insn.dst, insn.src, rel, insn.imm)
        out.append(insn)
    out.append(Insn(op.BPF_JMP | op.BPF_EXIT))
    return Program(out)


# ---------------------------------------------------------------- edge-biased operands
# Values where wrong masks, sign extension and carries show (issue 11): 0, +-1, the 32- and
# 64-bit signed/unsigned limits, 2^31, 2^32 and neighbours, lone sign bits of each width,
# shift counts around 31/32/63/64.  As unsigned 64-bit register contents.
M64_ = (1 << 64) - 1
EDGE_U64 = tuple(sorted({v & M64_ for v in (
    0, 1, -1, 2, -2,
    -(1 << 31), (1 << 31) - 1, 1 << 31, (1 << 31) + 1,            # INT32_MIN (sign-extended), INT32_MAX, 2^31
    (1 << 32) - 1, 1 << 32, (1 << 32) + 1, (1 << 32) - 2,        # U32_MAX, 2^32, 2^32 +- 1
    -(1 << 63), (1 << 63) - 1, (1 << 63) + 1,                    # INT64_MIN, INT64_MAX
    0x80, 0xFF, 0x7F, 0x8000, 0xFFFF, 0x7FFF,                    # sign bits of 8 and 16 bits
    0xFFFF_FFFF_0000_0000, 0x0000_0001_FFFF_FFFF, 0xFFFF_FFFF_7FFF_FFFF, 0x8000_0000_8000_0000,
    31, 32, 33, 63, 64, 65,                                      # shift counts at the masks
    0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210,                # distinct bytes (byte swaps)
)}))
EDGE_S32 = (0, 1, -1, 2, -2, -(1 << 31), (1 << 31) - 1, 0x7F, 0x80, -0x80, 0xFF, 0x7FFF, 0x8000, -0x8000,
            0xFFFF, 31, 32, 33, 63, 64, 65, 0x1234_5678, -0x1234_5678)

edge_u64 = st.one_of(st.sampled_from(EDGE_U64), st.sampled_from(EDGE_U64), st.sampled_from(EDGE_U64),
                     st.integers(0, M64_),
                     st.integers(0, (1 << 32) - 1).map(lambda v: v | 0xFFFF_FFFF_0000_0000))   # high bits set
edge_s32 = st.one_of(st.sampled_from(EDGE_S32), st.sampled_from(EDGE_S32), S32)


# ---------------------------------------------------------------- mostly-decodable bytes
# Opcodes written out from RFC 9669 §3-§5: ALU/ALU64/JMP/JMP32 operations in both source
# forms, loads/stores of each size, exit, call, ld_imm64 (first slot; the second is zero).
_ALU_CODES = [cls | o | s for cls in (0x04, 0x07) for o in range(0x00, 0xD0, 0x10) if o != 0x80 for s in (0, 8)] + \
             [0x84, 0x87, 0xD4, 0xDC, 0xD7]
_JMP_CODES = [cls | o | s for cls in (0x05, 0x06) for o in (0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xA0, 0xB0,
                                                           0xC0, 0xD0) for s in (0, 8)] + [0x05, 0x06]
_MEM_CODES = [0x61, 0x69, 0x71, 0x79, 0x62, 0x6A, 0x72, 0x7A, 0x63, 0x6B, 0x73, 0x7B]
OPCODES_BY_HAND = tuple(_ALU_CODES + _JMP_CODES + _MEM_CODES + [0x95, 0x85])


@st.composite
def insn_slot_bytes(draw):
    """8 (or 16, for ld_imm64) bytes of one instruction: a real opcode most of the time, registers
    mostly below 11, small offsets, edge immediates; sometimes plain random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(min_size=8, max_size=8))
    if draw(st.integers(0, 9)) == 0:
        dst = draw(st.integers(0, 9))
        return bytes([0x18, dst, 0, 0]) + draw(st.binary(min_size=4, max_size=4)) + bytes(4) + \
            draw(st.binary(min_size=4, max_size=4))
    code = draw(st.sampled_from(OPCODES_BY_HAND))
    dst, src = draw(st.integers(0, 10)), draw(st.integers(0, 10))
    off = draw(st.one_of(st.integers(-3, 8), S16))
    if code & 0x07 in (0x04, 0x07) and code & 0xF0 == 0xB0 and code & 0x08:
        off = draw(st.sampled_from([0, 0, 8, 16, 32]))          # mov / movsx
    elif code & 0x07 in (0x04, 0x07) and code & 0xF0 in (0x30, 0x90):
        off = draw(st.sampled_from([0, 1]))                     # div, mod / sdiv, smod
    elif code & 0x07 in (0x04, 0x07):
        off = 0
    imm = draw(st.one_of(st.sampled_from(EDGE_S32), S32))
    if code & 0xF0 == 0xD0 and code & 0x07 in (0x04, 0x07):
        imm = draw(st.sampled_from([16, 32, 64]))
    if code == 0x85:
        imm = draw(st.sampled_from([1, 2]))
    # the reserved fields of each form are zero (decode refuses them otherwise)
    cls, operation, is_x = code & 0x07, code & 0xF0, bool(code & 0x08)
    if code == 0x95:
        dst = src = off = imm = 0
    elif code == 0x85:
        dst = src = off = 0
    elif code == 0x05:
        dst = src = imm = 0
    elif code == 0x06:
        dst = src = off = 0
        imm = draw(st.integers(-3, 8))
    elif cls in (0x04, 0x07) and operation in (0x80, 0xD0):
        src = 0
        off = 0
        imm = imm if operation == 0xD0 else 0
    elif cls in (0x04, 0x05, 0x06, 0x07):
        if is_x:
            imm = 0
        else:
            src = 0
    elif cls == 0x01 or cls == 0x03:                            # LDX, STX
        imm = 0
    elif cls == 0x02:                                           # ST
        src = 0
    return bytes([code, dst | src << 4]) + (off & 0xFFFF).to_bytes(2, "little") + \
        (imm & 0xFFFFFFFF).to_bytes(4, "little")


mostly_decodable_program_bytes = st.lists(insn_slot_bytes(), min_size=1, max_size=30).map(
    lambda slots: b"".join(slots) + bytes([0x95]) + bytes(7))
