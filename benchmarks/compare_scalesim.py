"""Head-to-head with SCALE-Sim v3: same workloads, cycles checked, wall time and peak memory.

    .venv/bin/python benchmarks/compare_scalesim.py [--timeout 600] [--quick]

Creates its own virtual environment (build/scalesim-venv) with scalesim 3.0.0 from the package
registry (it needs numpy < 2.4, so it stays out of ours), runs each workload on both simulators,
checks on every layer that our compute cycles equal SCALE-Sim's "Total Cycles" + 1 (the
documented constant offset), and prints a markdown table: SCALE-Sim wall time and peak RSS, ours
timing-only and with the memory model and energy (in-process, best of several runs after
warm-up), and the ratios. A workload SCALE-Sim does not finish within --timeout is reported as
such. Then: our peak RSS for timing-only 4096^3 and 65536^3 GEMMs on 128x128, and the cold start
of `systolic-sim run` with a warm numba cache.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "build" / "scalesim-venv"
SCALESIM = "scalesim==3.0.0"

CFG = """[general]
run_name = compare

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:    65536
FilterSramSzkB:   65536
OfmapSramSzkB:    65536
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : {dataflow}
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: {bw}
UseRamulatorTrace: False
"""


def ensure_venv() -> Path:
    """Create build/scalesim-venv with SCALE-Sim v3 (once); return its python."""
    py = VENV / "bin" / "python"
    if py.exists() and subprocess.run([py, "-c", "import scalesim"],
                                      capture_output=True).returncode == 0:
        return py
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", SCALESIM, "numpy<2.4"], check=True)
    return py


# A small process that runs the measured command and reports its children's peak RSS: Linux
# keeps ru_maxrss across execve, so a command forked straight from this (large) process would
# report this process's size as its floor.
_WRAPPER = r"""
import json, resource, subprocess, sys, time
timeout = float(sys.argv[1])
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    code = proc.wait(timeout=timeout)
except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait()
    code = None
