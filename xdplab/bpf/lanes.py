"""Lane-parallel execution: one program over many inputs at once, with numpy.

Each *lane* is one independent run (one packet): its own registers and its own copy of each
memory region, all lanes seeing a region at the same virtual address.  Lanes follow their own
control flow: at each step the machine executes the lowest pending slot for the lanes whose pc is
there (masks for divergent branches), so a loop-free program takes at most one step per slot.
Semantics are those of :mod:`xdplab.bpf.semantics`; ``tests/test_lanes.py`` checks every lane
against the scalar machine on random programs and inputs.

Regions may be *row-mapped* (many lanes share one stored row, e.g. a clock structure that only
changes at refresh instants: read-only then) and may store only a suffix of their bytes
(``stored_from``): reads below it return zeros (like a fresh zeroed object), writes below it fault.

Not supported here (callers fall back to the scalar machine): BPF-to-BPF calls, ``callx``,
pseudo ld_imm64 other than plain.  Helper and kfunc calls go through vector callables; a
scalar callable is run lane by lane through :class:`LaneCallContext`.
"""
from __future__ import annotations

from types import MappingProxyType

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import numpy.typing as npt

from . import opcodes as op
from .errors import BpfExecuteError
from .insn import Insn, Program
from .machine import HelperFn, IntAccess, describe_base
from .memory import POISON_BASE, STACK_BASE
from .semantics import SIGNED_COMPARE, UNSIGNED_COMPARE

