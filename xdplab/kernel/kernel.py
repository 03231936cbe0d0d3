"""One simulated kernel: a boot (seeded randomness), a netns, kernel memory, symbols, maps.

Nothing here is global: a notebook or a test makes as many kernels as it wants, each
reproducible from its seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Unpack

from ..bpf.errors import BpfVerifyError
from ..bpf.insn import Program
from .boot import Boot
from .driver import Driver
from .loader import LoadedProgram, ProgLoadAttrs, ProgLoadOpts, bpf_prog_load
from .maps import MAP_TYPE_NAMES, BpfMap
from .netdev import Netns
from .structs import KernelMemory
from .symbols import KernelSymbols
from .uapi import BPF_F_XDP_HAS_METADATA, EINVAL, ENODEV


class AttachError(BpfVerifyError):
    """Attaching an XDP program failed; ``errno`` is what the netlink call returns (positive)."""

    def __init__(self, message: str, errno: int) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass
class Kernel:
    seed: int = 0
    netns: Netns = field(default_factory=Netns)
    memory: KernelMemory = field(default_factory=KernelMemory)
    symbols: KernelSymbols = field(default_factory=KernelSymbols)
    maps: dict[int, BpfMap] = field(default_factory=dict)
    attached: dict[int, LoadedProgram] = field(default_factory=dict)   # ifindex -> its XDP program

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

    def prog_load(self, program: Program, **attrs: Unpack[ProgLoadAttrs]) -> LoadedProgram:
        """BPF_PROG_LOAD (see :func:`xdplab.kernel.loader.bpf_prog_load` for the attributes)."""
        return bpf_prog_load(program, netns=self.netns, symbols=self.symbols, boot=self.boot,
                             maps=self.maps, **attrs)

    def dev_xdp_attach(self, ifindex: int, loaded: LoadedProgram) -> None:
        """Attach ``loaded`` as the XDP program of device ``ifindex`` (``dev_xdp_attach``).

        RFC v2 02/14 (net/core/dev.c hunk, 02-...patch:323-331): a program bound at load time
        (``BPF_F_XDP_HAS_METADATA`` + ifindex) remembers the device's ``netdev_ops`` and may
        only be attached to a device with the same ops -- the same driver type, since its
        kfuncs were unrolled by that driver.  Anything else fails with -EINVAL and the
        patch's extack message."""
        dev = self.netns.by_ifindex(ifindex)
        if dev is None:
            raise AttachError(f"no device with ifindex {ifindex} in this netns", ENODEV)
        bound = loaded.device
        if bound is not None and type(bound.driver) is not type(dev.driver):
            raise AttachError("Target device was specified at load time; can only attach to the same device type "
                              f"(bound to {bound.name}, a {bound.driver.name} device; {dev.name} is {dev.driver.name})",
                              EINVAL)
        self.attached[ifindex] = loaded


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

    def load(self, kernel: Kernel, **attrs: Unpack[ProgLoadOpts]) -> LoadedProgram:
        return kernel.prog_load(self.insns, prog_flags=self.prog_flags,
                                prog_ifindex=self.prog_ifindex, **attrs)


__all__ = ["Kernel", "AttachError", "BpfProgramObject", "BPF_F_XDP_HAS_METADATA"]
