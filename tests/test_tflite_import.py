"""The TFLite importer: small Keras models built here, converted at test time by TensorFlow's
own TFLiteConverter (float, and full-integer int8 with a representative dataset; random
weights), imported with ``import_tflite`` and run on the chip against the LiteRT interpreter
(ai-edge-litert) on the same inputs.

- float: every output within 1e-4 of LiteRT's (relative to the output's largest magnitude) on an
  fp32 chip;
- int8 on configs/edge-tpu.yaml: every int8 tensor of the model (each layer, not only the
  outputs) equal element for element to LiteRT's reference kernels (OpResolverType.BUILTIN_REF)
  when imported with kernels="reference", and to LiteRT's default interpreter (XNNPACK
  delegate) when imported with kernels="default";
- MACs of every array op equal the closed-form count of the layer;
- bad files (random bytes, truncated, an unknown builtin, a custom op, an Edge TPU-compiled
  file, a dynamic shape) are one line with exit status 2 through the CLI.

No .tflite file is committed: each is written into a temporary directory.
"""

from __future__ import annotations

import contextlib
import io
import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
litert = pytest.importorskip("ai_edge_litert.interpreter")
tflite = pytest.importorskip("tflite")

from conftest import CONFIGS  # noqa: E402
from simulator import load_chip  # noqa: E402
from simulator.core.engine import run  # noqa: E402
from simulator.core.program import Conv2d, MatMul, Requant  # noqa: E402
from simulator.errors import WorkloadError  # noqa: E402
from simulator.frontends.tflite_import import import_tflite  # noqa: E402
from simulator.hardware.numerics import quantize_multiplier, requantise_fixed  # noqa: E402
from simulator.tools.cli import main  # noqa: E402

L = tf.keras.layers
EDGE = str(CONFIGS / "edge-tpu.yaml")


