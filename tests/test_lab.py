"""Lab: the DESIGN.md §2 entry point."""
from __future__ import annotations

import pytest

import xdplab
from xdplab import drivers
from xdplab.programs import ALL_DESIGNS


def test_driver_names_are_the_rfc_drivers():
    assert drivers.names() == ("veth", "ice", "mlx4", "bnxt", "mlx5")    # the RFC's, then mlx5 (issue 16)


@pytest.mark.parametrize("kwargs, message", [
    (dict(driver="e1000"), "unknown driver 'e1000'; valid drivers: veth, ice, mlx4, bnxt, mlx5"),
    (dict(driver="veth", fields=("rx_hash",), design="patch-v3"),
     "unknown field 'rx_hash' for design patch-v3; valid fields: rx_timestamp"),
    (dict(driver="veth", design="v5"), "valid designs: rfc-v2, patch-v3, merged, btf-hints, none"),
    (dict(driver="veth", variant="buggy"), "valid variants: fixed, rfc-v2-posted"),
    (dict(driver="veth", design="merged", fields=("rx_hash", "rx_hash")), "fields repeat"),
])
def test_bad_choices_are_value_errors_listing_the_valid_ones(kwargs, message):
    with pytest.raises(ValueError) as info:
        xdplab.Lab(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("design", ALL_DESIGNS)
def test_every_design_loads_for_veth(design):
    lab = xdplab.Lab("veth", design=design, fields=("rx_timestamp",))
    diff = lab.diff()
    assert len(diff.rows) == len(lab.program)
    assert lab.xlated.slot_count >= lab.program.slot_count
    kfunc_sites = [r for r in diff.rows if r.pass_name.startswith(("unroll:", "call:", "default-unroll"))]
    assert bool(kfunc_sites) == (design in ("rfc-v2", "patch-v3", "merged"))


def test_rfc_v2_veth_unrolls_both_kfuncs():
    lab = xdplab.Lab("veth")
    passes = [r.pass_name for r in lab.diff().rows if r.changed]
    assert passes.count("unroll:veth") == 2 and "ctx-rewrite" in passes and "map-fd" in passes
    assert "call" not in " ".join(p for p in passes if p.startswith("unroll"))
    assert "kfunc" not in xdplab.bpf.disassemble(lab.xlated)


def test_run_returns_one_row_per_packet():
    df = xdplab.Lab("veth").run(7)
    assert list(df.packet) == list(range(7)) and df.attrs["driver"] == "veth"


@pytest.mark.parametrize("driver", drivers.names())
@pytest.mark.parametrize("variant", ["fixed", "rfc-v2-posted"])
@pytest.mark.parametrize("design", ["rfc-v2", "patch-v3", "merged"])
def test_every_driver_variant_and_design_loads(driver, variant, design):
    lab = xdplab.Lab(driver, variant=variant, design=design)
    rows = lab.diff().rows
    actions = {r.pass_name for r in rows if r.changed}
    if design == "rfc-v2":
        assert f"unroll:{driver}" in actions
    else:
        assert any(a.startswith("call:") for a in actions)
