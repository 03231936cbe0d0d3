"""Independent oracles for every driver's rx_hash and rx_vlan_tag (issue 16 fields).

In the style of tests/test_oracles.py: every expected value is written by hand (a literal, the
``enum xdp_rss_hash_type`` values typed in as hex from kernel-facts-fields §1.4, or an explicit
bit expression a reader can check against the cited header line), never computed by the
xdplab function under test.  The descriptor bytes are built here from the kernel's field
offsets and bit positions (``bytes`` slices), not with the project's encoders or layouts.

Each vector runs (a) through the driver's rule function (ice ``rx_hash_rule`` /
``rx_vlan_tag_rule``, mlx4 ``mlx4_rss_type``, bnxt ``bnxt_rss_type``, mlx5 ``mlx5_rss_type``),
(b) through the op routine the driver registers for the merged design (its
``other_routine``), called with a real :class:`CallContext` on an :class:`AddressSpace`
holding the hand-built bytes, and (c) through the routine's lane form on a
:class:`LaneSpace` (one lane per vector, every vector in one batch).  Then the encoders the
receive paths use are decoded by hand against the same bit positions, and ice's ptype tables
are checked row by row against shared/data/ice-ptype-table.txt.

Kernel sources (Debian linux-source-6.1, 6.1.192, unless [D73] = kernel-facts-fields' 7.3 tree):
- ice: union ice_32b_rx_flex_desc wb, drivers/net/ethernet/intel/ice/ice_lan_tx_rx.h@6.1.192:225-262
  (rxdid @0, ptype_flex_flags0 @2 le16 "ptype=[9:0]", status_error0 @8, l2tag1 @10,
  status_error1 @16, l2tag2_2nd @22), ice_32b_rx_flex_desc_nic @273-302 (rss_hash @12 le32),
  ICE_RXDID_FLEX_NIC = 2 / FLEX_NIC_2 = 6 (:352-353), ICE_RX_FLEX_DESC_PTYPE_M 0x3FF (:398),
  STATUS0 L2TAG1P = enumerator 13 (:405-418), STATUS1 L2TAG2P_S = 11 (:428);
  ops [D73] ice_txrx_lib.c 542-595 (kernel-facts-fields §2.1)
- mlx4: struct mlx4_cqe include/linux/mlx4/cq.h@6.1.192:42-61 (immed_rss_invalid be32 @4,
  status be16 @16, ipv6_ext_mask @18), MLX4_CQE_STATUS_* :124-130; op [D73] en_rx.c 655-682
  (the patch text: search idx:8062905530)
- bnxt: struct rx_cmp drivers/net/ethernet/broadcom/bnxt/bnxt.h@6.1.192:158-198
  (rx_cmp_len_flags_type le32 @0, RSS_VALID 1<<10 :163, ITYPE bits 15:12 :165-174,
  rx_cmp_rss_hash @12 :188), struct rx_cmp_ext :206 (rx_cmp_flags2 @0); ITYPE_ICMP 7<<12 and
  RX_CMP_FLAGS2_IP_TYPE 1<<8 are [D73] bnxt.h 237, 317; op [D73] bnxt_xdp.c 492-547
- mlx5: struct mlx5_cqe64 include/linux/mlx5/device.h@6.1.192:789-830 (rss_hash_result be32 @12,
  rss_hash_type u8 @16, l4_l3_hdr_type @29, vlan_info be16 @30), cqe_has_vlan :905-908,
  CQE_RSS_HTYPE_IP bits 3:2 / CQE_RSS_HTYPE_L4 bits 7:6 :975-983; mlx5_xdp_rss_type[] [D73]
  en/xdp.c 225-242, ops 244-278
- veth: [D73] drivers/net/veth.c 1679-1710 (kernel-facts-fields §2.5)

Two vectors here found defects in the drivers (fixed there, each with its citation): mlx4 with
both TCP and UDP status bits (the op's two independent ifs let UDP win), and ice's rx_vlan_tag
stores (``*vlan_proto`` always, ``*vlan_tci`` whenever the proto is set, each before its
-ENODATA test).

MODEL pieces (the project's, not the kernel's; stated where used): the wrapper offsets are the
RFC v2 wrappers' (ice_xdp_buff rx_ring @56 / rx_desc @64, 10/14; mlx4/bnxt/mlx5 cqe/rxcmp1 @56,
mlx5 rq @64; veth skb @56, PATCH v1 disassembly), ice's ring vlan_proto @312, mlx5's rq
``rxhash`` flag @10 (NETIF_F_RXHASH), veth's skb field offsets (0x94 hash, 0x98 l4_hash, 0xA8
vlan_proto, 0xAA vlan_tci) and bnxt's rx_cmp read 16 bytes before rxcmp1.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest

from xdplab import drivers
from xdplab.bpf import assemble
from xdplab.bpf.lanes import LaneRegion, LaneSpace, LaneState
from xdplab.bpf.machine import CallContext, Machine
from xdplab.bpf.memory import AddressSpace, Region
from xdplab.drivers import bnxt, ice, mlx4, mlx5, veth
from xdplab.kernel.kfuncs import MERGED
from xdplab.kernel.rxmeta import RxFlow

ENODATA = 2**64 - 61          # -ENODATA (61) as the u64 a kernel function leaves in r0
U64 = np.uint64

# enum xdp_rss_hash_type, typed in from kernel-facts-fields §1.4 ([D73] include/net/xdp.h 602-649)
NONE, L3_IPV4, L3_IPV6, L4_ANY = 0x000, 0x001, 0x002, 0x008
L4_IPV4_TCP, L4_IPV4_UDP, L4_IPV4_SCTP, L4_IPV4_IPSEC, L4_IPV4_ICMP = 0x019, 0x029, 0x049, 0x089, 0x109
L4_IPV6_TCP, L4_IPV6_UDP, L4_IPV6_SCTP, L4_IPV6_IPSEC, L4_IPV6_ICMP = 0x01a, 0x02a, 0x04a, 0x08a, 0x10a

# Addresses of the hand-built objects (any non-overlapping bases work).
WRAP, DESC, RING, OUT = 0x1000_0000, 0x2000_0000, 0x3000_0000, 0x4000_0000
R2, R3 = OUT, OUT + 8          # the kfunc's two out pointers (hash / proto, then type / tci)
SENTINEL = 0xEE                # out bytes nobody wrote

HASH = MERGED.by_name("bpf_xdp_metadata_rx_hash")
VLAN = MERGED.by_name("bpf_xdp_metadata_rx_vlan_tag")


def le(value: int, size: int) -> bytes:
    return value.to_bytes(size, "little")


def be(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")


def put(buf: bytearray, off: int, data: bytes) -> None:
    buf[off:off + len(data)] = data


def wrapper(size: int = 80, **ptrs: int) -> bytes:
    """A driver's xdp_buff wrapper with pointers at the given offsets (``o56=DESC``...)."""
    w = bytearray(size)
    for name, addr in ptrs.items():
        put(w, int(name[1:]), le(addr, 8))
    return bytes(w)


