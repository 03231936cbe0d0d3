"""The lane engine equals the scalar one, column for column, on random traces for every driver,
design, variant and path, with stalls, clock steps, frequency changes, drift and jitter; and
however the packets are split into chunks or spread over an Executor."""
from __future__ import annotations

import random
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

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
    """Arrivals, refresh-task stalls, PHC steps and frequency changes, drift and jitter."""
    trace: dict = dict(interval_ns=rng.choice([1_000, 333_333, 150_000_000, 700_000_000]),
                       start_ns=rng.randrange(0, 5 * SEC), jitter_ns=rng.choice([0, 0, 50_000]))
    if rng.random() < 0.5:
        a = rng.randrange(SEC, 6 * SEC)
        trace["stalls"] = ((a, a + rng.randrange(SEC, 20 * SEC)),)
    events = []
    if rng.random() < 0.4:
        events.append(ClockEvent(at_ns=rng.randrange(2 * SEC, 8 * SEC), step_ns=rng.choice([-3 * SEC, 5 * SEC, 1 << 33])))
    if rng.random() < 0.3:
        events.append(ClockEvent(at_ns=rng.randrange(2 * SEC, 8 * SEC), ppb=rng.choice([-800.0, 2500.0])))
    if events:
        trace["clock_events"] = tuple(events)
    if rng.random() < 0.3:
        trace["ppb"] = rng.choice([-120.5, 900.0])
    return trace


@pytest.mark.parametrize("driver", xdplab.drivers.names())
@pytest.mark.parametrize("design", ["rfc-v2", "patch-v3", "merged", "btf-hints", "none"])
def test_batch_equals_scalar_on_random_traces(driver, design):
    rng = random.Random(f"{driver}-{design}")
    fields = ("rx_timestamp", "rx_hash") if design == "merged" else ("rx_timestamp",)
    for variant in ("fixed", "rfc-v2-posted"):
        lab = xdplab.Lab(driver, fields, design=design, variant=variant, seed=rng.randrange(100))
        for path in ("af_xdp", "skb"):
            trace = random_trace(rng)
            kw = dict(path=path, assume_meta_support=rng.random() < 0.7, **trace)
            assert_same(lab.run(40, engine="scalar", **kw), lab.run(40, engine="batch", **kw))


@pytest.mark.parametrize("driver", ["mlx4", "bnxt"])
def test_clock_events_of_the_call_drivers_on_both_engines(driver):
    """mlx4's overflow check and bnxt's aux work stalled across a PHC step and a retune: the
    lane forms of their kernel routines give what the scalar ones give, packet by packet."""
    lab = xdplab.Lab(driver)
    kw = dict(interval_ns=37_000_000, start_ns=SEC, assume_meta_support=True, ppb=250.0,
              stalls=((3 * SEC, 9 * SEC),),
              clock_events=(ClockEvent(at_ns=4 * SEC, step_ns=-2 * SEC), ClockEvent(at_ns=6 * SEC, ppb=-900.0)))
    a, b = lab.run(300, engine="scalar", **kw), lab.run(300, engine="batch", **kw)
    assert_same(a, b)
    assert (b.rx_timestamp != 0).all()       # every packet delivered a stamp (assumed meta support)


def test_auto_engine_says_which_ran():
    df = xdplab.Lab("ice").run(10)
    assert df.attrs["engine"] == "batch"
    assert xdplab.Lab("ice").run(10, engine="scalar").attrs["engine"] == "scalar"


def test_chunks_in_process_equal_one_chunk():
    lab = xdplab.Lab("bnxt")
    kw = dict(interval_ns=700_000, jitter_ns=90_000, assume_meta_support=True, stalls=((2 * SEC, 4 * SEC),))
    assert_same(lab.run(5000, **kw), lab.run(5000, chunk=777, **kw))
    assert_same(lab.run(60, engine="scalar", **kw), lab.run(60, engine="scalar", chunk=7, **kw))


@pytest.mark.parametrize("pool", [ThreadPoolExecutor, ProcessPoolExecutor])
def test_any_executor_gives_the_same_rows(pool):
    lab = xdplab.Lab("mlx4")
    kw = dict(interval_ns=900_000, assume_meta_support=True)
    with pool(2) as ex:
        spread = lab.run(4000, chunk=1000, executor=ex, **kw)
    assert_same(lab.run(4000, **kw), spread)
    assert spread.attrs["engine"] == "batch"


def test_a_dask_cluster_runs_a_sweep():
    distributed = pytest.importorskip("dask.distributed")
    from xdplab.designs import compare
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        spread = compare(("ice", "veth"), ("none", "rfc-v2"), packets=20, progress=False,
                         executor=client.get_executor())
        runs = xdplab.Lab("ice").run(3000, chunk=1000, executor=client.get_executor())
    here = compare(("ice", "veth"), ("none", "rfc-v2"), packets=20, progress=False)
    pd.testing.assert_frame_equal(spread, here)
    assert_same(runs, xdplab.Lab("ice").run(3000))


def test_unknown_engine():
    with pytest.raises(ValueError, match="valid engines: auto, scalar, batch"):
        xdplab.Lab("ice").run(3, engine="gpu")


def test_batch_refuses_what_lanes_cannot_run_and_auto_falls_back():
    from xdplab.bpf import assemble
    prog = assemble("r0 = 2\ncall pc+1\nexit\nr0 = 2\nexit")
    lab = xdplab.Lab("veth", program=prog)
    with pytest.raises(ValueError, match="batch engine cannot run this program"):
        lab.run(3, engine="batch")
    df = lab.run(3)
    assert df.attrs["engine"] == "scalar" and (df.action == "PASS").all()


