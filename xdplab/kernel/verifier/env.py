"""``struct bpf_verifier_env``: what one verification carries, and how a refusal travels.

The kernel's checks print a message with ``verbose()`` and return a negative errno up the call
chain; here the check that refuses raises :class:`Refuse` (message + errno), and
:func:`.core.verify` turns it into the result.  ``Caps`` are the capabilities the kernel reads
once in bpf_check (verifier.c@6.1.192:15594-15599); the workbench loads as root, as the kernel
selftests' privileged runs do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, NamedTuple

from ..kfuncs import KfuncTable
from ..maps import BpfMap
# The errno values live in ..uapi (errno-base.h); re-exported for the verifier's modules.
from ..uapi import E2BIG, EACCES, EFAULT, EINVAL, ENOTSUPP
from .log import VerifierLog
from .state import LoopKey, VerifierState

BPF_COMPLEXITY_LIMIT_INSNS = 1_000_000     # include/linux/bpf.h@6.1.192:1492
BPF_COMPLEXITY_LIMIT_JMP_SEQ = 8192        # verifier.c@6.1.192:180
BPF_MAX_VAR_OFF = 1 << 29                  # include/linux/bpf_verifier.h@6.1.192:16
MAX_PACKET_OFF = 0xFFFF                    # verifier.c@6.1.192:4105


class Refuse(Exception):
    """A check refused the program: ``verbose(env, msg); return -errno``."""

    def __init__(self, message: str, errno: int = EINVAL, insn: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errno = errno
        self.insn = insn


class Caps(NamedTuple):
    """bpf_check's capability-derived flags; all True for root (CAP_SYS_ADMIN)."""

    bpf_capable: bool = True          # back-edges (bounded loops), bpf-to-bpf calls, kfuncs
    allow_ptr_leaks: bool = True      # perfmon_capable: pointer compares, leaks, partial spills
    allow_uninit_stack: bool = True   # perfmon_capable: reading STACK_INVALID bytes
    bypass_spec_v1: bool = True       # no speculative-path sanitation


class RawInsn(NamedTuple):
    """One 8-byte ``struct bpf_insn`` slot as the kernel sees it."""

    code: int
    dst: int
    src: int
    off: int
    imm: int


@dataclass
class SubprogInfo:
    """``struct bpf_subprog_info``: where a function starts and its stack depth."""

    start: int
    stack_depth: int = 0


class PushedPath(NamedTuple):
    """One ``struct bpf_verifier_stack_elem`` (verifier.c@6.1.192:1188 push_stack): the state to
    resume, where it resumes, and where the log stood when it was pushed."""

    state: VerifierState
    insn_idx: int
    prev_insn_idx: int
    log_pos: int


@dataclass
class Env:
    """The verifier's environment for one program (MODEL: the fields XDP verification needs)."""

    insns: tuple[RawInsn, ...]
    log: VerifierLog
    caps: Caps
    maps: Mapping[int, BpfMap]                 # map fd -> BpfMap
    kfuncs: KfuncTable | None
    helpers: frozenset[int]                    # helper ids the program type offers
    prog_type: str
    expected_attach_type: int = 37             # BPF_XDP (include/uapi/linux/bpf.h@6.1.192)
    subprogs: list[SubprogInfo] = field(default_factory=list)
    prune_points: set[int] = field(default_factory=set)
    explored: dict[int, list[VerifierState]] = field(default_factory=dict)
    explored_keys: dict[int, dict[LoopKey, list[VerifierState]]] = field(default_factory=dict)
    done: dict[int, list[VerifierState]] = field(default_factory=dict)   # explored, branches == 0
    aux_ptr_type: dict[int, int] = field(default_factory=dict)
    insn_idx: int = 0
    prev_insn_idx: int = -1
    insn_processed: int = 0
    prev_insn_processed: int = 0
    jmps_processed: int = 0
    prev_jmps_processed: int = 0
    total_states: int = 0
    peak_states: int = 0
    max_states_per_insn: int = 0
    id_gen: int = 0
    # env->cur_state: None only before do_check_common made the entry state; read it through
    # ``cur``, which refuses with the kernel's internal-error errno instead of handing out None.
    cur_state: VerifierState | None = None
    stack: list[PushedPath] = field(default_factory=list)
    scratched_regs: int = 0
    scratched_slots: int = 0
    prev_log_len: int = 0
    prev_insn_print_len: int = 0
    track_precision: bool = True               # precision tracking on (no BPF-to-BPF calls)
    complexity_limit: int = BPF_COMPLEXITY_LIMIT_INSNS

    @property
    def cur(self) -> VerifierState:
        """env->cur_state, the state being walked.  Reading it before the walk began is a bug of
        this model; like the kernel's "verifier internal error" checks (e.g.
        verifier.c@6.1.192:6007) it ends the verification with -EFAULT, not an AttributeError."""
        st = self.cur_state
        if st is None:
            raise Refuse("verifier internal error: no current state (MODEL)", EFAULT)
        return st

    @cur.setter
    def cur(self, st: VerifierState) -> None:
        self.cur_state = st

    def verbose(self, text: str) -> None:
        self.log(text)

    def new_id(self) -> int:
        self.id_gen += 1
        return self.id_gen

    def mark_reg_scratched(self, regno: int) -> None:
        self.scratched_regs |= 1 << regno

    def mark_stack_slot_scratched(self, spi: int) -> None:
        self.scratched_slots |= 1 << spi

    def mark_all_scratched(self) -> None:
        self.scratched_regs = (1 << 32) - 1
        self.scratched_slots = (1 << 64) - 1
