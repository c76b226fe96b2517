"""simulator.tools.cli: the run and validate commands, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import CONFIGS, ROOT, write
from simulator.tools.cli import main


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_text_table(capsys):
    code, out, err = run_cli(capsys, "run", str(CONFIGS / "tpu-v1.yaml"), "--gemm", "1024x1024x1024")
    assert code == 0 and err == ""
    for word in ("cycles", "time", "utilisation", "folds", "MACs", "SCALE-Sim"):
        assert word in out


def test_run_json_has_totals_and_chip(capsys):
    code, out, _ = run_cli(capsys, "run", str(CONFIGS / "gemmini.yaml"), "--gemm", "64x64x64",
                           "--set", "array.rows=8", "--set", "dram.bandwidth_bytes_per_s=0",
                           "--json")
    data = json.loads(out)
    assert code == 0
    for key in ("total_cycles", "compute_cycles", "stall_cycles", "macs", "folds", "utilisation",
                "compute_utilisation", "mapping_efficiency"):
        assert key in data["totals"]
    assert data["chip"]["array"]["rows"] == 8 and data["chip"]["name"] == "gemmini"
    assert data["totals"]["stall_cycles"] == 0 and data["totals"]["macs"] == 64 ** 3
    # 8x16 OS, full, folds pipelined (gemmini.yaml): 8 * 4 folds * 64 + one fill 8 + 16 - 2
    assert data["totals"]["compute_cycles"] == 32 * 64 + 22


def test_run_functional_and_reference_agree(capsys):
    base = ["run", str(CONFIGS / "gemmini.yaml"), "--gemm", "40x30x50", "--json", "--seed", "3",
            "--set", "array.dataflow=ws", "--set", "accumulator_bits=16"]
    _, fast, _ = run_cli(capsys, *base, "--functional")
    _, ref, _ = run_cli(capsys, *base, "--engine", "reference")
    fast, ref = json.loads(fast), json.loads(ref)
    assert fast["mode"] == ref["mode"] == "functional"
    assert fast["totals"] == ref["totals"]
    assert fast["totals"]["overflow_events"] > 0
    assert ref["last_output_cycle"] == ref["totals"]["compute_cycles"] - 1


@pytest.mark.parametrize("config", ["tpu-v1", "tpu-v4-mxu", "gemmini", "scalesim-compat"])
def test_validate_passes_on_shipped_configs(capsys, config):
    code, out, _ = run_cli(capsys, "validate", str(CONFIGS / f"{config}.yaml"), "--gemm",
                           "70x50x300", "--set", "array.rows=16", "--set", "array.cols=8")
    assert code == 0 and out.strip().endswith("OK") and "FAIL" not in out


def test_validate_saturate_notes_difference(capsys):
    code, out, _ = run_cli(capsys, "validate", str(CONFIGS / "gemmini.yaml"), "--gemm", "8x8x400",
                           "--set", "overflow=saturate", "--set", "accumulator_bits=16")
    assert code == 0 and "saturated" in out


BAD = [
    (["--gemm", "0x4x4"], "--gemm 0x4x4: gemm.M: must be a positive integer, got 0"),
    (["--gemm", "4x-2x4"], "--gemm 4x-2x4: gemm.N: must be a positive integer, got -2"),
    (["--gemm", "4x4"], "--gemm 4x4: gemm: expected MxNxK, e.g. --gemm 512x512x512"),
    (["--gemm", "4x4xq"], "--gemm 4x4xq: gemm.K: must be a positive integer, got 'q'"),
    (["--gemm", "4x4x4", "--set", "array.rows=-3"],
     "--set array.rows=-3: array.rows: must be a positive integer, got -3"),
    (["--gemm", "4x4x4", "--set", "array.dataflow=xy"],
     "--set array.dataflow=xy: array.dataflow: must be one of os, ws, is, got 'xy'"),
    (["--gemm", "4x4x4", "--set", "nope=1"], "--set nope=1: nope: unknown key"),
    (["--gemm", "4x4x4", "--set", "rows"], "--set rows: expected PATH=VALUE"),
    (["--gemm", "99999x99999x99999", "--functional"], "--gemm 99999x99999x99999: gemm: "
                                                     "functional mode would hold"),
    (["--gemm", "8192x8192x8192", "--engine", "reference"], "--gemm 8192x8192x8192: engine: "
                                                           "the reference would simulate"),
]


@pytest.mark.parametrize("args, message", BAD)
def test_bad_arguments_one_line_exit_2(capsys, args, message):
    code, out, err = run_cli(capsys, "run", str(CONFIGS / "tpu-v1.yaml"), *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(message)


@pytest.mark.parametrize("text, line, field", [
    ("name: x\narray:\n  rows: -3\n", 3, "array.rows: must be a positive integer, got -3"),
    ("array:\n  dataflow: diag\n", 2, "array.dataflow: must be one of"),
    ("clock_hz: 1e9\nfoo: 1\n", 2, "foo: unknown key"),
    ("array:\n  rows: [1\n", 3, "YAML syntax error"),
    ("array:\n- rows: 1\n", 1, "array: must be a mapping"),
    ("dtype: 8\n", 1, "dtype: must be one of"),
])
def test_broken_configs_one_line_exit_2(capsys, tmp_path, text, line, field):
    p = write(tmp_path, text)
    code, out, err = run_cli(capsys, "run", str(p), "--gemm", "4x4x4")
    assert code == 2 and out == ""
    assert err.startswith(f"{p}:{line}: {field}")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_usage_errors_are_one_line(capsys):
    code, _, err = run_cli(capsys, "run", str(CONFIGS / "tpu-v1.yaml"))
    assert code == 2 and err.count("\n") == 1 and "--gemm" in err
    code, _, err = run_cli(capsys, "frobnicate")
    assert code == 2 and err.count("\n") == 1


def test_console_script_and_module_entry_points(tmp_path):
    env = dict(os.environ)
    bad = write(tmp_path, "array:\n  rows: -3\n")
    proc = subprocess.run([sys.executable, "-m", "simulator", "run", str(bad), "--gemm", "4x4x4"],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"{bad}:2: array.rows: must be a positive integer, got -3\n"
    proc = subprocess.run([sys.executable, "-m", "simulator", "run",
                           str(CONFIGS / "scalesim-compat.yaml"), "--gemm", "64x64x64",
                           "--set", "array.rows=8", "--set", "array.cols=8", "--json"],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["totals"]["scalesim_cycles"] == 4991


def test_keys_prints_the_config_reference(capsys):
    code, out, _ = run_cli(capsys, "keys")
    assert code == 0 and "`array.rows`" in out and "`clock_hz`" in out


def test_run_topology_prints_per_layer_table_with_stalls_and_energy(capsys, tmp_path):
    code, out, err = run_cli(capsys, "run", str(CONFIGS / "tpu-v1.yaml"), "--topology",
                             str(CONFIGS / "topologies" / "resnet18.csv"), "--export-scalesim",
                             str(tmp_path / "ss"))
    assert code == 0 and err == ""
    assert "layer4.1.conv2" in out and "stall" in out and "energy" in out and "DRAM" in out
    rows = (tmp_path / "ss" / "COMPUTE_REPORT.csv").read_text().splitlines()
    assert len(rows) == 22 and rows[0].startswith("LayerID, Total Cycles")


def test_run_topology_json_ops(capsys):
    code, out, _ = run_cli(capsys, "run", str(CONFIGS / "gemmini.yaml"), "--topology",
                           str(CONFIGS / "topologies" / "alexnet.csv"), "--json")
    data = json.loads(out)
    assert [op["name"] for op in data["ops"]][:2] == ["conv1", "conv2"]
    for op in data["ops"]:
        assert set(data["totals"]) - {"time_s", "achieved_ops_per_s", "peak_ops_per_s",
                                      "average_power_w", "memory_bound_ops", "unit_busy_cycles",
                                      "unit_utilisation"} <= set(op)
    assert data["totals"]["total_cycles"] == sum(op["total_cycles"] for op in data["ops"])


def test_topology_errors_are_one_line(capsys, tmp_path):
    bad = write(tmp_path, "Layer, M, N, K,\nl1, 4, -4, 4,\n", "bad.csv")
    code, out, err = run_cli(capsys, "run", str(CONFIGS / "gemmini.yaml"), "--topology", str(bad))
    assert code == 2 and err == f"{bad}:2: N: must be a positive integer, got -4\n"
    code, _, err = run_cli(capsys, "run", str(CONFIGS / "gemmini.yaml"), "--topology", str(bad),
                           "--gemm", "4x4x4")
    assert code == 2 and err.count("\n") == 1


def test_import_scalesim_writes_a_loadable_chip(capsys, tmp_path):
    cfg = write(tmp_path, "[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\n"
                          "IfmapSramSzkB: 64\nFilterSramSzkB: 64\nOfmapSramSzkB: 64\n"
                          "Dataflow: os\n", "s.cfg")
    out_yaml = tmp_path / "chip.yaml"
    code, out, _ = run_cli(capsys, "import-scalesim", str(cfg), "-o", str(out_yaml))
    assert code == 0 and out_yaml.exists()
    code, out, _ = run_cli(capsys, "run", str(out_yaml), "--gemm", "64x64x64", "--json")
    assert json.loads(out)["totals"]["scalesim_cycles"] == 4991


def test_json_reports_are_byte_identical_across_runs(capsys):
    argv = ["run", str(CONFIGS / "tpu-v1.yaml"), "--topology",
            str(CONFIGS / "topologies" / "alexnet.csv"), "--json"]
    main(argv)
    first = capsys.readouterr().out
    main(argv)
    assert capsys.readouterr().out == first
    proc = subprocess.run([sys.executable, "-m", "simulator", *argv], capture_output=True,
                          cwd=ROOT, check=True)
    assert proc.stdout.decode() == first


def test_yaml_alias_bomb_is_one_line_exit_2(capsys, tmp_path):
    from test_config import ALIAS_BOMB, hang_guard
    p = write(tmp_path, ALIAS_BOMB)
    with hang_guard():
        code, out, err = run_cli(capsys, "run", str(p), "--gemm", "8x8x8")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"{p}:1: YAML anchors and aliases are not supported (found &a)")
