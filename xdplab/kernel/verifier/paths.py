"""The stack of paths still to explore: push_stack, pop_stack, update_branch_counts.

kernel/bpf/verifier.c@6.1.192:1188-1280.  A pushed path is a copy of the current state with
the instruction it resumes at; pushing counts one more unfinished branch on the parent
(the last explored state), finishing a path (exit or pruned) counts it down along the chain.
At log level 1 the log is cut back to where the path was pushed when it is popped
(``pop_log``), so a level-1 log shows the path that failed.
"""
from __future__ import annotations

from .env import BPF_COMPLEXITY_LIMIT_JMP_SEQ, E2BIG, Env, PushedPath, Refuse
from .state import VerifierState


def push_stack(env: Env, insn_idx: int, prev_insn_idx: int) -> VerifierState:
    st = env.cur.copy()
    env.stack.append(PushedPath(st, insn_idx, prev_insn_idx, env.log.len_used))
    if len(env.stack) > BPF_COMPLEXITY_LIMIT_JMP_SEQ:
        raise Refuse(f"The sequence of {len(env.stack)} jumps is too complex.", E2BIG)
    if st.parent is not None:
        st.parent.branches += 1
    return st


def update_branch_counts(env: Env, st: VerifierState | None) -> None:
    """A path ended: count it down along the parents; an explored state whose every path has
    ended becomes usable for pruning (kept in ``env.done`` so the search skips busy ones)."""
    while st is not None:
        st.branches -= 1
        if st.branches:
            break
        if st.explored:
            env.done.setdefault(st.insn_idx, []).append(st)
        st = st.parent


def pop_stack(env: Env, pop_log: bool) -> bool:
    """Resume the most recently pushed path; False when none is left."""
    if not env.stack:
        return False
    st, insn_idx, prev_insn_idx, log_pos = env.stack.pop()
    env.cur = st
    if pop_log:
        env.log.reset(log_pos)
    env.insn_idx = insn_idx
    env.prev_insn_idx = prev_insn_idx
    return True
