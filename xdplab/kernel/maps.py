"""BPF maps, as far as loading needs them: an fd the program names, and a kernel object.

``resolve_pseudo_ldimm64`` (linux:kernel/bpf/verifier.c) turns ``ld_imm64`` with
BPF_PSEUDO_MAP_FD into the map's kernel address (``BPF_PSEUDO_MAP_VALUE``: the address of
the value at the given offset).  Map types from include/uapi/linux/bpf.h enum bpf_map_type.
"""
from __future__ import annotations

from dataclasses import dataclass

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_DEVMAP = 14
BPF_MAP_TYPE_CPUMAP = 16
BPF_MAP_TYPE_XSKMAP = 17
MAP_TYPE_NAMES = {1: "hash", 2: "array", 14: "devmap", 16: "cpumap", 17: "xskmap"}


@dataclass(frozen=True)
class BpfMap:
    """A map as user space created it (BPF_MAP_CREATE) and the id/address the kernel gave it."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_id: int
    address: int
