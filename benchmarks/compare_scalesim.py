"""Head-to-head with SCALE-Sim v3: same workloads, cycles and report columns checked, fair timings.

    .venv/bin/python benchmarks/compare_scalesim.py [--timeout 600] [--quick] [--only TEXT]

Creates its own virtual environment (build/scalesim-venv) with scalesim 3.0.0 from the package
registry (it needs numpy < 2.4, so it stays out of ours) and runs each workload on both
simulators from the same SCALE-Sim config (ours imports it with ``import-scalesim``).

Timings, in fair pairs:
- process vs process: SCALE-Sim as its command line runs it (interpreter start, imports,
  simulation, trace and report writing) against our CLI started cold as a subprocess
  (``systolic-sim run CHIP --topology T --export-scalesim DIR``), wall time and peak RSS each;
- simulation vs simulation, in-process: the time SCALE-Sim spends inside its layer simulations
  (``single_layer_sim.run`` and its report figures, timed inside the same SCALE-Sim process)
  against ours in-process on the same imported chip (memory model and energy included), best
  of several runs after warm-up; our timing-only model (ideal memory) is shown beside it.

Checks, on every layer: our compute cycles = SCALE-Sim's "Total Cycles" - "Stall Cycles" + 1
(the constant offset: SCALE-Sim counts from 0), tiled or not (the imported chip says
``tiling.objective: compute``, as SCALE-Sim's compute ignores its SRAMs); where our own
objective (``time``) would take more compute for fewer total cycles, the row says by how much.
The workloads with finite SRAMs and USER
bandwidth also check every COMPUTE_REPORT column of our ``--export-scalesim`` against
SCALE-Sim's definitions and print both rows: Mapping Efficiency and Compute Util equal
SCALE-Sim's figures; on both sides Total Cycles - Stall Cycles is the compute (- 1),
Overall Util = 100 MACs / (Total Cycles x PEs), and Total Cycles (incl. prefetch) >= Total
Cycles (the stall figures themselves come from two different memory models; docs/scalesim.md).
Then: our peak RSS for timing-only 4096^3 and 65536^3 GEMMs on 128x128, and the cold start of
``systolic-sim run`` with a warm numba cache.
"""

from __future__ import annotations

import argparse
import csv
import json
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
CLI = Path(sys.executable).parent / "systolic-sim"

CFG = """[general]
run_name = compare

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:    {sram[0]}
FilterSramSzkB:   {sram[1]}
OfmapSramSzkB:    {sram[2]}
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : {words[2]}
Dataflow : {dataflow}
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: {words[0]}
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: {words[1]}
FilterSRAMBankNum: 1
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
BIG_SRAM = (65536, 65536, 65536)  # KiB: nothing is tiled, no memory stalls

# SCALE-Sim as its command line (scalesim/scale.py) runs it, with the time spent inside the
# layer simulations recorded from within the same process.
_SCALESIM_RUNNER = r"""
import json, sys, time
import scalesim.single_layer_sim as sls
from scalesim.scale_sim import scalesim
spent = [0.0]
def timed(f):
    def wrapper(self, *a, **k):
        t0 = time.perf_counter()
        try:
            return f(self, *a, **k)
        finally:
            spent[0] += time.perf_counter() - t0
    return wrapper
sls.single_layer_sim.run = timed(sls.single_layer_sim.run)
sls.single_layer_sim.calc_report_data = timed(sls.single_layer_sim.calc_report_data)
cfg, topo, out, kind, result = sys.argv[1:6]
s = scalesim(save_disk_space=False, verbose=True, config=cfg, topology=topo, layout=topo,
             input_type_gemm=kind == "gemm")
s.run_scale(top_path=out)
with open(result, "w") as fh:
    json.dump({"simulation_s": spent[0]}, fh)
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
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-S", "-c", _WRAPPER, str(timeout), *map(str, cmd)],
                         cwd=cwd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    res = json.loads(out.stdout)
    return wall, res["rss_mb"], res["code"]


