"""The driver interface: what the kernel asks of a NIC driver, as ``net_device_ops`` is.

RFC v2 adds ``ndo_unroll_kfunc(prog, func_id, patch)`` to ``struct net_device_ops`` (02/14,
kernel-facts §5); the merged design has ``struct xdp_metadata_ops`` with ``xmo_*`` callbacks
(§12.2).  A :class:`Driver` provides both, plus the C routine it would be called for in the
call-based designs, the layout of its ``xdp_buff`` wrapper (``xdp_buff`` first, so the ctx
pointer is the wrapper's address: container_of, RFC v2 cover letter), and its receive path.

This module lives in the kernel layer because the kernel defines the interface; the drivers
(``xdplab.drivers``) implement it.  The kernel imports nothing from them.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import numpy as np

from ..bpf import builders as B
from ..bpf.lanes import Lanes, LaneState, Mask, U64Array
from ..bpf.machine import CallContext
from ..bpf.patch import BpfPatch
from .kfuncs import FIELD_KFUNC_ENUMS, NEWEST_KERNEL, KfuncSpec
from .structs import XDP_BUFF, StructLayout, layout
from .symbols import KernelFunction, OpCost

if TYPE_CHECKING:  # pragma: no cover
    from .structs import KernelMemory
    from .symbols import KernelSymbols


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


@dataclass(frozen=True)
class RxSettings:
    """How a receive path is set up for a run: the variant and the fault injection of the
    driver's clock (stalls of its refresh task, PHC steps / frequency changes, drift).  The
    receive paths' clocks have no read jitter (the arrivals' jitter is the trace's)."""

    variant: str = "fixed"
    stalls: tuple[tuple[int, int], ...] = ()
    clock_events: tuple[Any, ...] = ()
    ppb: float = 0.0


class RxPath(Protocol):
    """One driver's receive step, scalar: the hardware writes its descriptor from the clock,
    the driver fills its wrapper.  ``receive`` returns the packet's ideal ``hw_time_ns``;
    ``reference_timestamp()`` is what the driver's C routine reports for it."""

    wrapper: Any

    def receive(self, index: int, t_ns: int, length: int) -> int: ...
    def reference_timestamp(self) -> int: ...


class LaneRx(Protocol):
    """One driver's receive step for many packets at once (the lane engine): given the true
    arrival times, fill the driver's lane regions and wrapper columns through ``queue`` and
    return (ideal hw_time_ns, reference timestamp) arrays.  ``queue`` is the lane engine's
    XDP queue (it offers ``driver_region``, ``wrapper``, ``frame_len``).  Whether the driver
    supports metadata is the driver's own ``Driver.meta_valid``, not the receive path's."""

    def receive_lanes(self, queue: Any, t: "np.ndarray") -> "tuple[np.ndarray, np.ndarray]": ...


