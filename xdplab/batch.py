"""The lane engine: the packets of a :class:`~xdplab.plan.RunPlan` at once, one numpy lane per
packet, on the lane machine (:mod:`xdplab.bpf.lanes`).

It owns only orchestration: lane memory (the frame, the wrapper, the rxq and net_device, the
driver's regions), the vector forms of the queue's helpers, and turning lane results into
rows.  Every rule it applies has one home it shares with the scalar engine: the driver's
receive path (:meth:`~xdplab.kernel.driver.Driver.lane_rx`: descriptor encoders, clocks,
timestamp routines), ``xdp_buff_init`` / ``adjust_meta_result`` / ``redirect_map_result``
(:mod:`xdplab.kernel.xdp`), the BTF-hints struct, ``imported_hwtstamp`` (:mod:`xdplab.kernel.skb`),
the cost model (:func:`xdplab.cost.price`) and the reasons (:func:`xdplab.reasons.why`).
``tests/test_batch.py`` checks it against the scalar engine, column for column.

Lane memory model (stated so nobody mistakes it for the kernel's): each packet's frame stores
the 64 bytes in front of the data, the packet and 8-15 bytes after it (the scalar engine maps
the whole 4 KiB page; programs that bounds-check never see the difference); shared, slowly
changing state (ice's ring cache, mlx4's timecounter, bnxt's PTP state) is stored once per
distinct value and is read-only.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from .bpf import opcodes as bop
from .bpf.lanes import LaneRegion, LaneSpace, LaneState, VectorHelper, lanes_applicable, run_lanes
from .consumer import consumer_columns
from .cost import RunCounts, price
from .kernel.af_xdp import XDP_PACKET_HEADROOM
from .kernel.btf_hints import btf_hints_rows, flow_hint_flags
from .kernel.helpers import XDP_HELPER_IDS, helper_name
from .kernel.loader import LoadedProgram
from .kernel.skb import imported_hwtstamp
from .kernel.structs import NET_DEVICE, XDP_BUFF, XDP_RXQ_INFO, get_field, put_field
from .kernel.uapi import (BPF_FUNC_map_lookup_elem, BPF_FUNC_map_update_elem, BPF_FUNC_redirect_map,
                          BPF_FUNC_xdp_adjust_meta, XDP_ACTION_NAMES, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX)
from .kernel.xdp import META_MAX_RFC_ERA, adjust_meta_result, int_arg, redirect_map_result, xdp_buff_init
from .plan import COLUMNS, RunPlan
from .reasons import why
from .traffic import Traffic

# df.attrs key: how many calls the lane engine ran through a routine's scalar form (a routine
# without a lane form, or the lanes its lane form handed back: a NULL or unmapped pointer, a held
# lock, an odd seqlock sequence).  Zero when every lane ran vectorised.
SCALAR_CALLS = "lane_scalar_calls"

U64 = np.uint64
M32 = np.uint64(0xFFFFFFFF)
FRAME_BASE = 0xFFFF_8880_4000_0000   # MODEL addresses, as in xdplab.kernel.structs
WRAP_BASE = FRAME_BASE + 0x10_0000
RXQ_BASE, DEV_BASE = WRAP_BASE + 0x1000, WRAP_BASE + 0x2000
DRV_BASE = WRAP_BASE + 0x10_0000     # the driver's own regions start here
FRONT = 64   # bytes stored in front of the data (metadata area and a margin)
ACTIONS = tuple(XDP_ACTION_NAMES[a] for a in range(XDP_REDIRECT + 1))   # enum xdp_action order
WHERE = ("af_xdp", "stack", "dropped", "tx", "aborted")


LANE_HELPERS = frozenset({BPF_FUNC_xdp_adjust_meta, BPF_FUNC_redirect_map})   # helpers with a lane form


def lane_problem(loaded: LoadedProgram) -> str | None:
    """Why this program cannot run on lanes (None: it can).  Map lookups and updates share
    their values between packets, which independent lanes cannot model; the other helpers
    (printk's trace buffer, tail calls, ringbuf) have no lane form."""
    for insn in loaded.xlated:
        if not (insn.opcode == bop.BPF_JMP | bop.BPF_CALL and insn.src == 0):
            continue
        if insn.imm in (BPF_FUNC_map_lookup_elem, BPF_FUNC_map_update_elem):
            return "the batch engine does not run programs that look up or update maps (their values are " \
                "shared between packets)"
        if insn.imm in XDP_HELPER_IDS and insn.imm not in LANE_HELPERS:
            return f"the batch engine does not run programs that call {helper_name(insn.imm)}"
    why_not = lanes_applicable(loaded.xlated)
    return f"the batch engine cannot run this program ({why_not})" if why_not else None


class LaneQueue:
    """The XDP RX queue for ``n`` lanes: the frame, the driver's wrapper (its leading
    xdp_buff set up by :func:`~xdplab.kernel.xdp.xdp_buff_init`), the rxq and net_device, the
    driver's regions, and the vector forms of the queue's helpers."""

    def __init__(self, n: int, frame: bytes, meta_valid: bool, wrapper_size: int, ifindex: int) -> None:
        self.n, self.frame_len = n, len(frame)
        self.space = LaneSpace(n)
        tail = 8 + (-(FRONT + len(frame) + 8)) % 8        # keep rows 8-byte aligned
        size = XDP_PACKET_HEADROOM + len(frame) + tail
        template = np.zeros(size - (XDP_PACKET_HEADROOM - FRONT), np.uint8)
        template[FRONT:FRONT + len(frame)] = np.frombuffer(frame, np.uint8)
        data = np.empty((n, len(template)), np.uint8)
        data[:] = template                                 # one contiguous pass
        self.frame = self.space.add(LaneRegion("rx frame", "packet", FRAME_BASE, size, data,
                                               stored_from=XDP_PACKET_HEADROOM - FRONT))
        self.wrapper = self.space.add(LaneRegion("xdp_buff wrapper", "wrapper", WRAP_BASE, wrapper_size,
                                                 np.empty((n, wrapper_size), np.uint8)))
        rxq = np.zeros((1, XDP_RXQ_INFO.size), np.uint8)
        put_field(rxq, XDP_RXQ_INFO, "dev", DEV_BASE)
        self.space.add(LaneRegion("xdp_rxq_info", "rxq", RXQ_BASE, XDP_RXQ_INFO.size, rxq,
                                  row=np.zeros(n, np.int64), writable=False))
        dev = np.zeros((1, NET_DEVICE.size), np.uint8)
        put_field(dev, NET_DEVICE, "ifindex", ifindex)
        self.space.add(LaneRegion("net_device", "netdev", DEV_BASE, NET_DEVICE.size, dev,
                                  row=np.zeros(n, np.int64), writable=False))
        row = np.zeros((1, wrapper_size), np.uint8)
        for name, value in xdp_buff_init(FRAME_BASE, len(frame), meta_valid, RXQ_BASE):
            put_field(row, XDP_BUFF, name, value)
        self.wrapper.data[:] = row                          # one contiguous pass
        self.redirected = np.zeros(n, bool)
        self.adjust = np.zeros(n, np.int64)      # last adjust_meta return (0 if not called)
        self.adjust_called = np.zeros(n, bool)
        self._next = DRV_BASE

    def field(self, name: str) -> np.ndarray:
        return get_field(self.wrapper.data, XDP_BUFF, name)

    def driver_region(self, name: str, kind: str, size: int, data: np.ndarray, *, row: np.ndarray | None = None,
                      writable: bool = True, stored_from: int = 0) -> LaneRegion:
        """A region of the driver's (descriptors, rings, clock state) at the next free address."""
        base = self._next
        self._next += (size + 0xFFF) // 0x1000 * 0x1000
        return self.space.add(LaneRegion(name, kind, base, size, data, row=row, writable=writable,
                                         stored_from=stored_from))

    def write_driver_metadata(self, rows: np.ndarray) -> None:
        """A driver that prepends metadata itself (BTF hints): bytes before data, data_meta moved."""
        size = rows.shape[1]
        self.frame.data[:, FRONT - size:FRONT] = rows
        put_field(self.wrapper.data, XDP_BUFF, "data_meta", self.field("data") - U64(size))

    # ---------------------------------------------------------------- vector helpers
    def adjust_meta(self, st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
        words = self.wrapper.data.view("<u8")            # the wrapper's 8-byte words (rows are 8-aligned)
        whole = len(lanes) == self.n

        def word(name: str) -> np.ndarray:
            col = words[:, XDP_BUFF.offsetof(name) // 8]
            return (col if whole else col[lanes]).astype(np.int64)
        ret, meta = adjust_meta_result(word("data_meta"), word("data"), word("data_hard_start"),
                                       int_arg(args[1].astype(np.int64)), META_MAX_RFC_ERA)
        good = ret == 0
        words[lanes[good], XDP_BUFF.offsetof("data_meta") // 8] = meta[good].astype(U64)
        self.adjust[lanes], self.adjust_called[lanes] = ret, True
        return ret.astype(np.int64).view(U64)

    def redirect_map_for(self, map_address: int) -> VectorHelper:
        def redirect_map(st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
            hit = (args[0] == U64(map_address)) & ((args[1] & M32) == 0)
            self.redirected[lanes[hit]] = True
            return redirect_map_result(hit, args[2]).astype(U64)
        return redirect_map


def run_batch(plan: RunPlan, lo: int, hi: int) -> pd.DataFrame:
    """Packets ``lo..hi`` of the plan on lanes, as raw DataFrame columns (Lab finishes the
    dtypes).  Raises ValueError when the program cannot run on lanes (see :func:`lane_problem`).

    Lanes share one frame, so packets run in one lane batch per flow of the traffic and come
    back in packet order."""
    problem = lane_problem(plan.loaded)
    if problem:
        raise ValueError(f"{problem}; use engine='scalar'")
    traffic, flows = plan.flows(lo, hi)
    t_all = plan.trace.times_array(lo, hi)
    used = np.unique(flows) if len(flows) else np.zeros(1, np.int64)
    # the driver's hash type of every flow, asked once per chunk (not once per flow's batch)
    rss_types = [plan.driver.rss_type_of(f) for f in traffic.truth] if plan.consumer is not None else []
    if len(used) == 1:
        return _run_flow(plan, np.arange(lo, hi), t_all, int(used[0]), traffic, flows, rss_types)
    parts = []
    for f in used.tolist():
        sel = np.nonzero(flows == f)[0]
        parts.append(_run_flow(plan, lo + sel, t_all[sel], f, traffic, flows[sel], rss_types))
    for col in parts[0].columns:
        if isinstance(parts[0][col].dtype, pd.CategoricalDtype):
            cats = sorted({c for p in parts for c in p[col].cat.categories})
            for p in parts:
                p[col] = p[col].cat.set_categories(cats)
    df = pd.concat(parts, ignore_index=True).sort_values("packet", kind="stable").reset_index(drop=True)
    df.attrs[SCALAR_CALLS] = sum(p.attrs[SCALAR_CALLS] for p in parts)
    return df


def _run_flow(plan: RunPlan, packets: np.ndarray, t: np.ndarray, flow_index: int, traffic: Traffic,
              flows: npt.NDArray[np.int64], rss_types: Sequence[int | None]) -> pd.DataFrame:
    """Packets ``packets`` (all of one flow, arriving at ``t``) on lanes; ``rss_types``: the
    driver's hash type of each flow of ``traffic`` (for the consumer's columns)."""
    n = len(t)
    loaded, prof = plan.loaded, plan.profile
    flow = traffic.truth[flow_index]
    q = LaneQueue(n, traffic.rx_frame(flow_index), plan.meta_valid, plan.driver.wrapper.size, plan.ifindex)
    hw, ref = plan.driver.lane_rx(plan.rx).receive_lanes(q, t)
    plan.driver.receive_meta_lanes(q, flow)
    if plan.hints and plan.path == "af_xdp":
        q.write_driver_metadata(btf_hints_rows(rx_timestamp=ref, rx_hash=flow.rss_hash,
                                               vlan_tci=flow.reported_tag[1], flags=flow_hint_flags(flow)))
    env = loaded.env()
    vector: dict[tuple[str, int], VectorHelper] = {
        ("helper", BPF_FUNC_xdp_adjust_meta): q.adjust_meta,
        ("helper", BPF_FUNC_redirect_map): q.redirect_map_for(plan.xsk_map.address)}
    for name in loaded.symbols.functions:          # kernel routines with a lane form
        kf = loaded.symbols.functions[name][1]
        if kf.lanes is not None:    # called from unrolled code (a helper call) or as a kfunc (call designs)
            vector[("helper", loaded.symbols.imm(name))] = kf.lanes
            vector[("kfunc", loaded.symbols.imm(name))] = kf.lanes
    res = run_lanes(loaded.xlated, q.space, np.full(n, WRAP_BASE, U64), helpers=env.helpers, kfuncs=env.kfuncs,
                    vector_helpers=vector, kind_names=tuple(prof.touch_cycles), stack_bytes=64)
    err = _faulted(res.errors) if n else np.zeros(0, bool)
    action = np.where(err, U64(0), res.r0)
    data_meta, data = q.field("data_meta"), q.field("data")
    meta_len = np.where(data_meta <= data, data - data_meta, U64(0)).astype(np.int64)
    to_xsk = ~err & (action == XDP_REDIRECT) & q.redirected
    passed = ~err & (action == XDP_PASS)
    where_code = np.select([err, to_xsk, passed, action == XDP_DROP, action == XDP_TX], [4, 0, 1, 2, 3], 4)
    ts = np.zeros(n, U64)
    if plan.ts_offset is not None and plan.meta_size:
        col = FRONT - plan.meta_size + plan.ts_offset
        if col >= 0:
            vals = np.ascontiguousarray(q.frame.data[:, col:col + 8]).view("<u8").reshape(-1).astype(U64)
            ts = np.where(to_xsk, vals, ts)
    if plan.path == "skb":
        lay = plan.boot.xdp_to_skb_metadata
        front = q.frame.data[:, FRONT - lay.size:FRONT]
        imported = imported_hwtstamp(meta_len, get_field(front, lay, "magic"), get_field(front, lay, "rx_timestamp"),
                                     plan.boot).astype(U64)
        ts = np.where(passed, imported, ts)
    cost = np.where(err, np.nan, price(RunCounts.of_lanes(res), loaded.symbols, prof,
                                       driver_work=plan.driver_work).total)
    act = np.where(err | (action > XDP_REDIRECT), 0, action).astype(np.int64)
    df = pd.DataFrame({
        "packet": packets, "t_ns": t, "hw_time_ns": hw, "rx_timestamp": ts,
        "error_ns": pd.array(np.where(ts != 0, ts.astype(np.int64) - hw.astype(np.int64), 0), dtype="Int64"),
        "insns": np.where(err, 0, res.insns), "cost_ns": cost,
        "action": pd.Categorical.from_codes(act, ACTIONS),
        "delivered_to": pd.Categorical.from_codes(where_code, WHERE), "meta_len": meta_len,
        "reason": _reasons(plan, where_code, ts, q, res.errors, err)}, columns=list(COLUMNS))
    df.loc[ts == 0, "error_ns"] = pd.NA
    layout = plan.consumer
    if layout is not None:
        rows = np.zeros((n, layout.size), np.uint8)
        if layout.size and FRONT - layout.size >= 0:
            rows[to_xsk] = q.frame.data[to_xsk, FRONT - layout.size:FRONT]
        extra = consumer_columns(layout, rows, to_xsk, flows, traffic.truth, rss_types)
        for name, col in extra.items():
            df[name] = col
    df.attrs[SCALAR_CALLS] = int(res.scalar_calls.sum())
    return df


def _faulted(errors: npt.NDArray[np.object_]) -> npt.NDArray[np.bool_]:
    """The lanes whose run faulted (``errors`` holds None or the fault's text), elementwise
    (None as a 0-d object array: numpy's stubs take no bare None operand)."""
    return np.not_equal(errors, np.array(None, dtype=object)).astype(bool)


def _reasons(plan: RunPlan, where_code: np.ndarray, ts: np.ndarray, q: LaneQueue,
             errors: npt.NDArray[np.object_], err: npt.NDArray[np.bool_]) -> pd.Categorical:
    """:func:`xdplab.reasons.why` for every packet, asked once per distinct combination of facts
    (a handful over many packets); program faults (``err``, from :func:`_faulted`) carry their
    own message."""
    n = len(where_code)
    cats: list[str] = [""]
    codes = np.zeros(n, np.int64)
    for i in np.nonzero(err)[0]:
        message = f"BpfExecuteError: {errors[i]}"
        if message not in cats:
            cats.append(message)
        codes[i] = cats.index(message)
    ok = ~err
    if ok.any():
        adjust = np.where(q.adjust_called, q.adjust, 0)
        written = q.field("data_meta") < q.field("data")
        # one int64 key per packet: where (3 bits), has_ts, written, then -adjust (an errno)
        key = (where_code.astype(np.int64) | ((ts != 0).astype(np.int64) << 3)
               | (written.astype(np.int64) << 4) | ((-adjust).astype(np.int64) << 5))[ok]
        if key[0] == key[-1] and bool((key == key[0]).all()):       # the usual case: one group
            groups, inverse = key[:1], np.zeros(len(key), np.int64)
        else:
            groups, inverse = np.unique(key, return_inverse=True)
        group_code = []
        for k in groups.tolist():
            w, has_ts, wrote, adj = k & 7, (k >> 3) & 1, (k >> 4) & 1, -(k >> 5)
            message = why(plan.design, plan.fields, plan.path, WHERE[w], bool(has_ts), int(adj), bool(wrote),
                          plan.driver_note) or ""
            if message not in cats:
                cats.append(message)
            group_code.append(cats.index(message))
        codes[ok] = np.asarray(group_code, np.int64)[inverse.reshape(-1)]
    return pd.Categorical.from_codes(codes, cats)


__all__ = ["run_batch", "lane_problem", "LaneQueue", "ACTIONS", "WHERE"]
