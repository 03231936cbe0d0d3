"""Kernel struct layouts (x86-64, LP64, no randstruct), as data with their sources.

A :class:`StructLayout` names its fields' offsets and sizes; :class:`KernelMemory` places
instances in the eBPF machine's address space so that unrolled code reads them exactly as
the kernel would.  Offsets marked MODEL are config-dependent in a real kernel and chosen
here (nothing in the RFC depends on their value).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

import numpy as np

from ..bpf.memory import DIRECT_MAP_BASE, AddressSpace, Region


@dataclass(frozen=True)
class Field:
    offset: int
    size: int


@dataclass(frozen=True)
class StructLayout:
    """A C struct: name, total size, and fields name -> (offset, size)."""

    name: str
    size: int
    fields: Mapping[str, Field]
    source: str

    def offsetof(self, name: str) -> int:
        try:
            return self.fields[name].offset
        except KeyError:
            raise ValueError(f"struct {self.name} has no field {name!r}; fields: "
                             f"{', '.join(self.fields)}") from None

    def sizeof(self, name: str) -> int:
        return self.fields[name].size


def layout(name: str, size: int, source: str, **fields: tuple[int, int]) -> StructLayout:
    return StructLayout(name, size, {k: Field(*v) for k, v in fields.items()}, source)


# struct xdp_md (UAPI, all __u32): include/uapi/linux/bpf.h
XDP_MD = layout("xdp_md", 24, "linux:include/uapi/linux/bpf.h struct xdp_md",
                data=(0, 4), data_end=(4, 4), data_meta=(8, 4), ingress_ifindex=(12, 4),
                rx_queue_index=(16, 4), egress_ifindex=(20, 4))

# struct xdp_buff, 56 bytes: include/net/xdp.h (RFC era, 6.1); kernel-facts §2.
XDP_BUFF = layout("xdp_buff", 56, "linux:include/net/xdp.h struct xdp_buff",
                  data=(0, 8), data_end=(8, 8), data_meta=(16, 8), data_hard_start=(24, 8),
                  rxq=(32, 8), txq=(40, 8), frame_sz=(48, 4), flags=(52, 4))

# struct xdp_frame, 40 bytes, stored at data_hard_start: include/net/xdp.h; kernel-facts §2.
XDP_FRAME = layout("xdp_frame", 40, "linux:include/net/xdp.h struct xdp_frame",
                   data=(0, 8), len=(8, 2), headroom=(10, 2), metasize=(12, 4), mem=(16, 8),
                   dev_rx=(24, 8), frame_sz=(32, 4), flags=(36, 4))

# struct xdp_rxq_info: include/net/xdp.h: dev, queue_index, reg_state, mem, napi_id, frag_size,
# ____cacheline_aligned (64 bytes).
XDP_RXQ_INFO = layout("xdp_rxq_info", 64, "linux:include/net/xdp.h struct xdp_rxq_info",
                      dev=(0, 8), queue_index=(8, 4), reg_state=(12, 4), mem=(16, 8),
                      napi_id=(24, 4), frag_size=(28, 4))

# struct xdp_txq_info: include/net/xdp.h: { struct net_device *dev; }
XDP_TXQ_INFO = layout("xdp_txq_info", 8, "linux:include/net/xdp.h struct xdp_txq_info", dev=(0, 8))

# struct net_device (include/linux/netdevice.h@6.1.192:2042): only ifindex is read by BPF
# (xdp_convert_ctx_access). Its offset depends on the kernel config: 0xD8 in a 0x900-byte
# struct as gcc lays it out for x86_64 defconfig + the RFC drivers (data/kernel-layouts.json,
# tools/kernel_layouts.py).
NET_DEVICE = layout("net_device", 0x900, "linux:include/linux/netdevice.h struct net_device "
                    "(x86_64 defconfig, data/kernel-layouts.json; config-dependent)", ifindex=(0xD8, 4))

# struct sk_buff: tstamp at +32, confirmed by the PATCH v1 disassembly of veth's unroll
# "r0 = *(u64 *)(r5 +32)" (lore 20221115030210.3159213-5-sdf, kernel-facts §2); 232 bytes in 6.1.
SK_BUFF = layout("sk_buff", 232, "linux:include/linux/skbuff.h struct sk_buff (tstamp @32 per "
                 "RFC PATCH v1 disassembly)", tstamp=(32, 8))


@dataclass
class KernelMemory:
    """Places struct instances and buffers in an address space (the simulated kernel heap).

    Addresses grow from the direct-map base; each object is its own region, so an access
    past an object's end is caught and named.
    """

    space: AddressSpace = field(default_factory=AddressSpace)
    next_addr: int = DIRECT_MAP_BASE + 0x100_0000

    def alloc(self, name: str, size: int, *, kind: str | None = None, writable: bool = True,
              align: int = 64) -> Region:
        addr = (self.next_addr + align - 1) // align * align
        self.next_addr = addr + size
        return self.space.map(Region(name, addr, bytes(size), writable=writable, kind=kind or name))

    def new(self, layout: StructLayout, name: str | None = None, *, kind: str | None = None,
            size: int | None = None) -> Region:
        """A zeroed instance of ``layout`` (``size`` overrides, e.g. for a driver wrapper)."""
        return self.alloc(name or layout.name, size or layout.size, kind=kind or layout.name)

    @staticmethod
    def write(region: Region, layout: StructLayout, fieldname: str, value: int) -> None:
        f = layout.fields[fieldname]
        region.data[f.offset:f.offset + f.size] = (value & ((1 << (8 * f.size)) - 1)).to_bytes(f.size, "little")

    @staticmethod
    def read(region: Region, layout: StructLayout, fieldname: str) -> int:
        f = layout.fields[fieldname]
        return int.from_bytes(region.data[f.offset:f.offset + f.size], "little")


# ------------------------------------------------------------------ many instances at once
def put_field(rows: np.ndarray, lay: StructLayout, name: str, values: object,
              byteorder: Literal["little", "big"] = "little") -> None:
    """Store ``values`` (an int for every row, or one per row) into field ``name`` of each
    row of ``rows`` (an ``(n, lay.size)`` uint8 array): the field's bytes in the given byte
    order, truncated to the field's size as a C store would."""
    f = lay.fields[name]
    v = np.asarray(values)
    if v.ndim == 0:
        word = (int(v) & ((1 << (8 * f.size)) - 1)).to_bytes(f.size, byteorder)
        rows[:, f.offset:f.offset + f.size] = np.frombuffer(word, np.uint8)
        return
    typed = _typed_column(rows, f, byteorder)
    if typed is not None:                    # an aligned field: one strided store, no temporaries
        typed[:] = v.astype(np.uint64, copy=False)
        return
    raw = v.astype(np.uint64).astype("<u8").view(np.uint8).reshape(-1, 8)[:, :f.size]
    rows[:, f.offset:f.offset + f.size] = raw if byteorder == "little" else raw[:, ::-1]


def get_field(rows: np.ndarray, lay: StructLayout, name: str,
              byteorder: Literal["little", "big"] = "little") -> np.ndarray:
    """Field ``name`` of each row of ``rows`` as uint64 (the inverse of :func:`put_field`)."""
    f = lay.fields[name]
    typed = _typed_column(rows, f, byteorder)
    if typed is not None:
        return typed.astype(np.uint64)
    raw = rows[:, f.offset:f.offset + f.size]
    word = np.zeros((rows.shape[0], 8), np.uint8)
    word[:, :f.size] = raw if byteorder == "little" else raw[:, ::-1]
    return word.view("<u8").reshape(-1).copy()


def _typed_column(rows: np.ndarray, f: Field, byteorder: str) -> np.ndarray | None:
    """A typed view of one field across contiguous rows when it is little-endian and naturally
    aligned (offset and row width multiples of its size); None otherwise."""
    if byteorder != "little" or f.size not in (1, 2, 4, 8) or f.offset % f.size or rows.ndim != 2 \
            or rows.shape[1] % f.size or not rows.flags.c_contiguous:
        return None
    return rows.view(f"<u{f.size}")[:, f.offset // f.size]
