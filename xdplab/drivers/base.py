"""What a driver offers the load-time pipeline.

RFC v2 adds ``ndo_unroll_kfunc(prog, func_id, patch)`` to ``struct net_device_ops``
(kernel-facts §5); the merged design has ``struct xdp_metadata_ops`` with ``xmo_*`` callbacks
(§12.2).  A :class:`Driver` here provides both, plus the C routine it would be called for in
the call-based designs, and the layout of its ``xdp_buff`` wrapper (``xdp_buff`` first, so
the ctx pointer is the wrapper's address: container_of, RFC v2 cover letter).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..bpf.patch import BpfPatch
from ..kernel.kfuncs import KfuncSpec
from ..kernel.structs import XDP_BUFF, StructLayout

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel.symbols import KernelFunction, KernelSymbols


@dataclass(frozen=True)
class UnrollContext:
    """What ``ndo_unroll_kfunc`` may use besides the patch.

    ``variant``: "fixed" or "rfc-v2-posted"; ``symbols``: where kernel routines get their call
    ``imm``; ``unroll``: re-enter the bound driver's hook (export_to_skb nests rx_timestamp);
    ``export_to_skb``: the kernel's generic ``xdp_metadata_export_to_skb(prog, patch)``.
    """

    variant: str
    symbols: "KernelSymbols"
    kfuncs: object                                   # the KfuncTable in force
    unroll: Callable[[KfuncSpec, BpfPatch], None]
    export_to_skb: Callable[[BpfPatch], None]


def supported_routine(driver_name: str) -> "KernelFunction":
    """``*_supported`` as a C routine (the call designs): every RFC v2 driver answers 1."""
    from ..kernel.symbols import KernelFunction, OpCost

    def fn(ctx, r1, r2, r3, r4, r5):  # type: ignore[no-untyped-def]
        return 1
    return KernelFunction(f"{driver_name}_xdp_rx_timestamp_supported", fn,
                          "returns 1 (every RFC v2 driver unrolls it to r0 = 1)", OpCost(insns={"alu64": 1}))


class Driver:
    """Base class.  A driver of the RFC sets ``supports_rx_timestamp`` and provides
    :meth:`unroll_rx_timestamp` (RFC v2) and :meth:`timestamp_routine` (the call designs); the
    dispatch over kfuncs is the same for all of them: ``*_supported`` unrolls to ``r0 = 1``
    (every RFC v2 driver does, kernel-facts §5) and ``export_to_skb`` to the kernel's generic
    unroll.  The base driver itself unrolls nothing and offers no routines."""

    name = "generic"
    wrapper: StructLayout = XDP_BUFF
    source = ""
    supports_rx_timestamp = False

    def unroll_kfunc(self, ctx: UnrollContext, kfunc: KfuncSpec, patch: BpfPatch) -> None:
        """``ndo_unroll_kfunc``: append the kfunc's inline code to ``patch`` (or nothing)."""
        if not self.supports_rx_timestamp:
            return
        if kfunc.enum == "XDP_METADATA_KFUNC_RX_TIMESTAMP_SUPPORTED":
            from ..bpf import builders as B
            patch.append(B.BPF_MOV64_IMM(B.BPF_REG_0, 1))
        elif kfunc.enum == "XDP_METADATA_KFUNC_RX_TIMESTAMP":
            self.unroll_rx_timestamp(ctx, patch)
        elif kfunc.enum == "XDP_METADATA_KFUNC_EXPORT_TO_SKB":
            ctx.export_to_skb(patch)

    def unroll_rx_timestamp(self, ctx: UnrollContext, patch: BpfPatch) -> None:
        """The driver's RX_TIMESTAMP unroll (R0, R2-R5 only, no stack)."""

    def kfunc_routine(self, kfunc: KfuncSpec) -> "KernelFunction | None":
        """The driver's C routine for a kfunc in the call-based designs (rfc-v1, merged)."""
        if not self.supports_rx_timestamp:
            return None
        if kfunc.enum == "XDP_METADATA_KFUNC_RX_TIMESTAMP_SUPPORTED":
            return supported_routine(self.name)
        if kfunc.field == "rx_timestamp":
            return self.timestamp_routine(status=kfunc.returns == "status")
        return self.other_routine(kfunc)

    def timestamp_routine(self, *, status: bool) -> "KernelFunction | None":
        """rx_timestamp as C: by value (RFC designs) or as status + out-pointer (merged)."""
        return None

    def other_routine(self, kfunc: KfuncSpec) -> "KernelFunction | None":
        """Routines for the merged design's other fields (rx_hash, rx_vlan_tag)."""
        return None

    def __repr__(self) -> str:
        return f"<driver {self.name}>"


def wrapper_layout(name: str, size: int, source: str, **fields: tuple[int, int]) -> StructLayout:
    """A driver wrapper: ``struct xdp_buff xdp`` at 0, the driver's fields after it."""
    from ..kernel.structs import layout
    base = {f: (XDP_BUFF.fields[f].offset, XDP_BUFF.fields[f].size) for f in XDP_BUFF.fields}
    for fname, (off, _) in fields.items():
        if off < XDP_BUFF.size:
            raise ValueError(f"{name}.{fname} at {off} overlaps the xdp_buff at 0..{XDP_BUFF.size}")
    return layout(name, size, source, **base, **fields)
