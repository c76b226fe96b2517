"""Speed of whole networks (issue 13 targets), after warm-up, best of several runs:

- timing only: BERT-base (batch 8, seq 128) and GPT-2 small forward (seq 1024) < 50 ms each,
  a GPT-2 small training step (AdamW) < 200 ms, ResNet-18 < 20 ms;
- functional fp32 BERT-base, batch 1, seq 128 < 30 s (one run).

"build" makes the Program (for training: forward, backward and optimizer ops); "run" schedules
and costs it (memory model, residency, energy). The targets apply to build + run.

    .venv/bin/python benchmarks/bench_networks.py [CONFIG ...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from simulator import load_chip
from simulator.core.autodiff import Optimizer
from simulator.core.engine import run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.kernels.zoo import build_zoo  # noqa: E402
from simulator.kernels.zoo_train import step_program  # noqa: E402

CASES = [("BERT-base b8 s128", "zoo:bert-base", dict(batch=8, seq=128), False, 50),
         ("GPT-2 small s1024", "zoo:gpt2-small", dict(seq=1024), False, 50),
         ("GPT-2 small s1024 train step", "zoo:gpt2-small", dict(seq=1024), True, 200),
         ("ResNet-18 224", "zoo:resnet18", {}, False, 20)]


def best_of(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up (compilation, caches)
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    configs = sys.argv[1:] or ["tpu-v4-mxu", "tpu-v4-tensorcore", "gemmini"]
    for name in configs:
        chip = load_chip(ROOT / "configs" / f"{name}.yaml")
        for label, model, sizes, train, target_ms in CASES:
            def build():
                m = build_zoo(model, **sizes)
                return step_program(m, "cross_entropy", Optimizer("adamw", 1e-4)) if train \
                    else m.program
            t_build, prog = best_of(build, 3)
            t_run, rep = best_of(lambda: run(chip, prog), 5)
            total = (t_build + t_run) * 1e3
            print(f"{name:<18} {label:<30} {len(prog.ops):>5} ops  build {t_build * 1e3:6.1f} ms"
                  f"  run {t_run * 1e3:6.1f} ms  total {total:6.1f} ms (target < {target_ms} ms, "
                  f"{'ok' if total < target_ms else 'MISSED'});  {rep.total_cycles:,} cycles")
    chip = load_chip(ROOT / "configs" / "tpu-v4-mxu.yaml", {"dtype": "fp32"})
    tiny = build_zoo("zoo:tiny-transformer")  # warm-up: compiles the functional kernels
    run(chip, tiny.program, tiny.inputs(0))
    m = build_zoo("zoo:bert-base", batch=1, seq=128)
    t0 = time.perf_counter()
    values = m.inputs(0)
    t_init = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = run(chip, m.program, values)
    t_run = time.perf_counter() - t0
    print(f"functional fp32 BERT-base b1 s128 on tpu-v4-mxu: {t_run:.2f} s (target < 30 s; "
          f"seeded init of 110M parameters {t_init:.2f} s more); output "
          f"{rep.values[m.output].shape}")


if __name__ == "__main__":
    main()
