"""Plot functions: each returns a matplotlib Figure (and closes it, so notebooks show it once,
where it is displayed).  The only layer with matplotlib, together with the widgets.

House rules (issue 17), checked by tests/test_figures.py on every figure of every notebook:
- colours from the Okabe–Ito palette (safe for the common colour-vision deficiencies);
- times in a unit a reader uses (ns, µs, ms or s, picked from the data), never an axis offset
  such as "1e9";
- every text at least 9 pt, no two text labels overlapping;
- budget lines labelled in the margin, outside the bars.
"""
from __future__ import annotations

import textwrap
from types import MappingProxyType
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from ..cost import line_rate_budget_ns

_ = matplotlib  # the backend is the caller's (inline in notebooks, Agg in tests)

# Okabe & Ito, "Color Universal Design" (2008): eight colours distinguishable with
# protanopia, deuteranopia and tritanopia.
OKABE_ITO = MappingProxyType({"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
             "grey": "#999999"})
BUDGETS_GBIT = (10, 25, 100)
DESIGN_COLOURS = MappingProxyType({"none": OKABE_ITO["grey"], "btf-hints": OKABE_ITO["orange"],
                                   "rfc-v2": OKABE_ITO["green"], "patch-v3": OKABE_ITO["purple"],
                                   "merged": OKABE_ITO["blue"]})
OUTCOME_COLOURS = MappingProxyType({"correct": OKABE_ITO["green"], "wrong": OKABE_ITO["orange"],
                                    "fault": OKABE_ITO["vermillion"]})
MIN_FONT_PT = 9


def _done(fig: Figure) -> Figure:
    fig.tight_layout()
    plt.close(fig)
    return fig


def _plain(ax: Axes, axis: Literal["both", "x", "y"] = "both") -> None:
    """No offset / scientific notation on the tick labels (a reader should not add 1e9)."""
    ax.ticklabel_format(axis=axis, style="plain", useOffset=False)


def time_unit(max_abs_ns: float) -> tuple[float, str]:
    """(divisor, unit) so that values in ns read as small numbers: ns, µs, ms or s."""
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if max_abs_ns >= scale:
            return scale, unit
    return 1.0, "ns"


def format_ns(value_ns: float) -> str:
    """A duration in ns as text in the unit a reader uses: 0.54 ns, 3.2 µs, 4.295 s."""
    if value_ns != value_ns:   # NaN
        return "n/a"
    scale, unit = time_unit(abs(value_ns))
    return f"{value_ns / scale:.3g} {unit}"


