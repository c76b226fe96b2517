"""Hypothesis strategies for chips and GEMMs shared by the test modules."""

from __future__ import annotations

from hypothesis import strategies as st

from simulator.hardware.chip import chip_from_config
from simulator.hardware.config import validate_config


def make_chip(rows=4, cols=4, dataflow="os", fill_drain="full", preload_overlap=False,
              dtype="int8", overflow="wrap", accumulator_bits=32, clock_hz=1e9):
    """Return a Chip built from keyword values through the real validator."""
    flat = {"array.rows": rows, "array.cols": cols, "array.dataflow": dataflow,
            "array.fill_drain": fill_drain, "array.preload_overlap": preload_overlap,
            "dtype": dtype, "overflow": overflow, "accumulator_bits": accumulator_bits,
            "clock_hz": clock_hz, "name": "test-chip"}
    return chip_from_config(validate_config({}, {}, "test", {k: (v, "test") for k, v in flat.items()}))


knobs = st.fixed_dictionaries({
    "dataflow": st.sampled_from(["os", "ws", "is"]),
    "fill_drain": st.sampled_from(["full", "active"]),
    "preload_overlap": st.booleans(),
})

dtypes = st.sampled_from(["int8", "fp16", "bf16", "fp32"])


@st.composite
def conv_geometries(draw, max_side=8):
    """A random ConvGeometry (one group): batch, channels, filter, stride, padding and dilation,
    with an input large enough for at least one output pixel (floor output sizes)."""
    from simulator.core.conv_geometry import ConvGeometry
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, (kh - 1) * dh + 1 - 2 * ph), max_side))
    w = draw(st.integers(max(1, (kw - 1) * dw + 1 - 2 * pw), max_side))
    oh = (h + 2 * ph - (kh - 1) * dh - 1) // sh + 1
    ow = (w + 2 * pw - (kw - 1) * dw - 1) // sw + 1
    return ConvGeometry(draw(st.integers(1, 2)), h, w, draw(st.integers(1, 3)), kh, kw, sh, sw,
                        ph, pw, dh, dw, oh, ow)
