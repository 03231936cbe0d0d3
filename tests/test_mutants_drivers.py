"""Tests written for the mutants of xdplab/drivers/ that survived `make mutate`
(benchmarks/results/mutation.json)."""
from __future__ import annotations

import pytest

import xdplab.drivers as drivers


@pytest.mark.parametrize("name", ["", "ixgbe", "ICE", "veth "])
def test_an_unknown_driver_name_is_a_value_error_listing_the_valid_ones(name):
    """The project's rule for bad input: a clear typed error naming the field, never a bare
    KeyError (shared DESIGN.md; README 'Standards')."""
    with pytest.raises(ValueError) as info:
        drivers.get(name)
    assert not isinstance(info.value, KeyError)
    assert repr(name) in str(info.value)
    for known in ("veth", "ice", "mlx4", "bnxt"):
        assert known in str(info.value)


def test_the_bnxt_helper_reads_the_whole_u64_cyclecounter_mask():
    """struct cyclecounter's ``mask`` is a u64 (include/linux/timecounter.h@6.1.192:37) and
    timecounter_cyc2time masks with all of it (kernel/time/timecounter.c@6.1.192:79-98).  bnxt
    sets 48 bits (bnxt_ptp.c@6.1.192:850-852); here the PTP state holds a full 64-bit mask, so a
    helper that read fewer bytes would take the other branch.  By hand: old_time
    0x1234_0000_0000 and stamp 0x10 extend to ts = 0x1234_0000_0010 (bnxt_get_rx_ts_p5);
    cycle_last C = 2^60 + 5; delta = (ts - C) mod 2^64 > mask / 2, so the past branch:
    nsec - ((C - ts) & mask) with mult 1, shift 0, frac 0."""
    from tests.test_oracles import bnxt_completion, loaded_timestamp_program
    from xdplab.clocks import Timecounter
    from xdplab.drivers import bnxt
    k, call = loaded_timestamp_program(bnxt.Bnxt())
    hw = bnxt.BnxtRxHw(k.memory)
    ts, c, n = 0x1234_0000_0010, 2**60 + 5, 2**61
    hw.set_ptp(0x1234_0000_0000, Timecounter(mult=1, shift=0, mask=2**64 - 1, cycle_last=c, nsec=n))
    cmp, ext = bnxt_completion(0x10)
    assert call(hw.receive(0, cmp, ext)) == n - (c - ts)

