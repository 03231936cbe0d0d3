"""xdplab's struct layouts against the kernel's, as gcc laid them out (issue 11, part 3).

``data/kernel-layouts.json`` is written by ``tools/kernel_layouts.py`` from a linux-source-6.1
tree (offsetof/sizeof compiled with the kernel's flags; the RFC v2 wrappers extracted from the
posted patches).  These tests read only that JSON, so they run in CI without a tree; the last
group re-runs the tool when a tree is present and checks the JSON is still what gcc says.

Every StructLayout the simulation uses (kernel structs, drivers' descriptors, rings, clocks and
wrappers) must either have a kernel counterpart here or be listed in the table's
``not_in_tree`` (modelled structs that no tree defines).  Known disagreements are listed in
KNOWN with the kernel's numbers and are strict xfails: fixing one makes its test XPASS, i.e.
fail, until it is taken off the list.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdplab.kernel.structs import StructLayout

ROOT = Path(__file__).resolve().parents[1]
TABLE = json.loads((ROOT / "data" / "kernel-layouts.json").read_text())
K: Mapping[str, Any] = TABLE["structs"]
NOT_IN_TREE: Mapping[str, str] = TABLE["not_in_tree"]

# Modules whose module-level StructLayout constants are the simulation's layouts.
MODULES = ("xdplab.kernel.structs", "xdplab.drivers.ice", "xdplab.drivers.mlx4", "xdplab.drivers.bnxt",
           "xdplab.drivers.veth", "xdplab.drivers.mlx5", "xdplab.designs")


def _tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("kernel_layouts", ROOT / "tools" / "kernel_layouts.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("kernel_layouts", mod)   # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def our_layouts() -> dict[str, StructLayout]:
    """{layout name: layout} over MODULES, plus xdp_to_skb_metadata of a non-randstruct build."""
    from xdplab.kernel.boot import KernelBuild
    found: dict[str, StructLayout] = {}
    for modname in MODULES:
        mod = importlib.import_module(modname)
        for value in vars(mod).values():
            if isinstance(value, StructLayout):
                if value.name in found and found[value.name] != value:
                    raise AssertionError(f"two different layouts named {value.name!r}")
                found[value.name] = value
    meta = KernelBuild(seed=0, randstruct=False).xdp_to_skb_metadata
    found[meta.name] = meta
    return found


# Our layout name -> [(kernel key, {our field: kernel designator}, only the mapped fields?)].
# A designator "bits:NAME" is a bit-field (compared by the byte holding its bit).
IDENT: dict[str, str] = {}
COUNTERPARTS: Mapping[str, tuple[tuple[str, Mapping[str, str], bool], ...]] = {
    "xdp_md": (("xdp_md", IDENT, False),),
    "xdp_buff": (("xdp_buff", IDENT, False),),
    "xdp_frame": (("xdp_frame", IDENT, False),),
    "xdp_rxq_info": (("xdp_rxq_info", IDENT, False),),
    "xdp_txq_info": (("xdp_txq_info", IDENT, False),),
    "net_device": (("net_device", IDENT, False),),
    "sk_buff": (("sk_buff", IDENT, False),),
    "sk_buff (model)": (("sk_buff", {"l4_hash": "bits:l4_hash"}, False),),
    "xdp_to_skb_metadata": (("xdp_to_skb_metadata", IDENT, False),),
    "veth_xdp_buff": (("veth_xdp_buff", IDENT, False),),
    "ice_xdp_buff": (("ice_xdp_buff", IDENT, False),),
    "mlx4_xdp_buff": (("mlx4_xdp_buff", IDENT, False),),
    "bnxt_xdp_buff": (("bnxt_xdp_buff", IDENT, False),),
    "ice_32b_rx_flex_desc_nic": (
        ("ice_32b_rx_flex_desc_nic", {"ptype_flex_flags0": "ptype_flexi_flags0", "flex_flags2": "flexi_flags2",
                                      "time_stamp_low": "ts_low", "ts_high": "flex_ts.ts_high"}, False),
        # the RFC's unroll (10/14) takes offsetof(union ice_32b_rx_flex_desc, wb.time_stamp_low) and
        # wb.flex_ts.ts_high: the same bytes must be meant through the union's write-back view.
        ("ice_32b_rx_flex_desc", {"rxdid": "wb.rxdid", "pkt_len": "wb.pkt_len", "status_error0": "wb.status_error0",
                                  "time_stamp_low": "wb.time_stamp_low", "ts_high": "wb.flex_ts.ts_high"}, True),
    ),
    "ice_rx_ring": (("ice_rx_ring", IDENT, False),),
    "mlx4_ts_cqe": (("mlx4_ts_cqe", IDENT, False),),
    "mlx4_en_dev": (("mlx4_en_dev", {
        "clock_seq": "clock_lock.seqcount.seqcount.sequence", "cc_mask": "cycles.mask", "cc_mult": "cycles.mult",
        "cc_shift": "cycles.shift", "tc_cycle_last": "clock.cycle_last", "tc_nsec": "clock.nsec",
        "tc_frac": "clock.frac"}, False),),
    "rx_cmp": (("rx_cmp", {"len_flags_type": "rx_cmp_len_flags_type", "opaque": "rx_cmp_opaque",
                           "misc": "rx_cmp_misc_v1", "rss_hash": "rx_cmp_rss_hash"}, False),),
    "rx_cmp_ext": (("rx_cmp_ext", {"flags2": "rx_cmp_flags2", "meta_data": "rx_cmp_meta_data",
                                   "cfa_code_errors_v2": "rx_cmp_cfa_code_errors_v2"}, False),),
    "bnxt": (("bnxt", {"ptp_cfg": "ptp_cfg"}, True),),
    # mlx5: l4_l3_hdr_type (@29) is not among the measured members; mlx5e_xdp_buff is 6.3+ (not in 6.1)
    "ice_rx_ring (pkt_ctx)": (("ice_rx_ring", {"cached_phctime": "cached_phctime"}, True),),
    "sk_buff (model, metadata fields)": (("sk_buff", {"tstamp": "tstamp"}, True),),
    "mlx5e_xdp_buff": (("xdp_buff", {f: f for f in ("data", "data_end", "data_meta", "data_hard_start", "rxq",
                                                    "txq", "frame_sz", "flags")}, True),),
    "mlx5_cqe64": (("mlx5_cqe64", {f: f for f in ("rss_hash_result", "rss_hash_type", "vlan_info", "byte_cnt",
                                                  "timestamp_h", "timestamp_l", "op_own")}, True),),
    "bnxt_ptp_cfg": (("bnxt_ptp_cfg", {
        "tc_cycle_last": "tc.cycle_last", "tc_nsec": "tc.nsec", "tc_frac": "tc.frac", "cc_mask": "cc.mask",
        "cc_mult": "cc.mult", "cc_shift": "cc.shift"}, False),),
}

_MODEL_SKB = ("MODEL offset in xdplab/drivers/veth.py (SKB_MODEL): l4_hash is a 1-bit field, bit 0 of "
              "byte 129 of struct sk_buff (skbuff.h@6.1.192:945), not a byte at 0x98")
# (our layout name, our field or "<size>") -> why it disagrees; the kernel's value is in the reason.
KNOWN: Mapping[tuple[str, str], str] = {
    ("sk_buff (model)", "l4_hash"): _MODEL_SKB,
}


def kernel_field(key: str, designator: str) -> tuple[int, int]:
    """(offset, size) in bytes of a member of kernel struct ``key``.  A wrapper's inherited
    xdp_buff members are its ``xdp`` member's offset plus xdp_buff's own; a bit-field gives the
    byte holding its first bit and size 1 (only 1-bit fields are compared)."""
    entry = K[key]
    if designator.startswith("bits:"):
        bit, width = entry["bitfields"][designator[5:]]
        assert width == 1, f"{key}.{designator} is {width} bits wide"
        return bit // 8, 1
    if designator in entry["fields"]:
        off, size = entry["fields"][designator]
        return off, size
    if "xdp" in entry["fields"] and designator in K["xdp_buff"]["fields"]:
        base, size = entry["fields"]["xdp"]
        assert size == K["xdp_buff"]["size"]
        off, fsize = K["xdp_buff"]["fields"][designator]
        return base + off, fsize
    raise KeyError(f"kernel-layouts.json has no {key}.{designator}: add it to tools/kernel_layouts.py SPECS")


def _cases() -> list[Any]:
    cases = []
    for ours, entries in COUNTERPARTS.items():
        for key, fmap, only_mapped in entries:
            names = list(fmap) if only_mapped else ["<size>", *_FIELDS.get(ours, ())]
            for f in names:
                if f"{ours}.{f}" in NOT_IN_TREE:
                    continue
                reason = KNOWN.get((ours, f))
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                cases.append(pytest.param(ours, key, f, fmap.get(f, f), id=f"{ours}.{f}~{key}", marks=marks))
    return cases


_OURS = our_layouts()
_FIELDS = {name: tuple(lay.fields) for name, lay in _OURS.items()}


@pytest.mark.parametrize("ours,key,field,designator", _cases())
def test_layout_matches_kernel(ours: str, key: str, field: str, designator: str) -> None:
    lay = _OURS[ours]
    if field == "<size>":
        assert lay.size == K[key]["size"], f"sizeof({key}): ours {lay.size}, kernel {K[key]['size']}"
        return
    got = (lay.fields[field].offset, lay.fields[field].size)
    want = kernel_field(key, designator)
    assert got == want, f"{ours}.{field} (kernel {key}.{designator}): ours {got}, kernel {want}"


# Layouts that are MODEL by construction (their modules say so), with why no 6.1 member exists.
MODELLED: Mapping[str, str] = {
    "mlx5e_rq (model)": "the members of struct mlx5e_rq the 6.3+ XDP ops read (xdplab/drivers/mlx5.py)",
    "mlx5_clock (model)": "mlx5_clock's seqlock and mlx5_timer's cyclecounter/timecounter (xdplab/drivers/mlx5.py)",
}


def test_every_layout_is_compared_or_declared_absent() -> None:
    """A new StructLayout in the simulation must be tied to the kernel table or declared
    modelled (``not_in_tree`` in the table, written by the tool; or MODELLED above)."""
    missing = [n for n in _OURS if n not in COUNTERPARTS and n not in NOT_IN_TREE and n not in MODELLED]
    assert not missing, f"layouts with no kernel counterpart and not in not_in_tree: {missing}"
    for name in COUNTERPARTS:
        assert name in _OURS, f"COUNTERPARTS names {name!r}, which the simulation no longer defines"
        for key, fmap, _ in COUNTERPARTS[name]:
            assert key in K, f"kernel-layouts.json lacks {key}"
            for f in fmap:
                assert f in _OURS[name].fields, f"{name} has no field {f!r} (mapping is stale)"


def test_wrappers_start_with_xdp_buff() -> None:
    """The cover letter's container_of rule: every RFC wrapper has the xdp_buff at 0, so the BPF
    ctx pointer is the wrapper's address (checked on the kernel side, not ours)."""
    for key in ("veth_xdp_buff", "ice_xdp_buff", "mlx4_xdp_buff", "bnxt_xdp_buff"):
        assert K[key]["fields"]["xdp"] == [0, K["xdp_buff"]["size"]]


