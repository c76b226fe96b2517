"""ONNX semantics the importer once got silently wrong, against onnxruntime on small generated
models: integer Div truncates toward zero (on data and when folded), Flatten's negative axis
counts from the back (axis + rank), MatMul of 1-D operands follows numpy's matmul (a 1-D A is
a row, a 1-D B a column, the added axis dropped); operators the importer only folds say so
when they meet data."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import CONFIGS  # noqa: E402
from simulator import load_chip  # noqa: E402
from simulator.core.engine import run  # noqa: E402
from simulator.errors import WorkloadError  # noqa: E402
from simulator.frontends.onnx_import import FOLD_ONLY, import_onnx  # noqa: E402
from simulator.tools.cli import main  # noqa: E402

FP32 = load_chip(CONFIGS / "tpu-v4-mxu.yaml", {"dtype": "fp32"})
H = onnx.helper
F32, I32, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT32, onnx.TensorProto.INT64


def model(nodes, inputs, outputs, inits=(), opset=18):
    """Return an ONNX model; inputs/outputs are (name, element type, shape or None)."""
    g = H.make_graph(nodes, "g", [H.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                     [H.make_tensor_value_info(n, t, s) for n, t, s in outputs],
                     initializer=[onnx.numpy_helper.from_array(v, n) for n, v in inits])
    return H.make_model(g, opset_imports=[H.make_opsetid("", opset)])


def chip_and_ort(m, tmp_path, feeds):
    """Return (the chip's output, onnxruntime's output) of model ``m`` on ``feeds``."""
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    im = import_onnx(path)
    got = run(FP32, im.program, im.inputs(0, feeds)).values[im.output]
    ref = ort.InferenceSession(str(path)).run(None, feeds)[0]
    return np.asarray(got), ref


def test_integer_div_of_data_truncates_toward_zero(tmp_path):
    m = model([H.make_node("Div", ["a", "b"], ["q"])], [("a", I32, (2,)), ("b", I32, (2,))],
              [("q", I32, None)])
    got, ref = chip_and_ort(m, tmp_path, {"a": np.array([7, -7], np.int32),
                                           "b": np.array([2, 2], np.int32)})
    assert ref.tolist() == [3, -3]
    assert got.tolist() == [3, -3]


ints = st.integers(-(2**20), 2**20)
divisors = st.integers(1, 2**10).flatmap(lambda v: st.sampled_from([v, -v]))


@settings(max_examples=25, deadline=None)
@given(a=st.lists(ints, min_size=1, max_size=12), data=st.data(), via_add=st.booleans(),
       scalar=st.booleans())
def test_integer_div_equals_onnxruntime(a, data, via_add, scalar, tmp_path_factory):
    # via_add: the dividend comes out of an Add (the chip carries it as float32, exact here);
    # scalar: a constant one-element divisor (not a scale by its reciprocal)
    n = len(a)
    b = data.draw(st.lists(divisors, min_size=1 if scalar else n, max_size=1 if scalar else n))
    av, bv = np.array(a, np.int32), np.array(b, np.int32)
    nodes, inputs, inits, feeds = [], [("a", I32, (n,))], [], {"a": av}
    top = "a"
    if via_add:
        nodes.append(H.make_node("Add", ["a", "a"], ["a2"]))
        top = "a2"
    if scalar:
        inits.append(("b", bv.reshape(())))
    else:
        inputs.append(("b", I32, (n,)))
        feeds["b"] = bv
    nodes.append(H.make_node("Div", [top, "b"], ["q"]))
    got, ref = chip_and_ort(model(nodes, inputs, [("q", I32, None)], inits),
                            tmp_path_factory.mktemp("div"), feeds)
    assert np.array_equal(got, ref), (got, ref)


def test_constant_integer_div_folds_truncating(tmp_path):
    c1 = np.array([7, -7, 9, -9, 1], np.int64)
    c2 = np.array([2, 2, -4, -4, -3], np.int64)
    m = model([H.make_node("Div", ["c1", "c2"], ["c"]), H.make_node("Add", ["x", "c"], ["y"])],
              [("x", I64, (5,))], [("y", I64, None)], [("c1", c1), ("c2", c2)])
    x = np.arange(5, dtype=np.int64)
    got, ref = chip_and_ort(m, tmp_path, {"x": x})
    assert (ref - x).tolist() == [3, -3, -2, 2, 0]
    assert np.array_equal(got, ref)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple), data=st.data())
def test_flatten_with_any_axis_equals_onnxruntime(shape, data, tmp_path_factory):
    axis = data.draw(st.integers(-len(shape), len(shape)))
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
    m = model([H.make_node("Flatten", ["x"], ["f"], axis=axis),
               H.make_node("Relu", ["f"], ["y"])], [("x", F32, shape)], [("y", F32, None)])
    got, ref = chip_and_ort(m, tmp_path_factory.mktemp("flat"), {"x": x})
    assert got.shape == ref.shape
    assert np.array_equal(got, ref)


# (shape of A, shape of B): every placement of a 1-D operand numpy's matmul allows
MATMUL_1D = [((5,), (5, 3)), ((4, 5), (5,)), ((5,), (5,)), ((5,), (2, 5, 3)),
             ((2, 4, 5), (5,)), ((1, 5), (5,)), ((5,), (5, 1))]


@settings(max_examples=25, deadline=None)
@given(case=st.sampled_from(MATMUL_1D), const_a=st.booleans(), const_b=st.booleans(),
       seed=st.integers(0, 2**16))
def test_matmul_of_1d_operands_equals_onnxruntime(case, const_a, const_b, seed,
                                                   tmp_path_factory):
    if const_a and const_b:
        const_b = False  # something must run on the chip
    rng = np.random.default_rng(seed)
    sa, sb = case
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    inputs, inits, feeds = [], [], {}
    for name, v, const in (("a", a, const_a), ("b", b, const_b)):
        if const:
            inits.append((name, v))
        else:
            inputs.append((name, F32, v.shape))
            feeds[name] = v
    m = model([H.make_node("MatMul", ["a", "b"], ["y"])], inputs, [("y", F32, None)], inits)
    got, ref = chip_and_ort(m, tmp_path_factory.mktemp("mm"), feeds)
    assert ref.shape == np.matmul(a, b).shape
    assert got.reshape(ref.shape).shape == ref.shape and got.size == ref.size
    assert got.shape == (ref.shape or (1,))
    assert np.allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_fold_only_operators_on_data_do_not_claim_support(tmp_path):
    assert {"Range", "ConstantOfShape"} <= FOLD_ONLY
    # these run on data (tests/test_onnx_ops_on_data.py, tests/test_onnx_ops.py)
    assert not {"Abs", "Neg", "Floor", "Ceil", "Equal", "And", "Not", "Mod", "Tile", "GatherND",
                "CumSum"} & FOLD_ONLY
    path = tmp_path / "fill.onnx"
    onnx.save(model([H.make_node("ConstantOfShape", ["s"], ["y"], name="the_fill")],
                    [("s", I64, (2,))], [("y", F32, None)]), str(path))
    with pytest.raises(WorkloadError) as info:
        import_onnx(path)
    text = str(info.value)
    assert "the_fill (ConstantOfShape)" in text and "not supported on data" in text
    # an unknown operator lists what runs on data apart from what is only folded
    path = tmp_path / "det.onnx"
    onnx.save(model([H.make_node("Det", ["x"], ["y"])], [("x", F32, (2, 3, 3))],
                    [("y", F32, None)]), str(path))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", str(CONFIGS / "tpu-v4-mxu.yaml"), "--onnx", str(path)])
    line = err.getvalue()
    assert code == 2 and line.count("\n") == 1 and "operator Det is not supported" in line
    on_data, _, folded = line.partition("folded only")
    assert "Relu" in on_data and "Abs" in on_data and "ConstantOfShape" not in on_data
    assert "ConstantOfShape" in folded


@pytest.mark.parametrize("fmod", [0, 1])
def test_constant_mod_follows_the_fmod_attribute(fmod, tmp_path):
    a = np.array([7, -7, 7, -7, 5], np.int32)
    b = np.array([3, 3, -3, -3, 5], np.int32)
    m = model([H.make_node("Mod", ["a", "b"], ["r"], fmod=fmod),
               H.make_node("Add", ["x", "r"], ["y"])],
              [("x", I32, (5,))], [("y", I32, None)], [("a", a), ("b", b)])
    x = np.zeros(5, np.int32)
    got, ref = chip_and_ort(m, tmp_path, {"x": x})
    assert ref.tolist() == ([1, -1, 1, -1, 0] if fmod else [1, 2, -2, -1, 0])
    assert np.array_equal(got, ref)
