"""Outputs in their own precision (output.dtype): requantised values against numpy, an int8 CNN
against a numpy int8 pipeline, output bytes to DRAM, and bad combinations as one-line errors."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, strategies as st

from conftest import CONFIGS
from simulator import ConfigError, load_chip, simulate_gemm
from simulator.core.engine import run
from simulator.core.program import Program
from strategies import knobs, make_chip

NP_TYPES = {"bf16": ml_dtypes.bfloat16, "fp16": np.float16}


def numpy_requant(acc, scale):
    """The int8 requantisation as numpy writes it: round half to even, saturate."""
    return np.clip(np.rint(acc.astype(np.float64) * scale), -128, 127).astype(np.int8)


@given(knob=knobs, rows=st.integers(1, 12), cols=st.integers(1, 12), m=st.integers(1, 30),
       n=st.integers(1, 30), k=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
       scale=st.floats(1e-6, 4.0), engine=st.sampled_from(["fast", "reference"]))
def test_int8_outputs_equal_numpy_requantisation(knob, rows, cols, m, n, k, seed, scale, engine):
    chip = make_chip(rows, cols, **knob).with_overrides({"output.dtype": "int8",
                                                         "output.scale": scale})
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    out = simulate_gemm(chip, a=a, b=b, engine=engine).output
    # K <= 40 products of at most 2**14 never overflow int32: numpy's exact product is the sum
    want = numpy_requant(a.astype(np.int64) @ b.astype(np.int64), scale)
    assert out.dtype == np.int8
    assert np.array_equal(out, want)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@given(knob=knobs, m=st.integers(1, 20), n=st.integers(1, 20), k=st.integers(1, 30),
       seed=st.integers(0, 2**32 - 1))
def test_float_outputs_are_the_accumulators_rounded_to_nearest_even(dtype, knob, m, n, k, seed):
    chip = make_chip(4, 4, dtype="bf16", **knob)
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    acc = simulate_gemm(chip, a=a, b=b).output  # output.dtype accumulator: fp32
    out = simulate_gemm(chip.with_overrides({"output.dtype": dtype}), a=a, b=b).output
    assert np.array_equal(out, acc.astype(NP_TYPES[dtype]).astype(np.float32))


def test_int8_requantisation_rounds_half_to_even_and_saturates_by_hand():
    # A = [[1, 3, 5, -1, -3, 200], ...] x B = identity-like column: acc = A's row; scale 0.5:
    # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, -1.5 -> -2, 100 -> 100; scale 2: 400 -> 127
    chip = make_chip(2, 2, "ws").with_overrides({"output.dtype": "int8", "output.scale": 0.5})
    a = np.array([[1], [3], [5], [-1], [-3], [127], [-128]], np.int8)
    b = np.array([[1]], np.int8)
    out = simulate_gemm(chip, a=a, b=b).output.ravel().tolist()
    assert out == [0, 2, 2, 0, -2, 64, -64]
    sat = chip.with_overrides({"output.scale": 2.0})
    assert simulate_gemm(sat, a=a, b=b).output.ravel().tolist() == [2, 6, 10, -2, -6, 127, -128]


def _conv_nchw(x, w, stride, pad):
    """numpy int64 convolution written as sums over the filter taps (no im2col)."""
    nb, c, h, wd = x.shape
    f, _c, kh, kw = w.shape
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((nb, f, oh, ow), np.int64)
    for dy in range(kh):
        for dx in range(kw):
            win = xp[:, :, dy:dy + stride * (oh - 1) + 1:stride, dx:dx + stride * (ow - 1) + 1:stride]
            out += np.einsum("nchw,fc->nfhw", win, w[:, :, dy, dx].astype(np.int64))
    return out


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_int8_cnn_chains_int8_activations_and_equals_a_numpy_int8_pipeline(dataflow):
    chip = make_chip(8, 8, dataflow).with_overrides({"output.dtype": "int8"})
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (2, 3, 12, 12), dtype=np.int8)
    w1 = rng.integers(-128, 128, (8, 3, 3, 3), dtype=np.int8)
    w2 = rng.integers(-128, 128, (16, 8, 3, 3), dtype=np.int8)
    w3 = rng.integers(-128, 128, (16 * 3 * 3, 10), dtype=np.int8)
    s1, s2, s3 = 2.0 ** -9, 3.0e-4, 1.0 / 700.0
    p = Program("int8-cnn")
    for name, v in (("x", x), ("w1", w1), ("w2", w2), ("w3", w3)):
        p.input(name, v.shape)
    p.conv2d("conv1", "x", "w1", stride=2, padding=1, out_scale=s1)  # 2x8x6x6
    p.elementwise("relu1", "relu", "conv1")
    p.conv2d("conv2", "relu1", "w2", stride=2, padding=1, out_scale=s2)  # 2x16x3x3
    p.elementwise("relu2", "relu", "conv2")
    p.reshape("flat", "relu2", (2, 16 * 3 * 3))
    p.matmul("fc", "flat", "w3", out_scale=s3)
    rep = run(chip, p, {"x": x, "w1": w1, "w2": w2, "w3": w3})
    h1 = np.maximum(numpy_requant(_conv_nchw(x, w1, 2, 1), s1), 0)
    h2 = np.maximum(numpy_requant(_conv_nchw(h1, w2, 2, 1), s2), 0)
    want = numpy_requant(h2.reshape(2, -1).astype(np.int64) @ w3.astype(np.int64), s3)
    for t in ("conv1", "relu1", "conv2", "relu2", "fc"):
        assert rep.values[t].dtype == np.int8, t  # int8 from layer to layer
    assert np.array_equal(rep.values["relu1"], h1)
    assert np.array_equal(rep.output, want)
    assert len(np.unique(want)) > 3  # the scales keep the values informative


@given(knob=knobs, rows=st.integers(1, 16), cols=st.integers(1, 16), m=st.integers(1, 300),
       n=st.integers(1, 300), k=st.integers(1, 300),
       out=st.sampled_from(["int8", "accumulator"]))
def test_outputs_leave_once_in_their_precision_when_everything_fits(knob, rows, cols, m, n, k,
                                                                    out):
    chip = make_chip(rows, cols, **knob).with_overrides({"output.dtype": out})
    op = simulate_gemm(chip, shape=(m, n, k)).ops[0]
    per = 1 if out == "int8" else 4
    assert op.traffic_bytes["dram"]["o_write"] == m * n * per
    assert op.traffic_bytes["dram"]["o_read"] == 0
    assert (op.requant_cycles > 0) == (out == "int8")
    e = op.energy_pj
    assert e["total"] == pytest.approx(sum(v for key, v in e.items() if key != "total"))


def test_requantisation_costs_the_vector_units_passes_by_hand():
    # 100 x 30 results, 128 lanes, latency 4, add and compare interval 1: two passes of
    # ceil(3000 / 128) + 4 - 1 = 27 cycles each keep the vector unit busy 54 cycles, 6000
    # lane-ops; pipelined with the array (whose 100x30x20 GEMM takes longer), only the last
    # lane-group's two passes, 2 x (1 + 4 - 1) = 8 cycles, are exposed after it
    chip = make_chip(8, 8, "os").with_overrides({"output.dtype": "int8"})
    op = simulate_gemm(chip, shape=(100, 30, 20)).ops[0]
    assert op.compute_cycles + op.stall_cycles > 54
    assert op.requant_busy_cycles == 54
    assert op.requant_cycles == 8
    assert op.events["vector_lane_ops"] == 6000
    plain = simulate_gemm(chip.with_overrides({"output.dtype": "accumulator"}), shape=(100, 30, 20))
    assert op.total_cycles == plain.ops[0].total_cycles + 8


def test_a_requantisation_slower_than_the_array_is_exposed_by_its_excess():
    # 1 lane: the two passes over 64 x 64 results take 2 x (4096 + 3) = 8198 cycles, more than
    # the array's 64x64x8 GEMM on a 64x64 array: the excess over the array is exposed
    chip = make_chip(64, 64, "ws").with_overrides({"output.dtype": "int8", "vector.lanes": 1})
    op = simulate_gemm(chip, shape=(64, 64, 8)).ops[0]
    array = op.compute_cycles + op.stall_cycles
    assert op.requant_busy_cycles == 8198 > array
    assert op.requant_cycles == 8198 - array


@pytest.mark.parametrize("dtype, out", [("bf16", "int8"), ("fp32", "int8"), ("int8", "bf16"),
                                        ("int8", "fp16"), ("int8", "fp32")])
def test_impossible_output_types_are_one_line_errors(dtype, out):
    with pytest.raises(ConfigError, match="output.dtype"):
        make_chip(dtype=dtype).with_overrides({"output.dtype": out})


def test_shipped_chips_declare_their_output_type():
    want = {"tpu-v1": "int8", "gemmini": "int8", "edge-tpu": "int8", "tpu-v4-mxu": "bf16",
            "tpu-v4-tensorcore": "bf16", "h100": "bf16", "scalesim-compat": "accumulator"}
    for name, out in want.items():
        assert load_chip(CONFIGS / f"{name}.yaml").output_dtype == out, name


@given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 40),
       out=st.sampled_from(["int8", "accumulator"]), reshape=st.booleans())
def test_the_next_op_reads_the_results_in_their_precision(m, n, k, out, reshape):
    chip = make_chip(4, 4, "ws").with_overrides({"output.dtype": out})
    p = Program("p")
    p.input("A", (m, k))
    p.input("B", (k, n))
    p.matmul("mm", "A", "B")
    src = p.reshape("flat", "mm", (m * n,)) if reshape else "mm"  # a free alias
    p.elementwise("relu", "relu", src)
    rep = run(chip, p)
    per = 1 if out == "int8" else 4
    relu = next(op for op in rep.ops if op.name == "relu")
    assert relu.events["buffer_read_bytes"] == m * n * per
    # residency: A and B (int8, read by the array only) and mm's result, in its precision
    assert rep.ops[0].residency["buffer_bytes"] == m * k + k * n + m * n * per


def _vector_intervals(rep):
    """Return the (start, end) cycles each op keeps the vector unit busy: vector ops whole,
    array ops their requantisation tail."""
    out = []
    for r in rep.ops:
        if r.unit == "vector" and r.total_cycles:
            out.append((r.start_cycle, r.end_cycle, r.name))
        elif r.unit == "array" and r.requant_busy_cycles:
            out.append((r.requant_start_cycle, r.end_cycle, r.name))
    return sorted(out)


def test_the_requantisation_tail_never_shares_the_vector_unit():
    """An independent long vector op and an int8 matmul: the matmul's requantisation waits for
    the vector unit (it is one unit); and over a whole int8 network no two vector-unit intervals
    overlap."""
    chip = load_chip(CONFIGS / "tpu-v1.yaml")
    p = Program("overlap")
    x = p.input("x", (512, 512))
    a = p.input("a", (256, 256))
    b = p.input("b", (256, 256))
    p.elementwise("e", "exp", x)
    p.matmul("mm", a, b)
    rep = run(chip, p)
    e, mm = rep.ops
    assert mm.requant_cycles > 0
    assert mm.requant_start_cycle >= e.end_cycle
    from simulator.kernels.zoo import build_zoo
    net = run(chip, build_zoo("zoo:small-cnn").program)
    spans = _vector_intervals(net)
    assert any(r.requant_cycles for r in net.ops)
    for (s0, e0, n0), (s1, e1, n1) in zip(spans, spans[1:]):
        assert e0 <= s1, (n0, n1)
