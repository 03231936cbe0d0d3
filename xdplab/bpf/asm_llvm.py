"""The "llvm" assembly dialect: the syntax ``llvm-objdump -d`` prints for BPF.

Accepts what LLVM prints (including v4 forms of LLVM 17+: ``s/=``, ``s%=``, ``(s8)`` casts,
``bswap16``, ``gotol``, ``*(s8 *)`` loads, ``*(u32 *)(r10 - 4) = 5``), the extensions
documented in :mod:`xdplab.bpf.disasm`, labels (``name:``), comments (``#``, ``//``, ``;``),
and whole ``llvm-objdump`` listings (addresses, raw bytes, ``<sym>`` annotations,
relocation lines and ``<func>:`` headers are skipped or turned into labels).
"""
from __future__ import annotations

from types import MappingProxyType

import re
from typing import Any, Callable, Mapping

from . import opcodes as op
from .asm_common import LABEL_NAME, Builder, Pending, Target, check_range, parse_int, parse_target, resolve
from .builders import (BPF_ALU32_IMM, BPF_ALU32_REG, BPF_ALU64_IMM, BPF_ALU64_REG)
from .errors import BpfAssembleError
from .insn import Insn, Program

S32 = (-(1 << 31), (1 << 32) - 1)
S16 = (-(1 << 15), (1 << 15) - 1)

_ALU_OPS = MappingProxyType({
    "+=": (op.BPF_ADD, 0), "-=": (op.BPF_SUB, 0), "*=": (op.BPF_MUL, 0), "/=": (op.BPF_DIV, 0),
    "|=": (op.BPF_OR, 0), "&=": (op.BPF_AND, 0), "<<=": (op.BPF_LSH, 0), ">>=": (op.BPF_RSH, 0),
    "%=": (op.BPF_MOD, 0), "^=": (op.BPF_XOR, 0), "=": (op.BPF_MOV, 0), "s>>=": (op.BPF_ARSH, 0),
    "s/=": (op.BPF_DIV, 1), "s%=": (op.BPF_MOD, 1),
})
_JMP_OPS = MappingProxyType({
    "==": op.BPF_JEQ, "!=": op.BPF_JNE, ">": op.BPF_JGT, ">=": op.BPF_JGE, "<": op.BPF_JLT,
    "<=": op.BPF_JLE, "s>": op.BPF_JSGT, "s>=": op.BPF_JSGE, "s<": op.BPF_JSLT,
    "s<=": op.BPF_JSLE, "&": op.BPF_JSET,
})
_ATOMIC_OPS = MappingProxyType({"+=": op.BPF_ADD, "&=": op.BPF_AND, "|=": op.BPF_OR, "^=": op.BPF_XOR})
_FETCH_OPS = MappingProxyType({"add": op.BPF_ADD, "and": op.BPF_AND, "or": op.BPF_OR, "xor": op.BPF_XOR})
_SIZES = MappingProxyType({"8": op.BPF_B, "16": op.BPF_H, "32": op.BPF_W, "64": op.BPF_DW})
_PSEUDO = MappingProxyType({name: kind for kind, name in op.LD_IMM64_KINDS.items() if kind})

REG = r"([rw])(\d+)"
NUM = r"[+-]?(?:0[xX][0-9a-fA-F]+|\d+)"
MEMREF = rf"\(r(\d+)\s*([+-])\s*({NUM})\)"
TGT = rf"([+-]?(?:0[xX][0-9a-fA-F]+|\d+)|{LABEL_NAME})"

_OBJDUMP_PREFIX = re.compile(r"^\s*[0-9a-fA-F]+:\s+(?:[0-9a-fA-F]{2}\s)+\s*")
_NUMBERED_PREFIX = re.compile(r"^\s*\d+:\s+")
_OBJDUMP_FUNC = re.compile(rf"^[0-9a-fA-F]+\s+<({LABEL_NAME})>:$")
_OBJDUMP_NOISE = re.compile(r"^(?:.*file format .*|Disassembly of section .*|[0-9a-fA-F]+:\s+R_BPF\w*\s.*)$")
_ANNOTATION = re.compile(r"\s*<[^<>]*>\s*$")

