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

Designs: "rfc-v2"/"patch-v3" call by-value kfuncs (``*_supported`` first); "merged" calls
``int kfunc(ctx, out...)`` with out-pointers on the stack; "btf-hints" and "none" call no
kfunc (with BTF hints the driver has already written its struct before the packet).
"""
from __future__ import annotations

import warnings
from types import MappingProxyType

from .bpf import Program, assemble
from .consumer import MetaField, MetaLayout
from .kernel.btf_hints import XDP_HINTS_TIMESTAMP
from .kernel.kfuncs import TABLES
from .kernel.uapi import BPF_FUNC_redirect_map, BPF_FUNC_xdp_adjust_meta, XDP_PASS

ALL_DESIGNS = ("rfc-v2", "patch-v3", "merged", "btf-hints", "none")
# What each design models, named after the posting (data/design-history.json).
DESIGN_LABELS = MappingProxyType({
    "rfc-v2": "RFC v2 (3 Nov 2022): metadata kfuncs unrolled by the bound driver at load time; "
              "a driver that unrolls nothing gets the default r0 = 0",
    "patch-v3": "PATCH v2/v3 (21 Nov - 6 Dec 2022): every metadata kfunc a call into the bound driver's C "
                "routine, RFC v2 signatures (unrolling dropped after Alexei's review)",
    "merged": "Linux 6.3+ (PATCH v8): xdp_metadata_ops, int kfuncs with out-pointers, -EOPNOTSUPP default",
    "btf-hints": "Jesper Brouer's BTF xdp-hints RFCv2 (7 Sep 2022): the driver fills a struct for every frame",
    "none": "no metadata (the baseline)",
})
# Old names kept working, with a DeprecationWarning saying why they changed.
DESIGN_ALIASES = MappingProxyType({
    "rfc-v1": ("patch-v3", "'rfc-v1' was a misnomer: RFC v1 (27 Oct 2022) unrolled on veth and kept calls only "
                           "for devices without an unroller; every-kfunc-a-call is what PATCH v2/v3 did"),
})


def canonical_design(name: str) -> str:
    """A design's current name; an old one (``DESIGN_ALIASES``) warns and maps to its successor."""
    if name in DESIGN_ALIASES:
        new, why = DESIGN_ALIASES[name]
        warnings.warn(f"design {name!r} is deprecated: {why}; use {new!r}", DeprecationWarning, stacklevel=3)
        return new
    return name
FIELDS_BY_DESIGN = MappingProxyType({
    "rfc-v2": ("rx_timestamp", "rx_hash", "rx_vlan_tag"),     # hash and vlan: MODEL (kfuncs.RFC_V2)
    "patch-v3": ("rx_timestamp",),
    "merged": ("rx_timestamp", "rx_hash", "rx_vlan_tag"),
    "btf-hints": ("rx_timestamp", "rx_hash", "rx_vlan_tag"),
    "none": ("rx_timestamp", "rx_hash", "rx_vlan_tag"),
})
UDP_PORT_AF_XDP = 8080   # RFC v2 05/14 selftest
UDP_PORT_SKB = 9081      # RFC v2 07/14 selftest
FIELD_SIZE = 8
VALUE_REGS = ("r7", "r8", "r9")


def _kfunc(design: str, name: str) -> str:
    return f"call kfunc({TABLES[design].by_name(name).btf_id})"


