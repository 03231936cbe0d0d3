"""Precision tracking: which scalars' exact values a safety decision depended on.

kernel/bpf/verifier.c@6.1.192: backtrack_insn (2558), mark_all_scalars_precise (2789),
mark_all_scalars_imprecise (2823), __mark_chain_precision (2935), propagate_precision (12150).
A root loader starts every checkpoint with all scalars imprecise; a decision that used a
scalar's value (a decided branch, pointer arithmetic, a helper's size argument, a spill through
a non-fp pointer) marks it precise, walking back through the instructions of the path into the
explored states it came from.  regsafe (:mod:`.prune`) lets an imprecise scalar of an explored
state match any scalar.

MODEL: only programs without BPF-to-BPF calls are tracked; with subprograms every scalar is
treated as precise (the kernel's "big hammer", mark_all_scalars_precise, applied up front).
Liveness (REG_LIVE_READ) is not tracked, so propagate_precision propagates every precise mark
of the matching state, not only the read ones: more marks, never fewer.
"""
from __future__ import annotations

from .env import Env
from .log import print_bpf_insn
from .regstate import SCALAR_VALUE
from .state import BPF_REG_SIZE, VerifierState


def _spi(off: int) -> int:
    """(-off - 1) / BPF_REG_SIZE with C's truncating division."""
    n = -off - 1
    q = abs(n) // BPF_REG_SIZE
    return q if n >= 0 else -q


def backtrack_insn(env: Env, idx: int, regs: set[int], stack: set[int]) -> bool:
    """Move the precision demand from after instruction ``idx`` to before it.  True where
    the kernel's backtrack_insn returns -ENOTSUPP (the caller then marks every scalar
    precise), False when the demand moved."""
    ins = env.insns[idx]
    code, dst, src = ins.code, ins.dst, ins.src
    cls, op, mode = code & 7, code & 0xF0, code & 0xE0
    if code == 0:
        return False
    if env.log.level & 2:
        mask = sum(1 << r for r in regs)
        smask = sum(1 << s for s in stack)
        env.verbose(f"regs={mask:x} stack={smask:x} before {idx}: "
                    + print_bpf_insn(code, dst, src, ins.off, ins.imm) + "\n")
    if cls in (4, 7):
        if dst not in regs or op in (0x80, 0xD0):
            return False
        if op == 0xB0:
            regs.discard(dst)
            if code & 0x08:
                regs.add(src)
        elif code & 0x08:
            regs.add(src)
        return False
    atomic_fetch = cls == 3 and mode == 0xC0 and ins.imm & 0x01
    if cls == 1 or atomic_fetch:
        load_reg, base = (dst, src) if cls == 1 else ((0 if ins.imm == 0xF1 else src), dst)
        if load_reg not in regs:
            return False
        regs.discard(load_reg)
        if base != 10:
            return False
        spi = _spi(ins.off)
        if not 0 <= spi < 64:
            return True
        stack.add(spi)
        return False
    if cls in (2, 3):
        if dst in regs:
            return True
        if dst != 10:
            return False
        spi = _spi(ins.off)
        if not 0 <= spi < 64:
            return True
        if spi not in stack:
            return False
        stack.discard(spi)
        if cls == 3:
            regs.add(src)
        return False
    if cls in (5, 6):
        if op == 0x80:
            if src == 1 or (src == 2 and ins.imm == 0):
                return True
            regs.discard(0)
            if regs & {1, 2, 3, 4, 5}:
                return True     # "BUG regs": the kernel fails; we fall back to the big hammer
        elif op == 0x90:
            return True
        elif code & 0x08 and (dst in regs or src in regs):
            regs.update((dst, src))
        return False
    if cls == 0:
        if dst not in regs:
            return False
        regs.discard(dst)
        if mode in (0x20, 0x40):
            return True
    return False


def _set_all_scalars_precise(st: VerifierState, precise: bool) -> None:
    """The loop both kernel functions share: every scalar register and spilled scalar of
    every frame of ``st`` (verifier.c@6.1.192:2803-2820, 2828-2845)."""
    for f in st.frames:
        for r in f.regs:
            if r.type == SCALAR_VALUE:
                r.precise = precise
        for slot in f.stack:
            if slot.is_spilled_reg() and slot.spilled.type == SCALAR_VALUE:
                slot.spilled.precise = precise


def mark_all_scalars_precise(st: VerifierState | None) -> None:
    """mark_all_scalars_precise (verifier.c@6.1.192:2789), the "big hammer" when backtracking
    gives up.  The kernel starts at ``st->parent``; this starts at ``st`` itself, which marks
    more and so prunes less (MODEL: conservative)."""
    while st is not None:
        _set_all_scalars_precise(st, True)
        st = st.parent


def mark_all_scalars_imprecise(st: VerifierState) -> None:
    """mark_all_scalars_imprecise (verifier.c@6.1.192:2823)."""
    _set_all_scalars_precise(st, False)


def mark_chain_precision(env: Env, regno: int = -1, spi: int = -1, *, skip_first: bool = True) -> None:
    """__mark_chain_precision for the current frame; ``skip_first``: the current instruction
    (the last one in the history) is the one asking, not one to walk back through."""
    if not env.caps.bpf_capable or regno < 0 and spi < 0:
        return
    st = env.cur
    if not env.track_precision:
        return
    func = st.cur
    regs: set[int] = set()
    stack: set[int] = set()
    if regno >= 0:
        reg = func.regs[regno]
        if reg.type != SCALAR_VALUE:
            return
        reg.precise = True
        regs.add(regno)
    if spi >= 0:
        if spi >= len(func.stack) or not func.stack[spi].is_spilled_reg() \
                or func.stack[spi].spilled.type != SCALAR_VALUE:
            if not regs:
                return
        else:
            func.stack[spi].spilled.precise = True
            stack.add(spi)
    hist = st.history
    if skip_first and hist and hist[-1] == env.insn_idx:
        hist = hist[:-1]
    while True:
        if env.log.level & 2:
            env.verbose(f"last_idx {hist[-1] if hist else -1} first_idx {hist[0] if hist else -1}\n")
        for idx in reversed(hist):
            if backtrack_insn(env, idx, regs, stack):
                mark_all_scalars_precise(st)
                return
            if not regs and not stack:
                return
        parent = st.parent
        if parent is None:
            return
        st = parent
        new_marks = False
        func = st.frames[0]
        for i in list(regs):
            r = func.regs[i]
            if r.type != SCALAR_VALUE:
                regs.discard(i)
                continue
            new_marks |= not r.precise
            r.precise = True
        for i in list(stack):
            if i >= len(func.stack):
                mark_all_scalars_precise(st)
                return
            slot = func.stack[i]
            if not slot.is_spilled_reg() or slot.spilled.type != SCALAR_VALUE:
                stack.discard(i)
                continue
            new_marks |= not slot.spilled.precise
            slot.spilled.precise = True
        if not regs and not stack or not new_marks:
            return
        hist = st.history


def propagate_precision(env: Env, old: VerifierState) -> None:
    """A pruned path inherits the precision its matching explored state needed."""
    for i, r in enumerate(old.cur.regs[:10]):
        if r.type == SCALAR_VALUE and r.precise:
            mark_chain_precision(env, i, skip_first=False)
    for i, slot in enumerate(old.cur.stack):
        if slot.is_spilled_reg() and slot.spilled.type == SCALAR_VALUE and slot.spilled.precise:
            mark_chain_precision(env, spi=i, skip_first=False)