def timestamp_error(df: pd.DataFrame, title: str | None = None) -> Figure:
    """rx_timestamp - hw_time_ns per packet against time: 0 when the conversion is right,
    multiples of 2**32 ns where an extension window was missed (the 32-bit stamp is extended
    against a cached PHC time, valid within U32_MAX / 2 of it: ice_ptp_extend_32b_ts,
    drivers/net/ethernet/intel/ice/ice_ptp.c@6.1.192:531,549); packets without a stamp are
    marked on the zero line (their reason is in the ``reason`` column)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    t0 = float(df.t_ns.min()) if len(df) else 0.0
    t_ns = df.t_ns.astype("float64") - t0
    t_scale, t_unit = time_unit(float(t_ns.max()) if len(df) else 0.0)
    got = (df.rx_timestamp != 0).to_numpy()
    err = df.error_ns.astype("Float64").fillna(0).astype("float64").to_numpy()
    biggest = float(np.abs(err[got]).max()) if got.any() else 0.0
    e_scale, e_unit = time_unit(max(biggest, 2**32 if biggest >= 2**31 else 0.0))
    t = t_ns.to_numpy() / t_scale
    if got.any():
        ax.plot(t[got], err[got] / e_scale, "o", ms=3, color=OKABE_ITO["blue"], label="stamp − ideal")
    if (~got).any():
        ax.plot(t[~got], np.zeros(int((~got).sum())), "x", color=OKABE_ITO["vermillion"], ms=5,
                label="no stamp delivered")
    if biggest >= 2**31:    # only draw the 2^32 lines when the data reach them
        for k in (-1, 1):
            ax.axhline(k * 2**32 / e_scale, color=OKABE_ITO["grey"], lw=0.8, ls="--")
        ax.text(1.01, 2**32 / e_scale, "+2³² ns", transform=ax.get_yaxis_transform(), va="center",
                fontsize=9, color="#555555", clip_on=False)
        ax.text(1.01, -2**32 / e_scale, "−2³² ns", transform=ax.get_yaxis_transform(), va="center",
                fontsize=9, color="#555555", clip_on=False)
        ax.set_ylim(-1.35 * 2**32 / e_scale, 1.35 * 2**32 / e_scale)
    else:
        ax.set_ylim(-1, 1)
    if not got.any() and len(df):
        why = str(df.reason.iloc[0]) if "reason" in df and str(df.reason.iloc[0]) else "no timestamp delivered"
        ax.text(0.5, 0.8, "no packet delivered a timestamp:\n" + _wrap(why, 70), transform=ax.transAxes,
                ha="center", va="center", fontsize=9, color=OKABE_ITO["vermillion"],
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.9})
    _plain(ax)
    ax.set_xlabel(f"time since first packet ({t_unit})", fontsize=10)
    ax.set_ylabel(f"error ({e_unit})", fontsize=10)
    ax.tick_params(labelsize=9)
    ax.set_title(title or f"{df.attrs.get('driver', '')} · {df.attrs.get('design', '')} · "
                 f"{df.attrs.get('variant', '')}: timestamp error", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.28), ncol=2, fontsize=9, frameon=False)
    return _done(fig)


def _short_fields(fields: str) -> str:
    if not fields or fields in ("-", "()"):
        return "no fields"
    return fields.replace("rx_timestamp", "timestamp").replace("rx_hash", "hash").replace("rx_vlan_tag", "vlan")


def cost_bars(costs: pd.DataFrame, budgets: Sequence[float] = BUDGETS_GBIT, title: str = "") -> Figure:
    """Per-packet cost, drivers grouped, one bar per (design, field set), against line-rate
    budgets (labelled in the right margin, outside the bars)."""
    table = costs.copy()
    table["series"] = [f"{d} ({_short_fields(str(f))})" for d, f in zip(table.design, table.fields)]
    drivers_ = list(dict.fromkeys(table.driver))
    series = list(dict.fromkeys(table.series))
    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.8 / max(1, len(series))
    hatches = ("", "//", "..", "xx")
    seen_design: dict[str, int] = {}
    for k, name in enumerate(series):
        sub = table[table.series == name]
        design = sub.design.iloc[0]
        h = hatches[seen_design.get(design, 0) % len(hatches)]
        seen_design[design] = seen_design.get(design, 0) + 1
        xs = [drivers_.index(d) + (k - (len(series) - 1) / 2) * width for d in sub.driver]
        ax.bar(xs, sub.cost_ns, width=width, color=DESIGN_COLOURS.get(design, OKABE_ITO["grey"]),
               hatch=h, edgecolor="white", label=name)
    top = float(table.cost_ns.max()) if len(table) else 1.0
    shown = [g for g in budgets if line_rate_budget_ns(g) <= top * 1.6 or g == budgets[0]]
    ymax = max(top, *(line_rate_budget_ns(g) for g in shown)) * 1.12
    ax.set_ylim(0, ymax)
    placed: list[float] = []
    for g in shown:
        ns = line_rate_budget_ns(g)
        ax.axhline(ns, color=OKABE_ITO["vermillion"], lw=1.0, ls=":")
        y = ns
        for p in placed:                     # keep margin labels apart (>= 6 % of the axis)
            if abs(y - p) < 0.06 * ymax:
                y = p + 0.06 * ymax
        placed.append(y)
        ax.text(1.01, y, f"{g}G budget\n{ns:.2f} ns", transform=ax.get_yaxis_transform(), va="center",
                fontsize=9, color=OKABE_ITO["vermillion"], clip_on=False)
    ax.set_xticks(range(len(drivers_)), drivers_, fontsize=10)
    ax.tick_params(axis="y", labelsize=9)
    _plain(ax, "y")
    ax.set_ylabel("program ns per packet", fontsize=10)
    ax.set_title(title or f"per-packet cost (modelled, {costs.attrs.get('profile', 'CPU profile')})", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.1), ncol=3, fontsize=9, frameon=False)
    return _done(fig)


def extension_window(extend: Callable[[int, int], Any], cached: int, span_ns: int = 6 * 2**30, points: int = 801,
                     title: str = "32-bit extension around the cached PHC time") -> Figure:
    """Error of ``extend(cached, low32(true))`` against the true offset from the cache; the shaded
    window is the half range a 32-bit delta resolves (ice_ptp_extend_32b_ts's ``U32_MAX / 2``,
    drivers/net/ethernet/intel/ice/ice_ptp.c@6.1.192:549)."""
    offsets = np.linspace(-span_ns, span_ns, points).astype(np.int64)
    errors = [extend(cached, (cached + int(d)) & 0xFFFFFFFF) - (cached + int(d)) for d in offsets]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(offsets / 1e9, np.array(errors) / 1e9, lw=1.4, color=OKABE_ITO["blue"], label="extended − true")
    ax.axvspan(-2**31 / 1e9, 2**31 / 1e9, color=OKABE_ITO["green"], alpha=0.15, label="±2³¹ ns (±2.147 s) window")
    _plain(ax)
    ax.set_xlabel("packet time − cache time (s)", fontsize=10)
    ax.set_ylabel("error (s)", fontsize=10)
    ax.tick_params(labelsize=9)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(0.0, -0.25), ncol=2, frameon=False)
    return _done(fig)


def error_vs_cache_age(ages_s: npt.ArrayLike, errors_ns: npt.ArrayLike, title: str) -> Figure:
    errors = np.asarray(errors_ns, dtype=float)
    scale, unit = time_unit(float(np.nanmax(np.abs(errors))) if errors.size else 0.0)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(ages_s, errors / scale, ".-", ms=4, color=OKABE_ITO["blue"])
    _plain(ax)
    ax.set_xlabel("age of the driver's clock reference (s)", fontsize=10)
    ax.set_ylabel(f"error ({unit})", fontsize=10)
    ax.tick_params(labelsize=9)
    ax.set_title(title, fontsize=10)
    return _done(fig)


def memory_layout(hard_start: int, data_meta: int, data: int, data_end: int, *, frame_size: int = 4096,
                  xdp_frame_size: int = 40, title: str = "the frame: headroom | metadata | packet") -> Figure:
    """The XDP buffer as a bar: xdp_frame at data_hard_start, free headroom, metadata, packet.
    Region names sit under the bar and pointer names above it, staggered so none overlap."""
    fig, ax = plt.subplots(figsize=(8, 3.0))
    end = max(data_end - hard_start + 32, data - hard_start + 64)
    parts = [(0, xdp_frame_size, OKABE_ITO["grey"], "xdp_frame"),
             (xdp_frame_size, data_meta - hard_start, "#f2f2f2", "headroom"),
             (data_meta - hard_start, data - hard_start, OKABE_ITO["orange"], "metadata"),
             (data - hard_start, data_end - hard_start, OKABE_ITO["sky"], "packet")]
    row = 0
    for lo, hi, colour, label in parts:
        if hi > lo:
            ax.add_patch(Rectangle((lo, 0), hi - lo, 1, facecolor=colour, edgecolor="black", lw=0.6))
            ax.text((lo + hi) / 2, -0.3 - 0.45 * (row % 2), f"{label} {hi - lo} B", ha="center", va="center",
                    fontsize=9)
            row += 1
    marks = ((0, "data_hard_start"), (data_meta - hard_start, "data_meta"), (data - hard_start, "data"),
             (data_end - hard_start, "data_end"))
    last_x, level = None, 0
    for k, (x, name) in enumerate(marks):
        level = level + 1 if last_x is not None and x - last_x < end * 0.16 else 0
        last_x = x
        close_next = k + 1 < len(marks) and marks[k + 1][0] - x < end * 0.16
        ha = "right" if close_next and level == 0 else ("left" if level else "center")
        ax.annotate(name, (x, 1.0), (x, 1.3 + 0.7 * level), ha=ha, fontsize=9,
                    arrowprops={"arrowstyle": "-", "lw": 0.6})
    ax.set_xlim(-12, end + 12)
    ax.set_ylim(-1.0, 3.6)
    ax.set_yticks([])
    ax.tick_params(labelsize=9)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(f"bytes from data_hard_start (frame of {frame_size} B)", fontsize=10)
    ax.set_title(title, fontsize=10)
    return _done(fig)


def insn_profile(by_design: Mapping[str, float], title: str = "instructions per packet") -> Figure:
    fig, ax = plt.subplots(figsize=(5.5, 2.6))
    names = list(by_design)
    ax.barh(names, [by_design[n] for n in names], color=[DESIGN_COLOURS.get(n, OKABE_ITO["grey"]) for n in names])
    ax.set_xlabel("BPF instructions executed", fontsize=10)
    ax.tick_params(labelsize=9)
    ax.set_title(title, fontsize=10)
    return _done(fig)


def cost_per_packet(df: pd.DataFrame, budgets: Sequence[float] = BUDGETS_GBIT, title: str | None = None) -> Figure:
    """One run's mean modelled cost per packet, against line-rate budgets; if no packet ran to
    completion, says why instead of drawing an empty bar."""
    fig, ax = plt.subplots(figsize=(7, 2.4))
    cost = df.cost_ns.astype("float64")
    ok = cost.notna()
    if ok.any():
        mean = float(cost[ok].mean())
        ax.barh([0], [mean], color=DESIGN_COLOURS.get(str(df.attrs.get("design", "")), OKABE_ITO["blue"]),
                height=0.5)
        ax.text(mean, 0, f"{mean:.2f} ns ", va="center", ha="right", fontsize=10, color="white",
                fontweight="bold")
        shown = [g for g in budgets if line_rate_budget_ns(g) <= max(mean * 2.5, line_rate_budget_ns(budgets[-1]))]
        xmax = max(mean, *(line_rate_budget_ns(g) for g in shown)) * 1.08
        for i, g in enumerate(shown):
            ns = line_rate_budget_ns(g)
            ax.axvline(ns, color=OKABE_ITO["vermillion"], lw=1.0, ls=":")
            ax.text(ns, 1.02 + 0.16 * (i % 2), f"{g}G: {ns:.2f} ns", transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=9, color=OKABE_ITO["vermillion"], clip_on=False)
        ax.set_xlim(0, xmax)
    else:
        reason = str(df.reason.iloc[0]) if len(df) else "no packets"
        ax.text(0.5, 0.5, "no packet completed:\n" + _wrap(reason, 70), transform=ax.transAxes,
                ha="center", va="center", fontsize=9, color=OKABE_ITO["vermillion"])
        ax.set_xlim(0, 1)
        ax.set_xticks([])
    ax.set_yticks([])
    _plain(ax, "x")
    ax.tick_params(labelsize=9)
    ax.set_xlabel("XDP program, ns per packet (modelled; a budget covers the whole RX path)", fontsize=9)
    ax.set_title(title or "cost per packet", fontsize=10, pad=30 if ok.any() else 6)
    return _done(fig)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def outcome_bars(table: pd.DataFrame, title: str = "outcome per packet") -> Figure:
    """A stacked horizontal bar per row of ``table`` (columns: correct / wrong / fault counts)."""
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(table) + 1.6))
    left = np.zeros(len(table))
    for col in table.columns:
        vals = table[col].to_numpy(dtype=float)
        ax.barh(range(len(table)), vals, left=left, color=OUTCOME_COLOURS.get(col, OKABE_ITO["grey"]), label=col,
                hatch="//" if col == "fault" else "", edgecolor="white")
        left += vals
    ax.set_yticks(range(len(table)), list(table.index), fontsize=9)
    ax.invert_yaxis()
    ax.tick_params(labelsize=9)
    ax.set_xlabel("packets", fontsize=10)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return _done(fig)


# --------------------------------------------------------------------------- drawings
def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str, colour: str) -> None:
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=colour, edgecolor="black", lw=0.8))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)


def _arrow(ax: Axes, a: tuple[float, float], b: tuple[float, float], label: str = "", *,
           offset: tuple[float, float] = (0.0, 0.12)) -> None:
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, lw=1.0, color="#333333"))
    if label:
        ax.text((a[0] + b[0]) / 2 + offset[0], (a[1] + b[1]) / 2 + offset[1], label, ha="center",
                va="bottom", fontsize=9, color="#333333")


def rx_path(title: str = "RX path: from the descriptor to AF_XDP or the skb") -> Figure:
    """The journey of one packet's RX timestamp (RFC v2 02/04/05/06/07/10): the NIC writes a
    descriptor, the driver wraps xdp_buff, the program's kfunc (unrolled at load) reads the
    descriptor and the PHC cache, and the value leaves through data_meta to AF_XDP or through
    export_to_skb to the skb.  A drawing (MODEL of the flow), not a measurement."""
    fig, ax = plt.subplots(figsize=(10, 4.4))
    c_hw, c_drv, c_bpf, c_user = OKABE_ITO["sky"], "#fde9c4", "#c9eedd", "#f0d9e7"
    _box(ax, 0.0, 3.0, 1.9, 0.9, "NIC\nRX descriptor\n(32-bit ns stamp)", c_hw)
    _box(ax, 0.0, 1.3, 1.9, 0.9, "PHC\n(cached_phctime,\nrefreshed by driver)", c_hw)
    _box(ax, 2.6, 2.9, 2.2, 1.1, "driver wrapper\nice_xdp_buff:\nxdp_buff + rx_desc", c_drv)
    _box(ax, 5.5, 2.9, 2.4, 1.1, "XDP program\nrx_timestamp() kfunc\n(unrolled at load)", c_bpf)
    _box(ax, 5.5, 1.2, 2.4, 1.0, "adjust_meta + store\nin data_meta", c_bpf)
    _box(ax, 8.7, 3.0, 2.2, 0.9, "XDP_REDIRECT\n→ AF_XDP socket\n(user reads meta)", c_user)
    _box(ax, 8.7, 0.2, 2.2, 1.2, "export_to_skb →\nXDP_PASS → skb\nskb_hwtstamps()", c_user)
    _arrow(ax, (1.9, 3.45), (2.6, 3.45))
    _arrow(ax, (1.9, 1.75), (2.6, 2.95))
    _arrow(ax, (4.8, 3.45), (5.5, 3.45), "ctx", offset=(0, 0.1))
    _arrow(ax, (6.7, 2.9), (6.7, 2.2), "value in r0", offset=(0.75, -0.15))
    _arrow(ax, (7.9, 1.9), (8.7, 3.2), "AF_XDP", offset=(-0.45, 0.25))
    _arrow(ax, (7.9, 1.4), (8.7, 0.9), "skb path", offset=(-0.1, -0.45))
    ax.text(0.95, 0.55, "hardware", ha="center", fontsize=9, color="#555555")
    ax.text(3.7, 0.55, "driver (C)", ha="center", fontsize=9, color="#555555")
    ax.text(6.7, 0.55, "BPF program", ha="center", fontsize=9, color="#555555")
    ax.set_xlim(-0.2, 11.1)
    ax.set_ylim(0.0, 4.3)
    ax.axis("off")
    ax.set_title(title, fontsize=11)
    return _done(fig)


# Who owns each register while unrolled code runs in the caller's frame (RFC v2 cover letter,
# "helper to make it easier to call kernel code", and 06/14's comment "we can only afford to
# use R0-R5 scratch registers ... We reserve R1 for bpf_xdp_metadata_export_to_skb").
REGISTER_ROLES = (
    ("R0", "return value", "free"),
    ("R1", "ctx (kept for export_to_skb)", "kept"),
    ("R2", "scratch", "free"), ("R3", "scratch", "free"), ("R4", "scratch", "free"), ("R5", "scratch", "free"),
    ("R6", "program's (callee-saved)", "program"), ("R7", "program's (callee-saved)", "program"),
    ("R8", "program's (callee-saved)", "program"), ("R9", "program's (callee-saved)", "program"),
    ("R10", "frame pointer (read-only)", "frame"),
)
ROLE_COLOURS = MappingProxyType({"free": "#c9eedd", "kept": "#fde9c4", "program": "#d9d9d9", "frame": "#bdbdbd"})


def register_map(patches: Sequence[tuple[str, int]], title: str = "who may write which register") -> Figure:
    """R0–R10 across, one row per unrolled patch: the background says who owns the register
    (free for the unroll, kept, the program's, the frame), a dot marks a register the patch
    writes (``bpf_patch_magles_registers``); a dot on a non-free cell is a broken contract
    unless it is the ``r1 = r0`` restore of ``xdp_kfunc_call_preserving_r1``."""
    rows = list(patches)
    fig, ax = plt.subplots(figsize=(10, 1.6 + 0.42 * (len(rows) + 1)))
    n = len(REGISTER_ROLES)
    for j, (reg, role, kind) in enumerate(REGISTER_ROLES):
        for i in range(len(rows) + 1):
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor=ROLE_COLOURS[kind], edgecolor="white", lw=1.5))
        ax.text(j + 0.5, len(rows) + 0.5, reg, ha="center", va="center", fontsize=10, fontweight="bold")
    # what each group means for the unroll: brackets over the header row
    top = len(rows) + 1
    groups = ((1, 1, "ctx: restored by\npreserving_r1 (r1 = r0)", "#8a6d00"),
              (2, 5, "scratch: all an unroll may use", "#007a5a"),
              (6, 9, "the program's: usable only with\nAlexei's push/pop (save, use, restore)", "#555555"))
    for lo, hi, text, colour in groups:
        ax.plot([lo + 0.05, hi + 0.95], [top + 0.12, top + 0.12], color=colour, lw=2, solid_capstyle="butt")
        ax.text((lo + hi + 1) / 2, top + 0.25, text, ha="center", va="bottom", fontsize=9, color=colour)
    for i, (label, mask) in enumerate(rows):
        y = len(rows) - 1 - i
        for j in range(n):
            if mask >> j & 1:
                bad = REGISTER_ROLES[j][2] != "free"
                ax.plot(j + 0.5, y + 0.5, "o", ms=9, color=OKABE_ITO["vermillion"] if bad else OKABE_ITO["black"])
        ax.text(-0.1, y + 0.5, label, ha="right", va="center", fontsize=9)
    handles = [Rectangle((0, 0), 1, 1, facecolor=ROLE_COLOURS[k]) for k in ROLE_COLOURS]
    labels = ["free for the unroll (R0, R2–R5)", "R1: ctx, kept", "R6–R9: the program's", "R10: frame"]
    dots = [plt.Line2D([], [], ls="", marker="o", color=OKABE_ITO["black"]),
            plt.Line2D([], [], ls="", marker="o", color=OKABE_ITO["vermillion"])]
    artists: list[Artist] = [*handles, *dots]
    ax.legend(artists, labels + ["written by the patch", "written outside R0, R2–R5"],
              loc="upper left", bbox_to_anchor=(0.0, -0.02), ncol=3, fontsize=9, frameon=False)
    ax.set_xlim(-0.05, n)
    ax.set_ylim(0, len(rows) + 2.3)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    return _done(fig)


def struct_layouts(layouts: Sequence[tuple[str, int, Sequence[tuple[str, int, int]]]], *, base_size: int = 56,
                   title: str = "driver wrappers: struct xdp_buff first, the driver's fields after it") -> Figure:
    """One bar per wrapper struct: the embedded ``struct xdp_buff`` (``base_size`` bytes at
    offset 0, so ``container_of(ctx, wrapper, xdp)`` is the ctx pointer itself) and then each
    driver field at its offset.  ``layouts``: (name, size, ((field, offset, size), ...))."""
    fig, ax = plt.subplots(figsize=(9, 0.75 * len(layouts) + 1.3))
    widest = max(size for _, size, _ in layouts)
    colours = (OKABE_ITO["orange"], OKABE_ITO["sky"], OKABE_ITO["purple"], OKABE_ITO["yellow"])
    for i, (name, size, fields) in enumerate(layouts):
        y = len(layouts) - 1 - i
        ax.add_patch(Rectangle((0, y + 0.15), base_size, 0.7, facecolor="#d9d9d9", edgecolor="black", lw=0.6))
        ax.text(base_size / 2, y + 0.5, f"struct xdp_buff xdp ({base_size} B)", ha="center", va="center", fontsize=9)
        for k, (fname, off, fsize) in enumerate(fields):
            ax.add_patch(Rectangle((off, y + 0.15), fsize, 0.7, facecolor=colours[k % len(colours)],
                                   edgecolor="black", lw=0.6))
            ax.text(off + fsize / 2, y + 0.5, fname, ha="center", va="center", fontsize=9, rotation=0)
        ax.text(-2, y + 0.5, f"{name}\n{size} B", ha="right", va="center", fontsize=9)
    ax.set_xlim(0, widest + 2)
    ax.set_ylim(0, len(layouts))
    ax.set_yticks([])
    ax.set_xticks(range(0, widest + 1, 8))
    ax.tick_params(labelsize=9)
    ax.set_xlabel("byte offset from the ctx pointer", fontsize=10)
    ax.set_title(title, fontsize=10)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    return _done(fig)


def patch_growth(lengths: Sequence[int], believed: Sequence[int], allocated: Sequence[int], *,
                 overflow_at: int | None, title: str = "bpf_patch as posted: believed vs allocated") -> Figure:
    """Capacity the posted ``bpf_patch`` believes it has vs what krealloc really gave, as
    instructions are appended; the first append past the allocation is marked."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.step(lengths, believed, where="post", color=OKABE_ITO["orange"], lw=2, label="capacity it believes")
    ax.step(lengths, allocated, where="post", color=OKABE_ITO["blue"], lw=2, label="slots allocated")
    ax.plot(lengths, lengths, color=OKABE_ITO["grey"], lw=1, ls="--", label="instructions appended")
    if overflow_at is not None:
        ax.axvline(overflow_at, color=OKABE_ITO["vermillion"], lw=1.2, ls=":")
        ax.annotate(f"instruction {overflow_at} written\npast the allocation", (overflow_at, overflow_at),
                    (0.97, 0.08), textcoords="axes fraction", ha="right", va="bottom", fontsize=9,
                    color=OKABE_ITO["vermillion"], arrowprops={"arrowstyle": "->", "color": OKABE_ITO["vermillion"]})
    ax.set_xlabel("instructions appended", fontsize=10)
    ax.set_ylabel("instruction slots", fontsize=10)
    ax.tick_params(labelsize=9)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return _done(fig)


def timeline(events: Iterable[tuple[str, str, str]], title: str = "the design's history") -> Figure:
    """Dated events (ISO date, label, kind) in date order, evenly spaced (a "metro line": the
    order and the dates matter, not the distances); labels alternate over four levels so
    neighbours never collide, each with its date under the name."""
    import datetime as dt
    events = sorted(events)
    n = len(events)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.62 * n + 1.5), 4.2))
    kinds = {"posting": OKABE_ITO["blue"], "review": OKABE_ITO["orange"], "merge": OKABE_ITO["green"]}
    ax.axhline(0, color="#555555", lw=1)
    levels = (1.0, -1.0, 2.0, -2.0)
    for k, (date, label, kind) in enumerate(events):
        y = levels[k % len(levels)]
        colour = kinds.get(kind, OKABE_ITO["grey"])
        ax.plot([k, k], [0, y * 0.8], color="#bbbbbb", lw=0.8)
        ax.plot(k, 0, "o", color=colour, ms=7)
        when = dt.date.fromisoformat(date).strftime("%d %b %y")
        ax.text(k, y, f"{label}\n{when}", ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": colour})
    ax.set_xlim(-0.8, n - 0.2)
    ax.set_ylim(-2.6, 2.6)
    ax.axis("off")
    handles = [plt.Line2D([], [], ls="", marker="o", color=c) for c in kinds.values()]
    ax.legend(handles, list(kinds), loc="upper left", bbox_to_anchor=(0.0, 0.0), ncol=3, fontsize=9, frameon=False)
    ax.set_title(title, fontsize=10)
    return _done(fig)


__all__ = ["OKABE_ITO", "DESIGN_COLOURS", "time_unit", "format_ns", "timestamp_error", "cost_bars",
           "extension_window", "error_vs_cache_age", "memory_layout", "insn_profile", "cost_per_packet",
           "outcome_bars", "rx_path", "register_map", "struct_layouts", "patch_growth", "timeline"]