FIELD_COLUMNS = ["rx_hash", "rx_hash_type", "rx_vlan_proto", "rx_vlan_tci", "hw_rx_hash", "hw_rx_hash_type",
                 "hw_rx_vlan_proto", "hw_rx_vlan_tci", "meta_reason"]


def random_traffic(rng: random.Random):
    """Flows of every shape: IPv4/IPv6, UDP/TCP/ICMP, tagged or not, stripping on or off."""
    from xdplab.traffic import ETH_P_8021AD, ETH_P_8021Q, Flow, Traffic
    flows = []
    for k in range(rng.randrange(1, 6)):
        v6 = rng.random() < 0.4
        src, dst = (f"2001:db8::{k + 1:x}", "2001:db8::ff") if v6 else (f"10.9.{k}.1", "10.9.255.2")
        vlan = rng.choice([None, None, (ETH_P_8021Q, rng.randrange(0, 4096)), (ETH_P_8021AD, 3)])
        flows.append(Flow(src, dst, rng.choice(["udp", "tcp", "icmp"]), rng.randrange(65536), rng.randrange(65536),
                          rng.randrange(0, 40), vlan))
    return Traffic.flows_of(flows, vlan_strip=rng.random() < 0.7, seed=rng.randrange(1000))


@pytest.mark.parametrize("driver", xdplab.drivers.names())
@pytest.mark.parametrize("design", ["merged", "btf-hints", "rfc-v2"])
def test_batch_equals_scalar_with_fields_and_shaped_traffic(driver, design):
    """Per-field consumer columns and their truth, on random flows: the lane engine gives what
    the scalar one gives."""
    rng = random.Random(f"fields-{driver}-{design}")
    from xdplab.programs import FIELDS_BY_DESIGN
    offered = FIELDS_BY_DESIGN[design]
    for _ in range(2):
        fields = tuple(f for f in offered if rng.random() < 0.7) if design != "btf-hints" else ()
        lab = xdplab.Lab(driver, fields, design=design, seed=rng.randrange(100))
        kw = dict(traffic=random_traffic(rng), assume_meta_support=True, **random_trace(rng))
        a, b = lab.run(40, engine="scalar", **kw), lab.run(40, engine="batch", **kw)
        assert_same(a, b)
        assert list(a.columns) == list(b.columns)
        for col in [c for c in FIELD_COLUMNS if c in a.columns]:
            assert a[col].astype(object).map(repr).tolist() == b[col].astype(object).map(repr).tolist(), col


DRIVER_OPTIONS = [
    # ice: each posted defect alone (kernel-facts §6.2, READING of RFC v2 10/14)
    *[("ice", {"defects": (d,)}) for d in xdplab.drivers.ice.DEFECTS],
    # bnxt: the by-value copy's stack tail, zero (no timestamp) and garbage (a fault)
    ("bnxt", {"copy_tail": bytes(24)}), ("bnxt", {"copy_tail": bytes(range(1, 25))}),
    ("mlx5", {"real_time": True}), ("veth", {"xdp_frame": True}),
    # the hwtstamp rx_filter NONE: no stamp in the CQE
    ("mlx5", {"filter_all": False}), ("mlx4", {"filter_all": False}),
]


@pytest.mark.parametrize("driver,options", DRIVER_OPTIONS,
                         ids=[f"{d}-{k}-{i}" for i, (d, o) in enumerate(DRIVER_OPTIONS) for k in o])
def test_batch_equals_scalar_for_each_driver_option(driver, options):
    """Driver options change the routines and the memory they read (a defect's wide loads read
    past the descriptor, a garbage copy tail points anywhere): both engines must agree there too."""
    rng = random.Random(f"{driver}-{options}")
    runs = [(v, d) for v in (("rfc-v2-posted",) if "defects" in options else ("fixed", "rfc-v2-posted"))
            for d in ("rfc-v2", "patch-v3", "merged")]
    for variant, design in runs:
        lab = xdplab.Lab(driver, variant=variant, design=design, driver_options=options, seed=rng.randrange(100))
        kw = dict(path="af_xdp", assume_meta_support=True, **random_trace(rng))
        lanes = lab.run(70, engine="batch", **kw)
        assert_same(lab.run(70, engine="scalar", **kw), lanes)
        # lanes that fault are handed to the scalar routine (it raises as on the scalar engine);
        # every other lane is served by the lane forms, a NULL skb or rxcmp1 included
        faulted = lanes.reason.astype(str).str.startswith("BpfExecuteError").sum()
        assert (lanes.attrs["lane_scalar_calls"] == 0) == (faulted == 0), (variant, design, faulted)


@pytest.mark.parametrize("driver", xdplab.drivers.names())
@pytest.mark.parametrize("design", ["rfc-v2", "patch-v3", "merged", "btf-hints"])
def test_every_lane_runs_vectorised(driver, design):
    """Every driver routine has a lane form that serves the common cases itself (a NULL pointer
    included); only lanes it cannot serve (an unmapped address, a held lock) would run its scalar
    form.  A lane form that handed everything back would still give the right rows (the scalar
    form answers), so this is checked on its own: ``lane_scalar_calls`` is 0."""
    fields = ("rx_timestamp", "rx_hash", "rx_vlan_tag") if design == "merged" else ("rx_timestamp",)
    for variant in ("fixed", "rfc-v2-posted"):
        lab = xdplab.Lab(driver, fields, design=design, variant=variant)
        for path in ("af_xdp", "skb"):
            df = lab.run(64, engine="batch", path=path, assume_meta_support=True, interval_ns=333_333)
            assert df.attrs["lane_scalar_calls"] == 0, (variant, path, df.reason.unique().tolist())
    assert "lane_scalar_calls" not in lab.run(4, engine="scalar").attrs
