"""The fast path: a program compiled once into a Python function, same semantics.

The program is cut into basic blocks; each block becomes straight-line Python over local
variables ``r0``..``r10`` with the simple ALU operations and comparisons inlined (signed
comparisons as unsigned ones on values XOR-ed with the sign bit) and everything else
delegated to the same functions the reference interpreter uses
(:mod:`xdplab.bpf.semantics`, :meth:`Machine.load` and friends).  Blocks are reached through
a binary ``if pc < X`` tree; a block that jumps back to its own start becomes a Python
``while`` loop.

Exactness where it is hard:
- the instruction budget is checked per block; when the next block would cross it, the
  registers are handed back to the reference interpreter, which finishes the run and
  raises at the exact instruction;
- counts by class are kept per block execution and expanded at the end;
- faults, calls and memory touches go through the machine's own methods.
Programs with BPF-to-BPF calls or ``callx`` are not compiled (:func:`compile_program`
returns None) and run on the reference interpreter.
"""
from __future__ import annotations

from types import MappingProxyType

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, cast

from . import opcodes as op
from .disasm import branch_targets
from .errors import BpfExecuteError
from .insn import Insn, Program
from .machine import Machine
from .memory import CODE_BASE, POISON_BASE
from .semantics import M32, M64, SIGN32, SIGN64, alu32, alu64, endian, sign_extend

_SIZE = MappingProxyType({op.BPF_B: 1, op.BPF_H: 2, op.BPF_W: 4, op.BPF_DW: 8})
_CMP = MappingProxyType({op.BPF_JEQ: "==", op.BPF_JNE: "!=", op.BPF_JGT: ">", op.BPF_JGE: ">=", op.BPF_JLT: "<",
        op.BPF_JLE: "<=", op.BPF_JSGT: ">", op.BPF_JSGE: ">=", op.BPF_JSLT: "<", op.BPF_JSLE: "<="})
_SIGNED = frozenset({op.BPF_JSGT, op.BPF_JSGE, op.BPF_JSLT, op.BPF_JSLE})
_REGS = ", ".join(f"r{i}" for i in range(11))

# The generated ``_run(R, ld, st, atomic, call, PZ, n, maxn, bc)`` (see compile_program): returns
# (0, r0, None, n) at exit, or (1, slot, registers, n) to hand over to the interpreter at ``slot``.
CompiledRun = Callable[..., tuple[int, int, "tuple[int, ...] | None", int]]


@dataclass(frozen=True)
class _Block:
    start: int            # slot
    insns: tuple[tuple[int, Insn], ...]
    next_slot: int        # slot after the block


@dataclass(frozen=True)
class FastProgram:
    """A compiled program: ``source`` is the generated Python, kept for inspection."""

    program: Program
    source: str
    block_classes: tuple[tuple[tuple[int, int], ...], ...]   # per block: (class, count) pairs
    _fn: CompiledRun

    def execute(self, machine: Machine, regs: list[int]) -> int:
        """Run from slot 0 on ``machine`` (its memory, env, counters and budget)."""
        counts = machine.counts
        bc = [0] * len(self.block_classes)
        poison = tuple(POISON_BASE + r for r in range(1, 6)) if machine.env.poison_after_call else ()
        try:
            status, value, state, n = self._fn(
                regs, machine.load, machine.store, machine.atomic, machine.call, poison,
                counts.insns, machine.max_insns, bc)
        finally:
            by_class = counts.by_class
            for k, times in enumerate(bc):
                if times:
                    for cls, cnt in self.block_classes[k]:
                        by_class[cls] += cnt * times
        counts.insns = n
        if status == 0:
            return value
        if state is None:  # pragma: no cover - the generated code hands over with the registers
            raise BpfExecuteError(f"fast path: hand-over at insn {value} without registers")
        return machine.interpret(list(state), value)


