"""Loading clang-compiled XDP objects as libbpf would, and running them through the pipeline.

The objects under data/programs are xdplab's own C programs in the selftests' roles (see its
README); each test says which libbpf or kernel rule it checks."""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import xdplab
from xdplab.bpf import assemble, opcodes as op
from xdplab.kernel.kernel import Kernel
from xdplab.kernel.loader import LoadError
from xdplab.kernel.structs import XDP_BUFF
from xdplab.kernel.xdp import XdpRxQueue
from xdplab.libbpf import BpfObject, BpfObjectError, decode_struct

PROGRAMS = Path(__file__).resolve().parents[1] / "data" / "programs"
AFXDP, SKB, FIELDS = (PROGRAMS / f"xdp_metadata_{n}.o" for n in ("afxdp", "skb", "fields"))
GLOBALS, TAILCALL, META63 = (PROGRAMS / f"{n}.o" for n in ("xdp_globals", "xdp_tailcall", "xdp_meta63"))
DRIVERS = ["veth", "ice", "mlx4", "bnxt"]


def udp(dport: int, payload: bytes = b"x" * 18) -> bytes:
    """Ethernet + IPv4 + UDP to ``dport`` (a hand-built frame; field layout per RFC 791/768)."""
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return eth + ip + struct.pack("!HHHH", 1234, dport, 8 + len(payload), 0) + payload


def queue(path: Path, prog: str, design: str = "rfc-v2"):  # type: ignore[no-untyped-def]
    """A kernel with the object loaded (bpf_object__load) and one RX queue running ``prog``."""
    k = Kernel()
    loaded = BpfObject.open(path).load_all(k, design=design)
    wrapper = k.memory.new(XDP_BUFF, "xdp_buff", kind="xdp_buff")
    return k, XdpRxQueue(k.memory, loaded.programs[prog], wrapper, ifindex=1)


def map_value(k: Kernel, suffix: str, size: int) -> bytes:
    m = next(m for m in k.maps.values() if m.name.endswith(suffix))
    return k.memory.space.read_bytes(m.values_address, size)


# ------------------------------------------------------------------ what the objects hold
def test_objects_parse_sections_relocations_and_btf_maps():
    o = BpfObject.open(AFXDP)
    (p,) = o.programs
    assert (p.name, p.section, p.prog_type) == ("rx", "xdp", "XDP") and o.license == "GPL"
    assert [m.name for m in o.maps] == ["xsk"] and o.maps[0].map_type == 17 and o.maps[0].max_entries == 64
    assert [name for _, name in p.kfunc_relocs] == ["bpf_xdp_metadata_rx_timestamp_supported",
                                                    "bpf_xdp_metadata_rx_timestamp"]
    f = BpfObject.open(FIELDS)
    maps = {m.name: m for m in f.maps}
    assert maps["counters"].map_type == 2 and (maps["counters"].key_size, maps["counters"].value_size) == (4, 8)
    kfunc_sites = {i for i, _ in f.programs[0].kfunc_relocs}     # LLVM emits those as src 1, imm -1 too
    calls = [x for i, x in enumerate(f.programs[0].insns) if x.opcode == op.BPF_JMP | op.BPF_CALL
             and x.src == op.BPF_PSEUDO_CALL and i not in kfunc_sites]
    assert len(calls) == 2 and all(c.imm > 0 for c in calls), "the calls into .text became BPF-to-BPF calls"


def test_global_data_sections_become_array_maps_named_as_libbpf_names_them():
    o = BpfObject.open(GLOBALS)
    maps = {m.section: m for m in o.maps if m.section}
    # internal_map_name: "xdp_globals" -> object name "xdp_globals", 8 chars + ".rodata" (7)
    assert {s: m.name for s, m in maps.items()} == {".rodata": "xdp_glob.rodata", ".data": "xdp_glob.data",
                                                    ".bss": "xdp_glob.bss", ".rodata.str1.1": ".rodata.str1.1"}
    assert maps[".rodata.str1.1"].initial == b"match\0other\0"     # the %s literals, no object prefix
    assert all(m.map_type == 2 and m.key_size == 4 and m.max_entries == 1 for m in maps.values())
    assert maps[".bss"].initial == bytes(16)                         # two __u64 counters, zeroed
    assert maps[".data"].initial == (0x1).to_bytes(4, "little")       # verdict_other = XDP_DROP
    assert maps[".rodata"].initial[:2] == (8080).to_bytes(2, "little")  # const volatile port
    assert b"xdp_count: udp port %d len %u\0" in maps[".rodata"].initial
    unused = next(m for m in o.maps if m.name == "unused_jmp")
    assert (unused.map_type, unused.max_entries, unused.prog_refs) == (3, 4, ())