# What ``re.Match.groups()`` gives a builder: typeshed types it ``str | Any`` because a group
# that did not take part in the match is None (builders test such optional groups explicitly).
Groups = tuple[str | Any, ...]

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple([(re.compile("^" + p + "$"), name) for p, name in [
    (r"exit", "exit"),
    (rf"goto\s+{TGT}", "ja"),
    (rf"gotol\s+{TGT}", "gotol"),
    (rf"if\s+{REG}\s*(==|!=|s>=|s<=|s>|s<|>=|<=|>|<|&)\s*(?:{REG}|({NUM}))\s+goto\s+{TGT}", "jcond"),
    (r"callx\s+r(\d+)", "callx"),
    (rf"call\s+pc\s*({NUM})", "call_pc"),
    (rf"call\s+kfunc\(\s*({NUM})\s*(?:,\s*({NUM})\s*)?\)", "call_kfunc"),
    (rf"call\s+({NUM})", "call"),
    (rf"call\s+({LABEL_NAME})", "call_label"),
    (rf"r(\d+)\s*=\s*({NUM})\s+ll", "lddw"),
    (rf"r(\d+)\s*=\s*(map_fd|map_value|btf_id|func|map_idx|map_idx_value)\(\s*([^,()]+?)\s*(?:,\s*({NUM})\s*)?\)\s+ll", "lddw_pseudo"),
    (rf"{REG}\s*=\s*\*\(([us])(8|16|32|64)\s*\*\)\s*{MEMREF}", "ldx"),
    (rf"\*\(u(8|16|32|64)\s*\*\)\s*{MEMREF}\s*=\s*{REG}", "stx"),
    (rf"\*\(u(8|16|32|64)\s*\*\)\s*{MEMREF}\s*=\s*({NUM})", "st"),
    (rf"lock\s+\*\(u(32|64)\s*\*\)\s*{MEMREF}\s*(\+=|&=|\|=|\^=)\s*{REG}", "atomic"),
    (rf"{REG}\s*=\s*atomic_fetch_(add|and|or|xor)\(\s*\(u(32|64)\s*\*\)\s*{MEMREF}\s*,\s*{REG}\s*\)", "atomic_fetch"),
    (rf"{REG}\s*=\s*xchg(?:32)?_(32|64)\(\s*r(\d+)\s*([+-])\s*({NUM})\s*,\s*{REG}\s*\)", "xchg"),
    (rf"{REG}\s*=\s*cmpxchg(?:32)?_(32|64)\(\s*r(\d+)\s*([+-])\s*({NUM})\s*,\s*{REG}\s*,\s*{REG}\s*\)", "cmpxchg"),
    (r"r(\d+)\s*=\s*(le|be|bswap)(16|32|64)\s+r(\d+)", "end"),
    (rf"{REG}\s*=\s*-{REG}", "neg"),
    (rf"{REG}\s*=\s*\(s(8|16|32)\)\s*{REG}", "movsx"),
    (rf"r(\d+)\s*=\s*\*\(u(8|16|32|64)\s*\*\)\s*skb\[\s*({NUM})\s*\]", "ld_abs"),
    (rf"r(\d+)\s*=\s*\*\(u(8|16|32|64)\s*\*\)\s*skb\[\s*r(\d+)\s*(?:([+-])\s*({NUM}))?\s*\]", "ld_ind"),
    (rf"{REG}\s*(s>>=|s/=|s%=|<<=|>>=|\+=|-=|\*=|/=|\|=|&=|%=|\^=|=)\s*(?:{REG}|({NUM}))", "alu"),
]])


def _reg(text: str, line: int) -> int:
    n = int(text)
    if n > 10:
        raise BpfAssembleError(f"invalid register r{n}", line)
    return n


def _memoff(sign: str, num: str, line: int) -> int:
    value = parse_int(num, line, "offset")
    value = -value if sign == "-" else value
    return check_range(value, *S16, line, "offset")


def _width_reg(kind: str, want64: bool, line: int, text: str) -> None:
    if (kind == "r") != want64:
        raise BpfAssembleError(f"register width does not match the operation in {text!r}", line)


def _clean(raw: str) -> str:
    """Strip comments and objdump decoration from one line."""
    for marker in ("//", "#", ";"):
        pos = raw.find(marker)
        if pos >= 0:
            raw = raw[:pos]
    text = raw.strip()
    if not text:
        return ""
    m = _OBJDUMP_PREFIX.match(text)
    if m:
        text = text[m.end():]
    else:
        m = _NUMBERED_PREFIX.match(text)
        if m:
            text = text[m.end():]
    return _ANNOTATION.sub("", text).strip()


