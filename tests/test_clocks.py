"""Clock arithmetic (timecounter, mult/shift) and the refresh processes with fault injection."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdplab.clocks import (ClockEvent, Phc, Refresher, Timecounter, clocks_calc_mult_shift,
                           clocksource_khz2mult, cyclecounter_cyc2ns, mlx4_freq_to_shift,
                           mult_overflow_seconds)
from xdplab.drivers import bnxt, ice
from xdplab.drivers.mlx4 import Mlx4Clock

M48, M64 = (1 << 48) - 1, (1 << 64) - 1
SEC = 1_000_000_000


@pytest.mark.parametrize("mhz, shift, mult, overflow_s", [
    (427, 30, 2_514_617_855, 17.18), (250, 29, 2_147_483_648, 34.36), (500, 29, 1_073_741_824, 34.36),
])
def test_mlx4_mult_shift_table_of_kernel_facts(mhz, shift, mult, overflow_s):
    assert mlx4_freq_to_shift(mhz) == shift
    assert clocksource_khz2mult(mhz * 1000, shift) == mult
    assert round(mult_overflow_seconds(mult, mhz * 1e6), 2) == overflow_s


def test_khz2mult_truncates_to_u32_below_214_mhz():
    shift = mlx4_freq_to_shift(200)
    assert shift == 30 and clocksource_khz2mult(200_000, shift) == (5 << 30) & 0xFFFFFFFF


def test_clocks_calc_mult_shift_keeps_maxsec_within_64_bits():
    for hz in (19_200_000, 427_000_000, 1_000_000_000, 3_000_000_000):
        mult, shift = clocks_calc_mult_shift(hz, SEC, 600)
        assert 600 * hz * mult < 2**64
        assert abs(mult / 2**shift - SEC / hz) / (SEC / hz) < 1e-6


@given(st.integers(1, 2**32 - 1), st.integers(0, 31), st.integers(0, M48), st.integers(0, M64),
       st.integers(0, M48))
def test_cyc2time_agrees_with_read(mult, shift, last, nsec, delta):
    """Reading the counter at c folds exactly cyc2time(c) into nsec (future half)."""
    tc = Timecounter(mult, shift, M48, cycle_last=last, nsec=nsec)
    c = (last + (delta & (M48 >> 1))) & M48
    assert tc.read(c).nsec == tc.cyc2time(c)
    assert tc.read(c).cyc2time(c) == tc.read(c).nsec


@given(st.integers(1, 2**32 - 1), st.integers(0, 31), st.integers(0, M48), st.integers(0, M64),
       st.integers(1, (M48 >> 1)))
def test_cyc2time_past_branch_subtracts(mult, shift, last, nsec, back):
    """cc_cyc2ns_backwards (kernel/time/timecounter.c@6.1.192:69-77): nsec - ((back*mult - frac)
    >> shift), the u64 subtraction wrapping; with frac = 0 and with the largest frac."""
    for frac in (0, (1 << shift) - 1):
        tc = Timecounter(mult, shift, M48, cycle_last=last, nsec=nsec, frac=frac)
        c = (last - back) & M48
        assert tc.cyc2time(c) == (nsec - ((((back * mult) - frac) % 2**64) >> shift)) % 2**64


def test_cyclecounter_cyc2ns_keeps_the_fraction():
    ns, frac = cyclecounter_cyc2ns(3, 2, 5, 0)      # 15 / 4 = 3.75
    assert (ns, frac) == (3, 3)
    ns2, frac2 = cyclecounter_cyc2ns(3, 2, 5, frac)  # (15 + 3) / 4 = 4.5
    assert (ns2, frac2) == (4, 2)


def test_phc_model_steps_and_frequency():
    phc = Phc(offset_ns=1000, ppb=1000.0)
    assert phc.ns(SEC) == 1000 + SEC + 1000
    stepped = phc.with_event(ClockEvent(at_ns=SEC, step_ns=-500, ppb=0.0))
    assert stepped.ns(2 * SEC) == 1000 + SEC + 1000 - 500 + SEC

def test_phc_jitter_is_reproducible_gaussian_read_noise():
    """Jitter: a reproducible read noise keyed by (seed, instant): two separately built clocks
    with the same seed agree at every instant; another seed differs somewhere; the noise has
    the stated standard deviation (5 ns, floored to whole ns) and no drift."""
    a, b, other = Phc(jitter_ns=5.0, seed=3), Phc(jitter_ns=5.0, seed=3), Phc(jitter_ns=5.0, seed=4)
    instants = range(10_000, 10_000 + 2000 * 997, 997)
    noise = [a.ns(t) - t for t in instants]
    assert noise == [b.ns(t) - t for t in instants]
    assert noise != [other.ns(t) - t for t in instants]
    mean = sum(noise) / len(noise)
    std = (sum((x - mean) ** 2 for x in noise) / len(noise)) ** 0.5
    assert -1.0 < mean < 0.0                     # floor() moves the mean down by 1/2 ns
    assert 4.5 < std < 5.5 and max(abs(x) for x in noise) < 6 * 5
    assert Phc().ns(12345) == 12345              # no jitter: exact


def test_refresher_with_a_stall():
    r = Refresher(500_000_000).with_stall(1 * SEC, 3 * SEC)
    assert r.last_run(900_000_000) == 500_000_000
    assert r.last_run(2_900_000_000) == 500_000_000
    assert r.last_run(3 * SEC) == 3 * SEC
    assert r.runs_between(0, 2 * SEC) == [500_000_000]


# -------------------------------------------------- failure windows, through the process models
def _ice_error(clock: ice.IceClock, t: int) -> int:
    desc = clock.descriptor(t).encode()
    return ice.ice_ptp_rx_hwtstamp(clock.cached_phctime(t), desc) - clock.hw_time_ns(t)


def test_ice_stalled_refresh_fails_after_2_147_s():
    clock = ice.IceClock.default(ppb=2500.0)
    stalled = ice.IceClock(clock.phc, clock.refresher.with_stall(SEC + 1, 60 * SEC))
    assert all(_ice_error(clock, t) == 0 for t in range(0, 30 * SEC, 333_333_333))
    last = 1 * SEC                                      # the last refresh before the stall
    assert _ice_error(stalled, last + 2_147_000_000) == 0
    assert _ice_error(stalled, last + 2_148_000_000) == -(1 << 32)
    # a clock step refreshes the cache at once: no error across it
    stepped = ice.IceClock(clock.phc.with_event(ClockEvent(at_ns=1_200_000_000, step_ns=3 * SEC)),
                           clock.refresher)
    assert all(_ice_error(stepped, t) == 0 for t in range(SEC, 3 * SEC, 50_000_000))


def _bnxt_error(clock: bnxt.BnxtClock, t: int) -> int:
    _, ext = bnxt.make_completion(clock.hw_time_ns(t))
    old = clock.old_time(t)
    tc = bnxt.bnxt_timecounter()
    return bnxt.bnxt_rx_timestamp(old, tc, ext) - clock.hw_time_ns(t)


def test_bnxt_old_time_lags_and_a_stall_fails_after_about_3_3_s():
    clock = bnxt.BnxtClock.default()
    lags = [clock.hw_time_ns(t) - clock.old_time(t) for t in range(2 * SEC, 10 * SEC, 100_000_000)]
    assert min(lags) >= SEC and max(lags) < 2 * SEC          # old_time lags now by 1-2 s
    assert all(_bnxt_error(clock, t) == 0 for t in range(2 * SEC, 10 * SEC, 100_000_000))
    stalled = bnxt.BnxtClock(clock.phc, clock.aux.with_stall(4 * SEC + 1, 60 * SEC))
    # runs at 0..4 s; old_time = the 3 s sample; it breaks 2^32 ns after it
    assert _bnxt_error(stalled, 3 * SEC + (1 << 32) - 1) == 0
    assert _bnxt_error(stalled, 3 * SEC + (1 << 32)) == -(1 << 32)
    # the failure comes ~3.3 s after the last aux run (at 4 s), 2^32 ns after the sample it keeps
    fail = 3 * SEC + (1 << 32)
    assert stalled.aux.last_run(fail) == 4 * SEC
    assert stalled.old_time(fail) == stalled.hw_time_ns(3 * SEC) & M48
    assert fail - stalled.aux.last_run(fail) == 3_294_967_296


def test_mlx4_multiply_overflows_after_about_17_s_without_an_overflow_check():
    clock = Mlx4Clock.default()
    for t in range(0, 60 * SEC, 777_777_777):
        err = abs(clock.timecounter(t).cyc2time(clock.cycles(t)) - clock.hw_time_ns(t))
        assert err <= 2 + t * 0.1e-9          # quantisation of mult: ~0.08 ppb (kernel-facts 6.3)
    stalled = Mlx4Clock(clock.freq_hz, clock.start_ns, clock.overflow.with_stall(5 * SEC + 1, 10**12))
    good = 5 * SEC + 17_100_000_000
    bad = 5 * SEC + 17_300_000_000
    assert abs(stalled.timecounter(good).cyc2time(stalled.cycles(good)) - stalled.hw_time_ns(good)) <= 2
    assert abs(stalled.timecounter(bad).cyc2time(stalled.cycles(bad)) - stalled.hw_time_ns(bad)) > SEC
