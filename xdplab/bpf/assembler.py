"""``assemble(text, dialect)``: text to :class:`Program`, for both dialects."""
from __future__ import annotations

from types import MappingProxyType

from .asm_llvm import parse_llvm
from .asm_ubpf import parse_ubpf
from .errors import BpfAssembleError
from .insn import Program

DIALECTS = MappingProxyType({"llvm": parse_llvm, "ubpf": parse_ubpf})


def assemble(text: str, dialect: str = "llvm") -> Program:
    """Assemble ``text`` in the given dialect ("llvm" or "ubpf").

    Labels (``name:``) and comments are accepted in both.  Every problem is a
    :class:`BpfAssembleError` naming the line.
    """
    if not isinstance(text, str):
        raise BpfAssembleError(f"expected str, got {type(text).__name__}")
    parse = DIALECTS.get(dialect)
    if parse is None:
        raise BpfAssembleError(f"unknown dialect {dialect!r}; choose one of {sorted(DIALECTS)}")
    try:
        return parse(text)
    except RecursionError:  # pragma: no cover - defensive, parsers are iterative
        raise BpfAssembleError("text too deeply nested") from None