def _randomise(model, seed: int) -> None:
    """Random weights and biases (Keras starts biases at zero, which would hide them)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        if isinstance(layer, L.BatchNormalization):  # gamma, beta, mean, variance > 0
            layer.set_weights([(np.abs(rng.normal(0, 0.3, w.shape)) + 0.5).astype(np.float32)
                               for w in ws])
        else:
            layer.set_weights([rng.normal(0, 0.3 if w.ndim > 1 else 0.2, w.shape)
                               .astype(np.float32) for w in ws])


def small_cnn():
    """Conv (SAME, ReLU), depthwise (stride 2, SAME: padded 0 above, 1 below), max and average
    pooling, dense, softmax."""
    x = tf.keras.Input((16, 16, 3), batch_size=1)
    y = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(y)
    y = L.MaxPooling2D(2)(y)
    y = L.AveragePooling2D(2)(y)
    y = L.Flatten()(y)
    y = L.Dense(10)(y)
    y = L.Softmax()(y)
    return tf.keras.Model(x, y)


def mobilenet_block():
    """A MobileNet-v2-like block (stride-2 stem with batch norm, expand 1x1, depthwise 3x3,
    project 1x1, residual add) and a head (pad, concat, mul, global average pool, dense,
    softmax; a second output through a sigmoid)."""
    x = tf.keras.Input((24, 24, 3), batch_size=2)
    y = L.Conv2D(16, 3, strides=2, padding="same")(x)
    y = L.BatchNormalization()(y)
    r = y = L.ReLU(6.0)(y)
    y = L.ReLU(6.0)(L.Conv2D(32, 1)(y))
    y = L.ReLU(6.0)(L.DepthwiseConv2D(3, padding="same")(y))
    y = L.Conv2D(16, 1)(y)
    y = L.Add()([y, r])
    z = L.ZeroPadding2D(((1, 1), (0, 2)))(y)
    z = L.Conv2D(8, 3, activation="sigmoid")(z)
    y = L.Conv2D(8, 3)(y)
    y = L.Concatenate()([y, L.Multiply()([y, y])])
    y = L.GlobalAveragePooling2D()(y)
    y = L.Dense(12, activation="relu")(y)
    y = L.Softmax()(L.Dense(5)(y))
    return tf.keras.Model(x, [y, z])


def mlp():
    """Three dense layers over a batch of 16 (FULLY_CONNECTED's own rounding, per channel)."""
    x = tf.keras.Input((64,), batch_size=16)
    y = L.Dense(256, activation="relu")(x)
    y = L.Dense(200)(y)
    return tf.keras.Model(x, L.Dense(100)(y))


def convert(model, path, int8: bool = False, int8_io: bool = False, seed: int = 1):
    """Write ``model`` converted by TFLiteConverter to ``path``: float, or full-integer int8
    calibrated on 20 N(0, 1) batches (int8 input and output tensors with ``int8_io``)."""
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        shape = tuple(model.inputs[0].shape)
        rng = np.random.default_rng(seed)

        def rep():
            for _ in range(20):
                yield [rng.standard_normal(shape).astype(np.float32)]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("tflite")
    cnn, block, dense = small_cnn(), mobilenet_block(), mlp()
    _randomise(cnn, 0)
    _randomise(block, 1)
    _randomise(dense, 3)
    return {"cnn": (cnn, convert(cnn, d / "cnn.tflite")),
            "cnn_int8": (cnn, convert(cnn, d / "cnn_int8.tflite", int8=True, int8_io=True)),
            "block": (block, convert(block, d / "block.tflite")),
            "block_int8": (block, convert(block, d / "block_int8.tflite", int8=True)),
            "mlp_int8": (dense, convert(dense, d / "mlp_int8.tflite", int8=True))}


def litert_run(path, model, values, resolver="BUILTIN_REF"):
    """Return (interpreter, outputs by name) of LiteRT on the model's data inputs; ``resolver``
    None is the default interpreter (its XNNPACK delegate), else an OpResolverType name."""
    kw = {} if resolver is None else {
        "experimental_op_resolver_type": getattr(litert.OpResolverType, resolver)}
    it = litert.Interpreter(model_path=path, experimental_preserve_all_tensors=True, **kw)
    it.allocate_tensors()
    by_name = {d["name"]: d for d in it.get_input_details()}
    for n, (_shape, dtype) in model.data.items():
        it.set_tensor(by_name[n]["index"], np.asarray(values[n]).astype(dtype))
    it.invoke()
    return it, {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}


def chip_fp32():
    return load_chip(EDGE, {"dtype": "fp32"})


@pytest.mark.parametrize("key", ["cnn", "block"])
def test_float_models_match_litert_within_1e4(models, key):
    _keras, path = models[key]
    m = import_tflite(path)
    assert not m.quantised
    for seed in (0, 1):
        values = m.inputs(seed)
        rep = run(chip_fp32(), m.program, values)
        _it, want = litert_run(path, m, values, "BUILTIN_WITHOUT_DEFAULT_DELEGATES")
        assert len(want) == len(m.outputs)
        for name, t in zip(m.onnx_outputs, m.outputs):
            got = np.asarray(rep.values[t])
            assert got.shape == want[name].shape
            err = np.max(np.abs(got - want[name])) / np.max(np.abs(want[name]))
            assert err <= 1e-4, (name, err)


def _int8_tensors(m, rep, it):
    """Yield (name, chip value, LiteRT value) of every int8 tensor the program holds."""
    for d in it.get_tensor_details():
        if d["dtype"] != np.int8 or d["name"] not in m.tensors:
            continue
        t, nchw = m.tensors[d["name"]]
        got = np.asarray(rep.values[t])
        if nchw:
            got = got.transpose(0, 2, 3, 1)
        yield d["name"], got, it.get_tensor(d["index"])


@pytest.mark.parametrize("key", ["cnn_int8", "block_int8", "mlp_int8"])
def test_int8_models_equal_litert_reference_kernels_in_every_layer(models, key):
    _keras, path = models[key]
    m = import_tflite(path, kernels="reference")
    assert m.kernels == "reference"
    assert m.quantised
    chip = load_chip(EDGE)
    seen = set()
    for seed in (0, 1, 2):
        values = m.inputs(seed)
        rep = run(chip, m.program, values)
        it, want = litert_run(path, m, values)
        for name, got, ref in _int8_tensors(m, rep, it):
            seen.add(name)
            assert got.dtype == np.int64 and got.shape == ref.shape, name
            assert np.array_equal(got, ref), (name, int(np.abs(got - ref).max()),
                                              float(np.mean(got == ref)))
        for name, t in zip(m.onnx_outputs, m.outputs):  # the outputs too (dequantised ones)
            assert np.array_equal(np.asarray(rep.values[t]), want[name]), name
    ops = m.program.ops
    array_ops = [o for o in ops if isinstance(o, (Conv2d, MatMul))]
    assert array_ops and all(o.requant is not None for o in array_ops)
    assert len(seen) >= len(array_ops)  # every array op's output was compared


@pytest.mark.parametrize("key", ["cnn_int8", "block_int8", "mlp_int8"])
def test_int8_models_equal_litert_default_interpreter_in_every_layer(models, key):
    """kernels="default" (the default): every int8 tensor equals LiteRT's default interpreter
    (XNNPACK: float32 requantisation, nearest even), and the array ops carry that step."""
    _keras, path = models[key]
    m = import_tflite(path)
    assert m.quantised and m.kernels == "default"
    chip = load_chip(EDGE)
    seen = set()
    for seed in (0, 1, 2):
        values = m.inputs(seed)
        rep = run(chip, m.program, values)
        it, want = litert_run(path, m, values, None)
        for name, got, ref in _int8_tensors(m, rep, it):
            seen.add(name)
            assert got.shape == ref.shape, name
            assert np.array_equal(got, ref), (name, int(np.abs(got - ref).max()),
                                              float(np.mean(got == ref)))
        for name, t in zip(m.onnx_outputs, m.outputs):
            assert np.array_equal(np.asarray(rep.values[t]), want[name]), name
    array_ops = [o for o in m.program.ops if isinstance(o, (Conv2d, MatMul))]
    assert array_ops and all(o.requant.rounding == "fp32" and o.requant.scale
                             for o in array_ops)
    assert len(seen) >= len(array_ops)


def test_the_two_kernels_differ_where_measured(models):
    """The modes are not interchangeable: on the MobileNet-like block the reference program
    differs from the default interpreter somewhere (and the default program from BUILTIN_REF),
    so each equality test above can fail."""
    _keras, path = models["block_int8"]
    ref_m, def_m = import_tflite(path, kernels="reference"), import_tflite(path)
    chip = load_chip(EDGE)
    values = ref_m.inputs(0)
    for m, resolver in ((ref_m, None), (def_m, "BUILTIN_REF")):
        rep = run(chip, m.program, values)
        it, _ = litert_run(path, m, values, resolver)
        assert any(not np.array_equal(got, ref) for _n, got, ref in _int8_tensors(m, rep, it))


def test_unknown_kernels_is_one_line(models):
    with pytest.raises(WorkloadError, match="kernels: must be one of default, reference"):
        import_tflite(models["mlp_int8"][1], kernels="xnnpack")


def test_requantise_fp32_rounds_in_float32_to_nearest_even():
    """Requant rounding "fp32": float32(acc + bias) * float32(scale), ties to even, + zero
    point, clamped; the int32 -> float32 conversion rounds too (2**24 + 1 -> 2**24)."""
    rq = Requant((0,), (0,), (0,), 3, -128, 127, "fp32", (0.5,))
    acc = np.array([1, 3, 5, -1, -3, -5, 1000])
    assert requantise_fixed(acc, rq, 0).tolist() == [3, 5, 5, 3, 1, 1, 127]
    big = Requant((1,), (0,), (0,), 0, -(1 << 31), (1 << 31) - 1, "fp32", (1.0,))
    assert requantise_fixed(np.array([1 << 24]), big, 0).tolist() == [1 << 24]
    per_ch = Requant((0, 10), (0, 0), (0, 0), 0, -128, 127, "fp32", (0.25, 2.0))
    got = requantise_fixed(np.array([[6, 6], [-6, -6]]), per_ch, 1)
    assert got.tolist() == [[2, 32], [-2, 8]]


def _closed_form_macs(keras_model) -> list[int]:
    """Return the MACs of every Conv2D / DepthwiseConv2D / Dense layer from its shapes."""
    out = []
    for layer in keras_model.layers:
        if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D, L.Dense)):
            oshape = [d or 1 for d in layer.output.shape]  # an undefined batch: 1
            ishape = layer.input.shape
            if isinstance(layer, L.DepthwiseConv2D):
                kh, kw = layer.kernel_size
                out.append(math.prod(oshape) * kh * kw)
            elif isinstance(layer, L.Conv2D):
                kh, kw = layer.kernel_size
                out.append(math.prod(oshape) * ishape[-1] * kh * kw)
            else:
                out.append(math.prod(oshape) * ishape[-1])
    return out


