"""Design sweeps: every driver x design x field subset, priced and compared.

The BTF-hints design's struct lives in the kernel layer (:mod:`xdplab.kernel.btf_hints`); this
module only orchestrates runs of :class:`xdplab.Lab` and tabulates them.
"""
from __future__ import annotations

from concurrent.futures import Executor
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import pandas as pd
from tqdm.auto import tqdm

from . import drivers as _drivers
from .bpf.patch import BpfPatch
from .cost import DEFAULT_PROFILE
from .kernel.driver import UnrollContext
from .kernel.kfuncs import MERGED_KFUNC_SINCE, RFC_V2
from .kernel.symbols import KernelSymbols
from .lab import Lab, parse_kernel
from .programs import FIELDS_BY_DESIGN, canonical_design
from .traffic import Flow, Traffic

# --------------------------------------------------------------------------- comparisons
DESIGN_FIELD_SETS: Mapping[str, tuple[tuple[str, ...], ...]] = MappingProxyType({
    "none": ((),),
    "btf-hints": ((),),
    "rfc-v2": ((), ("rx_timestamp",)),
    "patch-v3": ((), ("rx_timestamp",)),
    "merged": ((), ("rx_timestamp",), ("rx_hash",), ("rx_timestamp", "rx_hash"),
               ("rx_timestamp", "rx_hash", "rx_vlan_tag")),
})


def measure(driver: str, design: str, fields: tuple[str, ...], *, packets: int, profile: str, variant: str,
            seed: int) -> dict:
    """One configuration of the sweep: its mean cost, instructions and delivery (a plain
    dict, so it travels back from any executor's worker)."""
    df = Lab(driver, fields, design=design, variant=variant, seed=seed).run(
        packets, profile=profile, assume_meta_support=True)
    asks = "rx_timestamp" in fields or design == "btf-hints"
    return {"driver": driver, "design": design, "fields": ",".join(fields) or "-", "n_fields": len(fields),
            "cost_ns": float(df.cost_ns.mean()), "insns": float(df.insns.mean()),
            "delivered": float((df.rx_timestamp != 0).mean()) if asks else float("nan")}


def compare(drivers: tuple[str, ...] = ("veth", "ice", "mlx4", "bnxt"),
            designs: tuple[str, ...] = ("none", "btf-hints", "rfc-v2", "patch-v3", "merged"),
            *, packets: int = 50, profile: str = DEFAULT_PROFILE, variant: str = "fixed",
            field_sets: Mapping[str, tuple[tuple[str, ...], ...]] | None = None, progress: bool = True,
            seed: int = 0, executor: Executor | None = None) -> pd.DataFrame:
    """Per-packet cost for every driver x design x field subset: a pandas DataFrame with the
    mean cost, its difference from the ``none`` design of the same driver, instructions and
    delivery.

    A progress bar (tqdm.auto: a widget in notebooks) shows the sweep.
    ``assume_meta_support`` is on so mlx4/bnxt deliver (see :meth:`xdplab.Lab.run`).
    ``executor``: any ``concurrent.futures.Executor`` (a process pool, a dask client's
    ``get_executor()``): each configuration becomes one task, so a big sweep spreads over a
    cluster without new code.
    """
    designs = tuple(canonical_design(d) for d in designs)
    sets = field_sets or DESIGN_FIELD_SETS
    combos = [(d, g, f) for d in drivers for g in designs for f in sets[g]]
    run = partial(measure, packets=packets, profile=profile, variant=variant, seed=seed)   # picklable
    if executor is None:
        rows = [run(d, g, f) for d, g, f in tqdm(combos, desc="designs", disable=not progress)]
    else:
        futures = [executor.submit(run, d, g, f) for d, g, f in combos]
        rows = [fut.result() for fut in tqdm(futures, desc="designs", disable=not progress)]
    out = pd.DataFrame(rows)
    baseline = {r["driver"]: r["cost_ns"] for r in rows if r["design"] == "none"}
    out["over_none_ns"] = [r["cost_ns"] - baseline.get(r["driver"], float("nan")) for r in rows]
    out.attrs.update(profile=profile, packets=packets)
    return out


# --------------------------------------------------------------------------- the subset claim
FIELD_ORDER = ("rx_timestamp", "rx_hash", "rx_vlan_tag")
KFUNC_DESIGNS = ("rfc-v2", "patch-v3", "merged")


def field_subsets(design: str) -> tuple[tuple[str, ...], ...]:
    """The prefixes of :data:`FIELD_ORDER` a design offers (0, 1, 2, 3 fields).  BTF hints
    offers no choice: its driver writes the whole struct for every frame, so its rows are the
    same configuration at every count (the program reads what it wants from memory that is
    filled anyway)."""
    offered = tuple(f for f in FIELD_ORDER if f in FIELDS_BY_DESIGN[design])
    return tuple(offered[:n] for n in range(len(offered) + 1))


