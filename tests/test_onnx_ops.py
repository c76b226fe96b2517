"""ONNX operators lowered onto the vector unit (issue 25) against onnxruntime on generated
inputs: the elementwise activations and math, integer Mod / Div / BitShift / comparisons
under ONNX's integer semantics, every reduction, ArgMax / ArgMin, Gather of data, Pad, Tile;
and a new op kind in a training step is a one-line error, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import CONFIGS  # noqa: E402
from simulator import load_chip  # noqa: E402
from simulator.core.autodiff import Optimizer, training_step  # noqa: E402
from simulator.core.engine import run  # noqa: E402
from simulator.core.program import Program  # noqa: E402
from simulator.core.vector import ELEMENTWISE, INTEGER_KINDS, elementwise_values  # noqa: E402
from simulator.errors import WorkloadError  # noqa: E402
from simulator.frontends.onnx_import import import_onnx  # noqa: E402

FP32 = load_chip(CONFIGS / "tpu-v4-mxu.yaml", {"dtype": "fp32"})
H = onnx.helper
TP = onnx.TensorProto
NP_TYPE = {np.dtype(np.float32): TP.FLOAT, np.dtype(np.int32): TP.INT32,
           np.dtype(np.int64): TP.INT64, np.dtype(np.uint8): TP.UINT8,
           np.dtype(np.int8): TP.INT8, np.dtype(np.bool_): TP.BOOL}


def chip_and_ort(tmp, node, feeds: dict, opset: int = 18, inits: dict | None = None):
    """Return (chip's output, onnxruntime's output) of the one-node model on ``feeds``."""
    inputs = [H.make_tensor_value_info(n, NP_TYPE[v.dtype], v.shape) for n, v in feeds.items()]
    g = H.make_graph([node], "g", inputs, [], initializer=[
        onnx.numpy_helper.from_array(v, n) for n, v in (inits or {}).items()])
    m = H.make_model(g, opset_imports=[H.make_opsetid("", opset)])
    typed = onnx.shape_inference.infer_shapes(m, strict_mode=True)  # the output's type
    m.graph.output.extend(vi for vi in typed.graph.value_info if vi.name == node.output[0])
    path = tmp / "m.onnx"
    onnx.save(m, str(path))
    im = import_onnx(path)
    got = np.asarray(run(FP32, im.program, im.inputs(0, feeds)).values[im.output])
    ref = ort.InferenceSession(str(path)).run(None, feeds)[0]
    return got.reshape(ref.shape), ref


floats = st.lists(st.floats(-6, 6, allow_nan=False, width=32), min_size=1, max_size=24)

UNARY = [("Abs", {}), ("Neg", {}), ("Sign", {}), ("Floor", {}), ("Ceil", {}), ("Round", {}),
         ("Sin", {}), ("Cos", {}), ("Atan", {}), ("Sinh", {}), ("Asinh", {}),
         ("Softplus", {}), ("Softsign", {}), ("Elu", {"alpha": 0.7}), ("Selu", {}),
         ("Celu", {"alpha": 1.5}), ("LeakyRelu", {"alpha": 0.2}),
         ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("HardSwish", {}), ("Mish", {}),
         ("ThresholdedRelu", {"alpha": 0.5}), ("Shrink", {"lambd": 1.5, "bias": 0.5}),
         ("Reciprocal", {}), ("Sigmoid", {}), ("Exp", {})]


@settings(max_examples=15, deadline=None)
@given(case=st.sampled_from(UNARY), xs=floats)
def test_unary_activations_equal_onnxruntime(case, xs, tmp_path_factory):
    op, attrs = case
    x = np.array(xs, np.float32)
    if op == "Reciprocal":
        x = np.where(np.abs(x) < 0.1, np.float32(0.5), x)
    got, ref = chip_and_ort(tmp_path_factory.mktemp("u"), H.make_node(op, ["x"], ["y"], **attrs),
                            {"x": x})
    assert np.allclose(got, ref, rtol=1e-5, atol=1e-6), (op, x, got, ref)


ints = st.lists(st.integers(-100, 100), min_size=1, max_size=16)


@settings(max_examples=30, deadline=None)
@given(a=ints, data=st.data(), fmod=st.integers(0, 1))
def test_integer_mod_follows_fmod_exactly(a, data, fmod, tmp_path_factory):
    b = data.draw(st.lists(st.integers(1, 9).flatmap(lambda v: st.sampled_from([v, -v])),
                           min_size=len(a), max_size=len(a)))
    feeds = {"a": np.array(a, np.int32), "b": np.array(b, np.int32)}
    got, ref = chip_and_ort(tmp_path_factory.mktemp("m"),
                            H.make_node("Mod", ["a", "b"], ["y"], fmod=fmod), feeds)
    assert np.array_equal(got, ref), (a, b, got, ref)


@settings(max_examples=30, deadline=None)
@given(a=st.lists(st.integers(0, 255), min_size=1, max_size=8), data=st.data(),
       left=st.booleans())
def test_bitshift_wraps_to_the_element_type(a, data, left, tmp_path_factory):
    s = data.draw(st.lists(st.integers(0, 7), min_size=len(a), max_size=len(a)))
    feeds = {"x": np.array(a, np.uint8), "s": np.array(s, np.uint8)}
    node = H.make_node("BitShift", ["x", "s"], ["y"], direction="LEFT" if left else "RIGHT")
    got, ref = chip_and_ort(tmp_path_factory.mktemp("b"), node, feeds)
    assert np.array_equal(got, ref), (a, s, got, ref)


@pytest.mark.parametrize("op", ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"])
def test_comparisons_of_integers_and_floats(op, tmp_path):
    a = np.array([3, -2, 7, 7, 0], np.int64)
    b = np.array([3, 5, -1, 8, 0], np.int64)
    got, ref = chip_and_ort(tmp_path, H.make_node(op, ["a", "b"], ["y"]), {"a": a, "b": b})
    assert ref.dtype == np.bool_ and np.array_equal(got != 0, ref)
    fa, fb = a.astype(np.float32) / 2, b.astype(np.float32) / 2
    got, ref = chip_and_ort(tmp_path, H.make_node(op, ["a", "b"], ["y"]), {"a": fa, "b": fb})
    assert np.array_equal(got != 0, ref)


REDUCTIONS = ["ReduceMin", "ReduceMax", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare",
              "ReduceLogSumExp", "ReduceMean", "ReduceSum"]


@settings(max_examples=20, deadline=None)
@given(op=st.sampled_from(REDUCTIONS), keep=st.integers(0, 1), seed=st.integers(0, 999),
       axes=st.sampled_from([[0], [1], [-1], [0, 2], [1, 2]]))
def test_reductions_equal_onnxruntime(op, keep, seed, axes, tmp_path_factory):
    x = np.random.default_rng(seed).uniform(0.5, 1.5, (2, 3, 4)).astype(np.float32)
    node = H.make_node(op, ["x", "axes"], ["y"], keepdims=keep)
    got, ref = chip_and_ort(tmp_path_factory.mktemp("r"), node, {"x": x},
                            inits={"axes": np.array(axes, np.int64)})
    assert np.allclose(got, ref, rtol=1e-5, atol=1e-6), (op, axes, got, ref)


@settings(max_examples=20, deadline=None)
@given(op=st.sampled_from(["ArgMax", "ArgMin"]), axis=st.integers(-2, 1),
       keep=st.integers(0, 1), last=st.integers(0, 1),
       xs=st.lists(st.integers(-2, 2), min_size=12, max_size=12))
def test_argmax_argmin_with_ties_equal_onnxruntime(op, axis, keep, last, xs, tmp_path_factory):
    x = np.array(xs, np.float32).reshape(3, 4)  # few distinct values: many ties
    node = H.make_node(op, ["x"], ["y"], axis=axis, keepdims=keep, select_last_index=last)
    got, ref = chip_and_ort(tmp_path_factory.mktemp("a"), node, {"x": x})
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_gather_of_data_by_data_ids(axis, tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    ids = np.array([[1, 0], [1, 1]], np.int64)
    got, ref = chip_and_ort(tmp_path, H.make_node("Gather", ["x", "i"], ["y"], axis=axis),
                            {"x": x, "i": ids})
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_pad_and_tile_of_data(mode, tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    inits = {"pads": np.array([1, 0, 2, 1], np.int64)}
    got, ref = chip_and_ort(tmp_path, H.make_node("Pad", ["x", "pads"], ["y"], mode=mode),
                            {"x": x}, inits=inits)
    assert np.array_equal(got, ref)
    got, ref = chip_and_ort(tmp_path, H.make_node("Tile", ["x", "r"], ["y"]), {"x": x},
                            inits={"r": np.array([2, 3], np.int64)})
    assert np.array_equal(got, ref)


def test_integer_kinds_stay_integers_and_floats_stay_float32():
    a, b = np.array([7, -7, 2**40]), np.array([2, 2, 3])
    assert elementwise_values("mod", [a, b], 0.0, (1.0,)).tolist() == [1, -1, (2**40) % 3]
    assert elementwise_values("pow", [np.array([3]), np.array([2])], 0.0).dtype.kind == "i"
    assert elementwise_values("neg", [np.array([2**40])], 0.0).tolist() == [-(2**40)]
    assert elementwise_values("neg", [np.array([1.5])], 0.0).dtype == np.float32
    assert INTEGER_KINDS <= set(ELEMENTWISE)


def test_a_new_kind_in_a_training_step_is_a_one_line_error():
    p = Program("f")
    p.input("x", (2, 3))
    p.input("w", (3, 3))
    y = p.matmul("mm", "x", "w")
    p.elementwise("act", "mish", y, out="y")
    with pytest.raises(WorkloadError, match="no backward rule for mish") as info:
        training_step(p, "y", ["w"], "mse", Optimizer())
    assert "\n" not in str(info.value)
    q = Program("g")
    q.input("x", (2, 3))
    q.input("w", (3, 3))
    y = q.matmul("mm", "x", "w")
    q.reduce("r", "min", y, axis=1, out="y")
    with pytest.raises(WorkloadError, match="no backward rule for a min reduction"):
        training_step(q, "y", ["w"], "mse", Optimizer())


@pytest.mark.parametrize("mode,ctm", [("nearest", "asymmetric"), ("linear", "half_pixel"),
                                      ("linear", "align_corners"), ("cubic", "half_pixel")])
@pytest.mark.parametrize("scales", [(1, 1, 2, 1.5), (1, 1, 0.5, 0.75)])
def test_resize_equals_onnxruntime(mode, ctm, scales, tmp_path):
    x = np.random.default_rng(1).standard_normal((1, 2, 4, 4)).astype(np.float32)
    node = H.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode,
                       coordinate_transformation_mode=ctm)
    got, ref = chip_and_ort(tmp_path, node, {"x": x},
                            inits={"scales": np.array(scales, np.float32)})
    assert np.allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_inputs_given_at_import_fold_and_bad_ones_are_one_line(tmp_path):
    g = H.make_graph([H.make_node("Reshape", ["x", "shape"], ["y"])], "g",
                     [H.make_tensor_value_info("x", TP.FLOAT, (2, 6)),
                      H.make_tensor_value_info("shape", TP.INT64, (2,))],
                     [H.make_tensor_value_info("y", TP.FLOAT, None)])
    path = tmp_path / "r.onnx"
    onnx.save(H.make_model(g, opset_imports=[H.make_opsetid("", 18)]), str(path))
    with pytest.raises(WorkloadError, match="must be a constant known at import"):
        import_onnx(path)
    im = import_onnx(path, constants={"shape": np.array([3, 4])})
    assert im.program.shapes[im.output] == (3, 4) and set(im.data) == {"x"}
    for bad in ({"nope": np.array([3, 4])}, {"shape": np.array(["a", "b"])}):
        with pytest.raises(WorkloadError) as info:
            import_onnx(path, constants=bad)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("attrs", [{}, {"strides": [2, 2]},
                                   {"strides": [2, 1], "pads": [1, 0, 0, 1]},
                                   {"strides": [2, 2], "output_padding": [1, 1], "group": 2},
                                   {"dilations": [2, 1]}])
def test_conv_transpose_equals_onnxruntime(attrs, tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 4, 3, 3)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    b = rng.standard_normal(3 * attrs.get("group", 1)).astype(np.float32)
    node = H.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)
    got, ref = chip_and_ort(tmp_path, node, {"x": x}, inits={"w": w, "b": b})
    assert np.allclose(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_elements_and_nd_equal_onnxruntime(reduction, tmp_path):
    rng = np.random.default_rng(3)
    data = rng.standard_normal((3, 4)).astype(np.float32)
    ids = np.array([[1, 0, 2, 1], [0, 2, 1, 0]], np.int64)  # distinct per column
    upd = rng.standard_normal((2, 4)).astype(np.float32)
    node = H.make_node("ScatterElements", ["d", "i", "u"], ["y"], axis=0, reduction=reduction)
    got, ref = chip_and_ort(tmp_path, node, {"d": data, "i": ids, "u": upd})
    assert np.allclose(got, ref, rtol=1e-6)
    nd_ids = np.array([[2], [0]], np.int64)
    node = H.make_node("ScatterND", ["d", "i", "u"], ["y"], reduction=reduction)
    got, ref = chip_and_ort(tmp_path, node, {"d": data, "i": nd_ids, "u": upd})
    assert np.allclose(got, ref, rtol=1e-6)


@settings(max_examples=20, deadline=None)
@given(xs=st.lists(st.integers(-3, 3), min_size=12, max_size=12), k=st.integers(1, 4),
       largest=st.integers(0, 1), axis=st.sampled_from([0, 1, -1]))
def test_topk_values_and_indices_with_ties_equal_onnxruntime(xs, k, largest, axis,
                                                            tmp_path_factory):
    x = np.array(xs, np.float32).reshape(3, 4)
    k = min(k, x.shape[axis])
    tmp = tmp_path_factory.mktemp("t")
    node = H.make_node("TopK", ["x", "k"], ["v", "i"], axis=axis, largest=largest)
    g = H.make_graph([node], "g", [H.make_tensor_value_info("x", TP.FLOAT, (3, 4))],
                     [H.make_tensor_value_info("v", TP.FLOAT, None),
                      H.make_tensor_value_info("i", TP.INT64, None)],
                     initializer=[onnx.numpy_helper.from_array(np.array([k], np.int64), "k")])
    path = tmp / "m.onnx"
    onnx.save(H.make_model(g, opset_imports=[H.make_opsetid("", 18)]), str(path))
    im = import_onnx(path)
    vals = run(FP32, im.program, im.inputs(0, {"x": x})).values
    ref = ort.InferenceSession(str(path)).run(None, {"x": x})
    assert np.array_equal(vals[im.outputs[0]], ref[0])
    assert np.array_equal(vals[im.outputs[1]], ref[1])


@pytest.mark.parametrize("op,attrs", [("DepthToSpace", {"blocksize": 2, "mode": "DCR"}),
                                      ("DepthToSpace", {"blocksize": 2, "mode": "CRD"}),
                                      ("SpaceToDepth", {"blocksize": 2}),
                                      ("LpPool", {"kernel_shape": [2, 2], "p": 2}),
                                      ("LpPool", {"kernel_shape": [3, 3], "p": 3,
                                                  "pads": [1, 1, 1, 1]})])
def test_rearrangements_and_lp_pool_equal_onnxruntime(op, attrs, tmp_path):
    x = np.random.default_rng(4).standard_normal((1, 4, 4, 6)).astype(np.float32)
    got, ref = chip_and_ort(tmp_path, H.make_node(op, ["x"], ["y"], **attrs), {"x": x})
    assert np.allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_embedding_and_strided_slices_equal_the_reference(interleaved, tmp_path):
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 3, 8)).astype(np.float32)  # (batch, heads, seq, head size)
    cos = rng.standard_normal((6, 2)).astype(np.float32)
    sin = rng.standard_normal((6, 2)).astype(np.float32)
    pos = np.array([[4, 0, 2]], np.int64)
    node = H.make_node("RotaryEmbedding", ["x", "cos", "sin", "pos"], ["y"],
                       interleaved=interleaved, rotary_embedding_dim=4)
    g = H.make_graph([node, H.make_node("Slice", ["y", "s", "e", "a", "st"], ["z"])], "g",
                     [H.make_tensor_value_info("x", TP.FLOAT, x.shape),
                      H.make_tensor_value_info("pos", TP.INT64, pos.shape)],
                     [H.make_tensor_value_info("z", TP.FLOAT, None)],
                     initializer=[onnx.numpy_helper.from_array(v, n) for n, v in
                                  (("cos", cos), ("sin", sin), ("s", np.array([7], np.int64)),
                                   ("e", np.array([0], np.int64)), ("a", np.array([3], np.int64)),
                                   ("st", np.array([-2], np.int64)))])
    m = H.make_model(g, opset_imports=[H.make_opsetid("", 23)])
    path = tmp_path / "rope.onnx"
    onnx.save(m, str(path))
    im = import_onnx(path)
    got = run(FP32, im.program, im.inputs(0, {"x": x, "pos": pos})).values[im.output]
    ref = ReferenceEvaluator(m).run(None, {"x": x, "pos": pos})[0]
    assert np.allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("to,axis", [(np.uint8, None), (np.int8, 1)])
def test_quantize_and_dequantize_equal_onnxruntime(to, axis, tmp_path):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((2, 3, 4)) * 40).astype(np.float32)  # some saturate
    scale = np.array([0.5, 0.25, 1.0], np.float32) if axis else np.array(0.5, np.float32)
    zp = np.array([3, -2, 0] if axis else 7, to)
    attrs = {"axis": axis} if axis else {}
    q = H.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], **attrs)
    got, ref = chip_and_ort(tmp_path, q, {"x": x}, inits={"s": scale, "z": zp})
    assert ref.dtype == to and np.array_equal(got, ref)
    xq = ref
    d = H.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], **attrs)
    got, ref = chip_and_ort(tmp_path, d, {"q": xq}, inits={"s": scale, "z": zp})
    assert np.allclose(got, ref, rtol=1e-6)


@pytest.mark.parametrize("eq,shapes", [("ij,jk->ik", [(2, 3), (3, 4)]),
                                       ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]),
                                       ("i,i", [(5,), (5,)]), ("ij->ji", [(2, 3)]),
                                       ("ij->i", [(2, 3)]), ("bhqd,bhkd->bhqk",
                                                             [(1, 2, 3, 4), (1, 2, 5, 4)]),
                                       ("...ij,...jk", [(2, 2, 3), (2, 3, 2)]),
                                       ("ij,kj->ikj", [(2, 3), (4, 3)]),
                                       ("abc,cd->db", [(2, 3, 4), (4, 5)])])
def test_einsum_equals_onnxruntime(eq, shapes, tmp_path):
    rng = np.random.default_rng(7)
    feeds = {f"x{k}": rng.standard_normal(s).astype(np.float32) for k, s in enumerate(shapes)}
    node = H.make_node("Einsum", list(feeds), ["y"], equation=eq)
    got, ref = chip_and_ort(tmp_path, node, feeds)
    assert np.allclose(got, ref, rtol=1e-5, atol=1e-5)


NEW_VECTOR_OPS = [("argmax", [(3, 5)], {"axis": 1}), ("argmin", [(3, 5)], {"axis": 0}),
                  ("hardmax", [(3, 5)], {"axis": -1}),
                  ("pad", [(3, 5)], {"pads": ((1, 0), (0, 2))}),
                  ("cumsum", [(3, 5)], {"axis": 1}), ("cumprod", [(3, 5)], {"axis": 0}),
                  ("topk", [(3, 5)], {"axis": 1, "k": 2}),
                  ("topk_indices", [(3, 5)], {"axis": 1, "k": 2}),
                  ("gather_elements", [(3, 5), (2, 5)], {"axis": 0}),
                  ("scatter_elements", [(3, 5), (2, 5), (2, 5)], {"axis": 0}),
                  ("scatter_nd", [(3, 5), (2, 1), (2, 5)], {})]


@pytest.mark.parametrize("kind,shapes,attrs", NEW_VECTOR_OPS)
def test_new_vector_ops_are_costed_from_the_config_classes(kind, shapes, attrs):
    from simulator.core.vector import VECTOR_OPS, passes_cycles

    p = Program("v")
    names = [p.input(f"x{i}", s) for i, s in enumerate(shapes)]
    p.vector("op", kind, *names, **attrs)
    rep = run(FP32, p)
    op = p.ops[0]
    passes = VECTOR_OPS[kind].passes([p.shapes[t] for t in names], p.shapes["op"],
                                     dict(op.attrs))
    assert passes and all(cls in FP32.vector.interval for cls, _n, _g in passes)
    assert rep.ops[0].kind == f"vector.{kind}"
    assert rep.ops[0].compute_cycles >= passes_cycles(FP32.vector, passes)[0] > 0
    assert set(ELEMENTWISE[k][0] for k in ELEMENTWISE) <= set(FP32.vector.interval)


@pytest.mark.parametrize("kind,shapes,attrs", [
    ("scatter_nd", [(3, 5), (2, 4), (2, 5)], {}),
    ("scatter_elements", [(3, 5), (2, 5), (2, 4)], {"axis": 0}),
    ("topk", [(3, 5)], {"axis": 1, "k": 6}), ("pad", [(3, 5)], {"pads": ((1, 0),)}),
    ("gather_elements", [(3, 5), (2, 6)], {"axis": 0})])
def test_new_vector_ops_refuse_bad_shapes_in_one_line(kind, shapes, attrs):
    p = Program("v")
    names = [p.input(f"x{i}", s) for i, s in enumerate(shapes)]
    with pytest.raises(WorkloadError) as info:
        p.vector("op", kind, *names, **attrs)
    assert "\n" not in str(info.value) and kind in str(info.value)


@pytest.mark.parametrize("op,attrs", [("RNN", {"direction": "bidirectional"}),
                                      ("GRU", {"linear_before_reset": 1}),
                                      ("GRU", {"direction": "reverse", "layout": 1}),
                                      ("LSTM", {"direction": "bidirectional"}),
                                      ("LSTM", {"layout": 1})])
def test_recurrences_equal_onnxruntime(op, attrs, tmp_path):
    """RNN, GRU and LSTM with initial states, biases, both directions and both layouts."""
    rng = np.random.default_rng(8)
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    ndir = 2 if attrs.get("direction") == "bidirectional" else 1
    seq, batch, d, hd = 3, 2, 4, 5
    layout = attrs.get("layout", 0)
    x = rng.standard_normal((seq, batch, d) if not layout else (batch, seq, d)).astype(np.float32)
    inits = {"W": rng.standard_normal((ndir, gates * hd, d)).astype(np.float32) * 0.5,
             "R": rng.standard_normal((ndir, gates * hd, hd)).astype(np.float32) * 0.5,
             "B": rng.standard_normal((ndir, 2 * gates * hd)).astype(np.float32) * 0.5}
    h0 = rng.standard_normal((ndir, batch, hd) if not layout else (batch, ndir, hd))
    feeds = {"x": x, "h0": h0.astype(np.float32)}
    node = H.make_node(op, ["x", "W", "R", "B", "", "h0"], ["y", "yh"], hidden_size=hd,
                       **attrs)
    g = H.make_graph([node], "g", [H.make_tensor_value_info(n, TP.FLOAT, v.shape)
                                   for n, v in feeds.items()],
                     [H.make_tensor_value_info("y", TP.FLOAT, None),
                      H.make_tensor_value_info("yh", TP.FLOAT, None)],
                     initializer=[onnx.numpy_helper.from_array(v, n) for n, v in inits.items()])
    path = tmp_path / "rec.onnx"
    onnx.save(H.make_model(g, opset_imports=[H.make_opsetid("", 22)]), str(path))
    im = import_onnx(path)
    vals = run(FP32, im.program, im.inputs(0, feeds)).values
    if layout:  # onnxruntime has no batch-first recurrences: onnx's reference has
        from onnx.reference import ReferenceEvaluator
        ref = ReferenceEvaluator(str(path)).run(None, feeds)
    else:
        ref = ort.InferenceSession(str(path)).run(None, feeds)
    for got, want in zip((vals[im.outputs[0]], vals[im.outputs[1]]), ref):
        assert got.shape == want.shape and np.allclose(got, want, rtol=1e-4, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(op=st.sampled_from(["Add", "Sub", "Mul"]), dtype=st.sampled_from([np.int32, np.int64]),
       a=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=6), data=st.data())
def test_integer_arithmetic_is_exact_and_wraps_as_onnxruntime(op, dtype, a, data,
                                                              tmp_path_factory):
    b = data.draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=len(a),
                           max_size=len(a)))
    feeds = {"a": np.array(a, dtype), "b": np.array(b, dtype)}  # past 2**24 and overflowing
    got, ref = chip_and_ort(tmp_path_factory.mktemp("i"), H.make_node(op, ["a", "b"], ["y"]),
                            feeds)
    assert np.array_equal(got, ref), (op, a, b, got, ref)


def test_center_crop_pad_and_col2im_equal_the_reference(tmp_path):
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, 4, 3)).astype(np.float32)
    cols = rng.standard_normal((1, 2 * 2 * 2, 9)).astype(np.float32)
    g = H.make_graph([H.make_node("CenterCropPad", ["x", "shape"], ["y"]),
                      H.make_node("Col2Im", ["c", "img", "blk"], ["z"])], "g",
                     [H.make_tensor_value_info("x", TP.FLOAT, x.shape),
                      H.make_tensor_value_info("c", TP.FLOAT, cols.shape)],
                     [H.make_tensor_value_info("y", TP.FLOAT, None),
                      H.make_tensor_value_info("z", TP.FLOAT, None)],
                     initializer=[onnx.numpy_helper.from_array(v, n) for n, v in
                                  (("shape", np.array([2, 7, 3], np.int64)),
                                   ("img", np.array([4, 4], np.int64)),
                                   ("blk", np.array([2, 2], np.int64)))])
    m = H.make_model(g, opset_imports=[H.make_opsetid("", 18)])
    path = tmp_path / "ccp.onnx"
    onnx.save(m, str(path))
    im = import_onnx(path)
    vals = run(FP32, im.program, im.inputs(0, {"x": x, "c": cols})).values
    ref = ReferenceEvaluator(m).run(None, {"x": x, "c": cols})
    for got, want in zip((vals[im.outputs[0]], vals[im.outputs[1]]), ref):
        assert got.shape == want.shape and np.allclose(got, want, rtol=1e-6, atol=1e-6)