def parse_llvm(text: str) -> Program:
    pending: list[Pending] = []
    labels: dict[str, int] = {}
    slot = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if _OBJDUMP_NOISE.match(stripped):
            continue
        m = _OBJDUMP_FUNC.match(stripped)
        line = stripped if m else _clean(raw)
        if m:
            labels.setdefault(m.group(1), slot)
            continue
        while True:
            lm = re.match(rf"^({LABEL_NAME})\s*:\s*(.*)$", line)
            if not lm or lm.group(1) in ("r", "w"):
                break
            name = lm.group(1)
            if name in labels:
                raise BpfAssembleError(f"label {name!r} defined twice", lineno)
            labels[name] = slot
            line = lm.group(2).strip()
        if not line:
            continue
        p = _statement(line, lineno)
        pending.append(p)
        slot += p.slots
    return resolve(pending, labels)


def _statement(text: str, line: int) -> Pending:
    for pattern, name in _PATTERNS:
        m = pattern.match(text)
        if m:
            return _BUILD[name](m.groups(), line, text)
    raise BpfAssembleError(f"cannot parse {text!r}", line)


def _p(line: int, fn: Builder, slots: int = 1) -> Pending:
    return Pending(fn, line, slots)


def _b_exit(g: Groups, line: int, text: str) -> Pending:
    return _p(line, lambda rel: Insn(op.BPF_JMP | op.BPF_EXIT))


def _b_ja(g: Groups, line: int, text: str) -> Pending:
    t = parse_target(g[0], line)
    return _p(line, lambda rel: Insn(op.BPF_JMP | op.BPF_JA, off=check_range(rel(t), *S16, line, "jump offset")))


def _b_gotol(g: Groups, line: int, text: str) -> Pending:
    t = parse_target(g[0], line)
    return _p(line, lambda rel: Insn(op.BPF_JMP32 | op.BPF_JA, imm=check_range(rel(t), -(1 << 31), (1 << 31) - 1, line, "jump offset")))


def _b_jcond(g: Groups, line: int, text: str) -> Pending:
    kind, dst, sym, skind, sreg, num, tgt = g
    is64 = kind == "r"
    cls = op.BPF_JMP if is64 else op.BPF_JMP32
    t = parse_target(tgt, line)
    d = _reg(dst, line)
    if sreg is not None:
        _width_reg(skind, is64, line, text)
        s = _reg(sreg, line)
        return _p(line, lambda rel: Insn(cls | _JMP_OPS[sym] | op.BPF_X, d, s,
                                         check_range(rel(t), *S16, line, "jump offset"), 0))
    imm = check_range(parse_int(num, line, "immediate"), *S32, line, "immediate")
    return _p(line, lambda rel: Insn(cls | _JMP_OPS[sym] | op.BPF_K, d, 0,
                                     check_range(rel(t), *S16, line, "jump offset"), imm))


def _b_callx(g: Groups, line: int, text: str) -> Pending:
    d = _reg(g[0], line)
    return _p(line, lambda rel: Insn(op.BPF_JMP | op.BPF_CALL | op.BPF_X, d))


def _b_call_pc(g: Groups, line: int, text: str) -> Pending:
    imm = check_range(parse_int(g[0], line), -(1 << 31), (1 << 31) - 1, line, "call offset")
    return _p(line, lambda rel: Insn(op.BPF_JMP | op.BPF_CALL, 0, op.BPF_PSEUDO_CALL, 0, imm))


def _b_call_kfunc(g: Groups, line: int, text: str) -> Pending:
    imm = check_range(parse_int(g[0], line), *S32, line, "kfunc BTF id")
    off = check_range(parse_int(g[1], line), *S16, line, "kfunc module index") if g[1] else 0
    return _p(line, lambda rel: Insn(op.BPF_JMP | op.BPF_CALL, 0, op.BPF_PSEUDO_KFUNC_CALL, off, imm))


def _b_call(g: Groups, line: int, text: str) -> Pending:
    imm = check_range(parse_int(g[0], line), *S32, line, "helper id")
    return _p(line, lambda rel: Insn(op.BPF_JMP | op.BPF_CALL, 0, 0, 0, imm))


def _b_call_label(g: Groups, line: int, text: str) -> Pending:
    t: Target = g[0]
    return _p(line, lambda rel: Insn(op.BPF_JMP | op.BPF_CALL, 0, op.BPF_PSEUDO_CALL, 0, rel(t)))


def _b_lddw(g: Groups, line: int, text: str) -> Pending:
    d = _reg(g[0], line)
    imm = check_range(parse_int(g[1], line), -(1 << 63), (1 << 64) - 1, line, "64-bit immediate")
    return _p(line, lambda rel: Insn(op.OPCODE_LD_IMM64, d, 0, 0, imm), 2)