def read_compute_report(outdir: Path) -> list[dict[str, float]]:
    """Return the rows of the COMPUTE_REPORT.csv under outdir as {column: value}."""
    report = next(outdir.rglob("COMPUTE_REPORT.csv"))
    with open(report) as fh:
        rows = list(csv.reader(fh, skipinitialspace=True))
    head = [h.strip() for h in rows[0]]
    return [{h: float(v) for h, v in zip(head, r) if h and v.strip()}
            for r in rows[1:] if r and r[0].strip()]


def best_time(fn, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ours_in_process(wl: dict, topo: Path, chip_yaml: Path) -> dict:
    """Return our in-process figures: per layer the compute and total cycles, and those of the
    tiling our own objective (``time``) would take on the same chip (``fastest``), best times
    (s) of the timing-only model and of the imported chip with memory model and energy."""
    from simulator import load_chip
    from simulator.core.engine import simulate_gemms
    from simulator.core.memory import run_gemm_memory
    from simulator.frontends.topology import load_topology
    shapes = [(layer.name, *layer.shape) for layer in load_topology(topo)]
    timing_chip = load_chip(ROOT / "configs" / "scalesim-compat.yaml", {
        "array.rows": wl["rows"], "array.cols": wl["cols"], "array.dataflow": wl["dataflow"]})
    memory_chip = load_chip(chip_yaml)
    timed = memory_chip.with_overrides({"tiling.objective": "time"})
    fastest = [run_gemm_memory(timed, m, n, k) for _name, m, n, k in shapes]
    rep = simulate_gemms(memory_chip, shapes)
    return {"cycles": [op.compute_cycles for op in rep.ops],
            "totals": [op.total_cycles for op in rep.ops],
            "fastest": [(r.compute_cycles, r.total_cycles) for r in fastest],
            "macs": [op.macs for op in rep.ops], "pes": memory_chip.pes,
            "timing_s": best_time(lambda: simulate_gemms(timing_chip, shapes)),
            "memory_s": best_time(lambda: simulate_gemms(memory_chip, shapes))}


def compute_verdict(theirs: list[int], mine: dict) -> tuple[bool, str]:
    """Return (agrees, text): our compute cycles = SCALE-Sim's + 1 on every layer; where our
    own objective (time) would trade compute for total cycles, the text says by how much."""
    if len(theirs) != len(mine["cycles"]):
        return False, "NO (layer count)"
    if any(c != t + 1 for t, c in zip(theirs, mine["cycles"])):
        return False, "NO"
    traded = [f"+{f_compute - c:,} compute for {total - f_total:,} fewer total cycles"
              for c, total, (f_compute, f_total) in zip(mine["cycles"], mine["totals"],
                                                         mine["fastest"])
              if f_total < total]
    if not traded:
        return True, "yes (ours = SCALE-Sim + 1)"
    return True, ("yes (ours = SCALE-Sim + 1); tiling.objective time would take "
                  + "; ".join(traded))


def workloads(quick: bool) -> list[dict]:
    out = []
    # 100x70x90 leaves partial folds in every dimension on 8x8 and 32x32 (M, N and K are no
    # multiples of 8), so partial-fold padding is exercised for every dataflow
    gemms = [("gemm 64x64x64", (64, 64, 64)), ("gemm 256x128x192", (256, 128, 192)),
             ("gemm 100x70x90", (100, 70, 90))]
    arrays = [(8, 8), (32, 32)] if not quick else [(8, 8)]
    for df in ("os", "ws", "is"):
        for rows, cols in arrays:
            for name, shape in (gemms if not quick else gemms[2:]):
                out.append({"name": f"{name} {df} {rows}x{cols}", "dataflow": df, "rows": rows,
                            "cols": cols, "gemm": shape, "sram": BIG_SRAM, "mode": "CALC",
                            "words": (10, 10, 10)})
    # finite SRAMs: our layers are tiled (and stream); with CALC bandwidth the compute is
    # SCALE-Sim's; with USER bandwidth, different per operand, they stall, and every exported
    # column is checked against SCALE-Sim's definition
    for mode in ("CALC", "USER"):
        out.append({"name": f"gemm 256x128x192 ws 16x16, SRAM 4/4/8 KiB, {mode}"
                    + (" 10/4/20 words/cycle" if mode == "USER" else ""),
                    "dataflow": "ws", "rows": 16, "cols": 16, "gemm": (256, 128, 192),
                    "sram": (4, 4, 8), "mode": mode, "words": (10, 4, 20)})
        out.append({"name": f"gemm 100x70x90 os 8x8, SRAM 2/1/4 KiB, {mode}"
                    + (" 4/2/8 words/cycle" if mode == "USER" else ""),
                    "dataflow": "os", "rows": 8, "cols": 8, "gemm": (100, 70, 90),
                    "sram": (2, 1, 4), "mode": mode, "words": (4, 2, 8)})
    if not quick:
        for side in (32, 128):
            out.append({"name": f"ResNet-18 os {side}x{side}", "dataflow": "os", "rows": side,
                        "cols": side, "topology": ROOT / "configs" / "topologies" / "resnet18.csv",
                        "sram": BIG_SRAM, "mode": "CALC", "words": (10, 10, 10)})
    return out


def our_rss(argv: list[str]) -> float:
    _wall, rss, code = run_measured([sys.executable, "-m", "simulator", *argv], ROOT, 600)
    assert code == 0, argv
    return rss


_COLUMNS = ("Total Cycles (incl. prefetch)", "Total Cycles", "Stall Cycles", "Overall Util %",
            "Mapping Efficiency %", "Compute Util %")


def check_columns(theirs: dict, mine: dict, macs: int, pes: int) -> list[str]:
    """Return what differs between a SCALE-Sim row and our exported row, by its definitions."""
    bad = []
    for name in ("Mapping Efficiency %", "Compute Util %"):
        if abs(theirs[name] - mine[name]) > 1e-4 * max(1.0, abs(theirs[name])):
            bad.append(f"{name} {mine[name]} != {theirs[name]}")
    for who, row in (("SCALE-Sim", theirs), ("ours", mine)):
        util = 100.0 * macs / (row["Total Cycles"] * pes)
        if abs(row["Overall Util %"] - util) > 1e-4 * util:
            bad.append(f"{who}: Overall Util {row['Overall Util %']} != 100 MACs/(Total x PEs)")
        if row["Total Cycles (incl. prefetch)"] < row["Total Cycles"]:
            bad.append(f"{who}: Total Cycles (incl. prefetch) < Total Cycles")
        if row["Stall Cycles"] < 0:
            bad.append(f"{who}: negative Stall Cycles")
    return bad


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=600.0, help="per SCALE-Sim run, seconds")
    ap.add_argument("--quick", action="store_true", help="a few small GEMMs only")
    ap.add_argument("--only", default="", help="run only the workloads whose name has this text")
    args = ap.parse_args()
    py = ensure_venv()
    rows, column_rows = [], []
    problems = 0
    for wl in workloads(args.quick):
        if args.only not in wl["name"]:
            continue
        with tempfile.TemporaryDirectory() as tmpd:
            tmp = Path(tmpd)
            cfg = tmp / "scale.cfg"
            cfg.write_text(CFG.format(bw=wl["mode"], **wl))
            if "gemm" in wl:
                topo = tmp / "t.csv"
                m, n, k = wl["gemm"]
                topo.write_text(f"Layer, M, N, K,\ng, {m}, {n}, {k},\n")
                kind = "gemm"
            else:
                topo = wl["topology"]
                kind = "conv"
            runner = tmp / "runner.py"
            runner.write_text(_SCALESIM_RUNNER)
            wall, rss, code = run_measured(
                [str(py), str(runner), str(cfg), str(topo), str(tmp / "out"), kind,
                 str(tmp / "sim.json")], tmp, args.timeout)
            chip_yaml = tmp / "chip.yaml"
            subprocess.run([str(CLI), "import-scalesim", str(cfg), "-o", str(chip_yaml)],
                           check=True, capture_output=True)
            cli_wall, cli_rss, cli_code = run_measured(
                [str(CLI), "run", str(chip_yaml), "--topology", str(topo), "--export-scalesim",
                 str(tmp / "ours")], tmp, 600)
            assert cli_code == 0, wl["name"]
            mine = ours_in_process(wl, topo, chip_yaml)
            if code != 0:
                status = "did not finish" if code is None else f"failed (exit {code})"
                rows.append((wl["name"], "-", f"{status} in {args.timeout:.0f} s",
                             f"{cli_wall:.2f}", "-", "-", f"{mine['memory_s'] * 1e3:.3f}", "-",
                             f"{mine['timing_s'] * 1e3:.3f}", f"{rss:.0f} at kill",
                             f"{cli_rss:.0f}", "n/a"))
                print(f"done: {wl['name']} (SCALE-Sim {status})", file=sys.stderr)
                continue
            sim_s = json.loads((tmp / "sim.json").read_text())["simulation_s"]
            theirs = read_compute_report(tmp / "out")
            exported = read_compute_report(tmp / "ours")
            ok, verdict = compute_verdict(
                [int(t["Total Cycles"] - t["Stall Cycles"]) for t in theirs], mine)
            problems += not ok
            if wl["mode"] == "USER":
                for i, (t, e) in enumerate(zip(theirs, exported)):
                    bad = check_columns(t, e, mine["macs"][i], mine["pes"])
                    problems += bool(bad)
                    column_rows.append((wl["name"], t, e, "; ".join(bad) or "yes"))
            rows.append((wl["name"], len(theirs), f"{wall:.2f}", f"{cli_wall:.2f}",
                         f"{wall / cli_wall:,.0f}x", f"{sim_s:.3f}",
                         f"{mine['memory_s'] * 1e3:.3f}", f"{sim_s / mine['memory_s']:,.0f}x",
                         f"{mine['timing_s'] * 1e3:.3f}", f"{rss:.0f}", f"{cli_rss:.0f}",
                         verdict))
            print(f"done: {wl['name']}", file=sys.stderr)
    head = ("workload", "layers", "SCALE-Sim process s", "our CLI process s", "ratio",
            "SCALE-Sim simulation s", "ours in-process ms", "ratio", "ours timing-only ms",
            "SCALE-Sim peak RSS MB", "our CLI peak RSS MB", "compute cycles agree")
    print(f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} "
          f"({os.cpu_count()} cores, {platform.processor() or 'cpu'}), SCALE-Sim 3.0.0. "
          "Process: SCALE-Sim's command line vs `systolic-sim run` started cold (a subprocess, "
          "writing COMPUTE_REPORT.csv). Simulation: SCALE-Sim's time inside its layer "
          "simulations vs ours in-process on the same imported config (memory model and energy; "
          "best of 7 after warm-up); timing-only: ours with ideal memory.\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    if column_rows:
        print("\nCOMPUTE_REPORT columns with finite SRAMs and USER bandwidth (SCALE-Sim / ours "
              "`--export-scalesim`):\n")
        print("| workload | " + " | ".join(_COLUMNS) + " | definitions hold |")
        print("|" + "---|" * (len(_COLUMNS) + 2))
        for name, t, e, verdict in column_rows:
            cells = [f"{t[c]:.6g} / {e[c]:.6g}" for c in _COLUMNS]
            print(f"| {name} | " + " | ".join(cells) + f" | {verdict} |")
    # memory and cold start of our CLI
    rss_4k = our_rss(["run", "configs/tpu-v4-mxu.yaml", "--gemm", "4096x4096x4096"])
    rss_64k = our_rss(["run", "configs/tpu-v4-mxu.yaml", "--gemm", "65536x65536x65536"])
    cmd = [str(CLI), "run", "configs/scalesim-compat.yaml", "--gemm", "64x64x64"]
    subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)  # warm the numba cache
    starts = [run_measured(cmd, ROOT, 60)[0] for _ in range(7)]
    print(f"\nour peak RSS, timing-only on 128x128: 4096^3 {rss_4k:.0f} MB, 65536^3 {rss_64k:.0f} MB "
          f"(target < 200 MB); `systolic-sim run` cold start with a warm numba cache: median "
          f"{statistics.median(starts):.2f} s, best {min(starts):.2f} s (target < 1.5 s)")
    if problems:
        sys.exit(f"{problems} workloads or report rows disagree with SCALE-Sim")


if __name__ == "__main__":
    main()
