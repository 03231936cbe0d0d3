"""mlx5 joins the drivers: CQE64, both timestamp formats, hash, VLAN, its clock, per design."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import xdplab
from xdplab.drivers.mlx5 import (MLX5_CQE64, Mlx5Clock, get_cqe_ts, make_cqes, ns_to_real_time, overflow_period_ns,
                                 real_time_to_ns)
from xdplab.traffic import ETH_P_8021Q, Flow, Traffic

SEC = 1_000_000_000


def test_registered():
    assert "mlx5" in xdplab.drivers.names()
    assert xdplab.drivers.get("mlx5", real_time=True).real_time
    with pytest.raises(ValueError, match="bad options"):
        xdplab.drivers.get("mlx5", nonsense=1)


def test_cqe_stamp_bytes_are_big_endian_words_at_48_and_52():
    raw = (5 << 32) | 7                      # real-time: 5 s + 7 ns
    row = make_cqes(raw)[0].tobytes()
    assert row[48:52] == bytes([0, 0, 0, 5]) and row[52:56] == bytes([0, 0, 0, 7])
    assert get_cqe_ts(row) == raw and real_time_to_ns(raw) == 5 * SEC + 7
    assert MLX5_CQE64.offsetof("rss_hash_result") == 12 and MLX5_CQE64.offsetof("vlan_info") == 30


@pytest.mark.parametrize("ns", [0, 1, SEC - 1, SEC, 1_700_000_000_123_456_789, (1 << 32) * SEC - 1])
def test_real_time_format_round_trip(ns):
    raw = ns_to_real_time(ns)
    assert raw >> 32 == ns // SEC and raw & 0xFFFFFFFF == ns % SEC
    assert real_time_to_ns(raw) == ns


def test_overflow_period_by_hand():
    """lib/clock.c@6.1.192:888-911 for 156250 kHz, shift 23, mask 41 bits, HZ 250, worked
    independently with exact fractions."""
    mult = round(Fraction(10**6 << 23, 156250))       # clocksource_khz2mult
    cycles = min((2**63 - 1) // mult, (2**41 - 1) // 3)
    ns = (cycles * mult) >> 23
    assert overflow_period_ns(mult) == ns // 4_000_000 * 4_000_000


@pytest.mark.parametrize("real_time", [False, True])
@pytest.mark.parametrize("design", ["merged", "rfc-v2", "patch-v3", "btf-hints"])
def test_rx_timestamp_is_exact_in_both_clock_modes(real_time, design):
    lab = xdplab.Lab("mlx5", ("rx_timestamp",) if design != "btf-hints" else (), design=design,
                     driver_options={"real_time": real_time})
    for engine in ("scalar", "batch"):
        df = lab.run(50, engine=engine, interval_ns=97_000_000, jitter_ns=5_000, ppb=300.0)
        assert (df.delivered_to == "af_xdp").all()
        assert (df.rx_timestamp == df.hw_time_ns).all() and (df.error_ns == 0).all()


def test_free_running_clock_tracks_the_nominal_rate_within_mult_rounding():
    """The timecounter's ns against the exact nominal conversion of the counter: the error is
    the mult quantization (mult / 2**23 vs 6.4 ns per cycle) over the elapsed cycles."""
    c = Mlx5Clock(False, None)  # type: ignore[arg-type]
    t = np.arange(0, 3000 * SEC, 37 * SEC + 12345, dtype=np.int64)
    hw = c.hw_time_ns(t).astype(object)
    cyc = [(int(x) * 156_250) // 1_000_000 for x in t]          # counter ticks since t=0 (ppb 0)
    ideal = [c.start_ns + Fraction(k * 10**6, 156_250) for k in cyc]
    rate_err = abs(Fraction(c.mult, 1 << 23) - Fraction(10**6, 156_250))
    for h, i, k in zip(hw, ideal, cyc):
        assert abs(h - i) <= k * rate_err + 1 + 3 * 2            # + ns truncation per overflow read


def test_rfc_v2_on_mlx5_unrolls_real_time_and_calls_free_running():
    rt = xdplab.Lab("mlx5", driver_options={"real_time": True})
    fr = xdplab.Lab("mlx5")
    [r1] = [r for r in rt.loaded.patches if r.kfunc == "bpf_xdp_metadata_rx_timestamp"]
    [r2] = [r for r in fr.loaded.patches if r.kfunc == "bpf_xdp_metadata_rx_timestamp"]
    assert r1.action == "unroll:mlx5" and not any(i.opcode == 0x85 for i in r1.insns)
    assert any(i.opcode == 0x85 for i in r2.insns)       # the seqlock: a call into kernel code


MIX = [Flow(vlan=(ETH_P_8021Q, 0xE00A)), Flow("2001:db8::1", "2001:db8::2", "tcp"), Flow(proto="icmp"),
       Flow("10.0.0.9", "10.0.0.8", "udp", 53, 53)]
# mlx5_xdp_rss_type ([D73] en/xdp.c 225-242, kernel-facts-fields §2.3), typed in: ICMP hashes on L3
EXPECTED_TYPE = {("ipv4", "udp"): 0x029, ("ipv6", "tcp"): 0x01A, ("ipv4", "icmp"): 0x001}


@pytest.mark.parametrize("real_time", [False, True])
def test_merged_hash_and_vlan_equal_the_truth(real_time):
    tr = Traffic.flows_of(MIX)
    df = xdplab.Lab("mlx5", ("rx_timestamp", "rx_hash", "rx_vlan_tag"), design="merged",
                    driver_options={"real_time": real_time}).run(40, traffic=tr)
    flows = [MIX[i] for i in tr.flow_index(0, 40)]
    assert df.rx_hash.astype("int64").tolist() == [f.rss_hash() for f in flows]
    assert df.rx_hash_type.astype("int64").tolist() == [EXPECTED_TYPE[("ipv6" if f.ipv6 else "ipv4", f.proto)]
                                                         for f in flows]
    tagged = np.array([f.vlan is not None for f in flows])
    assert (df.rx_vlan_proto[tagged] == 0x8100).all() and (df.rx_vlan_tci[tagged] == 0xE00A).all()  # PCP kept
    assert df.rx_vlan_tci[~tagged].isna().all()
    assert df.meta_reason[~tagged].astype(str).str.contains("rx_vlan_tag: -ENODATA").all()


def test_kernel_63_mlx5_has_hash_not_vlan():
    df = xdplab.Lab("mlx5", ("rx_hash",), design="merged", kernel="6.3").run(5)
    assert df.rx_hash.notna().all()
    with pytest.raises(ValueError, match="6.8"):
        xdplab.Lab("mlx5", ("rx_vlan_tag",), design="merged", kernel="6.3")


def test_rfc_v2_model_fields_on_mlx5():
    tr = Traffic.flows_of(MIX)
    df = xdplab.Lab("mlx5", ("rx_hash", "rx_vlan_tag"), design="rfc-v2").run(30, traffic=tr)
    flows = [MIX[i] for i in tr.flow_index(0, 30)]
    assert df.rx_hash.astype("int64").tolist() == [f.rss_hash() for f in flows]
    assert df.rx_vlan_tci.astype("int64").tolist() == [f.vlan[1] if f.vlan else 0 for f in flows]