def _blocks(program: Program) -> list[_Block]:
    leaders = {0}
    for i, insn in enumerate(program):
        slot = program.slot_of(i)
        cls, operation = insn.opcode & 7, insn.opcode & 0xF0
        leaders.update(branch_targets(insn, slot) if insn.opcode != op.OPCODE_LD_IMM64 else ())
        if cls in (op.BPF_JMP, op.BPF_JMP32) and operation != op.BPF_CALL:
            leaders.add(slot + 1)
    blocks: list[_Block] = []
    current: list[tuple[int, Insn]] = []
    for i, insn in enumerate(program):
        slot = program.slot_of(i)
        if slot in leaders and current:
            blocks.append(_Block(current[0][0], tuple(current), slot))
            current = []
        current.append((slot, insn))
    if current:
        blocks.append(_Block(current[0][0], tuple(current), current[-1][0] + current[-1][1].slots))
    return blocks


def _alu(insn: Insn) -> str:
    code, d, s, off, imm = insn.opcode, insn.dst, insn.src, insn.off, insn.imm
    cls, operation, is_x = code & 7, code & 0xF0, bool(code & 0x08)
    rd = f"r{d}"
    if operation == op.BPF_END:
        return f"{rd} = endian({cls}, {code & 0x08}, {imm}, {rd})"
    if cls == op.BPF_ALU64:
        if operation == op.BPF_NEG:
            return f"{rd} = (-{rd}) & M64"
        b = f"r{s}" if is_x else str(imm & M64)
        if off == 0:
            if operation == op.BPF_ADD:
                return f"{rd} = ({rd} + {b}) & M64"
            if operation == op.BPF_SUB:
                return f"{rd} = ({rd} - {b}) & M64"
            if operation == op.BPF_MUL:
                return f"{rd} = ({rd} * {b}) & M64"
            if operation == op.BPF_OR:
                return f"{rd} |= {b}"
            if operation == op.BPF_AND:
                return f"{rd} &= {b}"
            if operation == op.BPF_XOR:
                return f"{rd} ^= {b}"
            if operation == op.BPF_MOV:
                return f"{rd} = {b}"
            if operation == op.BPF_LSH:
                return f"{rd} = ({rd} << ({b} & 63)) & M64" if is_x else f"{rd} = ({rd} << {imm & 63}) & M64"
            if operation == op.BPF_RSH:
                return f"{rd} >>= ({b} & 63)" if is_x else f"{rd} >>= {imm & 63}"
            if not is_x and operation == op.BPF_DIV:
                return f"{rd} //= {b}" if imm & M64 else f"{rd} = 0"
            if not is_x and operation == op.BPF_MOD:
                return f"{rd} %= {b}" if imm & M64 else "pass"
        return f"{rd} = alu64({operation}, {off}, {rd}, {b})"
    if operation == op.BPF_NEG:
        return f"{rd} = (-{rd}) & M32"
    b = f"r{s}" if is_x else str(imm & M32)
    if off == 0:
        if operation == op.BPF_ADD:
            return f"{rd} = ({rd} + {b}) & M32"
        if operation == op.BPF_SUB:
            return f"{rd} = ({rd} - {b}) & M32"
        if operation == op.BPF_MUL:
            return f"{rd} = ({rd} * {b}) & M32"
        if operation == op.BPF_OR:
            return f"{rd} = ({rd} | {b}) & M32"
        if operation == op.BPF_AND:
            return f"{rd} = {rd} & {b} & M32"
        if operation == op.BPF_XOR:
            return f"{rd} = ({rd} ^ {b}) & M32"
        if operation == op.BPF_MOV:
            return f"{rd} = {b} & M32" if is_x else f"{rd} = {b}"
    return f"{rd} = alu32({operation}, {off}, {rd}, {b})"


