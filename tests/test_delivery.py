"""Metadata delivery: data_meta and adjust_meta, AF_XDP rings, export_to_skb and the skb import,
and Lab.run's one-row-per-packet contract."""
from __future__ import annotations


import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import xdplab
from xdplab.bpf import assemble
from xdplab.clocks import ClockEvent
from xdplab.drivers.veth import VETH_XDP_BUFF
from xdplab.kernel.af_xdp import Ring, XskSocket, xsk_consume
from xdplab.kernel.boot import Boot
from xdplab.kernel.kernel import Kernel
from xdplab.kernel.skb import Skb, skb_metadata_import_from_xdp, skb_metadata_set
from xdplab.kernel.structs import KernelMemory
from xdplab.kernel.uapi import EACCES, EINVAL, ENOTSUPP
from xdplab.kernel.xdp import XdpRxQueue
from xdplab.traffic import udp_frame

M64 = (1 << 64) - 1


# ------------------------------------------------------------------ bpf_xdp_adjust_meta
def _queue(meta_valid=True, meta_max=32):
    k = Kernel()
    loaded = k.prog_load(assemble("r6 = r1\nr2 = r7\ncall 54\nexit"))   # r7 set below via patch
    mem = KernelMemory()
    wrapper = mem.new(VETH_XDP_BUFF, "w", kind="wrapper")
    return XdpRxQueue(mem, loaded, wrapper, ifindex=2, meta_valid=meta_valid, meta_max=meta_max), k


@pytest.mark.parametrize("delta, meta_valid, expect", [
    (-8, True, 0), (-32, True, 0), (-36, True, -EACCES), (-6, True, -EACCES), (4, True, -EINVAL),
    (0, True, 0), (-8, False, -ENOTSUPP), (-(256 - 40) - 4, True, -EINVAL),
])
def test_adjust_meta_rules_and_error_codes(delta, meta_valid, expect):
    k = Kernel()
    loaded = k.prog_load(assemble(f"r2 = {delta}\ncall 54\nexit"))
    mem = KernelMemory()
    wrapper = mem.new(VETH_XDP_BUFF, "w", kind="wrapper")
    q = XdpRxQueue(mem, loaded, wrapper, ifindex=2, meta_valid=meta_valid)
    out = q.run(udp_frame(8080))
    assert out.adjust_meta == (expect,)
    assert out.run.r0 == expect & M64
    assert len(out.meta) == (-delta if expect == 0 else 0)


def test_meta_max_252_in_later_kernels():
    k = Kernel()
    loaded = k.prog_load(assemble("r2 = -200\ncall 54\nexit"))
    mem = KernelMemory()
    q = XdpRxQueue(mem, loaded, mem.new(VETH_XDP_BUFF, "w"), ifindex=2, meta_max=252)
    assert q.run(udp_frame(1)).adjust_meta == (0,)


# ------------------------------------------------------------------ AF_XDP rings
def test_ring_indices_wrap_around_u32_and_size():
    r = Ring(8, producer=(1 << 32) - 3, consumer=(1 << 32) - 3)
    for k in range(8):
        assert r.produce(k)
    assert not r.produce(99) and r.count() == 8 and r.producer == 5
    assert [r.consume() for _ in range(8)] == list(range(8)) and r.consume() is None
    with pytest.raises(ValueError, match="power of two"):
        Ring(6)


def test_xsk_consumer_reads_metadata_before_the_data_and_recycles_frames():
    sock = XskSocket.create(frames=16, ring_size=8)
    for k in range(100):                    # far more than frames and ring entries
        meta = k.to_bytes(8, "little")
        assert sock.receive(meta, b"packet%d" % k) is None
        got = xsk_consume(sock, 8)
        assert got.metadata == meta and got.data == b"packet%d" % k
    assert sock.rx.producer == 100 and sock.fill.count() == 8


def test_xsk_drops_when_the_rx_ring_is_full_or_the_fill_ring_empty():
    sock = XskSocket.create(frames=16, ring_size=4)
    results = [sock.receive(b"", b"x") for _ in range(6)]
    assert results[:4] == [None] * 4 and results[4] == "AF_XDP RX ring full"
    sock2 = XskSocket.create(frames=4, ring_size=8, fill_first=3)
    assert sock2.receive(b"", b"x") is None and sock2.receive(b"", b"y") == "AF_XDP fill ring empty"