@pytest.mark.parametrize("key", ["cnn", "cnn_int8", "block", "block_int8", "mlp_int8"])
def test_macs_equal_the_closed_form_count(models, key):
    keras_model, path = models[key]
    m = import_tflite(path)
    rep = run(load_chip(EDGE), m.program)  # timing only
    array = {o.name for o in m.program.ops if isinstance(o, (Conv2d, MatMul))}
    got = sorted(r.macs for r in rep.ops if r.name in array)
    assert got == sorted(_closed_form_macs(keras_model))
    assert sum(r.macs for r in rep.ops) == sum(got)  # vector ops count no MACs


def test_cnn_program_layout_and_free_input_permute(models):
    _keras, path = models["cnn"]
    m = import_tflite(path)
    p = m.program
    kinds = [(type(o).__name__, getattr(o, "kind", "")) for o in p.ops]
    assert kinds[0] == ("Layout", "permute")  # the NHWC input, as NCHW for the conv
    conv = next(o for o in p.ops if isinstance(o, Conv2d) and o.groups == 1)
    dw = next(o for o in p.ops if isinstance(o, Conv2d) and o.groups > 1)
    assert p.shapes[conv.inputs[1]] == (8, 3, 3, 3) and conv.padding == (1, 1)
    assert dw.groups == 8 and p.shapes[dw.inputs[1]] == (8, 1, 3, 3) and dw.stride == (2, 2)
    pad = next(o for o in p.ops if getattr(o, "kind", "") == "pad")  # SAME, stride 2: 0 / 1
    assert pad.attr("pads") == ((0, 0), (0, 0), (0, 1), (0, 1))
    rep = run(load_chip(EDGE, {"dtype": "fp32"}), p)
    first = rep.ops[0]
    assert first.name == p.ops[0].name and first.end_cycle == first.start_cycle  # free


