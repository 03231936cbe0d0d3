"""Batch speed of Lab.run (the eBPF-cost issue's target: >= 1,000,000 packets/s end to end for the
ice rfc-v2 AF_XDP path on this 2-core machine, <= 1 GB of memory for 10^6 packets).

End to end = clock state -> descriptors -> xdp_buff -> the xlated program (unrolled kfuncs,
adjust_meta, redirect) -> metadata -> the consumer -> the cost model -> the DataFrame.
Writes benchmarks/results/batch.json.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xdplab  # noqa: E402


def main() -> None:
    lab = xdplab.Lab("ice")
    lab.run(1000, engine="batch")                     # warm up (imports, the first load)
    n = 1_000_000
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        df = lab.run(n, engine="batch", interval_ns=1000)
        times.append(time.perf_counter() - t0)
    best = min(times)
    assert len(df) == n and (df.delivered_to == "af_xdp").all() and (df.error_ns == 0).all()
    t0 = time.perf_counter()
    scalar = lab.run(2000, engine="scalar", interval_ns=1000)
    scalar_pps = 2000 / (time.perf_counter() - t0)
    insn_per_packet = float(scalar.insns.mean())
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "packets": n, "best_s": best, "packets_per_s": n / best, "runs_s": times,
        "workers": min(2, os.cpu_count() or 1),
        "scalar_packets_per_s": scalar_pps, "insns_per_packet": insn_per_packet,
        "scalar_insn_per_s": scalar_pps * insn_per_packet,
        "batch_insn_per_s": n / best * insn_per_packet,
        "max_rss_parent_mb": self_mb, "max_rss_worker_mb": child_mb,
        "dataframe_mb": float(df.memory_usage(deep=True).sum() / 2**20),
    }
    out = Path(__file__).resolve().parent / "results" / "batch.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ice rfc-v2 AF_XDP, {n:,} packets: best {best:.2f} s = {n / best:,.0f} packets/s "
          f"({result['workers']} workers); scalar engine {scalar_pps:,.0f} packets/s")
    print(f"instructions per packet {insn_per_packet:.0f}: batch {result['batch_insn_per_s'] / 1e6:.1f} M insn/s, "
          f"scalar {result['scalar_insn_per_s'] / 1e6:.2f} M insn/s")
    print(f"memory: parent max RSS {self_mb:.0f} MB, each worker max RSS {child_mb:.0f} MB, "
          f"the DataFrame {result['dataframe_mb']:.0f} MB")


if __name__ == "__main__":
    main()
