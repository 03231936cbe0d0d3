"""``Lab``: one driver, one design, one set of fields — the RFC, loaded and ready to look at.

DESIGN.md §2: ``Lab(driver, fields=("rx_timestamp",), *, variant="fixed", design="rfc-v2",
seed=0)`` with ``.program`` (the XDP program asking for those fields), ``.xlated`` (after the
load-time pipeline for that driver), ``.diff()`` (an :class:`InsnDiff`) and ``.run()``.

``Lab.run`` builds one frozen :class:`~xdplab.plan.RunPlan` and hands it, in chunks of
packets, to an engine: the lane engine (:mod:`xdplab.batch`) whenever the program can run on
lanes, the scalar engine (:mod:`xdplab.scalar`) otherwise.  Chunks run in this process, or on
any ``concurrent.futures.Executor`` (a process pool, a dask cluster's executor): each worker
rebuilds the Lab from its :class:`LabSpec` (a Lab is a pure function of its arguments and
seed), so nothing unpicklable crosses a process boundary.
"""
from __future__ import annotations

import os
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import pandas as pd

from . import drivers
from .batch import SCALAR_CALLS, lane_problem, run_batch
from .bpf import Program
from .cost import DEFAULT_PROFILE, btf_hints_driver_work
from .cost import profile as cpu_profile
from .kernel.btf_hints import XDP_HINTS_TIMESTAMP
from .kernel.driver import RxSettings
from .kernel.helpers import calls_trace_printk
from .kernel.kernel import Kernel
from .kernel.kfuncs import MERGED_KFUNC_SINCE, NEWEST_KERNEL, RFC_V2
from .kernel.loader import VARIANTS, LoadedProgram
from .kernel.maps import BPF_MAP_TYPE_XSKMAP
from .kernel.provenance import InsnDiff
from .kernel.symbols import OpCost
from .kernel.uapi import BPF_F_XDP_HAS_METADATA
from .plan import COLUMNS, ENGINES, PATHS, RunPlan
from .programs import (ALL_DESIGNS, canonical_design, FIELD_SIZE, FIELDS_BY_DESIGN, UDP_PORT_AF_XDP, UDP_PORT_SKB,
                       xdp_metadata_program)
from .scalar import run_scalar
from .consumer import MetaLayout
from .programs import metadata_layout
from .traffic import Flow, Trace, Traffic, as_traffic, udp_frame

if TYPE_CHECKING:                     # the object loader is imported only when an object is given
    from .libbpf import BpfObject

BOUND_DESIGNS = ("rfc-v2", "patch-v3", "merged")
LANE_CHUNK = 131_072        # lanes per engine call: bounded memory (~100 MB) whatever the run's size
POOL_MIN_PACKETS = 400_000  # below this a process pool costs more than it saves on 2 cores


class RunKnobs(TypedDict):
    """The keyword arguments :meth:`Lab.run` passes on to :meth:`Lab.plan` (a plain dict at
    run time, so it travels to an executor's workers with :func:`run_chunk`)."""

    interval_ns: int
    start_ns: int
    jitter_ns: int
    stalls: tuple
    clock_events: tuple
    ppb: float
    fast: bool
    assume_meta_support: bool
    profile: str
    traffic: Traffic | str | Path | list[Flow] | None


def _tidy_categorical(series: pd.Series) -> pd.Series:
    """Keep only the categories in use, sorted (bincount on the codes: cheap for 10^6 rows)."""
    codes = series.cat.codes.to_numpy()
    cats = np.asarray(series.cat.categories, dtype=object)
    used = np.bincount(codes[codes >= 0], minlength=len(cats)) > 0 if len(codes) else np.zeros(len(cats), bool)
    keep = sorted(cats[used].tolist())
    remap = np.full(len(cats) + 1, -1, np.int64)
    for new, name in enumerate(keep):
        remap[int(np.nonzero(cats == name)[0][0])] = new
    return pd.Series(pd.Categorical.from_codes(remap[codes], keep), index=series.index, name=series.name)


