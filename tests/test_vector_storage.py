"""vector.output_dtype: the format the vector unit stores its results in (bytes in the buffer
and DRAM, and the values the next op reads), and the index-valued tensors that stay 4 bytes."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import CONFIGS
from simulator import load_chip
from simulator.errors import ConfigError
from simulator.core.engine import run
from simulator.core.program import Program
from simulator.core.residency import index_tensors, plan_residency


def chip_with(store="fp32", capacity=1 << 30, dtype="fp32"):
    return load_chip(CONFIGS / "gemmini.yaml", {
        "dtype": dtype, "buffers.unified": True, "buffers.unified_buffer.bytes": capacity,
        "buffers.double_buffered": False, "dram.bandwidth_bytes_per_s": 8e9,
        "dram.latency_cycles": 10, "vector.output_dtype": store})


def chain(batch, width, depth):
    """x -> linear -> (relu -> mul by a scale vector -> add a bias) x depth -> softmax."""
    p = Program("chain")
    x = p.input("x", (batch, width))
    p.input("W", (width, width))
    p.input("s", (width,))
    p.input("c", (width,))
    h = p.linear("fc", x, "W", out="h")
    for i in range(depth):
        h = p.elementwise(f"relu{i}", "relu", h, out=f"r{i}")
        h = p.elementwise(f"mul{i}", "mul", h, "s", out=f"m{i}")
        h = p.elementwise(f"add{i}", "add", h, "c", out=f"a{i}")
    p.vector("sm", "softmax", h, out="out", axis=-1)
    return p


def bf16(x):
    return np.asarray(x, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 24), width=st.sampled_from([4, 8, 12, 16]),
       depth=st.integers(1, 3), store=st.sampled_from(["bf16", "fp16"]))
def test_a_big_buffer_writes_the_vector_output_in_the_store_format(batch, width, depth, store):
    """With everything resident, DRAM moves the inputs once (4 bytes on an fp32 chip) plus the
    program output in the store format (2 bytes); each vector op's buffer write is its output
    elements x 2."""
    p = chain(batch, width, depth)
    rep = run(chip_with(store), p)
    inputs = (batch * width + width * width + 2 * width) * 4  # an fp32 chip: 4 bytes each
    want = inputs + batch * width * 2
    assert rep.totals()["traffic_bytes"]["dram"]["total"] == want
    for op in rep.ops:
        if op.unit == "vector":
            assert op.events["buffer_write_bytes"] == batch * width * 2


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 40), width=st.sampled_from([8, 16, 32]), depth=st.integers(1, 3),
       cap=st.integers(1 << 10, 24 << 10))
def test_a_narrower_store_never_moves_more_dram_bytes(batch, width, depth, cap):
    """Every tensor a vector op writes shrinks to 2 bytes an element in the plan, so each one's
    admission test gets easier: the vector ops' DRAM bytes with a bf16 store are at most the
    fp32 store's."""
    p = chain(batch, width, depth)
    got = {}
    for store in ("fp32", "bf16"):
        chip = chip_with(store, cap)
        rep = run(chip, p)
        got[store] = sum(op.traffic_bytes["dram"]["total"] for op in rep.ops
                         if op.unit == "vector" and op.traffic_bytes)
        plan = plan_residency(chip, p)
        for t in ("out", *(f"a{i}" for i in range(depth))):
            assert plan.nbytes[t] == batch * width * (4 if store == "fp32" else 2)
    assert got["bf16"] <= got["fp32"]


