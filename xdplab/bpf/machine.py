"""The reference interpreter: one readable dispatch over opcodes, bounds checks in one place.

Semantics follow the kernel interpreter (linux:kernel/bpf/core.c ___bpf_prog_run) and RFC
9669; see :mod:`xdplab.bpf.semantics` for the arithmetic corner cases.  What this adds:

- a memory model of regions (:mod:`xdplab.bpf.memory`) in which every load and store is
  checked and counted by region kind;
- BPF-to-BPF calls with a fresh 512-byte stack per frame (MAX_BPF_STACK), r6-r9 and r10
  restored on return, at most MAX_CALL_FRAMES = 8 frames (include/linux/bpf_verifier.h);
- helper, kfunc and kernel-function calls dispatched through the tables of an :class:`Env`
  (the kernel layer fills them), after which R1-R5 hold *poison*: the calling convention
  (Documentation/bpf/classic_vs_extended.rst: "R1 - R5 ... are clobbered by calls") made
  visible.  The kernel's own interpreter leaves them intact, but the verifier forbids
  reading them and a JIT really does clobber them, so code that relies on them is wrong;
- an instruction budget and per-run counts of executed instructions by class.
"""
from __future__ import annotations

from types import MappingProxyType

import struct
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from . import opcodes as op
from .errors import BpfError, BpfExecuteError
from .insn import Insn, Program
from .memory import CODE_BASE, DIRECT_MAP_BASE, POISON_BASE, STACK_BASE, STACK_STRIDE, AddressSpace, Region
from .semantics import M32, M64, alu32, alu64, atomic_result, endian, jump_taken, sign_extend

