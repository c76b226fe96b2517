"""configs/scalesim-compat.yaml reproduces every SCALE-Sim v3 reference run in docs/scalesim.md."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from conftest import CONFIGS
from simulator.kernels.conv import ConvLayer
from simulator import load_chip, simulate_gemm
from simulator.hardware.dataflow import ceil_div
from simulator.core.report import SCALESIM_CYCLE_OFFSET

# (dataflow, rows, cols, M, N, K, SCALE-Sim "Total Cycles"): docs/scalesim.md
GEMM_EXAMPLES = [
    ("os", 8, 8, 64, 64, 64, 4991),
    ("os", 8, 8, 20, 30, 40, 647),
    ("ws", 8, 8, 20, 30, 40, 839),
    ("is", 8, 8, 20, 30, 40, 779),
    ("ws", 4, 6, 64, 64, 64, 13375),
]
# conv rows "name, ifmap h, ifmap w, filter h, filter w, channels, filters, stride" on 16x16 OS
CONV_EXAMPLES = [((30, 30, 3, 3, 16, 32, 1), 17051), ((30, 30, 5, 5, 8, 24, 2), 5979)]


@pytest.mark.parametrize("df, rows, cols, m, n, k, expected", GEMM_EXAMPLES)
def test_gemm_examples(df, rows, cols, m, n, k, expected):
    chip = load_chip(CONFIGS / "scalesim-compat.yaml",
                     {"array.rows": rows, "array.cols": cols, "array.dataflow": df})
    rep = simulate_gemm(chip, shape=(m, n, k))
    assert rep.scalesim_cycles == expected
    assert rep.compute_cycles == expected + SCALESIM_CYCLE_OFFSET
    assert rep.to_dict()["totals"]["scalesim_cycles"] == expected


@pytest.mark.parametrize("layer, expected", CONV_EXAMPLES)
def test_conv_examples(layer, expected):
    chip = load_chip(CONFIGS / "scalesim-compat.yaml", {"array.rows": 16, "array.cols": 16})
    conv = ConvLayer(*layer)
    rep = simulate_gemm(chip, shape=conv.gemm_shape)
    assert rep.scalesim_cycles == expected


def scalesim_closed_form(df, r, c, m, n, k):
    if df == "os":
        return ceil_div(m, r) * ceil_div(n, c) * (k + r + c - 2) - 1
    if df == "ws":
        return ceil_div(k, r) * ceil_div(n, c) * (2 * r + c + m - 2) - 1
    return ceil_div(k, r) * ceil_div(m, c) * (2 * r + c + n - 2) - 1


@given(df=st.sampled_from(["os", "ws", "is"]), r=st.integers(1, 64), c=st.integers(1, 64),
       m=st.integers(1, 2000), n=st.integers(1, 2000), k=st.integers(1, 2000))
def test_scalesim_closed_forms(df, r, c, m, n, k):
    chip = load_chip(CONFIGS / "scalesim-compat.yaml",
                     {"array.rows": r, "array.cols": c, "array.dataflow": df})
    assert simulate_gemm(chip, shape=(m, n, k)).scalesim_cycles == \
        scalesim_closed_form(df, r, c, m, n, k)
