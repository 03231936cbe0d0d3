"""mlx4 (ConnectX-3): timestamps by a call into kernel code (RFC v2 11/14, 12/14).

Facts (kernel-facts §6.3):
- the CQE timestamp view ``struct mlx4_ts_cqe`` (include/linux/mlx4/cq.h): ``timestamp_hi``
  (__be32) at 12 and ``timestamp_lo`` (__be16, unaligned) at 29;
- ``mlx4_en_get_cqe_ts`` (en_clock.c): lo = be16 timestamp_lo; hi = (be32 timestamp_hi + 1 if
  lo == 0) << 16; the 48-bit cycle count is hi | lo (the "+1" fix-up's hardware reason is
  UNCONFIRMED);
- conversion: a seqlock read loop on ``mdev->clock_lock`` around
  ``timecounter_cyc2time(&mdev->clock, ts)``; mask 48 bits, shift = ``freq_to_shift``, mult =
  ``clocksource_khz2mult``; the overflow check (timecounter_read) runs every 5 s;
- ``struct mlx4_xdp_buff { struct xdp_buff xdp; struct mlx4_cqe *cqe; struct mlx4_en_dev
  *mdev; u64 r0; }`` (11/14 adds the bare wrapper, 12/14 its fields): cqe 56, mdev 64, r0 72;
  cqe and mdev are set only when the ring's hwtstamp_rx_filter is HWTSTAMP_FILTER_ALL
  (12-mxl4-...patch:103-106);
- the unroll (12/14) is ``xdp_kfunc_call_preserving_r1(patch, offsetof(r0),
  mxl4_xdp_rx_timestamp)`` ("mxl4" sic): not unrollable because of the seqlock.

``rfc-v2-posted``: ``mxbuf`` is a local of ``mlx4_en_process_rx_cq`` declared once per NAPI
poll and never initialised (11-mlx4-...patch:46); within a poll it keeps the previous packet's
``cqe``/``mdev``, on a poll's first packet they are indeterminate (MODEL: the lab keeps the
previous packet's values across the whole run).  With the filter not ALL the posted helper
dereferences them without a check.  ``fixed`` checks for NULL and zeroes the wrapper per
packet, as PATCH v3 did (it zero-initialised mxbuf after Tariq's review).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from ..bpf import builders as B
from ..bpf.lanes import Lanes, LaneState, U64Array, VectorHelper
from ..bpf.machine import CallContext, HelperFn, IntAccess
from ..bpf.patch import BpfPatch
from ..clocks import (Refresher, Timecounter, clocksource_khz2mult, cyclecounter_mask, floor_ratio, mlx4_freq_to_shift,
                      timecounter_cyc2time, u64_rule)
from ..kernel import errno_ret
from ..kernel.driver import Driver, RxSettings, UnrollContext, call_scalar_rest, wrapper_layout
from ..kernel.kfuncs import (XDP_RSS_L3_DYNHDR, XDP_RSS_L3_IPV4, XDP_RSS_L3_IPV6, XDP_RSS_L4_TCP, XDP_RSS_L4_UDP,
                             KfuncSpec)
from ..kernel.structs import KernelMemory, StructLayout, get_field, layout, put_field
from ..kernel.symbols import KernelFunction, OpCost
from ..kernel.uapi import ENODATA
from ..kernel.unroll_helpers import be32_through_ctx_pointer, xdp_kfunc_call_preserving_r1
from ..profiles import value

U64 = np.uint64

CQE_SIZE = 32                      # struct mlx4_ts_cqe, include/linux/mlx4/cq.h@6.1.192:73
MLX4_TS_CQE = layout("mlx4_ts_cqe", CQE_SIZE, "linux:include/linux/mlx4/cq.h struct mlx4_ts_cqe (packed)",
                     vlan_my_qpn=(0, 4), immed_rss_invalid=(4, 4), g_mlpath_rqpn=(8, 4),
                     timestamp_hi=(12, 4), status=(16, 2), ipv6_ext_mask=(18, 1), badfcs_enc=(19, 1),
                     byte_cnt=(20, 4), wqe_index=(24, 2), checksum=(26, 2), reserved=(28, 1),
                     timestamp_lo=(29, 2), owner_sr_opcode=(31, 1))

# struct mlx4_en_dev: the clock state the helper reads (drivers/net/ethernet/mellanox/mlx4/
# mlx4_en.h@6.1.192:402; offsets measured with gcc by tools/kernel_layouts.py,
# data/kernel-layouts.json): the seqlock's sequence (clock_lock.seqcount.seqcount.sequence),
# the cyclecounter ``cycles`` (mask, mult, shift) and the timecounter ``clock`` (cycle_last,
# nsec, frac).
MLX4_EN_DEV = layout("mlx4_en_dev", 728, "drivers/net/ethernet/mellanox/mlx4/mlx4_en.h@6.1.192:402 "
                     "(data/kernel-layouts.json)",
                     cc_mask=(440, 8), cc_mult=(448, 4), cc_shift=(452, 4), clock_seq=(456, 4),
                     tc_cycle_last=(472, 8), tc_nsec=(480, 8), tc_frac=(496, 8))

MLX4_XDP_BUFF = wrapper_layout("mlx4_xdp_buff", 80, "RFC v2 11/14 + 12/14 drivers/net/ethernet/mellanox/mlx4/en_rx.c",
                               cqe=(56, 8), mdev=(64, 8), r0=(72, 8))
MASK48 = cyclecounter_mask(48)


@u64_rule
def cqe_ts(timestamp_hi: Any, timestamp_lo: Any) -> Any:
    """``mlx4_en_get_cqe_ts``'s arithmetic (drivers/net/ethernet/mellanox/mlx4/en_clock.c@6.1.192:50)
    on the CQE's two fields, already in CPU order: ``((hi + !lo) << 16) | lo``.  Ints or arrays."""
    return ((timestamp_hi + (timestamp_lo == 0).astype(np.uint64)) << np.uint64(16)) | timestamp_lo


