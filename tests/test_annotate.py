"""Field annotation (a forward dataflow over xlated code) and per-patch register summaries."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from xdplab import Lab
from xdplab.bpf import builders as B
from xdplab.bpf import opcodes as op
from xdplab.bpf.insn import Program
from xdplab.kernel.annotate import field_accesses, loaded_accesses, reg_list, register_summary
from xdplab.kernel.structs import XDP_BUFF, layout

# A hand-made wrapper and pointee (test data, not the drivers' layouts).
RING = layout("my_ring", 0x40, "test", cached=(0x10, 8), count=(0x18, 4))
DESC = layout("my_desc", 16, "test", flags=(0, 1), stamp=(12, 4))
WRAP = layout("my_wrap", 72, "test", **{f: (XDP_BUFF.fields[f].offset, XDP_BUFF.fields[f].size)
                                         for f in XDP_BUFF.fields}, ring=(56, 8), desc=(64, 8))
PTRS = {("my_wrap", "ring"): RING, ("my_wrap", "desc"): DESC}


def labels(prog, **kw):
    return [str(a) if a else None for a in field_accesses(Program(prog), WRAP, pointers=PTRS, **kw)]


def test_pointer_chase_through_declared_pointers():
    prog = [B.BPF_LDX_MEM(op.BPF_DW, 5, 1, 56),          # r5 = ctx->ring
            B.BPF_LDX_MEM(op.BPF_DW, 5, 5, 0x10),        # r5 = ring->cached
            B.BPF_LDX_MEM(op.BPF_DW, 4, 1, 64),          # r4 = ctx->desc
            B.BPF_LDX_MEM(op.BPF_B, 3, 4, 0),            # r3 = desc->flags
            B.BPF_MOV64_REG(2, 4), B.BPF_ALU64_IMM(op.BPF_ADD, 2, 12),
            B.BPF_LDX_MEM(op.BPF_W, 3, 2, 0),            # via r2 = desc + 12: desc->stamp
            B.BPF_STX_MEM(op.BPF_DW, 10, 3, -8),         # stack
            B.BPF_EXIT_INSN()]
    got = labels(prog)
    assert got[:4] == ["my_wrap.ring", "my_ring.cached", "my_wrap.desc", "my_desc.flags"]
    assert got[6] == "my_desc.stamp" and got[7] == "stack[-8]" and got[4] is None


def test_xdp_buff_members_of_a_wrapper_are_named_as_the_kernels():
    got = labels([B.BPF_LDX_MEM(op.BPF_DW, 2, 1, 0), B.BPF_LDX_MEM(op.BPF_H, 3, 2, 12),
                  B.BPF_LDX_MEM(op.BPF_DW, 4, 1, 32), B.BPF_LDX_MEM(op.BPF_W, 4, 4, 8), B.BPF_EXIT_INSN()])
    assert got[:4] == ["xdp_buff.data", "pkt[+12]", "xdp_buff.rxq", "xdp_rxq_info.queue_index"]


def test_wide_and_out_of_bounds_accesses_are_flagged():
    got = labels([B.BPF_LDX_MEM(op.BPF_DW, 4, 1, 64), B.BPF_LDX_MEM(op.BPF_DW, 3, 4, 0),
                  B.BPF_LDX_MEM(op.BPF_DW, 3, 4, 12), B.BPF_EXIT_INSN()])
    assert got[1] == "my_desc.flags (8 bytes at +0 of a 1-byte field)"
    assert got[2] == "my_desc.stamp (4 bytes past the 16-byte struct)"


def test_join_keeps_only_what_all_paths_agree_on():
    prog = [B.BPF_JMP_IMM(op.BPF_JEQ, 0, 0, 2),
            B.BPF_LDX_MEM(op.BPF_DW, 2, 1, 56),          # r2 = ring on one path
            B.BPF_JMP_A(1),
            B.BPF_LDX_MEM(op.BPF_DW, 2, 1, 64),          # r2 = desc on the other
            B.BPF_LDX_MEM(op.BPF_W, 3, 2, 0x10),         # after the join: unknown
            B.BPF_LDX_MEM(op.BPF_W, 3, 1, 0),            # r1 is the ctx on both paths
            B.BPF_EXIT_INSN()]
    got = labels(prog)
    assert got[4] is None and got[5] == "xdp_buff.data"   # a narrower read of a field is fine


def test_calls_clobber_unless_they_return_their_ctx():
    prog = [B.BPF_EMIT_CALL(7), B.BPF_MOV64_REG(1, 0), B.BPF_LDX_MEM(op.BPF_DW, 0, 1, 56), B.BPF_EXIT_INSN()]
    assert labels(prog)[2] is None
    assert labels(prog, calls_return_ctx={0})[2] == "my_wrap.ring"


def test_ice_listing_names_the_rfc_fields():
    """RFC v2 09/14: struct ice_xdp_buff { xdp; rx_ring @56; rx_desc @64 }; 10/14 reads
    rx_ring->cached_phctime, the descriptor's time_stamp_low (byte 19) and ts_high (byte 28)."""
    lab = Lab("ice")
    acc = [str(a) for a in loaded_accesses(lab.loaded) if a]
    assert "ice_xdp_buff.rx_ring" in acc and "ice_xdp_buff.rx_desc" in acc
    if lab.device.driver.struct_pointers():     # the driver declares its pointers
        assert {"ice_rx_ring.cached_phctime", "ice_32b_rx_flex_desc_nic.time_stamp_low",
                "ice_32b_rx_flex_desc_nic.ts_high"} <= set(acc)
        posted = [str(a) for a in loaded_accesses(Lab("ice", variant="rfc-v2-posted").loaded) if a]
        assert any(a.startswith("ice_32b_rx_flex_desc_nic.time_stamp_low (8 bytes") for a in posted)
        assert "ice_32b_rx_flex_desc_nic.ts_high (4 bytes past the 32-byte struct)" in posted


