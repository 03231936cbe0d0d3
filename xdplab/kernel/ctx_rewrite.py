"""Context access rewriting: ``struct xdp_md`` loads become loads through ``struct xdp_buff``.

Two parts of linux:kernel/bpf/verifier.c and net/core/filter.c:

1. *Which* instructions access the context: the verifier learns it while it walks the
   program (``insn_aux_data[i].ptr_type == PTR_TO_CTX``).  We compute it with a small forward
   data-flow analysis: R1 holds the ctx at entry; ``rX = rY`` copies it; 8-byte spills to
   and fills from the stack keep it; calls clobber R0-R5; any other write ends it.  At a
   join, a register is ctx only if it is ctx on every incoming path ("must"); a memory
   access whose base is ctx on some paths only is refused, as the verifier refuses it
   ("same insn cannot be used with different pointers").
2. ``xdp_is_valid_access`` and ``xdp_convert_ctx_access`` (net/core/filter.c): only aligned
   4-byte reads of the six fields; ``egress_ifindex`` only for BPF_XDP_DEVMAP programs; then
   ``data``/``data_end``/``data_meta`` -> one 8-byte load from xdp_buff, ``ingress_ifindex`` ->
   rxq -> dev -> ifindex (3 loads), ``rx_queue_index`` -> rxq -> queue_index (2 loads),
   ``egress_ifindex`` -> txq -> dev -> ifindex (3 loads).

Limit: BPF-to-BPF subprograms are analysed as if their R1 were not the ctx (the verifier
tracks argument types across calls; programs that pass the ctx to a subprogram and read it
there are not rewritten here).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..bpf import builders as B
from ..bpf import opcodes as op
from ..bpf.disasm import branch_targets
from ..bpf.errors import BpfVerifyError
from ..bpf.insn import Insn, Program
from .structs import NET_DEVICE, XDP_BUFF, XDP_MD, XDP_RXQ_INFO, XDP_TXQ_INFO
from .uapi import BPF_XDP_DEVMAP

_ALL = frozenset(range(11))


@dataclass(frozen=True)
class _State:
    regs: frozenset[int]
    slots: frozenset[int]   # stack offsets (from r10) holding a spilled ctx


def ctx_accesses(program: Program) -> tuple[dict[int, int], dict[int, frozenset[int]]]:
    """(slot -> base register of every ctx access, slot -> registers surely holding the ctx)."""
    n = program.slot_count
    must: dict[int, _State] = {0: _State(frozenset({1}), frozenset())}
    may: dict[int, _State] = {0: _State(frozenset({1}), frozenset())}
    work = [0]
    while work:
        slot = work.pop()
        index = program.index_at_slot(slot)
        if index is None:
            continue
        insn = program[index]
        outs = _successors(insn, slot, n)
        new_must = _transfer(insn, must[slot])
        new_may = _transfer(insn, may[slot])
        for succ in outs:
            changed = False
            if succ not in must:
                must[succ], may[succ] = new_must, new_may
                changed = True
            else:
                m = _State(must[succ].regs & new_must.regs, must[succ].slots & new_must.slots)
                y = _State(may[succ].regs | new_may.regs, may[succ].slots | new_may.slots)
                if m != must[succ] or y != may[succ]:
                    must[succ], may[succ] = m, y
                    changed = True
            if changed:
                work.append(succ)
    found: dict[int, int] = {}
    for i, insn in enumerate(program):
        slot = program.slot_of(i)
        if slot not in must:
            continue   # unreachable
        base = _mem_base(insn)
        if base is None:
            continue
        if base in must[slot].regs:
            found[slot] = base
        elif base in may[slot].regs:
            raise BpfVerifyError("same insn cannot be used with different pointers", slot)
    return found, {slot: state.regs for slot, state in must.items()}


def _successors(insn: Insn, slot: int, n: int) -> list[int]:
    cls, operation = insn.opcode & 7, insn.opcode & 0xF0
    if cls in (op.BPF_JMP, op.BPF_JMP32):
        if operation == op.BPF_EXIT:
            return []
        if operation == op.BPF_JA:
            return [t for t in branch_targets(insn, slot) if 0 <= t < n]
        if operation == op.BPF_CALL:
            return [slot + 1] if slot + 1 < n else []
        return [t for t in (slot + 1, *branch_targets(insn, slot)) if 0 <= t < n]
    nxt = slot + insn.slots
    return [nxt] if nxt < n else []


def _mem_base(insn: Insn) -> int | None:
    cls = insn.opcode & 7
    if cls == op.BPF_LDX:
        return insn.src
    if cls in (op.BPF_ST, op.BPF_STX):
        return insn.dst
    return None


def _transfer(insn: Insn, state: _State) -> _State:
    code, cls = insn.opcode, insn.opcode & 7
    regs, slots = set(state.regs), set(state.slots)
    if cls in (op.BPF_JMP, op.BPF_JMP32) and code & 0xF0 == op.BPF_CALL:
        regs -= {0, 1, 2, 3, 4, 5}
    elif code == op.BPF_ALU64 | op.BPF_MOV | op.BPF_X and insn.off == 0:
        (regs.add if insn.src in regs else regs.discard)(insn.dst)
    elif cls == op.BPF_LDX:
        spilled = insn.src == op.BPF_REG_FP and code & 0x18 == op.BPF_DW and insn.off in slots
        (regs.add if spilled else regs.discard)(insn.dst)
    elif cls in (op.BPF_ST, op.BPF_STX) and insn.dst == op.BPF_REG_FP:
        if code & 0xE0 == op.BPF_MEM:
            if cls == op.BPF_STX and code & 0x18 == op.BPF_DW and insn.src in regs:
                slots.add(insn.off)
            else:
                slots -= {s for s in slots if s - 8 < insn.off + 8 and insn.off < s + 8}
        if cls == op.BPF_STX and code & 0xE0 == op.BPF_ATOMIC and insn.imm & op.BPF_FETCH:
            regs.discard(0 if insn.imm == op.BPF_CMPXCHG else insn.src)
    elif code == op.OPCODE_LD_IMM64 or cls in (op.BPF_ALU, op.BPF_ALU64):
        regs.discard(insn.dst)
    elif cls == op.BPF_STX and code & 0xE0 == op.BPF_ATOMIC and insn.imm & op.BPF_FETCH:
        regs.discard(0 if insn.imm == op.BPF_CMPXCHG else insn.src)
    return _State(frozenset(regs), frozenset(slots))


def check_ctx_access(insn: Insn, slot: int, *, expected_attach_type: int | None) -> str:
    """``xdp_is_valid_access``: the xdp_md field this instruction reads, or a verify error."""
    cls = insn.opcode & 7
    size = {op.BPF_B: 1, op.BPF_H: 2, op.BPF_W: 4, op.BPF_DW: 8}[insn.opcode & 0x18]
    off = insn.off
    if cls != op.BPF_LDX or insn.opcode & 0xE0 != op.BPF_MEM:
        raise BpfVerifyError(f"invalid bpf_context access off={off} size={size}", slot)
    field = next((name for name, f in XDP_MD.fields.items() if f.offset == off), None)
    if field is None or size != 4:
        raise BpfVerifyError(f"invalid bpf_context access off={off} size={size}", slot)
    if field == "egress_ifindex" and expected_attach_type != BPF_XDP_DEVMAP:
        raise BpfVerifyError(f"invalid bpf_context access off={off} size={size} (egress_ifindex "
                             "needs expected_attach_type BPF_XDP_DEVMAP)", slot)
    return field


def convert_ctx_access(insn: Insn, field: str) -> tuple[Insn, ...]:
    """``xdp_convert_ctx_access``: the loads through xdp_buff that replace one xdp_md load."""
    d, s = insn.dst, insn.src
    dw, w = op.BPF_DW, op.BPF_W
    if field in ("data", "data_end", "data_meta"):
        return (B.BPF_LDX_MEM(dw, d, s, XDP_BUFF.offsetof(field)),)
    if field == "ingress_ifindex":
        return (B.BPF_LDX_MEM(dw, d, s, XDP_BUFF.offsetof("rxq")),
                B.BPF_LDX_MEM(dw, d, d, XDP_RXQ_INFO.offsetof("dev")),
                B.BPF_LDX_MEM(w, d, d, NET_DEVICE.offsetof("ifindex")))
    if field == "rx_queue_index":
        return (B.BPF_LDX_MEM(dw, d, s, XDP_BUFF.offsetof("rxq")),
                B.BPF_LDX_MEM(w, d, d, XDP_RXQ_INFO.offsetof("queue_index")))
    if field == "egress_ifindex":
        return (B.BPF_LDX_MEM(dw, d, s, XDP_BUFF.offsetof("txq")),
                B.BPF_LDX_MEM(dw, d, d, XDP_TXQ_INFO.offsetof("dev")),
                B.BPF_LDX_MEM(w, d, d, NET_DEVICE.offsetof("ifindex")))
    raise ValueError(field)  # pragma: no cover