def test_two_programs_in_one_section_and_section_types():
    o = BpfObject.open(GLOBALS)
    assert [(p.name, p.section, p.prog_type) for p in o.programs] == [
        ("xdp_count", "xdp", "XDP"), ("xdp_drop_other", "xdp", "XDP"), ("tc_pass", "tc", "SCHED_CLS")]
    assert o.program().name == "xdp_count"            # the first XDP program
    # the static subprogram is appended to each program that calls it, with the call re-pointed
    for p in o.programs[:2]:
        (call,) = [(i, x) for i, x in enumerate(p.insns) if x.opcode == op.BPF_JMP | op.BPF_CALL
                   and x.src == op.BPF_PSEUDO_CALL]
        target = p.slot_of(call[0]) + 1 + call[1].imm
        assert 0 < target < sum(i.slots for i in p.insns) and target > p.slot_of(call[0])


def test_non_xdp_and_unknown_sections_are_refused_naming_object_section_and_type():
    o = BpfObject.open(GLOBALS)
    with pytest.raises(BpfObjectError, match=r"xdp_globals.o: SEC\('tc'\) prog 'tc_pass'.*BPF_PROG_TYPE_SCHED_CLS"):
        o.load(Kernel(), program="tc_pass")
    with pytest.raises(BpfObjectError, match="SCHED_CLS"):
        xdplab.Lab("ice", program=f"{GLOBALS}:tc_pass")


def test_bss_counters_printk_and_data_verdict_per_packet():
    k, q = queue(GLOBALS, "xdp_count")
    outs = [q.run(p) for p in (udp(8080), udp(53), udp(8080, b""), b"short")]
    assert [o.action for o in outs] == ["PASS"] * 4
    assert [o.trace for o in outs] == [("xdp_count: udp port 8080 len 60",), ("xdp_count: other (0)",),
                                       ("xdp_count: udp port 8080 len 42",), ("xdp_count: other (-1)",)]
    seen, matched = struct.unpack("<QQ", map_value(k, ".bss", 16))
    assert (seen, matched) == (4, 2)
    k, q = queue(GLOBALS, "xdp_drop_other")
    outs = [q.run(p) for p in (udp(8080), udp(53))]
    assert [o.action for o in outs] == ["PASS", "DROP"]                          # .data verdict_other
    assert [o.trace for o in outs] == [("xdp_drop_other: match",), ("xdp_drop_other: other",)]


def test_rodata_written_before_load_changes_what_the_program_matches():
    k = Kernel()
    obj = BpfObject.open(GLOBALS)
    ro = next(m for m in obj.maps if m.section == ".rodata")
    patched = type(obj)(obj.path, obj.programs, tuple(
        type(m)(m.name, m.map_type, m.key_size, m.value_size, m.max_entries, m.section,
                (9091).to_bytes(2, "little") + m.initial[2:], m.prog_refs, m.map_flags) if m is ro else m
        for m in obj.maps), obj.license, obj.btf, obj.name)
    loaded = patched.load_all(k)
    q = XdpRxQueue(k.memory, loaded.programs["xdp_count"], k.memory.new(XDP_BUFF, "w", kind="xdp_buff"), ifindex=1)
    assert q.run(udp(9091)).trace == ("xdp_count: udp port 9091 len 60",)
    assert q.run(udp(8080)).trace == ("xdp_count: other (0)",)


