"""Whole models against their frameworks: ``validate CONFIG --torch F.py:fn`` / ``--onnx F.onnx``
(the chip against PyTorch / onnxruntime on the same inputs, exit 1 beyond a dtype-dependent
tolerance), ``run ... --functional --inputs FILE.npz|FILE.npy --save-outputs FILE.npz`` on every
model road (zoo, PyTorch, ONNX; the saved outputs checked against the numpy twin, PyTorch and
onnxruntime on the given arrays), and bad input files as one line with exit status 2."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from conftest import CONFIGS  # noqa: E402
from simulator import load_chip  # noqa: E402
from simulator.kernels.zoo import build_zoo  # noqa: E402
from simulator.tools.cli import main  # noqa: E402
from simulator.tools.models import model_tolerance  # noqa: E402

CFG = str(CONFIGS / "tpu-v4-mxu.yaml")  # bf16 operands, fp32 accumulators, bf16 outputs
FP32 = ("--set", "dtype=fp32", "--set", "output.dtype=accumulator")

NETS = '''
import torch


class Two(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(8, 16)
        self.b = torch.nn.Linear(16, 4)

    def forward(self, x, y):
        return self.b(torch.relu(self.a(x))) + y


def two():
    torch.manual_seed(0)
    return Two()


def mlp():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))


def emb():
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 2))
    return net, (torch.zeros(2, 3, dtype=torch.long),)


def cancel():
    # x0 - x1: where x0 and x1 agree to 3 digits bf16 operands lose the difference
    lin = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -1.0]]))
    return lin
'''


def cli(*argv):
    """Return (exit status, stdout, stderr) of the CLI."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Write the PyTorch factories, an ONNX model (x @ W + y, and an embedding of int ids)
    and input files; return their paths by role."""
    d = tmp_path_factory.mktemp("models")
    (d / "nets.py").write_text(NETS)
    rng = np.random.default_rng(0)
    h = onnx.helper
    w = rng.standard_normal((8, 4)).astype(np.float32)
    table = rng.standard_normal((7, 4)).astype(np.float32)
    g = h.make_graph(
        [h.make_node("MatMul", ["x", "w"], ["xw"]), h.make_node("Add", ["xw", "y"], ["out"]),
         h.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
         h.make_node("Relu", ["emb"], ["out2"])], "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ("batch", 8)),
         h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ("batch", 4)),
         h.make_tensor_value_info("ids", onnx.TensorProto.INT64, (2, 3))],
        [h.make_tensor_value_info("out", onnx.TensorProto.FLOAT, None),
         h.make_tensor_value_info("out2", onnx.TensorProto.FLOAT, None)],
        initializer=[onnx.numpy_helper.from_array(w, "w"),
                     onnx.numpy_helper.from_array(table, "table")])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]), str(d / "m.onnx"))
    x = rng.standard_normal((3, 8)).astype(np.float32)
    y = rng.standard_normal((3, 4)).astype(np.float32)
    ids = rng.integers(0, 7, (2, 3))
    np.savez(d / "xy.npz", x=x, y=y)
    np.savez(d / "xyids.npz", x=x, y=y, ids=ids)
    np.save(d / "x.npy", x.astype(np.float64))  # float64: cast to the model's float32
    np.save(d / "close.npy", np.array([[1.0, 1.001], [2.0, 2.002]], np.float32))
    return {"dir": d, "nets": d / "nets.py", "onnx": d / "m.onnx", "xy": d / "xy.npz",
            "xyids": d / "xyids.npz", "x": d / "x.npy", "close": d / "close.npy",
            "arrays": {"x": x, "y": y, "ids": ids}}


def report(out: str) -> dict[str, tuple[str, float, float]]:
    """Return each output line of validate: name -> (PASS/FAIL, max abs, max rel)."""
    rows = re.findall(r"^\s+(PASS|FAIL)\s+(\S+) \(.*\): max abs (\S+), max rel (\S+)$", out,
                      re.M)
    return {name: (verdict, float(a), float(r)) for verdict, name, a, r in rows}


# --------------------------------------------------------------------------- tolerance

def test_tolerance_depends_on_the_chips_number_format():
    fp32 = load_chip(CFG, {"dtype": "fp32", "output.dtype": "accumulator"})
    assert model_tolerance(fp32) == 1e-4
    assert model_tolerance(fp32.with_overrides({"dtype": "fp16"})) == 8 * 2.0 ** -11
    assert model_tolerance(load_chip(CFG)) == 8 * 2.0 ** -8  # bf16 operands and outputs
    # fp32 operands but bf16 outputs: the outputs' rounding counts
    assert model_tolerance(fp32.with_overrides({"output.dtype": "bf16"})) == 8 * 2.0 ** -8


def test_int8_chip_is_refused_in_one_line(files):
    code, out, err = cli("validate", CONFIGS / "gemmini.yaml", "--onnx", files["onnx"],
                         "--inputs", files["xyids"])
    assert code == 2 and out == "" and err.count("\n") == 1 and "dtype" in err


# --------------------------------------------------------------------------- validate

def test_validate_torch_passes_and_reports_pytorchs_error(files):
    code, out, err = cli("validate", CFG, *FP32, "--torch", f"{files['nets']}:two",
                         "--inputs", files["xy"])
    assert (code, err) == (0, ""), err
    rows = report(out)
    assert len(rows) == 1 and out.rstrip().endswith("OK")
    verdict, max_abs, max_rel = next(iter(rows.values()))
    assert verdict == "PASS" and max_abs < 1e-5 and max_rel <= 1e-4
    assert "tolerance max |diff| / max |ref| <= 0.0001" in out


def test_validate_fails_with_exit_1_when_the_chips_format_loses_the_answer(files):
    # x0 - x1 with x0, x1 = 1, 1.001: bf16 operands round both to 1 (the chip says 0), PyTorch
    # says -0.001: max rel 1 > the bf16 tolerance. On an fp32 chip the same model passes.
    spec = f"{files['nets']}:cancel"
    want = np.array([[1.0 - np.float32(1.001)], [2.0 - np.float32(2.002)]])
    code, out, err = cli("validate", CFG, "--torch", spec, "--inputs", files["close"])
    assert code == 1 and err == "" and out.rstrip().endswith("MISMATCH")
    verdict, max_abs, max_rel = next(iter(report(out).values()))
    assert verdict == "FAIL" and max_rel > model_tolerance(load_chip(CFG))
    assert max_abs == pytest.approx(np.abs(want).max(), rel=1e-3)  # the chip gives 0
    code, out, err = cli("validate", CFG, *FP32, "--torch", spec, "--inputs", files["close"])
    assert code == 0 and next(iter(report(out).values()))[0] == "PASS"


def test_validate_onnx_every_output_on_bf16_and_fp32(files):
    for extra in ((), FP32):
        code, out, err = cli("validate", CFG, *extra, "--onnx", files["onnx"],
                             "--inputs", files["xyids"])
        assert (code, err) == (0, ""), err
        rows = report(out)
        assert set(rows) == {"out", "out2"} and all(r[0] == "PASS" for r in rows.values())
        if extra:
            assert max(r[2] for r in rows.values()) <= 1e-4


def test_validate_seeded_inputs_with_input_shapes(files):
    code, out, _ = cli("validate", CFG, "--onnx", files["onnx"], "--input", "x=5x8",
                       "--input", "y=5x4")
    assert code == 0 and "(5, 4)" in out
    code, out, _ = cli("validate", CFG, "--torch", f"{files['nets']}:mlp", "--input", "6x8")
    assert code == 0 and "(6, 4)" in out


# --------------------------------------------------------------------------- run --inputs

def test_run_torch_saves_pytorchs_outputs_on_the_given_arrays(files, tmp_path):
    saved = tmp_path / "out.npz"
    code, _, err = cli("run", CFG, *FP32, "--torch", f"{files['nets']}:two", "--functional",
                       "--inputs", files["xy"], "--save-outputs", saved)
    assert (code, err) == (0, "")
    import importlib.util
    spec = importlib.util.spec_from_file_location("nets_oracle", files["nets"])
    nets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nets)
    a = files["arrays"]
    with torch.no_grad():
        want = nets.two()(torch.from_numpy(a["x"]), torch.from_numpy(a["y"])).numpy()
    with np.load(saved) as got:
        assert len(got.files) == 1
        np.testing.assert_allclose(got[got.files[0]], want, rtol=1e-5, atol=1e-5)


def test_run_onnx_saves_onnxruntimes_outputs_by_output_name(files, tmp_path):
    saved = tmp_path / "out.npz"
    code, _, err = cli("run", CFG, *FP32, "--onnx", files["onnx"], "--functional",
                       "--inputs", files["xyids"], "--save-outputs", saved)
    assert (code, err) == (0, "")
    a = files["arrays"]
    want = ort.InferenceSession(str(files["onnx"])).run(None, a)
    with np.load(saved) as got:
        assert sorted(got.files) == ["out", "out2"]
        np.testing.assert_allclose(got["out"], want[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got["out2"], want[1], rtol=1e-6, atol=1e-6)


def test_run_zoo_takes_a_npy_and_saves_its_twins_output(files, tmp_path):
    model = build_zoo("zoo:small-cnn", batch=2, image=12)
    x = np.random.default_rng(5).standard_normal((2, 3, 12, 12)).astype(np.float32)
    np.save(tmp_path / "img.npy", x)
    saved = tmp_path / "out.npz"
    code, _, err = cli("run", CFG, *FP32, "--model", "zoo:small-cnn", "--batch", 2, "--image",
                       12, "--functional", "--inputs", tmp_path / "img.npy",
                       "--save-outputs", saved)
    assert (code, err) == (0, "")
    values = {**model.inputs(0), "x": x}
    want = model.numpy(values, "fp32")
    with np.load(saved) as got:
        assert got.files == [model.output]
        np.testing.assert_allclose(got[model.output], want, rtol=1e-4, atol=1e-4)
        # the file's image was used, not the seeded one
        assert not np.allclose(got[model.output], model.numpy(model.inputs(0), "fp32"))


# --------------------------------------------------------------------------- bad input

def _write_bad(d, kind: str):
    """Write a bad inputs file of ``kind``; return its path."""
    x, y = np.zeros((3, 8), np.float32), np.zeros((3, 4), np.float32)
    path = d / f"{kind}.npz"
    if kind == "missing":
        return d / "nothere.npz"
    if kind == "garbage":
        path.write_bytes(b"PK\x03\x04 not a zip")
    elif kind == "suffix":
        path = d / "inputs.txt"
        path.write_text("x=1")
    elif kind == "unknown":
        np.savez(path, x=x, y=y, z=y)
    elif kind == "left_out":
        np.savez(path, x=x)
    elif kind == "shape":
        np.savez(path, x=np.zeros((3, 9), np.float32), y=y)
    elif kind == "strings":
        np.savez(path, x=np.array(["a", "b"]), y=y)
    elif kind == "complex":
        np.savez(path, x=x.astype(np.complex64), y=y)
    elif kind == "nan":
        np.savez(path, x=np.full((3, 8), np.nan, np.float32), y=y)
    elif kind == "npy":
        path = d / "one.npy"
        np.save(path, x)
    elif kind == "empty":
        np.savez(path)
    return path


BAD = ["missing", "garbage", "suffix", "unknown", "left_out", "shape", "strings", "complex",
       "nan", "npy", "empty"]


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize("road", ["onnx", "torch", "validate-onnx", "validate-torch"])
def test_bad_inputs_file_is_one_line_naming_file_and_field(files, tmp_path, kind, road):
    path = _write_bad(tmp_path, kind)
    if road == "torch":
        argv = ["run", CFG, "--torch", f"{files['nets']}:two", "--functional"]
    elif road == "validate-torch":
        argv = ["validate", CFG, "--torch", f"{files['nets']}:two"]
    elif road == "onnx":
        argv = ["run", CFG, "--onnx", files["onnx"], "--functional"]
    else:
        argv = ["validate", CFG, "--onnx", files["onnx"]]
    if road.endswith("onnx") and kind not in ("unknown", "left_out"):
        # the ONNX model also takes ids: add them so the error is the one under test
        if path.suffix == ".npz" and path.exists() and kind not in ("garbage", "empty"):
            with np.load(path) as f:
                arrays = {k: f[k] for k in f.files}
            np.savez(path, **arrays, ids=files["arrays"]["ids"])
    code, out, err = cli(*argv, "--inputs", path)
    assert code == 2 and out == "" and err.count("\n") == 1, (err, out)
    assert err.startswith(str(path)), err
    if kind in ("unknown", "shape", "strings", "complex", "nan", "left_out"):
        assert ": array" in err  # the field: the array at fault (torch: export's refusal)


def test_torch_ids_are_checked_against_the_embedding_and_validated(files, tmp_path):
    spec = f"{files['nets']}:emb"
    np.save(tmp_path / "bad.npy", np.array([[1, 2, 10], [0, 0, 1]]))
    code, out, err = cli("validate", CFG, "--torch", spec, "--inputs", tmp_path / "bad.npy")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(str(tmp_path / "bad.npy")) and "[0, 10)" in err
    np.save(tmp_path / "ids.npy", np.array([[1, 2, 9], [0, 0, 1]], np.int32))  # cast to int64
    code, out, err = cli("validate", CFG, *FP32, "--torch", spec, "--inputs",
                         tmp_path / "ids.npy")
    assert code == 0 and next(iter(report(out).values()))[2] <= 1e-4
    np.save(tmp_path / "float.npy", np.array([[1.0, 2, 9], [0, 0, 1]]))  # ids as floats
    code, out, err = cli("validate", CFG, "--torch", spec, "--inputs", tmp_path / "float.npy")
    assert code == 2 and "holds float64; the model takes int64" in err


@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_saved_outputs_equal_onnxruntime_at_any_batch(files, batch, seed, tmp_path_factory):
    # the file's shapes fix the symbolic batch; the chip's saved outputs are onnxruntime's
    d = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(seed)
    a = {"x": rng.standard_normal((batch, 8)).astype(np.float32),
         "y": rng.standard_normal((batch, 4)).astype(np.float32),
         "ids": rng.integers(0, 7, (2, 3))}
    np.savez(d / "in.npz", **a)
    code, _, err = cli("run", CFG, *FP32, "--onnx", files["onnx"], "--functional", "--inputs",
                       d / "in.npz", "--save-outputs", d / "out.npz")
    assert (code, err) == (0, "")
    want = ort.InferenceSession(str(files["onnx"])).run(None, a)
    with np.load(d / "out.npz") as got:
        assert got["out"].shape == (batch, 4)
        np.testing.assert_allclose(got["out"], want[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got["out2"], want[1], rtol=1e-6, atol=1e-6)


def test_ids_outside_the_table_and_flag_misuse_are_one_line(files, tmp_path):
    bad = dict(files["arrays"], ids=np.full((2, 3), 9))
    np.savez(tmp_path / "ids.npz", **bad)
    code, _, err = cli("run", CFG, "--onnx", files["onnx"], "--functional", "--inputs",
                       tmp_path / "ids.npz")
    assert code == 2 and err.count("\n") == 1 and "array ids" in err and "[0, 7)" in err
    for argv in (["run", CFG, "--onnx", files["onnx"], "--inputs", files["xyids"]],
                 ["run", CFG, "--gemm", "8x8x8", "--functional", "--inputs", files["xy"]],
                 ["run", CFG, "--onnx", files["onnx"], "--save-outputs", tmp_path / "o.npz"],
                 ["run", CFG, "--onnx", files["onnx"], "--functional", "--inputs",
                  files["xyids"], "--input", "x=3x8"],
                 ["run", CFG, "--onnx", files["onnx"], "--functional", "--inputs",
                  files["xyids"], "--save-outputs", tmp_path / "o.txt"],
                 ["validate", CFG, "--gemm", "8x8x8", "--inputs", files["xy"]]):
        code, out, err = cli(*argv)
        assert code == 2 and out == "" and err.count("\n") == 1, (argv, err)


def test_object_arrays_and_directories_are_one_line(files, tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))  # pickled
    (tmp_path / "dir.npz").mkdir()
    # the input boundary (simulator.io_limits) names the archive member of an object array
    for path, field in ((tmp_path / "obj.npz", "inputs: array x.npy"),
                        (tmp_path / "dir.npz", "inputs")):
        code, out, err = cli("run", CFG, "--onnx", files["onnx"], "--functional", "--inputs",
                             path)
        assert code == 2 and out == "" and err.count("\n") == 1
        assert err.startswith(f"{path}: {field}: "), err
