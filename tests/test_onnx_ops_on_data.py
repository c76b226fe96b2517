"""ONNX operators that BLOOM and Funnel (``torch.onnx.export`` of transformers' BloomModel and
FunnelModel, both exporters) need, on small generated graphs, against onnxruntime: CumSum (the
ALiBi positions), Sin and Cos (sinusoidal position embeddings), GatherElements and Pad
(Funnel's relative shift), Einsum (Funnel's attention), Tile, comparisons and logic (the
attention mask), GatherND and ScatterND with constant indices, and pooling with ceil_mode.
Each runs on data (program ops) and folded (every input constant); the graphs are built here with onnx.helper, so no model file and no transformers are needed."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from simulator.errors import WorkloadError  # noqa: E402
from simulator.frontends.onnx_import import import_onnx  # noqa: E402
from test_onnx_semantics import F32, H, I64, chip_and_ort, model  # noqa: E402

RNG = np.random.default_rng(3)
X = RNG.standard_normal((2, 3, 4)).astype(np.float32)


def on_data_and_folded(nodes, x, tmp_path, inits=(), out_type=F32, close=False):
    """Run ``nodes`` (reading "x", writing "y") with x a graph input, then with x a constant
    (followed by an Add of a zero input, so something runs on the chip); return onnxruntime's
    result after asserting the chip's equals it both ways."""
    m = model(nodes, [("x", F32 if x.dtype == np.float32 else I64, x.shape)],
              [("y", out_type, None)], list(inits))
    (tmp_path / "data").mkdir()
    got, ref = chip_and_ort(m, tmp_path / "data", {"x": x})
    check = (lambda a, b: np.allclose(a, b, rtol=1e-6, atol=1e-6)) if close else np.array_equal
    assert got.shape == ref.shape and check(got.astype(ref.dtype), ref), (got, ref)
    folded = model(nodes + [H.make_node("Add", ["y", "z"], ["w"])], [("z", out_type, ref.shape)],
                   [("w", out_type, None)], list(inits) + [("x", x)])
    zero = np.zeros(ref.shape, ref.dtype)
    (tmp_path / "folded").mkdir()
    got2, ref2 = chip_and_ort(folded, tmp_path / "folded", {"z": zero})
    assert check(got2.astype(ref2.dtype), ref2) and np.array_equal(ref2, ref)
    return ref


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum(axis, exclusive, reverse, tmp_path):
    ref = on_data_and_folded(
        [H.make_node("CumSum", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)],
        X, tmp_path, [("axis", np.array(axis, np.int64))], close=True)
    assert ref.shape == X.shape


@pytest.mark.parametrize("op", ["Sin", "Cos"])
def test_sin_cos(op, tmp_path):
    on_data_and_folded([H.make_node(op, ["x"], ["y"])], X * 3, tmp_path, close=True)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_gather_elements_with_constant_indices(axis, tmp_path):
    shape = list(X.shape)
    shape[axis] = 5  # more picks than the axis holds: indices repeat, negatives count back
    idx = RNG.integers(-X.shape[axis], X.shape[axis], shape).astype(np.int64)
    on_data_and_folded([H.make_node("GatherElements", ["x", "i"], ["y"], axis=axis)], X,
                       tmp_path, [("i", idx)])


def test_gather_elements_with_indices_from_data(tmp_path):
    idx = np.array([[0, 2, 1], [1, 1, 0]], np.int64)
    data = RNG.standard_normal((2, 3)).astype(np.float32)
    m = model([H.make_node("GatherElements", ["x", "i"], ["y"], axis=1)],
              [("x", F32, (2, 3)), ("i", I64, (2, 3))], [("y", F32, None)])
    got, ref = chip_and_ort(m, tmp_path, {"x": data, "i": idx})
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(mode, tmp_path):
    pads = np.array([0, 1, 2, 1, 0, 1], np.int64)  # begins of the 3 axes, then their ends
    on_data_and_folded([H.make_node("Pad", ["x", "pads", "v"], ["y"], mode=mode)], X, tmp_path,
                       [("pads", pads), ("v", np.array(1.5, np.float32))])


def test_pad_with_axes(tmp_path):
    on_data_and_folded([H.make_node("Pad", ["x", "pads", "", "axes"], ["y"])], X, tmp_path,
                       [("pads", np.array([1, 2], np.int64)),
                        ("axes", np.array([-1], np.int64))])


@pytest.mark.parametrize("equation,shape_b", [
    ("bind,bjnd->bnij", (2, 5, 3, 4)),  # Funnel's attention scores
    ("bnij,bjnd->bind", (2, 4, 3, 6)),  # and its weighted values
    ("abc,cd->abd", (4, 7)),            # a linear layer
    ("abc,dc->adb", (5, 4)),            # a transposed weight and a permuted output
])
@pytest.mark.parametrize("const_b", [False, True])
def test_einsum_equals_onnxruntime(equation, shape_b, const_b, tmp_path):
    shape_a = {"bind": (2, 3, 3, 4), "bnij": (2, 4, 3, 2), "abc": (2, 3, 4)}[
        equation.split(",")[0]]
    if equation.startswith("bnij"):
        shape_b = (2, 2, 4, 6)
    a = RNG.standard_normal(shape_a).astype(np.float32)
    b = RNG.standard_normal(shape_b).astype(np.float32)
    inputs, inits, feeds = [("a", F32, a.shape)], [], {"a": a}
    if const_b:
        inits.append(("b", b))
    else:
        inputs.append(("b", F32, b.shape))
        feeds["b"] = b
    m = model([H.make_node("Einsum", ["a", "b"], ["y"], equation=equation)], inputs,
              [("y", F32, None)], inits)
    got, ref = chip_and_ort(m, tmp_path, feeds)
    assert got.shape == ref.shape == np.einsum(equation, a, b).shape
    assert np.allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_einsum_summing_over_one_operand_alone(tmp_path):
    # k summed in b alone: a reduce of b first, then the product
    b = RNG.standard_normal((3, 4)).astype(np.float32)
    m = model([H.make_node("Einsum", ["a", "b"], ["y"], equation="ij,jk->i")],
              [("a", F32, (2, 3)), ("b", F32, (3, 4))], [("y", F32, None)])
    got, ref = chip_and_ort(m, tmp_path, {"a": X[0, :2, :3].copy(), "b": b})
    assert ref.shape == (2,) and np.allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_tile_on_data(tmp_path):
    ref = on_data_and_folded([H.make_node("Tile", ["x", "r"], ["y"])], X, tmp_path,
                             [("r", np.array([2, 1, 3], np.int64))])
    assert ref.shape == (4, 3, 12)


