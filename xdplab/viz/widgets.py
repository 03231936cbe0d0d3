"""ipywidgets views.  Design rule (shared/jupyter-testing.md): callbacks write widget traits
(``HTML.value``, ``Output.outputs = ()`` + ``append_display_data``), never ``with out:``, so
setting a picker's value from pytest takes the same path as a click in the browser."""
from __future__ import annotations

import html
import time

import ipywidgets as W

from .. import drivers
from ..lab import Lab
from ..programs import ALL_DESIGNS, FIELDS_BY_DESIGN
from . import plots


def driver_picker(value: str = "ice") -> W.Dropdown:
    return W.Dropdown(options=list(drivers.names()), value=value, description="driver")


def design_picker(value: str = "rfc-v2") -> W.Dropdown:
    return W.Dropdown(options=list(ALL_DESIGNS), value=value, description="design")


def variant_picker(value: str = "fixed") -> W.ToggleButtons:
    return W.ToggleButtons(options=["fixed", "rfc-v2-posted"], value=value, description="variant")


def field_picker(design: str = "rfc-v2", value=("rx_timestamp",)) -> W.SelectMultiple:
    options = list(FIELDS_BY_DESIGN[design])
    return W.SelectMultiple(options=options, value=tuple(v for v in value if v in options),
                            description="fields", rows=3)


class DiffView:
    """The instruction diff of a Lab, coloured by provenance, with the load log under it."""

    def __init__(self) -> None:
        self.html = W.HTML()
        self.widget = W.VBox([self.html], layout=W.Layout(max_height="640px", overflow="auto"))
        self.last_render_ms = 0.0

    def show(self, lab: Lab) -> None:
        t0 = time.perf_counter()
        diff = lab.diff()
        changed = sum(1 for r in diff.rows if r.changed)
        log = "".join(f"<li>{html.escape(line)}</li>" for line in lab.loaded.log)
        self.html.value = (f"<div style='font-size:12px'>{len(lab.program)} → {len(lab.xlated)} "
                           f"instructions, {changed} rewritten at load</div>"
                           f"{diff.to_html()}<ul style='font-size:11px'>{log}</ul>")
        self.last_render_ms = (time.perf_counter() - t0) * 1000


class TourApp:
    """Pick a driver, design, variant and fields; see the diff, the timestamps and the cost."""

    def __init__(self, driver: str = "ice", design: str = "rfc-v2", variant: str = "fixed",
                 fields=("rx_timestamp",), packets: int = 200, plots_on: bool = True) -> None:
        self.packets, self.plots_on = packets, plots_on
        self.driver, self.design = driver_picker(driver), design_picker(design)
        self.variant, self.fields = variant_picker(variant), field_picker(design, fields)
        self.status = W.HTML()
        self.diff = DiffView()
        self.plots = W.Output(layout=W.Layout(width="38%"))
        self.renders = 0
        self.lab: Lab | None = None
        self.error: str | None = None
        self.timings: dict[str, float] = {}
        self._updating = False
        for w in (self.driver, self.variant, self.fields):
            w.observe(lambda change: None if self._updating else self.render(), names="value")
        self.design.observe(self._design_changed, names="value")
        controls = W.HBox([W.VBox([self.driver, self.design]), W.VBox([self.variant, self.fields])])
        self.diff.widget.layout.width = "62%"
        self.widget = W.VBox([controls, self.status, W.HBox([self.diff.widget, self.plots])])
        self.render()

    def _design_changed(self, change) -> None:  # type: ignore[no-untyped-def]
        options = list(FIELDS_BY_DESIGN[change["new"]])
        keep = tuple(v for v in self.fields.value if v in options)
        self._updating = True
        try:
            self.fields.options = options
            self.fields.value = keep or (options[0],)
        finally:
            self._updating = False
        self.render()

    def render(self) -> None:
        self.renders += 1
        t0 = time.perf_counter()
        try:
            self.lab = Lab(self.driver.value, tuple(self.fields.value), design=self.design.value,
                           variant=self.variant.value)
            self.error = None
        except Exception as exc:   # a choice the pipeline refuses: show why, keep the app alive
            self.lab, self.error = None, f"{type(exc).__name__}: {exc}"
            self.status.value = f"<span style='color:#d62728'>{html.escape(self.error)}</span>"
            self.diff.html.value = ""
            self.plots.outputs = ()
            return
        self.diff.show(self.lab)
        self.timings["diff_ms"] = (time.perf_counter() - t0) * 1000
        self.status.value = (f"<b>{self.driver.value}</b> · {self.design.value} · {self.variant.value} · "
                             f"fields: {', '.join(self.fields.value) or '-'}")
        self.plots.outputs = ()
        if self.plots_on:
            t1 = time.perf_counter()
            df = self.lab.run(self.packets, assume_meta_support=True)
            self.plots.append_display_data(plots.timestamp_error(df))
            self.plots.append_display_data(df.describe().loc[["mean", "max"], ["insns", "cost_ns"]])
            self.timings["plots_ms"] = (time.perf_counter() - t1) * 1000


class MemoryLayoutView:
    """One packet through a Lab, drawn as headroom | metadata | packet before and after."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.out = W.Output()
        self.widget = W.VBox([self.out])

    def show(self, meta_len: int, packet_len: int = 46) -> None:
        from ..kernel.af_xdp import XDP_PACKET_HEADROOM
        hard = 0
        data = hard + XDP_PACKET_HEADROOM
        self.out.outputs = ()
        self.out.append_display_data(plots.memory_layout(hard, data - meta_len, data, data + packet_len))
