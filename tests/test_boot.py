"""Build seed (randstruct layout, compile time) vs boot seed (magic, late_initcall): RFC v2 06/14."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xdplab.bpf import opcodes as op
from xdplab.bpf.patch import BpfPatch
from xdplab.kernel.boot import Boot, KernelBuild
from xdplab.kernel.kernel import Kernel
from xdplab.kernel.skb import Skb, skb_metadata_set
from xdplab.kernel.unroll_helpers import xdp_metadata_export_to_skb

DECLARATION_ORDER = {"magic": 0, "rx_timestamp": 8}     # 06/14 include/net/xdp.h: u32 magic; u64 rx_timestamp;


def _offsets(boot: Boot) -> dict[str, int]:
    lay = boot.xdp_to_skb_metadata
    return {name: lay.offsetof(name) for name in ("magic", "rx_timestamp")}


def _meta(boot: Boot, ts: int) -> bytes:
    lay, out = boot.xdp_to_skb_metadata, bytearray(16)
    out[lay.offsetof("magic"):lay.offsetof("magic") + 4] = boot.xdp_metadata_magic.to_bytes(4, "little")
    out[lay.offsetof("rx_timestamp"):lay.offsetof("rx_timestamp") + 8] = ts.to_bytes(8, "little")
    return bytes(out)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_reboots_of_one_build_keep_the_layout_and_change_the_magic(build_seed, boot_a, boot_b):
    build = KernelBuild(build_seed)
    a, b = Boot.of(build, boot_a), Boot.of(build, boot_b)
    assert a.xdp_to_skb_metadata == b.xdp_to_skb_metadata == build.xdp_to_skb_metadata
    assert a.xdp_metadata_magic & 1 and 0 < a.xdp_metadata_magic < 2**32
    if boot_a != boot_b:
        assert a.xdp_metadata_magic != b.xdp_metadata_magic     # 2^-31 chance of a collision


def test_without_randstruct_every_build_uses_declaration_order():
    for seed in range(32):
        assert _offsets(Boot.of(KernelBuild(seed, randstruct=False), seed)) == DECLARATION_ORDER
        assert "CONFIG_RANDSTRUCT off" in KernelBuild(seed, randstruct=False).xdp_to_skb_metadata.source


def test_with_randstruct_builds_differ_and_the_struct_stays_16_bytes():
    layouts = {tuple(sorted(_offsets(Boot.of(KernelBuild(s), 0)).items())) for s in range(32)}
    assert layouts == {(("magic", 0), ("rx_timestamp", 8)), (("magic", 8), ("rx_timestamp", 0))}
    assert all(KernelBuild(s).xdp_to_skb_metadata.size == 16 for s in range(32))


def test_kernel_seed_is_both_build_and_boot_seed():
    k = Kernel(seed=11)
    assert k.boot.build == KernelBuild(11) and k.boot.boot_seed == 11
    assert k.boot == Boot.of(KernelBuild(11), 11) == Boot.from_seed(11)


def test_a_reboot_rejects_the_previous_boots_metadata_though_the_layout_is_the_same():
    build = KernelBuild(4)
    first, second = Boot.of(build, 1), Boot.of(build, 2)
    meta = _meta(first, 5555)
    assert skb_metadata_set(Skb(b"x"), meta, first).hwtstamp == 5555
    assert skb_metadata_set(Skb(b"x"), meta, second).hwtstamp == 0     # magic is per boot


def test_export_unroll_takes_offsets_from_the_build_and_the_magic_from_the_boot():
    for build in (KernelBuild(0), KernelBuild(1), KernelBuild(2, randstruct=False)):
        boot = Boot.of(build, 9)
        patch = BpfPatch()
        xdp_metadata_export_to_skb(patch, boot=boot, variant="fixed", unroll_rx_timestamp=lambda p: None)
        insns = patch.insns()
        st_mem = [i for i in insns if i.opcode == op.BPF_ST | op.BPF_MEM | op.BPF_W]
        assert len(st_mem) == 1
        assert st_mem[0].off == build.xdp_to_skb_metadata.offsetof("magic")
        assert st_mem[0].imm & 0xFFFFFFFF == boot.xdp_metadata_magic
        stx = insns[-1]
        assert stx.off == build.xdp_to_skb_metadata.offsetof("rx_timestamp")
