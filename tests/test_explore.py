"""explore: the Pareto front against brute force, resume after Ctrl-C and kill -9, front YAMLs
that reproduce their rows through `run`, and one-line errors on bad input."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.tools import explore as ex
from simulator.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "configs" / "edge-tpu.yaml"


def _spec(tmp_path: Path, body: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(f"base: {EDGE}\n" + body)
    return p


SMALL = """\
space:
  array.rows: {log_range: [8, 64, 2]}
  array.cols: [8, 16, 32, 64]
  array.dataflow: {choices: [os, ws, is]}
  clock_hz: [2.44e+8, 4.88e+8]
rules: [array.rows * array.cols <= 2048]
workloads:
  - gemm: 256x256x256
  - gemm: 64x512x128
    weight: 2
objectives: {latency_s: min, energy_j: min}
constraints: [power_w <= 1.9]
"""


def _dominates(a, b, maximise):
    a = [-x if m else x for x, m in zip(a, maximise)]
    b = [-x if m else x for x, m in zip(b, maximise)]
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def _brute_front(values, maximise):
    return [i for i, v in enumerate(values)
            if not any(_dominates(w, v, maximise) for j, w in enumerate(values) if j != i)]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4).flatmap(lambda k: st.tuples(
    st.lists(st.lists(st.integers(0, 5), min_size=k, max_size=k), max_size=30),
    st.lists(st.booleans(), min_size=k, max_size=k))))
def test_pareto_front_matches_the_definition(case):
    values, maximise = case
    front = ex.pareto_front(values, maximise) if values else ex.pareto_front([], maximise)
    assert front == _brute_front(values, maximise)


def _oracle(spec: ex.Explore) -> list[dict]:
    """Evaluate every valid point of the space directly (no sampler): the exhaustive front."""
    from simulator.hardware.config import flatten
    from simulator.tools.sweep import _evaluate
    rows = []
    for i, p in enumerate(ex._valid_points(spec)):
        res = [_evaluate(flatten(spec.base), spec.keys, p, w) for w in spec.workloads]
        rows.append(ex._row(spec, ex._aggregate(spec, p, res), i))
    return rows


def _points(rows):
    return sorted(json.dumps([r[k] for k in r if "." in k or k == "clock_hz"]) for r in rows)


@pytest.mark.parametrize("algorithm", ["grid", "nsga2", "tpe", "random"])
def test_front_equals_brute_force(tmp_path, algorithm):
    spec = ex.load_explore(_spec(tmp_path, SMALL))
    oracle = _oracle(spec)
    want = ex.front_rows(spec, oracle)
    assert want and len(want) < len(oracle)
    got = ex.explore(spec, tmp_path / "r.jsonl", algorithm=algorithm, budget=len(oracle), seed=3)
    by_point = {_points([o])[0]: o for o in oracle}
    for r in got["points"]:  # every evaluation equals the direct one
        o = by_point[_points([r])[0]]
        assert (r["latency_s"], r["energy_j"], r["feasible"]) == \
            (o["latency_s"], o["energy_j"], o["feasible"])
    # the front of what was evaluated, by brute force: no dominated point kept, none lost
    feas = [r for r in got["points"] if r["feasible"]]
    vals = [(r["latency_s"], r["energy_j"]) for r in feas]
    assert _points(got["front"]) == _points([feas[i] for i in _brute_front(vals, [False] * 2)])
    if algorithm in ("grid", "random"):  # they cover the whole space: the exhaustive front
        assert len(got["points"]) == len(oracle)
        assert _points(got["front"]) == _points(want)
    else:  # the evolutionary and Bayesian searches stop asking new chips near the front
        assert len(set(_points(got["front"])) & set(_points(want))) >= 0.8 * len(want)


def test_partial_search_front_is_the_front_of_what_it_evaluated(tmp_path):
    spec = ex.load_explore(_spec(tmp_path, SMALL))
    got = ex.explore(spec, tmp_path / "r.jsonl", algorithm="nsga2", budget=15, seed=1)
    assert len(got["points"]) == 15
    feas = [r for r in got["points"] if r["feasible"]]
    vals = [(r["latency_s"], r["energy_j"]) for r in feas]
    assert _points(got["front"]) == _points([feas[i] for i in _brute_front(vals, [False] * 2)])
    assert all(r["array.rows"] * r["array.cols"] <= 2048 for r in got["points"])


def test_the_same_seed_gives_the_same_search_on_every_executor(tmp_path):
    spec = ex.load_explore(_spec(tmp_path, SMALL))
    serial = ex.explore(spec, tmp_path / "s.jsonl", "tpe", 20, 4, executor="serial")
    process = ex.explore(spec, tmp_path / "p.jsonl", "tpe", 20, 4, executor="process",
                         workers=2)
    assert serial == process


def test_a_local_dask_cluster_gives_the_serial_search(tmp_path):
    pytest.importorskip("dask.distributed")
    # latency and power conflict (a faster chip draws more power): a front of several chips
    spec = ex.load_explore(_spec(tmp_path, SMALL.replace("energy_j: min", "power_w: min")))
    serial = ex.explore(spec, tmp_path / "s.jsonl", "nsga2", 30, 6, executor="serial")
    dask = ex.explore(spec, tmp_path / "d.jsonl", "nsga2", 30, 6, executor="dask", workers=2)
    assert len(serial["front"]) >= 2 and len(serial["points"]) == 30
    assert dask["front"] == serial["front"] and dask["points"] == serial["points"]


def test_one_dask_cluster_serves_a_whole_search(tmp_path, monkeypatch):
    pytest.importorskip("dask.distributed")
    import dask.distributed
    started = []
    real = dask.distributed.LocalCluster

    def counting(*a, **k):
        started.append(1)
        return real(*a, **k)
    monkeypatch.setattr(dask.distributed, "LocalCluster", counting)
    spec = ex.load_explore(_spec(tmp_path, SMALL))
    got = ex.run_explore(spec, tmp_path / "d.jsonl", "tpe", 24, 1, executor="dask", workers=1)
    assert len(got.points) == 24 and len(started) == 1  # three batches of 8, one cluster


def test_ctrl_c_then_resume_gives_the_same_search(tmp_path, monkeypatch):
    spec = ex.load_explore(_spec(tmp_path, SMALL))
    whole = ex.run_explore(spec, tmp_path / "a.jsonl", "nsga2", 30, 5)
    real = ex._aggregate
    calls = {"n": 0}

    def stop_at_seven(*a):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(*a)
    monkeypatch.setattr(ex, "_aggregate", stop_at_seven)
    with pytest.raises(KeyboardInterrupt, match="6 points evaluated now"):
        ex.run_explore(spec, tmp_path / "b.jsonl", "nsga2", 30, 5)
    monkeypatch.setattr(ex, "_aggregate", real)
    resumed = ex.run_explore(spec, tmp_path / "b.jsonl", "nsga2", 30, 5)
    assert (resumed.evaluated_before, resumed.evaluated_now) == (6, 24)
    assert resumed.points == whole.points and resumed.front == whole.front
    lines = (tmp_path / "b.jsonl").read_text().splitlines()[1:]
    assert len(lines) == len({json.dumps(json.loads(x)["point"]) for x in lines}) == 30


def test_kill_9_then_resume_gives_the_same_front(tmp_path):
    body = SMALL.replace("  - gemm: 64x512x128\n    weight: 2\n",
                         f"  - topology: {ROOT / 'configs/topologies/resnet18.csv'}\n")
    spec_path = _spec(tmp_path, body)
    cmd = [sys.executable, "-m", "simulator", "explore", str(spec_path), "--budget", "20",
           "--seed", "2", "--executor", "serial"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd + ["--out", str(tmp_path / "a.jsonl")], check=True, env=env,
                   capture_output=True)
    out = tmp_path / "b.jsonl"
    proc = subprocess.Popen(cmd + ["--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open(out, "a") as fh:
        fh.write('{"point": [8, 8, "o')  # a torn last line, as a kill mid-write leaves
    before = out.read_text().count("\n") - 1
    assert 4 <= before < 20
    r = subprocess.run(cmd + ["--out", str(out)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"({before} already in" in r.stdout and f"{20 - before} evaluated now" in r.stdout
    a, b = ((tmp_path / f).read_text().splitlines() for f in ("a.jsonl", "b.jsonl"))
    assert a[0] == b[0] and sorted(a[1:]) == sorted(b[1:])  # same points, none twice


def test_front_yamls_reproduce_their_rows_through_run(tmp_path, capsys):
    spec_path = _spec(tmp_path, SMALL)
    assert main(["explore", str(spec_path), "--out", str(tmp_path / "r.jsonl"), "--budget", "20",
                 "--executor", "serial", "--front", str(tmp_path / "front"), "--plot",
                 str(tmp_path / "p.png")]) == 0
    printed = capsys.readouterr().out
    assert "Pareto front" in printed and (tmp_path / "p.png").stat().st_size > 10_000
    spec = ex.load_explore(spec_path)
    rows = ex.explore(spec, tmp_path / "r.jsonl", budget=20)["front"]
    yamls = sorted((tmp_path / "front").glob("chip-*.yaml"))
    assert len(yamls) == len(rows) >= 1
    for row, path in zip(rows, sorted(yamls, key=lambda p: int(p.stem.split("-")[1]))):
        latency_s = energy_j = 0.0
        parts = []
        for gemm, weight in (("256x256x256", 1.0), ("64x512x128", 2.0)):
            assert main(["run", str(path), "--gemm", gemm, "--json"]) == 0
            parts.append((weight, json.loads(capsys.readouterr().out)["totals"]))
        latency_s = sum(w * t["time_s"] for w, t in parts)
        energy_j = sum(w * t["energy_pj"]["total"] * 1e-12 for w, t in parts)
        assert (latency_s, energy_j) == (row["latency_s"], row["energy_j"])


def test_area_objective_with_a_stand_in_model(tmp_path, monkeypatch):
    area = types.ModuleType("simulator.hardware.area")
    area.chip_area_mm2 = lambda chip: 0.01 * chip.array.rows * chip.array.cols  # test only
    monkeypatch.setitem(sys.modules, "simulator.hardware.area", area)
    body = SMALL.replace("objectives: {latency_s: min, energy_j: min}",
                         "objectives: {latency_s: min, area_mm2: min, throughput: max}") \
        .replace("constraints: [power_w <= 1.9]", "constraints: [area_mm2 <= 20]")
    got = ex.explore(_spec(tmp_path, body), tmp_path / "r.jsonl", algorithm="grid")
    assert all(r["area_mm2"] == 0.01 * r["array.rows"] * r["array.cols"] for r in got["points"])
    feas = [r for r in got["points"] if r["feasible"]]
    assert all(r["area_mm2"] <= 20 for r in feas) and len(feas) < len(got["points"])
    vals = [(r["latency_s"], r["area_mm2"], r["throughput"]) for r in feas]
    assert _points(got["front"]) == _points([feas[i] for i in
                                             _brute_front(vals, [False, False, True])])
    assert (8, 8) in {(r["array.rows"], r["array.cols"]) for r in got["front"]}
    fig = ex.pareto_figure(ex.load_explore(tmp_path / "spec.yaml"), got["points"], got["front"])
    assert len(fig.axes) == 9  # a pair matrix for three objectives


def _run(args, capsys):
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("edit, message", [
    (("array.dataflow: {choices: [os, ws, is]}", "array.nope: [1, 2]"),
     "spec.yaml:5: space.array.nope: unknown config key"),
    (("array.cols: [8, 16, 32, 64]", "array.cols: []"),
     "spec.yaml:4: space.array.cols: must list at least one value"),
    (("array.cols: [8, 16, 32, 64]", "array.cols: {range: [64, 8, 8]}"),
     "space.array.cols: range needs step > 0 and stop >= start"),
    (("rules: [array.rows * array.cols <= 2048]", "rules: [array.rows * array.cols > 8192]"),
     "rules: no point of the space (96) satisfies them"),
    (("rules: [array.rows * array.cols <= 2048]", "rules: [array.rows == array.bogus]"),
     "unknown name 'array.bogus'"),
    (("objectives: {latency_s: min, energy_j: min}", "objectives: {speed: max}"),
     "objectives.speed: unknown objective"),
    (("constraints: [power_w <= 1.9]", "constraints: [power_w <= 0.001]"),
     "constraints: no evaluated point (12) meets them; closest: array.rows="),
])
def test_bad_input_is_one_line(tmp_path, capsys, edit, message):
    spec = _spec(tmp_path, SMALL.replace(*edit))
    code, err = _run(["explore", str(spec), "--out", str(tmp_path / "r.jsonl"), "--budget", "12",
                      "--executor", "serial"], capsys)
    assert code == 2 and "\n" not in err and message in err, err


def test_area_without_the_model_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "simulator.hardware.area", None)  # import fails
    spec = _spec(tmp_path, SMALL.replace("energy_j: min", "area_mm2: min"))
    code, err = _run(["explore", str(spec), "--out", str(tmp_path / "r.jsonl"), "--budget", "4"],
                     capsys)
    assert code == 2 and err.endswith("area_mm2: area model not available") and "\n" not in err


def test_a_results_file_of_another_spec_is_refused(tmp_path, capsys):
    spec = _spec(tmp_path, SMALL)
    out = str(tmp_path / "r.jsonl")
    assert main(["explore", str(spec), "--out", out, "--budget", "30", "--executor", "serial"]) == 0
    other = _spec(tmp_path, SMALL.replace("power_w <= 1.9", "power_w <= 1.8"), "other.yaml")
    code, err = _run(["explore", str(other), "--out", out, "--budget", "4"], capsys)
    assert code == 2 and "holds results of a different search: constraints[0] is " \
        "\"power_w <= 1.9\" there, \"power_w <= 1.8\" here" in err


def test_a_workload_failing_on_some_chips_is_recorded(tmp_path, capsys):
    base = tmp_path / "base.yaml"
    base.write_text(EDGE.read_text() + "tiling:\n  tile_k: 96\n")
    spec = tmp_path / "spec.yaml"  # tile_k 96 is no multiple of 64 rows: those chips fail
    spec.write_text(f"base: {base}\n" + SMALL.replace("{log_range: [8, 64, 2]}", "[16, 32, 64]")
                    .replace("array.dataflow: {choices: [os, ws, is]}", "array.dataflow: [ws]"))
    code = main(["explore", str(spec), "--out", str(tmp_path / "r.jsonl"), "--algorithm", "grid",
                 "--executor", "serial"])
    out = capsys.readouterr().out
    assert code == 0 and "failed" in out and "tiling.tile_k: must be a multiple" in out
    rows = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()[1:]]
    assert {r["status"] for r in rows if r["point"][0] == 64} == {"error"}
    assert {r["status"] for r in rows if r["point"][0] != 64} == {"ok"}


def test_the_shipped_example_loads():
    spec = ex.load_explore(ROOT / "examples" / "explore-edge.yaml")
    assert [m for m, _ in spec.objectives] == ["latency_s", "energy_j", "area_mm2"]
    assert [c for c, _ in spec.constraints] == ["power_w <= 2", "area_mm2 <= 25"]
    assert [(w["name"], w["weight"]) for w in spec.workloads] == [
        ("zoo:mobilenet-v2 batch 1, image 224", 1.0), ("kws-lstm", 1.0)]
    assert spec.size >= 1000
