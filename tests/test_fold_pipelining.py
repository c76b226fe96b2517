"""array.fold_pipelining (DESIGN section 12): consecutive folds overlap, fill and drain are paid
once per run of same-shape folds. The closed form (``_timing``, ``one_tile``) against the
per-fold loop, hand derivations and the PE-level reference (cycles, and values bit for bit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from simulator import simulate_gemm
from simulator.core import _memory, _pe_array, _timing, one_tile
from simulator.hardware._arith import MODE_FLOAT, adder_limits
from simulator.hardware.chip import chip_from_config, load_chip
from simulator.hardware.config import validate_config
from strategies import make_chip

import test_exhaustive

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LO, HI, SPAN = adder_limits(32, np.float32)
DF_CODE = {"os": 0, "ws": 1, "is": 2}


def pipelined_chip(rows, cols, dataflow, fill_drain, preload_overlap, dtype="int8"):
    """Return make_chip's chip with array.fold_pipelining true, built through the validator."""
    flat = {"array.rows": rows, "array.cols": cols, "array.dataflow": dataflow,
            "array.fill_drain": fill_drain, "array.preload_overlap": preload_overlap,
            "array.fold_pipelining": True, "dtype": dtype, "overflow": "wrap",
            "accumulator_bits": 32, "clock_hz": 1e9, "name": "test-chip"}
    return chip_from_config(validate_config({}, {}, "test",
                                            {k: (v, "test") for k, v in flat.items()}))


@given(t=st.integers(1, 100), osz=st.integers(1, 300), otile=st.integers(1, 40),
       isz=st.integers(1, 300), itile=st.integers(1, 40), rows_from_outer=st.booleans(),
       big_r=st.integers(1, 40), big_c=st.integers(1, 40), full=st.booleans(),
       has_load=st.booleans(), overlap=st.integers(0, 3))
def test_closed_form_equals_per_fold_loop_and_its_twin(t, osz, otile, isz, itile,
                                                       rows_from_outer, big_r, big_c, full,
                                                       has_load, overlap):
    args = (t, osz, otile, isz, itile, rows_from_outer, big_r, big_c, full, has_load, overlap)
    per_fold = _timing._gemm_cycles_per_fold(*args)
    assert tuple(_timing._gemm_cycles(*args)) == tuple(per_fold)
    assert one_tile.gemm_cycles(*args) == tuple(per_fold)


@given(t=st.integers(1, 100), osz=st.integers(1, 300), isz=st.integers(1, 300),
       rows_from_outer=st.booleans(), big_r=st.integers(1, 40), big_c=st.integers(1, 40),
       full=st.booleans(), has_load=st.booleans(), preload=st.integers(0, 1))
def test_pipelining_never_costs_cycles_and_keeps_busy_within_the_array(
        t, osz, isz, rows_from_outer, big_r, big_c, full, has_load, preload):
    # the folds' tiles are the array's sides, as map_gemm makes them
    otile, itile = (big_r, big_c) if rows_from_outer else (big_c, big_r)
    args = (t, osz, otile, isz, itile, rows_from_outer, big_r, big_c, full, has_load)
    plain = _timing._gemm_cycles(*args, preload)
    piped = _timing._gemm_cycles(*args, preload | 2)
    assert piped[0] <= plain[0] and piped[2] == plain[2]
    assert piped[1] <= big_r * big_c * piped[0]


