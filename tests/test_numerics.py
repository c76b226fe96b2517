"""Functional values: fast kernels == PE reference bit for bit == independent scalar oracle;
int8/wrap == numpy exactly; floats within the stated rounding bound of float64 numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from oracles import ordered_gemm
from simulator import WorkloadError, simulate_gemm
from simulator.hardware.numerics import float_error_bound, prepare_operand, round_to_input
from strategies import dtypes, knobs, make_chip


def bits_of(x):
    return x.view(np.uint32) if x.dtype == np.float32 else x


def operands(rng, m, n, k, dtype, scale=1.0):
    if dtype == "int8":
        return rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    return scale * rng.standard_normal((m, k)), scale * rng.standard_normal((k, n))


@given(knob=knobs, dtype=dtypes, overflow=st.sampled_from(["wrap", "saturate"]),
       acc_bits=st.sampled_from([16, 20, 32]), rows=st.integers(1, 16), cols=st.integers(1, 16),
       m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 60),
       seed=st.integers(0, 2**32 - 1))
def test_functional_equals_reference_bit_for_bit(knob, dtype, overflow, acc_bits, rows, cols, m,
                                                  n, k, seed):
    chip = make_chip(rows, cols, dtype=dtype, overflow=overflow, accumulator_bits=acc_bits, **knob)
    a, b = operands(np.random.default_rng(seed), m, n, k, dtype)
    fast = simulate_gemm(chip, a=a, b=b)
    ref = simulate_gemm(chip, a=a, b=b, engine="reference")
    assert np.array_equal(bits_of(fast.output), bits_of(ref.output))
    assert fast.overflow_events == ref.overflow_events
    assert fast.compute_cycles == ref.compute_cycles


@given(dataflow=st.sampled_from(["os", "ws", "is"]), dtype=dtypes,
       overflow=st.sampled_from(["wrap", "saturate"]), acc_bits=st.sampled_from([16, 32]),
       rows=st.integers(1, 8), m=st.integers(1, 12), n=st.integers(1, 12), k=st.integers(1, 40),
       seed=st.integers(0, 2**32 - 1))
def test_functional_equals_scalar_oracle(dataflow, dtype, overflow, acc_bits, rows, m, n, k, seed):
    chip = make_chip(rows, 3, dataflow, dtype=dtype, overflow=overflow, accumulator_bits=acc_bits)
    a, b = operands(np.random.default_rng(seed), m, n, k, dtype)
    fast = simulate_gemm(chip, a=a, b=b)
    av = prepare_operand(a, dtype, "a")
    bv = prepare_operand(b, dtype, "b")
    want, overflows = ordered_gemm(av, bv, k if dataflow == "os" else rows, dtype, overflow,
                                   acc_bits)
    assert np.array_equal(bits_of(fast.output), bits_of(want.astype(fast.output.dtype)))
    if dtype == "int8":
        assert fast.overflow_events == overflows


@given(dataflow=st.sampled_from(["os", "ws", "is"]), acc_bits=st.sampled_from([16, 24, 32]),
       rows=st.integers(1, 64), m=st.integers(1, 80), n=st.integers(1, 80),
       k=st.integers(1, 600), seed=st.integers(0, 2**32 - 1))
def test_int8_wrap_equals_numpy(dataflow, acc_bits, rows, m, n, k, seed):
    chip = make_chip(rows, 8, dataflow, overflow="wrap", accumulator_bits=acc_bits)
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    exact = a.astype(np.int64) @ b.astype(np.int64)
    half = 1 << (acc_bits - 1)
    wrapped = (exact + half) % (2 * half) - half
    out = simulate_gemm(chip, a=a, b=b).output
    assert out.dtype == np.int32 and np.array_equal(out, wrapped)


@given(dataflow=st.sampled_from(["os", "ws", "is"]), dtype=st.sampled_from(["fp16", "bf16", "fp32"]),
       rows=st.integers(1, 64), m=st.integers(1, 60), n=st.integers(1, 60),
       k=st.integers(1, 800), scale=st.sampled_from([1e-3, 1.0, 1e3]),
       seed=st.integers(0, 2**32 - 1))
def test_float_error_within_bound(dataflow, dtype, rows, m, n, k, scale, seed):
    chip = make_chip(rows, 8, dataflow, dtype=dtype)
    a, b = operands(np.random.default_rng(seed), m, n, k, dtype, scale)
    out = simulate_gemm(chip, a=a, b=b).output
    ar, br = round_to_input(a, dtype), round_to_input(b, dtype)
    exact = ar.astype(np.float64) @ br.astype(np.float64)
    assert np.all(np.abs(out - exact) <= float_error_bound(ar, br))


def test_bound_is_not_vacuous():
    # The bound must be tight enough to catch a wrong answer: computing in fp16 instead of fp32
    # (what a bug in the accumulator type would do) exceeds it.
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 512)), rng.standard_normal((512, 64))
    ar, br = round_to_input(a, "fp16"), round_to_input(b, "fp16")
    exact = ar.astype(np.float64) @ br.astype(np.float64)
    wrong = (ar.astype(np.float16) @ br.astype(np.float16)).astype(np.float64)
    assert np.any(np.abs(wrong - exact) > float_error_bound(ar, br))


def test_no_fused_multiply_add():
    # a*b + c rounds twice: with a = b = 1 + 2^-12 the product's 2^-24 bit is lost before the add.
    chip = make_chip(4, 4, "os", dtype="fp32")
    e = np.float32(1 + 2.0 ** -12)
    a = np.array([[e, 1.0]], np.float32)
    b = np.array([[e], [-1.0]], np.float32)
    prod = np.float32(e * e)  # rounded product
    want = np.float32(np.float32(0) + prod) + np.float32(-1.0)
    for engine in ("fast", "reference"):
        assert simulate_gemm(chip, a=a, b=b, engine=engine).output[0, 0] == want
    assert want != np.float64(e) * np.float64(e) - 1.0  # an FMA would keep the 2^-24 term


def test_saturate_clamps_at_every_add():
    # int16 accumulator: 127*127 = 16129; adding three such products saturates at 32767 and
    # then a negative product brings it down from the clamp, not from the true sum.
    chip = make_chip(4, 4, "os", accumulator_bits=16, overflow="saturate")
    a = np.array([[127, 127, 127, -128]])
    b = np.array([[127], [127], [127], [127]])
    rep = simulate_gemm(chip, a=a, b=b)
    assert rep.output[0, 0] == 32767 - 128 * 127 and rep.overflow_events == 1


def test_int8_operands_must_be_in_range():
    chip = make_chip(4, 4)
    with pytest.raises(WorkloadError, match=r"\[-128, 127\]"):
        simulate_gemm(chip, a=np.full((2, 2), 200), b=np.ones((2, 2), int))
    with pytest.raises(WorkloadError, match="integers"):
        simulate_gemm(chip, a=np.full((2, 2), 0.5), b=np.ones((2, 2), int))


def test_fp16_inputs_are_rounded_before_multiplying():
    chip = make_chip(4, 4, dtype="fp16")
    a = np.array([[1.0 + 2.0 ** -12]])  # rounds to 1.0 in fp16
    assert simulate_gemm(chip, a=a, b=np.array([[1.0]])).output[0, 0] == 1.0
    chip32 = make_chip(4, 4, dtype="fp32")
    assert simulate_gemm(chip32, a=a, b=np.array([[1.0]])).output[0, 0] == np.float32(1 + 2.0 ** -12)
