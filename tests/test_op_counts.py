"""Each driver routine's :class:`~xdplab.kernel.symbols.OpCost` against what the routine does.

The OpCosts (``COST_*`` in xdplab/drivers/*.py) are hand counts from reading the C routines;
the simulated routines (``KernelFunction.fn``) were written from the same C and read and write
simulated kernel memory through their :class:`~xdplab.bpf.machine.CallContext`.  That memory
traffic is an independent record of the C routine's loads and stores, so the two must agree:
for every routine with a cost that a registered driver provides (every design, variant,
kernel release and boolean constructor option that yields a different routine, enumerated
from ``xdplab.drivers.REGISTRY`` and ``xdplab.kernel.kfuncs.TABLES``, never a hand list), the
routine runs once, unchanged, from a loaded program on the memory the driver's receive path
builds, with its CallContext wrapped by :class:`Recorder` (instrumentation: every access is
delegated to the real context and logged with its region).  Then, per routine:

- loads (rules below) == ``insns["ldx"]``; stores == ``insns.get("stx", 0)``;
- loads + stores per touch kind (:data:`REGION_KINDS`) == ``touches``;
- ``seqlock_reads`` == the seqlock sections the routine runs, ``spin_lock_bh`` == the locks it takes.

Counting rules (each one written once, here; none is per routine):

R1  One simulated access of at most 8 bytes is one C load or store of that field.
R2  *Bulk read*: a read wider than 8 bytes (no BPF or x86 integer load is: BPF_DW is the
    widest) is the Python fetching a whole descriptor/CQE to decode it; the C routine loads
    only the fields it uses, e.g. ``mlx4_en_get_cqe_ts`` loads timestamp_hi and timestamp_lo
    (drivers/net/ethernet/mellanox/mlx4/en_clock.c@6.1.192:50-59), ``get_cqe_ts`` loads
    timestamp_h and timestamp_l (include/linux/mlx5/device.h@6.1.192:910-917),
    ``ice_ptp_rx_hwtstamp`` time_stamp_low and ts_high (ice_ptp.c@6.1.192:2170-2198), RFC v2
    14/14:61 ``rxcmp1->rx_cmp_timestamp``.  It counts as one load per field of the struct's
    layout (found by following the pointer the routine read it through:
    ``Driver.struct_pointers``) on which the outcome depends (R3).
R3  *Dead reads*: a read counts only if the routine's outcome (return value, stores, or the
    error it raises) depends on it: the test reruns the routine from the same memory with
    that read's bytes (for R2: that field's bytes) changed (:data:`PERTURBATIONS`).  The Python reads some values it
    does not use on the path taken (ice's ``_desc_fields`` reads all seven descriptor fields
    either op might need); C does not load what it does not use (none of these are
    volatile).  A pointer read is always live (changed, it points at unmapped memory).
R4  *Forwarding*: a read of bytes the same call stored is the Python handing a result back
    through memory (the call designs' by-value mlx4/bnxt routines run the RFC helper, which
    stores ``ctx->r0``, RFC v2 12/14:77 and 14/14:73, then read it back); C returns it in a
    register.  Not a load.
R5  *Seqlock*: ``read_seqbegin`` and ``read_seqretry`` (include/linux/seqlock.h@6.1.192:891,
    907) both load the sequence (mlx4: en_clock.c@6.1.192:69-71).  The OpCost counts the
    first load in ``ldx``/``touches`` and prices the section, the retry's re-load included, by
    ``seqlock_reads`` (xdplab/cost.py ``CpuProfile.opcost_ns``: two extra L1 loads, kernel-facts
    §10).  In the Python the retry re-read is dead by R3 (a mismatch only repeats the
    section); each such dead re-read of an address the call already read is one section.
R6  *Spinlock*: a read of a lock word (a field named ``*_lock``) is the Python's "is it held"
    check; C takes it with ``spin_lock_bh`` (RFC v2 14/14:69, bnxt.c@6.1.192:2076), an atomic
    read-modify-write priced by ``spin_lock_bh`` (``spin_lock_bh_ns``), not by ``ldx`` or a
    touch.  Each such read is one section.

Region kinds: :data:`REGION_KINDS` maps every region name the drivers' receive paths and the
machine create (``KernelMemory.new/alloc`` in xdplab/drivers/*.py, ``Machine.new_stack``) to
the cost model's touch kinds (the kinds xdplab/cost.py prices: descriptor, wrapper, ring,
clock, skb, stack); a region missing from it fails the test, so a new region is classified
on purpose.  It must also agree with the kind the project gives the region.

The frame: IPv6/UDP with an extension header and a stripped 802.1Q tag, timestamped and
hashed, so every op delivers every value on its longest path (MODEL op counts describe that
path: e.g. mlx4's rx_hash reads ``ipv6_ext_mask`` only for IPv6, en_rx.c of 6.3+).

:func:`test_inline_unroll_executes_what_the_routine_costs`: ice's comment says its C routine
does "the 16 instructions the unroll executes on its common path"; the call-design routine of
every driver whose RFC v2 rx_timestamp unroll is inline (no call: veth, ice) must cost, by
instruction class, what that unroll executes on the machine (``RunResult.by_class``).

Known differences (:data:`GAPS`, reported, not fixed here): where the simulation leaves out
work the C does (mlx4's 6.3 op skips the seqlock; mlx5's stamp never re-reads the sequence) or
one OpCost is shared by routines that store to different places (mlx5), the difference is
stated as a delta per count, so every other number of that routine is still checked and a
fix on either side fails the test until the entry is removed.

:func:`test_helper_table_matches_memory_traffic`: the same rules for xdplab/cost.py's
``HELPER_COSTS`` (bpf_xdp_adjust_meta, bpf_redirect_map) on a real RX queue.

What this cannot check: ``alu``/``alu64``/``jmp`` and ``muls`` of routines other than the
inline-unroll drivers' by-value ones leave no trace in memory (e.g. ice ``COST_XMO`` jmp).
"""
from __future__ import annotations

