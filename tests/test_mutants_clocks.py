"""Tests written for the mutants of xdplab/clocks.py that survived `make mutate`
(benchmarks/results/mutation.json)."""
from __future__ import annotations

import numpy as np
import pytest

from xdplab.clocks import floor_ratio, mlx4_freq_to_shift


@pytest.mark.parametrize("t,num,den", [
    (2**40, 2**30 + 1, 2**9 + 3),   # t * num ~ 2^70: int64 would wrap; the result fits (~2^61)
    (2**33 + 7, 2**29 + 3, 1000),   # ~ 2^62: just past the int64-safe bound
    (-(2**41), 2**25 + 1, 77),      # ~ -2^66, floored towards -infinity
    (123_456_789, 1_000_000_007, 1_000_000_009),
])
def test_floor_ratio_is_exact_on_arrays_whatever_the_magnitude(t, num, den):
    """floor(t * num / den) with Python's exact integers as the oracle; the array form must
    agree lane by lane (int64 where the product cannot overflow, exact ints where it could;
    the results are ns and fit int64)."""
    ts = np.array([t, t // 3, 0, 1, -1], np.int64)
    expect = [(int(x) * num) // den for x in ts]
    assert floor_ratio(ts, num, den).tolist() == expect
    assert floor_ratio(t, num, den) == expect[0]


@pytest.mark.parametrize("freq_mhz,shift", [
    # en_clock.c@6.1.192:251-261 freq_to_shift, by hand: max_val = f * 10^7 (10 s of cycles);
    # rounded = 2^fls64(max_val - 1); max_mul = (2^64 - 1) // rounded;
    # shift = ilog2(max_mul * f * 1000 // 10^6)
    (427, 30),    # 4.27e9 <= 2^32: max_mul 2^32 - 1; (2^32 - 1) * 427000 // 10^6 = 1833951034
    (858, 30),    # 8.58e9 <= 2^33: max_mul 2^31 - 1; (2^31 - 1) * 858000 // 10^6 = 1842540969
    (859, 29),    # 8.59e9 >  2^33 (8589934592): max_mul 2^30 - 1; (2^30 - 1) * 859000 // 10^6 = 922344225
    (1, 30),      # 10^7 -> 2^24: max_mul 2^40 - 1; (2^40 - 1) * 1000 // 10^6 = 1099511627
    (1717, 30),   # 1.717e10 <= 2^34 (17179869184): max_mul 2^30 - 1; ... // 10^6 = 1843614710
    (1718, 29),   # 1.718e10 >  2^34: max_mul 2^29 - 1; (2^29 - 1) * 1718000 // 10^6 = 922344225
])
def test_mlx4_freq_to_shift_hand_vectors(freq_mhz, shift):
    assert mlx4_freq_to_shift(freq_mhz) == shift