def supported_routine(driver_name: str) -> KernelFunction:
    """``*_supported`` as a C routine (the call designs): every RFC v2 driver answers 1."""
    def fn(ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        return 1
    def lanes(st: LaneState, lanes: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
        return np.ones(len(lanes), np.uint64)
    return KernelFunction(f"{driver_name}_xdp_rx_timestamp_supported", fn,
                          "returns 1 (every RFC v2 driver unrolls it to r0 = 1)", OpCost(insns={"alu64": 1}), lanes)


class Driver:
    """Base class: the generic device (``lo``), which unrolls nothing and offers no routines.

    A driver of the RFC sets ``supports_rx_timestamp`` and provides
    :meth:`unroll_rx_timestamp` (RFC v2) and :meth:`timestamp_routine` (the call designs); the
    dispatch over kfuncs is the same for all of them: ``*_supported`` unrolls to ``r0 = 1``
    (every RFC v2 driver does, kernel-facts §5) and ``export_to_skb`` to the kernel's generic
    unroll.

    ``has_ndo_unroll_kfunc``: whether the driver's ``net_device_ops`` has the RFC's hook at
    all (RFC v2 02/14 calls it without a NULL check: a driver without it is a posted defect).
    ``meta_valid``: what the driver passes to ``xdp_prepare_buff`` in the RFC's era (mlx4 and
    bnxt: false, so ``bpf_xdp_adjust_meta`` fails with -ENOTSUPP).
    """

    name = "generic"
    wrapper: StructLayout = XDP_BUFF
    source = ""
    supports_rx_timestamp = False
    has_ndo_unroll_kfunc = True
    meta_valid = True

    def unroll_kfunc(self, ctx: UnrollContext, kfunc: KfuncSpec, patch: BpfPatch) -> None:
        """``ndo_unroll_kfunc``: append the kfunc's inline code to ``patch`` (or nothing)."""
        if kfunc.enum in FIELD_KFUNC_ENUMS:         # MODEL: the RFC pattern for the other fields
            self.unroll_field(ctx, kfunc, patch)
            return
        if not self.supports_rx_timestamp:
            return
        if kfunc.enum == "XDP_METADATA_KFUNC_RX_TIMESTAMP_SUPPORTED":
            patch.append(B.BPF_MOV64_IMM(B.BPF_REG_0, 1))
        elif kfunc.enum == "XDP_METADATA_KFUNC_RX_TIMESTAMP":
            self.unroll_rx_timestamp(ctx, patch)
        elif kfunc.enum == "XDP_METADATA_KFUNC_EXPORT_TO_SKB":
            ctx.export_to_skb(patch)

    def unroll_rx_timestamp(self, ctx: UnrollContext, patch: BpfPatch) -> None:
        """The driver's RX_TIMESTAMP unroll (R0, R2-R5 only, no stack)."""

    def unroll_field(self, ctx: UnrollContext, kfunc: KfuncSpec, patch: BpfPatch) -> None:
        """RFC v2's pattern extended to rx_hash / rx_vlan_tag (MODEL, issue 16): the
        ``*_supported`` query and the by-value getter.  Default: nothing (the kernel's
        default unroll, ``r0 = 0``: not supported, no value)."""

    def kfunc_routine(self, kfunc: KfuncSpec) -> KernelFunction | None:
        """The driver's C routine for a kfunc in the call-based designs (patch-v3, merged).
        Merged: only the ``xmo_*`` ops the driver had in ``self.kernel`` (:attr:`merged_ops`)."""
        if not self.supports_rx_timestamp:
            return None
        if kfunc.returns == "status" and kfunc.field is not None and self.merged_ops:
            since = self.merged_ops.get(kfunc.field)
            if since is None or self.kernel < since:
                return None
        if kfunc.enum == "XDP_METADATA_KFUNC_RX_TIMESTAMP_SUPPORTED":
            return supported_routine(self.name)
        if kfunc.field == "rx_timestamp":
            return self.timestamp_routine(status=kfunc.returns == "status")
        return self.other_routine(kfunc)

    def timestamp_routine(self, *, status: bool) -> KernelFunction | None:
        """rx_timestamp as C: by value (RFC designs) or as status + out-pointer (merged)."""
        return None

    def other_routine(self, kfunc: KfuncSpec) -> KernelFunction | None:
        """Routines for the merged design's other fields (rx_hash, rx_vlan_tag)."""
        return None

    def no_timestamp_note(self, variant: str) -> str | None:
        """Why this driver's ``variant`` delivers no timestamp at all, when it is by
        construction (e.g. posted bnxt runs the program on a copy of the xdp_buff); None
        otherwise.  The run's reason column shows it."""
        return None

    # ---- metadata fields beyond the timestamp (issue 16) --------------------------------
    merged_ops: Mapping[str, tuple[int, int]] = MappingProxyType({})
    """field -> the kernel release whose ``xdp_metadata_ops`` first had the driver's op."""
    kernel: tuple[int, int] = NEWEST_KERNEL
    """The kernel release modelled for the merged design (``Lab(kernel=...)``)."""

    def receive_meta(self, rx: "RxPath", index: int, flow: Any) -> None:
        """Write what the NIC reports for ``flow`` (an :class:`~xdplab.kernel.rxmeta.RxFlow`:
        RSS hash and class, the stripped VLAN tag) into what ``rx.receive(index, ...)`` just
        wrote (descriptor bits, skb fields).  Default: a device that reports none."""

    def receive_meta_lanes(self, queue: Any, flow: Any) -> None:
        """:meth:`receive_meta` for every lane of ``queue`` (all of one flow)."""

    def rss_type_of(self, flow: Any) -> int | None:
        """The ``enum xdp_rss_hash_type`` this driver's rx_hash op reports for ``flow``
        (None: it has no hash op)."""
        return None

    def struct_pointers(self) -> Mapping[tuple[str, str], StructLayout]:
        """Pointer fields of the driver's structs and what they point to:
        ``(layout name, field) -> pointee layout`` (for listings that name each access)."""
        return MappingProxyType({})

    def rx_path(self, mem: "KernelMemory", settings: RxSettings) -> RxPath:
        """The scalar receive path of this driver in ``mem``."""
        raise NotImplementedError(f"{self.name} has no receive path")

    def lane_rx(self, settings: RxSettings) -> LaneRx:
        """The lane engine's receive path of this driver."""
        raise NotImplementedError(f"{self.name} has no lane receive path")

    def __repr__(self) -> str:
        return f"<driver {self.name}>"


def wrapper_layout(name: str, size: int, source: str, **fields: tuple[int, int]) -> StructLayout:
    """A driver wrapper: ``struct xdp_buff xdp`` at 0, the driver's fields after it."""
    base = {f: (XDP_BUFF.fields[f].offset, XDP_BUFF.fields[f].size) for f in XDP_BUFF.fields}
    for fname, (off, _) in fields.items():
        if off < XDP_BUFF.size:
            raise ValueError(f"{name}.{fname} at {off} overlaps the xdp_buff at 0..{XDP_BUFF.size}")
    return layout(name, size, source, **base, **fields)


def call_scalar_rest(st: LaneState, lanes: Lanes, args: list[U64Array], done: Mask, out: U64Array) -> U64Array:
    """Finish a driver's vector routine: the lanes not ``done`` (an unmapped address, a NULL
    pointer, a held lock...) run the scalar routine through :meth:`LaneState.call_scalar`, so
    they fail exactly as on the scalar machine; ``out`` (filled in place) is returned."""
    rest = np.nonzero(~done)[0]
    if len(rest):
        out[rest] = st.call_scalar(lanes[rest], [a[rest] for a in args])
    return out
