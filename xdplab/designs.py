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


# --------------------------------------------------------------------------- comparisons
DESIGN_FIELD_SETS = {
    "none": ((),),
    "btf-hints": ((),),
    "rfc-v2": ((), ("rx_timestamp",)),
    "rfc-v1": ((), ("rx_timestamp",)),
    "merged": ((), ("rx_timestamp",), ("rx_hash",), ("rx_timestamp", "rx_hash"),
               ("rx_timestamp", "rx_hash", "rx_vlan_tag")),
}


def compare(drivers=("veth", "ice", "mlx4", "bnxt"), designs=("none", "btf-hints", "rfc-v2", "rfc-v1", "merged"),
            *, packets: int = 50, profile: str = "e5-1650v4-retpoline", variant: str = "fixed",
            field_sets: dict | None = None, progress: bool = True, seed: int = 0):  # type: ignore[no-untyped-def]
    """Per-packet cost for every driver x design x field subset: a pandas DataFrame with the
    mean cost, its breakdown over the ``none`` design, instructions and delivery.

    A progress bar (tqdm.auto: a widget in notebooks) shows the sweep.
    ``assume_meta_support`` is on so mlx4/bnxt deliver (see :meth:`xdplab.Lab.run`).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .lab import Lab
    sets = field_sets or DESIGN_FIELD_SETS
    combos = [(d, g, f) for d in drivers for g in designs for f in sets[g]]
    rows = []
    baseline: dict[str, float] = {}
    for driver, design, fields in tqdm(combos, desc="designs", disable=not progress):
        df = Lab(driver, fields, design=design, variant=variant, seed=seed).run(
            packets, profile=profile, assume_meta_support=True)
        cost = float(df.cost_ns.mean())
        if design == "none":
            baseline[driver] = cost
        rows.append({"driver": driver, "design": design, "fields": ",".join(fields) or "-",
                     "n_fields": len(fields), "cost_ns": cost, "insns": float(df.insns.mean()),
                     "delivered": float((df.rx_timestamp != 0).mean()) if "rx_timestamp" in fields or design == "btf-hints" else float("nan")})
    out = pd.DataFrame(rows)
    out["over_none_ns"] = out.apply(lambda r: r.cost_ns - baseline.get(r.driver, float("nan")), axis=1)
    out.attrs.update(profile=profile, packets=packets)
    return out