def cqe_ts_rows(cqes: np.ndarray) -> np.ndarray:
    """``mlx4_en_get_cqe_ts`` for CQEs as ``(n, 32)`` rows: the big-endian ``timestamp_hi``
    and ``timestamp_lo`` of ``struct mlx4_ts_cqe`` (include/linux/mlx4/cq.h@6.1.192:73)."""
    return cqe_ts(get_field(cqes, MLX4_TS_CQE, "timestamp_hi", "big"),
                  get_field(cqes, MLX4_TS_CQE, "timestamp_lo", "big"))


def get_cqe_ts(cqe: bytes) -> int:
    """``mlx4_en_get_cqe_ts``: the CQE's raw cycle count (48 bits, +1 carry when lo is 0)."""
    if len(cqe) < CQE_SIZE:
        raise ValueError(f"a CQE is {CQE_SIZE} bytes, got {len(cqe)}")
    return int(cqe_ts_rows(np.frombuffer(bytes(cqe[:CQE_SIZE]), np.uint8).reshape(1, CQE_SIZE))[0])


def make_cqes(cycles: Any, *, byte_cnt: Any = 64, rss_hash: Any = 0) -> np.ndarray:
    """CQEs as the hardware writes them for frames captured at ``cycles`` (48-bit): an
    ``(n, 32)`` uint8 array, fields big-endian as in ``struct mlx4_ts_cqe``.

    MODEL: when the low 16 bits are 0 the hardware's ``timestamp_hi`` does not yet carry the
    rollover (hi is one less), which is what ``mlx4_en_get_cqe_ts``'s ``+ !lo`` fix-up
    (en_clock.c@6.1.192:56) corrects; the hardware reason is UNCONFIRMED (kernel-facts §6.3),
    but any other reading would make the driver's own fix-up report those stamps 2^16 cycles
    late."""
    c = np.asarray(cycles, np.uint64)
    c = np.where((c & U64(0xFFFF)) == 0, c - U64(1 << 16), c)     # hi lags the carry at lo == 0
    rows = np.zeros((max(np.size(c), np.size(byte_cnt), np.size(rss_hash)), CQE_SIZE), np.uint8)
    put_field(rows, MLX4_TS_CQE, "immed_rss_invalid", np.asarray(rss_hash, np.uint64) & U64(0xFFFFFFFF), "big")
    put_field(rows, MLX4_TS_CQE, "timestamp_hi", (c >> U64(16)) & U64(0xFFFFFFFF), "big")
    put_field(rows, MLX4_TS_CQE, "byte_cnt", np.asarray(byte_cnt, np.uint64), "big")
    put_field(rows, MLX4_TS_CQE, "timestamp_lo", c & U64(0xFFFF), "big")
    return rows


def make_cqe(cycles: int, *, byte_cnt: int = 64, rss_hash: int = 0) -> bytes:
    """One CQE (:func:`make_cqes`) as bytes."""
    return make_cqes(cycles, byte_cnt=byte_cnt, rss_hash=rss_hash)[0].tobytes()


def mlx4_en_get_hwtstamp(tc: Timecounter, cycles: int) -> int:
    """The conversion the C path does under the seqlock: ``timecounter_cyc2time``."""
    return tc.cyc2time(cycles)


