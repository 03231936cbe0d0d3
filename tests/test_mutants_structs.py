"""Tests written for the mutants of xdplab/kernel/structs.py that survived `make mutate`
(benchmarks/results/mutation.json)."""
from __future__ import annotations

import pytest

from xdplab.kernel.structs import XDP_BUFF, XDP_MD


@pytest.mark.parametrize("layout, name", [(XDP_BUFF, "data_len"), (XDP_MD, "rx_timestamp"),
                                          (XDP_BUFF, "")])
def test_an_unknown_field_is_a_value_error_naming_struct_and_field(layout, name):
    """The project's rule for bad input: a typed error naming the field, never a bare KeyError."""
    with pytest.raises(ValueError) as info:
        layout.offsetof(name)
    assert not isinstance(info.value, KeyError)
    assert f"struct {layout.name}" in str(info.value) and repr(name) in str(info.value)


def test_the_xdp_buff_fields_the_rfc_reads_are_where_the_kernel_has_them():
    """struct xdp_buff (include/net/xdp.h@6.1.192:76-86): data, data_end, data_meta,
    data_hard_start, rxq, txq (8-byte pointers from offset 0), then frame_sz and flags (u32)."""
    assert [(f, XDP_BUFF.offsetof(f)) for f in ("data", "data_end", "data_meta", "data_hard_start",
                                                "rxq", "txq", "frame_sz", "flags")] == \
        [("data", 0), ("data_end", 8), ("data_meta", 16), ("data_hard_start", 24), ("rxq", 32),
         ("txq", 40), ("frame_sz", 48), ("flags", 52)]
    assert XDP_BUFF.size == 56


def test_put_field_on_many_rows_stores_a_c_store_of_each_value():
    """A field that is not naturally aligned (4 bytes at offset 1) and a big-endian one
    (network order, e.g. a descriptor's __be32) take the byte path: each row gets the value's
    low `size` bytes, in the given order, and nothing else of the row changes."""
    import numpy as np
    from xdplab.kernel.structs import get_field, layout, put_field

    lay = layout("t", 8, "test", odd=(1, 4), be=(4, 2))
    rows = np.full((3, 8), 0xEE, np.uint8)
    put_field(rows, lay, "odd", np.array([0x11223344, 0x1_0000_00FF, 5]))
    assert rows[:, 1:5].tolist() == [[0x44, 0x33, 0x22, 0x11], [0xFF, 0, 0, 0], [5, 0, 0, 0]]
    assert rows[:, 0].tolist() == [0xEE] * 3 and rows[:, 5:].tolist() == [[0xEE] * 3] * 3
    assert get_field(rows, lay, "odd").tolist() == [0x11223344, 0xFF, 5]
    rows = np.zeros((2, 8), np.uint8)
    put_field(rows, lay, "be", np.array([0x0102, 0xABCD]), byteorder="big")
    assert rows[:, 4:6].tolist() == [[0x01, 0x02], [0xAB, 0xCD]]
    assert get_field(rows, lay, "be", byteorder="big").tolist() == [0x0102, 0xABCD]


def test_kernel_memory_allocations_are_aligned_and_disjoint():
    """KernelMemory.alloc places each region at the next multiple of ``align`` past the last
    one (64 by default: a cache line, as the drivers' rings and kmalloc'd structs are), so
    base % align == 0 and regions never overlap, whatever the sizes before."""
    from xdplab.kernel.structs import KernelMemory
    mem = KernelMemory()
    regions = [(mem.alloc(f"r{i}", size, align=align), size, align)
               for i, (size, align) in enumerate([(1, 64), (100, 64), (7, 8), (3, 4096), (64, 64), (5, 16)])]
    for region, size, align in regions:
        assert region.base % align == 0, (region, align)
    spans = sorted((r.base, r.base + size) for r, size, _ in regions)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
    assert spans[-1][0] - spans[0][0] < 1 << 20          # packed together, not scattered
