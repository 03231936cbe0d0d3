"""Instructions and programs as immutable values, and their kernel encoding.

``struct bpf_insn`` (linux:include/uapi/linux/bpf.h) is 8 bytes, little-endian on the
targets the RFC cares about: ``u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm``.
On a little-endian host the bitfield puts dst_reg in the low nibble of byte 1.
``BPF_LD | BPF_IMM | BPF_DW`` (ld_imm64) takes two slots: the second slot has
code = dst = src = off = 0 and carries the upper 32 bits of the constant in its imm.

An :class:`Insn` holds that ld_imm64 as *one* value whose ``imm`` has all 64 bits (as
cilium/ebpf's ``asm.Instruction`` does), so a :class:`Program` is a plain sequence of
values; slot (kernel) numbering is derived from it for jumps and error messages.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterable, Iterator, overload

from . import opcodes as op
from .errors import BpfDecodeError, BpfVerifyError

_INSN = struct.Struct("<BBhi")
U64 = (1 << 64) - 1
U32 = (1 << 32) - 1


@dataclass(frozen=True, slots=True)
class Insn:
    """One eBPF instruction: the five fields of ``struct bpf_insn``.

    ``off`` is normalised to a signed 16-bit value and ``imm`` to a signed 32-bit value
    (unsigned spellings such as 0xffffffff are accepted), except for ld_imm64 whose ``imm``
    is the full constant as an unsigned 64-bit integer.
    """

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def __post_init__(self) -> None:
        for name, value in (("opcode", self.opcode), ("dst", self.dst), ("src", self.src),
                            ("off", self.off), ("imm", self.imm)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise BpfVerifyError(f"field {name} must be an int, not {type(value).__name__}")
        if not 0 <= self.opcode <= 0xFF:
            raise BpfVerifyError(f"opcode {self.opcode:#x} does not fit 8 bits")
        if not 0 <= self.dst <= 0xF:
            raise BpfVerifyError(f"dst register {self.dst} does not fit 4 bits")
        if not 0 <= self.src <= 0xF:
            raise BpfVerifyError(f"src register {self.src} does not fit 4 bits")
        if not -0x8000 <= self.off <= 0xFFFF:
            raise BpfVerifyError(f"off {self.off} does not fit 16 bits")
        if self.off > 0x7FFF:
            object.__setattr__(self, "off", self.off - 0x10000)
        if self.opcode == op.OPCODE_LD_IMM64:
            if not -(1 << 63) <= self.imm <= U64:
                raise BpfVerifyError(f"imm {self.imm:#x} does not fit 64 bits")
            object.__setattr__(self, "imm", self.imm & U64)
        else:
            if not -(1 << 31) <= self.imm <= U32:
                raise BpfVerifyError(f"imm {self.imm:#x} does not fit 32 bits")
            if self.imm > 0x7FFFFFFF:
                object.__setattr__(self, "imm", self.imm - (1 << 32))

    @property
    def slots(self) -> int:
        """How many 8-byte slots the instruction occupies (2 for ld_imm64)."""
        return 2 if self.opcode == op.OPCODE_LD_IMM64 else 1

    @property
    def cls(self) -> int:
        return self.opcode & 0x07

    def encode(self) -> bytes:
        """The instruction's bytes, little-endian, as the kernel stores them."""
        regs = (self.src << 4) | self.dst
        if self.opcode == op.OPCODE_LD_IMM64:
            lo = self.imm & U32
            hi = self.imm >> 32
            return (_INSN.pack(self.opcode, regs, self.off, _s32(lo))
                    + _INSN.pack(0, 0, 0, _s32(hi)))
        return _INSN.pack(self.opcode, regs, self.off, self.imm)


def _s32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


