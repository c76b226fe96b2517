"""Speed of the core (issue 3 targets), measured in one run on this machine.

    .venv/bin/python benchmarks/bench_core.py

Prints: timing-only 4096^3 GEMM on a 128x128 array (target < 5 ms); the PE-level reference in
PE-cycles per second on one core, os, ws, is, and os and ws with folds pipelined (target >=
1e9); the functional fp32 1024^3 GEMM, kept in the array's accumulation order, as a fraction
of numpy's fp32 matmul throughput (target >= 0.5).
Compilation happens in a warm-up before any timing.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np

from simulator import simulate_gemm
from simulator.hardware.chip import chip_from_config
from simulator.hardware.config import validate_config


def chip(rows, cols, dataflow, dtype, fill_drain="full", overlap=True, pipelined=False):
    flat = {"array.rows": rows, "array.cols": cols, "array.dataflow": dataflow, "dtype": dtype,
            "array.fill_drain": fill_drain, "array.preload_overlap": overlap,
            "array.fold_pipelining": pipelined, "name": "bench"}
    return chip_from_config(validate_config({}, {}, "bench", {k: (v, "bench") for k, v in flat.items()}))


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    import numba
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}, numba {numba.__version__}, numba threads "
          f"{numba.get_num_threads()}")

    # 1. timing only
    c = chip(128, 128, "ws", "bf16")
    simulate_gemm(c, shape=(64, 64, 64))
    best, med = best_of(lambda: simulate_gemm(c, shape=(4096, 4096, 4096)), 200)
    print(f"timing-only 4096^3 on 128x128 ws: {best * 1e3:.4f} ms best, {med * 1e3:.4f} ms median "
          f"(target < 5 ms)")

    # 2. PE-level reference, single core, 64x64 array (full fill/drain: every PE clocked)
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    for df, piped in (("os", False), ("ws", False), ("is", False), ("os", True), ("ws", True)):
        c = chip(64, 64, df, "fp32", overlap=piped, pipelined=piped)
        a = rng.standard_normal((512, 512)).astype(np.float32)
        b = rng.standard_normal((512, 512)).astype(np.float32)
        simulate_gemm(c, a=a[:8, :8], b=b[:8, :8], engine="reference")
        holder = {}
        best, _ = best_of(lambda: holder.setdefault("r", simulate_gemm(c, a=a, b=b,
                                                                       engine="reference")), 5)
        pe_cycles = holder["r"].compute_cycles * 64 * 64
        mode = ", folds pipelined" if piped else ""
        print(f"PE reference {df} 512^3 on 64x64 fp32{mode}: {pe_cycles / best:.3g} PE-cycles/s "
              f"({pe_cycles:.3g} PE-cycles in {best:.3f} s; target >= 1e9)")
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)

    # 3. functional fp32 1024^3 vs numpy
    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    b = rng.standard_normal((1024, 1024)).astype(np.float32)
    np_best, _ = best_of(lambda: a @ b, 10)
    for df in ("os", "ws"):
        c = chip(128, 128, df, "fp32")
        simulate_gemm(c, a=a[:64, :64], b=b[:64, :64])
        best, _ = best_of(lambda: simulate_gemm(c, a=a, b=b), 5)
        print(f"functional fp32 1024^3 {df}: {best * 1e3:.1f} ms vs numpy {np_best * 1e3:.1f} ms "
              f"-> {np_best / best:.2f} of numpy's throughput "
              f"({2 * 1024 ** 3 / best / 1e9:.1f} vs {2 * 1024 ** 3 / np_best / 1e9:.1f} GFLOP/s; "
              f"target >= 0.5)")


if __name__ == "__main__":
    main()
