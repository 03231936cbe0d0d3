"""ice, mlx4, bnxt: the BPF result (unrolled or called) equals the Python reference of the
driver's C routine, bit for bit, over >= 10^4 random descriptors and clock states per driver
and variant; the posted variant differs exactly by its recorded defects."""
from __future__ import annotations

import random

import pytest

from xdplab import drivers
from xdplab.bpf import BpfError, BpfExecuteError, assemble, run_in
from xdplab.clocks import Timecounter, clocksource_khz2mult, mlx4_freq_to_shift
from xdplab.drivers import bnxt, ice, mlx4
from xdplab.kernel.kernel import Kernel
from xdplab.kernel.kfuncs import RFC_V2
from xdplab.kernel.uapi import BPF_F_XDP_HAS_METADATA

N = 10_000
M32, M64, M48 = (1 << 32) - 1, (1 << 64) - 1, (1 << 48) - 1
TS = RFC_V2.by_name("bpf_xdp_metadata_rx_timestamp").btf_id


def unrolled(driver, variant="fixed"):
    k = Kernel(seed=0)
    dev = k.netns.add("eth0", driver)
    loaded = k.prog_load(assemble(f"call kfunc({TS})\nexit"), prog_flags=BPF_F_XDP_HAS_METADATA,
                         prog_ifindex=dev.ifindex, variant=variant)
    env = loaded.env()

    def call(wrapper: int) -> int:
        return run_in(loaded.xlated, k.memory.space, wrapper, env=env, verified=variant == "fixed").r0
    return k, loaded, call


def outcome(call, wrapper):
    try:
        return call(wrapper)
    except BpfExecuteError as exc:
        return exc


# ------------------------------------------------------------------------------------ ice
def ice_cases(seed: int, n: int):
    rng = random.Random(seed)
    edges = [0, 1, 0x7FFFFFFE, 0x7FFFFFFF, 0x80000000, 0x80000001, M32]
    for i in range(n):
        cached = rng.choice([rng.getrandbits(64), rng.getrandbits(40), M64 - rng.getrandbits(31),
                             rng.getrandbits(31), (rng.getrandbits(32) << 32) | (M32 - rng.getrandbits(8))])
        if i % 97 == 0:
            cached = 0
        delta = edges[i % len(edges)] if i % 3 == 0 else rng.getrandbits(32)
        in_ts = ((cached & M32) + delta) & M32
        desc = ice.RxDescriptor(pkt_len=64, phc_ns=in_ts, valid=rng.random() > 0.1, subns=rng.getrandbits(7))
        yield i, cached, desc.encode()


def test_ice_unroll_equals_ice_ptp_rx_hwtstamp():
    k, loaded, call = unrolled(ice.Ice())
    report = loaded.patches[0]
    assert len(report.insns) == 20 and report.magles_registers & ~0b111101 == 0   # R0, R2-R5 only
    assert not any(i.dst == 10 or i.src == 10 for i in report.insns)
    hw = ice.IceRxHw(k.memory, ring_size=64)
    for i, cached, desc in ice_cases(1, N):
        wrapper = hw.receive(i, desc, cached)
        assert call(wrapper) == ice.ice_ptp_rx_hwtstamp(cached, desc), (i, hex(cached), desc.hex())


def _only(defect):
    return ice.Ice(defects=(defect,))


