"""Energy inputs mean what they say (issue 28 item 6): a config that gives its own
energy.buffer_read/write pj_per_byte and no energy.sram key is charged exactly that per byte; the
capacity model scales the shipped 8 KB reference, or any cost when energy.sram.model is capacity."""

from __future__ import annotations

import pytest

from simulator import load_chip, simulate_gemm

MIB = 1 << 20
BASE = """name: own-sram
clock_hz: 1.0e9
dtype: int8
array: {rows: 8, cols: 8, dataflow: ws}
buffers:
  a: {bytes: 1048576}
  b: {bytes: 1048576}
  o: {bytes: 1048576}
"""


def _chip(tmp_path, energy: str, **overrides):
    path = tmp_path / "chip.yaml"
    path.write_text(BASE + energy)
    return load_chip(path, overrides or None)


def test_explicit_sram_cost_on_1mib_buffers_is_charged_flat(tmp_path):
    chip = _chip(tmp_path, "energy:\n  buffer_read: {pj_per_byte: 1.625}\n"
                           "  buffer_write: {pj_per_byte: 1.625}\n")
    rep = simulate_gemm(chip, shape=(64, 48, 80))
    ev, en = rep.totals()["events"], rep.totals()["energy_pj"]
    # oracle: bytes counted by the engine x the config's own figure, nothing else
    assert en["buffer_read"] == pytest.approx(1.625 * ev["buffer_read_bytes"], rel=1e-12)
    assert en["buffer_write"] == pytest.approx(1.625 * ev["buffer_write_bytes"], rel=1e-12)
    assert ev["buffer_read_bytes"] > 0 and ev["buffer_write_bytes"] > 0
    for b in "abo":
        assert chip.energy.buffer_read_pj(b) == 1.625
    assert chip.config["energy"]["sram"]["model"] == "flat"
    assert "SRAM flat" in rep.to_text()


def test_one_explicit_entry_is_enough_to_mean_the_configs_own_buffers(tmp_path):
    chip = _chip(tmp_path, "energy:\n  buffer_read: {pj_per_byte: 1.625}\n")
    assert chip.energy.buffer_read_pj("a") == 1.625
    assert chip.energy.buffer_write_pj("a") == 1.25  # the default, flat too


def test_shipped_default_is_scaled_by_capacity(tmp_path):
    chip = _chip(tmp_path, "")
    want = 1.25 * (MIB / 8192) ** 0.4726  # the power law by hand, 9.88x
    assert chip.energy.buffer_read_pj("a") == pytest.approx(want, rel=1e-12)
    text = simulate_gemm(chip, shape=(16, 16, 16)).to_text()
    assert f"SRAM by capacity from 8,192 B: buffer_read/write a x{want / 1.25:.3g}" in text


def test_sram_model_capacity_scales_an_explicit_cost(tmp_path):
    chip = _chip(tmp_path, "energy:\n  buffer_read: {pj_per_byte: 1.625}\n"
                           "  sram: {model: capacity}\n")
    assert chip.energy.buffer_read_pj("b") == pytest.approx(1.625 * 128 ** 0.4726, rel=1e-12)


def test_any_other_sram_key_means_capacity(tmp_path):
    chip = _chip(tmp_path, "energy:\n  buffer_read: {pj_per_byte: 1.625}\n"
                           "  sram: {ref_bytes: 1048576}\n")
    assert chip.config["energy"]["sram"]["model"] == "capacity"
    assert chip.energy.buffer_read_pj("a") == pytest.approx(1.625, rel=1e-12)  # at its ref size


def test_set_override_of_the_cost_counts_as_the_configs_own(tmp_path):
    chip = _chip(tmp_path, "", **{"energy.buffer_read.pj_per_byte": 2.0})
    assert chip.energy.buffer_read_pj("o") == 2.0


def test_resolved_model_survives_with_overrides(tmp_path):
    chip = _chip(tmp_path, "")  # capacity (shipped default)
    smaller = chip.with_overrides({"buffers.a.bytes": 8192})
    assert smaller.config["energy"]["sram"]["model"] == "capacity"
    assert smaller.energy.buffer_read_pj("a") == pytest.approx(1.25, rel=1e-12)
