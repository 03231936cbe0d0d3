"""veth: the RFC's software example (RFC v2 patches 03/14 and 04/14).

- ``struct veth_xdp_buff { struct xdp_buff xdp; struct sk_buff *skb; }`` (03/14 adds the bare
  wrapper, 04/14 the ``skb`` field): ``skb`` at
  56 (confirmed by the PATCH v1 disassembly ``r5 = *(u64 *)(r1 +56)``), NULL on the
  xdp_frame path (veth_xdp_rcv_one), the skb on the skb path (veth_xdp_rcv_skb).
- 04/14 stamps every skb-path packet with ``__net_timestamp(skb)`` (CLOCK_REALTIME, taken in
  NAPI poll after the ptr_ring hop: a software stamp, not a wire time).
- ``veth_unroll_kfunc``: RX_TIMESTAMP_SUPPORTED -> ``r0 = 1``; RX_TIMESTAMP -> 5 instructions
  using R5 and R0 (load wrapper->skb; NULL -> 0; else skb->tstamp at +32);
  EXPORT_TO_SKB -> the kernel's ``xdp_metadata_export_to_skb``.
- Merged 6.3 ``veth_xdp_rx_timestamp`` / ``veth_xdp_rx_hash`` (kernel-facts §12.3):
  no skb -> -ENODATA; else skb_hwtstamps(skb)->hwtstamp, and skb_get_hash with
  rss_type = L4_ANY if skb->l4_hash else NONE.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from ..bpf import builders as B
from ..bpf import opcodes as op
from ..bpf.lanes import LaneState
from ..bpf.machine import CallContext, IntAccess
from ..bpf.patch import BpfPatch
from ..clocks import Phc
from ..kernel import errno_ret
from ..kernel.driver import Driver, RxSettings, UnrollContext, call_scalar_rest, wrapper_layout
from ..kernel.kfuncs import XDP_RSS_TYPE_L4_ANY, XDP_RSS_TYPE_NONE, KfuncSpec
from ..kernel.structs import SK_BUFF, KernelMemory, StructLayout, layout, put_field
from ..kernel.symbols import KernelFunction, OpCost
from ..kernel.uapi import ENODATA

REALTIME_2022 = 1_669_500_000_000_000_000   # CLOCK_REALTIME around the RFC (MODEL: any epoch works)

VETH_XDP_BUFF = wrapper_layout("veth_xdp_buff", 64, "RFC v2 03/14 + 04/14 drivers/net/veth.c", skb=(56, 8))

# What the merged veth callbacks read beyond skb->tstamp.  MODEL offsets: these live in
# struct sk_buff / skb_shared_info at config-dependent places; only their meaning matters.
SKB_MODEL = layout("sk_buff (model)", 232, "MODEL offsets for skb->hash, l4_hash and "
                   "skb_hwtstamps(skb)->hwtstamp", tstamp=(32, 8), hash=(0x94, 4),
                   l4_hash=(0x98, 1), hwtstamp=(0xA0, 8))
assert SKB_MODEL.offsetof("tstamp") == SK_BUFF.offsetof("tstamp")


def _skb_of(cctx: IntAccess, wrapper: int) -> int:
    return cctx.read(wrapper + VETH_XDP_BUFF.offsetof("skb"), 8)


def _v1_rx_timestamp(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """veth's rx_timestamp as a C routine (the call designs): skb ? skb->tstamp : 0."""
    skb = _skb_of(cctx, r1)
    return cctx.read(skb + SK_BUFF.offsetof("tstamp"), 8) if skb else 0


