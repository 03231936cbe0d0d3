"""One simulated kernel: a boot (seeded randomness), a netns, kernel memory, symbols, maps.

Nothing here is global: a notebook or a test makes as many kernels as it wants, each
reproducible from its seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..bpf.insn import Program
from .boot import Boot
from .driver import Driver
from .loader import LoadedProgram, bpf_prog_load
from .maps import MAP_TYPE_NAMES, BpfMap
from .netdev import Netns
from .structs import KernelMemory
from .symbols import KernelSymbols
from .uapi import BPF_F_XDP_HAS_METADATA


@dataclass
class Kernel:
    seed: int = 0
    netns: Netns = field(default_factory=Netns)
    memory: KernelMemory = field(default_factory=KernelMemory)
    symbols: KernelSymbols = field(default_factory=KernelSymbols)
    maps: dict[int, BpfMap] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boot = Boot.from_seed(self.seed)
        if 1 not in self.netns.devices:
            self.netns.add("lo", Driver(), ifindex=1)

    def map_create(self, name: str, map_type: int, key_size: int, value_size: int,
                   max_entries: int) -> int:
        """BPF_MAP_CREATE: returns the new map's fd (3, 4, ... as in a fresh process)."""
        if map_type not in MAP_TYPE_NAMES:
            raise ValueError(f"unknown map type {map_type}; known: {MAP_TYPE_NAMES}")
        fd = max(self.maps, default=2) + 1
        region = self.memory.alloc(f"map:{name}", 256 + max(1, value_size) * max_entries, kind="map")
        self.maps[fd] = BpfMap(name, map_type, key_size, value_size, max_entries, len(self.maps) + 1,
                               region.base)
        return fd

    def prog_load(self, program: Program, **attrs) -> LoadedProgram:  # type: ignore[no-untyped-def]
        """BPF_PROG_LOAD (see :func:`xdplab.kernel.loader.bpf_prog_load` for the attributes)."""
        return bpf_prog_load(program, netns=self.netns, symbols=self.symbols, boot=self.boot,
                             maps=self.maps, **attrs)


@dataclass
class BpfProgramObject:
    """libbpf's ``struct bpf_program`` as far as loading goes.

    ``set_ifindex`` is ``bpf_program__set_ifindex`` (only stores prog_ifindex, as libbpf does;
    RFC v2 uses it instead of RFC v1's own open option), ``set_flags`` is
    ``bpf_program__set_flags``.
    """

    name: str
    insns: Program
    prog_flags: int = 0
    prog_ifindex: int = 0

    def set_ifindex(self, ifindex: int) -> None:
        self.prog_ifindex = ifindex

    def set_flags(self, flags: int) -> None:
        self.prog_flags = flags

    def load(self, kernel: Kernel, **attrs) -> LoadedProgram:  # type: ignore[no-untyped-def]
        return kernel.prog_load(self.insns, prog_flags=self.prog_flags,
                                prog_ifindex=self.prog_ifindex, **attrs)


__all__ = ["Kernel", "BpfProgramObject", "BPF_F_XDP_HAS_METADATA"]
