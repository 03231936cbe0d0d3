"""The xdplab command, as a user runs it (a subprocess), with good and bad arguments."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest


def xdplab(*args, ok=True):
    proc = subprocess.run([sys.executable, "-m", "xdplab", *args], capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_diff_prints_the_side_by_side_and_writes_html(tmp_path):
    out = xdplab("diff", "--driver", "ice", "--fields", "rx_timestamp", "--html", str(tmp_path / "d.html"))
    assert "[unroll:ice]" in out.stdout and "call bpf_xdp_metadata_rx_timestamp" in out.stdout
    assert 'data-pass="unroll:ice"' in (tmp_path / "d.html").read_text()


def test_xlated_dump():
    out = xdplab("xlated", "--driver", "mlx4")
    assert "(85) call mxl4_xdp_rx_timestamp#" in out.stdout and "(bf) r1 = r0" in out.stdout


def test_run_writes_a_csv(tmp_path):
    csv = tmp_path / "out.csv"
    out = xdplab("run", "--driver", "mlx4", "--packets", "50", "--path", "skb", "-o", str(csv))
    df = pd.read_csv(csv)
    assert len(df) == 50 and {"hw_time_ns", "rx_timestamp", "insns", "cost_ns"} <= set(df.columns)
    assert "export_to_skb wrote no metadata" in out.stdout
    out = xdplab("run", "--driver", "bnxt", "--packets", "20", "--assume-meta-support")
    assert "20 with a timestamp" in out.stdout and "20 exact" in out.stdout


def test_cost_prints_budgets():
    out = xdplab("cost", "--drivers", "ice", "--designs", "none,rfc-v2", "--packets", "3")
    assert "rfc-v2" in out.stdout and "25G 26.88 ns" in out.stdout


@pytest.mark.parametrize("args, message", [
    (("run", "--driver", "e1000"), "invalid choice: 'e1000'"),
    (("diff", "--driver", "veth", "--fields", "rx_hash"), "valid fields: rx_timestamp"),
    (("run", "--driver", "ice", "--packets", "-3"), "--packets must be >= 0"),
    (("run", "--driver", "ice", "--packets", "many"), "invalid int value"),
    ((), "the following arguments are required: COMMAND"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    proc = xdplab(*args, ok=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_help_lists_the_commands():
    out = xdplab("--help")
    for cmd in ("diff", "xlated", "run", "cost", "lab"):
        assert cmd in out.stdout


def test_program_object_and_a_broken_one(tmp_path):
    out = xdplab("diff", "--driver", "ice", "--program", "data/programs/xdp_metadata_afxdp.o")
    assert "[unroll:ice]" in out.stdout
    bad = tmp_path / "bad.o"
    bad.write_bytes(b"\x7fELF garbage")
    proc = xdplab("run", "--driver", "ice", "--program", str(bad), ok=False)
    assert proc.returncode == 1 and "malformed BPF object" in proc.stderr and "Traceback" not in proc.stderr
