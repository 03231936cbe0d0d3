"""Which kernel field each load and store of an xlated program touches, and what each
unrolled patch does with the registers.

A reviewer reading ``r5 = *(u64 *)(r1 +56)`` wants ``ice_xdp_buff.rx_ring``.  This module
finds it with a small forward dataflow over the xlated program (MODEL: a type-tracking
analysis in the spirit of the verifier's ``reg_state``, much simplified):

- at entry R1 points to offset 0 of the bound driver's ``xdp_buff`` wrapper (after
  ``convert_ctx_accesses`` the ctx *is* the ``struct xdp_buff``, and the drivers of RFC v2 put
  ``struct xdp_buff xdp`` first in their wrapper, so the ctx pointer is the wrapper's address:
  container_of, RFC v2 cover letter / 09/14); R10 points to the top of the stack;
- ``rX = rY`` copies a pointer, ``rX += K`` / ``rX -= K`` moves it;
- a load of a pointer field moves the destination to the pointee: the kernel's own pointers
  (``xdp_buff.rxq`` -> ``xdp_rxq_info`` ...: include/net/xdp.h) and those the driver declares
  (``Driver.struct_pointers()``, read with ``getattr``: drivers without it declare none);
  ``xdp_buff.data`` / ``data_meta`` / ``data_hard_start`` point into the packet buffer;
- a call clobbers R0-R5, except that a kernel call made from an unrolled patch returns its
  ctx argument (``xdp_kfunc_call_preserving_r1``'s contract, RFC v2 08/14);
- offsets into the packet buffer (``pkt[+k]``, ``meta[+k]``) are relative to the member's
  value when the program loaded it; a value the program stores to ``xdp_buff.data_meta``
  (export_to_skb, RFC v2 06/14) is what later loads see, while a call (bpf_xdp_adjust_meta)
  starts a new frame (MODEL: helpers are opaque);
- at a join, a register keeps a pointer only if every path agrees.

The kernel layer must not know the drivers: the wrapper and the pointer table come from the
:class:`~xdplab.kernel.netdev.NetDevice` bound to the program, through attributes only.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Container, Mapping

from ..bpf import opcodes as op
from ..bpf.insn import Insn, Program
from ..bpf.patch import PatchViolation, check_patch
from .structs import NET_DEVICE, XDP_BUFF, XDP_RXQ_INFO, XDP_TXQ_INFO, StructLayout

if TYPE_CHECKING:  # pragma: no cover
    from .loader import LoadedProgram

# Pointers between the kernel's own structs (struct xdp_buff: rxq, txq,
# include/net/xdp.h@6.1.192:82-83; struct xdp_rxq_info / xdp_txq_info: dev, :58 and :67).
KERNEL_POINTERS: Mapping[tuple[str, str], StructLayout] = MappingProxyType({
    ("xdp_buff", "rxq"): XDP_RXQ_INFO,
    ("xdp_buff", "txq"): XDP_TXQ_INFO,
    ("xdp_rxq_info", "dev"): NET_DEVICE,
    ("xdp_txq_info", "dev"): NET_DEVICE,
})
# xdp_buff members that point into the packet buffer (include/net/xdp.h@6.1.192:78-81), and the
# region name we print.
BUFFER_POINTERS: Mapping[str, str] = MappingProxyType({
    "data": "pkt", "data_meta": "meta", "data_hard_start": "headroom", "data_end": "pkt_end"})


@dataclass(frozen=True)
class Pointer:
    """What a register points to: ``struct`` at ``offset``, or a named region (pkt, meta,
    headroom, stack) at ``offset`` when ``struct`` is None."""

    region: str
    offset: int = 0
    struct: StructLayout | None = None

    def moved(self, delta: int) -> "Pointer":
        return Pointer(self.region, self.offset + delta, self.struct)


@dataclass(frozen=True)
class FieldAccess:
    """One load or store and the field it touches."""

    index: int                 # instruction index in the xlated program
    kind: str                  # "load" or "store"
    region: str                # struct name, or pkt / meta / headroom / stack
    field: str | None          # None: a buffer region, or an offset no field covers
    offset: int                # byte offset within the struct or region
    size: int                  # bytes accessed
    problem: str = ""          # e.g. wider than the field, past the end of the struct

    @property
    def label(self) -> str:
        if self.field is not None:
            name = f"{self.region}.{self.field}"
        elif self.region == "stack":
            name = f"stack[{self.offset}]"
        elif self.region in BUFFER_POINTERS.values():
            name = f"{self.region}[{self.offset:+d}]"
        else:
            name = f"{self.region}+{self.offset}"
        return f"{name} ({self.problem})" if self.problem else name

    def __str__(self) -> str:
        return self.label


def _field_at(layout: StructLayout, offset: int) -> tuple[str, int] | None:
    """The field covering ``offset`` (and the offset's distance from its start)."""
    for name, f in layout.fields.items():
        if f.offset <= offset < f.offset + f.size:
            return name, offset - f.offset
    return None


def _access(index: int, kind: str, ptr: Pointer, off: int, size: int) -> FieldAccess:
    at = ptr.offset + off
    lay = ptr.struct
    if lay is None:
        return FieldAccess(index, kind, ptr.region, None, at, size)
    hit = _field_at(lay, at)
    problem = ""
    if at < 0 or at + size > lay.size:
        problem = f"{at + size - lay.size} bytes past the {lay.size}-byte struct" if at >= 0 else "before the struct"
    if hit is None:
        return FieldAccess(index, kind, lay.name, None, at, size, problem)
    name, inside = hit
    fsize = lay.fields[name].size
    if not problem and (inside or size > fsize):
        problem = f"{size} bytes at +{inside} of a {fsize}-byte field"
    region = lay.name
    # A wrapper's xdp_buff members are the kernel's: print them as xdp_buff.<field>.
    if lay.name != XDP_BUFF.name and name in XDP_BUFF.fields and XDP_BUFF.fields[name] == lay.fields[name]:
        region = XDP_BUFF.name
    return FieldAccess(index, kind, region, name, lay.fields[name].offset + inside, size, problem)


State = Mapping[int, Pointer]


def _successors(program: Program, i: int) -> tuple[int, ...]:
    """Indices execution may continue at after instruction ``i`` (targets outside the
    program, e.g. a posted S16_MAX placeholder, lead nowhere we can follow)."""
    insn = program[i]
    cls, operation = insn.opcode & 0x07, insn.opcode & 0xF0
    nxt = (i + 1,) if i + 1 < len(program) else ()
    if cls not in (op.BPF_JMP, op.BPF_JMP32) or operation == op.BPF_CALL:
        return nxt
    if operation == op.BPF_EXIT:
        return ()
    rel = insn.imm if insn.opcode == op.BPF_JMP32 | op.BPF_JA else insn.off
    target = program.index_at_slot(program.slot_of(i) + 1 + rel)
    out = () if target is None else (target,)
    return out if operation == op.BPF_JA else out + nxt


def field_accesses(program: Program, ctx: StructLayout, *,
                   pointers: Mapping[tuple[str, str], StructLayout] | None = None,
                   calls_return_ctx: Container[int] = ()) -> tuple[FieldAccess | None, ...]:
    """For each instruction of ``program``, the field it loads or stores (None otherwise).

    ``ctx``: the struct R1 points to at entry; ``pointers``: (struct, field) -> the struct that
    field points to, added to :data:`KERNEL_POINTERS`; ``calls_return_ctx``: indices of calls
    that return their R1 (the RFC's calls from unrolled code).
    """
    table = {**KERNEL_POINTERS, **(pointers or {})}
    n = len(program)
    states: list[dict[int, Pointer] | None] = [None] * n
    if n:
        states[0] = {1: Pointer(ctx.name, 0, ctx), 10: Pointer("stack", 0)}
    out: list[FieldAccess | None] = [None] * n
    work = [0] if n else []
    while work:
        i = work.pop()
        state = states[i]
        if state is None:  # pragma: no cover - only instructions given a state are queued
            raise ValueError(f"insn {i}: queued without a register state")
        new, access = _step(program[i], i, dict(state), table, i in calls_return_ctx)
        out[i] = access
        for j in _successors(program, i):
            old = states[j]
            merged = new if old is None else {r: p for r, p in old.items() if new.get(r) == p}
            if old is None or merged != old:
                states[j] = merged
                work.append(j)
    return tuple(out)


def _pointee(table: Mapping[tuple[str, str], StructLayout], acc: FieldAccess, ptr: Pointer) -> Pointer | None:
    """Where a loaded pointer points: an 8-byte load of a whole pointer field."""
    if acc.field is None or acc.size != 8 or acc.problem or ptr.struct is None:
        return None
    lay = ptr.struct
    for key in ((lay.name, acc.field), (acc.region, acc.field)):
        if key in table:
            return Pointer(table[key].name, 0, table[key])
    if acc.region == XDP_BUFF.name and acc.field in BUFFER_POINTERS:
        return Pointer(BUFFER_POINTERS[acc.field], 0)
    return None


def _buffer_member(access: FieldAccess) -> str | None:
    """The xdp_buff buffer-pointer member an access touches, if any."""
    if access.region == XDP_BUFF.name and access.field is not None and access.field in BUFFER_POINTERS:
        return access.field
    return None


def _cell(field: str) -> int:
    """State key of an xdp_buff buffer-pointer member whose stored value is known (negative,
    so it never collides with a register)."""
    return -1 - tuple(BUFFER_POINTERS).index(field)


def _step(insn: Insn, i: int, state: dict[int, Pointer], table: Mapping[tuple[str, str], StructLayout],
          returns_ctx: bool) -> tuple[dict[int, Pointer], FieldAccess | None]:
    code, cls = insn.opcode, insn.opcode & 0x07
    access = None
    if code == op.OPCODE_LD_IMM64:
        state.pop(insn.dst, None)
    elif cls == op.BPF_LDX:
        ptr = state.get(insn.src)
        state.pop(insn.dst, None)
        if ptr is not None and code & 0xE0 in (op.BPF_MEM, op.BPF_MEMSX):
            access = _access(i, "load", ptr, insn.off, op.SIZE_BYTES[code & 0x18])
            target = _pointee(table, access, ptr)
            member = _buffer_member(access)
            if target is not None and member is not None:
                target = state.get(_cell(member), target)   # a value this program stored
            if target is not None:
                state[insn.dst] = target
    elif cls in (op.BPF_ST, op.BPF_STX):
        ptr = state.get(insn.dst)
        if ptr is not None:
            access = _access(i, "store", ptr, insn.off, op.SIZE_BYTES[code & 0x18])
            member = _buffer_member(access)
            if member is not None:
                # e.g. export_to_skb's "xdp->data_meta = r2" (RFC v2 06/14): later loads
                # of the member see this value, so offsets stay in one frame.
                stored = state.get(insn.src) if cls == op.BPF_STX and access.size == 8 else None
                if stored is not None and stored.region == BUFFER_POINTERS[member]:
                    state[_cell(member)] = stored
                else:
                    state.pop(_cell(member), None)
        if cls == op.BPF_STX and code & 0xE0 == op.BPF_ATOMIC:
            if insn.imm == op.BPF_CMPXCHG:
                state.pop(0, None)
            elif insn.imm & op.BPF_FETCH:
                state.pop(insn.src, None)
    elif cls in (op.BPF_ALU, op.BPF_ALU64):
        operation = code & 0xF0
        ptr = state.get(insn.dst)
        state.pop(insn.dst, None)
        if cls == op.BPF_ALU64 and operation == op.BPF_MOV and code & 0x08 and insn.off == 0:
            if insn.src in state:
                state[insn.dst] = state[insn.src]
        elif cls == op.BPF_ALU64 and not code & 0x08 and operation in (op.BPF_ADD, op.BPF_SUB) and ptr:
            state[insn.dst] = ptr.moved(insn.imm if operation == op.BPF_ADD else -insn.imm)
    elif cls == op.BPF_JMP and code & 0xF0 == op.BPF_CALL:
        # R0-R5 are caller-saved: kernel/bpf/verifier.c@6.1.192:1283 caller_saved[]
        ctx = state.get(1)
        for r in range(6):
            state.pop(r, None)
        for f in BUFFER_POINTERS:          # a helper (bpf_xdp_adjust_meta) may move them
            state.pop(_cell(f), None)
        if returns_ctx and ctx is not None:
            state[0] = ctx
    return state, access


def struct_pointers(driver: object) -> Mapping[tuple[str, str], StructLayout]:
    """The driver's declared pointer fields, or none if it declares none."""
    fn = getattr(driver, "struct_pointers", None)
    return dict(fn()) if callable(fn) else {}


def loaded_accesses(loaded: "LoadedProgram") -> tuple[FieldAccess | None, ...]:
    """:func:`field_accesses` for a loaded program: the bound device's wrapper as the ctx
    (plain ``xdp_buff`` when not device-bound), its driver's pointer table, and every call
    an unroll pass emitted returning its ctx."""
    driver = loaded.device.driver if loaded.device is not None else None
    wrapper = getattr(driver, "wrapper", None)
    ctx = wrapper if isinstance(wrapper, StructLayout) else XDP_BUFF
    returns_ctx = frozenset(i for i, (insn, o) in enumerate(zip(loaded.xlated, loaded.origins))
                            if o.pass_name.startswith(("unroll:", "default-unroll"))
                            and insn.opcode == op.BPF_JMP | op.BPF_CALL)
    return field_accesses(loaded.xlated, ctx, pointers=struct_pointers(driver), calls_return_ctx=returns_ctx)


# ----------------------------------------------------------------------- register summary
@dataclass(frozen=True)
class RegisterSummary:
    """What one unrolled patch does with the registers, and whether the contract holds.

    ``writes``: registers the patch assigns (a call assigns R0); ``clobbers``: R1-R5, which a
    call leaves garbage (BPF calling convention); ``reads``: registers used before the patch
    writes them (its inputs); ``stack``: whether it uses R10; ``violations``: the contract
    check of :func:`xdplab.bpf.patch.check_patch` with the RFC's allowed set (one home: the
    loader's ``ALLOWED_UNROLL_REGS``, RFC v2 06/14 "R0, R2-R5").
    """

    writes: frozenset[int]
    reads: frozenset[int]
    clobbers: frozenset[int]
    stack: bool
    violations: tuple[PatchViolation, ...]

    @property
    def rule_ok(self) -> bool:
        return not any("writes r" in v.message or "r10" in v.message for v in self.violations)

    def __str__(self) -> str:
        parts = [f"writes {reg_list(self.writes) or 'nothing'}"]
        if self.clobbers - self.writes:
            parts.append(f"call clobbers {reg_list(self.clobbers - self.writes)}")
        parts.append(f"reads {reg_list(self.reads) or 'nothing'}")
        head = "; ".join(parts) + ("; uses the stack" if self.stack else "; no stack")
        regs = "R2-R5 rule OK" if self.rule_ok else "R2-R5 rule BROKEN"
        others = [v for v in self.violations if not ("writes r" in v.message or "r10" in v.message)]
        tail = f"; {len(others)} other violation{'s' if len(others) != 1 else ''}" if others else ""
        return f"{head}: {regs}{tail}"


def reg_list(regs: frozenset[int] | set[int]) -> str:
    """``r0,r3-r5``: registers, consecutive ones as ranges."""
    out: list[str] = []
    run: list[int] = []
    for r in sorted(regs):
        if run and r == run[-1] + 1:
            run.append(r)
            continue
        if run:
            out.extend(_span(run))
        run = [r]
    if run:
        out.extend(_span(run))
    return ",".join(out)


def _span(run: list[int]) -> list[str]:
    return [f"r{run[0]}-r{run[-1]}"] if len(run) >= 3 else [f"r{r}" for r in run]


def _uses_defs(insn: Insn) -> tuple[set[int], set[int], set[int]]:
    """(registers read, registers written, registers clobbered) by one instruction."""
    code, cls, operation = insn.opcode, insn.opcode & 0x07, insn.opcode & 0xF0
    uses: set[int] = set()
    defs: set[int] = set()
    clob: set[int] = set()
    if code == op.OPCODE_LD_IMM64:
        defs.add(insn.dst)
    elif cls == op.BPF_LDX:
        uses.add(insn.src)
        defs.add(insn.dst)
    elif cls == op.BPF_ST:
        uses.add(insn.dst)
    elif cls == op.BPF_STX:
        uses.update((insn.dst, insn.src))
        if code & 0xE0 == op.BPF_ATOMIC:
            if insn.imm == op.BPF_CMPXCHG:
                uses.add(0)
                defs.add(0)
            elif insn.imm & op.BPF_FETCH:
                defs.add(insn.src)
    elif cls in (op.BPF_ALU, op.BPF_ALU64):
        if operation != op.BPF_MOV:
            uses.add(insn.dst)
        if code & 0x08 and operation not in (op.BPF_NEG, op.BPF_END):
            uses.add(insn.src)
        defs.add(insn.dst)
    elif cls in (op.BPF_JMP, op.BPF_JMP32):
        if operation == op.BPF_CALL:
            uses.add(1)              # MODEL: the RFC's routines take the ctx (R1) only
            defs.add(0)
            clob.update(range(1, 6))   # caller_saved[]: kernel/bpf/verifier.c@6.1.192:1283
        elif operation == op.BPF_EXIT:
            uses.add(0)
        elif operation != op.BPF_JA:
            uses.add(insn.dst)
            if code & 0x08:
                uses.add(insn.src)
    return uses, defs, clob


def register_summary(insns: tuple[Insn, ...] | list[Insn], *,
                     allowed: frozenset[int] | None = None) -> RegisterSummary:
    """Summarise a patch in its own order (straight-line reading: a register counts as read
    when some instruction uses it before any earlier one writes it)."""
    if allowed is None:
        from .loader import ALLOWED_UNROLL_REGS
        allowed = ALLOWED_UNROLL_REGS
    reads: set[int] = set()
    writes: set[int] = set()
    clobbers: set[int] = set()
    stack = False
    for insn in insns:
        uses, defs, clob = _uses_defs(insn)
        reads.update(r for r in uses if r not in writes and r != op.BPF_REG_FP)
        writes.update(defs)
        clobbers.update(clob)
        stack = stack or op.BPF_REG_FP in uses | defs
    return RegisterSummary(frozenset(writes), frozenset(reads), frozenset(clobbers), stack,
                           tuple(check_patch(tuple(insns), allowed=allowed)))


__all__ = ["FieldAccess", "Pointer", "KERNEL_POINTERS", "field_accesses", "loaded_accesses",
           "struct_pointers", "RegisterSummary", "register_summary", "reg_list"]
