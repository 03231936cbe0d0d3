"""The "ubpf" assembly dialect: the syntax of the BPF conformance suite.

``mnemonic operands`` with ``%rN`` registers and ``[%rN+off]`` memory operands, e.g.
``add32 %r0, 1``, ``ldxdw %r0, [%r1+8]``, ``jne %r1, 0x8, +1``, ``lock fetch add [%r10-8], %r1``.
Immediates follow that suite's assembler: decimal within s32, hexadecimal within u32.
The jump target ``exit`` without such a label means the program's last ``exit``.
"""
from __future__ import annotations

from types import MappingProxyType

import re

from . import opcodes as op
from .asm_common import LABEL_NAME, Pending, check_range, parse_int, parse_target, resolve
from .errors import BpfAssembleError
from .insn import Insn, Program

_ALU = MappingProxyType({"add": op.BPF_ADD, "sub": op.BPF_SUB, "mul": op.BPF_MUL, "div": op.BPF_DIV, "or": op.BPF_OR,
        "and": op.BPF_AND, "lsh": op.BPF_LSH, "rsh": op.BPF_RSH, "mod": op.BPF_MOD, "xor": op.BPF_XOR,
        "mov": op.BPF_MOV, "arsh": op.BPF_ARSH})
_SIGNED = MappingProxyType({"sdiv": op.BPF_DIV, "smod": op.BPF_MOD})
_JMP = MappingProxyType({"jeq": op.BPF_JEQ, "jgt": op.BPF_JGT, "jge": op.BPF_JGE, "jset": op.BPF_JSET,
        "jne": op.BPF_JNE, "jsgt": op.BPF_JSGT, "jsge": op.BPF_JSGE, "jlt": op.BPF_JLT,
        "jle": op.BPF_JLE, "jslt": op.BPF_JSLT, "jsle": op.BPF_JSLE})
_SIZE = MappingProxyType({"b": op.BPF_B, "h": op.BPF_H, "w": op.BPF_W, "dw": op.BPF_DW})
_ATOMIC = MappingProxyType({"add": op.BPF_ADD, "and": op.BPF_AND, "or": op.BPF_OR, "xor": op.BPF_XOR})
_MOVSX = MappingProxyType({"movsx832": (op.BPF_ALU, 8), "movsx1632": (op.BPF_ALU, 16), "movsx864": (op.BPF_ALU64, 8),
          "movsx1664": (op.BPF_ALU64, 16), "movsx3264": (op.BPF_ALU64, 32)})
_MEM = re.compile(r"^\[\s*%r(\d+)\s*(?:([+-])\s*(0[xX][0-9a-fA-F]+|\d+))?\s*\]$")
_REG = re.compile(r"^%r(\d+)$")
EXIT_LABEL = "exit"


def _reg(text: str, line: int) -> int:
    m = _REG.match(text.strip())
    if not m or int(m.group(1)) > 10:
        raise BpfAssembleError(f"Invalid register {text.strip()!r}", line)
    return int(m.group(1))


def _is_reg(text: str) -> bool:
    return text.strip().startswith("%")


def _imm32(text: str, line: int) -> int:
    """The conformance suite's rule: decimal must fit s32, hexadecimal must fit u32."""
    value = parse_int(text, line, "immediate")
    body = text.strip().lstrip("+-")
    if body.lower().startswith("0x"):
        return check_range(value, -(1 << 32) + 1, (1 << 32) - 1, line, "immediate")
    return check_range(value, -(1 << 31), (1 << 31) - 1, line, "immediate")


def _mem(text: str, line: int) -> tuple[int, int]:
    m = _MEM.match(text.strip())
    if not m:
        raise BpfAssembleError(f"expected a memory operand [%rN+off], got {text.strip()!r}", line)
    off = int(m.group(3), 0) if m.group(3) else 0
    off = -off if m.group(2) == "-" else off
    return _reg("%r" + m.group(1), line), check_range(off, -(1 << 15), (1 << 15) - 1, line, "offset")


def _operands(rest: str) -> list[str]:
    rest = rest.strip()
    return [p.strip() for p in rest.split(",")] if rest else []