def _b_lddw_pseudo(g: Groups, line: int, text: str) -> Pending:
    d = _reg(g[0], line)
    kind = _PSEUDO[g[1]]
    two = kind in (op.BPF_PSEUDO_MAP_VALUE, op.BPF_PSEUDO_MAP_IDX_VALUE) or \
        (kind == op.BPF_PSEUDO_BTF_ID and g[3] is not None)   # btf_id(ID, BTF_FD): module BTF
    if two != (g[3] is not None):
        raise BpfAssembleError(f"{g[1]}() takes {'two' if two else 'one'} argument(s)", line)
    hi = check_range(parse_int(g[3], line), *S32, line, "value offset") & 0xFFFFFFFF if two else 0
    if kind == op.BPF_PSEUDO_FUNC:
        t = parse_target(g[2], line)
        return _p(line, lambda rel: Insn(op.OPCODE_LD_IMM64, d, kind, 0,
                                         check_range(rel(t), *S32, line, "func offset") & 0xFFFFFFFF), 2)
    lo = check_range(parse_int(g[2], line), *S32, line, "immediate") & 0xFFFFFFFF
    return _p(line, lambda rel: Insn(op.OPCODE_LD_IMM64, d, kind, 0, (hi << 32) | lo), 2)


def _b_ldx(g: Groups, line: int, text: str) -> Pending:
    kind, dst, sign, bits, base, s, num = g
    if bits == "64" and sign == "s":
        raise BpfAssembleError("there is no sign-extending 64-bit load", line)
    if kind == "w" and bits == "64":
        raise BpfAssembleError("a 64-bit load needs an r register", line)
    mode = op.BPF_MEMSX if sign == "s" else op.BPF_MEM
    d, b, off = _reg(dst, line), _reg(base, line), _memoff(s, num, line)
    return _p(line, lambda rel: Insn(op.BPF_LDX | _SIZES[bits] | mode, d, b, off, 0))


def _b_stx(g: Groups, line: int, text: str) -> Pending:
    bits, base, s, num, kind, src = g
    if kind == "w" and bits == "64":
        raise BpfAssembleError("a 64-bit store needs an r register", line)
    d, r, off = _reg(base, line), _reg(src, line), _memoff(s, num, line)
    return _p(line, lambda rel: Insn(op.BPF_STX | _SIZES[bits] | op.BPF_MEM, d, r, off, 0))


def _b_st(g: Groups, line: int, text: str) -> Pending:
    bits, base, s, num, value = g
    d, off = _reg(base, line), _memoff(s, num, line)
    imm = check_range(parse_int(value, line), *S32, line, "immediate")
    return _p(line, lambda rel: Insn(op.BPF_ST | _SIZES[bits] | op.BPF_MEM, d, 0, off, imm))


def _b_atomic(g: Groups, line: int, text: str) -> Pending:
    bits, base, s, num, sym, kind, src = g
    _width_reg(kind, bits == "64", line, text)
    d, r, off = _reg(base, line), _reg(src, line), _memoff(s, num, line)
    return _p(line, lambda rel: Insn(op.BPF_STX | _SIZES[bits] | op.BPF_ATOMIC, d, r, off, _ATOMIC_OPS[sym]))


def _b_atomic_fetch(g: Groups, line: int, text: str) -> Pending:
    k1, r1, name, bits, base, s, num, k2, r2 = g
    if r1 != r2 or k1 != k2:
        raise BpfAssembleError("atomic_fetch_* must name the same register twice", line)
    _width_reg(k1, bits == "64", line, text)
    d, r, off = _reg(base, line), _reg(r1, line), _memoff(s, num, line)
    imm = _FETCH_OPS[name] | op.BPF_FETCH
    return _p(line, lambda rel: Insn(op.BPF_STX | _SIZES[bits] | op.BPF_ATOMIC, d, r, off, imm))


def _b_xchg(g: Groups, line: int, text: str) -> Pending:
    k1, r1, bits, base, s, num, k2, r2 = g
    if r1 != r2 or k1 != k2:
        raise BpfAssembleError("xchg must name the same register twice", line)
    _width_reg(k1, bits == "64", line, text)
    d, r, off = _reg(base, line), _reg(r1, line), _memoff(s, num, line)
    return _p(line, lambda rel: Insn(op.BPF_STX | _SIZES[bits] | op.BPF_ATOMIC, d, r, off, op.BPF_XCHG))


