"""ice (Intel E810): the one RFC driver that unrolls its timestamp (RFC v2 09/14, 10/14).

Facts (kernel-facts §6.2):
- RX flex descriptor, 32 bytes, write-back view ``ice_32b_rx_flex_desc_nic``
  (drivers/net/ethernet/intel/ice/ice_lan_tx_rx.h): ``time_stamp_low`` at byte 19 with bit 0 =
  ICE_PTP_TS_VALID, ``flex_ts.ts_high`` (le32) at byte 28 = the low 32 bits of the PHC's ns
  counter at capture; bits 7:1 of byte 19 are assumed sub-ns (UNCONFIRMED);
- the PHC is a 64-bit ns counter; each Rx ring keeps ``cached_phctime``, refreshed by
  ``ice_ptp_update_cached_phctime`` from ``ice_ptp_periodic_work`` every 500 ms;
- ``ice_ptp_extend_32b_ts(cached, in)`` (ice_ptp.c): delta = (in - low32(cached)) mod 2**32;
  above 0x7FFFFFFF it is in the past; window ±2**31 ns around the cache;
- ``struct ice_xdp_buff { struct xdp_buff xdp; struct ice_rx_ring *rx_ring;
  union ice_32b_rx_flex_desc *rx_desc; }`` (09/14 adds the bare wrapper, 10/14 its fields): rx_ring at 56, rx_desc at 64.

The unroll, "loosely based on ice_ptp_rx_hwtstamp" (10/14), uses only R0 and R3-R5 and no
stack.  ``fixed`` is what it meant (20 instructions, label jumps to the end of the patch).
``rfc-v2-posted`` reproduces the posted code's four defects (READING, kernel-facts §6.2),
each of which can also be switched on alone through ``Ice(defects=...)``:

- ``inverted_guards``: the three early exits are JNE where the comments say "if (rX == 0)
  return", so a valid ring / cache / valid bit *exits*;
- ``alu32_result``: the final add/sub are 32-bit ALU ops: the result is zero-extended from
  32 bits (effectively ``in_tstamp``);
- ``wide_loads``: 8-byte loads at descriptor offsets 19 and 28 (the second reads 4 bytes past
  the 32-byte descriptor, into the next ring entry or past the ring);
- ``unresolved_jumps``: the three guards are ``BPF_JMP_IMM(BPF_JNE, ..., S16_MAX)`` (BPF_K).
  RFC v2's ``bpf_patch_resolve_jmp`` (06/14:147-163) rewrites only BPF_X jumps and is called
  only from ``xdp_metadata_export_to_skb`` (06/14:372), so for a stand-alone rx_timestamp
  nothing resolves them and inside export_to_skb the BPF_X filter skips them: a taken guard
  jumps 32,768 instructions ahead.  The final ``BPF_JMP_A(4)`` (10/14:132) is written with
  its real offset and lands at the end of the patch.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from ..bpf import builders as B
from ..bpf import opcodes as op
from ..bpf.insn import Insn
from ..bpf.lanes import Lanes, LaneState, Mask, U64Array
from ..bpf.machine import CallContext, IntAccess
from ..bpf.patch import BpfPatch
from ..clocks import Phc, Refresher, u64_rule
from ..kernel import errno_ret
from ..kernel.driver import Driver, RxSettings, UnrollContext, call_scalar_rest, wrapper_layout
from ..kernel.kfuncs import KfuncSpec
from ..kernel.maps import PAGE_SIZE
from ..kernel.structs import KernelMemory, StructLayout, get_field, layout, put_field
from ..kernel.symbols import KernelFunction, OpCost
from ..kernel.uapi import ENODATA
from ..profiles import data_path, value

M32 = (1 << 32) - 1
M64 = (1 << 64) - 1
ICE_PTP_TS_VALID = 1 << 0          # drivers/net/ethernet/intel/ice/ice_ptp.h@6.1.192:221
ICE_RXDID_FLEX_NIC = 2             # ice_lan_tx_rx.h@6.1.192:352
DESC_SIZE = 32
STAT_DD_EOF = 0b11                 # status_error0: DD | EOF (ice_lan_tx_rx.h@6.1.192:405-406, bits 0 and 1)

# struct ice_32b_rx_flex_desc_nic (RxDID 2): ice_lan_tx_rx.h@6.1.192:273-302.
ICE_RX_FLEX_DESC = layout(
    "ice_32b_rx_flex_desc_nic", DESC_SIZE, "linux:drivers/net/ethernet/intel/ice/ice_lan_tx_rx.h",
    rxdid=(0, 1), mir_id_umb_cast=(1, 1), ptype_flex_flags0=(2, 2), pkt_len=(4, 2),
    hdr_len_sph_flex_flags1=(6, 2), status_error0=(8, 2), l2tag1=(10, 2), rss_hash=(12, 4),
    status_error1=(16, 2), flex_flags2=(18, 1), time_stamp_low=(19, 1), l2tag2_1st=(20, 2),
    l2tag2_2nd=(22, 2), flow_id=(24, 4), ts_high=(28, 4))

# struct ice_rx_ring: only cached_phctime is read by the unroll (drivers/net/ethernet/intel/ice/
# ice_txrx.h@6.1.192:260; offset and size measured with gcc on x86-64 defconfig + CONFIG_ICE by
# tools/kernel_layouts.py, data/kernel-layouts.json).
ICE_RX_RING = layout("ice_rx_ring", 320, "drivers/net/ethernet/intel/ice/ice_txrx.h@6.1.192:260 "
                     "(data/kernel-layouts.json)", cached_phctime=(304, 8))

ICE_XDP_BUFF = wrapper_layout("ice_xdp_buff", 72, "RFC v2 09/14 + 10/14 drivers/net/ethernet/intel/ice/ice_txrx.h",
                              rx_ring=(56, 8), rx_desc=(64, 8))

DEFECTS = ("inverted_guards", "alu32_result", "wide_loads", "unresolved_jumps")


@u64_rule
def extend_32b_ts(cached_phc_time: Any, in_tstamp: Any) -> Any:
    """``ice_ptp_extend_32b_ts`` (drivers/net/ethernet/intel/ice/ice_ptp.c@6.1.192:531): a
    32-bit ns stamp made 64-bit around the cached PHC time; a delta above U32_MAX / 2 means
    the stamp is in the past.  Ints or arrays."""
    lo = cached_phc_time & np.uint64(M32)
    delta = (in_tstamp - lo) & np.uint64(M32)
    back = (lo - in_tstamp) & np.uint64(M32)
    return np.where(delta > np.uint64(M32 // 2), cached_phc_time - back, cached_phc_time + delta)


@u64_rule
def rx_hwtstamp(cached_phctime: Any, time_stamp_low: Any, ts_high: Any) -> Any:
    """The Rx C path's rule (``ice_ptp_rx_hwtstamp``, ice_ptp.c@6.1.192:2170): 0 unless the
    descriptor's valid bit is set and the ring has a cached PHC time, else the extended stamp.
    Ints or arrays."""
    valid = (time_stamp_low & np.uint64(ICE_PTP_TS_VALID)) != 0
    return np.where(valid & (cached_phctime != 0), extend_32b_ts(cached_phctime, ts_high & np.uint64(M32)),
                    np.uint64(0))


def ice_ptp_rx_hwtstamp(cached_phctime: int, desc: bytes) -> int:
    """``ice_ptp_rx_hwtstamp`` on one descriptor's bytes (v5.15-v6.2 naming)."""
    if len(desc) < DESC_SIZE:
        raise ValueError(f"an ice descriptor is {DESC_SIZE} bytes, got {len(desc)}")
    row = np.frombuffer(bytes(desc[:DESC_SIZE]), np.uint8).reshape(1, DESC_SIZE)
    return int(rx_hwtstamp(np.uint64(cached_phctime & M64), get_field(row, ICE_RX_FLEX_DESC, "time_stamp_low"),
                           get_field(row, ICE_RX_FLEX_DESC, "ts_high"))[0])


