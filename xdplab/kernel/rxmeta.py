"""What the NIC knows about a received frame besides its bytes: the truth behind the metadata
fields (RSS hash, L3/L4 class, the VLAN tag it stripped).

The kernel layer defines this value so drivers can encode their descriptors from it (each in
its own format: ice's flex descriptor, mlx4's and mlx5's CQE, bnxt's completion, veth's skb)
without knowing where the traffic came from (:mod:`xdplab.traffic` builds it).

``enum xdp_rss_hash_type`` is in :mod:`xdplab.kernel.kfuncs` (include/net/xdp.h, 6.3+).
"""
from __future__ import annotations

from dataclasses import dataclass

from .kfuncs import XDP_RSS_L3_IPV4, XDP_RSS_L3_IPV6, XDP_RSS_L4, XDP_RSS_L4_TCP, XDP_RSS_L4_UDP

ETH_P_8021Q = 0x8100    # include/uapi/linux/if_ether.h@6.1.192:71
ETH_P_8021AD = 0x88A8   # include/uapi/linux/if_ether.h@6.1.192:93
L3_KINDS = ("ipv4", "ipv6", "")
L4_KINDS = ("tcp", "udp", "icmp", "")


@dataclass(frozen=True)
class RxFlow:
    """One flow as the NIC sees it.

    ``rss_hash``: the Toeplitz hash the NIC computes (0 when the frame is not IP);
    ``l3`` / ``l4``: the classes its parser finds ("" = none); ``vlan_proto`` / ``vlan_tci``:
    the frame's (outer) VLAN tag on the wire (0 / 0: untagged); ``vlan_stripped``: whether the
    NIC removed the tag and reports it in the descriptor (RX VLAN offload on and the frame
    tagged); ``vlan_offload``: RX C-tag stripping is on for the queue (it is by default;
    802.1ad tags are not stripped unless S-tag offload is on, which is not modelled); ``ipv6_ext``: IPv6 extension headers present (mlx4's ipv6_ext_mask).
    """

    rss_hash: int = 0
    l3: str = ""
    l4: str = ""
    vlan_proto: int = 0
    vlan_tci: int = 0
    vlan_stripped: bool = False
    ipv6_ext: bool = False
    vlan_offload: bool = True

    def __post_init__(self) -> None:
        if self.l3 not in L3_KINDS:
            raise ValueError(f"RxFlow.l3 must be one of {L3_KINDS}, got {self.l3!r}")
        if self.l4 not in L4_KINDS:
            raise ValueError(f"RxFlow.l4 must be one of {L4_KINDS}, got {self.l4!r}")
        if not 0 <= self.rss_hash < 1 << 32:
            raise ValueError(f"RxFlow.rss_hash must be a u32, got {self.rss_hash}")
        if not 0 <= self.vlan_tci < 1 << 16 or not 0 <= self.vlan_proto < 1 << 16:
            raise ValueError("RxFlow.vlan_proto / vlan_tci must be u16")

    @property
    def rss_type(self) -> int:
        """The packet's ``enum xdp_rss_hash_type`` (include/net/xdp.h, kernel-facts-fields §1.4):
        L3 bit, plus ``XDP_RSS_L4`` and the protocol bit when the hash covers L4 (TCP/UDP;
        ICMP frames are hashed on L3 only but classified ICMP: ``XDP_RSS_L4_ICMP`` without
        ``XDP_RSS_L4`` would break the rule at xdp.h 613-616, so ICMP gives L3 only here)."""
        l3 = {"ipv4": XDP_RSS_L3_IPV4, "ipv6": XDP_RSS_L3_IPV6}.get(self.l3, 0)
        if not l3:
            return 0
        l4 = {"tcp": XDP_RSS_L4 | XDP_RSS_L4_TCP, "udp": XDP_RSS_L4 | XDP_RSS_L4_UDP}.get(self.l4, 0)
        return l3 | l4

    @property
    def reported_tag(self) -> tuple[int, int]:
        """(proto, tci) the descriptor carries: the tag if the NIC stripped it, else (0, 0)."""
        return (self.vlan_proto, self.vlan_tci) if self.vlan_stripped else (0, 0)


NO_FLOW = RxFlow()
"""A frame the simulation knows nothing about (the hardware reports no hash, no tag)."""
