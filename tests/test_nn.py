"""simulator.nn (the seed's `asic` module): the snippet runs verbatim, equals `systolic-sim train`
exactly and PyTorch to 1e-5; Sequential MLPs train; errors name the layer."""

from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
import pytest

from conftest import CONFIGS, ROOT
from simulator import WorkloadError
from simulator.tools.cli import main

SNIPPET = '''
import numpy as np
import simulator.nn as asic

asic.use_chip("configs/tpu-v4-mxu.yaml", overrides={"dtype": "fp32"})

class AIModel(asic.Model):
    def __init__(self):
        super(AIModel, self).__init__()
        self.linear = asic.Linear(10, 1)
    def forward(self, x):
        return self.linear(x)

model = AIModel()
criterion = asic.MSELoss()
optimizer = asic.SGD(model.parameters(), lr=0.01)
inputs = np.random.default_rng(0).standard_normal((64, 10), dtype=np.float32)
labels = inputs @ np.arange(10, dtype=np.float32).reshape(10, 1)
for epoch in range(100):
    optimizer.zero_grad()
    outputs = model(inputs)
    loss = criterion(outputs, labels)
    loss.backward()
    optimizer.step()
print(asic.report())   # cycles, time, energy and utilisation: per step, per op, per unit
'''


@pytest.fixture
def in_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def run_snippet():
    ns: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(SNIPPET, "seed_snippet", "exec"), ns)
    return ns, out.getvalue()


def test_snippet_runs_verbatim_and_matches_train_cli_exactly(in_root, tmp_path, capsys):
    import simulator.nn as asic
    ns, printed = run_snippet()
    assert "asic report on tpu-v4-mxu" in printed and "per op" in printed
    assert "steps       100" in printed
    final = ns["model"].state_dict()
    # the same initial weights: a fresh session with the same seed
    asic.use_chip("configs/tpu-v4-mxu.yaml", overrides={"dtype": "fp32"})
    init = ns["AIModel"]().state_dict()
    data = tmp_path / "seed.npz"
    np.savez(data, X=ns["inputs"], Y=ns["labels"], W=init["linear.weight"],
             b=init["linear.bias"])
    code = main(["train", "configs/tpu-v4-mxu.yaml", "--set", "dtype=fp32", "--model",
                 "linear:10:1", "--data", str(data), "--batch", "64", "--steps", "100", "--lr",
                 "0.01", "--json"])
    params = json.loads(capsys.readouterr().out)["params"]
    assert code == 0
    assert np.array_equal(np.array(params["W"], np.float32), final["linear.weight"])
    assert np.array_equal(np.array(params["b"], np.float32), final["linear.bias"])


def test_snippet_matches_pytorch(in_root):
    torch = pytest.importorskip("torch")
    import simulator.nn as asic
    ns, _ = run_snippet()
    asic.use_chip("configs/tpu-v4-mxu.yaml", overrides={"dtype": "fp32"})
    init = ns["AIModel"]().state_dict()
    lin = torch.nn.Linear(10, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(init["linear.weight"].T.copy()))
        lin.bias.copy_(torch.from_numpy(init["linear.bias"].reshape(-1)))
    opt = torch.optim.SGD(lin.parameters(), lr=0.01)
    x, y = torch.from_numpy(ns["inputs"]), torch.from_numpy(ns["labels"])
    for _ in range(100):
        opt.zero_grad()
        loss = torch.nn.MSELoss()(lin(x), y)
        loss.backward()
        opt.step()
    final = ns["model"].state_dict()
    np.testing.assert_allclose(final["linear.weight"], lin.weight.detach().numpy().T, rtol=1e-5)
    np.testing.assert_allclose(final["linear.bias"].reshape(-1), lin.bias.detach().numpy(),
                               rtol=1e-5)


def test_sequential_mlp_trains_and_matches_the_mlp_kernel(in_root, tmp_path, capsys):
    import simulator.nn as asic
    asic.use_chip("configs/tpu-v4-mxu.yaml", overrides={"dtype": "fp32"})
    model = asic.Sequential(asic.Linear(10, 32), asic.ReLU(), asic.Linear(32, 1))
    init = model.state_dict()
    assert list(init) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    opt = asic.SGD(model.parameters(), lr=0.01)
    crit = asic.MSELoss()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 10)).astype(np.float32)
    y = (np.sin(x[:, :1]) + x[:, 1:2] ** 2).astype(np.float32)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    rep = asic.report()
    assert len(rep.steps) == 100 and "array" in str(rep)
    np.savez(tmp_path / "d.npz", X=x, Y=y, W1=init["0.weight"], b1=init["0.bias"],
             W2=init["2.weight"], b2=init["2.bias"])
    assert main(["train", "configs/tpu-v4-mxu.yaml", "--set", "dtype=fp32", "--model",
                 "mlp:10:32:1", "--data", str(tmp_path / "d.npz"), "--steps", "100",
                 "--json"]) == 0
    params = json.loads(capsys.readouterr().out)["params"]
    final = model.state_dict()
    for mine, theirs in (("0.weight", "W1"), ("0.bias", "b1"), ("2.weight", "W2"), ("2.bias", "b2")):
        assert np.array_equal(final[mine], np.array(params[theirs], np.float32)), mine