class Objects(NamedTuple):
    """What one vector puts in memory: (name, base, bytes) per object."""
    objs: tuple[tuple[str, int, bytes], ...]


# ----------------------------------------------------------------------- the three runners
def run_routine(fn: Callable, mem: Objects) -> tuple[int, bytes]:
    """(b) the op routine with a real CallContext on an AddressSpace: (r0, the 16 out bytes)."""
    space = AddressSpace()
    for name, base, data in mem.objs:
        space.map(Region(name, base, data))
    out = space.map(Region("out", OUT, bytes([SENTINEL]) * 16))
    ret = fn(CallContext(Machine(assemble("exit"), space), 0), WRAP, R2, R3, 0, 0)
    return ret, bytes(out.data)


def run_lane_form(lanes_fn: Callable, scalar_fn: Callable, mems: list[Objects],
                  fallback: tuple[int, ...] = ()) -> list[tuple[int, bytes]]:
    """(c) the lane form on one LaneSpace, one lane per vector (same object names and bases in
    every vector).  Lanes the vector form hands to the scalar routine run it (as in a real
    run); exactly the lanes ``fallback`` may (a NULL pointer), so the others are the vector
    form's own work; none may end in an error."""
    fell: list[int] = []

    def scalar(ctx, *regs):
        fell.append(ctx.lane)
        return scalar_fn(ctx, *regs)

    n = len(mems)
    space = LaneSpace(n)
    for k, (name, base, data) in enumerate(mems[0].objs):
        rows = np.stack([np.frombuffer(m.objs[k][2], np.uint8) for m in mems])
        space.add(LaneRegion(name, name, base, len(data), rows.copy()))
    out = space.add(LaneRegion("out", "out", OUT, 16, np.full((n, 16), SENTINEL, np.uint8)))
    st = LaneState(space, tuple(r.kind for r in space.regions) + ("stack",))
    st.call = (0, "kfunc", 0, scalar)
    args = [np.full(n, a, U64) for a in (WRAP, R2, R3, 0, 0)]
    ret = lanes_fn(st, np.arange(n), args)
    assert list(st.errors) == [None] * n
    assert sorted(fell) == sorted(fallback)
    return [(int(ret[i]), bytes(out.data[i])) for i in range(n)]


def out_u32(out: bytes) -> tuple[int, int]:
    return int.from_bytes(out[0:4], "little"), int.from_bytes(out[8:12], "little")


def out_u16(out: bytes) -> tuple[int, int]:
    return int.from_bytes(out[0:2], "little"), int.from_bytes(out[8:10], "little")


def _check(decode, got: tuple[int, bytes], want: tuple[int, int | None, int | None], why: str) -> None:
    """The op's return code, and (when ``want`` gives them) the two values it stored."""
    ret, out = got
    assert ret == want[0], why
    if want[1] is not None:
        assert decode(out) == (want[1], want[2]), why


def check_hash(got: tuple[int, bytes], want: tuple[int, int | None, int | None], why: str) -> None:
    _check(out_u32, got, want, why)       # (hash, rss_type)


def check_vlan(got: tuple[int, bytes], want: tuple[int, int | None, int | None], why: str) -> None:
    _check(out_u16, got, want, why)       # (vlan_proto, vlan_tci)


def routines(name: str, kfunc, **opts):
    kf = drivers.get(name, **opts).other_routine(kfunc)
    assert kf is not None, f"{name} has no {kfunc.field} op"
    return kf


# ============================================================================== ice
def ice_desc(*, rxdid: int = 2, ptype: int = 0, ff0: int = 0, status0: int = 0b11, l2tag1: int = 0,
             rss_hash: int = 0, status1: int = 0, l2tag2_2nd: int = 0) -> bytes:
    """A write-back flex descriptor, 32 bytes (ice_lan_tx_rx.h@6.1.192:225-302): rxdid @0,
    ptype_flex_flags0 @2 (le16, ptype bits 9:0, ff0 bits 15:10), status_error0 @8 (DD|EOF =
    bits 0, 1 by default), l2tag1 @10, rss_hash @12 (le32), status_error1 @16, l2tag2_2nd @22."""
    d = bytearray(32)
    d[0] = rxdid
    put(d, 2, le(ptype | ff0 << 10, 2))
    put(d, 8, le(status0, 2))
    put(d, 10, le(l2tag1, 2))
    put(d, 12, le(rss_hash, 4))
    put(d, 16, le(status1, 2))
    put(d, 22, le(l2tag2_2nd, 2))
    return bytes(d)


def ice_mem(desc: bytes, ring_vlan_proto: int = 0) -> Objects:
    ring = bytearray(320)
    put(ring, 312, le(ring_vlan_proto, 2))     # MODEL: pkt_ctx.vlan_proto after cached_phctime
    return Objects((("ice_xdp_buff", WRAP, wrapper(72, o56=RING, o64=DESC)), ("ice_rx_ring", RING, bytes(ring)),
                    ("ice descriptor", DESC, desc)))


