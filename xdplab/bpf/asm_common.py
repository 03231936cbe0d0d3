"""Pieces shared by the two assembly dialects: numbers, registers, labels, resolution."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from .errors import BpfAssembleError, BpfError
from .insn import Insn, Program

# A jump/call target as written: a relative offset (int) or a label name (str).
Target = int | str
Builder = Callable[[Callable[[Target], int]], Insn]

_NUMBER = re.compile(r"^[+-]?(0[xX][0-9a-fA-F]+|[0-9]+)$")
LABEL_NAME = r"[A-Za-z_.$][\w.$]*"


@dataclass(frozen=True)
class Pending:
    """A parsed statement whose jump targets may still be label names."""

    build: Builder
    line: int
    slots: int = 1


def parse_int(text: str, line: int, what: str = "number") -> int:
    text = text.strip()
    if not _NUMBER.match(text):
        raise BpfAssembleError(f"{what} {text!r} is not a number", line)
    return int(text, 0)


def check_range(value: int, lo: int, hi: int, line: int, what: str) -> int:
    if not lo <= value <= hi:
        raise BpfAssembleError(f"{what} {value} is out of range [{lo}, {hi}]", line)
    return value


def parse_target(text: str, line: int) -> Target:
    text = text.strip()
    if _NUMBER.match(text):
        return int(text, 0)
    if re.fullmatch(LABEL_NAME, text):
        return text
    raise BpfAssembleError(f"bad jump target {text!r}", line)


def resolve(pending: list[Pending], labels: Mapping[str, int],
            fallback: Callable[[str, int], int | None] | None = None) -> Program:
    """Turn pending statements into a Program, resolving labels to relative offsets."""
    insns = []
    slot = 0
    for p in pending:
        here = slot

        def rel(target: Target, _here: int = here, _line: int = p.line) -> int:
            if isinstance(target, int):
                return target
            if target in labels:
                return labels[target] - (_here + 1)
            if fallback is not None:
                found = fallback(target, _here)
                if found is not None:
                    return found - (_here + 1)
            raise BpfAssembleError(f"unknown label {target!r}", _line)

        try:
            insn = p.build(rel)
        except BpfAssembleError:
            raise
        except BpfError as exc:   # field range problems from Insn()
            raise BpfAssembleError(exc.reason, p.line) from None
        insns.append(insn)
        slot += insn.slots
    if not insns:
        raise BpfAssembleError("no instructions")
    return Program(insns)