@dataclass(frozen=True)
class LabSpec:
    """What a Lab is made of: enough to rebuild it anywhere (a worker process, a cluster)."""

    driver: str
    fields: tuple[str, ...]
    variant: str
    design: str
    seed: int
    program: Any = None
    kernel: str | None = None
    meta_struct: str | None = None
    driver_options: tuple[tuple[str, Any], ...] = ()


class Lab:
    """A simulated kernel with one device of ``driver`` and the metadata program loaded on it.

    Raises ValueError, listing the valid choices, for an unknown driver, design, variant or
    field.  ``design="none"`` and ``"btf-hints"`` load a program that calls no kfunc (and is
    not device-bound); the others bind it with ``BPF_F_XDP_HAS_METADATA`` and the ifindex.
    ``program``: a :class:`~xdplab.bpf.Program`, a BPF object file (``"file.o"`` or
    ``"file.o:progname"``) or its bytes, loaded as libbpf would.
    ``meta_struct``: the struct (by name, from the object's BTF) the AF_XDP consumer reads in
    front of each frame; by default the object's ``struct xdp_meta`` or its only candidate
    (:meth:`xdplab.libbpf.BpfObject.meta_struct`); the generated programs have their own
    (:func:`xdplab.programs.metadata_layout`).  ``self.meta_layout`` is what the consumer reads.
    ``kernel``: the release the merged design's support matrix is narrowed to ("6.3" .. "7.3";
    default the newest modelled, 7.3): each driver offers the ``xmo_*`` ops it had then
    (``Driver.merged_ops``), and rx_vlan_tag needs 6.8.
    ``driver_options``: the driver's constructor options (``{"real_time": True}`` for mlx5's
    real-time CQE timestamp format).
    """

    def __init__(self, driver: str, fields: tuple[str, ...] | list[str] | str = ("rx_timestamp",), *,
                 variant: str = "fixed", design: str = "rfc-v2", seed: int = 0,
                 program: Program | str | Path | bytes | None = None, kernel: str | None = None,
                 meta_struct: str | None = None, driver_options: dict[str, Any] | None = None) -> None:
        if driver not in drivers.names():
            raise ValueError(f"unknown driver {driver!r}; valid drivers: {', '.join(drivers.names())}")
        design = canonical_design(design)
        if design not in ALL_DESIGNS:
            raise ValueError(f"unknown design {design!r}; valid designs: {', '.join(ALL_DESIGNS)}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
        fields = (fields,) if isinstance(fields, str) else tuple(fields)
        valid = FIELDS_BY_DESIGN[design]
        for f in fields:
            if f not in valid:
                raise ValueError(f"unknown field {f!r} for design {design}; valid fields: {', '.join(valid)}")
        if len(set(fields)) != len(fields):
            raise ValueError(f"fields repeat: {fields}")
        self.kernel_release = parse_kernel(kernel)
        for f in fields if design == "merged" else ():
            since = MERGED_KFUNC_SINCE[f]
            if self.kernel_release < since:
                raise ValueError(f"bpf_xdp_metadata_{f} came in {since[0]}.{since[1]}; kernel {kernel} does not have it")
        self.spec = LabSpec(driver, fields, variant, design, seed, program, kernel, meta_struct,
                            tuple(sorted((driver_options or {}).items())))
        self.driver_name, self.fields, self.variant, self.design, self.seed = driver, fields, variant, design, seed
        self.kernel = Kernel(seed)
        drv = drivers.get(driver, **(driver_options or {}))
        drv.kernel = self.kernel_release        # the merged ops that release had (Driver.merged_ops)
        self.device = self.kernel.netns.add(f"{driver}0", drv)
        self.source: BpfObject | None = None       # the BPF object a program came from
        self._attach_type: int | None = None       # an object program's expected_attach_type
        self._obj_flags = 0                        # and its prog_flags (BPF_F_XDP_HAS_FRAGS)
        if program is None:
            self.xsk_map_fd = self.kernel.map_create("xsk", BPF_MAP_TYPE_XSKMAP, 4, 4, 64)
            self.program: Program = xdp_metadata_program(design, fields, xsk_map_fd=self.xsk_map_fd)
        else:
            self.program = self._user_program(program, design)
        self._custom = program is not None
        self.meta_layout = self._meta_layout(meta_struct, program is None)
        self._by_path: dict[str, LoadedProgram] = {}
        self.loaded: LoadedProgram = self._load(self.program)

    def _meta_layout(self, meta_struct: str | None, generated: bool) -> MetaLayout | None:
        """What the AF_XDP consumer decodes: ``meta_struct`` (or the object's own struct) from
        the object's BTF, else the generated program's layout.  A method so that mypy sees
        ``self.source`` as :meth:`_user_program` left it, not as ``__init__`` first set it."""
        source = self.source
        if meta_struct is not None or (source is not None and hasattr(source, "meta_struct")):
            try:
                if source is None:
                    raise ValueError("a generated or given Program has no BTF to find it in")
                return MetaLayout.from_btf(source.meta_struct(meta_struct))
            except Exception as exc:          # a user object without a findable struct: no columns
                if meta_struct is not None:
                    raise ValueError(f"meta_struct={meta_struct!r}: {exc}") from None
        elif generated:
            return metadata_layout(self.design, self.fields)
        return None

    def _load(self, program: Program) -> LoadedProgram:
        """BPF_PROG_LOAD as libbpf would issue it: device-bound for the kfunc designs, with the
        object program's attach type (``xdp/devmap``, ``xdp/cpumap``) and frags flag."""
        bound = self.design in BOUND_DESIGNS
        attrs: dict[str, Any] = {}
        if self._attach_type is not None:
            attrs["expected_attach_type"] = self._attach_type
        return self.kernel.prog_load(program, prog_flags=(BPF_F_XDP_HAS_METADATA if bound else 0) | self._obj_flags,
                                     prog_ifindex=self.device.ifindex if bound else 0,
                                     design=self.design if bound else "rfc-v2", variant=self.variant, **attrs)

    def _user_program(self, program: Program | str | Path | bytes, design: str) -> Program:
        """A Program as given, or the first (or ``path:name``) program of a BPF object (a file
        or its bytes); its maps are created here, and the XSKMAP the consumer reads is the
        object's."""
        if isinstance(program, Program):
            self.xsk_map_fd = self.kernel.map_create("xsk", BPF_MAP_TYPE_XSKMAP, 4, 4, 64)
            return program
        from .libbpf import BpfObject      # the object loader, only when an object is given
        name = ""
        if isinstance(program, (bytes, bytearray)):
            obj = BpfObject.from_bytes(bytes(program))
        else:
            text = str(program)
            path, _, name = text.partition(":") if not Path(text).exists() else (text, "", "")
            obj = BpfObject.open(path)
        self.source = obj
        chosen = obj.program(name or None)
        self._attach_type, self._obj_flags = chosen.expected_attach_type, chosen.prog_flags
        kfunc_design = design if design in BOUND_DESIGNS else "rfc-v2"
        prog = obj.load(self.kernel, design=kfunc_design, program=name or None)
        xsks = [fd for fd, m in self.kernel.maps.items() if m.map_type == BPF_MAP_TYPE_XSKMAP]
        self.xsk_map_fd = xsks[0] if xsks else self.kernel.map_create("xsk", BPF_MAP_TYPE_XSKMAP, 4, 4, 64)
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

    def loaded_for(self, path: str, match: str = "selftest") -> LoadedProgram:
        """The loaded program for a delivery path (the skb path uses the RFC's export program);
        ``match="any"``: the same program handling every frame (shaped traffic)."""
        if path not in PATHS:
            raise ValueError(f"unknown path {path!r}; valid paths: {', '.join(PATHS)}")
        if (path == "af_xdp" and match == "selftest") or self._custom:   # a program of yours runs as it is
            return self.loaded
        key = path if match == "selftest" else f"{path}:{match}"
        if key not in self._by_path:
            program = xdp_metadata_program(self.design, self.fields, xsk_map_fd=self.xsk_map_fd, path=path,
                                           match=match)
            self._by_path[key] = self._load(program)
        return self._by_path[key]

    def plan(self, packets: int = 1000, path: str = "af_xdp", *, interval_ns: int = 1_000_000,
             start_ns: int = 2_000_000_000, jitter_ns: int = 0, stalls: tuple = (),
             clock_events: tuple = (), ppb: float = 0.0, fast: bool = True,
             assume_meta_support: bool = False, profile: str = DEFAULT_PROFILE,
             traffic: "Traffic | str | Path | list[Flow] | None" = None) -> RunPlan:
        """The frozen :class:`~xdplab.plan.RunPlan` that :meth:`run` executes."""
        if not isinstance(packets, int) or isinstance(packets, bool) or packets < 0:
            raise ValueError(f"packets must be a non-negative int, got {packets!r}")
        port = UDP_PORT_AF_XDP if path == "af_xdp" else UDP_PORT_SKB
        flows = as_traffic(traffic, port)
        loaded = self.loaded_for(path, "selftest" if flows.selftest_default else "any")
        hints = self.design == "btf-hints"
        meta_size = XDP_HINTS_TIMESTAMP.size if hints else FIELD_SIZE * len(self.fields)
        ts_offset = 0 if hints else (FIELD_SIZE * self.fields.index("rx_timestamp")
                                     if "rx_timestamp" in self.fields and self.design != "none" else None)
        if self._custom and self.meta_layout is not None:      # the consumer reads the object's struct
            meta_size = self.meta_layout.size
            ts_offset = self.meta_layout.field("rx_timestamp").offset if self.meta_layout.has("rx_timestamp") \
                else None
        driver_work = None
        if hints:
            routine = self.device.driver.kfunc_routine(RFC_V2.by_name("bpf_xdp_metadata_rx_timestamp"))
            driver_work = btf_hints_driver_work(routine.cost if routine else OpCost())
        driver = self.device.driver
        return RunPlan(
            loaded=loaded, driver=driver, ifindex=self.device.ifindex, dev_name=self.device.name,
            rx=RxSettings(self.variant, tuple(tuple(s) for s in stalls), tuple(clock_events), ppb),
            meta_valid=driver.meta_valid or assume_meta_support, path=path,
            frame=udp_frame(port), hints=hints,
            meta_size=meta_size, ts_offset=ts_offset, design=self.design, fields=self.fields,
            driver_work=driver_work, profile=cpu_profile(profile), xsk_map=self.kernel.maps[self.xsk_map_fd],
            map_regions=tuple(r for r in self.kernel.memory.space.regions if r.kind == "map"),
            memory_top=self.kernel.memory.next_addr, boot=self.kernel.boot,
            trace=Trace(packets, start_ns, interval_ns, jitter_ns, self.seed), fast=fast, traffic=flows,
            consumer=self.meta_layout if path == "af_xdp" else None,
            driver_note=driver.no_timestamp_note(self.variant), traces=calls_trace_printk(loaded))

    def run(self, packets: int = 1000, path: str = "af_xdp", *, interval_ns: int = 1_000_000,
            start_ns: int = 2_000_000_000, jitter_ns: int = 0, stalls: tuple = (),
            clock_events: tuple = (), ppb: float = 0.0, fast: bool = True,
            assume_meta_support: bool = False, profile: str = DEFAULT_PROFILE,
            engine: str = "auto", executor: Executor | None = None, chunk: int | None = None,
            traffic: "Traffic | str | Path | list[Flow] | None" = None) -> pd.DataFrame:
        """Receive ``packets`` UDP frames and follow each to its consumer.

        ``path="af_xdp"``: the RFC v2 05/14 selftest flow (kfuncs, adjust_meta, store,
        redirect to the queue's AF_XDP socket; the consumer reads ``data - METADATA_SIZE``).
        ``path="skb"``: the 07/14 flow (export_to_skb, XDP_PASS, skb_metadata_set -> import).
        ``stalls`` ((from_ns, to_ns) of true time) stop the driver's clock-refresh task;
        ``clock_events`` (:class:`xdplab.clocks.ClockEvent`) step or re-tune the PHC.
        ``assume_meta_support=True`` pretends the driver passes ``meta_valid=true`` to
        xdp_prepare_buff.  In the RFC's era mlx4 and bnxt did not, so nothing they computed
        could reach AF_XDP or the skb through data_meta; the option shows what would have.

        ``engine``: "auto" (default) runs on numpy lanes (:mod:`xdplab.batch`) whenever the
        program can, else on the scalar machine; "batch" insists on lanes (ValueError saying
        why not), "scalar" runs one packet at a time.  ``executor``: any
        ``concurrent.futures.Executor`` to spread chunks of ``chunk`` packets over (e.g.
        ``dask.distributed.Client(...).get_executor()``); by default the run stays in this
        process, or uses a two-process pool for runs of at least 400,000 packets on lanes.
        ``df.attrs["engine"]`` says which engine ran; on the lane engine,
        ``df.attrs["lane_scalar_calls"]`` counts the calls it ran through a routine's scalar
        form (lanes a lane form could not serve), zero when every lane ran vectorised.

        One row per packet; columns: packet, t_ns, hw_time_ns (the ideal), rx_timestamp (what
        the consumer read; 0 = none), error_ns, insns, cost_ns (:mod:`xdplab.cost` on the CPU
        ``profile``), action, delivered_to, meta_len, reason (why a packet did not arrive, or
        arrived without a timestamp).

        ``traffic``: a :class:`~xdplab.traffic.Traffic` (flows, their truth, VLAN stripping),
        a pcap file path (replayed in order) or a list of :class:`~xdplab.traffic.Flow`;
        default: the selftest's single UDP flow, so results do not change.  Shaped traffic
        runs the generated program without the selftest's port filter (every frame handled).
        Per-field columns follow (af_xdp path, when a consumer layout is known): one per field
        of the consumer's struct, named after it (``rx_hash``, ``rx_hash_type``,
        ``rx_vlan_proto``, ``rx_vlan_tci`` ...; nullable, C type kept, ``<NA>`` where the
        kfunc returned an errno), the truth beside them (``hw_rx_hash``, ``hw_rx_hash_type``,
        ``hw_rx_vlan_proto``, ``hw_rx_vlan_tci``) and ``meta_reason`` (which kfunc returned
        which errno).
        """
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}")
        knobs = RunKnobs(interval_ns=interval_ns, start_ns=start_ns, jitter_ns=jitter_ns, stalls=tuple(stalls),
                         clock_events=tuple(clock_events), ppb=ppb, fast=fast,
                         assume_meta_support=assume_meta_support, profile=profile, traffic=traffic)
        plan = self.plan(packets, path, **knobs)
        problem = lane_problem(plan.loaded)
        if engine == "batch" and problem:
            raise ValueError(f"{problem}; use engine='scalar'")
        chosen = "scalar" if engine == "scalar" or (engine == "auto" and problem) else "batch"
        step = chunk or (LANE_CHUNK if chosen == "batch" else max(packets, 1))
        bounds = [(lo, min(lo + step, packets)) for lo in range(0, packets, step)]
        own_pool = None
        if executor is None and chosen == "batch" and packets >= POOL_MIN_PACKETS and (os.cpu_count() or 1) >= 2:
            import multiprocessing
            if "fork" in multiprocessing.get_all_start_methods():
                own_pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
                executor = own_pool
        try:
            if executor is None:
                engine_fn = run_batch if chosen == "batch" else run_scalar
                frames = [engine_fn(plan, lo, hi) for lo, hi in bounds]
            else:
                futures = [executor.submit(run_chunk, self.spec, packets, path, knobs, chosen, lo, hi)
                           for lo, hi in bounds]
                frames = [f.result() for f in futures]
        finally:
            if own_pool is not None:
                own_pool.shutdown()
        scalar_calls = sum(f.attrs.get(SCALAR_CALLS, 0) for f in frames)
        df = self._finish(_concat(frames), path, profile, assume_meta_support, chosen)
        if chosen == "batch":
            df.attrs[SCALAR_CALLS] = scalar_calls
        return df

    def _finish(self, df: pd.DataFrame, path: str, profile: str, assume_meta_support: bool,
                engine: str) -> pd.DataFrame:
        df["error_ns"] = df["error_ns"].astype("Int64")
        for col in ("insns", "meta_len", "t_ns", "packet"):
            df[col] = df[col].astype("int64")
        for col in ("hw_time_ns", "rx_timestamp"):
            df[col] = df[col].astype("uint64")
        df["cost_ns"] = df["cost_ns"].astype("float64")
        for col in ("action", "delivered_to", "reason"):   # categoricals: compact, same in both engines
            if not isinstance(df[col].dtype, pd.CategoricalDtype):
                df[col] = df[col].astype(str).astype("category")
            df[col] = _tidy_categorical(df[col])
        df.attrs.update(driver=self.driver_name, design=self.design, variant=self.variant, path=path,
                        fields=self.fields, cost_model=f"xdplab.cost, profile {profile}",
                        assume_meta_support=assume_meta_support, engine=engine)
        return df

    def __repr__(self) -> str:
        return (f"Lab({self.driver_name!r}, fields={self.fields!r}, variant={self.variant!r}, "
                f"design={self.design!r}, seed={self.seed})")


