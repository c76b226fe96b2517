"""simulator.hardware.energy: the breakdown adds up and each part is its count x its table entry."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from conftest import CONFIGS
from simulator import load_chip, simulate_gemm
from simulator.hardware.energy import ENERGY_KEYS

chips = st.sampled_from(["tpu-v1", "tpu-v4-mxu", "tpu-v4-tensorcore", "gemmini",
                         "scalesim-compat"])


@given(name=chips, m=st.integers(1, 3000), n=st.integers(1, 3000), k=st.integers(1, 3000))
def test_total_is_sum_of_parts_and_mac_energy_is_macs_times_entry(name, m, n, k):
    chip = load_chip(CONFIGS / f"{name}.yaml")
    rep = simulate_gemm(chip, shape=(m, n, k))
    e = rep.totals()["energy_pj"]
    assert set(e) == set(ENERGY_KEYS)
    assert e["total"] == pytest.approx(sum(v for key, v in e.items() if key != "total"))
    assert e["mac"] == pytest.approx(m * n * k * chip.energy.mac_pj[chip.dtype])
    ev = rep.totals()["events"]
    assert e["dram"] == pytest.approx(ev["dram_bytes"] * chip.energy.dram_pj_per_byte)
    buf = (lambda b: "unified_buffer") if chip.buffers.unified else (lambda b: b)
    for kind, cost in (("read", chip.energy.buffer_read_pj), ("write", chip.energy.buffer_write_pj)):
        split = [ev[f"buffer_{b}_{kind}_bytes"] for b in "abo"]
        assert sum(split) == ev[f"buffer_{kind}_bytes"]
        assert e[f"buffer_{kind}"] == pytest.approx(sum(nb * cost(buf(b)) for nb, b in
                                                        zip(split, "abo")))
    assert e["pe_hops"] == pytest.approx(ev["pe_hop_bytes"] * chip.energy.pe_hop_pj_per_byte)
    assert ev["dram_bytes"] == rep.totals()["traffic_bytes"]["dram"]["total"]


def test_static_energy_is_power_times_time():
    chip = load_chip(CONFIGS / "gemmini.yaml", {"energy.static.watts": 2.0,
                                              "energy.static.leakage_fraction": 0.0})
    rep = simulate_gemm(chip, shape=(256, 256, 256))
    assert rep.totals()["energy_pj"]["static"] == pytest.approx(2.0 * rep.time_s * 1e12)


def test_hops_of_a_single_fold_by_hand():
    # WS 4x4, one fold, M=5 streamed, K=N=4: streamed A hops 5*4*(4-1) = 60 bytes (int8),
    # partial sums 5*4*(4-1) = 60 hops x 4 bytes = 240, weight load 4 cols x (3+2+1+0) = 24
    chip = load_chip(CONFIGS / "scalesim-compat.yaml",
                     {"array.rows": 4, "array.cols": 4, "array.dataflow": "ws"})
    rep = simulate_gemm(chip, shape=(5, 4, 4))
    assert rep.totals()["events"]["pe_hop_bytes"] == 60 + 240 + 24