def test_ice_posted_inverted_guards_give_0_instead_of_a_timestamp():
    k, _, call = unrolled(_only("inverted_guards"), "rfc-v2-posted")
    hw = ice.IceRxHw(k.memory)
    for i, cached, desc in ice_cases(2, N // 4):
        assert call(hw.receive(i, desc, cached)) == 0


def test_ice_posted_alu32_keeps_only_the_low_32_bits():
    k, _, call = unrolled(_only("alu32_result"), "rfc-v2-posted")
    hw = ice.IceRxHw(k.memory)
    for i, cached, desc in ice_cases(3, N // 4):
        expect = ice.ice_ptp_rx_hwtstamp(cached, desc)
        got = call(hw.receive(i, desc, cached))
        assert got == expect & M32
        if expect:
            assert got == int.from_bytes(desc[28:32], "little")   # effectively in_tstamp


def test_ice_posted_wide_loads_read_past_the_ring_only_without_page_slack():
    """The load at +28 reads 4 bytes past the descriptor.  ice_setup_rx_ring rounds the ring's
    DMA allocation up to a page (ice_txrx.c@6.1.192:496-499): 64 entries (2 KiB) leave 2 KiB of
    slack, so even the last entry's load stays inside and keeps its low 32 bits (the right
    stamp); 128 entries fill the page exactly, and the last entry's load leaves the ring."""
    k, _, call = unrolled(_only("wide_loads"), "rfc-v2-posted")
    hw = ice.IceRxHw(k.memory, ring_size=64)
    assert len(hw.ring.data) == 4096
    for i, cached, desc in ice_cases(4, N // 4):
        slot = 63 if i % 3 == 0 else i % 64     # the last descriptor often
        assert call(hw.receive(slot, desc, cached)) == ice.ice_ptp_rx_hwtstamp(cached, desc)
    full = ice.IceRxHw(k.memory, ring_size=128)
    assert len(full.ring.data) == 128 * 32
    valid = ice.RxDescriptor(64, 12345).encode()
    assert call(full.receive(126, valid, 1 << 40)) == ice.ice_ptp_rx_hwtstamp(1 << 40, valid)
    with pytest.raises(BpfExecuteError) as info:
        call(full.receive(127, valid, 1 << 40))   # the last entry: 4 bytes past the ring
    assert str(info.value) == "insn 9: 8-byte read at r4+28 is outside ice descriptor ring (4096 bytes)"


def test_ice_posted_unresolved_jumps_leave_the_program():
    """Only the three guards keep S16_MAX (10/14:94,100,112); the final BPF_JMP_A(4) (:132)
    lands at the end.  So both the future and the past path deliver the stamp, and exactly
    the packets that take a guard (no cache, no valid bit) jump 32,768 instructions ahead."""
    k, loaded, call = unrolled(_only("unresolved_jumps"), "rfc-v2-posted")
    assert sum("S16_MAX placeholder" in line for line in loaded.log) == 3
    hw = ice.IceRxHw(k.memory)
    seen = {"future": 0, "past": 0, "crash": 0}
    for i, cached, desc in ice_cases(5, N // 4):
        in_ts = int.from_bytes(desc[28:32], "little")
        guard = cached == 0 or not desc[19] & ice.ICE_PTP_TS_VALID
        got = outcome(call, hw.receive(i, desc, cached))
        if guard:
            assert isinstance(got, BpfExecuteError) and "control leaves the program" in str(got)
            seen["crash"] += 1
        else:
            assert got == ice.ice_ptp_rx_hwtstamp(cached, desc)
            seen["past" if ((in_ts - cached) & M32) > 0x7FFFFFFF else "future"] += 1
    assert min(seen.values()) > 50, seen


def test_posted_ice_listing_is_the_patch():
    """10/14 as posted, instruction by instruction: three S16_MAX guards, then goto +4."""
    from xdplab.bpf import disassemble
    from xdplab.bpf.insn import Program
    text = disassemble(Program(ice.unroll_listing(ice.DEFECTS))).splitlines()
    assert [line for line in text if "goto" in line] == [
        "if r5 != 0 goto +32767", "if r5 != 0 goto +32767", "if r3 != 0 goto +32767",
        "if r4 > 2147483647 goto +3", "goto +4"]
    assert text[13:15] == ["r0 = r4", "w0 += w5"] and text[16] == "r4 = r5" and len(text) == 20


def test_ice_posted_as_a_whole_crashes_at_the_first_guard():
    k, loaded, call = unrolled(ice.Ice(), "rfc-v2-posted")
    assert any("S16_MAX placeholder" in line for line in loaded.log)
    hw = ice.IceRxHw(k.memory)
    for i, cached, desc in ice_cases(6, N):
        got = outcome(call, hw.receive(i, desc, cached))
        assert isinstance(got, BpfExecuteError) and got.index == 2
        assert "jump to insn 32770" in str(got)


def test_ice_window_is_plus_minus_2_pow_31_around_the_cache():
    k, _, call = unrolled(ice.Ice())
    hw = ice.IceRxHw(k.memory)
    cached = 1_700_000_000_000_000_000
    for d, error in [(0, 0), (2**31 - 1, 0), (-(2**31), 0), (2**31, -(2**32)), (-(2**31) - 1, 2**32),
                     (5 * 2**30, -(2**32))]:
        true = cached + d
        got = call(hw.receive(0, ice.RxDescriptor(64, true).encode(), cached))
        assert got - true == error, d


# ----------------------------------------------------------------------------------- mlx4
MULT427 = clocksource_khz2mult(427_000, mlx4_freq_to_shift(427))


def mlx4_cases(seed: int, n: int):
    rng = random.Random(seed)
    for i in range(n):
        tc = Timecounter(MULT427, 30, M48, cycle_last=rng.getrandbits(48), nsec=rng.getrandbits(64),
                         frac=rng.getrandbits(30))
        kind = i % 5
        if kind == 0:
            cycles = rng.getrandbits(48)
        elif kind == 1:
            cycles = (tc.cycle_last + rng.randint(-5 * 427_000_000, 5 * 427_000_000)) & M48
        elif kind == 2:
            cycles = (tc.cycle_last + (1 << 47) + rng.randint(-2, 2)) & M48   # past/future edge
        elif kind == 3:
            cycles = rng.getrandbits(48) & ~0xFFFF                             # lo == 0: +1 carry
        else:
            cycles = (tc.cycle_last - rng.getrandbits(20)) & M48               # just in the past
        yield i, tc, (mlx4.make_cqe(cycles) if rng.random() > 0.05 else None)


@pytest.mark.parametrize("variant", ["fixed", "rfc-v2-posted"])
def test_mlx4_call_equals_the_c_path(variant):
    k, loaded, call = unrolled(mlx4.Mlx4(), variant)
    assert [i.opcode for i in loaded.patches[0].insns] == [0x85, 0xBF, 0x79]   # preserving_r1
    hw = mlx4.Mlx4RxHw(k.memory)
    previous = None
    for i, tc, cqe in mlx4_cases(7, N):
        hw.set_clock(tc)
        wrapper = hw.receive(i, cqe, zero_wrapper=variant == "fixed")
        got = outcome(call, wrapper)
        if cqe is not None:
            expect = mlx4.mlx4_en_get_hwtstamp(tc, mlx4.get_cqe_ts(cqe))
        elif variant == "fixed":
            expect = 0
        elif previous is None:
            assert isinstance(got, BpfExecuteError)       # NULL cqe dereferenced
            continue
        else:   # posted: the stale cqe pointer still points at the previous packet's CQE
            expect = mlx4.mlx4_en_get_hwtstamp(tc, mlx4.get_cqe_ts(previous))
        assert got == expect, i
        if cqe is not None:
            previous = cqe


def test_mlx4_get_cqe_ts_layout_and_carry():
    cqe = bytearray(32)
    cqe[12:16] = bytes.fromhex("01020304")
    cqe[29:31] = bytes.fromhex("0506")
    assert mlx4.get_cqe_ts(bytes(cqe)) == 0x010203040506
    cqe[29:31] = b"\0\0"
    assert mlx4.get_cqe_ts(bytes(cqe)) == 0x010203050000      # hi + 1 when lo == 0


def test_mlx4_poisoned_registers_after_the_call():
    """R2-R5 hold poison after the helper; R1 is restored from R0 by the idiom."""
    k, loaded, _ = unrolled(mlx4.Mlx4())
    prog = loaded.xlated[:-1] + assemble("r0 = r2\nexit")
    hw = mlx4.Mlx4RxHw(k.memory)
    hw.set_clock(Timecounter(MULT427, 30, M48))
    r0 = run_in(prog, k.memory.space, hw.receive(0, mlx4.make_cqe(5)), env=loaded.env()).r0
    assert r0 >> 32 == 0xDEADBEEF


def test_mlx4_seqlock_writer_is_a_clear_error():
    k, _, call = unrolled(mlx4.Mlx4())
    hw = mlx4.Mlx4RxHw(k.memory)
    hw.set_clock(Timecounter(MULT427, 30, M48), seq=3)
    with pytest.raises(BpfExecuteError, match="SeqlockBusy"):
        call(hw.receive(0, mlx4.make_cqe(5)))


# ----------------------------------------------------------------------------------- bnxt
def bnxt_cases(seed: int, n: int):
    rng = random.Random(seed)
    for i in range(n):
        old = rng.getrandbits(48)
        tc = Timecounter(1, 0, M48, cycle_last=rng.getrandbits(48), nsec=rng.getrandbits(64))
        kind = i % 4
        if kind == 0:
            phc = old + rng.randrange(1 << 32)
        elif kind == 1:
            phc = old - rng.randrange(1, 1 << 31)          # older than old_time
        elif kind == 2:
            phc = old + (1 << 32) + rng.randrange(1 << 31)  # aux work stalled
        else:
            phc = (old & ~M32) + M32 - rng.randrange(16)    # around the 32-bit wrap
        ptp = rng.random() > 0.05
        yield i, old, tc, phc & M48, ptp


def test_bnxt_call_equals_the_c_path():
    k, _, call = unrolled(bnxt.Bnxt(), "fixed")
    hw = bnxt.BnxtRxHw(k.memory)
    for i, old, tc, phc, ptp in bnxt_cases(8, N):
        hw.set_ptp(old, tc)
        cmp, ext = bnxt.make_completion(phc, ptp=ptp)
        got = call(hw.receive(i, cmp, ext))
        assert got == (bnxt.bnxt_rx_timestamp(old, tc, ext) if ptp else 0), i


def test_posted_bnxt_runs_on_a_copy_and_reads_the_stack_past_it():
    """13/14:70 passes bxbuf.xdp by value: the helper reads rxcmp1/bp from the 24 bytes after
    the 56-byte copy.  Zero there (the default MODEL): no timestamp for any packet, even a PTP
    one.  A non-NULL garbage rxcmp1 there: the helper dereferences it and the kernel faults."""
    k, _, call = unrolled(bnxt.Bnxt(), "rfc-v2-posted")
    hw = bnxt.BnxtRxHw(k.memory)
    tail = bnxt.Bnxt().ctx_tail("rfc-v2-posted")
    assert tail == bytes(24) and bnxt.Bnxt().ctx_tail("fixed") is None
    for i, old, tc, phc, ptp in bnxt_cases(9, 200):
        hw.set_ptp(old, tc)
        cmp, ext = bnxt.make_completion(phc, ptp=ptp)
        assert call(hw.receive(i, cmp, ext, copy_tail=tail)) == 0, i
    garbage = (0xFFFF_8880_DEAD_0000).to_bytes(8, "little") + bytes(16)
    k2, _, call2 = unrolled(bnxt.Bnxt(copy_tail=garbage), "rfc-v2-posted")
    hw2 = bnxt.BnxtRxHw(k2.memory)
    cmp, ext = bnxt.make_completion(123, ptp=True)
    with pytest.raises(BpfError):
        call2(hw2.receive(0, cmp, ext, copy_tail=garbage))


def test_bnxt_window_is_forward_only_2_pow_32_from_old_time():
    k, _, call = unrolled(bnxt.Bnxt())
    hw = bnxt.BnxtRxHw(k.memory)
    old = 0x1234_5678_9ABC
    tc = bnxt.bnxt_timecounter(start_ns=old, cycles_now=old)   # identity conversion
    hw.set_ptp(old, tc)
    for d, error in [(0, 0), (2**32 - 1, 0), (-1, 2**32), (-(2**31), 2**32), (2**32, -(2**32)),
                     (2**32 + 5, -(2**32))]:
        cmp, ext = bnxt.make_completion(old + d)
        assert call(hw.receive(0, cmp, ext)) - (old + d) == error, d
    assert bnxt.get_rx_ts_p5(0xAAAA_0000_0010, 0x0000_0005) == 0xAAAB_0000_0005


def test_driver_names_and_unknown_defect():
    assert set(drivers.names()) == {"veth", "ice", "mlx4", "bnxt", "mlx5"}
    with pytest.raises(ValueError, match="unknown ice defect"):
        ice.Ice(defects=("typo",))


@pytest.mark.parametrize("variant", ["fixed", "rfc-v2-posted"])
def test_veth_unroll_equals_its_c_path(variant):
    from xdplab.drivers.veth import VETH_XDP_BUFF, Veth
    from xdplab.kernel.structs import SK_BUFF
    k, _, call = unrolled(Veth(), variant)
    wrapper = k.memory.new(VETH_XDP_BUFF, "w", kind="wrapper")
    skb = k.memory.new(SK_BUFF, "skb", kind="skb")
    rng = random.Random(9)
    for _ in range(N):
        has_skb, stamp = rng.random() > 0.1, rng.getrandbits(64)
        k.memory.write(skb, SK_BUFF, "tstamp", stamp)
        k.memory.write(wrapper, VETH_XDP_BUFF, "skb", skb.base if has_skb else 0)
        assert call(wrapper.base) == (stamp if has_skb else 0)     # skb ? skb->tstamp : 0
