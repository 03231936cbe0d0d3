"""The ``xdplab`` command: a reviewer's bench for the RFC "xdp: hints via kfuncs" (v2).

Subcommands: ``xlated`` and ``diff`` (annotated listings: the kernel field of every load and
store, the pass of every rewritten instruction, a register summary per unrolled patch, the
load log), ``run`` (packets through a driver with stalls, clock steps, defects; a one-paragraph
answer), ``cost`` (driver x design against line-rate budgets), ``report`` (an executed review
notebook as self-contained HTML, or the same comparison as mail-width text), ``present``
(Voilà app mode) and ``lab`` (JupyterLab on the tour).

Exit codes: 0 success; 1 a simulation failure (the load was refused, nothing got through)
or an I/O failure; 2 bad arguments (argparse's convention), always with the subcommand's
usage and the valid choices.
"""
from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from . import drivers
from .bpf import BpfError
from .bpf.errors import BpfVerifyError
from .cost import DEFAULT_PROFILE, PROFILES, line_rate_budget_ns
from .kernel.loader import VARIANTS
from .lab import BOUND_DESIGNS, Lab                     # device-bound, kfunc-calling designs
from .plan import ENGINES, PATHS
from .programs import ALL_DESIGNS, FIELDS_BY_DESIGN

FORMATS = ("text", "html", "json")
RATES_G = (10, 25, 100)
BUDGET_NOTE = ("A budget is the time per 64-byte frame at line rate for the whole RX path "
               "(driver, DMA, XDP, stack); the cost is the XDP program's alone, so ✔ is "
               "necessary, not sufficient.")


def _ice_defects() -> tuple[str, ...]:
    from .drivers.ice import DEFECTS
    return tuple(DEFECTS)


# ------------------------------------------------------------------------ value parsing
_DURATION = re.compile(r"^\s*([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)\s*(ns|us|µs|ms|s)?\s*$")
_UNIT_NS: Mapping[str | None, int] = MappingProxyType(
    {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, None: 1})


def parse_duration(text: str) -> int:
    """``4.1s``, ``300ms``, ``20us``, ``1500`` (ns by default) -> integer ns."""
    m = _DURATION.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 4.1s, 300ms, 20us, 1500 = ns)")
    return int(round(float(m.group(1)) * _UNIT_NS[m.group(2)]))


def parse_stall(text: str) -> tuple[int, int]:
    """``FROM:TO`` of true time, each a duration; FROM < TO."""
    a, sep, b = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"a stall is FROM:TO (e.g. 4.1s:7.1s), got {text!r}")
    lo, hi = parse_duration(a), parse_duration(b)
    if lo < 0 or hi <= lo:
        raise argparse.ArgumentTypeError(f"a stall needs 0 <= FROM < TO, got {text!r}")
    return lo, hi


def parse_clock_step(text: str) -> tuple[int, int]:
    """``AT:NS``: step the PHC by NS (a signed duration) at true time AT."""
    a, sep, b = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"a clock step is AT:NS (e.g. 3s:-1ms), got {text!r}")
    at, step = parse_duration(a), parse_duration(b)
    if at < 0 or step == 0:
        raise argparse.ArgumentTypeError(f"a clock step needs AT >= 0 and a non-zero step, got {text!r}")
    return at, step


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _port(text: str) -> int:
    v = _positive_int(text)
    if v > 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 1..65535, got {v}")
    return v


def _seed(text: str) -> int:
    return _count(text)