def test_closed_form_by_hand():
    # ws on a 4x3 array, T = M = 5, K = 12 (three inner folds of 4), N = 3, full:
    # with preload overlap: L0 + sum over the first two folds of max(T, L) + S_last
    #   = 4 + 5 + 5 + (5 + 4 + 3 - 2) = 24   (without pipelining: 4 + 10 + 10 + 10 = 34)
    assert _timing._gemm_cycles_per_fold(5, 3, 3, 12, 4, False, 4, 3, True, True, 3)[0] == 24
    assert _timing._gemm_cycles_per_fold(5, 3, 3, 12, 4, False, 4, 3, True, True, 1)[0] == 34
    # without preload overlap every load is exposed: 3 * (4 + 5) + 4 + 3 - 2 = 32
    assert _timing._gemm_cycles_per_fold(5, 3, 3, 12, 4, False, 4, 3, True, True, 2)[0] == 32
    # a load longer than the stream (T = 2 < L = 4) paces the folds: 4 + 4 + 4 + (2+4+3-2) = 19
    assert _timing._gemm_cycles_per_fold(2, 3, 3, 12, 4, False, 4, 3, True, True, 3)[0] == 19
    # active, K = 10 -> folds of 4, 4, 2 rows: the 2-row fold ends the run of 4-row folds:
    # L0 4 + max(T=5, L=4) + max(S=5+4+3-2=10, L=2) + S(2 rows) = 5+2+3-2 = 8 -> 27
    assert _timing._gemm_cycles_per_fold(5, 3, 3, 10, 4, False, 4, 3, False, True, 3)[0] == 27
    # os on 4x4, K = 6, M = N = 8 (4 folds): sum of K + one fill and drain = 4*6 + 4+4-2 = 30
    assert _timing._gemm_cycles_per_fold(6, 8, 4, 8, 4, True, 4, 4, True, False, 2)[0] == 30


def test_tpu_v4_mxu_128x768x768_reaches_85_percent():
    chip = load_chip(CONFIGS / "tpu-v4-mxu.yaml", {"array.fold_pipelining": True})
    rep = simulate_gemm(chip, shape=(128, 768, 768))
    # 36 folds of T = 128 behind one 128-cycle load, one fill and drain: 128 + 36*128 + 254
    assert rep.compute_cycles == 128 + 36 * 128 + 128 + 128 - 2 == 4990
    util = 128 * 768 * 768 / (128 * 128 * rep.compute_cycles)
    assert util >= 0.85
    off = load_chip(CONFIGS / "tpu-v4-mxu.yaml", {"array.fold_pipelining": False})
    assert simulate_gemm(off, shape=(128, 768, 768)).compute_cycles == 13880


def test_default_is_off_and_scalesim_compat_keeps_it_off():
    assert make_chip().array.fold_pipelining is False
    compat = load_chip(CONFIGS / "scalesim-compat.yaml")
    assert compat.array.fold_pipelining is False
    assert compat.array.overlap_code == 0


@settings(max_examples=60, deadline=None)
@given(dataflow=st.sampled_from(["os", "ws", "is"]), fill_drain=st.sampled_from(["full", "active"]),
       preload_overlap=st.booleans(), rows=st.integers(1, 16), cols=st.integers(1, 16),
       m=st.integers(1, 50), n=st.integers(1, 50), k=st.integers(1, 50),
       seed=st.integers(0, 2**32 - 1))
def test_reference_equals_fast_model_with_pipelining(dataflow, fill_drain, preload_overlap, rows,
                                                     cols, m, n, k, seed):
    chip = pipelined_chip(rows, cols, dataflow, fill_drain, preload_overlap)
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    ref = simulate_gemm(chip, a=a, b=b, engine="reference")
    fast = simulate_gemm(chip, shape=(m, n, k))
    assert ref.compute_cycles == fast.compute_cycles
    assert ref.last_output_cycle == ref.compute_cycles - 1
    assert np.array_equal(ref.output, a @ b)


@settings(max_examples=40, deadline=None)
@given(dataflow=st.sampled_from(["os", "ws", "is"]), fill_drain=st.sampled_from(["full", "active"]),
       preload_overlap=st.booleans(), rows=st.integers(1, 16), cols=st.integers(1, 16),
       m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 40),
       seed=st.integers(0, 2**32 - 1))
