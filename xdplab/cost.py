"""Per-packet cost, computed from what actually ran in the simulation.

Inputs, all counted by the eBPF machine for each packet: executed instructions by class,
memory touches by region kind (descriptor line, wrapper, ring, shared clock state, skb,
packet, stack, map), and the calls made.  Every kernel call a JITed program makes is a direct
``call rel32`` (arch/x86/net/bpf_jit_comp.c@6.1.192:1537-1547), and the driver enters the
program through the BPF dispatcher, a direct call too (include/linux/filter.h@6.1.192:810):
no profile prices either as a retpolined indirect call.  Each called kernel routine declares
its own work as an :class:`~xdplab.kernel.symbols.OpCost` (instructions, touches, multiplies,
seqlock reads, spin_lock_bh sections).

A profile (``data/cost.json``) is **one machine** with the measurements made on it, named after
who measured it: ``e5-1650v4`` (Brouer's traits01 and the XDP paper), ``larysa-ice`` (her ice
rx_hash numbers) and ``toke-mlx5`` (his mlx5 kfunc numbers).  Constants marked FIT are derived
from one measurement of that machine and are never "checked" against it; MODEL marks a
modelling choice; the rest are quoted.  The cost covers the XDP program and what it calls;
line-rate budgets cover the whole packet, so :func:`packet_ns` adds the driver's RX path
(:func:`rx_path_ns`, from a whole-packet measurement of the same machine) before comparing.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Generic, Mapping, TypeVar, overload

import numpy as np
import numpy.typing as npt

from .bpf.lanes import LaneResult
from .bpf.opcodes import CLASS_NAMES
from .bpf.run import RunResult
from .kernel.symbols import KernelSymbols, OpCost
from .kernel.uapi import BPF_FUNC_redirect_map, BPF_FUNC_xdp_adjust_meta
from .profiles import data_path

PROFILES = ("e5-1650v4", "larysa-ice", "toke-mlx5")
DEFAULT_PROFILE = "e5-1650v4"
LINE_RATES_GBIT = (10, 25, 100)

# Helpers the programs call (MODEL op counts from net/core/filter.c):
HELPER_COSTS: Mapping[int, OpCost] = MappingProxyType({
    BPF_FUNC_xdp_adjust_meta: OpCost(insns={"ldx": 3, "alu64": 6, "jmp": 4, "stx": 1}, touches={"wrapper": 4}),
    BPF_FUNC_redirect_map: OpCost(insns={"ldx": 4, "alu64": 6, "jmp": 4, "stx": 2}, touches={"map": 2}),
})


@dataclass(frozen=True)
class CpuProfile:
    """One machine's constants (see ``data/cost.json`` for each one's source)."""

    name: str
    title: str
    ghz: float
    insn_cycles: Mapping[str, float]
    touch_cycles: Mapping[str, float]
    direct_call_ns: float
    prog_invoke_ns: float
    spin_lock_bh_ns: float
    mul_cycles: float
    whole_packet_ns: float | None = None     # a whole-packet XDP_DROP measurement of this machine

    def opcost_ns(self, op: OpCost) -> float:
        cycles = sum(n * self.insn_cycles.get(c, 1.0) for c, n in op.insns.items())
        cycles += sum(n * self.touch_cycles.get(k, 0.0) for k, n in op.touches.items())
        cycles += op.muls * self.mul_cycles
        cycles += op.seqlock_reads * 2 * self.insn_cycles.get("ldx", 0.5)   # two extra L1 loads
        return cycles / self.ghz + op.spin_lock_bh * self.spin_lock_bh_ns


@lru_cache(maxsize=None)   # a pure memo of a read-only file
def _cost_data() -> Mapping[str, Any]:
    return MappingProxyType(json.loads(data_path("cost.json").read_text()))


def profile(name: str = DEFAULT_PROFILE) -> CpuProfile:
    """The named machine's profile; an old name gives its successor with a DeprecationWarning."""
    data = _cost_data()
    alias = data.get("aliases", {}).get(name)
    if alias is not None:
        warnings.warn(f"cost profile {name!r} is deprecated: {alias['why']}; using {alias['to']!r}",
                      DeprecationWarning, stacklevel=2)
        name = alias["to"]
    return _profile(name)