def _ppb(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(v) or abs(v) > 1e6:
        raise argparse.ArgumentTypeError(f"--ppb must be finite and within ±1e6, got {text}")
    return v


def _interval(text: str) -> int:
    v = parse_duration(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"the interval must be positive, got {text!r}")
    return v


def _start(text: str) -> int:
    v = parse_duration(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"the start time must be >= 0, got {text!r}")
    return v


def _csv_list(valid: Sequence[str], what: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(f.strip() for f in text.split(",") if f.strip())
        if not items:
            raise argparse.ArgumentTypeError(f"no {what} given; valid {what}: {', '.join(valid)}")
        for item in items:
            if item not in valid:
                raise argparse.ArgumentTypeError(f"unknown {what[:-1]} {item!r}; valid {what}: {', '.join(valid)}")
        if len(set(items)) != len(items):
            raise argparse.ArgumentTypeError(f"{what} repeat: {text!r}")
        return items
    parse.__name__ = what
    return parse


_KNOWN_FIELDS = tuple(sorted({f for fs in FIELDS_BY_DESIGN.values() for f in fs}))
_parse_fields = _csv_list(_KNOWN_FIELDS, "fields")


def _fields_arg(text: str) -> tuple[str, ...]:
    """Comma-separated metadata fields ('' or 'none' = no field); checked against the design later."""
    if text.strip().lower() in ("none", "-") or not text.replace(",", "").strip():
        return ()
    return _parse_fields(text)


def _out_file(text: str) -> str:
    p = Path(text)
    if not text or p.is_dir():
        raise argparse.ArgumentTypeError(f"not a file path: {text!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {str(parent)!r} does not exist")
    return text


def _program_arg(text: str) -> str:
    path = text if Path(text).exists() else text.rpartition(":")[0]
    if not path or not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"no such BPF object: {text!r} (give path or path:program)")
    return text


def _notebook_arg(text: str) -> str:
    if not Path(text).is_file() or not text.endswith(".ipynb"):
        raise argparse.ArgumentTypeError(f"not a notebook file: {text!r}")
    return text


# ------------------------------------------------------------------------------ parser
def _lab_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--driver", required=True, choices=drivers.names(), help="the NIC driver")
    p.add_argument("--design", default="rfc-v2", choices=ALL_DESIGNS)
    p.add_argument("--fields", type=_fields_arg, default=None,
                   help="comma-separated metadata fields (default: rx_timestamp; none for "
                        "--design none; merged also has rx_hash,rx_vlan_tag)")
    p.add_argument("--variant", default="fixed", choices=VARIANTS,
                   help="rfc-v2-posted: the code as posted, with its defects")
    p.add_argument("--defect", action="append", default=None, choices=_ice_defects(), metavar="NAME",
                   help="switch on one of posted ice's defects alone (repeatable; ice, rfc-v2, "
                        f"fixed variant): {', '.join(_ice_defects())}")
    p.add_argument("--seed", type=_seed, default=0, help="the simulated boot's seed")
    p.add_argument("--program", metavar="OBJ", type=_program_arg,
                   help="a clang-compiled BPF object (path, or path:program) instead of the built-in program")


def _listing_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--path", choices=PATHS, default="af_xdp",
                   help="which selftest program: af_xdp (05/14) or skb, with export_to_skb (07/14)")
    p.add_argument("--format", default="text", choices=FORMATS)
    p.add_argument("--mail", action="store_true", help="fit 72 columns (a mailing-list reply)")
    p.add_argument("--log", action="store_true", help="print the load log (always printed on failure)")
    p.add_argument("-o", "--output", metavar="FILE", type=_out_file, help="write here instead of stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xdplab", description="See and run the Linux RFC "
                                     "'xdp: hints via kfuncs' (v2): load-time unrolling, timestamps, cost.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("diff", help="original vs xlated, annotated (fields, passes, registers)")
    _lab_args(p)
    _listing_args(p)
    p.add_argument("--html", metavar="FILE", type=_out_file, help="also write the HTML diff to FILE")

    p = sub.add_parser("xlated", help="the program after loading (bpftool prog dump xlated), annotated")
    _lab_args(p)
    _listing_args(p)

    p = sub.add_parser("run", help="receive packets; a one-paragraph answer (or one row per packet)")
    _lab_args(p)
    p.add_argument("--packets", type=_count, default=1000)
    p.add_argument("--path", choices=PATHS, default="af_xdp")
    p.add_argument("--engine", choices=ENGINES, default="auto",
                   help="batch: numpy lanes (fast); scalar: one packet at a time; auto: batch when it can")
    p.add_argument("--start", type=_start, default=2_000_000_000, metavar="T",
                   help="true time of the first packet (default 2s; units ns, us, ms, s)")
    p.add_argument("--interval", "--interval-ns", dest="interval", type=_interval, default=1_000_000,
                   metavar="T", help="spacing of arrivals (default 1ms; plain numbers are ns)")
    p.add_argument("--stall", type=parse_stall, action="append", default=[], metavar="FROM:TO",
                   help="stop the driver's clock-refresh task over true time FROM..TO (repeatable; "
                        "e.g. 2.5s:5.5s)")
    p.add_argument("--clock-step", type=parse_clock_step, action="append", default=[], metavar="AT:NS",
                   help="step the PHC by NS at true time AT (repeatable; e.g. 3s:-1ms)")
    p.add_argument("--ppb", type=_ppb, default=0.0, help="frequency error of the PHC (parts per billion)")
    p.add_argument("--assume-meta-support", action="store_true",
                   help="pretend mlx4/bnxt pass meta_valid=true (they did not in the RFC's era)")
    p.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES, help="the CPU cost profile")
    p.add_argument("--pcap", metavar="FILE", type=_pcap_file,
                   help="receive the frames of this pcap file, in order (repeated if --packets is larger)")
    p.add_argument("-o", "--output", metavar="CSV", type=_out_file, help="also write one row per packet here")

    p = sub.add_parser("cost", help="per-packet cost, driver x design, against 10/25/100G budgets")
    p.add_argument("--drivers", type=_csv_list(drivers.names(), "drivers"), default=drivers.names())
    p.add_argument("--designs", type=_csv_list(ALL_DESIGNS, "designs"), default=ALL_DESIGNS)
    p.add_argument("--packets", type=_positive_int, default=30)
    p.add_argument("--engine", choices=ENGINES, default="auto")
    p.add_argument("--assume-meta-support", action="store_true",
                   help="count deliveries as if mlx4/bnxt had metadata support (marked 'assumed')")
    p.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES)
    p.add_argument("--mail", action="store_true", help="fit 72 columns")
    p.add_argument("-o", "--output", metavar="CSV", type=_out_file)

    p = sub.add_parser("report", help="a review: executed notebook as self-contained HTML, or mail text")
    p.add_argument("--driver", required=True, choices=drivers.names())
    p.add_argument("--design", default="rfc-v2", choices=ALL_DESIGNS)
    p.add_argument("--variant", default="fixed", choices=VARIANTS)
    p.add_argument("--designs", type=_csv_list(ALL_DESIGNS, "designs"), default=ALL_DESIGNS,
                   help="the designs to compare the cost with")
    p.add_argument("--packets", type=_positive_int, default=2000, help="packets of the timestamp run")
    p.add_argument("--stall", type=parse_stall, action="append", default=[], metavar="FROM:TO")
    p.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES)
    p.add_argument("--format", default="html", choices=("html", "text"))
    p.add_argument("-o", "--output", metavar="FILE", type=_out_file,
                   help="where to write (html: default review.html; text: stdout)")

    p = sub.add_parser("present", help="show a notebook as an app (Voilà)")
    p.add_argument("notebook", nargs="?", type=_notebook_arg, default=None,
                   help="the notebook (default: the tour)")
    p.add_argument("--port", type=_port, default=None, help="default: a free port")
    p.add_argument("--no-browser", action="store_true")

    p = sub.add_parser("lab", help="open JupyterLab on notebooks/00-tour.ipynb")
    p.add_argument("--port", type=_port, default=8888)
    p.add_argument("--no-browser", action="store_true")
    return parser


