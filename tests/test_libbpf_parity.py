"""libbpf's naming and section rules, the kernel's printk formats, map and ringbuf helpers.

Oracles are the examples libbpf's own comments give (tools/lib/bpf/libbpf.c@6.1.192:1532-1563
internal_map_name; :8682 sec_def_matches) and independent computations (Python's % formatting of
C integer semantics, struct.pack)."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdplab.bpf import Program
from xdplab.bpf.machine import CallContext, Machine
from xdplab.kernel.helpers import XdpHelpers, bprintf
from xdplab.kernel.kernel import Kernel
from xdplab.kernel.maps import (BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_RINGBUF,
                                ringbuf_consume)
from xdplab.bpf import builders as B
from xdplab.libbpf import find_sec_def, internal_map_name
from xdplab.kernel.btf import BtfField, BtfStruct, decode_struct, parse_c_proto, proto_compatible
from xdplab.kernel.kfuncs import MERGED, RFC_V2

M64 = (1 << 64) - 1


@pytest.mark.parametrize("obj,sec,want", [
    ("my_object_name", ".rodata", "my_objec.rodata"),     # libbpf's own examples
    ("my_object_name", ".bss", "my_objec.bss"),
    ("my_object_name", ".kconfig", "my_obje.kconfig"),
    ("my_object_name", ".rodata.abracadabra", ".rodata.abracad"),
    ("a-b", ".data", "a_b.data"),                          # sanitised
    ("x", ".rodata.str1.1", ".rodata.str1.1"),
])
def test_internal_map_name(obj, sec, want):
    assert internal_map_name(obj, sec) == want


@pytest.mark.parametrize("section,want", [
    ("xdp", ("XDP", 37)), ("xdp.frags", ("XDP", 37)), ("xdp/devmap", ("XDP", 38)),
    ("xdp.frags/devmap", ("XDP", 38)), ("xdp/cpumap", ("XDP", 39)), ("xdp.frags/cpumap", ("XDP", 39)),
    ("tc", ("SCHED_CLS", None)), ("classifier", ("SCHED_CLS", None)), ("socket", ("SOCKET_FILTER", None)),
    ("kprobe/do_sys_open", ("KPROBE", None)), ("kprobe", ("KPROBE", None)),
    ("tracepoint/syscalls/x", ("TRACEPOINT", None)),
    ("kprobex", None), ("xdp_foo", None), ("xdp/other", None), ("tc/ingress", None),
])
def test_section_names_map_to_program_types_as_libbpf_matches_them(section, want):
    found = find_sec_def(section)
    assert (found and (found[1], found[2])) == want if want else found is None


# ---------------------------------------------------------------------------- bpf_trace_printk
def _c_int(v: int, bits: int, signed: bool) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if signed and v >> (bits - 1) else v


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, M64), min_size=3, max_size=3),
       st.lists(st.sampled_from(["%d", "%u", "%x", "%lld", "%llu", "%llx", "%i", "%X", "%5d", "%-6u", "%08x"]),
                min_size=1, max_size=3))
def test_printk_integer_conversions_follow_c_semantics(args, convs):
    fmt = " ".join(convs)
    want = []
    for conv, a in zip(convs, args):
        body = conv.lstrip("%")
        bits = 64 if "ll" in body else 32
        letter = body[-1]
        v = _c_int(a, bits, letter in "di")
        want.append(("%" + body.replace("ll", "").replace("i", "d")) % v)
    assert bprintf(fmt.encode() + b"\0", tuple(args), lambda a, n: None) == " ".join(want)


@pytest.mark.parametrize("fmt,args", [
    (b"no terminator", ()),                       # strnchr(fmt, fmt_size, 0) fails
    (b"%d %d %d %d\0", (1, 2, 3)),                # more conversions than arguments
    (b"%q\0", (1,)), (b"%hd\0", (1,)),            # conversions bpf_bprintf_prepare does not accept
    (b"bell\a\0", ()),                            # an ASCII control byte
    (b"%sx\0", (1,)),                             # %s must be followed by space, punct or the end
    (b"%pZ\0", (1,)),
])
def test_printk_refuses_what_bpf_bprintf_prepare_refuses(fmt, args):
    assert bprintf(fmt, args, lambda a, n: b"") == -22


def test_printk_strings_addresses_and_percent():
    mem = {1: b"veth0", 2: bytes([192, 168, 1, 20]), 3: bytes(range(16))}
    assert bprintf(b"%s: %pI4 %pi4\0", (1, 2, 2), lambda a, n: mem.get(a)) == "veth0: 192.168.1.20 192.168.001.020"
    assert bprintf(b"%pI6 %c%%\0", (3, ord("Z")), lambda a, n: mem.get(a)) == \
        "0001:0203:0405:0607:0809:0a0b:0c0d:0e0f Z%"


# ---------------------------------------------------------------------------- map helpers
class _State:
    def __init__(self) -> None:
        self.trace: list[str] = []
        self.tail_calls = 0


def _rig(map_type: int, key: int, value: int, entries: int):  # type: ignore[no-untyped-def]
    k = Kernel()
    fd = k.map_create("m", map_type, key, value, entries)
    scratch = k.memory.alloc("scratch", 256, kind="mem")
    ctx = CallContext(Machine(Program([B.BPF_EXIT_INSN()]), k.memory.space), 0)
    return k, k.maps[fd], XdpHelpers(k.maps, _State), ctx, scratch


def test_hash_update_flags_and_lru_eviction():
    k, m, h, ctx, s = _rig(BPF_MAP_TYPE_HASH, 4, 8, 2)
    put = lambda key, val, flags=0: h.map_update_elem(ctx, m.address, s.base, s.base + 8, flags, 0)  # noqa: E731
    for key, val in ((1, 10), (2, 20)):
        s.data[0:4], s.data[8:16] = key.to_bytes(4, "little"), val.to_bytes(8, "little")
        assert put(key, val) == 0
    s.data[0:4] = (3).to_bytes(4, "little")
    assert put(3, 0) == (-7) & M64                  # -E2BIG: a full HASH map
    s.data[0:4] = (1).to_bytes(4, "little")
    assert put(1, 0, 1) == (-17) & M64              # BPF_NOEXIST on a present key: -EEXIST
    s.data[0:4] = (9).to_bytes(4, "little")
    assert put(9, 0, 2) == (-2) & M64               # BPF_EXIST on an absent key: -ENOENT
    k, m, h, ctx, s = _rig(BPF_MAP_TYPE_LRU_HASH, 4, 8, 2)
    for key in (1, 2):
        s.data[0:4] = key.to_bytes(4, "little")
        h.map_update_elem(ctx, m.address, s.base, s.base + 8, 0, 0)
    s.data[0:4] = (1).to_bytes(4, "little")
    assert h.map_lookup_elem(ctx, m.address, s.base, 0, 0, 0)          # 1 is now the most recent
    s.data[0:4] = (3).to_bytes(4, "little")
    assert h.map_update_elem(ctx, m.address, s.base, s.base + 8, 0, 0) == 0    # evicts 2
    s.data[0:4] = (2).to_bytes(4, "little")
    assert h.map_lookup_elem(ctx, m.address, s.base, 0, 0, 0) == 0
    assert list(m.store.slots) == [(1).to_bytes(4, "little"), (3).to_bytes(4, "little")]


def test_ringbuf_reserve_submit_discard_and_consume_in_order():
    k, m, h, ctx, s = _rig(BPF_MAP_TYPE_RINGBUF, 0, 0, 4096)
    a = h.ringbuf_reserve(ctx, m.address, 5, 0, 0, 0)
    b = h.ringbuf_reserve(ctx, m.address, 3, 0, 0, 0)
    assert a and b and b - a == 16                 # 8-byte header + 5 bytes, rounded to 8
    ctx.write_bytes(a, b"first")
    ctx.write_bytes(b, b"two")
    h.ringbuf_submit(ctx, b, 0, 0, 0, 0)
    assert ringbuf_consume(k.memory.space, m) == []          # `a` is still reserved: the consumer waits
    h.ringbuf_discard(ctx, a, 0, 0, 0, 0)
    assert ringbuf_consume(k.memory.space, m) == [b"two"]
    s.data[0:6] = b"output"
    assert h.ringbuf_output(ctx, m.address, s.base, 6, 0, 0) == 0
    assert h.ringbuf_output(ctx, m.address, s.base, 6, 4, 0) == (-22) & M64     # unknown flag
    assert h.ringbuf_reserve(ctx, m.address, 4096, 0, 0, 0) == 0                 # larger than the ring
    assert ringbuf_consume(k.memory.space, m) == [b"output"]


# ---------------------------------------------------------------------------- BTF helpers
def test_kfunc_prototypes_compare_as_libbpf_does():
    rfc_ts = parse_c_proto(RFC_V2.by_name("bpf_xdp_metadata_rx_timestamp").proto)
    merged_ts = parse_c_proto(MERGED.by_name("bpf_xdp_metadata_rx_timestamp").proto)
    assert rfc_ts.params == (("ptr", "struct"),) and merged_ts.params == (("ptr", "struct"), ("ptr", "int"))
    assert not proto_compatible(merged_ts, rfc_ts) and proto_compatible(merged_ts, merged_ts)
    hash_enum = parse_c_proto(MERGED.by_name("bpf_xdp_metadata_rx_hash").proto)
    hash_u32 = parse_c_proto("int f(const struct xdp_md *ctx, __u32 *hash, __u32 *rss_type)")
    assert not proto_compatible(hash_u32, hash_enum)       # int vs enum: btf_kind_core_compat fails


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 2, 4, 8]), st.booleans(), st.integers(0, M64)), min_size=1,
                max_size=6), st.integers(0, 40))
def test_decode_struct_matches_struct_pack(spec, cut):
    fields, raw, off = [], b"", 0
    for n, (size, signed, v) in enumerate(spec):
        fields.append(BtfField(f"f{n}", off, size, signed, "int"))
        v = _c_int(v, 8 * size, signed)
        raw += struct.pack("<" + ({1: "b", 2: "h", 4: "i", 8: "q"} if signed else {1: "B", 2: "H", 4: "I", 8: "Q"})[size], v)
        off += size
    lay = BtfStruct("s", off, tuple(fields))
    got = decode_struct(lay, raw[:cut])
    for f, (size, signed, v) in zip(fields, spec):
        assert got[f.name] == (_c_int(v, 8 * size, signed) if f.offset + size <= cut else None)


def test_decode_struct_reads_be_typedefs_big_endian_and_bitfields_in_their_unit():
    lay = BtfStruct("m", 8, (BtfField("vlan_proto", 0, 2, False, "int", byteorder="big"),
                             BtfField("tci", 2, 2, False, "int"),
                             BtfField("a", 4, 4, False, "int", 0, 3), BtfField("c", 4, 4, True, "int", 8, 4)))
    raw = b"\x81\x00" + (7).to_bytes(2, "little") + (5 | (0xD << 8)).to_bytes(4, "little")
    assert decode_struct(lay, raw) == {"vlan_proto": 0x8100, "tci": 7, "a": 5, "c": -3}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.lists(st.integers(0, M64), max_size=3))
def test_printk_never_raises_on_any_format(fmt, args):
    got = bprintf(fmt, tuple(args), lambda a, n: None)
    assert got == -22 or (isinstance(got, str) and len(got) < 1024)
