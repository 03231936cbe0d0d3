"""A flat 64-bit address space made of named regions with bounds and permissions.

This is a model, not the kernel's memory: programs see pointers as plain u64 values; a
load or store is legal only when all its bytes fall inside one mapped region with the
right permission.  Regions carry a ``kind`` ("stack", "mem", later "packet", "xdp_buff",
"descriptor", ...) so that every touch can be counted by kind for the cost model.
The addresses are chosen to look like an x86-64 kernel's (direct map, vmalloc'd stacks)
so that dumps read naturally; nothing depends on the exact values.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Layout constants (model choices, shaped like x86-64 Documentation/arch/x86/x86_64/mm.rst).
DIRECT_MAP_BASE = 0xFFFF_8880_0000_0000   # page_offset_base: where `mem` and kernel structs go
STACK_BASE = 0xFFFF_C900_0000_0000        # vmalloc area: per-frame BPF stacks
STACK_STRIDE = 0x1_0000
CODE_BASE = 0xFFFF_FFFF_A000_0000         # program text (addresses of subprograms)
POISON_BASE = 0xDEAD_BEEF_0000_0000       # what R1-R5 hold after a call (see interpreter)


class Region:
    """A mapped range of bytes: ``[base, base + len(data))``."""

    __slots__ = ("name", "base", "data", "writable", "kind", "end")

    def __init__(self, name: str, base: int, data: bytes | bytearray, *, writable: bool = True,
                 kind: str | None = None) -> None:
        self.name = name
        self.base = base
        self.data = bytearray(data)
        self.writable = writable
        self.kind = kind or name
        self.end = base + len(self.data)

    def __repr__(self) -> str:
        rw = "rw" if self.writable else "r-"
        return f"Region({self.name!r}, {self.base:#x}..{self.end:#x}, {rw}, kind={self.kind!r})"


@dataclass
class AddressSpace:
    """The set of mapped regions a program may touch."""

    regions: list[Region] = field(default_factory=list)

    def map(self, region: Region) -> Region:
        """Add a region; overlapping an existing one is a ValueError (a model bug)."""
        for other in self.regions:
            if region.base < other.end and other.base < region.end:
                raise ValueError(f"{region!r} overlaps {other!r}")
        self.regions.append(region)
        return region

    def unmap(self, region: Region) -> None:
        self.regions.remove(region)

    def region_at(self, addr: int) -> Region | None:
        """The region containing address ``addr``, if any."""
        for r in self.regions:
            if r.base <= addr < r.end:
                return r
        return None

    def find(self, addr: int, size: int) -> Region | None:
        """The region containing all of ``[addr, addr + size)``, if any."""
        for r in self.regions:
            if r.base <= addr and addr + size <= r.end:
                return r
        return None

    def read_bytes(self, addr: int, size: int) -> bytes:
        r = self.find(addr, size)
        if r is None:
            raise ValueError(f"{size} bytes at {addr:#x} are not mapped")
        return bytes(r.data[addr - r.base: addr - r.base + size])

    def write_bytes(self, addr: int, data: bytes) -> None:
        r = self.find(addr, len(data))
        if r is None:
            raise ValueError(f"{len(data)} bytes at {addr:#x} are not mapped")
        r.data[addr - r.base: addr - r.base + len(data)] = data
