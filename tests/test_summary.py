"""The one-paragraph answer of a run, checked against tables whose answer is known by
construction (and one real ice stall, whose window follows from the cache arithmetic)."""
from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdplab.summary import power_of_two, summarize

MS = 1_000_000


def table(errors, *, start_ns=2_000_000_000, where="af_xdp", reason="", design="rfc-v2",
          fields=("rx_timestamp",), path="af_xdp"):
    """A Lab.run-shaped table: ``errors[i]`` is None for no timestamp, else the error (ns)."""
    rows = []
    for i, e in enumerate(errors):
        t = start_ns + i * MS
        hw = 10**18 + t
        ts = 0 if e is None else hw + e
        rows.append((i, t, hw, ts, None if e is None else e, 20, 15.0, "REDIRECT", where,
                     8, reason if e is None else ""))
    df = pd.DataFrame(rows, columns=["packet", "t_ns", "hw_time_ns", "rx_timestamp", "error_ns", "insns",
                                     "cost_ns", "action", "delivered_to", "meta_len", "reason"])
    df["error_ns"] = df["error_ns"].astype("Int64")
    df.attrs.update(design=design, fields=fields, path=path)
    return df


def test_one_window_then_recovery():
    errs = [0] * 10 + [-(1 << 32)] * 5 + [0] * 3
    s = summarize(table(errs))
    assert (s.packets, s.arrived, s.with_timestamp, s.exact, s.wrong) == (18, 18, 18, 13, 5)
    (w,) = s.windows
    assert (w.first_packet, w.last_packet, w.error_min_ns, w.recovered_ns) == (10, 14, -(1 << 32), 2_015_000_000)
    assert "5 of 18 wrong by −2³² ns between t=2.010 s and 2.014 s; correct again from 2.015 s" in s.text()
    assert s.got_through


def test_window_open_at_the_end_and_varying_errors():
    s = summarize(table([0, 5, 7, None, 9]))
    (w,) = s.windows                         # a packet without a stamp does not close it
    assert (w.count, w.error_min_ns, w.error_max_ns, w.recovered_ns) == (3, 5, 9, None)
    assert "by 5 to 9 ns" in s.text() and "still wrong at the last packet" in s.text()


def test_nothing_got_through_names_the_reason():
    why = "bpf_xdp_adjust_meta returned -ENOTSUPP"
    s = summarize(table([None] * 4, where="stack", reason=why))
    assert not s.got_through and s.failure == why and s.arrived == 0
    assert why in s.text() and "Nothing got through" in s.text()


def test_no_timestamp_asked_for():
    s = summarize(table([None] * 3, design="none", fields=()))
    assert s.got_through and not s.wants_timestamp and "no timestamp asked for" in s.text()


def test_empty_run():
    s = summarize(table([]))
    assert s.packets == 0 and not s.got_through and "nothing was sent" in s.text()


def test_unknown_path_is_refused():
    with pytest.raises(ValueError, match="valid paths"):
        summarize(table([0]), "xdp")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from([0, 0, 0, 3, -(1 << 32)])), max_size=60))
def test_counts_add_up(errs):
    s = summarize(table(errs))
    stamped = [e for e in errs if e is not None]
    assert s.with_timestamp == len(stamped) and s.exact == stamped.count(0)
    assert s.wrong == len(stamped) - stamped.count(0)
    # windows are maximal runs of wrong stamps, separated by exact ones
    runs, cur = [], 0
    for e in stamped:
        if e == 0:
            if cur:
                runs.append(cur)
            cur = 0
        else:
            cur += 1
    if cur:
        runs.append(cur)
    assert [w.count for w in s.windows] == runs


@pytest.mark.parametrize("value, text", [(-(1 << 32), "−2³²"), (1 << 31, "2³¹"), (1000, "1,000"),
                                          (-3, "−3"), (3 << 20, "3,145,728")])
def test_power_of_two(value, text):
    assert power_of_two(value) == text


def test_a_real_ice_stall():
    """ice refreshes cached_phctime every 500 ms (ice_ptp_periodic_work); a stamp is
    extended within ±2³¹ ns of the cache (ice_ptp_extend_32b_ts), so with the refresh
    stalled from 2.6 s the last refresh is at 2.5 s and stamps are wrong once the PHC has
    moved 2³¹ ns past it (t > 2.5 + 2.147 s), until the refresh runs again at 5.6 s+."""
    from xdplab import Lab
    df = Lab("ice").run(4000, stalls=((2_600_000_000, 5_600_000_000),), engine="batch")
    s = summarize(df)
    (w,) = s.windows
    limit = 2_500_000_000 + (1 << 31)
    assert w.t_first_ns == min(t for t in df.t_ns if t > limit)
    assert w.error_min_ns == w.error_max_ns == -(1 << 32)
    assert 5_600_000_000 <= w.recovered_ns <= 6_100_000_000
