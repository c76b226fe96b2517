"""simulator.kernels.linear, .mlp, .train: training on the chip against numpy (and PyTorch)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from conftest import CONFIGS
from simulator.kernels.train import (init_params, load_data, numpy_step, parse_model, synthetic_data,
                           train)
from simulator import WorkloadError, load_chip
from simulator.tools.cli import main
from simulator.core.engine import run


def numpy_train(spec, x, y, params, batch, steps, lr, dtype="fp32"):
    p = {k: v.copy() for k, v in params.items()}
    losses = []
    for step in range(steps):
        rows = (np.arange(batch) + step * batch) % x.shape[0]
        out = numpy_step(spec, x[rows], y[rows], p, lr, dtype)
        losses.append(float(out["loss"][0, 0]))
        p = {k: out[f"{k}_new"] for k in p}
    return p, losses


def chip(dtype="fp32", name="tpu-v4-mxu"):
    # results leave as fp32 accumulators, as the numpy twins keep them (output rounding to the
    # narrow type is tested in test_output)
    return load_chip(CONFIGS / f"{name}.yaml", {"dtype": dtype, "output.dtype": "accumulator"})


def test_linear_fp32_matches_numpy_to_1e5_relative_after_100_steps():
    spec = parse_model("linear:10:1")
    x, y = synthetic_data(spec, 1024, 0)
    p0 = init_params(spec, 0)
    res = train(chip(), spec, x, y, 64, 100, 0.01, p0)
    want, losses = numpy_train(spec, x, y, p0, 64, 100, 0.01)
    for k in want:
        np.testing.assert_allclose(res.params[k], want[k], rtol=1e-5, atol=0)
    np.testing.assert_allclose(res.losses, losses, rtol=1e-5)
    assert res.losses[-1] < 0.1 * res.losses[0]


def test_mlp_fp32_matches_numpy_after_100_steps():
    spec = parse_model("mlp:10:32:1")
    x, y = synthetic_data(spec, 1024, 1)
    p0 = init_params(spec, 1)
    res = train(chip(), spec, x, y, 64, 100, 0.01, p0)
    want, _ = numpy_train(spec, x, y, p0, 64, 100, 0.01)
    for k in want:
        scale = np.max(np.abs(want[k]))
        assert np.max(np.abs(res.params[k] - want[k])) <= 1e-5 * scale, k
    assert res.losses[-1] < 0.1 * res.losses[0]


@settings(max_examples=15)
@given(kind=st.sampled_from(["linear:10:1", "linear:7:3", "mlp:10:32:1", "mlp:5:8:2"]),
       dtype=st.sampled_from(["bf16", "fp16"]), seed=st.integers(0, 1000))
@example(kind="mlp:10:32:1", dtype="fp16", seed=152)
def test_low_precision_training_stays_near_fp32(kind, dtype, seed):
    spec = parse_model(kind)
    x, y = synthetic_data(spec, 512, seed)
    p0 = init_params(spec, seed)
    lo = train(chip(dtype), spec, x, y, 32, 50, 0.01, p0)
    hi = train(chip("fp32"), spec, x, y, 32, 50, 0.01, p0)
    # bf16 operands carry 8 significant bits: relative error per matmul ~ 2^-8; over 50 steps the
    # parameters drift by at most a few per cent of the parameters' scale (a near-zero bias is
    # judged on the scale of all parameters, not its own)
    tol = {"bf16": 0.05, "fp16": 0.01}[dtype]
    scale = max(float(np.max(np.abs(v))) for v in hi.params.values())
    for k in hi.params:
        assert np.max(np.abs(lo.params[k] - hi.params[k])) <= tol * scale, k
    # and the chip equals numpy with the same operand rounding, up to summation order: a
    # different order can flip an operand's rounding to fp16 (a 2^-11 relative step) in a later
    # step (mlp:10:32:1, fp16, seed 152 drifts by 2.3e-4 with numpy 2.4.6's OpenBLAS)
    bound = {"bf16": 1e-4, "fp16": 2.0 ** -11}[dtype]
    want, _ = numpy_train(spec, x, y, p0, 32, 50, 0.01, dtype)
    for k in want:
        assert np.max(np.abs(lo.params[k] - want[k])) <= bound * np.max(np.abs(want[k])), k


def test_matches_pytorch_when_installed():
    torch = pytest.importorskip("torch")
    spec = parse_model("linear:10:1")
    x, y = synthetic_data(spec, 1024, 3)
    p0 = init_params(spec, 3)
    res = train(chip(), spec, x, y, 64, 100, 0.01, p0)
    model = torch.nn.Linear(10, 1)
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(p0["W"].T.copy()))
        model.bias.copy_(torch.from_numpy(p0["b"].reshape(-1)))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.MSELoss()
    for step in range(100):
        rows = (np.arange(64) + step * 64) % 1024
        opt.zero_grad()
        loss = loss_fn(model(torch.from_numpy(x[rows])), torch.from_numpy(y[rows]))
        loss.backward()
        opt.step()
    np.testing.assert_allclose(res.params["W"], model.weight.detach().numpy().T, rtol=1e-5)
    np.testing.assert_allclose(res.params["b"].reshape(-1), model.bias.detach().numpy(), rtol=1e-5)


def test_one_step_values_equal_numpy_reference():
    spec = parse_model("mlp:6:5:2")
    x, y = synthetic_data(spec, 40, 2)
    p0 = init_params(spec, 2)
    rep = run(chip(), spec.build_step(40, 0.05), {"X": x, "T": y, **p0})
    want = numpy_step(spec, x, y, p0, 0.05)
    for name, ref in want.items():
        np.testing.assert_allclose(rep.values[name], ref, rtol=2e-6, atol=1e-7)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("model", ["linear:10:1", "mlp:10:32:1"])
def test_train_cli_loss_falls(capsys, model):
    code, out, _ = run_cli(capsys, "train", str(CONFIGS / "tpu-v4-mxu.yaml"), "--model", model,
                           "--batch", "64", "--steps", "100", "--json")
    data = json.loads(out)
    assert code == 0 and len(data["steps"]) == 100
    assert data["steps"][-1]["loss"] < 0.2 * data["steps"][0]["loss"]
    assert set(data["steps"][0]) == {"step", "loss", "cycles", "energy_pj"}
    assert data["totals"]["total_cycles"] == sum(s["cycles"] for s in data["steps"])
    code, out, _ = run_cli(capsys, "train", str(CONFIGS / "tpu-v4-mxu.yaml"), "--model", model,
                           "--steps", "20")
    assert code == 0 and "per step" in out and "loss" in out and "busy" in out


def test_train_cli_data_file_and_params(capsys, tmp_path):
    spec = parse_model("linear:3:2")
    x, y = synthetic_data(spec, 50, 0)
    w = np.zeros((3, 2), np.float32)
    b = np.zeros(2, np.float32)
    path = tmp_path / "d.npz"
    np.savez(path, X=x, Y=y, W=w, b=b)
    code, out, _ = run_cli(capsys, "train", str(CONFIGS / "tpu-v4-mxu.yaml"), "--model",
                           "linear:3:2", "--data", str(path), "--batch", "10", "--steps", "7",
                           "--lr", "0.1", "--set", "dtype=fp32", "--json")
    params = json.loads(out)["params"]
    want, _ = numpy_train(spec, x, y, {"W": w, "b": b.reshape(1, 2)}, 10, 7, 0.1)
    np.testing.assert_allclose(np.array(params["W"]), want["W"], rtol=1e-5)


@pytest.mark.parametrize("arrays, message", [
    ({"X": np.ones((4, 3))}, "Y: missing"),
    ({"X": np.ones((4, 2)), "Y": np.ones((4, 2))}, "X: must have shape (samples, 3), got (4, 2)"),
    ({"X": np.ones((4, 3)), "Y": np.ones((5, 2))}, "Y: has 5 samples but X has 4"),
    ({"X": np.ones((4, 3)), "Y": np.ones((4, 2)), "W": np.ones((3, 2))}, "b: missing"),
    ({"X": np.full((4, 3), np.nan), "Y": np.ones((4, 2))}, "X: must hold finite numbers"),
    ({"X": np.ones((4, 3)), "Y": np.full((4, 2), np.inf)}, "Y: must hold finite numbers"),
    ({"X": np.ones((0, 3)), "Y": np.ones((0, 2))}, "X: has 0 samples; training needs at least one"),
    ({"X": np.ones((0, 3)), "Y": np.ones((4, 2))}, "Y: has 4 samples but X has 0"),
    ({"X": np.ones((4, 3)), "Y": np.ones((0, 2))}, "Y: has 0 samples but X has 4"),
])
def test_bad_data_files(tmp_path, arrays, message):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(WorkloadError) as info:
        load_data(path, parse_model("linear:3:2"))
    assert message in str(info.value) and str(info.value).startswith(str(path))


@pytest.mark.parametrize("args, message", [
    (["--model", "linear:10"], "--model linear:10: model: expected linear:IN:OUT"),
    (["--model", "mlp:10:0:1"], "--model mlp:10:0:1: model: sizes must be positive integers"),
    (["--model", "linear:10:1", "--batch", "0"], "train: batch: must be a positive integer"),
    (["--model", "linear:10:1", "--lr", "-1"], "train: lr: must be a positive finite number"),
    (["--model", "linear:10:1", "--set", "dtype=int8"], "--set dtype=int8: dtype: training needs"),
])
def test_train_cli_errors(capsys, args, message):
    code, out, err = run_cli(capsys, "train", str(CONFIGS / "tpu-v4-mxu.yaml"), *args)
    assert code == 2 and out == "" and err.startswith(message) and err.count("\n") == 1


@pytest.mark.parametrize("command", ["train", "validate"])
@pytest.mark.parametrize("arrays, message", [
    ({"X": np.ones((0, 10)), "Y": np.ones((0, 1))}, "X: has 0 samples"),
    ({"X": np.ones((5, 10)), "Y": np.ones((4, 1))}, "Y: has 4 samples but X has 5"),
    ({"X": np.ones((5, 10)), "Y": np.full((5, 1), np.nan)}, "Y: must hold finite numbers"),
])
def test_train_cli_bad_data_one_line_exit_2(capsys, tmp_path, command, arrays, message):
    path = tmp_path / "empty.npz"
    np.savez(path, **arrays)
    code, out, err = run_cli(capsys, command, str(CONFIGS / "tpu-v4-mxu.yaml"), "--model",
                             "linear:10:1", "--data", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"{path}: {message}")


def test_train_refuses_no_samples_from_the_api():
    spec = parse_model("linear:3:2")
    chip = load_chip(CONFIGS / "tpu-v4-mxu.yaml")
    p = init_params(spec, 0)
    with pytest.raises(WorkloadError, match="X: has 0 samples"):
        train(chip, spec, np.ones((0, 3), np.float32), np.ones((0, 2), np.float32), 4, 1, 0.1, p)
    with pytest.raises(WorkloadError, match="Y: has 3 samples but X has 2"):
        train(chip, spec, np.ones((2, 3), np.float32), np.ones((3, 2), np.float32), 4, 1, 0.1, p)


@pytest.mark.parametrize("model", ["linear:10:1", "mlp:10:32:1"])
@pytest.mark.parametrize("config", ["tpu-v4-mxu", "gemmini"])
def test_validate_covers_training_kernels(capsys, model, config):
    code, out, _ = run_cli(capsys, "validate", str(CONFIGS / f"{config}.yaml"), "--model", model,
                           "--set", "dtype=bf16")
    assert code == 0 and out.strip().endswith("OK")
    assert ("W_new" in out) or ("W1_new" in out)
