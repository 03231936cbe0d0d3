"""``struct bpf_patch``: the RFC's growable instruction buffer, and checks of what it holds.

RFC v2 patch 01/14 ("bpf: Introduce bpf_patch", kernel/bpf/bpf_patch.c and
include/linux/bpf_patch.h) replaces the verifier's fixed ``struct bpf_insn insn_buf[16]``
with a buffer that grows: 16 slots first, then doubling (krealloc_array), with a sticky
error (``-ENOMEM``) after which appends do nothing.  Patch 06/14 adds
``bpf_patch_resolve_jmp`` (placeholder jumps with ``off = S16_MAX`` become "jump to the first
instruction after the patch") and ``bpf_patch_magles_registers`` ("magles" sic: the OR of
``1 << dst_reg`` over the patch).

Modelled here as well:
- the two resolution rules: RFC v2 matches only ``BPF_JMP`` class jumps with ``BPF_X``
  source; PATCH v1 (lore 20221115030210.3159213-3-sdf) matches every ``BPF_JMP`` jump;
- the old limit: ``BpfPatch(limit=16)`` refuses the 17th instruction, as writing past the
  verifier's ``insn_buf[16]`` would have overflowed it (that is why bpf_patch exists);
- defect (a) of the posted code (kernel-facts §3, READING; 01/14 kernel/bpf/bpf_patch.c,
  ``__bpf_patch_append``, 01-bpf-introduce-bpf_patch.patch:118-132): when full, the code
  doubles ``capacity`` (16 the first time, 01-...patch:119-122), reallocates *that* many
  instructions (``krealloc_array(patch->insn, patch->capacity, ...)``, :124) and then doubles
  ``capacity`` once more (:132).  So the buffer believes it holds twice what it has, and the
  reallocations are: 16 insns (believed 32) on the 1st append, 64 (believed 128) on the 33rd,
  256 (believed 512) on the 129th, 1024 on the 513th -- 16 * 4**k allocated, triggered when
  ``len`` reaches 0, 32, 128, 512.  Appends at indices [16, 32), [64, 128), ... are written
  past the allocation (slab-out-of-bounds; silent without KASAN).  And ``krealloc`` copies only
  ``ksize(old)`` bytes (mm/slab_common.c@6.1.192:1319,1340 ``__do_krealloc``; the kmalloc
  size of 16*4**k insns * 8 bytes is a power of two, so ksize == the request): the entries
  written past the old allocation are NOT carried into the new buffer (:attr:`lost`).
  ``posted_capacity_defect=True`` records every reallocation (:attr:`reallocations`), the first
  write past an allocation (:attr:`heap_overflow`) and the lost indices;
  :meth:`kernel_view` is what ``bpf_patch_data`` then hands the verifier.  No posted driver's
  patch reaches the second reallocation (the longest, ice inside export_to_skb, is 31 insns:
  it overflows the 16-insn allocation but never loses anything);
- a label API in the spirit of cilium/ebpf's symbolic references: ``append_jump(insn,
  to="name")`` and ``label("name")``, resolved when the instructions are read; ``"end"`` is
  the first instruction after the patch.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import opcodes as op
from .errors import BpfVerifyError
from .insn import Insn

ENOMEM = 12
E2BIG = 7
END = "end"
RESOLVE_RULES = ("rfc-v2", "patch-v1")


@dataclass(frozen=True)
class _Jump:
    insn: Insn
    to: str


@dataclass(frozen=True)
class HeapOverflow:
    """Where the posted bpf_patch first wrote past its allocation."""

    index: int
    allocated: int
    capacity: int


@dataclass(frozen=True)
class Reallocation:
    """One ``krealloc_array`` in ``__bpf_patch_append`` (01/14 bpf_patch.c).

    ``at_len``: ``patch->len`` when the append triggered it (the index the new instruction
    gets); ``allocated``: instructions really allocated; ``capacity``: what ``patch->capacity``
    says afterwards; ``copied``: instructions krealloc carried over from the old buffer
    (``ksize(old)``, = the old allocation: mm/slab_common.c@6.1.192:1319,1340).
    """

    at_len: int
    allocated: int
    capacity: int
    copied: int


class BpfPatch:
    """A growable list of instructions with the kernel's ``bpf_patch`` behaviour."""

    def __init__(self, *, limit: int | None = None, max_alloc: int | None = None,
                 posted_capacity_defect: bool = False) -> None:
        self._items: list[Insn | _Jump] = []
        self._labels: dict[str, int] = {}
        self.capacity = 0      # what the patch believes it can hold
        self.allocated = 0     # what was really allocated
        self.err = 0           # sticky: -ENOMEM (or -E2BIG in insn_buf[16] mode)
        self.reason = ""
        self.limit = limit
        self.max_alloc = max_alloc
        self.posted_capacity_defect = posted_capacity_defect
        self.heap_overflow: HeapOverflow | None = None
        self.reallocations: tuple[Reallocation, ...] = ()
        self.lost: tuple[range, ...] = ()     # indices krealloc did not carry over (posted only)

    # ------------------------------------------------------------- bpf_patch_append
    def append(self, *insns: Insn) -> "BpfPatch":
        """``bpf_patch_append(patch, ...)``: append each instruction in order."""
        for insn in insns:
            self._append(insn)
        return self

    def append_jump(self, insn: Insn, to: str) -> "BpfPatch":
        """Append a jump whose offset is resolved to label ``to`` (or ``"end"``)."""
        if insn.opcode & 0x07 not in (op.BPF_JMP, op.BPF_JMP32) or insn.opcode & 0xF0 in (op.BPF_CALL, op.BPF_EXIT):
            raise BpfVerifyError(f"append_jump needs a jump instruction, got opcode {insn.opcode:#04x}")
        self._append(_Jump(insn, to))
        return self

    def label(self, name: str) -> "BpfPatch":
        """Name the position of the next appended instruction."""
        if name == END or name in self._labels:
            raise BpfVerifyError(f"label {name!r} is reserved or already defined")
        self._labels[name] = len(self._items)
        return self

    def _append(self, item: Insn | _Jump) -> None:
        if self.err:
            return
        n = len(self._items)
        if self.limit is not None and n >= self.limit:
            self.err, self.reason = -E2BIG, (f"instruction {n + 1} does not fit the verifier's "
                                             f"insn_buf[{self.limit}]")
            return
        if n == self.capacity:
            # 01/14 bpf_patch.c, 01-bpf-introduce-bpf_patch.patch:118-132.  fixed: capacity 16,
            # then doubling, allocated == capacity.  posted: capacity doubled (or set to 16),
            # that many allocated, then doubled again.
            new_alloc = 16 if self.capacity == 0 else self.capacity * 2
            if self.max_alloc is not None and new_alloc > self.max_alloc:
                # krealloc_array failed: -ENOMEM, the old array is kfree'd (:125-128).  The
                # posted code leaves patch->len and a dangling patch->insn; nothing reads them
                # (do_misc_fixups returns at 02/14 verifier.c, 02-...patch:297-299).  We drop
                # the items so that no half-changed buffer is visible.
                self.err, self.reason = -ENOMEM, f"krealloc_array of {new_alloc} instructions failed"
                self._items.clear()
                return
            copied = min(self.allocated, n)
            if self.allocated < n:
                self.lost = self.lost + (range(self.allocated, n),)
            self.allocated = new_alloc
            self.capacity = new_alloc * 2 if self.posted_capacity_defect else new_alloc
            self.reallocations = self.reallocations + (
                Reallocation(n, new_alloc, self.capacity, copied),)
        if n >= self.allocated and self.heap_overflow is None:
            self.heap_overflow = HeapOverflow(n, self.allocated, self.capacity)
        self._items.append(item)

    # ------------------------------------------------------------- accessors
    def __len__(self) -> int:
        """``bpf_patch_len``."""
        return len(self._items)

    def kernel_view(self, fill: Insn | None = None) -> tuple[Insn, ...]:
        """What ``bpf_patch_data`` points at after the posted reallocations.

        Entries in :attr:`lost` were written past an old allocation and not copied by
        krealloc: the new buffer holds whatever the allocator returned there (MODEL: ``fill``,
        default an all-zero ``struct bpf_insn`` as with ``init_on_alloc=1``; otherwise stale heap
        bytes).  Identical to :meth:`insns` when nothing was lost (every posted driver patch).
        """
        out = list(self.insns())
        blank = fill if fill is not None else Insn(0, 0, 0, 0, 0)
        for r in self.lost:
            for i in r:
                out[i] = blank
        return tuple(out)

    def magles_registers(self) -> int:
        """``bpf_patch_magles_registers``: OR of ``1 << dst_reg`` over the patch (sic)."""
        mask = 0
        for item in self._items:
            insn = item.insn if isinstance(item, _Jump) else item
            mask |= 1 << insn.dst
        return mask

    def resolve_jmp(self, rule: str = "rfc-v2") -> None:
        """``bpf_patch_resolve_jmp``: S16_MAX placeholders jump to the end of the patch.

        rule "rfc-v2": only ``BPF_JMP`` class with ``BPF_X`` source (v2 06/14);
        rule "patch-v1": every ``BPF_JMP`` class jump (PATCH v1 drops the source test).
        ``BPF_JMP32`` is never matched; the offset must be exactly S16_MAX.
        """
        if rule not in RESOLVE_RULES:
            raise ValueError(f"unknown rule {rule!r}; choose one of {RESOLVE_RULES}")
        n = len(self._items)
        for i, item in enumerate(self._items):
            if isinstance(item, _Jump):
                continue
            code = item.opcode
            if code & 0x07 != op.BPF_JMP or item.off != op.S16_MAX:
                continue
            if rule == "rfc-v2" and code & 0x08 != op.BPF_X:
                continue
            self._items[i] = Insn(code, item.dst, item.src, n - i - 1, item.imm)

    def insns(self) -> tuple[Insn, ...]:
        """The instructions with every label jump resolved (``"end"`` = after the patch)."""
        out = []
        n = len(self._items)
        for i, item in enumerate(self._items):
            if not isinstance(item, _Jump):
                out.append(item)
                continue
            target = n if item.to == END else self._labels.get(item.to)
            if target is None:
                raise BpfVerifyError(f"patch insn {i}: jump to undefined label {item.to!r}")
            rel = target - (i + 1)
            insn = item.insn
            if insn.opcode == op.BPF_JMP32 | op.BPF_JA:
                out.append(Insn(insn.opcode, insn.dst, insn.src, insn.off, rel))
            else:
                out.append(Insn(insn.opcode, insn.dst, insn.src, rel, insn.imm))
        return tuple(out)

    def __repr__(self) -> str:
        state = f", err={self.err}" if self.err else ""
        return f"BpfPatch(len={len(self)}, capacity={self.capacity}{state})"


