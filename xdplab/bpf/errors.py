"""The error hierarchy of the eBPF machine.

Every failure caused by bad bytes, bad text or a bad program is a ``BpfError``; nothing
else may escape (no IndexError, KeyError, RecursionError, MemoryError).  Subclasses say
which stage failed; ``.index`` is the instruction index in kernel numbering (8-byte slots,
so an ld_imm64 occupies two indices, as in verifier logs and ``bpftool prog dump``).
"""
from __future__ import annotations


class BpfError(Exception):
    """Base class of every error the eBPF machine raises for bad input.

    ``index`` is the instruction (slot) index the error is about, or ``None``.
    The message already starts with ``insn N:`` when an index is known.
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        self.index = index
        self.reason = message
        super().__init__(f"insn {index}: {message}" if index is not None else message)


class BpfDecodeError(BpfError):
    """Bytes that are not a valid encoding of eBPF instructions."""


class BpfAssembleError(BpfError):
    """Assembly text that cannot be turned into instructions.

    ``line`` is the 1-based line number of the text, ``index`` the instruction index the
    line would have produced (when known).
    """

    def __init__(self, message: str, line: int | None = None, index: int | None = None) -> None:
        self.line = line
        where = f"line {line}: " if line is not None else ""
        super().__init__(where + message, None)
        self.index = index


class BpfVerifyError(BpfError):
    """A program the kernel would refuse to load (structure, jumps, registers)."""


class BpfExecuteError(BpfError):
    """A fault while running: an out-of-bounds access, an exhausted budget, a bad call."""
