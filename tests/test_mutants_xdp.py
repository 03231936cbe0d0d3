"""Tests written for the mutants of xdplab/kernel/xdp.py and xdplab/kernel/skb.py that survived
`make mutate` (benchmarks/results/mutation.json): the largest packet a frame holds, metadata a
driver writes in front of the packet, and the skb's immutability.

A frame of frame_sz bytes holds XDP_PACKET_HEADROOM (256: include/uapi/linux/bpf.h@6.1.192:6082)
in front of the packet and, at its end, the skb_shared_info: xdp_data_hard_end() is
data_hard_start + frame_sz - SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
(include/net/xdp.h@6.1.192:144-146), 320 bytes on x86-64 (kernel-facts §2).  For a 4096-byte
page: at most 4096 - 256 - 320 = 3520 bytes of packet.
"""
from __future__ import annotations

import dataclasses

import pytest

from xdplab.bpf import assemble
from xdplab.drivers.veth import VETH_XDP_BUFF
from xdplab.kernel.kernel import Kernel
from xdplab.kernel.skb import Skb
from xdplab.kernel.structs import KernelMemory
from xdplab.kernel.xdp import XdpRxQueue

XDP_PASS = 2                     # include/uapi/linux/bpf.h@6.1.192:6092 (enum xdp_action)


def _queue() -> XdpRxQueue:
    loaded = Kernel().prog_load(assemble(f"r0 = {XDP_PASS}\nexit"))
    mem = KernelMemory()
    return XdpRxQueue(mem, loaded, mem.new(VETH_XDP_BUFF, "w", kind="wrapper"), ifindex=2)


def test_the_largest_packet_a_page_frame_holds_is_3520_bytes():
    q = _queue()
    out = q.run(bytes(range(256)) * 13 + bytes(3520 - 13 * 256))
    assert out.action == "PASS" and len(out.data) == 3520
    for too_long in (3521, 3600):
        with pytest.raises(ValueError, match=f"packet of {too_long} bytes"):
            q.run(bytes(too_long))


@pytest.mark.parametrize("meta_len", [4, 32, 100])
def test_driver_metadata_sits_right_in_front_of_the_packet(meta_len):
    """data_meta = data - len(meta), the bytes in between are the driver's, and the packet is
    untouched (xdp_prepare_buff puts data at hard_start + 256; the driver writes below it)."""
    q = _queue()
    packet = bytes(range(1, 65))
    meta = bytes((0xA0 + i) & 0xFF for i in range(meta_len))
    out = q.run(packet, driver_metadata=meta)
    assert out.action == "PASS"
    assert out.meta == meta
    assert out.data == packet


