"""ipywidgets views.  Design rule (shared/jupyter-testing.md): callbacks write widget traits
(``HTML.value``, ``Output.outputs = ()`` + ``append_display_data``), never ``with out:``, so
setting a picker's value from pytest takes the same path as a click in the browser."""
from __future__ import annotations

import html
import time
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import ipywidgets as W

from .. import drivers
from ..designs import field_support
from ..kernel.loader import VARIANTS
from ..lab import Lab
from ..programs import ALL_DESIGNS, FIELDS_BY_DESIGN
from . import plots

SEC = 1_000_000_000

# What each design choice means, in one line each (presentation text; the designs themselves
# live in xdplab.programs / xdplab.designs).  Unknown names fall back to the name itself.
DESIGN_HELP = MappingProxyType({
    "rfc-v2": "RFC v2 (Nov 2022): metadata kfuncs unrolled by the bound device's driver at load time",
    "patch-v3": "the call-based variant: each metadata kfunc stays a call into the driver's C routine",
    "merged": "what Linux 6.3 merged: plain calls through xdp_metadata_ops (no unrolling)",
    "btf-hints": "the alternative the RFC argued against: the driver fills a BTF-described struct for every packet",
    "none": "baseline: the same program without any metadata kfunc",
})
VARIANT_HELP = MappingProxyType({
    "fixed": "the RFC's code with its recorded defects corrected",
    "rfc-v2-posted": "the RFC's code exactly as posted, defects included",
})

# Diff colours by pass kind: a light tint of an Okabe–Ito colour each; unchanged rows neutral.
PASS_KINDS = (  # (prefix or name, legend label, background, text colour)
    ("ctx-rewrite", "ctx rewrite (xdp_md → xdp_buff)", "#d4ecfa", "#0072B2"),
    ("map-fd", "map fd → map address", "#e6e6e6", "#555555"),
    ("default-unroll", "default unroll (r0 = 0)", "#fbf6c2", "#8a7a00"),
    ("unroll:", "unrolled by the driver", "#c9eedd", "#007a5a"),
    ("call:", "call into kernel C", "#f2d9e8", "#a0457a"),
)
NEUTRAL = ("#ffffff", "#444444")


def pass_style(name: str) -> tuple[str, str, str]:
    """(legend label, background, text colour) of a pass; neutral for "original"."""
    for key, label, bg, fg in PASS_KINDS:
        if name == key or (key.endswith(":") and name.startswith(key)):
            return label, bg, fg
    if name == "original":
        return "unchanged", *NEUTRAL
    return name, "#eeeeee", "#333333"


def diff_html(diff: Any) -> str:
    """The instruction diff as an HTML table: unchanged instructions neutral, rewritten ones
    tinted by the pass that rewrote them, with a legend of the passes present."""
    rows, present = [], {}
    for row in diff.rows:
        label, bg, fg = pass_style(row.pass_name)
        if row.changed:
            present[label] = (bg, fg)
        fmt_o = diff._ofmt(row.slot, row.insn)
        n = max(1, len(row.xlated))
        for k in range(n):
            cells = []
            if k == 0:
                tip = f' title="{html.escape(row.note)}"' if row.note else ""
                cells.append(f'<td rowspan="{n}" style="padding:1px 8px;vertical-align:top;white-space:pre">'
                             f'{row.slot:4d}: {html.escape(fmt_o)}</td>')
                cells.append(f'<td rowspan="{n}"{tip} style="padding:1px 6px;vertical-align:top;color:{fg};'
                             f'white-space:nowrap">{html.escape(row.pass_name) if row.changed else ""}</td>')
            if row.xlated:
                s, i = row.xlated[k]
                cells.append(f'<td style="padding:1px 8px;white-space:pre">{s:4d}: '
                             f'{html.escape(diff._fmt(s, i))}</td>')
            else:
                cells.append('<td style="padding:1px 8px"><i>removed</i></td>')
            rows.append(f'<tr style="background:{bg}" data-origin="{row.index}" '
                        f'data-pass="{html.escape(row.pass_name)}">{"".join(cells)}</tr>')
    legend = "".join(f'<span style="background:{bg};color:{fg};padding:1px 6px;margin-right:6px;'
                     f'border:1px solid #ccc">{html.escape(label)}</span>' for label, (bg, fg) in present.items())
    legend = legend or '<span style="color:#555">no instruction rewritten</span>'
    caption = f'<div style="font-weight:bold;font-size:12px">{html.escape(diff.title)}</div>' if diff.title else ""
    return (f'{caption}<div class="xdplab-legend" style="font-size:12px;margin:4px 0">{legend}</div>'
            '<table class="xdplab-diff" style="border-collapse:collapse;font-family:monospace;font-size:12px">'
            '<tr><th style="text-align:left;padding:2px 8px">original</th>'
            '<th style="text-align:left;padding:2px 8px">pass</th>'
            '<th style="text-align:left;padding:2px 8px">xlated</th></tr>' + "".join(rows) + "</table>")