H = 0xDEAD_BEEF
# (why, descriptor, (ret, hash, rss_type)): ptype rows of ice-ptype-table.txt (libie LUT).
# ice writes *hash and *rss_type before the -ENODATA test ([D73] ice_txrx_lib.c 556-567).
ICE_HASH = [
    ("ipv4 frag, ptype 22", ice_desc(ptype=22, rss_hash=H), (0, H, L3_IPV4)),
    ("ipv4 l3, ptype 23", ice_desc(ptype=23, rss_hash=H), (0, H, L3_IPV4)),
    ("ipv4 udp, ptype 24", ice_desc(ptype=24, rss_hash=H), (0, H, L4_IPV4_UDP)),
    ("ipv4 tcp, ptype 26", ice_desc(ptype=26, rss_hash=H), (0, H, L4_IPV4_TCP)),
    ("ipv4 sctp, ptype 27", ice_desc(ptype=27, rss_hash=H), (0, H, L4_IPV4_SCTP)),
    ("ipv4 icmp, ptype 28", ice_desc(ptype=28, rss_hash=H), (0, H, L4_IPV4_ICMP)),
    ("ipv6 l3, ptype 89", ice_desc(ptype=89, rss_hash=H), (0, H, L3_IPV6)),
    ("ipv6 udp, ptype 90", ice_desc(ptype=90, rss_hash=H), (0, H, L4_IPV6_UDP)),
    ("ipv6 tcp, ptype 92", ice_desc(ptype=92, rss_hash=H), (0, H, L4_IPV6_TCP)),
    ("ipv6 sctp, ptype 93", ice_desc(ptype=93, rss_hash=H), (0, H, L4_IPV6_SCTP)),
    ("ipv6 icmp, ptype 94", ice_desc(ptype=94, rss_hash=H), (0, H, L4_IPV6_ICMP)),
    ("tunnel: outer ipv4, inner ipv6 tcp, ptype 85", ice_desc(ptype=85, rss_hash=H), (0, H, L4_IPV4_TCP)),
    ("L2, ptype 1", ice_desc(ptype=1, rss_hash=H), (0, H, NONE)),
    ("unused ptype 91", ice_desc(ptype=91, rss_hash=H), (0, H, NONE)),
    ("ptype 1023 >= LIBIE_RX_PT_NUM", ice_desc(ptype=0x3FF, rss_hash=H), (0, H, NONE)),
    ("ptype 538 = 0x200 | 26: bit 9 is part of the ptype, >= 154 -> NONE", ice_desc(ptype=0x200 | 26, rss_hash=H),
     (0, H, NONE)),
    ("flex flags above the ptype are masked off", ice_desc(ptype=26, ff0=0x3F, rss_hash=H), (0, H, L4_IPV4_TCP)),
    ("hash 0 -> -ENODATA, type still written", ice_desc(ptype=26, rss_hash=0), (ENODATA, 0, L4_IPV4_TCP)),
    ("rxdid 6 (FLEX_NIC_2) -> hash 0 -> -ENODATA", ice_desc(rxdid=6, ptype=24, rss_hash=H), (ENODATA, 0, L4_IPV4_UDP)),
    ("rxdid 1 (legacy) -> -ENODATA", ice_desc(rxdid=1, ptype=92, rss_hash=H), (ENODATA, 0, L4_IPV6_TCP)),
]
Q_BE = 0x0081          # htons(0x8100) as a little-endian CPU loads it
AD_BE = 0xA888         # htons(0x88A8)
L2TAG1P, L2TAG2P = 1 << 13, 1 << 11
NOT_WRITTEN = SENTINEL << 8 | SENTINEL
# (why, ring vlan_proto, descriptor, (ret, proto, tci)): ice stores *vlan_proto, returns -ENODATA
# if it is 0 (stripping off: *vlan_tci untouched), else stores *vlan_tci (0 too) and returns
# -ENODATA if it is 0 ([D73] ice_txrx_lib.c 578-595; search idx:4208059840)
ICE_VLAN = [
    ("l2tag1", Q_BE, ice_desc(status0=0b11 | L2TAG1P, l2tag1=0x2005), (0, Q_BE, 0x2005)),
    ("l2tag1, full TCI with PCP/DEI", Q_BE, ice_desc(status0=L2TAG1P, l2tag1=0xF07B), (0, Q_BE, 0xF07B)),
    ("l2tag2_2nd", Q_BE, ice_desc(status1=L2TAG2P, l2tag2_2nd=0x0123), (0, Q_BE, 0x0123)),
    ("both: l2tag1 wins", Q_BE, ice_desc(status0=L2TAG1P, l2tag1=7, status1=L2TAG2P, l2tag2_2nd=9), (0, Q_BE, 7)),
    ("802.1ad ring proto", AD_BE, ice_desc(status0=L2TAG1P, l2tag1=9), (0, AD_BE, 9)),
    ("no tag bit: l2tag1 ignored", Q_BE, ice_desc(l2tag1=0x2005, l2tag2_2nd=0x0123), (ENODATA, Q_BE, 0)),
    ("status0 bit 12 (RSS_VALID) is not L2TAG1P", Q_BE, ice_desc(status0=1 << 12, l2tag1=5), (ENODATA, Q_BE, 0)),
    ("status0 bit 14 is not L2TAG1P", Q_BE, ice_desc(status0=1 << 14, l2tag1=5), (ENODATA, Q_BE, 0)),
    ("status1 bit 10 is not L2TAG2P", Q_BE, ice_desc(status1=1 << 10, l2tag2_2nd=5), (ENODATA, Q_BE, 0)),
    ("status1 bit 12 is not L2TAG2P", Q_BE, ice_desc(status1=1 << 12, l2tag2_2nd=5), (ENODATA, Q_BE, 0)),
    ("L2TAG2P reads l2tag2_2nd, not l2tag2_1st", Q_BE,
     ice_desc(status1=L2TAG2P) [:20] + le(0x0777, 2) + le(0, 2) + bytes(8), (ENODATA, Q_BE, 0)),
    ("stripped tag with TCI 0 -> -ENODATA", Q_BE, ice_desc(status0=L2TAG1P, l2tag1=0), (ENODATA, Q_BE, 0)),
    ("stripping off (ring proto 0) -> -ENODATA", 0, ice_desc(status0=L2TAG1P, l2tag1=5), (ENODATA, 0, NOT_WRITTEN)),
]