import inspect
import itertools
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Iterator, Mapping, NamedTuple

import pytest

from xdplab import drivers
from xdplab.bpf import assemble, run_in
from xdplab.bpf import opcodes as op
from xdplab.bpf.machine import CallContext, Env, IntAccess
from xdplab.bpf.memory import AddressSpace
from xdplab.bpf.patch import BpfPatch
from xdplab.kernel.driver import Driver, RxSettings, UnrollContext
from xdplab.kernel.kernel import Kernel
from xdplab.kernel.kfuncs import NEWEST_KERNEL, TABLES, KfuncSpec
from xdplab.kernel.loader import VARIANTS
from xdplab.kernel.rxmeta import ETH_P_8021Q, RxFlow
from xdplab.kernel.structs import StructLayout
from xdplab.kernel.symbols import BPF_CALL_BASE, KernelFunction, KernelSymbols, OpCost
from xdplab.cost import HELPER_COSTS
from xdplab.kernel.af_xdp import XskSocket
from xdplab.kernel.maps import BPF_MAP_TYPE_XSKMAP
from xdplab.kernel.uapi import (BPF_F_XDP_HAS_METADATA, BPF_FUNC_redirect_map, BPF_FUNC_xdp_adjust_meta,
                               XDP_REDIRECT)
from xdplab.kernel.xdp import XdpRxQueue

# Region name -> the cost model's touch kind (see the module docstring).
REGION_KINDS = MappingProxyType({
    "veth_xdp_buff": "wrapper", "sk_buff": "skb",
    "ice_xdp_buff": "wrapper", "ice_rx_ring": "ring", "ice descriptor ring": "descriptor",
    "mlx4_xdp_buff": "wrapper", "mlx4 CQ": "descriptor", "mlx4_en_dev": "clock",
    "bnxt_xdp_buff": "wrapper", "bnxt completion ring": "descriptor", "bnxt": "clock", "bnxt_ptp_cfg": "clock",
    "mlx5e_xdp_buff": "wrapper", "mlx5e_rq": "ring", "mlx5 CQ": "descriptor", "mlx5_clock": "clock",
    "stack": "stack",
})
WIDEST_LOAD = 8                 # BPF_DW (R2)
START_NS = 2_000_000_000
FLOW = RxFlow(rss_hash=0x1234_5678, l3="ipv6", l4="udp", vlan_proto=ETH_P_8021Q, vlan_tci=0x0123,
              vlan_stripped=True, ipv6_ext=True)


