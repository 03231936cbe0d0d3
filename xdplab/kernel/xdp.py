"""The XDP receive path of one queue: xdp_buff set-up, the program run, helpers, actions.

Per packet (driver RX loops such as ice_clean_rx_irq; include/net/xdp.h):
``xdp_init_buff(xdp, frame_sz, rxq)``, ``xdp_prepare_buff(xdp, hard_start,
XDP_PACKET_HEADROOM, len, meta_valid)`` -- data_meta = data when the driver supports
metadata, data + 1 otherwise (``xdp_set_data_meta_invalid``) -- then the driver's own
wrapper fields, then ``bpf_prog_run_xdp``.

Helpers (net/core/filter.c):
- ``bpf_xdp_adjust_meta(ctx, delta)`` (kernel-facts §8.1): -ENOTSUPP if the driver has no
  metadata; -EINVAL if the new data_meta falls below data_hard_start + sizeof(struct
  xdp_frame) or above data; -EACCES if the length is not a multiple of 4 or exceeds
  ``meta_max``; else moves data_meta.  ``meta_max`` is 32 here, the limit of the RFC's era
  (later kernels allow 252; the release that changed it is UNCONFIRMED);
- ``bpf_redirect_map(map, key, flags)``: an XSKMAP or CPUMAP entry -> XDP_REDIRECT (the
  target kept in the per-CPU bpf_redirect_info); no entry -> the low two bits of flags.
Actions: REDIRECT to an XSK (copy mode: metadata + data into UMEM), REDIRECT to a CPUMAP
(xdp_frame at data_hard_start with metasize, then an skb built from it on the remote CPU),
PASS (an skb; ``skb_metadata_set`` with the RFC's import), DROP, TX, ABORTED.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, overload

import numpy as np

from ..bpf.errors import BpfError
from ..bpf.machine import M64, CallContext, HelperFn
from ..bpf.memory import Region
from ..bpf.run import RunResult, run_in
from .af_xdp import XDP_PACKET_HEADROOM, XskSocket
from .boot import Boot
from .helpers import TailCall, XdpHelpers
from .loader import LoadedProgram
from .maps import BPF_MAP_TYPE_CPUMAP, BPF_MAP_TYPE_XSKMAP
from .skb import Skb, skb_metadata_set
from .structs import (NET_DEVICE, XDP_BUFF, XDP_FRAME, XDP_RXQ_INFO, KernelMemory)
from .uapi import (BPF_FUNC_redirect_map, BPF_FUNC_xdp_adjust_meta, EACCES, EINVAL, ENOTSUPP,
                   XDP_ABORTED, XDP_ACTION_NAMES, XDP_REDIRECT)

# What deliver() says of a frame that no consumer receives.
DROPPED = "XDP_DROP"
TX = "XDP_TX: sent back out, not received locally"
ABORTED = "XDP_ABORTED"

FRAME_SIZE = 4096        # a page per frame (page_pool), as veth, ice and bnxt's page mode use
META_MAX_RFC_ERA = 32    # xdp_metalen_invalid of the RFC's era (UNCONFIRMED release of 252)


@dataclass
class _PacketState:
    adjust_meta: list[int] = field(default_factory=list)
    redirect: tuple[int, int] | None = None     # (map_type, key)
    trace: list[str] = field(default_factory=list)   # bpf_trace_printk lines (xdplab.kernel.helpers)
    tail_calls: int = 0


@overload
def int_arg(value: int) -> int: ...
@overload
def int_arg(value: np.ndarray) -> np.ndarray: ...


def int_arg(value: int | np.ndarray) -> int | np.ndarray:
    """A helper's ``int`` argument: the low 32 bits of the register, sign-extended (ints or
    int64 arrays alike)."""
    return ((value + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


@overload
def adjust_meta_result(data_meta: int, data: int, hard_start: int, delta: int,
                       meta_max: int) -> tuple[np.ndarray, int]: ...
@overload
def adjust_meta_result(data_meta: np.ndarray, data: np.ndarray, hard_start: np.ndarray, delta: np.ndarray,
                       meta_max: int) -> tuple[np.ndarray, np.ndarray]: ...


def adjust_meta_result(data_meta: int | np.ndarray, data: int | np.ndarray, hard_start: int | np.ndarray,
                       delta: int | np.ndarray, meta_max: int) -> tuple[np.ndarray, int | np.ndarray]:
    """``bpf_xdp_adjust_meta``'s checks (net/core/filter.c), on ints or numpy arrays alike:
    (return code, the new data_meta).  -ENOTSUPP when the driver has no metadata
    (xdp_data_meta_unsupported: data_meta > data); -EINVAL when the new data_meta falls below
    data_hard_start + sizeof(struct xdp_frame) or above data; -EACCES when the length is not a
    multiple of 4 or exceeds ``meta_max`` (xdp_metalen_invalid)."""
    meta = data_meta + delta
    metalen = data - meta
    ret = np.where(data_meta > data, -ENOTSUPP,
                   np.where((meta < hard_start + XDP_FRAME.size) | (meta > data), -EINVAL,
                            np.where(((metalen & 3) != 0) | (metalen > meta_max), -EACCES, 0)))
    return ret, meta


def xdp_buff_init(hard_start: int, packet_len: int, meta_valid: bool, rxq: int) -> tuple[tuple[str, int], ...]:
    """The ``xdp_buff`` fields after ``xdp_init_buff(xdp, FRAME_SIZE, rxq)`` and
    ``xdp_prepare_buff(xdp, hard_start, XDP_PACKET_HEADROOM, len, meta_valid)``
    (include/net/xdp.h@6.1.192:119-140): data at the headroom, data_meta = data when the
    driver supports metadata and data + 1 otherwise (``xdp_set_data_meta_invalid``).  Both
    engines write exactly these."""
    data = hard_start + XDP_PACKET_HEADROOM
    return (("data_hard_start", hard_start), ("data", data), ("data_end", data + packet_len),
            ("data_meta", data if meta_valid else data + 1), ("rxq", rxq), ("txq", 0),
            ("frame_sz", FRAME_SIZE), ("flags", 0))


def redirect_map_result(hit: bool | np.ndarray, flags: int | np.ndarray) -> np.ndarray:
    """``__bpf_xdp_redirect_map`` (include/linux/filter.h@6.1.192:1553): XDP_REDIRECT when the
    map has the key, else the low two bits of ``flags`` (the fallback action).  Ints or arrays.
    MODEL: the kernel's XDP_ABORTED for unknown flag bits is not modelled."""
    return np.where(hit, XDP_REDIRECT, flags & 3)