def test_requantise_fixed_matches_gemmlowp_in_python_integers():
    """numerics.requantise_fixed against TFLite's MultiplyByQuantizedMultiplier written with
    Python integers (truncating C division, gemmlowp's nudges; and the single-rounding form)
    on random accumulators."""
    def srdhm(a, b):
        if a == b == -(1 << 31):
            return (1 << 31) - 1
        ab = a * b
        nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
        return int((ab + nudge) / (1 << 31)) if abs(ab + nudge) < (1 << 52) else \
            (abs(ab + nudge) >> 31) * (1 if ab + nudge >= 0 else -1)

    def rdbpot(x, e):
        mask = (1 << e) - 1
        rem = x & mask
        thr = (mask >> 1) + (1 if x < 0 else 0)
        return (x >> e) + (1 if rem > thr else 0)

    def mbqm(x, m, s):
        return rdbpot(srdhm(x * (1 << max(s, 0)), m), max(-s, 0))
    rng = np.random.default_rng(0)
    for _ in range(40):
        real = float(rng.uniform(1e-5, 2.0))
        m, s = quantize_multiplier(real)
        assert (1 << 30) <= m < (1 << 31) and abs(m * 2.0 ** (s - 31) / real - 1) < 1e-9
        acc = rng.integers(-(1 << 20), 1 << 20, size=64)
        bias = int(rng.integers(-5000, 5000))
        zp = int(rng.integers(-128, 128))
        rq = Requant((bias,), (m,), (s,), zp, -128, 127)
        got = requantise_fixed(acc.reshape(8, 8), rq, 1).reshape(-1)
        want = [min(127, max(-128, mbqm(int(a) + bias, m, s) + zp)) for a in acc]
        assert got.tolist() == want
        single = Requant((bias,), (m,), (s,), zp, -128, 127, "single")
        got = requantise_fixed(acc, single, 0)
        total = 31 - s
        want = [min(127, max(-128, (((int(a) + bias) * m + (1 << (total - 1))) >> total) + zp))
                for a in acc]
        assert got.tolist() == want


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_cli_run_and_validate(models, tmp_path):
    _k, fpath = models["block"]
    code, out, err = cli("run", EDGE, "--set", "dtype=fp32", "--tflite", fpath, "--functional")
    assert code == 0 and "tflite:block.tflite (float" in out, err
    _k, qpath = models["block_int8"]
    code, out, err = cli("run", EDGE, "--tflite", qpath, "--json")
    assert code == 0 and '"quantised": true' in out, err
    code, out, err = cli("validate", EDGE, "--tflite", qpath, "--seed", "4")
    assert code == 0 and out.strip().endswith("OK") and "100.00% exact" in out, out + err
    assert "against LiteRT's default kernels" in out
    code, out, err = cli("validate", EDGE, "--tflite", qpath, "--seed", "4",
                         "--tflite-kernels", "reference")
    assert code == 0 and out.strip().endswith("OK") and "100.00% exact" in out, out + err
    assert "against LiteRT's reference kernels" in out
    code, out, err = cli("validate", EDGE, "--set", "dtype=fp32", "--tflite", fpath)
    assert code == 0 and out.strip().endswith("OK"), out + err
    _k, cpath = models["cnn_int8"]  # int8 in and out: the saved outputs are int8 too
    saved = tmp_path / "out.npz"
    code, out, err = cli("run", EDGE, "--tflite", cpath, "--functional", "--save-outputs",
                         str(saved))
    assert code == 0, err
    m = import_tflite(cpath)
    _it, want = litert_run(cpath, m, m.inputs(0), None)
    with np.load(saved) as got:
        assert set(got) == set(want)
        for name, ref in want.items():
            assert got[name].dtype == np.int8 and np.array_equal(got[name], ref)


def test_int8_model_values_need_an_int8_chip(models):
    _k, qpath = models["block_int8"]
    code, out, err = cli("run", str(CONFIGS / "tpu-v4-mxu.yaml"), "--tflite", qpath,
                         "--functional")
    assert code == 2 and out == "" and err.count("\n") == 1 and "int8 chip" in err
    code, out, err = cli("run", str(CONFIGS / "tpu-v4-mxu.yaml"), "--tflite", qpath)
    assert code == 0, err  # its timing runs on any chip


# ----------------------------------------------------------------------------- bad files