def _v1_rx_timestamp_lanes(st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
    """:func:`_v1_rx_timestamp` for many lanes; a lane whose skb cannot be read runs the scalar one."""
    skb, ok = st.helper_read(lanes, args[0] + np.uint64(VETH_XDP_BUFF.offsetof("skb")), 8)
    stamp, ok1 = st.helper_read(lanes, skb + np.uint64(SK_BUFF.offsetof("tstamp")), 8)
    return call_scalar_rest(st, lanes, args, ok & ((skb == 0) | ok1), np.where(skb != 0, stamp, np.uint64(0)))


def _xmo_rx_timestamp(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """veth_xdp_rx_timestamp (6.3): -ENODATA without an skb, else the skb's HW stamp."""
    skb = _skb_of(cctx, r1)
    if not skb:
        return errno_ret(ENODATA)
    cctx.write(r2, 8, cctx.read(skb + SKB_MODEL.offsetof("hwtstamp"), 8))
    return 0


def _xmo_rx_hash(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """veth_xdp_rx_hash (6.3 + rss_type): skb_get_hash, L4_ANY if l4_hash."""
    skb = _skb_of(cctx, r1)
    if not skb:
        return errno_ret(ENODATA)
    cctx.write(r2, 4, cctx.read(skb + SKB_MODEL.offsetof("hash"), 4))
    l4 = cctx.read(skb + SKB_MODEL.offsetof("l4_hash"), 1)
    cctx.write(r3, 4, XDP_RSS_TYPE_L4_ANY if l4 else XDP_RSS_TYPE_NONE)
    return 0


ENODATA_U64 = np.uint64(errno_ret(ENODATA))   # -ENODATA as a u64 register value


def _skb_lanes(st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(skb pointers, ok) of the lanes' wrappers (ctx = args[0])."""
    return st.helper_read(lanes, args[0] + np.uint64(VETH_XDP_BUFF.offsetof("skb")), 8)


def _xmo_rx_timestamp_lanes(st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
    """:func:`_xmo_rx_timestamp` for many lanes (no skb: -ENODATA, nothing written)."""
    skb, ok = _skb_lanes(st, lanes, args)
    stamp, ok1 = st.helper_read(lanes, skb + np.uint64(SKB_MODEL.offsetof("hwtstamp")), 8)
    done = ok & (skb == 0)
    g = np.nonzero(ok & (skb != 0) & ok1)[0]
    done[g] = st.helper_write(lanes[g], args[1][g], 8, stamp[g])
    return call_scalar_rest(st, lanes, args, done, np.where(skb == 0, ENODATA_U64, np.uint64(0)))


def _xmo_rx_hash_lanes(st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
    """:func:`_xmo_rx_hash` for many lanes."""
    skb, ok = _skb_lanes(st, lanes, args)
    h, ok1 = st.helper_read(lanes, skb + np.uint64(SKB_MODEL.offsetof("hash")), 4)
    l4, ok2 = st.helper_read(lanes, skb + np.uint64(SKB_MODEL.offsetof("l4_hash")), 1)
    done = ok & (skb == 0)
    g = np.nonzero(ok & (skb != 0) & ok1 & ok2)[0]
    g = g[st.helper_write(lanes[g], args[1][g], 4, h[g])]
    kind = np.where(l4[g] != 0, np.uint64(XDP_RSS_TYPE_L4_ANY), np.uint64(XDP_RSS_TYPE_NONE))
    done[g] = st.helper_write(lanes[g], args[2][g], 4, kind)
    return call_scalar_rest(st, lanes, args, done, np.where(skb == 0, ENODATA_U64, np.uint64(0)))


# Work per call of each C routine (MODEL op counts from reading the routine).  COST_TS: what
# the 04/14 unroll executes when there is an skb (load skb, the NULL test, load skb->tstamp:
# tests/test_op_counts.py runs it); the return is the call's (cost.py direct_call_ns).
COST_TS = OpCost(insns={"ldx": 2, "jmp": 1}, touches={"wrapper": 1, "skb": 1})
COST_XMO = OpCost(insns={"ldx": 2, "jmp": 2, "alu64": 2, "stx": 1}, touches={"wrapper": 1, "skb": 1, "stack": 1})
COST_HASH = OpCost(insns={"ldx": 3, "jmp": 3, "alu64": 3, "stx": 2}, touches={"wrapper": 1, "skb": 2, "stack": 2})


class Veth(Driver):
    name = "veth"
    supports_rx_timestamp = True
    wrapper = VETH_XDP_BUFF
    source = "drivers/net/veth.c (RFC v2 03/14, 04/14; merged 6.3 veth_xdp_metadata_ops)"
    meta_valid = True

    def struct_pointers(self) -> Mapping[tuple[str, str], StructLayout]:
        return MappingProxyType({("veth_xdp_buff", "skb"): SKB_MODEL})

    def clock(self, settings: RxSettings) -> Phc:
        """CLOCK_REALTIME as __net_timestamp reads it (a software clock: steps and drift apply)."""
        return Phc(REALTIME_2022, settings.ppb, events=tuple(settings.clock_events))

    def rx_path(self, mem: KernelMemory, settings: RxSettings) -> "VethRx":
        return VethRx(mem, self.clock(settings), settings.variant)

    def lane_rx(self, settings: RxSettings) -> "VethLaneRx":
        return VethLaneRx(self.clock(settings))

    def unroll_rx_timestamp(self, ctx: UnrollContext, patch: BpfPatch) -> None:
        patch.append(
            B.BPF_LDX_MEM(op.BPF_DW, B.BPF_REG_5, B.BPF_REG_1, VETH_XDP_BUFF.offsetof("skb")),
            B.BPF_JMP_IMM(op.BPF_JNE, B.BPF_REG_5, 0, 2),
            B.BPF_MOV64_IMM(B.BPF_REG_0, 0),
            B.BPF_JMP_A(1),
            B.BPF_LDX_MEM(op.BPF_DW, B.BPF_REG_0, B.BPF_REG_5, SK_BUFF.offsetof("tstamp")),
        )

    def timestamp_routine(self, *, status: bool) -> KernelFunction:
        if status:
            return KernelFunction("veth_xdp_rx_timestamp", _xmo_rx_timestamp, cost=COST_XMO, lanes=_xmo_rx_timestamp_lanes)
        return KernelFunction("veth_xdp_rx_timestamp", _v1_rx_timestamp, cost=COST_TS, lanes=_v1_rx_timestamp_lanes)

    def other_routine(self, kfunc: KfuncSpec) -> KernelFunction | None:
        if kfunc.returns == "status" and kfunc.field == "rx_hash":
            return KernelFunction("veth_xdp_rx_hash", _xmo_rx_hash, cost=COST_HASH, lanes=_xmo_rx_hash_lanes)
        return None   # rx_vlan_tag came to veth after 6.3: the generic -EOPNOTSUPP


# ------------------------------------------------------------------------- receive paths
@dataclass
class VethRx:
    """veth's skb path (veth_xdp_rcv_skb): the skb carries __net_timestamp (REALTIME, taken in
    NAPI poll); ``xdp_frame=True`` models the xdp_frame path, where the wrapper's skb is NULL."""

    mem: KernelMemory
    clock: Phc
    variant: str = "fixed"
    xdp_frame: bool = False

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


SKB_STORED_FROM = SK_BUFF.offsetof("tstamp")   # lane model: an skb's bytes from tstamp on


@dataclass
class VethLaneRx:
    """veth's skb path for many packets: one skb per lane (stored from ``tstamp`` on)."""

    clock: Phc
    xdp_frame: bool = False

    def receive_lanes(self, q: Any, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stamp = self.clock.ns_array(t)
        skb = np.zeros((len(t), SKB_MODEL.size), np.uint8)
        put_field(skb, SKB_MODEL, "tstamp", stamp)
        s = q.driver_region("sk_buff", "skb", SKB_MODEL.size, skb[:, SKB_STORED_FROM:], stored_from=SKB_STORED_FROM)
        if self.xdp_frame:
            return stamp, np.zeros(len(t), np.uint64)
        put_field(q.wrapper.data, VETH_XDP_BUFF, "skb", s.base)
        return stamp, stamp


# =================================================================== metadata fields (issue 16)
# veth's ops ([D73] drivers/net/veth.c 1668-1710, 1733-1737; kernel-facts-fields §2.5): ts and
# hash since 6.3, vlan since 6.8.  All read the skb (veth_xdp_buff.skb; NULL on the xdp_frame
# path -> -ENODATA).  rx_vlan_tag: __vlan_hwaccel_get_tag (present iff skb->vlan_all != 0,
# include/linux/if_vlan.h), vlan_proto as stored (network order).
# MODEL: skb->hash is the flow's Toeplitz hash with l4_hash set for TCP/UDP; the kernel's
# skb_get_hash computes a flow-dissector hash with a boot-random key (not reproducible), with
# l4_hash set when the keys have ports; only its presence and type rule matter here.
SKB_META_MODEL = layout("sk_buff (model, metadata fields)", 232, "MODEL offsets for skb->hash, l4_hash, "
                        "hwtstamp, vlan_proto/vlan_tci (vlan_all)", tstamp=(32, 8), hash=(0x94, 4),
                        l4_hash=(0x98, 1), hwtstamp=(0xA0, 8), vlan_proto=(0xA8, 2), vlan_tci=(0xAA, 2))
VETH_MERGED_OPS = MappingProxyType({"rx_timestamp": (6, 3), "rx_hash": (6, 3), "rx_vlan_tag": (6, 8)})


def _xmo_rx_vlan_tag(cctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """veth_xdp_rx_vlan_tag: no skb or no hw-accel tag -> -ENODATA."""
    skb = _skb_of(cctx, r1)
    if not skb:
        return errno_ret(ENODATA)
    proto = cctx.read(skb + SKB_META_MODEL.offsetof("vlan_proto"), 2)
    tci = cctx.read(skb + SKB_META_MODEL.offsetof("vlan_tci"), 2)
    if not (proto or tci):                      # !skb_vlan_tag_present: tci = 0, -ENODATA
        cctx.write(r3, 2, 0)
        return errno_ret(ENODATA)
    cctx.write(r3, 2, tci)
    cctx.write(r2, 2, proto)
    return 0


COST_VLAN = OpCost(insns={"ldx": 3, "jmp": 3, "alu64": 2, "stx": 2}, touches={"wrapper": 1, "skb": 2, "stack": 2})


def _xmo_rx_vlan_tag_lanes(st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
    """:func:`_xmo_rx_vlan_tag` for many lanes (no tag: tci = 0 written, -ENODATA)."""
    skb, ok = _skb_lanes(st, lanes, args)
    proto, ok1 = st.helper_read(lanes, skb + np.uint64(SKB_META_MODEL.offsetof("vlan_proto")), 2)
    tci, ok2 = st.helper_read(lanes, skb + np.uint64(SKB_META_MODEL.offsetof("vlan_tci")), 2)
    done = ok & (skb == 0)
    tagged = (proto != 0) | (tci != 0)
    g = np.nonzero(ok & (skb != 0) & ok1 & ok2)[0]
    g = g[st.helper_write(lanes[g], args[2][g], 2, np.where(tagged[g], tci[g], np.uint64(0)))]
    t = g[tagged[g]]
    done[g[~tagged[g]]] = True
    done[t] = st.helper_write(lanes[t], args[1][t], 2, proto[t])
    return call_scalar_rest(st, lanes, args, done, np.where((skb == 0) | ~tagged, ENODATA_U64, np.uint64(0)))


def _skb_meta_values(flow: Any) -> dict[str, int]:
    proto, tci = flow.reported_tag
    return {"hash": flow.rss_hash, "l4_hash": 1 if flow.l4 in ("tcp", "udp") else 0,
            "vlan_proto": int.from_bytes(proto.to_bytes(2, "big"), "little"), "vlan_tci": tci}


class VethFields(Veth):
    """veth with the merged design's ops as each release had them (the registry's ``veth``)."""

    merged_ops = VETH_MERGED_OPS

    def __init__(self, xdp_frame: bool = False) -> None:
        """``xdp_frame=True``: frames arrive on the xdp_frame path (ndo_xdp_xmit / a redirected
        frame, veth.c [D73] 656: ``vxbuf.skb = NULL``), so every op returns -ENODATA."""
        self.xdp_frame = xdp_frame

    def rx_path(self, mem: KernelMemory, settings: RxSettings) -> "VethRx":
        return VethRx(mem, self.clock(settings), settings.variant, xdp_frame=self.xdp_frame)

    def lane_rx(self, settings: RxSettings) -> "VethLaneRx":
        return VethLaneRx(self.clock(settings), xdp_frame=self.xdp_frame)

    def other_routine(self, kfunc: KfuncSpec) -> KernelFunction | None:
        if kfunc.returns == "status" and kfunc.field == "rx_vlan_tag":
            return KernelFunction("veth_xdp_rx_vlan_tag", _xmo_rx_vlan_tag, cost=COST_VLAN,
                                  lanes=_xmo_rx_vlan_tag_lanes)
        return super().other_routine(kfunc)

    def rss_type_of(self, flow: Any) -> int | None:
        return XDP_RSS_TYPE_L4_ANY if _skb_meta_values(flow)["l4_hash"] else XDP_RSS_TYPE_NONE

    def unroll_field(self, ctx: UnrollContext, kfunc: KfuncSpec, patch: BpfPatch) -> None:
        """RFC pattern, MODEL: both fields are one skb load, as the timestamp is (03/14):
        ``skb ? skb->hash : 0`` and ``skb ? vlan_all : 0`` (proto | tci << 16; R0, R5)."""
        if kfunc.enum.endswith("_SUPPORTED"):
            patch.append(B.BPF_MOV64_IMM(B.BPF_REG_0, 1))
            return
        where = SKB_META_MODEL.offsetof("hash" if kfunc.field == "rx_hash" else "vlan_proto")
        patch.append(
            B.BPF_LDX_MEM(op.BPF_DW, B.BPF_REG_5, B.BPF_REG_1, VETH_XDP_BUFF.offsetof("skb")),
            B.BPF_JMP_IMM(op.BPF_JNE, B.BPF_REG_5, 0, 2),
            B.BPF_MOV64_IMM(B.BPF_REG_0, 0),
            B.BPF_JMP_A(1),
            B.BPF_LDX_MEM(op.BPF_W, B.BPF_REG_0, B.BPF_REG_5, where),
        )

    def receive_meta(self, rx: Any, index: int, flow: Any) -> None:
        for name, v in _skb_meta_values(flow).items():
            rx.mem.write(rx.skb, SKB_META_MODEL, name, v)

    def receive_meta_lanes(self, queue: Any, flow: Any) -> None:
        skb = next(r for r in queue.space.regions if r.name == "sk_buff")
        for name, v in _skb_meta_values(flow).items():
            f = SKB_META_MODEL.fields[name]
            at = f.offset - skb.stored_from
            skb.data[:, at:at + f.size] = np.frombuffer(v.to_bytes(f.size, "little"), np.uint8)