def test_an_skb_cannot_be_changed_in_place():
    """skb_metadata_import_from_xdp returns the skb with hwtstamp set and changes nothing else
    (RFC v2 06/14); the simulation guarantees that by making Skb immutable."""
    skb = Skb(data=b"x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        skb.hwtstamp = 5            # type: ignore[misc]
    assert skb.hwtstamp == 0


def test_a_new_skb_carries_no_timestamps():
    """A new sk_buff is zeroed up to `tail` (__build_skb, net/core/skbuff.c@6.1.192:326;
    __alloc_skb, :529) and its skb_shared_info up to `dataref` (:293), so skb->tstamp and skb_hwtstamps(skb)->hwtstamp
    start at 0: an skb the import leaves alone reports no timestamp."""
    skb = Skb(data=b"\x00" * 14)
    assert (skb.tstamp, skb.hwtstamp, skb.meta) == (0, 0, b"")


def test_the_import_needs_exactly_one_xdp_to_skb_metadata():
    """skb_metadata_import_from_xdp returns unless len == sizeof(struct xdp_to_skb_metadata)
    exactly, then unless the magic matches (RFC v2 06/14,
    06-xdp-carry-over-xdp-metadata-into-skb-context.patch:232-236).  The rule on ints and arrays."""
    import numpy as np
    from xdplab.kernel.boot import Boot
    from xdplab.kernel.skb import imported_hwtstamp

    boot = Boot.from_seed(5)
    size, magic = boot.xdp_to_skb_metadata.size, boot.xdp_metadata_magic
    assert int(imported_hwtstamp(size, magic, 1234, boot)) == 1234
    for bad_len in (size - 1, size + 1, size + 8, 2 * size, 0):
        assert int(imported_hwtstamp(bad_len, magic, 1234, boot)) == 0, bad_len
    assert int(imported_hwtstamp(size, magic ^ 2, 1234, boot)) == 0
    got = imported_hwtstamp(np.array([size, size + 4, size - 4, size]),
                            np.array([magic, magic, magic, magic + 2]), np.array([7, 8, 9, 10]), boot)
    assert got.tolist() == [7, 0, 0, 0]


@pytest.mark.parametrize("metalen,expect", [(1, -13), (2, -13), (3, -13), (4, 0), (5, -13), (6, -13),
                                            (8, 0), (30, -13), (32, 0), (36, -13)])
def test_adjust_meta_length_must_be_a_multiple_of_4_and_at_most_32(metalen, expect):
    """xdp_metalen_invalid (include/net/xdp.h@6.1.192:401-404): ``metalen & (sizeof(__u32) - 1)``
    or ``metalen > 32`` -> -EACCES (13, errno-base.h), checked after the range
    (net/core/filter.c@6.1.192:4220-4236).  data 256 bytes above data_hard_start, so the
    new data_meta stays above hard_start + sizeof(struct xdp_frame) (40) for every length here."""
    import numpy as np

    from xdplab.kernel.xdp import adjust_meta_result
    hard, data = 0x1000, 0x1100
    ret, meta = adjust_meta_result(data, data, hard, -metalen, 32)
    assert int(ret) == expect and meta == data - metalen
    # the same rule on arrays (the lane engine's entry)
    rets, metas = adjust_meta_result(np.array([data] * 2), np.array([data] * 2), np.array([hard] * 2),
                                     np.array([-metalen, -4]), 32)
    assert rets.tolist() == [expect, 0] and metas.tolist() == [data - metalen, data - 4]


@pytest.mark.parametrize("build_seed", range(6))
def test_the_import_reads_a_u32_magic_whatever_the_padding_holds(build_seed):
    """struct xdp_to_skb_metadata (06/14) is { u32 magic; u64 rx_timestamp; } (16 bytes with
    4 of padding, which export never writes: the data_meta area keeps whatever was there).
    skb_metadata_import_from_xdp compares the u32 ``magic`` only (06/14:222-243), so garbage
    in the padding, before or after the magic depending on the build's randstruct order, must
    not matter.  By hand: the stamp 0x1122334455667788 lands in skb->hwtstamp."""
    from xdplab.kernel.boot import Boot, KernelBuild
    from xdplab.kernel.skb import skb_metadata_set
    boot = Boot.of(KernelBuild(seed=build_seed), boot_seed=3)
    lay = boot.xdp_to_skb_metadata
    meta = bytearray(b"\xAA" * 16)                      # the padding: garbage
    meta[lay.offsetof("magic"):lay.offsetof("magic") + 4] = boot.xdp_metadata_magic.to_bytes(4, "little")
    meta[lay.offsetof("rx_timestamp"):lay.offsetof("rx_timestamp") + 8] = (0x1122334455667788).to_bytes(8, "little")
    assert skb_metadata_set(Skb(b"\x00" * 64), bytes(meta), boot).hwtstamp == 0x1122334455667788


@pytest.mark.parametrize("action,where", [(1, "dropped"), (3, "tx"), (2, "stack"), (0, "aborted"), (9, "aborted")])
def test_each_xdp_action_is_delivered_where_the_kernel_sends_it(action, where):
    """enum xdp_action (include/uapi/linux/bpf.h@6.1.192: ABORTED 0, DROP 1, PASS 2, TX 3,
    REDIRECT 4): DROP frees the frame, TX sends it back out, PASS builds an skb, ABORTED and
    an unknown action (bpf_warn_invalid_xdp_action) take the exception path.  Both engines."""
    import xdplab
    lab = xdplab.Lab("veth", program=assemble(f"r0 = {action}\nexit"))
    for engine in ("scalar", "batch"):
        df = lab.run(3, engine=engine)
        assert df.delivered_to.astype(str).tolist() == [where] * 3, engine
