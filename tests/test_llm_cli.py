"""systolic-sim llm: text and JSON runs, training step, sweeps with CSV and plots, exit 2."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import CONFIGS
from simulator.tools.cli import main

MODEL = str(CONFIGS / "models" / "smollm2-135m.yaml")
H100 = str(CONFIGS / "h100.yaml")


def test_run_text_and_json(capsys):
    assert main(["llm", H100, "--model", MODEL, "--batch", "4", "--prompt", "64", "--generate",
                 "16", "--tp", "3", "--context", "70"]) == 0
    out = capsys.readouterr().out
    assert "prefill (TTFT)" in out and "TPOT mean" in out and "at 70" in out
    assert main(["llm", H100, "--model", MODEL, "--batch", "4", "--prompt", "64", "--generate",
                 "16", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["decode"]["steps"] == 15 and d["totals"]["tokens_generated"] == 64
    assert d["totals"]["tokens_per_s"] == pytest.approx(64 / d["totals"]["time_s"])


def test_train_step(capsys):
    assert main(["llm", H100, "--model", MODEL, "--train", "--global-batch", "16", "--seq",
                 "128", "--dp", "2", "--tp", "3", "--pp", "1", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["parallel"]["chips_used"] == 6 and d["step"]["time_s"] > 0


def test_sweep_csv_and_plots(tmp_path, capsys):
    out = tmp_path / "s.csv"
    pngs = [tmp_path / f"{k}.png" for k in ("t", "p", "s")]
    assert main(["llm", H100, "--model", MODEL, "--batch", "1,8", "--tp", "1,3,4", "--pp", "1,2",
                 "--chips", "4,8", "--prompt", "32", "--generate", "8", "--out", str(out),
                 "--plot-throughput", str(pngs[0]), "--plot-phases", str(pngs[1]),
                 "--plot-scaling", str(pngs[2])]) == 0
    text = capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * 2 * 3 * 2
    bad = [r for r in rows if r["status"] != "ok"]
    assert any("do not split" in r["status"] for r in bad)  # tp 4 over 9 heads
    assert any("needs 6 chips, the system has 4" in r["status"] for r in bad)
    assert "best (tp, pp)" in text
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, start", [
    (["--tp", "2"], f"{MODEL}:"),                       # 9 heads over tp 2
    (["--batch", "0"], "--batch 0: batch:"),
    (["--batch", "x"], "--batch x: batch:"),
    (["--tp", "3", "--pp", "4", "--set", "system.chips=8"], "--set system.chips=8: system.chips:"),
])
def test_bad_input_is_one_line_exit_2(capsys, args, start):
    assert main(["llm", H100, "--model", MODEL, "--prompt", "16", "--generate", "4", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(start) and err.count("\n") == 1


def test_unknown_model_key_exit_2(tmp_path, capsys):
    m = tmp_path / "m.yaml"
    m.write_text("name: x\nsource: y\nlayers: 2\nheadz: 4\n")
    assert main(["llm", H100, "--model", str(m)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{m}:4: headz: unknown model key") and err.count("\n") == 1