def _ice_fields(d: bytes) -> dict[str, int]:
    """The descriptor fields read back by hand from the offsets above."""
    return {"rxdid": d[0], "flags0": int.from_bytes(d[2:4], "little"), "status0": int.from_bytes(d[8:10], "little"),
            "l2tag1": int.from_bytes(d[10:12], "little"), "rss_hash": int.from_bytes(d[12:16], "little"),
            "status1": int.from_bytes(d[16:18], "little"), "l2tag2_2nd": int.from_bytes(d[22:24], "little")}


def test_ice_rx_hash_rule():
    for why, d, want in ICE_HASH:
        f = _ice_fields(d)
        got = tuple(int(x[0]) for x in ice.rx_hash_rule(f["rxdid"], f["rss_hash"], f["flags0"]))
        assert got == want, why


def test_ice_rx_vlan_tag_rule():
    for why, proto, d, want in ICE_VLAN:
        f = _ice_fields(d)
        ret, p, tci = (int(x[0]) for x in ice.rx_vlan_tag_rule(proto, f["status0"], f["l2tag1"], f["status1"],
                                                                 f["l2tag2_2nd"]))
        assert (ret, p) == want[:2], why
        if p:                  # the rule's tci is what is stored only when the proto is
            assert tci == want[2], why


def test_ice_rx_hash_routine_and_lanes():
    kf = routines("ice", HASH)
    mems = [ice_mem(d) for _, d, _ in ICE_HASH]
    for (why, _, want), mem in zip(ICE_HASH, mems):
        check_hash(run_routine(kf.fn, mem), want, why)
    for (why, _, want), got in zip(ICE_HASH, run_lane_form(kf.lanes, kf.fn, mems)):
        check_hash(got, want, "lanes: " + why)


def test_ice_rx_vlan_tag_routine_and_lanes():
    kf = routines("ice", VLAN)
    mems = [ice_mem(d, proto) for _, proto, d, _ in ICE_VLAN]
    for (why, _, _, want), mem in zip(ICE_VLAN, mems):
        check_vlan(run_routine(kf.fn, mem), want, why)
    for (why, _, _, want), got in zip(ICE_VLAN, run_lane_form(kf.lanes, kf.fn, mems)):
        check_vlan(got, want, "lanes: " + why)


# ============================================================================== mlx4
def mlx4_cqe(*, rss_hash: int = 0, status: int = 0, ipv6_ext_mask: int = 0) -> bytes:
    """struct mlx4_cqe, 32 bytes (cq.h@6.1.192:42-61): immed_rss_invalid be32 @4, status be16
    @16, ipv6_ext_mask u8 @18."""
    c = bytearray(32)
    put(c, 4, be(rss_hash, 4))
    put(c, 16, be(status, 2))
    c[18] = ipv6_ext_mask
    return bytes(c)


V4, V4F, V6, V4OPT, TCP, UDP, IPOK = 1 << 6, 1 << 7, 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12  # cq.h@6.1.192:124-130
# (why, status, ipv6_ext_mask, rss_type): mlx4 never sets XDP_RSS_L4 (kernel-facts-fields §2.2)
MLX4_TYPES = [
    ("ipv4 tcp", V4 | TCP, 0, 0x001 | 0x010),
    ("ipv4 udp", V4 | UDP, 0, 0x001 | 0x020),
    ("ipv4 icmp: no L4 bit", V4, 0, 0x001),
    ("ipv4 fragment, udp", V4F | UDP, 0, 0x001 | 0x020),
    ("ipv4 with IPOK and options bits", V4 | V4OPT | IPOK | TCP, 0, 0x001 | 0x010),
    ("ipv6 tcp", V6 | TCP, 0, 0x002 | 0x010),
    ("ipv6 udp", V6 | UDP, 0, 0x002 | 0x020),
    ("ipv6 other L4", V6, 0, 0x002),
    ("ipv6 ext headers: DYNHDR", V6 | TCP, 1, 0x002 | 0x004 | 0x010),
    ("ipv6 ext mask 0x80", V6, 0x80, 0x002 | 0x004),
    ("ext mask ignored for ipv4", V4 | UDP, 1, 0x001 | 0x020),
    ("L2: no status bits", 0, 0, NONE),
    ("IPV4OPT alone is not IPv4", V4OPT, 0, NONE),
    # two independent ifs in the op (TCP, then UDP overwrites): search idx:8062905530
    ("TCP and UDP both set: the UDP assignment comes last", V4 | TCP | UDP, 0, 0x001 | 0x020),
]


def mlx4_mem(cqe: bytes, cqe_ptr: int = DESC) -> Objects:
    return Objects((("mlx4_xdp_buff", WRAP, wrapper(80, o56=cqe_ptr)), ("mlx4 CQ", DESC, cqe)))


def test_mlx4_rss_type_rule():
    for why, status, ext, want in MLX4_TYPES:
        assert int(mlx4.mlx4_rss_type(status, ext)) == want, why


def test_mlx4_rx_hash_routine_and_lanes():
    kf = routines("mlx4", HASH)
    vecs = [(why, mlx4_mem(mlx4_cqe(rss_hash=0x1234_5678 + i, status=s, ipv6_ext_mask=e)), (0, 0x1234_5678 + i, t))
            for i, (why, s, e, t) in enumerate(MLX4_TYPES)]
    # MODEL: the RFC wrapper's cqe is NULL without HWTSTAMP_FILTER_ALL -> -ENODATA
    vecs.append(("no cqe -> -ENODATA", mlx4_mem(mlx4_cqe(rss_hash=5, status=V4), cqe_ptr=0), (ENODATA, None, None)))
    for why, mem, want in vecs:
        check_hash(run_routine(kf.fn, mem), want, why)
    lanes = run_lane_form(kf.lanes, kf.fn, [m for _, m, _ in vecs], fallback=(len(vecs) - 1,))
    for (why, _, want), got in zip(vecs, lanes):
        check_hash(got, want, "lanes: " + why)


