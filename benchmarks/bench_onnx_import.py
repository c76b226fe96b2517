"""Speed of the ONNX importer (issue 14 targets): import (load, ONNX shape inference, lowering
to a Program) of GPT-2 small (seq 1024) < 10 s and of ResNet-18 (224 x 224) < 3 s; best of 3.

The .onnx files are exported first (not timed) from the zoo's networks written in PyTorch
(tests/torch_zoo.py) with torch.onnx.export(dynamo=True) into a temporary folder: torch,
onnxscript, onnx and onnxruntime come with the test extra. Also printed: the time to cost the
imported Program (timing only) next to its zoo twin's.

    .venv/bin/python benchmarks/bench_onnx_import.py [CONFIG]
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

import torch_zoo as TZ  # noqa: E402
from simulator import load_chip  # noqa: E402
from simulator.core.engine import run  # noqa: E402
from simulator.frontends.onnx_import import import_onnx  # noqa: E402
from simulator.kernels.zoo import build_zoo  # noqa: E402

CASES = [("ResNet-18 224", "resnet18", (torch.zeros(1, 3, 224, 224),), {}, False, 3.0),
         ("GPT-2 small s1024", "gpt2-small", (torch.zeros(1, 1024, dtype=torch.int64),),
          {"seq": 1024}, True, 10.0)]


def best(fn, repeat=3):
    """Return (best seconds, last result) of ``repeat`` calls."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(config: str = str(ROOT / "configs" / "tpu-v4-mxu.yaml")) -> int:
    chip = load_chip(config)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for label, name, args, sizes, optimize, target in CASES:
            path = Path(tmp) / f"{name}.onnx"
            t0 = time.perf_counter()
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(TZ.build_module(name), args, str(path), dynamo=True,
                                  optimize=optimize)
            export_s = time.perf_counter() - t0
            import_s, im = best(lambda: import_onnx(path))
            sim_s, _ = best(lambda: run(chip, im.program))
            zoo = build_zoo(f"zoo:{name}", **sizes).program
            zoo_s, _ = best(lambda: run(chip, zoo))
            ok = import_s < target
            failed += not ok
            print(f"{label:<20} file {path.stat().st_size / 1e6:7.1f} MB  export {export_s:6.1f} s "
                  f"(not timed)  import {import_s:6.2f} s (target < {target:g} s: "
                  f"{'ok' if ok else 'MISSED'})  {len(im.program.ops)} ops; "
                  f"run {sim_s * 1e3:.0f} ms"
                  f" (zoo twin {zoo_s * 1e3:.0f} ms)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
