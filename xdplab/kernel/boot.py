"""What a simulated boot decides at random: the export_to_skb magic and struct layout.

RFC v2 06/14 (kernel-facts §8.2): ``struct xdp_to_skb_metadata { u32 magic; u64 rx_timestamp; }
__randomize_layout`` (16 bytes: the u64 needs 8-byte alignment) and ``xdp_metadata_magic =
get_random_u32() | 1`` set by the late_initcall ``xdp_metadata_init``: non-zero, odd, per boot.
The randstruct plugin may order the two members either way; a seeded
``random.Random`` plays both the plugin and get_random_u32, so a seed reproduces a boot.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .structs import StructLayout, layout


@dataclass(frozen=True)
class Boot:
    seed: int
    xdp_metadata_magic: int
    xdp_to_skb_metadata: StructLayout

    @classmethod
    def from_seed(cls, seed: int) -> "Boot":
        rng = random.Random(f"xdplab-boot-{seed}")
        magic = rng.getrandbits(32) | 1
        if rng.random() < 0.5:
            lay = layout("xdp_to_skb_metadata", 16, "RFC v2 06/14 include/net/xdp.h (randomized)",
                         magic=(0, 4), rx_timestamp=(8, 8))
        else:
            lay = layout("xdp_to_skb_metadata", 16, "RFC v2 06/14 include/net/xdp.h (randomized)",
                         rx_timestamp=(0, 8), magic=(8, 4))
        return cls(seed, magic, lay)
