"""What RFC v2 06/14 leaves to chance: the xdp->skb struct's layout (per build) and magic (per boot).

Two different random choices, made at two different times (issue 13, item 7):

- **Layout: compile time, per kernel build.**  06/14 declares ``struct xdp_to_skb_metadata
  { u32 magic; u64 rx_timestamp; } __randomize_layout;`` (include/net/xdp.h,
  06-xdp-carry-over-xdp-metadata-into-skb-context.patch:116-119).  ``__randomize_layout``
  is the randstruct attribute: with ``CONFIG_RANDSTRUCT`` (``RANDSTRUCT_FULL`` or
  ``RANDSTRUCT_PERFORMANCE``, security/Kconfig.hardening@6.1.192:312-346) the compiler
  plugin shuffles the members once, at build time, from the build's seed file
  (``scripts/basic/randstruct.seed``, made by scripts/gen-randstruct-seed.sh@6.1.192:4 and
  passed as ``-frandomize-layout-seed-file``, scripts/Makefile.randstruct@6.1.192:12).
  Without ``CONFIG_RANDSTRUCT`` the attribute is only ``__designated_init``
  (include/linux/compiler_types.h@6.1.192:275-282): declaration order.  Every boot of one
  build, and every module built against it, sees the same layout.  With two members either
  order is possible (the plugin's full shuffle is Fisher-Yates; in performance mode both
  members share one cache-line group, which is shuffled within:
  scripts/gcc-plugins/randomize_layout_plugin.c@6.1.192:195-243).  Either order is 16 bytes
  (the u64 is 8-byte aligned).
- **Magic: run time, per boot.**  ``xdp_metadata_magic = get_random_u32() | 1;`` in the
  late_initcall ``xdp_metadata_init`` (06/14 net/core/xdp.c, 06-...patch:377): odd, so never 0.

:class:`KernelBuild` is the build (seed + randstruct on/off -> layout); :class:`Boot` is one
boot of a build (boot seed -> magic).  ``random.Random`` stands in for both the plugin's PRNG
and ``get_random_u32`` (MODEL: the distribution, not the kernel's generators).

``Kernel(seed)`` / :meth:`Boot.from_seed` keep their meaning "one reproducible kernel": the
seed is used as *both* the build seed and the boot seed, so two seeds are two different
builds (the layout may differ) and two boots (the magic differs).  To reboot the same build,
use :meth:`Boot.of` with the same :class:`KernelBuild` and another boot seed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .structs import StructLayout, layout

_SRC = "RFC v2 06/14 include/net/xdp.h struct xdp_to_skb_metadata __randomize_layout"


@dataclass(frozen=True)
class KernelBuild:
    """A kernel build: what randstruct decided at compile time.

    ``seed`` plays the build's randstruct.seed; ``randstruct=False`` is a build without
    ``CONFIG_RANDSTRUCT`` (declaration order whatever the seed).
    """

    seed: int = 0
    randstruct: bool = True

    @property
    def xdp_to_skb_metadata(self) -> StructLayout:
        """The layout this build compiled (fixed for all its boots)."""
        swapped = self.randstruct and random.Random(f"xdplab-build-{self.seed}").random() < 0.5
        if swapped:
            return layout("xdp_to_skb_metadata", 16, f"{_SRC} (randstruct seed {self.seed}: members swapped)",
                          rx_timestamp=(0, 8), magic=(8, 4))
        how = f"randstruct seed {self.seed}: declaration order" if self.randstruct else \
            "CONFIG_RANDSTRUCT off: declaration order"
        return layout("xdp_to_skb_metadata", 16, f"{_SRC} ({how})", magic=(0, 4), rx_timestamp=(8, 8))


@dataclass(frozen=True)
class Boot:
    """One boot of a :class:`KernelBuild`.

    ``seed``: the seed this boot was made from (``Kernel.seed``); ``xdp_metadata_magic``: the
    per-boot magic (06/14 ``get_random_u32() | 1``); ``xdp_to_skb_metadata``: the *build's*
    layout, copied here for the callers that only hold a Boot; ``build`` and ``boot_seed``
    say which is which.
    """

    seed: int
    xdp_metadata_magic: int
    xdp_to_skb_metadata: StructLayout
    build: KernelBuild
    boot_seed: int

    @classmethod
    def of(cls, build: KernelBuild, boot_seed: int) -> "Boot":
        """Boot ``build`` once; ``boot_seed`` decides only the magic."""
        magic = random.Random(f"xdplab-boot-{boot_seed}").getrandbits(32) | 1
        return cls(boot_seed, magic, build.xdp_to_skb_metadata, build, boot_seed)

    @classmethod
    def from_seed(cls, seed: int, *, randstruct: bool = True) -> "Boot":
        """``Kernel(seed)``'s boot: build seed = boot seed = ``seed`` (see the module doc)."""
        return cls.of(KernelBuild(seed, randstruct), seed)
