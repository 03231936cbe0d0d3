"""The verifier's answer, a frozen value (DESIGN.md §2 contract)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VerifierResult:
    """What BPF_PROG_LOAD's verifier said.

    ``accepted``; ``error``: the kernel's message (the last line it printed before giving up),
    None when accepted; ``insn``: the instruction (kernel slot numbering) the error is about,
    or None; ``log``: the verifier log at the requested level, ending with the "processed N
    insns" line; ``insns_processed``: instructions the walk visited (the kernel's complexity
    measure, limit 1,000,000); ``errno``: what the syscall would return (positive), 0 when
    accepted; ``stack_depth``: per function, bytes of stack used.
    """

    accepted: bool
    error: str | None
    insn: int | None
    log: str
    insns_processed: int
    errno: int = 0
    stack_depth: tuple[int, ...] = ()
