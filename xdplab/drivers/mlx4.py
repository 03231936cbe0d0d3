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
  *mdev; u64 r0; }`` (11/14): cqe 56, mdev 64, r0 72; cqe and mdev are set only when the
  ring's hwtstamp_rx_filter is HWTSTAMP_FILTER_ALL;
- the unroll (12/14) is ``xdp_kfunc_call_preserving_r1(patch, offsetof(r0),
  mxl4_xdp_rx_timestamp)`` ("mxl4" sic): not unrollable because of the seqlock.

``rfc-v2-posted`` (READING): the wrapper is a non-zeroed stack variable, so with the filter
not ALL the helper dereferences a stale ``cqe`` (the previous packet's) without a check, or a
garbage one; ``fixed`` checks for NULL and the lab zeroes the wrapper per packet.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..bpf.patch import BpfPatch
from ..clocks import Refresher, Timecounter, cyclecounter_mask
from ..kernel import errno_ret
from ..kernel.structs import layout
from ..kernel.symbols import KernelFunction, OpCost
from ..kernel.uapi import ENODATA
from ..kernel.unroll_helpers import xdp_kfunc_call_preserving_r1
from .base import Driver, UnrollContext, wrapper_layout

CQE_SIZE = 32
MLX4_TS_CQE = layout("mlx4_ts_cqe", CQE_SIZE, "linux:include/linux/mlx4/cq.h struct mlx4_ts_cqe (packed)",
                     vlan_my_qpn=(0, 4), immed_rss_invalid=(4, 4), g_mlpath_rqpn=(8, 4),
                     timestamp_hi=(12, 4), status=(16, 2), ipv6_ext_mask=(18, 1), badfcs_enc=(19, 1),
                     byte_cnt=(20, 4), wqe_index=(24, 2), checksum=(26, 2), reserved=(28, 1),
                     timestamp_lo=(29, 2), owner_sr_opcode=(31, 1))

# struct mlx4_en_dev: the clock state the helper reads.  MODEL offsets: clock_lock's
# sequence, the cyclecounter (mask, mult, shift) and the timecounter (cycle_last, nsec, frac).
MLX4_EN_DEV = layout("mlx4_en_dev", 0x80, "drivers/net/ethernet/mellanox/mlx4/mlx4_en.h (MODEL offsets)",
                     clock_seq=(0x00, 4), cc_mask=(0x10, 8), cc_mult=(0x18, 4), cc_shift=(0x1C, 4),
                     tc_cycle_last=(0x28, 8), tc_nsec=(0x30, 8), tc_frac=(0x40, 8))

MLX4_XDP_BUFF = wrapper_layout("mlx4_xdp_buff", 80, "RFC v2 11/14 drivers/net/ethernet/mellanox/mlx4/en_rx.c",
                               cqe=(56, 8), mdev=(64, 8), r0=(72, 8))
MASK48 = cyclecounter_mask(48)


def get_cqe_ts(cqe: bytes) -> int:
    """``mlx4_en_get_cqe_ts``: the CQE's raw cycle count (48 bits, +1 carry when lo is 0)."""
    if len(cqe) < CQE_SIZE:
        raise ValueError(f"a CQE is {CQE_SIZE} bytes, got {len(cqe)}")
    lo = int.from_bytes(cqe[29:31], "big")
    hi = (int.from_bytes(cqe[12:16], "big") + (1 if lo == 0 else 0)) << 16
    return hi | lo


def make_cqe(cycles: int, *, byte_cnt: int = 64, rss_hash: int = 0) -> bytes:
    """A CQE as the hardware writes it for a frame captured at ``cycles`` (48-bit)."""
    c = bytearray(CQE_SIZE)
    c[4:8] = (rss_hash & 0xFFFFFFFF).to_bytes(4, "big")
    c[12:16] = ((cycles >> 16) & 0xFFFFFFFF).to_bytes(4, "big")
    c[20:24] = byte_cnt.to_bytes(4, "big")
    c[29:31] = (cycles & 0xFFFF).to_bytes(2, "big")
    return bytes(c)


def mlx4_en_get_hwtstamp(tc: Timecounter, cycles: int) -> int:
    """The conversion the C path does under the seqlock: ``timecounter_cyc2time``."""
    return tc.cyc2time(cycles)


def read_timecounter(cctx, mdev: int) -> Timecounter:  # type: ignore[no-untyped-def]
    """The timecounter as the helper reads it from ``struct mlx4_en_dev`` memory."""
    f = MLX4_EN_DEV.fields
    return Timecounter(mult=cctx.read(mdev + f["cc_mult"].offset, 4),
                       shift=cctx.read(mdev + f["cc_shift"].offset, 4),
                       mask=cctx.read(mdev + f["cc_mask"].offset, 8),
                       cycle_last=cctx.read(mdev + f["tc_cycle_last"].offset, 8),
                       nsec=cctx.read(mdev + f["tc_nsec"].offset, 8),
                       frac=cctx.read(mdev + f["tc_frac"].offset, 8))


def write_timecounter(region, tc: Timecounter, seq: int = 0) -> None:  # type: ignore[no-untyped-def]
    """Store a timecounter into a ``struct mlx4_en_dev`` region (a writer under the seqlock)."""
    f = MLX4_EN_DEV.fields
    for name, value, size in (("clock_seq", seq, 4), ("cc_mask", tc.mask, 8), ("cc_mult", tc.mult, 4),
                              ("cc_shift", tc.shift, 4), ("tc_cycle_last", tc.cycle_last, 8),
                              ("tc_nsec", tc.nsec, 8), ("tc_frac", tc.frac, 8)):
        off = f[name].offset
        region.data[off:off + size] = value.to_bytes(size, "little")


class SeqlockBusy(RuntimeError):
    """A reader found the sequence odd: a writer holds the seqlock (it would spin)."""


def _rx_timestamp_helper(check_null: bool):  # type: ignore[no-untyped-def]
    def mxl4_xdp_rx_timestamp(cctx, r1, r2, r3, r4, r5):  # type: ignore[no-untyped-def]
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


def _xmo_rx_timestamp(cctx, r1, r2, r3, r4, r5):  # type: ignore[no-untyped-def]
    """mlx4_en_xdp_rx_timestamp (6.3): -ENODATA unless the filter is ALL (cqe set)."""
    cqe = cctx.read(r1 + MLX4_XDP_BUFF.offsetof("cqe"), 8)
    mdev = cctx.read(r1 + MLX4_XDP_BUFF.offsetof("mdev"), 8)
    if not cqe or not mdev:
        return errno_ret(ENODATA)
    cycles = get_cqe_ts(cctx.read_bytes(cqe, CQE_SIZE))
    cctx.write(r2, 8, mlx4_en_get_hwtstamp(read_timecounter(cctx, mdev), cycles))
    return 0


def _v1_rx_timestamp(cctx, r1, r2, r3, r4, r5):  # type: ignore[no-untyped-def]
    _rx_timestamp_helper(True)(cctx, r1, r2, r3, r4, r5)
    return cctx.read(r1 + MLX4_XDP_BUFF.offsetof("r0"), 8)


# Per call (MODEL op counts): two wrapper loads, two CQE loads, be swaps, the seqlock read
# (sequence twice), the timecounter fields, one 64x32 multiply, the r0 store.
COST_HELPER = OpCost(insns={"ldx": 11, "alu64": 14, "jmp": 4, "stx": 1},
                     touches={"wrapper": 3, "descriptor": 2, "clock": 7}, muls=1, seqlock_reads=1)
COST_XMO = OpCost(insns={"ldx": 11, "alu64": 14, "jmp": 4, "stx": 1},
                  touches={"wrapper": 2, "descriptor": 2, "clock": 7, "stack": 1}, muls=1, seqlock_reads=1)
HELPER_POSTED = KernelFunction("mxl4_xdp_rx_timestamp", _rx_timestamp_helper(check_null=False),
                               "RFC v2 12/14 helper as posted: cqe/mdev dereferenced unchecked", COST_HELPER)
HELPER_FIXED = KernelFunction("mxl4_xdp_rx_timestamp", _rx_timestamp_helper(check_null=True),
                              "RFC v2 12/14 helper with the NULL checks it needs", COST_HELPER)


class Mlx4(Driver):
    name = "mlx4"
    supports_rx_timestamp = True
    wrapper = MLX4_XDP_BUFF
    source = "drivers/net/ethernet/mellanox/mlx4 (RFC v2 11/14, 12/14)"

    def helper(self, variant: str) -> KernelFunction:
        return HELPER_POSTED if variant == "rfc-v2-posted" else HELPER_FIXED

    def unroll_rx_timestamp(self, ctx: UnrollContext, patch: BpfPatch) -> None:
        imm = ctx.symbols.add(self.helper(ctx.variant))
        xdp_kfunc_call_preserving_r1(patch, MLX4_XDP_BUFF.offsetof("r0"), imm)

    def timestamp_routine(self, *, status: bool) -> KernelFunction:
        if status:
            return KernelFunction("mlx4_en_xdp_rx_timestamp", _xmo_rx_timestamp, cost=COST_XMO)
        return KernelFunction("mlx4_xdp_rx_timestamp", _v1_rx_timestamp, cost=COST_HELPER)


class Mlx4RxHw:
    """An mlx4 Rx ring in simulated memory: CQEs, the ``mlx4_en_dev`` clock state and the
    per-packet ``mlx4_xdp_buff``."""

    def __init__(self, mem, ncqe: int = 64) -> None:  # type: ignore[no-untyped-def]
        self.mem, self.ncqe = mem, ncqe
        self.cqes = mem.alloc("mlx4 CQ", CQE_SIZE * ncqe, kind="descriptor")
        self.mdev = mem.new(MLX4_EN_DEV, "mlx4_en_dev", kind="clock")
        self.wrapper = mem.new(MLX4_XDP_BUFF, "mlx4_xdp_buff", kind="wrapper")

    def set_clock(self, tc: Timecounter, seq: int = 0) -> None:
        write_timecounter(self.mdev, tc, seq)

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
        from ..clocks import Refresher
        from ..profiles import value
        return cls(value("mlx4", "hca_core_clock_mhz") * 1_000_000, start_ns,
                   Refresher(value("mlx4", "overflow_check_period_ms") * 1_000_000), ppb, cycles0)

    @property
    def mult_shift(self) -> tuple[int, int]:
        from ..clocks import clocksource_khz2mult, mlx4_freq_to_shift
        shift = mlx4_freq_to_shift(self.freq_hz // 1_000_000)
        return clocksource_khz2mult(self.freq_hz // 1000, shift), shift

    def total_cycles(self, t_ns: int) -> int:
        """Cycles counted since t = 0 (unbounded)."""
        return (t_ns * self.freq_hz * (1_000_000_000 + int(self.ppb))) // 10**18

    def cycles(self, t_ns: int) -> int:
        return (self.cycles0 + self.total_cycles(t_ns)) & MASK48

    def hw_time_ns(self, t_ns: int) -> int:
        return self.start_ns + (self.total_cycles(t_ns) * 1_000_000_000) // self.freq_hz

    def timecounter(self, t_ns: int) -> Timecounter:
        """The timecounter at true time t: init at 0, then timecounter_read at each check."""
        mult, shift = self.mult_shift
        tc = Timecounter.init(mult, shift, MASK48, self.cycles(0), self.start_ns)
        for at in self.overflow.runs_between(0, t_ns):
            tc = tc.read(self.cycles(at))
        return tc

