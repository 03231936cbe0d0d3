"""Each driver's receive step: the hardware writes its descriptor from the clock, the driver
fills its xdp_buff wrapper.  ``RxPath.receive(i, t_ns, length)`` returns the ideal
``hw_time_ns`` for the packet; ``reference_timestamp()`` is what the driver's C routine would
report for it (the Python reference of the unrolled or called code).

Metadata support (``meta_valid`` of xdp_prepare_buff) in the RFC's era: veth and ice pass
true; mlx4 passes false (kernel-facts §6.3), and so does bnxt (bnxt_xdp_buff_init,
linux:drivers/net/ethernet/broadcom/bnxt/bnxt_xdp.c): on those two, bpf_xdp_adjust_meta
fails with -ENOTSUPP and export_to_skb bails at its first check.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..clocks import Phc
from ..kernel.structs import SK_BUFF, KernelMemory
from . import bnxt, ice, mlx4
from .veth import VETH_XDP_BUFF

REALTIME_2022 = 1_669_500_000_000_000_000   # CLOCK_REALTIME around the RFC (MODEL: any epoch works)


class RxPath(Protocol):
    wrapper: object
    meta_valid: bool

    def receive(self, index: int, t_ns: int, length: int) -> int: ...
    def reference_timestamp(self) -> int: ...


@dataclass
class VethRx:
    """veth's skb path (veth_xdp_rcv_skb): the skb carries __net_timestamp (REALTIME, taken in
    NAPI poll); ``xdp_frame=True`` models the xdp_frame path, where the wrapper's skb is NULL."""

    mem: KernelMemory
    clock: Phc
    variant: str = "fixed"
    xdp_frame: bool = False
    meta_valid: bool = True

    def __post_init__(self) -> None:
        self.wrapper = self.mem.new(VETH_XDP_BUFF, "veth_xdp_buff", kind="wrapper")
        self.skb = self.mem.new(SK_BUFF, "sk_buff", kind="skb")
        self._last = 0

    def receive(self, index: int, t_ns: int, length: int) -> int:
        stamp = self.clock.ns(t_ns)
        self.mem.write(self.skb, SK_BUFF, "tstamp", stamp)
        self.mem.write(self.wrapper, VETH_XDP_BUFF, "skb", 0 if self.xdp_frame else self.skb.base)
        self._last = 0 if self.xdp_frame else stamp
        return stamp

    def reference_timestamp(self) -> int:
        return self._last


@dataclass
class IceRx:
    mem: KernelMemory
    clock: ice.IceClock
    variant: str = "fixed"
    ring_size: int = 64
    meta_valid: bool = True

    def __post_init__(self) -> None:
        self.hw = ice.IceRxHw(self.mem, self.ring_size)
        self.wrapper = self.hw.wrapper
        self._ref = 0

    def receive(self, index: int, t_ns: int, length: int) -> int:
        desc = self.clock.descriptor(t_ns, pkt_len=length).encode()
        cached = self.clock.cached_phctime(t_ns)
        self.hw.receive(index, desc, cached)
        self._ref = ice.ice_ptp_rx_hwtstamp(cached, desc)
        return self.clock.hw_time_ns(t_ns)

    def reference_timestamp(self) -> int:
        return self._ref


@dataclass
class Mlx4Rx:
    mem: KernelMemory
    clock: mlx4.Mlx4Clock
    variant: str = "fixed"
    filter_all: bool = True
    meta_valid: bool = False

    def __post_init__(self) -> None:
        self.hw = mlx4.Mlx4RxHw(self.mem)
        self.wrapper = self.hw.wrapper
        self._ref = 0

    def receive(self, index: int, t_ns: int, length: int) -> int:
        tc = self.clock.timecounter(t_ns)
        self.hw.set_clock(tc)
        cycles = self.clock.cycles(t_ns)
        cqe = mlx4.make_cqe(cycles, byte_cnt=length) if self.filter_all else None
        self.hw.receive(index, cqe, zero_wrapper=self.variant == "fixed")
        self._ref = mlx4.mlx4_en_get_hwtstamp(tc, mlx4.get_cqe_ts(cqe)) if cqe else 0
        return self.clock.hw_time_ns(t_ns)

    def reference_timestamp(self) -> int:
        return self._ref


@dataclass
class BnxtRx:
    mem: KernelMemory
    clock: bnxt.BnxtClock
    variant: str = "fixed"
    ptp_all: bool = True
    meta_valid: bool = False

    def __post_init__(self) -> None:
        self.hw = bnxt.BnxtRxHw(self.mem)
        self.wrapper = self.hw.wrapper
        self._ref = 0

    def receive(self, index: int, t_ns: int, length: int) -> int:
        old, tc = self.clock.old_time(t_ns), self.clock.timecounter()
        self.hw.set_ptp(old, tc)
        cmp, ext = bnxt.make_completion(self.clock.hw_time_ns(t_ns), ptp=self.ptp_all, length=length)
        self.hw.receive(index, cmp, ext, reset=self.variant == "fixed")
        self._ref = bnxt.bnxt_rx_timestamp(old, tc, ext) if self.ptp_all else 0
        return self.clock.hw_time_ns(t_ns)

    def reference_timestamp(self) -> int:
        return self._ref


def rx_path(driver: str, mem: KernelMemory, *, variant: str = "fixed", stalls=(), clock_events=(),
            ppb: float = 0.0, seed: int = 0) -> RxPath:  # type: ignore[no-untyped-def]
    """The receive path of ``driver`` with its clock; ``stalls`` (true-time windows) stop the
    driver's refresh task; ``clock_events`` step or re-tune the PHC."""
    if driver == "veth":
        phc = Phc(REALTIME_2022, ppb, 0.0, seed, tuple(clock_events))
        return VethRx(mem, phc, variant)
    if driver == "ice":
        c = ice.IceClock.default(ppb=ppb, seed=seed)
        c = ice.IceClock(Phc(c.phc.offset_ns, ppb, 0.0, seed, tuple(clock_events)), c.refresher)
        for a, b in stalls:
            c = ice.IceClock(c.phc, c.refresher.with_stall(a, b))
        return IceRx(mem, c, variant)
    if driver == "mlx4":
        m = mlx4.Mlx4Clock.default(ppb=ppb)
        for a, b in stalls:
            m = mlx4.Mlx4Clock(m.freq_hz, m.start_ns, m.overflow.with_stall(a, b), m.ppb, m.cycles0)
        return Mlx4Rx(mem, m, variant)
    if driver == "bnxt":
        b_ = bnxt.BnxtClock.default(ppb=ppb, seed=seed)
        b_ = bnxt.BnxtClock(Phc(b_.phc.offset_ns, ppb, 0.0, seed, tuple(clock_events)), b_.aux)
        for a, b in stalls:
            b_ = bnxt.BnxtClock(b_.phc, b_.aux.with_stall(a, b))
        return BnxtRx(mem, b_, variant)
    raise ValueError(f"unknown driver {driver!r}")
