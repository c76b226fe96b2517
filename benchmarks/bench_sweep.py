"""Sweep throughput (issue 6 target): timing-only ResNet-18 points per minute with the process
pool on this machine (target >= 10,000).

    .venv/bin/python benchmarks/bench_sweep.py [--points N] [--executor process|serial|dask]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from simulator.tools.sweep import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=4000)
    ap.add_argument("--executor", default="process")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    rows = [16 + 4 * i for i in range(max(1, args.points // 40))]
    with tempfile.TemporaryDirectory() as tmp:
        sweep_file = Path(tmp) / "sweep.yaml"
        sweep_file.write_text(
            f"base: {ROOT / 'configs' / 'tpu-v1.yaml'}\n"
            f"grid:\n  array.rows: {rows}\n  array.cols: [32, 64, 128, 256]\n"
            f"  buffers.a.bytes: [1048576, 4194304, 8388608, 16777216, 25165824]\n"
            f"  array.dataflow: [ws, os]\n"
            f"workloads:\n  - topology: {ROOT / 'configs' / 'topologies' / 'resnet18.csv'}\n")
        sweep = load_sweep(sweep_file)
        t0 = time.perf_counter()
        written, _ = run_sweep(sweep, Path(tmp) / "out.csv", args.executor, args.workers)
        dt = time.perf_counter() - t0
    print(f"{written} ResNet-18 points ({21 * written:,} layers, timing with memory and energy) "
          f"in {dt:.2f} s with --executor {args.executor} on {os.cpu_count()} cores: "
          f"{written / dt * 60:,.0f} points/min (target >= 10,000)")


if __name__ == "__main__":
    main()
