"""Frames and verifier states: ``struct bpf_func_state`` and ``struct bpf_verifier_state``.

include/linux/bpf_verifier.h@6.1.192: a function state holds R0-R10 and the stack as 8-byte
slots, each with a spilled register and eight ``slot_type`` bytes (STACK_INVALID, STACK_SPILL,
STACK_MISC, STACK_ZERO); ``slot_type[(slot - i) % 8]`` with ``slot = -off - 1`` addresses the
byte at ``fp + off + i``, so slot_type[7] is the lowest byte of a slot (verifier.c@6.1.192:3241).
A verifier state holds up to MAX_CALL_FRAMES (8) frames, a parent pointer (the last explored
state this path came from) and ``branches`` (unfinished paths below it, update_branch_counts).
States are copied where the kernel copies them (copy_verifier_state).
"""
from __future__ import annotations

from typing import Iterator

from .regstate import NOT_INIT, PTR_TO_STACK, ExactKey, Reg

BPF_REG_SIZE = 8               # include/linux/bpf_verifier.h@6.1.192:197
MAX_BPF_REG = 11               # include/uapi/linux/bpf.h@6.1.192:69 (__MAX_BPF_REG: R0-R10)
MAX_CALL_FRAMES = 8            # include/linux/bpf_verifier.h@6.1.192:273
MAX_BPF_STACK = 512            # include/linux/filter.h@6.1.192:87

# enum bpf_stack_slot_type (bpf_verifier.h@6.1.192:186) and slot_type_char (verifier.c@6.1.192:539).
STACK_INVALID, STACK_SPILL, STACK_MISC, STACK_ZERO = 0, 1, 2, 3
SLOT_CHAR = "?rm0"

# The current frame's number and the exact keys of its registers (prune.py's _loop_key).
LoopKey = tuple[int | ExactKey, ...]


class StackSlot:
    """``struct bpf_stack_state``: a spilled register and the type of each of the 8 bytes."""

    __slots__ = ("spilled", "slot_type")

    def __init__(self) -> None:
        self.spilled = Reg()
        self.slot_type = [STACK_INVALID] * BPF_REG_SIZE

    def copy(self) -> "StackSlot":
        s = StackSlot.__new__(StackSlot)
        s.spilled = self.spilled.copy()
        s.slot_type = list(self.slot_type)
        return s

    def is_spilled_reg(self) -> bool:
        """is_spilled_reg: the slot's top byte holds a spill."""
        return self.slot_type[BPF_REG_SIZE - 1] == STACK_SPILL


class FuncState:
    """``struct bpf_func_state``: one call frame."""

    __slots__ = ("regs", "stack", "callsite", "frameno", "subprogno")

    def __init__(self, callsite: int, frameno: int, subprogno: int) -> None:
        self.regs = [Reg() for _ in range(MAX_BPF_REG)]
        self.stack: list[StackSlot] = []
        self.callsite = callsite
        self.frameno = frameno
        self.subprogno = subprogno

    @property
    def allocated_stack(self) -> int:
        return len(self.stack) * BPF_REG_SIZE

    def grow_stack(self, size: int) -> None:
        """grow_stack_state: make room for ``size`` bytes (a multiple of 8)."""
        while len(self.stack) * BPF_REG_SIZE < size:
            self.stack.append(StackSlot())

    def copy(self) -> "FuncState":
        f = FuncState.__new__(FuncState)
        f.regs = [r.copy() for r in self.regs]
        f.stack = [s.copy() for s in self.stack]
        f.callsite, f.frameno, f.subprogno = self.callsite, self.frameno, self.subprogno
        return f

    def init_regs(self) -> None:
        """init_reg_state: everything NOT_INIT, R10 = fp0 of this frame."""
        for r in self.regs:
            r.set_not_init()
        fp = self.regs[10]
        fp.set_pointer(PTR_TO_STACK, frameno=self.frameno)


class VerifierState:
    """``struct bpf_verifier_state``."""

    __slots__ = ("frames", "parent", "branches", "insn_idx", "first_insn_idx", "explored", "history",
                 "refs", "loop_key")

    def __init__(self, frames: list[FuncState]) -> None:
        self.frames = frames
        self.parent: VerifierState | None = None
        self.branches = 1
        self.insn_idx = 0
        self.first_insn_idx = 0
        self.explored = False
        # Instructions processed since the parent checkpoint, in order: the kernel keeps only
        # the jumps (jmp_history) and derives the rest; precision backtracking walks this.
        self.history: list[int] = []
        # acquired references (id, insn_idx): struct bpf_reference_state; MODEL: one list for
        # the whole call chain (the kernel copies it between caller and callee frames).
        self.refs: list[tuple[int, int]] = []
        self.loop_key: LoopKey | None = None   # explored states: exact key of the current frame

    @property
    def curframe(self) -> int:
        return len(self.frames) - 1

    @property
    def cur(self) -> FuncState:
        return self.frames[-1]

    def copy(self) -> "VerifierState":
        """copy_verifier_state (the copy keeps the parent; branches are copied too)."""
        s = VerifierState([f.copy() for f in self.frames])
        s.parent = self.parent
        s.branches = self.branches
        s.insn_idx = self.insn_idx
        s.first_insn_idx = self.first_insn_idx
        s.history = list(self.history)
        s.refs = list(self.refs)
        return s

    def all_regs(self) -> Iterator[Reg]:
        """bpf_for_each_reg_in_vstate: every register and every spilled register, all frames."""
        for f in self.frames:
            yield from f.regs
            for slot in f.stack:
                if slot.is_spilled_reg():
                    yield slot.spilled


def new_main_state() -> VerifierState:
    """The entry state of do_check_common for the main program: R1 = ctx, R10 = fp."""
    f = FuncState(callsite=-1, frameno=0, subprogno=0)   # BPF_MAIN_FUNC callsite
    f.init_regs()
    return VerifierState([f])


__all__ = ["BPF_REG_SIZE", "FuncState", "LoopKey", "MAX_BPF_REG", "MAX_BPF_STACK", "MAX_CALL_FRAMES",
           "NOT_INIT", "SLOT_CHAR", "STACK_INVALID", "STACK_MISC", "STACK_SPILL", "STACK_ZERO",
           "StackSlot", "VerifierState", "new_main_state"]