HelperFn = Callable[["CallContext", int, int, int, int, int], int]
MEM_BASE = DIRECT_MAP_BASE + 0x10_0000
_UNPACK = MappingProxyType({1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"), 8: struct.Struct("<Q")})
SIZE_OF = MappingProxyType({op.BPF_B: 1, op.BPF_H: 2, op.BPF_W: 4, op.BPF_DW: 8})


@dataclass(frozen=True)
class Env:
    """What a program may call: helper ids (and simulated kernel functions, whose call imm
    is ``fn - __bpf_call_base``) and kfunc BTF ids, each mapped to a Python callable
    ``fn(ctx, r1, r2, r3, r4, r5) -> r0``."""

    helpers: Mapping[int, HelperFn] = field(default_factory=dict)
    kfuncs: Mapping[int, HelperFn] = field(default_factory=dict)
    poison_after_call: bool = True


class IntAccess:
    """``read``/``write`` of little-endian integers on top of ``read_bytes``/``write_bytes``."""

    def read_bytes(self, addr: int, size: int) -> bytes:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def write_bytes(self, addr: int, data: bytes) -> None:  # pragma: no cover
        raise NotImplementedError

    def read(self, addr: int, size: int) -> int:
        return int.from_bytes(self.read_bytes(addr, size), "little")

    def write(self, addr: int, size: int, value: int) -> None:
        self.write_bytes(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))


@dataclass(frozen=True)
class CallContext(IntAccess):
    """What a helper sees: the machine's memory and the calling instruction's index."""

    machine: "Machine"
    index: int

    def read_bytes(self, addr: int, size: int) -> bytes:
        r = self.machine.space.find(addr, size)
        if r is None:
            raise BpfExecuteError(f"helper read of {size} bytes at {addr:#x} is outside any "
                                  "mapped region", self.index)
        return bytes(r.data[addr - r.base: addr - r.base + size])

    def write_bytes(self, addr: int, data: bytes) -> None:
        r = self.machine.space.find(addr, len(data))
        if r is None or not r.writable:
            raise BpfExecuteError(f"helper write of {len(data)} bytes at {addr:#x} is outside "
                                  "any writable region", self.index)
        r.data[addr - r.base: addr - r.base + len(data)] = data


def describe_base(regions: Iterable[tuple[str, int, int]], reg: int, value: int, last_call: int | None) -> str:
    """What a faulting access's base register pointed at: a region (name, base, size), poison
    left by a call, or nothing mapped.  ``regions`` yields (name, base, size)."""
    for name, base, size in regions:
        if base <= value < base + size:
            return f"{name} ({size} bytes)"
    if POISON_BASE <= value < POISON_BASE + 16:
        where = f"the call at insn {last_call}" if last_call is not None else "a call"
        return f"any mapped region: r{reg} holds poison left by {where} (R1-R5 are clobbered by calls)"
    return f"any mapped region (address {value:#x})"


@dataclass
class Counts:
    """Per-run counters: executed instructions (total and by class), memory touches by
    (region kind, "read"/"write"), and calls by kind."""

    insns: int = 0
    by_class: list[int] = field(default_factory=lambda: [0] * 8)
    touches: dict[tuple[str, str], int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    call_targets: dict[tuple[str, int], int] = field(default_factory=dict)   # (kind, imm) -> count


@dataclass
class _Frame:
    return_slot: int
    saved: tuple[int, ...]   # r6..r10 of the caller
    stack: Region


class Machine:
    """One run of one program: registers are passed in and out, memory and counters live here."""

    def __init__(self, program: Program, space: AddressSpace | None = None, env: Env | None = None,
                 max_insns: int = 1_000_000) -> None:
        self.program = program
        self.space = space if space is not None else AddressSpace()
        self.env = env if env is not None else Env()
        self.max_insns = max_insns
        self.counts = Counts()
        self.frames: list[_Frame] = []
        self.last_call: int | None = None
        table: list[Insn | None] = []
        for insn in program:
            table.append(insn)
            if insn.slots == 2:
                table.append(None)
        self.table = table

    # ---------------------------------------------------------------- set-up
    def new_stack(self, depth: int) -> Region:
        base = STACK_BASE + depth * STACK_STRIDE
        name = "stack" if depth == 0 else f"stack[{depth}]"
        return self.space.map(Region(name, base, bytes(op.MAX_BPF_STACK), kind="stack"))

    def entry_registers(self, r1: int, r2: int = 0) -> list[int]:
        """Registers at program entry: r1, r2 as given, r10 = top of a fresh stack."""
        stack = self.new_stack(0)
        regs = [0] * 11
        regs[1], regs[2], regs[10] = r1 & M64, r2 & M64, stack.end
        return regs

    # ---------------------------------------------------------------- memory, shared by both paths
    def fault(self, kind: str, size: int, addr: int, slot: int, base: int, off: int) -> BpfExecuteError:
        base_value = (addr - off) & M64
        regions = ((r.name, r.base, len(r.data)) for r in self.space.regions)
        return BpfExecuteError(f"{size}-byte {kind} at r{base}{off:+d} is outside "
                               f"{describe_base(regions, base, base_value, self.last_call)}", slot)

    def load(self, addr: int, size: int, slot: int, base: int, off: int) -> int:
        for r in self.space.regions:
            if r.base <= addr and addr + size <= r.end:
                key = (r.kind, "read")
                t = self.counts.touches
                t[key] = t.get(key, 0) + 1
                return _UNPACK[size].unpack_from(r.data, addr - r.base)[0]
        raise self.fault("read", size, addr, slot, base, off)

    def store(self, addr: int, size: int, value: int, slot: int, base: int, off: int) -> None:
        for r in self.space.regions:
            if r.base <= addr and addr + size <= r.end:
                if not r.writable:
                    raise BpfExecuteError(f"{size}-byte write at r{base}{off:+d} into read-only "
                                          f"{r.name}", slot)
                key = (r.kind, "write")
                t = self.counts.touches
                t[key] = t.get(key, 0) + 1
                _UNPACK[size].pack_into(r.data, addr - r.base, value & ((1 << (8 * size)) - 1))
                return
        raise self.fault("write", size, addr, slot, base, off)

    def atomic(self, size: int, imm: int, addr: int, src: int, r0: int, slot: int, base: int,
               off: int) -> tuple[int, int]:
        """An atomic read-modify-write; returns the new (src, r0)."""
        nbytes = SIZE_OF[size]
        old = self.load(addr, nbytes, slot, base, off)
        mask = M64 if nbytes == 8 else M32
        if imm == op.BPF_CMPXCHG:
            if old == r0 & mask:
                self.store(addr, nbytes, src, slot, base, off)
            else:   # the kernel's cmpxchg writes back the old value either way (a touch)
                self.store(addr, nbytes, old, slot, base, off)
            return src, old
        self.store(addr, nbytes, atomic_result(imm, old, src, mask), slot, base, off)
        if imm & op.BPF_FETCH:
            return old, r0
        return src, r0

    # ---------------------------------------------------------------- calls
    def call(self, kind: str, imm: int, slot: int, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        """Run a helper ("helper", also kernel functions and callx) or kfunc ("kfunc")."""
        table = self.env.kfuncs if kind == "kfunc" else self.env.helpers
        fn = table.get(imm)
        if fn is None:
            what = f"kfunc with BTF id {imm}" if kind == "kfunc" else f"helper {imm}"
            raise BpfExecuteError(f"call to unknown {what}", slot)
        self.counts.calls[kind] = self.counts.calls.get(kind, 0) + 1
        key = (kind, imm)
        self.counts.call_targets[key] = self.counts.call_targets.get(key, 0) + 1
        self.last_call = slot
        try:
            result = fn(CallContext(self, slot), r1, r2, r3, r4, r5)
        except BpfError:
            raise
        except Exception as exc:  # a simulated kernel routine failing is a fault of the run
            raise BpfExecuteError(f"{kind} {imm} failed: {type(exc).__name__}: {exc}", slot) from exc
        if not isinstance(result, int):
            raise BpfExecuteError(f"{kind} {imm} returned {type(result).__name__}, not an int", slot)
        return result & M64

    def poison(self, regs: list[int]) -> None:
        if self.env.poison_after_call:
            for r in range(1, 6):
                regs[r] = POISON_BASE + r

    # ---------------------------------------------------------------- the reference interpreter
    def interpret(self, regs: list[int], pc: int = 0) -> int:
        """Run from slot ``pc`` with registers ``regs`` (mutated) until the outermost exit."""
        table, counts, maxn = self.table, self.counts, self.max_insns
        by_class = counts.by_class
        ntable = len(table)
        prev = pc
        while True:
            # verify() rules these out; an unverified program (what the kernel ran after
            # unrolling, which it never re-verified) can still get here.
            if not 0 <= pc < ntable:
                raise BpfExecuteError(f"control leaves the program: jump to insn {pc} of {ntable}", prev)
            insn = table[pc]
            if insn is None:
                raise BpfExecuteError(f"jump into the middle of ld_imm64 at insn {pc - 1}", prev)
            prev = pc
            if counts.insns >= maxn:
                raise BpfExecuteError(f"instruction budget of {maxn} exhausted", pc)
            counts.insns += 1
            code, dst, src, off, imm = insn.opcode, insn.dst, insn.src, insn.off, insn.imm
            cls = code & 0x07
            by_class[cls] += 1
            nxt = pc + 1
            if cls == op.BPF_ALU64 or cls == op.BPF_ALU:
                operation = code & 0xF0
                if operation == op.BPF_END:
                    regs[dst] = endian(cls, code & 0x08, imm, regs[dst])
                else:
                    if code & 0x08:
                        b = regs[src]
                    else:
                        b = imm & M64 if cls == op.BPF_ALU64 else imm & M32
                    f = alu64 if cls == op.BPF_ALU64 else alu32
                    regs[dst] = f(operation, off, regs[dst], b)
            elif cls == op.BPF_JMP or cls == op.BPF_JMP32:
                operation = code & 0xF0
                if operation == op.BPF_JA:
                    nxt = pc + 1 + (imm if cls == op.BPF_JMP32 else off)
                elif operation == op.BPF_EXIT:
                    if not self.frames:
                        return regs[0]
                    frame = self.frames.pop()
                    regs[6:11] = frame.saved
                    self.space.unmap(frame.stack)
                    self.poison(regs)
                    nxt = frame.return_slot
                elif operation == op.BPF_CALL:
                    nxt = self._call_insn(insn, pc, regs)
                else:
                    b = regs[src] if code & 0x08 else (imm & M64 if cls == op.BPF_JMP else imm & M32)
                    if jump_taken(operation, cls == op.BPF_JMP32, regs[dst], b):
                        nxt = pc + 1 + off
            elif cls == op.BPF_LDX:
                size = SIZE_OF[code & 0x18]
                value = self.load((regs[src] + off) & M64, size, pc, src, off)
                if code & 0xE0 == op.BPF_MEMSX:
                    value = sign_extend(value, 8 * size)
                regs[dst] = value
            elif cls == op.BPF_ST:
                self.store((regs[dst] + off) & M64, SIZE_OF[code & 0x18], imm & M64, pc, dst, off)
            elif cls == op.BPF_STX:
                addr = (regs[dst] + off) & M64
                if code & 0xE0 == op.BPF_ATOMIC:
                    new_src, new_r0 = self.atomic(code & 0x18, imm, addr, regs[src], regs[0], pc, dst, off)
                    if imm == op.BPF_CMPXCHG:
                        regs[0] = new_r0          # R0 = the old value
                    elif imm & op.BPF_FETCH:
                        regs[src] = new_src       # src = the old value (even when src is R0)
                else:
                    self.store(addr, SIZE_OF[code & 0x18], regs[src], pc, dst, off)
            else:  # BPF_LD: only ld_imm64 passes verify()
                if src == op.BPF_PSEUDO_FUNC:
                    lo = imm & M32
                    regs[dst] = CODE_BASE + 8 * (pc + 1 + (lo - (1 << 32) if lo >> 31 else lo))
                else:
                    regs[dst] = imm
                nxt = pc + 2
            pc = nxt

    def _call_insn(self, insn: Insn, pc: int, regs: list[int]) -> int:
        if insn.opcode & 0x08:   # callx: the register holds a helper id or a subprogram address
            target = regs[insn.dst]
            if CODE_BASE <= target < CODE_BASE + 8 * len(self.table) and target % 8 == 0:
                return self._local_call((target - CODE_BASE) // 8, pc, regs)
            regs[0] = self.call("helper", target if target < 1 << 31 else -1, pc, *regs[1:6])
            self.poison(regs)
            return pc + 1
        if insn.src == op.BPF_PSEUDO_CALL:
            return self._local_call(pc + 1 + insn.imm, pc, regs)
        kind = "kfunc" if insn.src == op.BPF_PSEUDO_KFUNC_CALL else "helper"
        regs[0] = self.call(kind, insn.imm, pc, *regs[1:6])
        self.poison(regs)
        return pc + 1

    def _local_call(self, target: int, pc: int, regs: list[int]) -> int:
        if not 0 <= target < len(self.table) or self.table[target] is None:
            raise BpfExecuteError(f"call target {target} is not an instruction", pc)
        if len(self.frames) + 1 >= op.MAX_CALL_FRAMES:
            raise BpfExecuteError(f"the call stack is too deep: more than MAX_CALL_FRAMES "
                                  f"({op.MAX_CALL_FRAMES}) frames", pc)
        self.counts.calls["local"] = self.counts.calls.get("local", 0) + 1
        saved = tuple(regs[6:11])
        stack = self.new_stack(len(self.frames) + 1)
        self.frames.append(_Frame(pc + 1, saved, stack))
        regs[10] = stack.end
        return target