def _ask(design: str, field: str, reg: str, k: int) -> list[str]:
    """Instructions that leave the field's value (0 = none) in ``reg``."""
    if design in ("rfc-v2", "patch-v3"):
        return [f"{reg} = 0",
                "r1 = r6",
                _kfunc(design, f"bpf_xdp_metadata_{field}_supported"),
                f"if r0 == 0 goto no_{field}",
                "r1 = r6",
                _kfunc(design, f"bpf_xdp_metadata_{field}"),
                f"{reg} = r0",
                f"no_{field}:"]
    slot = -8 * (k + 1)
    out = [f"{reg} = 0", "r1 = r6", "r2 = r10", f"r2 += {slot}"]
    if field == "rx_timestamp":
        out += [_kfunc(design, "bpf_xdp_metadata_rx_timestamp"),
                f"if r0 != 0 goto no_{field}",
                f"{reg} = *(u64 *)(r10 - {-slot})"]
    elif field == "rx_hash":
        # the slot is zeroed first; a failed call leaves its errno in the union with
        # rx_hash_type (the selftests' rx_hash_err), so the consumer can tell -ENODATA from
        # -EOPNOTSUPP
        out = [f"*(u64 *)(r10 - {-slot}) = 0"] + out
        out += ["r3 = r10", f"r3 += {slot + 4}",
                _kfunc(design, "bpf_xdp_metadata_rx_hash"),
                f"if r0 == 0 goto got_{field}",
                f"*(u32 *)(r10 - {-slot - 4}) = r0",
                f"got_{field}:",
                f"{reg} = *(u64 *)(r10 - {-slot})"]
    else:
        # __be16 vlan_proto at +0, u16 vlan_tci at +2, s32 rx_vlan_tag_err at +4
        out = [f"*(u64 *)(r10 - {-slot}) = 0"] + out
        out += ["r3 = r10", f"r3 += {slot + 2}",
                _kfunc(design, "bpf_xdp_metadata_rx_vlan_tag"),
                f"if r0 == 0 goto got_{field}",
                f"*(u32 *)(r10 - {-slot - 4}) = r0",
                f"got_{field}:",
                f"{reg} = *(u64 *)(r10 - {-slot})"]
    return out + [f"no_{field}:"]


def metadata_layout(design: str, fields: tuple[str, ...]) -> MetaLayout:
    """The struct the AF_XDP consumer reads for the program of ``design`` and ``fields``: 8
    bytes per field in the order asked (see the module docstring); the BTF-hints design's is
    the driver's ``struct xdp_hints_timestamp``."""
    if design == "btf-hints":
        return MetaLayout.from_btf(_hints_struct())
    if design == "none":
        return MetaLayout("xdp_meta (none)", 0, ())
    out: list[MetaField] = []
    for k, f in enumerate(fields):
        at = FIELD_SIZE * k
        if f == "rx_timestamp":
            out.append(MetaField("rx_timestamp", at, 8))
        elif f == "rx_hash" and design != "merged":      # RFC pattern: the hash only, by value
            out.append(MetaField("rx_hash", at, 4))
        elif f == "rx_hash":
            out += [MetaField("rx_hash", at, 4), MetaField("rx_hash_type", at + 4, 4),
                    MetaField("rx_hash_err", at + 4, 4, signed=True)]
        elif f == "rx_vlan_tag":
            out += [MetaField("rx_vlan_proto", at, 2, byteorder="big"), MetaField("rx_vlan_tci", at + 2, 2)]
            if design == "merged":
                out.append(MetaField("rx_vlan_tag_err", at + 4, 4, signed=True))
    return MetaLayout(f"xdp_meta ({design}: {', '.join(fields)})", FIELD_SIZE * len(fields), tuple(out),
                      "xdplab.programs")


def _hints_struct() -> MetaLayout:
    lay = XDP_HINTS_TIMESTAMP
    return MetaLayout(lay.name, lay.size, tuple(MetaField(n, f.offset, f.size) for n, f in lay.fields.items()),
                      lay.source)


def xdp_metadata_program(design: str, fields: tuple[str, ...], *, xsk_map_fd: int = 3,
                         path: str = "af_xdp", match: str = "selftest") -> Program:
    """The program for ``design`` asking for ``fields`` (see the module docstring).

    ``match="selftest"``: only IPv4/UDP to the selftest's port is handled (the rest passes);
    ``match="any"``: every frame is handled (shaped traffic: VLAN tags left in the frame,
    IPv6, TCP, ICMP, other ports).
    """
    if match not in ("selftest", "any"):
        raise ValueError(f"unknown match {match!r}; valid: selftest, any")
    if design not in ALL_DESIGNS:
        raise ValueError(f"unknown design {design!r}; valid designs: {', '.join(ALL_DESIGNS)}")
    if path not in ("af_xdp", "skb"):
        raise ValueError(f"unknown path {path!r}; valid paths: af_xdp, skb")
    port = UDP_PORT_AF_XDP if path == "af_xdp" else UDP_PORT_SKB
    lines = ["r6 = r1"] if match == "any" else [
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
        if design == "rfc-v2" or design == "patch-v3":
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
    if any("goto pass" in line for line in lines):      # (the verifier refuses unreachable code)
        lines += ["pass:", f"r0 = {XDP_PASS}", "exit"]
    return assemble("\n".join(lines))
