"""Plot functions: each returns a matplotlib Figure (and closes it, so notebooks show it once,
where it is displayed).  The only layer with matplotlib, together with the widgets."""
from __future__ import annotations

import matplotlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..cost import line_rate_budget_ns

BUDGETS_GBIT = (10, 25, 100)
DESIGN_COLOURS = {"none": "#9e9e9e", "btf-hints": "#8c564b", "rfc-v2": "#2ca02c", "rfc-v1": "#9467bd",
                  "merged": "#1f77b4"}
_ = matplotlib  # the backend is the caller's (inline in notebooks, Agg in tests)


def _done(fig: Figure) -> Figure:
    fig.tight_layout()
    plt.close(fig)
    return fig


def timestamp_error(df: pd.DataFrame, title: str | None = None) -> Figure:
    """rx_timestamp - hw_time_ns per packet against time: 0 when the conversion is right,
    multiples of 2**32 ns where an extension window was missed; missing stamps marked below."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    t = (df.t_ns.astype("float64") - float(df.t_ns.min() if len(df) else 0)) / 1e9
    got = df.rx_timestamp != 0
    err = df.error_ns.astype("float64")
    ax.plot(t[got], err[got], ".", ms=3, label="rx_timestamp - ideal")
    if (~got).any():
        ax.plot(t[~got], np.zeros(int((~got).sum())), "x", color="#d62728", ms=4, label="no timestamp")
    for k in (-1, 1):
        ax.axhline(k * 2**32, color="#bbbbbb", lw=0.8, ls="--")
    ax.set_xlabel("time since first packet (s)")
    ax.set_ylabel("error (ns)")
    ax.set_title(title or f"{df.attrs.get('driver', '')} · {df.attrs.get('design', '')} · "
                 f"{df.attrs.get('variant', '')}: timestamp error")
    ax.legend(loc="best", fontsize=8)
    return _done(fig)


def cost_bars(costs: pd.DataFrame, budgets=BUDGETS_GBIT, title: str = "") -> Figure:
    """Per-packet cost by driver and design (one bar per field set) against line-rate budgets."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    labels, values, colours = [], [], []
    for (driver, design, fields), row in costs.set_index(["driver", "design", "fields"]).iterrows():
        short = fields.replace("rx_timestamp", "ts").replace("rx_hash", "hash").replace("rx_vlan_tag", "vlan")
        labels.append(f"{driver}\n{design}\n{short}")
        values.append(row.cost_ns)
        colours.append(DESIGN_COLOURS.get(design, "#444444"))
    x = np.arange(len(values))
    ax.bar(x, values, color=colours)
    for g in budgets:
        ns = line_rate_budget_ns(g)
        ax.axhline(ns, color="#d62728", lw=0.8, ls=":")
        ax.text(len(values) - 0.5, ns, f" {g}G: {ns:.2f} ns", va="bottom", ha="right", fontsize=7, color="#d62728")
    ax.set_xticks(x, labels, fontsize=6)
    ax.set_ylabel("ns per packet")
    ax.set_title(title or f"per-packet cost ({costs.attrs.get('profile', '')})")
    return _done(fig)


def extension_window(extend, cached: int, span_ns: int = 6 * 2**30, points: int = 801,
                     title: str = "32-bit extension around the cached PHC time") -> Figure:
    """error of ``extend(cached, low32(true))`` against the true offset from the cache."""
    offsets = np.linspace(-span_ns, span_ns, points).astype(np.int64)
    errors = [extend(cached, (cached + int(d)) & 0xFFFFFFFF) - (cached + int(d)) for d in offsets]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(offsets / 1e9, np.array(errors) / 1e9, lw=1.2)
    ax.axvspan(-2**31 / 1e9, 2**31 / 1e9, color="#2ca02c", alpha=0.1, label="±2^31 ns window")
    ax.set_xlabel("packet time - cache time (s)")
    ax.set_ylabel("error (s)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _done(fig)


def error_vs_cache_age(ages_s, errors_ns, title: str) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(ages_s, np.asarray(errors_ns, dtype=float) / 1e9, ".-", ms=3)
    ax.set_xlabel("age of the driver's clock reference (s)")
    ax.set_ylabel("error (s)")
    ax.set_title(title)
    return _done(fig)


def memory_layout(hard_start: int, data_meta: int, data: int, data_end: int, *, frame_size: int = 4096,
                  xdp_frame_size: int = 40, title: str = "the frame: headroom | metadata | packet") -> Figure:
    """The XDP buffer as a bar: xdp_frame at data_hard_start, free headroom, metadata, packet."""
    fig, ax = plt.subplots(figsize=(8, 1.9))
    end = max(data_end - hard_start + 64, data - hard_start + 128)
    parts = [(0, xdp_frame_size, "#c7c7c7", "xdp_frame\n(on redirect)"),
             (xdp_frame_size, data_meta - hard_start, "#f2f2f2", "headroom"),
             (data_meta - hard_start, data - hard_start, "#ffbb78", "metadata"),
             (data - hard_start, data_end - hard_start, "#aec7e8", "packet")]
    for lo, hi, colour, label in parts:
        if hi > lo:
            ax.add_patch(Rectangle((lo, 0), hi - lo, 1, facecolor=colour, edgecolor="black", lw=0.6))
            ax.text((lo + hi) / 2, 0.5, f"{label}\n{hi - lo} B", ha="center", va="center", fontsize=7)
    for x, name in ((0, "data_hard_start"), (data_meta - hard_start, "data_meta"),
                    (data - hard_start, "data"), (data_end - hard_start, "data_end")):
        ax.annotate(name, (x, 1.0), (x, 1.35), ha="center", fontsize=7, arrowprops={"arrowstyle": "-", "lw": 0.6})
    ax.set_xlim(-4, end)
    ax.set_ylim(0, 1.7)
    ax.set_yticks([])
    ax.set_xlabel(f"bytes from data_hard_start (frame of {frame_size} B)")
    ax.set_title(title, fontsize=9)
    return _done(fig)


def insn_profile(by_design: dict[str, float], title: str = "instructions per packet") -> Figure:
    fig, ax = plt.subplots(figsize=(5, 2.6))
    names = list(by_design)
    ax.barh(names, [by_design[n] for n in names], color=[DESIGN_COLOURS.get(n, "#444") for n in names])
    ax.set_xlabel("BPF instructions executed")
    ax.set_title(title)
    return _done(fig)
