"""Shaped traffic: frames, flows, the Toeplitz RSS hash (Microsoft's verification vectors),
pcap in and out, and Lab.run(traffic=...)."""
from __future__ import annotations

import ipaddress
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xdplab
from xdplab.traffic import (ETH_P_8021AD, ETH_P_8021Q, Flow, PcapError, Trace, Traffic, ipv4_checksum,
                            parse_frame, parse_pcap, read_pcap, rss_input, toeplitz_hash, udp_frame, write_pcap)

# Microsoft, "Verifying the RSS Hash Calculation": (source, source port, destination, destination
# port, IPv4/IPv6-only hash, with-TCP hash).  Typed in from the published table.
VECTORS = [
    ("66.9.149.187", 2794, "161.142.100.80", 1766, 0x323E8FC2, 0x51CCC178),
    ("199.92.111.2", 14230, "65.69.140.83", 4739, 0xD718262A, 0xC626B0EA),
    ("24.19.198.95", 12898, "12.22.207.184", 38024, 0xD2D0A5DE, 0x5C2B394A),
    ("38.27.205.30", 48228, "209.142.163.6", 2217, 0x82989176, 0xAFC7327F),
    ("153.39.163.191", 44251, "202.188.127.2", 1303, 0x5D1809C5, 0x10E828A2),
    ("3ffe:2501:200:1fff::7", 2794, "3ffe:2501:200:3::1", 1766, 0x2CC18CD5, 0x40207D3D),
    ("3ffe:501:8::260:97ff:fe40:efab", 14230, "ff02::1", 4739, 0x0F0C461C, 0xDDE51BBF),
    ("3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, "fe80::200:f8ff:fe21:67cf", 38024, 0x4B61E985, 0x02D1FEEF),
]


@pytest.mark.parametrize("src,sport,dst,dport,l3,l4", VECTORS)
def test_microsoft_rss_verification_vectors(src, sport, dst, dport, l3, l4):
    assert toeplitz_hash(rss_input(src, dst, "icmp")) == l3
    assert toeplitz_hash(rss_input(src, dst, "tcp", sport, dport)) == l4
    assert Flow(src, dst, "tcp", sport, dport).rss_hash() == l4
    assert Flow(src, dst, "icmp").rss_hash() == l3          # ICMP: L3 only


def test_toeplitz_is_linear_in_its_input():
    """Toeplitz is a GF(2)-linear map: h(a ^ b) == h(a) ^ h(b) (an independent property)."""
    rng = np.random.default_rng(1)
    for _ in range(50):
        a, b = rng.bytes(12), rng.bytes(12)
        assert toeplitz_hash(bytes(x ^ y for x, y in zip(a, b))) == toeplitz_hash(a) ^ toeplitz_hash(b)


def test_default_traffic_is_the_selftest_frame():
    assert Traffic.selftest().frames == (udp_frame(8080),)
    assert Traffic.selftest(9081).frames == (udp_frame(9081),)


flows_st = st.builds(
    Flow,
    src_ip=st.one_of(st.ip_addresses(v=4).map(str)),
    dst_ip=st.just("192.0.2.7"),
    proto=st.sampled_from(["udp", "tcp", "icmp"]),
    src_port=st.integers(0, 65535), dst_port=st.integers(0, 65535), payload_len=st.integers(0, 64),
    vlan=st.one_of(st.none(), st.tuples(st.sampled_from([ETH_P_8021Q, ETH_P_8021AD]), st.integers(0, 65535))))


@settings(max_examples=150, deadline=None)
@given(flows_st, st.booleans())
def test_parsing_a_frame_gives_its_flows_truth(flow, strip):
    assert parse_frame(flow.frame(), vlan_strip=strip) == flow.truth(vlan_strip=strip)


@settings(max_examples=100, deadline=None)
@given(flows_st)
def test_frames_are_well_formed(flow):
    f = flow.frame()
    off = 18 if flow.vlan else 14
    if flow.vlan:
        assert struct.unpack("!HH", f[12:16]) == flow.vlan
    assert int.from_bytes(f[off - 2:off], "big") == 0x0800
    assert ipv4_checksum(f[off:off + 20]) == 0                       # header checksum verifies
    assert int.from_bytes(f[off + 2:off + 4], "big") == len(f) - off   # total length
    assert ipaddress.ip_address(f[off + 12:off + 16]) == ipaddress.ip_address(flow.src_ip)
    assert len(flow.frame(tagged=False)) == len(f) - (4 if flow.vlan else 0)


def test_ipv6_frame_shape():
    f = Flow("2001:db8::1", "2001:db8::2", "udp", 5, 6, payload_len=10).frame()
    assert int.from_bytes(f[12:14], "big") == 0x86DD and f[14] >> 4 == 6
    assert int.from_bytes(f[18:20], "big") == 8 + 10 and f[20] == 17


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(0, 500), st.integers(0, 500), st.integers(0, 2**31))
def test_flow_of_a_packet_does_not_depend_on_the_chunk(n, a, b, seed):
    tr = Traffic.make(n, seed=seed)
    lo, hi = min(a, b), max(a, b)
    whole = tr.flow_index(0, 600)
    assert (tr.flow_index(lo, hi) == whole[lo:hi]).all()
    assert whole.min() >= 0 and whole.max() < n


