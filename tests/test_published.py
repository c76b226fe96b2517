"""The published-measurement suite (``calibrate --published``) and the TDP check (power.tdp_w)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from simulator import load_chip, simulate_gemm
from simulator.tools.cli import main
from simulator.tools.published import (METRICS, Outcome, evaluate, fit_splits, load_records,
                                       log_ratio_stats, refit_value, split_indices, summarise)

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "calibration" / "published"


@pytest.fixture(scope="module")
def shipped():
    """Every shipped record and its evaluation (rows, outcomes)."""
    records = load_records(PUBLISHED)
    rows, outs = evaluate(records)
    return records, rows, outs


# --------------------------------------------------------------------------- shipped records

def test_shipped_records_parse_validate_and_cover_five_families(shipped):
    records, _, _ = shipped
    assert len(records) >= 40
    families = {r.family for r in records}
    assert len(families) >= 5
    assert len({r.label for r in records}) == len(records)  # labels name one record each
    for r in records:
        d = r.data
        assert d["url"].startswith("http")
        assert d["citation"] and d["hardware"] and d["workload"] and d["precision"]
        assert d["value"] > 0
        assert d["unit"] in METRICS[d["sim"]["metric"]][0]
        assert (ROOT / d["sim"]["config"]).is_file()
        assert len(d["sim"]["mapping"]) > 40  # says in words how the record maps


def test_every_shipped_record_runs_to_a_finite_positive_prediction(shipped):
    records, rows, _ = shipped
    assert len(rows) == len(records)
    for r in rows:
        assert math.isfinite(r["ours"]) and r["ours"] > 0, r["label"]
        assert r["ratio"] == pytest.approx(r["ours"] / r["measured"])
        assert r["log_ratio"] == pytest.approx(math.log(r["ratio"]))


def test_a_zoo_record_equals_the_engine_run_of_its_mapping(shipped):
    """Independent path: the Edge TPU MobileNetV2 record's prediction is the engine's time of
    zoo:mobilenet-v2 at 224 on configs/edge-tpu.yaml, in ms."""
    from simulator.core.engine import run
    from simulator.kernels.zoo import build_zoo
    records, rows, _ = shipped
    i = next(i for i, r in enumerate(records) if r.label == "coral-bench-usb-mobilenet-v2-224")
    rep = run(load_chip(ROOT / "configs/edge-tpu.yaml"), build_zoo("mobilenet-v2", 1, None,
                                                                  224).program)
    assert rows[i]["ours"] == pytest.approx(rep.time_s * 1e3, rel=1e-12)


# --------------------------------------------------------------------------- statistics

def test_summary_equals_a_hand_computation():
    rows = [{"family": "A", "log_ratio": math.log(2.0)}, {"family": "A", "log_ratio": math.log(0.5)},
            {"family": "A", "log_ratio": math.log(1.1)}, {"family": "B", "log_ratio": math.log(4.0)}]
    s = summarise(rows)
    ln2 = 0.6931471805599453
    assert s["families"]["A"]["median_abs_log_ratio"] == pytest.approx(ln2)
    assert s["families"]["A"]["max_abs_log_ratio"] == pytest.approx(ln2)
    assert s["families"]["A"]["geomean_ratio"] == pytest.approx(1.1 ** (1 / 3))
    assert s["families"]["B"]["median_abs_log_ratio"] == pytest.approx(2 * ln2)
    # all four |log|: ln2, ln2, ln1.1, 2 ln2 -> median of the middle two = ln2
    assert s["all"]["median_abs_log_ratio"] == pytest.approx(ln2)
    assert s["all"]["max_abs_log_ratio"] == pytest.approx(2 * ln2)
    assert s["all"]["records"] == 4
    assert math.isnan(log_ratio_stats([])["median_abs_log_ratio"])


FIXTURE = """\
- id: fx-a1
  family: FamA
  citation: "fixture"
  url: https://example.org/a
  hardware: test chip
  accelerators: 1
  workload: one GEMM
  precision: INT8
  value: {v1}
  unit: cycles
  sim:
    config: configs/gemmini.yaml
    run: {{kind: gemms, gemms: [{{shape: 64x48x80, count: 1}}]}}
    metric: cycles
    mapping: "one 64x48x80 GEMM on configs/gemmini.yaml; cycles = the run's cycles"