def _cond(insn: Insn) -> str:
    code, d, s, imm = insn.opcode, insn.dst, insn.src, insn.imm
    cls, operation, is_x = code & 7, code & 0xF0, bool(code & 0x08)
    if cls == op.BPF_JMP:
        a, b = f"r{d}", (f"r{s}" if is_x else str(imm & M64))
        sign = SIGN64
    else:
        a, b = f"(r{d} & M32)", (f"(r{s} & M32)" if is_x else str(imm & M32))
        sign = SIGN32
    if operation == op.BPF_JSET:
        return f"{a} & {b}"
    if operation in _SIGNED:
        a = f"({a} ^ {sign})"
        b = f"({b} ^ {sign})" if is_x else str(int(b) ^ sign)
    return f"{a} {_CMP[operation]} {b}"


def _mem_addr(base: int, off: int) -> str:
    return f"r{base}" if off == 0 else f"(r{base} + {off}) & M64"


def _body_line(slot: int, insn: Insn) -> str | None:
    """Python for a non-terminating instruction (None: it terminates the block)."""
    code, d, s, off, imm = insn.opcode, insn.dst, insn.src, insn.off, insn.imm
    cls = code & 7
    if cls in (op.BPF_ALU, op.BPF_ALU64):
        return _alu(insn)
    if cls == op.BPF_LDX:
        size = _SIZE[code & 0x18]
        load = f"ld({_mem_addr(s, off)}, {size}, {slot}, {s}, {off})"
        if code & 0xE0 == op.BPF_MEMSX:
            return f"r{d} = sign_extend({load}, {8 * size})"
        return f"r{d} = {load}"
    if cls == op.BPF_ST:
        return f"st({_mem_addr(d, off)}, {_SIZE[code & 0x18]}, {imm & M64}, {slot}, {d}, {off})"
    if cls == op.BPF_STX:
        if code & 0xE0 == op.BPF_ATOMIC:
            call = f"atomic({code & 0x18}, {imm}, {_mem_addr(d, off)}, r{s}, r0, {slot}, {d}, {off})"
            if imm == op.BPF_CMPXCHG:
                return f"r0 = {call}[1]"
            if imm & op.BPF_FETCH:
                return f"r{s} = {call}[0]"
            return call
        return f"st({_mem_addr(d, off)}, {_SIZE[code & 0x18]}, r{s}, {slot}, {d}, {off})"
    if code == op.OPCODE_LD_IMM64:
        if s == op.BPF_PSEUDO_FUNC:
            lo = imm & M32
            return f"r{d} = {CODE_BASE + 8 * (slot + 1 + (lo - (1 << 32) if lo >> 31 else lo))}"
        return f"r{d} = {imm}"
    if cls == op.BPF_JMP and code & 0xF0 == op.BPF_CALL:
        kind = "kfunc" if s == op.BPF_PSEUDO_KFUNC_CALL else "helper"
        return (f"r0 = call({kind!r}, {imm}, {slot}, r1, r2, r3, r4, r5)\n"
                f"if PZ: r1, r2, r3, r4, r5 = PZ")
    return None


def _straight_line(slot: int, insn: Insn) -> str:
    """Python for an instruction inside a block (only a block's last instruction may end it)."""
    line = _body_line(slot, insn)
    if line is None:  # pragma: no cover - _blocks ends a block at every terminator
        raise BpfExecuteError("fast path: a terminator inside a basic block", slot)
    return line


def _emit_block(k: int, block: _Block, ind: str) -> list[str]:
    n = len(block.insns)
    lines: list[str] = []
    last_slot, last = block.insns[-1]
    term: tuple[int, Insn] | None = None
    body = block.insns
    if _body_line(last_slot, last) is None:
        term = (last_slot, last)
        body = block.insns[:-1]
    if term is not None and term[1].opcode & 0xF0 != op.BPF_EXIT \
            and branch_targets(term[1], term[0]) == (block.start,):
        return _emit_self_loop(k, block, body, term, n, ind)
    lines.append(f"{ind}if n + {n} > maxn: return 1, {block.start}, ({_REGS}), n")
    lines.append(f"{ind}n += {n}; bc[{k}] += 1")
    for slot, insn in body:
        lines += [ind + text for text in _straight_line(slot, insn).split("\n")]
    if term is None:
        lines.append(f"{ind}pc = {block.next_slot}; continue")
        return lines
    slot, insn = term
    operation = insn.opcode & 0xF0
    if operation == op.BPF_EXIT:
        lines.append(f"{ind}return 0, r0, None, n")
        return lines
    target = branch_targets(insn, slot)[0]
    if operation == op.BPF_JA:
        lines.append(f"{ind}pc = {target}; continue")
    else:
        lines.append(f"{ind}pc = {target} if {_cond(insn)} else {slot + 1}; continue")
    return lines