def test_flows_are_spread_over_all_flows():
    idx = Traffic.make(8).flow_index(0, 8000)
    counts = np.bincount(idx, minlength=8)
    assert counts.min() > 800          # each near 1000


def test_pcap_round_trip(tmp_path):
    tr = Traffic.make(3, proto="tcp", vlan=(ETH_P_8021Q, 7))
    trace = Trace(10, start_ns=5 * 10**9 + 123, interval_ns=1001)
    p = tmp_path / "t.pcap"
    tr.to_pcap(p, trace)
    recs = read_pcap(p)
    assert [t for t, _ in recs] == trace.times()
    assert [f for _, f in recs] == [tr.frames[i] for i in tr.flow_index(0, 10)]
    back = Traffic.from_pcap(p)
    assert back.schedule == "replay" and back.truth[0] == tr.truth[int(tr.flow_index(0, 1)[0])]


def test_microsecond_big_endian_pcap_is_read():
    frame = udp_frame(1)
    data = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + struct.pack(">IIII", 3, 7, len(frame), len(frame)) + frame
    assert parse_pcap(data) == [(3 * 10**9 + 7000, frame)]


@pytest.mark.parametrize("cut", [0, 10, 24 + 8, 24 + 16 + 5])
def test_truncated_pcap_is_a_clear_error(tmp_path, cut):
    p = tmp_path / "a.pcap"
    write_pcap(p, [(1, udp_frame(1))])
    with pytest.raises(PcapError, match="pcap|record"):
        parse_pcap(p.read_bytes()[:cut] if cut else b"nope" * 8)


def test_bad_flows_are_refused():
    with pytest.raises(ValueError, match="proto"):
        Flow(proto="sctp")
    with pytest.raises(ValueError, match="mixed address families"):
        Flow("10.0.0.1", "::1")
    with pytest.raises(ValueError, match="vlan"):
        Flow(vlan=(0x800, 1))
    with pytest.raises(ValueError, match="traffic"):
        xdplab.Lab("ice").run(2, traffic=42)


def test_lab_default_traffic_unchanged_and_pcap_runs(tmp_path):
    lab = xdplab.Lab("ice")
    a = lab.run(20)
    b = lab.run(20, traffic=Traffic.selftest())
    assert a.drop(columns=[c for c in a.columns if c.startswith(("hw_rx", "meta_reason"))]).equals(
        b.drop(columns=[c for c in b.columns if c.startswith(("hw_rx", "meta_reason"))]))
    p = tmp_path / "x.pcap"
    Traffic.make(4, ipv6=True, proto="tcp").to_pcap(p, Trace(12))
    df = lab.run(12, traffic=str(p))
    assert (df.delivered_to == "af_xdp").all() and (df.rx_timestamp == df.hw_time_ns).all()


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_a_pcap_or_a_pcap_error(data):
    try:
        recs = parse_pcap(data)
    except PcapError:
        return
    assert all(isinstance(f, bytes) for _, f in recs)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**40), st.binary(min_size=14, max_size=100)), max_size=6))
def test_pcap_write_read_round_trip(tmp_path_factory, records):
    p = tmp_path_factory.mktemp("pcap") / "r.pcap"
    write_pcap(p, records)
    assert read_pcap(p) == records


def test_shaped_traffic_gives_the_same_rows_in_chunks_and_on_an_executor():
    from concurrent.futures import ThreadPoolExecutor
    tr = Traffic.make(7, proto="tcp", vlan=(ETH_P_8021Q, 4), seed=5)
    lab = xdplab.Lab("ice", ("rx_timestamp", "rx_hash", "rx_vlan_tag"), design="merged")
    whole = lab.run(900, traffic=tr)
    assert whole.equals(lab.run(900, traffic=tr, chunk=211))
    with ThreadPoolExecutor(2) as ex:
        assert whole.equals(lab.run(900, traffic=tr, chunk=300, executor=ex))
    with pytest.raises(ValueError, match="no such pcap file"):
        lab.run(3, traffic="does-not-exist.pcap")