def encode_descriptors(pkt_len: Any, phc_ns: Any, *, valid: Any = True, rss_hash: Any = 0, ptype: Any = 0,
                       subns: Any = 0) -> np.ndarray:
    """Write-back flex descriptors (``ice_32b_rx_flex_desc_nic``) as the hardware writes them
    for frames captured at PHC times ``phc_ns``: an ``(n, 32)`` uint8 array (ints broadcast)."""
    n = max(np.size(x) for x in (pkt_len, phc_ns, valid, rss_hash, ptype, subns))
    rows = np.zeros((n, DESC_SIZE), np.uint8)
    u = np.uint64
    put_field(rows, ICE_RX_FLEX_DESC, "rxdid", ICE_RXDID_FLEX_NIC)
    put_field(rows, ICE_RX_FLEX_DESC, "ptype_flex_flags0", np.asarray(ptype, np.uint64) & u(0x3FF))
    put_field(rows, ICE_RX_FLEX_DESC, "pkt_len", np.asarray(pkt_len, np.uint64) & u(0x3FFF))
    put_field(rows, ICE_RX_FLEX_DESC, "status_error0", STAT_DD_EOF)
    put_field(rows, ICE_RX_FLEX_DESC, "rss_hash", np.asarray(rss_hash, np.uint64) & u(M32))
    low = ((np.asarray(subns, np.uint64) & u(0x7F)) << u(1)) | np.where(np.asarray(valid, bool), u(ICE_PTP_TS_VALID), u(0))
    put_field(rows, ICE_RX_FLEX_DESC, "time_stamp_low", low)
    put_field(rows, ICE_RX_FLEX_DESC, "ts_high", np.asarray(phc_ns, np.uint64) & u(M32))
    return rows


@dataclass(frozen=True)
class RxDescriptor:
    """What the hardware writes back for one received frame."""

    pkt_len: int
    phc_ns: int            # PHC time at capture (full 64-bit ns)
    valid: bool = True     # timestamp valid (ring has HWTSTAMP_FILTER_ALL)
    rss_hash: int = 0
    ptype: int = 0
    subns: int = 0         # bits 7:1 of time_stamp_low (UNCONFIRMED meaning)

    def encode(self) -> bytes:
        return encode_descriptors(self.pkt_len, self.phc_ns & M64, valid=self.valid, rss_hash=self.rss_hash,
                                  ptype=self.ptype, subns=self.subns)[0].tobytes()


# The C routine does what the unroll does (MODEL op counts: the 16 instructions the unroll
# executes on its common path; the past branch is the same length).
COST_TS = OpCost(insns={"alu64": 4, "alu": 2, "ldx": 5, "jmp": 5}, touches={"wrapper": 2, "ring": 1, "descriptor": 2})
COST_XMO = OpCost(insns={"alu64": 7, "alu": 4, "ldx": 5, "jmp": 6, "stx": 1},
                  touches={"wrapper": 2, "ring": 1, "descriptor": 2, "stack": 1})