def test_pipelined_values_equal_unpipelined_bit_for_bit(dataflow, fill_drain, preload_overlap,
                                                        rows, cols, m, n, k, seed):
    # float32: the accumulation order is the array's, so pipelining must not change one bit
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    plain = make_chip(rows, cols, dataflow, fill_drain, preload_overlap, dtype="fp32")
    piped = pipelined_chip(rows, cols, dataflow, fill_drain, preload_overlap, dtype="fp32")
    r0 = simulate_gemm(plain, a=a, b=b, engine="reference")
    r1 = simulate_gemm(piped, a=a, b=b, engine="reference")
    assert np.array_equal(r0.output.view(np.uint32) if r0.output.dtype == np.float32
                          else r0.output, r1.output.view(np.uint32)
                          if r1.output.dtype == np.float32 else r1.output)
    assert r1.compute_cycles <= r0.compute_cycles


@pytest.mark.parametrize("df, fill_drain, overlap",
                         [(df, fd, ov) for df in ("os", "ws", "is") for fd in ("full", "active")
                          for ov in ((2,) if df == "os" else (2, 3))])
def test_fast_equals_reference_on_the_stratified_grid(df, fill_drain, overlap):
    # every array shape up to 8x8, the exhaustive suite's stratified GEMMs (test_exhaustive)
    assert test_exhaustive._check(df, fill_drain, overlap, whole=False) > 64 * 100


def test_ws_reference_on_one_pe_by_hand():
    # the reference returns -1 cycles if a PE switched to weights whose load had not completed
    x = np.ones((3, 4), np.float32)
    w = np.arange(8, dtype=np.float32).reshape(4, 2)
    out = np.zeros((3, 2), np.float32)
    cyc, last, _o = _pe_array._ws_pipelined(x, w, 1, 1, True, 3, MODE_FLOAT, LO, HI, SPAN, out)
    # 8 folds of 1 row x 1 column: L0 = 1, then max(T=3, L=1) per fold, S_last = 3 -> 25
    assert cyc == 1 + 7 * 3 + 3 == _memory._one_array(1, 3, 2, 4, 1, 1, True, 3, False)[0]
    assert last == cyc - 1 and np.array_equal(out, x @ w)


def test_single_pe_by_hand():
    # 1x1 OS, K = 4, 2x3 outputs: pipelined or not, one PE does one MAC per cycle -> 24
    chip = pipelined_chip(1, 1, "os", "full", False)
    a = np.arange(8).reshape(2, 4)
    b = np.arange(12).reshape(4, 3)
    rep = simulate_gemm(chip, a=a, b=b, engine="reference")
    assert rep.compute_cycles == 24 and np.array_equal(rep.output, a @ b)
    # 2x2 OS, K = 4, M = N = 4 (4 folds): 4 * 4 + 2 + 2 - 2 = 18 (unpipelined 4 * 6 = 24)
    chip = pipelined_chip(2, 2, "os", "full", False)
    a = np.arange(16).reshape(4, 4)
    rep = simulate_gemm(chip, a=a, b=a.T.copy(), engine="reference")
    assert rep.compute_cycles == 18 and np.array_equal(rep.output, a @ a.T)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("fill_drain", ["full", "active"])
@pytest.mark.parametrize("overlap", [False, True])
def test_reference_equals_fast_model_over_tile_steps(dataflow, fill_drain, overlap):
    # small buffers cut the GEMM into tile steps (streaming runs included): every step's folds
    # pipeline, and the reference walks the same steps
    chip = load_chip(CONFIGS / "gemmini.yaml", {
        "array.dataflow": dataflow, "array.fill_drain": fill_drain,
        "array.preload_overlap": overlap, "array.fold_pipelining": True,
        "buffers.a.bytes": 1024, "buffers.b.bytes": 1024, "buffers.o.bytes": 2048,
        "output.dtype": "accumulator"})
    rng = np.random.default_rng(7)
    a, b = rng.integers(-8, 8, (45, 70)), rng.integers(-8, 8, (70, 37))
    ref = simulate_gemm(chip, a=a, b=b, engine="reference")
    fast = simulate_gemm(chip, shape=(45, 37, 70))
    tiles = fast.ops[0].tiling
    assert (tiles["tile_m"], tiles["tile_n"], tiles["tile_k"]) != (45, 37, 70)  # several steps
    assert ref.compute_cycles == fast.compute_cycles
    assert np.array_equal(ref.output, a @ b)  # int32 accumulators, no overflow at these sizes
