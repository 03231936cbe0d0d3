"""``Lab``: one driver, one design, one set of fields — the RFC, loaded and ready to look at.

DESIGN.md §2: ``Lab(driver, fields=("rx_timestamp",), *, variant="fixed", design="rfc-v2",
seed=0)`` with ``.program`` (the XDP program asking for those fields), ``.xlated`` (after the
load-time pipeline for that driver), ``.diff()`` (an :class:`InsnDiff`) and ``.run()``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import drivers
from .bpf import Program
from .kernel.kernel import Kernel
from .kernel.loader import VARIANTS, LoadedProgram
from .kernel.maps import BPF_MAP_TYPE_XSKMAP
from .kernel.provenance import InsnDiff
from .kernel.uapi import BPF_F_XDP_HAS_METADATA
from .kernel.symbols import OpCost
from .reasons import why
from .programs import (ALL_DESIGNS, FIELD_SIZE, FIELDS_BY_DESIGN, UDP_PORT_AF_XDP, UDP_PORT_SKB,
                       xdp_metadata_program)

PATHS = ("af_xdp", "skb")


def _tidy_categorical(series: pd.Series) -> pd.Series:
    """Keep only the categories in use, sorted (bincount on the codes: cheap for 10^6 rows)."""
    import numpy as np
    codes = series.cat.codes.to_numpy()
    cats = np.asarray(series.cat.categories, dtype=object)
    used = np.bincount(codes[codes >= 0], minlength=len(cats)) > 0 if len(codes) else np.zeros(len(cats), bool)
    keep = sorted(cats[used].tolist())
    remap = np.full(len(cats) + 1, -1, np.int64)
    for new, name in enumerate(keep):
        remap[int(np.nonzero(cats == name)[0][0])] = new
    return pd.Series(pd.Categorical.from_codes(remap[codes], keep), index=series.index, name=series.name)


class Lab:
    """A simulated kernel with one device of ``driver`` and the metadata program loaded on it.

    Raises ValueError, listing the valid choices, for an unknown driver, design, variant or
    field.  ``design="none"`` and ``"btf-hints"`` load a program that calls no kfunc (and is
    not device-bound); the others bind it with ``BPF_F_XDP_HAS_METADATA`` and the ifindex.
    """

    def __init__(self, driver: str, fields: tuple[str, ...] | list[str] = ("rx_timestamp",), *,
                 variant: str = "fixed", design: str = "rfc-v2", seed: int = 0,
                 program: "Program | str | Path | None" = None) -> None:
        if driver not in drivers.names():
            raise ValueError(f"unknown driver {driver!r}; valid drivers: {', '.join(drivers.names())}")
        if design not in ALL_DESIGNS:
            raise ValueError(f"unknown design {design!r}; valid designs: {', '.join(ALL_DESIGNS)}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
        if isinstance(fields, str):
            fields = (fields,)
        fields = tuple(fields)
        valid = FIELDS_BY_DESIGN[design]
        for f in fields:
            if f not in valid:
                raise ValueError(f"unknown field {f!r} for design {design}; valid fields: {', '.join(valid)}")
        if len(set(fields)) != len(fields):
            raise ValueError(f"fields repeat: {fields}")
        self.driver_name, self.fields, self.variant, self.design, self.seed = driver, fields, variant, design, seed
        self.kernel = Kernel(seed)
        self.device = self.kernel.netns.add(f"{driver}0", drivers.get(driver))
        self.source = None
        if program is None:
            self.xsk_map_fd = self.kernel.map_create("xsk", BPF_MAP_TYPE_XSKMAP, 4, 4, 64)
            self.program: Program = xdp_metadata_program(design, fields, xsk_map_fd=self.xsk_map_fd)
        else:
            self.program = self._user_program(program, design)
        self._custom = program is not None
        bound = design in ("rfc-v2", "rfc-v1", "merged")
        self._by_path: dict[str, LoadedProgram] = {}
        self.loaded: LoadedProgram = self.kernel.prog_load(
            self.program,
            prog_flags=BPF_F_XDP_HAS_METADATA if bound else 0,
            prog_ifindex=self.device.ifindex if bound else 0,
            design=design if bound else "rfc-v2",
            variant=variant,
        )

    def _user_program(self, program, design: str) -> Program:  # type: ignore[no-untyped-def]
        """A Program as given, or the first (or ``path:name``) program of a BPF object file;
        its maps are created here, and the XSKMAP the consumer reads is the object's."""
        from .kernel.maps import BPF_MAP_TYPE_XSKMAP as XSK
        if isinstance(program, Program):
            self.xsk_map_fd = self.kernel.map_create("xsk", XSK, 4, 4, 64)
            return program
        from .libbpf import BpfObject
        text = str(program)
        path, _, name = text.partition(":") if not Path(text).exists() else (text, "", "")
        obj = BpfObject.open(path)
        self.source = obj
        kfunc_design = design if design in ("rfc-v2", "rfc-v1", "merged") else "rfc-v2"
        prog = obj.load(self.kernel, design=kfunc_design, program=name or None)
        xsks = [fd for fd, m in self.kernel.maps.items() if m.map_type == XSK]
        self.xsk_map_fd = xsks[0] if xsks else self.kernel.map_create("xsk", XSK, 4, 4, 64)
        return prog

    @property
    def xlated(self) -> Program:
        """The program after the load-time pipeline."""
        return self.loaded.xlated

    def diff(self) -> InsnDiff:
        """Original vs xlated, row by original instruction, with provenance."""
        return self.loaded.diff()

    def dump_xlated(self) -> str:
        """``bpftool prog dump xlated``-style text."""
        return self.loaded.dump_xlated()

    def loaded_for(self, path: str) -> LoadedProgram:
        """The loaded program for a delivery path (the skb path uses the RFC's export program)."""
        if path not in PATHS:
            raise ValueError(f"unknown path {path!r}; valid paths: {', '.join(PATHS)}")
        if path == "af_xdp" or self._custom:     # a program of yours runs as it is on either path
            return self.loaded
        if path not in self._by_path:
            program = xdp_metadata_program(self.design, self.fields, xsk_map_fd=self.xsk_map_fd, path=path)
            bound = self.design in ("rfc-v2", "rfc-v1", "merged")
            self._by_path[path] = self.kernel.prog_load(
                program, prog_flags=BPF_F_XDP_HAS_METADATA if bound else 0,
                prog_ifindex=self.device.ifindex if bound else 0,
                design=self.design if bound else "rfc-v2", variant=self.variant)
        return self._by_path[path]

    def run(self, packets: int = 1000, path: str = "af_xdp", *, interval_ns: int = 1_000_000,
            start_ns: int = 2_000_000_000, jitter_ns: int = 0, stalls: tuple = (),
            clock_events: tuple = (), ppb: float = 0.0, fast: bool = True,
            assume_meta_support: bool = False, profile: str = "e5-1650v4-retpoline",
            engine: str = "scalar") -> pd.DataFrame:
        """Receive ``packets`` UDP frames and follow each to its consumer.

        ``path="af_xdp"``: the RFC v2 05/14 selftest flow (kfuncs, adjust_meta, store,
        redirect to the queue's AF_XDP socket; the consumer reads ``data - METADATA_SIZE``).
        ``path="skb"``: the 07/14 flow (export_to_skb, XDP_PASS, skb_metadata_set -> import).
        ``stalls`` ((from_ns, to_ns) of true time) stop the driver's clock-refresh task;
        ``clock_events`` (:class:`xdplab.clocks.ClockEvent`) step or re-tune the PHC.
        ``engine="batch"`` runs all packets at once on numpy lanes (:mod:`xdplab.batch`): the
        same table, far faster; ``"scalar"`` runs them one by one on the scalar machine.
        ``assume_meta_support=True`` pretends the driver passes ``meta_valid=true`` to
        xdp_prepare_buff.  In the RFC's era mlx4 and bnxt did not, so nothing they computed
        could reach AF_XDP or the skb through data_meta; the option shows what would have.

        One row per packet; columns: packet, t_ns, hw_time_ns (the ideal), rx_timestamp (what
        the consumer read; 0 = none), error_ns, insns, cost_ns (:mod:`xdplab.cost` on the CPU
        ``profile``), action, delivered_to, meta_len, reason (why a packet did not arrive, or
        arrived without a timestamp).
        """
        from .cost import btf_hints_driver_work, packet_cost
        from .cost import profile as cpu_profile
        from .designs import XDP_HINTS_TIMESTAMP, btf_hints_bytes
        from .kernel.kfuncs import RFC_V2
        from .drivers.rx import rx_path
        from .kernel.af_xdp import XskSocket, xsk_consume
        from .kernel.structs import KernelMemory
        from .kernel.xdp import XdpRxQueue, deliver
        from .traffic import Trace, udp_frame

        if not isinstance(packets, int) or packets < 0:
            raise ValueError(f"packets must be a non-negative int, got {packets!r}")
        if engine not in ("scalar", "batch"):
            raise ValueError(f"unknown engine {engine!r}; valid engines: scalar, batch")
        loaded = self.loaded_for(path)
        if engine == "batch":
            from .batch import run_batch
            df = run_batch(self, packets, path, interval_ns=interval_ns, start_ns=start_ns, jitter_ns=jitter_ns,
                           stalls=tuple(stalls), clock_events=tuple(clock_events), ppb=ppb,
                           assume_meta_support=assume_meta_support, profile=profile)
            return self._finish(df, path, profile, assume_meta_support)
        mem = KernelMemory(next_addr=self.kernel.memory.next_addr + 0x10000)
        for region in self.kernel.memory.space.regions:     # maps live in kernel memory
            if region.kind == "map":
                mem.space.map(region)
        rx = rx_path(self.driver_name, mem, variant=self.variant, stalls=tuple(stalls),
                     clock_events=tuple(clock_events), ppb=ppb, seed=self.seed)
        sock = XskSocket.create()
        xsk = self.kernel.maps[self.xsk_map_fd]
        queue = XdpRxQueue(mem, loaded, rx.wrapper, ifindex=self.device.ifindex,
                           meta_valid=rx.meta_valid or assume_meta_support, fast=fast,
                           redirect_targets={xsk.map_id: {0: sock}})
        frame = udp_frame(UDP_PORT_AF_XDP if path == "af_xdp" else UDP_PORT_SKB)
        hints = self.design == "btf-hints"
        meta_size = XDP_HINTS_TIMESTAMP.size if hints else FIELD_SIZE * len(self.fields)
        ts_off = 0 if hints else (FIELD_SIZE * self.fields.index("rx_timestamp")
                                  if "rx_timestamp" in self.fields else None)
        prof = cpu_profile(profile)
        driver_work = None
        if hints:
            routine = self.device.driver.kfunc_routine(RFC_V2.by_name("bpf_xdp_metadata_rx_timestamp"))
            driver_work = btf_hints_driver_work(routine.cost if routine else OpCost())
        rows = []
        for i, t in enumerate(Trace(packets, start_ns, interval_ns, jitter_ns, self.seed).times()):
            hw = rx.receive(i, t, len(frame))
            meta = btf_hints_bytes(rx_timestamp=rx.reference_timestamp()) if hints and path == "af_xdp" else b""
            out = queue.run(frame, driver_metadata=meta)
            where, skb, reason = deliver(out, xsks={0: sock}, boot=self.kernel.boot,
                                         dev_name=self.device.name)
            ts, meta_len = 0, len(out.meta)
            if where == "af_xdp":
                got = xsk_consume(sock, meta_size)
                assert got is not None
                if ts_off is not None and self.design != "none":
                    ts = int.from_bytes(got.metadata[ts_off:ts_off + 8], "little")
            elif where in ("stack", "cpumap") and skb is not None:
                ts = skb.hwtstamp
            if reason is None:
                reason = why(self.design, self.fields, path, where, bool(ts),
                             out.adjust_meta[-1] if out.adjust_meta else 0, bool(out.meta))
            insns = out.run.insns if out.run else 0
            cost = packet_cost(out.run, loaded.symbols, prof, driver_work=driver_work).total if out.run else float("nan")
            rows.append((i, t, hw, ts, (ts - hw) if ts else None, insns, cost,
                         out.action, where, meta_len, reason or ""))
        df = pd.DataFrame(rows, columns=["packet", "t_ns", "hw_time_ns", "rx_timestamp", "error_ns", "insns",
                                         "cost_ns", "action", "delivered_to", "meta_len", "reason"])
        return self._finish(df, path, profile, assume_meta_support)

    def _finish(self, df: pd.DataFrame, path: str, profile: str, assume_meta_support: bool) -> pd.DataFrame:
        df["error_ns"] = df["error_ns"].astype("Int64")
        df["insns"] = df["insns"].astype("int64")
        df["meta_len"] = df["meta_len"].astype("int64")
        df["t_ns"] = df["t_ns"].astype("int64")
        df["packet"] = df["packet"].astype("int64")
        for col in ("hw_time_ns", "rx_timestamp"):
            df[col] = df[col].astype("uint64")
        for col in ("action", "delivered_to", "reason"):   # categoricals: compact, same in both engines
            if not isinstance(df[col].dtype, pd.CategoricalDtype):
                df[col] = df[col].astype(str).astype("category")
            df[col] = _tidy_categorical(df[col])
        df.attrs.update(driver=self.driver_name, design=self.design, variant=self.variant, path=path,
                        fields=self.fields, cost_model=f"xdplab.cost, profile {profile}",
                        assume_meta_support=assume_meta_support)
        return df

    def __repr__(self) -> str:
        return (f"Lab({self.driver_name!r}, fields={self.fields!r}, variant={self.variant!r}, "
                f"design={self.design!r}, seed={self.seed})")