def driver_picker(value: str = "ice") -> W.Dropdown:
    return W.Dropdown(options=list(drivers.names()), value=value, description="driver")


def design_picker(value: str = "rfc-v2") -> W.Dropdown:
    return W.Dropdown(options=list(ALL_DESIGNS), value=value, description="design")


def variant_picker(value: str = "fixed") -> W.ToggleButtons:
    return W.ToggleButtons(options=list(VARIANTS), value=value, description="variant")


def field_picker(design: str = "rfc-v2", value: Sequence[str] = ("rx_timestamp",)) -> W.SelectMultiple:
    options = list(FIELDS_BY_DESIGN[design])
    return W.SelectMultiple(options=options, value=tuple(v for v in value if v in options),
                            description="fields", rows=3)


def reasons_html(df: Any) -> str:
    """Why packets did not arrive (or arrived without a stamp), as the library reports it in
    the run's ``reason`` column, with counts; empty when every packet is fine."""
    reasons = df.reason[df.reason.astype(str) != ""].astype(str).value_counts()
    if reasons.empty:
        return ""
    items = "".join(f"<li><b>{n}</b> × {html.escape(r)}</li>" for r, n in reasons.items())
    return (f"<div class='xdplab-reasons' style='color:#b3461a;font-size:12px'>"
            f"why packets failed:<ul style='margin:2px 0'>{items}</ul></div>")


def run_summary(df: Any) -> str:
    """One line: where the packets went, and how many stamps were exact or off."""
    n = len(df)
    where = ", ".join(f"{k}: {v}" for k, v in df.delivered_to.astype(str).value_counts().items())
    got = df.rx_timestamp != 0
    exact = int((df.error_ns[got] == 0).sum())
    off = int(got.sum()) - exact
    return (f"{n} packets → {where}; {exact} stamps exact, {off} off, "
            f"{n - int(got.sum())} without a stamp")


class DiffView:
    """The instruction diff of a Lab, coloured by pass, with a legend and the load log under it."""

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
                           f"{diff_html(diff)}<div style='font-size:12px;margin-top:4px'>load log:</div>"
                           f"<ul style='font-size:12px'>{log}</ul>")
        self.last_render_ms = (time.perf_counter() - t0) * 1000