# ------------------------------------------------------------------ skb import
BOOT = Boot.from_seed(5)


def _good_meta(ts=123):
    lay, out = BOOT.xdp_to_skb_metadata, bytearray(16)
    out[lay.offsetof("magic"):lay.offsetof("magic") + 4] = BOOT.xdp_metadata_magic.to_bytes(4, "little")
    out[lay.offsetof("rx_timestamp"):lay.offsetof("rx_timestamp") + 8] = ts.to_bytes(8, "little")
    return bytes(out)


def test_import_accepts_exactly_the_boot_struct():
    skb = skb_metadata_set(Skb(b"data"), _good_meta(77), BOOT)
    assert skb.hwtstamp == 77 and skb.data == b"data"
    assert skb_metadata_set(Skb(b"d"), _good_meta(0), BOOT).hwtstamp == 0
    other = Boot.from_seed(6)
    assert skb_metadata_set(Skb(b"d"), _good_meta(77), other).hwtstamp == 0     # another boot's magic


@settings(max_examples=500)
@given(st.binary(max_size=64), st.binary(max_size=32))
def test_fuzzed_metadata_is_never_imported_and_nothing_else_changes(meta, data):
    lay = BOOT.xdp_to_skb_metadata
    magic = int.from_bytes(meta[lay.offsetof("magic"):lay.offsetof("magic") + 4], "little")
    assume(not (len(meta) == 16 and magic == BOOT.xdp_metadata_magic))
    before = Skb(data, meta=meta, tstamp=5)
    after = skb_metadata_import_from_xdp(before, BOOT)
    assert after == before


def test_wrong_size_and_wrong_magic_are_ignored():
    good = _good_meta(9)
    for meta in (good + b"\0\0\0\0", good[:12], bytes(16), bytes(x ^ 1 for x in good[:8]) + good[8:]):
        skb = skb_metadata_set(Skb(b"p"), meta, BOOT)
        assert skb.hwtstamp == 0 and skb.meta == meta


# ------------------------------------------------------------------ Lab.run
COLUMNS = {"packet", "t_ns", "hw_time_ns", "rx_timestamp", "error_ns", "insns", "cost_ns", "action",
           "delivered_to", "meta_len", "reason"}


@pytest.mark.parametrize("driver", ["veth", "ice", "mlx4", "bnxt"])
@pytest.mark.parametrize("variant", ["fixed", "rfc-v2-posted"])
@pytest.mark.parametrize("path", ["af_xdp", "skb"])
def test_both_paths_for_every_driver_and_variant(driver, variant, path):
    lab = xdplab.Lab(driver, variant=variant)
    df = lab.run(120, path=path, assume_meta_support=True)
    assert COLUMNS <= set(df.columns) and len(df) == 120
    # no packet disappears silently: a timestamp, or a reason
    assert ((df.rx_timestamp != 0) | (df.reason != "")).all()
    if variant == "rfc-v2-posted" and driver == "ice":
        assert (df.delivered_to == "aborted").all()
        assert df.reason.str.contains("control leaves the program").all()
        return
    want = "af_xdp" if path == "af_xdp" else "stack"
    assert (df.delivered_to == want).all()
    assert (df.meta_len == (8 if path == "af_xdp" else 16)).all()
    if variant == "rfc-v2-posted" and driver == "bnxt":   # the program runs on a copy (13/14:70)
        assert (df.rx_timestamp == 0).all()
        assert df.reason.str.contains("by-value copy of the xdp_buff").all()
        return
    assert (df.rx_timestamp != 0).all() and (df.error_ns == 0).all()


@pytest.mark.parametrize("driver", ["mlx4", "bnxt"])
def test_without_metadata_support_mlx4_and_bnxt_deliver_nothing(driver):
    df = xdplab.Lab(driver).run(20)
    assert (df.delivered_to == "stack").all() and (df.rx_timestamp == 0).all()
    assert df.reason.str.contains("-ENOTSUPP").all()
    skb = xdplab.Lab(driver).run(20, path="skb")
    assert skb.reason.str.contains("export_to_skb wrote no metadata").all()


