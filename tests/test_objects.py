"""Loading clang-compiled XDP objects as libbpf would, and running them through the pipeline."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xdplab
from xdplab.bpf import BpfError, opcodes as op
from xdplab.libbpf import BpfObject, BpfObjectError

PROGRAMS = Path(__file__).resolve().parents[1] / "data" / "programs"
AFXDP, SKB, FIELDS = (PROGRAMS / f"xdp_metadata_{n}.o" for n in ("afxdp", "skb", "fields"))


def test_objects_parse_sections_relocations_and_btf_maps():
    o = BpfObject.open(AFXDP)
    (p,) = o.programs
    assert (p.name, p.section) == ("rx", "xdp") and o.license == "GPL"
    assert [m.name for m in o.maps] == ["xsk"] and o.maps[0].map_type == 17 and o.maps[0].max_entries == 64
    assert [name for _, name in p.kfunc_relocs] == ["bpf_xdp_metadata_rx_timestamp_supported",
                                                    "bpf_xdp_metadata_rx_timestamp"]
    f = BpfObject.open(FIELDS)
    maps = {m.name: m for m in f.maps}
    assert maps["counters"].map_type == 2 and (maps["counters"].key_size, maps["counters"].value_size) == (4, 8)
    prog = f.programs[0]
    calls = [i for i in prog.insns if i.opcode == op.BPF_JMP | op.BPF_CALL and i.src == op.BPF_PSEUDO_CALL
             and i.imm != -1]
    assert calls, "the call into .text became a BPF-to-BPF call"


@pytest.mark.parametrize("driver", ["veth", "ice", "mlx4", "bnxt"])
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
    region = next(r for r in lab.kernel.memory.space.regions if r.base == counters.address)
    redirected = int.from_bytes(region.data[256 + 16:256 + 24], "little")
    assert redirected == 12
    with pytest.raises(ValueError, match="batch engine does not run programs that look up"):
        lab.run(5, engine="batch")


def test_unknown_kfunc_is_a_clear_error():
    with pytest.raises(BpfObjectError, match="bpf_xdp_metadata_rx_timestamp_supported.*merged kernel does not have"):
        xdplab.Lab("ice", design="merged", program=AFXDP)


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
    from elftools.elf.elffile import ELFFile
    import io
    data = bytearray(AFXDP.read_bytes())
    elf = ELFFile(io.BytesIO(bytes(data)))
    rel = elf.get_section_by_name(".relxdp")
    first = rel["sh_offset"]
    data[first:first + 8] = (0).to_bytes(8, "little")      # r_offset 0: insn 0 is not a call/ld_imm64
    with pytest.raises(BpfObjectError, match="is not on"):
        BpfObject.from_bytes(bytes(data))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 8295), st.integers(0, 255)), min_size=1, max_size=8))
def test_corrupted_objects_never_crash(flips):
    data = bytearray(AFXDP.read_bytes())
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    try:
        obj = BpfObject.from_bytes(bytes(data))
        for p in obj.programs:
            p.resolve({m.name: 3 for m in obj.maps}, xdplab.kernel.kfuncs.RFC_V2)
    except BpfError:
        pass


@pytest.mark.skipif(shutil.which("clang-14") is None, reason="clang-14 missing (CI installs it)")
def test_recompiled_objects_load_and_behave_the_same(tmp_path):
    for name in ("afxdp", "skb", "fields"):
        src = PROGRAMS / f"xdp_metadata_{name}.c"
        out = tmp_path / f"{name}.o"
        subprocess.run(["clang-14", "-O2", "-g", "-target", "bpf", "-c", str(src), "-o", str(out)],
                       check=True, capture_output=True, cwd=PROGRAMS)
        new, old = BpfObject.open(out), BpfObject.open(PROGRAMS / f"xdp_metadata_{name}.o")
        assert [p.insns for p in new.programs] == [p.insns for p in old.programs]
        assert new.maps == old.maps
    fresh = xdplab.Lab("ice", program=tmp_path / "afxdp.o").run(10)
    assert (fresh.rx_timestamp == xdplab.Lab("ice").run(10).rx_timestamp).all()
