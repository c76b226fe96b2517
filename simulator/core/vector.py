"""The SIMD vector unit: cycle cost and fp32 values of elementwise ops, reductions and the
composite ops of whole networks (softmax, norms, pooling, gather, concat, ...).

Cost of one pass over n elements (DESIGN section 5):

    cycles = ceil(n / lanes) * interval[class] + latency - 1        (+ tree depth for reductions)

Op classes (``vector.interval.*`` in the config): ``add`` (add/sub/mul/fma), ``compare``
(max/relu/select), ``divide`` (divide, sqrt, rsqrt), ``transcendental`` (exp, log, tanh, erf,
sigmoid), ``reduction`` and ``move`` (data movement: gather, concat, a permute or slice that
moves data, im2col/col2im). A composite op is a sequence of dependent passes, each costed as
above and paying the pipeline latency; its lane-ops are the sum of the passes' n. It reads its
inputs from the buffer once and writes its output once (rows are held in the unit's registers
between passes).

A reduction of n elements into each output is done lane-parallel: element i of a group goes to
lane i mod lanes and each lane adds its elements in order; then the lanes' partial sums are
added pairwise in a tree of depth ceil(log2(min(n, lanes))): lane 2j + lane 2j+1, level by
level. Values are float32 and every operation rounds to float32, in exactly that order. Sums
inside composite ops (softmax, norms) use numpy's float32 sum; their maths is written out per op
below, and the kernels' numpy twins compute the same formulas.

Elementwise kinds and their class: add, sub, mul, scale (x * c), add_const (x + c), square,
sgd (w - fl(c * g): two roundings), axpy (x + fl(c * y)), momentum (fl(c * b) + g), adam_m,
adam_v -> "add"; relu, relu_grad, max, min, where, masked_fill -> "compare"; div, sqrt, rsqrt,
adam_w -> "divide"; exp, log, tanh, erf, sigmoid, gelu (erf), gelu_tanh and their gradients ->
"transcendental". ONNX's elementwise vocabulary (abs, neg, sign, floor, ceil, round, trunc, the
trigonometric and hyperbolic functions, softplus, softsign, elu, selu, celu, mish, swish,
leaky_relu, thresholded_relu, hard_sigmoid, hard_swish, shrink, isnan, isinf, prelu, pow, mod,
the comparisons equal / less / less_equal / greater / greater_equal and the logic not / and /
or / xor, which give 1 or 0; the bitwise bit_and / bit_or / bit_xor / bit_not / shift_left /
shift_right of integers; int_add / int_sub / int_mul, wrapped to the type's width) has its
class in ``ELEMENTWISE``: selections and comparisons
"compare", negation "add", reciprocal, softsign and mod "divide", the rest "transcendental".

Reductions (``Reduce``): sum and mean (lane-then-tree order), max, min and prod (a product in
numpy's pairwise order; exact ordering is not modelled for it), each one "reduction" pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..hardware.chip import VectorUnit

__all__ = ["ELEMENTWISE", "ID_INPUT", "INTEGER_KINDS", "VECTOR_OPS", "VectorSpec",
           "cumsum_values", "elementwise_values", "gather_elements_values", "im2col_nchw",
           "pad_values",
           "col2im_nchw", "reduce_sum_values", "reduce_values", "vector_cycles",
           "reduction_cycles", "passes_cycles", "trunc_divide", "keeps_integers"]

# kind -> (op class, number of tensor inputs)
ELEMENTWISE = {
    "add": ("add", 2), "sub": ("add", 2), "mul": ("add", 2), "scale": ("add", 1),
    "sgd": ("add", 2), "axpy": ("add", 2), "relu": ("compare", 1), "relu_grad": ("compare", 2),
    "exp": ("transcendental", 1),
    "add_const": ("add", 1), "square": ("add", 1), "momentum": ("add", 2),
    "adam_m": ("add", 2), "adam_v": ("add", 2), "adam_w": ("divide", 3),
    "div": ("divide", 2), "sqrt": ("divide", 1), "rsqrt": ("divide", 1),
    "div_trunc": ("divide", 2),  # integer division rounded toward zero (ONNX's integer Div)
    "max": ("compare", 2), "min": ("compare", 2), "where": ("compare", 3),
    "clip": ("compare", 1),  # params (lo, hi): min(max(x, lo), hi); ReLU6 is clip(0, 6)
    "masked_fill": ("compare", 2),
    "log": ("transcendental", 1), "tanh": ("transcendental", 1), "erf": ("transcendental", 1),
    "sigmoid": ("transcendental", 1), "gelu": ("transcendental", 1),
    "gelu_tanh": ("transcendental", 1), "gelu_grad": ("transcendental", 2),
    "gelu_tanh_grad": ("transcendental", 2), "tanh_grad": ("add", 2),
    "sigmoid_grad": ("add", 2),
    # ONNX's elementwise vocabulary (issue 25); params as each kind's comment says
    "abs": ("compare", 1), "neg": ("add", 1), "sign": ("compare", 1),
    "floor": ("compare", 1), "ceil": ("compare", 1), "round": ("compare", 1),  # half to even
    "trunc": ("compare", 1),  # toward zero (a Cast of floats to an integer type)
    "reciprocal": ("divide", 1),
    "sin": ("transcendental", 1), "cos": ("transcendental", 1), "tan": ("transcendental", 1),
    "asin": ("transcendental", 1), "acos": ("transcendental", 1),
    "atan": ("transcendental", 1), "sinh": ("transcendental", 1),
    "cosh": ("transcendental", 1), "asinh": ("transcendental", 1),
    "acosh": ("transcendental", 1), "atanh": ("transcendental", 1),
    "softplus": ("transcendental", 1),  # log(1 + exp(x))
    "softsign": ("divide", 1),  # x / (1 + |x|)
    "elu": ("transcendental", 1),  # params (alpha,)
    "selu": ("transcendental", 1),  # params (alpha, gamma)
    "celu": ("transcendental", 1),  # params (alpha,)
    "mish": ("transcendental", 1),  # x tanh(softplus(x))
    "swish": ("transcendental", 1),  # params (alpha,): x sigmoid(alpha x)
    "leaky_relu": ("compare", 1),  # params (alpha,)
    "thresholded_relu": ("compare", 1),  # params (alpha,): x where x > alpha, else 0
    "hard_sigmoid": ("compare", 1),  # params (alpha, beta): clip(alpha x + beta, 0, 1)
    "hard_swish": ("compare", 1),  # x hard_sigmoid(x; 1/6, 1/2)
    "shrink": ("compare", 1),  # params (lambd, bias)
    "isnan": ("compare", 1), "isinf": ("compare", 1),  # params (detect +inf, detect -inf)
    "prelu": ("compare", 2),  # x where x >= 0, else slope * x
    "pow": ("transcendental", 2),  # x ** y (C's pow; integers exactly)
    "mod": ("divide", 2),  # params (fmod,): fmod 1: the dividend's sign, 0: the divisor's
    "equal": ("compare", 2), "less": ("compare", 2), "less_equal": ("compare", 2),
    "greater": ("compare", 2), "greater_equal": ("compare", 2),  # results 1 or 0
    # logic on nonzero = true; results 1 or 0
    "logical_and": ("compare", 2), "logical_or": ("compare", 2),
    "logical_xor": ("compare", 2), "logical_not": ("compare", 1),
    # bitwise ops of integers, params (bits, signed) of their element type (whole numbers
    # carried as float32 are converted exactly)
    "bit_and": ("compare", 2), "bit_or": ("compare", 2), "bit_xor": ("compare", 2),
    "bit_not": ("compare", 1), "shift_left": ("compare", 2), "shift_right": ("compare", 2),
    # integer add, subtract, multiply wrapped to params (bits, signed) (ONNX's integer Add,
    # Sub, Mul: two's complement)
    "int_add": ("add", 2), "int_sub": ("add", 2), "int_mul": ("add", 2),
    # quantised (int8) models. quantize, params (scale, zero point, qmin, qmax): the integers
    # clip(round(x / scale) + zero point, qmin, qmax), halves away from zero; dequantize,
    # params (scale, zero point): (q - zero point) * scale in float32
    "quantize": ("add", 1), "dequantize": ("add", 1),
    # integers: params (bias, multiplier, shift, zero point, qmin, qmax): TFLite's fixed-point
    # requantisation of x + bias (numerics.requantise_fixed) + zero point, clamped
    "requantize": ("add", 1),
    # integers: params (bias, scale, zero point, qmin, qmax): XNNPACK's float32 requantisation
    # (LiteRT's default CPU kernels): rint(float32(x + bias) * float32(scale)) + zero point,
    # halves to even, clamped
    "requantize_fp32": ("add", 1),
}
_WRAPPED = {"int_add": np.add, "int_sub": np.subtract, "int_mul": np.multiply}
_BITWISE = {"bit_and": np.bitwise_and, "bit_or": np.bitwise_or, "bit_xor": np.bitwise_xor,
            "bit_not": np.invert, "shift_left": np.left_shift, "shift_right": np.right_shift}

# kinds whose values stay exact integers when every operand is an integer tensor (ONNX's
# integer semantics: Div truncates, Mod follows fmod, Pow is exact, comparisons give 0/1).
# add, sub, mul, clip and where of integer tensors keep their float32 results (an int8
# network's residual adds and ReLU6 feed the array as floats it quantises): exact while the
# values stay below 2**24 in magnitude; ONNX's integer Add, Sub, Mul are int_add, int_sub,
# int_mul, exact and wrapped to their type.
INTEGER_KINDS = {"relu", "max", "min", "div_trunc", "abs", "neg", "sign", "mod", "pow",
                 "equal", "less", "less_equal", "greater", "greater_equal", "logical_not",
                 "logical_and", "logical_or", "logical_xor", "prelu", "floor", "ceil", "round",
                 "trunc", *_BITWISE, *_WRAPPED}

# composite ops that only move or compare values: integer inputs (an int8 model's values)
# give the same integers back
INTEGER_EXACT = frozenset({"maxpool2d", "pad", "concat", "broadcast"})
# elementwise kinds giving int8 values
INTEGER_RESULTS = frozenset({"quantize", "requantize", "requantize_fp32"})

_F = np.float32
# the comparison and logic kinds: numpy's, on values where any nonzero is true
_LOGIC: dict[str, Callable[..., np.ndarray]] = {
    "equal": np.equal, "less": np.less, "less_equal": np.less_equal, "greater": np.greater,
    "greater_equal": np.greater_equal,
    "logical_and": lambda a, b: np.logical_and(a != 0, b != 0),
    "logical_or": lambda a, b: np.logical_or(a != 0, b != 0),
    "logical_xor": lambda a, b: np.logical_xor(a != 0, b != 0),
    "logical_not": lambda a: a == 0,
}
_SQRT_2_OVER_PI = _F(math.sqrt(2.0 / math.pi))
_GELU_C = _F(0.044715)


def vector_cycles(unit: VectorUnit, op_class: str, n: int) -> int:
    """Return the cycles of an elementwise op of ``op_class`` over n elements."""
    return -(-n // unit.lanes) * unit.interval[op_class] + unit.latency_cycles - 1


def reduction_cycles(unit: VectorUnit, n: int, group: int) -> int:
    """Return the cycles of reducing n elements in groups of ``group`` (one output per group)."""
    depth = math.ceil(math.log2(min(group, unit.lanes))) if group > 1 else 0
    return vector_cycles(unit, "reduction", n) + depth


def requant_passes(out_dtype: str, n: int) -> list[tuple[str, int, int]]:
    """Return the vector-unit passes that requantise ``n`` accumulators to ``out_dtype``:
    int8 multiplies by the scale (an ``add``-class pass, a multiply-add) then rounds and
    saturates (a ``compare``-class pass); bf16/fp16 round once (an ``add``-class pass, the
    adder's rounding). The pass classes are an assumption; see docs/energy.md."""
    if out_dtype == "int8":
        return [("add", n, 0), ("compare", n, 0)]
    return [("add", n, 0)]


def passes_cycles(unit: VectorUnit, passes: list[tuple[str, int, int]]) -> tuple[int, int]:
    """Return (cycles, lane-ops) of a sequence of passes (class, n elements, reduction group;
    group 0 = not a reduction), each paying its latency (they depend on each other)."""
    cycles = 0
    lane_ops = 0
    for cls, n, group in passes:
        if n <= 0:
            continue
        cycles += reduction_cycles(unit, n, group) if group else vector_cycles(unit, cls, n)
        lane_ops += n
    return cycles, lane_ops


def _erf(x: np.ndarray) -> np.ndarray:
    """Return erf(x) in float32 (computed in float64 by math.erf's vectorised twin, rounded)."""
    from scipy.special import erf  # scipy is a core dependency (calibration)
    return erf(x.astype(np.float64)).astype(_F)


def _gelu(x: np.ndarray) -> np.ndarray:
    return (_F(0.5) * x * (_F(1.0) + _erf(x * _F(1.0 / math.sqrt(2.0))))).astype(_F)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    inner = _SQRT_2_OVER_PI * (x + _GELU_C * x * x * x)
    return (_F(0.5) * x * (_F(1.0) + np.tanh(inner))).astype(_F)


def _gelu_grad(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    cdf = _F(0.5) * (_F(1.0) + _erf(x * _F(1.0 / math.sqrt(2.0))))
    pdf = np.exp(_F(-0.5) * x * x) * _F(1.0 / math.sqrt(2.0 * math.pi))
    return (g * (cdf + x * pdf)).astype(_F)


def _gelu_tanh_grad(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    inner = _SQRT_2_OVER_PI * (x + _GELU_C * x * x * x)
    t = np.tanh(inner)
    d_inner = _SQRT_2_OVER_PI * (_F(1.0) + _F(3.0) * _GELU_C * x * x)
    return (g * (_F(0.5) * (_F(1.0) + t) + _F(0.5) * x * (_F(1.0) - t * t) * d_inner)).astype(_F)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (_F(1.0) / (_F(1.0) + np.exp(-x))).astype(_F)


def trunc_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the integer quotient of integer arrays rounded toward zero (C's and ONNX's
    integer division: 7 / -2 = -3, where numpy's // floors to -4), exactly, in their common
    integer type; a zero divisor gives 0."""
    a, b = np.asarray(a), np.asarray(b)
    dt = np.result_type(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.abs(a).astype(dt) // np.abs(b).astype(dt)
    negative = (a < 0) != (b < 0)
    return np.where(negative, -q, q).astype(dt)


def _integer_elementwise(kind: str, xs: list[np.ndarray], c, p: list) -> np.ndarray:
    """Return the exact integer result of ``kind`` (in INTEGER_KINDS) on integer arrays, in
    their common integer type (comparisons and logic: 0 or 1)."""
    dt = np.result_type(*xs)
    if kind == "div_trunc":
        return trunc_divide(xs[0], xs[1])
    if kind == "mod":
        with np.errstate(divide="ignore", invalid="ignore"):
            if p and p[0]:  # C's fmod: the remainder takes the dividend's sign
                r = np.abs(xs[0]) % np.where(xs[1] == 0, 1, np.abs(xs[1]))
                return np.where(xs[0] < 0, -r, r).astype(dt)
            return np.mod(xs[0], xs[1]).astype(dt)
    if kind == "pow":
        if np.any(xs[1] < 0):  # C's pow rounded toward zero: 2 ** -1 = 0
            return np.trunc(np.power(xs[0].astype(np.float64),
                                     xs[1].astype(np.float64))).astype(dt)
        return np.power(xs[0], xs[1]).astype(dt)
    if kind == "relu":
        return np.maximum(xs[0], 0).astype(dt)
    if kind in _BITWISE or kind in _WRAPPED:
        return _bitwise(kind, xs, p).astype(dt)
    if kind in _LOGIC:
        return _LOGIC[kind](*xs).astype(np.int64)
    if kind in ("max", "min"):
        return (np.maximum if kind == "max" else np.minimum)(xs[0], xs[1]).astype(dt)
    if kind == "prelu":
        return np.where(xs[0] >= 0, xs[0], xs[0] * xs[1]).astype(dt)
    unary = {"abs": np.abs, "neg": np.negative, "sign": np.sign,
             "floor": lambda a: a, "ceil": lambda a: a, "round": lambda a: a,
             "trunc": lambda a: a}
    return unary[kind](xs[0]).astype(dt)


def _bitwise(kind: str, xs: list[np.ndarray], p: list) -> np.ndarray:
    """Return bitwise (or wrapped integer arithmetic) ``kind`` of integer arrays in int64,
    wrapped to the element type params
    (bits, signed) give (two's complement; a shift by a negative count or by the width or
    more gives 0, or -1 for a negative signed value shifted right, as ONNX's BitShift)."""
    a = [np.asarray(x, np.int64) for x in xs]
    bits, signed = (int(p[0]), bool(p[1])) if p else (64, True)
    outside = None
    if kind in ("shift_left", "shift_right"):
        a = list(np.broadcast_arrays(*a))
        outside = (a[1] < 0) | (a[1] >= bits)  # shifted out entirely (ONNX: 0, or -1)
        a[1] = np.clip(a[1], 0, 63)
    with np.errstate(over="ignore"):
        r = (_BITWISE.get(kind) or _WRAPPED[kind])(*a)
    if outside is not None:
        r = np.where(outside, np.where((a[0] < 0) & (kind == "shift_right"), -1, 0), r)
    if bits >= 64:
        return r
    r = r & ((1 << bits) - 1)
    if signed:
        r = np.where(r >= 1 << (bits - 1), r - (1 << bits), r)
    return r


def elementwise_values(kind: str, inputs: list[np.ndarray], const: float,
                       params: tuple[float, ...] = ()) -> np.ndarray:
    """Return the float32 result of an elementwise op (operands broadcast as in numpy). The
    kinds of INTEGER_KINDS on integer tensors (an int8 network's activations, ONNX's integer
    ops) stay integers, exactly: ``div_trunc`` truncates toward zero, comparisons give 0/1;
    quantize and requantize give int8 values (int64)."""
    if kind == "quantize":  # the int8 values, held as int64
        scale, zp, lo, hi = (float(v) for v in params)
        with np.errstate(over="ignore", invalid="ignore"):
            q = np.asarray(inputs[0], np.float64) / np.float64(np.float32(scale))
        q = np.sign(q) * np.floor(np.abs(q) + 0.5)  # halves away from zero (std::round)
        return np.clip(np.nan_to_num(q) + zp, lo, hi).astype(np.int64)
    if kind == "requantize":
        from ..hardware.numerics import requantise_fixed
        bias, mult, shift, zp, lo, hi = (int(v) for v in params)
        x = np.asarray(inputs[0], np.float64)
        shape = x.shape
        x = np.rint(x).astype(np.int64).reshape(-1)  # sums of integers: exact in float32
        rq = _Rq((bias,), (mult,), (shift,), zp, lo, hi)
        return requantise_fixed(x, rq, 0).reshape(shape)
    if kind == "requantize_fp32":
        from ..hardware.numerics import requantise_fixed
        bias, zp, lo, hi = (int(v) for v in (params[0], *params[2:]))
        x = np.asarray(inputs[0], np.float64)
        shape = x.shape
        x = np.rint(x).astype(np.int64).reshape(-1)  # sums of integers: exact in float32
        rq = _Rq((bias,), (0,), (0,), zp, lo, hi, "fp32", (float(params[1]),))
        return requantise_fixed(x, rq, 0).reshape(shape)
    if kind == "dequantize":
        return ((np.asarray(inputs[0], np.float32) - np.float32(params[1]))
                * np.float32(params[0])).astype(np.float32)
    if kind in INTEGER_KINDS and \
            all(np.issubdtype(np.asarray(x).dtype, np.integer) for x in inputs):
        xs = [np.asarray(x) for x in inputs]
        with np.errstate(over="ignore"):
            return _integer_elementwise(kind, xs, const, list(params))
    xs = [np.asarray(x, np.float32) for x in inputs]
    c = np.float32(const)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
        out = _elementwise(kind, xs, c, [np.float32(p) for p in params])
    return np.asarray(out, np.float32)


def _elementwise(kind: str, xs: list[np.ndarray], c: np.float32, p: list) -> np.ndarray:
    if kind == "add":
        return xs[0] + xs[1]
    if kind == "sub":
        return xs[0] - xs[1]
    if kind == "mul":
        return xs[0] * xs[1]
    if kind == "scale":
        return xs[0] * c
    if kind == "add_const":
        return xs[0] + c
    if kind == "square":
        return xs[0] * xs[0]
    if kind == "sgd":
        return xs[0] - (c * xs[1])
    if kind == "axpy":
        return xs[0] + (c * xs[1])
    if kind == "momentum":  # buf' = c * buf + g
        return (c * xs[0]) + xs[1]
    if kind == "adam_m":  # m' = m + (1 - beta1) (g - m)   (torch's lerp)
        return xs[0] + (np.float32(1) - c) * (xs[1] - xs[0])
    if kind == "adam_v":  # v' = beta2 v + (1 - beta2) g g
        return (c * xs[0]) + ((np.float32(1) - c) * (xs[1] * xs[1]))
    if kind == "adam_w":  # params: lr, weight decay, bias corr. 1, sqrt of bias corr. 2, eps
        lr, wd, bc1, bc2_sqrt, eps = p
        w = xs[0] * (np.float32(1) - lr * wd) if wd else xs[0]
        denom = (np.sqrt(xs[2]) / bc2_sqrt) + eps
        return w - (lr / bc1) * (xs[1] / denom)
    if kind == "relu":
        return np.maximum(xs[0], np.float32(0))
    if kind == "relu_grad":
        return np.where(xs[1] > 0, xs[0], np.float32(0)).astype(np.float32)
    if kind == "max":
        return np.maximum(xs[0], xs[1])
    if kind == "min":
        return np.minimum(xs[0], xs[1])
    if kind == "clip":
        return np.minimum(np.maximum(xs[0], p[0]), p[1])
    if kind == "where":
        return np.where(xs[0] != 0, xs[1], xs[2])
    if kind == "masked_fill":  # x where mask == 0, const where mask != 0
        return np.where(xs[1] != 0, c, xs[0])
    if kind == "div":
        return xs[0] / xs[1]
    if kind == "div_trunc":  # integers carried as float32: exact while |x| < 2**24
        return np.trunc(xs[0] / xs[1])
    if kind == "sqrt":
        return np.sqrt(xs[0])
    if kind == "rsqrt":
        return np.float32(1) / np.sqrt(xs[0])
    if kind == "exp":
        return np.exp(xs[0]).astype(np.float32)
    if kind == "log":
        return np.log(xs[0])
    if kind == "tanh":
        return np.tanh(xs[0])
    if kind == "erf":
        return _erf(xs[0])
    if kind in _LOGIC:
        return _LOGIC[kind](*xs).astype(np.float32)
    if kind == "sigmoid":
        return _sigmoid(xs[0])
    if kind == "gelu":
        return _gelu(xs[0])
    if kind == "gelu_tanh":
        return _gelu_tanh(xs[0])
    if kind == "gelu_grad":
        return _gelu_grad(xs[0], xs[1])
    if kind == "gelu_tanh_grad":
        return _gelu_tanh_grad(xs[0], xs[1])
    if kind == "tanh_grad":  # g (1 - y^2), y = tanh(x)
        return xs[0] * (np.float32(1) - xs[1] * xs[1])
    if kind == "sigmoid_grad":  # g y (1 - y), y = sigmoid(x)
        return xs[0] * (xs[1] * (np.float32(1) - xs[1]))
    return _onnx_elementwise(kind, xs, p)


def _softplus(x: np.ndarray) -> np.ndarray:
    """Return log(1 + exp(x)) in float32, without overflow for large x."""
    return (np.maximum(x, _F(0)) + np.log1p(np.exp(-np.abs(x)))).astype(_F)


def _onnx_elementwise(kind: str, xs: list[np.ndarray], p: list) -> np.ndarray:
    x = xs[0]
    one, zero = _F(1), _F(0)
    simple = {"abs": np.abs, "neg": np.negative, "sign": np.sign, "floor": np.floor,
              "ceil": np.ceil, "round": np.round, "trunc": np.trunc, "sin": np.sin,
              "cos": np.cos, "tan": np.tan,
              "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh,
              "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
              "reciprocal": lambda a: one / a, "softplus": _softplus,
              "softsign": lambda a: a / (one + np.abs(a)),
              "mish": lambda a: a * np.tanh(_softplus(a)),
              "hard_swish": lambda a: a * np.clip(a * _F(1 / 6) + _F(0.5), zero, one)}
    if kind in simple:
        return simple[kind](x)
    if kind == "elu":
        return np.where(x > 0, x, p[0] * (np.exp(x) - one))
    if kind == "selu":
        return np.where(x > 0, p[1] * x, p[1] * (p[0] * np.exp(x) - p[0]))
    if kind == "celu":
        return np.maximum(x, zero) + np.minimum(zero, p[0] * (np.exp(x / p[0]) - one))
    if kind == "swish":
        return x * _sigmoid(p[0] * x)
    if kind == "leaky_relu":
        return np.where(x >= 0, x, p[0] * x)
    if kind == "thresholded_relu":
        return np.where(x > p[0], x, zero)
    if kind == "hard_sigmoid":
        return np.clip(p[0] * x + p[1], zero, one)
    if kind == "shrink":
        return np.where(x < -p[0], x + p[1], np.where(x > p[0], x - p[1], zero))
    if kind == "isnan":
        return np.isnan(x).astype(_F)
    if kind == "isinf":
        return ((np.isposinf(x) & bool(p[0])) | (np.isneginf(x) & bool(p[1]))).astype(_F)
    if kind == "prelu":
        return np.where(x >= 0, x, xs[1] * x)
    if kind == "pow":
        return np.power(x, xs[1])
    if kind == "mod":
        return np.fmod(x, xs[1]) if p and p[0] else np.mod(x, xs[1])
    if kind in _BITWISE or kind in _WRAPPED:  # integers carried as float32 (exact < 2**24)
        return _bitwise(kind, [np.asarray(a, np.float64).astype(np.int64) for a in xs],
                        p).astype(_F)
    raise ValueError(f"unknown elementwise kind {kind!r}")  # pragma: no cover - Program checks


# --------------------------------------------------------------------------- reductions

def _lane_tree_sum(groups: np.ndarray, lanes: int) -> np.ndarray:
    """Sum each row of ``groups`` (float32) in the lane order described in the module doc."""
    rows, n = groups.shape
    width = min(n, lanes)
    passes = -(-n // width)
    padded = np.zeros((rows, passes * width), np.float32)
    padded[:, :n] = groups
    chunks = padded.reshape(rows, passes, width)
    acc = chunks[:, 0, :].copy()
    for p in range(1, passes):  # lane-wise, in element order (padding adds exact zeros)
        last = min(n - p * width, width)
        acc[:, :last] = acc[:, :last] + chunks[:, p, :last]
    while acc.shape[1] > 1:  # pairwise tree across lanes
        if acc.shape[1] % 2:
            acc = np.concatenate([acc, np.zeros((rows, 1), np.float32)], axis=1)
            odd = True
        else:
            odd = False
        summed = acc[:, 0::2] + acc[:, 1::2]
        if odd:  # the unpaired last lane passes through unchanged (x + 0 would be exact too)
            summed[:, -1] = acc[:, -2]
        acc = summed
    return acc[:, 0]


def reduce_sum_values(x: np.ndarray, axis: int | None, lanes: int) -> np.ndarray:
    """Return the float32 sum of ``x`` over ``axis`` (None: all elements) as the unit adds it.

    axis=None gives shape (1, 1); axis=0 gives a row vector (1, cols); axis=1 a column (rows, 1).
    """
    x = np.asarray(x, np.float32)
    if axis is None:
        return _lane_tree_sum(x.reshape(1, -1), lanes).reshape(1, 1)
    if axis == 0:
        return _lane_tree_sum(np.ascontiguousarray(x.T), lanes).reshape(1, -1)
    return _lane_tree_sum(x, lanes).reshape(-1, 1)


def _norm_axes(axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    raw = axis if isinstance(axis, tuple) else (axis,)
    return tuple(sorted({a % ndim for a in raw}))


def reduce_values(kind: str, x: np.ndarray, axis, keepdims: bool, lanes: int) -> np.ndarray:
    """Return the float32 reduction ``kind`` (sum, mean, max, min, prod) of ``x`` over ``axis``.

    Sums follow the lane-then-tree order; a mean is that sum divided by the count (one fp32
    division); max and min are exact in any order; prod multiplies in float32 in numpy's
    order. The result has the shape Program.reduce gives.
    """
    x = np.asarray(x, np.float32)
    if x.ndim == 2 and kind == "sum" and keepdims and axis in (None, 0, 1):
        return reduce_sum_values(x, axis, lanes)
    axes = _norm_axes(axis, x.ndim)
    keep = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, keep + list(axes))
    outer = tuple(x.shape[a] for a in keep)
    group = math.prod(x.shape[a] for a in axes)
    flat = np.ascontiguousarray(moved).reshape(-1, group)
    if kind == "max":
        res = flat.max(axis=1)
    elif kind == "min":
        res = flat.min(axis=1)
    elif kind == "prod":
        res = np.prod(flat, axis=1, dtype=np.float32)
    else:
        res = _lane_tree_sum(flat, lanes)
        if kind == "mean":
            res = res / np.float32(group)
    res = res.astype(np.float32).reshape(outer)
    if keepdims:
        return res.reshape(tuple(1 if a in axes else s for a, s in enumerate(x.shape)))
    return res.reshape(outer or (1,))


# --------------------------------------------------------------------------- conv lowering

def _conv_geometry(shape, kernel, stride, padding, dilation):
    nb, c, h, w = shape
    kh, kw = kernel
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return nb, c, h, w, kh, kw, oh, ow


def im2col_nchw(x: np.ndarray, kernel, stride, padding, dilation, groups: int) -> np.ndarray:
    """Return the im2col matrices of ``x (N, C, H, W)``: shape (groups, N*oh*ow, C/g*kh*kw),
    rows ordered (n, oy, ox), columns (channel, filter row, filter column) to match a weight
    (F, C/g, kh, kw) reshaped to (F, C/g*kh*kw)."""
    x = np.asarray(x)
    nb, c, h, w, kh, kw, oh, ow = _conv_geometry(x.shape, kernel, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))
    cols = np.empty((nb, oh, ow, c, kh, kw), x.dtype)
    for dy in range(kh):
        for dx in range(kw):
            y0, x0 = dy * dilation[0], dx * dilation[1]
            patch = xp[:, :, y0:y0 + stride[0] * (oh - 1) + 1:stride[0],
                       x0:x0 + stride[1] * (ow - 1) + 1:stride[1]]
            cols[:, :, :, :, dy, dx] = patch.transpose(0, 2, 3, 1)
    cg = c // groups
    cols = cols.reshape(nb * oh * ow, groups, cg * kh * kw)
    return np.ascontiguousarray(cols.transpose(1, 0, 2))


def col2im_nchw(cols: np.ndarray, shape, kernel, stride, padding, dilation,
                groups: int) -> np.ndarray:
    """Return the (N, C, H, W) sum of im2col matrices ``cols (groups, N*oh*ow, C/g*kh*kw)``
    scattered back to the pixels they were gathered from (the adjoint of im2col_nchw); adds
    in float32 in (filter row, filter column) order."""
    nb, c, h, w, kh, kw, oh, ow = _conv_geometry(shape, kernel, stride, padding, dilation)
    cg = c // groups
    cols = np.asarray(cols, np.float32).reshape(groups, nb, oh, ow, cg, kh, kw)
    cols = cols.transpose(1, 0, 4, 5, 6, 2, 3).reshape(nb, c, kh, kw, oh, ow)
    xp = np.zeros((nb, c, h + 2 * padding[0], w + 2 * padding[1]), np.float32)
    for dy in range(kh):
        for dx in range(kw):
            y0, x0 = dy * dilation[0], dx * dilation[1]
            xp[:, :, y0:y0 + stride[0] * (oh - 1) + 1:stride[0],
               x0:x0 + stride[1] * (ow - 1) + 1:stride[1]] += cols[:, :, dy, dx]
    return xp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w].copy()


# --------------------------------------------------------------------------- composite ops

@dataclass(frozen=True)
class VectorSpec:
    """A composite vector op: output shape (and normalised attrs), passes, values."""

    shape: Callable[[list, dict], tuple[tuple[int, ...], dict]]
    passes: Callable[[list, tuple, dict], list[tuple[str, int, int]]]
    values: Callable[[list, dict, int], np.ndarray]
    n_inputs: int | None  # None: any number >= 1


def _n(shape) -> int:
    return math.prod(shape)


def _check_inputs(shapes, n, kind):
    if n is not None and len(shapes) != n:
        raise ValueError(f"takes {n} tensors, got {len(shapes)}")


def _axis_attr(shapes, attrs, key="axis", default=-1):
    nd = len(shapes[0])
    ax = attrs.get(key, default)
    if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)) or not -nd <= ax < nd:
        raise ValueError(f"{key} {ax!r} is out of range for rank {nd}")
    attrs[key] = int(ax) % nd
    return attrs[key]


def _rowwise(shapes, attrs):
    _check_inputs(shapes, 1, "")
    _axis_attr(shapes, attrs)
    return shapes[0], attrs


def _softmax_passes(shapes, out, attrs):
    n, row = _n(shapes[0]), shapes[0][attrs["axis"]]
    return [("reduction", n, row), ("add", n, 0), ("transcendental", n, 0),
            ("reduction", n, row), ("divide", n // row, 0), ("add", n, 0)]


def _softmax_values(xs, attrs, lanes):
    x, ax = xs[0], attrs["axis"]
    e = np.exp(x - x.max(axis=ax, keepdims=True))
    return e * (np.float32(1) / e.sum(axis=ax, keepdims=True, dtype=np.float32))


def _log_softmax_passes(shapes, out, attrs):
    n, row = _n(shapes[0]), shapes[0][attrs["axis"]]
    return [("reduction", n, row), ("add", n, 0), ("transcendental", n, 0),
            ("reduction", n, row), ("transcendental", n // row, 0), ("add", n, 0)]


def _log_softmax_values(xs, attrs, lanes):
    x, ax = xs[0], attrs["axis"]
    z = x - x.max(axis=ax, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=ax, keepdims=True, dtype=np.float32))


def _softmax_grad_shape(shapes, attrs):  # (y, g) -> dx = y * (g - sum(g * y))
    _check_inputs(shapes, 2, "")
    if shapes[0] != shapes[1]:
        raise ValueError(f"shapes {shapes[0]} and {shapes[1]} differ")
    _axis_attr(shapes, attrs)
    return shapes[0], attrs


def _softmax_grad_passes(shapes, out, attrs):
    n, row = _n(shapes[0]), shapes[0][attrs["axis"]]
    return [("add", n, 0), ("reduction", n, row), ("add", n, 0), ("add", n, 0)]


def _softmax_grad_values(xs, attrs, lanes):
    y, g = xs
    s = (g * y).sum(axis=attrs["axis"], keepdims=True, dtype=np.float32)
    return y * (g - s)


def _log_softmax_grad_values(xs, attrs, lanes):  # (y = log_softmax, g) -> g - exp(y) sum(g)
    y, g = xs
    return g - np.exp(y) * g.sum(axis=attrs["axis"], keepdims=True, dtype=np.float32)


def _log_softmax_grad_passes(shapes, out, attrs):
    n, row = _n(shapes[0]), shapes[0][attrs["axis"]]
    return [("reduction", n, row), ("transcendental", n, 0), ("add", n, 0)]


def _norm_shape(n_params):
    def shape(shapes, attrs):
        _check_inputs(shapes, 1 + n_params, "")
        x = shapes[0]
        d = x[-1]
        for s in shapes[1:]:
            if tuple(s) != (d,):
                raise ValueError(f"scale and shift must have shape ({d},), got {tuple(s)}")
        eps = attrs.get("eps", 1e-5)
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        attrs["eps"] = float(eps)
        return x, attrs
    return shape


def _layernorm_passes(shapes, out, attrs):
    n, d = _n(shapes[0]), shapes[0][-1]
    return [("reduction", n, d), ("add", n, 0), ("reduction", n, d), ("divide", n // d, 0),
            ("add", n, 0), ("add", n, 0)]


def _layernorm_values(xs, attrs, lanes):
    x = xs[0]
    d = np.float32(x.shape[-1])
    mu = x.sum(axis=-1, keepdims=True, dtype=np.float32) / d
    c = x - mu
    var = (c * c).sum(axis=-1, keepdims=True, dtype=np.float32) / d
    xhat = c * (np.float32(1) / np.sqrt(var + np.float32(attrs["eps"])))
    if len(xs) == 1:
        return xhat
    return xhat * xs[1] + xs[2]


def _rmsnorm_passes(shapes, out, attrs):
    n, d = _n(shapes[0]), shapes[0][-1]
    return [("reduction", n, d), ("divide", n // d, 0), ("add", n, 0)]


def _rmsnorm_values(xs, attrs, lanes):
    x, g = xs
    ms = (x * x).sum(axis=-1, keepdims=True, dtype=np.float32) / np.float32(x.shape[-1])
    return x * (np.float32(1) / np.sqrt(ms + np.float32(attrs["eps"]))) * g


def _layernorm_grad_shape(shapes, attrs):  # (x, gamma, g) -> dx
    _check_inputs(shapes, 3, "")
    if shapes[0] != shapes[2] or tuple(shapes[1]) != (shapes[0][-1],):
        raise ValueError(f"shapes {shapes} do not fit (x, gamma, grad)")
    attrs["eps"] = float(attrs.get("eps", 1e-5))
    return shapes[0], attrs


def _layernorm_grad_passes(shapes, out, attrs):
    n, d = _n(shapes[0]), shapes[0][-1]
    return [("reduction", n, d), ("add", n, 0), ("reduction", n, d), ("divide", n // d, 0),
            ("add", n, 0), ("reduction", n, d), ("reduction", n, d), ("add", n, 0),
            ("add", n, 0)]


def _layernorm_grad_values(xs, attrs, lanes):
    x, gamma, g = xs
    d = np.float32(x.shape[-1])
    mu = x.sum(axis=-1, keepdims=True, dtype=np.float32) / d
    c = x - mu
    var = (c * c).sum(axis=-1, keepdims=True, dtype=np.float32) / d
    rstd = np.float32(1) / np.sqrt(var + np.float32(attrs["eps"]))
    xhat = c * rstd
    gh = g * gamma
    m1 = gh.sum(axis=-1, keepdims=True, dtype=np.float32) / d
    m2 = (gh * xhat).sum(axis=-1, keepdims=True, dtype=np.float32) / d
    return rstd * (gh - m1 - xhat * m2)


def _batchnorm_shape(shapes, attrs):  # (x, gamma, beta, mean, var), channels on axis 1
    _check_inputs(shapes, 5, "")
    x = shapes[0]
    if len(x) < 2:
        raise ValueError(f"needs (N, C, ...) input, got {x}")
    for s in shapes[1:]:
        if tuple(s) != (x[1],):
            raise ValueError(f"per-channel parameters must have shape ({x[1]},), got {tuple(s)}")
    attrs["eps"] = float(attrs.get("eps", 1e-5))
    return x, attrs


def _batchnorm_passes(shapes, out, attrs):
    c = shapes[0][1]
    return [("divide", c, 0), ("add", 2 * c, 0), ("add", _n(shapes[0]), 0)]


def _batchnorm_values(xs, attrs, lanes):
    """Inference BatchNorm folded into a per-channel scale and shift:
    scale = gamma / sqrt(var + eps), shift = beta - mean * scale, y = x * scale + shift."""
    x, gamma, beta, mean, var = xs
    scale = gamma / np.sqrt(var + np.float32(attrs["eps"]))
    shift = beta - mean * scale
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    return x * scale.reshape(bshape) + shift.reshape(bshape)


def _pool_shape(shapes, attrs):
    _check_inputs(shapes, 1, "")
    x = shapes[0]
    if len(x) != 4:
        raise ValueError(f"needs (N, C, H, W) input, got {x}")

    def pair(key, default, minimum):
        v = attrs.get(key, default)
        v = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
        if len(v) != 2 or any(int(a) < minimum for a in v):
            raise ValueError(f"{key} must be an integer >= {minimum} or a pair, got {v!r}")
        return tuple(int(a) for a in v)
    k = pair("kernel", None, 1) if attrs.get("kernel") is not None else None
    if k is None:
        raise ValueError("needs kernel")
    s = pair("stride", k, 1)
    p = pair("padding", 0, 0)
    if p[0] * 2 > k[0] or p[1] * 2 > k[1]:
        raise ValueError(f"padding {p} must be at most half the kernel {k}")
    oh = (x[2] + 2 * p[0] - k[0]) // s[0] + 1
    ow = (x[3] + 2 * p[1] - k[1]) // s[1] + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"kernel {k} is larger than the padded input")
    attrs.update(kernel=k, stride=s, padding=p)
    return (x[0], x[1], oh, ow), attrs


def _pool_windows(x, attrs, fill):
    k, s, p = attrs["kernel"], attrs["stride"], attrs["padding"]
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    oh = (x.shape[2] + 2 * p[0] - k[0]) // s[0] + 1
    ow = (x.shape[3] + 2 * p[1] - k[1]) // s[1] + 1
    for dy in range(k[0]):
        for dx in range(k[1]):
            yield dy, dx, xp[:, :, dy:dy + s[0] * (oh - 1) + 1:s[0], dx:dx + s[1] * (ow - 1) + 1:s[1]]


def _maxpool_values(xs, attrs, lanes):
    out = None
    for _dy, _dx, win in _pool_windows(xs[0], attrs, -np.inf):
        out = win.copy() if out is None else np.maximum(out, win)
    return out


def _avgpool_values(xs, attrs, lanes):
    """Average over the window, zero padding counted (PyTorch's count_include_pad=True);
    adds in (filter row, filter column) order, then one fp32 division by kh*kw."""
    out = None
    for _dy, _dx, win in _pool_windows(xs[0], attrs, 0.0):
        out = win.astype(np.float32) if out is None else out + win
    k = attrs["kernel"]
    return out / np.float32(k[0] * k[1])


def _pool_passes(cls):
    def passes(shapes, out, attrs):
        k = attrs["kernel"]
        n = _n(out) * k[0] * k[1]
        return [(cls, n, 0)] + ([("divide", _n(out), 0)] if cls == "add" else [])
    return passes


def _gather_shape(shapes, attrs):  # (table (V, D), ids (...)) -> ids.shape + (D,)
    _check_inputs(shapes, 2, "")
    if len(shapes[0]) != 2:
        raise ValueError(f"table must be 2-D (rows, width), got {shapes[0]}")
    return (*shapes[1], shapes[0][1]), attrs


def _gather_values(xs, attrs, lanes):
    table, ids = xs
    idx = np.asarray(ids).astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= table.shape[0]):
        raise IndexError(f"ids must lie in [0, {table.shape[0]}), got [{idx.min()}, {idx.max()}]")
    return table[idx]


def _scatter_add_shape(shapes, attrs):  # (ids (...), g (..., D); rows) -> (rows, D)
    _check_inputs(shapes, 2, "")
    ids, g = shapes
    if tuple(g[:-1]) != tuple(ids):
        raise ValueError(f"grad {g} does not fit ids {ids}")
    rows = attrs.get("rows")
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows <= 0:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")
    return (int(rows), g[-1]), attrs


def _scatter_add_values(xs, attrs, lanes):
    ids, g = xs
    out = np.zeros((attrs["rows"], g.shape[-1]), np.float32)
    np.add.at(out, np.asarray(ids).astype(np.int64).reshape(-1), g.reshape(-1, g.shape[-1]))
    return out


def _concat_shape(shapes, attrs):
    if not shapes:
        raise ValueError("needs at least one tensor")
    ax = _axis_attr(shapes, attrs, default=-1)
    base = list(shapes[0])
    for s in shapes[1:]:
        if len(s) != len(base) or any(a != b for i, (a, b) in enumerate(zip(s, base)) if i != ax):
            raise ValueError(f"shapes {shapes[0]} and {s} differ off axis {ax}")
        base[ax] += s[ax]
    return tuple(base), attrs


def _conv_attrs(attrs):
    def pair(key, default, minimum):
        v = attrs.get(key, default)
        v = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
        if len(v) != 2 or any(int(a) < minimum for a in v):
            raise ValueError(f"{key} must be an integer >= {minimum} or a pair, got {v!r}")
        return tuple(int(a) for a in v)
    attrs.update(kernel=pair("kernel", 1, 1), stride=pair("stride", 1, 1),
                 padding=pair("padding", 0, 0), dilation=pair("dilation", 1, 1),
                 groups=int(attrs.get("groups", 1)))
    return attrs


def _im2col_shape(shapes, attrs):  # x (N, C, H, W) -> (groups, N*oh*ow, C/g*kh*kw)
    _check_inputs(shapes, 1, "")
    attrs = _conv_attrs(attrs)
    x = shapes[0]
    if len(x) != 4 or x[1] % attrs["groups"]:
        raise ValueError(f"needs (N, C, H, W) with C divisible by groups, got {x}")
    nb, c, _h, _w, kh, kw, oh, ow = _conv_geometry(x, attrs["kernel"], attrs["stride"],
                                                   attrs["padding"], attrs["dilation"])
    if oh <= 0 or ow <= 0:
        raise ValueError("kernel larger than the padded input")
    g = attrs["groups"]
    return (g, nb * oh * ow, c // g * kh * kw), attrs


def _col2im_shape(shapes, attrs):  # cols -> attrs["shape"] (N, C, H, W)
    _check_inputs(shapes, 1, "")
    attrs = _conv_attrs(attrs)
    target = tuple(int(v) for v in attrs.get("shape", ()))
    if len(target) != 4:
        raise ValueError("needs shape (N, C, H, W)")
    attrs["shape"] = target
    want, _ = _im2col_shape([target], dict(attrs))
    if tuple(shapes[0]) != want:
        raise ValueError(f"cols {shapes[0]} do not fit {target} (want {want})")
    return target, attrs


def _pool_grad_shape(shapes, attrs):  # (x, g) -> dx
    _check_inputs(shapes, 2, "")
    out, attrs = _pool_shape(shapes[:1], attrs)
    if tuple(shapes[1]) != out:
        raise ValueError(f"grad {shapes[1]} does not fit the pool output {out}")
    return shapes[0], attrs


def _maxpool_grad_values(xs, attrs, lanes):
    """Route each output's gradient to the first maximum of its window (PyTorch's choice)."""
    x, g = xs
    y = _maxpool_values([x], attrs, lanes)
    k, s, p = attrs["kernel"], attrs["stride"], attrs["padding"]
    dxp = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * p[0], x.shape[3] + 2 * p[1]),
                   np.float32)
    taken = np.zeros(y.shape, bool)
    oh, ow = y.shape[2], y.shape[3]
    for dy, dx, win in _pool_windows(x, attrs, -np.inf):
        hit = (win == y) & ~taken
        taken |= hit
        dxp[:, :, dy:dy + s[0] * (oh - 1) + 1:s[0], dx:dx + s[1] * (ow - 1) + 1:s[1]] += \
            np.where(hit, g, np.float32(0))
    return dxp[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]].copy()


def _avgpool_grad_values(xs, attrs, lanes):
    x, g = xs
    k, s, p = attrs["kernel"], attrs["stride"], attrs["padding"]
    share = g / np.float32(k[0] * k[1])
    dxp = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * p[0], x.shape[3] + 2 * p[1]),
                   np.float32)
    oh, ow = g.shape[2], g.shape[3]
    for dy in range(k[0]):
        for dx in range(k[1]):
            dxp[:, :, dy:dy + s[0] * (oh - 1) + 1:s[0], dx:dx + s[1] * (ow - 1) + 1:s[1]] += share
    return dxp[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]].copy()


def _pool_grad_passes(shapes, out, attrs):
    k = attrs["kernel"]
    n = _n(shapes[1]) * k[0] * k[1]
    return [("compare", n, 0), ("add", n, 0)]


def _move(shapes, out, attrs):
    return [("move", _n(out), 0)]


def _gather_elements_shape(shapes, attrs):  # (data, indices of the same rank) -> indices
    _check_inputs(shapes, 2, "")
    if len(shapes[0]) != len(shapes[1]):
        raise ValueError(f"data {shapes[0]} and indices {shapes[1]} must have the same rank")
    ax = _axis_attr(shapes, attrs, default=0)
    if any(i > d for a, (d, i) in enumerate(zip(*shapes)) if a != ax):
        raise ValueError(f"indices {shapes[1]} exceed data {shapes[0]} off axis {ax}")
    return tuple(shapes[1]), attrs


def gather_elements_values(data: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    """Return ONNX GatherElements: ``out[..., j, ...] = data[..., idx[..., j, ...], ...]`` along
    ``axis`` (numpy's take_along_axis on the leading block of ``data`` that ``idx`` spans);
    a negative index counts from the end. Raises IndexError for an index out of range."""
    data = np.asarray(data)
    idx = np.asarray(idx).astype(np.int64)
    size = data.shape[axis]
    if idx.size and (idx.min() < -size or idx.max() >= size):
        raise IndexError(f"indices must lie in [-{size}, {size}), got [{idx.min()}, {idx.max()}]")
    block = data[tuple(slice(None) if a == axis else slice(0, n)
                       for a, n in enumerate(idx.shape))]
    return np.take_along_axis(block, idx % size if size else idx, axis)


PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _pad_shape(shapes, attrs):  # x -> x padded by attrs["pads"] ((before, after) per axis)
    _check_inputs(shapes, 1, "")
    pads = tuple((int(b), int(a)) for b, a in attrs.get("pads", ()))
    mode = attrs.get("mode", "constant")
    if len(pads) != len(shapes[0]) or any(b < 0 or a < 0 for b, a in pads):
        raise ValueError(f"pads {pads} must give (before, after) >= 0 for each of the "
                         f"{len(shapes[0])} axes")
    if mode not in PAD_MODES:
        raise ValueError(f"mode {mode!r} (known: {', '.join(PAD_MODES)})")
    if mode != "constant" and any((b or a) and n == 0 for (b, a), n in zip(pads, shapes[0])):
        raise ValueError(f"mode {mode} cannot pad an empty axis")
    value = float(attrs.get("value", 0.0))  # -inf allowed (a max pool's padding)
    if np.isnan(value):
        raise ValueError("the pad value must not be NaN")
    attrs.update(pads=pads, mode=mode, value=value)
    return tuple(n + b + a for n, (b, a) in zip(shapes[0], pads)), attrs


def pad_values(x: np.ndarray, pads, mode: str = "constant", value: float = 0.0) -> np.ndarray:
    """Return ``x`` padded by ``pads`` ((before, after) per axis) as ONNX Pad does: with
    ``value`` (mode constant), the mirror image without the edge (reflect), the edge repeated
    (edge) or the other end (wrap)."""
    x = np.asarray(x)
    if mode == "constant":
        return np.pad(x, pads, mode="constant", constant_values=np.asarray(value, x.dtype))
    return np.pad(x, pads, mode=mode)


def _broadcast_shape(shapes, attrs):  # x -> attrs["shape"] (numpy broadcasting)
    _check_inputs(shapes, 1, "")
    target = tuple(int(v) for v in attrs.get("shape", ()))
    try:
        if np.broadcast_shapes(shapes[0], target) != target:
            raise ValueError
    except ValueError:
        raise ValueError(f"cannot broadcast {shapes[0]} to {target}") from None
    attrs["shape"] = target
    return target, attrs


def _pad_slice_shape(shapes, attrs):  # g (a slice's gradient) -> zeros of attrs["shape"]
    _check_inputs(shapes, 1, "")
    target = tuple(int(v) for v in attrs.get("shape", ()))
    ax, start = int(attrs.get("axis", 0)), int(attrs.get("start", 0))
    g = shapes[0]
    if len(target) != len(g) or not 0 <= ax < len(g) or start < 0 or \
            start + g[ax] > target[ax] or any(a != b for i, (a, b) in enumerate(zip(g, target))
                                              if i != ax):
        raise ValueError(f"slice gradient {g} does not fit {target} at axis {ax}, {start}")
    attrs.update(shape=target, axis=ax, start=start)
    return target, attrs


def _pad_slice_values(xs, attrs, lanes):
    out = np.zeros(attrs["shape"], np.float32)
    idx = [slice(None)] * out.ndim
    idx[attrs["axis"]] = slice(attrs["start"], attrs["start"] + xs[0].shape[attrs["axis"]])
    out[tuple(idx)] = xs[0]
    return out


def _argmax_shape(shapes, attrs):  # x -> indices along attrs["axis"] (keepdims: size 1)
    _check_inputs(shapes, 1, "")
    ax = _axis_attr(shapes, attrs)
    keep = bool(attrs.get("keepdims", True))
    attrs.update(keepdims=keep, select_last=bool(attrs.get("select_last", False)))
    x = shapes[0]
    out = tuple(1 if i == ax else s for i, s in enumerate(x)) if keep else \
        (tuple(s for i, s in enumerate(x) if i != ax) or (1,))
    return out, attrs


def _arg_values(pick):
    def values(xs, attrs, lanes):
        """The index of the first (select_last: last) largest (argmin: smallest) element along
        the axis; NaN counts as largest, as numpy's argmax has it."""
        x, ax = xs[0], attrs["axis"]
        if attrs["select_last"]:
            flipped = np.flip(x, axis=ax)
            idx = x.shape[ax] - 1 - pick(flipped, axis=ax)
        else:
            idx = pick(x, axis=ax)
        idx = np.expand_dims(idx, ax) if attrs["keepdims"] else idx
        return idx.astype(np.int64).reshape(_argmax_shape([x.shape], dict(attrs))[0])
    return values


def _arg_passes(shapes, out, attrs):
    n = _n(shapes[0])
    return [("reduction", n, shapes[0][attrs["axis"]])]


def _hardmax_values(xs, attrs, lanes):
    """1 at the first largest element along the axis, 0 elsewhere."""
    x, ax = xs[0], attrs["axis"]
    idx = np.expand_dims(np.argmax(x, axis=ax), ax)
    out = np.zeros_like(x, dtype=np.float32)
    np.put_along_axis(out, idx, np.float32(1), axis=ax)
    return out


def _scan_shape(shapes, attrs):  # x -> x, a running sum / product along attrs["axis"]
    _check_inputs(shapes, 1, "")
    _axis_attr(shapes, attrs, default=0)
    attrs.update(exclusive=bool(attrs.get("exclusive", False)),
                 reverse=bool(attrs.get("reverse", False)))
    return shapes[0], attrs


def _scan(x: np.ndarray, axis: int, exclusive: bool, reverse: bool, op,
          identity) -> np.ndarray:
    """Return the running ``op`` (np.add, np.multiply) of ``x`` along ``axis`` in element
    order, in float32 at each step (integers stay integers); ``exclusive`` leaves each element
    out of its own (the first is ``identity``), ``reverse`` runs from the end."""
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.integer) else np.float32
    if reverse:
        x = np.flip(x, axis=axis)
    out = op.accumulate(x, axis=axis, dtype=dtype)
    if exclusive:
        first = np.full_like(np.take(out, [0], axis=axis), identity)
        out = np.concatenate([first, np.take(out, range(x.shape[axis] - 1), axis=axis)],
                             axis=axis)
    return np.ascontiguousarray(np.flip(out, axis=axis) if reverse else out)


def cumsum_values(x: np.ndarray, axis: int, exclusive: bool = False,
                  reverse: bool = False) -> np.ndarray:
    """Return the running sums of ``x`` along ``axis`` (ONNX CumSum), added one element after
    another in float32 (``exclusive``: each sum leaves its own element out, the first is 0;
    ``reverse``: from the last element back). Integers stay integers."""
    return _scan(x, axis, exclusive, reverse, np.add, 0)


def _scan_values(op, identity):
    def values(xs, attrs, lanes):
        return _scan(xs[0], attrs["axis"], attrs["exclusive"], attrs["reverse"], op, identity)
    return values


def _scan_passes(shapes, out, attrs):
    return [("add", _n(shapes[0]), 0)]


def _scatter_shape(shapes, attrs):  # (data, ids, updates) -> data's shape
    _check_inputs(shapes, 3, "")
    if attrs.get("reduction", "none") not in ("none", "add", "mul", "max", "min"):
        raise ValueError(f"reduction {attrs.get('reduction')!r} (known: none, add, mul, max, "
                         "min)")
    attrs["reduction"] = attrs.get("reduction", "none")
    data, ids, upd = (tuple(v) for v in shapes)
    if "axis" in attrs:  # scatter_elements: ids and updates alike, within data off the axis
        ax = _axis_attr(shapes, attrs, default=0)
        if ids != upd or len(ids) != len(data) or \
                any(i > d for k, (i, d) in enumerate(zip(ids, data)) if k != ax):
            raise ValueError(f"ids {ids} and updates {upd} do not fit data {data}")
    elif not ids or not 1 <= ids[-1] <= len(data) or upd != ids[:-1] + data[ids[-1]:]:
        raise ValueError(f"ids {ids} and updates {upd} do not fit data {data}")  # scatter_nd
    return data, attrs


_SCATTER_UFUNC = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_write(out, where: tuple, upd, reduction: str) -> None:
    if reduction == "none":
        out[where] = upd
    else:
        _SCATTER_UFUNC[reduction].at(out, where, upd)


def _scatter_elements_values(xs, attrs, lanes):
    """data with updates[i][j][k] written at data[ids[i][j][k]][j][k] (axis 0; likewise on
    any axis), or combined by the reduction in element order; a negative id counts from the
    end."""
    data, ids, upd = xs
    ax, n = attrs["axis"], data.shape[attrs["axis"]]
    idx = np.asarray(ids).astype(np.int64)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"ids must lie in [-{n}, {n}), got [{idx.min()}, {idx.max()}]")
    idx = np.where(idx < 0, idx + n, idx)
    out = np.array(data, np.float32)
    grid = list(np.indices(idx.shape, sparse=True))
    grid[ax] = idx
    _scatter_write(out, tuple(grid), np.asarray(upd, np.float32), attrs["reduction"])
    return out


def _scatter_nd_values(xs, attrs, lanes):
    """data with each update slice written at (or combined into) data[ids[..., :]]."""
    data, ids, upd = xs
    idx = np.asarray(ids).astype(np.int64)
    q = idx.shape[-1]
    dims = np.array(data.shape[:q])
    if idx.size and (np.any(idx < -dims) or np.any(idx >= dims)):
        raise IndexError("ScatterND ids out of range")
    idx = np.where(idx < 0, idx + dims, idx).reshape(-1, q)
    out = np.array(data, np.float32)
    u = np.asarray(upd, np.float32).reshape((idx.shape[0],) + data.shape[q:])
    for row, piece in zip(idx, u):  # in order: a later update of the same place wins
        _scatter_write(out, tuple(row), piece, attrs["reduction"])
    return out


def _topk_shape(shapes, attrs):  # x -> x with k along attrs["axis"]
    _check_inputs(shapes, 1, "")
    ax = _axis_attr(shapes, attrs)
    k = int(attrs.get("k", 1))
    if not 0 < k <= shapes[0][ax]:
        raise ValueError(f"k {k} must lie in [1, {shapes[0][ax]}]")
    attrs.update(k=k, largest=bool(attrs.get("largest", True)))
    return tuple(k if i == ax else s for i, s in enumerate(shapes[0])), attrs


def _topk_order(x, attrs):
    key = -x if attrs["largest"] else x
    order = np.argsort(key, axis=attrs["axis"], kind="stable")  # ties: the lower index first
    return np.take(order, np.arange(attrs["k"]), axis=attrs["axis"])


def _topk_passes(shapes, out, attrs):
    n, row = _n(shapes[0]), shapes[0][attrs["axis"]]
    return [("compare", n * max(1, math.ceil(math.log2(row))), 0)]  # a sorting network


VECTOR_OPS: dict[str, VectorSpec] = {
    "scatter_elements": VectorSpec(_scatter_shape, lambda s, o, a: [("move", _n(s[2]), 0)],
                                   _scatter_elements_values, 3),
    "scatter_nd": VectorSpec(_scatter_shape, lambda s, o, a: [("move", _n(s[2]), 0)],
                             _scatter_nd_values, 3),
    "topk": VectorSpec(_topk_shape, _topk_passes,
                       lambda xs, a, lanes: np.take_along_axis(xs[0], _topk_order(xs[0], a),
                                                               axis=a["axis"]), 1),
    "topk_indices": VectorSpec(_topk_shape, _topk_passes,
                               lambda xs, a, lanes: _topk_order(xs[0], a), 1),
    "cumsum": VectorSpec(_scan_shape, _scan_passes, _scan_values(np.add, 0.0), 1),
    "cumprod": VectorSpec(_scan_shape, _scan_passes, _scan_values(np.multiply, 1.0), 1),
    "gather_elements": VectorSpec(_gather_elements_shape, _move,
                                  lambda xs, a, lanes: gather_elements_values(xs[0], xs[1],
                                                                              a["axis"]), 2),
    "argmax": VectorSpec(_argmax_shape, _arg_passes, _arg_values(np.argmax), 1),
    "argmin": VectorSpec(_argmax_shape, _arg_passes, _arg_values(np.argmin), 1),
    "hardmax": VectorSpec(_rowwise, _arg_passes, _hardmax_values, 1),
    "pad": VectorSpec(_pad_shape, _move,
                      lambda xs, a, lanes: pad_values(xs[0], a["pads"], a.get("mode", "constant"),
                                                     a.get("value", 0.0)), 1),
    "pad_slice": VectorSpec(_pad_slice_shape, _move, _pad_slice_values, 1),
    "broadcast": VectorSpec(_broadcast_shape, _move,
                            lambda xs, a, lanes: np.broadcast_to(xs[0], a["shape"]).copy(), 1),
    "softmax": VectorSpec(_rowwise, _softmax_passes, _softmax_values, 1),
    "log_softmax": VectorSpec(_rowwise, _log_softmax_passes, _log_softmax_values, 1),
    "softmax_grad": VectorSpec(_softmax_grad_shape, _softmax_grad_passes, _softmax_grad_values, 2),
    "log_softmax_grad": VectorSpec(_softmax_grad_shape, _log_softmax_grad_passes,
                                   _log_softmax_grad_values, 2),
    "layernorm": VectorSpec(_norm_shape(2), _layernorm_passes, _layernorm_values, 3),
    "normalize": VectorSpec(_norm_shape(0), _layernorm_passes, _layernorm_values, 1),
    "layernorm_grad": VectorSpec(_layernorm_grad_shape, _layernorm_grad_passes,
                                 _layernorm_grad_values, 3),
    "rmsnorm": VectorSpec(_norm_shape(1), _rmsnorm_passes, _rmsnorm_values, 2),
    "batchnorm": VectorSpec(_batchnorm_shape, _batchnorm_passes, _batchnorm_values, 5),
    "maxpool2d": VectorSpec(_pool_shape, _pool_passes("compare"), _maxpool_values, 1),
    "avgpool2d": VectorSpec(_pool_shape, _pool_passes("add"), _avgpool_values, 1),
    "maxpool2d_grad": VectorSpec(_pool_grad_shape, _pool_grad_passes, _maxpool_grad_values, 2),
    "avgpool2d_grad": VectorSpec(_pool_grad_shape, _pool_grad_passes, _avgpool_grad_values, 2),
    "gather": VectorSpec(_gather_shape, _move, _gather_values, 2),
    "scatter_add": VectorSpec(_scatter_add_shape, lambda s, o, a: [("add", _n(s[1]), 0)],
                              _scatter_add_values, 2),
    "concat": VectorSpec(_concat_shape, _move,
                         lambda xs, a, lanes: np.concatenate(xs, axis=a["axis"]), None),
    "im2col": VectorSpec(_im2col_shape, _move,
                         lambda xs, a, lanes: im2col_nchw(xs[0], a["kernel"], a["stride"],
                                                          a["padding"], a["dilation"],
                                                          a["groups"]), 1),
    "col2im": VectorSpec(_col2im_shape, lambda s, o, a: [("add", _n(s[0]), 0)],
                         lambda xs, a, lanes: col2im_nchw(xs[0], a["shape"], a["kernel"],
                                                          a["stride"], a["padding"],
                                                          a["dilation"], a["groups"]), 1),
}


# composite ops that read integer ids: kind -> the ids' input position
ID_INPUT = {"gather": 1, "scatter_add": 0, "gather_elements": 1, "scatter_elements": 1,
            "scatter_nd": 1}


def vector_op_values(kind: str, inputs: list[np.ndarray], attrs: dict[str, Any],
                     lanes: int) -> np.ndarray:
    """Return the float32 value of composite op ``kind`` (the ids of gathers and scatters,
    ``ID_INPUT``, stay integers; the
    ops of INTEGER_EXACT on integer inputs, an int8 model's values, return int64)."""
    xs = [np.asarray(x) if ID_INPUT.get(kind) == i else np.asarray(x, np.float32)
          for i, x in enumerate(inputs)]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
        out = VECTOR_OPS[kind].values(xs, attrs, lanes)
    out = np.asarray(out, np.float32)
    if kind in INTEGER_EXACT and inputs and all(np.issubdtype(np.asarray(x).dtype, np.integer)
                                                for x in inputs) and np.all(np.isfinite(out)):
        return out.astype(np.int64)  # small integers: exact in float32
    return out


@dataclass(frozen=True)
class _Rq:  # the fields of program.Requant that numerics.requantise_fixed reads
    bias: tuple
    multiplier: tuple
    shift: tuple
    zero_point: int
    qmin: int
    qmax: int
    rounding: str = "double"
    scale: tuple = ()


def keeps_integers(op, value) -> bool:
    """Return True when ``op``'s result ``value`` holds an int8 model's integers (a
    ``quantize``, or an INTEGER_EXACT op of integers): stored as they are, never rounded to a
    float format."""
    if not np.issubdtype(np.asarray(value).dtype, np.integer):
        return False
    return getattr(op, "kind", None) in INTEGER_RESULTS | INTEGER_EXACT