@pytest.mark.parametrize("op", ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"])
def test_comparisons_on_data_feed_a_where(op, tmp_path):
    x = np.array([[0, 1, 2], [2, 1, 0]], np.int64)
    nodes = [H.make_node(op, ["x", "one"], ["c"]),
             H.make_node("Not", ["c"], ["nc"]), H.make_node("And", ["nc", "t"], ["m"]),
             H.make_node("Or", ["m", "c"], ["o"]), H.make_node("Xor", ["o", "t"], ["q"]),
             H.make_node("Where", ["q", "a", "b"], ["y"])]
    inits = [("one", np.array(1, np.int64)), ("t", np.array([True, False, True])),
             ("a", np.array(1.0, np.float32)), ("b", np.array(-2.0, np.float32))]
    on_data_and_folded(nodes, x, tmp_path, inits)


def test_gather_nd_with_constant_indices_on_data(tmp_path):
    idx = np.array([[[0, 2], [1, -1]], [[1, 0], [0, 0]]], np.int64)  # (2, 2, 2): q = 2
    ref = on_data_and_folded([H.make_node("GatherND", ["x", "i"], ["y"])], X, tmp_path,
                             [("i", idx)])
    assert ref.shape == (2, 2, 4)


def test_average_pool_with_ceil_mode_where_the_windows_tile(tmp_path):
    x = RNG.standard_normal((1, 1, 8, 4)).astype(np.float32)
    node = H.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 1], strides=[2, 1],
                       ceil_mode=1)
    m = model([node], [("x", F32, x.shape)], [("y", F32, None)])
    got, ref = chip_and_ort(m, tmp_path, {"x": x})
    assert ref.shape == (1, 1, 4, 4) and np.allclose(got, ref, rtol=1e-6)
    odd = x[:, :, :7].copy()  # 7 rows: ceil_mode adds a partial last window (of one row)
    (tmp_path / "odd").mkdir()
    m = model([node], [("x", F32, odd.shape)], [("y", F32, None)])
    got, ref = chip_and_ort(m, tmp_path / "odd", {"x": odd})
    assert ref.shape == (1, 1, 4, 4) and np.allclose(got, ref, rtol=1e-6)


def test_scatter_nd_with_constant_indices_on_data(tmp_path):
    # rows 2 and 0 of axis 0 (q = 1) replaced by data-derived updates (Funnel, dynamo exporter)
    idx = np.array([[1], [0]], np.int64)
    nodes = [H.make_node("Slice", ["x", "s0", "s1", "ax"], ["u"]),
             H.make_node("ScatterND", ["x", "i", "u"], ["y"])]
    inits = [("i", idx), ("s0", np.array([0], np.int64)), ("s1", np.array([2], np.int64)),
             ("ax", np.array([0], np.int64))]
    ref = on_data_and_folded(nodes, X[::-1].copy(), tmp_path, inits)
    assert np.array_equal(ref[0], X[::-1][1]) and np.array_equal(ref[1], X[::-1][0])


def test_scatter_nd_of_single_elements(tmp_path):
    idx = np.array([[0, 1, 2], [1, 2, 3]], np.int64)  # q = 3: two elements
    nodes = [H.make_node("ScatterND", ["x", "i", "u"], ["y"])]
    on_data_and_folded(nodes, X, tmp_path, [("i", idx), ("u", np.array([7.0, -7.0],
                                                                       np.float32))])


@pytest.mark.parametrize("reduction", ["add", "mul", "max", "min"])
def test_scatter_nd_with_a_reduction_folded_and_on_data(reduction, tmp_path):
    idx = np.array([[1], [1]], np.int64)  # the same row twice: the reduction applies twice
    u = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    node = H.make_node("ScatterND", ["c", "i", "u"], ["s"], reduction=reduction)
    m = model([node, H.make_node("Add", ["s", "x"], ["y"])], [("x", F32, X.shape)],
              [("y", F32, None)], [("c", X), ("i", idx), ("u", u)])
    got, ref = chip_and_ort(m, tmp_path, {"x": np.zeros_like(X)})
    assert np.allclose(got, ref, rtol=1e-6)
    (tmp_path / "data").mkdir()
    m = model([H.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction=reduction)],
              [("x", F32, X.shape)], [("y", F32, None)], [("i", idx), ("u", u)])
    got, ref = chip_and_ort(m, tmp_path / "data", {"x": X})
    assert np.allclose(got, ref, rtol=1e-6)
