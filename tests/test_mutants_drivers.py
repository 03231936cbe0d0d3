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