def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of one subcommand (for its usage in errors found after parsing)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise ValueError(f"no subcommand {name!r}")  # pragma: no cover


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    sub = subparser(parser, args.command)
    try:
        check_args(args)
        return _dispatch(args)
    except ValueError as exc:            # a value or combination the library refuses
        sub.error(str(exc))
    except (BpfError, OSError, RuntimeError) as exc:    # e.g. a malformed --program object
        print(f"xdplab {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0  # pragma: no cover


def default_fields(design: str) -> tuple[str, ...]:
    """What a design is asked for by default: the timestamp, except under ``none`` (no
    metadata at all).  BTF hints carry it in the driver's struct whatever is asked."""
    return () if design == "none" else ("rx_timestamp",)


# ------------------------------------------------------------------ contradictory options
def check_args(args: argparse.Namespace) -> None:
    """Refuse combinations that cannot mean anything, saying why (ValueError -> exit 2)."""
    design = str(getattr(args, "design", "rfc-v2"))
    if hasattr(args, "fields"):
        if args.fields is None:
            args.fields = default_fields(design)
        valid = FIELDS_BY_DESIGN[design]
        if args.fields and design == "none":
            raise ValueError("--design none calls no kfunc and reads no metadata, so it has no fields "
                             "to ask for (drop --fields); designs with fields: "
                             + ", ".join(d for d in ALL_DESIGNS if d != "none"))
        for f in args.fields:
            if f not in valid:
                raise ValueError(f"design {design} has no field {f!r}; valid fields: {', '.join(valid)}")
    if getattr(args, "variant", "fixed") == "rfc-v2-posted" and design != "rfc-v2":
        raise ValueError(f"--variant rfc-v2-posted is RFC v2's code as posted; design {design} has no "
                         "posted variant (use --design rfc-v2, or --variant fixed)")
    if getattr(args, "defect", None):
        if args.driver != "ice" or design != "rfc-v2":
            raise ValueError("--defect switches on a defect of posted ice's unroll (RFC v2 10/14): "
                             "it needs --driver ice --design rfc-v2")
        if args.variant != "fixed":
            raise ValueError("--defect picks single defects on the fixed code; --variant rfc-v2-posted "
                             "already has all of them")
        if len(set(args.defect)) != len(args.defect):
            raise ValueError(f"--defect repeats: {', '.join(args.defect)}")
    if getattr(args, "program", None) and getattr(args, "defect", None):
        raise ValueError("--defect changes the built-in ice unroll; it cannot apply to --program")
    if args.command == "run" and args.clock_step and args.driver == "veth":
        raise ValueError("veth has no PHC to step: its timestamps are the skb's CLOCK_REALTIME")
    for name in ("stall", "clock_step"):
        spans = getattr(args, name, None) or []
        if len(set(spans)) != len(spans):
            raise ValueError(f"--{name.replace('_', '-')} repeats a value")


# ---------------------------------------------------------------------------- the lab
def make_lab(driver: str, fields: tuple[str, ...], *, design: str = "rfc-v2", variant: str = "fixed",
             seed: int = 0, program: str | None = None, defects: tuple[str, ...] = ()) -> Any:
    """A :class:`xdplab.Lab`; ``defects`` switch on single defects of posted ice.

    A library gap, bridged here: ``Lab`` has no ``defects=`` yet, so the Lab is built as
    usual, then ice's ``defects`` (``Ice(defects=...)``) are set on this Lab's driver and the
    program is loaded again with the same attributes (the load is the only step the defects
    change; :func:`run_lab` keeps such a Lab's runs in this process)."""
    lab = Lab(driver, fields, design=design, variant=variant, seed=seed, program=program)
    if defects:
        from .kernel.uapi import BPF_F_XDP_HAS_METADATA
        setattr(lab.device.driver, "defects", tuple(defects))   # ice's Ice(defects=...) knob
        lab.loaded = lab.kernel.prog_load(lab.program, prog_flags=BPF_F_XDP_HAS_METADATA,
                                          prog_ifindex=lab.device.ifindex, design=design, variant=variant)
    return lab


def _lab(args: argparse.Namespace) -> Any:
    return make_lab(args.driver, args.fields, design=args.design, variant=args.variant, seed=args.seed,
                    program=args.program, defects=tuple(args.defect or ()))


def _title(driver: str, design: str, variant: str, defects: Sequence[str] = ()) -> str:
    t = f"{driver} · design {design} · variant {variant}"
    if defects:
        t += f" · defects {','.join(defects)}"
    if design not in BOUND_DESIGNS:
        t += " · not device-bound"
    return t


# --------------------------------------------------------------------- provenance table
@lru_cache(maxsize=None)   # a pure memo of a read-only file
def _provenance() -> Mapping[str, Any] | None:
    """``data/provenance.json`` (the patch-by-patch provenance table), or None while it
    does not exist or cannot be read: the listings then tag passes without patches."""
    try:
        from .profiles import data_path
        path = data_path("provenance.json")
        data = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_PATCH_FILE = re.compile(r"^(\d\d)-[^:]*\.patch:([\d-]+)")


def _short(line: str) -> str:
    """``10-ice-....patch:92-93`` -> ``10/14:92``; the last patch named when a line goes
    through several (``08-...:95 via 12-...:90-92`` -> ``12/14:90``)."""
    parts = [m for m in (_PATCH_FILE.match(p.strip()) for p in line.split(" via ")) if m]
    if not parts:
        return ""
    nn, where = parts[-1].group(1), parts[-1].group(2)
    return f"{nn}/14:{where.split('-')[0]}"


def _emit_of(routine: Mapping[str, Any], i: int, n: int) -> tuple[str, bool] | None:
    for e in routine.get("emits", ()) or ():
        key = e.get("i")
        if key == i or (key == "n-1" and i == n - 1) or (key == "n-2" and i == n - 2):
            return _short(str(e.get("patch_line", ""))), bool(e.get("posted_matches", True))
    return None


def _wrapped_span(routine: Mapping[str, Any]) -> tuple[int, int]:
    """How many of a routine's instructions come before (numbered ``i``) and after (``n-k``)
    any inner routine it wraps, from its provenance ``emits``."""
    keys = [e.get("i") for e in routine.get("emits", ()) or ()]
    return (sum(isinstance(k, int) for k in keys),
            sum(isinstance(k, str) and k.startswith("n-") for k in keys))


def patch_tags(loaded: Any) -> tuple[str, ...]:
    """For each xlated instruction, the RFC patch line that emits it (``10/14:89``; a
    trailing ``*`` where xdplab's posted listing departs from the patch), from the
    ``xlated_lookup`` of ``data/provenance.json``; "" where unknown or not a patch's."""
    prov = _provenance()
    n_all = len(loaded.origins)
    if not prov:
        return ("",) * n_all
    lookup = prov.get("xlated_lookup", {}) or {}
    routines = {r.get("id"): r for r in prov.get("routines", ()) if isinstance(r, dict)}
    posted = loaded.variant == "rfc-v2-posted"

    def find(pass_name: str, note: str) -> Any:
        kind, _, who = pass_name.partition(":")
        for key in (f"{pass_name}|{note}", f"{kind}:*|{note}", f"{pass_name}|*", f"{kind}|*"):
            if key in lookup:
                return lookup[key]
        return None

    def tag(pass_name: str, note: str, i: int, n: int) -> str:
        entry = find(pass_name, note)
        driver = pass_name.partition(":")[2]
        if isinstance(entry, dict):
            return _short(str(entry.get(driver, "")))
        routine = routines.get(entry) if isinstance(entry, str) else None
        if routine is None:
            return ""
        head, tail = _wrapped_span(routine)
        if routine.get("id") == "xdp_metadata_export_to_skb" and head <= i < n - tail:
            # 06/14:359-361: the device's rx_timestamp unroll sits between the routine's own
            # instructions (head before it, tail after it: counted from its `emits`).
            inner = routines.get(find(pass_name, "bpf_xdp_metadata_rx_timestamp"))
            hit = _emit_of(inner, i - head, n - head - tail) if inner else None
        else:
            hit = _emit_of(routine, i, n)
        if hit is None:
            return str(routine.get("patch", "")).split(" + ")[-1]
        line, matches = hit
        return line + ("*" if posted and not matches else "")

    out = [""] * n_all
    for i, j, o in _runs(loaded.origins):
        if o.pass_name.startswith(("unroll:", "default-unroll", "call:")):
            for k in range(i, j + 1):
                out[k] = tag(o.pass_name, o.note, k - i, j - i + 1)
    return tuple(out)


def _runs(origins: Sequence[Any]) -> list[tuple[int, int, Any]]:
    """(first, last, origin) of each maximal run of consecutive xlated instructions with the
    same origin: one rewrite (an unrolled patch, a call, a ctx rewrite) each."""
    out = []
    i = 0
    while i < len(origins):
        j = i
        while j + 1 < len(origins) and origins[j + 1] == origins[i]:
            j += 1
        out.append((i, j, origins[i]))
        i = j + 1
    return out


# --------------------------------------------------------------------------- listings
@dataclass(frozen=True)
class Line:
    """One line of a listing: ``kind`` is ' ' (kept), '-' (original, replaced), '+' (xlated,
    rewritten), 'x' (xlated, in the xlated view), 'sum' (a patch's register summary),
    'bad' (a contract violation)."""

    kind: str
    slot: int | None
    text: str
    field: str = ""
    pass_name: str = ""
    patch: str = ""

    @property
    def tag(self) -> str:
        if not self.pass_name or self.pass_name == "original":
            return ""
        return f"[{self.pass_name}{' ' + self.patch if self.patch else ''}]"


def _blocks(loaded: Any) -> list[tuple[int, int, Any]]:
    """(first, last) xlated index of each unrolled patch, with its PatchReport."""
    reports = [r for r in loaded.patches if r.action.startswith(("unroll:", "default-unroll"))]
    blocks = [(i, j) for i, j, o in _runs(loaded.origins) if o.pass_name.startswith(("unroll:", "default-unroll"))]
    return [(i, j, reports[k] if k < len(reports) else None) for k, (i, j) in enumerate(blocks)]


def _summary_lines(loaded: Any, first: int, last: int, rep: Any) -> list[Line]:
    from .kernel.annotate import register_summary
    insns = tuple(loaded.xlated[k] for k in range(first, last + 1))
    s = register_summary(insns)
    name = rep.kfunc if rep is not None else loaded.origins[first].note
    lines = [Line("sum", None, f"{name}: {s}")]
    lines += [Line("bad", None, f"patch insn {v.index}: {v.message}") for v in s.violations]
    return lines


def _label(access: Any) -> str:
    return access.label if access is not None else ""


def xlated_lines(loaded: Any) -> list[Line]:
    """The xlated program, one :class:`Line` per instruction, plus patch summaries."""
    from .kernel.annotate import loaded_accesses
    acc = loaded_accesses(loaded)
    tags = patch_tags(loaded)
    ends = {last: (first, rep) for first, last, rep in _blocks(loaded)}
    out: list[Line] = []
    for i, insn in enumerate(loaded.xlated):
        slot = loaded.xlated.slot_of(i)
        o = loaded.origins[i]
        out.append(Line("x", slot, f"({insn.opcode:02x}) {loaded.format_xlated(slot, insn)}",
                        _label(acc[i]), o.pass_name, tags[i]))
        if i in ends:
            out += _summary_lines(loaded, ends[i][0], i, ends[i][1])
    return out


def diff_lines(loaded: Any) -> list[Line]:
    """A unified diff of the original and the xlated program: rewritten original
    instructions as '-', what they became as '+' (annotated and tagged)."""
    from .kernel.annotate import loaded_accesses
    acc = loaded_accesses(loaded)
    tags = patch_tags(loaded)
    ends = {last: (first, rep) for first, last, rep in _blocks(loaded)}
    by_origin: dict[int, list[int]] = {}
    for j, o in enumerate(loaded.origins):
        by_origin.setdefault(o.index, []).append(j)
    out: list[Line] = []
    for i, insn in enumerate(loaded.original):
        slot = loaded.original.slot_of(i)
        xs = by_origin.get(i, [])
        changed = any(loaded.origins[j].pass_name != "original" for j in xs)
        if not changed:
            for j in xs:
                s = loaded.xlated.slot_of(j)
                out.append(Line(" ", s, loaded.format_xlated(s, loaded.xlated[j]), _label(acc[j])))
            continue
        note = loaded.origins[xs[0]].note if xs else ""
        out.append(Line("-", slot, loaded.format_original(slot, insn), note if note.startswith("xdp_md.") else ""))
        for j in xs:
            s = loaded.xlated.slot_of(j)
            o = loaded.origins[j]
            out.append(Line("+", s, loaded.format_xlated(s, loaded.xlated[j]), _label(acc[j]),
                            o.pass_name, tags[j]))
            if j in ends:
                out += _summary_lines(loaded, ends[j][0], j, ends[j][1])
        if not xs:
            out.append(Line("+", None, "(removed)"))
    return out


def _wrap(text: str, width: int, indent: str, more: str | None = None) -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=indent,
                         subsequent_indent=more if more is not None else indent + "  ",
                         break_long_words=False, break_on_hyphens=False) or [indent]