def _flatbuffer_model(op_code: int, custom: str | None = None, signature=None) -> bytes:
    """Return a minimal .tflite (schema v3: one subgraph, one operator of builtin ``op_code``
    or the custom op ``custom``, float32 tensors (1, 4) in and out), written with the
    flatbuffers builder (the tflite package only reads)."""
    import flatbuffers
    b = flatbuffers.Builder(256)

    def vec_int(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependInt32(int(v))
        return b.EndVector()

    def vec_off(offs):
        b.StartVector(4, len(offs), 4)
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    b.StartObject(1)  # Buffer (empty: the sentinel buffer 0)
    buf0 = b.EndObject()
    tensors = []
    for name in ("x", "y"):
        nm = b.CreateString(name)
        shape = vec_int([1, 4])
        sig = vec_int(signature) if signature is not None else None
        b.StartObject(8)
        b.PrependUOffsetTRelativeSlot(0, shape, 0)
        b.PrependInt8Slot(1, 0, 0)  # FLOAT32
        b.PrependUint32Slot(2, 0, 0)
        b.PrependUOffsetTRelativeSlot(3, nm, 0)
        if sig is not None:
            b.PrependUOffsetTRelativeSlot(7, sig, 0)
        tensors.append(b.EndObject())
    ins, outs = vec_int([0]), vec_int([1])
    b.StartObject(6)  # Operator
    b.PrependUint32Slot(0, 0, 0)
    b.PrependUOffsetTRelativeSlot(1, ins, 0)
    b.PrependUOffsetTRelativeSlot(2, outs, 0)
    op = b.EndObject()
    tvec, ovec = vec_off(tensors), vec_off([op])
    gin, gout = vec_int([0]), vec_int([1])
    b.StartObject(5)  # SubGraph
    b.PrependUOffsetTRelativeSlot(0, tvec, 0)
    b.PrependUOffsetTRelativeSlot(1, gin, 0)
    b.PrependUOffsetTRelativeSlot(2, gout, 0)
    b.PrependUOffsetTRelativeSlot(3, ovec, 0)
    sg = b.EndObject()
    cc = b.CreateString(custom) if custom is not None else None
    b.StartObject(4)  # OperatorCode
    b.PrependInt8Slot(0, min(op_code, 127), 0)
    if cc is not None:
        b.PrependUOffsetTRelativeSlot(1, cc, 0)
    b.PrependInt32Slot(2, 1, 1)
    b.PrependInt32Slot(3, op_code, 0)
    code = b.EndObject()
    codes, sgs, bufs = vec_off([code]), vec_off([sg]), vec_off([buf0])
    b.StartObject(5)  # Model
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, codes, 0)
    b.PrependUOffsetTRelativeSlot(2, sgs, 0)
    b.PrependUOffsetTRelativeSlot(4, bufs, 0)
    model = b.EndObject()
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def _one_line_exit_2(path, *words):
    code, out, err = cli("run", EDGE, "--tflite", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1, (code, out, err)
    assert "Traceback" not in err and str(path) in err
    for w in words:
        assert w in err, (w, err)
    return err


def test_the_builder_writes_a_model_the_importer_reads(tmp_path):
    path = tmp_path / "relu.tflite"
    path.write_bytes(_flatbuffer_model(tflite.BuiltinOperator.RELU))
    m = import_tflite(path)
    assert [o.kind for o in m.program.ops] == ["relu"] and m.data["x"][0] == (1, 4)


@pytest.mark.parametrize("content", [b"", b"\x00" * 3, b"random bytes, not a model at all", None])
def test_random_or_truncated_bytes_are_one_line(tmp_path, models, content):
    path = tmp_path / "bad.tflite"
    if content is None:  # a real model cut short
        data = open(models["cnn"][1], "rb").read()
        content = data[: len(data) // 3]
    path.write_bytes(content)
    _one_line_exit_2(path)


def test_random_bytes_after_the_identifier_are_one_line(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(20):
        path = tmp_path / f"noise{i}.tflite"
        path.write_bytes(rng.integers(0, 256, 8).astype(np.uint8).tobytes()[:4] + b"TFL3"
                         + rng.integers(0, 256, 400).astype(np.uint8).tobytes())
        _one_line_exit_2(path)


def test_unknown_builtin_names_the_operator(tmp_path):
    path = tmp_path / "cumsum.tflite"
    path.write_bytes(_flatbuffer_model(tflite.BuiltinOperator.CUMSUM))
    _one_line_exit_2(path, "CUMSUM", "not supported", "op 0")


def test_custom_and_edgetpu_ops(tmp_path):
    path = tmp_path / "custom.tflite"
    path.write_bytes(_flatbuffer_model(tflite.BuiltinOperator.CUSTOM, custom="MyOp"))
    _one_line_exit_2(path, "custom operator 'MyOp'")
    path = tmp_path / "model_edgetpu.tflite"
    path.write_bytes(_flatbuffer_model(tflite.BuiltinOperator.CUSTOM,
                                       custom="edgetpu-custom-op"))
    _one_line_exit_2(path, "edgetpu-custom-op", "uncompiled")


def test_dynamic_shape_is_one_line(tmp_path):
    path = tmp_path / "dyn.tflite"
    path.write_bytes(_flatbuffer_model(tflite.BuiltinOperator.RELU, signature=[-1, 4]))
    _one_line_exit_2(path, "dynamic shape", "tensor x")


def test_a_converted_model_without_a_batch_size_is_refused(tmp_path):
    x = tf.keras.Input((8, 8, 3))
    model = tf.keras.Model(x, L.Conv2D(4, 3)(x))
    path = convert(model, tmp_path / "nobatch.tflite")
    _one_line_exit_2(path, "dynamic shape")


def test_missing_file_is_one_line(tmp_path):
    _one_line_exit_2(tmp_path / "nosuch.tflite", "no such file")


def test_fp16_weights_fold_and_match_litert(tmp_path, models):
    """float16 weights (DEQUANTIZE of constants) unpack at import: the chip computes what
    LiteRT does."""
    keras_model = models["cnn"][0]
    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    path = tmp_path / "f16.tflite"
    path.write_bytes(conv.convert())
    m = import_tflite(path)
    assert not any(getattr(o, "kind", "") == "dequantize" for o in m.program.ops)
    values = m.inputs(0)
    rep = run(chip_fp32(), m.program, values)
    _it, want = litert_run(str(path), m, values)
    (name, ref), = want.items()
    got = np.asarray(rep.values[m.outputs[0]])
    assert np.max(np.abs(got - ref)) / np.max(np.abs(ref)) <= 1e-4


def test_dynamic_range_quantised_model_is_refused(tmp_path, models):
    conv = tf.lite.TFLiteConverter.from_keras_model(models["mlp_int8"][0])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: int8 weights only
    path = tmp_path / "hybrid.tflite"
    path.write_bytes(conv.convert())
    _one_line_exit_2(path, "FULLY_CONNECTED", "dynamic-range")


@pytest.mark.parametrize("base", ["cnn", "block"])
def test_int8_and_float_files_put_the_same_gemms_on_the_array(models, base):
    """The int8 file of a network and its float file give the array the same GEMMs (shape,
    count, folds) with the same compute cycles on the same chip: quantisation changes values
    and the output step, not the mapping."""
    chip = load_chip(EDGE)
    rows = []
    for key in (base, base + "_int8"):
        m = import_tflite(models[key][1])
        rep = run(chip, m.program)
        array = {o.name for o in m.program.ops if isinstance(o, (Conv2d, MatMul))}
        rows.append([(r.shape, r.gemms, r.folds, r.macs, r.compute_cycles)
                     for r in rep.ops if r.name in array])
    assert rows[0] and rows[0] == rows[1]


def test_missing_packages_are_one_line(monkeypatch, models):
    import sys
    path = models["cnn"][1]
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    code, out, err = cli("validate", EDGE, "--set", "dtype=fp32", "--tflite", path)
    assert code == 2 and err.count("\n") == 1 and "pip install ai-edge-litert" in err
    monkeypatch.setitem(sys.modules, "tflite", None)
    code, out, err = cli("run", EDGE, "--tflite", path)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "pip install 'systolic-sim[tflite]'" in err


def test_mobilenet_v2_int8_equals_litert_in_every_layer(tmp_path):
    """Keras' MobileNetV2 (alpha 0.35, 96x96, random weights: nothing downloaded), full-integer
    int8: all 0.57 M int8 values of its layers equal LiteRT's reference kernels (imported with
    kernels="reference") and its default interpreter (kernels="default"), and its MACs equal
    the closed form of its Keras layers."""
    base = tf.keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35,
                                             weights=None, classes=10)
    _randomise(base, 5)
    x = tf.keras.Input((96, 96, 3), batch_size=1)
    path = convert(tf.keras.Model(x, base(x)), tmp_path / "mnv2.tflite", int8=True,
                   int8_io=True)
    chip = load_chip(EDGE)
    for kernels, resolver in (("reference", "BUILTIN_REF"), ("default", None)):
        m = import_tflite(path, kernels=kernels)
        values = m.inputs(0)
        rep = run(chip, m.program, values)
        it, _want = litert_run(path, m, values, resolver)
        compared = 0
        for name, got, ref in _int8_tensors(m, rep, it):
            assert np.array_equal(got, ref), (kernels, name)
            compared += ref.size
        assert compared > 500_000
    array = {o.name for o in m.program.ops if isinstance(o, (Conv2d, MatMul))}
    got = sorted(r.macs for r in rep.ops if r.name in array)
    assert got == sorted(_closed_form_macs(base))


def test_quantize_pad_and_requantize_values():
    """The vector kinds the int8 road uses: quantize rounds halves away from zero (TFLite's
    std::round) and clamps; dequantize inverts it; pad and max pool keep integers as integers;
    requantize is requantise_fixed on integer sums."""
    from simulator.core.vector import elementwise_values, vector_op_values
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 1000.0], np.float32)
    q = elementwise_values("quantize", [x], 0.0, (1.0, 3.0, -128.0, 127.0))
    assert q.dtype == np.int64 and q.tolist() == [0, 1, 2, 4, 5, 6, 127]
    back = elementwise_values("dequantize", [q], 0.0, (0.5, 3.0))
    assert back.dtype == np.float32 and back.tolist() == [-1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 62.0]
    ints = np.arange(12, dtype=np.int64).reshape(1, 1, 3, 4) - 6
    padded = vector_op_values("pad", [ints], {"pads": ((0, 0), (0, 0), (0, 1), (1, 0)),
                                              "value": -7.0}, 8)
    assert padded.dtype == np.int64 and padded.shape == (1, 1, 4, 5)
    assert padded[0, 0, 3].tolist() == [-7] * 5 and padded[0, 0, 0, 1:].tolist() == [-6, -5, -4, -3]
    pooled = vector_op_values("maxpool2d", [ints], {"kernel": (1, 2), "stride": (1, 2),
                                                    "padding": (0, 0)}, 8)
    assert pooled.dtype == np.int64 and pooled[0, 0, 0].tolist() == [-5, -3]
    m, s = quantize_multiplier(0.3)
    sums = np.array([[100, -100, 7]], np.float32)
    got = elementwise_values("requantize", [sums], 0.0, (5, m, s, -3, -128, 127))
    want = requantise_fixed(np.array([105, -95, 12]), Requant((0,), (m,), (s,), -3), 0)
    assert got.dtype == np.int64 and got.reshape(-1).tolist() == want.tolist()


