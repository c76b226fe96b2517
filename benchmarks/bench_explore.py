"""Sample efficiency of `explore` (issue 31 target): on a space small enough to enumerate (6,000
chips around the Edge TPU: array rows x cols, dataflow, unified-buffer size, DRAM bandwidth,
clock; two GEMMs), the exhaustive table is computed once
(grid search, process executor, a resumable results file), then NSGA-II, TPE and random search
run on the same space with several seeds, each evaluation looked up in the exhaustive table.
Reported: the hypervolume each reaches (mean over seeds) as a share of the exhaustive front's,
against evaluations; the target is >= 95 % within 10 % of the evaluations (600).

Objectives: latency_s and energy_j (the issue's pair), then latency_s and power_w. Static power
is set to 0 W in the space (one choice), so energy is the chip's dynamic energy. On this model
latency and energy hardly conflict: one chip is both fastest and most frugal, so their front is a
single chip and the hypervolume measures how close a search gets to it; latency and power do
conflict (a faster chip draws more power), giving a front of many chips.
Hypervolume: Optuna's ``compute_hypervolume`` on log10 of the objectives (they span decades:
on a linear scale a handful of chips near the origin hold almost all of it, and any search
scores 99 % at once) normalised to the exhaustive table's [min, max], reference point (1.1, 1.1).

    .venv/bin/python benchmarks/bench_explore.py [--seeds 3] [--out /tmp/bench-explore.jsonl]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = f"""\
base: {ROOT / 'configs' / 'edge-tpu.yaml'}
space:
  array.rows: {{log_range: [8, 128, 2]}}
  array.cols: {{log_range: [8, 128, 2]}}
  array.dataflow: [os, ws, is]
  buffers.unified_buffer.bytes: {{log_range: [131072, 2097152, 2]}}
  dram.bandwidth_bytes_per_s: [2.0e+9, 4.0e+9, 8.0e+9, 1.6e+10]
  clock_hz: [2.44e+8, 4.88e+8, 7.32e+8, 9.76e+8]
  energy.static.watts: [0.0]
workloads:
  - gemm: 1024x1024x1024
  - gemm: 196x256x2304
objectives: {{latency_s: min, energy_j: min}}
"""
CHECKPOINTS = (50, 100, 200, 300, 450, 600)


def hypervolume(points, lo, hi) -> float:
    """Return the hypervolume of ``points`` (minimised), in log10 normalised to [lo, hi] (log10
    bounds), reference point 1.1."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume
    if not points:
        return 0.0
    p = (np.log10(np.asarray(points, dtype=float)) - lo) / (hi - lo)
    return float(compute_hypervolume(p, np.array([1.1, 1.1])))


def main() -> int:
    from simulator.tools import explore as ex
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "bench-explore.jsonl"))
    ap.add_argument("--executor", default="process")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp())
    spec_path = folder / "space.yaml"
    spec_path.write_text(SPEC)
    spec = ex.load_explore(spec_path)
    t0 = time.monotonic()
    full = ex.run_explore(spec, args.out, "grid", executor=args.executor)
    print(f"exhaustive: {len(full.points)} chips in {time.monotonic() - t0:.1f} s "
          f"({full.evaluated_before} from {args.out})", flush=True)
    for objectives in (("latency_s", "energy_j"), ("latency_s", "power_w")):
        compare(dataclasses.replace(spec, objectives=tuple((m, "minimize") for m in objectives)),
                full.points, args.seeds)
    return 0


def compare(spec, points, seeds: int) -> None:
    """Print the hypervolume share each algorithm reaches against evaluations."""
    import numpy as np
    from simulator.tools import explore as ex
    names = [m for m, _ in spec.objectives]
    table = {tuple(r[k] for k in spec.keys): r for r in points}
    front = ex.front_rows(spec, points)
    allv = np.log10([[r[m] for m in names] for r in points if r["status"] == "ok"])
    lo, hi = allv.min(axis=0), allv.max(axis=0)
    best = hypervolume([[r[m] for m in names] for r in front], lo, hi)
    records = {ex._key(k): {"point": list(k), "status": r["status"], "error": r["error"],
                            "metrics": {m: r[m] for m in ex.METRICS if m in r}}
               for k, r in table.items()}

    def lookup(points):
        return ((i, records[ex._key(p)]) for i, p in enumerate(points))
    budget = max(CHECKPOINTS)
    print(f"\nobjectives {', '.join(names)}: exhaustive front {len(front)} chips; hypervolume "
          f"share of it (mean of {seeds} seeds) against evaluations; budget {budget} = "
          f"{100 * budget / len(points):.0f} % of the space")
    print(f"{'algorithm':<10}" + "".join(f"{c:>8}" for c in CHECKPOINTS) + "   time")
    for algorithm in ("nsga2", "tpe", "random"):
        shares = {c: [] for c in CHECKPOINTS}
        t0 = time.monotonic()
        for seed in range(seeds):
            curve: dict[int, float] = {}
            rows: list[dict] = []

            def progress(n, order, curve=curve, rows=rows):
                rows.extend(ex._row(spec, rec, i) for i, rec in enumerate(order[len(rows):],
                                                                          len(rows)))
                for c in CHECKPOINTS:
                    if c not in curve and n >= c:
                        fr = ex.front_rows(spec, rows[:c])
                        curve[c] = hypervolume([[r[m] for m in names] for r in fr], lo, hi)
            ex.search(spec, algorithm, budget, seed, ex.default_batch(algorithm),
                      lookup, {}, on_progress=progress)
            for c in CHECKPOINTS:
                shares[c].append(curve.get(c, 0.0) / best)
        print(f"{algorithm:<10}" + "".join(f"{100 * statistics.mean(shares[c]):>7.1f}%"
                                           for c in CHECKPOINTS)
              + f"  {time.monotonic() - t0:5.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
