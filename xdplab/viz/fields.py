"""The subset claim, plotted: per-packet cost against the number of metadata fields, for every
driver and design (:func:`xdplab.designs.field_cost_sweep`).

Kfunc designs pay per field the program asks for; BTF hints pays for the whole struct on every
frame, whatever the program reads (a flat line at "all fields").  Follows the house rules of
:mod:`xdplab.viz.plots` (Okabe–Ito colours, readable units, 9 pt text at least).
"""
from __future__ import annotations

from types import MappingProxyType

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from .plots import DESIGN_COLOURS, MIN_FONT_PT

MARKERS = MappingProxyType({"none": "o", "btf-hints": "s", "rfc-v2": "^", "patch-v3": "v", "merged": "D"})


def field_cost(df: pd.DataFrame, title: str | None = None) -> Figure:
    """One panel per driver: mean cost (ns per packet) against the number of fields, one line
    per design.  ``df``: :func:`xdplab.designs.field_cost_sweep`'s frame."""
    missing = {"driver", "design", "n_fields", "cost_ns"} - set(df.columns)
    if missing:
        raise ValueError(f"field_cost needs a field_cost_sweep frame; missing columns: {', '.join(sorted(missing))}")
    drivers = list(dict.fromkeys(df.driver))
    cols = min(len(drivers), 3) or 1
    rows = (len(drivers) + cols - 1) // cols or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, sharey=True)
    for k, drv in enumerate(drivers):
        ax = axes[k // cols][k % cols]
        sub = df[df.driver == drv]
        for design in dict.fromkeys(sub.design):
            d = sub[sub.design == design].sort_values("n_fields")
            ax.plot(d.n_fields, d.cost_ns, marker=MARKERS.get(design, "o"), color=DESIGN_COLOURS.get(design, "#000000"),
                    label=design, linewidth=1.6)
        ax.set_title(drv, fontsize=MIN_FONT_PT + 2)
        ax.set_xticks(range(int(df.n_fields.max()) + 1))
        ax.set_xlabel("fields used", fontsize=MIN_FONT_PT + 1)
        if k % cols == 0:
            ax.set_ylabel("program cost per packet (ns)", fontsize=MIN_FONT_PT + 1)
        ax.tick_params(labelsize=MIN_FONT_PT)
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        ax.grid(alpha=0.3)
    for k in range(len(drivers), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=MIN_FONT_PT, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 0.93))
    fig.text(0.5, 0.985, title or "The subset claim: cost against the fields used", ha="center", va="top",
             fontsize=MIN_FONT_PT + 3)
    return _close(fig)


def _close(fig: Figure) -> Figure:
    """As plots._done, keeping the room made for the legend (tight_layout would take it back)."""
    plt.close(fig)
    return fig


__all__ = ["field_cost"]