@lru_cache(maxsize=None)
def _profile(name: str) -> CpuProfile:
    profiles = _cost_data()["profiles"]
    if name not in profiles:
        raise ValueError(f"unknown CPU profile {name!r}; valid profiles: {', '.join(profiles)}")
    p = profiles[name]
    return CpuProfile(name, p["title"], p["ghz"]["value"], MappingProxyType(dict(p["insn_cycles"]["value"])),
                      MappingProxyType(dict(p["touch_cycles"]["value"])),
                      p["direct_call_ns"]["value"], p["prog_invoke_ns"]["value"], p["spin_lock_bh_ns"]["value"],
                      p["mul_cycles"]["value"], p.get("rx_path_ns", {}).get("whole_packet_ns"))


def anchor(name: str) -> float:
    return float(_cost_data()["anchors"][name]["value"])


def xdp_drop_program_ns(prof: CpuProfile) -> float:
    """The modelled cost of the smallest XDP program (``r0 = XDP_DROP; exit``): the entry and
    two instructions."""
    return prof.prog_invoke_ns + (prof.insn_cycles.get("alu64", 0.5) + prof.insn_cycles.get("jmp", 0.5)) / prof.ghz


def rx_path_ns(prof: CpuProfile) -> float | None:
    """The driver's per-packet RX work besides the XDP program on this machine: its
    whole-packet XDP_DROP time minus the modelled drop program (None without a measurement)."""
    if prof.whole_packet_ns is None:
        return None
    return prof.whole_packet_ns - xdp_drop_program_ns(prof)


@overload
def packet_ns(program_ns: float, prof: CpuProfile) -> float: ...
@overload
def packet_ns(program_ns: npt.NDArray[np.float64], prof: CpuProfile) -> npt.NDArray[np.float64]: ...


def packet_ns(program_ns: float | npt.NDArray[np.float64],
              prof: CpuProfile) -> float | npt.NDArray[np.float64]:
    """What a budget must be compared with: the driver's RX path plus the program's cost."""
    rx = rx_path_ns(prof)
    return program_ns + (rx if rx is not None else np.nan)


def line_rate_budget_ns(gbit_per_s: float, frame_bytes: int = 64) -> float:
    """ns per minimum frame at line rate: (frame + 20 bytes of preamble, SFD, IFG) * 8 / rate
    (kernel-facts §11.1).  A budget covers the whole packet: compare it with :func:`packet_ns`."""
    return (frame_bytes + 20) * 8 / gbit_per_s


def fits_line_rate(program_ns: float, gbit_per_s: float, prof: CpuProfile) -> bool | None:
    """Whether one core keeps up with 64-byte frames at the line rate: the RX path plus the
    program within the budget (None when the machine has no whole-packet measurement)."""
    total = packet_ns(program_ns, prof)
    return None if np.isnan(total) else bool(total <= line_rate_budget_ns(gbit_per_s))


# ns for one packet (a float) or for many (a float64 array): a CostBreakdown holds one kind
NS = TypeVar("NS", float, npt.NDArray[np.float64])


@dataclass(frozen=True)
class CostBreakdown(Generic[NS]):
    """The modelled cost of program runs, by part (floats for one packet, arrays for many)."""

    program_ns: NS      # the program's own instructions and memory touches
    calls_ns: NS        # call/return overhead of kernel calls
    routines_ns: NS     # the work inside the called routines (helpers, kfunc bodies)
    driver_ns: NS       # per-frame driver work a design adds (BTF hints fill)
    invoke_ns: NS       # the call into the program

    @property
    def total(self) -> NS:
        return self.program_ns + self.calls_ns + self.routines_ns + self.driver_ns + self.invoke_ns


@dataclass(frozen=True)
class RunCounts:
    """What the machine counted for ``n`` runs, as arrays: instructions per class name,
    whether each region kind was touched, and calls per (kind, imm)."""

    by_class: Mapping[str, np.ndarray]
    touched: Mapping[str, np.ndarray]
    calls: Mapping[tuple[str, int], np.ndarray]

    @classmethod
    def of_run(cls, result: RunResult) -> "RunCounts":
        """One scalar run as a single lane."""
        kinds = {kind for (kind, _), n in result.touches.items() if n}
        return cls({c: np.array([n]) for c, n in result.by_class.items()},
                   {k: np.array([True]) for k in kinds},
                   {key: np.array([n]) for key, n in result.call_targets.items()})

    @classmethod
    def of_lanes(cls, res: LaneResult) -> "RunCounts":
        """A lane run (:class:`xdplab.bpf.lanes.LaneResult`)."""
        return cls({CLASS_NAMES[c]: res.by_class[c] for c in range(8)},
                   {k: (res.kinds & np.int64(1 << i)) != 0 for i, k in enumerate(res.kind_names)},
                   dict(res.calls))