def test_provenance() -> None:
    prov = TABLE["provenance"]
    assert prov["tree_version"] == "6.1.192" and prov["arch"] == "x86_64"
    assert prov["gcc"].startswith("gcc") and prov["date"].endswith("Z")
    for sym in ("CONFIG_ICE", "CONFIG_MLX4_EN", "CONFIG_BNXT", "CONFIG_VETH", "CONFIG_MLX5_CORE_EN"):
        assert sym in prov["config"]["enabled"]
    assert prov["config"]["CONFIG_RANDSTRUCT_NONE"] == "y"   # declaration order, as xdplab assumes
    for key, entry in K.items():
        src = entry["source"]
        assert src.startswith("RFC v2 ") or src.split("@")[1].startswith("6.1.192:"), (key, src)


# ---------------------------------------------------------------------------------------------
# The drivers' byte offsets that are not layouts: descriptors are built and read by slicing.
# Each test writes values at the kernel's offsets (from the table) with every other byte set to
# a filler, and the expected result is derived by hand from the kernel's formula.

def _put(buf: bytearray, key: str, designator: str, value: int, order: str) -> None:
    off, size = kernel_field(key, designator)
    buf[off:off + size] = value.to_bytes(size, order)


def _get(buf: bytes, key: str, designator: str, order: str) -> int:
    off, size = kernel_field(key, designator)
    return int.from_bytes(buf[off:off + size], order)