class Gap(NamedTuple):
    """A known difference between a routine and its cost, reported to the lead and not changed
    here: ``delta`` is what the simulation does minus what the cost says ("ldx", "stx", a touch
    kind, "seqlock"), so everything else is still checked, and a fix on either side makes the
    test fail and say so."""

    why: str
    delta: Mapping[str, int]


_MLX4_NO_SEQLOCK = ("simulation: the 6.3 op reads the timecounter without the clock_lock seqlock section that "
                    "mlx4_en_get_hwtstamp runs (en_clock.c@6.1.192:69-71); COST_XMO follows the C")
_MLX5_SHARED = ("cost: the by-value routine shares the merged op's COST_TS_*, whose stx 1 / stack 1 is the "
                "out-pointer store the by-value routine does not make")
_MLX5_NO_RETRY = ("simulation: the mlx5 stamp (_stamp) checks the clock's sequence once and never re-reads it: "
                  "no read_seqretry loop as mlx5_timecounter_cyc2time has (mlx5/core/lib/clock.h@6.1.192)")
_RT = (("real_time", True),)
GAPS = MappingProxyType({      # (routine name, design, driver options) -> Gap
    ("mlx4_en_xdp_rx_timestamp", "merged", ()): Gap(_MLX4_NO_SEQLOCK, {"ldx": -1, "clock": -1, "seqlock": -1}),
    ("mlx5e_xdp_rx_timestamp", "merged", ()): Gap(_MLX5_NO_RETRY, {"seqlock": -1}),
    ("mlx5e_xdp_rx_timestamp", "patch-v3", ()): Gap(
        _MLX5_NO_RETRY + "; " + _MLX5_SHARED, {"stx": -1, "stack": -1, "seqlock": -1}),
    ("mlx5e_xdp_rx_timestamp", "patch-v3", _RT): Gap(_MLX5_SHARED, {"stx": -1, "stack": -1}),
    ("mlx5e_xdp_rx_timestamp_helper", "rfc-v2", ()): Gap(
        _MLX5_NO_RETRY + "; cost: the RFC-pattern helper shares the merged op's COST_TS_FR, but stores to "
        "ctx->r0 (wrapper), not to the stack", {"wrapper": 1, "stack": -1, "seqlock": -1}),
})


# ----------------------------------------------------------------------------- enumeration
@dataclass(frozen=True)
class Case:
    """One routine with a cost, and a configuration that provides it."""

    driver: str
    options: tuple[tuple[str, Any], ...]
    design: str
    variant: str
    release: tuple[int, int]
    spec: KfuncSpec
    routine: KernelFunction = field(compare=False)

    @property
    def id(self) -> str:
        opts = "".join(f",{k}={v}" for k, v in self.options)
        return f"{self.driver}{opts}-{self.design}-{self.variant}-{self.routine.name}"

    def make_driver(self) -> Driver:
        drv = drivers.get(self.driver, **dict(self.options))
        drv.kernel = self.release
        return drv


def _option_sets(cls: type[Driver]) -> Iterator[tuple[tuple[str, Any], ...]]:
    """The defaults first, then every combination of the constructor's boolean options
    (mlx5 ``real_time``, veth ``xdp_frame``): options that may change which routine is used."""
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if isinstance(p.default, bool)]
    for values in itertools.product(*[(p.default, not p.default) for p in params]):
        yield tuple((p.name, v) for p, v in zip(params, values) if v != p.default)


def _releases() -> tuple[tuple[int, int], ...]:
    """Every kernel release at which some driver's merged ops change, newest first."""
    since = {v for cls in drivers.REGISTRY.values() for v in cls.merged_ops.values()}
    return tuple(sorted(since | {NEWEST_KERNEL}, reverse=True))