def run_chunk(spec: LabSpec, packets: int, path: str, knobs: RunKnobs, engine: str, lo: int,
              hi: int) -> pd.DataFrame:
    """One chunk of a run, anywhere: rebuild the Lab from its spec, plan the same run, execute
    packets ``lo..hi`` on ``engine``.  What an Executor's workers call.  The spec travels as
    itself (it pickles): ``dataclasses.asdict`` would turn a given ``Program`` into a dict."""
    lab = Lab(spec.driver, spec.fields, variant=spec.variant, design=spec.design, seed=spec.seed,
              program=spec.program, kernel=spec.kernel, meta_struct=spec.meta_struct,
              driver_options=dict(spec.driver_options))
    plan = lab.plan(packets, path, **knobs)
    return (run_batch if engine == "batch" else run_scalar)(plan, lo, hi)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Chunks in order, one category set for the categoricals so concat keeps them."""
    if not frames:
        return pd.DataFrame({c: [] for c in COLUMNS})
    if len(frames) == 1:
        return frames[0]
    for col in ("action", "delivered_to", "reason"):
        if all(isinstance(f[col].dtype, pd.CategoricalDtype) for f in frames):
            cats = sorted({c for f in frames for c in f[col].cat.categories})
            for f in frames:
                f[col] = f[col].cat.set_categories(cats)
        else:
            for f in frames:
                f[col] = f[col].astype(str)
    return pd.concat(frames, ignore_index=True)



def parse_kernel(kernel: str | None) -> tuple[int, int]:
    """``"6.3"`` -> (6, 3); None -> :data:`NEWEST_KERNEL`.  Releases before 6.3 have no merged
    metadata kfuncs (ValueError)."""
    if kernel is None:
        return NEWEST_KERNEL
    try:
        major, minor = (int(x) for x in str(kernel).split(".")[:2])
    except ValueError:
        raise ValueError(f"kernel must look like '6.3', got {kernel!r}") from None
    if (major, minor) < (6, 3) or (major, minor) > NEWEST_KERNEL:
        raise ValueError(f"kernel {kernel}: the merged metadata kfuncs are modelled from 6.3 to "
                         f"{NEWEST_KERNEL[0]}.{NEWEST_KERNEL[1]}")
    return major, minor
