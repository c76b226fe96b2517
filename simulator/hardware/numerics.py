"""Number formats of the array: operand rounding, value types, adders (plain Python, no numba).

- ``int8``/``int4``: operands must be integers in [-128, 127] / [-8, 7]; values travel as
  int64; products and sums are ``accumulator_bits`` wide (int32 by default) with ``wrap`` or
  ``saturate`` at every add.
- ``fp8_e4m3``/``fp8_e5m2``/``fp16``/``bf16``: operands are rounded to the type (``ml_dtypes``
  float8_e4m3fn / float8_e5m2 / numpy float16 / bfloat16, round to nearest even; values beyond
  e4m3's finite range become NaN, e5m2's and fp16's become inf, as ml_dtypes casts) and travel
  as float32; products of two such values are exact in float32 (at most 2 x 11 significand bits,
  barring over/underflow) and every add rounds to float32.
- ``fp32``: operands rounded to float32; each multiply and each add rounds to float32 (no FMA).
"""

from __future__ import annotations

import numpy as np

from .adder_modes import MODE_FLOAT, MODE_SATURATE, MODE_WRAP, adder_limits
from .chip import INTEGER_FORMATS, Chip
from ..errors import WorkloadError

__all__ = ["INPUT_TYPES", "input_type", "adder_for", "output_dtype", "prepare_operand", "random_operands",
           "quantize_multiplier", "requantise", "requantise_fixed",
           "round_to_input", "value_dtype", "float_error_bound"]

# the input formats numpy has itself (int4 values are held in int8); bf16 and fp8 come from
# ml_dtypes, imported on first use only (0.4-0.6 s with ml_dtypes 0.7: a timing-only run never
# pays it)
_NUMPY_TYPES = {"int8": np.dtype(np.int8), "int4": np.dtype(np.int8),
                "fp16": np.dtype(np.float16), "fp32": np.dtype(np.float32)}
_ML_DTYPES = {"bf16": "bfloat16", "fp8_e4m3": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}
# value range of the integer formats
INT_RANGE = {"int8": (-128, 127), "int4": (-8, 7)}
ALL_FORMATS = ("int8", "int4", "fp8_e4m3", "fp8_e5m2", "fp16", "bf16", "fp32")


def input_type(dtype: str) -> np.dtype:
    """Return the numpy dtype of input format ``dtype``; bf16, fp8_e4m3 and fp8_e5m2 are
    ml_dtypes' bfloat16, float8_e4m3fn and float8_e5m2, imported here on first use; int4
    values are held in int8."""
    if dtype in _ML_DTYPES:
        import ml_dtypes
        return np.dtype(getattr(ml_dtypes, _ML_DTYPES[dtype]))
    return _NUMPY_TYPES[dtype]


def __getattr__(name: str):
    """``INPUT_TYPES`` (format -> numpy dtype, every format) is built on first access, which
    imports ml_dtypes; code on the timing path calls input_type instead."""
    if name == "INPUT_TYPES":
        return {d: input_type(d) for d in ALL_FORMATS}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def value_dtype(dtype: str) -> np.dtype:
    """Return the numpy type values travel in through the array: int64 or float32."""
    return np.dtype(np.int64) if dtype in INTEGER_FORMATS else np.dtype(np.float32)


def output_dtype(dtype: str) -> np.dtype:
    """Return the numpy type of the array's output O: int32 for int8/int4 inputs, else float32."""
    return np.dtype(np.int32) if dtype in INTEGER_FORMATS else np.dtype(np.float32)


def adder_for(chip: Chip) -> tuple[int, object, object, object]:
    """Return (mode, lo, hi, span) of the chip's adder, limits typed like its values."""
    vt = value_dtype(chip.compute_dtype).type
    if chip.compute_dtype not in INTEGER_FORMATS:
        lo, hi, span = adder_limits(32, vt)
        return MODE_FLOAT, lo, hi, span
    mode = MODE_WRAP if chip.overflow == "wrap" else MODE_SATURATE
    lo, hi, span = adder_limits(chip.accumulator_bits, vt)
    return mode, lo, hi, span


