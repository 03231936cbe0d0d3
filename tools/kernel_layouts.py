"""Measure the kernel's struct layouts with gcc, for the structs xdplab models (issue 11, part 3).

Why: xdplab's layouts (``xdplab/kernel/structs.py``, the drivers' descriptor and wrapper
layouts) were written by hand from reading headers; nothing tied them to what the compiler
really lays out.  This tool asks gcc itself, with the kernel's own flags, and writes
``data/kernel-layouts.json`` which ``tests/test_layouts.py`` compares against (CI reads only
the JSON; it has no kernel tree).

How (nothing of the kernel is built, only ``prepare``):

1. ``make O=BUILD defconfig``, then the drivers' options are switched on with the tree's
   ``scripts/config`` (ICE, MLX4_EN, BNXT, VETH, MLX5_CORE_EN, PTP_1588_CLOCK) and
   ``olddefconfig``; ``make O=BUILD modules_prepare`` generates the headers an external
   module needs (autoconf.h, asm-offsets.h, ...).  All of it is incremental: a second run
   costs seconds.
2. A scratch external module directory gets one generated C file per driver group (driver
   headers are private and clash with each other).  Each file evaluates ``offsetof`` /
   ``sizeof`` as immediate operands of an ``asm`` statement that prints them into the
   assembly output (the idea of the kernel's asm-offsets, written here afresh); kbuild compiles
   it to ``.s`` with the kernel's flags (``make -C BUILD M=DIR unit.s``), and the ``.s`` is
   parsed.  Bit-fields, which ``offsetof`` cannot take, are read from the DWARF of the same
   unit compiled to ``.o`` with ``-g`` (pyelftools).
3. The RFC v2 drivers' ``xdp_buff`` wrappers are not in any tree: their definitions are
   extracted at run time from the posted patches (``/work/shared/rfc/v2``) into the generated
   C, as the series leaves them (the last patch whose hunk shows the struct wins: 09/14
   introduces ``ice_xdp_buff`` and 10/14 adds its fields, and so on).

Run with ``nice python tools/kernel_layouts.py [TREE] [--build-dir DIR] [--out FILE]``.
The tree and the build directory stay outside the project (no kernel code is committed).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TREE = Path("/work/ksrc/linux-source-6.1")
DEFAULT_BUILD = Path("/work/ksrc/build")
DEFAULT_RFC = Path("/work/shared/rfc/v2")
DEFAULT_OUT = ROOT / "data" / "kernel-layouts.json"

# Kconfig symbols switched on after defconfig: the four RFC drivers' and mlx5 (Toke's numbers),
# plus what their timestamp code needs.
CONFIG_ENABLE = ("NET_VENDOR_INTEL", "ICE", "NET_VENDOR_MELLANOX", "MLX4_CORE", "MLX4_EN",
                 "MLX5_CORE", "MLX5_CORE_EN", "NET_VENDOR_BROADCOM", "BNXT", "VETH",
                 "PTP_1588_CLOCK", "PCI_MSI")

MARK = "@XDPLAB@"


class LayoutError(RuntimeError):
    """A step of the measurement failed (make, gcc, a patch without the wrapper, ...)."""


@dataclass(frozen=True)
class Unit:
    """One generated C file: the headers it includes and the driver directory it needs."""

    name: str
    includes: tuple[str, ...]
    include_dir: str | None = None      # a driver's private header directory, tree-relative


UNITS = (
    Unit("core", ("<linux/kernel.h>", "<linux/stddef.h>", "<linux/skbuff.h>", "<linux/netdevice.h>",
                  "<linux/bpf.h>", "<net/xdp.h>", "<linux/timecounter.h>", "<linux/mlx5/device.h>")),
    Unit("ice", ("<linux/netdevice.h>", "<net/xdp.h>", '"ice_txrx_lib.h"', '"ice_lib.h"', '"ice.h"'),
         "drivers/net/ethernet/intel/ice"),
    Unit("mlx4", ("<linux/bpf.h>", "<linux/mlx4/cq.h>", "<linux/skbuff.h>", '"mlx4_en.h"'),
         "drivers/net/ethernet/mellanox/mlx4"),
    Unit("bnxt", ("<linux/netdevice.h>", "<net/xdp.h>", '"bnxt_hsi.h"', '"bnxt.h"', '"bnxt_ptp.h"'),
         "drivers/net/ethernet/broadcom/bnxt"),
)


@dataclass(frozen=True)
class Spec:
    """A struct (or union) to measure: its C type, where it is defined, the members wanted.

    ``fields`` are C member designators (``wb.flex_ts.ts_high``); ``bitfields`` are members
    that are bit-fields (offsetof cannot take them: read from DWARF).  ``wrapper`` names an RFC
    v2 driver wrapper whose definition comes from the patches, not the tree.
    """

    key: str
    ctype: str
    unit: str
    header: str | None
    fields: tuple[str, ...]
    bitfields: tuple[str, ...] = ()
    wrapper_patches: tuple[str, ...] = ()   # RFC v2 patch numbers, in series order
    xdp_first: bool = True                  # an xdp_buff wrapper (container_of rule)


SPECS = (
    Spec("xdp_buff", "struct xdp_buff", "core", "include/net/xdp.h",
         ("data", "data_end", "data_meta", "data_hard_start", "rxq", "txq", "frame_sz", "flags")),
    Spec("xdp_md", "struct xdp_md", "core", "include/uapi/linux/bpf.h",
         ("data", "data_end", "data_meta", "ingress_ifindex", "rx_queue_index", "egress_ifindex")),
    Spec("xdp_frame", "struct xdp_frame", "core", "include/net/xdp.h",
         ("data", "len", "headroom", "metasize", "mem", "dev_rx", "frame_sz", "flags")),
    Spec("xdp_rxq_info", "struct xdp_rxq_info", "core", "include/net/xdp.h",
         ("dev", "queue_index", "reg_state", "mem", "napi_id", "frag_size")),
    Spec("xdp_txq_info", "struct xdp_txq_info", "core", "include/net/xdp.h", ("dev",)),
    Spec("skb_shared_hwtstamps", "struct skb_shared_hwtstamps", "core", "include/linux/skbuff.h",
         ("hwtstamp", "netdev_data")),
    Spec("skb_shared_info", "struct skb_shared_info", "core", "include/linux/skbuff.h",
         ("hwtstamps", "hwtstamps.hwtstamp")),
    Spec("sk_buff", "struct sk_buff", "core", "include/linux/skbuff.h",
         ("tstamp", "hash", "head", "data", "end", "len", "protocol"), bitfields=("l4_hash", "sw_hash")),
    Spec("net_device", "struct net_device", "core", "include/linux/netdevice.h", ("ifindex",)),
    Spec("cyclecounter", "struct cyclecounter", "core", "include/linux/timecounter.h",
         ("read", "mask", "mult", "shift")),
    Spec("timecounter", "struct timecounter", "core", "include/linux/timecounter.h",
         ("cc", "cycle_last", "nsec", "mask", "frac")),
    Spec("mlx5_cqe64", "struct mlx5_cqe64", "core", "include/linux/mlx5/device.h",
         ("rss_hash_result", "rss_hash_type", "check_sum", "vlan_info", "byte_cnt", "timestamp_h",
          "timestamp_l", "sop_drop_qpn", "wqe_counter", "op_own")),
    Spec("veth_xdp_buff", "struct veth_xdp_buff", "core", None, (), wrapper_patches=("04",)),
    # 06/14 declares it __randomize_layout; measured with CONFIG_RANDSTRUCT_NONE (declaration order).
    Spec("xdp_to_skb_metadata", "struct xdp_to_skb_metadata", "core", None, (), wrapper_patches=("06",),
         xdp_first=False),
    Spec("ice_32b_rx_flex_desc", "union ice_32b_rx_flex_desc", "ice",
         "drivers/net/ethernet/intel/ice/ice_lan_tx_rx.h",
         ("wb.rxdid", "wb.mir_id_umb_cast", "wb.ptype_flex_flags0", "wb.pkt_len", "wb.hdr_len_sph_flex_flags1",
          "wb.status_error0", "wb.l2tag1", "wb.status_error1", "wb.flex_flags2", "wb.time_stamp_low",
          "wb.l2tag2_1st", "wb.l2tag2_2nd", "wb.flex_ts.ts_high")),
    Spec("ice_32b_rx_flex_desc_nic", "struct ice_32b_rx_flex_desc_nic", "ice",
         "drivers/net/ethernet/intel/ice/ice_lan_tx_rx.h",
         ("rxdid", "mir_id_umb_cast", "ptype_flexi_flags0", "pkt_len", "hdr_len_sph_flex_flags1",
          "status_error0", "l2tag1", "rss_hash", "status_error1", "flexi_flags2", "ts_low", "l2tag2_1st",
          "l2tag2_2nd", "flow_id", "flex_ts.ts_high")),
    Spec("ice_rx_ring", "struct ice_rx_ring", "ice", "drivers/net/ethernet/intel/ice/ice_txrx.h",
         ("cached_phctime", "xdp", "rx_buf", "netdev")),
    Spec("ice_xdp_buff", "struct ice_xdp_buff", "ice", None, (), wrapper_patches=("09", "10")),
    Spec("mlx4_cqe", "struct mlx4_cqe", "mlx4", "include/linux/mlx4/cq.h",
         ("vlan_my_qpn", "immed_rss_invalid", "g_mlpath_rqpn", "sl_vid", "status", "ipv6_ext_mask",
          "badfcs_enc", "byte_cnt", "wqe_index", "checksum", "reserved", "owner_sr_opcode")),
    Spec("mlx4_ts_cqe", "struct mlx4_ts_cqe", "mlx4", "include/linux/mlx4/cq.h",
         ("vlan_my_qpn", "immed_rss_invalid", "g_mlpath_rqpn", "timestamp_hi", "status", "ipv6_ext_mask",
          "badfcs_enc", "byte_cnt", "wqe_index", "checksum", "reserved", "timestamp_lo", "owner_sr_opcode")),
    Spec("mlx4_en_dev", "struct mlx4_en_dev", "mlx4", "drivers/net/ethernet/mellanox/mlx4/mlx4_en.h",
         ("nominal_c_mult", "cycles", "cycles.mask", "cycles.mult", "cycles.shift", "clock_lock",
          "clock_lock.seqcount.seqcount.sequence", "clock", "clock.cycle_last", "clock.nsec", "clock.mask",
          "clock.frac", "last_overflow_check")),
    Spec("mlx4_xdp_buff", "struct mlx4_xdp_buff", "mlx4", None, (), wrapper_patches=("11", "12")),
    Spec("rx_cmp", "struct rx_cmp", "bnxt", "drivers/net/ethernet/broadcom/bnxt/bnxt.h",
         ("rx_cmp_len_flags_type", "rx_cmp_opaque", "rx_cmp_misc_v1", "rx_cmp_rss_hash")),
    Spec("rx_cmp_ext", "struct rx_cmp_ext", "bnxt", "drivers/net/ethernet/broadcom/bnxt/bnxt.h",
         ("rx_cmp_flags2", "rx_cmp_meta_data", "rx_cmp_cfa_code_errors_v2", "rx_cmp_timestamp")),
    Spec("bnxt", "struct bnxt", "bnxt", "drivers/net/ethernet/broadcom/bnxt/bnxt.h", ("ptp_cfg",)),
    Spec("bnxt_ptp_cfg", "struct bnxt_ptp_cfg", "bnxt", "drivers/net/ethernet/broadcom/bnxt/bnxt_ptp.h",
         ("cc", "cc.mask", "cc.mult", "cc.shift", "tc", "tc.cycle_last", "tc.nsec", "tc.mask", "tc.frac",
          "ptp_lock", "current_time", "old_time", "bp")),
    Spec("bnxt_xdp_buff", "struct bnxt_xdp_buff", "bnxt", None, (), wrapper_patches=("13", "14")),
)
SPEC_BY_KEY = {s.key: s for s in SPECS}

# What xdplab models that no 6.1 tree (nor RFC v2 patch) defines: not measured, said so in the
# table so that the comparison test can skip them by name.
NOT_IN_TREE = (
    ("xdp_hints_common", "Brouer's xdp-hints RFCv2 (xdplab/designs.py): never merged, in no tree"),
    ("xdp_hints_timestamp", "Brouer's xdp-hints RFCv2 driver struct (xdplab/designs.py): never merged"),
    ("sk_buff (model).hwtstamp", "skb_hwtstamps(skb)->hwtstamp is not a member of struct sk_buff: it is "
     "skb_shared_info.hwtstamps, at skb->head + skb->end (include/linux/skbuff.h skb_hwtstamps); "
     "see skb_shared_info and skb_shared_hwtstamps in this table"),
)


# ---------------------------------------------------------------------------------------------
# RFC v2 wrappers: extracted from the patch text at run time

@dataclass(frozen=True)
class Wrapper:
    """A wrapper definition as the series leaves it: C text, members, where it was read."""

    name: str
    text: str
    members: tuple[str, ...]
    source: str


def _patch_file(rfc_dir: Path, number: str) -> Path:
    found = sorted(rfc_dir.glob(f"{number}-*.patch"))
    if not found:
        raise LayoutError(f"RFC v2 patch {number}/14 not found in {rfc_dir}")
    return found[0]


def extract_wrapper(rfc_dir: Path, name: str, patches: Sequence[str], xdp_first: bool = True) -> Wrapper:
    """The post-image of ``struct NAME { ... };`` in the last of ``patches`` that shows it.

    A hunk line is kept when it is context (' ') or added ('+'); removed lines ('-') are not
    part of the result.  The first member must be ``struct xdp_buff xdp`` (the cover letter's
    container_of rule), else the extraction is refused.
    """
    head = re.compile(rf"^[ +]struct {re.escape(name)} {{\s*$")
    tail = re.compile(r"^}\s*(__randomize_layout)?\s*;")
    last: Wrapper | None = None
    for number in patches:
        path = _patch_file(rfc_dir, number)
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for i, line in enumerate(lines):
            if not head.match(line):
                continue
            body: list[str] = []
            for j in range(i, len(lines)):
                ln = lines[j]
                if ln.startswith("-"):
                    continue
                if ln[:1] not in (" ", "+") and ln != "":
                    raise LayoutError(f"{path.name}:{j + 1}: hunk ends inside struct {name}")
                body.append(ln[1:])
                if tail.match(ln[1:]):
                    break
            else:
                raise LayoutError(f"{path.name}:{i + 1}: struct {name} has no closing '}};'")
            members = tuple(_member_names(body[1:-1], f"{path.name}:{i + 1}"))
            if xdp_first and (not members or members[0] != "xdp"
                              or not re.match(r"\s*struct xdp_buff\s+xdp;", body[1])):
                raise LayoutError(f"{path.name}:{i + 1}: struct {name} does not start with struct xdp_buff xdp")
            last = Wrapper(name, "\n".join(body), members,
                           f"RFC v2 {number}/14 {path.name}:{i + 1} (post-image of the hunk)")
    if last is None:
        raise LayoutError(f"struct {name} not found in RFC v2 patches {', '.join(patches)} in {rfc_dir}")
    return last


def _member_names(lines: Iterable[str], where: str) -> Iterable[str]:
    for raw in lines:
        line = raw.split("/*")[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"[A-Za-z_][\w\s]*?[\s*]+(\w+)\s*;", line)
        if not m:
            raise LayoutError(f"{where}: cannot read the member declaration {raw!r}")
        yield m.group(1)


# ---------------------------------------------------------------------------------------------
# The kernel tree and its build directory

def tree_version(tree: Path) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL from the tree's top Makefile."""
    text = (tree / "Makefile").read_text(encoding="utf-8", errors="replace")
    vals = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL"):
        m = re.search(rf"^{key}\s*=\s*(\d+)\s*$", text, re.M)
        if not m:
            raise LayoutError(f"{tree}/Makefile has no {key}")
        vals[key] = m.group(1)
    return f"{vals['VERSION']}.{vals['PATCHLEVEL']}.{vals['SUBLEVEL']}"


