"""Hardware clocks and the kernel's clock arithmetic (knows nothing of BPF).

Kernel arithmetic, each function named after and faithful to its kernel original
(linux:include/linux/timecounter.h, kernel/time/timecounter.c, include/linux/clocksource.h,
kernel/time/clocksource.c; kernel-facts §10):

- :func:`cyclecounter_cyc2ns`: ``t = cycles*mult + frac`` (u64, wraps silently),
  ``frac = t & mask``, ``ns = t >> shift``;
- :class:`Timecounter`: ``timecounter_init``, ``timecounter_read`` (delta masked to the
  counter width; correct only if the counter wraps at most once between reads *and*
  ``delta*mult < 2**64``), ``timecounter_adjtime``, ``timecounter_cyc2time`` with its
  past/future rule (a delta above half the mask is in the past);
- :func:`clocksource_khz2mult` (rounded, truncated to u32) and
  :func:`clocks_calc_mult_shift`.

Models (not kernel code; parameters documented where used):

- :class:`Phc`: a PTP hardware clock as a function of true time: offset, frequency error
  in ppb, Gaussian jitter from a seeded generator, and steps/frequency changes applied at
  given instants;
- :class:`Refresher`: a periodic kernel task (ice's cached_phctime every 500 ms, bnxt's
  old_time every 1 s, mlx4's overflow check every 5 s) with injectable stalls, with the
  kernel's delayed-work semantics (a stalled run happens when the stall ends and re-arms
  its period from then).
"""
from __future__ import annotations

import functools
import math
import random
from fractions import Fraction
from dataclasses import dataclass, replace
from typing import Any, Callable, TypeVar, cast

import numpy as np
import numpy.typing as npt

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
NSEC_PER_SEC = 1_000_000_000


_F = TypeVar("_F", bound=Callable[..., Any])


def u64_rule(fn: _F) -> _F:
    """Write a kernel rule once, for Python ints and numpy arrays alike.

    The rule's body is written in numpy: every argument arrives as a ``uint64`` array (C's u64
    wrap-around comes for free), and the result goes back as an ``int`` when every argument was
    a scalar.  So the scalar engine and the lane engine call the very same arithmetic: a
    fidelity fix lands in one place.
    """
    @functools.wraps(fn)
    def rule(*args: Any) -> Any:
        scalar = all(np.ndim(a) == 0 for a in args)
        arrays = [np.atleast_1d(np.asarray(a & M64 if isinstance(a, int) else a)).astype(np.uint64, copy=False)
                  for a in args]
        with np.errstate(over="ignore"):
            out = fn(*arrays)
        return int(out[0]) if scalar else out
    return cast(_F, rule)   # same call signature as ``fn`` (the standard decorator typing)