def test_tail_call_jumps_without_return_and_an_empty_slot_falls_through():
    k, q = queue(TAILCALL, "xdp_entry")
    out = q.run(udp(8080))
    assert out.action == "PASS"            # xdp_stage2's verdict; xdp_entry alone would DROP
    assert out.trace == ("entry", "after empty slot", "stage2 run 1")
    assert q.run(udp(53)).trace[-1] == "stage2 run 2"
    assert map_value(k, ".bss", 8) == (2).to_bytes(8, "little")          # stage2_runs
    jmp = next(m for m in k.maps.values() if m.name == "jmp")
    from xdplab.kernel.maps import prog_array_update
    prog_array_update(jmp, 0, None)        # user space empties the slot: both jumps fall through
    out = q.run(udp(8080))
    assert (out.action, out.trace) == ("DROP", ("entry", "after empty slot", "not reached"))


def test_tail_calls_stop_after_max_tail_call_cnt():
    k, q = queue(TAILCALL, "xdp_loop")
    out = q.run(udp(8080))
    # JMP_TAIL_CALL (kernel/bpf/core.c@6.1.192:1923): 33 jumps, the 34th run falls through
    assert (out.action, out.trace) == ("PASS", ("loop fell through after 34 runs",))
    assert q.run(udp(8080)).trace == ("loop fell through after 68 runs",)     # the count is per run


def test_percpu_lru_and_ringbuf_maps_from_a_real_object():
    from xdplab.kernel.maps import ringbuf_consume
    k, q = queue(PROGRAMS / "xdp_events.o", "xdp_events")
    m = {m.name: m for m in k.maps.values()}
    assert {n: m[n].map_type for n in ("pkts", "ports", "events")} == {"pkts": 6, "ports": 9, "events": 27}
    ports = (1, 2, 1, 3, 4, 1, 7, 7)
    assert [q.run(udp(p)).action for p in ports] + [q.run(b"short").action] == ["PASS"] * 9
    events = [struct.unpack("<IHH", e) for e in ringbuf_consume(k.memory.space, m["events"])]
    # LRU of 3 ports: 4 evicts 2 (least recently used), so 1 is still known; 7 deletes itself
    assert events == [(60, 1, 0), (60, 2, 0), (60, 1, 1), (60, 3, 0), (60, 4, 0), (60, 1, 1), (60, 7, 0), (60, 7, 0)]
    assert ringbuf_consume(k.memory.space, m["events"]) == []          # consumed once
    assert k.memory.space.read_bytes(m["pkts"].values_address, 8) == (9).to_bytes(8, "little")
    assert list(m["ports"].store.slots) == [(4).to_bytes(2, "little"), (1).to_bytes(2, "little")]


@pytest.mark.parametrize("design", ["rfc-v2", "patch-v3", "merged"])
@pytest.mark.parametrize("driver", DRIVERS)
def test_globals_object_runs_in_the_lab_on_every_driver_and_design(driver, design):
    df = xdplab.Lab(driver, program=f"{GLOBALS}:xdp_drop_other", design=design).run(6, engine="scalar")
    assert len(df) == 6 and (df.delivered_to == "stack").all()      # the lab's UDP 8080 traffic matches


@pytest.mark.parametrize("driver", DRIVERS)
def test_tailcall_object_runs_in_the_lab(driver):
    # engine="scalar": the lane engine (xdplab.batch) does not implement printk or tail calls
    lab = xdplab.Lab(driver, program=f"{TAILCALL}:xdp_entry")
    df = lab.run(3, engine="scalar")
    assert (df.delivered_to == "stack").all()    # PASS from xdp_stage2; DROP had it not jumped


# ------------------------------------------------------------------ kfuncs and designs
@pytest.mark.parametrize("driver", DRIVERS)
def test_afxdp_object_yields_the_same_metadata_as_the_builtin_program(driver):
    lab = xdplab.Lab(driver, program=AFXDP)
    ours = lab.run(30, assume_meta_support=True)
    ref = xdplab.Lab(driver).run(30, assume_meta_support=True)
    assert (ours.rx_timestamp == ref.rx_timestamp).all() and (ours.delivered_to == "af_xdp").all()
    assert "call bpf_xdp_metadata_rx_timestamp" in lab.diff().to_text()


