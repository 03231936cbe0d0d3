"""Tests written for the mutants of xdplab/drivers/ that survived `make mutate`
(benchmarks/results/mutation.json)."""
from __future__ import annotations

import pytest

import xdplab.drivers as drivers
from xdplab.kernel.driver import RxSettings


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


# The release each driver's xdp_metadata_ops first had each op, from kernel-facts-fields.md:
# veth §2.5 ("ts and hash in 6.3 ... vlan in 6.8"), mlx4 §2.2 (ab46182d0dcb, 6.3: timestamp and
# hash), mlx5 §2.3 (bc8d405b1ba9, 6.3; vlan 6.8), ice §2.1 (Larysa Zaremba's v8 series, 6.8),
# bnxt §2.4 (rx_hash only; first seen in 7.2, the release UNCONFIRMED: modelled as 7.2).
OPS_SINCE = {
    "veth": {"rx_timestamp": (6, 3), "rx_hash": (6, 3), "rx_vlan_tag": (6, 8)},
    "mlx4": {"rx_timestamp": (6, 3), "rx_hash": (6, 3)},
    "mlx5": {"rx_timestamp": (6, 3), "rx_hash": (6, 3), "rx_vlan_tag": (6, 8)},
    "ice": {"rx_timestamp": (6, 8), "rx_hash": (6, 8), "rx_vlan_tag": (6, 8)},
    "bnxt": {"rx_hash": (7, 2)},
}


@pytest.mark.parametrize("name", sorted(OPS_SINCE))
def test_each_merged_op_appears_in_its_release(name):
    """Asked release by release, the merged design offers a driver's op from the release in
    which it was merged, and not the one before."""
    from xdplab.kernel.kfuncs import MERGED
    for release in [(6, 2), (6, 3), (6, 7), (6, 8), (7, 1), (7, 2), (7, 3)]:
        drv = drivers.get(name)
        drv.kernel = release
        offered = {s.field for s in MERGED.specs if drv.kfunc_routine(s) is not None}
        assert offered == {f for f, since in OPS_SINCE[name].items() if release >= since}, release


def test_veth_clears_the_whole_tci_when_there_is_no_tag():
    """__vlan_hwaccel_get_tag (include/linux/if_vlan.h@6.1.192:579-589) sets ``*vlan_tci = 0``
    (a u16) and returns -ENODATA when the skb has no hw-accel tag: both bytes of a TCI the
    program pre-filled with 0xFFFF are cleared."""
    from xdplab.bpf import assemble, run_in
    from xdplab.kernel.kernel import Kernel
    from xdplab.kernel.kfuncs import MERGED
    from xdplab.kernel.uapi import BPF_F_XDP_HAS_METADATA
    k = Kernel(seed=0)
    drv = drivers.get("veth")
    dev = k.netns.add("eth0", drv)
    vlan = MERGED.by_name("bpf_xdp_metadata_rx_vlan_tag").btf_id
    prog = assemble(f"r6 = 0xffff\n*(u16 *)(r10 - 2) = r6\n*(u16 *)(r10 - 4) = r6\n"
                    f"r2 = r10\nr2 += -4\nr3 = r10\nr3 += -2\ncall kfunc({vlan})\n"
                    f"r1 = *(u16 *)(r10 - 2)\nr0 <<= 32\nr0 |= r1\nexit")
    loaded = k.prog_load(prog, prog_flags=BPF_F_XDP_HAS_METADATA, prog_ifindex=dev.ifindex, design="merged")
    rx = drv.rx_path(k.memory, RxSettings())
    rx.receive(0, 10**9, 64)                     # an untagged frame on the skb path
    r0 = run_in(loaded.xlated, k.memory.space, rx.wrapper.base, env=loaded.env()).r0
    assert r0 >> 32 == (-61) & 0xFFFFFFFF and r0 & 0xFFFF_FFFF == 0


def test_bnxt_phc_time_is_48_bits():
    """bnxt's PHC counts 48 bits of ns (bnxt_ptp.c@6.1.192:850-852: cc.mask =
    CYCLECOUNTER_MASK(48); BNXT_HI_TIMER_MASK, bnxt_ptp.h@6.1.192:21): 2^47 + 5 is kept whole,
    2^48 + 5 wraps to 5."""
    from xdplab.drivers.bnxt import BnxtClock
    assert BnxtClock.default(offset_ns=2**47 + 5).hw_time_ns(0) == 2**47 + 5
    assert BnxtClock.default(offset_ns=2**48 + 5).hw_time_ns(0) == 5


