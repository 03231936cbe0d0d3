"""The answer a reviewer wants from a run, in one paragraph.

``Lab.run`` returns one row per packet; the usual questions are "did the packets get
through?", "were the timestamps right?", and if not "how many, by how much, when, and when
were they right again?".  :func:`summarize` answers them from the table alone (so it works
for either engine and for a CSV read back), e.g.::

    3,000 packets, t=2.000-4.999 s: 3,000 reached af_xdp, 3,000 with a timestamp.
    2,148 exact; 852 of 3,000 wrong by −2³² ns between t=4.148 s and 4.999 s; correct
    again from 5.000 s.

A window is a run of consecutive packets with a timestamp whose error is not zero; packets
without a timestamp neither open nor close a window.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import pandas as pd

# where each path's packets should arrive
CONSUMER: Mapping[str, str] = MappingProxyType({"af_xdp": "af_xdp", "skb": "stack"})
_SUP = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
MINUS = "−"                                          # U+2212, as a reviewer would write it


@dataclass(frozen=True)
class WrongWindow:
    """Consecutive packets whose timestamp was wrong."""

    first_packet: int
    last_packet: int
    count: int
    t_first_ns: int
    t_last_ns: int
    error_min_ns: int
    error_max_ns: int
    recovered_ns: int | None      # arrival of the next packet with an exact stamp, if any


@dataclass(frozen=True)
class RunSummary:
    packets: int
    arrived: int                  # reached the path's consumer (AF_XDP socket or the stack)
    with_timestamp: int
    exact: int
    windows: tuple[WrongWindow, ...]
    missing: tuple[tuple[str, int], ...]   # why packets had no timestamp, most common first
    wants_timestamp: bool
    consumer: str
    t_first_ns: int | None
    t_last_ns: int | None
    mean_cost_ns: float | None
    mean_insns: float | None

    @property
    def wrong(self) -> int:
        return sum(w.count for w in self.windows)

    @property
    def got_through(self) -> bool:
        """Whether any packet reached its consumer with what it asked for."""
        return self.with_timestamp > 0 if self.wants_timestamp else self.arrived > 0

    @property
    def failure(self) -> str | None:
        """Why nothing got through (None when something did)."""
        if self.got_through:
            return None
        if self.packets == 0:
            return "no packets were sent"
        return self.missing[0][0] if self.missing else "no packet reached the consumer"

    def text(self) -> str:
        return describe(self)


def power_of_two(value: int) -> str:
    """``−2³²`` for -4294967296; the plain number (with thousands separators) otherwise."""
    mag = abs(value)
    sign = MINUS if value < 0 else ""
    if mag >= 1024 and mag & (mag - 1) == 0:
        return f"{sign}2{str(mag.bit_length() - 1).translate(_SUP)}"
    return f"{sign}{mag:,}"


def _secs(ns: int) -> str:
    return f"{ns / 1e9:.3f} s"


def summarize(df: pd.DataFrame, path: str | None = None) -> RunSummary:
    """The summary of a :meth:`xdplab.Lab.run` table (``path`` defaults to ``df.attrs``)."""
    path = path or df.attrs.get("path", "af_xdp")
    if path not in CONSUMER:
        raise ValueError(f"unknown path {path!r}; valid paths: {', '.join(CONSUMER)}")
    fields = tuple(df.attrs.get("fields", ("rx_timestamp",)))
    design = df.attrs.get("design", "rfc-v2")
    wants = design == "btf-hints" or ("rx_timestamp" in fields and design != "none")
    consumer = CONSUMER[path]
    n = len(df)
    if n == 0:
        return RunSummary(0, 0, 0, 0, (), (), wants, consumer, None, None, None, None)
    where = df["delivered_to"].astype(str).to_numpy()
    ts = df["rx_timestamp"].to_numpy()
    has = ts != 0
    err = df["error_ns"].astype("Int64")
    t = df["t_ns"].to_numpy()
    pk = df["packet"].to_numpy()
    windows: list[WrongWindow] = []
    cur: list[int] = []

    def close(recovered: int | None) -> None:
        if cur:
            e = [int(err.iat[k]) for k in cur]
            windows.append(WrongWindow(int(pk[cur[0]]), int(pk[cur[-1]]), len(cur), int(t[cur[0]]),
                                       int(t[cur[-1]]), min(e), max(e), recovered))
            cur.clear()

    exact = 0
    for k in range(n):
        if not has[k]:
            continue
        if int(err.iat[k]) == 0:
            exact += 1
            close(int(t[k]))
        else:
            cur.append(k)
    close(None)
    reasons = df["reason"].astype(str)
    missing_mask = ~has if wants else where != consumer
    counts = reasons[missing_mask & (reasons != "").to_numpy()].value_counts()
    missing = tuple((str(r), int(c)) for r, c in counts.items() if c)
    cost = df["cost_ns"].dropna()
    return RunSummary(n, int((where == consumer).sum()), int(has.sum()), exact, tuple(windows), missing,
                      wants, consumer, int(t[0]), int(t[-1]),
                      float(cost.mean()) if len(cost) else None,
                      float(df["insns"].mean()))


def _window(w: WrongWindow, total: int) -> str:
    by = (f"by {power_of_two(w.error_min_ns)} ns" if w.error_min_ns == w.error_max_ns
          else f"by {power_of_two(w.error_min_ns)} to {power_of_two(w.error_max_ns)} ns")
    when = (f"at t={_secs(w.t_first_ns)}" if w.count == 1
            else f"between t={_secs(w.t_first_ns)} and {_secs(w.t_last_ns)}")
    after = (f"; correct again from {_secs(w.recovered_ns)}" if w.recovered_ns is not None
             else "; still wrong at the last packet")
    return f"{w.count:,} of {total:,} wrong {by} {when}{after}"


def describe(s: RunSummary) -> str:
    """The one-paragraph answer."""
    if s.packets == 0:
        return "0 packets: nothing was sent (--packets 0)."
    out = [f"{s.packets:,} packets, t={(s.t_first_ns or 0) / 1e9:.3f}-{_secs(s.t_last_ns or 0)}: "
           f"{s.arrived:,} reached {s.consumer}"]
    if s.wants_timestamp:
        out[0] += f", {s.with_timestamp:,} with a timestamp."
    else:
        out[0] += " (no timestamp asked for)."
    if s.with_timestamp:
        if not s.windows:
            out.append(f"All {s.exact:,} timestamps exact.")
        else:
            parts = [_window(w, s.packets) for w in s.windows[:3]]
            more = len(s.windows) - 3
            if more > 0:
                parts.append(f"{more} more window{'s' if more != 1 else ''} "
                             f"({sum(w.count for w in s.windows[3:]):,} packets)")
            out.append(f"{s.exact:,} exact; " + "; ".join(parts) + ".")
    for reason, count in s.missing[:2]:
        what = "without a timestamp" if s.wants_timestamp else f"not at {s.consumer}"
        out.append(f"{count:,} {what}: {reason}.")
    if s.mean_cost_ns is not None:
        out.append(f"Mean cost {s.mean_cost_ns:.2f} ns per packet ({s.mean_insns:.1f} insns).")
    if not s.got_through:
        if s.arrived and s.wants_timestamp:
            out.append(f"Packets reached {s.consumer}, but none with a timestamp.")
        else:
            out.append("Nothing got through." if s.missing else f"Nothing got through: {s.failure}.")
    return " ".join(out)


__all__ = ["RunSummary", "WrongWindow", "summarize", "describe", "power_of_two"]