def read_timecounter(cctx: IntAccess, mdev: int) -> Timecounter:
    """The timecounter as the helper reads it from ``struct mlx4_en_dev`` memory."""
    f = MLX4_EN_DEV.fields
    return Timecounter(mult=cctx.read(mdev + f["cc_mult"].offset, 4),
                       shift=cctx.read(mdev + f["cc_shift"].offset, 4),
                       mask=cctx.read(mdev + f["cc_mask"].offset, 8),
                       cycle_last=cctx.read(mdev + f["tc_cycle_last"].offset, 8),
                       nsec=cctx.read(mdev + f["tc_nsec"].offset, 8),
                       frac=cctx.read(mdev + f["tc_frac"].offset, 8))


def write_timecounter(data: bytearray | memoryview, tc: Timecounter, seq: int = 0) -> None:
    """Store a timecounter into a ``struct mlx4_en_dev``'s bytes (a region's, or a numpy row's
    ``ndarray.data``), as a writer under the seqlock."""
    f = MLX4_EN_DEV.fields
    for name, val, size in (("clock_seq", seq, 4), ("cc_mask", tc.mask, 8), ("cc_mult", tc.mult, 4),
                              ("cc_shift", tc.shift, 4), ("tc_cycle_last", tc.cycle_last, 8),
                              ("tc_nsec", tc.nsec, 8), ("tc_frac", tc.frac, 8)):
        off = f[name].offset
        data[off:off + size] = val.to_bytes(size, "little")


class SeqlockBusy(RuntimeError):
    """A reader found the sequence odd: a writer holds the seqlock (it would spin)."""