def requantise(acc: np.ndarray, out_dtype: str, scale: float) -> np.ndarray:
    """Return the array's accumulators ``acc`` as they leave it in ``out_dtype`` (output.dtype).

    int8: ``clip(rint(acc * scale), -128, 127)`` as int8, the product in float64 (an int32 is
    exact there) and ``rint`` rounding half to even; bf16/fp16: fp32 accumulators rounded to
    nearest even, carried as float32 (fp8_e4m3/fp8_e5m2 likewise: an fp8 chip's output.dtype
    input); accumulator/fp32: ``acc`` unchanged.
    """
    if out_dtype == "int8":
        x = np.rint(np.asarray(acc, np.float64) * np.float64(scale))
        return np.clip(x, -128, 127).astype(np.int8)
    if out_dtype in ("bf16", "fp16", "fp8_e4m3", "fp8_e5m2"):
        return round_to_input(np.asarray(acc, np.float32), out_dtype)
    return acc


def quantize_multiplier(m: float) -> tuple[int, int]:
    """Return (significand, shift) with ``m ~= significand * 2**(shift - 31)``: TFLite's
    QuantizeMultiplier (frexp, significand rounded half away from zero to Q31; 0 for m = 0 or
    below 2**-32). The significand lies in [2**30, 2**31); the shift is a power of two."""
    if not np.isfinite(m) or m < 0:
        raise ValueError(f"a requantisation multiplier must be finite and >= 0, got {m!r}")
    if m == 0.0:
        return 0, 0
    q, shift = np.frexp(np.float64(m))
    fixed = int(np.floor(abs(float(q)) * (1 << 31) + 0.5))  # std::round of a positive value
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, int(shift)


