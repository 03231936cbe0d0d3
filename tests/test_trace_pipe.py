"""bpf_printk output reaches the run's DataFrame as a trace_pipe column, per packet, and a
program that prints runs on the scalar engine (the lane engine has no trace buffer)."""
from __future__ import annotations

from pathlib import Path

import pytest

import xdplab

OBJ = Path(__file__).resolve().parents[1] / "data" / "programs" / "xdp_globals.o"


def test_printk_lines_are_a_column_and_auto_picks_the_scalar_engine():
    lab = xdplab.Lab("veth", program=str(OBJ))
    df = lab.run(4)
    assert df.attrs["engine"] == "scalar"
    assert list(df.trace_pipe) == ["xdp_count: udp port 8080 len 46"] * 4    # the selftest frame: 46 bytes
    with pytest.raises(ValueError, match="bpf_trace_printk"):
        lab.run(4, engine="batch")


def test_programs_without_printk_have_no_trace_column():
    assert "trace_pipe" not in xdplab.Lab("ice").run(3).columns