def test_values_are_rounded_as_they_are_stored():
    """A bf16 store rounds every vector result to bf16 (nearest even) before the next op reads
    it: the chain's values equal numpy's float32 maths with a bf16 rounding after each op."""
    rng = np.random.default_rng(7)
    batch, width, depth = 5, 8, 2
    p = chain(batch, width, depth)
    vals = {"x": rng.standard_normal((batch, width)).astype(np.float32),
            "W": rng.standard_normal((width, width)).astype(np.float32),
            "s": rng.uniform(0.5, 2, width).astype(np.float32),
            "c": rng.standard_normal(width).astype(np.float32)}
    rep = run(chip_with("bf16"), p, vals)
    h = vals["x"].astype(np.float64) @ vals["W"].astype(np.float64)
    np.testing.assert_allclose(rep.values["h"], h, rtol=1e-5)  # the array's fp32 result
    h = rep.values["h"]
    for i in range(depth):
        h = bf16(np.maximum(h, np.float32(0)))
        np.testing.assert_array_equal(rep.values[f"r{i}"], h)
        h = bf16(h * vals["s"])
        np.testing.assert_array_equal(rep.values[f"m{i}"], h)
        h = bf16(h + vals["c"])
        np.testing.assert_array_equal(rep.values[f"a{i}"], h)
    e = np.exp(h - h.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(rep.values["out"], bf16(e / e.sum(axis=-1, keepdims=True)),
                               rtol=2 ** -7)
    # fp32 (the default) keeps the lanes' float32: no rounding
    rep32 = run(chip_with("fp32"), p, vals)
    assert not np.array_equal(rep32.values["a0"], rep.values["a0"])


def test_ids_computed_on_the_vector_unit_stay_exact_and_4_bytes():
    """A gather whose ids the vector unit computes (ids + 300, above bf16's exact integers):
    the ids stay 4 bytes and exact, the gathered rows are stored in bf16."""
    p = Program("ids")
    p.input("ids", (3, 4))
    p.input("table", (1000, 8))
    p.elementwise("shift", "add_const", "ids", const=300.0, out="ids2")
    p.vector("emb", "gather", "table", "ids2", out="rows")
    p.elementwise("act", "relu", "rows", out="out")
    assert index_tensors(p) == {"ids", "ids2"}
    ids = np.arange(12).reshape(3, 4) * 37 + 1
    table = np.random.default_rng(0).standard_normal((1000, 8)).astype(np.float32)
    chip = chip_with("bf16")
    rep = run(chip, p, {"ids": ids, "table": table})
    np.testing.assert_array_equal(rep.values["ids2"], ids + 300)
    np.testing.assert_array_equal(rep.values["rows"], bf16(table[ids + 300]))
    by = {op.name: op for op in rep.ops}
    assert by["shift"].events["buffer_write_bytes"] == 12 * 4
    assert by["emb"].events["buffer_write_bytes"] == 12 * 8 * 2
    plan = plan_residency(chip, p)
    assert plan.nbytes["ids2"] == 12 * 4 and plan.nbytes["rows"] == 12 * 8 * 2


@pytest.mark.parametrize("dtype, want", [("bf16", "bf16"), ("fp16", "fp16"), ("fp32", "fp32"),
                                         ("int8", "fp16"), ("fp8_e4m3", "fp16"),
                                         ("precision.activations=int4", "fp16")])
def test_activations_follows_the_activation_format(dtype, want):
    """h100.yaml stores vector results as ``activations``: 16-bit floats in a bf16/fp16 run,
    fp32 in an fp32 run, fp16 when the GEMMs run in 8 or 4 bits."""
    key, _, fmt = dtype.rpartition("=")
    chip = load_chip(CONFIGS / "h100.yaml", {key or "dtype": fmt})
    assert chip.vector.output_dtype == "activations"
    assert chip.vector_store_dtype == want
    assert chip.vector_output_bytes == (4 if want == "fp32" else 2)
    other = load_chip(CONFIGS / "h100.yaml", {"dtype": "bf16", "precision.activations": "fp32"})
    assert other.vector_store_dtype == "fp32"


def test_an_integer_store_format_is_refused_in_one_line():
    with pytest.raises(ConfigError) as exc:
        load_chip(CONFIGS / "gemmini.yaml", {"vector.output_dtype": "int8"})
    msg = str(exc.value)
    assert "vector.output_dtype" in msg and "\n" not in msg