def render_text(lines: Sequence[Line], width: int = 80) -> str:
    """Plain text within ``width`` columns: the comment (field and pass) goes after the
    instruction when it fits, else on the next line."""
    col = min(38, width // 2)
    out = []
    for ln in lines:
        if ln.kind in ("sum", "bad"):
            mark = "  ; => " if ln.kind == "sum" else "  ;    ! "
            out += _wrap(ln.text, width, mark, "  ;" + " " * (len(mark) - 1))
            continue
        prefix = {"x": "", " ": "  ", "-": "- ", "+": "+ "}[ln.kind]
        left = f"{prefix}{ln.slot:4d}: {ln.text}" if ln.slot is not None else f"{prefix}      {ln.text}"
        if len(left) > width:
            left = left[:width - 1] + "…"
        comment = " ".join(p for p in ((f"; {ln.field}" if ln.field else ""), ln.tag) if p)
        if not comment:
            out.append(left.rstrip())
        elif len(left.ljust(col)) + 1 + len(comment) <= width:
            out.append(f"{left.ljust(col)} {comment}")
        else:
            out.append(left.rstrip())
            out += _wrap(comment, width, " " * 12, " " * 14)
    if any(ln.patch.endswith("*") for ln in lines):
        out += _wrap("* xdplab's posted code departs from this patch line (see data/provenance.json)", width, "")
    return "\n".join(out) + "\n"


def render_log(log: Sequence[str], width: int = 80, error: str | None = None) -> str:
    out = ["load log:"]
    for entry in log:
        out += _wrap(entry, width, "  ")
    if error:
        out += _wrap(f"error: {error}", width, "  ")
    return "\n".join(out) + "\n"


_HTML_STYLE = ("body{font-family:system-ui,sans-serif}table{border-collapse:collapse;font:12px monospace}"
               "td{padding:1px 8px;white-space:pre}tr.minus{background:#fde2e4}tr.plus{background:#e2f4e9}"
               "tr.sum td,tr.bad td{font-style:italic}tr.bad{background:#fff1c1}"
               "td.f{color:#1f4e99;white-space:normal;max-width:26em}"
               "pre.log{background:#f4f4f4;padding:6px;white-space:pre-wrap}")


def render_html(title: str, lines: Sequence[Line], log: Sequence[str], error: str | None = None) -> str:
    """A self-contained page (inline CSS, no script)."""
    from .kernel.provenance import pass_colour
    rows = []
    for ln in lines:
        cls = {"-": "minus", "+": "plus", "sum": "sum", "bad": "bad"}.get(ln.kind, "")
        tag = ln.tag.strip("[]")
        colour = pass_colour(ln.pass_name) if tag else "#444"
        if ln.kind in ("sum", "bad"):
            mark = "=&gt;" if ln.kind == "sum" else "!"
            rows.append(f'<tr class="{cls}"><td></td><td>{mark}</td>'
                        f'<td colspan="3" style="white-space:normal">{html.escape(ln.text)}</td></tr>')
            continue
        sign = ln.kind if ln.kind in ("+", "-") else ""
        rows.append(f'<tr class="{cls}" data-pass="{html.escape(tag)}"><td>{sign}</td>'
                    f'<td>{"" if ln.slot is None else ln.slot}</td><td>{html.escape(ln.text)}</td>'
                    f'<td class="f">{html.escape(ln.field)}</td>'
                    f'<td style="color:{colour}">{html.escape(tag)}</td></tr>')
    log_html = "".join(html.escape(entry) + "\n" for entry in log) + (f"error: {html.escape(error)}\n" if error else "")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_HTML_STYLE}</style></head><body><h3>{html.escape(title)}</h3>"
            f"<table>{''.join(rows)}</table><h4>load log</h4><pre class='log'>{log_html}</pre></body></html>\n")


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _listing(args: argparse.Namespace) -> int:
    width = 72 if args.mail else 80
    title = _title(args.driver, args.design, args.variant, args.defect or ())
    try:
        lab = _lab(args)
    except BpfVerifyError as exc:           # the load was refused: the log is what there is
        log = tuple(getattr(exc, "log", ()) or ())
        if args.format == "json":
            _emit(json.dumps({"title": title, "error": str(exc), "log": list(log)}, indent=1) + "\n", args.output)
        elif args.format == "html":
            _emit(render_html(title, [], log, str(exc)), args.output)
        print(title, file=sys.stderr)
        print(render_log(log, width, str(exc)), end="", file=sys.stderr)
        return 1
    loaded = lab.loaded_for(args.path)
    lines = diff_lines(loaded) if args.command == "diff" else xlated_lines(loaded)
    if args.format == "json":
        doc = {"title": title, "driver": args.driver, "design": args.design, "variant": args.variant,
               "bound": args.design in BOUND_DESIGNS, "command": args.command,
               "lines": [{"kind": {" ": "kept", "x": "insn"}.get(ln.kind, ln.kind), "slot": ln.slot,
                          "text": ln.text, "field": ln.field or None,
                          "pass": ln.pass_name if ln.pass_name not in ("", "original") else None,
                          "patch": ln.patch or None} for ln in lines],
               "patches": [{"slot": r.slot, "kfunc": r.kfunc, "action": r.action, "insns": len(r.insns),
                            "magles_registers": r.magles_registers,
                            "violations": [v.message for v in r.violations]} for r in loaded.patches],
               "log": list(loaded.log)}
        _emit(json.dumps(doc, indent=1) + "\n", args.output)
    elif args.format == "html":
        _emit(render_html(title, lines, loaded.log), args.output)
    else:
        text = "\n".join(textwrap.wrap(title, width)) + "\n" + render_text(lines, width)
        if args.log:
            text += render_log(loaded.log, width)
        _emit(text, args.output)
    if args.command == "diff" and getattr(args, "html", None):
        Path(args.html).write_text(render_html(title, lines, loaded.log), encoding="utf-8")
    return 0


