"""The BTF "xdp-hints" design's metadata struct, as the kernel-side alternative to kfuncs.

BTF "xdp-hints" (Jesper Brouer's RFCv2, 7 Sep 2022; kernel-facts §12.4): with
NETIF_F_XDP_HINTS on, the driver writes a struct into the metadata area for *every* packet and
stores its 64-bit BTF id as the struct's last member, so AF_XDP finds it at a fixed negative
offset from the data.  ``struct xdp_hints_common`` (packed, 4-aligned): union { __wsum csum;
{ u16 csum_start; u16 csum_offset; } }; u16 rx_queue; u16 vlan_tci; u32 rx_hash32;
u32 xdp_hints_flags; u64 btf_full_id.  A driver's timestamp struct extends it *in front*:
``{ u64 rx_timestamp; struct xdp_hints_common base; }`` (as i40e's xdp_hints_i40e_timestamp).

The struct is written once here, for one frame or many (rows), so both engines fill it alike.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .structs import layout, put_field

XDP_HINTS_COMMON = layout("xdp_hints_common", 24, "Brouer xdp-hints RFCv2 (packed)",
                          csum=(0, 4), rx_queue=(4, 2), vlan_tci=(6, 2), rx_hash32=(8, 4),
                          xdp_hints_flags=(12, 4), btf_full_id=(16, 8))
XDP_HINTS_TIMESTAMP = layout("xdp_hints_timestamp", 32, "Brouer xdp-hints RFCv2: driver struct "
                             "extending xdp_hints_common in front", rx_timestamp=(0, 8),
                             csum=(8, 4), rx_queue=(12, 2), vlan_tci=(14, 2), rx_hash32=(16, 4),
                             xdp_hints_flags=(20, 4), btf_full_id=(24, 8))
HINT_FLAG_RX_TIMESTAMP = 1 << 16        # i40e's driver-specific flag bit (xdp-hints RFCv2)
# enum xdp_hints_flags (xdp-hints RFCv2 04/18, kernel-facts-fields §3.2): RX_HASH_TYPE in bits
# 5:4 (PKT_HASH_TYPE_NONE/L2/L3/L4 = 0..3), VLAN_PRESENT bit 8, ETH_P_8021Q bit 9, ETH_P_8021AD bit 10.
HINT_RX_HASH_TYPE_SHIFT = 4
PKT_HASH_TYPE_L3, PKT_HASH_TYPE_L4 = 2, 3      # include/linux/skbuff.h@6.1.192:1452-1453 enum pkt_hash_types
HINT_FLAG_VLAN_PRESENT = 1 << 8
HINT_FLAG_VLAN_PROTO_ETH_P_8021Q = 1 << 9
HINT_FLAG_VLAN_PROTO_ETH_P_8021AD = 1 << 10
BTF_FULL_ID_MODEL = (7 << 32) | 4242    # MODEL: module BTF object id 7, type id 4242


def flow_hint_flags(flow: Any) -> int:
    """The hash-type and VLAN bits of ``xdp_hints_flags`` a driver sets for a frame of ``flow``
    (an :class:`~xdplab.kernel.rxmeta.RxFlow`): L4 for TCP/UDP, L3 for other IP, present +
    proto bit for a stripped tag."""
    kind = PKT_HASH_TYPE_L4 if flow.l4 in ("tcp", "udp") else (PKT_HASH_TYPE_L3 if flow.l3 else 0)
    proto, _ = flow.reported_tag
    vlan = 0
    if proto:
        vlan = HINT_FLAG_VLAN_PRESENT | (HINT_FLAG_VLAN_PROTO_ETH_P_8021AD if proto == 0x88A8
                                         else HINT_FLAG_VLAN_PROTO_ETH_P_8021Q)
    return (kind << HINT_RX_HASH_TYPE_SHIFT) | vlan


def btf_hints_rows(*, rx_timestamp: Any, rx_hash: Any = 0, vlan_tci: Any = 0, rx_queue: Any = 0,
                   flags: Any = 0) -> np.ndarray:
    """The struct the driver writes in front of each packet under the BTF-hints design, as
    ``(n, 32)`` rows: every field, for every frame; the timestamp flag is set where a timestamp
    exists, ``flags`` (:func:`flow_hint_flags`) adds the hash-type and VLAN bits."""
    ts = np.atleast_1d(np.asarray(rx_timestamp, np.uint64))
    rows = np.zeros((len(ts), XDP_HINTS_TIMESTAMP.size), np.uint8)
    lay = XDP_HINTS_TIMESTAMP
    put_field(rows, lay, "rx_timestamp", ts)
    put_field(rows, lay, "rx_queue", rx_queue)
    put_field(rows, lay, "vlan_tci", vlan_tci)
    put_field(rows, lay, "rx_hash32", rx_hash)
    put_field(rows, lay, "xdp_hints_flags", np.where(ts != 0, np.uint64(HINT_FLAG_RX_TIMESTAMP), np.uint64(0))
              | np.uint64(flags))
    put_field(rows, lay, "btf_full_id", BTF_FULL_ID_MODEL)
    return rows


def btf_hints_bytes(*, rx_timestamp: int, rx_hash: int = 0, vlan_tci: int = 0, rx_queue: int = 0,
                    flags: int = 0) -> bytes:
    """One frame's struct (:func:`btf_hints_rows`) as bytes."""
    return btf_hints_rows(rx_timestamp=rx_timestamp & ((1 << 64) - 1), rx_hash=rx_hash, vlan_tci=vlan_tci,
                          rx_queue=rx_queue, flags=flags)[0].tobytes()