def _routines(drv: Driver, design: str, variant: str) -> Iterator[tuple[KfuncSpec, KernelFunction]]:
    """What the loader would call for ``design``: the routines the RFC v2 unroll hook puts into
    the symbol table (mlx4/bnxt/mlx5 helpers), or the call designs' driver routines."""
    table = TABLES[design]
    for spec in table.specs:
        if design == "rfc-v2":
            syms = KernelSymbols()
            ctx = UnrollContext(variant, syms, table, lambda k, p: None, lambda p: None)
            drv.unroll_kfunc(ctx, spec, BpfPatch())
            for _, helper in syms.functions.values():
                yield spec, helper
        else:
            routine = drv.kfunc_routine(spec)
            if routine is not None:
                yield spec, routine


def _has_cost(cost: OpCost) -> bool:
    return bool(any(cost.insns.values()) or any(cost.touches.values()) or cost.muls or cost.seqlock_reads
                or cost.spin_lock_bh)


def _key(kf: KernelFunction) -> tuple[str, int, str]:
    """A routine's identity: its name, its code (closures of one factory are one routine) and
    its cost (the same code priced differently, mlx5's two clock modes, is another)."""
    return kf.name, id(getattr(kf.fn, "__code__", kf.fn)), repr(kf.cost)


def enumerate_cases() -> tuple[Case, ...]:
    """Every distinct (routine, cost) the registry's drivers provide, with the first
    configuration (defaults first) that provides it."""
    seen: set[tuple[str, int, str]] = set()
    out = []
    for name, cls in drivers.REGISTRY.items():
        for options, release, design, variant in itertools.product(_option_sets(cls), _releases(), TABLES, VARIANTS):
            drv = drivers.get(name, **dict(options))
            drv.kernel = release
            for spec, kf in _routines(drv, design, variant):
                key = _key(kf)
                if _has_cost(kf.cost) and key not in seen:
                    seen.add(key)
                    out.append(Case(name, options, design, variant, release, spec, kf))
    return tuple(out)


CASES = enumerate_cases()


def gap_key(case: Case) -> tuple[str, str, tuple[tuple[str, Any], ...]]:
    return case.routine.name, case.design, case.options


def expected(case: Case) -> dict[str, Any]:
    """What the rules should count for a case: its cost, moved by its known Gap (if any)."""
    cost = case.routine.cost
    delta = dict(GAPS[gap_key(case)].delta) if gap_key(case) in GAPS else {}
    kinds = (set(cost.touches) | set(delta)) - {"ldx", "stx", "seqlock"}
    touches = {k: cost.touches.get(k, 0) + delta.get(k, 0) for k in kinds}
    return {"loads": cost.insns.get("ldx", 0) + delta.get("ldx", 0),
            "stores": cost.insns.get("stx", 0) + delta.get("stx", 0),
            "touches": {k: v for k, v in touches.items() if v},
            "locks": cost.spin_lock_bh, "seqlock": cost.seqlock_reads + delta.get("seqlock", 0)}


# ----------------------------------------------------------------------------- recording
class Access(NamedTuple):
    op: str            # "read" | "write"
    addr: int
    size: int
    region: str
    data: bytes


PERTURBATIONS = (lambda b: b ^ 0xFF, lambda b: 0, lambda b: b ^ 0x80, lambda b: 0xFF)
"""R3's changes to a read unit's bytes: inverted (any value), zero (a flag or pointer that was
set), top bit of every byte flipped (a wide value's high bits: ``frac`` of a timecounter), all
ones (a bound that must grow to matter: adjust_meta's ``data_hard_start``)."""


class Recorder(IntAccess):
    """An IntAccess that delegates every access to the real CallContext and logs it with the
    region it hits; ``flip=(n, lo, hi, p)`` applies ``PERTURBATIONS[p]`` to bytes lo..hi of the
    n-th read's result (R3)."""

    def __init__(self, inner: CallContext, space: AddressSpace,
                 flip: tuple[int, int, int, int] | None = None) -> None:
        self.inner, self.space, self.flip = inner, space, flip
        self.log: list[Access] = []
        self.reads = 0

    def _region(self, addr: int, size: int) -> str:
        r = self.space.find(addr, size)
        return r.name if r is not None else "<unmapped>"

    def read_bytes(self, addr: int, size: int) -> bytes:
        region = self._region(addr, size)
        data = self.inner.read_bytes(addr, size)
        if self.flip is not None and self.flip[0] == self.reads:
            _, lo, hi, p = self.flip
            data = data[:lo] + bytes(PERTURBATIONS[p](b) for b in data[lo:hi]) + data[hi:]
        self.reads += 1
        self.log.append(Access("read", addr, size, region, data))
        return data

    def write_bytes(self, addr: int, data: bytes) -> None:
        self.log.append(Access("write", addr, len(data), self._region(addr, len(data)), bytes(data)))
        self.inner.write_bytes(addr, data)


