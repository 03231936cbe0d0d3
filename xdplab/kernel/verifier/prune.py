"""State pruning: is the current state covered by one already explored at this instruction?

kernel/bpf/verifier.c@6.1.192: range_within (11654), check_ids (11677), regsafe (11793),
stacksafe (11916), refsafe (11983), func_states_equal (12017), states_equal (12037),
states_maybe_looping (12191), is_state_visited (12210).

MODEL: this verifier does not track liveness (REG_LIVE_READ): every register and stack slot of an
explored state counts as read.  It prunes less often than the kernel (``insns_processed`` can
be higher), never more.  Precision marks come from :mod:`.precision`.
"""
from __future__ import annotations

from . import tnum as tn
from .env import EINVAL, Env, Refuse
from .precision import mark_all_scalars_imprecise, propagate_precision
from .regstate import (NOT_INIT, PTR_MAYBE_NULL, PTR_TO_MAP_KEY,
                       PTR_TO_MAP_VALUE, PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_STACK,
                       SCALAR_VALUE, Reg, base_type)
from .state import (BPF_REG_SIZE, STACK_INVALID, STACK_MISC, STACK_ZERO, FuncState, LoopKey,
                    VerifierState)


def _range_within(old: Reg, cur: Reg) -> bool:
    return (old.umin <= cur.umin and old.umax >= cur.umax and old.smin <= cur.smin
            and old.smax >= cur.smax and old.u32_min <= cur.u32_min and old.u32_max >= cur.u32_max
            and old.s32_min <= cur.s32_min and old.s32_max >= cur.s32_max)


def _check_ids(old_id: int, cur_id: int, idmap: dict[int, int]) -> bool:
    if old_id in idmap:
        return idmap[old_id] == cur_id
    idmap[old_id] = cur_id
    return True


def _same_head(old: Reg, cur: Reg) -> bool:
    """memcmp up to ``id``: type, off and the union (range / map / frame)."""
    return (old.type == cur.type and old.off == cur.off and old.range == cur.range
            and old.map is cur.map and old.frameno == cur.frameno and old.mem_size == cur.mem_size)


def regsafe(env: Env, old: Reg, cur: Reg, idmap: dict[int, int]) -> bool:
    if old.type == NOT_INIT:       # tested before building the exact keys: the common cheap case
        return True
    equal = old.exact_key() == cur.exact_key()
    if old.type == PTR_TO_STACK:
        return equal and old.frameno == cur.frameno
    if equal:
        return True
    if cur.type == NOT_INIT:
        return False
    bt = base_type(old.type)
    if bt == SCALAR_VALUE:
        if cur.type != SCALAR_VALUE:
            return False
        if env.track_precision and not old.precise:
            return True
        return _range_within(old, cur) and tn.tin(old.var_off, cur.var_off)
    if bt in (PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE):
        if old.type & PTR_MAYBE_NULL:
            if not cur.type & PTR_MAYBE_NULL:
                return False
            if not _same_head(old, cur):
                return False
            return _check_ids(old.id, cur.id, idmap)
        return _same_head(old, cur) and _range_within(old, cur) and tn.tin(old.var_off, cur.var_off)
    if bt in (PTR_TO_PACKET, PTR_TO_PACKET_META):
        if cur.type != old.type:
            return False
        if old.range < 0 or cur.range < 0:
            if old.range != cur.range:
                return False
        elif old.range > cur.range:
            return False
        if old.off != cur.off:
            return False
        if old.id and not _check_ids(old.id, cur.id, idmap):
            return False
        return _range_within(old, cur) and tn.tin(old.var_off, cur.var_off)
    return False   # ctx, map pointers, pkt_end ...: only an exact match is safe


def stacksafe(env: Env, old: FuncState, cur: FuncState, idmap: dict[int, int]) -> bool:
    for i in range(old.allocated_stack):
        spi = i // BPF_REG_SIZE
        k = i % BPF_REG_SIZE
        ot = old.stack[spi].slot_type[k]
        if ot == STACK_INVALID:
            continue
        if env.caps.allow_uninit_stack and ot == STACK_MISC:
            continue
        if i >= cur.allocated_stack:
            return False
        ct = cur.stack[spi].slot_type[k]
        if ot == STACK_MISC and ct == STACK_ZERO:
            continue
        if ot != ct:
            return False
        if k != BPF_REG_SIZE - 1:
            continue
        if not old.stack[spi].is_spilled_reg():
            continue
        if not regsafe(env, old.stack[spi].spilled, cur.stack[spi].spilled, idmap):
            return False
    return True


def states_equal(env: Env, old: VerifierState, cur: VerifierState) -> bool:
    if old.curframe != cur.curframe:
        return False
    if old.refs != cur.refs:           # refsafe
        return False
    for fo, fc in zip(old.frames, cur.frames):
        if fo.callsite != fc.callsite:
            return False
        idmap: dict[int, int] = {}
        if not all(regsafe(env, ro, rc, idmap) for ro, rc in zip(fo.regs, fc.regs)):
            return False
        if not stacksafe(env, fo, fc, idmap):
            return False
    return True


def _loop_key(st: VerifierState) -> LoopKey:
    return (st.curframe,) + tuple(r.exact_key() for r in st.cur.regs)


# states_maybe_looping (verifier.c@6.1.192:12191) is a memcmp of the current frame's registers:
# explored states are indexed by that key (their registers no longer change but for precision
# marks, which the memcmp up to ``parent`` ignores too), so the check is a dictionary lookup.


def is_state_visited(env: Env, insn_idx: int) -> bool:
    """True: an explored state covers this one (prune).  May add the current state to the
    explored list, as the kernel's heuristics say; refuses an infinite loop."""
    cur = env.cur
    if insn_idx not in env.prune_points:
        return False
    add_new_state = (env.jmps_processed - env.prev_jmps_processed >= 2
                     and env.insn_processed - env.prev_insn_processed >= 8)
    explored = env.explored.setdefault(insn_idx, [])
    by_key = env.explored_keys.setdefault(insn_idx, {})
    states_cnt = len(explored)
    # The kernel walks the list once; states still being explored (branches > 0) are only
    # checked for an infinite loop, which needs bit-identical registers: looked up by key.
    if by_key:
        cur_key = _loop_key(cur)
        for old in by_key.get(cur_key, ()):
            if old.branches and states_equal(env, old, cur):
                raise Refuse(f"infinite loop detected at insn {insn_idx}", EINVAL)
    done = env.done.get(insn_idx, ())
    for old in done:
        if states_equal(env, old, cur):
            propagate_precision(env, old)
            return True
    busy = len(done) < len(explored)
    if busy and (env.jmps_processed - env.prev_jmps_processed < 20
                 and env.insn_processed - env.prev_insn_processed < 100):
        add_new_state = False
    env.max_states_per_insn = max(env.max_states_per_insn, states_cnt)
    if not add_new_state:
        return False
    env.total_states += 1
    env.peak_states += 1
    env.prev_jmps_processed = env.jmps_processed
    env.prev_insn_processed = env.insn_processed
    if env.caps.bpf_capable:
        mark_all_scalars_imprecise(cur)
    new = cur.copy()
    new.insn_idx = insn_idx
    new.explored = True
    new.loop_key = _loop_key(new)
    explored.append(new)
    by_key.setdefault(new.loop_key, []).append(new)
    cur.parent = new
    cur.branches = 1
    cur.first_insn_idx = insn_idx
    cur.history = []
    for f in cur.frames:
        for r in f.regs:
            r.written = False
        for s in f.stack:
            s.spilled.written = False
    return False