def test_ice_c_path_reads_the_kernels_descriptor_bytes() -> None:
    ice = importlib.import_module("xdplab.drivers.ice")
    desc = bytearray(b"\xee" * K["ice_32b_rx_flex_desc"]["size"])     # 0xEE: bit 0 clear
    _put(desc, "ice_32b_rx_flex_desc", "wb.time_stamp_low", 0x01, "little")   # ICE_PTP_TS_VALID
    _put(desc, "ice_32b_rx_flex_desc", "wb.flex_ts.ts_high", 5, "little")
    # ice_ptp_extend_32b_ts: cached low 32 bits 0, stamp 5 -> delta 5 forward.
    assert ice.ice_ptp_rx_hwtstamp(0x1_0000_0000, bytes(desc)) == 0x1_0000_0005
    _put(desc, "ice_32b_rx_flex_desc", "wb.time_stamp_low", 0xFE, "little")   # valid bit clear
    assert ice.ice_ptp_rx_hwtstamp(0x1_0000_0000, bytes(desc)) == 0


def test_ice_descriptor_encoding_at_kernel_offsets() -> None:
    ice = importlib.import_module("xdplab.drivers.ice")
    d = ice.RxDescriptor(pkt_len=0x123, phc_ns=0x1_2345_6789, rss_hash=0xCAFEBABE, ptype=0x155).encode()
    nic = "ice_32b_rx_flex_desc_nic"
    assert _get(d, nic, "rxdid", "little") == 2                       # ICE_RXDID_FLEX_NIC
    assert _get(d, nic, "pkt_len", "little") & 0x3FFF == 0x123
    assert _get(d, nic, "ptype_flexi_flags0", "little") & 0x3FF == 0x155
    assert _get(d, nic, "rss_hash", "little") == 0xCAFEBABE
    assert _get(d, nic, "ts_low", "little") & 1 == 1
    assert _get(d, nic, "flex_ts.ts_high", "little") == 0x2345_6789