class Outcome(NamedTuple):
    result: str                                 # the return value, or the error raised
    stores: tuple[tuple[int, bytes], ...]


def _snapshot(space: AddressSpace) -> list[tuple[Any, bytes]]:
    return [(r, bytes(r.data)) for r in space.regions]


def _restore(snap: list[tuple[Any, bytes]]) -> None:
    for r, data in snap:
        r.data[:] = data


def _run(kf: KernelFunction, rec: Recorder, args: tuple[int, ...]) -> tuple[Outcome, BaseException | None, int]:
    try:
        ret = kf.fn(rec, *args)                 # type: ignore[arg-type]
    except Exception as exc:                    # the outcome of a perturbed run may be an error
        return Outcome(f"{type(exc).__name__}", tuple((a.addr, a.data) for a in rec.log if a.op == "write")), exc, 0
    return Outcome(str(ret), tuple((a.addr, a.data) for a in rec.log if a.op == "write")), None, ret


@dataclass
class Observation:
    """One call: its accesses and, per read, the field units and whether each is live (R3)."""

    log: list[Access]
    live: dict[tuple[int, int, int], bool]       # (read index, lo, hi) -> outcome depends on it
    units: dict[int, list[tuple[int, int, str]]]  # read index -> [(lo, hi, field)]
    layouts: list[tuple[int, StructLayout]]      # (base, layout) of the structs the call reached


def _field_at(lay: StructLayout, off: int) -> str | None:
    for name, f in lay.fields.items():
        if f.offset == off:
            return name
    return None


def _locate(layouts: list[tuple[int, StructLayout]], addr: int) -> tuple[StructLayout, int] | None:
    for base, lay in layouts:
        if base <= addr < base + lay.size:
            return lay, base
    return None


def _layouts(drv: Driver, wrapper: int, log: list[Access]) -> list[tuple[int, StructLayout]]:
    """The structs the call reached: the wrapper (r1), then each struct a pointer field it
    read points to (``Driver.struct_pointers``)."""
    found = [(wrapper, drv.wrapper)]
    ptrs = drv.struct_pointers()
    for a in log:
        at = _locate(found, a.addr) if a.op == "read" and a.size == 8 else None
        if at is not None:
            name = _field_at(at[0], a.addr - at[1])
            pointee = ptrs.get((at[0].name, name or ""))
            if pointee is not None:
                found.append((int.from_bytes(a.data, "little"), pointee))
    return found


def observe_call(drv: Driver, kf: KernelFunction, cctx: CallContext, args: tuple[int, ...]) -> tuple[Observation, int]:
    """Run ``kf`` once recorded, then once per read unit with that unit inverted (R3), from
    the same memory each time; memory is left as the recorded run left it."""
    space = cctx.machine.space
    before = _snapshot(space)
    rec = Recorder(cctx, space)
    base, error, ret = _run(kf, rec, args)
    after = _snapshot(space)
    layouts = _layouts(drv, args[0], rec.log)
    units: dict[int, list[tuple[int, int, str]]] = {}
    reads = [a for a in rec.log if a.op == "read"]
    for n, a in enumerate(reads):
        if a.size <= WIDEST_LOAD:
            units[n] = [(0, a.size, "")]
            continue
        at = _locate(layouts, a.addr)
        assert at is not None, f"{kf.name}: bulk read of {a.size} bytes in {a.region} through no known pointer"
        lay, sbase = at
        units[n] = [(sbase + f.offset - a.addr, sbase + f.offset + f.size - a.addr, name)
                    for name, f in lay.fields.items()
                    if a.addr <= sbase + f.offset and sbase + f.offset + f.size <= a.addr + a.size]
    live = {}
    for n, us in units.items():
        for lo, hi, _ in us:
            live[(n, lo, hi)] = False
            for p in range(len(PERTURBATIONS)):
                _restore(before)
                outcome, _, _ = _run(kf, Recorder(cctx, space, (n, lo, hi, p)), args)
                if outcome != base:
                    live[(n, lo, hi)] = True
                    break
    _restore(after)
    if error is not None:
        raise error
    return Observation(rec.log, live, units, layouts), ret


