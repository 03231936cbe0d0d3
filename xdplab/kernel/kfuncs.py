"""The metadata kfuncs of each design: names, simulated BTF ids, flags, prototypes.

RFC v2 (02/14, 06/14; kernel-facts §5): three kfuncs, registered with KF_RET_NULL | KF_UNROLL,
in the enum order XDP_METADATA_KFUNC_EXPORT_TO_SKB, _RX_TIMESTAMP_SUPPORTED, _RX_TIMESTAMP;
results returned by value.  Merged design (Linux 6.3+, PATCH v7 07/17; kernel-facts §12):
``int`` status plus out-pointers, ``-EOPNOTSUPP`` from the generic body, ``-ENODATA`` for "no
data for this frame", enum XDP_METADATA_KFUNC_RX_TIMESTAMP, _RX_HASH, _RX_VLAN_TAG.

BTF ids are whatever a kernel build assigns; ours are fixed, distinct numbers (MODEL).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable

# Kfunc flags, include/linux/btf.h (6.1): KF_ACQUIRE 1<<0, KF_RELEASE 1<<1, KF_RET_NULL 1<<2,
# KF_KPTR_GET 1<<3, KF_TRUSTED_ARGS 1<<4, KF_SLEEPABLE 1<<5, KF_DESTRUCTIVE 1<<6; the RFC adds
# KF_UNROLL 1<<7 (v2 02/14).
KF_RET_NULL = 1 << 2
KF_TRUSTED_ARGS = 1 << 4
KF_UNROLL = 1 << 7

# enum xdp_rss_hash_type, include/net/xdp.h (6.3+; kernel-facts §12.2).
XDP_RSS_L3_IPV4 = 1 << 0
XDP_RSS_L3_IPV6 = 1 << 1
XDP_RSS_L3_DYNHDR = 1 << 2
XDP_RSS_L4 = 1 << 3
XDP_RSS_L4_TCP = 1 << 4
XDP_RSS_L4_UDP = 1 << 5
XDP_RSS_L4_SCTP = 1 << 6
XDP_RSS_L4_IPSEC = 1 << 7
XDP_RSS_L4_ICMP = 1 << 8
XDP_RSS_TYPE_NONE = 0
XDP_RSS_TYPE_L4_IPV4_TCP = XDP_RSS_L3_IPV4 | XDP_RSS_L4 | XDP_RSS_L4_TCP
XDP_RSS_TYPE_L4_IPV4_UDP = XDP_RSS_L3_IPV4 | XDP_RSS_L4 | XDP_RSS_L4_UDP
XDP_RSS_TYPE_L4_IPV6_TCP = XDP_RSS_L3_IPV6 | XDP_RSS_L4 | XDP_RSS_L4_TCP
XDP_RSS_TYPE_L4_IPV6_UDP = XDP_RSS_L3_IPV6 | XDP_RSS_L4 | XDP_RSS_L4_UDP
XDP_RSS_TYPE_L4_ANY = XDP_RSS_L4


@dataclass(frozen=True)
class KfuncSpec:
    """One metadata kfunc as a design defines it."""

    name: str
    btf_id: int
    enum: str          # the XDP_METADATA_KFUNC_* constant
    proto: str         # its C prototype, for documentation and dumps
    flags: int
    field: str | None  # the metadata field it yields (None for export_to_skb)
    returns: str       # "value" (RFC v2) or "status" (merged)


@dataclass(frozen=True)
class KfuncTable:
    """The kfuncs a design's kernel offers, by BTF id and by name."""

    design: str
    specs: tuple[KfuncSpec, ...]

    def by_id(self, btf_id: int) -> KfuncSpec | None:
        for s in self.specs:
            if s.btf_id == btf_id:
                return s
        return None

    def by_name(self, name: str) -> KfuncSpec:
        for s in self.specs:
            if s.name == name:
                return s
        raise ValueError(f"no kfunc {name!r} in the {self.design} design; it has: "
                         + ", ".join(s.name for s in self.specs))

    def by_enum(self, enum: str) -> KfuncSpec:
        for s in self.specs:
            if s.enum == enum:
                return s
        raise ValueError(f"no kfunc {enum} in the {self.design} design")

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(s.btf_id for s in self.specs)

    def fields(self) -> tuple[str, ...]:
        return tuple(s.field for s in self.specs if s.field)


def _specs(items: Iterable[tuple]) -> tuple[KfuncSpec, ...]:
    return tuple(KfuncSpec(*item) for item in items)


