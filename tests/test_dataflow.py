"""simulator.hardware.dataflow: fold structure per dataflow (DESIGN section 2) and shape parsing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from simulator import WorkloadError
from simulator.hardware.dataflow import MAX_GEMM_DIM, map_gemm, parse_gemm
from strategies import make_chip


@given(df=st.sampled_from(["os", "ws", "is"]), r=st.integers(1, 64), c=st.integers(1, 64),
       m=st.integers(1, 5000), n=st.integers(1, 5000), k=st.integers(1, 5000))
def test_folds_and_stream_per_dataflow(df, r, c, m, n, k):
    mp = map_gemm(make_chip(r, c, df).array, m, n, k)
    folds, stream = {"os": (math.ceil(m / r) * math.ceil(n / c), k),
                     "ws": (math.ceil(k / r) * math.ceil(n / c), m),
                     "is": (math.ceil(k / r) * math.ceil(m / c), n)}[df]
    assert (mp.folds, mp.stream_len, mp.macs) == (folds, stream, m * n * k)
    assert mp.has_stationary_load == (df != "os")


@pytest.mark.parametrize("text, shape", [("4x5x6", (4, 5, 6)), (" 8 X 9 x 10 ", (8, 9, 10)),
                                         ("2*3*4", (2, 3, 4))])
def test_parse_gemm(text, shape):
    assert parse_gemm(text) == shape


@pytest.mark.parametrize("text, message", [("4x5", "expected MxNxK"), ("0x1x1", "gemm.M: must be a "
                                           "positive integer"), ("1x1xq", "gemm.K"),
                                           (f"1x{MAX_GEMM_DIM + 1}x1", "gemm.N: must be <=")])
def test_parse_gemm_errors(text, message):
    with pytest.raises(WorkloadError, match=message):
        parse_gemm(text)