def test_skb_object_exports_for_the_skb():
    ours = xdplab.Lab("ice", program=SKB).run(20, path="skb")
    ref = xdplab.Lab("ice").run(20, path="skb")
    assert (ours.rx_timestamp == ref.rx_timestamp).all() and (ours.rx_timestamp != 0).all()


def test_fields_object_uses_map_helpers_and_a_subprogram():
    lab = xdplab.Lab("ice", ("rx_timestamp", "rx_hash"), design="merged", program=FIELDS)
    df = lab.run(12)
    ref = xdplab.Lab("ice", ("rx_timestamp", "rx_hash"), design="merged").run(12)
    assert (df.rx_timestamp == ref.rx_timestamp).all() and (df.rx_timestamp != 0).all()
    counters = next(m for m in lab.kernel.maps.values() if m.name == "counters")
    redirected = int.from_bytes(lab.kernel.memory.space.read_bytes(counters.values_address + 16, 8), "little")
    assert redirected == 12


@pytest.mark.parametrize("driver", DRIVERS)
def test_meta63_object_loads_under_merged_and_its_btf_struct_decodes_the_metadata(driver):
    obj = BpfObject.open(META63)
    lay = obj.meta_struct()                     # the struct named xdp_meta
    assert [(f.name, f.offset, f.c_type) for f in lay.fields] == [
        ("rx_timestamp", 0, "u64"), ("rx_hash", 8, "u32"), ("rx_hash_type", 12, "u32"),
        ("rx_timestamp_err", 16, "s32"), ("rx_hash_err", 20, "s32")] and lay.size == 24
    lab = xdplab.Lab(driver, ("rx_timestamp", "rx_hash"), design="merged", program=META63)
    df = lab.run(5, assume_meta_support=True, engine="scalar")
    assert (df.delivered_to == "af_xdp").all()


def test_meta63_under_rfc_v2_is_refused_with_libbpfs_func_proto_message():
    with pytest.raises(BpfObjectError, match=r"xdp_meta63.o: SEC\('xdp'\) prog 'rx': insn \d+: extern \(func ksym\) "
                       r"'bpf_xdp_metadata_rx_timestamp': func_proto \[\d+\] incompatible with kernel \[70103\]"):
        xdplab.Lab("ice", design="rfc-v2", program=META63)


def test_unknown_kfunc_is_a_clear_error():
    with pytest.raises(BpfObjectError, match="bpf_xdp_metadata_rx_timestamp_supported.*merged kernel does not have"):
        xdplab.Lab("ice", design="merged", program=AFXDP)


def test_decode_struct_respects_sign_width_and_short_input():
    lay = BpfObject.open(META63).btf_struct("xdp_meta")
    raw = struct.pack("<QIIii", 2**64 - 1, 0xDEADBEEF, 7, -95, -61)
    assert decode_struct(lay, raw) == {"rx_timestamp": 2**64 - 1, "rx_hash": 0xDEADBEEF, "rx_hash_type": 7,
                                       "rx_timestamp_err": -95, "rx_hash_err": -61}
    assert decode_struct(lay, raw[:8]) == {"rx_timestamp": 2**64 - 1, "rx_hash": None, "rx_hash_type": None,
                                           "rx_timestamp_err": None, "rx_hash_err": None}
    with pytest.raises(BpfObjectError, match="no struct 'nope'.*xdp_meta"):
        BpfObject.open(META63).btf_struct("nope")


# ------------------------------------------------------------------ refusals at load
def test_unknown_and_unsimulated_helper_ids_are_refused_at_load_naming_the_insn():
    k = Kernel()
    with pytest.raises(LoadError, match=r"insn 1: invalid func unknown#999"):
        k.prog_load(assemble("r0 = 2\ncall 999\nexit"))
    with pytest.raises(LoadError, match=r"insn 0: unknown func bpf_ktime_get_ns#5"):
        k.prog_load(assemble("call 5\nr0 = 2\nexit"))