- id: fx-a2
  family: FamA
  citation: "fixture"
  url: https://example.org/a
  hardware: test chip
  accelerators: 1
  workload: the same GEMM three times
  precision: INT8
  value: {v2}
  unit: cycles
  sim:
    config: configs/gemmini.yaml
    run: {{kind: gemms, gemms: [{{shape: 64x48x80, count: 3}}]}}
    metric: cycles
    mapping: "three 64x48x80 GEMMs on configs/gemmini.yaml one after another"
- id: fx-b1
  family: FamB
  citation: "fixture"
  url: https://example.org/b
  hardware: test chip
  accelerators: 1
  workload: one GEMM, in ms
  precision: INT8
  value: {v3}
  unit: ms
  sim:
    config: configs/gemmini.yaml
    run: {{kind: gemms, gemms: [{{shape: 64x48x80}}]}}
    metric: latency_ms
    mapping: "one 64x48x80 GEMM on configs/gemmini.yaml; ms = seconds x 1000"
"""


def test_cli_summary_on_a_fixture_equals_a_hand_computation(tmp_path, capsys):
    """Measured values are set from the engine's own cycles (an independent call) so the
    ratios are known: FamA 1/2 and 4/1... by hand: |log| = ln 2 and ln 4 / 3."""
    rep = simulate_gemm(load_chip(ROOT / "configs/gemmini.yaml"), shape=(64, 48, 80))
    c, t_ms = rep.total_cycles, rep.time_s * 1e3
    (tmp_path / "fx.yaml").write_text(FIXTURE.format(v1=2 * c, v2=3 * c / 4, v3=t_ms * 1.25))
    assert main(["calibrate", "--published", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in out["rows"]] == ["fx-a1", "fx-a2", "fx-b1"]
    ratios = [r["ratio"] for r in out["rows"]]
    assert ratios == pytest.approx([0.5, 4.0, 0.8])
    fam_a = out["summary"]["families"]["FamA"]
    assert fam_a["median_abs_log_ratio"] == pytest.approx((math.log(2) + math.log(4)) / 2)
    assert fam_a["max_abs_log_ratio"] == pytest.approx(math.log(4))
    assert fam_a["geomean_ratio"] == pytest.approx(math.sqrt(0.5 * 4.0))
    assert out["summary"]["families"]["FamB"]["max_abs_log_ratio"] == pytest.approx(
        math.log(1.25))
    assert out["summary"]["all"]["median_abs_log_ratio"] == pytest.approx(math.log(2))
    # text output: one line per record and a line per family
    assert main(["calibrate", "--published", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "fx-a2" in text and "FamB" in text


def test_cli_fit_reports_five_seeded_splits(tmp_path, capsys):
    rep = simulate_gemm(load_chip(ROOT / "configs/gemmini.yaml"), shape=(64, 48, 80))
    c = rep.total_cycles
    (tmp_path / "fx.yaml").write_text(FIXTURE.format(v1=2 * c, v2=3 * c / 4, v3=1.0))
    assert main(["calibrate", "--published", str(tmp_path), "--fit", "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)["fit"]
    assert fit["seeds"] == [0, 1, 2, 3, 4]
    for split in fit["splits"]:
        # FamA (two records) holds one out and fits on the other; FamB (one) holds none out
        assert [h["family"] for h in split["holdout_rows"]] == ["FamA"]
        assert set(split["params"]) == {"FamA", "FamB"}
        assert set(split["params"]["FamA"]) == {"clock_scale", "bandwidth_fraction", "launch_s"}
    assert main(["calibrate", "--published", str(tmp_path), "--fit"]) == 0
    assert "over the splits" in capsys.readouterr().out


def test_plot_is_written(tmp_path, capsys):
    rep = simulate_gemm(load_chip(ROOT / "configs/gemmini.yaml"), shape=(64, 48, 80))
    (tmp_path / "fx.yaml").write_text(FIXTURE.format(v1=rep.total_cycles, v2=rep.total_cycles,
                                                     v3=1.0))
    png = tmp_path / "p.png"
    assert main(["calibrate", "--published", str(tmp_path), "--plot", str(png)]) == 0
    assert png.stat().st_size > 5000


# --------------------------------------------------------------------------- fitting

def test_split_holds_out_per_family_and_is_seeded():
    fams = ["A"] * 10 + ["B"] * 4 + ["C"]
    h0 = split_indices(fams, 0.3, 0)
    assert h0 == split_indices(fams, 0.3, 0)
    assert len([i for i in h0 if fams[i] == "A"]) == 3
    assert len([i for i in h0 if fams[i] == "B"]) == 1
    assert 14 not in h0  # a family of one record keeps it for training
    assert any(split_indices(fams, 0.3, s) != h0 for s in range(1, 5))


def test_fit_never_touches_held_out_records(shipped):
    """Changing the measured value of every held-out record changes no fitted parameter."""
    _, rows, outs = shipped
    base = fit_splits(rows, outs, [0, 1])
    for split in base["splits"]:
        held = {h["index"] for h in split["holdout_rows"]}
        assert held
        changed = [dict(r, measured=r["measured"] * 7.0) if i in held else r
                   for i, r in enumerate(rows)]
        again = fit_splits(changed, outs, [split["seed"]])["splits"][0]
        assert again["params"] == split["params"]
        # the held-out errors do see the change
        assert again["holdout"]["all"] != split["holdout"]["all"]


def test_fit_recovers_a_known_clock_scale():
    """Records whose 'measured' values are the model's at clock x0.8 (compute-only runs) fit a
    clock scale of 0.8 and predict held-out records exactly."""
    rng = np.random.default_rng(3)
    outs, rows = [], []
    for i in range(8):
        t = float(rng.uniform(1e-3, 1e-2))
        out = Outcome(1.0 / t, t, 0.0, 0.0, 0.0, 0.0, 0.0)
        outs.append(out)
        rows.append({"family": "F", "label": f"r{i}", "metric": "samples_per_s", "ours": 1.0 / t,
                     "measured": 0.8 / t})
    fit = fit_splits(rows, outs, [0, 1, 2])
    for s in fit["splits"]:
        assert s["params"]["F"]["clock_scale"] == pytest.approx(0.8, rel=1e-4)
        assert s["holdout"]["all"]["max_abs_log_ratio"] < 1e-4


def test_refit_value_properties():
    """Identity at the nominal parameters; rates rise and times fall with the clock; power is
    never refitted."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        comp, mem, rest = rng.uniform(0, 1e-2, 3)
        n, launch = float(rng.integers(0, 100)), float(rng.uniform(0, 1e-5))
        out = Outcome(1.0, comp + 1e-9, mem, n * launch, rest, n, launch)
        nominal = {"clock_scale": 1.0, "bandwidth_fraction": 1.0, "launch_s": launch}
        for metric in ("samples_per_s", "latency_ms", "watts"):
            assert refit_value(out, metric, 5.0, nominal) == pytest.approx(5.0)
        faster = dict(nominal, clock_scale=float(rng.uniform(1.0, 1.2)))
        assert refit_value(out, "samples_per_s", 5.0, faster) >= 5.0 * (1 - 1e-12)
        assert refit_value(out, "latency_ms", 5.0, faster) <= 5.0 * (1 + 1e-12)
        assert refit_value(out, "watts", 5.0, faster) == 5.0