def _b_cmpxchg(g: Groups, line: int, text: str) -> Pending:
    k0, r0, bits, base, s, num, k1, r1, k2, r2 = g
    if r0 != "0" or r1 != "0" or not (k0 == k1 == k2):
        raise BpfAssembleError("cmpxchg compares and returns r0: write r0 = cmpxchg_64(rX + off, r0, rY)", line)
    _width_reg(k0, bits == "64", line, text)
    d, r, off = _reg(base, line), _reg(r2, line), _memoff(s, num, line)
    return _p(line, lambda rel: Insn(op.BPF_STX | _SIZES[bits] | op.BPF_ATOMIC, d, r, off, op.BPF_CMPXCHG))


def _b_end(g: Groups, line: int, text: str) -> Pending:
    dst, kind, bits, src = g
    if dst != src:
        raise BpfAssembleError("byte swap must name the same register on both sides", line)
    d = _reg(dst, line)
    if kind == "bswap":
        code = op.BPF_ALU64 | op.BPF_END | op.BPF_TO_LE
    else:
        code = op.BPF_ALU | op.BPF_END | (op.BPF_TO_BE if kind == "be" else op.BPF_TO_LE)
    return _p(line, lambda rel: Insn(code, d, 0, 0, int(bits)))


def _b_neg(g: Groups, line: int, text: str) -> Pending:
    k1, r1, k2, r2 = g
    if r1 != r2 or k1 != k2:
        raise BpfAssembleError("negation must name the same register on both sides", line)
    cls = op.BPF_ALU64 if k1 == "r" else op.BPF_ALU
    d = _reg(r1, line)
    return _p(line, lambda rel: Insn(cls | op.BPF_NEG, d))


def _b_movsx(g: Groups, line: int, text: str) -> Pending:
    k1, dst, bits, k2, src = g
    _width_reg(k2, k1 == "r", line, text)
    if k1 == "w" and bits == "32":
        raise BpfAssembleError("w = (s32)w is not an instruction", line)
    cls = op.BPF_ALU64 if k1 == "r" else op.BPF_ALU
    d, s = _reg(dst, line), _reg(src, line)
    return _p(line, lambda rel: Insn(cls | op.BPF_MOV | op.BPF_X, d, s, int(bits), 0))


def _b_ld_abs(g: Groups, line: int, text: str) -> Pending:
    if g[0] != "0":
        raise BpfAssembleError("legacy packet loads always load into r0", line)
    imm = check_range(parse_int(g[2], line), *S32, line, "offset")
    size = _SIZES[g[1]]
    if size == op.BPF_DW:
        raise BpfAssembleError("there is no 64-bit legacy packet load", line)
    return _p(line, lambda rel: Insn(op.BPF_LD | size | op.BPF_ABS, 0, 0, 0, imm))


def _b_ld_ind(g: Groups, line: int, text: str) -> Pending:
    dst, bits, src, sign, num = g
    if dst != "0":
        raise BpfAssembleError("legacy packet loads always load into r0", line)
    imm = parse_int(num, line) if num else 0
    imm = check_range(-imm if sign == "-" else imm, *S32, line, "offset")
    size = _SIZES[bits]
    if size == op.BPF_DW:
        raise BpfAssembleError("there is no 64-bit legacy packet load", line)
    s = _reg(src, line)
    return _p(line, lambda rel: Insn(op.BPF_LD | size | op.BPF_IND, 0, s, 0, imm))


def _b_alu(g: Groups, line: int, text: str) -> Pending:
    kind, dst, sym, skind, sreg, num = g
    is64 = kind == "r"
    operation, off = _ALU_OPS[sym]
    d = _reg(dst, line)
    if sreg is not None:
        _width_reg(skind, is64, line, text)
        s = _reg(sreg, line)
        make = BPF_ALU64_REG if is64 else BPF_ALU32_REG
        return _p(line, lambda rel: Insn(make(operation, d, s).opcode, d, s, off, 0))
    imm = check_range(parse_int(num, line, "immediate"), *S32, line, "immediate")
    make_imm = BPF_ALU64_IMM if is64 else BPF_ALU32_IMM
    return _p(line, lambda rel: Insn(make_imm(operation, d, 0).opcode, d, 0, off, imm))


_BUILD: Mapping[str, Callable[[Groups, int, str], Pending]] = MappingProxyType({
    name[3:]: fn for name, fn in globals().items() if name.startswith("_b_")})