def _srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul of int32 values held in int64: the high 32
    bits of 2ab, rounded (nudge 2**30, or 1 - 2**30 below zero, then division truncating toward
    zero); a = b = -2**31 saturates to 2**31 - 1."""
    lo = -(1 << 31)
    a64, b64 = np.asarray(a, np.int64), np.asarray(b, np.int64)
    # |a*b| <= 2**62: exact in int64
    prod = a64 * b64
    nudge = np.where(prod >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    num = prod + nudge
    q = np.abs(num) >> 31  # truncation toward zero of num / 2**31
    res = np.where(num < 0, -q, q)
    return np.where((a64 == lo) & (b64 == lo), np.int64((1 << 31) - 1), res)


def _rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: ``x / 2**exponent`` rounded half away from zero."""
    x = np.asarray(x, np.int64)
    e = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def requantise_fixed(acc: np.ndarray, rq, axis: int) -> np.ndarray:
    """Return the int8 values (as int64) of int32 accumulators ``acc`` after the fixed-point
    output step ``rq`` (a program.Requant; per channel along ``axis``): TFLite's reference
    requantisation, bit for bit: ``acc + bias``, MultiplyByQuantizedMultiplier, ``+
    zero_point``, clamped to [qmin, qmax]. ``rq.rounding`` "double" is gemmlowp's (a left
    shift for a positive shift, SaturatingRoundingDoublingHighMul by the Q31 significand, then
    RoundingDivideByPOT for a negative shift); "single" is TFLITE_SINGLE_ROUNDING's
    ``(x * m + 2**(30 - shift)) >> (31 - shift)``; "fp32" is XNNPACK's QS8 fp32 requantisation
    (LiteRT's default CPU kernels): ``rint(float32(x) * float32(rq.scale))`` in float32,
    rounding half to even, then ``+ zero_point`` and the clamp."""
    acc = np.asarray(acc, np.int64)
    axis = axis % acc.ndim
    bshape = [1] * acc.ndim
    bshape[axis] = -1

    def per_channel(v):
        return np.asarray(v, np.int64).reshape(bshape) if len(v) > 1 else np.int64(v[0])
    x = acc + per_channel(rq.bias)
    x = np.clip(x, -(1 << 31), (1 << 31) - 1)  # the int32 sum (TFLite's is int32 throughout)
    if getattr(rq, "rounding", "double") == "fp32":
        scale = np.asarray(rq.scale, np.float32)
        scale = scale.reshape(bshape) if scale.size > 1 else np.float32(scale[0])
        # one float32 rounding of the conversion, one of the product, then nearest even
        y = np.rint(x.astype(np.float32) * scale).astype(np.int64)
        return np.clip(y + rq.zero_point, rq.qmin, rq.qmax).astype(np.int64)
    shift = per_channel(rq.shift)
    if getattr(rq, "rounding", "double") == "single":
        # TFLITE_SINGLE_ROUNDING: (x * m + 2**(30 - shift)) >> (31 - shift); |x * m| < 2**62
        total = np.int64(31) - shift
        x = (x * per_channel(rq.multiplier) + (np.int64(1) << (total - 1))) >> total
        return np.clip(x + rq.zero_point, rq.qmin, rq.qmax).astype(np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = np.clip(x << left, -(1 << 31), (1 << 31) - 1)
    x = _rounding_divide_by_pot(_srdhm(x, per_channel(rq.multiplier)), right)
    return np.clip(x + rq.zero_point, rq.qmin, rq.qmax).astype(np.int64)


def round_to_input(x: np.ndarray, dtype: str) -> np.ndarray:
    """Return ``x`` rounded to the float input type ``dtype``, as float32."""
    return np.asarray(x).astype(input_type(dtype), copy=False).astype(np.float32, copy=False)


def prepare_operand(x: object, dtype: str, name: str) -> np.ndarray:
    """Return operand ``x`` as a C-contiguous 2-D array of the chip's value type.

    int8/int4 chips take integer arrays with every value in [-128, 127] / [-8, 7] (anything
    else is an error, not a silent cast); float chips take any real array and round it to the
    input type.
    Raises WorkloadError naming the operand.
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise WorkloadError(name, name, f"must be a 2-D matrix, got shape {arr.shape}")
    if arr.size == 0:
        raise WorkloadError(name, name, f"must not be empty, got shape {arr.shape}")
    if dtype in INTEGER_FORMATS:
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            raise WorkloadError(name, name, f"must hold integers for an {dtype} chip, got "
                                            f"{arr.dtype}")
        lo, hi = int(arr.min()), int(arr.max())
        rlo, rhi = INT_RANGE[dtype]
        if lo < rlo or hi > rhi:
            raise WorkloadError(name, name, f"values must lie in [{rlo}, {rhi}] for {dtype}, "
                                            f"got [{lo}, {hi}]")
        return np.ascontiguousarray(arr, dtype=np.int64)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype.name in (
            "bfloat16", "float8_e4m3fn", "float8_e5m2")):
        raise WorkloadError(name, name, f"must hold numbers, got {arr.dtype}")
    if np.iscomplexobj(arr):
        raise WorkloadError(name, name, "must be real, got complex values")
    return np.ascontiguousarray(round_to_input(arr, dtype))


def random_operands(rng: np.random.Generator, m: int, n: int, k: int,
                    dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Return random (A[M,K], B[K,N]) of the chip's input type: uniform integers over the
    format's range (int8, int4), or normal floats."""
    if dtype in INTEGER_FORMATS:
        lo, hi = INT_RANGE[dtype]
        return (rng.integers(lo, hi + 1, size=(m, k), dtype=np.int8),
                rng.integers(lo, hi + 1, size=(k, n), dtype=np.int8))
    a = rng.standard_normal((m, k)).astype(input_type(dtype))
    b = rng.standard_normal((k, n)).astype(input_type(dtype))
    return a, b


def float_error_bound(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the elementwise bound on |O - A@B| for float chips, in the output's units.

    With unit roundoff u = 2**-24 of float32 and K products per element, any order of the K-1 adds
    plus the rounding of each product stays within gamma_K * (|A| @ |B|), gamma_K = K u / (1 - K u)
    (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.5). ``a`` and ``b`` are
    the operands already rounded to the input type; the bound assumes no over/underflow.
    """
    k = a.shape[1]
    u = 2.0 ** -24
    gamma = k * u / (1.0 - k * u)
    return gamma * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))