@pytest.mark.parametrize("pad", [0, 64, 128, 192, 448])
def test_the_bnxt_helper_finds_the_ptp_fields_wherever_the_struct_sits(pad):
    """The helper reads bp->ptp_cfg's fields at base + offset (the offsets gcc gives struct
    bnxt_ptp_cfg, data/kernel-layouts.json) whatever the struct's address: a 64-byte-aligned
    allocation (kmalloc's minimum) lands at a different base for each padding allocated
    before it.  Vector by hand (tests/test_oracles.py): old_time 0x1234_5678_9ABC, stamp
    0x9ABC_DEF0 -> cycles 0x1234_9ABC_DEF0; cycle_last C, nsec N, mult 1: N + (ts - C)."""
    from tests.test_oracles import bnxt_completion, loaded_timestamp_program
    from xdplab.clocks import Timecounter
    from xdplab.drivers import bnxt
    k, call = loaded_timestamp_program(bnxt.Bnxt())
    if pad:
        k.memory.alloc("padding", pad)
    hw = bnxt.BnxtRxHw(k.memory)
    c, n = 0x1234_0000_0000, 5 * 10**18
    hw.set_ptp(0x1234_5678_9ABC, Timecounter(mult=1, shift=0, mask=2**48 - 1, cycle_last=c, nsec=n))
    cmp, ext = bnxt_completion(0x9ABC_DEF0)
    assert call(hw.receive(0, cmp, ext)) == n + 0x9ABC_DEF0


def test_mlx4_counts_48_bits_of_cycles():
    """mlx4's free-running counter is 48 bits wide (en_clock.c@6.1.192:279: mdev->cycles.mask =
    CLOCKSOURCE_MASK(48); the CQE carries hi 32 + lo 16 bits): starting at 2^47 + 5 cycles it
    reads 2^47 + 5 at t = 0, and it wraps at 2^48."""
    from xdplab.drivers.mlx4 import Mlx4Clock
    assert Mlx4Clock.default(cycles0=2**47 + 5).cycles(0) == 2**47 + 5
    assert Mlx4Clock.default(cycles0=2**48 - 1).cycles(0) == 2**48 - 1
    import numpy as np
    assert Mlx4Clock.default(cycles0=2**48 + 5).cycles(np.array([0], np.int64)).tolist() == [5]


def test_mlx5_counts_41_bits_of_cycles():
    """mlx5's free-running counter is 41 bits wide (lib/clock.c@6.1.192:882: cycles.mask =
    CLOCKSOURCE_MASK(41)): 2^41 - 1 is kept, 2^41 + 5 wraps to 5."""
    import numpy as np

    from xdplab.clocks import Phc
    from xdplab.drivers.mlx5 import Mlx5Clock
    assert Mlx5Clock(False, Phc(), cycles0=2**41 - 1).cycles(0) == 2**41 - 1
    assert Mlx5Clock(False, Phc(), cycles0=2**41 + 5).cycles(np.array([0], np.int64)).tolist() == [5]


@pytest.mark.parametrize("rq,cqe", [(True, False), (False, True), (False, False)])
def test_mlx5_timestamp_without_rq_or_cqe_is_enodata(rq, cqe):
    """MODEL: the wrapper's rq and cqe are always set on the kernel's RX path; xdplab answers a
    NULL one (either) with -ENODATA (61) rather than dereferencing it."""
    from xdplab.bpf.machine import CallContext, Machine
    from xdplab.bpf import assemble, Env
    from xdplab.drivers import mlx5
    from xdplab.kernel.kernel import Kernel
    k = Kernel(seed=0)
    rx = drivers.get("mlx5").rx_path(k.memory, RxSettings())
    rx.receive(0, 10**9, 64)
    w = rx.wrapper.base
    region = k.memory.space.find(w, 8)
    for name, keep in (("rq", rq), ("cqe", cqe)):
        if not keep:
            at = w - region.base + mlx5.MLX5E_XDP_BUFF.offsetof(name)
            region.data[at:at + 8] = bytes(8)
    out = k.memory.alloc("out", 8)
    ctx = CallContext(Machine(assemble("exit"), k.memory.space, Env(), 10), 0)
    assert mlx5._xmo_rx_timestamp(ctx, w, out.base, 0, 0, 0) == (-61) & (2**64 - 1)


def test_veth_rx_hash_writes_exactly_the_u32_rss_type():
    """``enum xdp_rss_hash_type *rss_type`` is 4 bytes (net/core/xdp.c's kfunc signature,
    6.3+): the op must not touch the stack byte right after it.  The program fills that
    byte with 0xFF, calls rx_hash, and returns PASS (2) if it is still 0xFF, DROP (1) if not;
    both engines."""
    import xdplab
    from xdplab.bpf import assemble
    from xdplab.kernel.kfuncs import MERGED
    h = MERGED.by_name("bpf_xdp_metadata_rx_hash").btf_id
    prog = assemble(f"r6 = -1\n*(u64 *)(r10 - 8) = r6\n*(u64 *)(r10 - 16) = r6\n"
                    f"r2 = r10\nr2 += -16\nr3 = r10\nr3 += -8\ncall kfunc({h})\n"
                    f"r1 = *(u8 *)(r10 - 4)\nr0 = 1\nif r1 != 0xff goto +1\nr0 = 2\nexit")
    lab = xdplab.Lab("veth", ("rx_hash",), design="merged", program=prog)
    for engine in ("scalar", "batch"):
        df = lab.run(4, engine=engine, path="skb")
        assert df.action.astype(str).tolist() == ["PASS"] * 4, engine
