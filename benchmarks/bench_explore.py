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

``--big`` runs the issue's throughput target instead: 2,000 evaluations (distinct chips) of NSGA-II
over ResNet-50, BERT-base and one Llama-2-7B decode step (an ``llm`` workload) on a space of
8,640 chips around a TPU v4 TensorCore, objectives latency, energy and area; target <= 10 minutes
on a 2-core machine with the process executor. ``--executor dask`` runs the same spec on a local
Dask cluster; ``--budget`` changes the number of evaluations.

    .venv/bin/python benchmarks/bench_explore.py --big [--executor process|dask] [--budget 2000]
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

BIG_SPEC = f"""\
base: {ROOT / 'configs' / 'tpu-v4-tensorcore.yaml'}
space:
  array.rows: {{log_range: [32, 256, 2]}}
  array.cols: {{log_range: [32, 256, 2]}}
  array.dataflow: [os, ws, is]
  array.count: [1, 2, 4, 8]
  buffers.unified_buffer.bytes: {{log_range: [4194304, 67108864, 2]}}
  dram.bandwidth_bytes_per_s: [3.0e+11, 6.0e+11, 1.2e+12]
  clock_hz: [7.0e+8, 1.05e+9, 1.4e+9]
workloads:
  - model: resnet50
  - model: bert-base
  - llm: {ROOT / 'configs' / 'models' / 'llama-2-7b.yaml'}
    phase: decode
    batch: 1
    context: 2048
objectives: {{latency_s: min, energy_j: min, area_mm2: min}}
search: {{algorithm: nsga2, seed: 0}}
"""
BIG_BUDGET = 2000
BIG_TARGET_S = 600.0


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
    ap.add_argument("--big", action="store_true", help="time 2,000 evaluations over ResNet-50, "
                    "BERT-base and a Llama-2-7B decode step instead")
    ap.add_argument("--budget", type=int, default=BIG_BUDGET, help="--big: evaluations")
    ap.add_argument("--workers", type=int, default=None, help="--big: worker processes")
    args = ap.parse_args()
    if args.big:
        return big(args)
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


def big(args) -> int:
    """Time ``args.budget`` NSGA-II evaluations of BIG_SPEC on ``args.executor``; print the
    wall time (s), evaluations per second and the front; return 0 when the time (for the full
    2,000) is within the 10-minute target, else 1."""
    import os
    from simulator.tools import explore as ex
    folder = Path(tempfile.mkdtemp())
    spec_path = folder / "big.yaml"
    spec_path.write_text(BIG_SPEC)
    out = folder / "big.jsonl"  # a fresh results file: every chip is evaluated now
    spec = ex.load_explore(spec_path)
    valid = sum(1 for _ in ex._valid_points(spec))
    print(f"space: {spec.size:,} chips ({valid:,} valid); workloads: "
          f"{', '.join(w['name'] for w in spec.workloads)}; executor {args.executor}, "
          f"{os.cpu_count()} CPUs", flush=True)
    t0 = time.monotonic()
    res = ex.run_explore(spec, out, "nsga2", args.budget, 0, executor=args.executor,
                         workers=args.workers, progress=sys.stderr.isatty())
    wall_s = time.monotonic() - t0
    ok = sum(r["status"] == "ok" for r in res.points)
    print(f"{len(res.points)} evaluations ({ok} ok, {len(res.points) - ok} failed) x "
          f"{len(spec.workloads)} workloads in {wall_s:.1f} s ({len(res.points) / wall_s:.2f} "
          f"chips/s); front {len(res.front)} chips; results in {out}")
    print(ex.table(spec, res.front[:10]))
    target = BIG_TARGET_S * args.budget / BIG_BUDGET
    print(f"target <= {target:.0f} s: {'met' if wall_s <= target else 'NOT met'}")
    return 0 if wall_s <= target else 1


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