def test_mlx4_cqe_timestamp_at_kernel_offsets() -> None:
    mlx4 = importlib.import_module("xdplab.drivers.mlx4")
    cqe = bytearray(b"\xee" * K["mlx4_ts_cqe"]["size"])
    _put(cqe, "mlx4_ts_cqe", "timestamp_hi", 0x1234_5678, "big")
    _put(cqe, "mlx4_ts_cqe", "timestamp_lo", 0x9ABC, "big")
    assert mlx4.get_cqe_ts(bytes(cqe)) == 0x1234_5678_9ABC
    _put(cqe, "mlx4_ts_cqe", "timestamp_lo", 0, "big")   # mlx4_en_get_cqe_ts: hi + 1 when lo == 0
    assert mlx4.get_cqe_ts(bytes(cqe)) == 0x1234_5679_0000
    made = mlx4.make_cqe(0xABCD_1234_5678, byte_cnt=0x5EE, rss_hash=0xDEADBEEF)
    assert _get(made, "mlx4_ts_cqe", "timestamp_hi", "big") == 0xABCD_1234
    assert _get(made, "mlx4_ts_cqe", "timestamp_lo", "big") == 0x5678
    assert _get(made, "mlx4_ts_cqe", "byte_cnt", "big") == 0x5EE
    # the Rx hash is cqe->immed_rss_invalid (en_rx.c@6.1.192:880)
    assert _get(made, "mlx4_cqe", "immed_rss_invalid", "big") == 0xDEADBEEF


def test_bnxt_completion_at_kernel_offsets() -> None:
    bnxt = importlib.import_module("xdplab.drivers.bnxt")
    cmp, ext = bnxt.make_completion(0x1_2345_6789, length=0x40)
    assert len(cmp) == K["rx_cmp"]["size"] and len(ext) == K["rx_cmp_ext"]["size"]
    assert _get(ext, "rx_cmp_ext", "rx_cmp_timestamp", "little") == 0x2345_6789
    word = _get(cmp, "rx_cmp", "rx_cmp_len_flags_type", "little")
    assert word >> 16 == 0x40 and word & 0xF000 == 9 << 12     # RX_CMP_LEN_SHIFT, ITYPE_PTP_W_TS
    ext2 = bytearray(b"\xee" * K["rx_cmp_ext"]["size"])
    _put(ext2, "rx_cmp_ext", "rx_cmp_timestamp", 5, "little")
    # bnxt_get_rx_ts_p5: (old & HI) | 5 = 0x1_0000_0005, not below old's low half; mult 1 shift 0.
    tc = bnxt.bnxt_timecounter(0, 0)
    assert bnxt.bnxt_rx_timestamp(0x1_0000_0000, tc, bytes(ext2)) == 0x1_0000_0005


