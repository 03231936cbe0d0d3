"""The cost claims the README and the notebooks state, each computed here on a named profile.

A claim is a sentence with a number or a verdict; the sentence's text is produced by
:meth:`Claim.text` from what the model computes now, and ``tests/test_claims.py`` checks that
the README states exactly that text and that each claim holds against its independent
expectation.  So a change of the model that moves a number cannot leave a stale sentence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .cost import line_rate_budget_ns, packet_ns, profile
from .lab import Lab

PACKETS = 20


def mean_cost(driver: str, fields: tuple[str, ...], design: str, prof: str, variant: str = "fixed") -> float:
    """Mean modelled per-packet program cost (metadata support assumed for mlx4/bnxt)."""
    df = Lab(driver, fields, design=design, variant=variant).run(PACKETS, profile=prof, assume_meta_support=True)
    return float(df.cost_ns.mean())


def ice_unroll_saving_ns(prof: str) -> float:
    """What unrolling ice's rx_timestamp saves over calling the same code (rfc-v2 vs the
    call design)."""
    return mean_cost("ice", ("rx_timestamp",), "patch-v3", prof) - mean_cost("ice", ("rx_timestamp",), "rfc-v2", prof)


def timestamp_cost_ns(driver: str, prof: str) -> float:
    """The program cost a timestamp adds over asking for nothing (rfc-v2)."""
    return mean_cost(driver, ("rx_timestamp",), "rfc-v2", prof) - mean_cost(driver, (), "none", prof)


def whole_packet_ns(driver: str, design: str, fields: tuple[str, ...], prof: str) -> float:
    """The machine's RX path plus the program: what a line-rate budget covers."""
    return float(packet_ns(mean_cost(driver, fields, design, prof), profile(prof)))


@dataclass(frozen=True)
class Claim:
    """A sentence the docs state, on one profile: ``compute`` gives the number, ``holds``
    the verdict, ``text`` the sentence."""

    key: str
    profile: str
    compute: Callable[[str], float]
    holds: Callable[[float], bool]
    template: str

    def value(self) -> float:
        return self.compute(self.profile)

    def text(self) -> str:
        return self.template.format(v=self.value(), p=self.profile)


def subset_saving_ns(driver: str, fields: tuple[str, ...], design: str, prof: str) -> float:
    """BTF hints' per-packet cost (the driver fills every field for every frame) minus a kfunc
    program asking only ``fields``: positive when the subset is cheaper, the cover letter's claim."""
    return mean_cost(driver, (), "btf-hints", prof) - mean_cost(driver, fields, design, prof)


CLAIMS: tuple[Claim, ...] = (
    Claim("ice-unroll-saving", "larysa-ice", ice_unroll_saving_ns,
          lambda v: 0 < v < 1.0,
          "unrolling ice's rx_timestamp saves {v:.2f} ns per packet over calling the same code "
          "(profile {p}, whose call cost is fitted to Larysa's 0.536 ns for two rx_hash calls)"),
    Claim("bnxt-timestamp-over-25g", "e5-1650v4", lambda p: timestamp_cost_ns("bnxt", p),
          lambda v: v > line_rate_budget_ns(25),
          "bnxt's timestamp alone adds {v:.1f} ns per packet to the program (its spin_lock_bh), more "
          "than the whole 26.88 ns a 25G link allows per 64-byte frame (profile {p})"),
    Claim("ice-10g-whole-packet", "e5-1650v4", lambda p: whole_packet_ns("ice", "rfc-v2", ("rx_timestamp",), p),
          lambda v: line_rate_budget_ns(25) < v <= line_rate_budget_ns(10),
          "with ice's unrolled timestamp a packet costs {v:.1f} ns including the RX path measured on "
          "that machine: within one core's 10G budget (67.2 ns), not 25G (profile {p})"),
    Claim("subset-skips-an-expensive-field", "e5-1650v4",
          lambda p: subset_saving_ns("bnxt", ("rx_hash",), "merged", p), lambda v: v > 0,
          "the cover letter's subset claim holds where the skipped field is expensive: on bnxt a program "
          "asking only rx_hash (merged) costs {v:.1f} ns less per packet than BTF hints, whose driver "
          "takes the PTP lock for a timestamp on every frame (profile {p})"),
    Claim("subset-of-one-cheap-field", "e5-1650v4",
          lambda p: -subset_saving_ns("ice", ("rx_timestamp",), "rfc-v2", p), lambda v: v > 0,
          "and fails where every field is cheap: on ice BTF hints cost {v:.1f} ns less than a program "
          "asking only the unrolled rx_timestamp, which pays for bpf_xdp_adjust_meta and its own stores (profile {p})"),
)


def claim(key: str) -> Claim:
    for c in CLAIMS:
        if c.key == key:
            return c
    raise ValueError(f"unknown claim {key!r}; known: {', '.join(c.key for c in CLAIMS)}")
