"""bnxt (Broadcom P5 / 57500): timestamps by a call into kernel code (RFC v2 13/14, 14/14).

Facts (kernel-facts §6.4):
- an Rx L2 completion is 32 bytes: ``struct rx_cmp`` (16) then ``struct rx_cmp_ext`` (16);
  ``rx_cmp_timestamp`` (__le32) at 12 of rx_cmp_ext is the low 32 bits of the 48-bit ns PHC,
  present when the itype (rx_cmp flags bits 15:12) is RX_CMP_FLAGS_ITYPE_PTP_W_TS (9 << 12);
- ``bnxt_get_rx_ts_p5`` (bnxt_ptp.c): ts = (old_time & BNXT_HI_TIMER_MASK) | pkt_ts, plus
  2**32 if pkt_ts < (old_time & BNXT_LO_TIMER_MASK): *forward only* — it assumes the packet is
  newer than old_time and less than 2**32 ns after it;
- ``old_time`` is refreshed by bnxt_ptp_ts_aux_work every second, set to the *previous*
  sample, so it lags now by 1-2 s; then ``timecounter_cyc2time`` under
  ``spin_lock_bh(&ptp->ptp_lock)`` with mult 1, shift 0, mask 48 bits (the PHC counts ns);
- ``struct bnxt_xdp_buff { struct xdp_buff xdp; struct rx_cmp_ext *rxcmp1; struct bnxt *bp;
  u64 r0; }`` (13/14): rxcmp1 56, bp 64, r0 72; filled only for PTP_W_TS completions;
- the unroll (14/14) is ``xdp_kfunc_call_preserving_r1`` to ``bnxt_xdp_rx_timestamp``.

``rfc-v2-posted`` (READING, UNCONFIRMED in kernel-facts §13): rxcmp1/bp are not reset per
packet, so a completion without a timestamp reports the previous PTP completion's stamp.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..bpf.patch import BpfPatch
from ..clocks import Phc, Refresher, Timecounter, cyclecounter_mask
from ..kernel.structs import layout
from ..kernel.symbols import KernelFunction, OpCost
from ..kernel.unroll_helpers import xdp_kfunc_call_preserving_r1
from .base import Driver, UnrollContext, wrapper_layout

BNXT_LO_TIMER_MASK = 0x0000FFFFFFFF   # bnxt_ptp.h
BNXT_HI_TIMER_MASK = 0xFFFF00000000
RX_CMP_FLAGS_ITYPES_MASK = 0xF000      # bnxt.h
RX_CMP_FLAGS_ITYPE_PTP_WO_TS = 8 << 12
RX_CMP_FLAGS_ITYPE_PTP_W_TS = 9 << 12
MASK48 = cyclecounter_mask(48)

RX_CMP = layout("rx_cmp", 16, "linux:drivers/net/ethernet/broadcom/bnxt/bnxt.h struct rx_cmp",
                len_flags_type=(0, 4), opaque=(4, 4), misc=(8, 4), rss_hash=(12, 4))
RX_CMP_EXT = layout("rx_cmp_ext", 16, "linux:drivers/net/ethernet/broadcom/bnxt/bnxt.h struct rx_cmp_ext",
                    flags2=(0, 4), meta_data=(4, 4), cfa_code_errors_v2=(8, 4), rx_cmp_timestamp=(12, 4))

# struct bnxt -> struct bnxt_ptp_cfg: what the helper reads.  MODEL layout: bp->ptp_cfg is
# represented by the ptp fields living in the region bp points to.
BNXT_PTP = layout("bnxt_ptp_cfg", 0x80, "drivers/net/ethernet/broadcom/bnxt/bnxt_ptp.h (MODEL offsets)",
                  ptp_lock=(0x00, 4), old_time=(0x08, 8), tc_cycle_last=(0x28, 8), tc_nsec=(0x30, 8),
                  tc_frac=(0x38, 8), cc_mask=(0x40, 8), cc_mult=(0x48, 4), cc_shift=(0x4C, 4))

BNXT_XDP_BUFF = wrapper_layout("bnxt_xdp_buff", 80, "RFC v2 13/14 drivers/net/ethernet/broadcom/bnxt/bnxt.c",
                               rxcmp1=(56, 8), bp=(64, 8), r0=(72, 8))


def get_rx_ts_p5(old_time: int, pkt_ts: int) -> int:
    """``bnxt_get_rx_ts_p5``: the 48-bit PHC value for a 32-bit packet stamp (forward only)."""
    ts = (old_time & BNXT_HI_TIMER_MASK) | (pkt_ts & BNXT_LO_TIMER_MASK)
    if (pkt_ts & BNXT_LO_TIMER_MASK) < (old_time & BNXT_LO_TIMER_MASK):
        ts += 1 << 32
    return ts


def bnxt_timecounter(start_ns: int = 0, cycles_now: int = 0) -> Timecounter:
    """The bnxt timecounter: mult 1, shift 0, mask 48 bits (the PHC already counts ns)."""
    return Timecounter.init(1, 0, MASK48, cycles_now, start_ns)


def bnxt_rx_timestamp(old_time: int, tc: Timecounter, rxcmp1: bytes | None) -> int:
    """The C path of the RFC helper: 0 without a completion, else cyc2time of the extension."""
    if rxcmp1 is None:
        return 0
    pkt_ts = int.from_bytes(rxcmp1[12:16], "little")
    return tc.cyc2time(get_rx_ts_p5(old_time, pkt_ts))


def make_completion(phc_ns: int, *, ptp: bool = True, length: int = 64) -> tuple[bytes, bytes]:
    """(rx_cmp, rx_cmp_ext) as the firmware writes them for a frame captured at ``phc_ns``."""
    itype = RX_CMP_FLAGS_ITYPE_PTP_W_TS if ptp else 0
    cmp = bytearray(16)
    cmp[0:4] = ((length << 16) | itype | 0x11).to_bytes(4, "little")
    ext = bytearray(16)
    if ptp:
        ext[12:16] = (phc_ns & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(cmp), bytes(ext)


def read_ptp(cctx, bp: int) -> tuple[int, Timecounter]:  # type: ignore[no-untyped-def]
    f = BNXT_PTP.fields
    old = cctx.read(bp + f["old_time"].offset, 8)
    tc = Timecounter(mult=cctx.read(bp + f["cc_mult"].offset, 4), shift=cctx.read(bp + f["cc_shift"].offset, 4),
                     mask=cctx.read(bp + f["cc_mask"].offset, 8),
                     cycle_last=cctx.read(bp + f["tc_cycle_last"].offset, 8),
                     nsec=cctx.read(bp + f["tc_nsec"].offset, 8), frac=cctx.read(bp + f["tc_frac"].offset, 8))
    return old, tc


def write_ptp(region, old_time: int, tc: Timecounter, lock: int = 0) -> None:  # type: ignore[no-untyped-def]
    f = BNXT_PTP.fields
    for name, value, size in (("ptp_lock", lock, 4), ("old_time", old_time, 8), ("tc_cycle_last", tc.cycle_last, 8),
                              ("tc_nsec", tc.nsec, 8), ("tc_frac", tc.frac, 8), ("cc_mask", tc.mask, 8),
                              ("cc_mult", tc.mult, 4), ("cc_shift", tc.shift, 4)):
        off = f[name].offset
        region.data[off:off + size] = value.to_bytes(size, "little")


class SpinlockHeld(RuntimeError):
    """spin_lock_bh found the lock taken (the aux worker holds it): it would spin."""


def bnxt_xdp_rx_timestamp(cctx, r1, r2, r3, r4, r5):  # type: ignore[no-untyped-def]
    """RFC v2 14/14 helper: ctx->r0 = the converted stamp (0 without a completion); return ctx."""
    rxcmp1 = cctx.read(r1 + BNXT_XDP_BUFF.offsetof("rxcmp1"), 8)
    bp = cctx.read(r1 + BNXT_XDP_BUFF.offsetof("bp"), 8)
    if not rxcmp1 or not bp:
        cctx.write(r1 + BNXT_XDP_BUFF.offsetof("r0"), 8, 0)
        return r1
    ext = cctx.read_bytes(rxcmp1, 16)
    if cctx.read(bp + BNXT_PTP.offsetof("ptp_lock"), 4):
        raise SpinlockHeld("ptp->ptp_lock is held (spin_lock_bh would spin)")
    old, tc = read_ptp(cctx, bp)
    cctx.write(r1 + BNXT_XDP_BUFF.offsetof("r0"), 8, bnxt_rx_timestamp(old, tc, ext))
    return r1


def _v1_rx_timestamp(cctx, r1, r2, r3, r4, r5):  # type: ignore[no-untyped-def]
    bnxt_xdp_rx_timestamp(cctx, r1, r2, r3, r4, r5)
    return cctx.read(r1 + BNXT_XDP_BUFF.offsetof("r0"), 8)


# Per call (MODEL op counts): wrapper loads, the completion word, old_time and the
# timecounter fields under spin_lock_bh, the extension and cyc2time (mult 1: no multiply).
COST_HELPER = OpCost(insns={"ldx": 9, "alu64": 12, "jmp": 5, "stx": 1},
                     touches={"wrapper": 3, "descriptor": 1, "clock": 6}, spin_lock_bh=1)
HELPER = KernelFunction("bnxt_xdp_rx_timestamp", bnxt_xdp_rx_timestamp, "RFC v2 14/14 helper", COST_HELPER)


class Bnxt(Driver):
    name = "bnxt"
    supports_rx_timestamp = True
    wrapper = BNXT_XDP_BUFF
    source = "drivers/net/ethernet/broadcom/bnxt (RFC v2 13/14, 14/14)"

    def unroll_rx_timestamp(self, ctx: UnrollContext, patch: BpfPatch) -> None:
        xdp_kfunc_call_preserving_r1(patch, BNXT_XDP_BUFF.offsetof("r0"), ctx.symbols.add(HELPER))

    def timestamp_routine(self, *, status: bool) -> KernelFunction | None:
        # No merged bnxt xdp_metadata_ops is known (kernel-facts §12.3): the generic default.
        return None if status else KernelFunction("bnxt_xdp_rx_timestamp_v1", _v1_rx_timestamp, cost=COST_HELPER)


class BnxtRxHw:
    """A bnxt Rx completion ring in simulated memory, the PTP state and the wrapper."""

    def __init__(self, mem, ncmp: int = 64) -> None:  # type: ignore[no-untyped-def]
        self.mem, self.ncmp = mem, ncmp
        self.cmps = mem.alloc("bnxt completion ring", 32 * ncmp, kind="descriptor")
        self.ptp = mem.new(BNXT_PTP, "bnxt_ptp_cfg", kind="clock")
        self.wrapper = mem.new(BNXT_XDP_BUFF, "bnxt_xdp_buff", kind="wrapper")

    def set_ptp(self, old_time: int, tc: Timecounter, lock: int = 0) -> None:
        write_ptp(self.ptp, old_time, tc, lock)

    def receive(self, index: int, cmp: bytes, ext: bytes, *, reset: bool = True) -> int:
        """Write completion ``index``; a PTP_W_TS completion sets rxcmp1/bp.  Without
        ``reset`` (posted) a non-PTP completion leaves the previous pointers in place."""
        slot = index % self.ncmp
        base = self.cmps.base + 32 * slot
        self.cmps.data[32 * slot:32 * slot + 16] = cmp
        self.cmps.data[32 * slot + 16:32 * slot + 32] = ext
        itype = int.from_bytes(cmp[0:4], "little") & RX_CMP_FLAGS_ITYPES_MASK
        if itype == RX_CMP_FLAGS_ITYPE_PTP_W_TS:
            self.mem.write(self.wrapper, BNXT_XDP_BUFF, "rxcmp1", base + 16)
            self.mem.write(self.wrapper, BNXT_XDP_BUFF, "bp", self.ptp.base)
        elif reset:
            self.mem.write(self.wrapper, BNXT_XDP_BUFF, "rxcmp1", 0)
            self.mem.write(self.wrapper, BNXT_XDP_BUFF, "bp", 0)
        return self.wrapper.base


@dataclass(frozen=True)
class BnxtClock:
    """The 48-bit ns PHC and ``ptp->old_time`` kept by ``bnxt_ptp_ts_aux_work``.

    Each aux run sets old_time to the *previous* sample and reads a new current_time, so at
    true time t old_time is the PHC read at the run before the last (kernel-facts §6.4); a
    clock step in RTC mode updates old_time at once.  The timecounter is an identity offset
    (mult 1, shift 0, cycle_last = ns): RTC mode.
    """

    phc: Phc
    aux: Refresher

    @classmethod
    def default(cls, *, offset_ns: int = 0x0100_0000_0000, ppb: float = 0.0, jitter_ns: float = 0.0,
                seed: int = 0) -> "BnxtClock":
        from ..clocks import Phc, Refresher
        from ..profiles import value
        return cls(Phc(offset_ns, ppb, jitter_ns, seed),
                   Refresher(value("bnxt", "old_time_period_ms") * 1_000_000))

    def hw_time_ns(self, t_ns: int) -> int:
        return self.phc.ns(t_ns) & MASK48

    def old_time(self, t_ns: int) -> int:
        last = self.aux.last_run(t_ns)
        if last is None:
            return 0
        before = self.aux.last_run(last - 1)
        steps = [e.at_ns for e in self.phc.events if e.step_ns and e.at_ns <= t_ns]
        sample = before if before is not None else last
        if steps and max(steps) > sample:
            sample = max(steps)     # adjphc in RTC mode: old_time = current_time at once
        return self.phc.ns(sample) & MASK48

    def timecounter(self) -> Timecounter:
        return Timecounter(1, 0, MASK48, cycle_last=0, nsec=0)

