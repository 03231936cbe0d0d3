"""BPF maps: an fd the program names, a kernel object, and the contents the helpers reach.

``resolve_pseudo_ldimm64`` (linux:kernel/bpf/verifier.c@6.1.192) turns ``ld_imm64`` with
BPF_PSEUDO_MAP_FD into the map's kernel address, and BPF_PSEUDO_MAP_VALUE into the address of
the value at the given offset (``map->ops->map_direct_value_addr``: only ARRAY maps have one,
kernel/bpf/arraymap.c array_map_direct_value_addr, which refuses an offset past value_size).
Map types: include/uapi/linux/bpf.h@6.1.192 enum bpf_map_type.

MODEL: a map's kernel region is a 256-byte header followed by its values (ARRAY: value i at
``MAP_VALUES_AT + i * value_size``; HASH/LRU: one value slot per entry; RINGBUF: the data area
of ``max_entries`` bytes).  What is not bytes (which key owns which slot, LRU order, the
programs of a PROG_ARRAY, the ring's producer/consumer positions) lives in the map's
:class:`MapStore`, shared by every queue of the kernel.  One CPU is modelled: PERCPU_ARRAY and
PERCPU_HASH hold one copy, the one CPU 0 sees.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# enum bpf_map_type, include/uapi/linux/bpf.h@6.1.192:922 (HASH :924 ... RINGBUF :950)
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_DEVMAP = 14
BPF_MAP_TYPE_CPUMAP = 16
BPF_MAP_TYPE_XSKMAP = 17
BPF_MAP_TYPE_RINGBUF = 27
MAP_TYPE_NAMES = MappingProxyType({
    1: "hash", 2: "array", 3: "prog_array", 5: "percpu_hash", 6: "percpu_array", 9: "lru_hash",
    14: "devmap", 16: "cpumap", 17: "xskmap", 27: "ringbuf"})
ARRAY_LIKE = frozenset({BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY})
HASH_LIKE = frozenset({BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_HASH})

MAP_VALUES_AT = 256          # MODEL: values start after a 256-byte header in the map's region
PAGE_SIZE = 4096             # x86: arch/x86/include/asm/page_types.h@6.1.192:10-11
# include/uapi/linux/bpf.h@6.1.192:5832-5834: BPF_RINGBUF_BUSY_BIT (1U << 31), BPF_RINGBUF_DISCARD_BIT
# (1U << 30), BPF_RINGBUF_HDR_SZ 8 (u32 len + u32 pg_off before each sample).
BPF_RINGBUF_BUSY_BIT = 1 << 31
BPF_RINGBUF_DISCARD_BIT = 1 << 30
BPF_RINGBUF_HDR_SZ = 8


class MapStore:
    """The non-byte state of one map (mutable on purpose: maps are shared kernel objects).

    ``slots``: HASH/LRU key -> value slot index (LRU: least recently used first);
    ``progs``: PROG_ARRAY index -> loaded program; ``ring_*``: RINGBUF positions (bytes, as
    the kernel's producer_pos / consumer_pos count them) and the outstanding reservations."""

    def __init__(self) -> None:
        self.slots: OrderedDict[bytes, int] = OrderedDict()
        self.progs: dict[int, Any] = {}
        self.ring_prod = 0
        self.ring_cons = 0
        self.ring_pending: dict[int, int] = {}     # sample address -> position of its header

    def __repr__(self) -> str:
        return f"MapStore({len(self.slots)} keys, {len(self.progs)} progs)"


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
    store: MapStore = field(default_factory=MapStore, compare=False, repr=False)

    @property
    def values_address(self) -> int:
        return self.address + MAP_VALUES_AT


def map_create_problem(map_type: int, key_size: int, value_size: int, max_entries: int) -> str | None:
    """The attribute checks of the map types' ``map_alloc_check`` (None if fine): what the kernel
    refuses with -EINVAL at BPF_MAP_CREATE.  Sources (6.1.192): kernel/bpf/arraymap.c
    array_map_alloc_check (key_size 4, value_size > 0, max_entries > 0) and prog_fd_array_alloc_check
    (value_size 4); kernel/bpf/hashtab.c htab_map_alloc_check; kernel/bpf/ringbuf.c
    ringbuf_map_alloc (key and value size 0, max_entries a power of 2 and page aligned)."""
    if map_type not in MAP_TYPE_NAMES:
        return f"map type {map_type} is not simulated (simulated: {', '.join(MAP_TYPE_NAMES.values())})"
    name = MAP_TYPE_NAMES[map_type]
    if max_entries <= 0:
        return f"{name} map needs max_entries > 0"
    if map_type == BPF_MAP_TYPE_RINGBUF:
        if key_size or value_size:
            return "ringbuf map needs key_size 0 and value_size 0"
        if max_entries & (max_entries - 1) or max_entries % PAGE_SIZE:
            return f"ringbuf size {max_entries} is not a power of 2 and a multiple of the page size"
        return None
    if map_type in ARRAY_LIKE or map_type == BPF_MAP_TYPE_PROG_ARRAY:
        if key_size != 4:
            return f"{name} map needs key_size 4, not {key_size}"
        if map_type == BPF_MAP_TYPE_PROG_ARRAY and value_size != 4:
            return f"prog_array map needs value_size 4, not {value_size}"
    if value_size <= 0 and map_type != BPF_MAP_TYPE_PROG_ARRAY:
        return f"{name} map needs value_size > 0"
    if map_type in HASH_LIKE and key_size <= 0:
        return f"{name} map needs key_size > 0"
    return None


def region_size(map_type: int, value_size: int, max_entries: int) -> int:
    """Bytes of the map's kernel region (MODEL, see the module docstring)."""
    return MAP_VALUES_AT + max(1, value_size) * max_entries


def direct_value_addr(m: BpfMap, offset: int) -> int:
    """``map_direct_value_addr`` for BPF_PSEUDO_MAP_VALUE, with resolve_pseudo_ldimm64's messages
    (kernel/bpf/verifier.c@6.1.192:13178-13190): only ARRAY maps have the op
    (kernel/bpf/arraymap.c@6.1.192:177 array_map_direct_value_addr), which wants max_entries 1
    (-ENOTSUPP) and an offset inside the value (-EINVAL).  A ValueError carries the message."""
    if m.map_type not in ARRAY_LIKE:
        raise ValueError(f"no direct value access support for this map type (map {m.name!r}, "
                         f"{MAP_TYPE_NAMES.get(m.map_type, m.map_type)})")
    if m.max_entries != 1 or not 0 <= offset < m.value_size:
        raise ValueError(f"invalid access to map value pointer, value_size={m.value_size} off={offset} "
                         f"(map {m.name!r}, max_entries {m.max_entries})")
    return m.values_address + offset


def prog_array_update(m: BpfMap, index: int, loaded: Any) -> None:
    """BPF_MAP_UPDATE_ELEM on a PROG_ARRAY (user space stores a program fd; here the loaded
    program itself).  ``loaded=None`` deletes the entry."""
    if m.map_type != BPF_MAP_TYPE_PROG_ARRAY:
        raise ValueError(f"map {m.name!r} is not a prog_array")
    if not 0 <= index < m.max_entries:
        raise ValueError(f"prog_array {m.name!r}: index {index} >= max_entries {m.max_entries}")
    if loaded is None:
        m.store.progs.pop(index, None)
    else:
        m.store.progs[index] = loaded


def ringbuf_consume(space: Any, m: BpfMap) -> list[bytes]:
    """User space's ``ring_buffer__consume``: every submitted sample since the last call, in
    order; discarded samples are skipped; stops at a sample still reserved (BUSY), as libbpf's
    ringbuf_process_ring does (tools/lib/bpf/ringbuf.c@6.1.192)."""
    if m.map_type != BPF_MAP_TYPE_RINGBUF:
        raise ValueError(f"map {m.name!r} is not a ringbuf")
    st = m.store
    out = []
    size = m.max_entries
    while st.ring_cons < st.ring_prod:
        at = m.values_address + st.ring_cons % size
        hdr = int.from_bytes(space.read_bytes(at, 4), "little")
        if hdr & BPF_RINGBUF_BUSY_BIT:
            break
        length = hdr & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)
        if not hdr & BPF_RINGBUF_DISCARD_BIT:
            out.append(space.read_bytes(at + BPF_RINGBUF_HDR_SZ, length))
        st.ring_cons += (BPF_RINGBUF_HDR_SZ + length + 7) // 8 * 8
    return out
