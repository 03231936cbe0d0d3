"""Benchmark of the eBPF machine: fast path vs reference interpreter vs hand-written Python.

Run with ``make bench`` (or ``python benchmarks/bench_vm.py``).  Writes
benchmarks/results/vm.json and prints a table.  The target of the eBPF-machine issue: the
fast path runs a loop at least half as fast as the same loop written by hand in Python.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xdplab.bpf import assemble, run_detailed  # noqa: E402

N = 200_000
M64 = (1 << 64) - 1

LOOP = assemble(f"""
    r0 = 0
    r1 = 0
loop:
    r0 += r1
    r1 += 1
    if r1 < {N} goto loop
    exit
""")

# A byte checksum over mem: loads, 32-bit ALU, a compare: a realistic mix for packet code.
CHECKSUM = assemble("""
    r0 = 0
    r3 = r1
    r3 += r2
loop:
    if r1 >= r3 goto out
    r4 = *(u8 *)(r1 + 0)
    w0 += w4
    w0 = (s16)w0
    r1 += 1
    goto loop
out:
    exit
""")


def hand_plain(n: int) -> int:
    s = 0
    i = 0
    while i < n:
        s += i
        i += 1
    return s


def hand_masked(n: int) -> int:
    """The same loop with the u64 wrap-around a faithful simulation needs."""
    s = 0
    i = 0
    while i < n:
        s = (s + i) & M64
        i = (i + 1) & M64
    return s


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    expect = hand_plain(N)
    assert run_detailed(LOOP, fast=True).r0 == expect == run_detailed(LOOP, fast=False).r0
    insns = run_detailed(LOOP).insns
    t_fast = best_of(lambda: run_detailed(LOOP, max_insns=10**9, fast=True))
    t_ref = best_of(lambda: run_detailed(LOOP, max_insns=10**9, fast=False), repeat=2)
    t_plain = best_of(lambda: hand_plain(N))
    t_masked = best_of(lambda: hand_masked(N))
    mem = bytes(range(256)) * 256
    ck_insns = run_detailed(CHECKSUM, mem).insns
    t_ck_fast = best_of(lambda: run_detailed(CHECKSUM, mem, fast=True))
    t_ck_ref = best_of(lambda: run_detailed(CHECKSUM, mem, fast=False), repeat=2)
    results = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "loop_iterations": N,
        "loop_insns": insns,
        "loop_fast_s": t_fast,
        "loop_reference_s": t_ref,
        "loop_hand_plain_s": t_plain,
        "loop_hand_masked_s": t_masked,
        "speed_vs_hand_plain": t_plain / t_fast,
        "speed_vs_hand_masked": t_masked / t_fast,
        "fast_insn_per_s": insns / t_fast,
        "reference_insn_per_s": insns / t_ref,
        "checksum_insns": ck_insns,
        "checksum_fast_insn_per_s": ck_insns / t_ck_fast,
        "checksum_reference_insn_per_s": ck_insns / t_ck_ref,
    }
    out = Path(__file__).resolve().parent / "results" / "vm.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"loop of {N} iterations ({insns} BPF insns)")
    print(f"  hand-written Python     {t_plain * 1e3:8.1f} ms")
    print(f"  hand-written, u64 masks {t_masked * 1e3:8.1f} ms")
    print(f"  fast path               {t_fast * 1e3:8.1f} ms  = {t_plain / t_fast:.2f}x hand-written, "
          f"{t_masked / t_fast:.2f}x masked   ({insns / t_fast / 1e6:.1f} M insn/s)")
    print(f"  reference interpreter   {t_ref * 1e3:8.1f} ms  ({insns / t_ref / 1e6:.2f} M insn/s)")
    print(f"checksum over {len(mem)} bytes ({ck_insns} insns): fast {ck_insns / t_ck_fast / 1e6:.2f} M insn/s, "
          f"reference {ck_insns / t_ck_ref / 1e6:.2f} M insn/s")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