# --------------------------------------------------------------------------- bad records

GOOD = FIXTURE.split("- id: fx-a2")[0].format(v1=100)


@pytest.mark.parametrize("edit, where, field", [
    (lambda t: t.replace("  unit: cycles\n", ""), 1, "unit"),
    (lambda t: t.replace("  precision: INT8\n", "  precision: INT8\n  colour: red\n"), 9, "colour"),
    (lambda t: t.replace("unit: cycles", "unit: ms"), 10, "unit"),
    (lambda t: t.replace("value: 100", "value: -3"), 9, "value"),
    (lambda t: t.replace("metric: cycles", "metric: joules"), 14, "sim.metric"),
    (lambda t: t.replace("configs/gemmini.yaml", "configs/nope.yaml"), 12, "sim.config"),
    (lambda t: t.replace("shape: 64x48x80", "shape: 64x48"), 13, "sim.run.gemms"),
    (lambda t: t.replace("kind: gemms", "kind: fpga"), 13, "sim.run.kind"),
    (lambda t: t.replace("    mapping:", "    mappin:"), 15, "sim.mappin"),
    (lambda t: t.replace("  url: https://example.org/a\n", "  url: [unclosed\n"), 5, "yaml"),
])
def test_bad_records_give_one_line_naming_file_line_and_field(tmp_path, capsys, edit, where,
                                                             field):
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit(GOOD))
    assert main(["calibrate", "--published", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"{bad}:{where}: {field}: "), err


def test_a_record_the_simulator_refuses_names_the_record(tmp_path, capsys):
    """A mapping that validates but cannot run (a zoo model size out of range) is one line
    naming the record's file and line, then the simulator's own message."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("{kind: gemms, gemms: [{shape: 64x48x80, count: 1}]}",
                                "{kind: zoo, model: resnet18, image: 8}"))
    assert main(["calibrate", "--published", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"{bad}:1: sim: fx-a1: ") and "image" in err, err


def test_calibrate_without_subcommand_or_published_is_one_line_exit_2(capsys):
    assert main(["calibrate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--published" in err


# --------------------------------------------------------------------------- power.tdp_w

def _totals(config: str, overrides: dict | None = None) -> tuple[dict, str]:
    rep = simulate_gemm(load_chip(ROOT / config, overrides or {}), shape=(4096, 4096, 4096))
    return rep.totals(), rep.to_text()


def test_tdp_check_leaves_dram_out_where_the_config_says_so():
    """tpu-v1 states 75 W for the die; its DDR3 energy is outside: the compared power is the
    total energy minus energy.dram over the run time (computed here from the energy table)."""
    t, text = _totals("configs/tpu-v1.yaml")
    e = t["energy_pj"]
    assert t["tdp_w"] == 75.0
    assert t["tdp_power_w"] == pytest.approx((e["total"] - e["dram"]) * 1e-12 / t["time_s"])
    assert t["average_power_w"] > 75.0 > t["tdp_power_w"]
    assert t["over_tdp"] is False
    assert "exceeds" not in text
    # the total (DRAM included) is above 75 W, so the report says why that is within the TDP
    assert f"average power without DRAM {t['tdp_power_w']:.3g} W is within the chip's TDP" in text


def test_run_above_tdp_says_so_in_text_and_json_and_is_not_throttled(capsys):
    t0, _ = _totals("configs/tpu-v1.yaml")
    t, text = _totals("configs/tpu-v1.yaml", {"power.tdp_includes_dram": True})
    assert t["tdp_power_w"] == pytest.approx(t["average_power_w"])
    assert t["over_tdp"] is True
    assert f"exceeds the chip's TDP of 75 W" in text
    assert t["time_s"] == t0["time_s"]  # no throttling: the clock stays
    assert main(["run", "configs/tpu-v1.yaml", "--gemm", "4096x4096x4096", "--json",
                 "--set", "power.tdp_w=10"]) == 0
    js = json.loads(capsys.readouterr().out)["totals"]
    assert js["over_tdp"] is True and js["tdp_w"] == 10.0


def test_chip_without_tdp_reports_no_tdp_fields():
    t, text = _totals("configs/gemmini.yaml")
    assert "tdp_w" not in t and "over_tdp" not in t
    assert "TDP" not in text


def test_bad_tdp_is_one_line_exit_2(capsys):
    assert main(["run", "configs/tpu-v1.yaml", "--gemm", "8x8x8", "--set",
                 "power.tdp_w=-5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "power.tdp_w" in err
