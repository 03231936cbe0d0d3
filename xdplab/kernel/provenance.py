"""Where every instruction of a loaded program came from, and the views built on it.

Each instruction of the xlated program carries an :class:`Origin`: the index of the original
instruction it came from and the pass that made it ("original", "map-fd", "ctx-rewrite",
"unroll:<driver>", "default-unroll", "call:<routine>").  :class:`InsnDiff` pairs them as
CPython's ``dis.Bytecode`` pairs code and text: structured rows, with ``to_text()`` and
``to_html()`` views; the HTML gives every original instruction one colour on both sides, as
Compiler Explorer colours source lines and their assembly.
"""
from __future__ import annotations

from types import MappingProxyType

import html
import re
from dataclasses import dataclass
from typing import Callable

from ..bpf.disasm import format_insn
from ..bpf.insn import Insn, Program


@dataclass(frozen=True)
class Origin:
    index: int          # index (not slot) of the original instruction
    pass_name: str
    note: str = ""


@dataclass(frozen=True)
class DiffRow:
    """One original instruction and what the pipeline made of it."""

    index: int
    slot: int
    insn: Insn
    pass_name: str                      # the pass that rewrote it ("original" if none did)
    note: str
    xlated: tuple[tuple[int, Insn], ...]  # (slot in the xlated program, instruction)

    @property
    def changed(self) -> bool:
        return self.pass_name != "original"


PALETTE = ("#fde2e4", "#e2ece9", "#dfe7fd", "#fff1c1", "#e8dff5", "#d7f2e3", "#fbe7c6",
           "#dbeafe", "#fce1f3", "#e6f4d7")
PASS_COLOURS = MappingProxyType({"original": "#888888", "ctx-rewrite": "#1f77b4", "map-fd": "#7f7f7f",
                "default-unroll": "#d62728", "fixup-call": "#9467bd"})


def pass_colour(name: str) -> str:
    if name.startswith("unroll:"):
        return "#2ca02c"
    if name.startswith("call:"):
        return "#9467bd"
    return PASS_COLOURS.get(name, "#444444")


@dataclass(frozen=True)
class InsnDiff:
    """Rows pairing each original instruction with the xlated instructions it became."""

    rows: tuple[DiffRow, ...]
    title: str = ""
    formatter: Callable[[int, Insn], str] | None = None
    original_formatter: Callable[[int, Insn], str] | None = None

    def _fmt(self, slot: int, insn: Insn) -> str:
        return self.formatter(slot, insn) if self.formatter else format_insn(insn)

    def _ofmt(self, slot: int, insn: Insn) -> str:
        return self.original_formatter(slot, insn) if self.original_formatter else format_insn(insn)

    def to_text(self, width: int = 52) -> str:
        """Side by side, numbered like ``bpftool prog dump xlated``."""
        out = []
        if self.title:
            out.append(self.title)
        out.append(f"{'original':<{width}} | xlated")
        out.append("-" * width + "-+-" + "-" * width)
        for row in self.rows:
            left = f"{row.slot:4d}: {self._ofmt(row.slot, row.insn)}"
            tag = "" if not row.changed else f"  [{row.pass_name}]"
            rights = [f"{s:4d}: {self._fmt(s, i)}" for s, i in row.xlated] or ["      (removed)"]
            for k, right in enumerate(rights):
                l = (left[:width - 1] + "…") if len(left) > width else left
                out.append(f"{(l if k == 0 else ''):<{width}} | {right}{tag if k == 0 else ''}")
        return "\n".join(out) + "\n"

    def to_html(self) -> str:
        """A two-column table; each original instruction keeps one background colour on both
        sides, and each rewritten row names its pass in that pass's colour."""
        parts = ['<table class="xdplab-diff" style="border-collapse:collapse;'
                 'font-family:monospace;font-size:11px">']
        if self.title:
            parts.append(f'<caption style="text-align:left;font-weight:bold">{html.escape(self.title)}</caption>')
        parts.append('<tr><th style="text-align:left;padding:2px 8px">original</th>'
                     '<th style="text-align:left;padding:2px 8px">pass</th>'
                     '<th style="text-align:left;padding:2px 8px">xlated</th></tr>')
        for row in self.rows:
            bg = PALETTE[row.index % len(PALETTE)]
            n = max(1, len(row.xlated))
            for k in range(n):
                parts.append(f'<tr style="background:{bg}" data-origin="{row.index}" data-pass="{html.escape(row.pass_name)}">')
                if k == 0:
                    parts.append(f'<td rowspan="{n}" style="padding:1px 8px;vertical-align:top;white-space:pre">'
                                 f'{row.slot:4d}: {html.escape(self._ofmt(row.slot, row.insn))}</td>')
                    colour = pass_colour(row.pass_name)
                    tip = f' title="{html.escape(row.note)}"' if row.note else ""
                    parts.append(f'<td rowspan="{n}"{tip} style="padding:1px 6px;vertical-align:top;'
                                 f'color:{colour};white-space:nowrap">'
                                 f'{html.escape(row.pass_name) if row.changed else ""}</td>')
                if row.xlated:
                    s, i = row.xlated[k]
                    parts.append(f'<td style="padding:1px 8px;white-space:pre">{s:4d}: {html.escape(self._fmt(s, i))}</td>')
                else:
                    parts.append('<td style="padding:1px 8px"><i>removed</i></td>')
                parts.append("</tr>")
        parts.append("</table>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __str__(self) -> str:
        return self.to_text()


def build_diff(original: Program, xlated: Program, origins: tuple[Origin, ...],
               formatter: Callable[[int, Insn], str] | None = None, title: str = "",
               original_formatter: Callable[[int, Insn], str] | None = None) -> InsnDiff:
    grouped: dict[int, list[tuple[int, Insn]]] = {i: [] for i in range(len(original))}
    pass_of: dict[int, tuple[str, str]] = {}
    for j, (insn, origin) in enumerate(zip(xlated, origins)):
        grouped[origin.index].append((xlated.slot_of(j), insn))
        if origin.pass_name != "original":
            pass_of[origin.index] = (origin.pass_name, origin.note)
    rows = []
    for i, insn in enumerate(original):
        name, note = pass_of.get(i, ("original", ""))
        rows.append(DiffRow(i, original.slot_of(i), insn, name, note, tuple(grouped[i])))
    return InsnDiff(tuple(rows), title, formatter, original_formatter)


_MEM = re.compile(r"\(r(\d+) ([+-]) (\d+)\)")
_GOTO = re.compile(r"goto ([+-]\d+)$")


def bpftool_style(text: str) -> str:
    """Our LLVM text in the spelling of the kernel's print_bpf_insn (bpftool xlated)."""
    text = _MEM.sub(lambda m: f"(r{m.group(1)} {m.group(2)}{m.group(3)})", text)
    return _GOTO.sub(lambda m: f"goto pc{m.group(1)}", text)
