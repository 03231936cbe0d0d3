"""Benchmark of the XDP verifier (xdplab.kernel.verifier): verification time per program.

Run with ``make bench`` (or ``python benchmarks/bench_verifier.py``).  Writes
benchmarks/results/verifier.json and prints a table.  Measured: every program the project
ships (xdplab.programs.xdp_metadata_program for all designs, fields and paths, and the
compiled objects in data/programs/) and a synthetic program of about 4,000 instructions
(parsing headers with a bounds check per field, 64 blocks with branches both ways, so that
state pruning matters).
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xdplab.bpf import assemble  # noqa: E402
from xdplab.kernel.kernel import Kernel  # noqa: E402
from xdplab.kernel.kfuncs import TABLES  # noqa: E402
from xdplab.kernel.maps import BpfMap  # noqa: E402
from xdplab.kernel.verifier import verify  # noqa: E402
from xdplab.programs import ALL_DESIGNS, FIELDS_BY_DESIGN, xdp_metadata_program  # noqa: E402

XSK = {3: BpfMap("xsk", 17, 4, 4, 64, 1, 0xFFFF888000100000)}


def big_program(blocks: int = 64) -> str:
    """~62 instructions per block: a packet check, reads, ALU on what was read, a branch."""
    lines = ["r6 = r1", "r2 = *(u32 *)(r6 + 0)", "r3 = *(u32 *)(r6 + 4)", "r7 = 0"]
    for b in range(blocks):
        off = (b * 7) % 48
        lines += ["r2 = *(u32 *)(r6 + 0)", "r3 = *(u32 *)(r6 + 4)", "r4 = r2",
                  f"r4 += {off + 16}", f"if r4 > r3 goto out{b}"]
        for k in range(12):
            lines += [f"r5 = *(u8 *)(r2 + {off + k})", "r5 &= 15", "r7 += r5", "r7 ^= 3"]
        lines += [f"if r7 > {100 + b} goto skip{b}", "r7 += 1", f"skip{b}:", "r8 = r7",
                  "r8 <<= 2", "r8 >>= 1", "r7 = r8", "r7 &= 1023", f"out{b}:"]
    lines += ["r0 = 2", "exit"]
    return "\n".join(lines)


def _time(fn, repeat: int = 3) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    rows = []
    for design in ALL_DESIGNS:
        fields = FIELDS_BY_DESIGN[design]
        for path in ("af_xdp", "skb"):
            for chosen in (fields[:1], fields):
                p = xdp_metadata_program(design, tuple(chosen), path=path)
                t, r = _time(lambda: verify(p, maps=XSK, kfuncs=TABLES.get(design), log_level=0))
                rows.append({"program": f"{design}/{path}/{'+'.join(chosen) or '-'}", "insns": p.slot_count,
                             "accepted": r.accepted, "insns_processed": r.insns_processed,
                             "ms": round(t * 1e3, 3)})
    from xdplab.libbpf import BpfObject, BpfObjectError
    for obj in sorted((Path(__file__).resolve().parents[1] / "data" / "programs").glob("*.o")):
        for design in ("rfc-v2", "merged"):
            k = Kernel()
            try:
                p = BpfObject.open(obj).load(k, design=design)
            except BpfObjectError:
                continue
            t, r = _time(lambda: verify(p, maps=k.maps, kfuncs=TABLES[design], log_level=0))
            rows.append({"program": f"{obj.name}/{design}", "insns": p.slot_count, "accepted": r.accepted,
                         "insns_processed": r.insns_processed, "ms": round(t * 1e3, 3)})
    big = assemble(big_program())
    t, r = _time(lambda: verify(big, log_level=0), repeat=2)
    rows.append({"program": "synthetic header parser", "insns": big.slot_count, "accepted": r.accepted,
                 "insns_processed": r.insns_processed, "ms": round(t * 1e3, 3)})
    t2, r2 = _time(lambda: verify(big, log_level=2), repeat=1)
    rows.append({"program": "synthetic header parser, log_level=2", "insns": big.slot_count,
                 "accepted": r2.accepted, "insns_processed": r2.insns_processed, "ms": round(t2 * 1e3, 3),
                 "log_bytes": len(r2.log)})
    results = {"python": platform.python_version(), "machine": platform.machine(), "rows": rows,
               "insns_per_second_big": round(r.insns_processed / t)}
    for row in rows:
        print(f"{row['program']:45s} {row['insns']:6d} insns  {row['insns_processed']:7d} processed  "
              f"{row['ms']:9.2f} ms  {'ok' if row['accepted'] else 'REFUSED'}")
    out = Path(__file__).resolve().parent / "results" / "verifier.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
