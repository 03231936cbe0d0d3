"""The skb side of the RFC's xdp->skb path (RFC v2 06/14; kernel-facts §8.4).

``skb_metadata_set(skb, meta_len)`` now also calls ``skb_metadata_import_from_xdp(skb, len)``
(net/core/skbuff.c), which takes the metadata in front of the MAC header and returns
silently unless ``len == sizeof(struct xdp_to_skb_metadata)`` exactly and the magic matches;
then, if ``rx_timestamp != 0``, ``skb_hwtstamps(skb)->hwtstamp = ns_to_ktime(rx_timestamp)``.
Nothing else of the skb changes.  (Martin asked to clear the metadata after import because
of GRO's skb_metadata_differs; RFC v2 does not.)
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .boot import Boot


@dataclass(frozen=True)
class Skb:
    """The parts of an sk_buff this simulation reads: data, metadata, timestamps."""

    data: bytes
    meta: bytes = b""            # the bytes in front of the MAC header (skb_metadata_len)
    tstamp: int = 0              # skb->tstamp (software)
    hwtstamp: int = 0            # skb_hwtstamps(skb)->hwtstamp
    dev: str = ""


def skb_metadata_import_from_xdp(skb: Skb, boot: Boot) -> Skb:
    """Import an ``xdp_to_skb_metadata`` from ``skb.meta`` if it is exactly one, with the
    boot's magic; otherwise return the skb unchanged.

    The offsets are the *build's* (``boot.build``: randstruct, compile time); the magic is the
    *boot's* (``get_random_u32() | 1`` at late_initcall, 06/14): see :mod:`xdplab.kernel.boot`.
    06/14 net/core/skbuff.c hunk, 06-xdp-carry-over-xdp-metadata-into-skb-context.patch:222-243.
    """
    lay = boot.xdp_to_skb_metadata
    if len(skb.meta) != lay.size:
        return skb
    magic = int.from_bytes(skb.meta[lay.offsetof("magic"):][:4], "little")
    stamp = int.from_bytes(skb.meta[lay.offsetof("rx_timestamp"):][:8], "little")
    ts = int(imported_hwtstamp(len(skb.meta), magic, stamp, boot))
    return replace(skb, hwtstamp=ts) if ts else skb


def imported_hwtstamp(meta_len: int | np.ndarray, magic: int | np.ndarray, rx_timestamp: int | np.ndarray,
                      boot: Boot) -> np.ndarray:
    """The import's rule on ints or arrays: the skb's hwtstamp is ``rx_timestamp`` when the
    metadata is exactly one ``xdp_to_skb_metadata`` of this build carrying this boot's magic,
    else unchanged (0 here).  The lane engine reads the same two fields through the same
    layout and asks this function."""
    ok = (np.asarray(meta_len) == boot.xdp_to_skb_metadata.size) & (np.asarray(magic) == boot.xdp_metadata_magic)
    return np.where(ok, rx_timestamp, 0)


def skb_metadata_set(skb: Skb, meta: bytes, boot: Boot) -> Skb:
    """``skb_metadata_set`` with the RFC's import hook (only for a non-zero length)."""
    skb = replace(skb, meta=bytes(meta))
    return skb_metadata_import_from_xdp(skb, boot) if meta else skb
