"""The hot loops run as plain Python too (NUMBA_DISABLE_JIT=1), and give the same answers.

This keeps the numba kernels coverable and guards against code that only works compiled.
"""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

SCRIPT = r"""
import numpy as np
from simulator import simulate_gemm
from simulator.hardware.chip import chip_from_config
from simulator.hardware.config import validate_config
from simulator.core import _timing

rng = np.random.default_rng(0)
checked = 0
for df in ("os", "ws", "is"):
    for fd in ("full", "active"):
        for ov in (False, True):
            for dtype, overflow in (("int8", "wrap"), ("int8", "saturate"), ("bf16", "wrap")):
                flat = {"array.rows": 3, "array.cols": 2, "array.dataflow": df,
                        "array.fill_drain": fd, "array.preload_overlap": ov, "dtype": dtype,
                        "overflow": overflow, "accumulator_bits": 16}
                chip = chip_from_config(validate_config({}, {}, "t",
                                        {k: (v, "t") for k, v in flat.items()}))
                if dtype == "int8":
                    a = rng.integers(-128, 128, (5, 7)); b = rng.integers(-128, 128, (7, 3))
                else:
                    a = rng.standard_normal((5, 7)); b = rng.standard_normal((7, 3))
                f = simulate_gemm(chip, a=a, b=b)
                r = simulate_gemm(chip, a=a, b=b, engine="reference")
                assert f.compute_cycles == r.compute_cycles, (df, fd, ov)
                assert np.array_equal(f.output, r.output), (df, fd, ov, dtype)
                assert f.overflow_events == r.overflow_events
                checked += 1
args = (7, 30, 4, 20, 3, False, 4, 3, True, True, True)
assert _timing._gemm_cycles(*args) == _timing._gemm_cycles_per_fold(*args)
print("nojit ok", checked)
"""


def test_hot_loops_without_jit():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "nojit ok 36"
