"""The XDP programs a Lab loads: the RFC's selftest program, for any design and fields.

Shaped after RFC v2 05/14 ``progs/xdp_metadata.c`` (kernel-facts §9.2): only UDP to port 8080
is interesting; for it the program asks the metadata kfuncs, reserves room before the
packet with ``bpf_xdp_adjust_meta``, bounds-checks ``data_meta`` against ``data``, stores the
values and redirects to the AF_XDP socket of its RX queue (``bpf_redirect_map(&xsk,
rx_queue_index, XDP_PASS)``); everything else is XDP_PASS.  Written in LLVM syntax as clang
would emit it for the C: the callee-saved r6 keeps the ctx, r7-r9 keep the values.

Metadata layout (the program and the AF_XDP consumer agree on it out of band, as the RFC
requires): 8 bytes per requested field, in the order given:
``rx_timestamp`` u64; ``rx_hash`` u32 hash + u32 rss_type; ``rx_vlan_tag`` be16 proto + u16 tci + 4 pad.

Designs: "rfc-v2"/"rfc-v1" call by-value kfuncs (``*_supported`` first); "merged" calls
``int kfunc(ctx, out...)`` with out-pointers on the stack; "btf-hints" and "none" call no
kfunc (with BTF hints the driver has already written its struct before the packet).
"""
from __future__ import annotations

from .bpf import Program, assemble
from .kernel.kfuncs import TABLES
from .kernel.uapi import BPF_FUNC_redirect_map, BPF_FUNC_xdp_adjust_meta, XDP_PASS

ALL_DESIGNS = ("rfc-v2", "rfc-v1", "merged", "btf-hints", "none")
FIELDS_BY_DESIGN = {
    "rfc-v2": ("rx_timestamp",),
    "rfc-v1": ("rx_timestamp",),
    "merged": ("rx_timestamp", "rx_hash", "rx_vlan_tag"),
    "btf-hints": ("rx_timestamp", "rx_hash", "rx_vlan_tag"),
    "none": ("rx_timestamp", "rx_hash", "rx_vlan_tag"),
}
UDP_PORT_AF_XDP = 8080   # RFC v2 05/14 selftest
UDP_PORT_SKB = 9081      # RFC v2 07/14 selftest
FIELD_SIZE = 8
VALUE_REGS = ("r7", "r8", "r9")


def _kfunc(design: str, name: str) -> str:
    return f"call kfunc({TABLES[design].by_name(name).btf_id})"


def _ask(design: str, field: str, reg: str, k: int) -> list[str]:
    """Instructions that leave the field's value (0 = none) in ``reg``."""
    if design in ("rfc-v2", "rfc-v1"):
        return [f"{reg} = 0",
                "r1 = r6",
                _kfunc(design, "bpf_xdp_metadata_rx_timestamp_supported"),
                f"if r0 == 0 goto no_{field}",
                "r1 = r6",
                _kfunc(design, "bpf_xdp_metadata_rx_timestamp"),
                f"{reg} = r0",
                f"no_{field}:"]
    slot = -8 * (k + 1)
    out = [f"{reg} = 0", "r1 = r6", "r2 = r10", f"r2 += {slot}"]
    if field == "rx_timestamp":
        out += [_kfunc(design, "bpf_xdp_metadata_rx_timestamp"),
                f"if r0 != 0 goto no_{field}",
                f"{reg} = *(u64 *)(r10 - {-slot})"]
    elif field == "rx_hash":
        out += ["r3 = r10", f"r3 += {slot + 4}",
                _kfunc(design, "bpf_xdp_metadata_rx_hash"),
                f"if r0 != 0 goto no_{field}",
                f"{reg} = *(u64 *)(r10 - {-slot})"]
    else:
        out += ["r3 = r10", f"r3 += {slot + 2}",
                _kfunc(design, "bpf_xdp_metadata_rx_vlan_tag"),
                f"if r0 != 0 goto no_{field}",
                f"{reg} = *(u32 *)(r10 - {-slot})"]
    return out + [f"no_{field}:"]


def xdp_metadata_program(design: str, fields: tuple[str, ...], *, xsk_map_fd: int = 3,
                         path: str = "af_xdp") -> Program:
    """The program for ``design`` asking for ``fields`` (see the module docstring)."""
    if design not in ALL_DESIGNS:
        raise ValueError(f"unknown design {design!r}; valid designs: {', '.join(ALL_DESIGNS)}")
    if path not in ("af_xdp", "skb"):
        raise ValueError(f"unknown path {path!r}; valid paths: af_xdp, skb")
    port = UDP_PORT_AF_XDP if path == "af_xdp" else UDP_PORT_SKB
    lines = [
        "r6 = r1",
        "r2 = *(u32 *)(r6 + 0)        # ctx->data",
        "r3 = *(u32 *)(r6 + 4)        # ctx->data_end",
        "r4 = r2",
        "r4 += 42                     # ethhdr + iphdr + udphdr",
        "if r4 > r3 goto pass",
        "r4 = *(u16 *)(r2 + 12)       # eth->h_proto",
        "if r4 != 8 goto pass         # htons(ETH_P_IP)",
        "r4 = *(u8 *)(r2 + 23)        # iph->protocol",
        "if r4 != 17 goto pass        # IPPROTO_UDP",
        "r4 = *(u16 *)(r2 + 36)       # udph->dest",
        f"if r4 != {int.from_bytes(port.to_bytes(2, 'big'), 'little')} goto pass   # htons({port})",
    ]
    asked = () if design in ("none", "btf-hints") else fields
    if path == "skb":
        if design == "rfc-v2" or design == "rfc-v1":
            lines += ["r1 = r6", _kfunc(design, "bpf_xdp_metadata_export_to_skb")]
        lines += ["goto pass"]
    else:
        for k, field in enumerate(asked):
            lines += _ask(design, field, VALUE_REGS[k], k)
        size = FIELD_SIZE * len(asked)
        if size:
            lines += [
                "r1 = r6",
                f"r2 = -{size}",
                f"call {BPF_FUNC_xdp_adjust_meta}       # bpf_xdp_adjust_meta",
                "if r0 != 0 goto pass",
                "r2 = *(u32 *)(r6 + 8)        # ctx->data_meta",
                "r3 = *(u32 *)(r6 + 0)        # ctx->data",
                "r4 = r2",
                f"r4 += {size}",
                "if r4 > r3 goto pass",
            ]
            lines += [f"*(u64 *)(r2 + {FIELD_SIZE * k}) = {VALUE_REGS[k]}" for k in range(len(asked))]
        lines += [
            "r2 = *(u32 *)(r6 + 16)       # ctx->rx_queue_index",
            f"r1 = map_fd({xsk_map_fd}) ll",
            f"r3 = {XDP_PASS}",
            f"call {BPF_FUNC_redirect_map}       # bpf_redirect_map",
            "exit",
        ]
    lines += ["pass:", f"r0 = {XDP_PASS}", "exit"]
    return assemble("\n".join(lines))
