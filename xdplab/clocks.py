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
  old_time every 1 s, mlx4's overflow check every 5 s) with injectable stalls.
"""
from __future__ import annotations

import math
import random
from fractions import Fraction
from dataclasses import dataclass, replace

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
NSEC_PER_SEC = 1_000_000_000


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

    def cyc2time(self, cycles: int) -> int:
        """``timecounter_cyc2time``: ns for a raw counter value, without changing state."""
        delta = (cycles - self.cycle_last) & self.mask
        if delta > self.mask // 2:
            delta = (self.cycle_last - cycles) & self.mask
            ns = ((delta * self.mult - self.frac) & M64) >> self.shift
            return (self.nsec - ns) & M64
        ns = ((delta * self.mult + self.frac) & M64) >> self.shift
        return (self.nsec + ns) & M64


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
    mult = 0
    sft = 32
    while sft > 0:
        tmp = (to_hz << sft) + from_hz // 2
        tmp //= from_hz
        if (tmp >> sftacc) == 0:
            mult = tmp
            break
        sft -= 1
    return mult & M32, sft


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

    def with_event(self, event: ClockEvent) -> "Phc":
        return replace(self, events=self.events + (event,))


@dataclass(frozen=True)
class Refresher:
    """A periodic task: runs at ``start + k*period`` except inside stall windows.

    ``stalls`` are (from_ns, to_ns) windows of true time during which the task does not run
    (a workqueue starved, a PTP aux kthread blocked: fault injection).
    """

    period_ns: int
    start_ns: int = 0
    stalls: tuple[tuple[int, int], ...] = ()

    def last_run(self, t_ns: int) -> int | None:
        """True time of the most recent run at or before ``t_ns`` (None if none yet)."""
        if t_ns < self.start_ns:
            return None
        k = (t_ns - self.start_ns) // self.period_ns
        while k >= 0:
            at = self.start_ns + k * self.period_ns
            if not any(a <= at < b for a, b in self.stalls):
                return at
            k -= 1
        return None

    def runs_between(self, a_ns: int, b_ns: int) -> list[int]:
        """Run instants in (a, b]."""
        out = []
        k = max(0, (a_ns - self.start_ns) // self.period_ns)
        while True:
            at = self.start_ns + k * self.period_ns
            if at > b_ns:
                break
            if at > a_ns and not any(s <= at < e for s, e in self.stalls):
                out.append(at)
            k += 1
        return out

    def with_stall(self, from_ns: int, to_ns: int) -> "Refresher":
        return replace(self, stalls=self.stalls + ((from_ns, to_ns),))


__all__ = [
    "Timecounter", "cyclecounter_cyc2ns", "cyclecounter_mask", "clocksource_khz2mult",
    "clocks_calc_mult_shift", "mlx4_freq_to_shift", "mult_overflow_seconds", "Phc", "ClockEvent",
    "Refresher", "NSEC_PER_SEC",
]