def test_compare_and_sweep_take_a_tflite_model(models, tmp_path):
    """`compare --tflite F` runs the model on every chip; a sweep workload `tflite: F` gives
    every point the cycles `run --tflite F` gives on that chip."""
    from simulator import load_chip
    from simulator.core.engine import run as run_program
    from simulator.tools.compare import compare_chips
    _k, qpath = models["block_int8"]
    tpu = str(EDGE).replace("edge-tpu", "tpu-v1")
    rows, what, per = compare_chips([EDGE, tpu], tflite=qpath)
    assert "block_int8.tflite" in what and per == "samples/s"
    prog = import_tflite(qpath).program
    for row, cfg in zip(rows, (EDGE, tpu)):
        assert row["cycles"] == run_program(load_chip(cfg), prog).total_cycles
    code, out, err = cli("compare", EDGE, tpu, "--tflite", qpath)
    assert code == 0 and "one forward pass of block_int8.tflite" in out, err
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"base: {EDGE}\ngrid:\n  array.rows: [32, 64]\nworkloads:\n"
                    f"  - tflite: {qpath}\n")
    out_csv = tmp_path / "r.csv"
    code, out, err = cli("sweep", str(spec), "--out", str(out_csv), "--executor", "serial")
    assert code == 0, err
    import csv
    with open(out_csv) as f:
        got = {int(r["array.rows"]): int(r["total_cycles"]) for r in csv.DictReader(f)}
    for rows_ in (32, 64):
        chip = load_chip(EDGE, {"array.rows": rows_})
        assert got[rows_] == run_program(chip, prog).total_cycles
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"base: {EDGE}\ngrid:\n  array.rows: [32]\nworkloads:\n"
                   f"  - tflite: {tmp_path / 'missing.tflite'}\n")
    code, out, err = cli("sweep", str(bad), "--out", str(tmp_path / "b.csv"))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err


