"""Batch mode of ``Lab.run``: many packets at once, one numpy lane per packet.

The same receive path as the scalar :meth:`xdplab.Lab.run` -- clock state, descriptors,
xdp_buff wrapper, the xlated program, the helpers, delivery, the cost model -- computed for a
chunk of packets with array operations and the lane machine (:mod:`xdplab.bpf.lanes`).
``tests/test_batch.py`` checks it against the scalar path on random traces for every driver
and design.

Lane memory model (stated so nobody mistakes it for the kernel's): each packet's frame stores
the 64 bytes in front of the data, the packet and 8-15 bytes after it (the scalar path maps the
whole 4 KiB page; programs that bounds-check never see the difference); veth's skb stores its
bytes from ``tstamp`` on; shared, slowly changing state (ice's ring cache, mlx4's
timecounter, bnxt's PTP state) is stored once per distinct value and is read-only.
Kernel routines without a vector version (mlx4's and bnxt's helpers, merged-design driver
callbacks) run lane by lane, so those configurations are correct but not fast.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .bpf.lanes import LaneRegion, LaneSpace, LaneState, run_lanes
from .cost import HELPER_COSTS, CpuProfile, btf_hints_driver_work
from .cost import profile as cpu_profile
from .drivers import bnxt, ice, mlx4
from .drivers.rx import rx_path
from .drivers.veth import VETH_XDP_BUFF
from .kernel.af_xdp import XDP_PACKET_HEADROOM
from .kernel.kfuncs import RFC_V2
from .kernel.structs import NET_DEVICE, XDP_BUFF, XDP_RXQ_INFO, KernelMemory
from .kernel.symbols import KernelSymbols, OpCost
from .kernel.uapi import (BPF_FUNC_redirect_map, BPF_FUNC_xdp_adjust_meta,
                          XDP_REDIRECT)
from .kernel.xdp import FRAME_SIZE, META_MAX_RFC_ERA, adjust_meta_result, int_arg
from .programs import FIELD_SIZE, UDP_PORT_AF_XDP, UDP_PORT_SKB
from .reasons import why
from .traffic import Trace, udp_frame

if TYPE_CHECKING:  # pragma: no cover
    from .lab import Lab

U64 = np.uint64
M32 = np.uint64(0xFFFFFFFF)
M48 = np.uint64((1 << 48) - 1)
FRAME_BASE = 0xFFFF_8880_4000_0000   # MODEL addresses, as in xdplab.kernel.structs
WRAP_BASE = FRAME_BASE + 0x10_0000
RXQ_BASE, DEV_BASE = WRAP_BASE + 0x1000, WRAP_BASE + 0x2000
DRV_BASE = WRAP_BASE + 0x10_0000     # the driver's own regions start here (0x1000 apart)
FRONT = 64   # bytes stored in front of the data (metadata area and a margin)


def _u64_bytes(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, U64).astype("<u8").view(np.uint8).reshape(-1, 8)


def _put(data: np.ndarray, off: int, values, size: int = 8) -> None:  # type: ignore[no-untyped-def]
    if np.ndim(values) == 0 or (len(values) and values[0] == values[-1] and bool((values == values[0]).all())):
        v = int(values if np.ndim(values) == 0 else values[0]) & ((1 << 64) - 1)
        data[:, off:off + size] = np.frombuffer(v.to_bytes(8, "little")[:size], np.uint8)   # broadcast
        return
    if off % size == 0 and data.shape[1] % size == 0 and data.flags.c_contiguous:
        data.view(f"<u{size}")[:, off // size] = values          # a typed strided store, no temporaries
        return
    data[:, off:off + size] = _u64_bytes(values)[:, :size]


def _phc_ns(phc, t: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """PHC time at true times t: exact vector arithmetic when there is nothing to model."""
    if not phc.ppb and not phc.events and not phc.jitter_ns:
        return (np.int64(phc.offset_ns) + t).astype(U64) if phc.offset_ns < 2**62 else \
            np.array([phc.ns(int(x)) & ((1 << 64) - 1) for x in t], U64)
    return np.array([phc.ns(int(x)) & ((1 << 64) - 1) for x in t], U64)


def _last_runs(refresher, t: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The refresh instant in force at each t (-1 before the first)."""
    k = (t - refresher.start_ns) // refresher.period_ns
    nominal = refresher.start_ns + np.maximum(k, 0) * refresher.period_ns
    out = np.where(t >= refresher.start_ns, nominal, -1)
    if refresher.stalls:
        for value in np.unique(out[out >= 0]):
            real = refresher.last_run(int(value))
            out[out == value] = -1 if real is None else real
    return out