class TourApp:
    """Pick a driver, design, variant and fields; see the diff, the timestamps and the cost.

    By default the driver's clock-refresh task stalls for ``stall_s`` seconds one second into
    the run, so the timestamp panel shows what a missed refresh does (set 0 for a quiet run)."""

    def __init__(self, driver: str = "ice", design: str = "rfc-v2", variant: str = "fixed",
                 fields: Sequence[str] = ("rx_timestamp",), packets: int = 200, plots_on: bool = True,
                 stall_s: float = 3.0, interval_ns: int = 25_000_000) -> None:
        self.packets, self.plots_on, self.interval_ns = packets, plots_on, interval_ns
        self.driver, self.design = driver_picker(driver), design_picker(design)
        self.variant, self.fields = variant_picker(variant), field_picker(design, fields)
        self.stall = W.FloatSlider(value=stall_s, min=0.0, max=6.0, step=0.5, description="stall (s)",
                                   tooltip="seconds the driver's clock-refresh task stops, from t = 1 s")
        self.fields_off = W.HTML(layout=W.Layout(max_width="420px"))   # the fields not offered, and why
        self.help = W.HTML()
        self.status = W.HTML()
        self.reasons = W.HTML()
        self.diff = DiffView()
        self.plots = W.Output(layout=W.Layout(flex="1 1 460px", min_width="420px"))
        self.renders = 0
        self.lab: Lab | None = None
        self.df = None
        self.error: str | None = None
        self.timings: dict[str, float] = {}
        self._updating = False
        self._wanted = tuple(fields)          # what the reader asked for, kept across drivers/designs
        for w in (self.variant, self.fields, self.stall):
            w.observe(lambda change: None if self._updating else self.render(), names="value")
        self.fields.observe(self._fields_chosen, names="value")
        self.design.observe(self._design_changed, names="value")
        self.driver.observe(self._design_changed, names="value")
        controls = W.HBox([W.VBox([self.driver, self.design, self.stall]),
                           W.VBox([self.variant, self.fields, self.fields_off])])
        self._offer_fields()
        # side by side when there is room (Voilà, a wide Lab), the plots under the diff otherwise
        self.diff.widget.layout.flex = "1 1 700px"
        self.widget = W.VBox([controls, self.help, self.status, self.reasons,
                              W.HBox([self.diff.widget, self.plots], layout=W.Layout(flex_flow="row wrap"))])
        self.render()

    def _offer_fields(self) -> None:
        """Offer exactly the fields the driver provides under the design (designs.field_support);
        show the others greyed out with why."""
        support = field_support(self.driver.value, self.design.value)
        options = [f for f, why in support.items() if why is None]
        keep = tuple(v for v in self._wanted if v in options)      # the reader's choice, where offered
        self._updating = True
        try:
            self.fields.options = options
            self.fields.value = keep or ((options[0],) if options else ())
        finally:
            self._updating = False
        off = [f"<span style='color:#777'><s>{html.escape(f)}</s>: {html.escape(why)}</span>"
               for f, why in support.items() if why is not None]
        self.fields_off.value = "<br>".join(off)

    def _fields_chosen(self, change: Mapping[str, Any]) -> None:
        if not self._updating:
            self._wanted = tuple(change["new"])

    def _design_changed(self, change: Mapping[str, Any]) -> None:      # traitlets' change Bunch
        self._offer_fields()
        self.render()

    def render(self) -> None:
        self.renders += 1
        t0 = time.perf_counter()
        self.help.value = (f"<div style='font-size:12px;color:#333'><b>{html.escape(self.design.value)}</b>: "
                           f"{html.escape(DESIGN_HELP.get(self.design.value, self.design.value))} · "
                           f"<b>{html.escape(self.variant.value)}</b>: "
                           f"{html.escape(VARIANT_HELP.get(self.variant.value, self.variant.value))}</div>")
        try:
            self.lab = Lab(self.driver.value, tuple(self.fields.value), design=self.design.value,
                           variant=self.variant.value)
            self.error = None
        except Exception as exc:   # a choice the pipeline refuses: show why, keep the app alive
            self.lab, self.error, self.df = None, f"{type(exc).__name__}: {exc}", None
            self.status.value = f"<span style='color:#b3461a'>load refused: {html.escape(self.error)}</span>"
            self.reasons.value = ""
            self.diff.html.value = ""
            self.plots.outputs = ()
            return
        self.diff.show(self.lab)
        self.timings["diff_ms"] = (time.perf_counter() - t0) * 1000
        head = (f"<b>{self.driver.value}</b> · {self.design.value} · {self.variant.value} · "
                f"fields: {', '.join(self.fields.value) or '-'}")
        self.plots.outputs = ()
        if not self.plots_on:
            self.status.value = head
            self.reasons.value = ""
            return
        t1 = time.perf_counter()
        start = 2 * SEC
        stalls = ((start + SEC, start + SEC + int(self.stall.value * SEC)),) if self.stall.value > 0 else ()
        df = self.lab.run(self.packets, interval_ns=self.interval_ns, start_ns=start, stalls=stalls,
                          assume_meta_support=True)
        self.df = df
        self.status.value = f"{head}<br><span style='font-size:12px'>{html.escape(run_summary(df))}</span>"
        self.reasons.value = reasons_html(df)
        self.plots.append_display_data(plots.timestamp_error(
            df, title=f"{self.driver.value}: stamp error, refresh stalled {self.stall.value:g} s"))
        self.plots.append_display_data(plots.cost_per_packet(df))
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


class Quiz:
    """One checked multiple-choice question.  ``answer`` must be one of ``options``; notebooks
    compute it with a library call so the quiz stays true when the library changes."""

    def __init__(self, question: str, options: Sequence[str], answer: str, explanation: str = "") -> None:
        options = [str(o) for o in options]
        if str(answer) not in options:
            raise ValueError(f"quiz answer {answer!r} is not among the options {options}")
        self.answer, self.explanation = str(answer), explanation
        self.question = W.HTML(f"<b>{html.escape(question)}</b>")
        self.choice = W.RadioButtons(options=options, value=None, layout=W.Layout(width="auto"))
        self.button = W.Button(description="Check", button_style="info")
        self.feedback = W.HTML()
        self.button.on_click(self.check)
        self.widget = W.VBox([self.question, self.choice, W.HBox([self.button, self.feedback])])

    @property
    def correct(self) -> bool:
        return self.choice.value == self.answer

    def check(self, _: W.Button | None = None) -> None:     # on_click passes the button
        if self.choice.value is None:
            self.feedback.value = "<span style='color:#555'>pick an answer first</span>"
        elif self.correct:
            self.feedback.value = (f"<span style='color:#007a5a'>✔ right.</span> "
                                   f"{html.escape(self.explanation)}")
        else:
            self.feedback.value = "<span style='color:#b3461a'>✘ not quite: run the cells above again and look.</span>"


def quiz(*items: tuple) -> W.VBox:
    """Several :class:`Quiz` questions in one box: ``quiz((question, options, answer, why), ...)``."""
    qs = [Quiz(*item) for item in items]
    box = W.VBox([W.HTML("<h4 style='margin:4px 0'>Quiz</h4>")] + [q.widget for q in qs])
    box.quizzes = qs
    return box