def test_sgd_momentum_and_weight_decay_match_pytorch(in_root):
    torch = pytest.importorskip("torch")
    import simulator.nn as asic
    asic.use_chip("configs/tpu-v4-mxu.yaml", overrides={"dtype": "fp32"})
    lin = asic.Linear(6, 2)
    init = lin.state_dict()
    opt = asic.SGD(lin.parameters(), lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)
    tl = torch.nn.Linear(6, 2)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(init["weight"].T.copy()))
        tl.bias.copy_(torch.from_numpy(init["bias"].reshape(-1)))
    topt = torch.optim.SGD(tl.parameters(), lr=0.05, momentum=0.9, dampening=0.1,
                           weight_decay=0.01)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 6)).astype(np.float32)
    y = rng.standard_normal((16, 2)).astype(np.float32)
    for _ in range(20):
        opt.zero_grad()
        asic.MSELoss()(lin(x), y).backward()
        opt.step()
        topt.zero_grad()
        torch.nn.MSELoss()(tl(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        topt.step()
    np.testing.assert_allclose(lin.state_dict()["weight"], tl.weight.detach().numpy().T,
                               rtol=1e-5, atol=1e-7)


def test_errors_name_the_layer(in_root):
    import simulator.nn as asic
    asic.use_chip("configs/tpu-v4-mxu.yaml", overrides={"dtype": "fp32"})
    model = asic.Sequential(asic.Linear(10, 4), asic.ReLU(), asic.Linear(4, 1))
    with pytest.raises(WorkloadError, match=r"Sequential\.0: input: Linear\(10, 4\) expects "
                                            r"\(batch, 10\) inputs, got \(8, 7\)"):
        model(np.ones((8, 7), np.float32))
    with pytest.raises(WorkloadError, match="MSELoss: labels: shape"):
        asic.MSELoss()(model(np.ones((8, 10), np.float32)), np.ones((8, 2)))
    with pytest.raises(WorkloadError, match="dtype: asic training needs a float dtype"):
        asic.use_chip("configs/tpu-v1.yaml")

    class NoSuper(asic.Model):
        def __init__(self):
            self.linear = asic.Linear(2, 2)
    with pytest.raises(WorkloadError, match="call super"):
        NoSuper()
    assert os.getcwd() == str(ROOT)


def test_compare_four_chips_table_json_and_plot(in_root, tmp_path, capsys):
    chips = ["configs/h100.yaml", "configs/tpu-v4-mxu.yaml", "configs/gemmini.yaml",
             "configs/edge-tpu.yaml"]
    plot = tmp_path / "cmp.png"
    assert main(["compare", *chips, "--model", "linear:10:1", "--batch", "64",
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    for name in ("h100", "tpu-v4-mxu", "gemmini", "edge-tpu", "EDP", "* best"):
        assert name in out
    from matplotlib.image import imread
    img = imread(plot)
    assert img.shape[1] > 1000 and img.std() > 0.05
    assert main(["compare", *chips, "--gemm", "1024x1024x1024", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["chip"]: r for r in data["chips"]}
    assert set(rows) == {"h100", "tpu-v4-mxu", "gemmini", "edge-tpu"}
    assert data["winners"]["time_s"] == min(rows, key=lambda c: rows[c]["time_s"])
    for r in rows.values():
        assert r["edp_js"] == pytest.approx(r["energy_j"] * r["time_s"])
        assert r["power_w"] == pytest.approx(r["energy_j"] / r["time_s"])
    assert main(["compare", "configs/gemmini.yaml", "--topology",
                 str(CONFIGS / "topologies" / "alexnet.csv"), "--json"]) == 0


def test_edge_tpu_config_reproduces_its_published_peak():
    from simulator import load_chip
    chip = load_chip(CONFIGS / "edge-tpu.yaml")
    assert chip.peak_ops_per_s == pytest.approx(4e12, rel=0.01)