# --------------------------------------------------------------------------- more operators

def _op_model(kind: str):
    """A small Keras model around one TFLite operator (a convolution in front, so the data
    movement also meets NCHW-held tensors)."""
    x = tf.keras.Input((6, 8, 4), batch_size=2)
    y = L.Conv2D(6, 3, padding="same")(x)
    if kind == "TRANSPOSE":
        y = L.Lambda(lambda t: tf.transpose(t, (0, 3, 1, 2)))(y)
        y = L.Lambda(lambda t: tf.transpose(t, (2, 1, 0, 3)))(y)
    elif kind == "STRIDED_SLICE":
        a = L.Lambda(lambda t: t[:, 1:5:2, ::3, 1:])(y)
        b = L.Lambda(lambda t: t[:, -2, 1:7, :4])(y)
        return tf.keras.Model(x, [a, b])
    elif kind == "SPLIT":
        a, b, c = L.Lambda(lambda t: tf.split(t, 3, axis=3))(y)
        d, e = L.Lambda(lambda t: tf.split(t, [2, 6], axis=2))(y)
        return tf.keras.Model(x, [L.Add()([a, c]), b, L.Concatenate()([d, d]), e])
    elif kind == "GATHER":
        a = L.Lambda(lambda t: tf.gather(t, [4, 0, 0, 2], axis=3))(y)
        b = L.Lambda(lambda t: tf.gather(t, [[1, 3], [5, 0]], axis=1))(y)
        return tf.keras.Model(x, [a, b])
    elif kind == "HARD_SWISH":
        y = L.Lambda(lambda t: t * tf.nn.relu6(t + 3.0) / 6.0)(y)
    elif kind == "RESIZE_NEAREST_NEIGHBOR":
        a = L.Lambda(lambda t: tf.image.resize(t, (12, 24), method="nearest"))(y)
        b = L.Lambda(lambda t: tf.image.resize(t, (9, 5), method="nearest"))(y)
        c = L.Lambda(lambda t: tf.compat.v1.image.resize_nearest_neighbor(
            t, (11, 13), align_corners=True))(y)
        return tf.keras.Model(x, [a, b, c])
    elif kind == "BATCH_MATMUL":
        r = L.Reshape((6, 8 * 6))(y)
        a = L.Lambda(lambda t: tf.matmul(t, t, transpose_b=True))(r)
        b = L.Lambda(lambda t: tf.matmul(t[:, :, :6], t[:, :, 6:12]))(r)
        return tf.keras.Model(x, [a, b])
    return tf.keras.Model(x, y)