print(json.dumps({"code": code,
                  "rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def run_measured(cmd: list[str], cwd: Path, timeout: float) -> tuple[float, float, int | None]:
    """Run cmd; return (wall s, peak RSS MB, exit status or None when killed at the timeout)."""
    import json
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-S", "-c", _WRAPPER, str(timeout), *map(str, cmd)],
                         cwd=cwd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    res = json.loads(out.stdout)
    return wall, res["rss_mb"], res["code"]


def scalesim_cycles(outdir: Path) -> list[int]:
    report = next(outdir.rglob("COMPUTE_REPORT.csv"))
    with open(report) as fh:
        rows = list(csv.reader(fh, skipinitialspace=True))
    col = [h.strip() for h in rows[0]].index("Total Cycles")
    return [int(float(r[col])) for r in rows[1:] if r and r[0].strip()]


def best_time(fn, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ours(workload: dict, topo: Path, tmp: Path) -> dict:
    from simulator import load_chip
    from simulator.engine import simulate_gemms
    from simulator.scalesim import import_scalesim_config
    from simulator.topology import load_topology
    shapes = [(layer.name, *layer.shape) for layer in load_topology(topo)]
    timing_chip = load_chip(ROOT / "configs" / "scalesim-compat.yaml", {
        "array.rows": workload["rows"], "array.cols": workload["cols"],
        "array.dataflow": workload["dataflow"]})
    cfg = tmp / "user.cfg"
    cfg.write_text(CFG.format(bw="USER", **workload))
    chip_yaml = tmp / "memory.yaml"
    chip_yaml.write_text(import_scalesim_config(cfg))
    memory_chip = load_chip(chip_yaml)
    rep = simulate_gemms(timing_chip, shapes)
    t_timing = best_time(lambda: simulate_gemms(timing_chip, shapes))
    t_memory = best_time(lambda: simulate_gemms(memory_chip, shapes))
    return {"cycles": [op.compute_cycles for op in rep.ops], "timing_s": t_timing,
            "memory_s": t_memory}


def workloads(quick: bool) -> list[dict]:
    out = []
    gemms = [("gemm 64x64x64", (64, 64, 64)), ("gemm 256x128x192", (256, 128, 192))]
    arrays = [(8, 8), (32, 32)] if not quick else [(8, 8)]
    for df in ("os", "ws", "is"):
        for rows, cols in arrays:
            for name, shape in (gemms if not quick else gemms[:1]):
                out.append({"name": f"{name} {df} {rows}x{cols}", "dataflow": df, "rows": rows,
                            "cols": cols, "gemm": shape})
    if not quick:
        for side in (32, 128):
            out.append({"name": f"ResNet-18 os {side}x{side}", "dataflow": "os", "rows": side,
                        "cols": side, "topology": ROOT / "configs" / "topologies" / "resnet18.csv"})
    return out


def our_rss(argv: list[str]) -> float:
    _wall, rss, code = run_measured([sys.executable, "-m", "simulator", *argv], ROOT, 600)
    assert code == 0, argv
    return rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=600.0, help="per SCALE-Sim run, seconds")
    ap.add_argument("--quick", action="store_true", help="three small GEMMs only")
    args = ap.parse_args()
    py = ensure_venv()
    rows = []
    mismatches = 0
    for wl in workloads(args.quick):
        with tempfile.TemporaryDirectory() as tmpd:
            tmp = Path(tmpd)
            cfg = tmp / "calc.cfg"
            cfg.write_text(CFG.format(bw="CALC", **wl))
            if "gemm" in wl:
                topo = tmp / "t.csv"
                m, n, k = wl["gemm"]
                topo.write_text(f"Layer, M, N, K,\ng, {m}, {n}, {k},\n")
                kind = "gemm"
            else:
                topo = wl["topology"]
                kind = "conv"
            wall, rss, code = run_measured(
                [str(py), "-m", "scalesim.scale", "-c", str(cfg), "-t", str(topo), "-l", str(topo),
                 "-p", str(tmp / "out"), "-i", kind, "-s", "N"], tmp, args.timeout)
            mine = ours(wl, topo, tmp)
            if code == 0:
                theirs = scalesim_cycles(tmp / "out")
                ok = len(theirs) == len(mine["cycles"]) and all(
                    c - t == 1 for c, t in zip(mine["cycles"], theirs))
                mismatches += not ok
                rows.append((wl["name"], len(theirs), f"{wall:.2f}", f"{rss:.0f}",
                             f"{mine['timing_s'] * 1e3:.3f}", f"{mine['memory_s'] * 1e3:.3f}",
                             f"{wall / mine['timing_s']:,.0f}x", f"{wall / mine['memory_s']:,.0f}x",
                             "yes (ours = SCALE-Sim + 1)" if ok else "NO"))
            else:
                status = "did not finish" if code is None else f"failed (exit {code})"
                rows.append((wl["name"], "-", f"{status} in {args.timeout:.0f} s",
                             f"{rss:.0f} at kill", f"{mine['timing_s'] * 1e3:.3f}",
                             f"{mine['memory_s'] * 1e3:.3f}", "-", "-", "n/a"))
            print(f"done: {wl['name']}", file=sys.stderr)
    head = ("workload", "layers", "SCALE-Sim s", "SCALE-Sim peak RSS MB", "ours timing ms",
            "ours memory+energy ms", "ratio timing", "ratio memory+energy", "compute cycles agree")
    print(f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} "
          f"({os.cpu_count()} cores, {platform.processor() or 'cpu'}), SCALE-Sim 3.0.0 "
          f"(-s N, 64 MiB SRAMs, CALC bandwidth), ours in-process best of 7 after warm-up.\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    # memory and cold start of our CLI
    rss_4k = our_rss(["run", "configs/tpu-v4-mxu.yaml", "--gemm", "4096x4096x4096"])
    rss_64k = our_rss(["run", "configs/tpu-v4-mxu.yaml", "--gemm", "65536x65536x65536"])
    cmd = [str(Path(sys.executable).parent / "systolic-sim"), "run",
           "configs/scalesim-compat.yaml", "--gemm", "64x64x64"]
    subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)  # warm the numba cache
    starts = [run_measured(cmd, ROOT, 60)[0] for _ in range(7)]
    print(f"\nour peak RSS, timing-only on 128x128: 4096^3 {rss_4k:.0f} MB, 65536^3 {rss_64k:.0f} MB "
          f"(target < 200 MB); `systolic-sim run` cold start with a warm numba cache: median "
          f"{statistics.median(starts):.2f} s, best {min(starts):.2f} s (target < 1.5 s)")
    if mismatches:
        sys.exit(f"{mismatches} workloads disagree with SCALE-Sim")


if __name__ == "__main__":
    main()
