"""simulator.kernels.conv: SCALE-Sim's im2col lowering; the GEMM path equals a direct convolution."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from simulator.kernels.conv import ConvLayer, conv2d_direct, conv2d_gemm
from simulator import WorkloadError, simulate_gemm
from strategies import make_chip


def test_scalesim_ceiling_output_size():
    layer = ConvLayer(30, 30, 5, 5, 8, 24, 2)
    assert (layer.out_h, layer.out_w) == (14, 14)  # ceil(27/2), not floor(25/2)+1 = 13
    assert layer.gemm_shape == (196, 24, 200)


@given(h=st.integers(1, 12), w=st.integers(1, 12), fh=st.integers(1, 4), fw=st.integers(1, 4),
       c=st.integers(1, 4), f=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2),
       dataflow=st.sampled_from(["os", "ws", "is"]), seed=st.integers(0, 2**32 - 1))
def test_conv_on_the_array_equals_direct_convolution(h, w, fh, fw, c, f, s, p, dataflow, seed):
    if fh > h + 2 * p or fw > w + 2 * p:
        with pytest.raises(WorkloadError):
            ConvLayer(h, w, fh, fw, c, f, s, p)
        return
    layer = ConvLayer(h, w, fh, fw, c, f, s, p)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (h, w, c), dtype=np.int8)
    wt = rng.integers(-128, 128, (fh, fw, c, f), dtype=np.int8)
    a, b = conv2d_gemm(layer, x, wt)
    out = simulate_gemm(make_chip(4, 3, dataflow), a=a, b=b).output
    assert np.array_equal(out.reshape(layer.out_h, layer.out_w, f), conv2d_direct(layer, x, wt))


def test_bad_layers():
    with pytest.raises(WorkloadError, match="conv.stride: must be a positive integer, got 0"):
        ConvLayer(8, 8, 3, 3, 1, 1, 0)
    with pytest.raises(WorkloadError, match="larger than the padded input"):
        ConvLayer(2, 8, 3, 3, 1, 1)


@given(dtype=st.sampled_from(["fp16", "bf16", "fp32"]), s=st.integers(1, 3), p=st.integers(0, 1),
       dataflow=st.sampled_from(["os", "ws", "is"]), seed=st.integers(0, 2**32 - 1))
def test_float_conv_within_rounding_bound(dtype, s, p, dataflow, seed):
    from simulator.hardware.numerics import float_error_bound, round_to_input
    layer = ConvLayer(9, 7, 3, 2, 5, 4, s, p)
    rng = np.random.default_rng(seed)
    x = round_to_input(rng.standard_normal((9, 7, 5)), dtype)
    wt = round_to_input(rng.standard_normal((3, 2, 5, 4)), dtype)
    a, b = conv2d_gemm(layer, x, wt)
    out = simulate_gemm(make_chip(4, 3, dataflow, dtype=dtype), a=a, b=b).output
    exact = conv2d_direct(layer, x.astype(np.float64), wt.astype(np.float64))
    bound = float_error_bound(a, b).reshape(exact.shape)
    assert np.all(np.abs(out.reshape(exact.shape) - exact) <= bound)