RFC_V2 = KfuncTable("rfc-v2", _specs([
    ("bpf_xdp_metadata_export_to_skb", 70101, "XDP_METADATA_KFUNC_EXPORT_TO_SKB",
     "void bpf_xdp_metadata_export_to_skb(const struct xdp_md *ctx)",
     KF_RET_NULL | KF_UNROLL, None, "value"),
    ("bpf_xdp_metadata_rx_timestamp_supported", 70102, "XDP_METADATA_KFUNC_RX_TIMESTAMP_SUPPORTED",
     "int bpf_xdp_metadata_rx_timestamp_supported(const struct xdp_md *ctx)",
     KF_RET_NULL | KF_UNROLL, None, "value"),
    ("bpf_xdp_metadata_rx_timestamp", 70103, "XDP_METADATA_KFUNC_RX_TIMESTAMP",
     "const __u64 bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx)",
     KF_RET_NULL | KF_UNROLL, "rx_timestamp", "value"),
    # MODEL (issue 16): the RFC had only the timestamp; its pattern extended to the fields the
    # merged design later offered: a ``*_supported`` query and a by-value getter per field, one
    # scalar each.  rx_hash returns the u32 hash (the type would need a kfunc of its own);
    # rx_vlan_tag returns the tag as the merged out-parameters lay it out in memory:
    # ``__be16 vlan_proto`` in bits 15:0, ``u16 vlan_tci`` in bits 31:16 (0 = none).
    ("bpf_xdp_metadata_rx_hash_supported", 70104, "XDP_METADATA_KFUNC_RX_HASH_SUPPORTED",
     "int bpf_xdp_metadata_rx_hash_supported(const struct xdp_md *ctx)",
     KF_RET_NULL | KF_UNROLL, None, "value"),
    ("bpf_xdp_metadata_rx_hash", 70105, "XDP_METADATA_KFUNC_RX_HASH",
     "const __u32 bpf_xdp_metadata_rx_hash(const struct xdp_md *ctx)",
     KF_RET_NULL | KF_UNROLL, "rx_hash", "value"),
    ("bpf_xdp_metadata_rx_vlan_tag_supported", 70106, "XDP_METADATA_KFUNC_RX_VLAN_TAG_SUPPORTED",
     "int bpf_xdp_metadata_rx_vlan_tag_supported(const struct xdp_md *ctx)",
     KF_RET_NULL | KF_UNROLL, None, "value"),
    ("bpf_xdp_metadata_rx_vlan_tag", 70107, "XDP_METADATA_KFUNC_RX_VLAN_TAG",
     "const __u32 bpf_xdp_metadata_rx_vlan_tag(const struct xdp_md *ctx)",
     KF_RET_NULL | KF_UNROLL, "rx_vlan_tag", "value"),
]))
FIELD_KFUNC_ENUMS = frozenset({"XDP_METADATA_KFUNC_RX_HASH_SUPPORTED", "XDP_METADATA_KFUNC_RX_HASH",
                               "XDP_METADATA_KFUNC_RX_VLAN_TAG_SUPPORTED", "XDP_METADATA_KFUNC_RX_VLAN_TAG"})
"""The RFC v2 design's MODEL extension to rx_hash / rx_vlan_tag (``Driver.unroll_field``)."""

MERGED = KfuncTable("merged", _specs([
    ("bpf_xdp_metadata_rx_timestamp", 70201, "XDP_METADATA_KFUNC_RX_TIMESTAMP",
     "int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, __u64 *timestamp)",
     0, "rx_timestamp", "status"),
    ("bpf_xdp_metadata_rx_hash", 70202, "XDP_METADATA_KFUNC_RX_HASH",
     "int bpf_xdp_metadata_rx_hash(const struct xdp_md *ctx, __u32 *hash, "
     "enum xdp_rss_hash_type *rss_type)", 0, "rx_hash", "status"),
    ("bpf_xdp_metadata_rx_vlan_tag", 70203, "XDP_METADATA_KFUNC_RX_VLAN_TAG",
     "int bpf_xdp_metadata_rx_vlan_tag(const struct xdp_md *ctx, __be16 *vlan_proto, "
     "__u16 *vlan_tci)", 0, "rx_vlan_tag", "status"),
]))

# RFC v1 (27 Oct 2022) also rewrote calls at load time; we model the *call* design the
# issues name "patch-v3" (kfunc calls into the driver's or the default C routine) with RFC v2's
# names and by-value results, so the same program runs under both.
PATCH_V3 = KfuncTable("patch-v3", RFC_V2.specs[:3])     # the timestamp only, as the RFC had it

TABLES = MappingProxyType({"rfc-v2": RFC_V2, "patch-v3": PATCH_V3, "merged": MERGED})

NEWEST_KERNEL = (7, 3)
"""The newest release the merged design is modelled at (kernel-facts-fields [D73]: Debian
linux-source-7.3); ``Lab(kernel=...)`` narrows the drivers' ops down to 6.3."""
MERGED_KFUNC_SINCE = MappingProxyType({"rx_timestamp": (6, 3), "rx_hash": (6, 3), "rx_vlan_tag": (6, 8)})
"""The release each merged kfunc appeared in (kernel-facts-fields §1.3: rx_vlan_tag inferred 6.8)."""