def test_merged_design_delivers_several_fields():
    df = xdplab.Lab("veth", fields=("rx_timestamp", "rx_hash"), design="merged").run(10)
    assert (df.meta_len == 16).all() and (df.delivered_to == "af_xdp").all()
    # veth's merged rx_timestamp is skb_hwtstamps (0 for a software veth): -> no stamp
    assert (df.rx_timestamp == 0).all() and df.reason.str.contains("no timestamp").all()


def test_btf_hints_design_delivers_the_driver_struct():
    df = xdplab.Lab("ice", design="btf-hints").run(20)
    assert (df.meta_len == 32).all() and (df.error_ns == 0).all()


def test_ice_stall_shows_the_2_pow_32_error_in_lab_run():
    sec = 1_000_000_000
    lab = xdplab.Lab("ice")
    df = lab.run(40, interval_ns=100_000_000, start_ns=2 * sec, stalls=((2 * sec + 1, 100 * sec),))
    late = df[df.t_ns - 2 * sec > 2_147_483_648]
    assert len(late) and (late.error_ns == -(1 << 32)).all()
    assert (df[df.t_ns - 2 * sec < 2_147_000_000].error_ns == 0).all()
    stepped = lab.run(20, interval_ns=100_000_000, clock_events=(ClockEvent(at_ns=2_550_000_000, step_ns=-5 * sec),))
    assert (stepped.error_ns == 0).all()


def test_bad_run_arguments():
    lab = xdplab.Lab("veth")
    with pytest.raises(ValueError, match="valid paths: af_xdp, skb"):
        lab.run(10, path="tc")
    with pytest.raises(ValueError, match="non-negative"):
        lab.run(-1)
    assert len(lab.run(0)) == 0


def test_cpumap_redirect_builds_an_skb_that_imports_the_metadata():
    """xdp_frame -> skb on the remote CPU: skb_metadata_set(skb, xdpf->metasize) -> import."""
    from xdplab.drivers.veth import VETH_XDP_BUFF, Veth
    from xdplab.kernel.kfuncs import RFC_V2
    from xdplab.kernel.maps import BPF_MAP_TYPE_CPUMAP
    from xdplab.kernel.structs import SK_BUFF
    from xdplab.kernel.uapi import BPF_F_XDP_HAS_METADATA
    from xdplab.kernel.xdp import deliver
    k = Kernel(seed=4)
    dev = k.netns.add("veth0", Veth())
    fd = k.map_create("cpus", BPF_MAP_TYPE_CPUMAP, 4, 4, 4)
    export = RFC_V2.by_name("bpf_xdp_metadata_export_to_skb").btf_id
    loaded = k.prog_load(assemble(f"r6 = r1\ncall kfunc({export})\nr1 = map_fd({fd}) ll\nr2 = 1\nr3 = 0\ncall 51\nexit"),
                         prog_flags=BPF_F_XDP_HAS_METADATA, prog_ifindex=dev.ifindex)
    mem = KernelMemory(next_addr=k.memory.next_addr + 0x10000)
    wrapper = mem.new(VETH_XDP_BUFF, "w", kind="wrapper")
    skb = mem.new(SK_BUFF, "skb", kind="skb")
    mem.write(skb, SK_BUFF, "tstamp", 424242)
    mem.write(wrapper, VETH_XDP_BUFF, "skb", skb.base)
    q = XdpRxQueue(mem, loaded, wrapper, ifindex=dev.ifindex, redirect_targets={k.maps[fd].map_id: {1: "cpu1"}})
    out = q.run(udp_frame(9081))
    assert out.action == "REDIRECT" and out.redirect == (BPF_MAP_TYPE_CPUMAP, 1)
    where, built, reason = deliver(out, xsks={}, boot=k.boot)
    assert where == "cpumap" and built.hwtstamp == 424242 and reason is None
    # an unregistered CPU: the map lookup fails, the low bits of flags are the action (0 = ABORTED)
    q2 = XdpRxQueue(mem, loaded, wrapper, ifindex=dev.ifindex)
    assert q2.run(udp_frame(9081)).action == "ABORTED"
