"""The ``xdplab`` command: diff, xlated, run, cost, lab.

Exit codes: 0 success, 1 a simulation or I/O failure, 2 bad arguments (argparse's convention).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from . import drivers
from .bpf import BpfError
from .programs import ALL_DESIGNS


def _lab_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--driver", required=True, choices=drivers.names(), help="the NIC driver")
    p.add_argument("--fields", default="rx_timestamp",
                   help="comma-separated metadata fields (rfc-v2: rx_timestamp; merged: rx_timestamp,rx_hash,rx_vlan_tag)")
    p.add_argument("--design", default="rfc-v2", choices=ALL_DESIGNS)
    p.add_argument("--variant", default="fixed", choices=("fixed", "rfc-v2-posted"))
    p.add_argument("--seed", type=int, default=0, help="the simulated boot's seed")
    p.add_argument("--program", metavar="OBJ", help="a clang-compiled BPF object (path, or path:program) "
                   "instead of the built-in program")


def _fields(text: str) -> tuple[str, ...]:
    return tuple(f.strip() for f in text.split(",") if f.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xdplab", description="See and run the Linux RFC "
                                     "'xdp: hints via kfuncs' (v2): load-time unrolling, timestamps, cost.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("diff", help="original vs xlated instructions, with provenance")
    _lab_args(p)
    p.add_argument("--html", metavar="FILE", help="also write the coloured HTML diff to FILE")

    p = sub.add_parser("xlated", help="the program after loading, as bpftool prog dump xlated prints it")
    _lab_args(p)

    p = sub.add_parser("run", help="receive packets and write one row per packet (CSV)")
    _lab_args(p)
    p.add_argument("--packets", type=int, default=1000)
    p.add_argument("--path", choices=("af_xdp", "skb"), default="af_xdp")
    p.add_argument("--interval-ns", type=int, default=1_000_000, help="spacing of arrivals (ns)")
    p.add_argument("--assume-meta-support", action="store_true",
                   help="pretend mlx4/bnxt pass meta_valid=true (they did not in the RFC's era)")
    p.add_argument("--profile", default="e5-1650v4-retpoline", choices=("e5-1650v4-retpoline", "modern-no-retpoline"))
    p.add_argument("-o", "--output", metavar="CSV", help="write the table here (default: a summary on stdout)")

    p = sub.add_parser("cost", help="per-packet cost by driver, design and fields, against line-rate budgets")
    p.add_argument("--drivers", default=",".join(drivers.names()))
    p.add_argument("--designs", default=",".join(ALL_DESIGNS))
    p.add_argument("--packets", type=int, default=30)
    p.add_argument("--profile", default="e5-1650v4-retpoline", choices=("e5-1650v4-retpoline", "modern-no-retpoline"))
    p.add_argument("-o", "--output", metavar="CSV")

    p = sub.add_parser("lab", help="open JupyterLab on notebooks/00-tour.ipynb")
    p.add_argument("--port", type=int, default=8888)
    p.add_argument("--no-browser", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except ValueError as exc:            # a choice the library refuses (field, design, ...)
        parser.error(str(exc))
    except BpfError as exc:              # e.g. a malformed --program object
        print(f"xdplab: {exc}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError) as exc:
        print(f"xdplab: {exc}", file=sys.stderr)
        return 1
    return 0  # pragma: no cover


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "lab":
        return _open_lab(args)
    if args.command == "cost":
        from .designs import compare
        if args.packets <= 0:
            raise ValueError("--packets must be positive")
        df = compare(tuple(_fields(args.drivers)), tuple(_fields(args.designs)), packets=args.packets,
                     profile=args.profile, progress=sys.stderr.isatty())
        if args.output:
            df.to_csv(args.output, index=False)
        from .cost import line_rate_budget_ns
        print(df.round(2).to_string(index=False))
        print("line-rate budgets (64-byte frames): " +
              ", ".join(f"{g}G {line_rate_budget_ns(g):.2f} ns" for g in (10, 25, 100)))
        return 0
    from .lab import Lab
    lab = Lab(args.driver, _fields(args.fields), design=args.design, variant=args.variant, seed=args.seed,
              program=args.program)
    if args.command == "diff":
        print(lab.diff().to_text(), end="")
        if args.html:
            Path(args.html).write_text("<!doctype html><meta charset='utf-8'>" + lab.diff().to_html())
        return 0
    if args.command == "xlated":
        print(lab.dump_xlated(), end="")
        return 0
    if args.packets < 0:
        raise ValueError("--packets must be >= 0")
    df = lab.run(args.packets, path=args.path, interval_ns=args.interval_ns,
                 assume_meta_support=args.assume_meta_support, profile=args.profile)
    if args.output:
        df.to_csv(args.output, index=False)
    got = int((df.rx_timestamp != 0).sum())
    print(f"{len(df)} packets: {got} with a timestamp; delivered to {df.delivered_to.value_counts().to_dict()}; "
          f"mean cost {df.cost_ns.mean():.2f} ns, mean {df.insns.mean():.1f} insns")
    if got:
        err = df.error_ns.dropna().astype("int64")
        print(f"timestamp error: {int((err == 0).sum())} exact, max |error| {int(err.abs().max())} ns")
    reasons = df.reason[df.reason != ""].value_counts()
    for reason, n in reasons.head(3).items():
        print(f"  {n} x {reason}")
    return 0


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
