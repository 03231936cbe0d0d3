"""Delayed-work semantics of the periodic PHC refresh (issue 13, item 10).

ice_ptp_periodic_work re-queues itself with kthread_queue_delayed_work(.., msecs_to_jiffies(500))
(drivers/net/ethernet/intel/ice/ice_ptp.c@6.1.192:2434); the timer expires at jiffies + delay
(kernel/kthread.c@6.1.192:1082).  bnxt's PTP aux work is re-queued by ptp_aux_kworker with
do_aux_work's return value (drivers/ptp/ptp_clock.c@6.1.192:215-218).  So a run that falls due
during a stall happens when the stall ends, and the period restarts from there.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdplab.clocks import Refresher
from xdplab.drivers import ice

MS = 1_000_000
SEC = 1_000 * MS


def _event_simulation(r: Refresher, horizon: int) -> list[int]:
    """An independent oracle: step the work item run by run, as the kernel does."""
    runs, due = [], r.start_ns
    while due <= horizon:
        moved = True
        while moved:                       # blocked while any stall covers the due instant
            moved = False
            for a, b in r.stalls:
                if a <= due < b:
                    due, moved = b, True
        if due > horizon:
            break
        runs.append(due)
        due += r.period_ns                 # re-armed from the run, not from a grid
    return runs


def test_a_run_due_in_a_stall_happens_at_its_end_and_rearms_from_there():
    r = Refresher(500 * MS).with_stall(1 * SEC, 3 * SEC + 1)
    assert r.last_run(3 * SEC) == 500 * MS
    assert r.last_run(3 * SEC + 1) == 3 * SEC + 1           # the stall's end, not the 3.5 s grid point
    assert r.last_run(3 * SEC + 500 * MS) == 3 * SEC + 1
    assert r.last_run(3 * SEC + 500 * MS + 1) == 3 * SEC + 500 * MS + 1
    assert r.runs_between(0, 4 * SEC) == [500 * MS, 3 * SEC + 1, 3 * SEC + 500 * MS + 1]


def test_a_stall_between_two_runs_changes_nothing():
    plain, stalled = Refresher(500 * MS), Refresher(500 * MS).with_stall(600 * MS, 900 * MS)
    t = np.arange(0, 5 * SEC, 7 * MS)
    assert (stalled.last_runs(t) == plain.last_runs(t)).all()


def test_bad_refresher_parameters_raise_value_error():
    with pytest.raises(ValueError, match="period"):
        Refresher(0)
    with pytest.raises(ValueError, match="ends before"):
        Refresher(10, stalls=((5, 4),))


stalls = st.lists(st.tuples(st.integers(0, 6_000), st.integers(0, 3_000)).map(lambda p: (p[0], p[0] + p[1])),
                  max_size=4)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 900), st.integers(0, 500), stalls, st.lists(st.integers(-5, 8_000), min_size=1, max_size=25))
def test_last_run_runs_between_and_last_runs_match_an_event_simulation(period, start, windows, instants):
    r = Refresher(period, start, tuple(windows))
    runs = _event_simulation(r, 8_000)
    for t in instants:
        before = [x for x in runs if x <= t]
        assert r.last_run(t) == (before[-1] if before else None)
    assert list(r.last_runs(np.array(instants))) == [r.last_run(t) if r.last_run(t) is not None else -1
                                                     for t in instants]
    a, b = sorted(instants)[0], sorted(instants)[-1]
    assert r.runs_between(a, b) == [x for x in runs if a < x <= b]


def _wrong_ice_packets(stall_end: int, interval: int = MS) -> int:
    """Packets every ``interval`` from 3.0 to 4.6 s whose extended timestamp is wrong, with the
    refresh stalled from just after its 1 s run until ``stall_end``."""
    clock = ice.IceClock.default(ppb=0.0)
    clock = ice.IceClock(clock.phc, clock.refresher.with_stall(SEC + 1, stall_end))
    wrong = 0
    for t in range(3 * SEC, 4 * SEC + 600 * MS, interval):
        got = ice.ice_ptp_rx_hwtstamp(clock.cached_phctime(t), clock.descriptor(t).encode())
        wrong += got != clock.hw_time_ns(t)
    return wrong


@pytest.mark.parametrize("stall_end", [3 * SEC + 500 * MS, 3 * SEC + 700 * MS, 4 * SEC])
def test_moving_the_stall_end_by_1_ns_changes_wrong_packets_by_at_most_one(stall_end):
    """The cache goes stale 2^31 ns after the 1 s run (ice_ptp_extend_32b_ts); the refresh at
    the stall's end repairs it.  On a fixed 500 ms grid a stall ending 1 ns after a grid point
    would add 500 wrong packets (one per ms until the next grid point)."""
    a, b = _wrong_ice_packets(stall_end), _wrong_ice_packets(stall_end + 1)
    assert abs(a - b) <= 1
    # and the count is what the stall's end implies: packets in [1 s + 2^31 ns, stall end)
    first_wrong = SEC + (1 << 31)
    expected = sum(1 for t in range(3 * SEC, 4 * SEC + 600 * MS, MS) if first_wrong < t < stall_end)
    assert abs(a - expected) <= 1