@dataclass(frozen=True)
class Counted:
    """What the call did, by the rules: C loads and stores, touches per kind, sections."""

    loads: int
    stores: int
    touches: dict[str, int]
    seqlock_sections: int
    lock_sections: int
    detail: tuple[str, ...]


def count(obs: Observation) -> Counted:
    loads = stores = seq = locks = 0
    touches: dict[str, int] = {}
    detail = []
    written: set[tuple[int, int]] = set()
    read_addrs: set[int] = set()
    n = -1
    for a in obs.log:
        kind = REGION_KINDS.get(a.region)
        assert kind is not None, f"region {a.region!r} has no touch kind in REGION_KINDS"
        if a.op == "write":
            stores += 1
            touches[kind] = touches.get(kind, 0) + 1
            written.add((a.addr, a.size))
            detail.append(f"store {a.region}+{a.size}")
            continue
        n += 1
        at = _locate(obs.layouts, a.addr)
        fname = _field_at(at[0], a.addr - at[1]) if at else None
        if (a.addr, a.size) in written:                                    # R4
            detail.append(f"forwarded {a.region}")
        elif fname is not None and fname.endswith("_lock"):                # R6
            locks += 1
            detail.append(f"lock {fname}")
        else:
            live = [u for u in obs.units[n] if obs.live[(n, u[0], u[1])]]
            if not live and a.addr in read_addrs and a.size <= WIDEST_LOAD:   # R5
                seq += 1
                detail.append(f"seqlock retry {a.region}")
            for lo, hi, f in live:                                           # R1-R3
                loads += 1
                touches[kind] = touches.get(kind, 0) + 1
                detail.append(f"load {a.region}{'.' + f if f else ''}{'' if f else '+%d' % a.size}")
            if not live and not (a.addr in read_addrs):
                detail.append(f"dead {a.region} ({a.size} bytes)")
        read_addrs.add(a.addr)
    return Counted(loads, stores, touches, seq, locks, tuple(detail))


# ----------------------------------------------------------------------------- running
def load(drv: Driver, design: str, variant: str, spec: KfuncSpec) -> tuple[Kernel, Any]:
    """A kernel with ``drv`` as eth0 and a one-kfunc program loaded device-bound to it
    (merged: the out-pointers on the stack, as the selftest passes them)."""
    k = Kernel(seed=0)
    dev = k.netns.add("eth0", drv)
    args = "r2 = r10\nr2 += -8\nr3 = r10\nr3 += -16\n" if spec.returns == "status" else ""
    loaded = k.prog_load(assemble(f"{args}call kfunc({spec.btf_id})\nexit"), prog_flags=BPF_F_XDP_HAS_METADATA,
                         prog_ifindex=dev.ifindex, design=design, variant=variant)
    return k, loaded


def receive(drv: Driver, k: Kernel, variant: str) -> Any:
    rx = drv.rx_path(k.memory, RxSettings(variant=variant))
    rx.receive(0, START_NS, 64)
    drv.receive_meta(rx, 0, FLOW)
    return rx


def observe(case: Case) -> list[Observation]:
    """Run the case's program once; every call of its routine is observed."""
    drv = case.make_driver()
    k, loaded = load(drv, case.design, case.variant, case.spec)
    rx = receive(drv, k, case.variant)
    seen: list[Observation] = []
    table = {}
    for addr, kf in loaded.symbols.functions.values():
        if _key(kf) == _key(case.routine):
            def fn(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int, kf: KernelFunction = kf) -> int:
                obs, ret = observe_call(drv, kf, cctx, (r1, r2, r3, r4, r5))
                seen.append(obs)
                return ret
            table[addr - BPF_CALL_BASE] = fn
        else:
            table[addr - BPF_CALL_BASE] = kf.fn
    run_in(loaded.xlated, k.memory.space, rx.wrapper.base, env=Env(helpers=table, kfuncs=table),
           verified=case.variant == "fixed", fast=False)
    return seen


