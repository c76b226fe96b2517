"""Two writers and a Ctrl-C (issue 20), measured on real processes.

    .venv/bin/python benchmarks/bench_interrupt.py [--points N]

1. Two ``systolic-sim sweep`` processes started at once on one results file, with the process
   pool and with Dask: rows in the file, rows written twice, equal to a serial run, wall time.
2. SIGINT sent to the whole process group (as a terminal's Ctrl-C) once each run is mid-way
   (first rows in the file; the training loss printed by a wrapped step): exit status, the one
   line on stderr, milliseconds from the signal until the process and all its workers are gone.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "simulator"]
# the CLI with simulator.kernels.train.run wrapped to touch a marker file at its 50th call
TRAIN_DRIVER = """
import pathlib, sys
import simulator.kernels.train as t
inner, calls = t.run, [0]
def run(*a, **k):
    calls[0] += 1
    if calls[0] == 50:
        pathlib.Path(sys.argv[1]).touch()
    return inner(*a, **k)
t.run = run
from simulator.tools.cli import main
sys.exit(main(sys.argv[2:]))
"""


def rows_of(path: Path) -> list[tuple[str, str]]:
    text = path.read_text()
    return [(r["point"], r["workload"]) for r in csv.DictReader(io.StringIO(text))]


def in_group(pgid: int) -> int:
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            count += int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid
        except (OSError, IndexError):
            pass
    return count


def interrupt(cmd: list[str], ready, stderr: Path) -> str:
    """Start ``cmd`` in its own session, wait for ``ready()``, Ctrl-C its group; describe."""
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    while not ready():
        if proc.poll() is not None:
            return f"ended before the signal (status {proc.returncode})"
        time.sleep(0.005)
    workers = in_group(proc.pid) - 1
    t0 = time.perf_counter()
    os.killpg(proc.pid, signal.SIGINT)
    status = proc.wait()
    while in_group(proc.pid):
        time.sleep(0.001)
    dt = time.perf_counter() - t0
    lines = stderr.read_text().splitlines()
    return (f"status {status}, {len(lines)} stderr line(s), {workers} worker process(es) before, "
            f"0 after, {dt * 1e3:,.0f} ms to exit: {lines[-1] if lines else ''}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1536, help="points of the interrupted sweep")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    example = ROOT / "examples" / "sweep-array.yaml"
    serial = tmp / "serial.csv"
    subprocess.run([*CLI, "sweep", str(example), "--out", str(serial), "--executor", "serial"],
                   cwd=ROOT, check=True, capture_output=True)
    want = rows_of(serial)
    for executor in ("process", "dask"):
        out = tmp / f"two-{executor}.csv"
        t0 = time.perf_counter()
        procs = [subprocess.Popen([*CLI, "sweep", str(example), "--out", str(out), "--executor",
                                   executor, "--workers", "2"], cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
        results = [p.communicate() for p in procs]
        dt = time.perf_counter() - t0
        got = rows_of(out)
        same = sorted(out.read_text().splitlines()) == sorted(serial.read_text().splitlines())
        print(f"two sweeps at once ({executor}): status {[p.returncode for p in procs]}, "
              f"{len(got)} rows for {len(want)} (point, workload), "
              f"{len(got) - len(set(got))} twice, same rows as a serial run: {same}, {dt:.1f} s; "
              + " | ".join(o.strip().split("; ")[-1] for o, _e in results))

    n = max(1, args.points // 12)
    big = tmp / "big.yaml"
    big.write_text(f"base: {ROOT / 'configs' / 'tpu-v1.yaml'}\n"
                   f"grid:\n  array.rows: {{range: [4, {4 * n}, 4]}}\n"
                   f"  array.dataflow: [os, ws, is]\n  array.cols: [32, 64, 128, 256]\n"
                   f"workloads:\n  - gemm: 1024x1024x1024\n"
                   f"  - topology: {ROOT / 'configs' / 'topologies' / 'resnet18.csv'}\n")
    for executor in ("process", "dask"):
        out = tmp / f"int-{executor}.csv"
        print(f"Ctrl-C sweep ({executor}, {24 * n} rows): " + interrupt(
            [*CLI, "sweep", str(big), "--out", str(out), "--executor", executor, "--workers", "2"],
            lambda out=out: out.exists() and len(out.read_bytes().splitlines()) > 1,
            tmp / f"int-{executor}.err"))
        again = subprocess.run([*CLI, "sweep", str(big), "--out", str(out), "--executor",
                                executor, "--workers", "2"], cwd=ROOT, capture_output=True,
                               text=True)
        got = rows_of(out)
        print(f"  resumed: status {again.returncode}, {len(got)} rows, "
              f"{len(got) - len(set(got))} twice; {again.stdout.strip().split('; ')[-1]}")
    marker = tmp / "marker"
    print("Ctrl-C train (mlp:10:32:1, 100000 steps, after step 50): " + interrupt(
        [sys.executable, "-c", TRAIN_DRIVER, str(marker), "train",
         str(ROOT / "configs" / "tpu-v4-mxu.yaml"), "--model", "mlp:10:32:1", "--steps", "100000"],
        marker.exists, tmp / "train.err"))


if __name__ == "__main__":
    main()
