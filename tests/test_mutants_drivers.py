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


def test_the_bnxt_helper_reads_the_whole_u64_cyclecounter_mask():
    """struct cyclecounter's ``mask`` is a u64 (include/linux/timecounter.h@6.1.192:37) and
    timecounter_cyc2time masks with all of it (kernel/time/timecounter.c@6.1.192:79-98).  bnxt
    sets 48 bits (bnxt_ptp.c@6.1.192:850-852); here the PTP state holds a full 64-bit mask, so a
    helper that read fewer bytes would take the other branch.  By hand: old_time
    0x1234_0000_0000 and stamp 0x10 extend to ts = 0x1234_0000_0010 (bnxt_get_rx_ts_p5);
    cycle_last C = 2^60 + 5; delta = (ts - C) mod 2^64 > mask / 2, so the past branch:
    nsec - ((C - ts) & mask) with mult 1, shift 0, frac 0."""
    from tests.test_oracles import bnxt_completion, loaded_timestamp_program
    from xdplab.clocks import Timecounter
    from xdplab.drivers import bnxt
    k, call = loaded_timestamp_program(bnxt.Bnxt())
    hw = bnxt.BnxtRxHw(k.memory)
    ts, c, n = 0x1234_0000_0010, 2**60 + 5, 2**61
    hw.set_ptp(0x1234_0000_0000, Timecounter(mult=1, shift=0, mask=2**64 - 1, cycle_last=c, nsec=n))
    cmp, ext = bnxt_completion(0x10)
    assert call(hw.receive(0, cmp, ext)) == n - (c - ts)



@pytest.mark.parametrize("name", drivers.names())
def test_each_supported_query_the_driver_unrolls_answers_exactly_1(name):
    """RFC v2 unrolls ``*_supported`` to ``r0 = 1`` (04/14 veth, 10/14 ice:
    BPF_MOV64_IMM(BPF_REG_0, 1)), the C ``bool`` true; the generic default is ``r0 = 0``
    (02/14).  xdplab extends the pattern to rx_hash / rx_vlan_tag (MODEL, issue 16), so each
    query a driver answers must give exactly 1 (a program may store or compare the bool), and
    each it does not, exactly 0."""
    from xdplab.bpf import assemble, run_in
    from xdplab.kernel.kernel import Kernel
    from xdplab.kernel.kfuncs import RFC_V2
    from xdplab.kernel.uapi import BPF_F_XDP_HAS_METADATA
    k = Kernel(seed=0)
    dev = k.netns.add("eth0", drivers.get(name))
    wrapper = k.memory.new(dev.driver.wrapper, "wrapper").base
    answers = {}
    for spec in RFC_V2.specs:
        if not spec.enum.endswith("_SUPPORTED"):
            continue
        loaded = k.prog_load(assemble(f"call kfunc({spec.btf_id})\nexit"), prog_flags=BPF_F_XDP_HAS_METADATA,
                             prog_ifindex=dev.ifindex, variant="fixed")
        answers[spec.name] = run_in(loaded.xlated, k.memory.space, wrapper, env=loaded.env()).r0
    assert set(answers.values()) <= {0, 1}, answers
    assert answers["bpf_xdp_metadata_rx_timestamp_supported"] == 1      # every RFC v2 driver
