"""The alternative designs' moving parts that are not kfuncs.

BTF "xdp-hints" (Jesper Brouer's RFCv2, 7 Sep 2022; kernel-facts §12.4): with
NETIF_F_XDP_HINTS on, the driver writes a struct into the metadata area for *every* packet and
stores its 64-bit BTF id as the struct's last member, so AF_XDP finds it at a fixed negative
offset from the data.  ``struct xdp_hints_common`` (packed, 4-aligned): union { __wsum csum;
{ u16 csum_start; u16 csum_offset; } }; u16 rx_queue; u16 vlan_tci; u32 rx_hash32;
u32 xdp_hints_flags; u64 btf_full_id.  A driver's timestamp struct extends it *in front*:
``{ u64 rx_timestamp; struct xdp_hints_common base; }`` (as i40e's xdp_hints_i40e_timestamp).
"""
from __future__ import annotations

from .kernel.structs import layout

XDP_HINTS_COMMON = layout("xdp_hints_common", 24, "Brouer xdp-hints RFCv2 (packed)",
                          csum=(0, 4), rx_queue=(4, 2), vlan_tci=(6, 2), rx_hash32=(8, 4),
                          xdp_hints_flags=(12, 4), btf_full_id=(16, 8))
XDP_HINTS_TIMESTAMP = layout("xdp_hints_timestamp", 32, "Brouer xdp-hints RFCv2: driver struct "
                             "extending xdp_hints_common in front", rx_timestamp=(0, 8),
                             csum=(8, 4), rx_queue=(12, 2), vlan_tci=(14, 2), rx_hash32=(16, 4),
                             xdp_hints_flags=(20, 4), btf_full_id=(24, 8))
HINT_FLAG_RX_TIMESTAMP = 1 << 16        # i40e's driver-specific flag bit (xdp-hints RFCv2)
BTF_FULL_ID_MODEL = (7 << 32) | 4242    # MODEL: module BTF object id 7, type id 4242


def btf_hints_bytes(*, rx_timestamp: int, rx_hash: int = 0, vlan_tci: int = 0, rx_queue: int = 0) -> bytes:
    """The struct the driver writes in front of every packet under the BTF-hints design."""
    lay = XDP_HINTS_TIMESTAMP
    out = bytearray(lay.size)
    for name, value in (("rx_timestamp", rx_timestamp), ("rx_queue", rx_queue), ("vlan_tci", vlan_tci),
                        ("rx_hash32", rx_hash),
                        ("xdp_hints_flags", HINT_FLAG_RX_TIMESTAMP if rx_timestamp else 0),
                        ("btf_full_id", BTF_FULL_ID_MODEL)):
        f = lay.fields[name]
        out[f.offset:f.offset + f.size] = value.to_bytes(f.size, "little")
    return bytes(out)
