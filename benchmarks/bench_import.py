"""Speed of the PyTorch importer (issue 14 targets), one cold import each, then best-of runs:

- import (torch.export + conversion) of GPT-2 small (seq 1024) < 10 s, ResNet-18 (224) < 3 s;
- an imported model simulates (timing only) as fast as its zoo twin: the same Program ops, so
  the run times should agree within noise.

The modules are tests/torch_zoo.py's (GPT-2 small with the zoo's full table, torchvision-style
ResNet-18), with PyTorch's default initialisation (values do not matter for timing).

    .venv/bin/python benchmarks/bench_import.py [CONFIG]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from simulator import load_chip
from simulator.core.engine import run
from simulator.frontends.torch_import import import_module

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import torch_zoo as TZ  # noqa: E402
from simulator.kernels.zoo import build_zoo  # noqa: E402

CASES = [("GPT-2 small s1024", "gpt2-small", lambda: (torch.zeros(1, 1024, dtype=torch.long),),
          dict(seq=1024), 10.0),
         ("ResNet-18 224", "resnet18", lambda: (torch.zeros(1, 3, 224, 224),), {}, 3.0)]


def signature(p) -> list:
    """Return per op its class, kind, input shapes and output shape."""
    return [(type(o).__name__, getattr(o, "kind", ""), tuple(p.shapes[t] for t in o.inputs),
             p.shapes[o.output]) for o in p.ops]


def best_of(fn, repeats: int) -> float:
    """Return the best wall time of ``repeats`` calls of ``fn`` after one warm-up (seconds)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str]) -> int:
    chip = load_chip(argv[0] if argv else ROOT / "configs" / "tpu-v4-mxu.yaml")
    failed = False
    for label, name, inputs, sizes, limit_s in CASES:
        module = TZ.build_module(name)
        t0 = time.perf_counter()
        im = import_module(module, inputs(), where=f"torch_zoo:{name}")
        import_s = time.perf_counter() - t0
        zoo = build_zoo(f"zoo:{name}", **sizes)
        same = signature(im.program) == signature(zoo.program)
        run_imported = best_of(lambda: run(chip, im.program), 3)
        run_zoo = best_of(lambda: run(chip, zoo.program), 3)
        ok = import_s < limit_s
        failed |= not ok or not same
        print(f"{label:<20} import {import_s:6.2f} s (target < {limit_s:g} s) "
              f"{'ok' if ok else 'SLOW'}; {len(im.program.ops)} ops "
              f"({'the same as' if same else 'DIFFERENT from'} the zoo's); "
              f"run imported {run_imported * 1e3:7.1f} ms, zoo {run_zoo * 1e3:7.1f} ms")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
