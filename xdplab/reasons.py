"""Why a packet did not reach its consumer, or reached it without a timestamp.

One rule for both engines of :meth:`xdplab.Lab.run`: the scalar engine asks per packet, the
batch engine asks once per distinct combination of facts.
"""
from __future__ import annotations

from types import MappingProxyType

from .kernel.uapi import ERRNO_NAMES
from .kernel.xdp import ABORTED, DROPPED, TX


def why(design: str, fields: tuple[str, ...], path: str, where: str, has_ts: bool, adjust_ret: int,
        meta_written: bool, driver_note: str | None = None) -> str | None:
    """The reason for one packet, or None when it arrived with a timestamp.

    ``where``: where the packet went (af_xdp, stack, cpumap, dropped, tx, aborted);
    ``adjust_ret``: the last bpf_xdp_adjust_meta return (0 if none); ``meta_written``: whether
    the program left metadata in front of the packet (data_meta < data); ``driver_note``: the
    driver's own account of a missing timestamp (``Driver.no_timestamp_note``).
    """
    if where == "dropped":
        return DROPPED
    if where == "tx":
        return TX
    if where == "aborted":
        return ABORTED
    want = "af_xdp" if path == "af_xdp" else "stack"
    if where != want:
        if path == "af_xdp" and adjust_ret < 0:
            name = ERRNO_NAMES.get(-adjust_ret, str(-adjust_ret))
            hint = (" (the driver has no metadata support: xdp_prepare_buff(..., meta_valid=false))"
                    if name == "ENOTSUPP" else "")
            return f"bpf_xdp_adjust_meta returned -{name}{hint}; the program passed the packet to the stack"
        return f"went to {where} instead of {want}"
    if has_ts:
        return None
    if design == "none" or "rx_timestamp" not in fields:
        return "no timestamp asked for"
    if driver_note and design == "rfc-v2":
        return driver_note
    if path == "skb" and design in ("merged", "btf-hints", "none"):
        return f"the {design} design has no xdp->skb metadata path"
    if path == "skb":
        if not meta_written:
            return "export_to_skb wrote no metadata (data_meta != data, or no headroom)"
        return "skb_metadata_import_from_xdp rejected the metadata (size or magic) or the stamp was 0"
    return "the kfunc reported no timestamp (0)"


FIELD_ERRNO_MEANING = MappingProxyType({"EOPNOTSUPP": "the driver does not implement it",
                                        "ENODATA": "no data for this frame"})
"""What the merged kfuncs' errnos mean (net/core/xdp.c kernel-doc, [D73] 900-901, 955-956)."""


def field_reason(kfunc_field: str, errno: int) -> str:
    """Why a metadata field of the consumer's struct is ``<NA>``: the kfunc and its errno,
    e.g. ``rx_vlan_tag: -ENODATA (no data for this frame)``.  ``errno`` is negative, as stored."""
    name = ERRNO_NAMES.get(-errno, str(-errno))
    what = FIELD_ERRNO_MEANING.get(name)
    return f"{kfunc_field}: -{name}" + (f" ({what})" if what else "")