def floor_ratio(t: Any, num: int, den: int) -> Any:
    """floor(t * num / den) exactly, for an int or an int64 array (reduced first; Python ints
    where int64 could overflow)."""
    g = math.gcd(num, den)
    num, den = num // g, den // g
    if not isinstance(t, np.ndarray):
        return (t * num) // den
    if not len(t) or int(np.abs(t).max()) * num < 2**62:
        return (t.astype(np.int64) * np.int64(num)) // np.int64(den)
    return np.array([(int(x) * num) // den for x in t], np.int64)


def cyclecounter_mask(bits: int) -> int:
    """CYCLECOUNTER_MASK(bits) / CLOCKSOURCE_MASK(bits): 2**bits - 1."""
    return (1 << bits) - 1


def cyclecounter_cyc2ns(mult: int, shift: int, cycles: int, frac: int) -> tuple[int, int]:
    """``cyclecounter_cyc2ns(cc, cycles, mask, &frac)``: (ns, new frac)."""
    t = (cycles * mult + frac) & M64
    return t >> shift, t & ((1 << shift) - 1)


@dataclass(frozen=True)
class Timecounter:
    """``struct timecounter`` with its ``struct cyclecounter`` (mask, mult, shift).

    A value: the state-changing kernel functions return a new Timecounter.  ``mask`` is the
    cyclecounter's counter mask (e.g. 48 bits); the fractional-ns mask is ``2**shift - 1``.
    """

    mult: int
    shift: int
    mask: int
    cycle_last: int = 0
    nsec: int = 0
    frac: int = 0

    @classmethod
    def init(cls, mult: int, shift: int, mask: int, cycles_now: int, start_ns: int) -> "Timecounter":
        """``timecounter_init``: cycle_last = read(), nsec = start, frac = 0."""
        return cls(mult & M32, shift, mask, cycles_now & mask, start_ns & M64, 0)

    def read(self, cycles_now: int) -> "Timecounter":
        """``timecounter_read``: fold the cycles since the last read into nsec."""
        delta = (cycles_now - self.cycle_last) & self.mask
        ns, frac = cyclecounter_cyc2ns(self.mult, self.shift, delta, self.frac)
        return replace(self, cycle_last=cycles_now & self.mask, nsec=(self.nsec + ns) & M64, frac=frac)

    def adjtime(self, delta_ns: int) -> "Timecounter":
        """``timecounter_adjtime``: nsec += delta."""
        return replace(self, nsec=(self.nsec + delta_ns) & M64)

    def with_mult(self, mult: int) -> "Timecounter":
        return replace(self, mult=mult & M32)

    def cyc2time(self, cycles: Any) -> Any:
        """``timecounter_cyc2time``: ns for raw counter values (an int or an array), without
        changing state."""
        return timecounter_cyc2time(self.mult, self.shift, self.mask, self.cycle_last, self.nsec,
                                    self.frac, cycles)


@u64_rule
def timecounter_cyc2time(mult: Any, shift: Any, mask: Any, cycle_last: Any, nsec: Any, frac: Any,
                         cycles: Any) -> Any:
    """``timecounter_cyc2time`` (kernel/time/timecounter.c@6.1.192:79) with its state as
    arguments, so per-packet timecounters (arrays) work too: a delta above half the mask is in
    the past and is converted backwards (``cc_cyc2ns_backwards``: ``(delta*mult - frac) >>
    shift``); otherwise forwards (``cyclecounter_cyc2ns``: ``(delta*mult + frac) >> shift``)."""
    delta = (cycles - cycle_last) & mask
    past = delta > (mask >> np.uint64(1))
    back = ((cycle_last - cycles) & mask) * mult - frac
    fwd = delta * mult + frac
    return np.where(past, nsec - (back >> shift), nsec + (fwd >> shift))


def clocksource_khz2mult(khz: int, shift: int) -> int:
    """``clocksource_khz2mult``: round((10**6 << shift) / khz), truncated to u32."""
    tmp = (1_000_000 << shift) + khz // 2
    return (tmp // khz) & M32


def clocks_calc_mult_shift(from_hz: int, to_hz: int, maxsec: int) -> tuple[int, int]:
    """``clocks_calc_mult_shift``: the largest shift whose mult keeps maxsec*from*mult < 2**64."""
    tmp = (maxsec * from_hz) >> 32
    sftacc = 32
    while tmp:
        tmp >>= 1
        sftacc -= 1
    sft = 32
    while sft > 0:          # kernel/time/clocksource.c@6.1.192:76-84
        tmp = ((to_hz << sft) + from_hz // 2) // from_hz
        if (tmp >> sftacc) == 0:
            break
        sft -= 1
    return tmp & M32, sft   # no break: the last candidate (computed at sft 1) with sft 0, as the kernel


def ilog2(value: int) -> int:
    return value.bit_length() - 1


def mlx4_freq_to_shift(freq_mhz: int) -> int:
    """mlx4 ``freq_to_shift`` (drivers/net/ethernet/mellanox/mlx4/en_clock.c): the shift that
    lets MLX4_EN_WRAP_AROUND_SEC (10 s) of cycles be multiplied by mult within 64 bits."""
    freq_khz = freq_mhz * 1000
    max_val_cycles = freq_khz * 1000 * 10
    rounded = 1 << (max_val_cycles - 1).bit_length()   # 1ULL << fls64(max_val_cycles - 1)
    max_mul = M64 // rounded
    return ilog2((max_mul * freq_khz) // 1_000_000)


def mult_overflow_seconds(mult: int, freq_hz: float) -> float:
    """How long until ``delta * mult`` no longer fits 64 bits (timecounter_read unsafe)."""
    return (2 ** 64) / mult / freq_hz


# ------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ClockEvent:
    """Something done to a PHC at true time ``at_ns``: a step (settime/adjtime) by
    ``step_ns``, or a new frequency error ``ppb`` (adjfine)."""

    at_ns: int
    step_ns: int = 0
    ppb: float | None = None


@dataclass(frozen=True)
class Phc:
    """A PTP hardware clock: ``phc(t) = offset + t*(1 + ppb*1e-9) + jitter``, piecewise.

    ``events`` apply steps and frequency changes at given true times.  ``jitter_ns`` is the
    standard deviation of a Gaussian read noise drawn from ``random.Random(seed)`` keyed by
    the instant, so the same instant always reads the same (a reproducible model).
    """

    offset_ns: int = 0
    ppb: float = 0.0
    jitter_ns: float = 0.0
    seed: int = 0
    events: tuple[ClockEvent, ...] = ()

    def ns(self, t_ns: int) -> int:
        """The PHC's time (ns, unbounded int) at true time ``t_ns`` (exact rational arithmetic)."""
        value = Fraction(self.offset_ns)
        last_t, ppb = 0, Fraction(str(self.ppb))
        steps = 0
        for ev in sorted(self.events, key=lambda e: e.at_ns):
            if ev.at_ns > t_ns:
                break
            value += (ev.at_ns - last_t) * (1 + ppb / 10**9)
            last_t = ev.at_ns
            steps += ev.step_ns
            if ev.ppb is not None:
                ppb = Fraction(str(ev.ppb))
        value += (t_ns - last_t) * (1 + ppb / 10**9)
        if self.jitter_ns:
            value += Fraction(random.Random(self.seed * 1_000_003 + t_ns).gauss(0.0, self.jitter_ns))
        return math.floor(value) + steps

    def ns_array(self, t_ns: np.ndarray) -> np.ndarray:
        """:meth:`ns` for many instants, as u64 (mod 2**64).  Exact: plain int64 arithmetic
        when the clock has no drift, events or jitter; otherwise :meth:`ns` once per distinct
        instant."""
        t = np.asarray(t_ns, np.int64)
        if not self.ppb and not self.events and not self.jitter_ns and 0 <= self.offset_ns < 2**62:
            return (np.int64(self.offset_ns) + t).astype(np.uint64)
        uniq, inverse = np.unique(t, return_inverse=True)
        values = np.array([self.ns(int(x)) & M64 for x in uniq], np.uint64)
        return values[inverse.reshape(-1)]

    def with_event(self, event: ClockEvent) -> "Phc":
        return replace(self, events=self.events + (event,))


@dataclass(frozen=True)
class Refresher:
    """A self-re-arming delayed work item (the kernel's periodic PHC refresh), with stalls.

    Kernel semantics modelled (issue 13, item 10): the work re-queues itself at the end of
    each run with a *relative* delay, so the next run is due ``period`` after the run that
    armed it, not on a fixed grid:

    - ice: ``ice_ptp_periodic_work`` ends with ``kthread_queue_delayed_work(ptp->kworker,
      &ptp->work, msecs_to_jiffies(err ? 10 : 500))`` (drivers/net/ethernet/intel/ice/
      ice_ptp.c@6.1.192:2420-2436); the timer expires at ``jiffies + delay``, jiffies being
      the time of the re-queue (kernel/kthread.c@6.1.192:1082 ``__kthread_queue_delayed_work``);
    - bnxt: the PTP aux kthread runs ``do_aux_work`` and re-queues with its return value
      (drivers/ptp/ptp_clock.c@6.1.192:208-219 ``ptp_aux_kworker``);
      ``bnxt_ptp_ts_aux_work`` sets ``next_period = now + HZ`` and returns ``HZ``
      (drivers/net/ethernet/broadcom/bnxt/bnxt_ptp.c@6.1.192:692-713);
    - mlx4: the service task re-queues itself every ``SERVICE_TASK_DELAY`` (HZ/4) and folds
      the counter when ``last_overflow_check + MLX4_EN_OVERFLOW_PERIOD`` has passed, then sets
      ``last_overflow_check = jiffies`` (en_netdev.c@6.1.192:1552-1558, en_clock.c@6.1.192:97-109):
      also "period from the last run" (MODEL: the up-to-250 ms lateness of the service-task
      tick is not modelled).

    A stall ``(from_ns, to_ns)`` is a window in which the worker cannot run (kthread starved,
    workqueue blocked: fault injection).  A run that falls due inside it is not lost: the
    timer has already queued the work, which runs when the stall ends and re-arms ``period``
    from then.  Overlapping or touching stalls act as one.  MODEL: runs take no time; jiffies
    rounding (``msecs_to_jiffies`` rounds up) and timer-wheel slack are not modelled; the
    first run is at ``start_ns``.

    Vector form for the batch engine: :meth:`last_runs` (numpy array in, int64 array out,
    -1 before the first run).
    """

    period_ns: int
    start_ns: int = 0
    stalls: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if self.period_ns <= 0:
            raise ValueError(f"Refresher period_ns must be positive, got {self.period_ns}")
        for a, b in self.stalls:
            if b < a:
                raise ValueError(f"Refresher stall ({a}, {b}) ends before it starts")

    def _segments(self) -> tuple[tuple[int, int | None], ...]:
        """Runs as arithmetic runs: ``(anchor, cut)`` = runs ``anchor + k*period < cut``.

        Each stall that delays a due run ends a segment at that run (``cut``) and starts the
        next at the stall's end.  A stall that falls between two runs changes nothing.
        """
        merged: list[list[int]] = []
        for a, b in sorted(self.stalls):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            elif b > a:
                merged.append([a, b])
        segs: list[tuple[int, int | None]] = []
        anchor, period = self.start_ns, self.period_ns
        for a, b in merged:
            if b <= anchor:
                continue
            due = anchor if a <= anchor else anchor + -(-(a - anchor) // period) * period
            if due < b:                     # a run falls due inside the stall: it runs at b
                segs.append((anchor, due))
                anchor = b
        segs.append((anchor, None))
        return tuple(segs)

    def last_run(self, t_ns: int) -> int | None:
        """True time of the most recent run at or before ``t_ns`` (None if none yet)."""
        best = None
        for anchor, cut in self._segments():
            if anchor > t_ns:
                break
            hi = t_ns if cut is None else min(t_ns, cut - 1)
            if hi >= anchor:
                best = anchor + (hi - anchor) // self.period_ns * self.period_ns
        return best

    def last_runs(self, t_ns: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """:meth:`last_run` for a numpy array of instants: int64 array, -1 where none yet."""
        t = np.asarray(t_ns, dtype=np.int64)
        out = np.full(t.shape, -1, dtype=np.int64)
        for anchor, cut in self._segments():
            hi = t if cut is None else np.minimum(t, cut - 1)
            ok = hi >= anchor
            out = np.where(ok, anchor + (np.where(ok, hi, anchor) - anchor) // self.period_ns
                           * self.period_ns, out)
        return out

    def runs_between(self, a_ns: int, b_ns: int) -> list[int]:
        """Run instants in (a, b]."""
        out: list[int] = []
        period = self.period_ns
        for anchor, cut in self._segments():
            hi = b_ns if cut is None else min(b_ns, cut - 1)
            lo = max(anchor, a_ns + 1)
            if hi < lo:
                continue
            first = anchor + -(-(lo - anchor) // period) * period
            out.extend(range(first, hi + 1, period))
        return out

    def with_stall(self, from_ns: int, to_ns: int) -> "Refresher":
        return replace(self, stalls=self.stalls + ((from_ns, to_ns),))


__all__ = [
    "Timecounter", "cyclecounter_cyc2ns", "cyclecounter_mask", "clocksource_khz2mult",
    "clocks_calc_mult_shift", "mlx4_freq_to_shift", "mult_overflow_seconds", "Phc", "ClockEvent",
    "Refresher", "NSEC_PER_SEC",
]
