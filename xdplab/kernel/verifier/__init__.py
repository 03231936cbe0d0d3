"""An XDP verifier that refuses what Linux 6.1's verifier refuses, in the kernel's words.

``verify(program, prog_type="xdp", *, maps=(), log_level=1, kfuncs=None) -> VerifierResult``.

Abstract interpretation as kernel/bpf/verifier.c@6.1.192 does it: register types and scalar
bounds (tnum + signed/unsigned, 64 and 32 bit), packet ranges learnt from comparisons with
data_end / data, the stack slot by slot, branch exploration with state pruning, bounded loops,
BPF-to-BPF calls, helper and kfunc argument checks, and the kernel's log.  One module per job:
tnum, regstate (registers and bounds), state (frames), log, cfg (pre-walk passes), mem, alu, jmp,
calls, prune, paths, core.  Not modelled: bpf_loop and callbacks, BTF-typed pointers beyond kfunc
arguments, liveness and precision marks (pruning is conservative), unprivileged loaders' rules
beyond the flags in :class:`Caps`, speculative-execution sanitation.
"""
from .core import verify
from .env import Caps
from .result import VerifierResult

__all__ = ["Caps", "VerifierResult", "verify"]
