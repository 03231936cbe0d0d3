"""How fast the tour's diff view redraws after a widget change (target: within 100 ms).

Run with ``make bench``; writes benchmarks/results/viz.json.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xdplab.viz import TourApp  # noqa: E402


def main() -> None:
    app = TourApp(driver="ice", packets=200)
    diff_ms, plots_ms = [], []
    sequence = ["bnxt", "mlx4", "veth", "ice"] * 5
    for driver in sequence:
        app.driver.value = driver
        diff_ms.append(app.timings["diff_ms"])
        plots_ms.append(app.timings["plots_ms"])
    result = {
        "changes": len(sequence),
        "diff_redraw_ms_median": statistics.median(diff_ms),
        "diff_redraw_ms_max": max(diff_ms),
        "plots_redraw_ms_median": statistics.median(plots_ms),
        "packets_per_redraw": 200,
    }
    out = Path(__file__).resolve().parent / "results" / "viz.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"diff view redraw after a driver change: median {result['diff_redraw_ms_median']:.1f} ms, "
          f"max {result['diff_redraw_ms_max']:.1f} ms (target 100 ms)")
    print(f"timestamp plot + 200 packets: median {result['plots_redraw_ms_median']:.0f} ms")


if __name__ == "__main__":
    main()