# ------------------------------------------------------------------------- patch checks
@dataclass(frozen=True)
class PatchViolation:
    """One way an unrolled patch breaks the contract of the call it replaces."""

    index: int      # instruction index inside the patch
    message: str


def check_patch(insns: tuple[Insn, ...] | list[Insn], *, allowed: frozenset[int],
                r1_restore_after_call: bool = True) -> list[PatchViolation]:
    """Check an unrolled patch against the contract of the call it replaces.

    The RFC does not re-verify unrolled code (kernel-facts §3: "Unrolled code is never
    verified; it must honour the contract assumed for the call").  We check it:
    - it writes only registers in ``allowed`` (R6-R9 belong to the program; R10 is the frame);
      with ``r1_restore_after_call``, ``r1 = r0`` right after a direct call is the
      xdp_kfunc_call_preserving_r1 idiom and is allowed;
    - it does not touch the stack (no use of r10: the program's stack is already sized);
    - its jumps land inside the patch or on its end;
    - it makes no kfunc, BPF-to-BPF or indirect calls (only direct kernel calls).
    """
    out: list[PatchViolation] = []
    n = len(insns)
    for i, insn in enumerate(insns):
        code, cls, operation = insn.opcode, insn.opcode & 0x07, insn.opcode & 0xF0
        written: set[int] = set()
        reads_fp = False
        if code == op.OPCODE_LD_IMM64 or cls in (op.BPF_ALU, op.BPF_ALU64, op.BPF_LDX):
            written.add(insn.dst)
            if cls == op.BPF_LDX or (cls in (op.BPF_ALU, op.BPF_ALU64) and code & 0x08):
                reads_fp = insn.src == op.BPF_REG_FP
        elif cls in (op.BPF_ST, op.BPF_STX):
            reads_fp = insn.dst == op.BPF_REG_FP or (cls == op.BPF_STX and insn.src == op.BPF_REG_FP)
            if cls == op.BPF_STX and code & 0xE0 == op.BPF_ATOMIC:
                if insn.imm == op.BPF_CMPXCHG:
                    written.add(0)
                elif insn.imm & op.BPF_FETCH:
                    written.add(insn.src)
        elif cls in (op.BPF_JMP, op.BPF_JMP32):
            if operation == op.BPF_CALL:
                if code & 0x08 or insn.src != op.BPF_HELPER_CALL:
                    kind = "an indirect" if code & 0x08 else ("a kfunc" if insn.src == op.BPF_PSEUDO_KFUNC_CALL
                                                               else "a BPF-to-BPF")
                    out.append(PatchViolation(i, f"makes {kind} call; unrolled code may only call "
                                                 "kernel functions directly"))
                written.add(0)
            elif operation == op.BPF_EXIT:
                out.append(PatchViolation(i, "exits the program from inside an unrolled kfunc"))
            else:
                rel = insn.imm if code == op.BPF_JMP32 | op.BPF_JA else insn.off
                target = i + 1 + rel
                if not 0 <= target <= n:
                    out.append(PatchViolation(i, f"jumps to patch insn {target}, outside the patch "
                                                 f"(0..{n}; {n} = the end)"))
                reads_fp = insn.dst == op.BPF_REG_FP or (bool(code & 0x08) and insn.src == op.BPF_REG_FP)
        if reads_fp:
            out.append(PatchViolation(i, "uses r10: unrolled code may not touch the program's stack"))
        for reg in sorted(written):
            if reg in allowed:
                continue
            if (reg == 1 and r1_restore_after_call and i > 0 and _is_call(insns[i - 1])
                    and insn.opcode == op.BPF_ALU64 | op.BPF_MOV | op.BPF_X and insn.src == 0):
                continue
            who = "the program (callee-saved)" if 6 <= reg <= 9 else (
                "the frame pointer" if reg == 10 else "the caller")
            out.append(PatchViolation(i, f"writes r{reg}, which belongs to {who}; allowed: "
                                         + ", ".join(f"r{r}" for r in sorted(allowed))))
    return out


def _is_call(insn: Insn) -> bool:
    return insn.opcode == op.BPF_JMP | op.BPF_CALL and insn.src == op.BPF_HELPER_CALL