def test_truncated_not_elf_and_wrong_machine():
    data = AFXDP.read_bytes()
    for bad in (data[:100], data[: len(data) // 2], b"\x7fELF" + bytes(60), b"not an elf at all"):
        with pytest.raises(BpfObjectError, match="malformed|not a BPF|no symbol"):
            BpfObject.from_bytes(bad)
    with pytest.raises(BpfObjectError, match="not a BPF object"):
        BpfObject.open("/bin/true")
    with pytest.raises(BpfObjectError, match="No such file"):
        BpfObject.open("/nonexistent.o")


def test_bad_relocation_is_a_clear_error():
    import io
    from elftools.elf.elffile import ELFFile
    data = bytearray(AFXDP.read_bytes())
    rel = ELFFile(io.BytesIO(bytes(data))).get_section_by_name(".relxdp")
    first = rel["sh_offset"]
    data[first:first + 8] = (0).to_bytes(8, "little")      # r_offset 0: insn 0 is not a call/ld_imm64
    with pytest.raises(BpfObjectError, match=r"SEC\('xdp'\) prog 'rx': insn 0: relocation type 10 .* on opcode"):
        BpfObject.from_bytes(bytes(data))


def test_program_accepts_bytes_path_and_path_colon_name():
    obj, name = BpfObject.coerce(GLOBALS.read_bytes())
    assert name is None and [p.name for p in obj.programs] == [p.name for p in BpfObject.open(GLOBALS).programs]
    assert BpfObject.coerce(f"{GLOBALS}:xdp_drop_other")[1] == "xdp_drop_other"
    df = xdplab.Lab("ice", program=GLOBALS.read_bytes()).run(2, engine="scalar")
    assert (df.delivered_to == "stack").all()


@pytest.mark.skipif(shutil.which("clang-14") is None, reason="clang-14 missing (CI installs it)")
def test_recompiled_objects_load_and_behave_the_same(tmp_path):
    for name in sorted(p.stem for p in PROGRAMS.glob("*.c")):
        out = tmp_path / f"{name}.o"
        subprocess.run(["clang-14", "-O2", "-g", "-target", "bpf", "-c", str(PROGRAMS / f"{name}.c"), "-o", str(out)],
                       check=True, capture_output=True, cwd=PROGRAMS)
        new, old = BpfObject.open(out), BpfObject.open(PROGRAMS / f"{name}.o")
        assert [p.insns for p in new.programs] == [p.insns for p in old.programs], name
        assert new.maps == old.maps, name
    fresh = xdplab.Lab("ice", program=tmp_path / "xdp_metadata_afxdp.o").run(10)
    assert (fresh.rx_timestamp == xdplab.Lab("ice").run(10).rx_timestamp).all()


# ------------------------------------------------------------------ the consumer reads BTF/DWARF
def _consume(lab, frame: bytes, packets: int, meta_size: int = 0):  # type: ignore[no-untyped-def]
    """Run ``frame`` through the lab's device as xdplab.scalar does, returning per packet the
    action and the ``meta_size`` bytes the AF_XDP consumer reads before the frame."""
    from dataclasses import replace

    from xdplab.kernel.af_xdp import XskSocket, xsk_consume
    from xdplab.kernel.structs import KernelMemory
    from xdplab.kernel.xdp import deliver
    plan = replace(lab.plan(packets, assume_meta_support=True), frame=frame)
    mem = KernelMemory(next_addr=plan.memory_top + 0x10000)
    for region in plan.map_regions:
        mem.space.map(region)
    rx = plan.driver.rx_path(mem, plan.rx)
    sock = XskSocket.create()
    q = XdpRxQueue(mem, plan.loaded, rx.wrapper, ifindex=plan.ifindex, meta_valid=plan.meta_valid,
                   redirect_targets={plan.xsk_map.map_id: {0: sock}})
    out = []
    for i, t in zip(range(packets), plan.trace.times_array(0, packets).tolist()):
        rx.receive(i, t, len(frame))
        o = q.run(frame)
        where, _skb, _why = deliver(o, xsks={0: sock}, boot=plan.boot, dev_name=plan.dev_name)
        got = xsk_consume(sock, meta_size) if where == "af_xdp" else None
        out.append((o.action, got.metadata if got is not None else b""))
    return out


@pytest.mark.parametrize("driver", DRIVERS)
def test_hw_meta_layout_comes_from_dwarf_and_its_fields_equal_the_truth(driver):
    from xdplab.traffic import udp_frame
    obj = BpfObject.open(PROGRAMS / "xdp_hw_meta.o")
    assert "xdp_meta" not in obj.btf.struct_names()          # only a local pointer reaches it
    lay = obj.meta_struct()
    assert [(f.name, f.offset, f.c_type) for f in lay.fields] == [
        ("rx_timestamp", 0, "u64"), ("rx_hash", 8, "u32"), ("rx_hash_type", 12, "u32"),
        ("rx_timestamp_err", 16, "s16"), ("have_ts", 18, "u8:1"), ("have_hash", 18, "u8:1"),
        ("pad", 18, "u8:6"), ("hash_err", 19, "s8")]
    lab = xdplab.Lab(driver, ("rx_timestamp", "rx_hash"), design="merged", program=PROGRAMS / "xdp_hw_meta.o")
    ref = xdplab.Lab(driver, ("rx_timestamp", "rx_hash"), design="merged").run(4, assume_meta_support=True,
                                                                                engine="scalar")
    rows = _consume(lab, udp_frame(9091), 4, lay.size)      # the consumer reads sizeof from BTF/DWARF
    assert [a for a, _ in rows] == ["REDIRECT"] * 4
    for (_, raw), ts_truth in zip(rows, ref.rx_timestamp.tolist()):
        got = decode_struct(lay, raw)
        assert len(raw) == lay.size and got["pad"] == 0
        assert got["rx_timestamp"] == ts_truth                 # the same kfunc as the builtin program
        assert got["rx_timestamp_err"] <= 0 and got["hash_err"] <= 0     # errnos read as signed
        assert got["have_ts"] == (got["rx_timestamp_err"] == 0)
        assert got["have_hash"] == (got["hash_err"] == 0)
    assert [a for a, _ in _consume(lab, udp_frame(8080), 2)] == ["PASS", "PASS"]   # not port 9091


# ------------------------------------------------------------------ CO-RE
CORE_SRC = r"""
#include "xdplab_bpf.h"
/* A local view that differs from the kernel's: h_proto first.  CO-RE must move the load to 12. */
struct ethhdr { __be16 h_proto; } __attribute__((preserve_access_index));
%s
SEC("xdp")
int core(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	if (data + 14 > (void *)(long)ctx->data_end)
		return XDP_ABORTED;
	%s
	return eth->h_proto == ETH_P_IP_BE ? XDP_PASS : XDP_DROP;
}
char _license[] SEC("license") = "GPL";
"""


def _compile(tmp_path: Path, src: str) -> Path:
    c, o = tmp_path / "core.c", tmp_path / "core.o"
    c.write_text(src)
    subprocess.run(["clang-14", "-O2", "-g", "-target", "bpf", "-I", str(PROGRAMS), "-c", str(c), "-o", str(o)],
                   check=True, capture_output=True)
    return o


def test_committed_objects_carry_core_relocations_for_ethhdr():
    import io
    from elftools.elf.elffile import ELFFile
    from xdplab.kernel.btf import Btf, btf_strings, parse_btf_ext_core
    elf = ELFFile(io.BytesIO(GLOBALS.read_bytes()))
    raw = elf.get_section_by_name(".BTF").data()
    btf = Btf.parse(raw)
    relos = parse_btf_ext_core(elf.get_section_by_name(".BTF.ext").data(), btf, btf_strings(raw))
    assert {(btf.resolved(r.type_id).name, r.kind) for r in relos} == {("ethhdr", 0)}   # FIELD_BYTE_OFFSET


@pytest.mark.skipif(shutil.which("clang-14") is None, reason="clang-14 missing (CI installs it)")
def test_core_field_offset_is_resolved_against_the_kernel_layout(tmp_path):
    obj = _compile(tmp_path, CORE_SRC % ("", ""))
    k, q = queue(obj, "core")
    assert q.run(udp(8080)).action == "PASS"          # loaded from offset 12, not the local 0
    ipv6_ethertype_at_12 = b"\x08\x00" + bytes(10) + b"\x86\xdd" + bytes(28)   # 0x0800 only at offset 0
    assert q.run(ipv6_ethertype_at_12).action == "DROP"


@pytest.mark.skipif(shutil.which("clang-14") is None, reason="clang-14 missing (CI installs it)")
def test_core_relocation_against_a_field_the_kernel_lacks_is_refused(tmp_path):
    src = CORE_SRC.replace("struct ethhdr { __be16 h_proto; }", "struct ethhdr { __be16 h_proto; __u32 h_vlan; }")
    obj = _compile(tmp_path, src % ("", "if (eth->h_vlan) return XDP_TX;"))
    with pytest.raises(BpfObjectError, match=r"SEC\('xdp'\): insn \d+: CO-RE FIELD_BYTE_OFFSET: struct ethhdr has no "
                                             r"field 'h_vlan' in the kernel"):
        BpfObject.open(obj)


KCONFIG_SRC = r"""
#include "xdplab_bpf.h"
#define __kconfig __attribute__((section(".kconfig")))
#define __weak __attribute__((weak))
extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_XDP_SOCKETS __kconfig __weak;
extern _Bool LINUX_HAS_BPF_COOKIE __kconfig;
%s
SEC("xdp") int kc(struct xdp_md *ctx)
{
	bpf_printk("%%u %%d %%d", LINUX_KERNEL_VERSION, CONFIG_XDP_SOCKETS, LINUX_HAS_BPF_COOKIE);
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
"""


@pytest.mark.skipif(shutil.which("clang-14") is None, reason="clang-14 missing (CI installs it)")
def test_kconfig_externs_become_a_read_only_map_libbpf_fills(tmp_path):
    obj = _compile(tmp_path, KCONFIG_SRC % "")
    kc = next(m for m in BpfObject.open(obj).maps if m.section == ".kconfig")
    # cmp_externs: alignment descending, size ascending, name: CONFIG_XDP_SOCKETS (0), then
    # LINUX_KERNEL_VERSION (4), then the 1-byte LINUX_HAS_BPF_COOKIE (8)
    assert (kc.name, kc.value_size, kc.map_flags) == ("core.kconfig", 9, 1 << 7)
    assert kc.initial == struct.pack("<iIB", 0, (6 << 16) + (1 << 8) + 255, 1)
    k, q = queue(obj, "kc")
    assert q.run(udp(1)).trace == (f"{(6 << 16) + (1 << 8) + 255} 0 1",)
    strong = _compile(tmp_path, KCONFIG_SRC % "extern int CONFIG_NOPE __kconfig;\n"
                      "int use(void) { return CONFIG_NOPE; }")
    with pytest.raises(BpfObjectError, match="extern 'CONFIG_NOPE' \\(strong\\): not resolved"):
        BpfObject.open(strong)


def test_map_value_relocations_are_checked_at_load():
    from xdplab.bpf import builders as B
    from xdplab.bpf.insn import Insn
    k = Kernel()
    arr = k.map_create("g", 2, 4, 8, 1)
    hsh = k.map_create("h", 1, 4, 8, 4)
    ld = lambda fd, off: Insn(op.OPCODE_LD_IMM64, 1, op.BPF_PSEUDO_MAP_VALUE, 0, (off << 32) | fd)  # noqa: E731
    prog = lambda fd, off: xdplab.bpf.Program([ld(fd, off), B.BPF_MOV64_IMM(0, 2), B.BPF_EXIT_INSN()])  # noqa: E731
    loaded = k.prog_load(prog(arr, 4))
    assert loaded.xlated[0].imm == k.maps[arr].values_address + 4
    with pytest.raises(LoadError, match=r"insn 0: invalid access to map value pointer, value_size=8 off=8"):
        k.prog_load(prog(arr, 8))
    with pytest.raises(LoadError, match=r"insn 0: no direct value access support for this map type"):
        k.prog_load(prog(hsh, 0))