class Ice(Driver):
    name = "ice"
    supports_rx_timestamp = True
    wrapper = ICE_XDP_BUFF
    source = "drivers/net/ethernet/intel/ice (RFC v2 09/14, 10/14)"
    meta_valid = True

    def struct_pointers(self) -> Mapping[tuple[str, str], StructLayout]:
        return MappingProxyType({("ice_xdp_buff", "rx_ring"): ICE_RX_RING,
                                 ("ice_xdp_buff", "rx_desc"): ICE_RX_FLEX_DESC})

    def clock(self, settings: RxSettings) -> "IceClock":
        c = IceClock.default(ppb=settings.ppb)
        refresher = c.refresher
        for a, b in settings.stalls:
            refresher = refresher.with_stall(a, b)
        return IceClock(Phc(c.phc.offset_ns, settings.ppb, events=tuple(settings.clock_events)),
                        refresher)

    def rx_path(self, mem: KernelMemory, settings: RxSettings) -> "IceRx":
        return IceRx(mem, self.clock(settings), settings.variant)

    def lane_rx(self, settings: RxSettings) -> "IceLaneRx":
        return IceLaneRx(self.clock(settings))

    def __init__(self, defects: tuple[str, ...] | None = None) -> None:
        for d in defects or ():
            if d not in DEFECTS:
                raise ValueError(f"unknown ice defect {d!r}; known: {', '.join(DEFECTS)}")
        self.defects = defects

    def active_defects(self, variant: str) -> frozenset[str]:
        if self.defects is not None:
            return frozenset(self.defects)
        return frozenset(DEFECTS) if variant == "rfc-v2-posted" else frozenset()

    def unroll_rx_timestamp(self, ctx: UnrollContext, patch: BpfPatch) -> None:
        emit_rx_timestamp(patch, self.active_defects(ctx.variant))

    def timestamp_routine(self, *, status: bool) -> KernelFunction:
        if status:
            return KernelFunction("ice_xdp_rx_hw_ts", _xmo_rx_timestamp, cost=COST_XMO)
        return KernelFunction("ice_xdp_rx_timestamp", _v1_rx_timestamp, cost=COST_TS, lanes=_v1_rx_timestamp_lanes)


def emit_rx_timestamp(patch: BpfPatch, defects: frozenset[str]) -> None:
    """Append the rx_timestamp unroll: 20 instructions, R0 and R3-R5, no stack, in the order
    and arrangement of 10/14 (10-ice-support-rx-timestamp-metadata-for-xdp.patch:88-141).

    ``fixed`` differs from the posted listing only by the four defects, each switchable:
    ``inverted_guards`` (JNE where the comments say "if (rX == 0) return"; :94, :100, :112),
    ``unresolved_jumps`` (the three guards keep their S16_MAX placeholder; the final
    ``BPF_JMP_A(4)`` of :132 is a hand-written offset to the end and is right either way),
    ``wide_loads`` (BPF_DW at descriptor offsets 19 and 28; :107, :116), ``alu32_result``
    (the final add/sub are 32-bit; :131, :141)."""
    r0, r3, r4, r5 = B.BPF_REG_0, B.BPF_REG_3, B.BPF_REG_4, B.BPF_REG_5
    guard_op = op.BPF_JNE if "inverted_guards" in defects else op.BPF_JEQ

    def exit_if(reg: int) -> None:
        if "unresolved_jumps" in defects:
            patch.append(B.BPF_JMP_IMM(guard_op, reg, 0, op.S16_MAX))
        else:
            patch.append_jump(B.BPF_JMP_IMM(guard_op, reg, 0, 0), to="end")

    wide = "wide_loads" in defects
    alu = B.BPF_ALU32_REG if "alu32_result" in defects else B.BPF_ALU64_REG
    patch.append(B.BPF_MOV64_IMM(r0, 0),                                               # :88
                 B.BPF_LDX_MEM(op.BPF_DW, r5, B.BPF_REG_1, ICE_XDP_BUFF.offsetof("rx_ring")))   # :91
    exit_if(r5)                                                                         # :94
    patch.append(B.BPF_LDX_MEM(op.BPF_DW, r5, r5, ICE_RX_RING.offsetof("cached_phctime")))   # :97
    exit_if(r5)                                                                         # :100
    patch.append(B.BPF_LDX_MEM(op.BPF_DW, r4, B.BPF_REG_1, ICE_XDP_BUFF.offsetof("rx_desc")),   # :103
                 B.BPF_LDX_MEM(op.BPF_DW if wide else op.BPF_B, r3, r4,
                               ICE_RX_FLEX_DESC.offsetof("time_stamp_low")),            # :107
                 B.BPF_ALU64_IMM(op.BPF_AND, r3, ICE_PTP_TS_VALID))                     # :110
    exit_if(r3)                                                                         # :112
    patch.append(B.BPF_LDX_MEM(op.BPF_DW if wide else op.BPF_W, r3, r4, ICE_RX_FLEX_DESC.offsetof("ts_high")),  # :116
                 B.BPF_MOV32_REG(r4, r3),                       # :123 r4 = (u32)in_tstamp
                 B.BPF_ALU32_REG(op.BPF_SUB, r4, r5))           # :124 delta = (in - lo) mod 2^32
    patch.append_jump(B.BPF_JMP_IMM(op.BPF_JGT, r4, 0x7FFFFFFF, 0), to="past")     # :127 U32_MAX / 2
    patch.append(B.BPF_MOV64_REG(r0, r4),                       # :130 future: delta
                 alu(op.BPF_ADD, r0, r5))                       # :131        + cached
    patch.append_jump(B.BPF_JMP_A(0), to="end")                 # :132 BPF_JMP_A(4): the end
    patch.label("past")
    patch.append(B.BPF_MOV64_REG(r4, r5),                       # :136 cached
                 B.BPF_ALU32_REG(op.BPF_SUB, r4, r3),           # :137 delta' = (lo - in) mod 2^32
                 B.BPF_MOV64_REG(r0, r5),                       # :140
                 alu(op.BPF_SUB, r0, r4))                       # :141 past: cached - delta'


# ------------------------------------------------------------------- C routines (call designs)
def _read_state(cctx: IntAccess, wrapper: int) -> tuple[int, bytes] | None:
    ring = cctx.read(wrapper + ICE_XDP_BUFF.offsetof("rx_ring"), 8)
    desc = cctx.read(wrapper + ICE_XDP_BUFF.offsetof("rx_desc"), 8)
    if not ring or not desc:
        return None
    cached = cctx.read(ring + ICE_RX_RING.offsetof("cached_phctime"), 8)
    return cached, cctx.read_bytes(desc, DESC_SIZE)


