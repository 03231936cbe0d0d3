"""Widgets driven from pytest: a picker change re-renders the diff and the plots."""
from __future__ import annotations

from matplotlib.figure import Figure

import xdplab
from xdplab.drivers import ice
from xdplab.viz import DiffView, MemoryLayoutView, TourApp, plots
from xdplab.designs import compare


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


def test_plot_functions_return_figures():
    df = xdplab.Lab("ice").run(20, stalls=((2_000_000_001, 10**11),), interval_ns=200_000_000)
    assert isinstance(plots.timestamp_error(df), Figure)
    assert isinstance(plots.extension_window(ice.extend_32b_ts, 1 << 60, points=11), Figure)
    assert isinstance(plots.memory_layout(0, 248, 256, 302), Figure)
    costs = compare(("ice",), ("none", "rfc-v2"), packets=3, progress=False)
    fig = plots.cost_bars(costs)
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == len(costs)
    assert isinstance(plots.insn_profile({"none": 18.0, "rfc-v2": 50.0}), Figure)


def test_memory_layout_view(ipython_shell):
    v = MemoryLayoutView(xdplab.Lab("ice"))
    v.show(8)
    assert len(v.out.outputs) == 1 and "image/png" in v.out.outputs[0]["data"]
    v.show(16)
    assert len(v.out.outputs) == 1