def _ops_in(path):
    it = litert.Interpreter(model_path=str(path))
    return {d["op_name"] for d in it._get_ops_details()}


@pytest.mark.parametrize("kind", ["TRANSPOSE", "STRIDED_SLICE", "SPLIT", "GATHER", "HARD_SWISH",
                                  "RESIZE_NEAREST_NEIGHBOR", "BATCH_MATMUL"])
def test_more_operators_match_litert_float(tmp_path, kind):
    keras_model = _op_model(kind)
    _randomise(keras_model, 5)
    path = convert(keras_model, tmp_path / f"{kind}.tflite")
    want_ops = {"SPLIT": {"SPLIT", "SPLIT_V"}}.get(kind, {kind})
    assert want_ops <= _ops_in(path)
    m = import_tflite(path)
    for seed in (0, 1):
        values = m.inputs(seed)
        rep = run(chip_fp32(), m.program, values)
        _it, want = litert_run(path, m, values, None)
        assert len(want) == len(m.outputs)
        for name, t in zip(m.onnx_outputs, m.outputs):
            got = np.asarray(rep.values[t])
            assert got.shape == want[name].shape, name
            err = np.max(np.abs(got - want[name])) / np.max(np.abs(want[name]))
            assert err <= 1e-4, (name, err)


@pytest.mark.parametrize("kind", ["TRANSPOSE", "STRIDED_SLICE", "SPLIT", "GATHER",
                                  "RESIZE_NEAREST_NEIGHBOR"])
def test_more_data_movement_is_exact_in_int8(tmp_path, kind):
    keras_model = _op_model(kind)
    _randomise(keras_model, 6)
    path = convert(keras_model, tmp_path / f"{kind}_int8.tflite", int8=True, int8_io=True)
    want_ops = {"SPLIT": {"SPLIT", "SPLIT_V"}}.get(kind, {kind})
    assert want_ops <= _ops_in(path)
    for kernels, resolver in (("default", None), ("reference", "BUILTIN_REF")):
        m = import_tflite(path, kernels=kernels)
        assert m.quantised
        chip = load_chip(EDGE)
        for seed in (0, 1):
            values = m.inputs(seed)
            rep = run(chip, m.program, values)
            it, want = litert_run(path, m, values, resolver)
            for name, got, ref in _int8_tensors(m, rep, it):
                assert got.shape == ref.shape and np.array_equal(got, ref), name
            for name, t in zip(m.onnx_outputs, m.outputs):
                assert np.array_equal(np.asarray(rep.values[t]), want[name]), name


@pytest.mark.parametrize("kind", ["HARD_SWISH", "BATCH_MATMUL"])
def test_int8_hard_swish_and_batch_matmul_are_one_line(tmp_path, kind):
    keras_model = _op_model(kind)
    _randomise(keras_model, 7)
    path = convert(keras_model, tmp_path / f"{kind}_int8.tflite", int8=True, int8_io=True)
    assert kind in _ops_in(path)
    _one_line_exit_2(path, kind, "int8", "not supported")


def test_int8_data_movement_refuses_a_change_of_scale():
    """The integers move unchanged only when input and output share scale and zero point."""
    from simulator.core.program import Program
    from simulator.frontends.tflite_import import QParams, _Ctx, _same_q, _Tensor, _Unsupported

    def tensor(i, s, z):
        return _Tensor(i, f"t{i}", (1, 4), None, np.dtype(np.int8),
                       QParams(np.array([s], np.float32), np.array([z], np.int64)), None)
    for out, refused in (((0.5, 3), False), ((0.25, 3), True), ((0.5, 2), True)):
        ctx = _Ctx("m.tflite", Program("p"), [tensor(0, 0.5, 3), tensor(1, *out)])
        ctx.inputs, ctx.outputs = [0], [1]
        if refused:
            with pytest.raises(_Unsupported, match="int8 TRANSPOSE that changes the scale"):
                _same_q(ctx, "TRANSPOSE")
        else:
            _same_q(ctx, "TRANSPOSE")


@pytest.mark.parametrize("argv", [
    ["run", EDGE, "--tflite", "/dev/zero"],
    ["run", EDGE, "--tflite", ""],
    ["compare", EDGE, "--tflite", ""],
    ["validate", EDGE, "--tflite", " "],
    ["run", EDGE, "--onnx", ""],
])
def test_a_device_or_an_empty_path_is_one_line(argv, monkeypatch):
    """/dev/zero is refused before a byte is read (it used to be read whole, without end);
    an empty workload path is refused instead of falling through to another road."""
    code, out, err = cli(*argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert ("character device" in err) if argv[3] == "/dev/zero" else ("must not be empty" in err)