def _v1_rx_timestamp(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    state = _read_state(cctx, r1)
    return ice_ptp_rx_hwtstamp(*state) if state else 0


def _xmo_rx_timestamp(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """ice_xdp_rx_hw_ts (merged, ~6.8): 0 maps to -ENODATA."""
    state = _read_state(cctx, r1)
    ts = ice_ptp_rx_hwtstamp(*state) if state else 0
    if not ts:
        return errno_ret(ENODATA)
    cctx.write(r2, 8, ts)
    return 0


def unroll_listing(defects: tuple[str, ...] = ()) -> tuple[Insn, ...]:
    """The rx_timestamp unroll on its own, labels resolved (for notebooks and tests)."""
    p = BpfPatch()
    emit_rx_timestamp(p, frozenset(defects))
    return p.insns()


def rx_ring_alloc_size(count: int) -> int:
    """Bytes of the Rx descriptor ring's DMA allocation: ``count`` 32-byte descriptors rounded up
    to a page (ice_setup_rx_ring, ice_txrx.c@6.1.192:496-499).  The rounding is why the posted
    unroll's 8-byte load at +28 of the last descriptor (4 bytes past it) stays inside the
    allocation for a 64-entry ring; with the default 2048 entries (ICE_DFLT_NUM_RX_DESC,
    ice.h@6.1.192:83) the ring is exactly 16 pages and that load leaves it (the kernel then reads
    whatever memory follows; xdplab, which maps only allocations, faults: MODEL)."""
    return -(-count * DESC_SIZE // PAGE_SIZE) * PAGE_SIZE


# What the lane engine stores after each lane's descriptor: the next ring entry or the page
# slack (:func:`rx_ring_alloc_size`), 8 bytes of it, zero (MODEL: the only reader past the
# descriptor is the posted unroll's 8-byte load at +28, which keeps the low 32 bits).
LANE_DESC_TAIL = 8


class IceRxHw:
    """An ice Rx queue in simulated memory: the descriptor ring, the ``ice_rx_ring`` with its
    ``cached_phctime``, and the per-packet ``ice_xdp_buff`` that ice_clean_rx_irq fills."""

    def __init__(self, mem: KernelMemory, ring_size: int = 64) -> None:
        self.mem, self.ring_size = mem, ring_size
        self.ring = mem.alloc("ice descriptor ring", rx_ring_alloc_size(ring_size), kind="descriptor",
                              align=PAGE_SIZE)
        self.rx_ring = mem.new(ICE_RX_RING, "ice_rx_ring", kind="ring")
        self.wrapper = mem.new(ICE_XDP_BUFF, "ice_xdp_buff", kind="wrapper")

    def receive(self, index: int, desc: bytes, cached_phctime: int) -> int:
        """Write descriptor ``index`` and the ring's cache; point the wrapper at them."""
        slot = index % self.ring_size
        self.ring.data[slot * DESC_SIZE:(slot + 1) * DESC_SIZE] = desc
        self.mem.write(self.rx_ring, ICE_RX_RING, "cached_phctime", cached_phctime)
        self.mem.write(self.wrapper, ICE_XDP_BUFF, "rx_ring", self.rx_ring.base)
        self.mem.write(self.wrapper, ICE_XDP_BUFF, "rx_desc", self.ring.base + slot * DESC_SIZE)
        return self.wrapper.base


@dataclass(frozen=True)
class IceClock:
    """The E810 PHC and the per-ring ``cached_phctime`` that ``ice_ptp_periodic_work``
    refreshes (every 500 ms, and right after settime/adjtime: kernel-facts §6.2).

    ``phc``: the PHC model (offset, drift, jitter, steps); ``refresher``: the periodic work,
    stalls included.  ``hw_time_ns(t)`` is the ideal: the PHC's 64-bit ns at capture.
    """

    phc: Phc
    refresher: Refresher

    @classmethod
    def default(cls, *, offset_ns: int = 1_700_000_000_000_000_000, ppb: float = 0.0,
                jitter_ns: float = 0.0, seed: int = 0) -> "IceClock":
        period = value("ice", "cached_phctime_period_ms") * 1_000_000
        return cls(Phc(offset_ns, ppb, jitter_ns, seed), Refresher(period))

    def hw_time_ns(self, t_ns: int) -> int:
        return self.phc.ns(t_ns) & M64

    def cache_instants(self, t: np.ndarray) -> np.ndarray:
        """When the ring's cache was last written before each true time t (-1: never): the
        last run of the periodic work, or a PHC step after it (settime/adjtime refresh the
        cache at once, kernel-facts §6.2)."""
        runs = self.refresher.last_runs(t)
        for e in self.phc.events:
            if e.step_ns:
                runs = np.where((t >= e.at_ns) & (runs < e.at_ns), e.at_ns, runs)
        return runs

    def cached_phctimes(self, t: np.ndarray) -> np.ndarray:
        """The ring's ``cached_phctime`` at each true time t (0 before the first refresh)."""
        at = self.cache_instants(np.asarray(t, np.int64))
        out = np.zeros(len(at), np.uint64)
        have = at >= 0
        out[have] = self.phc.ns_array(at[have])
        return out

    def cached_phctime(self, t_ns: int) -> int:
        """The ring's cache at true time t: the PHC read at the last refresh (0 before any)."""
        return int(self.cached_phctimes(np.array([t_ns], np.int64))[0])

    def descriptor(self, t_ns: int, pkt_len: int = 64, valid: bool = True) -> RxDescriptor:
        return RxDescriptor(pkt_len=pkt_len, phc_ns=self.hw_time_ns(t_ns), valid=valid)


# ------------------------------------------------------------------------- receive paths
@dataclass
class IceRx:
    """ice's receive step on the scalar machine: the hardware writes the flex descriptor from
    the PHC, the ring keeps its cache, ice_clean_rx_irq fills the wrapper."""

    mem: KernelMemory
    clock: IceClock
    variant: str = "fixed"
    ring_size: int = 64

    def __post_init__(self) -> None:
        self.hw = IceRxHw(self.mem, self.ring_size)
        self.wrapper = self.hw.wrapper
        self._ref = 0

    def receive(self, index: int, t_ns: int, length: int) -> int:
        desc = self.clock.descriptor(t_ns, pkt_len=length).encode()
        cached = self.clock.cached_phctime(t_ns)
        self.hw.receive(index, desc, cached)
        self._ref = ice_ptp_rx_hwtstamp(cached, desc)
        return self.clock.hw_time_ns(t_ns)

    def reference_timestamp(self) -> int:
        return self._ref


@dataclass
class IceLaneRx:
    """ice's receive step for many packets (the lane engine): the same descriptor encoder,
    ring cache and ``rx_hwtstamp`` rule as :class:`IceRx`; the ring is stored once per
    distinct cache value (read-only rows)."""

    clock: IceClock

    def receive_lanes(self, q: Any, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hw = self.clock.phc.ns_array(t)
        at = self.clock.cache_instants(t)
        uniq, row = np.unique(at, return_inverse=True)
        cached_u = np.zeros(len(uniq), np.uint64)
        cached_u[uniq >= 0] = self.clock.phc.ns_array(uniq[uniq >= 0])
        ring = np.zeros((len(uniq), ICE_RX_RING.size), np.uint8)
        put_field(ring, ICE_RX_RING, "cached_phctime", cached_u)
        r = q.driver_region("ice_rx_ring", "ring", ICE_RX_RING.size, ring, row=row.reshape(-1).astype(np.int64),
                            writable=False)
        desc = encode_descriptors(q.frame_len, hw)
        tail = np.zeros((len(desc), LANE_DESC_TAIL), np.uint8)
        d = q.driver_region("ice descriptor", "descriptor", DESC_SIZE + LANE_DESC_TAIL, np.hstack([desc, tail]))
        put_field(q.wrapper.data, ICE_XDP_BUFF, "rx_ring", r.base)
        put_field(q.wrapper.data, ICE_XDP_BUFF, "rx_desc", d.base)
        ref = rx_hwtstamp(cached_u[row.reshape(-1)], get_field(desc, ICE_RX_FLEX_DESC, "time_stamp_low"),
                          get_field(desc, ICE_RX_FLEX_DESC, "ts_high"))
        return hw, ref


# =================================================================== metadata fields (issue 16)
# rx_hash and rx_vlan_tag of the merged design (ice since 6.8: ice_xdp_md_ops, kernel-facts-fields
# §2.1, [D73] ice_txrx_lib.c 597-601), read from the flex descriptor's bytes:
# rss_hash @12 (le32, the NIC profile's alias of flex_meta0/1), ptype = ptype_flex_flags0 & 0x3FF
# (ICE_RX_FLEX_DESC_PTYPE_M, ice_lan_tx_rx.h@6.1.192:398), status_error0 bit 13 = L2TAG1P
# (ice_lan_tx_rx.h@6.1.192:418) with the stripped TCI in l2tag1 @10 (le16; wb layout
# ice_lan_tx_rx.h@6.1.192:234-262); rxdid must be ICE_RXDID_FLEX_NIC (ice_lan_tx_rx.h@6.1.192:352).
ICE_RX_FLEX_DESC_STATUS0_L2TAG1P = 1 << 13
ICE_RX_FLEX_DESC_STATUS1_L2TAG2P = 1 << 11       # [D73] ice_lan_tx_rx.h 373; ice_lan_tx_rx.h@6.1.192:428
ICE_RX_FLEX_DESC_PTYPE_M = 0x3FF
# struct ice_pkt_ctx { u64 cached_phctime; __be16 vlan_proto; } ([D612] ice_txrx.h 223-226): the
# ring's vlan_proto follows its cached time.  MODEL: placed right after our ring's cached_phctime.
ICE_RX_RING_CTX = layout("ice_rx_ring (pkt_ctx)", 320, "ice_txrx.h@6.1.192:260 + [D612] struct ice_pkt_ctx",
                         cached_phctime=(304, 8), vlan_proto=(312, 2))
ICE_MERGED_OPS = MappingProxyType({"rx_timestamp": (6, 8), "rx_hash": (6, 8), "rx_vlan_tag": (6, 8)})


def _load_ptype_table() -> tuple[int, ...]:
    """libie's ptype -> ``enum xdp_rss_hash_type`` (data/ice-ptype-table.txt: libie rx.c LUT
    expanded, [D73] drivers/net/ethernet/intel/libie/rx.c 17-34, 93-121; 1024 entries, unlisted = 0)."""
    table = [0] * 1024
    path = data_path("ice-ptype-table.txt")       # the repository's data/ or the wheel's copy
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0].isdigit():
            hashes = [p for p in parts if p.startswith("hash_type=")]
            table[int(parts[0])] = int(hashes[0].split("=")[1], 16) if hashes else 0
    return tuple(table)


ICE_PTYPE_HASH_TYPE = _load_ptype_table()
# The ptype the E800 parser gives each frame class (rows of the table above: outer IP, not
# fragmented, no tunnel).  MODEL: the hardware's classification of our frames.
ICE_PTYPE_OF = MappingProxyType({("", ""): 1, ("ipv4", ""): 23, ("ipv4", "udp"): 24, ("ipv4", "tcp"): 26,
                                 ("ipv4", "icmp"): 28, ("ipv6", ""): 89, ("ipv6", "udp"): 90,
                                 ("ipv6", "tcp"): 92, ("ipv6", "icmp"): 94})
ETH_P_8021Q_BE = 0x0081      # htons(ETH_P_8021Q) as the CPU reads it (little-endian)


def ice_ptype(flow: Any) -> int:
    return ICE_PTYPE_OF[(flow.l3, flow.l4 if flow.l3 else "")]


def ice_desc_meta(flow: Any) -> tuple[int, int, int, int]:
    """(rss_hash, ptype, status_error0 bits to set, l2tag1) the hardware writes for ``flow``."""
    tag = flow.reported_tag
    return (flow.rss_hash, ice_ptype(flow), ICE_RX_FLEX_DESC_STATUS0_L2TAG1P if tag[0] else 0, tag[1])


def _put_desc_meta(rows: np.ndarray, flow: Any) -> None:
    h, ptype, status, tci = ice_desc_meta(flow)
    put_field(rows, ICE_RX_FLEX_DESC, "rss_hash", h)
    flags0 = get_field(rows, ICE_RX_FLEX_DESC, "ptype_flex_flags0")
    put_field(rows, ICE_RX_FLEX_DESC, "ptype_flex_flags0", (flags0 & np.uint64(~0x3FF & 0xFFFF)) | np.uint64(ptype))
    put_field(rows, ICE_RX_FLEX_DESC, "status_error0", get_field(rows, ICE_RX_FLEX_DESC, "status_error0")
              | np.uint64(status))
    put_field(rows, ICE_RX_FLEX_DESC, "l2tag1", tci)


def _ring_vlan_proto(flow: Any) -> int:
    """``ice_set_rx_rings_vlan_proto(vsi, enable_stripping ? htons(ETH_P_8021Q) : 0)`` ([D73]
    ice_main.c 6333-6334): the ring's proto is set while C-tag stripping is on."""
    return ETH_P_8021Q_BE if flow.vlan_offload else 0


ICE_PTYPE_HASH_TYPE_NP = np.asarray(ICE_PTYPE_HASH_TYPE, np.uint64)
ENODATA_U64 = errno_ret(ENODATA)
U64 = np.uint64


def _u64s(*args: Any) -> list[np.ndarray]:
    return [np.atleast_1d(np.asarray(a)).astype(np.uint64) for a in args]


def rx_hash_rule(rxdid: Any, rss_hash: Any, ptype_flex_flags0: Any) -> tuple[np.ndarray, ...]:
    """``ice_xdp_rx_hash`` ([D73] ice_txrx_lib.c 542-546, 556-567) on the descriptor's fields:
    (return as u64, hash, rss_type).  rxdid != FLEX_NIC gives hash 0; hash 0 is -ENODATA;
    rss_type is written either way.  Ints or arrays in, uint64 arrays out."""
    rxdid, rss_hash, ptype_flex_flags0 = _u64s(rxdid, rss_hash, ptype_flex_flags0)
    h = np.where(rxdid == np.uint64(ICE_RXDID_FLEX_NIC), rss_hash, np.uint64(0))
    t = ICE_PTYPE_HASH_TYPE_NP[(ptype_flex_flags0 & np.uint64(ICE_RX_FLEX_DESC_PTYPE_M)).astype(np.int64)]
    return np.where(h != 0, np.uint64(0), np.uint64(ENODATA_U64)), h, t


def rx_vlan_tag_rule(ring_vlan_proto: Any, status_error0: Any, l2tag1: Any, status_error1: Any,
                     l2tag2_2nd: Any) -> tuple[np.ndarray, ...]:
    """``ice_xdp_rx_vlan_tag`` ([D73] ice_txrx_lib.c 578-595): (return as u64, proto as stored,
    tci).  No ring proto (stripping off) or a zero TCI is -ENODATA; the TCI is l2tag1 if
    L2TAG1P, else l2tag2_2nd if L2TAG2P (ice_get_vlan_tci, ice_txrx_lib.h 78-92).  Ints or
    arrays in, uint64 arrays out."""
    ring_vlan_proto, status_error0, l2tag1, status_error1, l2tag2_2nd = _u64s(
        ring_vlan_proto, status_error0, l2tag1, status_error1, l2tag2_2nd)
    tci = np.where(status_error0 & np.uint64(ICE_RX_FLEX_DESC_STATUS0_L2TAG1P), l2tag1,
                   np.where(status_error1 & np.uint64(ICE_RX_FLEX_DESC_STATUS1_L2TAG2P), l2tag2_2nd, np.uint64(0)))
    ok = (ring_vlan_proto != 0) & (tci != 0)
    return np.where(ok, np.uint64(0), np.uint64(ENODATA_U64)), ring_vlan_proto, tci


_DESC_FIELDS = ("rxdid", "rss_hash", "ptype_flex_flags0", "status_error0", "l2tag1", "status_error1", "l2tag2_2nd")


def _desc_fields(read: Callable[[int, int], int], desc: int) -> dict[str, int]:
    """The descriptor's fields the two ops read, through ``read(addr, size)``."""
    return {f: read(desc + ICE_RX_FLEX_DESC.offsetof(f), ICE_RX_FLEX_DESC.sizeof(f)) for f in _DESC_FIELDS}


def _xmo_rx_hash(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    d = _desc_fields(cctx.read, cctx.read(r1 + ICE_XDP_BUFF.offsetof("rx_desc"), 8))
    ret, h, t = (int(x[0]) for x in rx_hash_rule(d["rxdid"], d["rss_hash"], d["ptype_flex_flags0"]))
    cctx.write(r2, 4, h)
    cctx.write(r3, 4, t)
    return ret


def _xmo_rx_vlan_tag(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    d = _desc_fields(cctx.read, cctx.read(r1 + ICE_XDP_BUFF.offsetof("rx_desc"), 8))
    ring = cctx.read(r1 + ICE_XDP_BUFF.offsetof("rx_ring"), 8)
    proto = cctx.read(ring + ICE_RX_RING_CTX.offsetof("vlan_proto"), 2)
    ret, proto, tci = (int(x[0]) for x in rx_vlan_tag_rule(proto, d["status_error0"], d["l2tag1"],
                                                             d["status_error1"], d["l2tag2_2nd"]))
    cctx.write(r2, 2, proto)   # *vlan_proto (0 too), then, if it is set, *vlan_tci (0 too), each
    if proto:                  # before its -ENODATA test ([D73] ice_txrx_lib.c 578-595)
        cctx.write(r3, 2, tci)
    return ret


def _lane_reads(st: LaneState, lanes: Lanes, base: U64Array,
                fields: tuple[str, ...]) -> tuple[dict[str, U64Array], Mask]:
    """Vector reads of descriptor fields: ({field: values}, ok)."""
    ok = np.ones(len(lanes), bool)
    out = {}
    for f in fields:
        v, good = st.helper_read(lanes, base + U64(ICE_RX_FLEX_DESC.offsetof(f)), ICE_RX_FLEX_DESC.sizeof(f))
        out[f], ok = v, ok & good
    return out, ok


def _rx_hash_lanes(st: LaneState, lanes: Lanes, args: list[U64Array]) -> U64Array:
    """:func:`_xmo_rx_hash` for many lanes (the same rule); lanes it cannot serve run the
    scalar routine, which fails exactly as on the scalar machine."""
    desc, ok = st.helper_read(lanes, args[0] + U64(ICE_XDP_BUFF.offsetof("rx_desc")), 8)
    d, ok2 = _lane_reads(st, lanes, desc, ("rxdid", "rss_hash", "ptype_flex_flags0"))
    ret, h, t = rx_hash_rule(d["rxdid"], d["rss_hash"], d["ptype_flex_flags0"])
    g = np.nonzero(ok & ok2)[0]
    done = np.zeros(len(lanes), bool)
    done[g] = st.helper_write(lanes[g], args[1][g], 4, h[g])
    g = np.nonzero(done)[0]
    done[g] = st.helper_write(lanes[g], args[2][g], 4, t[g])
    return call_scalar_rest(st, lanes, args, done, ret.astype(U64))


def _rx_vlan_tag_lanes(st: LaneState, lanes: Lanes, args: list[U64Array]) -> U64Array:
    """:func:`_xmo_rx_vlan_tag` for many lanes (the same rule)."""
    desc, ok = st.helper_read(lanes, args[0] + U64(ICE_XDP_BUFF.offsetof("rx_desc")), 8)
    ring, ok1 = st.helper_read(lanes, args[0] + U64(ICE_XDP_BUFF.offsetof("rx_ring")), 8)
    proto, ok2 = st.helper_read(lanes, ring + U64(ICE_RX_RING_CTX.offsetof("vlan_proto")), 2)
    d, ok3 = _lane_reads(st, lanes, desc, ("status_error0", "l2tag1", "status_error1", "l2tag2_2nd"))
    ret, proto, tci = rx_vlan_tag_rule(proto, d["status_error0"], d["l2tag1"], d["status_error1"], d["l2tag2_2nd"])
    done = ok & ok1 & ok2 & ok3
    w = np.nonzero(done)[0]
    done[w] = st.helper_write(lanes[w], args[1][w], 2, proto[w])
    w = np.nonzero(done & (proto != 0))[0]
    done[w] = st.helper_write(lanes[w], args[2][w], 2, tci[w])
    return call_scalar_rest(st, lanes, args, done, ret.astype(U64))


def _stamp_lanes(st: LaneState, lanes: Lanes, r1: U64Array) -> tuple[U64Array, Mask]:
    """``ice_ptp_rx_hwtstamp`` as the C routines read it, for many lanes, on the same
    :func:`rx_hwtstamp` rule: (stamp, served); a NULL ring/descriptor or an unmapped address
    leaves a lane to the scalar routine."""
    ring, ok = st.helper_read(lanes, r1 + U64(ICE_XDP_BUFF.offsetof("rx_ring")), 8)
    desc, ok1 = st.helper_read(lanes, r1 + U64(ICE_XDP_BUFF.offsetof("rx_desc")), 8)
    cached, ok2 = st.helper_read(lanes, ring + U64(ICE_RX_RING.offsetof("cached_phctime")), 8)
    low, ok3 = st.helper_read(lanes, desc + U64(ICE_RX_FLEX_DESC.offsetof("time_stamp_low")), 1)
    high, ok4 = st.helper_read(lanes, desc + U64(ICE_RX_FLEX_DESC.offsetof("ts_high")), 4)
    return rx_hwtstamp(cached, low, high), ok & ok1 & ok2 & ok3 & ok4 & (ring != 0) & (desc != 0)


def _rx_hw_ts_lanes(st: LaneState, lanes: Lanes, args: list[U64Array]) -> U64Array:
    """``ice_xdp_rx_hw_ts`` (:func:`_xmo_rx_timestamp`) for many lanes."""
    ts, done = _stamp_lanes(st, lanes, args[0])
    w = np.nonzero(done & (ts != 0))[0]
    done[w] = st.helper_write(lanes[w], args[1][w], 8, ts[w])
    return call_scalar_rest(st, lanes, args, done, np.where(ts != 0, U64(0), U64(ENODATA_U64)))


def _v1_rx_timestamp_lanes(st: LaneState, lanes: Lanes, args: list[U64Array]) -> U64Array:
    """The call designs' by-value routine (:func:`_v1_rx_timestamp`) for many lanes."""
    ts, done = _stamp_lanes(st, lanes, args[0])
    return call_scalar_rest(st, lanes, args, done, ts)


# MODEL op counts from reading the routines.  rx_hash loads three descriptor fields: rxdid,
# rss_hash (ice_txrx_lib.c@6.1.192:82-86) and ptype_flex_flags0 for the type.
COST_HASH = OpCost(insns={"ldx": 4, "alu64": 6, "jmp": 3, "stx": 2}, touches={"wrapper": 1, "descriptor": 3, "stack": 2})
COST_VLAN = OpCost(insns={"ldx": 5, "alu64": 4, "jmp": 4, "stx": 2},
                   touches={"wrapper": 2, "ring": 1, "descriptor": 2, "stack": 2})


class IceFields(Ice):
    """ice with the merged design's rx_hash / rx_vlan_tag ops (the registry's ``ice``)."""

    merged_ops = ICE_MERGED_OPS

    def other_routine(self, kfunc: KfuncSpec) -> KernelFunction | None:
        if kfunc.field == "rx_hash":
            return KernelFunction("ice_xdp_rx_hash", _xmo_rx_hash, cost=COST_HASH, lanes=_rx_hash_lanes)
        if kfunc.field == "rx_vlan_tag":
            return KernelFunction("ice_xdp_rx_vlan_tag", _xmo_rx_vlan_tag, cost=COST_VLAN, lanes=_rx_vlan_tag_lanes)
        return None

    def rss_type_of(self, flow: Any) -> int | None:
        return ICE_PTYPE_HASH_TYPE[ice_ptype(flow)]

    def unroll_field(self, ctx: UnrollContext, kfunc: KfuncSpec, patch: BpfPatch) -> None:
        _ice_unroll_field(ctx, kfunc, patch)

    def timestamp_routine(self, *, status: bool) -> KernelFunction:
        """As :class:`Ice`'s, with a lane form for the merged routine (the same rule)."""
        if status:
            return KernelFunction("ice_xdp_rx_hw_ts", _xmo_rx_timestamp, cost=COST_XMO, lanes=_rx_hw_ts_lanes)
        return super().timestamp_routine(status=status)

    def receive_meta(self, rx: Any, index: int, flow: Any) -> None:
        slot = index % rx.hw.ring_size
        view = np.frombuffer(rx.hw.ring.data, np.uint8)[slot * DESC_SIZE:(slot + 1) * DESC_SIZE].reshape(1, DESC_SIZE)
        row = view.copy()
        _put_desc_meta(row, flow)
        rx.hw.ring.data[slot * DESC_SIZE:(slot + 1) * DESC_SIZE] = row.tobytes()
        rx.mem.write(rx.hw.rx_ring, ICE_RX_RING_CTX, "vlan_proto", _ring_vlan_proto(flow))

    def receive_meta_lanes(self, queue: Any, flow: Any) -> None:
        regions = {r.name: r for r in queue.space.regions}
        _put_desc_meta(regions["ice descriptor"].data, flow)
        put_field(regions["ice_rx_ring"].data, ICE_RX_RING_CTX, "vlan_proto", _ring_vlan_proto(flow))


# RFC v2's pattern extended to the fields (MODEL, issue 16): ice unrolls both, with loads only.
def emit_rx_hash(patch: BpfPatch) -> None:
    """by-value rx_hash: ``rxdid == ICE_RXDID_FLEX_NIC ? le32 rss_hash @12 : 0`` (R0, R3, R4)."""
    r0, r3, r4 = B.BPF_REG_0, B.BPF_REG_3, B.BPF_REG_4
    patch.append(B.BPF_MOV64_IMM(r0, 0),
                 B.BPF_LDX_MEM(op.BPF_DW, r4, B.BPF_REG_1, ICE_XDP_BUFF.offsetof("rx_desc")))
    patch.append_jump(B.BPF_JMP_IMM(op.BPF_JEQ, r4, 0, 0), to="end")
    patch.append(B.BPF_LDX_MEM(op.BPF_B, r3, r4, ICE_RX_FLEX_DESC.offsetof("rxdid")))
    patch.append_jump(B.BPF_JMP_IMM(op.BPF_JNE, r3, ICE_RXDID_FLEX_NIC, 0), to="end")
    patch.append(B.BPF_LDX_MEM(op.BPF_W, r0, r4, ICE_RX_FLEX_DESC.offsetof("rss_hash")))


def emit_rx_vlan_tag(patch: BpfPatch) -> None:
    """by-value rx_vlan_tag: the ring's vlan_proto (0: stripping off) and, if L2TAG1P, l2tag1
    (0: none), as ``proto | tci << 16`` (R0, R3-R5).  MODEL: the l2tag2 path of
    ice_get_vlan_tci is left out (our descriptors never set L2TAG2P)."""
    r0, r3, r4, r5 = B.BPF_REG_0, B.BPF_REG_3, B.BPF_REG_4, B.BPF_REG_5
    patch.append(B.BPF_MOV64_IMM(r0, 0),
                 B.BPF_LDX_MEM(op.BPF_DW, r5, B.BPF_REG_1, ICE_XDP_BUFF.offsetof("rx_ring")))
    patch.append_jump(B.BPF_JMP_IMM(op.BPF_JEQ, r5, 0, 0), to="end")
    patch.append(B.BPF_LDX_MEM(op.BPF_H, r3, r5, ICE_RX_RING_CTX.offsetof("vlan_proto")))
    patch.append_jump(B.BPF_JMP_IMM(op.BPF_JEQ, r3, 0, 0), to="end")
    patch.append(B.BPF_LDX_MEM(op.BPF_DW, r4, B.BPF_REG_1, ICE_XDP_BUFF.offsetof("rx_desc")))
    patch.append_jump(B.BPF_JMP_IMM(op.BPF_JEQ, r4, 0, 0), to="end")
    patch.append(B.BPF_LDX_MEM(op.BPF_H, r5, r4, ICE_RX_FLEX_DESC.offsetof("status_error0")),
                 B.BPF_ALU64_IMM(op.BPF_AND, r5, ICE_RX_FLEX_DESC_STATUS0_L2TAG1P))
    patch.append_jump(B.BPF_JMP_IMM(op.BPF_JEQ, r5, 0, 0), to="end")
    patch.append(B.BPF_LDX_MEM(op.BPF_H, r5, r4, ICE_RX_FLEX_DESC.offsetof("l2tag1")))
    patch.append_jump(B.BPF_JMP_IMM(op.BPF_JEQ, r5, 0, 0), to="end")
    patch.append(B.BPF_ALU64_IMM(op.BPF_LSH, r5, 16),
                 B.BPF_MOV64_REG(r0, r3),
                 B.BPF_ALU64_REG(op.BPF_OR, r0, r5))


def _ice_unroll_field(ctx: UnrollContext, kfunc: KfuncSpec, patch: BpfPatch) -> None:
    if kfunc.enum.endswith("_SUPPORTED"):
        patch.append(B.BPF_MOV64_IMM(B.BPF_REG_0, 1))
    elif kfunc.field == "rx_hash":
        emit_rx_hash(patch)
    elif kfunc.field == "rx_vlan_tag":
        emit_rx_vlan_tag(patch)