def _need(ops: list[str], n: int, mnemonic: str, line: int) -> None:
    if len(ops) != n:
        raise BpfAssembleError(f"Invalid number of operands for {mnemonic}: expected {n}, got {len(ops)}", line)


def parse_ubpf(text: str) -> Program:
    pending: list[Pending] = []
    labels: dict[str, int] = {}
    exits: list[int] = []
    slot = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line.startswith("--"):
            raise BpfAssembleError(f"unknown directive {line!r}", lineno)
        while True:
            m = re.match(rf"^({LABEL_NAME})\s*:\s*(.*)$", line)
            if not m:
                break
            if m.group(1) in labels:
                raise BpfAssembleError(f"label {m.group(1)!r} defined twice", lineno)
            labels[m.group(1)] = slot
            line = m.group(2).strip()
        if not line:
            continue
        p = _statement(line, lineno)
        if line == "exit":
            exits.append(slot)
        pending.append(p)
        slot += p.slots

    def fallback(name: str, here: int) -> int | None:
        return exits[-1] if name == EXIT_LABEL and exits else None

    return resolve(pending, labels, fallback)


def _statement(text: str, line: int) -> Pending:
    parts = text.split(None, 1)
    mnemonic, rest = parts[0].lower(), (parts[1] if len(parts) > 1 else "")
    if mnemonic == "lock":
        return _lock(rest, line)
    ops = _operands(rest)
    P = lambda fn, slots=1: Pending(fn, line, slots)  # noqa: E731

    if mnemonic == "exit":
        _need(ops, 0, mnemonic, line)
        return P(lambda rel: Insn(op.BPF_JMP | op.BPF_EXIT))
    if mnemonic in ("ja", "ja32"):
        _need(ops, 1, mnemonic, line)
        t = parse_target(ops[0], line)
        if mnemonic == "ja":
            return P(lambda rel: Insn(op.BPF_JMP | op.BPF_JA, off=check_range(rel(t), -(1 << 15), (1 << 15) - 1, line, "jump offset")))
        return P(lambda rel: Insn(op.BPF_JMP32 | op.BPF_JA, imm=check_range(rel(t), -(1 << 31), (1 << 31) - 1, line, "jump offset")))
    if mnemonic == "call":
        if len(ops) == 1 and ops[0].startswith("local "):
            t = parse_target(ops[0][6:], line)
            return P(lambda rel: Insn(op.BPF_JMP | op.BPF_CALL, 0, op.BPF_PSEUDO_CALL, 0, rel(t)))
        _need(ops, 1, mnemonic, line)
        if _is_reg(ops[0]):
            r = _reg(ops[0], line)
            return P(lambda rel: Insn(op.BPF_JMP | op.BPF_CALL | op.BPF_X, r))
        imm = _imm32(ops[0], line)
        return P(lambda rel: Insn(op.BPF_JMP | op.BPF_CALL, 0, 0, 0, imm))
    if mnemonic == "lddw":
        _need(ops, 2, mnemonic, line)
        d = _reg(ops[0], line)
        imm = check_range(parse_int(ops[1], line), -(1 << 63), (1 << 64) - 1, line, "64-bit immediate")
        return P(lambda rel: Insn(op.OPCODE_LD_IMM64, d, 0, 0, imm), 2)
    base = mnemonic[:-2] if mnemonic.endswith("32") else mnemonic
    is32 = mnemonic.endswith("32") and mnemonic not in _MOVSX
    if base in _JMP:
        _need(ops, 3, mnemonic, line)
        cls = op.BPF_JMP32 if is32 else op.BPF_JMP
        d = _reg(ops[0], line)
        t = parse_target(ops[2], line)
        jo = lambda rel: check_range(rel(t), -(1 << 15), (1 << 15) - 1, line, "jump offset")  # noqa: E731
        if _is_reg(ops[1]):
            s = _reg(ops[1], line)
            return P(lambda rel: Insn(cls | _JMP[base] | op.BPF_X, d, s, jo(rel), 0))
        imm = _imm32(ops[1], line)
        return P(lambda rel: Insn(cls | _JMP[base] | op.BPF_K, d, 0, jo(rel), imm))
    if mnemonic in _MOVSX:
        _need(ops, 2, mnemonic, line)
        cls, bits = _MOVSX[mnemonic]
        d, s = _reg(ops[0], line), _reg(ops[1], line)
        return P(lambda rel: Insn(cls | op.BPF_MOV | op.BPF_X, d, s, bits, 0))
    if base in ("neg",):
        _need(ops, 1, mnemonic, line)
        d = _reg(ops[0], line)
        cls = op.BPF_ALU if is32 else op.BPF_ALU64
        return P(lambda rel: Insn(cls | op.BPF_NEG, d))
    if base in _ALU or base in _SIGNED:
        _need(ops, 2, mnemonic, line)
        cls = op.BPF_ALU if is32 else op.BPF_ALU64
        operation, off = (_ALU[base], 0) if base in _ALU else (_SIGNED[base], 1)
        d = _reg(ops[0], line)
        if _is_reg(ops[1]):
            s = _reg(ops[1], line)
            return P(lambda rel: Insn(cls | operation | op.BPF_X, d, s, off, 0))
        imm = _imm32(ops[1], line)
        return P(lambda rel: Insn(cls | operation | op.BPF_K, d, 0, off, imm))
    m = re.fullmatch(r"(le|be|bswap|swap)(16|32|64)", mnemonic)
    if m:
        _need(ops, 1, mnemonic, line)
        d = _reg(ops[0], line)
        if m.group(1) in ("bswap", "swap"):
            code = op.BPF_ALU64 | op.BPF_END | op.BPF_TO_LE
        else:
            code = op.BPF_ALU | op.BPF_END | (op.BPF_TO_BE if m.group(1) == "be" else op.BPF_TO_LE)
        return P(lambda rel: Insn(code, d, 0, 0, int(m.group(2))))
    m = re.fullmatch(r"(ldx|ldxs|stx|st)(b|h|w|dw)", mnemonic)
    if m:
        kind, size = m.group(1), _SIZE[m.group(2)]
        _need(ops, 2, mnemonic, line)
        if kind in ("ldx", "ldxs"):
            if kind == "ldxs" and size == op.BPF_DW:
                raise BpfAssembleError("there is no ldxsdw", line)
            d = _reg(ops[0], line)
            b, off = _mem(ops[1], line)
            mode = op.BPF_MEMSX if kind == "ldxs" else op.BPF_MEM
            return P(lambda rel: Insn(op.BPF_LDX | size | mode, d, b, off, 0))
        b, off = _mem(ops[0], line)
        if kind == "stx":
            s = _reg(ops[1], line)
            return P(lambda rel: Insn(op.BPF_STX | size | op.BPF_MEM, b, s, off, 0))
        imm = _imm32(ops[1], line)
        return P(lambda rel: Insn(op.BPF_ST | size | op.BPF_MEM, b, 0, off, imm))
    raise BpfAssembleError(f"unknown mnemonic {mnemonic!r}", line)


def _lock(rest: str, line: int) -> Pending:
    m = re.fullmatch(r"(fetch\s+)?(\w+)\s+(.+)", rest.strip())
    ops = _operands(m.group(3)) if m else []
    if m is None or len(ops) != 2:
        raise BpfAssembleError("Invalid number of operands for lock", line)
    fetch, name = bool(m.group(1)), m.group(2).lower()
    is32 = name.endswith("32")
    base = name[:-2] if is32 else name
    size = op.BPF_W if is32 else op.BPF_DW
    if base in _ATOMIC:
        imm = _ATOMIC[base] | (op.BPF_FETCH if fetch else 0)
    elif base == "xchg" and not fetch:
        imm = op.BPF_XCHG
    elif base == "cmpxchg" and not fetch:
        imm = op.BPF_CMPXCHG
    else:
        raise BpfAssembleError(f"unknown atomic operation {name!r}", line)
    d, off = _mem(ops[0], line)
    s = _reg(ops[1], line)
    return Pending(lambda rel: Insn(op.BPF_STX | size | op.BPF_ATOMIC, d, s, off, imm), line)
