"""Cold start of the command line (issue 12 target): `systolic-sim run CONFIG --gemm MxNxK`,
timing only, on a chip without a memory model (unbounded buffers, ideal DRAM), measured as a
whole process (interpreter start, imports, config, simulation, report); median of several runs
(target < 0.35 s). Such a run never imports numba; for contrast, it also times a chip whose
buffers make the GEMM tile (the numba memory model, warm numba cache).

    .venv/bin/python benchmarks/bench_cold_start.py [--runs 9]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "systolic-sim"
TARGET_S = 0.35

NO_NUMBA = """
import sys
from simulator.tools.cli import main
assert main(sys.argv[1:]) == 0
print("numba imported:", "numba" in sys.modules)
"""


def run_times(cmd: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Return (wall seconds, CPU seconds user + system) of ``runs`` runs of ``cmd``, after one
    untimed warm-up run. CPU time is what the run costs on an idle machine; wall time also
    counts waiting for a core on a busy one."""
    subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)  # pyc files, numba cache
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    cases = [("tpu-v4-mxu (no memory model)", "configs/tpu-v4-mxu.yaml", True),
             ("tpu-v1 (buffers, DRAM; numba)", "configs/tpu-v1.yaml", False)]
    for label, config, targeted in cases:
        run = ["run", config, "--gemm", "4096x4096x4096"]
        times, cpus = run_times([str(CLI), *run], args.runs)
        probe = subprocess.run([sys.executable, "-c", NO_NUMBA, *run], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
        numba = probe.strip().splitlines()[-1]
        target = f"; target < {TARGET_S} s" if targeted else ""
        print(f"systolic-sim run {config} --gemm 4096x4096x4096 [{label}]: median "
              f"{statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s "
              f"over {args.runs} runs; CPU median {statistics.median(cpus):.3f} s "
              f"({numba}{target})")


if __name__ == "__main__":
    main()
