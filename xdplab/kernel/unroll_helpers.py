"""Building blocks the RFC gives drivers for their unroll code.

``xdp_kfunc_call_preserving_r1`` (RFC v2 08/14, kernel-facts §7) and the kernel's generic
``xdp_metadata_export_to_skb`` unroll (RFC v2 06/14, kernel-facts §8.3).
"""
from __future__ import annotations

from typing import Callable

from ..bpf import builders as B
from ..bpf import opcodes as op
from ..bpf.insn import Insn
from ..bpf.patch import END, BpfPatch
from .boot import Boot
from .structs import XDP_BUFF, XDP_FRAME


def xdp_kfunc_call_preserving_r1(patch: BpfPatch, r0_offset: int, kfunc_imm: int) -> None:
    """Append the RFC's three instructions that call kernel code from unrolled code.

    1. ``call kfunc`` (a direct ``BPF_EMIT_CALL``; R1 still holds the ctx, i.e. the wrapper);
    2. ``r1 = r0``: the callee returns the ctx pointer it was given, which restores R1;
    3. ``r0 = *(u64 *)(r1 + r0_offset)``: the real result, which the callee stored in a u64
       scratch member of the driver's wrapper.
    R2-R5 are garbage afterwards; R6-R9 and the stack are untouched.
    """
    patch.append(
        B.BPF_EMIT_CALL(kfunc_imm),
        B.BPF_MOV64_REG(B.BPF_REG_1, B.BPF_REG_0),
        B.BPF_LDX_MEM(op.BPF_DW, B.BPF_REG_0, B.BPF_REG_1, r0_offset),
    )


def be32_through_ctx_pointer(patch: BpfPatch, ptr_offset: int, field_offset: int) -> None:
    """The unrolled "``p ? be32(p->field) : 0``" (R0, R4): load the driver's pointer from the
    wrapper at ``ptr_offset``, return 0 if it is NULL, else the big-endian u32 at
    ``field_offset`` (MODEL: the RFC v2 pattern applied to a CQE's hash, issue 16)."""
    patch.append(B.BPF_MOV64_IMM(B.BPF_REG_0, 0), B.BPF_LDX_MEM(op.BPF_DW, B.BPF_REG_4, B.BPF_REG_1, ptr_offset))
    patch.append_jump(B.BPF_JMP_IMM(op.BPF_JEQ, B.BPF_REG_4, 0, 0), to=END)
    patch.append(B.BPF_LDX_MEM(op.BPF_W, B.BPF_REG_0, B.BPF_REG_4, field_offset),
                 B.BPF_ENDIAN(op.BPF_TO_BE, B.BPF_REG_0, 32))


def xdp_metadata_export_to_skb(patch: BpfPatch, *, boot: Boot, variant: str,
                               unroll_rx_timestamp: Callable[[BpfPatch], None]) -> None:
    """The unrolled body of ``bpf_xdp_metadata_export_to_skb`` (R1 = ctx throughout).

    1. ``r2 = data_meta; r3 = data; if r2 != r3 goto end``: skips devices without metadata
       support (data_meta = data + 1) and programs that already used the metadata area;
    2. ``r2 -= sizeof(xdp_to_skb_metadata); r3 = data_hard_start + sizeof(xdp_frame);
       if r2 < r3 goto end``: no room in the headroom;
    3. ``xdp->data_meta = r2`` (a direct store, without adjust_meta's checks);
    4. ``*(u32 *)(r2 + magic) = xdp_metadata_magic``;
    5. the device's RX_TIMESTAMP unroll, result in R0;
    6. ``r2 = xdp->data_meta; *(u64 *)(r2 + rx_timestamp) = r0``;
    7. ``bpf_patch_resolve_jmp``: both early exits land after the patch.

    The emitted ``ST_MEM`` offsets and ``sizeof`` come from the kernel *build's* layout
    (``boot.build``, randstruct at compile time) and the magic immediate from the *boot*
    (``boot.xdp_metadata_magic``): :mod:`xdplab.kernel.boot`.  Patch lines (06/14,
    06-xdp-carry-over-xdp-metadata-into-skb-context.patch): steps 1-4 :323-357, step 5
    :359-361, step 6 :363-370, step 7 :372 (``bpf_patch_resolve_jmp``, :147-163, rewrites only
    ``BPF_JMP|BPF_X`` jumps whose off is S16_MAX: here the two exits of steps 1 and 2).

    ``variant="rfc-v2-posted"`` nests the driver's unroll in the same patch, as posted, so its
    own S16_MAX placeholders (if any get resolved) jump past the store too.  ``"fixed"``
    resolves the driver's code in a patch of its own first, so its early exits continue at
    step 6 with R0 = 0.
    """
    lay = boot.xdp_to_skb_metadata
    patch.append(
        B.BPF_LDX_MEM(op.BPF_DW, B.BPF_REG_2, B.BPF_REG_1, XDP_BUFF.offsetof("data_meta")),
        B.BPF_LDX_MEM(op.BPF_DW, B.BPF_REG_3, B.BPF_REG_1, XDP_BUFF.offsetof("data")),
        B.BPF_JMP_REG(op.BPF_JNE, B.BPF_REG_2, B.BPF_REG_3, op.S16_MAX),
        B.BPF_ALU64_IMM(op.BPF_SUB, B.BPF_REG_2, lay.size),
        B.BPF_LDX_MEM(op.BPF_DW, B.BPF_REG_3, B.BPF_REG_1, XDP_BUFF.offsetof("data_hard_start")),
        B.BPF_ALU64_IMM(op.BPF_ADD, B.BPF_REG_3, XDP_FRAME.size),
        B.BPF_JMP_REG(op.BPF_JLT, B.BPF_REG_2, B.BPF_REG_3, op.S16_MAX),
        B.BPF_STX_MEM(op.BPF_DW, B.BPF_REG_1, B.BPF_REG_2, XDP_BUFF.offsetof("data_meta")),
        B.BPF_ST_MEM(op.BPF_W, B.BPF_REG_2, lay.offsetof("magic"), boot.xdp_metadata_magic),
    )
    if variant == "rfc-v2-posted":
        unroll_rx_timestamp(patch)
    else:
        inner = BpfPatch()
        unroll_rx_timestamp(inner)
        if not len(inner):
            inner.append(B.BPF_MOV64_IMM(B.BPF_REG_0, 0))
        inner.resolve_jmp("patch-v1")
        patch.append(*_close(inner))
    patch.append(
        B.BPF_LDX_MEM(op.BPF_DW, B.BPF_REG_2, B.BPF_REG_1, XDP_BUFF.offsetof("data_meta")),
        B.BPF_STX_MEM(op.BPF_DW, B.BPF_REG_2, B.BPF_REG_0, lay.offsetof("rx_timestamp")),
    )
    patch.resolve_jmp("rfc-v2")


def _close(inner: BpfPatch) -> tuple[Insn, ...]:
    """An inner patch's instructions, labels resolved against its own end."""
    return inner.insns()


__all__ = ["xdp_kfunc_call_preserving_r1", "xdp_metadata_export_to_skb", "END"]
