"""`systolic-sim run --model zoo:...`, compare and sweep with zoo models, plots of a whole model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import CONFIGS, write
from simulator.kernels.zoo import build_zoo
from simulator import ConfigError, load_chip
from simulator.tools.cli import main
from simulator.tools.compare import compare_chips
from simulator.core.engine import run
from simulator.tools.sweep import load_sweep, read_results, run_sweep

MXU = str(CONFIGS / "tpu-v4-mxu.yaml")


def test_run_model_json_matches_the_engine(capsys):
    assert main(["run", MXU, "--model", "zoo:tiny-transformer", "--batch", "4", "--seq", "8",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rep = run(load_chip(MXU), build_zoo("zoo:tiny-transformer", 4, 8).program)
    assert data["totals"]["total_cycles"] == rep.total_cycles
    assert data["model"]["sizes"] == {"batch": 4, "seq": 8}
    assert len(data["ops"]) == len(rep.ops)


def test_run_model_table_csv_and_functional(tmp_path, capsys):
    out = tmp_path / "layers.csv"
    assert main(["run", MXU, "--set", "dtype=fp32", "--model", "zoo:small-cnn", "--batch", "2",
                 "--image", "8", "--functional", "--csv", str(out), "--all-ops"]) == 0
    text = capsys.readouterr().out
    assert "time goes" in text and "conv1" in text and "output      fc.out (2, 10)" in text
    rows = list(csv.DictReader(out.open()))
    m = build_zoo("zoo:small-cnn", 2, image=8)
    assert [r["layer"] + ("." + r["op"] if r["op"] != r["layer"] else "") for r in rows] == \
        [op.name for op in m.program.ops]
    assert abs(sum(float(r["share"]) for r in rows) - 1) < 1e-9
    conv = next(r for r in rows if r["kind"] == "conv2d")
    assert conv["unit"] == "array" and conv["shape"] == "128x8x27"


@pytest.mark.parametrize("argv, match", [
    (["--model", "zoo:nope"], "unknown zoo model 'nope'"),
    (["--model", "zoo:gpt2-small", "--seq", "2000"], "seq: must be in [1, 1024]"),
    (["--model", "zoo:resnet18", "--seq", "5"], "takes no --seq"),
    (["--model", "zoo:resnet18", "--batch", "0"], "batch: must be in"),
    (["--model", "linear:10:1"], "run takes zoo:NAME"),
    (["--gemm", "8x8x8", "--seq", "4"], "applies to --model"),
])
def test_bad_models_and_sizes_exit_2_with_one_line(argv, match, capsys):
    assert main(["run", MXU, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err


def test_compare_accepts_zoo_models():
    rows, what, per = compare_chips([MXU, str(CONFIGS / "gemmini.yaml")], model="zoo:resnet18",
                                    batch=1)
    assert "zoo:resnet18" in what and per == "samples/s"
    rep = run(load_chip(MXU), build_zoo("zoo:resnet18").program)
    assert rows[0]["cycles"] == rep.total_cycles


def test_sweep_accepts_zoo_models(tmp_path):
    path = write(tmp_path, f"base: {CONFIGS / 'gemmini.yaml'}\ngrid:\n  array.rows: [8, 16]\n"
                           "workloads:\n  - model: zoo:tiny-transformer\n    batch: 2\n"
                           "    seq: 4\n", "s.yaml")
    s = load_sweep(path)
    run_sweep(s, tmp_path / "r.csv", "serial")
    rows = read_results(tmp_path / "r.csv")
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    chip = load_chip(CONFIGS / "gemmini.yaml", {"array.rows": 8})
    want = run(chip, build_zoo("zoo:tiny-transformer", 2, 4).program).total_cycles
    assert int(rows[0]["total_cycles"]) == want
    bad = write(tmp_path, f"base: {CONFIGS / 'gemmini.yaml'}\ngrid:\n  array.rows: [8]\n"
                          "workloads:\n  - model: zoo:bert-base\n    seq: 9999\n", "b.yaml")
    with pytest.raises(ConfigError, match="seq: must be in"):
        load_sweep(bad)


@pytest.mark.parametrize("kind", ["timeline", "roofline", "energy"])
def test_plots_of_a_whole_model(tmp_path, kind, capsys):
    rj = tmp_path / "r.json"
    assert main(["run", str(CONFIGS / "gemmini.yaml"), "--model", "zoo:tiny-transformer",
                 "--json"]) == 0
    rj.write_text(capsys.readouterr().out)
    out = tmp_path / f"{kind}.png"
    assert main(["plot", kind, str(rj), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_functional_values_of_the_cli_equal_the_engine(capsys):
    assert main(["run", MXU, "--set", "dtype=fp32", "--model", "zoo:tiny-transformer",
                 "--batch", "2", "--seq", "4", "--functional", "--json", "--seed", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    m = build_zoo("zoo:tiny-transformer", 2, 4)
    vals = m.inputs(5)
    want = m.numpy(vals)
    assert data["model"]["output_shape"] == [2, 10]
    assert abs(data["model"]["output_norm"] - float(np.linalg.norm(want))) < 1e-5 * np.linalg.norm(want)


def test_train_zoo_model_from_the_cli(capsys):
    assert main(["train", MXU, "--set", "dtype=fp32", "--model", "zoo:small-cnn", "--batch", "2",
                 "--image", "8", "--steps", "5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["steps"]) == 5 and data["steps"][-1]["loss"] < data["steps"][0]["loss"]
    assert main(["train", MXU, "--model", "zoo:gpt2-small", "--seq", "64", "--timing",
                 "--steps", "2", "--optimizer", "adamw"]) == 0
    assert "timing only" in capsys.readouterr().out
    assert main(["train", MXU, "--model", "zoo:resnet18", "--image", "32"]) == 2
    assert "no backward rule for batchnorm" in capsys.readouterr().err