def definition_line(tree: Path, header: str, ctype: str) -> int:
    """The 1-based line of ``struct NAME {`` (or ``union``) at column 0 in ``header``."""
    text = (tree / header).read_text(encoding="utf-8", errors="replace").splitlines()
    pat = re.compile(rf"^{re.escape(ctype)} {{")
    for i, line in enumerate(text, 1):
        if pat.match(line):
            return i
    raise LayoutError(f"{ctype} is not defined at column 0 in {header}")


def _run(cmd: Sequence[str], log: list[str], *, cwd: Path | None = None) -> str:
    log.append(" ".join(cmd))
    proc = subprocess.run(["nice", *cmd], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise LayoutError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout


def prepare(tree: Path, build: Path, log: list[str], jobs: int = 2) -> Path:
    """defconfig + the drivers' options + modules_prepare in ``build`` (O=); returns .config."""
    build.mkdir(parents=True, exist_ok=True)
    config = build / ".config"
    if not config.exists():
        _run(["make", "-s", "-C", str(tree), f"O={build}", "defconfig"], log)
    cfg = _config_values(config)
    if any(cfg.get(f"CONFIG_{sym}") != "y" for sym in CONFIG_ENABLE):
        args = [str(tree / "scripts" / "config"), "--file", str(config)]
        for sym in CONFIG_ENABLE:
            args += ["-e", sym]
        _run(args, log)
        _run(["make", "-s", "-C", str(tree), f"O={build}", "olddefconfig"], log)
        cfg = _config_values(config)
        missing = [s for s in CONFIG_ENABLE if cfg.get(f"CONFIG_{s}") != "y"]
        if missing:
            raise LayoutError(f"Kconfig refused {', '.join(missing)} (dependencies?)")
    _run(["make", "-s", f"-j{jobs}", "-C", str(tree), f"O={build}", "modules_prepare"], log)
    return config


def _config_values(config: Path) -> dict[str, str]:
    out = {}
    for line in config.read_text(encoding="utf-8").splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


# ---------------------------------------------------------------------------------------------
# The generated C and its output

def _emit(tag: str, expr: str) -> str:
    return f'\tXDPLAB_EMIT("{tag}", {expr});'


def generate_unit(unit: Unit, specs: Sequence[Spec], wrappers: Mapping[str, Wrapper]) -> str:
    """C source: includes, the extracted wrappers, and one marker per size/offset wanted."""
    out = ["/* Generated by xdplab tools/kernel_layouts.py in a scratch directory; not kept. */"]
    out += [f"#include {inc}" for inc in unit.includes]
    out.append("")
    # %c0 prints the immediate without the '$' prefix (x86 operand modifier).
    out.append('#define XDPLAB_EMIT(tag, val) \\\n\tasm volatile("\\n.ascii \\"' + MARK +
               ' " tag " %c0\\"" : : "i" ((unsigned long)(val)))')
    out.append("#define XDPLAB_MSIZE(type, m) sizeof(((type *)0)->m)")
    for spec in specs:
        if spec.key in wrappers:
            out += ["", f"/* {wrappers[spec.key].source} */", wrappers[spec.key].text]
    out.append("")
    # Referenced so that the -g object carries the full type in its DWARF (bit-fields).
    for spec in specs:
        if spec.bitfields:
            out.append(f"{spec.ctype} *xdplab_dwarf_{spec.key};")
    fn = f"xdplab_layouts_{unit.name}"
    out += [f"void {fn}(void);", f"void {fn}(void)", "{"]
    for spec in specs:
        out.append(_emit(f"S {spec.key} -", f"sizeof({spec.ctype})"))
        for f in _fields_of(spec, wrappers):
            out.append(_emit(f"O {spec.key} {f}", f"offsetof({spec.ctype}, {f})"))
            out.append(_emit(f"Z {spec.key} {f}", f"XDPLAB_MSIZE({spec.ctype}, {f})"))
    out += ["}", ""]
    return "\n".join(out)


def _fields_of(spec: Spec, wrappers: Mapping[str, Wrapper]) -> tuple[str, ...]:
    return wrappers[spec.key].members if spec.key in wrappers else spec.fields


def parse_asm(text: str) -> dict[str, dict]:
    """{key: {"size": n, "fields": {designator: [offset, size]}}} from the markers in a .s."""
    out: dict[str, dict] = {}
    pat = re.compile(rf'\.ascii\s+"{re.escape(MARK)} ([SOZ]) (\S+) (\S+) (-?\d+)"')
    for m in pat.finditer(text):
        kind, key, fld, val = m.group(1), m.group(2), m.group(3), int(m.group(4))
        entry = out.setdefault(key, {"size": None, "fields": {}})
        if kind == "S":
            entry["size"] = val
        else:
            pair = entry["fields"].setdefault(fld, [None, None])
            pair[0 if kind == "O" else 1] = val
    for key, entry in out.items():
        if entry["size"] is None or any(None in p for p in entry["fields"].values()):
            raise LayoutError(f"incomplete compiler output for {key}: {entry}")
    return out


def dwarf_bitfields(obj: Path, wanted: Mapping[str, tuple[str, tuple[str, ...]]]) -> dict[str, dict]:
    """Bit-field members from DWARF: {key: {member: [bit_offset, bit_size]}} (bits from the
    struct's start).  ``wanted`` maps a key to (C tag name, members).  Anonymous struct/union
    members are entered, adding their offsets, as C's member lookup does."""
    from elftools.elf.elffile import ELFFile

    result: dict[str, dict] = {}
    with obj.open("rb") as fh:
        elf = ELFFile(fh)
        if not elf.has_dwarf_info():
            raise LayoutError(f"{obj} has no DWARF (was -g dropped?)")
        dwarf = elf.get_dwarf_info()
        tags = {tag: key for key, (tag, _) in wanted.items()}
        for cu in dwarf.iter_CUs():
            for die in cu.iter_DIEs():
                if die.tag != "DW_TAG_structure_type" or "DW_AT_name" not in die.attributes:
                    continue
                if "DW_AT_declaration" in die.attributes:
                    continue
                name = die.attributes["DW_AT_name"].value.decode()
                if name not in tags or tags[name] in result:
                    continue
                key = tags[name]
                found: dict[str, list[int]] = {}
                _walk_members(die, 0, set(wanted[key][1]), found)
                result[key] = found
    for key, (tag, members) in wanted.items():
        missing = set(members) - set(result.get(key, {}))
        if missing:
            raise LayoutError(f"DWARF of {obj.name}: struct {tag} lacks bit-fields {sorted(missing)}")
    return result


def _walk_members(die: Any, base_bits: int, names: set[str], found: dict[str, list[int]]) -> None:
    """Collect bit-field members of ``die`` (a struct/union DIE) into ``found``."""
    for child in die.iter_children():
        if child.tag != "DW_TAG_member":
            continue
        attrs = child.attributes
        if "DW_AT_data_bit_offset" in attrs:
            bits = attrs["DW_AT_data_bit_offset"].value
        elif "DW_AT_data_member_location" in attrs:
            bits = 8 * attrs["DW_AT_data_member_location"].value
        else:
            bits = 0    # a union member
        name = attrs["DW_AT_name"].value.decode() if "DW_AT_name" in attrs else None
        if name is None:
            target = child.get_DIE_from_attribute("DW_AT_type")
            while target.tag in ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type"):
                target = target.get_DIE_from_attribute("DW_AT_type")
            _walk_members(target, base_bits + bits, names, found)
        elif name in names and "DW_AT_bit_size" in attrs:
            found.setdefault(name, [base_bits + bits, attrs["DW_AT_bit_size"].value])


def compile_units(tree: Path, build: Path, specs: Sequence[Spec], wrappers: Mapping[str, Wrapper],
                  workdir: Path, log: list[str]) -> dict[str, dict]:
    """Generate, compile and read every unit that has one of ``specs``."""
    results: dict[str, dict] = {}
    by_unit = {u.name: [s for s in specs if s.unit == u.name] for u in UNITS}
    units = [u for u in UNITS if by_unit[u.name]]
    incs = " ".join(f"-I{tree / u.include_dir}" for u in units if u.include_dir)
    (workdir / "Kbuild").write_text(
        "# generated by xdplab tools/kernel_layouts.py\n"
        + "".join(f"obj-m += xl_{u.name}.o\n" for u in units)
        + f"ccflags-y += -g {incs}\n")
    targets = []
    for u in units:
        (workdir / f"xl_{u.name}.c").write_text(generate_unit(u, by_unit[u.name], wrappers))
        targets.append(f"xl_{u.name}.s")
        if any(s.bitfields for s in by_unit[u.name]):
            targets.append(f"xl_{u.name}.o")
    _run(["make", "-s", "-C", str(build), f"M={workdir}", *targets], log)
    for u in units:
        parsed = parse_asm((workdir / f"xl_{u.name}.s").read_text(errors="replace"))
        wanted = {s.key: (s.ctype.split()[1], s.bitfields) for s in by_unit[u.name] if s.bitfields}
        bits = dwarf_bitfields(workdir / f"xl_{u.name}.o", wanted) if wanted else {}
        for s in by_unit[u.name]:
            if s.key not in parsed:
                raise LayoutError(f"no compiler output for {s.key}")
            entry = {"kind": s.ctype.split()[0], "size": parsed[s.key]["size"],
                     "fields": {f: parsed[s.key]["fields"][f] for f in _fields_of(s, wrappers)}}
            if s.key in bits:
                entry["bitfields"] = {f: bits[s.key][f] for f in s.bitfields}
            results[s.key] = entry
    return results


def gcc_version() -> str:
    return subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]


