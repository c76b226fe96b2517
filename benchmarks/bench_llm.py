"""Speed of ``systolic-sim llm``: one Llama-3-70B run and a 1,000-point sweep.

Targets (issue 17): one run of Llama-3-70B, prefill 2048 + 256 decode steps at tp 8, < 1 s;
a sweep of 1,000 (batch, tp, pp) points < 1 min. Both in-process, after one warm-up call
that compiles the engine's numba kernels; the run starts with an empty table of GEMM shapes.

    .venv/bin/python benchmarks/bench_llm.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / "build" / "numba-cache"))

from simulator import load_chip  # noqa: E402
from simulator.llm import load_model, simulate_inference  # noqa: E402
from simulator.llm.sweep import sweep_inference  # noqa: E402

BATCHES = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384, 448,
           512, 640, 768, 1024]  # 25
TPS = [1, 2, 4, 8]
PPS = [1, 2, 4, 5, 8, 10, 16, 20, 40, 80]  # 25 x 4 x 10 = 1,000 points


def main() -> None:
    chip = load_chip(ROOT / "configs/h100.yaml", {"system.chips": 640})
    model = load_model(ROOT / "configs/models/llama-3-70b.yaml")
    simulate_inference(chip, load_model(ROOT / "configs/models/smollm2-135m.yaml"), 1, 16, 4)
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        res = simulate_inference(chip, model, 16, 2048, 256, tp=8)
        runs.append(time.perf_counter() - t0)
    d = res.to_dict()
    print(f"llama-3-70b on 8 x h100, batch 16, prompt 2048 + 256 decode, tp 8: "
          f"best {min(runs):.3f} s, worst {max(runs):.3f} s (target < 1 s); "
          f"TTFT {d['prefill']['time_s'] * 1e3:.1f} ms, TPOT {d['decode']['tpot_mean_s'] * 1e3:.2f} ms")
    t0 = time.perf_counter()
    rows = sweep_inference(chip, model, BATCHES, TPS, PPS, prompt=2048, generate=256)
    dt = time.perf_counter() - t0
    ok = sum(r["status"] == "ok" for r in rows)
    print(f"sweep of {len(rows)} (batch, tp, pp) points ({ok} costed, {len(rows) - ok} refused): "
          f"{dt:.1f} s (target < 60 s), {len(rows) / dt:.0f} points/s")


if __name__ == "__main__":
    main()