def test_mlx4_has_no_vlan_op():
    """[D73] en_netdev.c 2882-2885: timestamp and hash only."""
    assert drivers.get("mlx4").other_routine(VLAN) is None


# ============================================================================== bnxt
def bnxt_completion(*, flags: int, rss_hash: int = 0, flags2: int = 0, length: int = 64) -> bytes:
    """An L2 completion, rx_cmp then rx_cmp_ext (bnxt.h@6.1.192:158, 206): len_flags_type le32
    @0 = length << 16 | flags | CMP_TYPE_RX_L2_CMP (17, :124), rss_hash le32 @12; flags2 le32
    @16 (rx_cmp_ext @0)."""
    c = bytearray(32)
    put(c, 0, le(length << 16 | flags | 17, 4))
    put(c, 12, le(rss_hash, 4))
    put(c, 16, le(flags2, 4))
    return bytes(c)


RSS_VALID, IP_TYPE = 1 << 10, 1 << 8
IT_IP, IT_TCP, IT_UDP, IT_ICMP, IT_PTP_W_TS = 1 << 12, 2 << 12, 3 << 12, 7 << 12, 9 << 12
# (why, len_flags_type flags, flags2, rss_type)
BNXT_TYPES = [
    ("ipv4 tcp", IT_TCP, 0, L4_IPV4_TCP),
    ("ipv4 udp", IT_UDP, 0, L4_IPV4_UDP),
    ("ipv4 icmp", IT_ICMP, 0, L4_IPV4_ICMP),
    ("ipv4 other (itype IP)", IT_IP, 0, L3_IPV4),
    ("ipv4 timestamped (PTP_W_TS)", IT_PTP_W_TS, 0, L3_IPV4),
    ("ipv6 tcp", IT_TCP, IP_TYPE, L4_IPV6_TCP),
    ("ipv6 udp", IT_UDP, IP_TYPE, L4_IPV6_UDP),
    ("ipv6 icmp", IT_ICMP, IP_TYPE, L4_IPV6_ICMP),
    ("ipv6 other", IT_IP, IP_TYPE, L3_IPV6),
    ("unknown itype: L3 from IP_TYPE", 0, 0, L3_IPV4),
    ("flags2 bits 7 and 9 are not IP_TYPE", IT_TCP, (1 << 7) | (1 << 9), L4_IPV4_TCP),
    ("itype 6 is not ICMP", 6 << 12, 0, L3_IPV4),
]


def bnxt_mem(cmp: bytes, rxcmp1: int = DESC + 16) -> Objects:
    return Objects((("bnxt_xdp_buff", WRAP, wrapper(80, o56=rxcmp1)), ("bnxt completion ring", DESC, cmp)))


def test_bnxt_rss_type_rule():
    for why, flags, f2, want in BNXT_TYPES:
        lft = 64 << 16 | flags | RSS_VALID | 17
        assert int(bnxt.bnxt_rss_type(1, lft, f2)[0]) == want, why
    # no rxcmp1 -> XDP_RSS_TYPE_L2 ([D73] bnxt_xdp.c)
    assert int(bnxt.bnxt_rss_type(0, 64 << 16 | IT_TCP | RSS_VALID | 17, 0)[0]) == NONE


def test_bnxt_rx_hash_routine_and_lanes():
    kf = routines("bnxt", HASH)
    vecs = [(why, bnxt_mem(bnxt_completion(flags=fl | RSS_VALID, rss_hash=0xA5A5_0000 + i, flags2=f2)),
             (0, 0xA5A5_0000 + i, t)) for i, (why, fl, f2, t) in enumerate(BNXT_TYPES)]
    vecs += [
        ("RSS_VALID clear -> -ENODATA", bnxt_mem(bnxt_completion(flags=IT_TCP, rss_hash=7)), (ENODATA, None, None)),
        ("bit 9 is not RSS_VALID", bnxt_mem(bnxt_completion(flags=IT_TCP | 1 << 9, rss_hash=7)), (ENODATA, None, None)),
        ("bit 11 is not RSS_VALID", bnxt_mem(bnxt_completion(flags=1 << 11, rss_hash=7)), (ENODATA, None, None)),
        # MODEL: a NULL rxcmp1 means no rx_cmp either (the kernel's !rxcmp rule)
        ("no rxcmp1 -> -ENODATA", bnxt_mem(bnxt_completion(flags=IT_TCP | RSS_VALID, rss_hash=7), rxcmp1=0),
         (ENODATA, None, None)),
    ]
    for why, mem, want in vecs:
        check_hash(run_routine(kf.fn, mem), want, why)
    for (why, _, want), got in zip(vecs, run_lane_form(kf.lanes, kf.fn, [m for _, m, _ in vecs])):
        check_hash(got, want, "lanes: " + why)


def test_bnxt_every_itype():
    """All 16 itypes x IP_TYPE x RSS_VALID through the routine: only TCP (2), UDP (3) and
    ICMP (7) add XDP_RSS_L4 and their bit ([D73] bnxt_xdp.c 492-547)."""
    kf = routines("bnxt", HASH)
    l4 = {2: 0x018, 3: 0x028, 7: 0x108}
    for itype in range(16):
        for v6 in (0, 1):
            for valid in (0, 1):
                mem = bnxt_mem(bnxt_completion(flags=itype << 12 | valid << 10, rss_hash=0x77, flags2=v6 << 8))
                want = (0, 0x77, (0x002 if v6 else 0x001) | l4.get(itype, 0)) if valid else (ENODATA, None, None)
                check_hash(run_routine(kf.fn, mem), want, f"itype {itype} v6 {v6} valid {valid}")


def test_bnxt_has_no_vlan_op():
    """[D73] bnxt.c 16246-16248: rx_hash only."""
    assert drivers.get("bnxt").other_routine(VLAN) is None


