"""The ONNX importer: the zoo's networks written in PyTorch (tests/torch_zoo.py), exported with
torch.onnx.export into tmp_path and imported, give the zoo builder's ops, shapes and cycles, and
onnxruntime's values; single operators against onnxruntime over random shapes; bad files and
shapes are one line with exit status 2.

Exporter: ``dynamo=True`` (torch.export; offline, needs onnxscript, which the test extra has).
It keeps Gelu, LayerNormalization and the attention's matmuls as single nodes; the older
TorchScript exporter (``dynamo=False``) also works offline but decomposes GELU at opset 18 and
folds BatchNorm into the convolutions in eval mode, so its graphs are checked for values only.
ResNet-18 is exported with ``optimize=False`` because the onnxscript optimizer also folds
BatchNorm into the convolutions (also imported below: values only).
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from conftest import CONFIGS, ROOT  # noqa: E402
from simulator import load_chip  # noqa: E402
from simulator.tools.cli import main  # noqa: E402
from simulator.core.engine import run  # noqa: E402
from simulator.frontends.onnx_import import import_onnx  # noqa: E402
from simulator.kernels.zoo import build_zoo  # noqa: E402
from simulator.core.program import Layout  # noqa: E402
from test_zoo import SMALL  # noqa: E402

import torch_zoo as TZ  # noqa: E402

FP32 = load_chip(CONFIGS / "tpu-v4-mxu.yaml", {"dtype": "fp32"})
NAMES = ["small-cnn", "resnet18", "tiny-transformer", "bert-base", "gpt2-small", "vit-b16",
         "lstm"]
OPTIMIZE = {"resnet18": False, "vit-b16": False}  # see the module doc (BN; cls expand folded)


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def export(module, args, path, dynamo=True, optimize=True, **kw):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(module, args, str(path), dynamo=True, optimize=optimize, **kw)
        else:
            torch.onnx.export(module, args, str(path), dynamo=False, opset_version=18, **kw)
    return str(path)


@pytest.fixture(scope="module")
def zoo_onnx(tmp_path_factory):
    """Export each small zoo network once: name -> (zoo model, onnx path, data inputs)."""
    cache = {}

    def get(name, image=None, batch=2, optimize=None):
        key = (name, image, batch, optimize)
        if key not in cache:
            kw = dict(SMALL[name])
            if image is not None:
                kw["image"] = image
            m = build_zoo(f"zoo:{name}", batch=batch, **kw)
            mod = TZ.build_module(name, kw.get("cfg"), image=kw.get("image"))
            TZ.copy_zoo_params(mod, name, m.net.init_params(3))
            args = TZ.torch_inputs(name, m.net.make_inputs(3))
            opt = OPTIMIZE.get(name, True) if optimize is None else optimize
            path = export(mod, args, tmp_path_factory.mktemp("onnx") / f"{name}.onnx",
                          optimize=opt)
            cache[key] = (m, path, [a.numpy() for a in args])
        return cache[key]
    return get


def costed(program, report):
    """(op type, kind, input shapes, output shape, cycles) of every op that costs time."""
    rows = []
    for op, r in zip(program.ops, report.ops):
        if isinstance(op, Layout) and r.total_cycles == 0:
            continue
        rows.append((type(op).__name__, getattr(op, "kind", ""),
                     tuple(program.shapes[t] for t in op.inputs[:1]),
                     program.shapes[op.output], r.total_cycles))
    return rows


@pytest.mark.parametrize("name", NAMES)
def test_zoo_network_from_onnx_has_the_zoo_ops_shapes_cycles_and_onnxruntime_values(
        zoo_onnx, name):
    m, path, data = zoo_onnx(name)
    im = import_onnx(path)
    zoo_rows = costed(m.program, run(FP32, m.program))
    onnx_rows = costed(im.program, run(FP32, im.program))
    assert onnx_rows == zoo_rows
    if name == "gpt2-small":  # ops are named by module path, grouped by block as the zoo's
        assert {"h0", "h1"} <= {op.name.partition(".")[0] for op in im.program.ops}
    feeds = dict(zip(im.data, data))
    got = run(FP32, im.program, im.inputs(0, feeds)).values[im.output]
    ref = ort.InferenceSession(path).run(None, feeds)[0]
    assert got.shape == ref.shape
    assert rel(got, ref) < 1e-4
    assert rel(got, m.numpy(m.inputs(3))) < 1e-4  # and the zoo's own numpy twin


def test_resnet18_from_onnx_per_layer_compute_cycles_equal_the_zoo_on_scalesim_compat(
        tmp_path):
    chip = load_chip(CONFIGS / "scalesim-compat.yaml")
    m = build_zoo("zoo:resnet18")  # batch 1, 224 x 224
    mod = TZ.build_module("resnet18")
    path = export(mod, (torch.zeros(1, 3, 224, 224),), tmp_path / "r18.onnx", optimize=False)
    im = import_onnx(path)
    zoo = [(r.kind, r.shape, r.compute_cycles) for r in run(chip, m.program).ops
           if r.unit == "array"]
    got = [(r.kind, r.shape, r.compute_cycles) for r in run(chip, im.program).ops
           if r.unit == "array"]
    assert len(got) == 21 and got == zoo  # 20 convolutions and the fc


def test_bn_folded_export_and_torchscript_exporter_import_with_onnxruntime_values(tmp_path):
    """The onnxscript optimizer folds BatchNorm into biased convolutions; the TorchScript
    exporter decomposes GELU into Mul/Tanh/Pow chains: both import and compute the same."""
    torch.manual_seed(0)
    cases = [("resnet18", dict(image=32), True, True),
             ("small-cnn", dict(image=12), False, False),
             ("gpt2-small", {}, False, False)]
    for name, extra, dynamo, optimize in cases:
        kw = {**SMALL[name], **extra}
        m = build_zoo(f"zoo:{name}", batch=2, **kw)
        mod = TZ.build_module(name, kw.get("cfg"))
        TZ.copy_zoo_params(mod, name, m.net.init_params(1))
        args = TZ.torch_inputs(name, m.net.make_inputs(1))
        path = export(mod, args, tmp_path / f"{name}-{dynamo}.onnx", dynamo, optimize)
        im = import_onnx(path)
        kinds = {getattr(op, "kind", "") for op in im.program.ops}
        if name == "resnet18":
            assert "batchnorm" not in kinds  # really folded: bias adds instead
        feeds = dict(zip(im.data, [a.numpy() for a in args]))
        got = run(FP32, im.program, im.inputs(0, feeds)).values[im.output]
        ref = ort.InferenceSession(path).run(None, feeds)[0]
        assert rel(got, ref) < 1e-4, name


# --------------------------------------------------------------------------- single operators

def graph(nodes, inputs, outputs, inits=(), opset=18):
    """Return a serialised ONNX model of ``nodes`` (inputs/outputs: (name, shape))."""
    h = onnx.helper
    g = h.make_graph(nodes, "g",
                     [h.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in inputs],
                     [h.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in outputs],
                     initializer=[onnx.numpy_helper.from_array(v, n) for n, v in inits])
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def check_against_ort(model, tmp_path, feeds, tol=1e-5):
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    im = import_onnx(path)
    got = run(FP32, im.program, im.inputs(0, feeds)).values[im.output]
    ref = ort.InferenceSession(str(path)).run(None, feeds)[0]
    assert got.shape == ref.shape
    assert np.allclose(got, ref, rtol=tol, atol=tol), np.abs(got - ref).max()
    return im


UNARY = ["Relu", "Sigmoid", "Tanh", "Exp", "Erf", "Sqrt", "Gelu", "Softmax", "LogSoftmax",
         "Reciprocal"]
BINARY = ["Add", "Sub", "Mul", "Div", "Max", "Min"]
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(UNARY + BINARY + ["Pow2", "Pow3", "ScalarMul", "ScalarDiv"]),
       shape=shapes, seed=st.integers(0, 2**16))
def test_elementwise_operators_equal_onnxruntime(op, shape, seed, tmp_path_factory):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    if op in ("Sqrt", "Reciprocal"):
        x = np.abs(x) + np.float32(0.5)
    h = onnx.helper
    inits, feeds = [], {"x": x}
    if op in BINARY:
        bshape = shape[rng.integers(0, len(shape)):]  # broadcasts against x
        y = rng.standard_normal(bshape).astype(np.float32)
        if op == "Div":
            y = np.abs(y) + np.float32(0.5)
        node = h.make_node(op, ["x", "y"], ["out"])
        feeds["y"] = y
        inputs = [("x", shape), ("y", bshape)]
    elif op.startswith("Pow") or op.startswith("Scalar"):
        c = {"Pow2": 2.0, "Pow3": 3.0, "ScalarMul": 0.37, "ScalarDiv": 2.83}[op]
        inits = [("c", np.array(c, np.float32))]
        onnx_op = {"Pow2": "Pow", "Pow3": "Pow", "ScalarMul": "Mul", "ScalarDiv": "Div"}[op]
        node = h.make_node(onnx_op, ["x", "c"], ["out"])
        inputs = [("x", shape)]
    else:
        node = h.make_node(op, ["x"], ["out"], **({"axis": -1} if op == "Softmax" else {}))
        inputs = [("x", shape)]
    opset = 20 if op == "Gelu" else 18
    model = graph([node], inputs, [("out", None)], inits, opset)
    check_against_ort(model, tmp_path_factory.mktemp("op"), feeds, tol=2e-5)


def test_layout_reduce_pool_gather_where_trilu_concat_slice_equal_onnxruntime(tmp_path):
    h = onnx.helper
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    table = rng.standard_normal((7, 6)).astype(np.float32)
    nodes = [
        h.make_node("AveragePool", ["x"], ["ap"], kernel_shape=[3, 3], strides=[1, 1],
                    pads=[1, 1, 1, 1], count_include_pad=1),
        h.make_node("MaxPool", ["ap"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),  # 2x4x3x3
        h.make_node("Constant", [], ["perm_axes"], value_ints=[2, 3]),
        h.make_node("ReduceMean", ["x", "perm_axes"], ["rm"], keepdims=1),  # 2x4x1x1
        h.make_node("Sub", ["mp", "rm"], ["d"]),
        h.make_node("Transpose", ["d"], ["t"], perm=[0, 2, 3, 1]),  # 2x3x3x4
        h.make_node("Shape", ["t"], ["sh"]),
        h.make_node("Constant", [], ["i0"], value_ints=[0]),
        h.make_node("Gather", ["sh", "i0"], ["b"], axis=0),
        h.make_node("Constant", [], ["m1"], value_ints=[-1, 6]),
        h.make_node("Concat", ["b", "m1"], ["newshape"], axis=0),  # [2, -1, 6]
        h.make_node("Reshape", ["t", "newshape"], ["r"]),  # 2x6x6
        h.make_node("Trilu", ["r"], ["tri"], upper=0),
        h.make_node("ConstantOfShape", ["sh6"], ["ones"],
                    value=onnx.numpy_helper.from_array(np.ones(1, np.float32))),
        h.make_node("Trilu", ["ones"], ["causal"], upper=1),
        h.make_node("Cast", ["causal"], ["cb"], to=onnx.TensorProto.BOOL),
        h.make_node("Constant", [], ["big"], value_float=-5.0),
        h.make_node("Where", ["cb", "big", "tri"], ["w"]),
        h.make_node("Gather", ["table", "ids"], ["emb"], axis=0),  # 2x6x6 from ids 2x6
        h.make_node("Concat", ["w", "emb"], ["cat"], axis=1),  # 2x12x6
        h.make_node("Slice", ["cat", "st", "en", "ax"], ["sl"]),  # [:, 1:11, :]
        h.make_node("Split", ["sl"], ["s0", "s1"], axis=1, num_outputs=2),
        h.make_node("Mul", ["s0", "s1"], ["mm"]),
        h.make_node("ReduceSum", ["mm", "ax2"], ["rs"], keepdims=0),
        h.make_node("Erf", ["rs"], ["out"]),
    ]
    inits = [("table", table), ("sh6", np.array([6, 6], np.int64)),
             ("st", np.array([1], np.int64)), ("en", np.array([11], np.int64)),
             ("ax", np.array([1], np.int64)), ("ax2", np.array([2], np.int64))]
    hh = onnx.helper
    g = hh.make_graph(nodes, "g", [hh.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                             (2, 4, 6, 6)),
                                   hh.make_tensor_value_info("ids", onnx.TensorProto.INT64,
                                                             (2, 6))],
                      [hh.make_tensor_value_info("out", onnx.TensorProto.FLOAT, None)],
                      initializer=[onnx.numpy_helper.from_array(v, n) for n, v in inits])
    model = hh.make_model(g, opset_imports=[hh.make_opsetid("", 18)])
    ids = rng.integers(0, 7, size=(2, 6)).astype(np.int64)
    im = check_against_ort(model, tmp_path, {"x": x, "ids": ids})
    kinds = [getattr(op, "kind", "") for op in im.program.ops]
    assert "gather" in kinds and "avgpool2d" in kinds and "maxpool2d" in kinds
    # the shape arithmetic (Shape, Gather, Concat, ConstantOfShape, Trilu of ones) costs nothing
    folded = {"Shape_6", "Gather_8", "Concat_10", "ConstantOfShape_13", "Trilu_14", "Cast_15"}
    assert not folded & {op.name.split(".")[0] for op in im.program.ops}
    assert {"Gather_18", "Concat_19", "Trilu_12", "Where_17"} <= {op.name for op in im.program.ops}


# --------------------------------------------------------------------------- errors and CLI

def cli(*argv):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


CFG = str(CONFIGS / "tpu-v4-mxu.yaml")


def test_unsupported_operator_is_one_line_naming_node_operator_and_file(tmp_path):
    h = onnx.helper
    model = graph([h.make_node("Relu", ["x"], ["a"]),
                   h.make_node("Det", ["a"], ["out"], name="the_det")],
                  [("x", (2, 3, 3))], [("out", (2,))])
    path = tmp_path / "det.onnx"
    onnx.save(model, str(path))
    code, out, err = cli("run", CFG, "--onnx", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert str(path) in err and "the_det" in err and "Det" in err


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all\n", None])
def test_truncated_or_non_onnx_file_is_one_line(tmp_path, content):
    path = tmp_path / "bad.onnx"
    if content is None:  # a real model cut in half
        model = graph([onnx.helper.make_node("Relu", ["x"], ["out"])], [("x", (2, 3))],
                      [("out", (2, 3))], [("w", np.ones((64, 64), np.float32))])
        data = model.SerializeToString()
        content = data[:len(data) // 2]
    path.write_bytes(content)
    code, out, err = cli("run", CFG, "--onnx", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1 and str(path) in err


def test_symbolic_dims_need_input_and_wrong_shapes_are_one_line(tmp_path):
    mod = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    path = export(mod, (torch.zeros(2, 3, 8, 8),), tmp_path / "dyn.onnx",
                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    name = onnx.load(path).graph.input[0].name
    code, _, err = cli("run", CFG, "--onnx", path)
    assert code == 2 and err.count("\n") == 1 and "--input" in err and name in err
    for bad in (f"{name}=2x4x8x8", f"{name}=2x3x8", "nosuch=1x2", f"{name}=2xAx8x8",
                f"{name}=2x3x2x2"):
        code, out, err = cli("run", CFG, "--onnx", path, "--input", bad)
        assert code == 2 and out == "" and err.count("\n") == 1, (bad, err)
    code, out, err = cli("run", CFG, "--onnx", path, "--input", f"{name}=5x3x8x8",
                         "--functional")
    assert code == 0, err
    assert "5x3x8x8" in out and "conv2d" in out


def test_cli_table_csv_json_and_plot_work_on_an_imported_model(zoo_onnx, tmp_path):
    import csv
    import json
    m, path, _ = zoo_onnx("small-cnn")
    csv_path = tmp_path / "layers.csv"
    code, out, err = cli("run", CFG, "--onnx", path, "--csv", str(csv_path), "--all-ops")
    assert code == 0, err
    zoo_code, zoo_out, _ = cli("run", CFG, "--model", "zoo:small-cnn", "--batch", "2",
                               "--image", "12")
    total = [line for line in out.splitlines() if line.startswith("cycles")]
    assert total == [line for line in zoo_out.splitlines() if line.startswith("cycles")]
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == len(import_onnx(path).program.ops)
    code, out, err = cli("run", CFG, "--onnx", path, "--json", "--functional")
    assert code == 0, err
    data = json.loads(out)
    assert data["model"]["output_shape"] == [2, 10]
    rep = tmp_path / "rep.json"
    rep.write_text(out)
    png = tmp_path / "timeline.png"
    code, _, err = cli("plot", "timeline", str(rep), "--out", str(png))
    assert code == 0 and png.stat().st_size > 0, err


def test_missing_or_truncated_external_data_is_one_line(zoo_onnx, tmp_path):
    import shutil
    _m, path, _ = zoo_onnx("resnet18")
    data_files = [p for p in __import__("pathlib").Path(path).parent.iterdir()
                  if p.name != "resnet18.onnx"]
    assert data_files  # the dynamo exporter writes the weights beside the model
    dst = tmp_path / "resnet18.onnx"
    shutil.copy(path, dst)
    code, _, err = cli("run", CFG, "--onnx", str(dst))
    assert code == 2 and err.count("\n") == 1 and "missing" in err and str(dst) in err
    for f in data_files:
        (tmp_path / f.name).write_bytes(f.read_bytes()[:1000])
    code, _, err = cli("run", CFG, "--onnx", str(dst))
    assert code == 2 and err.count("\n") == 1 and "truncated" in err and str(dst) in err


def test_compare_and_sweep_take_an_onnx_model_and_match_its_zoo_twin(zoo_onnx, tmp_path):
    import json
    from simulator.tools.compare import compare_chips
    from simulator.tools.sweep import load_sweep, read_results, run_sweep
    _m, path, _ = zoo_onnx("tiny-transformer")
    chips = [CONFIGS / "tpu-v4-mxu.yaml", CONFIGS / "gemmini.yaml"]
    rows, what, _per = compare_chips(chips, onnx=path)
    zoo_rows = []
    for c in chips:
        zoo_rows.append(run(load_chip(c), build_zoo("zoo:tiny-transformer", batch=2,
                                                    **SMALL["tiny-transformer"]).program))
    assert [r["cycles"] for r in rows] == [z.totals()["total_cycles"] for z in zoo_rows]
    assert "tiny-transformer.onnx" in what
    code, out, err = cli("compare", *map(str, chips), "--onnx", path, "--json")
    assert code == 0 and json.loads(out)["chips"][0]["cycles"] == rows[0]["cycles"], err
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"base: {CONFIGS / 'gemmini.yaml'}\ngrid:\n  array.rows: [8, 16]\n"
                     f"workloads:\n  - onnx: {path}\n    name: imported\n"
                     f"  - model: zoo:tiny-transformer\n    batch: 2\n    seq: 10\n"
                     f"    name: zoo\n")
    out_csv = tmp_path / "r.csv"
    assert run_sweep(load_sweep(sweep), out_csv, "serial") == (4, 0)
    got = {(r["point"], r["workload"]): r for r in read_results(out_csv)}
    for point in {p for p, _w in got}:
        a, b = got[(point, "imported")], got[(point, "zoo")]
        assert a["status"] == b["status"] == "ok"
        assert a["total_cycles"] == b["total_cycles"] and a["energy_pj"] == b["energy_pj"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"base: {CONFIGS / 'gemmini.yaml'}\ngrid:\n  array.rows: [8]\n"
                   f"workloads:\n  - onnx: {path}\n    inputs: {{nosuch: 1x2}}\n")
    code, out, err = cli("sweep", str(bad), "--out", str(tmp_path / "b.csv"))
    assert code == 2 and err.count("\n") == 1 and "nosuch" in err


class ExplicitGPT(torch.nn.Module):
    """GPT-2 written without SDPA: attention as q @ k^T / sqrt(d), a causal mask built in
    forward with torch.triu and masked_fill, and position ids from torch.arange: a dynamic
    (batch, seq) export is all shape arithmetic (Shape, Gather, Range, Trilu, Where)."""

    def __init__(self, w, cfg):
        super().__init__()
        self.cfg = cfg
        self.w = torch.nn.ParameterDict({k.replace(".", "_"): torch.nn.Parameter(
            torch.from_numpy(np.ascontiguousarray(v))) for k, v in w.items()})

    def p(self, key):
        return self.w[key.replace(".", "_")]

    def forward(self, ids):
        F = torch.nn.functional
        cfg, d = self.cfg, self.cfg["d_model"]
        b, s = ids.shape
        heads, dh = cfg["heads"], d // cfg["heads"]
        x = F.embedding(ids, self.p("wte")) + self.p("wpe")[torch.arange(s)]
        mask = torch.triu(torch.ones(s, s, dtype=torch.bool), 1)
        for i in range(cfg["layers"]):
            n = f"h{i}"
            a = F.layer_norm(x, (d,), self.p(f"{n}.ln1.g"), self.p(f"{n}.ln1.b"), cfg["ln_eps"])
            q, k, v = (a @ self.p(f"{n}.attn.qkv.W") + self.p(f"{n}.attn.qkv.b")).split(d, -1)
            q, k, v = (t.reshape(b, s, heads, dh).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-2, -1)) / dh ** 0.5
            att = F.softmax(att.masked_fill(mask, float("-inf")), -1)
            o = (att @ v).transpose(1, 2).reshape(b, s, d)
            x = x + o @ self.p(f"{n}.attn.o.W") + self.p(f"{n}.attn.o.b")
            m = F.layer_norm(x, (d,), self.p(f"{n}.ln2.g"), self.p(f"{n}.ln2.b"), cfg["ln_eps"])
            h = F.gelu(m @ self.p(f"{n}.mlp.fc1.W") + self.p(f"{n}.mlp.fc1.b"), approximate="tanh")
            x = x + h @ self.p(f"{n}.mlp.fc2.W") + self.p(f"{n}.mlp.fc2.b")
        x = F.layer_norm(x, (d,), self.p("ln_f.g"), self.p("ln_f.b"), cfg["ln_eps"])
        return x @ self.p("wte").T


@pytest.mark.parametrize("optimize", [True, False])
def test_gpt_block_with_causal_mask_and_dynamic_shapes_imports_as_the_zoo(tmp_path, optimize):
    kw = SMALL["gpt2-small"]
    m = build_zoo("zoo:gpt2-small", batch=2, **kw)
    mod = ExplicitGPT(m.net.init_params(5), kw["cfg"]).eval()
    ids = m.net.make_inputs(5)["ids"]
    dims = {0: torch.export.Dim("batch", max=64), 1: torch.export.Dim("seq", max=20)}
    path = export(mod, (torch.from_numpy(ids),), tmp_path / "gpt.onnx", optimize=optimize,
                  dynamic_shapes=(dims,))
    name = onnx.load(path, load_external_data=False).graph.input[0].name
    im = import_onnx(path, {name: ids.shape})
    assert costed(im.program, run(FP32, im.program)) == costed(m.program, run(FP32, m.program))
    got = run(FP32, im.program, im.inputs(0, {name: ids})).values[im.output]
    ref = ort.InferenceSession(path).run(None, {name: ids})[0]
    assert rel(got, ref) < 1e-4


def test_the_core_never_imports_onnx():
    import subprocess
    import sys
    code = ("import sys, simulator, simulator.tools.cli, simulator.core.engine, "
            "simulator.tools.sweep, simulator.tools.compare; simulator.tools.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('onnx', 'onnxruntime', 'onnxscript', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


# --------------------------------------------------------------------------- review fixes

def _save(model, tmp_path, name="m.onnx"):
    path = tmp_path / name
    onnx.save(model, str(path))
    return str(path)


def _one_line_error(code, out, err, *words):
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)


@pytest.mark.parametrize("offset, length", [("abc", "16"), ("-8", "16"), ("0", "x"),
                                            ("0", "-1")])
def test_bad_external_data_offset_or_length_is_one_line(tmp_path, offset, length):
    h = onnx.helper
    model = graph([h.make_node("Add", ["x", "w"], ["out"])], [("x", (4,))], [("out", (4,))],
                  [("w", np.ones(4, np.float32))])
    t = model.graph.initializer[0]
    (tmp_path / "w.bin").write_bytes(t.raw_data)
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", "w.bin"), ("offset", offset), ("length", length)):
        e = t.external_data.add()
        e.key, e.value = k, v
    path = _save(model, tmp_path)
    _one_line_error(*cli("run", CFG, "--onnx", path), path, "initializer w", "offset/length")


def _symbolic_relu(tmp_path):
    h = onnx.helper
    g = h.make_graph([h.make_node("Relu", ["x"], ["out"])], "g",
                     [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ("n", 4))],
                     [h.make_tensor_value_info("out", onnx.TensorProto.FLOAT, ("n", 4))])
    return _save(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]), tmp_path)


def test_huge_input_dimensions_are_one_line(tmp_path):
    from simulator.errors import WorkloadError
    from simulator.frontends.onnx_import import MAX_INPUT_ELEMENTS
    path = _symbolic_relu(tmp_path)
    for bad in ("x=99999999999999999999999x4", f"x={MAX_INPUT_ELEMENTS // 4 + 1}x4"):
        _one_line_error(*cli("run", CFG, "--onnx", path, "--input", bad), path, "--input")
    with pytest.raises(WorkloadError, match="elements"):  # the API checks given shapes too
        import_onnx(path, {"x": (10 ** 23, 4)})
    code, out, err = cli("run", CFG, "--onnx", path, "--input", f"x={MAX_INPUT_ELEMENTS // 4}x4")
    assert code == 0, err  # the largest input still costs (timing only)


def test_functional_memory_guard_counts_the_data_inputs(tmp_path, monkeypatch):
    import simulator.tools.cli as cli_mod
    path = _symbolic_relu(tmp_path)  # no parameters: only the data input counts
    monkeypatch.setattr(cli_mod, "FUNCTIONAL_LIMIT_BYTES", 4 * 1000)  # 1000 float32 elements
    _one_line_error(*cli("run", CFG, "--onnx", path, "--input", "x=251x4", "--functional"),
                    "functional", "--force", "1,004")
    code, out, err = cli("run", CFG, "--onnx", path, "--input", "x=250x4", "--functional")
    assert code == 0 and "norm" in out, err
    code, out, err = cli("run", CFG, "--onnx", path, "--input", "x=251x4")  # timing only
    assert code == 0, err


@pytest.mark.parametrize("nodes", [
    [("ConstantOfShape", {"shape": np.array([1 << 20, 1 << 20], np.int64)})],
    [("Range", {"start": np.array(0, np.int64), "limit": np.array(1 << 40, np.int64),
                "delta": np.array(1, np.int64)})],
    [("Tile", {"t": np.ones(2, np.float32), "reps": np.array([1 << 39], np.int64)})],
])
def test_huge_folds_are_refused_before_numpy_allocates(tmp_path, nodes):
    h = onnx.helper
    op, consts = nodes[0]
    made = [h.make_node("Constant", [], [k], value=onnx.numpy_helper.from_array(v))
            for k, v in consts.items()]
    node = h.make_node(op, list(consts), ["big"], name="the_fold")
    model = graph(made + [node, h.make_node("Relu", ["x"], ["out"])], [("x", (4,))],
                  [("out", (4,))])
    path = _save(model, tmp_path)
    _one_line_error(*cli("run", CFG, "--onnx", path), path, "the_fold", op, "elements")


def test_pow_with_any_exponent_equals_onnxruntime(tmp_path):
    # 2 is a square, 0.5 a sqrt; any other exponent is the pow kind (C's pow): a negative
    # base keeps its sign under an integer exponent
    h = onnx.helper
    rng = np.random.default_rng(0)
    for e, lo, hi in ((2.0, 0.1, 2), (0.5, 0.1, 2), (1.7, 0.1, 2), (-1.0, -2, -0.1),
                      (3.0, -2, -0.1), (-2.0, -2, 2)):
        model = graph([h.make_node("Pow", ["x", "e"], ["out"])], [("x", (2, 3))],
                      [("out", (2, 3))], [("e", np.array(e, np.float32))])
        feeds = {"x": rng.uniform(lo, hi, (2, 3)).astype(np.float32)}
        check_against_ort(model, tmp_path, feeds)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), lo=st.integers(-12, 12), count=st.integers(1, 4))
def test_gather_of_fixed_positions_rejects_out_of_range_and_wraps_negatives_once(
        tmp_path_factory, n, lo, count):
    h = onnx.helper
    idx = np.arange(lo, lo + count, dtype=np.int64)
    model = graph([h.make_node("Gather", ["x", "i"], ["g"], axis=1, name="the_gather"),
                   h.make_node("Relu", ["g"], ["out"])], [("x", (2, n))], [("out", None)],
                  [("i", idx)])
    tmp = tmp_path_factory.mktemp("gather")
    wrapped = np.where(idx < 0, idx + n, idx)
    if np.any((idx < -n) | (idx >= n)):
        path = _save(model, tmp)
        _one_line_error(*cli("run", CFG, "--onnx", path), path, "the_gather", "out of range")
    elif np.all(np.diff(wrapped) == 1):  # contiguous after wrapping: a slice, as onnxruntime
        feeds = {"x": np.random.default_rng(n).standard_normal((2, n)).astype(np.float32)}
        check_against_ort(model, tmp, feeds)


def test_compare_rejects_options_that_do_not_apply_and_counts_onnx_samples(tmp_path):
    from simulator.tools.compare import compare_chips
    path = _symbolic_relu(tmp_path)
    topo = str(CONFIGS / "topologies" / "alexnet.csv")
    for argv in (["--gemm", "8x8x8", "--input", "2x3"], ["--topology", topo, "--input", "2x3"],
                 ["--onnx", path, "--input", "x=8x4", "--batch", "3"],
                 ["--gemm", "8x8x8", "--batch", "3"], ["--topology", topo, "--batch", "3"]):
        code, out, err = cli("compare", CFG, *argv)
        _one_line_error(code, out, err, "--batch" if "--batch" in argv else "--input")
    rows, _what, per = compare_chips([CFG], onnx=path, onnx_inputs={"x": (8, 4)})
    assert per == "samples/s"
    assert rows[0]["throughput"] == pytest.approx(8 / rows[0]["time_s"])
    code, out, err = cli("compare", CFG, "--model", "linear:4:2")  # --batch defaults to 64
    assert code == 0 and "batch 64" in out, err


def test_the_shipped_example_gpt_runs_through_both_importers_alike(tmp_path):
    """examples/models/small_gpt.py (plain PyTorch, nanoGPT-style): imported with --torch and
    through its ONNX export, the costed ops have the same kinds and shapes, the totals the same
    cycles, and the values equal PyTorch's and onnxruntime's on an fp32 chip."""
    import importlib.util
    import onnxruntime as ort
    import torch
    from simulator.core.engine import run
    from simulator.frontends.onnx_import import import_onnx
    from simulator.frontends.torch_import import import_torch
    path = ROOT / "examples" / "models" / "small_gpt.py"
    spec = importlib.util.spec_from_file_location("small_gpt", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    onnx_file = mod.export_onnx(tmp_path / "small_gpt.onnx")
    chip = load_chip(CONFIGS / "tpu-v4-mxu.yaml", {"dtype": "fp32"})
    via_torch = import_torch(f"{path}:make")
    via_onnx = import_onnx(onnx_file)
    model, ids = mod.make()
    reps = []
    for m in (via_torch, via_onnx):
        values = m.inputs(0)
        values[next(iter(m.data))] = ids.numpy()  # the same token ids on both
        reps.append(run(chip, m.program, values))

    def costed(rep):
        return [(r.kind, tuple(r.shape), r.gemms, r.total_cycles) for r in rep.ops
                if r.total_cycles]
    assert costed(reps[0]) == costed(reps[1])
    assert reps[0].total_cycles == reps[1].total_cycles
    with torch.no_grad():
        want = model.eval()(ids).numpy()
    ref = ort.InferenceSession(str(onnx_file)).run(
        None, {next(iter(via_onnx.data)): ids.numpy()})[0]
    for got, exp in ((reps[0].values[via_torch.output], want),
                     (reps[1].values[via_onnx.output], ref)):
        assert np.linalg.norm(got - exp) <= 1e-4 * np.linalg.norm(exp)
