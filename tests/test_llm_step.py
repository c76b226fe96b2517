"""One llm prefill or decode step as a sweep / explore workload: the llm command's time, the
engine's energy, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.errors import WorkloadError
from simulator.hardware.chip import load_chip
from simulator.llm.inference import simulate_inference
from simulator.llm.model import load_model
from simulator.llm.step import step_totals
from simulator.tools import explore as ex
from simulator.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "configs" / "edge-tpu.yaml"
SMOL = ROOT / "configs" / "models" / "smollm2-135m.yaml"


@pytest.mark.parametrize("config", ["edge-tpu.yaml", "tpu-v4-tensorcore.yaml"])
@pytest.mark.parametrize("batch, context", [(1, 300), (3, 64)])
def test_step_time_is_the_llm_commands(config, batch, context):
    chip, model = load_chip(ROOT / "configs" / config), load_model(SMOL)
    dec = step_totals(chip, model, "decode", batch, context)
    res = simulate_inference(chip, model, batch, context - 1, 2, contexts=[context]).to_dict()
    assert dec["time_s"] == pytest.approx(res["decode"]["tpot_at_s"][str(context)], rel=1e-12)
    pre = step_totals(chip, model, "prefill", batch, context)
    res = simulate_inference(chip, model, batch, context, 1).to_dict()
    assert pre["time_s"] == pytest.approx(res["prefill"]["time_s"], rel=1e-12)
    assert pre["macs"] > dec["macs"] > 0


def test_step_energy_is_the_chips_energy_table():
    chip, model = load_chip(EDGE), load_model(SMOL)
    t = step_totals(chip, model, "decode", 2, 128)
    e, parts = chip.energy, t["energy_pj"]
    assert parts["mac"] == pytest.approx(t["macs"] * e.mac_pj[chip.compute_dtype], rel=1e-12)
    assert parts["dram"] == pytest.approx(t["dram_bytes"] * e.dram_pj_per_byte, rel=1e-12)
    assert parts["static"] == pytest.approx(e.static_w * t["time_s"] * 1e12, rel=1e-12)
    assert parts["total"] == pytest.approx(sum(v for k, v in parts.items() if k != "total"))
    # a decode step of a 135M-parameter model reads every weight once (2 bytes each, int8: 1)
    weight_bytes = model.parameters() * (1 if chip.weights_dtype == "int8" else 2)
    assert t["dram_bytes"] >= 0.9 * weight_bytes
    assert 0 < t["utilisation"] < 1 and t["total_cycles"] == pytest.approx(
        t["time_s"] * chip.clock_hz)


def test_a_model_too_big_for_the_dram_is_refused():
    chip = load_chip(EDGE).with_overrides({"dram.capacity_bytes": 64 * 2**20})
    with pytest.raises(WorkloadError, match="weights and KV cache need 0.13 GiB; the chip's DRAM "
                                            "holds 0.06 GiB"):
        step_totals(chip, load_model(SMOL), "decode", 1, 128)


LLM_SPEC = f"""\
base: {EDGE}
space:
  array.rows: [16, 32, 64]
  array.cols: [16, 64]
workloads:
  - gemm: 128x128x128
  - llm: {SMOL}
    phase: decode
    batch: 2
    context: 256
    weight: 3
objectives: {{latency_s: min, energy_j: min}}
"""


def test_explore_weighs_an_llm_step(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(LLM_SPEC)
    spec = ex.load_explore(spec_path)
    assert spec.workloads[1]["name"] == "llm smollm2-135m decode batch 2 context 256"
    got = ex.explore(spec, tmp_path / "r.jsonl", algorithm="grid")
    assert len(got["points"]) == 6
    from simulator.core.engine import simulate_gemms
    model = load_model(SMOL)
    for r in got["points"]:
        chip = load_chip(EDGE).with_overrides({"array.rows": r["array.rows"],
                                               "array.cols": r["array.cols"]})
        g = simulate_gemms(chip, [("gemm", 128, 128, 128)]).totals()
        s = step_totals(chip, model, "decode", 2, 256)
        assert r["latency_s"] == pytest.approx(g["time_s"] + 3 * s["time_s"], rel=1e-12)
        assert r["energy_j"] == pytest.approx(
            1e-12 * (g["energy_pj"]["total"] + 3 * s["energy_pj"]["total"]), rel=1e-12)


@pytest.mark.parametrize("edit, message", [
    ("    phase: decode\n", "    phase: train\n"),
    ("    context: 256\n", "    context: 9000\n"),
    ("    batch: 2\n", "    batch: 0\n"),
    ("    batch: 2\n", "    beams: 2\n"),
])
def test_bad_llm_workloads_are_one_line(tmp_path, capsys, edit, message):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(LLM_SPEC.replace(edit, message))
    code = main(["explore", str(spec_path), "--out", str(tmp_path / "r.jsonl"), "--budget", "2",
                 "--executor", "serial"])
    err = capsys.readouterr().err.strip()
    want = {"phase": "workloads[1].phase: must be one of decode, prefill, got 'train'",
            "context": "workloads[1].context: 9000 tokens exceed the model's context of 8192",
            "batch": "workloads[1].batch: must be a positive integer, got 0",
            "beams": "not allowed here: beams"}[message.split(":")[0].strip()]
    assert code == 2 and "\n" not in err and "spec.yaml:" in err and want in err, err


def test_a_missing_model_file_is_one_line(tmp_path, capsys):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(LLM_SPEC.replace(str(SMOL), str(tmp_path / "nope.yaml")))
    code = main(["explore", str(spec_path), "--out", str(tmp_path / "r.jsonl"), "--budget", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "nope.yaml" in err, err


def test_a_sweep_takes_an_llm_step(tmp_path):
    from simulator.tools.sweep import load_sweep, read_results, run_sweep
    p = tmp_path / "sweep.yaml"
    p.write_text(f"base: {EDGE}\ngrid:\n  array.rows: [16, 32]\nworkloads:\n"
                 f"  - llm: {SMOL}\n    phase: prefill\n    context: 64\n")
    run_sweep(load_sweep(p), tmp_path / "r.csv", "serial")
    rows = read_results(tmp_path / "r.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    model = load_model(SMOL)
    for r in rows:
        chip = load_chip(EDGE).with_overrides({"array.rows": int(r["array.rows"])})
        assert float(r["time_s"]) == step_totals(chip, model, "prefill", 1, 64)["time_s"]
        assert json.loads(r["dram_bytes"]) > 0


def test_chips_whose_dram_cannot_hold_the_model_are_recorded_as_failed(tmp_path, capsys):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(LLM_SPEC.replace("  array.cols: [16, 64]\n",
                                          "  dram.capacity_bytes: [67108864, 1073741824]\n"))
    assert main(["explore", str(spec_path), "--out", str(tmp_path / "r.jsonl"), "--algorithm",
                 "grid", "--executor", "serial"]) == 0
    out = capsys.readouterr().out
    assert "3 ok, 3 failed" in out and "weights and KV cache need" in out
    rows = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()[1:]]
    assert {r["status"] for r in rows if r["point"][1] == 67108864} == {"error"}
    assert {r["status"] for r in rows if r["point"][1] == 1073741824} == {"ok"}