def test_mlx4_result_is_read_from_the_wrappers_r0_slot():
    """RFC v2 08/14 xdp_kfunc_call_preserving_r1: call; r1 = r0; r0 = *(u64 *)(r1 + off(r0)),
    with mlx4_xdp_buff.r0 at 72 (11/14)."""
    acc = [str(a) for a in loaded_accesses(Lab("mlx4").loaded) if a]
    assert "mlx4_xdp_buff.r0" in acc


def test_merged_out_pointer_on_the_stack():
    acc = [str(a) for a in loaded_accesses(Lab("ice", design="merged").loaded) if a]
    assert "stack[-8]" in acc


def test_register_summary_of_the_ice_unroll():
    """RFC v2 10/14: the unroll uses only R0 and R3-R5, reads the ctx in R1, no stack."""
    rep = [p for p in Lab("ice").loaded.patches if p.kfunc == "bpf_xdp_metadata_rx_timestamp"][0]
    s = register_summary(rep.insns)
    assert s.writes == {0, 3, 4, 5} and s.reads == {1} and not s.stack and s.rule_ok
    assert str(s) == "writes r0,r3-r5; reads r1; no stack: R2-R5 rule OK"


def test_register_summary_catches_r6_and_the_stack():
    bad = register_summary([B.BPF_MOV64_IMM(6, 0), B.BPF_LDX_MEM(op.BPF_DW, 0, 10, -8)])
    assert bad.writes == {0, 6} and bad.stack and not bad.rule_ok
    assert "R2-R5 rule BROKEN" in str(bad) and "uses the stack" in str(bad)
    call = register_summary([B.BPF_EMIT_CALL(5), B.BPF_MOV64_REG(1, 0), B.BPF_LDX_MEM(op.BPF_DW, 0, 1, 72)])
    assert call.writes == {0, 1} and call.clobbers == {1, 2, 3, 4, 5} and call.rule_ok


def _parse(text: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        m = re.fullmatch(r"r(\d+)(?:-r(\d+))?", part)
        assert m, part
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        out.update(range(lo, hi + 1))
    return out


@settings(max_examples=150, deadline=None)
@given(st.sets(st.integers(0, 10)))
def test_reg_list_round_trips(regs):
    text = reg_list(regs)
    assert _parse(text) == regs
    assert all(len(part.split("-")) == 1 or int(part.split("-")[1][1:]) - int(part[1:].split("-")[0]) >= 2
               for part in filter(None, text.split(",")))


def test_export_to_skb_stores_land_in_one_frame():
    """RFC v2 06/14: data_meta -= sizeof(xdp_to_skb_metadata); xdp->data_meta = r2; the
    magic and (after the driver's unroll) rx_timestamp are stored relative to the new
    data_meta, i.e. below the old one by the struct's size."""
    lab = Lab("ice")
    loaded = lab.loaded_for("skb")
    lay = lab.kernel.boot.xdp_to_skb_metadata
    stores = [str(a) for a in loaded_accesses(loaded) if a and a.kind == "store"]
    assert f"meta[{lay.offsetof('magic') - lay.size:+d}]" in stores
    assert f"meta[{lay.offsetof('rx_timestamp') - lay.size:+d}]" in stores
    assert "xdp_buff.data_meta" in stores