# ============================================================================== mlx5
def mlx5_cqe(*, rss_hash: int = 0, hash_type: int = 0, l4_l3_hdr_type: int = 0, vlan_info: int = 0) -> bytes:
    """struct mlx5_cqe64, 64 bytes (device.h@6.1.192:789-830): rss_hash_result be32 @12,
    rss_hash_type @16, l4_l3_hdr_type @29, vlan_info be16 @30."""
    c = bytearray(64)
    put(c, 12, be(rss_hash, 4))
    c[16] = hash_type
    c[29] = l4_l3_hdr_type
    put(c, 30, be(vlan_info, 2))
    return bytes(c)


def mlx5_mem(cqe: bytes, rxhash: int = 1) -> Objects:
    rq = bytearray(64)
    rq[10] = rxhash            # MODEL: dev->features & NETIF_F_RXHASH
    return Objects((("mlx5e_xdp_buff", WRAP, wrapper(80, o56=DESC, o64=RING)), ("mlx5e_rq", RING, bytes(rq)),
                    ("mlx5 CQ", DESC, cqe)))


IP4, IP6, IPRES = 1 << 2, 2 << 2, 3 << 2          # CQE_RSS_HTYPE_IP values, bits 3:2
L4TCP, L4UDP, L4IPSEC = 1 << 6, 2 << 6, 3 << 6    # CQE_RSS_HTYPE_L4 values, bits 7:6
# (why, rss_hash_type byte, rss_type): [D73] en/xdp.c 225-242, index (ip bits 3:2) | (l4 bits 7:6 >> 6)
MLX5_TYPES = [
    ("ipv4 (icmp/other: L3 hash)", IP4, L3_IPV4),
    ("ipv4 tcp", IP4 | L4TCP, L4_IPV4_TCP),
    ("ipv4 udp", IP4 | L4UDP, L4_IPV4_UDP),
    ("ipv4 ipsec", IP4 | L4IPSEC, L4_IPV4_IPSEC),
    ("ipv6", IP6, L3_IPV6),
    ("ipv6 tcp", IP6 | L4TCP, L4_IPV6_TCP),
    ("ipv6 udp", IP6 | L4UDP, L4_IPV6_UDP),
    ("ipv6 ipsec", IP6 | L4IPSEC, L4_IPV6_IPSEC),
    ("L2: none", 0, NONE),
    ("l4 without ip: index 1", L4TCP, NONE),
    ("reserved ip 3: index 12", IPRES, NONE),
    ("reserved ip with udp: index 14", IPRES | L4UDP, NONE),
    ("bits 0,1,4,5 are ignored", IP4 | L4TCP | 0x33, L4_IPV4_TCP),
]


def test_mlx5_rss_type_rule():
    for why, byte, want in MLX5_TYPES:
        assert mlx5.mlx5_rss_type(byte) == want, why


def test_mlx5_rx_hash_routine_and_lanes():
    kf = routines("mlx5", HASH)
    vecs = [(why, mlx5_mem(mlx5_cqe(rss_hash=0x0BAD_F00D + i, hash_type=b)), (0, 0x0BAD_F00D + i, t))
            for i, (why, b, t) in enumerate(MLX5_TYPES)]
    vecs += [
        ("no NETIF_F_RXHASH -> -ENODATA", mlx5_mem(mlx5_cqe(rss_hash=9, hash_type=IP4 | L4TCP), rxhash=0),
         (ENODATA, None, None)),
        ("hash 0, type NONE is still 0 (no ENODATA rule)", mlx5_mem(mlx5_cqe()), (0, 0, NONE)),
    ]
    for why, mem, want in vecs:
        check_hash(run_routine(kf.fn, mem), want, why)
    for (why, _, want), got in zip(vecs, run_lane_form(kf.lanes, kf.fn, [m for _, m, _ in vecs])):
        check_hash(got, want, "lanes: " + why)


def test_mlx5_rss_type_every_byte():
    """All 256 rss_hash_type bytes, rule and lane form: only (ip bits 3:2, l4 bits 7:6) count,
    the table [D73] en/xdp.c 225-242 typed in by (ip, l4) value."""
    table = {(1, 0): L3_IPV4, (1, 1): L4_IPV4_TCP, (1, 2): L4_IPV4_UDP, (1, 3): L4_IPV4_IPSEC,
             (2, 0): L3_IPV6, (2, 1): L4_IPV6_TCP, (2, 2): L4_IPV6_UDP, (2, 3): L4_IPV6_IPSEC}
    want = [table.get(((b >> 2) & 3, (b >> 6) & 3), NONE) for b in range(256)]
    assert [mlx5.mlx5_rss_type(b) for b in range(256)] == want
    kf = routines("mlx5", HASH)
    got = run_lane_form(kf.lanes, kf.fn, [mlx5_mem(mlx5_cqe(rss_hash=b + 1, hash_type=b)) for b in range(256)])
    assert [out_u32(o) for _, o in got] == [(b + 1, t) for b, t in enumerate(want)]
    assert all(r == 0 for r, _ in got)


# (why, l4_l3_hdr_type, vlan_info, (ret, proto, tci)): proto always htons(ETH_P_8021Q), the full TCI
MLX5_VLAN = [
    ("stripped tag", 0x01, 0x2005, (0, Q_BE, 0x2005)),
    ("full TCI with PCP and DEI", 0x01, 0xF07B, (0, Q_BE, 0xF07B)),
    ("TCI 0 is still a tag", 0x01, 0, (0, Q_BE, 0)),
    ("other header-type bits with bit 0", 0x4B, 0x0064, (0, Q_BE, 0x0064)),
    ("no bit 0 -> -ENODATA", 0x00, 0x2005, (ENODATA, None, None)),
    ("bit 1 is not cqe_has_vlan", 0x02, 0x2005, (ENODATA, None, None)),
    ("bits 7:1 set, bit 0 clear", 0xFE, 0x2005, (ENODATA, None, None)),
]


