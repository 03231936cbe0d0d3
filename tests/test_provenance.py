"""data/provenance.json stays true to what the code emits: every recorded instruction of ice's
unroll (posted and fixed) is what xdplab emits today, and every patch line it cites exists."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from xdplab.bpf import Program, disassemble
from xdplab.drivers import ice
from xdplab.profiles import data_path

PROV = json.loads(data_path("provenance.json").read_text())
SHARED = Path(__file__).resolve().parents[2] / "shared" / "rfc" / "v2"


def test_ice_unroll_emits_are_todays_listing():
    entry = next(r for r in PROV["routines"] if r["id"] == "ice_unroll_kfunc")
    posted = disassemble(Program(ice.unroll_listing(ice.DEFECTS))).splitlines()
    fixed = disassemble(Program(ice.unroll_listing(()))).splitlines()
    assert len(entry["emits"]) == len(posted) == 20
    for e in entry["emits"]:
        assert e["xdplab_posted"] == posted[e["i"]] and e["xdplab_fixed"] == fixed[e["i"]], e


@pytest.mark.skipif(not SHARED.exists(), reason="the shared RFC patches are not next to the project")
def test_every_cited_patch_line_exists():
    cited = re.findall(r"(\d\d-[a-z0-9-]+\.patch):(\d+)", json.dumps(PROV))
    assert cited
    for name, line in cited:
        lines = (SHARED / name).read_text().splitlines()
        assert 1 <= int(line) <= len(lines), (name, line)
