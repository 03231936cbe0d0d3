"""AF_XDP: UMEM, the fill and RX rings, and a consumer that reads the metadata.

Shapes from linux:include/uapi/linux/if_xdp.h (``struct xdp_desc { __u64 addr; __u32 len;
__u32 options; }``) and net/xdp/xsk_queue.h (single-producer/single-consumer rings with
free-running u32 ``producer`` / ``consumer`` indices, power-of-two sizes, entry =
index & (size - 1)); libbpf's defaults XSK_UMEM__DEFAULT_FRAME_SIZE = 4096 and 2048-entry
rings.  Copy mode (XDP_COPY, what the RFC selftest uses): ``xsk_copy_xdp`` copies the
metadata and the packet, metadata right in front of the data, and the RX descriptor's
``addr`` points at the data (kernel-facts §9.1) -- so the consumer finds the program's
metadata at ``addr - METADATA_SIZE``, as the selftest reads it ("oh boy, this seems wrong!").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

XSK_UMEM__DEFAULT_FRAME_SIZE = 4096
XDP_PACKET_HEADROOM = 256   # include/uapi/linux/bpf.h
U32 = (1 << 32) - 1


@dataclass(frozen=True)
class XdpDesc:
    addr: int
    len: int
    options: int = 0


_E = TypeVar("_E")


@dataclass
class Ring(Generic[_E]):
    """An SPSC ring with free-running u32 producer/consumer indices; entries of type ``_E``
    (the fill ring carries UMEM addresses, the RX ring ``XdpDesc``)."""

    size: int
    producer: int = 0
    consumer: int = 0
    entries: list[_E | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size <= 0 or self.size & (self.size - 1):
            raise ValueError(f"ring size must be a power of two, got {self.size}")
        self.entries = [None] * self.size

    def count(self) -> int:
        return (self.producer - self.consumer) & U32

    def free(self) -> int:
        return self.size - self.count()

    def produce(self, entry: _E) -> bool:
        if self.free() == 0:
            return False
        self.entries[self.producer & (self.size - 1)] = entry
        self.producer = (self.producer + 1) & U32
        return True

    def consume(self) -> _E | None:
        if self.count() == 0:
            return None
        entry = self.entries[self.consumer & (self.size - 1)]
        self.consumer = (self.consumer + 1) & U32
        return entry


@dataclass
class Umem:
    """``frames`` chunks of ``frame_size`` bytes; an address is an offset into the area."""

    frames: int = 16
    frame_size: int = XSK_UMEM__DEFAULT_FRAME_SIZE
    headroom: int = 0
    area: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self.area = bytearray(self.frames * self.frame_size)

    def read(self, addr: int, length: int) -> bytes:
        if addr < 0 or addr + length > len(self.area):
            raise ValueError(f"{length} bytes at UMEM address {addr:#x} are outside the UMEM")
        return bytes(self.area[addr:addr + length])


@dataclass
class XskSocket:
    """One AF_XDP socket bound to a queue: its UMEM, fill ring and RX ring, and counters."""

    umem: Umem
    fill: Ring[int]
    rx: Ring[XdpDesc]
    rx_dropped: int = 0
    rx_fill_ring_empty: int = 0

    @classmethod
    def create(cls, *, frames: int = 16, ring_size: int = 8, fill_first: int | None = None) -> "XskSocket":
        """Like the RFC selftest: UMEM of ``frames``; the second half posted to the fill ring."""
        umem = Umem(frames)
        sock = cls(umem, Ring(max(ring_size, 1)), Ring(max(ring_size, 1)))
        first = frames // 2 if fill_first is None else fill_first
        for k in range(first, frames):
            sock.fill.produce(k * umem.frame_size)
        return sock

    def receive(self, meta: bytes, data: bytes) -> str | None:
        """xsk_rcv in copy mode: None on success, else why the frame was dropped."""
        if self.rx.free() == 0:
            self.rx_dropped += 1
            return "AF_XDP RX ring full"
        addr = self.fill.consume()
        if addr is None:
            self.rx_fill_ring_empty += 1
            return "AF_XDP fill ring empty"
        data_addr = addr + self.umem.headroom + XDP_PACKET_HEADROOM
        start = data_addr - len(meta)
        self.umem.area[start:data_addr] = meta
        self.umem.area[data_addr:data_addr + len(data)] = data
        self.rx.produce(XdpDesc(data_addr, len(data)))
        return None


@dataclass(frozen=True)
class Received:
    desc: XdpDesc
    data: bytes
    metadata: bytes


def xsk_consume(sock: XskSocket, metadata_size: int) -> Received | None:
    """The user-space consumer: take one RX descriptor, read the metadata the program put
    right before the packet (``data - metadata_size``), give the frame back to the fill ring."""
    desc = sock.rx.consume()
    if desc is None:
        return None
    meta = sock.umem.read(desc.addr - metadata_size, metadata_size) if metadata_size else b""
    out = Received(desc, sock.umem.read(desc.addr, desc.len), meta)
    frame = (desc.addr // sock.umem.frame_size) * sock.umem.frame_size
    sock.fill.produce(frame)
    return out