@dataclass(frozen=True)
class Program:
    """An immutable sequence of :class:`Insn`.

    Indexing and iteration are over instructions; ``slot_of`` and ``index_at_slot``
    translate to and from kernel slot numbering, in which jump offsets count.
    """

    insns: tuple[Insn, ...]
    _slot_of: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _index_at_slot: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __init__(self, insns: Iterable[Insn] = ()) -> None:
        items = tuple(insns)
        for i, insn in enumerate(items):
            if not isinstance(insn, Insn):
                raise BpfVerifyError(f"element {i} is {type(insn).__name__}, not Insn")
        object.__setattr__(self, "insns", items)
        slot_of = []
        at_slot = []
        slot = 0
        for i, insn in enumerate(items):
            slot_of.append(slot)
            at_slot.append(i)
            if insn.opcode == op.OPCODE_LD_IMM64:
                at_slot.append(-1)
            slot += insn.slots
        object.__setattr__(self, "_slot_of", tuple(slot_of))
        object.__setattr__(self, "_index_at_slot", tuple(at_slot))

    # Sequence protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.insns)

    def __iter__(self) -> Iterator[Insn]:
        return iter(self.insns)

    @overload
    def __getitem__(self, i: int) -> Insn: ...
    @overload
    def __getitem__(self, i: slice) -> "Program": ...

    def __getitem__(self, i: int | slice) -> "Insn | Program":
        if isinstance(i, slice):
            return Program(self.insns[i])
        return self.insns[i]

    def __add__(self, other: "Program | Iterable[Insn]") -> "Program":
        return Program(self.insns + tuple(other))

    def __repr__(self) -> str:
        return f"Program({len(self.insns)} insns, {self.slot_count} slots)"

    # Slot numbering -------------------------------------------------------------------
    @property
    def slot_count(self) -> int:
        """Length in 8-byte slots (``prog->len`` in the kernel)."""
        return len(self._index_at_slot)

    def slot_of(self, index: int) -> int:
        """Kernel slot number of instruction ``index``."""
        return self._slot_of[index]

    def index_at_slot(self, slot: int) -> int | None:
        """Instruction index starting at ``slot``; None for an ld_imm64 second slot or
        a slot outside the program."""
        if 0 <= slot < len(self._index_at_slot):
            i = self._index_at_slot[slot]
            return None if i < 0 else i
        return None

    # Encoding ---------------------------------------------------------------------------
    def encode(self) -> bytes:
        """The program's bytes in the kernel layout (what BPF_PROG_LOAD takes)."""
        return b"".join(insn.encode() for insn in self.insns)

    @classmethod
    def decode(cls, data: bytes) -> "Program":
        """Decode kernel-layout bytes; every encoding rule of RFC 9669 is enforced.

        Raises :class:`BpfDecodeError` naming the slot for a truncated buffer, an unknown
        opcode, a reserved field that is not zero, or a broken ld_imm64 pair.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BpfDecodeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) % 8:
            raise BpfDecodeError(f"length {len(data)} is not a multiple of 8 bytes",
                                 len(data) // 8)
        nslots = len(data) // 8
        out: list[Insn] = []
        slot = 0
        while slot < nslots:
            code, regs, off, imm = _INSN.unpack_from(data, slot * 8)
            dst, src = regs & 0xF, regs >> 4
            if code == op.OPCODE_LD_IMM64:
                if slot + 1 >= nslots:
                    raise BpfDecodeError("ld_imm64 lacks its second slot", slot)
                c2, r2, o2, hi = _INSN.unpack_from(data, slot * 8 + 8)
                if c2 or r2 or o2:
                    raise BpfDecodeError("ld_imm64 second slot must have code, registers and "
                                         "off zero", slot + 1)
                insn = Insn(code, dst, src, off, ((hi & U32) << 32) | (imm & U32))
            else:
                insn = Insn(code, dst, src, off, imm)
            problem = encoding_problem(insn)
            if problem:
                raise BpfDecodeError(problem, slot)
            out.append(insn)
            slot += insn.slots
        return cls(out)


def encode(program: Program | Iterable[Insn]) -> bytes:
    """Encode a program (or any iterable of Insn) to kernel-layout bytes."""
    return (program if isinstance(program, Program) else Program(program)).encode()


def decode(data: bytes) -> Program:
    """Decode kernel-layout bytes to a :class:`Program` (see :meth:`Program.decode`)."""
    return Program.decode(data)


# --------------------------------------------------------------------------------------
# Encoding rules: which field combinations are instructions at all (RFC 9669 section 3-5,
# linux:kernel/bpf/verifier.c check_alu_op/check_mem_access/do_check reserved-field tests).
# --------------------------------------------------------------------------------------

def encoding_problem(insn: Insn) -> str | None:
    """Why ``insn`` is not a valid instruction encoding, or None if it is.

    These are the reserved-field rules the verifier enforces with messages such as
    "BPF_ALU uses reserved fields" (verifier.c check_alu_op) and the opcode table of
    RFC 9669.  Registers above r10 are refused as "R%d is invalid".
    """
    code, dst, src, off, imm = insn.opcode, insn.dst, insn.src, insn.off, insn.imm
    cls = code & 0x07
    if code == op.OPCODE_LD_IMM64:
        if src not in op.LD_IMM64_KINDS:
            return f"ld_imm64 has unknown src_reg kind {src}"
        if off:
            return "ld_imm64 uses reserved field off"
        if imm >> 32 and src in (op.BPF_PSEUDO_MAP_FD, op.BPF_PSEUDO_FUNC, op.BPF_PSEUDO_MAP_IDX):
            # verifier.c resolve_pseudo_ldimm64: "unrecognized bpf_ld_imm64 insn"
            return "unrecognized bpf_ld_imm64 insn: second slot imm must be 0 for this src_reg"
        return _reg_problem(dst)
    if cls in (op.BPF_ALU, op.BPF_ALU64):
        return _alu_problem(code, dst, src, off, imm)
    if cls in (op.BPF_JMP, op.BPF_JMP32):
        return _jmp_problem(code, dst, src, off, imm)
    if cls == op.BPF_LDX:
        mode, size = code & 0xE0, code & 0x18
        if mode == op.BPF_MEMSX and size == op.BPF_DW:
            return "sign-extending load of 8 bytes does not exist"
        if mode not in (op.BPF_MEM, op.BPF_MEMSX):
            return f"unknown opcode {code:#04x} (ldx mode {mode:#x})"
        if imm:
            return "BPF_LDX uses reserved field imm"
        return _reg_problem(dst) or _reg_problem(src)
    if cls == op.BPF_ST:
        if code & 0xE0 != op.BPF_MEM:
            return f"unknown opcode {code:#04x} (st mode)"
        if src:
            return "BPF_ST uses reserved field src_reg"
        return _reg_problem(dst)
    if cls == op.BPF_STX:
        mode, size = code & 0xE0, code & 0x18
        if mode == op.BPF_MEM:
            if imm:
                return "BPF_STX uses reserved field imm"
            return _reg_problem(dst) or _reg_problem(src)
        if mode == op.BPF_ATOMIC:
            if size not in (op.BPF_W, op.BPF_DW):
                return "atomic operations exist only for 4 and 8 bytes"
            if imm not in op.ATOMIC_OPS:
                return f"unknown atomic operation imm={imm:#x}"
            return _reg_problem(dst) or _reg_problem(src)
        return f"unknown opcode {code:#04x} (stx mode {mode:#x})"
    if cls == op.BPF_LD:
        mode, size = code & 0xE0, code & 0x18
        if mode in (op.BPF_ABS, op.BPF_IND) and size != op.BPF_DW:
            # Legacy packet access (RFC 9669 5.5, "deprecated"); decoded, not executed.
            if dst or off:
                return "BPF_LD_ABS/IND uses reserved fields"
            if mode == op.BPF_ABS and src:
                return "BPF_LD_ABS uses reserved field src_reg"
            return _reg_problem(src)
        return f"unknown opcode {code:#04x}"
    return f"unknown opcode {code:#04x}"  # pragma: no cover - all 8 classes handled


def _reg_problem(reg: int) -> str | None:
    return f"R{reg} is invalid" if reg >= op.MAX_BPF_REG else None


def _alu_problem(code: int, dst: int, src: int, off: int, imm: int) -> str | None:
    cls, operation, source = code & 0x07, code & 0xF0, code & 0x08
    if operation > op.BPF_END:
        return f"unknown opcode {code:#04x}"
    if operation == op.BPF_END:
        if cls == op.BPF_ALU64 and source != op.BPF_TO_LE:
            return f"unknown opcode {code:#04x} (bswap has no BPF_TO_BE form)"
        if src or off:
            return "BPF_END uses reserved fields"
        if imm not in (16, 32, 64):
            return f"BPF_END width {imm} is not 16, 32 or 64"
        return _reg_problem(dst)
    if operation == op.BPF_NEG:
        if source != op.BPF_K or src or off or imm:
            return "BPF_NEG uses reserved fields"
        return _reg_problem(dst)
    allowed_off = {0}
    if operation in (op.BPF_DIV, op.BPF_MOD):
        allowed_off = {0, 1}          # off = 1: signed sdiv/smod (RFC 9669 4.1)
    elif operation == op.BPF_MOV and source == op.BPF_X:
        allowed_off = {0, 8, 16, 32} if cls == op.BPF_ALU64 else {0, 8, 16}  # movsx
    if off not in allowed_off:
        return f"{'BPF_ALU64' if cls == op.BPF_ALU64 else 'BPF_ALU'} uses reserved field off={off}"
    if source == op.BPF_K:
        if src:
            return f"{'BPF_ALU64' if cls == op.BPF_ALU64 else 'BPF_ALU'} uses reserved field src_reg"
    elif imm:
        return f"{'BPF_ALU64' if cls == op.BPF_ALU64 else 'BPF_ALU'} uses reserved field imm"
    return _reg_problem(dst) or _reg_problem(src)


def _jmp_problem(code: int, dst: int, src: int, off: int, imm: int) -> str | None:
    cls, operation, source = code & 0x07, code & 0xF0, code & 0x08
    if operation == op.BPF_JA:
        if source != op.BPF_K or dst or src:
            return "BPF_JA uses reserved fields"
        if cls == op.BPF_JMP and imm:
            return "BPF_JA uses reserved field imm"
        if cls == op.BPF_JMP32 and off:
            return "BPF_JA (gotol) uses reserved field off"
        return None
    if operation == op.BPF_CALL:
        if cls != op.BPF_JMP:
            return f"unknown opcode {code:#04x} (call exists only in class JMP)"
        if source == op.BPF_X:
            # callx: the target register in dst_reg, as GCC and LLVM >= 19 encode it
            # (llvm-project PR 81546, "BPF: Change callx insn encoding"); LLVM <= 18 put it in imm.
            if imm and not dst and not src and not off and 0 <= imm <= 10:
                return ("callx with the register in imm is the LLVM <= 18 encoding; this machine "
                        "uses dst_reg (GCC, LLVM >= 19)")
            if src or off or imm:
                return "BPF_CALL|BPF_X uses reserved fields"
            return _reg_problem(dst)
        if dst:
            return "BPF_CALL uses reserved field dst_reg"
        if src not in (op.BPF_HELPER_CALL, op.BPF_PSEUDO_CALL, op.BPF_PSEUDO_KFUNC_CALL):
            return f"BPF_CALL has unknown src_reg kind {src}"
        if off and src != op.BPF_PSEUDO_KFUNC_CALL:
            return "BPF_CALL uses reserved field off"
        return None
    if operation == op.BPF_EXIT:
        if cls != op.BPF_JMP or source != op.BPF_K:
            return f"unknown opcode {code:#04x} (exit exists only as 0x95)"
        if dst or src or off or imm:
            return "BPF_EXIT uses reserved fields"
        return None
    if operation > op.BPF_JSLE:
        return f"unknown opcode {code:#04x}"
    if source == op.BPF_K:
        if src:
            return "BPF_JMP uses reserved field src_reg"
    elif imm:
        return "BPF_JMP uses reserved field imm"
    return _reg_problem(dst) or _reg_problem(src)