class _Queue:
    """The vector version of :class:`xdplab.kernel.xdp.XdpRxQueue` for one chunk."""

    def __init__(self, n: int, frame: bytes, meta_valid: bool, wrapper_size: int, ifindex: int) -> None:
        self.n, self.len = n, len(frame)
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
        _put(rxq, XDP_RXQ_INFO.offsetof("dev"), np.array([DEV_BASE]))
        self.space.add(LaneRegion("xdp_rxq_info", "rxq", RXQ_BASE, XDP_RXQ_INFO.size, rxq,
                                  row=np.zeros(n, np.int64), writable=False))
        dev = np.zeros((1, NET_DEVICE.size), np.uint8)
        _put(dev, NET_DEVICE.offsetof("ifindex"), np.array([ifindex]), 4)
        self.space.add(LaneRegion("net_device", "netdev", DEV_BASE, NET_DEVICE.size, dev,
                                  row=np.zeros(n, np.int64), writable=False))
        data_addr = FRAME_BASE + XDP_PACKET_HEADROOM
        row = np.zeros((1, wrapper_size), np.uint8)
        for name, value in (("data_hard_start", FRAME_BASE), ("data", data_addr),
                            ("data_end", data_addr + len(frame)),
                            ("data_meta", data_addr if meta_valid else data_addr + 1), ("rxq", RXQ_BASE),
                            ("txq", 0), ("frame_sz", FRAME_SIZE), ("flags", 0)):
            _put(row, XDP_BUFF.offsetof(name), value, XDP_BUFF.sizeof(name))
        self.wrapper.data[:] = row                          # one contiguous pass
        self.redirected = np.zeros(n, bool)
        self.adjust = np.zeros(n, np.int64)      # last adjust_meta return (0 if not called)
        self.adjust_called = np.zeros(n, bool)

    def field(self, name: str) -> np.ndarray:
        return self.wrapper.data.view("<u8")[:, XDP_BUFF.offsetof(name) // 8].astype(U64)

    def driver_region(self, name: str, kind: str, k: int, size: int, data: np.ndarray, *, row=None,
                      writable=True) -> LaneRegion:  # type: ignore[no-untyped-def]
        return self.space.add(LaneRegion(name, kind, DRV_BASE + 0x1000 * k, size, data, row=row, writable=writable))

    # ---------------------------------------------------------------- vector helpers
    def adjust_meta(self, st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
        w = self.wrapper.data
        whole = len(lanes) == self.n
        def get(name):  # type: ignore[no-untyped-def]
            col = w.view("<u8")[:, XDP_BUFF.offsetof(name) // 8]
            return (col if whole else col[lanes]).astype(np.int64)
        ret, meta = adjust_meta_result(get("data_meta"), get("data"), get("data_hard_start"),
                                       int_arg(args[1].astype(np.int64)), META_MAX_RFC_ERA)
        good = ret == 0
        off = XDP_BUFF.offsetof("data_meta")
        w[lanes[good], off:off + 8] = _u64_bytes(meta[good].astype(U64))
        st.kinds[lanes] |= st.kind_bit["wrapper"]
        self.adjust[lanes], self.adjust_called[lanes] = ret, True
        return ret.astype(np.int64).view(U64)

    def redirect_map_for(self, map_address: int):  # type: ignore[no-untyped-def]
        def redirect_map(st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
            hit = (args[0] == U64(map_address)) & ((args[1] & M32) == 0)
            self.redirected[lanes[hit]] = True
            return np.where(hit, U64(XDP_REDIRECT), args[2] & U64(3))
        return redirect_map


def _ice_state(q: _Queue, rx: "ice.IceRx", t: np.ndarray, n: int):  # type: ignore[no-untyped-def]
    clock = rx.clock
    hw = _phc_ns(clock.phc, t)
    runs = _last_runs(clock.refresher, t)
    steps = sorted(e.at_ns for e in clock.phc.events if e.step_ns)
    if steps:
        for at in steps:
            runs = np.where((t >= at) & (runs < at), at, runs)
    if len(runs) < 2 or bool((np.diff(runs) >= 0).all()):     # sorted times: groups are runs of equal values
        starts = np.concatenate(([True], runs[1:] != runs[:-1])) if len(runs) else np.zeros(0, bool)
        row = np.cumsum(starts) - 1
        uniq = runs[starts]
    else:
        uniq, row = np.unique(runs, return_inverse=True)
    cached_u = np.array([0 if r < 0 else clock.phc.ns(int(r)) & ((1 << 64) - 1) for r in uniq], U64)
    ring = np.zeros((len(uniq), ice.ICE_RX_RING.size), np.uint8)
    _put(ring, ice.ICE_RX_RING.offsetof("cached_phctime"), cached_u)
    q.driver_region("ice_rx_ring", "ring", 0, ice.ICE_RX_RING.size, ring, row=row.astype(np.int64), writable=False)
    desc = np.zeros((n, ice.DESC_SIZE), np.uint8)
    desc[:, 0] = ice.ICE_RXDID_FLEX_NIC
    _put(desc, 4, q.len, 2)
    desc[:, 8] = 0b11
    desc[:, 19] = ice.ICE_PTP_TS_VALID
    _put(desc, 28, hw & M32, 4)
    d = q.driver_region("ice descriptor", "descriptor", 1, ice.DESC_SIZE, desc)
    w = q.wrapper.data
    _put(w, ice.ICE_XDP_BUFF.offsetof("rx_ring"), DRV_BASE)
    _put(w, ice.ICE_XDP_BUFF.offsetof("rx_desc"), d.base)
    cached = cached_u[row]
    lo = cached & M32
    in_ts = hw & M32
    delta = (in_ts - lo) & M32
    ref = np.where(delta > U64(0x7FFFFFFF), cached - ((lo - in_ts) & M32), cached + delta)
    return hw, np.where(cached == 0, U64(0), ref)


def _veth_state(q: _Queue, rx, t: np.ndarray, n: int):  # type: ignore[no-untyped-def]
    stamp = _phc_ns(rx.clock, t)
    from .drivers.veth import SKB_MODEL
    skb = np.zeros((n, SKB_MODEL.size - 32), np.uint8)      # bytes 32.. stored (tstamp onwards)
    _put(skb, 0, stamp)
    s = q.space.add(LaneRegion("sk_buff", "skb", DRV_BASE, SKB_MODEL.size, skb, stored_from=32))
    _put(q.wrapper.data, VETH_XDP_BUFF.offsetof("skb"), s.base)
    return stamp, stamp


class _Row:
    """Lets a struct writer (write_timecounter, write_ptp) fill one numpy row."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)


def _cyc2time_vec(tc, cycles: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """timecounter_cyc2time for many counter values (u64 arithmetic wraps as the kernel's does)."""
    mask, mult, frac = U64(tc.mask), U64(tc.mult), U64(tc.frac)
    last, nsec, shift = U64(tc.cycle_last), U64(tc.nsec), U64(tc.shift)
    delta = (cycles - last) & mask
    past = delta > (mask // U64(2))
    back = (last - cycles) & mask
    with np.errstate(over="ignore"):
        fwd = (delta * mult + frac) >> shift
        bwd = (back * mult - frac) >> shift
        return np.where(past, nsec - bwd, nsec + fwd)


def _group_by_refresh(refresher, t: np.ndarray):  # type: ignore[no-untyped-def]
    """(unique nominal refresh index, lane -> group) so per-group work happens once."""
    k = np.where(t >= refresher.start_ns, (t - refresher.start_ns) // refresher.period_ns, -1)
    return np.unique(k, return_inverse=True)


def _mlx4_state(q: _Queue, rx, t: np.ndarray, n: int):  # type: ignore[no-untyped-def]
    c = rx.clock
    groups, row = _group_by_refresh(c.overflow, t)
    mdev = np.zeros((len(groups), mlx4.MLX4_EN_DEV.size), np.uint8)
    tcs = []
    for g in range(len(groups)):
        tc = c.timecounter(int(t[np.argmax(row == g)]))   # constant between overflow checks
        tcs.append(tc)
        r = _Row(mlx4.MLX4_EN_DEV.size)
        mlx4.write_timecounter(r, tc)
        mdev[g] = np.frombuffer(bytes(r.data), np.uint8)
    q.driver_region("mlx4_en_dev", "clock", 0, mlx4.MLX4_EN_DEV.size, mdev, row=row.astype(np.int64), writable=False)
    if not c.ppb:
        from math import gcd
        g_ = gcd(c.freq_hz, 10**9)
        total = t * (c.freq_hz // g_) // (10**9 // g_)
        cycles = (np.int64(c.cycles0) + total).astype(U64) & M48
        hw = (np.int64(c.start_ns) + total * (10**9 // g_) // (c.freq_hz // g_)).astype(U64)
    else:
        cycles = np.array([c.cycles(int(x)) for x in t], U64)
        hw = np.array([c.hw_time_ns(int(x)) for x in t], U64)
    cqe = np.zeros((n, mlx4.CQE_SIZE), np.uint8)
    cqe[:, 12:16] = _u64_bytes((cycles >> U64(16)) & M32)[:, 3::-1]
    cqe[:, 29:31] = _u64_bytes(cycles & U64(0xFFFF))[:, 1::-1]
    cqe[:, 20:24] = _u64_bytes(np.full(n, q.len, U64))[:, 3::-1]
    r = q.driver_region("mlx4 CQE", "descriptor", 1, mlx4.CQE_SIZE, cqe)
    if not rx.filter_all:
        return hw, np.zeros(n, U64)
    _put(q.wrapper.data, mlx4.MLX4_XDP_BUFF.offsetof("cqe"), r.base)
    _put(q.wrapper.data, mlx4.MLX4_XDP_BUFF.offsetof("mdev"), DRV_BASE)
    lo = cycles & U64(0xFFFF)
    raw = ((((cycles >> U64(16)) & M32) + (lo == 0)) << U64(16)) | lo     # mlx4_en_get_cqe_ts
    ref = np.zeros(n, U64)
    for g, tc in enumerate(tcs):
        sel = row == g
        ref[sel] = _cyc2time_vec(tc, raw[sel])
    return hw, ref


def _bnxt_state(q: _Queue, rx, t: np.ndarray, n: int):  # type: ignore[no-untyped-def]
    c = rx.clock
    hw = _phc_ns(c.phc, t) & M48
    if c.phc.events:
        uniq_t, inv = np.unique(t, return_inverse=True)
        old = np.array([c.old_time(int(x)) for x in uniq_t], U64)[inv]
    else:
        groups, grp = _group_by_refresh(c.aux, t)
        old_g = np.array([c.old_time(int(t[np.argmax(grp == g)])) for g in range(len(groups))], U64)
        old = old_g[grp]
    uo, row = np.unique(old, return_inverse=True)
    ptp = np.zeros((len(uo), bnxt.BNXT_PTP.size), np.uint8)
    tc = c.timecounter()
    for k, value in enumerate(uo):
        r = _Row(bnxt.BNXT_PTP.size)
        bnxt.write_ptp(r, int(value), tc)
        ptp[k] = np.frombuffer(bytes(r.data), np.uint8)
    q.driver_region("bnxt_ptp_cfg", "clock", 0, bnxt.BNXT_PTP.size, ptp, row=row.astype(np.int64), writable=False)
    ext = np.zeros((n, 16), np.uint8)
    if rx.ptp_all:
        _put(ext, 12, hw & M32, 4)
    e = q.driver_region("rx_cmp_ext", "descriptor", 1, 16, ext)
    if not rx.ptp_all:
        return hw, np.zeros(n, U64)
    _put(q.wrapper.data, bnxt.BNXT_XDP_BUFF.offsetof("rxcmp1"), e.base)
    _put(q.wrapper.data, bnxt.BNXT_XDP_BUFF.offsetof("bp"), DRV_BASE)
    pkt = hw & M32
    ts = (old & U64(0xFFFF00000000)) | pkt                               # bnxt_get_rx_ts_p5
    ts = np.where(pkt < (old & M32), ts + U64(1 << 32), ts)
    return hw, _cyc2time_vec(tc, ts)


STATES = {"veth": _veth_state, "ice": _ice_state, "mlx4": _mlx4_state, "bnxt": _bnxt_state}


def lane_costs(res, symbols: KernelSymbols, prof: CpuProfile, driver_work: OpCost | None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """:func:`xdplab.cost.packet_cost` for every lane at once."""
    from .bpf.opcodes import CLASS_NAMES
    cycles = np.zeros(len(res.insns))
    for c in range(8):
        cycles += res.by_class[c] * prof.insn_cycles.get(CLASS_NAMES[c], 1.0)
    kinds = res.kinds.copy()
    bit = {k: np.int64(1 << i) for i, k in enumerate(res.kind_names)}
    ns = np.zeros(len(res.insns))
    for (kind, imm), count in res.calls.items():
        op = HELPER_COSTS.get(imm) if kind == "helper" else None
        if op is None:
            kf = symbols.function_at_imm(imm)
            op = kf.cost if kf is not None else OpCost()
        cycles -= count * prof.insn_cycles.get("jmp", 0.5)
        ns += count * (prof.direct_call_ns + prof.opcost_ns(OpCost(op.insns, {}, op.muls, op.seqlock_reads,
                                                                    op.spin_lock_bh)))
        for k, v in op.touches.items():
            if v and k in bit:
                kinds[count > 0] |= bit[k]
    if driver_work is not None:
        ns += prof.opcost_ns(OpCost(driver_work.insns, {}, driver_work.muls, driver_work.seqlock_reads,
                                    driver_work.spin_lock_bh))
        for k, v in driver_work.touches.items():
            if v and k in bit:
                kinds |= bit[k]
    for k, b in bit.items():
        cycles += ((kinds & b) != 0) * prof.touch_cycles.get(k, 0.0)
    return cycles / prof.ghz + ns + prof.prog_invoke_ns


_FORKED: dict = {}


def _chunk_worker(bounds: tuple[int, int]) -> pd.DataFrame:
    lab, kwargs = _FORKED["job"]
    return _run_batch(lab, bounds=bounds, **kwargs)


def run_batch(lab: "Lab", packets: int, path: str, *, workers: int | None = None, chunk: int = 131072,
              **kwargs) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Run the batch engine; with ``workers`` > 1 (default: the CPU count, at most 2 here) the
    chunks go to forked worker processes, each running the same code on its share."""
    import os
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    bounds = [(lo, min(lo + chunk, packets)) for lo in range(0, packets, chunk)]
    if workers <= 1 or len(bounds) < 2 or "fork" not in __import__("multiprocessing").get_all_start_methods():
        return _run_batch(lab, packets=packets, path=path, chunk=chunk, **kwargs)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    lab.loaded_for(path)                      # load before forking: workers inherit it
    _FORKED["job"] = (lab, dict(packets=packets, path=path, chunk=chunk, **kwargs))
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            frames = list(pool.map(_chunk_worker, bounds))
    finally:
        _FORKED.clear()
    return _concat(frames)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if len(frames) > 1:       # one category set for every chunk, so concat keeps categoricals
        cats = sorted({c for f in frames for c in f["reason"].cat.categories})
        for f in frames:
            f["reason"] = f["reason"].cat.set_categories(cats)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["packet", "t_ns", "hw_time_ns", "rx_timestamp", "error_ns", "insns", "cost_ns", "action",
                 "delivered_to", "meta_len", "reason"])


def _run_batch(lab: "Lab", packets: int, path: str, *, interval_ns: int, start_ns: int, jitter_ns: int,
               stalls: tuple, clock_events: tuple, ppb: float, assume_meta_support: bool, profile: str,
               chunk: int = 131072, bounds: tuple[int, int] | None = None) -> pd.DataFrame:
    from .designs import XDP_HINTS_TIMESTAMP
    loaded = lab.loaded_for(path)
    from .bpf import opcodes as bop
    from .kernel.uapi import BPF_FUNC_map_lookup_elem, BPF_FUNC_map_update_elem
    if any(i.opcode == bop.BPF_JMP | bop.BPF_CALL and i.src == 0 and i.imm in (BPF_FUNC_map_lookup_elem,
                                                                             BPF_FUNC_map_update_elem)
           for i in loaded.xlated):
        raise ValueError("the batch engine does not run programs that look up or update maps "
                         "(their values are shared between packets); use engine='scalar'")
    from .bpf.lanes import lanes_applicable
    why = lanes_applicable(loaded.xlated)
    if why:
        raise ValueError(f"the batch engine cannot run this program ({why}); use engine='scalar'")
    prof = cpu_profile(profile)
    rx = rx_path(lab.driver_name, KernelMemory(), variant=lab.variant, stalls=tuple(stalls),
                 clock_events=tuple(clock_events), ppb=ppb, seed=lab.seed)
    frame = udp_frame(UDP_PORT_AF_XDP if path == "af_xdp" else UDP_PORT_SKB)
    hints = lab.design == "btf-hints"
    meta_size = XDP_HINTS_TIMESTAMP.size if hints else FIELD_SIZE * len(lab.fields)
    ts_off = 0 if hints else (FIELD_SIZE * lab.fields.index("rx_timestamp") if "rx_timestamp" in lab.fields else None)
    driver_work = None
    if hints:
        routine = lab.device.driver.kfunc_routine(RFC_V2.by_name("bpf_xdp_metadata_rx_timestamp"))
        driver_work = btf_hints_driver_work(routine.cost if routine else OpCost())
    xsk = lab.kernel.maps[lab.xsk_map_fd]
    env = loaded.env()
    times = (np.int64(start_ns) + np.arange(packets, dtype=np.int64) * np.int64(interval_ns)) if not jitter_ns \
        else np.array(Trace(packets, start_ns, interval_ns, jitter_ns, lab.seed).times(), np.int64)
    boot = lab.kernel.boot
    lay = boot.xdp_to_skb_metadata
    frames = []
    spans = [bounds] if bounds else [(lo, min(lo + chunk, packets)) for lo in range(0, packets, chunk)]
    for lo, hi in spans:
        t = times[lo:hi]
        n = len(t)
        q = _Queue(n, frame, rx.meta_valid or assume_meta_support, lab.device.driver.wrapper.size,
                   lab.device.ifindex)
        hw, ref = STATES[lab.driver_name](q, rx, t, n)
        data_addr = FRAME_BASE + XDP_PACKET_HEADROOM
        if hints and path == "af_xdp":
            struct = np.zeros((n, XDP_HINTS_TIMESTAMP.size), np.uint8)
            from .designs import BTF_FULL_ID_MODEL, HINT_FLAG_RX_TIMESTAMP
            _put(struct, XDP_HINTS_TIMESTAMP.offsetof("rx_timestamp"), ref)
            _put(struct, XDP_HINTS_TIMESTAMP.offsetof("xdp_hints_flags"),
                 np.where(ref != 0, U64(HINT_FLAG_RX_TIMESTAMP), U64(0)), 4)
            _put(struct, XDP_HINTS_TIMESTAMP.offsetof("btf_full_id"), BTF_FULL_ID_MODEL)
            q.frame.data[:, FRONT - XDP_HINTS_TIMESTAMP.size:FRONT] = struct
            _put(q.wrapper.data, XDP_BUFF.offsetof("data_meta"), data_addr - XDP_HINTS_TIMESTAMP.size)
        vector = {("helper", BPF_FUNC_xdp_adjust_meta): q.adjust_meta,
                  ("helper", BPF_FUNC_redirect_map): q.redirect_map_for(xsk.address)}
        res = run_lanes(loaded.xlated, q.space, np.full(n, WRAP_BASE, U64), helpers=env.helpers,
                        kfuncs=env.kfuncs, vector_helpers=vector, kind_names=tuple(prof.touch_cycles),
                        stack_bytes=64)
        err = res.errors != None  # noqa: E711  (object array)
        action = np.where(err, U64(0), res.r0)
        data_meta, data = q.field("data_meta"), q.field("data")
        meta_len = np.where(data_meta <= data, data - data_meta, U64(0)).astype(np.int64)
        to_xsk = ~err & (action == XDP_REDIRECT) & q.redirected
        passed = ~err & (action == 2)
        where_code = np.select([err, to_xsk, passed, action == 1, action == 3], [4, 0, 1, 2, 3], 4)
        base_off = XDP_PACKET_HEADROOM - FRONT
        ts = np.zeros(n, U64)
        if ts_off is not None and lab.design != "none" and meta_size:
            col = FRONT - meta_size + ts_off
            if col >= 0:
                vals = np.ascontiguousarray(q.frame.data[:, col:col + 8]).view("<u8").reshape(-1).astype(U64)
                ts = np.where(to_xsk, vals, ts)
        if path == "skb":
            ok16 = passed & (meta_len == lay.size)
            start = FRONT - lay.size
            m = q.frame.data[:, start:FRONT]
            magic = np.ascontiguousarray(m[:, lay.offsetof("magic"):lay.offsetof("magic") + 4]).view("<u4").reshape(-1)
            stamp = np.ascontiguousarray(m[:, lay.offsetof("rx_timestamp"):lay.offsetof("rx_timestamp") + 8]
                                         ).view("<u8").reshape(-1).astype(U64)
            ts = np.where(ok16 & (magic == boot.xdp_metadata_magic), stamp, ts)
        _ = base_off
        cost = np.where(err, np.nan, lane_costs(res, loaded.symbols, prof, driver_work))
        reason = _reasons(lab, path, where_code, ts, q, res.errors)
        act = np.where(err | (action > 4), 0, action).astype(np.int64)
        frames.append(pd.DataFrame({
            "packet": np.arange(lo, lo + n), "t_ns": t, "hw_time_ns": hw, "rx_timestamp": ts,
            "error_ns": pd.array(np.where(ts != 0, ts.astype(np.int64) - hw.astype(np.int64), 0), dtype="Int64"),
            "insns": np.where(err, 0, res.insns), "cost_ns": cost,
            "action": pd.Categorical.from_codes(act, ACTIONS),
            "delivered_to": pd.Categorical.from_codes(where_code, WHERE), "meta_len": meta_len,
            "reason": reason}))
        frames[-1].loc[ts == 0, "error_ns"] = pd.NA
    return _concat(frames)


ACTIONS = ["ABORTED", "DROP", "PASS", "TX", "REDIRECT"]
WHERE = ["af_xdp", "stack", "dropped", "tx", "aborted"]


def _reasons(lab: "Lab", path: str, where_code: np.ndarray, ts: np.ndarray, q: _Queue,
             errors: np.ndarray) -> pd.Categorical:
    """:func:`xdplab.reasons.why` for every packet, asked once per distinct combination of facts
    (a handful over many packets); program faults carry their own message."""
    n = len(where_code)
    cats: list[str] = [""]
    codes = np.zeros(n, np.int64)
    err = np.not_equal(errors, None).astype(bool) if n else np.zeros(0, bool)
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
            message = why(lab.design, lab.fields, path, WHERE[w], bool(has_ts), int(adj), bool(wrote)) or ""
            if message not in cats:
                cats.append(message)
            group_code.append(cats.index(message))
        codes[ok] = np.asarray(group_code, np.int64)[inverse.reshape(-1)]
    return pd.Categorical.from_codes(codes, cats)