# ---------------------------------------------------------------------------------------------
# The tool itself (no kernel tree needed)

KL = _tool()


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_.]{0,12}", fullmatch=True),
                       st.tuples(st.integers(0, 1 << 20), st.integers(1, 4096)), max_size=8),
       st.integers(1, 1 << 20))
def test_parse_asm_round_trip(fields: dict[str, tuple[int, int]], size: int) -> None:
    """The .s markers as gcc prints them (``.ascii "@XDPLAB@ O key field 12"``) read back."""
    lines = ["\t.text", f'#APP\n.ascii "{KL.MARK} S thing - {size}"\n#NO_APP']
    for f, (off, fsize) in fields.items():
        lines += [f'.ascii "{KL.MARK} O thing {f} {off}"', "\tnop", f'.ascii "{KL.MARK} Z thing {f} {fsize}"']
    out = KL.parse_asm("\n".join(lines))
    assert out == {"thing": {"size": size, "fields": {f: [o, s] for f, (o, s) in fields.items()}}}


def test_parse_asm_refuses_incomplete_output() -> None:
    with pytest.raises(KL.LayoutError, match="incomplete"):
        KL.parse_asm(f'.ascii "{KL.MARK} S thing - 8"\n.ascii "{KL.MARK} O thing a 0"')


def test_extract_wrapper_takes_the_post_image(tmp_path: Path) -> None:
    (tmp_path / "01-x.patch").write_text(
        "@@ -1,3 +1,4 @@\n struct foo_xdp_buff {\n \tstruct xdp_buff xdp;\n-\tint old;\n+\tu64 *ring; /* new */\n"
        "+\tu32 r0;\n };\n")
    w = KL.extract_wrapper(tmp_path, "foo_xdp_buff", ("01",))
    assert w.members == ("xdp", "ring", "r0") and "old" not in w.text and "01-x.patch:2" in w.source
    (tmp_path / "02-y.patch").write_text("+struct bar_xdp_buff {\n+\tint a;\n+\tstruct xdp_buff xdp;\n+};\n")
    with pytest.raises(KL.LayoutError, match="does not start with struct xdp_buff"):
        KL.extract_wrapper(tmp_path, "bar_xdp_buff", ("02",))


RFC = next((p for p in (KL.DEFAULT_RFC, ROOT.parent / "shared" / "rfc" / "v2") if p.is_dir()), None)


@pytest.mark.skipif(RFC is None, reason="the RFC v2 patches (shared/rfc/v2) are not beside the project")
@pytest.mark.parametrize("key", [s.key for s in KL.SPECS if s.wrapper_patches])
def test_wrappers_as_posted_match_the_table(key: str) -> None:
    spec = KL.SPEC_BY_KEY[key]
    w = KL.extract_wrapper(RFC, key, spec.wrapper_patches, spec.xdp_first)
    assert w.members == tuple(K[key]["fields"]) and w.source == K[key]["source"]


# ---------------------------------------------------------------------------------------------
# With a kernel tree: gcc still says what the table says

TREE_READY = KL.DEFAULT_TREE.joinpath("Makefile").exists() and all(
    shutil.which(t) for t in ("gcc", "make", "flex", "bison", "nice"))


@pytest.mark.skipif(not TREE_READY, reason=f"no kernel tree at {KL.DEFAULT_TREE} (or no gcc/flex/bison)")
def test_tool_rerun_matches_table() -> None:
    """Re-measure xdp_buff (and check every tree-sourced line still opens its struct)."""
    table = KL.extract(only=("xdp_buff",))
    assert table["structs"]["xdp_buff"] == K["xdp_buff"]
    assert table["provenance"]["tree_version"] == TABLE["provenance"]["tree_version"]
    for key, entry in K.items():
        if "@" in entry["source"]:
            path, where = entry["source"].split("@")
            line = int(where.split(":")[1])
            text = (KL.DEFAULT_TREE / path).read_text(errors="replace").splitlines()[line - 1]
            assert text.startswith(f"{KL.SPEC_BY_KEY[key].ctype} {{"), (key, text)