def _emit_self_loop(k: int, block: _Block, body: tuple[tuple[int, Insn], ...], term: tuple[int, Insn], n: int,
                    ind: str) -> list[str]:
    """A block that jumps back to its own start, as a counted Python ``for`` loop.

    The budget allows ``lim`` whole iterations; the loop's own counter replaces per-iteration
    bookkeeping.  If the budget runs out first, the ``else`` clause hands the registers to
    the reference interpreter at the block's start, which stops at the exact instruction.
    """
    slot, insn = term
    i2 = ind + "    "
    lines = [f"{ind}lim = (maxn - n) // {n}",
             f"{ind}for it in range(lim):"]
    for s_, ins in body:
        lines += [i2 + text for text in _straight_line(s_, ins).split("\n")]
    if insn.opcode & 0xF0 == op.BPF_JA:
        lines.append(f"{i2}pass")
    else:
        lines.append(f"{i2}if {_cond(insn)}: continue")
        lines.append(f"{i2}n += (it + 1) * {n}; bc[{k}] += it + 1")
        lines.append(f"{i2}pc = {slot + 1}; break")
    lines.append(f"{ind}else:")
    lines.append(f"{i2}n += lim * {n}; bc[{k}] += lim")
    lines.append(f"{i2}return 1, {block.start}, ({_REGS}), n")
    lines.append(f"{ind}continue")
    return lines


def _emit_tree(blocks: list[tuple[int, _Block]], ind: str) -> list[str]:
    if len(blocks) == 1:
        k, block = blocks[0]
        return _emit_block(k, block, ind)
    mid = len(blocks) // 2
    lines = [f"{ind}if pc < {blocks[mid][1].start}:"]
    lines += _emit_tree(blocks[:mid], ind + "    ")
    lines.append(f"{ind}else:")
    lines += _emit_tree(blocks[mid:], ind + "    ")
    return lines


def applicable(program: Program) -> bool:
    """Whether the fast path can run this program (no BPF-to-BPF calls, no callx)."""
    for insn in program:
        if insn.opcode & 7 == op.BPF_JMP and insn.opcode & 0xF0 == op.BPF_CALL:
            if insn.opcode & 0x08 or insn.src == op.BPF_PSEUDO_CALL:
                return False
    return True


@lru_cache(maxsize=256)   # a pure memo: the same Program always compiles to the same code
def compile_program(program: Program) -> FastProgram | None:
    """Compile a *verified* program; None when the fast path does not apply."""
    if not applicable(program):
        return None
    blocks = _blocks(program)
    src = ["def _run(R, ld, st, atomic, call, PZ, n, maxn, bc):",
           f"    {_REGS} = R",
           "    pc = 0",
           "    while True:"]
    src += _emit_tree(list(enumerate(blocks)), "        ")
    source = "\n".join(src) + "\n"
    namespace = {"M64": M64, "M32": M32, "alu64": alu64, "alu32": alu32, "endian": endian,
                 "sign_extend": sign_extend}
    source = source.replace("M64", hex(M64)).replace("M32", hex(M32))
    exec(compile(source, f"<bpf fastpath {len(program)} insns>", "exec"), namespace)
    classes = []
    for block in blocks:
        counts: dict[int, int] = {}
        for _, insn in block.insns:
            counts[insn.opcode & 7] = counts.get(insn.opcode & 7, 0) + 1
        classes.append(tuple(sorted(counts.items())))
    return FastProgram(program, source, tuple(classes), cast(CompiledRun, namespace["_run"]))  # defined by exec
