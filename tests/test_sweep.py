"""simulator.tools.sweep: grids, resume after SIGKILL with no lost or duplicated rows, executors agree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import CONFIGS, ROOT, write
from simulator import ConfigError, WorkloadError
from simulator.tools.sweep import load_sweep, read_results, run_sweep


def sweep_text(rows=10):
    return (f"base: {CONFIGS / 'gemmini.yaml'}\n"
            f"grid:\n  array.rows: {{range: [4, {4 * rows}, 4]}}\n  array.dataflow: [os, ws, is]\n"
            f"zip:\n  array.cols: [8, 16]\n  buffers.a.bytes: [16384, 65536]\n"
            f"workloads:\n  - gemm: 300x200x100\n"
            f"  - topology: {CONFIGS / 'topologies' / 'alexnet.csv'}\n"
            f"  - train: linear:10:1\n    batch: 32\n")


def keyed(rows):
    return {(r["point"], r["workload"]): r for r in rows}


def test_grid_zip_and_ranges(tmp_path):
    s = load_sweep(write(tmp_path, sweep_text(), "s.yaml"))
    assert s.axes == ("array.rows", "array.dataflow", "array.cols", "buffers.a.bytes")
    assert len(s.points) == 10 * 3 * 2 and len(s.workloads) == 3
    assert s.points[0] == (4, "os", 8, 16384) and s.points[1] == (4, "os", 16, 65536)


def test_serial_rows_complete_and_resume_is_a_no_op(tmp_path):
    s = load_sweep(write(tmp_path, sweep_text(3), "s.yaml"))
    out = tmp_path / "r.csv"
    assert run_sweep(s, out, "serial") == (54, 0)
    assert run_sweep(s, out, "serial") == (0, 54)
    rows = read_results(out)
    assert len(rows) == 54 and all(r["status"] == "ok" for r in rows)


def test_sigkill_mid_run_then_resume_gives_every_row_once(tmp_path):
    text = sweep_text(40)
    sweep_file = write(tmp_path, text, "s.yaml")
    serial = tmp_path / "serial.csv"
    run_sweep(load_sweep(sweep_file), serial, "serial")
    out = tmp_path / "killed.csv"
    cmd = [sys.executable, "-m", "simulator", "sweep", str(sweep_file), "--out", str(out),
           "--executor", "process", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    header_size = len(",".join(load_sweep(sweep_file).columns)) + 1
    while time.time() < deadline and (not out.exists() or out.stat().st_size <= header_size):
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers, mid-run
    proc.wait()
    partial = read_results(out)
    total = len(load_sweep(sweep_file).points) * 3
    assert 0 < len(partial) < total, "the kill should land mid-run"
    with open(out, "ab") as fh:  # and simulate a torn last line on top
        fh.write(b"deadbeef,12,gemm 300x2")
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = read_results(out)
    assert len(rows) == total
    assert len({(r["point"], r["workload"]) for r in rows}) == total
    assert keyed(rows) == keyed(read_results(serial))


def test_dask_local_cluster_gives_identical_rows(tmp_path):
    pytest.importorskip("dask.distributed")
    s = load_sweep(write(tmp_path, sweep_text(3), "s.yaml"))
    run_sweep(s, tmp_path / "serial.csv", "serial")
    run_sweep(s, tmp_path / "dask.csv", "dask", workers=2)
    assert keyed(read_results(tmp_path / "dask.csv")) == keyed(read_results(tmp_path / "serial.csv"))


def test_error_rows_are_kept_not_fatal(tmp_path):
    text = (f"base: {CONFIGS / 'gemmini.yaml'}\ngrid:\n  buffers.a.bytes: [1, 65536]\n"
            f"workloads:\n  - gemm: 64x64x64\n")
    s = load_sweep(write(tmp_path, text, "s.yaml"))
    run_sweep(s, tmp_path / "r.csv", "serial")
    rows = read_results(tmp_path / "r.csv")
    assert [r["status"] for r in rows] == ["error", "ok"]
    assert "too small for the smallest tile" in rows[0]["error"]


def test_output_of_another_sweep_is_refused(tmp_path):
    out = tmp_path / "r.csv"
    run_sweep(load_sweep(write(tmp_path, sweep_text(2), "a.yaml")), out, "serial")
    with pytest.raises(WorkloadError, match="another sweep|another header"):
        run_sweep(load_sweep(write(tmp_path, sweep_text(3), "b.yaml")), out, "serial")


@pytest.mark.parametrize("text, line, message", [
    ("grid: {}\nworkloads: [{gemm: 4x4x4}]\n", 1, "base: must name the base chip config"),
    ("base: X\nworkloads: [{gemm: 4x4x4}]\n", 1, "base: "),
    ("base: B\ngrid:\n  array.rows: [4, -1]\nworkloads: [{gemm: 4x4x4}]\n", 3,
     "array.rows: must be a positive integer, got -1"),
    ("base: B\ngrid:\n  array.nope: [4]\nworkloads: [{gemm: 4x4x4}]\n", 3, "array.nope: unknown key"),
    ("base: B\ngrid:\n  array.rows: {range: [8, 4, 1]}\nworkloads: [{gemm: 4x4x4}]\n", 3,
     "array.rows: range needs step > 0 and stop >= start"),
    ("base: B\nzip:\n  array.rows: [4, 8]\n  array.cols: [4]\nworkloads: [{gemm: 4x4x4}]\n", 2,
     "zip: all zipped axes need the same number of values"),
    ("base: B\nworkloads: []\n", 2, "workloads: must list at least one workload"),
    ("base: B\nworkloads:\n  - {gemm: 0x4x4}\n", 3, "workloads[0].gemm: --gemm 0x4x4: gemm.M"),
    ("base: B\nworkloads:\n  - {conv: 1}\n", 3, "workloads[0]: needs exactly one of"),
    # extra keys are checked per kind, not against the union of all kinds' keys
    ("base: B\nworkloads:\n  - {onnx: m.onnx, input: x=8x4}\n", 3, "not allowed here: input"),
    ("base: B\nworkloads:\n  - {torch: m.py:f, inputs: {x: 8x4}}\n", 3,
     "not allowed here: inputs"),
    ("base: B\nworkloads:\n  - {gemm: 4x4x4, batch: 8}\n", 3, "not allowed here: batch"),
    ("base: B\nworkloads:\n  - {train: 'linear:4:2', seq: 8}\n", 3, "not allowed here: seq"),
    ("base: B\nworkloads:\n  - {model: 'zoo:small-cnn', input: 2x3}\n", 3,
     "not allowed here: input"),
    ("base: B\nfoo: 1\nworkloads: [{gemm: 4x4x4}]\n", 2, "foo: unknown key"),
])
def test_bad_sweep_files(tmp_path, text, line, message):
    p = write(tmp_path, text.replace("base: B", f"base: {CONFIGS / 'gemmini.yaml'}"), "s.yaml")
    with pytest.raises(ConfigError) as info:
        load_sweep(p)
    assert str(info.value).startswith(f"{p}:{line}: ") and message in str(info.value)


def test_sweep_cli(tmp_path, capsys):
    from simulator.tools.cli import main
    p = write(tmp_path, sweep_text(2), "s.yaml")
    assert main(["sweep", str(p), "--out", str(tmp_path / "o.csv"), "--executor", "serial"]) == 0
    assert "36 written now" in capsys.readouterr().out