def _rx_timestamp_helper(check_null: bool) -> HelperFn:
    def mxl4_xdp_rx_timestamp(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        """ctx->r0 = timecounter_cyc2time(mlx4_en_get_cqe_ts(ctx->cqe)) under the seqlock; return ctx."""
        cqe = cctx.read(r1 + MLX4_XDP_BUFF.offsetof("cqe"), 8)
        mdev = cctx.read(r1 + MLX4_XDP_BUFF.offsetof("mdev"), 8)
        if check_null and (not cqe or not mdev):
            cctx.write(r1 + MLX4_XDP_BUFF.offsetof("r0"), 8, 0)
            return r1
        cycles = get_cqe_ts(cctx.read_bytes(cqe, CQE_SIZE))
        while True:   # read_seqbegin / read_seqretry
            seq = cctx.read(mdev + MLX4_EN_DEV.offsetof("clock_seq"), 4)
            if seq & 1:
                raise SeqlockBusy(f"mdev->clock_lock held by a writer (sequence {seq})")
            ns = mlx4_en_get_hwtstamp(read_timecounter(cctx, mdev), cycles)
            if cctx.read(mdev + MLX4_EN_DEV.offsetof("clock_seq"), 4) == seq:
                break
        cctx.write(r1 + MLX4_XDP_BUFF.offsetof("r0"), 8, ns)
        return r1
    return mxl4_xdp_rx_timestamp


def _xmo_rx_timestamp(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """mlx4_en_xdp_rx_timestamp (6.3): -ENODATA unless the filter is ALL (cqe set)."""
    cqe = cctx.read(r1 + MLX4_XDP_BUFF.offsetof("cqe"), 8)
    mdev = cctx.read(r1 + MLX4_XDP_BUFF.offsetof("mdev"), 8)
    if not cqe or not mdev:
        return errno_ret(ENODATA)
    cycles = get_cqe_ts(cctx.read_bytes(cqe, CQE_SIZE))
    cctx.write(r2, 8, mlx4_en_get_hwtstamp(read_timecounter(cctx, mdev), cycles))
    return 0


def _v1_rx_timestamp(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    _rx_timestamp_helper(True)(cctx, r1, r2, r3, r4, r5)
    return cctx.read(r1 + MLX4_XDP_BUFF.offsetof("r0"), 8)


def _v1_rx_timestamp_lanes(st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
    """:func:`_v1_rx_timestamp` for many lanes: the fixed helper's lane form, then ctx->r0."""
    _rx_timestamp_lanes(check_null=True)(st, lanes, args)
    return st.helper_read(lanes, args[0] + U64(MLX4_XDP_BUFF.offsetof("r0")), 8)[0]


# Per call (MODEL op counts): two wrapper loads, two CQE loads, be swaps, the seqlock read
# (sequence twice), the timecounter fields, one 64x32 multiply, the r0 store.
COST_HELPER = OpCost(insns={"ldx": 11, "alu64": 14, "jmp": 4, "stx": 1},
                     touches={"wrapper": 3, "descriptor": 2, "clock": 7}, muls=1, seqlock_reads=1)
COST_XMO = OpCost(insns={"ldx": 11, "alu64": 14, "jmp": 4, "stx": 1},
                  touches={"wrapper": 2, "descriptor": 2, "clock": 7, "stack": 1}, muls=1, seqlock_reads=1)
def _bswap(values: np.ndarray, size: int) -> np.ndarray:
    """be{16,32}_to_cpu on u64 words that hold ``size`` little-endian-read bytes."""
    return values.astype(f"<u{size}").byteswap().astype(np.uint64)


def _cqe_ns_lanes(st: LaneState, lanes: np.ndarray, dst: np.ndarray, cqe: np.ndarray, mdev: np.ndarray) -> np.ndarray:
    """Convert the lanes' CQE stamps with their mdev's timecounter (``cqe_ts``,
    ``timecounter_cyc2time``) and store the ns at ``dst``; returns the lanes served (not those
    with an odd seqlock sequence or an unmapped address: they go to the scalar routine)."""
    reads = [st.helper_read(lanes, cqe + U64(MLX4_TS_CQE.offsetof(f)), MLX4_TS_CQE.sizeof(f))
             for f in ("timestamp_hi", "timestamp_lo")]
    reads += [st.helper_read(lanes, mdev + U64(MLX4_EN_DEV.offsetof(f)), MLX4_EN_DEV.sizeof(f))
              for f in ("clock_seq", "cc_mult", "cc_shift", "cc_mask", "tc_cycle_last", "tc_nsec", "tc_frac")]
    (hi, lo, seq, mult, shift, mask, last, nsec, frac) = (v for v, _ in reads)
    served = np.logical_and.reduce([ok for _, ok in reads]) & ((seq & U64(1)) == 0)   # read_seqbegin
    ns = timecounter_cyc2time(mult, shift, mask, last, nsec, frac, cqe_ts(_bswap(hi, 4), _bswap(lo, 2)))
    s = np.nonzero(served)[0]
    served[s] = st.helper_write(lanes[s], dst[s], 8, ns[s])
    return served


def _wrapper_ptrs(st: LaneState, lanes: np.ndarray, r1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cqe, mdev, both read) of the lanes' wrappers."""
    cqe, ok = st.helper_read(lanes, r1 + U64(MLX4_XDP_BUFF.offsetof("cqe")), 8)
    mdev, ok2 = st.helper_read(lanes, r1 + U64(MLX4_XDP_BUFF.offsetof("mdev")), 8)
    return cqe, mdev, ok & ok2


def _xmo_rx_timestamp_lanes(st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
    """:func:`_xmo_rx_timestamp` for many lanes (no cqe/mdev: -ENODATA, nothing written)."""
    cqe, mdev, have = _wrapper_ptrs(st, lanes, args[0])
    null = (cqe == 0) | (mdev == 0)
    done = have & null
    g = np.nonzero(have & ~null)[0]
    if len(g):
        done[g] = _cqe_ns_lanes(st, lanes[g], args[1][g], cqe[g], mdev[g])
    return call_scalar_rest(st, lanes, args, done, np.where(null, U64(errno_ret(ENODATA)), U64(0)))


def _rx_timestamp_lanes(check_null: bool) -> VectorHelper:
    """The helper for many lanes: the same fields, ``cqe_ts`` and ``timecounter_cyc2time`` as
    the scalar helper; lanes with an odd seqlock sequence, an unmapped address or (as posted)
    a NULL pointer go to the scalar helper, which fails exactly as it does there."""
    r0_off = U64(MLX4_XDP_BUFF.offsetof("r0"))

    def mxl4_xdp_rx_timestamp_lanes(st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
        r1 = args[0]
        done = np.zeros(len(lanes), bool)
        cqe, mdev, have = _wrapper_ptrs(st, lanes, r1)
        if check_null:      # the fixed helper: a NULL cqe/mdev gives ctx->r0 = 0
            null = np.nonzero(have & ((cqe == 0) | (mdev == 0)))[0]
            done[null] = st.helper_write(lanes[null], r1[null] + r0_off, 8, np.zeros(len(null), np.uint64))
        g = np.nonzero(have & (cqe != 0) & (mdev != 0))[0]
        if len(g):
            done[g] = _cqe_ns_lanes(st, lanes[g], r1[g] + r0_off, cqe[g], mdev[g])
        return call_scalar_rest(st, lanes, args, done, r1.copy())
    return mxl4_xdp_rx_timestamp_lanes


HELPER_POSTED = KernelFunction("mxl4_xdp_rx_timestamp", _rx_timestamp_helper(check_null=False),
                               "RFC v2 12/14 helper as posted: cqe/mdev dereferenced unchecked", COST_HELPER,
                               _rx_timestamp_lanes(check_null=False))
HELPER_FIXED = KernelFunction("mxl4_xdp_rx_timestamp", _rx_timestamp_helper(check_null=True),
                              "RFC v2 12/14 helper with the NULL checks it needs", COST_HELPER,
                              _rx_timestamp_lanes(check_null=True))


class Mlx4(Driver):
    name = "mlx4"
    supports_rx_timestamp = True
    wrapper = MLX4_XDP_BUFF
    source = "drivers/net/ethernet/mellanox/mlx4 (RFC v2 11/14, 12/14)"
    meta_valid = False      # kernel-facts §6.3: xdp_prepare_buff(..., false) in the RFC's era

    def __init__(self, filter_all: bool = True) -> None:
        """``filter_all``: the ring's hwtstamp rx_filter is HWTSTAMP_FILTER_ALL (SIOCSHWTSTAMP;
        include/uapi/linux/net_tstamp.h@6.1.192:137-140);
        False: FILTER_NONE, the CQEs carry no stamp and the wrapper's cqe stays NULL (12/14)."""
        self.filter_all = filter_all

    def struct_pointers(self) -> Mapping[tuple[str, str], StructLayout]:
        return MappingProxyType({("mlx4_xdp_buff", "cqe"): MLX4_TS_CQE, ("mlx4_xdp_buff", "mdev"): MLX4_EN_DEV})

    def clock(self, settings: RxSettings) -> "Mlx4Clock":
        m = Mlx4Clock.default(ppb=settings.ppb)
        overflow = m.overflow
        for a, b in settings.stalls:
            overflow = overflow.with_stall(a, b)
        return Mlx4Clock(m.freq_hz, m.start_ns, overflow, m.ppb, m.cycles0)

    def rx_path(self, mem: KernelMemory, settings: RxSettings) -> "Mlx4Rx":
        return Mlx4Rx(mem, self.clock(settings), settings.variant, filter_all=self.filter_all)

    def lane_rx(self, settings: RxSettings) -> "Mlx4LaneRx":
        return Mlx4LaneRx(self.clock(settings), filter_all=self.filter_all)

    def helper(self, variant: str) -> KernelFunction:
        return HELPER_POSTED if variant == "rfc-v2-posted" else HELPER_FIXED

    def unroll_rx_timestamp(self, ctx: UnrollContext, patch: BpfPatch) -> None:
        imm = ctx.symbols.add(self.helper(ctx.variant))
        xdp_kfunc_call_preserving_r1(patch, MLX4_XDP_BUFF.offsetof("r0"), imm)

    def timestamp_routine(self, *, status: bool) -> KernelFunction:
        if status:
            return KernelFunction("mlx4_en_xdp_rx_timestamp", _xmo_rx_timestamp, cost=COST_XMO, lanes=_xmo_rx_timestamp_lanes)
        return KernelFunction("mlx4_xdp_rx_timestamp", _v1_rx_timestamp, cost=COST_HELPER, lanes=_v1_rx_timestamp_lanes)


class Mlx4RxHw:
    """An mlx4 Rx ring in simulated memory: CQEs, the ``mlx4_en_dev`` clock state and the
    per-packet ``mlx4_xdp_buff``."""

    def __init__(self, mem: KernelMemory, ncqe: int = 64) -> None:
        self.mem, self.ncqe = mem, ncqe
        self.cqes = mem.alloc("mlx4 CQ", CQE_SIZE * ncqe, kind="descriptor")
        self.mdev = mem.new(MLX4_EN_DEV, "mlx4_en_dev", kind="clock")
        self.wrapper = mem.new(MLX4_XDP_BUFF, "mlx4_xdp_buff", kind="wrapper")

    def set_clock(self, tc: Timecounter, seq: int = 0) -> None:
        write_timecounter(self.mdev.data, tc, seq)

    def receive(self, index: int, cqe: bytes | None, *, zero_wrapper: bool = True) -> int:
        """``cqe=None``: the ring's filter is not HWTSTAMP_FILTER_ALL, so the driver does not
        set cqe/mdev; ``zero_wrapper=False`` keeps the previous packet's values (posted)."""
        if zero_wrapper:
            self.wrapper.data[56:80] = bytes(24)
        if cqe is not None:
            slot = index % self.ncqe
            self.cqes.data[slot * CQE_SIZE:(slot + 1) * CQE_SIZE] = cqe
            self.mem.write(self.wrapper, MLX4_XDP_BUFF, "cqe", self.cqes.base + slot * CQE_SIZE)
            self.mem.write(self.wrapper, MLX4_XDP_BUFF, "mdev", self.mdev.base)
        return self.wrapper.base


@dataclass(frozen=True)
class Mlx4Clock:
    """The HCA free-running counter and the timecounter the overflow check keeps.

    ``freq_hz``: the counter's nominal rate (hca_core_clock, 427 MHz on ConnectX-3);
    ``ppb``: its true frequency error; ``start_ns``: timecounter_init's ktime_get_real().
    ``overflow``: the overflow-check task (every 5 s, via the 250 ms service task: MODEL as
    a plain 5 s period); stalls are fault injection.  ``hw_time_ns(t)`` is the ideal: start
    plus the elapsed cycles converted exactly (rationally) at the nominal rate.
    """

    freq_hz: int
    start_ns: int
    overflow: Refresher
    ppb: float = 0.0
    cycles0: int = 0

    @classmethod
    def default(cls, *, start_ns: int = 1_700_000_000_000_000_000, ppb: float = 0.0,
                cycles0: int = 0x1234_5678_9ABC) -> "Mlx4Clock":
        return cls(value("mlx4", "hca_core_clock_mhz") * 1_000_000, start_ns,
                   Refresher(value("mlx4", "overflow_check_period_ms") * 1_000_000), ppb, cycles0)

    @property
    def mult_shift(self) -> tuple[int, int]:
        shift = mlx4_freq_to_shift(self.freq_hz // 1_000_000)
        return clocksource_khz2mult(self.freq_hz // 1000, shift), shift

    def total_cycles(self, t_ns: Any) -> Any:
        """Cycles counted since t = 0 (unbounded): ``t * freq * (1 + ppb/1e9)``, floored.
        Ints or int64 arrays (exact either way)."""
        return floor_ratio(t_ns, self.freq_hz * (1_000_000_000 + int(self.ppb)), 10**18)

    def cycles(self, t_ns: Any) -> Any:
        total = self.total_cycles(t_ns)
        if isinstance(total, np.ndarray):
            return (np.uint64(self.cycles0) + total.astype(np.uint64)) & U64(MASK48)
        return (self.cycles0 + total) & MASK48

    def hw_time_ns(self, t_ns: Any) -> Any:
        ns = floor_ratio(self.total_cycles(t_ns), 1_000_000_000, self.freq_hz)
        if isinstance(ns, np.ndarray):
            return (np.int64(self.start_ns) + ns).astype(np.uint64)
        return self.start_ns + ns

    def timecounters(self, t: np.ndarray) -> tuple[np.ndarray, list[Timecounter]]:
        """The timecounter in force at each true time: init at 0, then ``timecounter_read``
        at each overflow check.  Returns (index per t, the distinct timecounters)."""
        mult, shift = self.mult_shift
        tcs = [Timecounter.init(mult, shift, MASK48, self.cycles(0), self.start_ns)]
        t = np.asarray(t, np.int64)
        runs = self.overflow.runs_between(0, int(t.max())) if len(t) else []
        for at in runs:
            tcs.append(tcs[-1].read(self.cycles(at)))
        return np.searchsorted(np.asarray(runs, np.int64), t, side="right"), tcs

    def timecounter(self, t_ns: int) -> Timecounter:
        """The timecounter at true time t."""
        index, tcs = self.timecounters(np.array([t_ns], np.int64))
        return tcs[int(index[0])]


# ------------------------------------------------------------------------- receive paths
@dataclass
class Mlx4Rx:
    """mlx4's receive step on the scalar machine: the CQE from the free-running counter, the
    timecounter in ``mlx4_en_dev``, the wrapper as mlx4_en_process_rx_cq fills it."""

    mem: KernelMemory
    clock: Mlx4Clock
    variant: str = "fixed"
    filter_all: bool = True

    def __post_init__(self) -> None:
        self.hw = Mlx4RxHw(self.mem)
        self.wrapper = self.hw.wrapper
        self._ref = 0

    def receive(self, index: int, t_ns: int, length: int) -> int:
        tc = self.clock.timecounter(t_ns)
        self.hw.set_clock(tc)
        cycles = self.clock.cycles(t_ns)
        cqe = make_cqe(cycles, byte_cnt=length) if self.filter_all else None
        self.hw.receive(index, cqe, zero_wrapper=self.variant == "fixed")
        self._ref = mlx4_en_get_hwtstamp(tc, get_cqe_ts(cqe)) if cqe else 0
        return self.clock.hw_time_ns(t_ns)

    def reference_timestamp(self) -> int:
        return self._ref


@dataclass
class Mlx4LaneRx:
    """mlx4's receive step for many packets: the same CQE encoder, ``cqe_ts`` and timecounter
    as :class:`Mlx4Rx`; ``mlx4_en_dev`` is stored once per timecounter (read-only rows)."""

    clock: Mlx4Clock
    filter_all: bool = True

    def receive_lanes(self, q: Any, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index, tcs = self.clock.timecounters(t)
        used, row = np.unique(index, return_inverse=True)
        row = row.reshape(-1)
        mdev = np.zeros((len(used), MLX4_EN_DEV.size), np.uint8)
        for k, i in enumerate(used):
            write_timecounter(mdev[k].data, tcs[int(i)])
        m = q.driver_region("mlx4_en_dev", "clock", MLX4_EN_DEV.size, mdev, row=row.astype(np.int64),
                            writable=False)
        cycles = self.clock.cycles(t)
        hw = self.clock.hw_time_ns(t)
        cqes = make_cqes(cycles, byte_cnt=q.frame_len)
        c = q.driver_region("mlx4 CQE", "descriptor", CQE_SIZE, cqes)
        if not self.filter_all:
            return hw, np.zeros(len(t), np.uint64)
        put_field(q.wrapper.data, MLX4_XDP_BUFF, "cqe", c.base)
        put_field(q.wrapper.data, MLX4_XDP_BUFF, "mdev", m.base)
        raw = cqe_ts_rows(cqes)
        ref = np.zeros(len(t), np.uint64)
        for k, i in enumerate(used):
            sel = row == k
            ref[sel] = tcs[int(i)].cyc2time(raw[sel])
        return hw, ref



# =================================================================== metadata fields (issue 16)
# mlx4_en_xdp_rx_hash (6.3; [D73] en_rx.c 655-682, kernel-facts-fields §2.2): the hash is the
# CQE's immed_rss_invalid (be32 @4), the type from the status bits (be16 @16) and
# ipv6_ext_mask (@18): MLX4_CQE_STATUS_* at include/linux/mlx4/cq.h@6.1.192:123-131.  mlx4 never
# sets XDP_RSS_L4 (IPv4/TCP is 0x011).  No VLAN op: rx_vlan_tag is -EOPNOTSUPP.
MLX4_CQE_STATUS_IPV4 = 1 << 6
MLX4_CQE_STATUS_IPV4F = 1 << 7
MLX4_CQE_STATUS_IPV6 = 1 << 8
MLX4_CQE_STATUS_TCP = 1 << 10
MLX4_CQE_STATUS_UDP = 1 << 11
MLX4_MERGED_OPS = MappingProxyType({"rx_timestamp": (6, 3), "rx_hash": (6, 3)})


def mlx4_cqe_status(flow: Any) -> int:
    """The status bits the HCA sets for ``flow``'s frame (MODEL: the parser's classes)."""
    s = {"ipv4": MLX4_CQE_STATUS_IPV4, "ipv6": MLX4_CQE_STATUS_IPV6}.get(flow.l3, 0)
    if flow.l3:
        s |= {"tcp": MLX4_CQE_STATUS_TCP, "udp": MLX4_CQE_STATUS_UDP}.get(flow.l4, 0)
    return s


@u64_rule
def mlx4_rss_type(status: Any, ipv6_ext_mask: Any) -> Any:
    """The type derivation of ``mlx4_en_xdp_rx_hash`` on the CQE's status (CPU order) and
    ipv6_ext_mask.  Ints or arrays."""
    u = np.uint64
    # Two independent ifs, TCP then UDP, so UDP wins when both bits are set ([D73] en_rx.c
    # 655-682; the 6.3 patch text, search idx:8062905530).
    xht = np.where(status & u(MLX4_CQE_STATUS_UDP), u(XDP_RSS_L4_UDP),
                   np.where(status & u(MLX4_CQE_STATUS_TCP), u(XDP_RSS_L4_TCP), u(0)))
    xht = xht | np.where(status & u(MLX4_CQE_STATUS_IPV4 | MLX4_CQE_STATUS_IPV4F), u(XDP_RSS_L3_IPV4), u(0))
    v6 = (status & u(MLX4_CQE_STATUS_IPV6)) != 0
    return xht | np.where(v6, u(XDP_RSS_L3_IPV6) | np.where(ipv6_ext_mask != 0, u(XDP_RSS_L3_DYNHDR), u(0)), u(0))


def _xmo_rx_hash(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """mlx4_en_xdp_rx_hash.  MODEL: our wrapper (the RFC era's) sets cqe only with
    HWTSTAMP_FILTER_ALL; 6.3's always sets it, so a NULL cqe here is reported -ENODATA."""
    cqe = cctx.read(r1 + MLX4_XDP_BUFF.offsetof("cqe"), 8)
    if not cqe:
        return errno_ret(ENODATA)
    row = np.frombuffer(cctx.read_bytes(cqe, CQE_SIZE), np.uint8).reshape(1, CQE_SIZE)
    cctx.write(r2, 4, int(get_field(row, MLX4_TS_CQE, "immed_rss_invalid", "big")[0]))
    cctx.write(r3, 4, int(mlx4_rss_type(get_field(row, MLX4_TS_CQE, "status", "big"),
                                        get_field(row, MLX4_TS_CQE, "ipv6_ext_mask"))[0]))
    return 0


def _rx_hash_lanes(st: LaneState, lanes: Lanes, args: list[U64Array]) -> U64Array:
    """:func:`_xmo_rx_hash` for many lanes (the same fields and :func:`mlx4_rss_type`)."""
    cqe, ok = st.helper_read(lanes, args[0] + U64(MLX4_XDP_BUFF.offsetof("cqe")), 8)
    vals = {}
    for f in ("immed_rss_invalid", "status", "ipv6_ext_mask"):
        v, good = st.helper_read(lanes, cqe + U64(MLX4_TS_CQE.offsetof(f)), MLX4_TS_CQE.sizeof(f))
        vals[f], ok = v, ok & good
    done = ok & (cqe != 0)
    w = np.nonzero(done)[0]
    done[w] = st.helper_write(lanes[w], args[1][w], 4, _bswap(vals["immed_rss_invalid"][w], 4))
    w = np.nonzero(done)[0]
    done[w] = st.helper_write(lanes[w], args[2][w], 4,
                              mlx4_rss_type(_bswap(vals["status"][w], 2), vals["ipv6_ext_mask"][w]))
    return call_scalar_rest(st, lanes, args, done, np.zeros(len(lanes), U64))


COST_HASH = OpCost(insns={"ldx": 4, "alu64": 10, "jmp": 5, "stx": 2}, touches={"wrapper": 1, "descriptor": 3, "stack": 2})


def _put_cqe_meta(rows: np.ndarray, flow: Any) -> None:
    put_field(rows, MLX4_TS_CQE, "immed_rss_invalid", flow.rss_hash, "big")
    put_field(rows, MLX4_TS_CQE, "status", mlx4_cqe_status(flow), "big")
    put_field(rows, MLX4_TS_CQE, "ipv6_ext_mask", 1 if flow.ipv6_ext else 0)


class Mlx4Fields(Mlx4):
    """mlx4 with the merged design's rx_hash op (the registry's ``mlx4``)."""

    merged_ops = MLX4_MERGED_OPS

    def other_routine(self, kfunc: KfuncSpec) -> KernelFunction | None:
        if kfunc.field == "rx_hash":
            return KernelFunction("mlx4_en_xdp_rx_hash", _xmo_rx_hash, cost=COST_HASH, lanes=_rx_hash_lanes)
        return None

    def rss_type_of(self, flow: Any) -> int | None:
        return int(mlx4_rss_type(mlx4_cqe_status(flow), int(flow.ipv6_ext)))

    def unroll_field(self, ctx: UnrollContext, kfunc: KfuncSpec, patch: BpfPatch) -> None:
        """RFC pattern, MODEL: the hash is one big-endian load from the CQE, so mlx4 can
        unroll it (``cqe ? be32(cqe->immed_rss_invalid) : 0``; R0, R4); no VLAN."""
        if kfunc.enum == "XDP_METADATA_KFUNC_RX_HASH_SUPPORTED":
            patch.append(B.BPF_MOV64_IMM(B.BPF_REG_0, 1))
        elif kfunc.enum == "XDP_METADATA_KFUNC_RX_HASH":
            be32_through_ctx_pointer(patch, MLX4_XDP_BUFF.offsetof("cqe"), MLX4_TS_CQE.offsetof("immed_rss_invalid"))

    def receive_meta(self, rx: Any, index: int, flow: Any) -> None:
        slot = index % rx.hw.ncqe
        row = np.frombuffer(bytes(rx.hw.cqes.data[slot * CQE_SIZE:(slot + 1) * CQE_SIZE]), np.uint8).reshape(1, -1).copy()
        _put_cqe_meta(row, flow)
        rx.hw.cqes.data[slot * CQE_SIZE:(slot + 1) * CQE_SIZE] = row.tobytes()

    def receive_meta_lanes(self, queue: Any, flow: Any) -> None:
        regions = {r.name: r for r in queue.space.regions}
        _put_cqe_meta(regions["mlx4 CQE"].data, flow)