def extract(tree: Path = DEFAULT_TREE, build: Path = DEFAULT_BUILD, rfc_dir: Path = DEFAULT_RFC,
            only: Sequence[str] | None = None, jobs: int = 2) -> dict:
    """Measure the layouts; returns the table (see ``main`` for the file written)."""
    tree, build, rfc_dir = tree.resolve(), build.resolve(), rfc_dir.resolve()
    if not (tree / "Makefile").exists():
        raise LayoutError(f"{tree} is not a kernel tree")
    for what, path in (("tree", tree), ("build directory", build)):
        if path == ROOT or ROOT in path.parents:
            raise LayoutError(f"the kernel {what} {path} must stay outside the project ({ROOT})")
    for tool in ("gcc", "make", "flex", "bison", "nice"):
        if shutil.which(tool) is None:
            raise LayoutError(f"{tool} is not installed (apt-get install build-essential flex bison libelf-dev)")
    if not (build / "tools" / "objtool" / "objtool").exists() and not Path("/usr/include/gelf.h").exists():
        # defconfig selects CONFIG_OBJTOOL: modules_prepare builds objtool, which needs libelf.
        raise LayoutError("libelf-dev is not installed (objtool, built by modules_prepare, needs it)")
    unknown = set(only or ()) - set(SPEC_BY_KEY)
    if unknown:
        raise LayoutError(f"unknown struct keys {sorted(unknown)}; known: {', '.join(SPEC_BY_KEY)}")
    specs = [SPEC_BY_KEY[k] for k in only] if only else list(SPECS)
    version = tree_version(tree)
    log: list[str] = []
    t0 = time.monotonic()
    wrappers = {s.key: extract_wrapper(rfc_dir, s.key, s.wrapper_patches, s.xdp_first)
                for s in specs if s.wrapper_patches}
    config = prepare(tree, build, log, jobs)
    t_prep = time.monotonic() - t0
    with tempfile.TemporaryDirectory(prefix="xdplab-layouts-") as tmp:
        structs = compile_units(tree, build, specs, wrappers, Path(tmp), log)
    t_all = time.monotonic() - t0
    cfg = _config_values(config)
    for s in specs:
        entry = structs[s.key]
        if s.key in wrappers:
            entry["source"] = wrappers[s.key].source
        else:
            assert s.header is not None
            entry["source"] = f"{s.header}@{version}:{definition_line(tree, s.header, s.ctype)}"
    return {
        "about": "Struct layouts measured by gcc (offsetof/sizeof) with the kernel's own build flags, "
                 "x86-64; written by tools/kernel_layouts.py. Fields are C member designators; "
                 "fields: [offset, size] in bytes; bitfields: [bit offset, bit size].",
        "provenance": {
            "tree": str(tree), "tree_version": version,
            "debian_package": _debian_package(tree),
            "gcc": gcc_version(), "arch": "x86_64",
            "config": {"base": "x86_64 defconfig", "enabled": [f"CONFIG_{s}" for s in CONFIG_ENABLE],
                       "sha256": hashlib.sha256(config.read_bytes()).hexdigest(),
                       "CONFIG_DEBUG_LOCK_ALLOC": cfg.get("CONFIG_DEBUG_LOCK_ALLOC", "n"),
                       "CONFIG_RANDSTRUCT_NONE": cfg.get("CONFIG_RANDSTRUCT_NONE", "n")},
            "commands": [
                "make -s -C TREE O=BUILD defconfig (when BUILD has no .config)",
                "TREE/scripts/config --file BUILD/.config -e SYM ... (each of config.enabled)",
                "make -s -C TREE O=BUILD olddefconfig",
                "make -s -j2 -C TREE O=BUILD modules_prepare",
                "make -s -C BUILD M=SCRATCH xl_<unit>.s [xl_<unit>.o] (generated C per unit: core, ice, "
                "mlx4, bnxt; ccflags-y += -g -I<driver dirs>)",
                "all under nice; BUILD = " + str(build)],
            "executed_this_run": [_anonymize(c, tree, build) for c in log],
            "rfc_patches": str(rfc_dir),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": {"prepare": round(t_prep, 1), "total": round(t_all, 1)},
        },
        "structs": structs,
        "not_in_tree": {name: why for name, why in NOT_IN_TREE},
    }


