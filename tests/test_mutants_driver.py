"""Tests written for the mutants of xdplab/kernel/driver.py that survived `make mutate`
(benchmarks/results/mutation.json)."""
from __future__ import annotations

import pytest

import xdplab.drivers as drivers
from xdplab.kernel.driver import RxSettings
from xdplab.kernel.kernel import Kernel

SEC = 1_000_000_000


@pytest.mark.parametrize("name", drivers.names())
def test_default_rx_settings_give_an_ideal_clock(name):
    """RxSettings() is the unperturbed run: no stall, no step, no drift.  So one true second
    between two packets is exactly 10^9 ns on every driver's clock (ppb 0: phc(t) = offset + t,
    xdplab.clocks.Phc), on either side of a refresh of the driver's cached time.  mlx5's default
    free-running clock is the exception that proves it: its hw time is the timecounter's
    conversion of a cycle count (mult/shift truncate: a few ns per second; mlx5_timecounter_init,
    drivers/net/ethernet/mellanox/mlx5/core/lib/clock.c@6.1.192:870), so it gets a 10 ns tolerance; 1 ppb would still be 1 ns per second
    on the other four."""
    k = Kernel(seed=0)
    rx = drivers.get(name).rx_path(k.memory, RxSettings())
    stamps = [rx.receive(i, t, 64) for i, t in enumerate((3 * SEC, 4 * SEC, 4 * SEC + 700_000_000))]
    tol = 10 if name == "mlx5" else 0
    assert abs(stamps[1] - stamps[0] - SEC) <= tol
    assert abs(stamps[2] - stamps[1] - 700_000_000) <= tol


RELEASES = [(6, 3), (6, 8), (7, 2)]


@pytest.mark.parametrize("name", drivers.names())
@pytest.mark.parametrize("release", RELEASES, ids=[f"{a}.{b}" for a, b in RELEASES])
def test_merged_ops_follow_the_release_and_by_value_kfuncs_do_not(name, release):
    """A merged (status-returning) kfunc has a driver routine only from the release whose
    ``xdp_metadata_ops`` first had the op (kernel-facts-fields: veth/mlx4/mlx5 timestamp and
    hash 6.3, ice 6.8, VLAN 6.8, bnxt hash 7.2).  The by-value kfuncs of the call design
    (PATCH v3) are not release-gated: they are the RFC's own routines."""
    from xdplab.kernel.kfuncs import MERGED, PATCH_V3
    drv = drivers.get(name)
    drv.kernel = release
    since = dict(drv.merged_ops)
    for spec in MERGED.specs:
        has = drv.kfunc_routine(spec) is not None
        assert has == (spec.field in since and release >= since[spec.field]), (spec.name, since)
    by_value = PATCH_V3.by_name("bpf_xdp_metadata_rx_timestamp")
    assert (drv.kfunc_routine(by_value) is not None) == drv.supports_rx_timestamp


def test_a_wrapper_field_inside_the_xdp_buff_is_refused():
    """A driver wrapper is ``struct xdp_buff xdp`` first (RFC v2 03/09/11/13: container_of on
    the xdp_buff), so its own fields start at sizeof(struct xdp_buff) = 56 (include/net/xdp.h)."""
    from xdplab.kernel.driver import wrapper_layout
    with pytest.raises(ValueError, match=r"w\.skb at 48 overlaps the xdp_buff at 0\.\.56"):
        wrapper_layout("w", 64, "test", skb=(48, 8))
    assert wrapper_layout("w", 64, "test", skb=(56, 8)).offsetof("skb") == 56


def test_a_routine_that_only_returns_a_constant_costs_one_mov():
    """``*_supported`` as C (``return true``) and the generic defaults (02/14: ``return
    -EOPNOTSUPP``, ``return 0``): the body is one ``r0 = imm`` (the ret is the call's, priced by
    ``direct_call_ns``), so their OpCost is one alu64 and nothing else."""
    from xdplab.kernel.driver import supported_routine
    from xdplab.kernel.kfuncs import MERGED, RFC_V2
    from xdplab.kernel.loader import default_routine
    from xdplab.kernel.symbols import OpCost
    routines = [supported_routine(n) for n in drivers.names()]
    routines += [default_routine(s) for s in (*RFC_V2.specs, *MERGED.specs)]
    assert [(r.name, r.cost) for r in routines] == [(r.name, OpCost(insns={"alu64": 1})) for r in routines]
