"""N-D programs: batched matmuls, convolutions, the vector unit's network ops (values against
independent numpy formulas, costs against the pass formula) and layout ops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import CONFIGS
from simulator import WorkloadError, load_chip, simulate_gemm
from simulator.core.engine import run
from simulator.core.program import Program
from simulator.core.vector import vector_cycles

FP32 = load_chip(CONFIGS / "tpu-v4-mxu.yaml", {"dtype": "fp32"})
SMALL = load_chip(CONFIGS / "gemmini.yaml", {"dtype": "fp32", "array.dataflow": "ws"})


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30))


def conv_direct(x, w, stride, padding, dilation, groups):
    """Oracle: direct convolution in float64, loops over filter taps (NCHW, floor sizes)."""
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((n, f, oh, ow))
    fg = f // groups
    for g in range(groups):
        for dy in range(kh):
            for dx in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg, dy * dilation:dy * dilation + stride * (oh - 1) + 1:stride,
                           dx * dilation:dx * dilation + stride * (ow - 1) + 1:stride]
                out[:, g * fg:(g + 1) * fg] += np.einsum("nchw,fc->nfhw", patch,
                                                         w[g * fg:(g + 1) * fg, :, dy, dx])
    return out


@settings(max_examples=40)
@given(b=st.integers(1, 3), h=st.integers(1, 3), m=st.integers(1, 40), n=st.integers(1, 40),
       k=st.integers(1, 40), ta=st.booleans(), tb=st.booleans(), seed=st.integers(0, 2**31))
def test_batched_matmul_values_and_cycles(b, h, m, n, k, ta, tb, seed):
    rng = np.random.default_rng(seed)
    p = Program("bmm")
    p.input("A", (b, h, k, m) if ta else (b, h, m, k))
    p.input("B", (1, h, n, k) if tb else (1, h, k, n))
    p.matmul("mm", "A", "B", out="O", transpose_a=ta, transpose_b=tb)
    a = rng.standard_normal(p.shapes["A"]).astype(np.float32)
    bb = rng.standard_normal(p.shapes["B"]).astype(np.float32)
    rep = run(SMALL, p, {"A": a, "B": bb})
    want = np.swapaxes(a, -1, -2) if ta else a
    want = want.astype(np.float64) @ (np.swapaxes(bb, -1, -2) if tb else bb)
    assert rep.values["O"].shape == (b, h, m, n)
    assert np.allclose(rep.values["O"], want, rtol=1e-4, atol=1e-4 * k)
    alone = simulate_gemm(SMALL, shape=(m, n, k))
    assert rep.ops[0].compute_cycles == b * h * alone.compute_cycles
    assert rep.ops[0].gemms == b * h and rep.macs == b * h * m * n * k


def test_linear_over_leading_dims_is_one_gemm():
    p = Program("lin")
    p.input("X", (4, 16, 32))
    p.input("W", (32, 24))
    p.input("b", (24,))
    p.linear("fc", "X", "W", "b", out="Y")
    rep = run(FP32, p)
    assert rep.ops[0].shape == (64, 24, 32) and rep.ops[0].gemms == 1
    assert rep.ops[0].compute_cycles == simulate_gemm(FP32, shape=(64, 24, 32)).compute_cycles
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((4, 16, 32), (32, 24), (24,)))
    got = run(FP32, p, {"X": x, "W": w, "b": b}).values["Y"]
    assert rel(got, x.astype(np.float64) @ w + b) < 1e-6


@settings(max_examples=40)
@given(n=st.integers(1, 2), c=st.sampled_from([1, 2, 4]), f=st.sampled_from([2, 4]),
       hw=st.integers(3, 9), kk=st.integers(1, 3), stride=st.integers(1, 3),
       padding=st.integers(0, 2), dilation=st.integers(1, 2), grouped=st.booleans(),
       seed=st.integers(0, 2**31))
def test_conv2d_values_and_cycles(n, c, f, hw, kk, stride, padding, dilation, grouped, seed):
    groups = math.gcd(c, f) if grouped else 1
    if dilation * (kk - 1) + 1 > hw + 2 * padding:
        return
    rng = np.random.default_rng(seed)
    p = Program("conv")
    p.input("x", (n, c, hw, hw))
    p.input("w", (f, c // groups, kk, kk))
    p.conv2d("conv", "x", "w", stride, padding, dilation, groups, out="y")
    x = rng.standard_normal(p.shapes["x"]).astype(np.float32)
    w = rng.standard_normal(p.shapes["w"]).astype(np.float32)
    rep = run(SMALL, p, {"x": x, "w": w})
    want = conv_direct(x, w, stride, padding, dilation, groups)
    assert rep.values["y"].shape == want.shape
    assert np.allclose(rep.values["y"], want, rtol=1e-4, atol=1e-4 * kk * kk * c)
    m, nn, k = rep.ops[0].shape
    assert (m, nn, k) == (n * want.shape[2] * want.shape[3], f // groups, c // groups * kk * kk)
    assert rep.ops[0].compute_cycles == groups * simulate_gemm(SMALL, shape=(m, nn, k)).compute_cycles


def test_depthwise_conv_is_one_gemm_per_channel():
    p = Program("dw")
    p.input("x", (1, 8, 10, 10))
    p.input("w", (8, 1, 3, 3))
    p.conv2d("dw", "x", "w", padding=1, groups=8)
    rep = run(SMALL, p)
    assert rep.ops[0].gemms == 8 and rep.ops[0].shape == (100, 1, 9)


def _vector_prog(kind, shapes, **attrs):
    p = Program("v")
    names = [p.input(f"x{i}", s) for i, s in enumerate(shapes)]
    p.vector("op", kind, *names, out="y", **attrs)
    return p


def _oracle(kind, xs, attrs):
    x = xs[0].astype(np.float64)
    if kind == "softmax":
        e = np.exp(x - x.max(attrs["axis"], keepdims=True))
        return e / e.sum(attrs["axis"], keepdims=True)
    if kind == "log_softmax":
        z = x - x.max(attrs["axis"], keepdims=True)
        return z - np.log(np.exp(z).sum(attrs["axis"], keepdims=True))
    if kind == "layernorm":
        mu = x.mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * xs[1] + xs[2]
    if kind == "rmsnorm":
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * xs[1]
    if kind == "batchnorm":
        g, b, mu, var = (v.astype(np.float64).reshape(1, -1, 1, 1) for v in xs[1:])
        return (x - mu) / np.sqrt(var + 1e-5) * g + b
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, shapes, attrs", [
    ("softmax", [(2, 3, 17)], {"axis": -1}),
    ("softmax", [(5, 7)], {"axis": 0}),
    ("log_softmax", [(4, 33)], {"axis": 1}),
    ("layernorm", [(3, 5, 48), (48,), (48,)], {}),
    ("rmsnorm", [(6, 40), (40,)], {}),
    ("batchnorm", [(2, 3, 4, 5), (3,), (3,), (3,), (3,)], {}),
])
def test_composite_vector_op_values(kind, shapes, attrs):
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    if kind == "batchnorm":
        xs[4] = np.abs(xs[4]) + 0.5
    p = _vector_prog(kind, shapes, **attrs)
    got = run(FP32, p, {f"x{i}": v for i, v in enumerate(xs)}).values["y"]
    assert rel(got, _oracle(kind, xs, attrs)) < 1e-6


def test_elementwise_network_kinds_against_math():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 50)).astype(np.float32)
    pos = np.abs(x) + 0.1
    xd = x.astype(np.float64)
    cases = {
        "tanh": (x, np.tanh(xd)), "sigmoid": (x, 1 / (1 + np.exp(-xd))),
        "gelu": (x, np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in xd.ravel()]
                             ).reshape(x.shape)),
        "gelu_tanh": (x, 0.5 * xd * (1 + np.tanh(math.sqrt(2 / math.pi) * (xd + 0.044715 * xd**3)))),
        "log": (pos, np.log(pos.astype(np.float64))), "sqrt": (pos, np.sqrt(pos.astype(np.float64))),
        "rsqrt": (pos, 1 / np.sqrt(pos.astype(np.float64))), "relu": (x, np.maximum(xd, 0)),
        "exp": (x, np.exp(xd)),
    }
    for kind, (inp, want) in cases.items():
        p = Program("e")
        p.input("x", inp.shape)
        p.elementwise("op", kind, "x", out="y")
        got = run(FP32, p, {"x": inp}).values["y"]
        assert rel(got, want) < 1e-6, kind
    p = Program("w")
    p.input("m", (1, 50))
    p.input("x", (3, 50))
    p.input("y", (3, 1))
    p.elementwise("sel", "where", "m", "x", "y", out="o")
    p.elementwise("div", "div", "x", "y", out="d")
    p.elementwise("mx", "max", "x", "y", out="mx")
    m = (rng.random((1, 50)) > 0.5).astype(np.float32)
    y = pos[:, :1]
    v = run(FP32, p, {"m": m, "x": x, "y": y}).values
    assert np.array_equal(v["o"], np.where(m != 0, x, y))
    assert rel(v["d"], xd / y) < 1e-7 and np.array_equal(v["mx"], np.maximum(x, y))


@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), data=st.data())
def test_reductions_over_any_axes(shape, data):
    axes = data.draw(st.one_of(st.none(), st.sets(st.integers(0, len(shape) - 1), min_size=1)))
    axis = None if axes is None else tuple(sorted(axes))
    kind = data.draw(st.sampled_from(["sum", "mean", "max"]))
    keep = data.draw(st.booleans())
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
    p = Program("r")
    p.input("x", tuple(shape))
    p.reduce("r", kind, "x", axis, keep, out="y")
    got = run(FP32, p, {"x": x}).values["y"]
    want = getattr(np, kind)(x.astype(np.float64), axis=axis, keepdims=keep)
    assert got.shape == p.shapes["y"] and (keep or got.size == np.size(want))
    assert np.allclose(got.reshape(np.shape(want)) if np.ndim(want) else got.ravel()[0], want,
                       rtol=1e-5, atol=1e-5)


def test_pooling_gather_concat_layout_values():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    p = Program("p")
    p.input("x", x.shape)
    p.vector("mp", "maxpool2d", "x", out="mp", kernel=3, stride=2, padding=1)
    p.vector("ap", "avgpool2d", "x", out="ap", kernel=2, stride=2)
    p.permute("perm", "x", (0, 2, 3, 1), out="xt")
    p.reshape("flat", "xt", (2, -1), out="xf")
    p.split("sp", "x", [1, 2], axis=1)
    p.vector("cat", "concat", "sp.1", "sp.0", out="cat", axis=1)
    p.input("table", (10, 4))
    p.input("ids", (2, 3))
    p.vector("emb", "gather", "table", "ids", out="e")
    table = rng.standard_normal((10, 4)).astype(np.float32)
    ids = np.array([[0, 9, 3], [3, 3, 1]])
    v = run(FP32, p, {"x": x, "table": table, "ids": ids}).values
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    mp = np.array([[[[xp[a, c, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max() for j in range(5)]
                     for i in range(5)] for c in range(3)] for a in range(2)])
    assert np.array_equal(v["mp"], mp)
    ap = x[:, :, :8, :8].reshape(2, 3, 4, 2, 4, 2).astype(np.float64).mean((3, 5))
    assert rel(v["ap"], ap) < 1e-7
    assert np.array_equal(v["xf"], x.transpose(0, 2, 3, 1).reshape(2, -1))
    assert np.array_equal(v["cat"], np.concatenate([x[:, 1:], x[:, :1]], axis=1))
    assert np.array_equal(v["e"], table[ids])


def test_vector_costs_follow_the_pass_formula():
    unit = FP32.vector
    p = Program("c")
    p.input("x", (4, 300))
    p.elementwise("t", "tanh", "x", out="t")
    p.elementwise("d", "div", "t", "x", out="d")
    p.vector("s", "softmax", "d", out="s", axis=-1)
    rep = run(FP32, p)
    n = 1200
    assert rep.ops[0].compute_cycles == vector_cycles(unit, "transcendental", n)
    assert rep.ops[1].compute_cycles == vector_cycles(unit, "divide", n)
    depth = math.ceil(math.log2(min(300, unit.lanes)))
    want = (2 * (vector_cycles(unit, "reduction", n) + depth) + 2 * vector_cycles(unit, "add", n)
            + vector_cycles(unit, "transcendental", n) + vector_cycles(unit, "divide", 4))
    assert rep.ops[2].compute_cycles == want
    assert rep.ops[2].events["vector_lane_ops"] == 5 * n + 4


def test_layout_ops_free_before_the_array_and_charged_otherwise():
    p = Program("l")
    p.input("q", (2, 8, 4, 16))
    p.input("k", (2, 8, 4, 16))
    p.permute("qh", "q", (0, 2, 1, 3), out="qh")   # read by a matmul only: free
    p.permute("kh", "k", (0, 2, 3, 1), out="kt")   # likewise (K^T)
    p.matmul("qk", "qh", "kt", out="s")
    p.permute("back", "s", (0, 2, 1, 3), out="sb")  # read by a vector op: moves data
    p.elementwise("r", "relu", "sb", out="o")
    rep = run(FP32, p)
    by = {o.name: o for o in rep.ops}
    assert by["qh"].unit == "layout" and by["qh"].total_cycles == 0
    assert by["kh"].unit == "layout" and by["kh"].total_cycles == 0
    assert by["back"].unit == "vector" and by["back"].kind == "vector.permute"
    assert by["back"].compute_cycles == vector_cycles(FP32.vector, "move", 2 * 4 * 8 * 8)
    assert by["qk"].shape == (8, 8, 16) and by["qk"].gemms == 8


@pytest.mark.parametrize("build, match", [
    (lambda p: p.matmul("m", "x", "w3"), "batch dimensions"),
    (lambda p: p.conv2d("c", "x4", "w4", groups=3), "divide by groups"),
    (lambda p: p.conv2d("c", "x4", "w4", stride=0), "stride"),
    (lambda p: p.vector("s", "softmax", "x", axis=5), "out of range"),
    (lambda p: p.vector("s", "nosuch", "x"), "unknown vector op"),
    (lambda p: p.reshape("r", "x", (7, 7)), "cannot reshape"),
    (lambda p: p.permute("r", "x", (0, 0, 1)), "not a permutation"),
    (lambda p: p.elementwise("e", "add", "x", "w3"), "do not match"),
    (lambda p: p.vector("l", "layernorm", "x", "x", "x"), "scale and shift"),
    (lambda p: p.reduce("r", "median", "x"), "unknown reduction"),
])
def test_shape_errors_are_one_line(build, match):
    p = Program("bad")
    p.input("x", (2, 3, 4))
    p.input("w3", (5, 4, 6))
    p.input("x4", (1, 4, 8, 8))
    p.input("w4", (6, 4, 3, 3))
    with pytest.raises(WorkloadError, match=match) as err:
        build(p)
    assert "\n" not in str(err.value) and str(err.value).startswith("program bad:")


def test_gather_ids_out_of_range_is_a_workload_error():
    p = Program("g")
    p.input("t", (4, 2))
    p.input("i", (3,))
    p.vector("g", "gather", "t", "i", out="o")
    with pytest.raises(WorkloadError, match="ids must lie in"):
        run(FP32, p, {"t": np.zeros((4, 2), np.float32), "i": np.array([0, 4, 1])})


def test_int8_chip_quantises_float_tensors_per_tensor():
    chip = load_chip(CONFIGS / "gemmini.yaml")
    rng = np.random.default_rng(7)
    a = rng.standard_normal((2, 5, 30)).astype(np.float32)
    w = rng.standard_normal((30, 7)).astype(np.float32)
    p = Program("q")
    p.input("a", a.shape)
    p.input("w", w.shape)
    p.matmul("mm", "a", "w", out="o")
    got = run(chip, p, {"a": a, "w": w}).values["o"]

    def q(x):
        s = np.float32(np.abs(x).max() / 127.0)
        return np.clip(np.rint(x / s), -127, 127), s
    qa, sa = q(a)
    qw, sw = q(w)
    want = ((qa.reshape(-1, 30).astype(np.int64) @ qw.astype(np.int64)).astype(np.float32)
            * np.float32(sa * sw)).reshape(2, 5, 7)
    assert np.array_equal(got, want)
