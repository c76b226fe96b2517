"""Cold start of the command line (issue 28 target): `systolic-sim run
configs/scalesim-compat.yaml --gemm 64x64x64`, timing only, measured as a whole process
(interpreter start, imports, config, simulation, report); median of several runs against a
0.3 s target, with the heavy optional modules the run loaded (none expected: ml_dtypes, numba,
matplotlib, torch, onnx, scipy) and the installed ml_dtypes version (0.7 imports in ~0.5 s, which
a timing-only run must not pay). For contrast it also times a 4096^3 GEMM on a chip without a
memory model and on one whose buffers make the GEMM tile (the numba memory model, warm cache).

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
TARGET_S = 0.3
HEAVY = ("ml_dtypes", "numba", "matplotlib", "torch", "onnx", "scipy")

PROBE = """
import sys
from simulator.tools.cli import main
assert main(sys.argv[1:]) == 0
heavy = [m for m in %r if m in sys.modules]
print("heavy modules loaded:", ", ".join(heavy) or "none")
""" % (HEAVY,)


def installed_version(dist: str) -> str:
    """Return the installed version of distribution ``dist`` (without importing it), or
    'not installed'."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


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
    print(f"ml_dtypes {installed_version('ml-dtypes')}, numba {installed_version('numba')}, "
          f"numpy {installed_version('numpy')}, Python {sys.version.split()[0]}")
    cases = [("issue 28 target", "configs/scalesim-compat.yaml", "64x64x64", True),
             ("no memory model", "configs/tpu-v4-mxu.yaml", "4096x4096x4096", False),
             ("buffers, DRAM; numba", "configs/tpu-v1.yaml", "4096x4096x4096", False)]
    for label, config, gemm, targeted in cases:
        run = ["run", config, "--gemm", gemm]
        times, cpus = run_times([str(CLI), *run], args.runs)
        probe = subprocess.run([sys.executable, "-c", PROBE, *run], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
        heavy = probe.strip().splitlines()[-1]
        met = statistics.median(times) <= TARGET_S
        target = f"; target <= {TARGET_S} s: {'met' if met else 'MISSED'}" if targeted else ""
        print(f"systolic-sim run {config} --gemm {gemm} [{label}]: median "
              f"{statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s "
              f"over {args.runs} runs; CPU median {statistics.median(cpus):.3f} s "
              f"({heavy}{target})")


if __name__ == "__main__":
    main()