def _measure_fields(driver: str, design: str, n: int, fields: tuple[str, ...], *, packets: int, profile: str,
                    variant: str, seed: int, kernel: str | None,
                    traffic: Traffic | str | Path | list[Flow] | None) -> dict:
    program_fields = () if design in ("btf-hints", "none") else fields
    lab = Lab(driver, program_fields, design=design, variant=variant, seed=seed, kernel=kernel)
    df = lab.run(packets, profile=profile, assume_meta_support=True, traffic=traffic)
    return {"driver": driver, "design": design, "n_fields": n, "fields": ",".join(fields) or "-",
            "cost_ns": float(df.cost_ns.mean()), "insns": float(df.insns.mean()),
            "delivered": float((df.delivered_to == "af_xdp").mean())}


def field_cost_sweep(drivers: tuple[str, ...] | None = None,
                     designs: tuple[str, ...] = ("none", "btf-hints", "rfc-v2", "patch-v3", "merged"), *,
                     packets: int = 20, profile: str = DEFAULT_PROFILE, variant: str = "fixed",
                     kernel: str | None = None, seed: int = 0,
                     traffic: Traffic | str | Path | list[Flow] | None = None,
                     progress: bool = False, executor: Executor | None = None) -> pd.DataFrame:
    """Per-packet cost against the number of metadata fields the program uses, for every
    driver and design: the cover letter's claim that "users can use a small subset of
    metadata which is more efficient than the BTF id approach where all metadata has to be
    exposed for every frame", measured.

    Columns: driver, design, n_fields (0..3, prefixes of rx_timestamp, rx_hash, rx_vlan_tag
    as far as the design offers them), fields, cost_ns (mean, :mod:`xdplab.cost`), insns,
    delivered.  Kfunc designs ask for ``n_fields`` fields; ``btf-hints`` is the same run at
    every count (its driver fills every field of the struct for every frame); ``none`` is the
    floor (no metadata).  ``assume_meta_support`` is on so mlx4/bnxt deliver.
    """
    names = drivers or _drivers.names()
    combos: list[tuple[str, str, int, tuple[str, ...]]] = []
    for d in names:
        for g in designs:
            if g in KFUNC_DESIGNS:
                combos += [(d, g, len(fs), fs) for fs in field_subsets(g)]
            else:
                combos += [(d, g, n, FIELD_ORDER[:n]) for n in range(len(FIELD_ORDER) + 1)]
    run = partial(_measure_fields, packets=packets, profile=profile, variant=variant, seed=seed, kernel=kernel,
                  traffic=traffic)                                                          # picklable
    if executor is None:
        rows = [run(d, g, n, f) for d, g, n, f in tqdm(combos, desc="fields", disable=not progress)]
    else:
        futures = [executor.submit(run, d, g, n, f) for d, g, n, f in combos]
        rows = [fut.result() for fut in tqdm(futures, desc="fields", disable=not progress)]
    out = pd.DataFrame(rows)
    out.attrs.update(profile=profile, packets=packets, kernel=kernel or "newest")
    return out


def field_support(driver: str, design: str, *, kernel: str | None = None,
                  driver_options: Mapping[str, object] | None = None) -> dict[str, str | None]:
    """For each field a design offers: None where ``driver`` provides it under ``design`` (at
    ``kernel`` for merged), else why not (for a fields selector that shows the others
    disabled).  Merged: the driver's ``xdp_metadata_ops`` of that release (the kfunc itself
    falls back to -EOPNOTSUPP); rfc-v2 (fields beyond the timestamp: MODEL): whether the
    driver's unroll answers ``*_supported`` with 1; BTF hints: every field, always."""
    drv = _drivers.get(driver, **dict(driver_options or {}))
    release = parse_kernel(kernel)
    out: dict[str, str | None] = {}
    for f in FIELDS_BY_DESIGN[design]:
        if design == "none":
            out[f] = "the none design reads no metadata"
        elif design == "btf-hints":
            out[f] = None
        elif design == "merged":
            since, have = MERGED_KFUNC_SINCE[f], drv.merged_ops.get(f)
            if release < since:
                out[f] = f"bpf_xdp_metadata_{f} came in {since[0]}.{since[1]}"
            elif have is None:
                out[f] = f"{driver} has no xmo_{f} (-EOPNOTSUPP)"
            elif release < have:
                out[f] = f"{driver}'s xmo_{f} came in {have[0]}.{have[1]} (-EOPNOTSUPP before)"
            else:
                out[f] = None
        elif f == "rx_timestamp":
            out[f] = None if drv.supports_rx_timestamp else f"{driver} has no RX timestamp in the RFC"
        else:
            patch = BpfPatch()
            # A throwaway context: the *_supported unrolls emit a constant and use none of it.
            ctx = UnrollContext("fixed", KernelSymbols(), RFC_V2, lambda kf, p: None, lambda p: None)
            drv.unroll_kfunc(ctx, RFC_V2.by_name(f"bpf_xdp_metadata_{f}_supported"), patch)
            out[f] = None if len(patch) else f"{driver} has no {f} source (MODEL: *_supported unrolls to 0)"
    return out
