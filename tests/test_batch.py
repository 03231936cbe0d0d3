"""The batch engine equals the scalar one, packet by packet, on random traces for every driver,
design and variant (and with the work split across processes)."""
from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

import xdplab
from xdplab.clocks import ClockEvent

COLUMNS = ["packet", "t_ns", "hw_time_ns", "rx_timestamp", "error_ns", "insns", "action", "delivered_to",
           "meta_len", "reason"]
SEC = 1_000_000_000


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) == len(b)
    for col in COLUMNS:
        left = a[col].astype(object).map(repr).reset_index(drop=True)
        right = b[col].astype(object).map(repr).reset_index(drop=True)
        bad = left != right
        assert not bad.any(), (col, left[bad].head(3).tolist(), right[bad].head(3).tolist())
    assert np.allclose(a.cost_ns.fillna(-1).to_numpy(), b.cost_ns.fillna(-1).to_numpy())


def random_trace(rng: random.Random) -> dict:
    trace = dict(interval_ns=rng.choice([1_000, 333_333, 150_000_000, 700_000_000]),
                 start_ns=rng.randrange(0, 5 * SEC), jitter_ns=rng.choice([0, 0, 50_000]))
    if rng.random() < 0.5:
        a = rng.randrange(SEC, 6 * SEC)
        trace["stalls"] = ((a, a + rng.randrange(SEC, 20 * SEC)),)
    return trace


@pytest.mark.parametrize("driver", ["veth", "ice", "mlx4", "bnxt"])
@pytest.mark.parametrize("design", ["rfc-v2", "rfc-v1", "merged", "btf-hints", "none"])
def test_batch_equals_scalar_on_random_traces(driver, design):
    rng = random.Random(f"{driver}-{design}")
    fields = ("rx_timestamp", "rx_hash") if design == "merged" else ("rx_timestamp",)
    for variant in ("fixed", "rfc-v2-posted"):
        lab = xdplab.Lab(driver, fields, design=design, variant=variant, seed=rng.randrange(100))
        for path in ("af_xdp", "skb"):
            trace = random_trace(rng)
            kw = dict(path=path, assume_meta_support=rng.random() < 0.7, **trace)
            assert_same(lab.run(40, engine="scalar", **kw), lab.run(40, engine="batch", **kw))


def test_batch_with_clock_steps_and_drift_falls_back_exactly():
    lab = xdplab.Lab("ice")
    kw = dict(interval_ns=200_000_000, ppb=1500.0, clock_events=(ClockEvent(at_ns=2_300_000_000, step_ns=-3 * SEC),))
    assert_same(lab.run(30, **kw), lab.run(30, engine="batch", **kw))


def test_batch_split_across_processes_equals_one_process():
    from xdplab.batch import run_batch
    lab = xdplab.Lab("ice")
    kw = dict(interval_ns=1000, start_ns=2 * SEC, jitter_ns=0, stalls=(), clock_events=(), ppb=0.0,
              assume_meta_support=False, profile="e5-1650v4-retpoline")
    one = run_batch(lab, 5000, "af_xdp", workers=1, chunk=1024, **kw)
    two = run_batch(lab, 5000, "af_xdp", workers=2, chunk=1024, **kw)
    assert_same(lab._finish(one, "af_xdp", "e5-1650v4-retpoline", False),
                lab._finish(two, "af_xdp", "e5-1650v4-retpoline", False))


def test_unknown_engine():
    with pytest.raises(ValueError, match="valid engines: scalar, batch"):
        xdplab.Lab("ice").run(3, engine="gpu")
