"""simulator.core.engine: the simulate_gemm API, its modes and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import CONFIGS
from simulator import WorkloadError, load_chip, simulate_gemm
from strategies import make_chip


def test_api_example_from_the_issue():
    # the issue's example reads the int32 accumulators (gemmini ships int8 outputs)
    chip = load_chip(CONFIGS / "gemmini.yaml", overrides={"array.rows": 8, "array.dataflow": "ws",
                                                          "output.dtype": "accumulator"})
    rep = simulate_gemm(chip, shape=(100, 60, 70))
    assert rep.output is None and rep.mode == "timing"
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (100, 70), dtype=np.int8)
    b = rng.integers(-128, 128, (70, 60), dtype=np.int8)
    f = simulate_gemm(chip, a=a, b=b)
    r = simulate_gemm(chip, a=a, b=b, engine="reference")
    assert np.array_equal(f.output, a.astype(np.int64) @ b) and np.array_equal(f.output, r.output)
    for rep_ in (rep, f, r):
        assert rep_.total_cycles == rep_.compute_cycles + rep_.stall_cycles == rep.total_cycles
        assert rep_.macs == 100 * 60 * 70 and rep_.folds == 9 * 4
        assert 0 < rep_.utilisation <= rep_.compute_utilisation <= rep_.mapping_efficiency <= 1
        assert set(rep_.to_dict()["totals"]) >= {"total_cycles", "mapping_efficiency"}


def test_utilisation_definitions():
    chip = make_chip(8, 8, "os")
    rep = simulate_gemm(chip, shape=(12, 8, 10))  # folds: 8 rows, then 4 rows
    # each fold charged K+R+C-2 = 24 cycles (full); useful PEs 64 then 32
    assert rep.compute_cycles == 48
    assert rep.mapping_efficiency == pytest.approx((24 * 64 + 24 * 32) / (64 * 48))
    assert rep.compute_utilisation == pytest.approx(12 * 8 * 10 / (64 * 48))


def test_timing_of_a_huge_gemm_allocates_nothing():
    chip = make_chip(128, 128, "ws", preload_overlap=True, dtype="bf16")
    rep = simulate_gemm(chip, shape=(65536, 65536, 65536))
    assert rep.folds == 512 * 512 and rep.output is None


@pytest.mark.parametrize("kwargs, match", [
    ({"shape": (0, 4, 4)}, "gemm.M: must be a positive integer, got 0"),
    ({"shape": (4, 4)}, "must be"),
    ({"shape": (4, 4, 2.5)}, "gemm.K: must be a positive integer"),
    ({}, "give shape"),
    ({"a": np.ones((2, 3), int)}, "needs both operands"),
    ({"a": np.ones((2, 3), int), "b": np.ones((4, 2), int)}, "inner dimensions differ"),
    ({"a": np.ones(3, int), "b": np.ones((3, 2), int)}, "2-D"),
    ({"shape": (4, 4, 4), "engine": "reference"}, "needs operands"),
    ({"shape": (4, 4, 4), "engine": "magic"}, "engine"),
    ({"a": np.ones((2, 3), int), "b": np.ones((3, 2), int), "shape": (2, 2, 2)}, "disagrees"),
])
def test_errors(kwargs, match):
    with pytest.raises(WorkloadError, match=match):
        simulate_gemm(make_chip(), **kwargs)


def test_chip_with_overrides_validates():
    chip = make_chip()
    assert chip.with_overrides({"array.rows": 16}).array.rows == 16
    from simulator import ConfigError
    with pytest.raises(ConfigError, match="array.rows: must be a positive integer"):
        chip.with_overrides({"array.rows": 0})
