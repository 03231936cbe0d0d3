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
  u64 r0; }`` (13/14 adds the bare wrapper, 14/14:43-46 its fields): rxcmp1 56, bp 64, r0 72; filled only for PTP_W_TS completions;
- the unroll (14/14) is ``xdp_kfunc_call_preserving_r1`` to ``bnxt_xdp_rx_timestamp``.

The wrapper's fields are added by 14/14 (14-bnxt-...patch:43-46); ``bnxt_rx_pkt`` sets
``rxcmp1``/``bp`` when the itype is PTP_W_TS or ``bp->ptp_all_rx_tstamp``, on P5 chips
(14/14:99-105), in ``bxbuf``, a local of ``bnxt_rx_pkt`` (13/14:49).

``rfc-v2-posted``: **the program runs on a copy.**  The posted call is ``bnxt_rx_xdp(bp, rxr,
cons, bxbuf.xdp, data, &len, event)`` (13/14:70, 14/14:107), and 6.1's ``bnxt_rx_xdp`` takes
``struct xdp_buff xdp`` *by value* (drivers/net/ethernet/broadcom/bnxt/bnxt_xdp.c@6.1.192:221-223)
and runs the program on ``&xdp`` (:246): the callee's 56-byte copy.  The helper's reads of
``ctx->rxcmp1`` (+56) and ``ctx->bp`` (+64) and its store to ``ctx->r0`` (+72) land in whatever
stack bytes follow the copy.  What those bytes hold is compiler- and call-site-dependent;
**MODEL**: they are ``Bnxt(copy_tail=...)`` (24 bytes, zero by default), so by default the
helper sees ``rxcmp1 == NULL`` and every packet gets no timestamp, and the reason column says
why.  ``fixed`` runs the program on the wrapper itself, as later kernels do since
``bnxt_rx_xdp`` takes a pointer ("bnxt_en: Change bnxt_rx_xdp function prototype",
<20240401035730.306790-5-pavan.chebbi@broadcom.com>).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from ..bpf import builders as B
from ..bpf import opcodes as op
from ..bpf.lanes import Lanes, LaneState, U64Array
from ..bpf.machine import CallContext, IntAccess
from ..bpf.patch import BpfPatch
from ..clocks import Phc, Refresher, Timecounter, cyclecounter_mask, timecounter_cyc2time, u64_rule
from ..kernel import errno_ret
from ..kernel.driver import Driver, RxSettings, UnrollContext, call_scalar_rest, wrapper_layout
from ..kernel.kfuncs import (XDP_RSS_L3_IPV4, XDP_RSS_L3_IPV6, XDP_RSS_L4, XDP_RSS_L4_ICMP, XDP_RSS_L4_TCP,
                             XDP_RSS_L4_UDP)
from ..kernel.structs import XDP_BUFF, KernelMemory, StructLayout, get_field, layout, put_field
from ..kernel.symbols import KernelFunction, OpCost
from ..kernel.uapi import ENODATA
from ..kernel.unroll_helpers import xdp_kfunc_call_preserving_r1
from ..profiles import value

U64 = np.uint64
XDP_BUFF_SIZE = XDP_BUFF.size       # 56: where the driver's wrapper fields start

BNXT_LO_TIMER_MASK = 0x0000FFFFFFFF   # bnxt_ptp.h@6.1.192:20
BNXT_HI_TIMER_MASK = 0xFFFF00000000   # bnxt_ptp.h@6.1.192:21
RX_CMP_FLAGS_ITYPES_MASK = 0xF000      # bnxt.h@6.1.192:166
RX_CMP_FLAGS_ITYPE_PTP_WO_TS = 8 << 12  # bnxt.h@6.1.192:173
RX_CMP_FLAGS_ITYPE_PTP_W_TS = 9 << 12   # bnxt.h@6.1.192:174
MASK48 = cyclecounter_mask(48)

# struct rx_cmp at bnxt.h@6.1.192:158, struct rx_cmp_ext at bnxt.h@6.1.192:206 (four __le32 each).
RX_CMP = layout("rx_cmp", 16, "linux:drivers/net/ethernet/broadcom/bnxt/bnxt.h struct rx_cmp",
                len_flags_type=(0, 4), opaque=(4, 4), misc=(8, 4), rss_hash=(12, 4))
RX_CMP_EXT = layout("rx_cmp_ext", 16, "linux:drivers/net/ethernet/broadcom/bnxt/bnxt.h struct rx_cmp_ext",
                    flags2=(0, 4), meta_data=(4, 4), cfa_code_errors_v2=(8, 4), rx_cmp_timestamp=(12, 4))