def _without_touches(op: OpCost) -> OpCost:
    return OpCost(op.insns, {}, op.muls, op.seqlock_reads, op.spin_lock_bh)


def price(counts: RunCounts, symbols: KernelSymbols, prof: CpuProfile, *,
          driver_work: OpCost | None = None) -> CostBreakdown[npt.NDArray[np.float64]]:
    """The cost model, once for every engine: the program's instructions by class, each
    region kind touched once per packet (the first access brings the line in, later ones hit
    L1), whoever touches it -- the program, a called routine or the driver; per kernel call
    ``direct_call_ns`` (a call instruction's own issue slot is part of it) plus the routine's
    declared work; the design's per-frame driver work; the invocation of the program."""
    n = len(next(iter(counts.by_class.values()))) if counts.by_class else 1
    cycles = np.zeros(n)
    for c, count in counts.by_class.items():
        cycles = cycles + count * prof.insn_cycles.get(c, 1.0)
    touched = {k: np.asarray(v, bool).copy() for k, v in counts.touched.items()}
    calls = np.zeros(n)
    routines = np.zeros(n)
    for (kind, imm), count in counts.calls.items():
        op = HELPER_COSTS.get(imm) if kind == "helper" else None
        if op is None:
            kf = symbols.function_at_imm(imm)
            op = kf.cost if kf is not None else OpCost()
        cycles = cycles - count * prof.insn_cycles.get("jmp", 0.5)
        calls = calls + count * prof.direct_call_ns
        routines = routines + count * prof.opcost_ns(_without_touches(op))
        for k, v in op.touches.items():
            if v:
                touched[k] = touched.get(k, np.zeros(n, bool)) | (count > 0)
    driver = np.zeros(n)
    if driver_work is not None:
        driver = driver + prof.opcost_ns(_without_touches(driver_work))
        for k, v in driver_work.touches.items():
            if v:
                touched[k] = np.ones(n, bool)
    for k, mask in touched.items():
        cycles = cycles + mask * prof.touch_cycles.get(k, 0.0)
    return CostBreakdown(cycles / prof.ghz, calls, routines, driver, np.full(n, prof.prog_invoke_ns))


def packet_cost(result: RunResult, symbols: KernelSymbols, prof: CpuProfile, *,
                driver_work: OpCost | None = None) -> CostBreakdown[float]:
    """:func:`price` for one scalar run, as floats."""
    c = price(RunCounts.of_run(result), symbols, prof, driver_work=driver_work)
    return CostBreakdown(*(float(np.asarray(x)[0]) for x in (c.program_ns, c.calls_ns, c.routines_ns,
                                                              c.driver_ns, c.invoke_ns)))


def kfunc_calls_scenario_ns(prof: CpuProfile, bodies: tuple[OpCost, ...], glue_insns: int = 3) -> float:
    """The cost of a program making direct kfunc calls with the given bodies: each call's
    overhead, its body, and ``glue_insns`` instructions of argument set-up and result check
    around it.  Used to check the model against published call-overhead measurements."""
    per_glue = glue_insns * prof.insn_cycles.get("alu64", 0.5) / prof.ghz
    return sum(prof.direct_call_ns + prof.opcost_ns(body) + per_glue for body in bodies)


# mlx5's merged-era routines as measured by Toke (v3 11/12): metadata_supported and
# rx_hash_supported return a constant; rx_hash reads the CQE's rss_hash_result and type.
MLX5_SUPPORTED = OpCost(insns={"alu64": 1})
MLX5_RX_HASH = OpCost(insns={"ldx": 3, "alu64": 3, "jmp": 1, "stx": 1}, touches={"descriptor": 1})


def btf_hints_driver_work(timestamp_routine: OpCost) -> OpCost:
    """What a driver does per frame under BTF hints: its timestamp C path, the hash and VLAN
    reads, and the stores of the struct (rx_timestamp, queue/vlan, hash, flags, btf id) and
    of data_meta (MODEL op counts)."""
    insns = dict(timestamp_routine.insns)
    for c, n in (("ldx", 4), ("alu64", 4), ("stx", 6)):
        insns[c] = insns.get(c, 0) + n
    touches = dict(timestamp_routine.touches)
    for k, n in (("descriptor", 2), ("packet", 5), ("wrapper", 1)):
        touches[k] = touches.get(k, 0) + n
    return OpCost(insns, touches, timestamp_routine.muls, timestamp_routine.seqlock_reads,
                  timestamp_routine.spin_lock_bh)
