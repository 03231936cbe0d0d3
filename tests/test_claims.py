"""Every cost claim the README states is computed by xdplab.claims on a named profile, appears
in the README exactly as computed now, and holds against its own expectation."""
from __future__ import annotations

from pathlib import Path

import pytest

from xdplab.claims import CLAIMS, claim
from xdplab.cost import PROFILES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("c", CLAIMS, ids=lambda c: c.key)
def test_claim_holds_and_names_its_profile(c):
    assert c.profile in PROFILES
    assert c.holds(c.value()), c.text()
    assert c.profile in c.text()


@pytest.mark.parametrize("c", CLAIMS, ids=lambda c: c.key)
def test_readme_states_the_claim_as_computed(c):
    flat = " ".join(README.split())
    assert c.text() in flat, f"README does not state: {c.text()}"


def test_unknown_claim():
    with pytest.raises(ValueError, match="known"):
        claim("free lunch")