# struct bnxt -> struct bnxt_ptp_cfg: what the helper reads (drivers/net/ethernet/broadcom/bnxt/
# bnxt.h@6.1.192:1700 ``ptp_cfg``; bnxt_ptp.h@6.1.192:78; offsets measured with gcc by
# tools/kernel_layouts.py, data/kernel-layouts.json).  ``struct bnxt`` is stored only for its
# ``ptp_cfg`` pointer (the rest of its 6,456 bytes stay zero).
BNXT = layout("bnxt", 6456, "drivers/net/ethernet/broadcom/bnxt/bnxt.h@6.1.192:1700 (data/kernel-layouts.json)",
              ptp_cfg=(6072, 8))
BNXT_PTP = layout("bnxt_ptp_cfg", 368, "drivers/net/ethernet/broadcom/bnxt/bnxt_ptp.h@6.1.192:78 "
                  "(data/kernel-layouts.json)",
                  cc_mask=(200, 8), cc_mult=(208, 4), cc_shift=(212, 4), tc_cycle_last=(224, 8),
                  tc_nsec=(232, 8), tc_frac=(248, 8), ptp_lock=(272, 4), old_time=(296, 8))

BNXT_XDP_BUFF = wrapper_layout("bnxt_xdp_buff", 80, "RFC v2 13/14 + 14/14:43-46 drivers/net/ethernet/broadcom/bnxt/bnxt.c",
                               rxcmp1=(56, 8), bp=(64, 8), r0=(72, 8))


@u64_rule
def get_rx_ts_p5(old_time: Any, pkt_ts: Any) -> Any:
    """``bnxt_get_rx_ts_p5`` (drivers/net/ethernet/broadcom/bnxt/bnxt_ptp.c@6.1.192:729): the
    48-bit PHC value for a 32-bit packet stamp, ``(old_time & HI) | pkt_ts``, plus
    ``LO_MASK + 1`` when pkt_ts is below old_time's low half (forward only).  Ints or arrays."""
    pkt = pkt_ts & U64(BNXT_LO_TIMER_MASK)
    ts = (old_time & U64(BNXT_HI_TIMER_MASK)) | pkt
    return np.where(pkt < (old_time & U64(BNXT_LO_TIMER_MASK)), ts + U64(BNXT_LO_TIMER_MASK + 1), ts)


def bnxt_timecounter(start_ns: int = 0, cycles_now: int = 0) -> Timecounter:
    """The bnxt timecounter: mult 1, shift 0, mask 48 bits (the PHC already counts ns)."""
    return Timecounter.init(1, 0, MASK48, cycles_now, start_ns)


def bnxt_rx_timestamp(old_time: int, tc: Timecounter, rxcmp1: bytes | None) -> int:
    """The C path of the RFC helper: 0 without a completion, else cyc2time of the extension."""
    if rxcmp1 is None:
        return 0
    row = np.frombuffer(bytes(rxcmp1[:RX_CMP_EXT.size]), np.uint8).reshape(1, RX_CMP_EXT.size)
    return int(tc.cyc2time(get_rx_ts_p5(U64(old_time), get_field(row, RX_CMP_EXT, "rx_cmp_timestamp")))[0])


RX_CMP_TYPE_RX_L2 = 0x11    # CMP_TYPE_RX_L2_CMP = 17, bnxt.h@6.1.192:124 (type bits 5:0)


def make_completions(phc_ns: Any, *, ptp: bool = True, length: Any = 64) -> tuple[np.ndarray, np.ndarray]:
    """(rx_cmp rows, rx_cmp_ext rows) as the firmware writes them for frames captured at
    ``phc_ns``: length in bits 31:16, the itype (PTP_W_TS) in 15:12, the L2 type; the low 32
    bits of the PHC in ``rx_cmp_timestamp``."""
    n = max(np.size(phc_ns), np.size(length))
    cmp = np.zeros((n, RX_CMP.size), np.uint8)
    ext = np.zeros((n, RX_CMP_EXT.size), np.uint8)
    itype = RX_CMP_FLAGS_ITYPE_PTP_W_TS if ptp else 0
    put_field(cmp, RX_CMP, "len_flags_type", (np.asarray(length, np.uint64) << U64(16)) | U64(itype | RX_CMP_TYPE_RX_L2))
    if ptp:
        put_field(ext, RX_CMP_EXT, "rx_cmp_timestamp", np.asarray(phc_ns, np.uint64) & U64(BNXT_LO_TIMER_MASK))
    return cmp, ext


def make_completion(phc_ns: int, *, ptp: bool = True, length: int = 64) -> tuple[bytes, bytes]:
    """One completion (:func:`make_completions`) as bytes."""
    cmp, ext = make_completions(phc_ns & ((1 << 64) - 1), ptp=ptp, length=length)
    return cmp[0].tobytes(), ext[0].tobytes()


def read_ptp(cctx: IntAccess, bp: int) -> tuple[int, Timecounter]:
    f = BNXT_PTP.fields
    old = cctx.read(bp + f["old_time"].offset, 8)
    tc = Timecounter(mult=cctx.read(bp + f["cc_mult"].offset, 4), shift=cctx.read(bp + f["cc_shift"].offset, 4),
                     mask=cctx.read(bp + f["cc_mask"].offset, 8),
                     cycle_last=cctx.read(bp + f["tc_cycle_last"].offset, 8),
                     nsec=cctx.read(bp + f["tc_nsec"].offset, 8), frac=cctx.read(bp + f["tc_frac"].offset, 8))
    return old, tc


