"""Widgets driven from pytest: a picker change re-renders the diff and the plots."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.patches import Rectangle

import xdplab
from xdplab.drivers import ice
from xdplab.viz import DiffView, MemoryLayoutView, TourApp, plots
from xdplab.designs import compare

SEC = 1_000_000_000


def test_tour_app_reacts_to_the_driver_picker(ipython_shell):
    app = TourApp(driver="ice", packets=30)
    first = app.diff.html.value
    assert app.renders == 1 and "unroll:ice" in first and "ice" in app.status.value
    assert len(app.plots.outputs) == 2 and "image/png" in app.plots.outputs[0]["data"]
    app.driver.value = "bnxt"
    assert app.renders == 2 and "unroll:bnxt" in app.diff.html.value and "unroll:ice" not in app.diff.html.value
    assert "call bnxt_xdp_rx_timestamp" in app.diff.html.value
    assert len(app.plots.outputs) == 2            # replaced, not appended
    app.driver.value = "bnxt"                     # same value: no re-render
    assert app.renders == 2


def test_design_change_updates_the_field_choices_once():
    app = TourApp(driver="veth", packets=5, plots_on=False)
    app.design.value = "merged"
    assert app.fields.options == ("rx_timestamp", "rx_hash", "rx_vlan_tag")
    assert app.fields.value == ("rx_timestamp",) and app.renders == 2
    app.fields.value = ("rx_timestamp", "rx_hash")
    assert "call veth_xdp_rx_hash" in app.diff.html.value and app.renders == 3


def test_posted_variant_shows_the_load_log():
    app = TourApp(driver="ice", packets=5, plots_on=False)
    app.variant.value = "rfc-v2-posted"
    assert "S16_MAX placeholder" in app.diff.html.value and "slab-out-of-bounds" in app.diff.html.value


def test_diff_view_colours_every_origin():
    view = DiffView()
    view.show(xdplab.Lab("mlx4"))
    assert view.html.value.count("data-pass=\"unroll:mlx4\"") == 4      # r0 = 1, and the 3-insn call
    assert "background:#" in view.html.value and view.last_render_ms > 0


UNIT_NS = {"ns": 1.0, "µs": 1e3, "ms": 1e6, "s": 1e9}


def _unit(label: str) -> float:
    """The ns per axis unit, read from an axis label such as "error (µs)"."""
    return UNIT_NS[label[label.rindex("(") + 1:label.rindex(")")]]


def test_timestamp_error_plots_each_packets_error_at_its_time():
    """The points are the DataFrame's (t - t0, rx_timestamp - hw_time_ns), in the axis units;
    and the data are what the ice extension gives with the refresh stalled after its 2 s run:
    exact while the cache is < 2^31 ns old, 2^32 ns early after."""
    df = xdplab.Lab("ice").run(20, stalls=((2_000_000_001, 10**11),), interval_ns=200_000_000)
    t = np.array([int(x) for x in df.t_ns])
    err = np.array([int(r) - int(h) for r, h in zip(df.rx_timestamp, df.hw_time_ns)])
    assert list(err) == [0 if x - 2 * SEC < 2**31 else -2**32 for x in t]
    fig = plots.timestamp_error(df)
    ax = fig.axes[0]
    x_ns, y_ns = _unit(ax.get_xlabel()), _unit(ax.get_ylabel())
    points = [line for line in ax.get_lines() if len(line.get_xdata()) == len(df)]
    assert len(points) == 1
    xs = np.asarray(points[0].get_xdata(), float) * x_ns
    ys = np.asarray(points[0].get_ydata(), float) * y_ns
    assert np.allclose(xs, t - t[0], rtol=0, atol=1.0)
    assert np.allclose(ys, err, rtol=0, atol=1.0)


def test_extension_window_plots_the_wrapped_error():
    """Offsets d from -6*2^30 to +6*2^30 in 11 steps: the ice extension is exact for
    -2^31 <= d < 2^31 and off by the multiple of 2^32 that brings d into that window:
    error = ((d + 2^31) mod 2^32) - 2^31 - d (ice_ptp.c@6.1.192:531-558)."""
    cached = 1 << 60
    fig = plots.extension_window(ice.extend_32b_ts, cached, points=11)
    ax = fig.axes[0]
    line = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 11]
    assert len(line) == 1
    d = np.asarray(line[0].get_xdata(), float) * _unit(ax.get_xlabel())
    e = np.asarray(line[0].get_ydata(), float) * _unit(ax.get_ylabel())
    step = 12 * 2**30 / 10
    assert np.allclose(d, [-6 * 2**30 + k * step for k in range(11)], rtol=0, atol=1.0)
    want = [((int(x) + 2**31) % 2**32) - 2**31 - int(x) for x in np.round(d)]
    assert np.allclose(e, want, rtol=0, atol=1.0)
    # by hand, d in units of 2^30: -6..-2.4 -> +2^32; -1.2..1.2 -> 0; 2.4..4.8 -> -2^32; and at
    # +6 (= 2^32 + 2^31: delta exactly 2^31 is "past") -> -2^33
    assert want == [2**32] * 4 + [0] * 3 + [-2**32] * 3 + [-2**33]


def test_memory_layout_draws_each_region_at_its_bytes():
    fig = plots.memory_layout(0, 248, 256, 302)
    ax = fig.axes[0]
    boxes = sorted((round(p.get_x()), round(p.get_width())) for p in ax.patches)
    # xdp_frame 40 B at data_hard_start, headroom to data_meta, 8 B metadata, 46 B packet
    assert boxes == [(0, 40), (40, 208), (248, 8), (256, 46)]
    texts = {t.get_text() for t in ax.texts}
    assert {"xdp_frame 40 B", "headroom 208 B", "metadata 8 B", "packet 46 B"} <= texts
    marks = {a.get_text(): a.xy[0] for a in ax.texts if hasattr(a, "xy")}
    assert marks == {"data_hard_start": 0, "data_meta": 248, "data": 256, "data_end": 302}


def test_cost_bars_heights_and_labels_are_the_table():
    costs = compare(("ice",), ("none", "rfc-v2"), packets=3, progress=False)
    fig = plots.cost_bars(costs)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == len(costs)
    assert sorted(round(b.get_height(), 9) for b in bars) == sorted(round(c, 9) for c in costs.cost_ns)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(legend) == len(costs) and all(d in text for d, text in zip(costs.design, legend))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ice"]
    # ice with a timestamp costs more than ice with nothing: the tallest bar is that row's
    tallest = max(bars, key=lambda b: b.get_height())
    assert tallest.get_height() == pytest.approx(float(costs[costs.fields == "rx_timestamp"].cost_ns.iloc[0]))


def test_insn_profile_bars_are_the_counts():
    fig = plots.insn_profile({"none": 18.0, "rfc-v2": 50.0})
    ax = fig.axes[0]
    assert [round(p.get_width(), 6) for p in ax.patches] == [18.0, 50.0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["none", "rfc-v2"]


def test_memory_layout_view(ipython_shell):
    v = MemoryLayoutView(xdplab.Lab("ice"))
    v.show(8)
    assert len(v.out.outputs) == 1 and "image/png" in v.out.outputs[0]["data"]
    v.show(16)
    assert len(v.out.outputs) == 1


def test_fields_selector_offers_what_the_driver_supports_and_greys_out_the_rest():
    """issue 16: the selector offers exactly the fields the chosen driver and design support;
    the others are shown struck through, with the reason designs.field_support gives."""
    from xdplab.designs import field_support
    from xdplab.viz.widgets import TourApp
    app = TourApp(driver="mlx4", design="merged", plots_on=False, packets=10)
    support = field_support("mlx4", "merged")
    assert app.fields.options == tuple(f for f, why in support.items() if why is None)
    assert "rx_vlan_tag" not in app.fields.options and "<s>rx_vlan_tag</s>" in app.fields_off.value
    assert "xmo_rx_vlan_tag" in app.fields_off.value
    app.driver.value = "veth"            # veth has every merged op in the newest kernel modelled
    assert set(app.fields.options) == {f for f, why in field_support("veth", "merged").items() if why is None}
    assert app.lab is not None and set(app.lab.fields) <= set(app.fields.options)