@lru_cache(maxsize=None)                 # a pure memo: both tests of a case read one run
def _observed_by_id(case_id: str) -> tuple[Observation, ...]:
    return tuple(observe(next(c for c in CASES if c.id == case_id)))


def observed(case: Case) -> tuple[Observation, ...]:
    return _observed_by_id(case.id)


# ----------------------------------------------------------------------------- tests
def test_enumeration_covers_every_driver_cost():
    """Every module-level OpCost of every registered driver's module is the cost of an
    enumerated routine: a routine the enumeration cannot reach is a failure, not a gap."""
    costs = {id(c.routine.cost) for c in CASES}
    modules = {inspect.getmodule(cls) for cls in drivers.REGISTRY.values()}
    missing = [f"{m.__name__}.{name}" for m in modules for name, v in vars(m).items()
               if isinstance(v, OpCost) and _has_cost(v) and id(v) not in costs]
    assert not missing, f"costs no enumerated routine has: {missing}"
    assert {c.driver for c in CASES} == set(drivers.REGISTRY)


def test_region_kinds_agree_with_the_project():
    """REGION_KINDS names the same kind the receive paths give each region."""
    for name, cls in drivers.REGISTRY.items():
        for options in _option_sets(cls):
            drv = drivers.get(name, **dict(options))
            k = Kernel(seed=0)
            before = {id(r) for r in k.memory.space.regions}
            receive(drv, k, "fixed")
            for r in k.memory.space.regions:
                if id(r) not in before:
                    assert REGION_KINDS.get(r.name) == r.kind, (name, r.name, r.kind)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_memory_traffic_matches_opcost(case: Case):
    """R1-R4, R6: the routine's live loads, its stores and their touch kinds are its cost's."""
    obs = observed(case)
    assert len(obs) == 1, f"{case.id}: the routine ran {len(obs)} times, not once"
    got = count(obs[0])
    want = expected(case)
    why = f"{case.id}: {', '.join(got.detail)}"
    assert got.loads == want["loads"], why
    assert got.stores == want["stores"], why
    assert got.touches == want["touches"], why
    assert got.lock_sections == want["locks"], why


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_seqlock_sections_match_opcost(case: Case):
    """R5: a routine priced with n seqlock sections re-reads a sequence n times."""
    got = count(observed(case)[0])
    assert got.seqlock_sections == expected(case)["seqlock"], f"{case.id}: {', '.join(got.detail)}"


def test_known_gaps_are_live():
    """Every GAPS entry names a routine the enumeration finds (a stale entry is an error)."""
    assert set(GAPS) <= {gap_key(c) for c in CASES}


def _inline_unroll_drivers() -> list[str]:
    """Drivers (default options) whose RFC v2 rx_timestamp unroll calls nothing."""
    spec = TABLES["rfc-v2"].by_enum("XDP_METADATA_KFUNC_RX_TIMESTAMP")
    out = []
    for name in drivers.REGISTRY:
        drv = drivers.get(name)
        _, loaded = load(drv, "rfc-v2", "fixed", spec)
        if drv.supports_rx_timestamp and not any(i.opcode == (op.BPF_JMP | op.BPF_CALL) for i in loaded.xlated):
            out.append(name)
    return out


INLINE = _inline_unroll_drivers()


def test_inline_unroll_drivers_are_found():
    assert {"veth", "ice"} <= set(INLINE)