def write_ptp(data: bytearray | memoryview, old_time: int, tc: Timecounter, lock: int = 0) -> None:
    """Store a ``struct bnxt_ptp_cfg`` into ``data`` (a region's bytes, or a numpy row's
    ``ndarray.data``: one writer for the scalar and the lane receive paths)."""
    f = BNXT_PTP.fields
    for name, val, size in (("ptp_lock", lock, 4), ("old_time", old_time, 8), ("tc_cycle_last", tc.cycle_last, 8),
                              ("tc_nsec", tc.nsec, 8), ("tc_frac", tc.frac, 8), ("cc_mask", tc.mask, 8),
                              ("cc_mult", tc.mult, 4), ("cc_shift", tc.shift, 4)):
        off = f[name].offset
        data[off:off + size] = val.to_bytes(size, "little")


class SpinlockHeld(RuntimeError):
    """spin_lock_bh found the lock taken (the aux worker holds it): it would spin."""


def bnxt_xdp_rx_timestamp(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """RFC v2 14/14 ``bnxt_xdp_rx_timestamp`` (14-bnxt-...patch:38-64): ``ctx->r0 = 0`` without
    ``ctx->rxcmp1``; else ``bnxt_get_rx_ts_p5(ctx->bp, ...)`` (-ENODEV, so 0, when
    ``bp->ptp_cfg`` is NULL; old_time read with READ_ONCE on 64-bit, bnxt_ptp.h@6.1.192:130),
    then ``timecounter_cyc2time`` under ``spin_lock_bh(&ptp->ptp_lock)``; returns ctx."""
    r0 = r1 + BNXT_XDP_BUFF.offsetof("r0")
    rxcmp1 = cctx.read(r1 + BNXT_XDP_BUFF.offsetof("rxcmp1"), 8)
    if not rxcmp1:
        cctx.write(r0, 8, 0)
        return r1
    ext = cctx.read_bytes(rxcmp1, 16)
    bp = cctx.read(r1 + BNXT_XDP_BUFF.offsetof("bp"), 8)
    ptp = cctx.read(bp + BNXT.offsetof("ptp_cfg"), 8)
    if not ptp:
        cctx.write(r0, 8, 0)
        return r1
    if cctx.read(ptp + BNXT_PTP.offsetof("ptp_lock"), 4):
        raise SpinlockHeld("ptp->ptp_lock is held (spin_lock_bh would spin)")
    old, tc = read_ptp(cctx, ptp)
    cctx.write(r0, 8, bnxt_rx_timestamp(old, tc, ext))
    return r1


def _v1_rx_timestamp(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    bnxt_xdp_rx_timestamp(cctx, r1, r2, r3, r4, r5)
    return cctx.read(r1 + BNXT_XDP_BUFF.offsetof("r0"), 8)


def _v1_rx_timestamp_lanes(st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
    """:func:`_v1_rx_timestamp` for many lanes: the helper's lane form, then ctx->r0."""
    bnxt_xdp_rx_timestamp_lanes(st, lanes, args)
    return st.helper_read(lanes, args[0] + U64(BNXT_XDP_BUFF.offsetof("r0")), 8)[0]


# Per call (MODEL op counts): wrapper loads (rxcmp1, bp: 14/14:61-62), the completion word
# (:61), bp->ptp_cfg and old_time (bnxt_get_rx_ts_p5, bnxt_ptp.c@6.1.192:729-743) and the six
# timecounter fields under spin_lock_bh (:69-70), the extension and cyc2time (mult 1: no
# multiply): 11 loads, 8 of them in struct bnxt / bnxt_ptp_cfg ("clock"), plus the r0 store.
COST_HELPER = OpCost(insns={"ldx": 11, "alu64": 12, "jmp": 6, "stx": 1},
                     touches={"wrapper": 3, "descriptor": 1, "clock": 8}, spin_lock_bh=1)


def bnxt_xdp_rx_timestamp_lanes(st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
    """:func:`bnxt_xdp_rx_timestamp` for many lanes, on the same ``get_rx_ts_p5`` and
    ``timecounter_cyc2time``; lanes it cannot serve (a NULL or unmapped pointer, a held
    ptp_lock) go to the scalar helper, which answers or fails exactly as it does there."""
    r1 = args[0]
    r0_off = U64(BNXT_XDP_BUFF.offsetof("r0"))
    done = np.zeros(len(lanes), bool)
    rxcmp1, ok = st.helper_read(lanes, r1 + U64(BNXT_XDP_BUFF.offsetof("rxcmp1")), 8)
    null = np.nonzero(ok & (rxcmp1 == 0))[0]      # no PTP completion: ctx->r0 = 0 (14/14:56-58)
    done[null] = st.helper_write(lanes[null], r1[null] + r0_off, 8, np.zeros(len(null), U64))
    g = np.nonzero(ok & (rxcmp1 != 0))[0]
    if len(g):
        lg = lanes[g]
        pkt, ok_pkt = st.helper_read(lg, rxcmp1[g] + U64(RX_CMP_EXT.offsetof("rx_cmp_timestamp")), 4)
        bp, ok_bp = st.helper_read(lg, r1[g] + U64(BNXT_XDP_BUFF.offsetof("bp")), 8)
        ptp, ok_ptp = st.helper_read(lg, bp + U64(BNXT.offsetof("ptp_cfg")), 8)
        reads = [st.helper_read(lg, ptp + U64(BNXT_PTP.offsetof(f)), BNXT_PTP.sizeof(f))
                 for f in ("ptp_lock", "old_time", "cc_mult", "cc_shift", "cc_mask", "tc_cycle_last", "tc_nsec",
                           "tc_frac")]
        (lock, old, mult, shift, mask, last, nsec, frac) = (v for v, _ in reads)
        served = ok_pkt & ok_bp & ok_ptp & (ptp != 0) & np.logical_and.reduce([o for _, o in reads]) & (lock == 0)
        ns = timecounter_cyc2time(mult, shift, mask, last, nsec, frac, get_rx_ts_p5(old, pkt))
        s_ = np.nonzero(served)[0]
        served[s_] = st.helper_write(lg[s_], r1[g][s_] + r0_off, 8, ns[s_])
        done[g] = served
    # the rest (no ptp_cfg, a held lock, an unmapped address) run the scalar routine
    return call_scalar_rest(st, lanes, args, done, r1.copy())


HELPER = KernelFunction("bnxt_xdp_rx_timestamp", bnxt_xdp_rx_timestamp, "RFC v2 14/14 helper", COST_HELPER,
                        bnxt_xdp_rx_timestamp_lanes)


class Bnxt(Driver):
    """``copy_tail``: the 24 stack bytes that follow bnxt_rx_xdp's by-value copy of the
    xdp_buff in ``rfc-v2-posted`` (MODEL; zero by default)."""

    name = "bnxt"
    supports_rx_timestamp = True
    wrapper = BNXT_XDP_BUFF
    source = "drivers/net/ethernet/broadcom/bnxt (RFC v2 13/14, 14/14)"
    meta_valid = False      # bnxt_xdp_buff_init: xdp_prepare_buff(..., false) in the RFC's era

    def __init__(self, copy_tail: bytes = bytes(BNXT_XDP_BUFF.size - XDP_BUFF_SIZE)) -> None:
        if len(copy_tail) != BNXT_XDP_BUFF.size - XDP_BUFF_SIZE:
            raise ValueError(f"copy_tail must be {BNXT_XDP_BUFF.size - XDP_BUFF_SIZE} bytes, got {len(copy_tail)}")
        self.copy_tail = bytes(copy_tail)

    def ctx_tail(self, variant: str) -> bytes | None:
        """What the program finds past the 56-byte xdp_buff instead of the wrapper's fields:
        the stack bytes after the by-value copy (posted), or None (the wrapper itself)."""
        return self.copy_tail if variant == "rfc-v2-posted" else None

    def no_timestamp_note(self, variant: str) -> str | None:
        if variant != "rfc-v2-posted":
            return None
        return ("bnxt_rx_xdp runs the program on a by-value copy of the xdp_buff (13/14:70, 14/14:107): "
                "ctx->rxcmp1/bp are read past the copy (MODEL: Bnxt(copy_tail=...), zero by default)")

    def struct_pointers(self) -> Mapping[tuple[str, str], StructLayout]:
        return MappingProxyType({("bnxt_xdp_buff", "rxcmp1"): RX_CMP_EXT, ("bnxt_xdp_buff", "bp"): BNXT,
                                 ("bnxt", "ptp_cfg"): BNXT_PTP})

    def clock(self, settings: RxSettings) -> "BnxtClock":
        b = BnxtClock.default(ppb=settings.ppb)
        aux = b.aux
        for lo, hi in settings.stalls:
            aux = aux.with_stall(lo, hi)
        return BnxtClock(Phc(b.phc.offset_ns, settings.ppb, events=tuple(settings.clock_events)), aux)

    def rx_path(self, mem: KernelMemory, settings: RxSettings) -> "BnxtRx":
        return BnxtRx(mem, self.clock(settings), settings.variant, copy_tail=self.ctx_tail(settings.variant))

    def lane_rx(self, settings: RxSettings) -> "BnxtLaneRx":
        return BnxtLaneRx(self.clock(settings), copy_tail=self.ctx_tail(settings.variant))

    def unroll_rx_timestamp(self, ctx: UnrollContext, patch: BpfPatch) -> None:
        xdp_kfunc_call_preserving_r1(patch, BNXT_XDP_BUFF.offsetof("r0"), ctx.symbols.add(HELPER))

    def timestamp_routine(self, *, status: bool) -> KernelFunction | None:
        # No merged bnxt xdp_metadata_ops is known (kernel-facts §12.3): the generic default.
        return None if status else KernelFunction("bnxt_xdp_rx_timestamp_v1", _v1_rx_timestamp, cost=COST_HELPER,
                                                                  lanes=_v1_rx_timestamp_lanes)


class BnxtRxHw:
    """A bnxt Rx completion ring in simulated memory, ``struct bnxt`` with its ``ptp_cfg``,
    the PTP state and the wrapper."""

    def __init__(self, mem: KernelMemory, ncmp: int = 64) -> None:
        self.mem, self.ncmp = mem, ncmp
        self.cmps = mem.alloc("bnxt completion ring", 32 * ncmp, kind="descriptor")
        self.ptp = mem.new(BNXT_PTP, "bnxt_ptp_cfg", kind="clock")
        self.bp = mem.new(BNXT, "bnxt", kind="clock")
        mem.write(self.bp, BNXT, "ptp_cfg", self.ptp.base)
        self.wrapper = mem.new(BNXT_XDP_BUFF, "bnxt_xdp_buff", kind="wrapper")

    def set_ptp(self, old_time: int, tc: Timecounter, lock: int = 0) -> None:
        write_ptp(self.ptp.data, old_time, tc, lock)

    def receive(self, index: int, cmp: bytes, ext: bytes, *, copy_tail: bytes | None = None) -> int:
        """Write completion ``index`` and fill the wrapper as bnxt_rx_pkt does: a PTP_W_TS
        completion sets rxcmp1/bp, any other clears them.  ``copy_tail`` (posted): the
        program runs on bnxt_rx_xdp's by-value copy of the xdp_buff, so what it sees past
        byte 56 are those stack bytes, not rxcmp1/bp (see the module's docstring)."""
        slot = index % self.ncmp
        base = self.cmps.base + 32 * slot
        self.cmps.data[32 * slot:32 * slot + 16] = cmp
        self.cmps.data[32 * slot + 16:32 * slot + 32] = ext
        if copy_tail is not None:
            self.wrapper.data[XDP_BUFF_SIZE:XDP_BUFF_SIZE + len(copy_tail)] = copy_tail
            return self.wrapper.base
        itype = int.from_bytes(cmp[0:4], "little") & RX_CMP_FLAGS_ITYPES_MASK
        ptp = itype == RX_CMP_FLAGS_ITYPE_PTP_W_TS
        self.mem.write(self.wrapper, BNXT_XDP_BUFF, "rxcmp1", base + 16 if ptp else 0)
        self.mem.write(self.wrapper, BNXT_XDP_BUFF, "bp", self.bp.base if ptp else 0)
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
        return cls(Phc(offset_ns, ppb, jitter_ns, seed),
                   Refresher(value("bnxt", "old_time_period_ms") * 1_000_000))

    def hw_time_ns(self, t_ns: int) -> int:
        return self.phc.ns(t_ns) & MASK48

    def sample_instants(self, t: np.ndarray) -> np.ndarray:
        """When the ``old_time`` in force at each true time t was sampled (-1: never set):
        each aux run stores the *previous* sample, so it is the run before the last one (the
        last one for the very first run); a PHC step in RTC mode sets old_time at once."""
        t = np.asarray(t, np.int64)
        last = self.aux.last_runs(t)
        before = self.aux.last_runs(np.maximum(last - 1, -1))
        sample = np.where(last < 0, -1, np.where(before >= 0, before, last))
        for e in self.phc.events:
            if e.step_ns:
                sample = np.where((last >= 0) & (t >= e.at_ns) & (sample < e.at_ns), e.at_ns, sample)
        return sample

    def old_times(self, t: np.ndarray) -> np.ndarray:
        """``ptp->old_time`` at each true time t (0 before the first aux run)."""
        at = self.sample_instants(t)
        out = np.zeros(len(at), np.uint64)
        have = at >= 0
        out[have] = self.phc.ns_array(at[have]) & U64(MASK48)
        return out

    def old_time(self, t_ns: int) -> int:
        return int(self.old_times(np.array([t_ns], np.int64))[0])

    def timecounter(self) -> Timecounter:
        return Timecounter(1, 0, MASK48, cycle_last=0, nsec=0)



# ------------------------------------------------------------------------- receive paths
@dataclass
class BnxtRx:
    """bnxt's receive step on the scalar machine: the completion from the PHC, the PTP state
    (old_time, timecounter), the wrapper as bnxt_rx_pkt fills it."""

    mem: KernelMemory
    clock: BnxtClock
    variant: str = "fixed"
    ptp_all: bool = True
    copy_tail: bytes | None = None

    def __post_init__(self) -> None:
        self.hw = BnxtRxHw(self.mem)
        self.wrapper = self.hw.wrapper
        self._ref = 0

    def receive(self, index: int, t_ns: int, length: int) -> int:
        old, tc = self.clock.old_time(t_ns), self.clock.timecounter()
        self.hw.set_ptp(old, tc)
        cmp, ext = make_completion(self.clock.hw_time_ns(t_ns), ptp=self.ptp_all, length=length)
        self.hw.receive(index, cmp, ext, copy_tail=self.copy_tail)
        self._ref = bnxt_rx_timestamp(old, tc, ext) if self.ptp_all else 0
        return self.clock.hw_time_ns(t_ns)

    def reference_timestamp(self) -> int:
        return self._ref


@dataclass
class BnxtLaneRx:
    """bnxt's receive step for many packets: the same completion encoder, ``old_time`` and
    ``get_rx_ts_p5`` as :class:`BnxtRx`; the PTP state is stored once per distinct old_time."""

    clock: BnxtClock
    ptp_all: bool = True
    copy_tail: bytes | None = None

    def receive_lanes(self, q: Any, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hw = self.clock.phc.ns_array(t) & U64(MASK48)
        old = self.clock.old_times(t)
        uniq, row = np.unique(old, return_inverse=True)
        tc = self.clock.timecounter()
        ptp = np.zeros((len(uniq), BNXT_PTP.size), np.uint8)
        for k, v in enumerate(uniq):
            write_ptp(ptp[k].data, int(v), tc)
        p = q.driver_region("bnxt_ptp_cfg", "clock", BNXT_PTP.size, ptp, row=row.reshape(-1).astype(np.int64),
                            writable=False)
        bnxt = np.zeros((1, BNXT.size), np.uint8)
        put_field(bnxt, BNXT, "ptp_cfg", p.base)
        b = q.driver_region("bnxt", "clock", BNXT.size, bnxt, row=np.zeros(len(t), np.int64), writable=False)
        cmp, ext = make_completions(hw, ptp=self.ptp_all, length=q.frame_len)
        e = q.driver_region("rx_cmp_ext", "descriptor", RX_CMP_EXT.size, ext)
        ref = tc.cyc2time(get_rx_ts_p5(old, get_field(ext, RX_CMP_EXT, "rx_cmp_timestamp"))) if self.ptp_all \
            else np.zeros(len(t), np.uint64)
        if self.copy_tail is not None:     # posted: the program sees bnxt_rx_xdp's copy
            q.wrapper.data[:, XDP_BUFF_SIZE:XDP_BUFF_SIZE + len(self.copy_tail)] = \
                np.frombuffer(self.copy_tail, np.uint8)
            return hw, ref
        put_field(q.wrapper.data, BNXT_XDP_BUFF, "rxcmp1", e.base if self.ptp_all else 0)
        put_field(q.wrapper.data, BNXT_XDP_BUFF, "bp", b.base if self.ptp_all else 0)
        return hw, ref


# =================================================================== metadata fields (issue 16)
# bnxt_xdp_rx_hash ([D73] bnxt_xdp.c 492-547; kernel-facts-fields §2.4): the only bnxt op, first
# seen in [D72] (7.2) and absent in [D612]: the release that added it is UNCONFIRMED, modelled as 7.2.
#   *hash = le32 rx_cmp_rss_hash (@12 of struct rx_cmp); -ENODATA unless RX_CMP_FLAGS_RSS_VALID
#   (bit 10 of rx_cmp_len_flags_type, bnxt.h@6.1.192:163); no rxcmp1 -> XDP_RSS_TYPE_L2; for an
#   L2 completion: L3 = IPv6 if rx_cmp_flags2 & RX_CMP_FLAGS2_IP_TYPE (bit 8, [D73] bnxt.h 317)
#   else IPv4, plus L4|TCP / L4|UDP / L4|ICMP by the itype (bits 15:12: TCP 2, UDP 3,
#   bnxt.h@6.1.192:169-170; ICMP 7, [D73] bnxt.h 237).
# MODEL: 7.x's wrapper holds rxcmp and rxcmp1; ours (RFC v2 13/14) only rxcmp1, so the routine
# finds the rx_cmp half 16 bytes before it (the two halves of an L2 completion are consecutive
# ring entries; a ring-page wrap between them is not modelled).  So a NULL rxcmp1 also means no
# rx_cmp: the routine returns -ENODATA (the kernel's `!rxcmp` rule), and the kernel's "no rxcmp1
# -> XDP_RSS_TYPE_L2" branch is kept only in :func:`bnxt_rss_type` (``has_rxcmp1`` = 0).  Frames that carry a timestamp
# have itype PTP_W_TS, so their hash type is L3 only: what the op reports for them.
RX_CMP_FLAGS_RSS_VALID = 1 << 10
RX_CMP_FLAGS_ITYPE_TCP = 2 << 12
RX_CMP_FLAGS_ITYPE_UDP = 3 << 12
RX_CMP_FLAGS_ITYPE_ICMP = 7 << 12
RX_CMP_FLAGS2_IP_TYPE = 1 << 8
BNXT_MERGED_OPS = MappingProxyType({"rx_hash": (7, 2)})
ENODATA_U64 = U64(errno_ret(ENODATA))  # -ENODATA as a u64 register value


def bnxt_rss_type(has_rxcmp1: Any, len_flags_type: Any, flags2: Any) -> Any:
    """The type derivation of ``bnxt_xdp_rx_hash`` for an L2 completion.  Ints or arrays in,
    uint64 arrays out."""
    has, lft, f2 = (np.atleast_1d(np.asarray(a)).astype(np.uint64) for a in (has_rxcmp1, len_flags_type, flags2))
    l3 = np.where(f2 & U64(RX_CMP_FLAGS2_IP_TYPE), U64(XDP_RSS_L3_IPV6), U64(XDP_RSS_L3_IPV4))
    itype = lft & U64(RX_CMP_FLAGS_ITYPES_MASK)
    l4 = np.select([itype == U64(RX_CMP_FLAGS_ITYPE_TCP), itype == U64(RX_CMP_FLAGS_ITYPE_UDP),
                    itype == U64(RX_CMP_FLAGS_ITYPE_ICMP)],
                   [U64(XDP_RSS_L4 | XDP_RSS_L4_TCP), U64(XDP_RSS_L4 | XDP_RSS_L4_UDP),
                    U64(XDP_RSS_L4 | XDP_RSS_L4_ICMP)], U64(0))
    return np.where(has != 0, l3 | l4, U64(0))


def _xmo_rx_hash(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """bnxt_xdp_rx_hash (7.2+), reading rx_cmp at rxcmp1 - 16 (MODEL, see above)."""
    rxcmp1 = cctx.read(r1 + BNXT_XDP_BUFF.offsetof("rxcmp1"), 8)
    if not rxcmp1:
        return int(ENODATA_U64)
    lft = cctx.read(rxcmp1 - 16 + RX_CMP.offsetof("len_flags_type"), 4)
    if not lft & RX_CMP_FLAGS_RSS_VALID:
        return int(ENODATA_U64)
    cctx.write(r2, 4, cctx.read(rxcmp1 - 16 + RX_CMP.offsetof("rss_hash"), 4))
    cctx.write(r3, 4, int(bnxt_rss_type(1, lft, cctx.read(rxcmp1 + RX_CMP_EXT.offsetof("flags2"), 4))[0]))
    return 0


def _rx_hash_lanes(st: LaneState, lanes: Lanes, args: list[U64Array]) -> U64Array:
    """:func:`_xmo_rx_hash` for many lanes (the same fields and :func:`bnxt_rss_type`)."""
    c1, ok = st.helper_read(lanes, args[0] + U64(BNXT_XDP_BUFF.offsetof("rxcmp1")), 8)
    lft, ok1 = st.helper_read(lanes, c1 - U64(16) + U64(RX_CMP.offsetof("len_flags_type")), 4)
    h, ok2 = st.helper_read(lanes, c1 - U64(16) + U64(RX_CMP.offsetof("rss_hash")), 4)
    f2, ok3 = st.helper_read(lanes, c1 + U64(RX_CMP_EXT.offsetof("flags2")), 4)
    valid = (c1 != 0) & ((lft & U64(RX_CMP_FLAGS_RSS_VALID)) != 0)
    done = ok & ((c1 == 0) | (ok1 & ok2 & ok3))
    g = np.nonzero(done & valid)[0]
    done[g] = st.helper_write(lanes[g], args[1][g], 4, h[g])
    g = np.nonzero(done & valid)[0]
    done[g] = st.helper_write(lanes[g], args[2][g], 4, bnxt_rss_type(1, lft[g], f2[g]))
    return call_scalar_rest(st, lanes, args, done, np.where(valid, U64(0), ENODATA_U64))


# Loads: rxcmp1 (our wrapper's only completion pointer, MODEL above), rx_cmp's len_flags_type
# and rss_hash, rx_cmp_ext's flags2.
COST_HASH = OpCost(insns={"ldx": 4, "alu64": 8, "jmp": 5, "stx": 2}, touches={"wrapper": 1, "descriptor": 3, "stack": 2})


def bnxt_cmp_meta(flow: Any) -> tuple[int, int, int]:
    """(flags to OR into rx_cmp_len_flags_type, rx_cmp_rss_hash, rx_cmp_flags2 bits) the NIC
    writes for ``flow`` (MODEL: RSS valid for IP frames; the itype stays PTP_W_TS for
    timestamped frames, so only non-PTP completions would carry the L4 itype)."""
    valid = RX_CMP_FLAGS_RSS_VALID if flow.l3 else 0
    return valid, flow.rss_hash if flow.l3 else 0, RX_CMP_FLAGS2_IP_TYPE if flow.l3 == "ipv6" else 0


class BnxtFields(Bnxt):
    """bnxt with its merged rx_hash op (the registry's ``bnxt``)."""

    merged_ops = BNXT_MERGED_OPS

    def other_routine(self, kfunc: Any) -> KernelFunction | None:
        if kfunc.returns == "status" and kfunc.field == "rx_hash":
            return KernelFunction("bnxt_xdp_rx_hash", _xmo_rx_hash, cost=COST_HASH, lanes=_rx_hash_lanes)
        return None

    def rss_type_of(self, flow: Any) -> int | None:
        valid, _, f2 = bnxt_cmp_meta(flow)
        itype = RX_CMP_FLAGS_ITYPE_PTP_W_TS       # every simulated completion is timestamped
        return int(bnxt_rss_type(1, itype | valid, f2)[0]) if valid else None

    def unroll_field(self, ctx: UnrollContext, kfunc: Any, patch: BpfPatch) -> None:
        """RFC pattern, MODEL: ``rxcmp1 && RSS_VALID ? rx_cmp_rss_hash : 0`` (R0, R3, R4); no VLAN."""
        if kfunc.enum == "XDP_METADATA_KFUNC_RX_HASH_SUPPORTED":
            patch.append(B.BPF_MOV64_IMM(B.BPF_REG_0, 1))
        elif kfunc.enum == "XDP_METADATA_KFUNC_RX_HASH":
            patch.append(B.BPF_MOV64_IMM(B.BPF_REG_0, 0),
                         B.BPF_LDX_MEM(op.BPF_DW, B.BPF_REG_4, B.BPF_REG_1, BNXT_XDP_BUFF.offsetof("rxcmp1")))
            patch.append_jump(B.BPF_JMP_IMM(op.BPF_JEQ, B.BPF_REG_4, 0, 0), to="end")
            patch.append(B.BPF_LDX_MEM(op.BPF_W, B.BPF_REG_3, B.BPF_REG_4, RX_CMP.offsetof("len_flags_type") - 16),
                         B.BPF_ALU64_IMM(op.BPF_AND, B.BPF_REG_3, RX_CMP_FLAGS_RSS_VALID))
            patch.append_jump(B.BPF_JMP_IMM(op.BPF_JEQ, B.BPF_REG_3, 0, 0), to="end")
            patch.append(B.BPF_LDX_MEM(op.BPF_W, B.BPF_REG_0, B.BPF_REG_4, RX_CMP.offsetof("rss_hash") - 16))

    def receive_meta(self, rx: Any, index: int, flow: Any) -> None:
        slot = index % rx.hw.ncmp
        valid, h, f2 = bnxt_cmp_meta(flow)
        base = 32 * slot
        lft = int.from_bytes(rx.hw.cmps.data[base:base + 4], "little") | valid
        rx.hw.cmps.data[base:base + 4] = lft.to_bytes(4, "little")
        rx.hw.cmps.data[base + 12:base + 16] = h.to_bytes(4, "little")
        f = int.from_bytes(rx.hw.cmps.data[base + 16:base + 20], "little") | f2
        rx.hw.cmps.data[base + 16:base + 20] = f.to_bytes(4, "little")

    def receive_meta_lanes(self, queue: Any, flow: Any) -> None:
        """The lane path stores only the rx_cmp_ext half: store the whole 32-byte completion
        (rx_cmp, then rx_cmp_ext) and point the wrappers' rxcmp1 at its second half."""
        ext = next(r for r in queue.space.regions if r.name == "rx_cmp_ext")
        rxcmp1 = get_field(queue.wrapper.data, BNXT_XDP_BUFF, "rxcmp1")
        n = queue.n
        valid, h, f2 = bnxt_cmp_meta(flow)
        rows = np.zeros((n, 32), np.uint8)
        # a lane whose rxcmp1 points at its completion; not one that is NULL (no PTP_W_TS) or,
        # posted, the stack bytes after bnxt_rx_xdp's by-value copy (Bnxt.copy_tail)
        real = rxcmp1 == U64(ext.base)
        itype = np.where(real, U64(RX_CMP_FLAGS_ITYPE_PTP_W_TS), U64(0))
        put_field(rows[:, :16], RX_CMP, "len_flags_type",
                  (U64(queue.frame_len) << U64(16)) | itype | U64(RX_CMP_TYPE_RX_L2 | valid))
        put_field(rows[:, :16], RX_CMP, "rss_hash", h)
        rows[:, 16:] = ext.data[:n]
        put_field(rows[:, 16:], RX_CMP_EXT, "flags2", get_field(rows[:, 16:], RX_CMP_EXT, "flags2") | U64(f2))
        whole = queue.driver_region("bnxt L2 completion", "descriptor", 32, rows)
        put_field(queue.wrapper.data, BNXT_XDP_BUFF, "rxcmp1", np.where(real, U64(whole.base + 16), rxcmp1))