def _anonymize(cmd: str, tree: Path, build: Path) -> str:
    cmd = re.sub(r"M=\S+", "M=SCRATCH", cmd)
    return cmd.replace(str(build), "BUILD").replace(str(tree), "TREE")


def dump(table: Mapping) -> str:
    """JSON with each [offset, size] pair on one line (diffs stay readable)."""
    text = json.dumps(table, indent=1)
    return re.sub(r"\[\s+(-?\d+),\s+(-?\d+)\s+\]", r"[\1, \2]", text) + "\n"


def _debian_package(tree: Path) -> str | None:
    debs = sorted(tree.parent.glob("linux-source-*_*.deb"))
    return debs[-1].name if debs else None


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tree", nargs="?", type=Path, default=DEFAULT_TREE, help="linux-source-6.1 tree")
    ap.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD, help="O= directory (outside the project)")
    ap.add_argument("--rfc", type=Path, default=DEFAULT_RFC, help="directory of the RFC v2 patches")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", action="append", help="measure only this struct key (repeatable)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    try:
        table = extract(args.tree, args.build_dir, args.rfc, args.only, args.jobs)
    except LayoutError as exc:
        print(f"kernel_layouts: {exc}", file=sys.stderr)
        return 1
    if args.only:
        sys.stdout.write(dump(table))
        return 0
    args.out.write_text(dump(table))
    print(f"wrote {args.out} ({len(table['structs'])} structs, {table['provenance']['seconds']['total']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