@pytest.mark.parametrize("name", INLINE)
def test_inline_unroll_executes_what_the_routine_costs(name: str):
    """The call-design routine costs, by class, what the RFC v2 unroll executes on the same
    packet (ice: "the 16 instructions the unroll executes on its common path").  Difference,
    documented once: the program's own ``exit`` (one jmp-class instruction) is not the
    unroll's, and a C routine's return is not in its OpCost either (cost.py prices the call
    and return as ``direct_call_ns``)."""
    drv = drivers.get(name)
    spec = TABLES["rfc-v2"].by_enum("XDP_METADATA_KFUNC_RX_TIMESTAMP")
    k, loaded = load(drv, "rfc-v2", "fixed", spec)
    rx = receive(drv, k, "fixed")
    res = run_in(loaded.xlated, k.memory.space, rx.wrapper.base, env=loaded.env(), fast=False)
    assert res.r0 != 0, "the common path delivers a stamp"
    executed = {c: n for c, n in res.by_class.items() if n}
    executed["jmp"] -= 1                                    # the program's exit
    routine = drv.kfunc_routine(TABLES["patch-v3"].by_enum("XDP_METADATA_KFUNC_RX_TIMESTAMP"))
    assert routine is not None
    assert {c: n for c, n in executed.items() if n} == {c: n for c, n in routine.cost.insns.items() if n}


# ----------------------------------------------------------------------------- the helper table
# xdplab/cost.py HELPER_COSTS prices the two helpers the generated programs call.  The same
# rules apply to their simulation (XdpRxQueue's helpers, xdplab/kernel/xdp.py), run from a
# program on a real RX queue: data_meta/data/data_hard_start of the xdp_buff (the wrapper's
# head) and the data_meta store for bpf_xdp_adjust_meta (net/core/filter.c@6.1.192:4220-4236:
# three loads, one store).  bpf_redirect_map's simulation keeps the map in Python, so its map
# loads and stores leave no trace: a Gap, stated as one.
HELPER_GAPS = MappingProxyType({
    BPF_FUNC_redirect_map: Gap("simulation: the XSKMAP/CPUMAP lookup and the bpf_redirect_info stores are "
                               "Python (XdpRxQueue._redirect_map), not simulated memory",
                               {"ldx": -4, "stx": -2, "map": -2}),
})


def helper_program(xsk_fd: int) -> str:
    """bpf_xdp_adjust_meta(ctx, -8), then bpf_redirect_map(&xsk, 0, 0): the two calls the
    generated metadata program makes (xdplab/programs.py)."""
    return (f"r6 = r1\nr2 = -8\ncall {BPF_FUNC_xdp_adjust_meta}\n"
            f"r1 = map_fd({xsk_fd}) ll\nr2 = 0\nr3 = 0\ncall {BPF_FUNC_redirect_map}\nexit")


@pytest.mark.parametrize("helper", sorted(HELPER_COSTS))
def test_helper_table_matches_memory_traffic(helper: int):
    drv = drivers.get("veth")
    k = Kernel(seed=0)
    dev = k.netns.add("eth0", drv)
    xsk = k.map_create("xsk", BPF_MAP_TYPE_XSKMAP, 4, 4, 64)
    loaded = k.prog_load(assemble(helper_program(xsk)))
    rx = receive(drv, k, "fixed")
    queue = XdpRxQueue(k.memory, loaded, rx.wrapper, ifindex=dev.ifindex,
                       redirect_targets={m.map_id: {0: XskSocket.create()} for m in loaded.maps.values()})
    inner = queue.env.helpers[helper]
    seen: list[Observation] = []

    def fn(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        obs, ret = observe_call(drv, KernelFunction(f"helper {helper}", inner), cctx, (r1, r2, r3, r4, r5))
        seen.append(obs)
        return ret
    queue.env = Env(helpers={**queue.env.helpers, helper: fn}, kfuncs=queue.env.kfuncs)
    out = queue.run(bytes(64))
    assert out.run is not None and out.run.r0 == XDP_REDIRECT and len(seen) == 1
    got = count(seen[0])
    cost = HELPER_COSTS[helper]
    delta = HELPER_GAPS[helper].delta if helper in HELPER_GAPS else {}
    touches = {k: cost.touches.get(k, 0) + delta.get(k, 0) for k in set(cost.touches) | set(delta) - {"ldx", "stx"}}
    why = ", ".join(got.detail)
    assert got.loads == cost.insns.get("ldx", 0) + delta.get("ldx", 0), why
    assert got.stores == cost.insns.get("stx", 0) + delta.get("stx", 0), why
    assert got.touches == {k: v for k, v in touches.items() if v}, why
