"""simulator.core.report and simulator.errors: totals over ops, exports, one-line messages."""

from __future__ import annotations

import json

import pytest

from conftest import CONFIGS
from simulator import load_chip
from simulator.core.engine import simulate_gemms
from simulator.errors import WorkloadError
from simulator.core.report import format_bytes, format_energy


def test_totals_aggregate_ops():
    chip = load_chip(CONFIGS / "gemmini.yaml")
    rep = simulate_gemms(chip, [("a", 100, 50, 70), ("b", 30, 300, 20)])
    t = rep.totals()
    assert t["total_cycles"] == sum(op.total_cycles for op in rep.ops)
    assert rep.ops[1].start_cycle == rep.ops[0].end_cycle
    assert t["macs"] == 100 * 50 * 70 + 30 * 300 * 20
    assert t["utilisation"] == t["macs"] / (chip.pes * t["total_cycles"])
    assert t["energy_pj"]["total"] == pytest.approx(sum(op.energy_pj["total"] for op in rep.ops),
                                                    rel=1e-12)  # float summation order
    data = json.loads(rep.to_json())
    assert [o["name"] for o in data["ops"]] == ["a", "b"] and data["chip"]["name"] == "gemmini"
    text = rep.to_text()
    assert "a" in text and "stall" in text and "energy" in text


def test_formatting():
    assert format_bytes(1500) == "1.50 kB" and format_bytes(12) == "12 B"
    assert format_energy(2.5e6) == "2.5 uJ" and format_energy(3e12) == "3 J"


def test_messages_stay_on_one_line():
    err = WorkloadError("--set a\nb", "x\ty", "bad\nvalue")
    assert "\n" not in str(err) and "\\n" in str(err) and "\\t" in str(err)
