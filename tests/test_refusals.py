"""Issue 14: every notebook shows a program the verifier refuses, with its log; the refusal is
the kernel's message, and the same program is refused by prog_load and Lab with a LoadError."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import xdplab
from xdplab.bpf import assemble
from xdplab.bpf import BpfVerifyError
from xdplab.kernel.verifier import verify

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_notebooks  # noqa: E402


@pytest.mark.parametrize("name", sorted(build_notebooks.REFUSALS))
def test_each_notebook_shows_a_refused_program(name):
    why, text, message = build_notebooks.REFUSALS[name]
    program = assemble(text.replace("\\n", "\n"))
    result = verify(program, log_level=2)
    assert not result.accepted and result.error == message and message in result.log
    cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    assert any(c["id"].endswith("refused-program") and "verify(" in "".join(c["source"]) for c in cells)
    with pytest.raises(BpfVerifyError) as info:       # a LoadError, or the structural check before it
        xdplab.Lab("veth", program=program)
    assert message in str(info.value)