def test_mlx5_rx_vlan_tag_routine_and_lanes():
    kf = routines("mlx5", VLAN)
    mems = [mlx5_mem(mlx5_cqe(l4_l3_hdr_type=h, vlan_info=v)) for _, h, v, _ in MLX5_VLAN]
    for (why, _, _, want), mem in zip(MLX5_VLAN, mems):
        check_vlan(run_routine(kf.fn, mem), want, why)
    for (why, _, _, want), got in zip(MLX5_VLAN, run_lane_form(kf.lanes, kf.fn, mems)):
        check_vlan(got, want, "lanes: " + why)


# ============================================================================== veth
def veth_mem(*, skb: bool = True, hash_: int = 0, l4_hash: int = 0, vlan_proto: int = 0, vlan_tci: int = 0) -> Objects:
    """veth_xdp_buff.skb @56 (NULL on the xdp_frame path) and a MODEL skb (offsets above)."""
    s = bytearray(232)
    put(s, 0x94, le(hash_, 4))
    s[0x98] = l4_hash
    put(s, 0xA8, le(vlan_proto, 2))
    put(s, 0xAA, le(vlan_tci, 2))
    return Objects((("veth_xdp_buff", WRAP, wrapper(64, o56=DESC if skb else 0)), ("sk_buff", DESC, bytes(s))))


VETH_HASH = [
    ("l4 hash: XDP_RSS_TYPE_L4_ANY", veth_mem(hash_=0xCAFE_F00D, l4_hash=1), (0, 0xCAFE_F00D, L4_ANY)),
    ("no l4 hash: NONE", veth_mem(hash_=0x1357_9BDF, l4_hash=0), (0, 0x1357_9BDF, NONE)),
    ("xdp_frame path (no skb) -> -ENODATA", veth_mem(skb=False, hash_=5, l4_hash=1), (ENODATA, None, None)),
]
VETH_VLAN = [
    ("802.1Q tag", veth_mem(vlan_proto=Q_BE, vlan_tci=0x2005), (0, Q_BE, 0x2005)),
    ("802.1ad tag", veth_mem(vlan_proto=AD_BE, vlan_tci=9), (0, AD_BE, 9)),
    ("a tag with TCI 0 is present (vlan_all != 0)", veth_mem(vlan_proto=Q_BE, vlan_tci=0), (0, Q_BE, 0)),
    ("no hw-accel tag -> -ENODATA", veth_mem(), (ENODATA, None, None)),
    ("no skb -> -ENODATA", veth_mem(skb=False, vlan_proto=Q_BE, vlan_tci=3), (ENODATA, None, None)),
]


def test_veth_rx_hash_routine_and_lanes():
    kf = routines("veth", HASH)
    for why, mem, want in VETH_HASH:
        check_hash(run_routine(kf.fn, mem), want, why)
    for (why, _, want), got in zip(VETH_HASH, run_lane_form(kf.lanes, kf.fn, [m for _, m, _ in VETH_HASH])):
        check_hash(got, want, "lanes: " + why)


def test_veth_rx_vlan_tag_routine_and_lanes():
    kf = routines("veth", VLAN)
    for why, mem, want in VETH_VLAN:
        check_vlan(run_routine(kf.fn, mem), want, why)
    for (why, _, want), got in zip(VETH_VLAN, run_lane_form(kf.lanes, kf.fn, [m for _, m, _ in VETH_VLAN])):
        check_vlan(got, want, "lanes: " + why)


# ============================================================================== encoders
SHARED_TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ice-ptype-table.txt"
ROW = re.compile(r"^\s*(\d+)\s+oip=(\S+)\s+ofrag=(\S+)\s+tun=(\S+)\s+tend=(\S+)\s+tefr=(\S+)\s+iprot=(\S+)\s+pl=(\S+)"
                 r"\s+hash_type=0x([0-9a-f]+)")


def _ptype_rows() -> dict[int, dict[str, str]]:
    if not SHARED_TABLE.is_file():
        pytest.skip(f"{SHARED_TABLE} absent (shared/ is laid beside the clone)")
    rows = {}
    for line in SHARED_TABLE.read_text().splitlines():
        m = ROW.match(line)
        if m:
            keys = ("oip", "ofrag", "tun", "tend", "tefr", "iprot", "pl")
            rows[int(m.group(1))] = dict(zip(keys, m.groups()[1:8])) | {"hash_type": int(m.group(9), 16)}
    assert len(rows) > 100
    return rows


def test_ice_ptype_table_column_follows_the_libie_formula():
    """The file itself: hash_type = XDP_RSS_L3_<oip> | XDP_RSS_L4_<iprot> | XDP_RSS_TYPE_<pl>
    ([D73] libie/rx.c 17-34: L3_L2, L4_TIMESYNC, TYPE_L3 are NONE, TYPE_L4 is XDP_RSS_L4)."""
    l3 = {"L2": 0, "IPV4": 0x001, "IPV6": 0x002}
    l4 = {"NONE": 0, "TIMESYNC": 0, "TCP": 0x010, "UDP": 0x020, "SCTP": 0x040, "ICMP": 0x100}
    pl = {"L2": 0, "L3": 0, "L4": 0x008}
    for ptype, r in _ptype_rows().items():
        assert r["hash_type"] == l3[r["oip"]] | l4[r["iprot"]] | pl[r["pl"]], ptype


def test_ice_ptype_hash_table_equals_the_file():
    rows = _ptype_rows()
    assert len(ice.ICE_PTYPE_HASH_TYPE) == 1024          # every value of the 10-bit ptype field
    for ptype in range(1024):
        want = rows[ptype]["hash_type"] if ptype in rows else 0   # unlisted / UNUSED / >= 154: 0
        assert ice.ICE_PTYPE_HASH_TYPE[ptype] == want, ptype


def test_ice_every_ptype_through_the_lane_form_equals_the_file():
    """All 1024 values of the 10-bit ptype field, one lane each, through ice's rx_hash lane
    form: the stored type is the file's hash_type (0 for unlisted rows and ptype >= 154)."""
    rows = _ptype_rows()
    kf = routines("ice", HASH)
    got = run_lane_form(kf.lanes, kf.fn, [ice_mem(ice_desc(ptype=p, rss_hash=p + 1)) for p in range(1024)])
    want = [(p + 1, rows[p]["hash_type"] if p in rows else 0) for p in range(1024)]
    assert [out_u32(o) for _, o in got] == want