U64 = np.uint64
M32 = np.uint64(0xFFFFFFFF)
SIGN64 = np.uint64(1 << 63)
_SIZE = MappingProxyType({op.BPF_B: 1, op.BPF_H: 2, op.BPF_W: 4, op.BPF_DW: 8})
_DT = MappingProxyType({1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"})

U64Array = npt.NDArray[np.uint64]     # one u64 per lane (registers, addresses, values)
Mask = npt.NDArray[np.bool_]          # one flag per lane
Lanes = npt.NDArray[np.intp]          # lane numbers (indices into per-lane arrays)


@dataclass
class LaneRegion:
    """A region at ``base`` of ``size`` bytes; ``data`` holds rows of bytes ``stored_from..size``."""

    name: str
    kind: str
    base: int
    size: int
    data: npt.NDArray[np.uint8]      # (rows, size - stored_from)
    row: npt.NDArray[np.integer] | None = None    # lane -> row (None: row = lane)
    writable: bool = True
    stored_from: int = 0

    def rows_of(self, lanes: Lanes) -> npt.NDArray[np.integer]:
        return lanes if self.row is None else self.row[lanes]


@dataclass
class LaneSpace:
    lanes: int
    regions: list[LaneRegion] = field(default_factory=list)

    def add(self, region: LaneRegion) -> LaneRegion:
        expect = self.lanes if region.row is None else int(region.row.max(initial=-1)) + 1
        if region.data.shape[0] < expect or region.data.shape[1] != region.size - region.stored_from:
            raise ValueError(f"region {region.name}: data shape {region.data.shape} does not fit")
        self.regions.append(region)
        return region


@dataclass
class LaneResult:
    r0: U64Array                        # (N,)
    insns: npt.NDArray[np.int64]        # (N,)
    by_class: npt.NDArray[np.int32]     # (8, N)
    kinds: npt.NDArray[np.int64]        # (N,) bitmask over ``kind_names``
    kind_names: tuple[str, ...]
    calls: dict[tuple[str, int], npt.NDArray[np.int32]]
    errors: npt.NDArray[np.object_]     # (N,): None or the BpfError text
    scalar_calls: npt.NDArray[np.int32]  # (N,): calls run through a routine's scalar form


VectorHelper = Callable[["LaneState", Lanes, list[U64Array]], U64Array]


@dataclass
class LaneCallContext(IntAccess):
    """What a *scalar* helper sees when run for one lane (the CallContext interface)."""

    state: "LaneState"
    lane: int
    index: int

    def read_bytes(self, addr: int, size: int) -> bytes:
        return self.state.lane_read(self.lane, addr, size, self.index)

    def write_bytes(self, addr: int, data: bytes) -> None:
        self.state.lane_write(self.lane, addr, data, self.index)


class LaneState:
    """Registers, memory and counters of all lanes during a run."""

    def __init__(self, space: LaneSpace, kind_names: tuple[str, ...]) -> None:
        self.space = space
        self.n = space.lanes
        self.kind_bit = {k: np.int64(1 << i) for i, k in enumerate(kind_names)}
        self.kinds = np.zeros(self.n, np.int64)
        self.errors = np.full(self.n, None, dtype=object)
        self.failed = np.zeros(self.n, bool)
        self.scalar_calls = np.zeros(self.n, np.int32)   # lanes a routine ran in its scalar form
        self.all_kinds = np.int64(0)       # kinds every lane touched (kept apart: no full pass)
        self.call: tuple[int, str, int, HelperFn | None] = (0, "helper", 0, None)   # the call in progress

    # ---------------------------------------------------------------- vector memory
    def _locate(self, lanes: Lanes, addr: U64Array, size: int) -> npt.NDArray[np.int64]:
        which = np.full(len(lanes), -1, np.int64)
        for k, r in enumerate(self.space.regions):
            inside = (addr >= U64(r.base)) & (addr <= U64(r.base + r.size - size))
            which[inside & (which < 0)] = k
        return which

    def _uniform_column(self, lanes: Lanes, addr: U64Array, size: int, *, mark: bool = True) -> U64Array | None:
        """The common case: one address for every lane (the ctx, a shared pointer) inside one
        region's stored part: read it as a column.  None when the lanes' addresses differ.
        ``mark``: count the region kind as touched (the program's own loads, not a routine's)."""
        if not (len(addr) and addr[0] == addr[-1] and bool((addr == addr[0]).all())):
            return None
        a = int(addr[0])
        for r in self.space.regions:
            if r.base + r.stored_from <= a <= r.base + r.size - size:
                if mark:
                    self._mark(lanes, r.kind)
                return self._column(r, lanes, a - r.base, size)
        return None

    def load(self, lanes: Lanes, addr: U64Array, size: int, slot: int, base: int, off: int,
             base_values: U64Array) -> tuple[U64Array, Mask]:
        """Values for the lanes that can load; returns (values, ok mask)."""
        column = self._uniform_column(lanes, addr, size)
        if column is not None:
            return column, np.ones(len(lanes), bool)
        which = self._locate(lanes, addr, size)
        out = np.zeros(len(lanes), U64)
        lo_w, hi_w = (int(which.min()), int(which.max())) if len(which) else (-1, -1)
        groups = [lo_w] if lo_w == hi_w and lo_w >= 0 else np.unique(which[which >= 0])
        for k in groups:
            r = self.space.regions[int(k)]
            if lo_w == hi_w:
                out = self._gather(r, lanes, (addr - U64(r.base)).astype(np.int64), size)
                self.kinds[lanes] |= self.kind_bit[r.kind]
                continue
            sel = np.nonzero(which == k)[0]
            out[sel] = self._gather(r, lanes[sel], (addr[sel] - U64(r.base)).astype(np.int64), size)
            self.kinds[lanes[sel]] |= self.kind_bit[r.kind]
        bad = which < 0
        if bad.any():
            self._fault(lanes[bad], "read", size, addr[bad], slot, base, off, base_values[bad])
        return out, ~bad

    def store(self, lanes: Lanes, addr: U64Array, size: int, value: U64Array, slot: int, base: int,
              off: int, base_values: U64Array) -> Mask:
        which = self._locate(lanes, addr, size)
        ok = which >= 0
        for k in np.unique(which[ok]):
            r = self.space.regions[int(k)]
            sel = np.nonzero(which == k)[0]
            if not r.writable or r.row is not None:
                for lane in lanes[sel]:
                    self._error(int(lane), f"insn {slot}: {size}-byte write at r{base}{off:+d} into read-only {r.name}")
                ok[sel] = False
                continue
            offs = (addr[sel] - U64(r.base)).astype(np.int64)
            low = offs < r.stored_from
            if low.any():
                for lane in lanes[sel][low]:
                    self._error(int(lane), f"insn {slot}: {size}-byte write at r{base}{off:+d} below the "
                                           f"stored part of {r.name} (lane memory model)")
                ok[sel[low]] = False
                sel, offs = sel[~low], offs[~low]
            self._scatter(r, lanes[sel], offs, size, value[sel])
            self._mark(lanes[sel], r.kind)
        bad = which < 0
        if bad.any():
            self._fault(lanes[bad], "write", size, addr[bad], slot, base, off, base_values[bad])
        return ok

    def _mark(self, lanes: Lanes, kind: str) -> None:
        if len(lanes) == self.n:
            self.all_kinds |= self.kind_bit[kind]
        else:
            self.kinds[lanes] |= self.kind_bit[kind]

    def _column(self, r: LaneRegion, lanes: Lanes, off: int, size: int) -> U64Array:
        """The bytes at one offset of every selected lane's row, as u64."""
        o = off - r.stored_from
        width = r.size - r.stored_from
        whole = len(lanes) == r.data.shape[0] and r.row is None and len(lanes) == self.n
        rows = None if whole else r.rows_of(lanes)
        if o % size == 0 and width % size == 0:
            typed = r.data.view(_DT[size])[:, o // size]
            return (typed if whole else typed[rows]).astype(U64)
        cols = r.data[:, o:o + size] if whole else r.data[rows, o:o + size]
        return np.ascontiguousarray(cols).view(_DT[size]).reshape(-1).astype(U64)

    def _gather(self, r: LaneRegion, lanes: Lanes, offs: npt.NDArray[np.int64], size: int) -> U64Array:
        rows = r.rows_of(lanes)
        width = r.size - r.stored_from
        first = int(offs[0]) if len(offs) else 0
        if len(offs) and first >= r.stored_from and (offs == first).all():
            o = first - r.stored_from              # the common case: one offset for every lane
            whole = len(rows) == r.data.shape[0] and r.row is None and \
                (len(rows) < 2 or (rows[0] == 0 and rows[-1] == len(rows) - 1))
            if o % size == 0 and width % size == 0:
                typed = r.data.view(_DT[size])[:, o // size]      # a strided view, no copy
                return (typed if whole else typed[rows]).astype(U64)
            cols = r.data[:, o:o + size] if whole else r.data[rows, o:o + size]
            return np.ascontiguousarray(cols).view(_DT[size]).reshape(-1).astype(U64)
        rows = rows.astype(np.int64)
        rel = offs - r.stored_from
        below = rel < 0
        rel = np.where(below, 0, rel)
        flat = rows * width + rel
        idx = flat[:, None] + np.arange(size)
        raw = r.data.reshape(-1)[idx]
        vals = np.ascontiguousarray(raw).view(_DT[size]).reshape(-1).astype(U64)
        if below.any():
            vals[below] = 0
        return vals

    def _scatter(self, r: LaneRegion, lanes: Lanes, offs: npt.NDArray[np.int64], size: int, value: U64Array) -> None:
        width = r.size - r.stored_from
        flat = lanes.astype(np.int64) * width + (offs - r.stored_from)
        idx = flat[:, None] + np.arange(size)
        data = value.astype(U64).astype(_DT[8]).view(np.uint8).reshape(-1, 8)[:, :size]
        r.data.reshape(-1)[idx] = data

    def _fault(self, lanes: Lanes, kind: str, size: int, addr: U64Array, slot: int, base: int, off: int,
               base_values: U64Array) -> None:
        regions = [(r.name, r.base, r.size) for r in self.space.regions]
        for lane, bv in zip(lanes, base_values):
            self._error(int(lane), f"insn {slot}: {size}-byte {kind} at r{base}{off:+d} is outside "
                                   f"{describe_base(regions, int(base), int(bv), None)}")

    def _error(self, lane: int, message: str) -> None:
        if self.errors[lane] is None:
            self.errors[lane] = message
            self.failed[lane] = True

    # ---------------------------------------------------------------- vector helpers
    def helper_read(self, lanes: Lanes, addr: U64Array, size: int) -> tuple[U64Array, Mask]:
        """A vector helper's loads: (values, ok).  Lanes whose address is in no region get
        ``ok`` False and no error: the helper hands them to its scalar version, which raises
        exactly as on the scalar machine.  A routine's memory touches are not counted here:
        the cost model prices them from its declared OpCost, on both engines (the scalar
        machine counts only the program's own loads and stores)."""
        column = self._uniform_column(lanes, addr, size, mark=False)
        if column is not None:
            return column, np.ones(len(lanes), bool)
        which = self._locate(lanes, addr, size)
        out = np.zeros(len(lanes), U64)
        for k in np.unique(which[which >= 0]):
            r = self.space.regions[int(k)]
            sel = np.nonzero(which == k)[0]
            out[sel] = self._gather(r, lanes[sel], (addr[sel] - U64(r.base)).astype(np.int64), size)
        return out, which >= 0

    def helper_write(self, lanes: Lanes, addr: U64Array, size: int, value: U64Array) -> Mask:
        """A vector helper's stores; returns ok (False where the scalar version must run)."""
        which = self._locate(lanes, addr, size)
        ok = np.zeros(len(lanes), bool)
        for k in np.unique(which[which >= 0]):
            r = self.space.regions[int(k)]
            if not r.writable or r.row is not None:
                continue
            sel = np.nonzero(which == k)[0]
            offs = (addr[sel] - U64(r.base)).astype(np.int64)
            stored = offs >= r.stored_from
            sel, offs = sel[stored], offs[stored]
            self._scatter(r, lanes[sel], offs, size, value[sel])
            ok[sel] = True
        return ok

    def call_scalar(self, lanes: Lanes, args: list[U64Array]) -> U64Array:
        """Run the call in progress (``self.call``: slot, kind, imm, scalar callable) lane by
        lane through :class:`LaneCallContext`; a vector helper sends here the lanes it cannot
        serve, so they fail exactly as on the scalar machine."""
        s, kind, imm, fn = self.call
        res = np.zeros(len(lanes), U64)
        self.scalar_calls[lanes] += 1
        for j, lane in enumerate(lanes):
            if fn is None:
                self._error(int(lane), f"insn {s}: call to unknown {kind} {imm}")
                continue
            try:
                # LaneCallContext offers CallContext's IntAccess part (read/write, index) but not
                # ``machine``: a scalar routine reaching for ``ctx.machine`` fails for this lane
                # (caught below), as it has no single machine to see.
                value = fn(LaneCallContext(self, int(lane), s),  # type: ignore[arg-type]
                           *(int(a[j]) for a in args))
                res[j] = value & ((1 << 64) - 1)
            except BpfExecuteError as exc:
                self._error(int(lane), str(exc))
            except Exception as exc:  # a simulated kernel routine failing
                self._error(int(lane), f"insn {s}: {kind} {imm} failed: {type(exc).__name__}: {exc}")
        return res

    # ---------------------------------------------------------------- one lane (scalar helpers)
    def _lane_region(self, lane: int, addr: int, size: int) -> tuple[LaneRegion, int] | None:
        for r in self.space.regions:
            if r.base <= addr and addr + size <= r.base + r.size:
                return r, addr - r.base
        return None

    def lane_read(self, lane: int, addr: int, size: int, index: int) -> bytes:
        found = self._lane_region(lane, addr, size)
        if found is None:
            raise BpfExecuteError(f"helper read of {size} bytes at {addr:#x} is outside any mapped region", index)
        r, off = found
        row = lane if r.row is None else int(r.row[lane])
        out = bytearray(size)
        for i in range(size):
            o = off + i - r.stored_from
            out[i] = int(r.data[row, o]) if o >= 0 else 0
        return bytes(out)

    def lane_write(self, lane: int, addr: int, data: bytes, index: int) -> None:
        found = self._lane_region(lane, addr, len(data))
        if found is None or not found[0].writable or found[0].row is not None or found[1] < found[0].stored_from:
            raise BpfExecuteError(f"helper write of {len(data)} bytes at {addr:#x} is outside any writable region",
                                  index)
        r, off = found
        r.data[lane, off - r.stored_from:off - r.stored_from + len(data)] = np.frombuffer(data, np.uint8)


def lanes_applicable(program: Program) -> str | None:
    """Why the lane machine cannot run ``program`` (None if it can)."""
    for insn in program:
        code = insn.opcode
        if code & 7 == op.BPF_JMP and code & 0xF0 == op.BPF_CALL and (code & 0x08 or insn.src == op.BPF_PSEUDO_CALL):
            return "BPF-to-BPF calls and callx run on the scalar machine"
        if code == op.OPCODE_LD_IMM64 and insn.src != op.BPF_PSEUDO_PLAIN:
            return "pseudo ld_imm64 runs on the scalar machine"
        if code & 7 == op.BPF_LD and code != op.OPCODE_LD_IMM64:
            return "legacy packet access is not simulated"
    return None


def run_lanes(program: Program, space: LaneSpace, r1: npt.ArrayLike, r2: npt.ArrayLike | None = None, *,
              helpers: Mapping[int, HelperFn] | None = None, kfuncs: Mapping[int, HelperFn] | None = None,
              vector_helpers: Mapping[tuple[str, int], VectorHelper] | None = None,
              kind_names: tuple[str, ...] = (), max_insns: int = 1_000_000, poison: bool = True,
              stack_bytes: int = 0) -> LaneResult:
    """Run ``program`` once per lane.  ``stack_bytes`` > 0 maps that many bytes below r10 per lane."""
    reason = lanes_applicable(program)
    if reason:
        raise BpfExecuteError(reason)
    n = space.lanes
    kinds = tuple(dict.fromkeys(tuple(kind_names) + tuple(r.kind for r in space.regions) + ("stack",)))
    st = LaneState(space, kinds)
    top = STACK_BASE + 512
    if stack_bytes:
        space.add(LaneRegion("stack", "stack", top - 512, 512, np.zeros((n, stack_bytes), np.uint8),
                             stored_from=512 - stack_bytes))
    regs = [np.zeros(n, U64) for _ in range(11)]
    regs[1] = np.asarray(r1, U64).copy()
    if r2 is not None:
        regs[2] = np.asarray(r2, U64).copy()
    regs[10] = np.full(n, top, U64)
    table: list[Insn | None] = []     # by slot; None for the second slot of ld_imm64
    for one in program:
        table.append(one)
        if one.slots == 2:
            table.append(None)
    nslots = len(table)
    pc = np.zeros(n, np.int64)
    last = np.zeros(n, np.int64)
    live = np.ones(n, bool)
    insns = np.zeros(n, np.int64)
    by_class = np.zeros((8, n), np.int32)
    calls: dict[tuple[str, int], npt.NDArray[np.int32]] = {}
    r0 = np.zeros(n, U64)
    helpers, kfuncs, vector_helpers = helpers or {}, kfuncs or {}, vector_helpers or {}
    all_lanes = np.arange(n)

    n_live = n
    upc: int | None = 0              # while every lane is live at the same pc: that pc
    uni_class = [0] * 8              # instructions run in that mode, added to all lanes at the end
    uni_base = 0                     # the most instructions any lane had run when the mode began
    last_uniform: int | None = None  # the last slot run in that mode
    while n_live:
        if upc is None and n_live == n and pc[0] == pc[-1] and bool((pc == pc[0]).all()):
            upc, uni_base, last_uniform = int(pc[0]), int(insns.max()), None
        s: int
        if upc is not None:
            uniform = True
            s = upc
            lanes = all_lanes
        else:
            uniform = False
            s = int(pc[live].min())
            lanes = all_lanes[live & (pc == s)]
        insn = table[s] if 0 <= s < nslots else None
        if insn is None:
            if uniform and last_uniform is not None:
                last[:] = last_uniform
            for lane in lanes:
                st._error(int(lane), f"insn {int(last[lane])}: control leaves the program: jump to insn {s} "
                          f"of {nslots}" if not 0 <= s < nslots
                          else f"insn {int(last[lane])}: jump into the middle of ld_imm64 at insn {s - 1}")
            live[lanes] = False
            n_live = int(live.sum())
            continue
        if uniform and uni_base + sum(uni_class) >= max_insns:
            _flush_uniform(insns, by_class, uni_class, pc, s, last, last_uniform)
            upc, uniform = None, False
        if uniform:
            last_uniform = s
        if not uniform:
            last[lanes] = s
        over = insns[lanes] >= max_insns if not uniform else np.zeros(0, bool)
        if over.any():
            for lane in lanes[over]:
                st._error(int(lane), f"insn {s}: instruction budget of {max_insns} exhausted")
            live[lanes[over]] = False
            n_live = int(live.sum())
            lanes = lanes[~over]
            if not len(lanes):
                continue
        sel: slice | Lanes = slice(None) if uniform else lanes
        code, dst, src, off, imm = insn.opcode, insn.dst, insn.src, insn.off, insn.imm
        cls = code & 7
        if uniform:
            uni_class[cls] += 1
        else:
            insns[sel] += 1
            by_class[cls, sel] += 1
        nxt: npt.NDArray[np.int64] | int = s + 1
        ok: Mask | None = None     # lanes whose access/call succeeded (None: all of them)
        if cls in (op.BPF_ALU, op.BPF_ALU64):
            _set(regs, dst, sel, _alu(cls, code, off, imm, regs[dst][sel], regs[src][sel]))
        elif cls in (op.BPF_JMP, op.BPF_JMP32):
            operation = code & 0xF0
            if operation == op.BPF_EXIT:
                r0[sel] = regs[0][sel]
                live[sel] = False
                n_live = int(live.sum())
                if uniform:
                    _flush_uniform(insns, by_class, uni_class, pc, s, last, s)
                    upc = None
                continue
            if operation == op.BPF_JA:
                nxt = s + 1 + (imm if cls == op.BPF_JMP32 else off)
            elif operation == op.BPF_CALL:
                kind = "kfunc" if src == op.BPF_PSEUDO_KFUNC_CALL else "helper"
                args = [regs[i][sel] for i in range(1, 6)]
                vfn = vector_helpers.get((kind, imm))
                fn = (kfuncs if kind == "kfunc" else helpers).get(imm)
                st.call = (s, kind, imm, fn)
                if vfn is not None:
                    res = vfn(st, lanes, args)
                else:
                    res = st.call_scalar(lanes, args)
                calls.setdefault((kind, imm), np.zeros(n, np.int32))[sel] += 1
                _set(regs, 0, sel, res)
                if poison:
                    for i in range(1, 6):
                        regs[i][sel] = U64(POISON_BASE + i)
                ok = ~st.failed[lanes]
            else:
                a = regs[dst][sel]
                b = regs[src][sel] if code & 0x08 else U64((imm & ((1 << 64) - 1)) if cls == op.BPF_JMP
                                                           else (imm & 0xFFFFFFFF))
                taken = _cond(operation, cls == op.BPF_JMP32, a, b)
                if taken.all():
                    nxt = s + 1 + off
                elif taken.any():
                    nxt = np.where(taken, s + 1 + off, s + 1)
        elif cls == op.BPF_LDX:
            size = _SIZE[code & 0x18]
            addr = regs[src][sel] + U64(off & ((1 << 64) - 1))
            vals, ok = st.load(lanes, addr, size, s, src, off, regs[src][sel])
            if code & 0xE0 == op.BPF_MEMSX:
                vals = _sext(vals, 8 * size)
            if ok.all():
                _set(regs, dst, sel, vals)
                ok = None
            else:
                regs[dst][lanes[ok]] = vals[ok]
        elif cls == op.BPF_ST:
            size = _SIZE[code & 0x18]
            addr = regs[dst][sel] + U64(off & ((1 << 64) - 1))
            ok = st.store(lanes, addr, size, np.full(len(lanes), imm & ((1 << 64) - 1), U64), s, dst, off,
                          regs[dst][sel])
        elif cls == op.BPF_STX:
            size = _SIZE[code & 0x18]
            addr = regs[dst][sel] + U64(off & ((1 << 64) - 1))
            if code & 0xE0 == op.BPF_ATOMIC:
                ok = _atomic(st, lanes, regs, dst, src, off, imm, size, addr, s)
            else:
                ok = st.store(lanes, addr, size, regs[src][sel], s, dst, off, regs[dst][sel])
        else:   # ld_imm64 (plain)
            regs[dst][sel] = U64(imm)
            nxt = s + 2
        failed = None if ok is None or ok.all() else ~ok
        if uniform and (failed is not None or not isinstance(nxt, int)):
            _flush_uniform(insns, by_class, uni_class, pc, s, last, s)
            upc, uniform = None, False
        if failed is not None:
            live[lanes[failed]] = False
            n_live = int(live.sum())
        if uniform and isinstance(nxt, int):     # (uniform mode survives only an int next pc)
            upc = nxt
        else:
            pc[sel] = nxt
    if upc is not None:
        _flush_uniform(insns, by_class, uni_class, pc, upc, last, last_uniform)
    return LaneResult(r0, insns, by_class, st.kinds | st.all_kinds, kinds, calls, st.errors, st.scalar_calls)


def _set(regs: list[U64Array], reg: int, sel: slice | Lanes, value: U64Array) -> None:
    """regs[reg][sel] = value, rebinding the whole array when every lane is selected (no copy)."""
    if isinstance(sel, slice) and isinstance(value, np.ndarray) and value.dtype == U64 and value.base is None:
        regs[reg] = value
    else:
        regs[reg][sel] = value


def _flush_uniform(insns: npt.NDArray[np.int64], by_class: npt.NDArray[np.int32], uni_class: list[int],
                   pc: npt.NDArray[np.int64], s: int, last: npt.NDArray[np.int64], last_slot: int | None) -> None:
    """Leave uniform mode: add the uniformly run instructions to every lane, materialise pc
    (= ``s``) and the last executed slot."""
    total = sum(uni_class)
    if total:
        insns += total
        for c, k in enumerate(uni_class):
            if k:
                by_class[c] += k
        uni_class[:] = [0] * 8
    pc[:] = s
    if last_slot is not None:
        last[:] = last_slot


def _sext(v: U64Array, bits: int) -> U64Array:
    if bits == 64:
        return v
    shift = U64(64 - bits)
    return ((v << shift).view(np.int64) >> np.int64(64 - bits)).view(U64)


def _alu(cls: int, code: int, off: int, imm: int, a: U64Array, b_reg: U64Array) -> U64Array:
    operation, is_x = code & 0xF0, bool(code & 0x08)
    if operation == op.BPF_END:
        bits = imm
        if cls == op.BPF_ALU and not is_x:       # le on a little-endian host: truncate
            return a & U64((1 << bits) - 1) if bits < 64 else a
        return _bswap(a, bits)
    is64 = cls == op.BPF_ALU64
    if is_x:
        b = b_reg
    else:
        b = np.full(len(a), (imm & ((1 << 64) - 1)) if is64 else (imm & 0xFFFFFFFF), U64)
    if not is64:
        a, b = a & M32, b & M32
    if operation == op.BPF_ADD:
        r = a + b
    elif operation == op.BPF_SUB:
        r = a - b
    elif operation == op.BPF_MUL:
        r = a * b
    elif operation in (op.BPF_DIV, op.BPF_MOD):
        r = _divmod(operation, off, is64, a, b)
    elif operation == op.BPF_OR:
        r = a | b
    elif operation == op.BPF_AND:
        r = a & b
    elif operation == op.BPF_XOR:
        r = a ^ b
    elif operation == op.BPF_LSH:
        r = a << (b & U64(63 if is64 else 31))
    elif operation == op.BPF_RSH:
        r = a >> (b & U64(63 if is64 else 31))
    elif operation == op.BPF_ARSH:
        if is64:
            r = (a.view(np.int64) >> (b & U64(63)).astype(np.int64)).view(U64)
        else:
            r = (_sext(a, 32).view(np.int64) >> (b & U64(31)).astype(np.int64)).view(U64)
    elif operation == op.BPF_MOV:
        r = _sext(b, off) if off else b
    elif operation == op.BPF_NEG:
        r = U64(0) - a
    else:  # pragma: no cover - encoding rules exclude the rest
        raise BpfExecuteError(f"ALU operation {operation:#x}")
    return r if is64 else r & M32


def _divmod(operation: int, off: int, is64: bool, a: U64Array, b: U64Array) -> U64Array:
    zero = b == 0
    safe = np.where(zero, U64(1), b)
    if off == 0:
        if operation == op.BPF_DIV:
            return np.where(zero, U64(0), a // safe)
        return np.where(zero, a, a % safe)
    bits = 64 if is64 else 32
    sa = (a if is64 else _sext(a, 32)).view(np.int64)
    sb = (safe if is64 else _sext(safe, 32)).view(np.int64)
    minus1 = sb == -1
    sb_safe = np.where(minus1, np.int64(1), sb)
    with np.errstate(over="ignore"):
        q = sa // sb_safe                               # floor division ...
        adjust = ((sa - q * sb_safe) != 0) & ((sa < 0) != (sb_safe < 0))
        q = q + adjust                                  # ... turned into truncation toward zero
        q = np.where(minus1, np.int64(0) - sa, q)       # x / -1 = -x (INT_MIN stays INT_MIN)
        if operation == op.BPF_DIV:
            res = np.where(zero, np.int64(0), q)
        else:
            rem = sa - q * np.where(minus1, np.int64(-1), sb_safe)
            res = np.where(zero, sa, np.where(minus1, np.int64(0), rem))
    out = res.view(U64)
    return out if bits == 64 else out & M32


def _bswap(a: U64Array, bits: int) -> U64Array:
    return _swap(a & U64((1 << bits) - 1) if bits < 64 else a, bits)


def _swap(v: U64Array, bits: int) -> U64Array:
    nbytes = bits // 8
    out = np.zeros(len(v), U64)
    for i in range(nbytes):
        byte = (v >> U64(8 * i)) & U64(0xFF)
        out |= byte << U64(8 * (nbytes - 1 - i))
    return out


def _cond(operation: int, is32: bool, a: U64Array, b: U64Array | np.uint64) -> Mask:
    """Vector version of :func:`xdplab.bpf.semantics.jump_taken` (same comparison tables)."""
    if is32:
        a, b = a & M32, b & M32
    if operation in SIGNED_COMPARE:
        if is32:
            sa, sb = _sext(a, 32).view(np.int64), _sext(np.asarray(b, U64), 32).view(np.int64)
        else:
            sa, sb = a.view(np.int64), np.asarray(b, U64).view(np.int64)
        return SIGNED_COMPARE[operation](sa, sb)
    if operation in UNSIGNED_COMPARE:
        return np.asarray(UNSIGNED_COMPARE[operation](a, b))
    raise BpfExecuteError(f"jump operation {operation:#x}")  # pragma: no cover


def _atomic(st: LaneState, lanes: Lanes, regs: list[U64Array], dst: int, src: int, off: int, imm: int,
            size: int, addr: U64Array, slot: int) -> Mask:
    old, ok = st.load(lanes, addr, size, slot, dst, off, regs[dst][lanes])
    mask = U64((1 << (8 * size)) - 1) if size < 8 else U64((1 << 64) - 1)
    srcv = regs[src][lanes]
    base = imm & ~op.BPF_FETCH
    if imm == op.BPF_CMPXCHG:
        equal = old == (regs[0][lanes] & mask)
        new = np.where(equal, srcv & mask, old)
    elif imm == op.BPF_XCHG:
        new = srcv & mask
    elif base == op.BPF_ADD:
        new = (old + srcv) & mask
    elif base == op.BPF_AND:
        new = old & srcv & mask
    elif base == op.BPF_OR:
        new = (old | srcv) & mask
    else:
        new = (old ^ srcv) & mask
    idx = np.nonzero(ok)[0]
    ok2 = st.store(lanes[idx], addr[idx], size, new[idx], slot, dst, off, regs[dst][lanes][idx])
    good = np.zeros(len(lanes), bool)
    good[idx[ok2]] = True
    gl = lanes[good]
    if imm == op.BPF_CMPXCHG:
        regs[0][gl] = old[good]
    elif imm & op.BPF_FETCH:
        regs[src][gl] = old[good]
    return good
