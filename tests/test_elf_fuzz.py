"""Hypothesis over the ELF loader: damaged objects give a BpfObjectError or the right object.

Oracles: (1) clang puts the section header table at the end of the file, so every truncation
loses it and must be refused; (2) the loader never reads DWARF, so bytes flipped inside
``.debug_*`` sections must give exactly the original programs and maps; (3) any other damage is
either refused with a BpfObjectError or yields an object whose programs resolve or are refused
with a BpfError -- never another exception."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdplab.bpf import BpfError
from xdplab.kernel.kernel import Kernel
from xdplab.kernel.kfuncs import MERGED, RFC_V2
from xdplab.libbpf import BpfObject, BpfObjectError

PROGRAMS = Path(__file__).resolve().parents[1] / "data" / "programs"
OBJECTS = {p.stem: p.read_bytes() for p in sorted(PROGRAMS.glob("*.o"))}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _debug_spans(data: bytes) -> list[tuple[int, int]]:
    elf = ELFFile(io.BytesIO(data))
    return [(s["sh_offset"], s["sh_offset"] + s["sh_size"]) for s in elf.iter_sections()
            if s.name.startswith(".debug_") and s["sh_type"] == "SHT_PROGBITS" and s["sh_size"]]


def test_oracle_preconditions():
    for name, data in OBJECTS.items():
        elf = ELFFile(io.BytesIO(data))
        assert elf["e_shoff"] + elf["e_shnum"] * elf["e_shentsize"] == len(data), name
        assert _debug_spans(data), name


@SETTINGS
@given(st.sampled_from(sorted(OBJECTS)), st.data())
def test_every_truncation_is_refused(name, data):
    blob = OBJECTS[name]
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(BpfObjectError):
        BpfObject.from_bytes(blob[:cut], name)


@SETTINGS
@given(st.sampled_from(sorted(OBJECTS)), st.data())
def test_flips_in_dwarf_change_nothing(name, data):
    blob = bytearray(OBJECTS[name])
    spans = _debug_spans(bytes(blob))
    for _ in range(data.draw(st.integers(1, 8))):
        lo, hi = data.draw(st.sampled_from(spans))
        pos = data.draw(st.integers(lo, hi - 1))
        blob[pos] ^= 1 << data.draw(st.integers(0, 7))
    got, want = BpfObject.from_bytes(bytes(blob), name), BpfObject.from_bytes(OBJECTS[name], name)
    assert [(p.name, p.insns) for p in got.programs] == [(p.name, p.insns) for p in want.programs]
    assert got.maps == want.maps


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(OBJECTS)), st.data())
def test_bit_flips_anywhere_give_a_bpf_object_error_or_a_loadable_object(name, data):
    blob = bytearray(OBJECTS[name])
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] ^= 1 << data.draw(st.integers(0, 7))
    try:
        obj = BpfObject.from_bytes(bytes(blob), name)
    except BpfObjectError:
        return
    for p in obj.programs:
        for table in (RFC_V2, MERGED):
            try:
                p.resolve({m.name: 3 for m in obj.maps}, table)
            except BpfObjectError:
                pass
    try:
        obj.load_all(Kernel())
    except BpfError:
        pass
    if obj.btf is not None:
        for s in obj.btf.struct_names():
            try:
                obj.btf_struct(s)
            except BpfObjectError:
                pass


def _spans(data: bytes, names: tuple[str, ...]) -> list[tuple[int, int]]:
    elf = ELFFile(io.BytesIO(data))
    return [(s["sh_offset"], s["sh_offset"] + s["sh_size"]) for s in elf.iter_sections()
            if (s.name in names or s.name.startswith(".rel")) and s["sh_type"] != "SHT_NOBITS" and s["sh_size"]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(OBJECTS)), st.data())
def test_flips_in_btf_symbols_and_relocations_are_refused_or_harmless(name, data):
    """The bytes the loader does read (BTF, .BTF.ext, the symbol table, relocations): damage is a
    BpfObjectError, or an object whose layouts and programs are still only BpfErrors away."""
    blob = bytearray(OBJECTS[name])
    spans = _spans(bytes(blob), (".BTF", ".BTF.ext", ".symtab", ".maps"))
    for _ in range(data.draw(st.integers(1, 4))):
        lo, hi = data.draw(st.sampled_from(spans))
        blob[data.draw(st.integers(lo, hi - 1))] = data.draw(st.integers(0, 255))
    try:
        obj = BpfObject.from_bytes(bytes(blob), name)
    except BpfObjectError:
        return
    try:
        obj.meta_struct()
    except BpfObjectError:
        pass
    try:
        obj.load_all(Kernel(), design="merged")
    except BpfError:
        pass