def test_ice_ptype_of_names_plain_rows_of_the_right_protocol():
    """Every frame class's ptype is an outer-IP (or L2), not fragmented, untunnelled row whose
    inner protocol and payload layer are the class's."""
    rows = _ptype_rows()
    oip = {"": "L2", "ipv4": "IPV4", "ipv6": "IPV6"}
    iprot = {"": "NONE", "tcp": "TCP", "udp": "UDP", "icmp": "ICMP"}
    assert set(ice.ICE_PTYPE_OF) == {("", ""), ("ipv4", ""), ("ipv4", "udp"), ("ipv4", "tcp"), ("ipv4", "icmp"),
                                     ("ipv6", ""), ("ipv6", "udp"), ("ipv6", "tcp"), ("ipv6", "icmp")}
    for (l3, l4), ptype in ice.ICE_PTYPE_OF.items():
        r = rows[ptype]
        assert (r["oip"], r["ofrag"], r["tun"], r["iprot"]) == (oip[l3], "NOT_FRAG", "NONE", iprot[l4]), (l3, l4)
        assert r["pl"] == ("L2" if not l3 else "L4" if l4 else "L3"), (l3, l4)


def test_ice_encoders_decoded_by_hand():
    d = ice.encode_descriptors(100, 0x1_2345_6789, rss_hash=0xDEAD_BEEF, ptype=92)[0].tobytes()
    f = _ice_fields(d)
    assert f["rxdid"] == 2 and f["flags0"] & 0x3FF == 92 and f["rss_hash"] == 0xDEAD_BEEF
    assert int.from_bytes(d[28:32], "little") == 0x2345_6789      # flex_ts.ts_high @28
    tagged = RxFlow(rss_hash=5, l3="ipv4", l4="udp", vlan_proto=0x8100, vlan_tci=0x2005, vlan_stripped=True)
    h, ptype, status0, tci = ice.ice_desc_meta(tagged)
    assert (h, ptype, status0, tci) == (5, 24, 1 << 13, 0x2005)
    assert ice.ice_desc_meta(RxFlow(rss_hash=5, l3="ipv6", l4="tcp"))[1:] == (92, 0, 0)


def test_mlx4_encoders_decoded_by_hand():
    c = mlx4.make_cqes(0, rss_hash=0x1122_3344)[0].tobytes()
    assert c[4:8] == bytes([0x11, 0x22, 0x33, 0x44])             # be32 @4
    for flow, status, ext in [(RxFlow(rss_hash=9, l3="ipv4", l4="tcp"), (1 << 6) | (1 << 10), 0),
                              (RxFlow(rss_hash=9, l3="ipv4", l4="udp"), (1 << 6) | (1 << 11), 0),
                              (RxFlow(rss_hash=9, l3="ipv4", l4="icmp"), 1 << 6, 0),
                              (RxFlow(rss_hash=9, l3="ipv6", l4="tcp", ipv6_ext=True), (1 << 8) | (1 << 10), 1),
                              (RxFlow(rss_hash=0), 0, 0)]:
        row = np.zeros((1, 32), np.uint8)
        mlx4._put_cqe_meta(row, flow)
        b = row[0].tobytes()
        assert int.from_bytes(b[16:18], "big") == status and b[18] == ext, flow
        assert int.from_bytes(b[4:8], "big") == flow.rss_hash


def test_bnxt_encoders_decoded_by_hand():
    cmp, ext = bnxt.make_completions(0x7_0000_1234, ptp=True, length=1500)
    w0 = int.from_bytes(cmp[0].tobytes()[0:4], "little")
    assert (w0 & 0x3F, (w0 >> 12) & 0xF, w0 >> 16) == (17, 9, 1500)   # type 17, itype PTP_W_TS, length
    assert int.from_bytes(ext[0].tobytes()[12:16], "little") == 0x0000_1234   # rx_cmp_timestamp @12
    assert bnxt.bnxt_cmp_meta(RxFlow(rss_hash=7, l3="ipv4", l4="tcp")) == (1 << 10, 7, 0)
    assert bnxt.bnxt_cmp_meta(RxFlow(rss_hash=7, l3="ipv6", l4="udp")) == (1 << 10, 7, 1 << 8)
    assert bnxt.bnxt_cmp_meta(RxFlow()) == (0, 0, 0)


def test_mlx5_encoders_decoded_by_hand():
    for flow, byte in [(RxFlow(rss_hash=3, l3="ipv4", l4="tcp"), 0x44), (RxFlow(rss_hash=3, l3="ipv4", l4="udp"), 0x84),
                       (RxFlow(rss_hash=3, l3="ipv4", l4="icmp"), 0x04), (RxFlow(rss_hash=3, l3="ipv6", l4="tcp"), 0x48),
                       (RxFlow(rss_hash=3, l3="ipv6", l4="udp"), 0x88), (RxFlow(), 0x00)]:
        row = np.zeros((1, 64), np.uint8)
        mlx5.put_cqe_meta(row, flow)
        b = row[0].tobytes()
        assert b[16] == byte and int.from_bytes(b[12:16], "big") == flow.rss_hash, flow
        assert b[29] & 1 == 0
    row = np.zeros((1, 64), np.uint8)
    mlx5.put_cqe_meta(row, RxFlow(l3="ipv4", vlan_proto=0x8100, vlan_tci=0xE07B, vlan_stripped=True))
    b = row[0].tobytes()
    assert b[29] & 1 == 1 and b[30:32] == bytes([0xE0, 0x7B])


def test_veth_skb_encoder_decoded_by_hand():
    v = veth._skb_meta_values(RxFlow(rss_hash=4, l3="ipv4", l4="udp", vlan_proto=0x8100, vlan_tci=6,
                                     vlan_stripped=True))
    assert v == {"hash": 4, "l4_hash": 1, "vlan_proto": Q_BE, "vlan_tci": 6}
    assert veth._skb_meta_values(RxFlow(rss_hash=4, l3="ipv4", l4="icmp"))["l4_hash"] == 0
