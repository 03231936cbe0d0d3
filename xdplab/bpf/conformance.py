"""Reading the BPF conformance suite's ``.data`` files (github.com/Alan-Jowett/bpf_conformance).

A file is a sequence of ``-- section`` blocks: ``asm`` (ubpf-dialect text), ``raw`` (hex
instruction words), ``mem`` (hex bytes), ``result`` (expected r0), ``error`` (an expected
failure), ``c`` (the C source, informational) and ``no register offset`` (a harness option,
informational).  ``#`` lines before the first section are comments and licence headers.
"""
from __future__ import annotations

from dataclasses import dataclass

from .assembler import assemble
from .errors import BpfAssembleError
from .insn import Program

KNOWN_SECTIONS = ("asm", "raw", "mem", "result", "error", "c", "no register offset")


@dataclass(frozen=True)
class ConformanceCase:
    name: str
    asm: str | None
    raw: bytes | None
    mem: bytes
    result: int | None
    error: str | None

    def program(self) -> Program:
        """The program: ``raw`` bytes if given (they are what the suite checks), else ``asm``."""
        if self.raw is not None:
            return Program.decode(self.raw)
        if self.asm is None:
            raise BpfAssembleError(f"{self.name}: no asm or raw section")
        return assemble(self.asm, "ubpf")


def parse_data_file(text: str, name: str = "<data>") -> ConformanceCase:
    """Parse one ``.data`` file; an unknown ``-- section`` is a :class:`BpfAssembleError`."""
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("-- "):
            current = line[3:].strip()
            if current not in KNOWN_SECTIONS:
                raise BpfAssembleError(f"{name}: unknown directive {line.strip()!r}", lineno)
            sections.setdefault(current, [])
            continue
        if current is not None:
            sections[current].append(line)
    asm = "\n".join(sections["asm"]) if "asm" in sections else None
    raw = None
    if "raw" in sections:
        words = [w for line in sections["raw"] for w in line.split("#", 1)[0].split()]
        if all(w.lower().startswith("0x") for w in words):
            raw = b"".join(int(w, 16).to_bytes(8, "little") for w in words)
        else:
            raw = bytes(int(w, 16) for w in words)
    mem_words = [w for line in sections.get("mem", []) for w in line.split("#", 1)[0].split()]
    mem = bytes(int(w, 16) for w in mem_words)
    result_lines = [ln.split("#", 1)[0].strip() for ln in sections.get("result", [])]
    result_lines = [ln for ln in result_lines if ln]
    result = int(result_lines[0], 0) if result_lines else None
    error = "\n".join(sections["error"]).strip() if "error" in sections else None
    return ConformanceCase(name, asm, raw, mem, result, error)
