"""Every figure of every notebook reads at a glance: the notebooks run with a display hook
(tests/nbexec.py) that checks each figure as it is shown -- no text under 9 pt, no two text labels
overlapping (matplotlib text bounding boxes from the renderer), no axis offset by a power of ten.
The checker itself is tested first, on figures built to break each rule."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

import nbexec
import xdplab
from xdplab.drivers import ice
from xdplab.viz import figure_problems, plots

COURSE = ["00-tour", "01-bpf-and-bpf-patch", "02-unrolling", "03-timestamps", "04-metadata-delivery",
          "05-cost-and-designs", "06-design-review", "07-timeline"]
SEC = 1_000_000_000


# ----------------------------------------------------------------------------- the checker
def test_checker_finds_an_offset_axis():
    fig, ax = plt.subplots()
    ax.plot([1e9, 1e9 + 1, 1e9 + 2], [0, 1, 2])
    assert any("offset" in p for p in figure_problems(fig))
    plt.close(fig)


def test_checker_finds_overlapping_labels_and_small_text():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.text(0.5, 0.5, "a long label", fontsize=10)
    ax.text(0.52, 0.5, "another long label", fontsize=10)
    ax.set_title("t", fontsize=7)
    problems = figure_problems(fig)
    assert any("overlaps" in p for p in problems) and any("7.0 pt" in p for p in problems)
    plt.close(fig)


def test_checker_passes_a_clean_figure():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("x (s)", fontsize=10); ax.set_ylabel("y (s)", fontsize=10); ax.tick_params(labelsize=9)
    ax.set_title("clean", fontsize=10)
    assert figure_problems(fig) == []
    plt.close(fig)


# ----------------------------------------------------------------------------- the plot functions
def test_units_are_ones_a_reader_uses():
    assert plots.time_unit(4.3e9) == (1e9, "s") and plots.time_unit(2_500) == (1e3, "µs")
    assert plots.time_unit(0.5) == (1.0, "ns") and plots.format_ns(4_294_967_296) == "4.29 s"
    df = xdplab.Lab("ice").run(120, interval_ns=25_000_000, stalls=((3 * SEC, 6 * SEC),))
    fig = plots.timestamp_error(df)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "error (s)" and ax.get_xlabel() == "time since first packet (s)"
    assert {t.get_text() for t in ax.texts} == {"+2³² ns", "−2³² ns"}       # the 2^32 lines are labelled
    assert figure_problems(fig) == []
    quiet = plots.timestamp_error(xdplab.Lab("ice").run(20))
    assert not quiet.axes[0].texts                     # no 2^32 lines when no stamp comes near them


def test_budget_lines_are_labelled_outside_the_bars():
    from xdplab.designs import compare
    costs = compare(("ice", "bnxt"), ("none", "rfc-v2"), packets=3, progress=False)
    fig = plots.cost_bars(costs)
    ax = fig.axes[0]
    labels = [t for t in ax.texts if "budget" in t.get_text()]
    assert labels and all(t.get_position()[0] > 1.0 for t in labels)     # x in axes coordinates: the margin
    assert len(ax.patches) == len(costs) and figure_problems(fig) == []


def test_failures_show_their_reason_not_an_empty_bar():
    df = xdplab.Lab("ice", variant="rfc-v2-posted").run(3)
    fig = plots.cost_per_packet(df)
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "no packet completed" in text and str(df.reason.iloc[0])[:30] in text.replace("\n", " ")
    assert figure_problems(fig) == []


@pytest.mark.parametrize("make", [
    lambda: plots.extension_window(ice.extend_32b_ts, 1 << 60, points=101),
    lambda: plots.memory_layout(0, 248, 256, 302),
    lambda: plots.memory_layout(0, 256, 256, 302),
    lambda: plots.rx_path(),
    lambda: plots.register_map([("mlx4: rx_timestamp", 0b11), ("ice: rx_timestamp", 0b111001)]),
    lambda: plots.struct_layouts([("ice_xdp_buff", 72, [("rx_ring", 56, 8), ("rx_desc", 64, 8)])]),
    lambda: plots.patch_growth([1, 2, 17, 18], [16, 32, 32, 32], [16, 16, 16, 16], overflow_at=17),
    lambda: plots.timeline([("2022-11-04", "RFC v2", "posting"), ("2022-11-04", "Alexei", "review"),
                            ("2022-11-07", "Martin", "review"), ("2023-04-23", "Linux 6.3", "merge")]),
    lambda: plots.outcome_bars(pd.DataFrame({"correct": [3, 0], "wrong": [0, 1], "fault": [0, 2]},
                                            index=["fixed", "posted"])),
], ids=["extension", "memory", "memory-no-meta", "rx-path", "registers", "wrappers", "patch-growth",
        "timeline", "outcomes"])
def test_each_plot_function_passes_the_checker(make):
    assert figure_problems(make()) == []


# ----------------------------------------------------------------------------- every notebook figure
@pytest.mark.parametrize("name", COURSE)
def test_every_figure_of_the_notebook_reads_at_a_glance(name):
    _, figures, _ = nbexec.execute(name)
    assert figures, f"{name} showed no figure"
    bad = [f for f in figures if f["problems"]]
    assert not bad, "\n".join(f"{f['title']}: {p}" for f in bad for p in f["problems"])


# ----------------------------------------------------------------------------- the diff view and reasons
def test_diff_is_neutral_where_unchanged_and_tinted_by_pass_with_a_legend():
    from xdplab.viz import diff_html
    from xdplab.viz.widgets import NEUTRAL, pass_style
    lab = xdplab.Lab("mlx4")
    page = diff_html(lab.diff())
    rows = lab.diff().rows
    unchanged = [r for r in rows if not r.changed]
    assert unchanged and page.count(f'<tr style="background:{NEUTRAL[0]}"') >= len(unchanged)
    for r in rows:
        if r.changed:
            label, bg, _ = pass_style(r.pass_name)
            assert bg != NEUTRAL[0] and f'background:{bg}" data-origin="{r.index}"' in page
            assert label in page.split("<table")[0]            # named in the legend above the table


def test_reasons_are_listed_with_counts():
    from xdplab.viz import reasons_html
    df = xdplab.Lab("ice", variant="rfc-v2-posted").run(4)
    text = reasons_html(df)
    assert f"<b>{len(df)}</b> ×" in text and "jump to insn" in text
    assert reasons_html(xdplab.Lab("ice").run(4)) == ""        # nothing to explain