@dataclass(frozen=True)
class PacketOutcome:
    """What happened to one packet after the program."""

    action: str
    run: RunResult | None
    error: str | None
    meta: bytes
    data: bytes
    adjust_meta: tuple[int, ...]
    redirect: tuple[int, int] | None
    trace: tuple[str, ...] = ()        # this packet's trace_pipe lines (bpf_printk)


class XdpRxQueue:
    """One RX queue of a device running a loaded XDP program."""

    def __init__(self, kernel_memory: KernelMemory, loaded: LoadedProgram, wrapper_region: Region, *,
                 ifindex: int, queue_index: int = 0, meta_valid: bool = True,
                 meta_max: int = META_MAX_RFC_ERA, fast: bool = True,
                 redirect_targets: Mapping[int, Mapping[int, object]] | None = None) -> None:
        self.mem, self.loaded, self.wrapper = kernel_memory, loaded, wrapper_region
        self.targets = dict(redirect_targets or {})
        self.meta_valid, self.meta_max = meta_valid, meta_max
        self.frame = kernel_memory.alloc("rx frame", FRAME_SIZE, kind="packet", align=4096)
        self.dev = kernel_memory.new(NET_DEVICE, "net_device", kind="netdev")
        kernel_memory.write(self.dev, NET_DEVICE, "ifindex", ifindex)
        self.rxq = kernel_memory.new(XDP_RXQ_INFO, "xdp_rxq_info", kind="rxq")
        kernel_memory.write(self.rxq, XDP_RXQ_INFO, "dev", self.dev.base)
        kernel_memory.write(self.rxq, XDP_RXQ_INFO, "queue_index", queue_index)
        self.state = _PacketState()
        # map, trace, tail-call and ringbuf helpers: xdplab.kernel.helpers
        self._helpers: dict[int, HelperFn] = {**XdpHelpers(loaded.maps, lambda: self.state).table(),
                         BPF_FUNC_xdp_adjust_meta: self._adjust_meta, BPF_FUNC_redirect_map: self._redirect_map}
        self.env = loaded.env(self._helpers)
        self.verified = loaded.variant == "fixed"
        self.fast = fast

    # ------------------------------------------------------------------ helpers
    def _adjust_meta(self, ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        rd = lambda f: ctx.read(r1 + XDP_BUFF.offsetof(f), 8)    # noqa: E731
        codes, meta = adjust_meta_result(rd("data_meta"), rd("data"), rd("data_hard_start"), int_arg(r2),
                                         self.meta_max)
        ret = int(codes)
        if ret == 0:
            ctx.write(r1 + XDP_BUFF.offsetof("data_meta"), 8, meta)
        self.state.adjust_meta.append(ret)
        return ret & M64

    def _redirect_map(self, ctx: CallContext, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        m = next((m for m in self.loaded.maps.values() if m.address == r1), None)
        key = r2 & 0xFFFFFFFF
        hit = False
        if m is not None and m.map_type in (BPF_MAP_TYPE_XSKMAP, BPF_MAP_TYPE_CPUMAP) \
                and key in self.targets.get(m.map_id, {}):
            hit = True
            self.state.redirect = (m.map_type, key)
        return int(redirect_map_result(hit, r3))

    # ------------------------------------------------------------------ one packet
    def xdp_prepare_buff(self, packet: bytes) -> None:
        """xdp_init_buff + xdp_prepare_buff into the wrapper's leading xdp_buff."""
        if len(packet) > FRAME_SIZE - XDP_PACKET_HEADROOM - 320:
            raise ValueError(f"packet of {len(packet)} bytes does not fit a {FRAME_SIZE}-byte frame")
        base = self.frame.base
        self.frame.data[:XDP_PACKET_HEADROOM] = bytes(XDP_PACKET_HEADROOM)
        self.frame.data[XDP_PACKET_HEADROOM:XDP_PACKET_HEADROOM + len(packet)] = packet
        for name, value in xdp_buff_init(base, len(packet), self.meta_valid, self.rxq.base):
            self.mem.write(self.wrapper, XDP_BUFF, name, value)

    def write_driver_metadata(self, meta: bytes) -> None:
        """A driver that prepends metadata itself (BTF hints): bytes before data, data_meta moved."""
        data = self.mem.read(self.wrapper, XDP_BUFF, "data")
        off = data - self.frame.base
        self.frame.data[off - len(meta):off] = meta
        self.mem.write(self.wrapper, XDP_BUFF, "data_meta", data - len(meta))

    def run(self, packet: bytes, driver_metadata: bytes = b"") -> PacketOutcome:
        """Set up the xdp_buff (the driver has filled its wrapper fields), run the program."""
        self.state = _PacketState()
        self.xdp_prepare_buff(packet)
        if driver_metadata:
            self.write_driver_metadata(driver_metadata)
        prog, env = self.loaded, self.env
        while True:
            try:
                res = run_in(prog.xlated, self.mem.space, self.wrapper.base, env=env,
                             verified=self.verified, fast=self.fast)
                action_code, error = res.r0, None
            except TailCall as jump:     # bpf_tail_call: the target runs on the same ctx, no return
                prog = jump.target
                env = prog.env(self._helpers)
                continue
            except BpfError as exc:      # the simulated kernel oopses on this packet; we report it
                res, action_code, error = None, XDP_ABORTED, f"{type(exc).__name__}: {exc}"
            break
        rd = lambda f: self.mem.read(self.wrapper, XDP_BUFF, f)   # noqa: E731
        data, data_end, data_meta = rd("data"), rd("data_end"), rd("data_meta")
        off = self.frame.base
        payload = bytes(self.frame.data[data - off:data_end - off])
        meta = bytes(self.frame.data[data_meta - off:data - off]) if data_meta <= data else b""
        name = XDP_ACTION_NAMES.get(action_code, f"invalid({action_code})")
        if action_code not in XDP_ACTION_NAMES:
            name = "ABORTED"           # bpf_warn_invalid_xdp_action, then the ABORTED path
        return PacketOutcome(name, res, error, meta, payload, tuple(self.state.adjust_meta),
                             self.state.redirect, tuple(self.state.trace))


def deliver(outcome: PacketOutcome, *, xsks: Mapping[int, XskSocket], boot: Boot,
            dev_name: str = "") -> tuple[str, Skb | None, str | None]:
    """What happens after the program: (where the packet went, the skb if any, reason if dropped)."""
    if outcome.error:
        return "aborted", None, outcome.error
    if outcome.action == "REDIRECT" and outcome.redirect is not None:
        map_type, key = outcome.redirect
        if map_type == BPF_MAP_TYPE_XSKMAP:
            why = xsks[key].receive(outcome.meta, outcome.data)
            return ("af_xdp", None, None) if why is None else ("dropped", None, why)
        # CPUMAP: xdp_convert_buff_to_frame keeps metasize; __xdp_build_skb_from_frame then
        # calls skb_metadata_set(skb, xdpf->metasize) on the remote CPU.
        skb = skb_metadata_set(Skb(outcome.data, dev=dev_name), outcome.meta, boot)
        return "cpumap", skb, None
    if outcome.action == "PASS":
        skb = skb_metadata_set(Skb(outcome.data, dev=dev_name), outcome.meta, boot)
        return "stack", skb, None
    if outcome.action == "DROP":
        return "dropped", None, DROPPED
    if outcome.action == "TX":
        return "tx", None, TX
    return "aborted", None, ABORTED


__all__ = ["XdpRxQueue", "PacketOutcome", "deliver", "adjust_meta_result", "int_arg", "FRAME_SIZE",
           "xdp_buff_init", "redirect_map_result",
           "META_MAX_RFC_ERA", "DROPPED", "TX", "ABORTED"]
