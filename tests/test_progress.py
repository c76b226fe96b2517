"""simulator.tools.progress: one tqdm bar for sweeps and training, drawn only when enabled (a terminal)."""

from __future__ import annotations

import re
import sys

from conftest import CONFIGS, write
from simulator.tools.cli import main
from simulator.tools.progress import progress_bar
from simulator.tools.sweep import load_sweep, run_sweep


def test_disabled_bar_is_none_and_draws_nothing(capsys):
    assert progress_bar(10, "rows", False) is None
    assert capsys.readouterr().err == ""


def test_enabled_bar_counts_to_total(capsys):
    bar = progress_bar(5, "rows", True)
    bar.update(2)
    bar.update(3)
    bar.close()
    err = capsys.readouterr().err
    assert "5/5" in err and "rows" in err


def test_sweep_bar_counts_every_row(tmp_path, capsys):
    s = load_sweep(write(tmp_path, f"base: {CONFIGS / 'gemmini.yaml'}\n"
                                   "grid:\n  array.rows: [4, 8, 16]\n"
                                   "workloads:\n  - gemm: 64x64x64\n  - gemm: 32x16x8\n", "s.yaml"))
    assert run_sweep(s, tmp_path / "r.csv", "serial", progress=True) == (6, 0)
    err = capsys.readouterr().err
    assert "6/6" in err and "rows" in err
    assert run_sweep(s, tmp_path / "q.csv", "serial", progress=False) == (6, 0)
    assert capsys.readouterr().err == ""


def test_train_bar_only_on_a_terminal(capsys, monkeypatch):
    cmd = ["train", str(CONFIGS / "tpu-v4-mxu.yaml"), "--model", "linear:10:1", "--steps", "20"]
    assert main(cmd) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(cmd) == 0
    err = capsys.readouterr().err
    assert re.search(r"20/20 \[", err) and "steps" in err
