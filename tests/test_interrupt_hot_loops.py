"""Ctrl-C inside a long numba loop: the command ends within a second, exit 130, one line.

Each run is a real ``systolic-sim`` process (the console script's ``_entry.main``) whose hot
loop is wrapped to touch a marker file as it starts; SIGINT is sent as soon as the marker
appears, so it lands inside the loop, which runs for many seconds when left alone. Before
``core.interruptible`` these loops ran on the main thread and took Ctrl-C only when they
returned (22 s for the ``--functional`` run below, 5 s for ``validate``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import CONFIGS, ROOT

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX signals")

# Runs the console script with one hot loop wrapped: its first call touches MARKER.
DRIVER = """
import importlib, pathlib, sys
marker, module, name = sys.argv[1:4]
mod = importlib.import_module(module)
inner = getattr(mod, name)
def marked(*args, **kwargs):
    pathlib.Path(marker).touch()
    return inner(*args, **kwargs)
setattr(mod, name, marked)
sys.argv = ["systolic-sim", *sys.argv[4:]]
from simulator._entry import main
sys.exit(main())
"""

GEMMINI = str(CONFIGS / "gemmini.yaml")
TPU = str(CONFIGS / "tpu-v4-mxu.yaml")

# (command, the hot loop it spends its time in); each loop runs for seconds on these shapes
CASES = {
    "run --functional": (["run", GEMMINI, "--gemm", "4096x4096x1024", "--functional"],
                         "simulator.core._numerics", "_gemm_ordered"),
    "run --engine reference": (["run", TPU, "--gemm", "2048x1024x1024", "--engine", "reference",
                                "--set", "array.dataflow=os"], "simulator.core._pe_array",
                               "_os_pipelined"),
    "validate": (["validate", TPU, "--gemm", "1024x1024x2048"], "simulator.core._pe_array",
                 "_ws_pipelined"),
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The environment of the runs, with numba's cache warmed off the clock (compiling the
    loops takes longer than running them on small shapes)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get(
        "NUMBA_CACHE_DIR", str(tmp_path_factory.mktemp("numba")))}
    for argv in (["run", GEMMINI, "--gemm", "512x512x64", "--functional"],
                 ["run", TPU, "--gemm", "64x64x64", "--engine", "reference", "--set",
                  "array.dataflow=os"],
                 ["validate", TPU, "--gemm", "64x64x64"]):
        warm = subprocess.run([sys.executable, "-m", "simulator", *argv], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert warm.returncode == 0, warm.stderr
    return env


@pytest.mark.parametrize("case", list(CASES))
def test_ctrl_c_inside_a_hot_loop_ends_the_command_within_a_second(case, env, tmp_path):
    argv, module, name = CASES[case]
    marker = tmp_path / "in-loop"
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(marker), module, name, *argv],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None, f"ended before its loop: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "the loop never started"
            time.sleep(0.01)
        time.sleep(0.05)  # inside the loop, which runs for seconds
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        err = proc.communicate(timeout=120)[1]
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    lines = err.strip().splitlines()
    assert proc.returncode == 130, err
    assert len(lines) == 1 and "Traceback" not in err and "interrupted (Ctrl-C)" in lines[0], err
    assert took < 1.0, f"{case}: {took:.2f} s from Ctrl-C to exit"


def test_a_loop_in_a_helper_thread_returns_the_same_values_and_re_raises():
    from simulator.core import interruptible

    def kernel(x):
        if x is None:
            raise ValueError("bad operand")
        return x * 2
    big = interruptible.THREADED_WORK + 1
    x = np.arange(5)
    assert np.array_equal(interruptible.call(big, kernel, x), x * 2)
    assert np.array_equal(interruptible.call(1, kernel, x), x * 2)
    with pytest.raises(ValueError, match="bad operand"):
        interruptible.call(big, kernel, None)
    assert not interruptible.abandoned()


def test_threaded_hot_loops_keep_values_and_cycles_bit_identical(monkeypatch):
    """The same GEMMs run with every loop in a helper thread (threshold 0) and with none
    (threshold above any work) give the same bits, cycles and overflow counts, and the fast
    model's equal the PE reference's."""
    from simulator import load_chip, simulate_gemm
    from simulator.core import interruptible
    rng = np.random.default_rng(7)
    ints = rng.integers(-128, 128, (70, 45)).astype(np.int8), \
        rng.integers(-128, 128, (45, 33)).astype(np.int8)
    floats = rng.standard_normal((70, 45)).astype(np.float32), \
        rng.standard_normal((45, 33)).astype(np.float32)
    # 256 x 128 x 256 is 2^23 MACs: the fast engine's parallel kernel (PARALLEL_MIN_MACS)
    big = rng.standard_normal((256, 128)).astype(np.float32), \
        rng.standard_normal((128, 256)).astype(np.float32)
    cases = [("gemmini.yaml", {"dtype": "int8", "array.dataflow": "os"}, ints),
             ("gemmini.yaml", {"dtype": "fp32", "array.dataflow": "ws"}, big),
             ("gemmini.yaml", {"dtype": "int8", "array.dataflow": "is"}, ints),
             ("tpu-v4-mxu.yaml", {"dtype": "fp32", "array.rows": 16, "array.cols": 8}, floats)]
    results: dict = {}
    for threshold in (0, 1 << 62):
        monkeypatch.setattr(interruptible, "THREADED_WORK", threshold)
        for cfg, overrides, (a, b) in cases:
            chip = load_chip(CONFIGS / cfg, overrides=overrides)
            for engine in ("fast", "reference"):
                r = simulate_gemm(chip, a=a, b=b, engine=engine)
                results.setdefault((cfg, str(overrides)), []).append(
                    (r.output.tobytes(), r.compute_cycles, r.overflow_events))
    assert len(results) == len(cases)
    for key, runs in results.items():
        assert len(runs) == 4 and all(run == runs[0] for run in runs), key


def test_a_threaded_call_waits_for_a_loop_an_earlier_ctrl_c_left_running(monkeypatch):
    import threading
    from simulator.core import interruptible
    monkeypatch.setattr(interruptible, "_running", {"left-behind"})
    assert interruptible.abandoned()
    assert interruptible.call(1, abs, -4) == 4  # an inline call (no thread) does not wait
    threading.Timer(0.3, lambda: interruptible._running.discard("left-behind")).start()
    t0 = time.monotonic()
    assert interruptible.call(interruptible.THREADED_WORK + 1, abs, -3) == 3
    assert time.monotonic() - t0 >= 0.3 and not interruptible.abandoned()
