"""Energy by process node (Stillmaker & Baas fits), SRAM energy by capacity, static power."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from conftest import CONFIGS, write
from simulator import load_chip, simulate_gemm
from simulator.tools.cli import main
from simulator.errors import ConfigError
from simulator.hardware.sram import HOROWITZ_SRAM_POINTS, fit_power_law, sram_pj_per_byte
from simulator.hardware.technology import (FITTED_NODES, MAX_NODE_NM, MIN_NODE_NM, energy_factor,
                                  nominal_voltage, scale_factor)

SHIPPED = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
ENTRIES = ("mac_int8", "mac_int4", "mac_fp8_e4m3", "mac_fp8_e5m2", "mac_fp16", "mac_bf16",
           "mac_fp32", "pe_hop", "buffer_read", "buffer_write", "vector_lane_op")


def _table(chip):
    e = chip.energy
    return (dict(e.mac_pj), e.pe_hop_pj_per_byte, e.buffer_read_pj_per_byte,
            e.buffer_write_pj_per_byte, e.dram_pj_per_byte, e.vector_lane_op_pj, e.static_w,
            dict(e.buffer_pj_per_byte))


@pytest.mark.parametrize("name", SHIPPED)
def test_scaling_a_table_to_its_own_node_changes_nothing(name):
    chip = load_chip(CONFIGS / f"{name}.yaml")
    unscaled = chip.with_overrides({"technology.node_nm": 0})
    own = chip.with_overrides({"technology.node_nm": 45, "technology.voltage": 0.9})
    assert _table(own) == _table(unscaled)  # exact: every factor is 1.0
    assert all(f == 1.0 for f in own.energy.scale_factors.values())


@given(node=st.floats(MIN_NODE_NM, MAX_NODE_NM), volt=st.floats(0.0, 1.2))
def test_entries_at_the_chips_node_and_voltage_are_used_as_given(node, volt):
    v = volt if volt > 0.6 else 0.0  # 0 = nominal
    over = {f"energy.{e}.node_nm": node for e in ENTRIES}
    over.update({f"energy.{e}.voltage": v for e in ENTRIES})
    base = load_chip(CONFIGS / "gemmini.yaml", over)
    try:
        scaled = base.with_overrides({"technology.node_nm": node, "technology.voltage": v})
    except ConfigError:  # a voltage the fit does not cover at this node
        return
    assert _table(scaled) == _table(base)


def test_fit_coefficients_and_interpolation():
    # Stillmaker & Baas HP 45 nm fit at 1.0 V: 1.018 - 0.3107 + 0.1539
    assert energy_factor(45, 1.0) == pytest.approx(1.018 - 0.3107 + 0.1539, rel=1e-12)
    assert energy_factor(7, 0.7) == pytest.approx(0.1776 * 0.49 - 0.09097 * 0.7 + 0.02447)
    # between fitted nodes: geometric interpolation lies between the neighbours
    lo, hi = energy_factor(20, 0.9), energy_factor(32, 0.9)
    assert lo < energy_factor(28, 0.9) < hi
    assert scale_factor(45, 0.9, 28, 0.9) == pytest.approx(energy_factor(28, 0.9) /
                                                           energy_factor(45, 0.9))


@given(i=st.integers(0, len(FITTED_NODES) - 2), flavor=st.sampled_from(["hp", "lp"]))
def test_smaller_nodes_at_nominal_voltage_cost_less_energy(i, flavor):
    small, big = FITTED_NODES[i], FITTED_NODES[i + 1]
    assert energy_factor(small, nominal_voltage(small), flavor) < \
        energy_factor(big, nominal_voltage(big), flavor)


def test_scaled_chip_multiplies_every_on_chip_entry_and_leaves_dram_alone():
    base = load_chip(CONFIGS / "tpu-v1.yaml", {"technology.node_nm": 0})
    chip = load_chip(CONFIGS / "tpu-v1.yaml")
    f = scale_factor(45, 0.9, 28, 0.0)
    assert f < 1
    assert chip.energy.mac_pj["int8"] == pytest.approx(base.energy.mac_pj["int8"] * f)
    assert chip.energy.pe_hop_pj_per_byte == pytest.approx(base.energy.pe_hop_pj_per_byte * f)
    assert chip.energy.buffer_read_pj("a") == pytest.approx(base.energy.buffer_read_pj("a") * f)
    assert chip.energy.dram_pj_per_byte == base.energy.dram_pj_per_byte
    assert "Stillmaker" in chip.energy.scaling and "28 nm" in chip.energy.scaling
    text = simulate_gemm(chip, shape=(64, 64, 64)).to_text()
    assert "scaling     Stillmaker" in text
    assert "none" in simulate_gemm(base, shape=(64, 64, 64)).to_dict()["energy_scaling"]


def test_scaling_never_changes_cycles():
    for name in SHIPPED:
        chip = load_chip(CONFIGS / f"{name}.yaml")
        a = simulate_gemm(chip, shape=(300, 200, 500)).totals()
        b = simulate_gemm(chip.with_overrides({"technology.node_nm": 0,
                                               "energy.sram.model": "flat"}),
                          shape=(300, 200, 500)).totals()
        assert a["total_cycles"] == b["total_cycles"]


def test_default_sram_exponent_is_the_fit_of_the_cited_points():
    chip = load_chip(CONFIGS / "scalesim-compat.yaml")
    assert chip.config["energy"]["sram"]["exponent"] == pytest.approx(
        fit_power_law(HOROWITZ_SRAM_POINTS), abs=1e-4)
    # the fit passes near every cited point (within 15 %)
    ref_bytes, ref_pj = HOROWITZ_SRAM_POINTS[0]
    for size, pj in HOROWITZ_SRAM_POINTS:
        assert sram_pj_per_byte(ref_pj, size, ref_bytes, 0.4726) == pytest.approx(pj, rel=0.15)


@given(small=st.integers(1, 1 << 30), factor=st.integers(2, 1024))
def test_sram_energy_grows_with_capacity(small, factor):
    a = load_chip(CONFIGS / "gemmini.yaml", {"buffers.a.bytes": small,
                                            "buffers.b.bytes": small * factor})
    assert a.energy.buffer_read_pj("b") > a.energy.buffer_read_pj("a")
    flat = a.with_overrides({"energy.sram.model": "flat"})
    assert flat.energy.buffer_read_pj("b") == flat.energy.buffer_read_pj("a") == \
        flat.energy.buffer_read_pj_per_byte


def test_buffer_events_split_by_buffer_in_closed_form():
    # one tile (everything fits), WS 8x8: the array reads A ceil(N/C) times and B once
    chip = load_chip(CONFIGS / "scalesim-compat.yaml",
                     {"array.rows": 8, "array.cols": 8, "array.dataflow": "ws"})
    m, n, k = 20, 30, 40
    ev = simulate_gemm(chip, shape=(m, n, k)).totals()["events"]
    assert ev["buffer_a_read_bytes"] == math.ceil(n / 8) * m * k
    assert ev["buffer_b_read_bytes"] == k * n


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_chip_has_sourced_static_power(name):
    chip = load_chip(CONFIGS / f"{name}.yaml")
    assert chip.energy.static_w > 0
    assert chip.config["energy"]["static"]["source"] != "not modelled"


def test_leakage_fraction_is_share_of_power_at_full_mac_load():
    chip = load_chip(CONFIGS / "gemmini.yaml", {"energy.static.leakage_fraction": 0.25})
    peak = chip.pes * chip.energy.mac_pj["int8"] * 1e-12 * chip.clock_hz
    assert chip.energy.static_w == pytest.approx(peak / 3)


def test_compare_shipped_chips_has_no_static_footnote(capsys, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)
    paths = [str(CONFIGS / f"{n}.yaml") for n in SHIPPED]
    assert main(["compare", *paths, "--gemm", "256x256x256"]) == 0
    assert "static power is not modelled" not in capsys.readouterr().out


@pytest.mark.parametrize("text, line, field", [
    ("technology:\n  node_nm: 5\n", 2, "technology.node_nm: 5 nm is outside the scaling model"),
    ("technology:\n  node_nm: 250\n", 2, "technology.node_nm: 250 nm is outside"),
    ("technology:\n  node_nm: 180\n  voltage: 0.5\n", 3, "technology.voltage: 0.5 V is outside"),
    ("technology:\n  node_nm: 28\nenergy:\n  pe_hop: {node_nm: 3}\n", 4,
     "energy.pe_hop.node_nm: 3 nm is outside"),
    ("energy:\n  static: {leakage_fraction: 1.0}\n", 2,
     "energy.static.leakage_fraction: must be <= 0.95"),
])
def test_bad_technology_is_one_line_with_file_and_line(capsys, tmp_path, text, line, field):
    p = write(tmp_path, text)
    code = main(["run", str(p), "--gemm", "4x4x4"])
    out = capsys.readouterr()
    assert code == 2 and out.out == ""
    assert out.err.startswith(f"{p}:{line}: {field}"), out.err
    assert out.err.count("\n") == 1
