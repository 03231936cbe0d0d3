"""Design sweeps: every driver x design x field subset, priced and compared.

The BTF-hints design's struct lives in the kernel layer (:mod:`xdplab.kernel.btf_hints`); this
module only orchestrates runs of :class:`xdplab.Lab` and tabulates them.
"""
from __future__ import annotations

from concurrent.futures import Executor
from types import MappingProxyType
from typing import Mapping

import pandas as pd
from tqdm.auto import tqdm

from .lab import Lab

# --------------------------------------------------------------------------- comparisons
DESIGN_FIELD_SETS: Mapping[str, tuple[tuple[str, ...], ...]] = MappingProxyType({
    "none": ((),),
    "btf-hints": ((),),
    "rfc-v2": ((), ("rx_timestamp",)),
    "rfc-v1": ((), ("rx_timestamp",)),
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
            designs: tuple[str, ...] = ("none", "btf-hints", "rfc-v2", "rfc-v1", "merged"),
            *, packets: int = 50, profile: str = "e5-1650v4-retpoline", variant: str = "fixed",
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
    sets = field_sets or DESIGN_FIELD_SETS
    combos = [(d, g, f) for d in drivers for g in designs for f in sets[g]]
    kw = dict(packets=packets, profile=profile, variant=variant, seed=seed)
    if executor is None:
        rows = [measure(d, g, f, **kw) for d, g, f in tqdm(combos, desc="designs", disable=not progress)]  # type: ignore[arg-type]
    else:
        futures = [executor.submit(measure, d, g, f, **kw) for d, g, f in combos]
        rows = [fut.result() for fut in tqdm(futures, desc="designs", disable=not progress)]
    out = pd.DataFrame(rows)
    baseline = {r["driver"]: r["cost_ns"] for r in rows if r["design"] == "none"}
    out["over_none_ns"] = [r["cost_ns"] - baseline.get(r["driver"], float("nan")) for r in rows]
    out.attrs.update(profile=profile, packets=packets)
    return out