# ------------------------------------------------------------------------------- run
# rough (2 shared cores), for the progress bar
_SECONDS_PER_PACKET: Mapping[str, float] = MappingProxyType({"scalar": 1e-3, "batch": 3e-6, "auto": 3e-6})


def _pcap_file(text: str) -> str:
    """A readable pcap file: its frames become the run's traffic (xdplab.traffic.Traffic.from_pcap)."""
    from .traffic import PcapError, Traffic
    try:
        Traffic.from_pcap(text)
    except (OSError, PcapError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read pcap {text!r}: {exc}") from None
    return text


def run_lab(lab: Any, packets: int, *, engine: str = "auto", progress: bool = True,
            start_ns: int = 2_000_000_000, interval_ns: int = 1_000_000, chunks: int | None = None,
            **kwargs: Any) -> Any:
    """``Lab.run`` with a progress bar when it takes more than a second: the run is split
    into chunks of consecutive packets (``start_ns`` moves on), which gives the same table
    because the drivers' clocks are functions of true time; ``packet`` is renumbered."""
    import pandas as pd
    from tqdm.auto import tqdm

    def once(n: int, start: int) -> Any:
        # engine "auto": Lab.run itself picks batch, or scalar when the lanes refuse the program
        return lab.run(n, start_ns=start, interval_ns=interval_ns, engine=engine, **kwargs)

    est = packets * _SECONDS_PER_PACKET.get(engine, 2e-4)
    if chunks is None:
        chunks = 1 if est < 1.0 else min(100, max(4, int(est / 0.25)), max(1, packets // 100))
    driver = getattr(getattr(lab, "device", None), "driver", None)
    if getattr(driver, "defects", None):
        # Defects are set on this Lab's driver only (see make_lab): keep every call small
        # enough that Lab.run stays in this process instead of rebuilding the Lab in workers.
        chunks = max(chunks, -(-packets // 200_000))
    if chunks <= 1 or packets < 2:
        return once(packets, start_ns)
    size = -(-packets // chunks)
    parts = []
    with tqdm(total=packets, desc="packets", unit="pkt", disable=not progress, delay=1.0,
              file=sys.stderr) as bar:
        for k in range(0, packets, size):
            n = min(size, packets - k)
            part = once(n, start_ns + k * interval_ns)
            part["packet"] = part["packet"] + k
            parts.append(part)
            bar.update(n)
    df = pd.concat(parts, ignore_index=True)
    for col in ("action", "delivered_to", "reason"):
        df[col] = df[col].astype(str).astype("category")
    df.attrs.update(parts[0].attrs)
    return df


def _run(args: argparse.Namespace) -> int:
    from .clocks import ClockEvent
    from .summary import summarize
    width = 80
    title = _title(args.driver, args.design, args.variant, args.defect or ())
    try:
        lab = _lab(args)
    except BpfVerifyError as exc:
        print(title, file=sys.stderr)
        print(render_log(tuple(getattr(exc, "log", ()) or ()), width, str(exc)), end="", file=sys.stderr)
        print("xdplab run: the program did not load, so no packet got through", file=sys.stderr)
        return 1
    events = tuple(ClockEvent(at, step) for at, step in sorted(args.clock_step))
    knobs: dict[str, Any] = dict(path=args.path, stalls=tuple(sorted(args.stall)), clock_events=events,
                                 ppb=args.ppb, assume_meta_support=args.assume_meta_support, profile=args.profile)
    if args.pcap:       # the trace's flows follow the packet index: one call, no chunks
        knobs["traffic"] = args.pcap
        df = run_lab(lab, args.packets, engine=args.engine, progress=False, start_ns=args.start,
                     interval_ns=args.interval, chunks=1, **knobs)
    else:
        df = run_lab(lab, args.packets, engine=args.engine, progress=True, start_ns=args.start,
                     interval_ns=args.interval, **knobs)
    if args.output:
        df.to_csv(args.output, index=False)
    s = summarize(df, args.path)
    print(title + (" · meta support ASSUMED" if args.assume_meta_support else ""))
    print(textwrap.fill(s.text(), width))
    if any(line.startswith(("WARNING", "BUG")) for line in lab.loaded.log):
        print(render_log([ln for ln in lab.loaded.log if ln.startswith(("WARNING", "BUG"))], width), end="")
    if not s.got_through:
        print(textwrap.fill(f"xdplab run: no packet got through: {s.failure}", width,
                            subsequent_indent="  "), file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------ cost
def cost_grid(driver_names: Sequence[str], design_names: Sequence[str], *, packets: int = 30,
              profile: str = DEFAULT_PROFILE, engine: str = "auto", assume_meta_support: bool = False,
              progress: bool = False) -> Any:
    """Per-packet cost of each driver x design (the design's default fields), with the delta
    over ``none`` (run even when not selected), delivery computed as ``run`` computes it, and
    verdicts against the line-rate budgets.  A pandas DataFrame."""
    import pandas as pd
    from tqdm.auto import tqdm

    from .summary import summarize
    want = list(design_names)
    todo = [(d, g) for d in driver_names for g in (want if "none" in want else ["none", *want])]
    rows, base = [], {}
    for driver, design in tqdm(todo, desc="cost", disable=not progress, delay=1.0, file=sys.stderr):
        fields = default_fields(design)
        lab = make_lab(driver, fields, design=design)
        df = run_lab(lab, packets, engine=engine, progress=False, assume_meta_support=assume_meta_support,
                     profile=profile)
        s = summarize(df)
        cost = float(df.cost_ns.mean()) if len(df) else float("nan")
        if design == "none":
            base[driver] = cost
        if design not in want:
            continue
        meta = drivers.get(driver).meta_valid     # what it passed to xdp_prepare_buff in the RFC's era
        row = {"driver": driver, "design": design, "cost_ns": cost, "over_none_ns": float("nan"),
               "insns": int(round(float(df.insns.mean()))) if len(df) else 0,
               "delivered": (f"{s.with_timestamp}/{s.packets}" if s.wants_timestamp else "-"),
               "meta": "assumed" if (assume_meta_support and not meta) else ("yes" if meta else "no")}
        for g in RATES_G:
            row[f"{g}G"] = "✔" if cost <= line_rate_budget_ns(g) else "✘"
        rows.append(row)
    out = pd.DataFrame(rows)
    out["over_none_ns"] = [r.cost_ns - base[r.driver] for r in out.itertuples()]
    out["insns"] = out["insns"].astype("int64")
    out.attrs.update(profile=profile, packets=packets, assume_meta_support=assume_meta_support)
    return out


def cost_text(grid: Any, width: int = 80) -> str:
    cols = ["driver", "design", "cost_ns", "over_none_ns", "insns", "delivered", "meta", *[f"{g}G" for g in RATES_G]]
    heads = ["driver", "design", "ns/pkt", "Δnone", "insns", "deliv", "meta", *[f"{g}G" for g in RATES_G]]
    cells = []
    for r in grid[cols].itertuples(index=False):
        cells.append([r[0], r[1], f"{r[2]:.2f}", f"{r[3]:+.2f}", str(r[4]), r[5], r[6], *r[7:]])
    widths = [max(len(h), *(len(c[k]) for c in cells)) if cells else len(h) for k, h in enumerate(heads)]
    right = {2, 3, 4}

    def fmt(row: Sequence[str]) -> str:
        return " ".join(c.rjust(w) if k in right else c.ljust(w) for k, (c, w) in enumerate(zip(row, widths))).rstrip()
    out = [fmt(heads)] + [fmt(c) for c in cells]
    out += textwrap.wrap("budgets: " + ", ".join(f"{g}G {line_rate_budget_ns(g):.2f} ns" for g in RATES_G)
                         + f" (profile {grid.attrs.get('profile', '')})", width)
    out += textwrap.wrap(BUDGET_NOTE, width)
    if "assumed" in set(grid.get("meta", [])):
        out += textwrap.wrap("meta 'assumed': the driver did not pass meta_valid=true in the RFC's era; "
                             "delivery shows what would have arrived if it did.", width)
    return "\n".join(out) + "\n"


def _cost(args: argparse.Namespace) -> int:
    grid = cost_grid(args.drivers, args.designs, packets=args.packets, profile=args.profile, engine=args.engine,
                     assume_meta_support=args.assume_meta_support, progress=True)
    if args.output:
        grid.to_csv(args.output, index=False)
    print(cost_text(grid, 72 if args.mail else 80), end="")
    return 0


# ---------------------------------------------------------------------------- report
def review_text(driver: str, design: str = "rfc-v2", *, variant: str = "fixed",
                designs: Sequence[str] = ALL_DESIGNS, packets: int = 2000,
                stalls: Sequence[tuple[int, int]] = (), profile: str = DEFAULT_PROFILE,
                width: int = 72) -> str:
    """The review as plain text: the unrolled code, the timestamp run, the cost comparison
    (the same content as the HTML report's notebook)."""
    from .summary import summarize
    fields = default_fields(design)
    title = _title(driver, design, variant)
    out = [f"xdplab review: {title}", ""]
    try:
        lab = make_lab(driver, fields, design=design, variant=variant)
    except BpfVerifyError as exc:
        out += ["Load: REFUSED", render_log(tuple(getattr(exc, "log", ()) or ()), width, str(exc))]
        return "\n".join(out)
    lines = xlated_lines(lab.loaded)
    rewritten = [ln for ln in lines if ln.tag or ln.kind in ("sum", "bad")]
    out.append("Rewritten instructions (xlated):")
    out.append(render_text(rewritten, width).rstrip("\n") if rewritten else "  (none)")
    out.append(render_log(lab.loaded.log, width).rstrip("\n"))
    out.append("")
    df = run_lab(lab, packets, progress=False, stalls=tuple(stalls), profile=profile)
    stall_txt = ", ".join(f"{a / 1e9:g}-{b / 1e9:g} s" for a, b in stalls)
    out.append("Timestamps" + (f" (refresh task stalled {stall_txt})" if stalls else "") + ":")
    out += textwrap.wrap(summarize(df).text(), width)
    out.append("")
    out.append(f"Cost of {driver} by design (profile {profile}):")
    grid = cost_grid([driver], list(designs), packets=30, profile=profile)
    out.append(cost_text(grid.drop(columns=["driver"]).assign(driver=driver), width).rstrip("\n"))
    return "\n".join(out) + "\n"


def template_path() -> Path:
    """The review notebook template, shipped in the package."""
    return Path(__file__).resolve().parent / "_templates" / "review-template.ipynb"


def execute_review(params: dict[str, Any], output: str | Path, *, timeout: int = 600) -> Path:
    """Execute the review template with ``params`` (a cell injected after the one tagged
    ``parameters``, as papermill does) and export self-contained HTML (no server, no
    external script needed for the content)."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(template_path()), as_version=4)
    code = "# injected by xdplab report\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    at = next((k + 1 for k, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), 0)
    cell = nbformat.v4.new_code_cell(code)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at, cell)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(Path.cwd())}}).execute()
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True          # a review page: what the code found, not the code
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    # The page needs no script for its content (tables, text, PNG plots): drop the CDN ones
    # (require.js, MathJax) so it opens offline without errors.
    body = re.sub(r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>", "", body)
    body = re.sub(r"<script[^>]*>(?:(?!</script>).)*(?:cdnjs|mermaid|MathJax)(?:(?!</script>).)*</script>", "",
                  body, flags=re.S)
    out = Path(output)
    out.write_text(body, encoding="utf-8")
    return out


def _report(args: argparse.Namespace) -> int:
    if args.format == "text":
        text = review_text(args.driver, args.design, variant=args.variant, designs=args.designs,
                           packets=args.packets, stalls=tuple(args.stall), profile=args.profile)
        _emit(text, args.output)
        return 0
    out = args.output or "review.html"
    params = {"driver": args.driver, "design": args.design, "variant": args.variant,
              "designs": list(args.designs), "packets": args.packets, "stalls": [list(s) for s in args.stall],
              "profile": args.profile}
    print(f"xdplab report: executing the review notebook for {args.driver} {args.design} "
          "(about 20 s)", file=sys.stderr)
    try:
        path = execute_review(params, out)
    except ImportError as exc:
        raise RuntimeError(f"xdplab report needs nbclient and nbconvert ({exc})") from None
    print(f"xdplab report: wrote {path} (self-contained HTML)", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- present
def _present(args: argparse.Namespace) -> int:
    try:
        from . import app
    except ImportError as exc:
        print(f"xdplab present: the app module (xdplab.app, Voilà app mode) is not available: {exc}. "
              "Install the app extra or use 'xdplab lab'.", file=sys.stderr)
        return 1
    return int(app.present(args.notebook or app.DEFAULT_NOTEBOOK, port=args.port,
                           open_browser=not args.no_browser) or 0)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "lab":
        return _open_lab(args)
    if args.command == "present":
        return _present(args)
    if args.command == "cost":
        return _cost(args)
    if args.command == "report":
        return _report(args)
    if args.command in ("diff", "xlated"):
        return _listing(args)
    return _run(args)


def _open_lab(args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parents[1]
    tour = root / "notebooks" / "00-tour.ipynb"
    if not tour.exists():
        raise OSError(f"{tour} not found: run xdplab lab from a checkout of the repository")
    cmd = [sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={args.port}",
           f"--ServerApp.root_dir={root}", "--LabApp.default_url=/lab/tree/notebooks/00-tour.ipynb"]
    if args.no_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    print("xdplab: opening notebooks/00-tour.ipynb in JupyterLab (Ctrl-C to stop)", file=sys.stderr)
    return subprocess.call(cmd, cwd=root)


if __name__ == "__main__":
    sys.exit(main())
