"""ONNX front end: a ``.onnx`` file becomes a Program (extra ``[onnx]``; onnx is imported here,
lazily, and nowhere in the core).

``import_onnx(path, shapes)`` loads the file, fixes the graph inputs' symbolic dimensions from
``shapes`` (``--input name=8x3x224x224`` on the command line), runs ONNX's own shape inference
(strict: an input of the wrong shape fails there or in our own checks, with one line) and lowers
the nodes in the file's (topological) order, one small function per operator (``HANDLERS``), to
the SAME Program ops the zoo builders emit:

- Conv -> ``conv2d`` (+ a broadcast bias ``add``), Gemm / MatMul -> ``matmul`` (+ bias ``add``),
  BatchNormalization -> the ``batchnorm`` vector op, LayerNormalization -> ``layernorm``,
  Softmax -> ``softmax``, MaxPool / AveragePool -> the pooling vector ops, GlobalAveragePool and
  ReduceMean -> a mean ``reduce``, Gather of a weight table by data ids -> the ``gather`` vector
  op (the zoo's embedding lookup), elementwise ops -> ``Elementwise`` kinds, Transpose ->
  ``permute``, Reshape / Flatten / Squeeze / Unsqueeze -> ``reshape``, Split / Slice -> free
  ``slice``\\ s, Concat -> ``concat``, Expand -> ``broadcast``; the exporter's attention
  (MatMul, Div by a constant, Where with a constant mask, Softmax, MatMul) -> the same matmuls,
  ``scale``, ``masked_fill`` and ``softmax`` as ``Net.attention``.
- ONNX's wider vocabulary (issue 25) on data: the activations and math functions, comparisons,
  logic and bitwise ops as ``Elementwise`` kinds (integers exact where the chip carries them);
  every reduction as a ``reduce`` with elementwise ops around it; ArgMax / ArgMin, Hardmax,
  CumSum / CumProd, Pad, GatherElements, the Scatter ops and TopK as vector ops; Resize and
  ConvTranspose on the array; Gather of any table, Tile, OneHot,
  the norms (Layer from any axis, RMS, Instance, Group, Lp), 1-D and padded convolution and
  pooling, the two losses (NegativeLogLikelihood, SoftmaxCrossEntropy) and Attention as
  compositions of the same ops. ``import_onnx(constants=...)`` takes graph inputs that set
  shapes or attributes as constants.
- Anything whose inputs are all known at import (initializers, Constant nodes, shapes: Shape,
  Gather / Concat / Cast / Unsqueeze of shapes, Range, ConstantOfShape, a Trilu of ones, a
  Transpose of a weight) is folded into a constant with numpy: it computes nothing on the chip.
  A constant an op reads becomes a program input carrying its value (``ImportedModel.params``).
- Division by a scalar constant becomes a ``scale`` by its reciprocal, multiplication by one a
  ``scale``, adding one an ``add_const`` (what a compiler for the vector unit does; the zoo's
  attention scales the same way). ``x ** 2`` is ``square``, ``x ** 0.5`` is ``sqrt``, other
  exponents the ``pow`` kind.
- A Conv or Gemm bias that folds to all zeros is not added (the dynamo exporter gives a
  bias-free Conv one); a Cast or Identity of a data tensor is the same tensor (the chip keeps
  every tensor in its one number format); Dropout is the identity (inference).

Anything else raises one WorkloadError naming the file, the node, its operator and why: nothing
is dropped or costed as zero silently. ONNX's inferred shapes are checked against the
Program's after every node.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simulator.errors import SimulatorInputError, WorkloadError
from simulator.core.program import Layout, Program, Reduce
from simulator.core.vector import (cumsum_values, elementwise_values, gather_elements_values,
                                   pad_values, trunc_divide)
from simulator.frontends.feeds import Feed
from simulator.frontends.naming import FreshNames

__all__ = ["HANDLERS", "ImportedModel", "import_onnx", "parse_input_shape"]

# Largest constant (elements) folded at import: shape arithmetic and masks are small; a
# Transpose of a weight is folded lazily (its value is only computed when values are needed).
_MAX_FOLD_ELEMENTS = 1 << 26
# Largest data input (elements) a --input shape may give, as the PyTorch importer's.
MAX_INPUT_ELEMENTS = 1 << 31
MAX_ATTRIBUTE_BYTES = 256 << 20  # external data of one tensor attribute (Constant value)


def _onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - the [onnx] extra is installed in CI
        raise WorkloadError("--onnx", "onnx", "the ONNX importer needs the onnx package: "
                            "pip install 'systolic-sim[onnx]'") from None
    return onnx


# --------------------------------------------------------------------------- values

class Const:
    """A tensor known at import: its shape, numpy dtype and (lazily computed) value."""

    __slots__ = ("shape", "dtype", "_value", "_thunk", "name")

    def __init__(self, value=None, shape=None, dtype=None, thunk: Callable | None = None,
                 name: str | None = None):
        self.name = name
        if value is not None:
            value = np.asarray(value)
            self.shape, self.dtype = tuple(value.shape), value.dtype
        else:
            self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        self._value, self._thunk = value, thunk

    @property
    def value(self) -> np.ndarray:
        """Return the numpy value (computed on first use)."""
        if self._value is None:
            self._value = np.asarray(self._thunk()).reshape(self.shape)
            self._thunk = None
        return self._value

    @property
    def size(self) -> int:
        """Return the number of elements."""
        return math.prod(self.shape)

    def __repr__(self) -> str:
        """Name the tensor in messages (never ``<Const object at 0x...>``)."""
        dims = "x".join(map(str, self.shape)) or "scalar"
        return (f"tensor {self.name} ({dims} {self.dtype})" if self.name
                else f"a constant ({dims} {self.dtype})")

    __str__ = __repr__


def parse_input_shape(text: str, path: str = "--onnx") -> tuple[str, tuple[int, ...]]:
    """Return (input name, shape) of ``name=8x3x224x224``; raise WorkloadError (located at
    ``path``:1, the model the shape is for) otherwise."""
    name, sep, dims = text.partition("=")
    where, field_ = f"{path}:1", f"--input {text}"
    if not sep or not name.strip():
        raise WorkloadError(where, field_, "expected NAME=D1xD2x... (e.g. x=8x3x224x224)")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        raise WorkloadError(where, field_, f"dimensions must be positive integers joined by "
                            f"'x', got {dims!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise WorkloadError(where, field_, f"dimensions must be positive, got {dims!r}")
    if math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise WorkloadError(where, field_, f"{math.prod(shape):,} elements is over "
                            f"{MAX_INPUT_ELEMENTS:,}")
    return name.strip(), shape


@dataclass
class ImportedModel:
    """An imported ONNX model: its Program, the constants it reads (program inputs with
    values), its data inputs (name -> (shape, numpy dtype)) and its outputs."""

    name: str
    program: Program
    params: dict[str, Const]
    data: dict[str, tuple[tuple[int, ...], np.dtype]]
    outputs: list[str]
    onnx_outputs: list[str]
    id_bounds: dict[str, int] = field(default_factory=dict)

    @property
    def output(self) -> str:
        """Return the first output's program tensor name."""
        return self.outputs[0]

    @property
    def sizes(self) -> dict[str, str]:
        """Return the data inputs' shapes as text (for titles)."""
        return {n: "x".join(map(str, s)) for n, (s, _d) in self.data.items()}

    def param_values(self) -> dict[str, np.ndarray]:
        """Return every constant program input's value (float32; ids stay integers)."""
        return {n: _as_chip(c.value) for n, c in self.params.items()}

    def make_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Return seeded values of the data inputs in the file's dtypes: floats N(0, 1); integer
        ids uniform in [0, rows of the table they index) (or [0, 2) when they index none)."""
        rng = np.random.default_rng(seed + 1)
        out = {}
        for n, (shape, dtype) in self.data.items():
            if np.issubdtype(dtype, np.integer):
                out[n] = rng.integers(0, self.id_bounds.get(n, 2), size=shape).astype(dtype)
            elif dtype == np.bool_:
                out[n] = rng.integers(0, 2, size=shape).astype(bool)
            else:
                out[n] = rng.standard_normal(shape).astype(dtype)
        return out

    def inputs(self, seed: int = 0, data: dict[str, np.ndarray] | None = None) -> dict:
        """Return every program input's value: the constants and the data inputs (``data`` or
        seeded ones), as the chip holds them (float32; ids as integers)."""
        vals = self.param_values()
        given = self.make_inputs(seed) if data is None else data
        for n, (shape, _dtype) in self.data.items():
            v = np.asarray(given[n])
            vals[n] = _as_chip(v.reshape(shape) if v.ndim == 0 and shape == (1,) else v)
        return vals


def _as_chip(v: np.ndarray) -> np.ndarray:
    if np.issubdtype(v.dtype, np.integer):
        return v.astype(np.int64)
    return v.astype(np.float32)


# --------------------------------------------------------------------------- the lowering

class _Sequence:
    """An ONNX sequence of program tensors (SplitToSequence's pieces)."""

    def __init__(self, items: list):
        self.items = items
        self.shape = (len(items),)


class _Scaled:
    """A data tensor times a scalar constant, left for the MatMul that alone reads it to apply
    to its product (the dynamo exporter's attention scales q and k by sqrt(scale) each; the
    zoo's, and a compiler's, scales the scores once)."""

    def __init__(self, base: str, factor: float, shape: tuple):
        self.base, self.factor, self.shape = base, factor, shape


class _View:
    """A pure rearrangement of a program tensor not emitted yet (the LSTM lowering's output
    in ONNX's (seq, directions, batch, hidden) layout): layout nodes compose onto it, and it is
    emitted (``recipe``: the layout ops in order) only when another node reads it. When the
    composition is the identity (the exporter transposes the LSTM's output back to batch first)
    it is the base tensor itself, or one reshape of it."""

    _MAX = 1 << 24  # largest view (elements) whose index map is tracked

    def __init__(self, base: str, idx: np.ndarray, recipe: list):
        self.base, self.idx, self.recipe = base, idx, recipe
        self.shape = tuple(idx.shape)

    def then(self, kind: str, arg: tuple, name: str) -> "_View":
        """Return the view after one more layout op (``permute`` or ``reshape``)."""
        idx = np.transpose(self.idx, arg) if kind == "permute" else self.idx.reshape(arg)
        flat = idx.reshape(-1)
        if np.array_equal(flat, np.arange(flat.size)):  # the base's own order
            return _View(self.base, idx, [("reshape", tuple(idx.shape), name)])
        return _View(self.base, idx, self.recipe + [(kind, tuple(arg), name)])

    def emit(self, ctx: "_Ctx") -> str:
        """Emit the recipe's layout ops; return the tensor holding the view."""
        t = self.base
        for kind, arg, name in self.recipe:
            if kind == "reshape" and tuple(ctx.p.shapes[t]) == tuple(arg):
                continue
            op = ctx.fresh(name)
            if kind == "reshape":
                t = ctx.p.reshape(op, t, arg, out=ctx.fresh(f"{name}.out"))
            else:
                t = ctx.p.permute(op, t, arg, out=ctx.fresh(f"{name}.out"))
        return t


class _Unsupported(Exception):
    """A node the importer cannot lower (turned into a WorkloadError naming node and file)."""


class _Ctx(FreshNames):
    """Lowering state: the Program, ONNX value -> Const or program tensor name, and helpers."""

    def __init__(self, path: str, program: Program, opset: int):
        self.path = path
        self.p = program
        self.opset = opset
        self.env: dict[str, Any] = {}        # onnx name -> Const | str (program tensor)
        self.dtypes: dict[str, np.dtype] = {}  # program tensor -> numpy dtype it carries
        self.elem_types: dict[str, np.dtype] = {}  # onnx value -> numpy dtype ONNX gives it
        self.params: dict[str, Const] = {}
        self.materialized: dict[int, str] = {}
        self.id_bounds: dict[str, int] = {}
        self.node = None
        self.op_name = ""
        self.uses: dict[str, int] = {}
        self.consumers: dict[str, list[str]] = {}  # onnx value -> op types reading it
        self._names: set[str] = set()

    # -- names (fresh, sub: FreshNames) ------------------------------------------------------
    def out(self, i: int = 0, suffix: str = "") -> str:
        """Return a fresh program tensor name for output ``i`` of the node."""
        name = self.node.output[i] if i < len(self.node.output) and self.node.output[i] else \
            f"{self.op_name}.out{i}"
        return self.fresh(name + (f".{suffix}" if suffix else ""))

    # -- inputs ---------------------------------------------------------------------------
    def has(self, i: int) -> bool:
        """Return True when the node has a non-empty input ``i``."""
        return i < len(self.node.input) and self.node.input[i] != ""

    def get(self, i: int):
        """Return input ``i`` (a Const or a program tensor name)."""
        name = self.node.input[i]
        if name not in self.env:
            raise _Unsupported(f"input {name!r} is not defined by any earlier node, initializer "
                               "or graph input")
        return self.env[name]

    def const(self, i: int, what: str) -> np.ndarray:
        """Return input ``i``'s value; it must be known at import."""
        v = self.get(i)
        if not isinstance(v, Const):
            raise _Unsupported(f"{what} (input {i}) must be a constant known at import")
        return v.value

    def is_integer(self, i: int) -> bool:
        """Return True when input ``i`` holds integers in the ONNX graph (its declared or
        inferred element type; a constant's own dtype)."""
        v = self.get(i)
        dt = v.dtype if isinstance(v, Const) else self.elem_types.get(self.node.input[i])
        return dt is not None and np.issubdtype(dt, np.integer)

    def shape(self, v) -> tuple[int, ...]:
        """Return the shape of a Const or a program tensor."""
        return self.p.shapes[v] if isinstance(v, str) else v.shape

    def tensor(self, v, like_name: str = "const") -> str:
        """Return a program tensor for ``v``: itself, or a Const made a program input."""
        if not isinstance(v, Const):
            return v
        key = id(v)
        if key not in self.materialized:
            shape = v.shape if v.shape else (1,)
            name = self.fresh(like_name)
            self.p.input(name, shape)
            self.params[name] = v if v.shape else Const(thunk=lambda v=v: v.value.reshape(1),
                                                        shape=(1,), dtype=v.dtype)
            self.dtypes[name] = v.dtype
            self.materialized[key] = name
        return self.materialized[key]

    def input_name(self, i: int) -> str:
        """Return a name for a constant input (its ONNX name)."""
        return self.node.input[i] or f"{self.op_name}.in{i}"

    def attr(self, key: str, default=None):
        """Return the node's attribute ``key`` (or ``default``)."""
        for a in self.node.attribute:
            if a.name == key:
                return _onnx().helper.get_attribute_value(a)
        return default


def _check_fold_size(shape) -> None:
    """Raise _Unsupported when a constant of ``shape`` is too big to fold (checked before numpy
    allocates it)."""
    size = math.prod(int(d) for d in shape)
    if size > _MAX_FOLD_ELEMENTS:
        raise _Unsupported(f"folding would make a constant of {size:,} elements (over "
                           f"{_MAX_FOLD_ELEMENTS:,})")


def _fold(values, fn) -> Const:
    v = np.asarray(fn(*values))
    if v.size > _MAX_FOLD_ELEMENTS:  # pragma: no cover - exporters never fold that much
        raise _Unsupported(f"folding would make a constant of {v.size:,} elements")
    return Const(v)


def _all_const(ctx: _Ctx) -> bool:
    return all(isinstance(ctx.get(i), Const) for i in range(len(ctx.node.input)) if ctx.has(i))


def _cvals(ctx: _Ctx) -> list:
    return [ctx.get(i).value if ctx.has(i) else None for i in range(len(ctx.node.input))]


# --------------------------------------------------------------------------- handlers

HANDLERS: dict[str, Callable[[_Ctx], list]] = {}


def _handles(*ops: str):
    def deco(fn):
        for op in ops:
            HANDLERS[op] = fn
        return fn
    return deco


_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64,
           9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


@_handles("Constant")
def _constant(ctx):
    onnx = _onnx()
    for a in ctx.node.attribute:
        if a.name == "value":
            return [Const(onnx.numpy_helper.to_array(a.t))]
        if a.name in ("value_float", "value_int"):
            return [Const(np.array(onnx.helper.get_attribute_value(a),
                                   np.float32 if a.name == "value_float" else np.int64))]
        if a.name in ("value_floats", "value_ints"):
            return [Const(np.array(onnx.helper.get_attribute_value(a),
                                   np.float32 if a.name == "value_floats" else np.int64))]
    raise _Unsupported("Constant without a value, value_float(s) or value_int(s)")


@_handles("Identity", "Dropout")
def _identity(ctx):
    outs = [ctx.get(0)]
    if len(ctx.node.output) > 1 and ctx.node.output[1]:  # Dropout's mask: all ones
        outs.append(Const(np.ones(ctx.shape(ctx.get(0)), bool)))
    return outs


@_handles("Cast", "CastLike")
def _cast(ctx):
    v = ctx.get(0)
    if ctx.node.op_type == "Cast":
        to = _DTYPES.get(ctx.attr("to"))
    else:
        t = ctx.get(1)
        to = t.dtype if isinstance(t, Const) else \
            ctx.elem_types.get(ctx.node.input[1], ctx.dtypes.get(t, np.float32))
    if to is None:
        raise _Unsupported(f"cast to ONNX type {ctx.attr('to')} is not supported")
    if isinstance(v, Const):
        return [Const(thunk=lambda: v.value.astype(to), shape=v.shape, dtype=to)]
    src = ctx.elem_types.get(ctx.node.input[0], ctx.dtypes.get(v, np.dtype(np.float32)))
    to = np.dtype(to)
    if to == np.bool_ and np.dtype(src) != np.bool_:  # x != 0: two logical nots
        t = ctx.p.elementwise(ctx.sub("zero"), "logical_not", v, out=ctx.out(suffix="zero"))
        out = ctx.p.elementwise(ctx.sub(), "logical_not", t, out=ctx.out())
        ctx.dtypes[out] = to
        return [out]
    if np.issubdtype(to, np.integer) and np.issubdtype(src, np.floating):
        out = ctx.p.elementwise(ctx.sub(), "trunc", v, out=ctx.out())  # toward zero
        ctx.dtypes[out] = to
        return [out]
    return [v]  # the chip keeps a tensor in its one number format: same tensor


@_handles("Shape")
def _shape_op(ctx):
    shape = np.array(ctx.shape(ctx.get(0)), np.int64)
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    return [Const(shape[start:end])]


@_handles("Size")
def _size_op(ctx):
    return [Const(np.array(math.prod(ctx.shape(ctx.get(0))), np.int64))]


FOLD_ONLY: set[str] = set()  # operators the importer computes only while constant folding


def _numpy_fold(fn):
    def handler(ctx):
        if not _all_const(ctx):
            raise _Unsupported(f"operator {ctx.node.op_type} is not supported on data: the "
                               "importer only folds it when every input is a constant known "
                               "at import")
        return [_fold(_cvals(ctx), lambda *a: fn(ctx, *a))]
    return handler


def _gather_nd(ctx, data, idx):
    if ctx.attr("batch_dims", 0):
        raise _Unsupported("GatherND with batch_dims is not supported")
    idx = np.asarray(idx, np.int64)
    return data[tuple(idx[..., j] for j in range(idx.shape[-1]))]


def _range(ctx, start, limit, delta):
    if delta == 0:
        raise _Unsupported("Range with delta 0")
    _check_fold_size((max(math.ceil((float(limit) - float(start)) / float(delta)), 0),))
    return np.arange(start, limit, delta).astype(np.asarray(start).dtype)


def _tile(a, reps: tuple[int, ...]) -> np.ndarray:
    if any(r < 0 for r in reps):
        raise _Unsupported(f"Tile with a negative repeat {reps}")
    _check_fold_size(a.shape + reps)  # the result's size: prod(shape) * prod(repeats)
    return np.tile(a, reps)


def _const_of_shape(ctx, shape):
    t = ctx.attr("value")
    fill = _onnx().numpy_helper.to_array(t).reshape(-1)[0] if t is not None else np.float32(0)
    dims = tuple(int(s) for s in np.asarray(shape).reshape(-1))
    if any(d < 0 for d in dims):
        raise _Unsupported(f"ConstantOfShape with a negative size {dims}")
    _check_fold_size(dims)
    return np.full(dims, fill)


for _op, _fn in {
    "Range": _range, "ConstantOfShape": _const_of_shape,
}.items():
    HANDLERS[_op] = _numpy_fold(_fn)
    FOLD_ONLY.add(_op)


@_handles("GatherND")
def _gather_nd_op(ctx):
    """GatherND (batch_dims 0): folded on constants; on data with constant indices, the
    indexed leading q axes of data are flattened to rows and the rows picked by a ``gather``
    (a copy on the vector unit), then shaped as indices.shape[:-1] + data.shape[q:]."""
    data, idx = ctx.get(0), ctx.get(1)
    if isinstance(data, Const) and isinstance(idx, Const):
        return [_fold([data.value, idx.value], lambda d, i: _gather_nd(ctx, d, i))]
    if ctx.attr("batch_dims", 0):
        raise _Unsupported("GatherND with batch_dims is not supported")
    if not isinstance(idx, Const):
        raise _Unsupported("GatherND with indices computed from data is not supported")
    shape = tuple(ctx.shape(data))
    ids = np.asarray(idx.value, np.int64)
    q = ids.shape[-1] if ids.ndim else 0
    if ids.ndim == 0 or not 1 <= q <= len(shape):
        raise _Unsupported(f"GatherND indices of shape {ids.shape} for data of shape {shape}")
    lead = np.array(shape[:q], np.int64)
    if ids.size and (np.any(ids < -lead) or np.any(ids >= lead)):
        raise _Unsupported(f"GatherND index out of range for data of shape {shape}")
    ids = ids % lead  # a negative index counts from the end
    rows = np.ravel_multi_index(tuple(ids[..., j] for j in range(q)), shape[:q]) \
        if ids.size else np.zeros(ids.shape[:-1], np.int64)
    width = math.prod(shape[q:])
    table = _reshape_to(ctx, data, (math.prod(shape[:q]), width))
    picked = ctx.p.vector(ctx.sub(), "gather", table,
                          ctx.tensor(Const(rows.reshape(-1).astype(np.int64)),
                                     f"{ctx.input_name(1)}.rows"), out=ctx.out(suffix="rows"))
    return [_reshape_to(ctx, picked, tuple(ids.shape[:-1]) + shape[q:] or (1,))]


def _trilu_mask(shape, k: int, upper: bool) -> np.ndarray:
    r, c = shape[-2], shape[-1]
    _check_fold_size((r, c))
    keep = np.triu(np.ones((r, c), bool), k) if upper else np.tril(np.ones((r, c), bool), k)
    return keep


@_handles("Trilu")
def _trilu(ctx):
    upper = bool(ctx.attr("upper", 1))
    k = int(ctx.const(1, "k").reshape(-1)[0]) if ctx.has(1) else 0
    x = ctx.get(0)
    if isinstance(x, Const):
        return [_fold([x.value], lambda a: np.triu(a, k) if upper else np.tril(a, k))]
    # on data: zero the other triangle, a masked_fill with a constant mask
    drop = ~_trilu_mask(ctx.shape(x), k, upper)
    mask = ctx.tensor(Const(drop.astype(np.float32)), f"{ctx.op_name}.mask")
    return [ctx.p.elementwise(ctx.sub(), "masked_fill", x, mask, const=0.0, out=ctx.out())]


# -- elementwise --------------------------------------------------------------------------

# ONNX op -> (elementwise kind, its params from the node's attributes)
_UNARY: dict[str, tuple[str, Callable]] = {
    **{op: (kind, lambda ctx: ()) for op, kind in {
        "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp", "Log": "log",
        "Sqrt": "sqrt", "Erf": "erf", "Abs": "abs", "Neg": "neg", "Sign": "sign",
        "Floor": "floor", "Ceil": "ceil", "Round": "round", "Reciprocal": "reciprocal",
        "Sin": "sin", "Cos": "cos", "Tan": "tan", "Asin": "asin", "Acos": "acos",
        "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh", "Asinh": "asinh", "Acosh": "acosh",
        "Atanh": "atanh", "Softplus": "softplus", "Softsign": "softsign", "Mish": "mish",
        "HardSwish": "hard_swish", "IsNaN": "isnan", "Not": "logical_not"}.items()},
    "Elu": ("elu", lambda ctx: (ctx.attr("alpha", 1.0),)),
    "Celu": ("celu", lambda ctx: (ctx.attr("alpha", 1.0),)),
    "Selu": ("selu", lambda ctx: (ctx.attr("alpha", 1.67326319217681884765625),
                                  ctx.attr("gamma", 1.05070102214813232421875))),
    "LeakyRelu": ("leaky_relu", lambda ctx: (ctx.attr("alpha", 0.01),)),
    "ThresholdedRelu": ("thresholded_relu", lambda ctx: (ctx.attr("alpha", 1.0),)),
    "HardSigmoid": ("hard_sigmoid", lambda ctx: (ctx.attr("alpha", 0.2),
                                                 ctx.attr("beta", 0.5))),
    "Shrink": ("shrink", lambda ctx: (ctx.attr("lambd", 0.5), ctx.attr("bias", 0.0))),
    "Swish": ("swish", lambda ctx: (ctx.attr("alpha", 1.0),)),
    "IsInf": ("isinf", lambda ctx: (ctx.attr("detect_positive", 1),
                                    ctx.attr("detect_negative", 1))),
}
_BOOL_RESULT = {"isnan", "isinf", "logical_not", "equal", "less", "less_equal", "greater",
                "greater_equal", "logical_and", "logical_or", "logical_xor"}


def _fold_elementwise(kind: str, values: list, params: tuple) -> Const:
    """Fold an elementwise op of constants with the vector unit's own values (integers stay
    integers where the kind keeps them; comparisons give booleans)."""
    out = elementwise_values(kind, [np.asarray(v) for v in values], 0.0, params)
    if kind in _BOOL_RESULT:
        out = np.asarray(out) != 0
    return _fold([out], lambda a: a)


def _emit_elementwise(ctx, kind: str, args: list, params: tuple = ()) -> str:
    """Emit elementwise ``kind`` of the node's operands (constants become program inputs);
    return the output tensor, recording a boolean result's dtype."""
    ts = [ctx.tensor(a, ctx.input_name(i)) for i, a in enumerate(args)]
    out = ctx.p.elementwise(ctx.sub(), kind, *ts, params=params, out=ctx.out())
    if kind in _BOOL_RESULT:
        ctx.dtypes[out] = np.dtype(np.bool_)
    return out


@_handles(*_UNARY)
def _unary(ctx):
    x = ctx.get(0)
    kind, params = _UNARY[ctx.node.op_type]
    params = tuple(float(v) for v in params(ctx))
    if isinstance(x, Const):
        return [_fold_elementwise(kind, [x.value], params)]
    if kind == "neg" and not ctx.is_integer(0):  # as the torch importer's neg: a scale by -1
        return [ctx.p.elementwise(ctx.sub(), "scale", x, const=-1.0, out=ctx.out())]
    return [_emit_elementwise(ctx, kind, [x], params)]


_COMPARE = {"Equal": "equal", "Less": "less", "LessOrEqual": "less_equal",
            "Greater": "greater", "GreaterOrEqual": "greater_equal", "And": "logical_and",
            "Or": "logical_or", "Xor": "logical_xor", "PRelu": "prelu", "Mod": "mod"}


@_handles(*_COMPARE)
def _compare(ctx):
    op = ctx.node.op_type
    kind = _COMPARE[op]
    a, b = ctx.get(0), ctx.get(1)
    params = (float(ctx.attr("fmod", 0)),) if op == "Mod" else ()
    if isinstance(a, Const) and isinstance(b, Const):
        # fmod=1: the remainder takes the dividend's sign (C's fmod); else the divisor's
        if op == "Mod":
            return [_fold([a.value, b.value], lambda x, y: np.fmod(x, y) if params[0]
                          else np.mod(x, y))]
        return [_fold_elementwise(kind, [a.value, b.value], params)]
    return [_emit_elementwise(ctx, kind, [a, b], params)]


@_handles("Sum", "Mean")
def _variadic(ctx):
    vals = [ctx.get(i) for i in range(len(ctx.node.input))]
    if all(isinstance(v, Const) for v in vals):
        total = np.sum(np.broadcast_arrays(*[v.value for v in vals]), axis=0)
        return [_fold([total / len(vals) if ctx.node.op_type == "Mean" else total],
                      lambda a: a.astype(vals[0].dtype))]
    ts = [ctx.tensor(v, ctx.input_name(i)) for i, v in enumerate(vals)]
    p = ctx.p
    mean = ctx.node.op_type == "Mean" and len(ts) > 1
    acc = ts[0]
    for i, t in enumerate(ts[1:], 1):
        last = i == len(ts) - 1 and not mean
        acc = p.elementwise(ctx.sub() if last else ctx.sub(f"add{i}"), "add", acc, t,
                            out=ctx.out() if last else ctx.out(suffix=f"add{i}"))
    if mean:
        acc = p.elementwise(ctx.sub(), "scale", acc, const=1.0 / len(ts), out=ctx.out())
    elif len(ts) == 1:
        return [ts[0]]
    return [acc]


@_handles("Clip")
def _clip(ctx):
    x = ctx.get(0)
    if ctx.opset < 11:
        lo_v = Const(np.array(ctx.attr("min", -np.inf), np.float32))
        hi_v = Const(np.array(ctx.attr("max", np.inf), np.float32))
        idx = (None, None)
    else:
        lo_v = ctx.get(1) if ctx.has(1) else None
        hi_v = ctx.get(2) if ctx.has(2) else None
        idx = (1, 2)
    if isinstance(x, Const) and all(v is None or isinstance(v, Const) for v in (lo_v, hi_v)):
        a = x.value
        if lo_v is not None:
            a = np.maximum(a, lo_v.value)
        if hi_v is not None:
            a = np.minimum(a, hi_v.value)
        return [_fold([a], lambda v: v.astype(x.dtype))]
    lo = _scalar(lo_v) if lo_v is not None else -math.inf
    hi = _scalar(hi_v) if hi_v is not None else math.inf
    p = ctx.p
    if lo is not None and hi is not None and lo <= hi and not ctx.is_integer(0):
        return [p.elementwise(ctx.sub(), "clip", x, params=(lo, hi), out=ctx.out())]
    y = x
    steps = [(v, kind, i) for v, kind, i in ((lo_v, "max", idx[0]), (hi_v, "min", idx[1]))
             if v is not None]
    for k, (v, kind, i) in enumerate(steps):
        last = k == len(steps) - 1
        name = ctx.input_name(i) if i is not None else f"{ctx.op_name}.{kind}"
        y = p.elementwise(ctx.sub() if last else ctx.sub(kind), kind, y, ctx.tensor(v, name),
                          out=ctx.out() if last else ctx.out(suffix=kind))
    return [y]


@_handles("Gelu")
def _gelu(ctx):
    approx = ctx.attr("approximate", b"none")
    approx = approx.decode() if isinstance(approx, bytes) else approx
    if approx not in ("none", "tanh"):
        raise _Unsupported(f"approximate={approx!r} (known: none, tanh)")
    x = ctx.get(0)
    if isinstance(x, Const):
        raise _Unsupported("Gelu of a constant is not folded")
    return [ctx.p.elementwise(ctx.sub(), "gelu" if approx == "none" else "gelu_tanh", x,
                              out=ctx.out())]


_BINARY = {"Add": ("add", np.add), "Sub": ("sub", np.subtract), "Mul": ("mul", np.multiply),
           "Div": ("div", np.divide), "Max": ("max", np.maximum), "Min": ("min", np.minimum),
           "Pow": (None, np.power)}


def _scalar(v) -> float | None:
    """Return the float value of a one-element Const, else None."""
    if isinstance(v, Const) and v.size == 1 and np.issubdtype(v.dtype, np.number):
        return float(v.value.reshape(-1)[0])
    return None


@_handles(*_BINARY)
def _binary(ctx):
    op = ctx.node.op_type
    if op in ("Max", "Min") and len(ctx.node.input) != 2:  # variadic
        if len(ctx.node.input) == 1:
            return [ctx.get(0)]
        if _all_const(ctx):
            fn = np.maximum if op == "Max" else np.minimum
            return [_fold(_cvals(ctx), lambda *a: fn.reduce(np.broadcast_arrays(*a)))]
    if op in ("Max", "Min") and len(ctx.node.input) > 2:  # variadic on data: a chain
        kind = "max" if op == "Max" else "min"
        y = ctx.tensor(ctx.get(0), ctx.input_name(0))
        n = len(ctx.node.input)
        for i in range(1, n):
            last = i == n - 1
            y = ctx.p.elementwise(ctx.sub() if last else ctx.sub(f"{kind}{i}"), kind, y,
                                  ctx.tensor(ctx.get(i), ctx.input_name(i)),
                                  out=ctx.out() if last else ctx.out(suffix=f"{kind}{i}"))
        return [y]
    if len(ctx.node.input) != 2:
        raise _Unsupported(f"{op} with {len(ctx.node.input)} inputs (supported: 2)")
    a, b = ctx.get(0), ctx.get(1)
    kind, fn = _BINARY[op]
    int_div = op == "Div" and ctx.is_integer(0) and ctx.is_integer(1)
    if isinstance(a, Const) and isinstance(b, Const):
        dt = np.result_type(a.dtype, b.dtype)
        return [_fold([a.value, b.value], lambda x, y: fn(x, y).astype(dt)
                      if not int_div else trunc_divide(x, y))]
    p, name = ctx.p, ctx.sub()
    if op in ("Add", "Sub", "Mul") and ctx.is_integer(0) and ctx.is_integer(1):
        # integers exactly, wrapped to the element type as ONNX's integer arithmetic
        dt = np.dtype(a.dtype if isinstance(a, Const) else
                      ctx.elem_types.get(ctx.node.input[0], np.int64))
        out = _emit_elementwise(ctx, {"Add": "int_add", "Sub": "int_sub", "Mul": "int_mul"}[op],
                                [a, b], (8 * dt.itemsize,
                                         float(np.issubdtype(dt, np.signedinteger))))
        ctx.dtypes[out] = dt
        return [out]
    if int_div:  # ONNX's integer Div rounds toward zero: not a scale by the reciprocal
        out = p.elementwise(name, "div_trunc", ctx.tensor(a, ctx.input_name(0)),
                            ctx.tensor(b, ctx.input_name(1)), out=ctx.out())
        ctx.dtypes[out] = np.dtype(np.int64)
        return [out]
    sa, sb = _scalar(a), _scalar(b)
    out_shape = tuple(np.broadcast_shapes(ctx.shape(a), ctx.shape(b)))
    x = b if sa is not None else a
    scalar_ok = ctx.shape(x) == out_shape  # the scalar does not widen the result
    if op == "Pow":
        if sb is None or isinstance(a, Const) or ctx.is_integer(0):  # x ** y, C's pow
            return [_emit_elementwise(ctx, "pow", [a, b])]
        if sb == 1.0:
            return [a]
        if sb == 2.0:
            return [p.elementwise(name, "square", a, out=ctx.out())]
        if sb == 0.5:
            return [p.elementwise(name, "sqrt", a, out=ctx.out())]
        if sb == -0.5:  # as the torch importer's pow
            return [p.elementwise(name, "rsqrt", a, out=ctx.out())]
        if sb == 3.0:
            sq = p.elementwise(ctx.sub("square"), "square", a, out=ctx.out(suffix="sq"))
            return [p.elementwise(name, "mul", sq, a, out=ctx.out())]
        return [_emit_elementwise(ctx, "pow", [a, b])]
    if scalar_ok and (sa if sb is None else sb) is not None and op in ("Mul", "Div") and \
            (sb is not None or op == "Mul"):
        uses = ctx.consumers.get(ctx.node.output[0], [])
        if uses and all(u == "MatMul" for u in uses):
            f = sb if sb is not None else sa
            return [_Scaled(x, 1.0 / f if op == "Div" else f, ctx.shape(x))]
    if isinstance(b, Const) and isinstance(a, str) and op == "Add" and \
            ctx.shape(a) == out_shape:
        m = _additive_mask(b)
        if m is not None:  # x + (0 or -inf): the masked_fill of the zoo's attention
            mask = ctx.tensor(m[0], f"{ctx.input_name(1)}.mask")
            return [p.elementwise(name, "masked_fill", a, mask, const=m[1], out=ctx.out())]
    if scalar_ok and sb is not None:
        if op == "Mul":
            return [p.elementwise(name, "scale", a, const=sb, out=ctx.out())]
        if op == "Div":
            return [p.elementwise(name, "scale", a, const=1.0 / sb, out=ctx.out())]
        if op == "Add":
            return [p.elementwise(name, "add_const", a, const=sb, out=ctx.out())]
        if op == "Sub":
            return [p.elementwise(name, "add_const", a, const=-sb, out=ctx.out())]
    if scalar_ok and sa is not None:
        if op == "Mul":
            return [p.elementwise(name, "scale", b, const=sa, out=ctx.out())]
        if op == "Add":
            return [p.elementwise(name, "add_const", b, const=sa, out=ctx.out())]
    ta = ctx.tensor(a, ctx.input_name(0))
    tb = ctx.tensor(b, ctx.input_name(1))
    return [p.elementwise(name, kind, ta, tb, out=ctx.out())]


def _additive_mask(c: Const) -> tuple[Const, float] | None:
    """Return (1/0 mask, fill) of a constant whose entries are all 0 or one fill value, -inf or
    float32's lowest (-3.4e38, PyTorch's causal mask): adding it is a masked_fill (exact for
    -inf; for -3.4e38 whenever |x| < 1e31, where x + fill rounds to fill). None otherwise."""
    if c.size > _MAX_FOLD_ELEMENTS or not np.issubdtype(c.dtype, np.floating) or c.size < 2:
        return None
    v = c.value
    for fill in (-np.inf, float(np.finfo(np.float32).min)):
        hit = v == np.float32(fill)
        if hit.any() and not np.any(v[~hit] != 0):
            return Const(hit.astype(np.float32)), fill
    return None


@_handles("Where")
def _where(ctx):
    c, x, y = ctx.get(0), ctx.get(1), ctx.get(2)
    if all(isinstance(v, Const) for v in (c, x, y)):
        return [_fold([c.value, x.value, y.value], np.where)]
    p = ctx.p
    out_shape = tuple(np.broadcast_shapes(ctx.shape(c), ctx.shape(x), ctx.shape(y)))
    sx, sy = _scalar(x), _scalar(y)
    if isinstance(c, Const) and sx is not None and not isinstance(y, Const) and \
            ctx.shape(y) == out_shape:  # x where mask: masked_fill of y
        mask = ctx.tensor(Const(thunk=lambda: c.value.astype(np.float32), shape=c.shape,
                                dtype=np.float32), ctx.input_name(0))
        return [p.elementwise(ctx.sub(), "masked_fill", y, mask, const=sx, out=ctx.out())]
    if isinstance(c, Const) and sy is not None and not isinstance(x, Const) and \
            ctx.shape(x) == out_shape:
        mask = ctx.tensor(Const(thunk=lambda: (~c.value.astype(bool)).astype(np.float32),
                                shape=c.shape, dtype=np.float32), f"{ctx.input_name(0)}.not")
        return [p.elementwise(ctx.sub(), "masked_fill", x, mask, const=sy, out=ctx.out())]
    cond = c if not isinstance(c, Const) else ctx.tensor(
        Const(thunk=lambda: c.value.astype(np.float32), shape=c.shape, dtype=np.float32),
        ctx.input_name(0))
    return [p.elementwise(ctx.sub(), "where", cond, ctx.tensor(x, ctx.input_name(1)),
                          ctx.tensor(y, ctx.input_name(2)), out=ctx.out())]


# -- array ops ----------------------------------------------------------------------------

def _zero_const(v) -> bool:
    return isinstance(v, Const) and v.size <= _MAX_FOLD_ELEMENTS and not np.any(v.value)


@_handles("MatMul")
def _matmul(ctx):
    a, b = ctx.get(0), ctx.get(1)
    if isinstance(a, Const) and isinstance(b, Const):
        return [_fold([a.value, b.value], np.matmul)]
    factor = 1.0
    if isinstance(a, _Scaled):
        a, factor = a.base, factor * a.factor
    if isinstance(b, _Scaled):
        b, factor = b.base, factor * b.factor
    sa, sb = ctx.shape(a), ctx.shape(b)
    # numpy's matmul: a 1-D a is a row (1, K), a 1-D b a column (K, 1); the added axes go
    want = np.broadcast_shapes(sa[:-2], sb[:-2]) + (sa[-2:-1] if len(sa) > 1 else ()) + \
        (sb[-1:] if len(sb) > 1 else ())
    if len(sa) < 2:
        a = _reshape_to(ctx, a, (1,) + tuple(sa))
    if len(sb) < 2:
        b = _reshape_to(ctx, b, tuple(sb) + (1,))
    reshaped = len(sa) < 2 or len(sb) < 2
    y = ctx.p.matmul(ctx.sub(), ctx.tensor(a, ctx.input_name(0)),
                     ctx.tensor(b, ctx.input_name(1)),
                     out=ctx.out() if factor == 1.0 and not reshaped else ctx.out(suffix="mm"))
    if factor != 1.0:
        y = ctx.p.elementwise(ctx.sub("scale"), "scale", y, const=factor,
                              out=ctx.out(suffix="scaled") if reshaped else ctx.out())
    return [_reshape_to(ctx, y, tuple(want) or (1,))] if reshaped else [y]


@_handles("Gemm")
def _gemm(ctx):
    a, b = ctx.get(0), ctx.get(1)
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    ta, tb = bool(ctx.attr("transA", 0)), bool(ctx.attr("transB", 0))
    if isinstance(a, Const):
        raise _Unsupported("Gemm with a constant A operand is not supported")
    if isinstance(b, Const) and tb:  # weights are laid out (in, out) offline, as the zoo's
        w = b
        b = Const(thunk=lambda: np.ascontiguousarray(w.value.T), shape=w.shape[::-1],
                  dtype=w.dtype)
        tb = False
        bname = f"{ctx.input_name(1)}^T"
    else:
        bname = ctx.input_name(1)
    if isinstance(b, Const) and alpha != 1.0:
        w2, alpha0 = b, alpha
        b = Const(thunk=lambda: w2.value * w2.dtype.type(alpha0), shape=w2.shape, dtype=w2.dtype)
        alpha = 1.0
    bias = ctx.get(2) if ctx.has(2) else None
    if bias is not None and _zero_const(bias):
        bias = None
    has_post = alpha != 1.0 or bias is not None
    p = ctx.p
    y = p.matmul(ctx.sub("matmul" if has_post else ""), a, ctx.tensor(b, bname),
                 transpose_a=ta, transpose_b=tb,
                 out=ctx.out(suffix="mm") if has_post else ctx.out())
    if alpha != 1.0:
        y = p.elementwise(ctx.sub("alpha"), "scale", y, const=alpha,
                          out=ctx.out(suffix="alpha") if bias is not None else ctx.out())
    if bias is not None:
        if isinstance(bias, Const) and beta != 1.0:
            c0, beta0 = bias, beta
            bias = Const(thunk=lambda: c0.value * c0.dtype.type(beta0), shape=c0.shape,
                         dtype=c0.dtype)
        elif beta != 1.0:
            bias = p.elementwise(ctx.sub("beta"), "scale", bias, const=beta,
                                 out=ctx.out(suffix="beta"))
        y = p.elementwise(ctx.sub("bias"), "add", y, ctx.tensor(bias, ctx.input_name(2)),
                          out=ctx.out())
    return [y]


@_handles("Conv")
def _conv(ctx):
    """Conv, 2-D or 1-D (as 2-D with height 1): ``conv2d`` with symmetric pads; asymmetric
    pads or auto_pad SAME are a zero ``pad`` op first."""
    x, w = ctx.get(0), ctx.get(1)
    if isinstance(x, Const):
        raise _Unsupported("Conv of a constant input is not supported")
    ks = ctx.attr("kernel_shape")
    if ks is not None and tuple(ks) != tuple(ctx.shape(w)[2:]):
        raise _Unsupported(f"kernel_shape {list(ks)} differs from the weight {ctx.shape(w)}")
    x, src = _as_2d(ctx, x, "convolution")
    nd = len(src) - 2
    k = list(ctx.shape(w)[2:])
    st = [int(v) for v in ctx.attr("strides", [1] * nd)]
    dil = [int(v) for v in ctx.attr("dilations", [1] * nd)]
    begin, end, _ = _spatial_pads(ctx, src[2:], k, st, dil)
    if nd == 1:
        w0 = w
        wshape = (w0.shape[0] if isinstance(w0, Const) else ctx.shape(w0)[0],
                  ctx.shape(w0)[1], 1, ctx.shape(w0)[2])
        w = Const(thunk=lambda: w0.value.reshape(wshape), shape=wshape, dtype=w0.dtype) \
            if isinstance(w0, Const) else ctx.p.reshape(ctx.sub("w.2d"), w0, wshape,
                                                         out=ctx.out(suffix="w2d"))
        st, dil, begin, end = [1] + st, [1] + dil, [0] + begin, [0] + end
    if begin != end:
        x = _pad_2d(ctx, x, begin, end, 0.0)
        begin = [0, 0]
    bias = ctx.get(2) if ctx.has(2) else None
    if bias is not None and _zero_const(bias):
        bias = None
    p = ctx.p
    last = bias is None and nd == 2
    y = p.conv2d(ctx.sub() if last else ctx.sub("conv"), x,
                 ctx.tensor(w, ctx.input_name(1)), stride=tuple(st), padding=tuple(begin),
                 dilation=tuple(dil), groups=int(ctx.attr("group", 1)),
                 out=ctx.out() if last else ctx.out(suffix="conv"))
    if bias is not None:
        f = ctx.shape(w)[0]
        if isinstance(bias, Const):
            b0 = bias
            bias = Const(thunk=lambda: b0.value.reshape(f, 1, 1), shape=(f, 1, 1),
                         dtype=b0.dtype)
            bt = ctx.tensor(bias, ctx.input_name(2))
        else:
            bt = p.reshape(ctx.sub("bias.reshape"), bias, (f, 1, 1), out=ctx.out(suffix="b"))
        y = p.elementwise(ctx.sub("bias") if nd == 2 else ctx.sub("bias2d"), "add", y, bt,
                          out=ctx.out() if nd == 2 else ctx.out(suffix="biased"))
    if nd == 1:
        y = p.reshape(ctx.sub(), y, src[:1] + p.shapes[y][1:2] + p.shapes[y][3:],
                      out=ctx.out())
    return [y]


@_handles("ConvTranspose")
def _conv_transpose(ctx):
    """ConvTranspose, 2-D or 1-D (as 2-D of height 1): the array multiplies the input's pixels
    (N*H*W rows, C/groups columns) by the weight (C/groups, F/groups*kh*kw) per group, and the
    ``col2im`` vector op adds each product into the output pixels it lands on (the transposed
    convolution's scatter, the adjoint of im2col); pads, auto_pad and output_shape crop the
    full result with a free slice, output_padding extends it."""
    x, w = ctx.get(0), ctx.get(1)
    if isinstance(x, Const):
        x = ctx.tensor(x, ctx.input_name(0))
    wshape = tuple(ctx.shape(w))
    x, src = _as_2d(ctx, x, "transposed convolution")
    nd = len(src) - 2
    if wshape[0] != src[1] or len(wshape) != nd + 2:
        raise _Unsupported(f"weight {wshape} does not fit the input {src}")
    g = int(ctx.attr("group", 1))
    k = list(wshape[2:])
    st = [int(v) for v in ctx.attr("strides", [1] * nd)]
    dil = [int(v) for v in ctx.attr("dilations", [1] * nd)]
    opad = [int(v) for v in ctx.attr("output_padding", [0] * nd)]
    full = [s_ * (n - 1) + o + d * (k_ - 1) + 1 for n, s_, o, d, k_ in
            zip(src[2:], st, opad, dil, k)]
    auto = ctx.attr("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    want = ctx.attr("output_shape")
    if want is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        want = [int(v) for v in want][-nd:] if want is not None else \
            [n * s_ for n, s_ in zip(src[2:], st)]
        total = [f - o for f, o in zip(full, want)]  # < 0: zeros past the full output
        begin = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        end = [t - b for t, b in zip(total, begin)]
    else:
        pads = [int(v) for v in ctx.attr("pads", [0] * 2 * nd)]
        begin, end = pads[:nd], pads[nd:]
    c, fg = src[1], wshape[1]
    f = fg * g
    if nd == 1:
        k, st, dil, full, begin, end = [1] + k, [1] + st, [1] + dil, [1] + full, [0] + begin, \
            [0] + end
    nb, h, wd = src[0], (1 if nd == 1 else src[2]), src[-1]
    p = ctx.p
    cg = c // g
    rows = p.permute(ctx.sub("pixels"), x, (0, 2, 3, 1), out=ctx.out(suffix="nhwc"))
    rows = p.reshape(ctx.sub("rows"), rows, (nb * h * wd, g, cg), out=ctx.out(suffix="rows"))
    rows = p.permute(ctx.sub("groups"), rows, (1, 0, 2), out=ctx.out(suffix="grows"))
    w0, kk = w, fg * k[0] * k[1]
    wt = ctx.tensor(Const(thunk=lambda: w0.value.reshape(g, cg, kk), shape=(g, cg, kk),
                          dtype=w0.dtype), ctx.input_name(1)) if isinstance(w, Const) else \
        p.reshape(ctx.sub("w.groups"), w, (g, cg, kk), out=ctx.out(suffix="wg"))
    cols = p.matmul(ctx.sub("matmul"), rows, wt, out=ctx.out(suffix="cols"))
    y = p.vector(ctx.sub("col2im"), "col2im", cols, shape=(nb, f, full[0], full[1]),
                 kernel=tuple(k), stride=tuple(st), padding=(0, 0), dilation=tuple(dil),
                 groups=g, out=ctx.out(suffix="full"))
    if any(v < 0 for v in begin + end):  # an output_shape past the full output: zeros
        y = _pad_2d(ctx, y, [max(-b, 0) for b in begin], [max(-e, 0) for e in end], 0.0)
        full = [n + max(-b, 0) + max(-e, 0) for n, b, e in zip(full, begin, end)]
        begin, end = [max(b, 0) for b in begin], [max(e, 0) for e in end]
    for ax, (b, e) in enumerate(zip(begin, end)):
        if b or e:
            y = p.slice(ctx.sub(f"crop{ax}"), y, 2 + ax, b, full[ax] - e,
                        out=ctx.out(suffix=f"crop{ax}"))
    if ctx.has(2):
        bias = ctx.get(2)
        b0 = bias
        bt = ctx.tensor(Const(thunk=lambda: b0.value.reshape(f, 1, 1), shape=(f, 1, 1),
                              dtype=b0.dtype), ctx.input_name(2)) if isinstance(bias, Const) \
            else p.reshape(ctx.sub("bias.reshape"), bias, (f, 1, 1), out=ctx.out(suffix="b"))
        y = p.elementwise(ctx.sub("bias"), "add", y, bt, out=ctx.out(suffix="biased"))
    target = src[:1] + (f,) + tuple(p.shapes[y][2:] if nd == 2 else p.shapes[y][3:])
    return [p.reshape(ctx.sub(), y, target, out=ctx.out())]


def _batch_first(ctx, x) -> tuple[str, int]:
    """Return (LSTM input, its time axis): the batch-first tensor (batch, seq, d) that the
    exporter transposed into X when X is only that transpose (a view of an earlier LSTM's
    output, or a permute nothing else reads, which is then dropped as unused), else X itself
    with time on axis 0."""
    if isinstance(x, _View):
        base = ctx.p.shapes[x.base]
        if len(base) == 3:
            want = np.arange(math.prod(base)).reshape(base).transpose(1, 0, 2)
            if np.array_equal(x.idx, want):
                return x.base, 1
        x = x.emit(ctx)
        ctx.env[ctx.node.input[0]] = x
        return x, 0
    p = ctx.p
    if ctx.uses.get(ctx.node.input[0], 0) == 1:
        for k in range(len(p.ops) - 1, -1, -1):
            op = p.ops[k]
            if op.output != x:
                continue
            if isinstance(op, Layout) and op.kind == "permute" and \
                    op.attr("perm") == (1, 0, 2) and \
                    not any(x in o.inputs for o in p.ops[k + 1:]):
                del p.ops[k]
                p._op_names.discard(op.name)
                del p.shapes[x]
                return op.inputs[0], 1
            break
    return x, 0


@_handles("LSTM")
def _lstm(ctx):
    """One forward LSTM layer as kernels/lstm.py builds it: the input projection of all steps
    is one GEMM, each step after the first one recurrent GEMM, the gates vector ops; h_0 = c_0
    = 0. ONNX's gate order is i, o, f, c (PyTorch's i, f, g, o); its two biases add into one.
    Any other LSTM (reverse, bidirectional, batch-first, data weights, initial states,
    peepholes) is the general unrolled recurrence (``_recurrent``)."""
    direction = ctx.attr("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    zoo = direction == "forward" and not ctx.attr("layout", 0) and \
        not ctx.attr("input_forget", 0) and ctx.attr("clip") is None and \
        isinstance(ctx.get(1), Const) and isinstance(ctx.get(2), Const) and \
        not isinstance(ctx.get(0), Const) and not ctx.has(7) and \
        all(not ctx.has(i) or _zero_const(ctx.get(i)) for i in (5, 6))
    if not zoo:  # any other LSTM: the general unrolled recurrence
        if isinstance(ctx.get(0), _View):
            ctx.env[ctx.node.input[0]] = ctx.get(0).emit(ctx)
        return _recurrent(ctx)
    if direction != "forward" or ctx.attr("layout", 0) or ctx.attr("input_forget", 0) or \
            ctx.attr("clip") is not None:
        raise _Unsupported("only forward, sequence-first (layout 0) LSTMs without clip or "
                           "coupled gates are supported")
    acts = ctx.attr("activations")
    if acts is not None and [a.decode() if isinstance(a, bytes) else a for a in acts] != \
            ["Sigmoid", "Tanh", "Tanh"]:
        raise _Unsupported(f"activations {acts} are not supported (Sigmoid, Tanh, Tanh only)")
    x, w, r = ctx.get(0), ctx.get(1), ctx.get(2)
    if not (isinstance(w, Const) and isinstance(r, Const)) or isinstance(x, Const):
        raise _Unsupported("W and R must be constants and X data")
    seq, batch, _d_in = ctx.shape(x)
    x, axis = _batch_first(ctx, x)
    hd = int(ctx.attr("hidden_size", r.shape[-1]))
    if ctx.has(4):
        lens = ctx.const(4, "sequence_lens")
        if np.any(lens != seq):
            raise _Unsupported("sequence_lens shorter than the sequence are not supported")
    for i, what in ((5, "initial_h"), (6, "initial_c"), (7, "P (peepholes)")):
        if ctx.has(i) and not (i < 7 and _zero_const(ctx.get(i))):
            raise _Unsupported(f"a non-zero {what} is not supported (h_0 = c_0 = 0)")
    p, n = ctx.p, ctx.op_name
    w_ih = ctx.tensor(Const(thunk=lambda: np.ascontiguousarray(w.value[0].T),
                            shape=(w.shape[2], 4 * hd), dtype=w.dtype), f"{n}.W_ih")
    w_hh = ctx.tensor(Const(thunk=lambda: np.ascontiguousarray(r.value[0].T),
                            shape=(hd, 4 * hd), dtype=r.dtype), f"{n}.W_hh")
    bias = None
    if ctx.has(3):
        bc = ctx.get(3)
        if not isinstance(bc, Const):
            raise _Unsupported("B must be a constant")
        bias = ctx.tensor(Const(thunk=lambda: bc.value[0, :4 * hd] + bc.value[0, 4 * hd:],
                                shape=(4 * hd,), dtype=bc.dtype), f"{n}.b")
    xp = p.linear(ctx.fresh(f"{n}.in"), x, w_ih, bias, out=ctx.fresh(f"{n}.xp"))
    h = c = None
    outs = []
    for t in range(seq):
        s_ = f"{n}.t{t}"

        def ew(tag, kind, *args):
            return p.elementwise(ctx.fresh(f"{s_}.{tag}"), kind, *args,
                                 out=ctx.fresh(f"{s_}.{tag}.out"))
        g = p.slice(ctx.fresh(f"{s_}.x"), xp, axis, t, t + 1, out=ctx.fresh(f"{s_}.xs"))
        g = p.reshape(ctx.fresh(f"{s_}.x2"), g, (batch, 4 * hd), out=ctx.fresh(f"{s_}.x2d"))
        if h is not None:
            rec = p.matmul(ctx.fresh(f"{s_}.rec"), h, w_hh, out=ctx.fresh(f"{s_}.hw"))
            g = ew("gates", "add", g, rec)
        i_, o_, f_, g_ = p.split(ctx.fresh(f"{s_}.split"), g, [hd] * 4, axis=-1)
        i_ = ew("i", "sigmoid", i_)
        g_ = ew("gg", "tanh", g_)
        o_ = ew("o", "sigmoid", o_)
        ig = ew("ixg", "mul", i_, g_)
        if c is None:
            c = ig
        else:
            f_ = ew("f", "sigmoid", f_)
            c = ew("c", "add", ew("fxc", "mul", f_, c), ig)
        h = ew("h", "mul", o_, ew("tanh_c", "tanh", c))
        outs.append(p.reshape(ctx.fresh(f"{s_}.h3"), h, (batch, 1, hd),
                              out=ctx.fresh(f"{s_}.h3d")))
    y = outs[0] if seq == 1 else p.vector(ctx.fresh(f"{n}.stack"), "concat", *outs,
                                          out=ctx.fresh(f"{n}.out"), axis=1)
    idx = np.arange(batch * seq * hd, dtype=np.int64).reshape(batch, seq, hd)
    view = _View(y, idx, []).then("permute", (1, 0, 2), f"{n}.Y").then(
        "reshape", (seq, 1, batch, hd), f"{n}.Y")
    results = [view]
    if len(ctx.node.output) > 1:
        results.append(p.reshape(ctx.fresh(f"{n}.Y_h"), h, (1, batch, hd), out=ctx.out(1)))
    if len(ctx.node.output) > 2:
        results.append(p.reshape(ctx.fresh(f"{n}.Y_c"), c, (1, batch, hd), out=ctx.out(2)))
    return results


@_handles("RNN", "GRU")
def _recurrent(ctx):
    """An RNN (tanh), GRU (gates z, r, h; linear_before_reset either way) or LSTM (gates i, o,
    f, c; initial cell, peepholes) other than the zoo's (see _lstm), forward, reverse
    or bidirectional (one pass per direction, Y's directions joined by ``concat``), unrolled
    as the LSTM is: the input projection of every step one GEMM on the array, each step's
    recurrent GEMM (none at the first step from a zero state), the gates on the vector unit;
    Y stacked with ``concat``. Weights may be constants or data; layout 0 or 1."""
    op = ctx.node.op_type
    direction = ctx.attr("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction not in ("forward", "reverse", "bidirectional") or \
            ctx.attr("clip") is not None:
        raise _Unsupported("recurrences with clip are not supported")
    acts = ctx.attr("activations")
    want = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}[op]
    if ctx.attr("input_forget", 0):
        raise _Unsupported("coupled input and forget gates (input_forget=1) are not supported")
    if acts is not None and [a.decode() if isinstance(a, bytes) else a for a in acts] != want:
        raise _Unsupported(f"activations {acts} are not supported ({', '.join(want)} only)")
    p, n = ctx.p, ctx.op_name
    x = ctx.tensor(ctx.get(0), ctx.input_name(0))
    layout = int(ctx.attr("layout", 0))
    xs = p.shapes[x]
    seq, batch = (xs[0], xs[1]) if layout == 0 else (xs[1], xs[0])
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    hd = int(ctx.attr("hidden_size", ctx.shape(ctx.get(2))[-1]))
    if ctx.has(4):
        lens = ctx.const(4, "sequence_lens")
        if np.any(lens != seq):
            raise _Unsupported("sequence_lens shorter than the sequence are not supported")

    cur = {"d": 0}  # the direction being lowered

    def mat(i, rows, cols, tag, lo=0):  # input i's [d] block (rows, cols) from row lo
        v, d = ctx.get(i), cur["d"]
        if isinstance(v, Const):
            v0, d0 = v, d
            return ctx.tensor(Const(thunk=lambda: np.ascontiguousarray(
                v0.value[d0, lo:lo + rows]), shape=(rows, cols), dtype=v0.dtype), f"{n}.{tag}")
        vs = tuple(ctx.shape(v))
        t = v if vs[0] == 1 else p.slice(ctx.fresh(f"{n}.{tag}.dir"), v, 0, d, d + 1,
                                         out=ctx.fresh(f"{n}.{tag}dir"))
        t = p.reshape(ctx.fresh(f"{n}.{tag}.2d"), t, vs[1:], out=ctx.fresh(f"{n}.{tag}2d"))
        if lo or rows != ctx.shape(v)[1]:
            t = p.slice(ctx.fresh(f"{n}.{tag}"), t, 0, lo, lo + rows, out=ctx.fresh(f"{n}.{tag}s"))
        return t

    def vec(lo, size, tag):  # a slice of B[d] (2 * gates * hd,) as a row
        b, d = ctx.get(3), cur["d"]
        if isinstance(b, Const):
            b0, d0 = b, d
            return ctx.tensor(Const(thunk=lambda: b0.value[d0, lo:lo + size].copy(),
                                    shape=(size,), dtype=b0.dtype), f"{n}.{tag}")
        t = b if ctx.shape(b)[0] == 1 else p.slice(ctx.fresh(f"{n}.{tag}.dir"), b, 0, d, d + 1,
                                                   out=ctx.fresh(f"{n}.{tag}dir"))
        t = p.reshape(ctx.fresh(f"{n}.{tag}.row"), t, (2 * gates * hd,),
                      out=ctx.fresh(f"{n}.{tag}row"))
        return p.slice(ctx.fresh(f"{n}.{tag}"), t, 0, lo, lo + size, out=ctx.fresh(f"{n}.{tag}s"))

    def mat_row(i, lo, size, tag, d):  # a slice of input i's [d] row (peepholes)
        v = ctx.get(i)
        if isinstance(v, Const):
            v0 = v
            return ctx.tensor(Const(thunk=lambda: v0.value[d, lo:lo + size].copy(),
                                    shape=(size,), dtype=v0.dtype), f"{n}.{tag}")
        t = p.slice(ctx.fresh(f"{n}.{tag}.dir"), v, 0, d, d + 1, out=ctx.fresh(f"{n}.{tag}d"))
        t = p.reshape(ctx.fresh(f"{n}.{tag}.row"), t, (ctx.shape(v)[1],),
                      out=ctx.fresh(f"{n}.{tag}r"))
        return p.slice(ctx.fresh(f"{n}.{tag}"), t, 0, lo, lo + size, out=ctx.fresh(f"{n}.{tag}s"))

    def ew(tag, kind, *args, **kw):
        return p.elementwise(ctx.fresh(f"{n}.{tag}"), kind, *args, out=ctx.fresh(f"{n}.{tag}.o"),
                             **kw)
    def one_direction(d: int, reverse: bool):
        cur["d"] = d
        w = mat(1, gates * hd, xs[2], "W")
        xp = p.matmul(ctx.fresh(f"{n}.in"), x, w, transpose_b=True, out=ctx.fresh(f"{n}.xp"))
        rb_h = None
        if ctx.has(3):
            wb = vec(0, gates * hd, "Wb")
            rb = vec(gates * hd, 2 * hd if op == "GRU" else gates * hd, "Rb")
            if op == "GRU":  # z and r take both biases; h takes Wb here, Rb where reset says
                rb = p.vector(ctx.fresh(f"{n}.Rbzr"), "concat", rb, ctx.tensor(
                    Const(np.zeros((hd,), np.float32)), f"{n}.zero"), axis=0,
                    out=ctx.fresh(f"{n}.Rbzr.o"))
                rb_h = vec(gates * hd + 2 * hd, hd, "Rbh")
            xp = ew("bias", "add", xp, ew("b", "add", wb, rb))
        def initial(i, tag):  # this direction's initial state (batch, hd); None when zero
            if not ctx.has(i) or _zero_const(ctx.get(i)):
                return None
            s0 = ctx.tensor(ctx.get(i), ctx.input_name(i))
            if ndir > 1:
                s0 = p.slice(ctx.fresh(f"{n}.{tag}.dir"), s0, 0 if layout == 0 else 1, d, d + 1,
                             out=ctx.fresh(f"{n}.{tag}dir"))
            return p.reshape(ctx.fresh(f"{n}.{tag}"), s0, (batch, hd),
                             out=ctx.fresh(f"{n}.{tag}.o"))
        h = initial(5, "h0")
        c = initial(6, "c0") if op == "LSTM" else None
        peep = None
        if op == "LSTM" and ctx.has(7) and not _zero_const(ctx.get(7)):
            peep = [mat_row(7, k * hd, hd, f"P{k}", d) for k in range(3)]  # i, o, f
        r_all = mat(2, gates * hd, hd, "R")
        lbr = bool(ctx.attr("linear_before_reset", 0))
        if op == "GRU":
            r_zr = p.slice(ctx.fresh(f"{n}.Rzr"), r_all, 0, 0, 2 * hd, out=ctx.fresh(f"{n}.Rzr.o"))
            r_h = p.slice(ctx.fresh(f"{n}.Rh"), r_all, 0, 2 * hd, 3 * hd,
                          out=ctx.fresh(f"{n}.Rh.o"))
        outs = {}
        for t in (range(seq - 1, -1, -1) if reverse else range(seq)):
            g = p.slice(ctx.fresh(f"{n}.t{t}.x"), xp, taxis, t, t + 1,
                        out=ctx.fresh(f"{n}.t{t}.xs"))
            g = p.reshape(ctx.fresh(f"{n}.t{t}.x2"), g, (batch, gates * hd),
                          out=ctx.fresh(f"{n}.t{t}.x2d"))
            if op == "LSTM":
                if h is not None:
                    g = ew(f"t{t}.sum", "add", g, p.matmul(ctx.fresh(f"{n}.t{t}.rec"), h, r_all,
                                                           transpose_b=True,
                                                           out=ctx.fresh(f"{n}.t{t}.hr")))
                gi, go, gf, gc = (p.slice(ctx.fresh(f"{n}.t{t}.g{k}"), g, 1, k * hd, (k + 1) * hd,
                                          out=ctx.fresh(f"{n}.t{t}.g{k}.o")) for k in range(4))
                if peep is not None and c is not None:
                    gi = ew(f"t{t}.pi", "add", gi, ew(f"t{t}.pci", "mul", peep[0], c))
                    gf = ew(f"t{t}.pf", "add", gf, ew(f"t{t}.pcf", "mul", peep[2], c))
                i_ = ew(f"t{t}.i", "sigmoid", gi)
                ig = ew(f"t{t}.ixg", "mul", i_, ew(f"t{t}.gg", "tanh", gc))
                if c is None:
                    c = ig
                else:
                    f_ = ew(f"t{t}.f", "sigmoid", gf)
                    c = ew(f"t{t}.c", "add", ew(f"t{t}.fxc", "mul", f_, c), ig)
                if peep is not None:
                    go = ew(f"t{t}.po", "add", go, ew(f"t{t}.pco", "mul", peep[1], c))
                h = ew(f"t{t}.h", "mul", ew(f"t{t}.o", "sigmoid", go), ew(f"t{t}.tc", "tanh", c))
            elif op == "RNN":
                if h is not None:
                    g = ew(f"t{t}.sum", "add", g, p.matmul(ctx.fresh(f"{n}.t{t}.rec"), h, r_all,
                                                           transpose_b=True,
                                                           out=ctx.fresh(f"{n}.t{t}.hr")))
                h = ew(f"t{t}.h", "tanh", g)
            else:
                gzr = p.slice(ctx.fresh(f"{n}.t{t}.zr"), g, 1, 0, 2 * hd,
                              out=ctx.fresh(f"{n}.t{t}.zr.o"))
                gh = p.slice(ctx.fresh(f"{n}.t{t}.gh"), g, 1, 2 * hd, 3 * hd,
                             out=ctx.fresh(f"{n}.t{t}.gh.o"))
                if h is not None:
                    gzr = ew(f"t{t}.zrsum", "add", gzr, p.matmul(
                        ctx.fresh(f"{n}.t{t}.reczr"), h, r_zr, transpose_b=True,
                        out=ctx.fresh(f"{n}.t{t}.hzr")))
                z = ew(f"t{t}.z", "sigmoid", p.slice(ctx.fresh(f"{n}.t{t}.zs"), gzr, 1, 0, hd,
                                                     out=ctx.fresh(f"{n}.t{t}.zs.o")))
                r = ew(f"t{t}.r", "sigmoid", p.slice(ctx.fresh(f"{n}.t{t}.rs"), gzr, 1, hd, 2 * hd,
                                                     out=ctx.fresh(f"{n}.t{t}.rs.o")))
                if h is not None:
                    if lbr:
                        rh = p.matmul(ctx.fresh(f"{n}.t{t}.rech"), h, r_h, transpose_b=True,
                                      out=ctx.fresh(f"{n}.t{t}.hh"))
                        if rb_h is not None:
                            rh = ew(f"t{t}.rhb", "add", rh, rb_h)
                        rh = ew(f"t{t}.reset", "mul", r, rh)
                    else:
                        rh = p.matmul(ctx.fresh(f"{n}.t{t}.rech"), ew(f"t{t}.reset", "mul", r, h),
                                      r_h, transpose_b=True, out=ctx.fresh(f"{n}.t{t}.hh"))
                        if rb_h is not None:
                            rh = ew(f"t{t}.rhb", "add", rh, rb_h)
                    gh = ew(f"t{t}.hsum", "add", gh, rh)
                elif rb_h is not None:  # a zero state still adds the recurrent bias (reset-gated)
                    gh = ew(f"t{t}.hsum", "add", gh, ew(f"t{t}.reset", "mul", r, rb_h) if lbr
                            else rb_h)
                cand = ew(f"t{t}.cand", "tanh", gh)
                if h is None:
                    h = ew(f"t{t}.h", "sub", cand, ew(f"t{t}.zc", "mul", z, cand))
                else:
                    h = ew(f"t{t}.h", "add", cand, ew(f"t{t}.zd", "mul", z,
                                                      ew(f"t{t}.d", "sub", h, cand)))
            shape = (1, 1, batch, hd) if layout == 0 else (batch, 1, 1, hd)
            outs[t] = p.reshape(ctx.fresh(f"{n}.t{t}.y"), h, shape, out=ctx.fresh(f"{n}.t{t}.yo"))
        y = outs[0] if seq == 1 else p.vector(ctx.fresh(f"{n}.Y"), "concat",
                                              *[outs[t] for t in range(seq)], axis=taxis,
                                              out=ctx.fresh(f"{n}.Yo"))
        return y, h, c
    ndir = 2 if direction == "bidirectional" else 1
    taxis = 0 if layout == 0 else 1
    runs = [one_direction(d, direction == "reverse" or d == 1) for d in range(ndir)]
    ys = [y for y, _h, _c in runs]
    y = ys[0] if ndir == 1 else p.vector(ctx.fresh(f"{n}.Ydirs"), "concat", *ys,
                                         axis=1 if layout == 0 else 2,
                                         out=ctx.fresh(f"{n}.Ydirs.o"))
    y = p.reshape(ctx.fresh(f"{n}.Yout"), y, tuple(p.shapes[y]),
                  out=ctx.out(0) if ctx.node.output[0] else ctx.fresh(f"{n}.Yout.o"))
    results = [y]
    for k in (1, 2) if op == "LSTM" else (1,):  # Y_h (and Y_c)
        if len(ctx.node.output) <= k:
            break
        if not ctx.node.output[k]:  # an output left out keeps its place
            results.append(None)
            continue
        hs = [p.reshape(ctx.fresh(f"{n}.Y{k}.{d}"), run_[k], (1, batch, hd) if layout == 0
                        else (batch, 1, hd), out=ctx.fresh(f"{n}.Y{k}.{d}.o"))
              for d, run_ in enumerate(runs)]
        yh = hs[0] if ndir == 1 else p.vector(ctx.fresh(f"{n}.Y{k}"), "concat", *hs,
                                              axis=0 if layout == 0 else 1,
                                              out=ctx.fresh(f"{n}.Y{k}.o"))
        results.append(p.reshape(ctx.fresh(f"{n}.Y{k}.out"), yh, tuple(p.shapes[yh]),
                                 out=ctx.out(k)))
    return results


# -- vector ops ---------------------------------------------------------------------------

@_handles("BatchNormalization")
def _batchnorm(ctx):
    if ctx.attr("training_mode", 0):
        raise _Unsupported("training_mode=1 is not supported (export the model in eval mode)")
    if len([o for o in ctx.node.output if o]) > 1:
        raise _Unsupported("running-statistics outputs (training mode) are not supported")
    x = ctx.get(0)
    args = [x] + [ctx.tensor(ctx.get(i), ctx.input_name(i)) for i in range(1, 5)]
    return [ctx.p.vector(ctx.sub(), "batchnorm", *args, out=ctx.out(),
                         eps=float(ctx.attr("epsilon", 1e-5)))]


@_handles("LayerNormalization")
def _layernorm(ctx):
    """LayerNormalization over the axes from ``axis`` on: the last axis is the ``layernorm``
    vector op as it is; an earlier axis flattens x to (outer, inner) around it (free
    reshapes) with the scale and bias flattened to (inner,)."""
    x = ctx.get(0)
    src = tuple(ctx.shape(x))
    axis = int(ctx.attr("axis", -1)) % len(src)
    xf, _ = _flat_2d(ctx, x, axis) if axis != len(src) - 1 else (x, src)
    norm = src[axis:]
    g, b = _row_param(ctx, 1, norm, 1.0), _row_param(ctx, 2, norm, 0.0)
    flat = xf != x
    eps = float(ctx.attr("epsilon", 1e-5))
    y = ctx.p.vector(ctx.sub("layernorm") if flat else ctx.sub(), "layernorm", xf, g, b,
                     out=ctx.out(suffix="norm") if flat else ctx.out(), eps=eps)
    outs = [_unflat(ctx, y, src)]
    if len(ctx.node.output) > 1 and any(ctx.node.output[1:]):
        # the saved statistics: mean and 1 / sqrt(var + eps), computed again as reductions
        p = ctx.p
        stat = src[:axis] + (1,) * len(norm)
        x2 = xf if flat or len(src) == 2 else \
            p.reshape(ctx.sub("rows"), x, (math.prod(src[:-1]), src[-1]),
                      out=ctx.out(suffix="rows"))
        mean = p.reduce(ctx.sub("mean"), "mean", x2, axis=1, keepdims=True,
                        out=ctx.out(suffix="mean2d"))
        cen = p.elementwise(ctx.sub("centre"), "sub", x2, mean, out=ctx.out(suffix="centred"))
        sq = p.elementwise(ctx.sub("square"), "square", cen, out=ctx.out(suffix="sq"))
        var = p.reduce(ctx.sub("var"), "mean", sq, axis=1, keepdims=True,
                       out=ctx.out(suffix="var"))
        ve = p.elementwise(ctx.sub("eps"), "add_const", var, const=eps,
                           out=ctx.out(suffix="var_eps"))
        inv = p.elementwise(ctx.sub("rsqrt"), "rsqrt", ve, out=ctx.out(suffix="inv2d"))
        outs.append(p.reshape(ctx.sub("mean.out"), mean, stat, out=ctx.out(1)))
        if len(ctx.node.output) > 2:
            outs.append(p.reshape(ctx.sub("inv.out"), inv, stat, out=ctx.out(2)))
    return outs


@_handles("Softmax", "LogSoftmax", "Hardmax")
def _softmax(ctx):
    """Softmax, LogSoftmax, Hardmax along ``axis`` (opset 13 on); before opset 13 over the
    axes from ``axis`` on, x flattened to 2-D around it (free reshapes)."""
    x = ctx.get(0)
    if isinstance(x, Const):
        x = ctx.tensor(x, ctx.input_name(0))
    nd = len(ctx.shape(x))
    kind = {"Softmax": "softmax", "LogSoftmax": "log_softmax",
            "Hardmax": "hardmax"}[ctx.node.op_type]
    if ctx.opset >= 13:
        return [ctx.p.vector(ctx.sub(), kind, x, out=ctx.out(), axis=int(ctx.attr("axis", -1)))]
    axis = int(ctx.attr("axis", 1)) % nd
    xf, src = _flat_2d(ctx, x, axis) if axis != nd - 1 else (x, ctx.shape(x))
    flat = xf != x
    y = ctx.p.vector(ctx.sub(kind) if flat else ctx.sub(), kind, xf, axis=-1,
                     out=ctx.out(suffix=kind) if flat else ctx.out())
    return [_unflat(ctx, y, tuple(src))]


def _spatial_pads(ctx, sizes, k, s, d, ceil: bool = False):
    """Return (begin pads, end pads, extra end pads of ceil_mode) per spatial axis from
    ``pads`` or ``auto_pad`` (SAME_UPPER / SAME_LOWER: the output is ceil(size / stride),
    the odd pad at the end / the start; VALID: none)."""
    nd = len(sizes)
    auto = ctx.attr("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for L, ki, si, di in zip(sizes, k, s, d):
            total = max((-(-L // si) - 1) * si + (ki - 1) * di + 1 - L, 0)
            small = total // 2
            begin.append(small if auto == "SAME_UPPER" else total - small)
            end.append(total - small if auto == "SAME_UPPER" else small)
    elif auto in ("NOTSET", "VALID"):
        pads = [0] * 2 * nd if auto == "VALID" else \
            [int(v) for v in ctx.attr("pads", [0] * 2 * nd)]
        begin, end = pads[:nd], pads[nd:]
    else:
        raise _Unsupported(f"auto_pad={auto} (known: NOTSET, VALID, SAME_UPPER, SAME_LOWER)")
    extra = []
    for L, ki, si, di, b, e in zip(sizes, k, s, d, begin, end):
        span = L + b + e - ((ki - 1) * di + 1)
        out = (-(-span // si) if ceil else span // si) + 1
        if ceil and (out - 1) * si >= L + b:  # a window may not start in the end padding
            out -= 1
        extra.append(max((out - 1) * si + (ki - 1) * di + 1 - (L + b + e), 0))
    return list(begin), list(end), extra


def _as_2d(ctx, x, what: str):
    """Return (x with a size-1 height axis when it is 1-D (N, C, L), its original shape)."""
    src = tuple(ctx.shape(x))
    if len(src) == 3:
        return ctx.p.reshape(ctx.sub(f"{what}.2d"), x, (src[0], src[1], 1, src[2]),
                             out=ctx.out(suffix=f"{what}2d")), src
    if len(src) != 4:
        raise _Unsupported(f"only 1-D and 2-D {what} (N, C, L) or (N, C, H, W) is supported, "
                           f"got input {src}")
    return x, src


def _pad_2d(ctx, x, begin, end, value: float):
    """Return x (N, C, H, W) padded by ``begin`` / ``end`` on H and W (the ``pad`` op)."""
    if not any(begin) and not any(end):
        return x
    return ctx.p.vector(ctx.sub("pad"), "pad", x,
                        pads=((0, 0), (0, 0), *zip(begin, end)),
                        mode="constant", value=value, out=ctx.out(suffix="padded"))


def _pool(ctx, kind: str, src_tensor=None, count_pads: bool = False):
    """MaxPool / AveragePool, 1-D (as 2-D with height 1) or 2-D: symmetric pads within half the
    kernel are the pooling op's own; other pads (asymmetric, auto_pad SAME, ceil_mode's extra
    end) are a ``pad`` op first (-inf for max, 0 for average). An average whose windows do not
    all count kernel-size elements (count_include_pad=0 over padding, ceil_mode's extra)
    is rescaled by a constant factor per output position (kernel size / elements counted)."""
    if len([o for o in ctx.node.output if o]) > 1:
        raise _Unsupported("the Indices output is not supported")
    x, src = _as_2d(ctx, ctx.get(0) if src_tensor is None else src_tensor, "pooling")
    ks = [int(v) for v in ctx.attr("kernel_shape")]
    nd = len(src) - 2
    if len(ks) != nd:
        raise _Unsupported(f"kernel_shape {ks} does not fit the input {src}")
    if any(v != 1 for v in ctx.attr("dilations", [1] * nd)):
        raise _Unsupported("dilated pooling is not supported")
    st = [int(v) for v in ctx.attr("strides", [1] * nd)]
    begin, end, extra = _spatial_pads(ctx, src[2:], ks, st, [1] * nd,
                                      bool(ctx.attr("ceil_mode", 0)))
    if nd == 1:
        ks, st, begin, end, extra = [1] + ks, [1] + st, [0] + begin, [0] + end, [0] + extra
    include = bool(ctx.attr("count_include_pad", 0)) or count_pads
    own = begin == end and not any(extra) and all(2 * b <= k for b, k in zip(begin, ks)) \
        and (kind == "maxpool2d" or include or not any(begin))
    p = ctx.p
    last = nd == 2 and (own or kind == "maxpool2d")
    if own:
        y = p.vector(ctx.sub() if last else ctx.sub(kind), kind, x, kernel=tuple(ks),
                     stride=tuple(st), padding=tuple(begin),
                     out=ctx.out() if last else ctx.out(suffix=kind))
    else:
        fill = -math.inf if kind == "maxpool2d" else 0.0
        xp = _pad_2d(ctx, x, begin, [e + x_ for e, x_ in zip(end, extra)], fill)
        y = p.vector(ctx.sub() if last else ctx.sub(kind), kind, xp, kernel=tuple(ks),
                     stride=tuple(st), padding=(0, 0),
                     out=ctx.out() if last else ctx.out(suffix=kind))
        if kind == "avgpool2d":
            oh, ow = p.shapes[y][2:]
            sizes = (1, src[2]) if nd == 1 else src[2:]

            def counts(n_out, L, k, s_, b, e):
                lo, hi = (-b, L + e) if include else (0, L)
                starts = np.arange(n_out) * s_ - b
                return np.clip(np.minimum(starts + k, hi) - np.maximum(starts, lo), 1, None)
            cnt = np.outer(counts(oh, sizes[0], ks[0], st[0], begin[0], end[0]),
                           counts(ow, sizes[1], ks[1], st[1], begin[1], end[1]))
            factor = (ks[0] * ks[1] / cnt).astype(np.float32)
            if np.any(factor != 1):
                f = ctx.tensor(Const(factor.reshape(1, 1, oh, ow)), f"{ctx.op_name}.count")
                y = p.elementwise(ctx.sub("count") if nd == 1 else ctx.sub(), "mul", y, f,
                                  out=ctx.out(suffix="counted") if nd == 1 else ctx.out())
    if nd == 1:
        y = p.reshape(ctx.sub(), y, src[:2] + (p.shapes[y][3],), out=ctx.out())
    return [y]


@_handles("MaxPool")
def _maxpool(ctx):
    return _pool(ctx, "maxpool2d")


@_handles("AveragePool")
def _avgpool(ctx):
    return _pool(ctx, "avgpool2d")


@_handles("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx):
    x = ctx.get(0)
    axes = tuple(range(2, len(ctx.shape(x))))
    kind = "mean" if ctx.node.op_type == "GlobalAveragePool" else "max"
    return [ctx.p.reduce(ctx.sub(), kind, x, axis=axes, keepdims=True, out=ctx.out())]


# ONNX reduction -> (pre elementwise kind, Reduce kind, post elementwise kind)
_REDUCE = {"ReduceMean": (None, "mean", None), "ReduceSum": (None, "sum", None),
           "ReduceMax": (None, "max", None), "ReduceMin": (None, "min", None),
           "ReduceProd": (None, "prod", None), "ReduceL1": ("abs", "sum", None),
           "ReduceL2": ("square", "sum", "sqrt"), "ReduceSumSquare": ("square", "sum", None),
           "ReduceLogSum": (None, "sum", "log"), "ReduceLogSumExp": (None, "sum", "log")}
_REDUCE_NUMPY = {"ReduceMean": lambda a, **k: np.mean(a, **k),
                 "ReduceSum": lambda a, **k: np.sum(a, **k),
                 "ReduceMax": lambda a, **k: np.max(a, **k),
                 "ReduceMin": lambda a, **k: np.min(a, **k),
                 "ReduceProd": lambda a, **k: np.prod(a, **k),
                 "ReduceL1": lambda a, **k: np.sum(np.abs(a), **k),
                 "ReduceL2": lambda a, **k: np.sqrt(np.sum(a * a, **k)),
                 "ReduceSumSquare": lambda a, **k: np.sum(a * a, **k),
                 "ReduceLogSum": lambda a, **k: np.log(np.sum(a, **k)),
                 "ReduceLogSumExp": lambda a, **k: np.log(np.sum(np.exp(a), **k))}


@_handles(*_REDUCE)
def _reduce(ctx):
    x = ctx.get(0)
    op = ctx.node.op_type
    if ctx.has(1):
        axes = ctx.const(1, "axes").reshape(-1).tolist()
    else:
        axes = ctx.attr("axes", None)
    keep = bool(ctx.attr("keepdims", 1))
    if isinstance(x, Const):
        ax = tuple(int(a) for a in axes) if axes else None
        if not axes and ctx.attr("noop_with_empty_axes", 0):
            return [x]
        return [_fold([x.value], lambda a: np.asarray(
            _REDUCE_NUMPY[op](a, axis=ax, keepdims=keep)).astype(x.dtype))]
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            pre, _kind, post = _REDUCE[op]
            if pre is None and post is None:
                return [x]
            axes = []  # the elementwise parts still apply
        else:
            axes = list(range(len(ctx.shape(x))))
    pre, kind, post = _REDUCE[op]
    p = ctx.p
    nd = len(ctx.shape(x))
    axes = tuple(sorted({int(a) % nd for a in axes}))
    if op == "ReduceLogSumExp":  # log(sum(exp(x - m))) + m, m the max (no overflow)
        m = p.reduce(ctx.sub("max"), "max", x, axis=axes, keepdims=True,
                     out=ctx.out(suffix="max"))
        z = p.elementwise(ctx.sub("sub"), "sub", x, m, out=ctx.out(suffix="sub"))
        e = p.elementwise(ctx.sub("exp"), "exp", z, out=ctx.out(suffix="exp"))
        s = p.reduce(ctx.sub("sum"), "sum", e, axis=axes, keepdims=True,
                     out=ctx.out(suffix="sum"))
        lg = p.elementwise(ctx.sub("log"), "log", s, out=ctx.out(suffix="log"))
        y = p.elementwise(ctx.sub("add") if not keep else ctx.sub(), "add", lg, m,
                          out=ctx.out(suffix="keep") if not keep else ctx.out())
        if keep:
            return [y]
        target = tuple(s_ for i, s_ in enumerate(ctx.shape(x)) if i not in axes) or (1,)
        return [p.reshape(ctx.sub(), y, target, out=ctx.out())]
    y = x
    if pre is not None:
        y = p.elementwise(ctx.sub(pre), pre, y, out=ctx.out(suffix=pre))
    if axes:
        y = p.reduce(ctx.sub(kind) if post else ctx.sub(), kind, y, axis=axes, keepdims=keep,
                     out=ctx.out(suffix=kind) if post else ctx.out())
    if post is not None:
        y = p.elementwise(ctx.sub(), post, y, out=ctx.out())
    return [y]


@_handles("ArgMax", "ArgMin")
def _argmax(ctx):
    x = ctx.get(0)
    kind = "argmax" if ctx.node.op_type == "ArgMax" else "argmin"
    axis, keep = int(ctx.attr("axis", 0)), bool(ctx.attr("keepdims", 1))
    last = bool(ctx.attr("select_last_index", 0))
    if isinstance(x, Const):
        x = ctx.tensor(x, ctx.input_name(0))
    out = ctx.p.vector(ctx.sub(), kind, x, out=ctx.out(), axis=axis, keepdims=keep,
                       select_last=last)
    ctx.dtypes[out] = np.dtype(np.int64)
    return [out]


def _flat_2d(ctx, x, axis: int) -> tuple[str, tuple]:
    """Return (x as a 2-D tensor (prod(shape[:axis]), prod(shape[axis:])), x's shape)."""
    src = tuple(ctx.shape(x))
    axis %= len(src)
    flat = (math.prod(src[:axis]), math.prod(src[axis:]))
    if flat == src:
        return x, src
    return ctx.p.reshape(ctx.sub("flat"), x, flat, out=ctx.out(suffix="flat")), src


def _unflat(ctx, y: str, src: tuple) -> str:
    if tuple(ctx.p.shapes[y]) == tuple(src):
        return y
    return ctx.p.reshape(ctx.sub("unflat"), y, src, out=ctx.out())


def _row_param(ctx, i: int, norm_shape: tuple, default: float):
    """Return input ``i`` (a scale or bias broadcast to the normalised shape) flattened to one
    row (d,) as a program tensor; ``default`` fills an absent one."""
    d = math.prod(norm_shape)
    v = ctx.get(i) if ctx.has(i) else Const(np.full(norm_shape, default, np.float32))
    name = ctx.input_name(i) if ctx.has(i) else f"{ctx.op_name}.in{i}"
    if isinstance(v, Const):
        v0 = v
        return ctx.tensor(Const(thunk=lambda: np.broadcast_to(v0.value, norm_shape).reshape(d),
                                shape=(d,), dtype=v0.dtype), name)
    if tuple(ctx.shape(v)) != tuple(norm_shape):
        v = ctx.p.vector(ctx.sub(f"in{i}.broadcast"), "broadcast", v, shape=norm_shape,
                         out=ctx.out(suffix=f"in{i}.b"))
    return ctx.p.reshape(ctx.sub(f"in{i}.row"), v, (d,), out=ctx.out(suffix=f"in{i}.row"))


@_handles("RMSNormalization")
def _rmsnorm(ctx):
    x = ctx.get(0)
    src = tuple(ctx.shape(x))
    axis = int(ctx.attr("axis", -1)) % len(src)
    xf, _ = _flat_2d(ctx, x, axis)
    g = _row_param(ctx, 1, src[axis:], 1.0)
    y = ctx.p.vector(ctx.sub("rmsnorm") if xf != x else ctx.sub(), "rmsnorm", xf, g,
                     out=ctx.out(suffix="norm") if xf != x else ctx.out(),
                     eps=float(ctx.attr("epsilon", 1e-5)))
    return [_unflat(ctx, y, src)]


@_handles("InstanceNormalization", "GroupNormalization")
def _instance_norm(ctx):
    """Normalise each (sample, channel group) over the group's channels and the spatial axes
    (InstanceNormalization: one channel per group), then scale and shift per channel."""
    x = ctx.get(0)
    src = tuple(ctx.shape(x))
    nb, c = src[0], src[1]
    groups = c if ctx.node.op_type == "InstanceNormalization" else int(ctx.attr("num_groups"))
    if c % groups:
        raise _Unsupported(f"{c} channels do not divide into {groups} groups")
    for i in (1, 2):
        if ctx.shape(ctx.get(i)) != (c,):
            raise _Unsupported(f"scale and bias must have one value per channel ({c},), got "
                               f"{ctx.shape(ctx.get(i))}")
    p = ctx.p
    rows = p.reshape(ctx.sub("rows"), x, (nb * groups, math.prod(src) // (nb * groups)),
                     out=ctx.out(suffix="rows"))
    xn = p.vector(ctx.sub("normalize"), "normalize", rows, out=ctx.out(suffix="norm"),
                  eps=float(ctx.attr("epsilon", 1e-5)))
    xn = p.reshape(ctx.sub("unrows"), xn, src, out=ctx.out(suffix="xn"))
    per_channel = (c,) + (1,) * (len(src) - 2)

    def param(i):
        v = ctx.get(i)
        if isinstance(v, Const):
            v0 = v
            return ctx.tensor(Const(thunk=lambda: v0.value.reshape(per_channel),
                                    shape=per_channel, dtype=v0.dtype), ctx.input_name(i))
        return p.reshape(ctx.sub(f"in{i}"), v, per_channel, out=ctx.out(suffix=f"in{i}"))
    y = p.elementwise(ctx.sub("scale"), "mul", xn, param(1), out=ctx.out(suffix="scaled"))
    return [p.elementwise(ctx.sub(), "add", y, param(2), out=ctx.out())]


@_handles("LpNormalization")
def _lp_norm(ctx):
    """x / ||x||_p along ``axis`` (p 1 or 2); 0 where the norm is 0."""
    x = ctx.get(0)
    order = int(ctx.attr("p", 2))
    if order not in (1, 2):
        raise _Unsupported(f"p={order} (known: 1, 2)")
    axis = int(ctx.attr("axis", -1)) % len(ctx.shape(x))
    p = ctx.p
    a = p.elementwise(ctx.sub("abs"), "abs" if order == 1 else "square", x,
                      out=ctx.out(suffix="pow"))
    s = p.reduce(ctx.sub("sum"), "sum", a, axis=axis, keepdims=True, out=ctx.out(suffix="sum"))
    if order == 2:
        s = p.elementwise(ctx.sub("sqrt"), "sqrt", s, out=ctx.out(suffix="norm"))
    q = p.elementwise(ctx.sub("div"), "div", x, s, out=ctx.out(suffix="div"))
    zero = ctx.tensor(Const(np.zeros((1,), np.float32)), f"{ctx.op_name}.zero")
    return [p.elementwise(ctx.sub(), "where", s, q, zero, out=ctx.out())]  # 0 where the norm is


def _nll(ctx, logp: str, target, weight, reduction: str, ignore) -> str:
    """Return the negative log-likelihood loss of log-probabilities ``logp`` (N, C, d...) at
    ``target`` (N, d...) (ONNX's NegativeLogLikelihoodLoss): -logp[n, target[n, d], d] times the
    target's weight (0 where target == ignore), then none / sum / mean (the weighted sum over
    the sum of the weights taken). Emits a GatherElements-style ``gather_elements`` along the
    class axis, the weights' ``gather`` and elementwise ops and reductions."""
    p = ctx.p
    if reduction not in ("none", "sum", "mean"):
        raise _Unsupported(f"reduction={reduction!r} (known: none, sum, mean)")
    src = tuple(p.shapes[logp])
    c = src[1]
    if isinstance(target, Const):
        target = ctx.tensor(target, ctx.input_name(1))
    tshape = tuple(p.shapes[target])
    if tshape != (src[0],) + src[2:]:
        raise _Unsupported(f"target {tshape} does not fit the scores {src}")
    keep = None
    safe = target
    if ignore is not None:
        ig = ctx.tensor(Const(np.array([int(ignore)], np.int64)), f"{ctx.op_name}.ignore")
        hit = p.elementwise(ctx.sub("ignored"), "equal", target, ig, out=ctx.out(suffix="ign"))
        keep = p.elementwise(ctx.sub("kept"), "logical_not", hit, out=ctx.out(suffix="kept"))
        zero = ctx.tensor(Const(np.zeros((1,), np.int64)), f"{ctx.op_name}.zero")
        safe = p.elementwise(ctx.sub("safe"), "where", hit, zero, target,
                             out=ctx.out(suffix="safe"))
    col = p.reshape(ctx.sub("col"), safe, (src[0], 1) + src[2:], out=ctx.out(suffix="col"))
    picked = p.vector(ctx.sub("pick"), "gather_elements", logp, col, axis=1,
                      out=ctx.out(suffix="pick"))
    picked = p.reshape(ctx.sub("picked"), picked, tshape, out=ctx.out(suffix="picked"))
    w = None
    if weight is not None:
        table = weight
        if isinstance(weight, Const):
            w0 = weight
            table = ctx.tensor(Const(thunk=lambda: w0.value.reshape(c, 1), shape=(c, 1),
                                     dtype=w0.dtype), ctx.input_name(2))
        else:
            table = p.reshape(ctx.sub("wcol"), weight, (c, 1), out=ctx.out(suffix="wcol"))
        w = p.vector(ctx.sub("weight"), "gather", table, safe, out=ctx.out(suffix="wg"))
        w = p.reshape(ctx.sub("weights"), w, tshape, out=ctx.out(suffix="w"))
    if keep is not None:
        w = keep if w is None else p.elementwise(ctx.sub("wkeep"), "mul", w, keep,
                                                 out=ctx.out(suffix="wk"))
    neg = p.elementwise(ctx.sub("neg"), "neg", picked, out=ctx.out(suffix="neg"))
    loss = neg if w is None else p.elementwise(ctx.sub("weighted"), "mul", neg, w,
                                               out=ctx.out(suffix="wl"))
    if reduction == "none":
        return loss
    if reduction == "sum" or w is None:
        return p.reduce(ctx.sub("sum"), "sum" if reduction == "sum" else "mean", loss,
                        keepdims=False, out=ctx.out())
    total = p.reduce(ctx.sub("sum"), "sum", loss, keepdims=False, out=ctx.out(suffix="sum"))
    wsum = p.reduce(ctx.sub("wsum"), "sum", w, keepdims=False, out=ctx.out(suffix="wsum"))
    return p.elementwise(ctx.sub(), "div", total, wsum, out=ctx.out())


def _reduction_attr(ctx) -> str:
    r = ctx.attr("reduction", b"mean")
    return r.decode() if isinstance(r, bytes) else r


@_handles("NegativeLogLikelihoodLoss")
def _nll_loss(ctx):
    x = ctx.tensor(ctx.get(0), ctx.input_name(0))
    weight = ctx.get(2) if ctx.has(2) else None
    return [_nll(ctx, x, ctx.get(1), weight, _reduction_attr(ctx), ctx.attr("ignore_index"))]


@_handles("SoftmaxCrossEntropyLoss")
def _sce_loss(ctx):
    """log_softmax over the class axis (1), then the negative log-likelihood loss."""
    x = ctx.tensor(ctx.get(0), ctx.input_name(0))
    out1 = len(ctx.node.output) > 1 and ctx.node.output[1]
    logp = ctx.p.vector(ctx.sub("log_softmax"), "log_softmax", x, axis=1,
                        out=ctx.out(1) if out1 else ctx.out(suffix="logp"))
    weight = ctx.get(2) if ctx.has(2) else None
    loss = _nll(ctx, logp, ctx.get(1), weight, _reduction_attr(ctx), ctx.attr("ignore_index"))
    return [loss, logp] if out1 else [loss]


@_handles("Attention")
def _attention(ctx):
    """ONNX's Attention (opset 23): Q, K, V of (batch, heads, seq, head size), or 3-D
    (batch, seq, hidden) with q_num_heads / kv_num_heads; past_key / past_value concatenated
    in front of K and V (the present outputs); grouped-query heads repeated; scores = Q K^T
    times the scale (default 1/sqrt(head size)), softcap, plus the mask (boolean: -inf where
    false; float: added; padded with -inf up to the key length) and the causal mask aligned
    bottom-right and the sliding window (left / right window sizes), softmax (a row with every
    key masked gives zeros), times V. The array runs
    the two batched matmuls; the rest is vector ops, as ``Net.attention``'s."""
    left, right = int(ctx.attr("left_window_size", -1)), int(ctx.attr("right_window_size", -1))
    nonpad = ctx.const(6, "nonpad_kv_seqlen").astype(np.int64).reshape(-1) if ctx.has(6) \
        else None
    if nonpad is not None and ctx.has(4):
        raise _Unsupported("nonpad_kv_seqlen with a past key / value cache")
    p = ctx.p
    q, k, v = (ctx.tensor(ctx.get(i), ctx.input_name(i)) for i in range(3))
    rank = len(p.shapes[q])
    qh, kvh = ctx.attr("q_num_heads"), ctx.attr("kv_num_heads")

    def heads(t, n, tag):
        b, s, hid = p.shapes[t]
        t = p.reshape(ctx.sub(f"{tag}.split"), t, (b, s, int(n), hid // int(n)),
                      out=ctx.out(suffix=f"{tag}4"))
        return p.permute(ctx.sub(f"{tag}.heads"), t, (0, 2, 1, 3), out=ctx.out(suffix=f"{tag}h"))
    if rank == 3:
        if qh is None or kvh is None:
            raise _Unsupported("3-D inputs need q_num_heads and kv_num_heads")
        q, k, v = heads(q, qh, "q"), heads(k, kvh, "k"), heads(v, kvh, "v")
    elif rank != 4:
        raise _Unsupported(f"Q must be 3-D or 4-D, got {p.shapes[q]}")
    past = 0
    if ctx.has(4) != ctx.has(5):
        raise _Unsupported("past_key and past_value come together")
    if ctx.has(4):
        past = ctx.shape(ctx.get(4))[2]
        k = p.vector(ctx.sub("present_key"), "concat", ctx.tensor(ctx.get(4), ctx.input_name(4)),
                     k, axis=2, out=ctx.out(1) if len(ctx.node.output) > 1 and
                     ctx.node.output[1] else ctx.out(suffix="pk"))
        v = p.vector(ctx.sub("present_value"), "concat",
                     ctx.tensor(ctx.get(5), ctx.input_name(5)), v, axis=2,
                     out=ctx.out(2) if len(ctx.node.output) > 2 and ctx.node.output[2]
                     else ctx.out(suffix="pv"))
    present = [k, v]
    nb, hq, sq, dh = p.shapes[q]
    hk, skv = p.shapes[k][1], p.shapes[k][2]
    if hq != hk:
        if hq % hk:
            raise _Unsupported(f"{hq} query heads do not group over {hk} key heads")
        r = hq // hk

        def repeat(t, tag):
            s_ = p.shapes[t]
            t = p.reshape(ctx.sub(f"{tag}.g"), t, (s_[0], s_[1], 1, s_[2], s_[3]),
                          out=ctx.out(suffix=f"{tag}g"))
            t = p.vector(ctx.sub(f"{tag}.repeat"), "broadcast", t,
                         shape=(s_[0], s_[1], r, s_[2], s_[3]), out=ctx.out(suffix=f"{tag}r"))
            return p.reshape(ctx.sub(f"{tag}.heads"), t, (s_[0], s_[1] * r, s_[2], s_[3]),
                             out=ctx.out(suffix=f"{tag}rep"))
        k, v = repeat(k, "k"), repeat(v, "v")
    scale = ctx.attr("scale")
    scale = float(scale) if scale is not None else 1.0 / math.sqrt(dh)
    s_ = p.matmul(ctx.sub("scores"), q, k, transpose_b=True, out=ctx.out(suffix="qk"))
    s_ = p.elementwise(ctx.sub("scale"), "scale", s_, const=scale, out=ctx.out(suffix="sc"))
    qk_out = {0: s_}
    softcap = float(ctx.attr("softcap", 0.0))
    if softcap > 0:
        t = p.elementwise(ctx.sub("cap.div"), "scale", s_, const=1.0 / softcap,
                          out=ctx.out(suffix="capd"))
        t = p.elementwise(ctx.sub("cap.tanh"), "tanh", t, out=ctx.out(suffix="capt"))
        s_ = p.elementwise(ctx.sub("cap"), "scale", t, const=softcap, out=ctx.out(suffix="cap"))
    qk_out[1] = s_
    # the additive bias: the mask's (data or constant) and the causal one (constant)
    bias = None
    if ctx.has(3):
        m = ctx.get(3)
        mshape = tuple(ctx.shape(m))
        is_bool = (m.dtype if isinstance(m, Const) else
                   ctx.elem_types.get(ctx.node.input[3], np.float32)) == np.bool_
        if isinstance(m, Const):
            mv = m.value
            if mshape[-1] < skv:
                pad = [(0, 0)] * (mv.ndim - 1) + [(0, skv - mshape[-1])]
                mv = np.pad(mv, pad, constant_values=False if is_bool else -np.inf)
            if is_bool:
                mv = np.where(mv, np.float32(0), np.float32(-np.inf))
            bias = Const(mv.astype(np.float32))
        else:
            mt = m
            if mshape[-1] < skv:
                width = ((0, 0),) * (len(mshape) - 1) + ((0, skv - mshape[-1]),)
                mt = p.vector(ctx.sub("mask.pad"), "pad", mt, pads=width, mode="constant",
                              value=0.0 if is_bool else -math.inf,
                              out=ctx.out(suffix="maskpad"))
            if is_bool:
                zero = ctx.tensor(Const(np.zeros((1,), np.float32)), f"{ctx.op_name}.zero")
                ninf = ctx.tensor(Const(np.full((1,), -np.inf, np.float32)),
                                  f"{ctx.op_name}.ninf")
                mt = p.elementwise(ctx.sub("mask.bias"), "where", mt, zero, ninf,
                                   out=ctx.out(suffix="maskbias"))
            bias = mt
    # the queries' offset in the keys: the cache's length, or per batch element the valid
    # keys past the queries (nonpad_kv_seqlen: an external cache), aligned bottom-right
    off = past if nonpad is None else (nonpad - sq).reshape(-1, 1, 1, 1)

    def add_mask(bias, m, tag: str, suffix: str):  # bias + a constant 0 / -inf mask
        if bias is None or isinstance(bias, Const):
            return Const(m if bias is None else (bias.value + m).astype(np.float32))
        return p.elementwise(ctx.sub(tag), "add", bias,
                             ctx.tensor(Const(m), f"{ctx.op_name}.{tag}"),
                             out=ctx.out(suffix=suffix))
    if ctx.attr("is_causal", 0):
        allowed = np.arange(skv)[None, :] <= np.arange(sq)[:, None] + off
        bias = add_mask(bias, np.where(allowed, np.float32(0), np.float32(-np.inf)),
                        "causal", "bias")
    if left >= 0 or right >= 0:  # a sliding window around each query's position
        diff = np.arange(sq)[:, None] + off - np.arange(skv)[None, :]
        allowed = np.ones(diff.shape, bool)
        if left >= 0:
            allowed &= diff <= left
        if right >= 0:
            allowed &= -diff <= right
        bias = add_mask(bias, np.where(allowed, np.float32(0), np.float32(-np.inf)),
                        "window", "windowed")
    if nonpad is not None:  # keys past each batch element's valid length are masked
        bias = add_mask(bias, np.where(np.arange(skv)[None, :] < nonpad[:, None], np.float32(0),
                                       np.float32(-np.inf)).reshape(-1, 1, 1, skv),
                        "nonpad", "nonpadded")
    if bias is not None:
        s_ = p.elementwise(ctx.sub("mask"), "add", s_, ctx.tensor(bias, f"{ctx.op_name}.bias"),
                           out=ctx.out(suffix="masked"))
    qk_out[2] = s_
    probs = p.vector(ctx.sub("softmax"), "softmax", s_, axis=-1, out=ctx.out(suffix="probs"))
    if bias is not None:  # rows with every key masked: zeros (softmax alone gives NaN)
        if isinstance(bias, Const):
            dead = np.isneginf(np.max(np.broadcast_to(bias.value, np.broadcast_shapes(
                bias.shape, (sq, skv))), axis=-1, keepdims=True))
            live = None if not dead.any() else \
                ctx.tensor(Const((~dead).astype(np.float32)), f"{ctx.op_name}.live")
        else:
            top = p.reduce(ctx.sub("mask.max"), "max", bias, axis=-1, keepdims=True,
                           out=ctx.out(suffix="maskmax"))
            dead_t = p.elementwise(ctx.sub("mask.dead"), "isinf", top, params=(0.0, 1.0),
                                   out=ctx.out(suffix="dead"))
            live = p.elementwise(ctx.sub("mask.live"), "logical_not", dead_t,
                                 out=ctx.out(suffix="live"))
        if live is not None:
            zero = ctx.tensor(Const(np.zeros((1,), np.float32)), f"{ctx.op_name}.zero0")
            probs = p.elementwise(ctx.sub("guard"), "where", live, probs, zero,
                                  out=ctx.out(suffix="guarded"))
    qk_out[3] = probs
    y = p.matmul(ctx.sub("pv"), probs, v, out=ctx.out(suffix="pv") if rank == 3 else ctx.out())
    if rank == 3:
        y = p.permute(ctx.sub("merge"), y, (0, 2, 1, 3), out=ctx.out(suffix="merge"))
        y = p.reshape(ctx.sub(), y, (nb, sq, hq * p.shapes[v][3]), out=ctx.out())
    outs = [y] + present
    if len(ctx.node.output) > 3 and ctx.node.output[3]:
        mode = int(ctx.attr("qk_matmul_output_mode", 0))
        if mode not in qk_out:
            raise _Unsupported(f"qk_matmul_output_mode={mode} (known: 0 to 3)")
        outs.append(qk_out[mode])
    return outs


_BIT = {"BitwiseAnd": "bit_and", "BitwiseOr": "bit_or", "BitwiseXor": "bit_xor",
        "BitwiseNot": "bit_not"}


@_handles(*_BIT, "BitShift")
def _bitwise(ctx):
    op = ctx.node.op_type
    if op == "BitShift":
        d = ctx.attr("direction", b"")
        d = d.decode() if isinstance(d, bytes) else d
        if d not in ("LEFT", "RIGHT"):
            raise _Unsupported(f"direction={d!r} (known: LEFT, RIGHT)")
        kind = "shift_left" if d == "LEFT" else "shift_right"
    else:
        kind = _BIT[op]
    vals = [ctx.get(i) for i in range(len(ctx.node.input))]
    if not all(ctx.is_integer(i) for i in range(len(vals))):
        raise _Unsupported(f"{op} takes integer tensors")
    dt = np.dtype(vals[0].dtype if isinstance(vals[0], Const) else
                  ctx.elem_types.get(ctx.node.input[0], np.int64))
    params = (8 * dt.itemsize, float(np.issubdtype(dt, np.signedinteger)))
    if all(isinstance(v, Const) for v in vals):
        return [_fold_elementwise(kind, [v.value for v in vals], params)]
    out = _emit_elementwise(ctx, kind, vals, params)
    ctx.dtypes[out] = np.dtype(np.int64)
    return [out]


@_handles("CumSum", "CumProd")
def _cumsum(ctx):
    x = ctx.get(0)
    axis = int(ctx.const(1, "axis").reshape(-1)[0])
    exclusive, reverse = bool(ctx.attr("exclusive", 0)), bool(ctx.attr("reverse", 0))
    kind = "cumsum" if ctx.node.op_type == "CumSum" else "cumprod"
    if isinstance(x, Const) and kind == "cumsum":
        nd = max(len(x.shape), 1)
        if not -nd <= axis < nd:
            raise _Unsupported(f"CumSum axis {axis} is out of range for rank {nd}")
        return [_fold([x.value], lambda a: cumsum_values(a, axis % nd, exclusive, reverse)
                      .astype(x.dtype))]
    x = ctx.tensor(x, ctx.input_name(0))
    return [ctx.p.vector(ctx.sub(), kind, x, axis=axis, out=ctx.out(), exclusive=exclusive,
                         reverse=reverse)]


@_handles("OneHot")
def _one_hot(ctx):
    """OneHot of data indices: an ``equal`` of the indices (an axis added) with 0..depth-1
    (and with -depth..-1: a negative index counts from the end), then a ``where`` between the
    on and off values; indices outside [-depth, depth) give the off value."""
    idx = ctx.get(0)
    depth = int(ctx.const(1, "depth").reshape(-1)[0])
    values = ctx.get(2)
    src = tuple(ctx.shape(idx))
    axis = int(ctx.attr("axis", -1))
    axis = axis % (len(src) + 1)
    p = ctx.p
    idx = ctx.tensor(idx, ctx.input_name(0))
    col = p.reshape(ctx.sub("col"), idx, src[:axis] + (1,) + src[axis:],
                    out=ctx.out(suffix="col"))
    line = (1,) * axis + (depth,) + (1,) * (len(src) - axis)
    ar = np.arange(depth, dtype=np.int64).reshape(line)
    hit = p.elementwise(ctx.sub("pos"), "equal", col,
                        ctx.tensor(Const(ar), f"{ctx.op_name}.range"), out=ctx.out(suffix="pos"))
    neg = p.elementwise(ctx.sub("neg"), "equal", col,
                        ctx.tensor(Const(ar - depth), f"{ctx.op_name}.negrange"),
                        out=ctx.out(suffix="negpos"))
    hit = p.elementwise(ctx.sub("hit"), "logical_or", hit, neg, out=ctx.out(suffix="hit"))
    if isinstance(values, Const):
        off, on = values.value.reshape(-1)[:2]
        on_t = ctx.tensor(Const(np.array([on])), f"{ctx.op_name}.on")
        off_t = ctx.tensor(Const(np.array([off])), f"{ctx.op_name}.off")
    else:  # data values (off, on): two free slices
        off_t = p.slice(ctx.sub("off"), values, 0, 0, 1, out=ctx.out(suffix="off"))
        on_t = p.slice(ctx.sub("on"), values, 0, 1, 2, out=ctx.out(suffix="on"))
    return [p.elementwise(ctx.sub(), "where", hit, on_t, off_t, out=ctx.out())]


def _resize_axis_weights(mode: str, n: int, m: int, scale: float, roi, attrs: dict):
    """Return (W (n, m), extrapolated (m,) bool or None): output y along one axis is
    sum_i x[i] W[i, y] (and the extrapolation value where flagged), the weights ONNX's reference
    Resize uses (onnx.reference's 1-D interpolation applied to the identity)."""
    try:
        from onnx.reference.ops import op_resize as R
        interp = R._interpolate_1d_along_axis
    except (ImportError, AttributeError):  # pragma: no cover - another onnx
        raise _Unsupported("this onnx has no reference Resize to take the weights from") \
            from None
    a = attrs["cubic_coeff_a"]
    if mode == "nearest":
        if attrs["antialias"]:
            raise _Unsupported("antialias with mode nearest")
        nm = attrs["nearest_mode"]

        def coeffs(x, s):
            return R._nearest_coeffs(x, mode=nm)
    elif mode == "linear":
        coeffs = R._linear_coeffs_antialias if attrs["antialias"] else R._linear_coeffs
    elif mode == "cubic":
        fn = R._cubic_coeffs_antialias if attrs["antialias"] else R._cubic_coeffs

        def coeffs(x, s):
            return fn(x, s, A=a)
    else:
        raise _Unsupported(f"mode={mode!r} (known: nearest, linear, cubic)")
    ctm = attrs["coordinate_transformation_mode"]
    w = interp(np.eye(n), 1, scale, m, coeffs, roi=roi, extrapolation_value=0.0,
               coordinate_transformation_mode=ctm, exclude_outside=attrs["exclude_outside"])
    flagged = None
    if attrs["extrapolation_value"] != 0.0 and ctm == "tf_crop_and_resize":
        probe = interp(np.ones((1, n)), 1, scale, m, coeffs, roi=roi, extrapolation_value=2.0,
                       coordinate_transformation_mode=ctm,
                       exclude_outside=attrs["exclude_outside"])[0]
        ones = interp(np.ones((1, n)), 1, scale, m, coeffs, roi=roi, extrapolation_value=3.0,
                      coordinate_transformation_mode=ctm,
                      exclude_outside=attrs["exclude_outside"])[0]
        flagged = probe != ones
        if not flagged.any():
            flagged = None
    return w, flagged


@_handles("Resize")
def _resize(ctx):
    """Resize (nearest, linear, cubic; every coordinate transformation, antialias,
    keep_aspect_ratio_policy, axes): separable, so each resized axis is one matmul on the
    array with a constant (in, out) weight matrix (the axis moved last by a permute and
    back); tf_crop_and_resize's extrapolated positions add the extrapolation value."""
    x = ctx.get(0)
    if isinstance(x, Const):
        x = ctx.tensor(x, ctx.input_name(0))
    if ctx.is_integer(0):
        raise _Unsupported("Resize of integers (rounded and saturated) is not supported")
    src = tuple(ctx.shape(x))
    r = len(src)
    dec = (lambda v, d: v.decode() if isinstance(v, bytes) else (v if v is not None else d))
    mode = dec(ctx.attr("mode"), "nearest")
    attrs = {"antialias": int(ctx.attr("antialias", 0)),
             "coordinate_transformation_mode": dec(ctx.attr("coordinate_transformation_mode"),
                                                   "half_pixel"),
             "cubic_coeff_a": float(ctx.attr("cubic_coeff_a", -0.75)),
             "exclude_outside": int(ctx.attr("exclude_outside", 0)),
             "extrapolation_value": float(ctx.attr("extrapolation_value", 0.0)),
             "nearest_mode": dec(ctx.attr("nearest_mode"), "round_prefer_floor")}
    policy = dec(ctx.attr("keep_aspect_ratio_policy"), "stretch")
    axes = [int(a) % r for a in ctx.attr("axes", list(range(r)))]
    roi = ctx.const(1, "roi").astype(np.float64).reshape(-1) if ctx.has(1) and \
        math.prod(ctx.shape(ctx.get(1))) else None
    if roi is not None and len(roi) == 2 * len(axes) and len(axes) != r:
        full = np.concatenate([np.zeros(r), np.ones(r)])
        for k, a in enumerate(axes):
            full[a], full[a + r] = roi[k], roi[k + len(axes)]
        roi = full
    scales = ctx.const(2, "scales").astype(np.float64).reshape(-1) if ctx.has(2) and \
        math.prod(ctx.shape(ctx.get(2))) else None
    sizes = ctx.const(3, "sizes").astype(np.int64).reshape(-1) if ctx.has(3) and \
        math.prod(ctx.shape(ctx.get(3))) else None
    factors, out = [1.0] * r, list(src)
    if sizes is not None:
        for k, a in enumerate(axes):
            out[a] = int(sizes[k])
        factors = [out[i] / src[i] for i in range(r)]
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            s = pick(factors[a] for a in axes)
            factors = [s if i in axes else 1.0 for i in range(r)]
            out = [int(math.floor(s * src[i] + 0.5)) if i in axes else src[i] for i in range(r)]
    elif scales is not None:
        for k, a in enumerate(axes):
            factors[a] = float(scales[k])
        out = [int(f * s_) for f, s_ in zip(factors, src)]
    else:
        raise _Unsupported("Resize needs scales or sizes")
    p = ctx.p
    y = x
    todo = [a for a in axes if not (math.isclose(factors[a], 1.0) and out[a] == src[a] and
                                    (roi is None or (math.isclose(roi[a], 0.0) and
                                                     math.isclose(roi[a + r], 1.0))))]
    for k, a in enumerate(todo):
        last = k == len(todo) - 1
        w, flagged = _resize_axis_weights(mode, src[a], out[a], factors[a],
                                          None if roi is None else [roi[a], roi[a + r]], attrs)
        wt = ctx.tensor(Const(w.astype(np.float32)), f"{ctx.op_name}.w{a}")
        perm = tuple(i for i in range(r) if i != a) + (a,)
        back = tuple(int(np.argsort(perm)[i]) for i in range(r))
        t = y if a == r - 1 else p.permute(ctx.sub(f"axis{a}.last"), y, perm,
                                           out=ctx.out(suffix=f"a{a}last"))
        done = a == r - 1 and flagged is None and last
        t = p.matmul(ctx.sub() if done else ctx.sub(f"axis{a}"), t, wt,
                     out=ctx.out() if done else ctx.out(suffix=f"a{a}"))
        if flagged is not None:
            ev = (flagged * attrs["extrapolation_value"]).astype(np.float32)
            fin = a == r - 1 and last
            t = p.elementwise(ctx.sub() if fin else ctx.sub(f"axis{a}.extrapolate"), "add", t,
                              ctx.tensor(Const(ev), f"{ctx.op_name}.e{a}"),
                              out=ctx.out() if fin else ctx.out(suffix=f"a{a}e"))
        if a != r - 1:
            t = p.permute(ctx.sub() if last else ctx.sub(f"axis{a}.back"), t, back,
                          out=ctx.out() if last else ctx.out(suffix=f"a{a}back"))
        y = t
    if y is x:
        return [p.elementwise(ctx.sub(), "scale", x, const=1.0, out=ctx.out())]
    return [y]


@_handles("DepthToSpace", "SpaceToDepth")
def _depth_space(ctx):
    """DepthToSpace and SpaceToDepth (DCR or CRD): a free reshape, a ``permute`` (data
    movement) and a free reshape."""
    x = ctx.tensor(ctx.get(0), ctx.input_name(0))
    n, c, h, w = ctx.shape(x)
    b = int(ctx.attr("blocksize"))
    p = ctx.p
    mode = ctx.attr("mode", b"DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("DCR", "CRD"):
        raise _Unsupported(f"mode={mode!r} (known: DCR, CRD)")
    if ctx.node.op_type == "DepthToSpace":
        if c % (b * b):
            raise _Unsupported(f"{c} channels do not divide by blocksize^2 {b * b}")
        if mode == "DCR":
            split, perm = (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2)
        else:
            split, perm = (n, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3)
        final = (n, c // (b * b), h * b, w * b)
    else:
        if h % b or w % b:
            raise _Unsupported(f"{h}x{w} does not divide by blocksize {b}")
        split = (n, c, h // b, b, w // b, b)
        perm = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)
        final = (n, c * b * b, h // b, w // b)
    t = p.reshape(ctx.sub("split"), x, split, out=ctx.out(suffix="split"))
    t = p.permute(ctx.sub("move"), t, perm, out=ctx.out(suffix="moved"))
    return [p.reshape(ctx.sub(), t, final, out=ctx.out())]


@_handles("ScatterElements", "ScatterND", "Scatter")
def _scatter(ctx):
    """ScatterElements (along ``axis``) and ScatterND: a copy of data with the updates written
    (reduction none) or combined (add, mul, max, min) at the indices: the ``scatter_elements``
    / ``scatter_nd`` vector ops."""
    red = ctx.attr("reduction", b"none")
    red = red.decode() if isinstance(red, bytes) else red
    if red not in ("none", "add", "mul", "max", "min"):
        raise _Unsupported(f"reduction={red!r} (known: none, add, mul, max, min)")
    data, idx, upd = (ctx.tensor(ctx.get(i), ctx.input_name(i)) for i in range(3))
    if ctx.node.op_type in ("ScatterElements", "Scatter"):
        return [ctx.p.vector(ctx.sub(), "scatter_elements", data, idx, upd, out=ctx.out(),
                             axis=int(ctx.attr("axis", 0)), reduction=red)]
    return [ctx.p.vector(ctx.sub(), "scatter_nd", data, idx, upd, out=ctx.out(), reduction=red)]


@_handles("TopK")
def _topk(ctx):
    """TopK: the k largest (or smallest) along ``axis``, sorted, ties to the lower index:
    ``topk`` (values) and ``topk_indices`` vector ops."""
    x = ctx.tensor(ctx.get(0), ctx.input_name(0))
    k = int(ctx.const(1, "k").reshape(-1)[0])
    attrs = dict(axis=int(ctx.attr("axis", -1)), k=k, largest=bool(ctx.attr("largest", 1)))
    if not ctx.attr("sorted", 1):
        raise _Unsupported("sorted=0 (an unspecified order) is not supported")
    vals = ctx.p.vector(ctx.sub("values"), "topk", x, out=ctx.out(0), **attrs)
    outs = [vals]
    if len(ctx.node.output) > 1 and ctx.node.output[1]:
        idx = ctx.p.vector(ctx.sub("indices"), "topk_indices", x, out=ctx.out(1), **attrs)
        ctx.dtypes[idx] = np.dtype(np.int64)
        outs.append(idx)
    return outs


@_handles("LpPool")
def _lp_pool(ctx):
    """LpPool: |x|^p (``abs`` and ``pow``), the windows' sums (an average pool, every pad
    counted, times the window size), then the p-th root."""
    order = float(ctx.attr("p", 2))
    x = ctx.tensor(ctx.get(0), ctx.input_name(0))
    p = ctx.p
    a = p.elementwise(ctx.sub("abs"), "abs", x, out=ctx.out(suffix="abs"))
    e = ctx.tensor(Const(np.array([order], np.float32)), f"{ctx.op_name}.p")
    a = p.elementwise(ctx.sub("pow"), "pow", a, e, out=ctx.out(suffix="pow"))
    ctx.env[f"{ctx.op_name}#lp"] = a
    s = _pool(ctx, "avgpool2d", src_tensor=a, count_pads=True)[0]
    area = math.prod(int(v) for v in ctx.attr("kernel_shape"))
    s = p.elementwise(ctx.sub("sum"), "scale", s, const=float(area), out=ctx.out(suffix="sum"))
    r = ctx.tensor(Const(np.array([1.0 / order], np.float32)), f"{ctx.op_name}.root")
    return [p.elementwise(ctx.sub("root"), "pow", s, r, out=ctx.out(suffix="lp"))]


@_handles("RotaryEmbedding")
def _rotary(ctx):
    """RotaryEmbedding: x as (batch, seq, heads, head size) (a permute of a 4-D input, a free
    reshape of a 3-D one), the cos / sin rows gathered by position_ids (``gather``), the rotated
    part's halves (or even / odd elements: interleaved) mixed by four multiplies, a subtract and
    an add, put back with ``concat``."""
    p = ctx.p
    x = ctx.tensor(ctx.get(0), ctx.input_name(0))
    src = tuple(p.shapes[x])
    if len(src) == 4:
        nb, nh, sq, d = src
        t = p.permute(ctx.sub("bshd"), x, (0, 2, 1, 3), out=ctx.out(suffix="bshd"))
    elif len(src) == 3:
        nb, sq, hid = src
        nh = int(ctx.attr("num_heads", 0))
        if not nh or hid % nh:
            raise _Unsupported("a 3-D input needs num_heads dividing its hidden size")
        d = hid // nh
        t = p.reshape(ctx.sub("bshd"), x, (nb, sq, nh, d), out=ctx.out(suffix="bshd"))
    else:
        raise _Unsupported(f"input must be 3-D or 4-D, got {src}")
    rd = int(ctx.attr("rotary_embedding_dim", 0)) or d
    half = rd // 2

    def table(i, tag):
        c = ctx.get(i)
        if ctx.has(3):
            c = _general_gather_of(ctx, c, ctx.get(3), tag)
        else:
            c = ctx.tensor(c, ctx.input_name(i))
        if tuple(p.shapes[c]) != (nb, sq, half):
            raise _Unsupported(f"the {tag} cache gives {p.shapes[c]}, not {(nb, sq, half)}")
        return p.reshape(ctx.sub(f"{tag}.heads"), c, (nb, sq, 1, half), out=ctx.out(suffix=tag))
    cos, sin = table(1, "cos"), table(2, "sin")
    rot = t if rd == d else p.slice(ctx.sub("rot"), t, 3, 0, rd, out=ctx.out(suffix="rot"))
    if ctx.attr("interleaved", 0):
        pairs = p.reshape(ctx.sub("pairs"), rot, (nb, sq, nh, half, 2), out=ctx.out(suffix="pairs"))
        x1, x2 = (p.reshape(ctx.sub(f"x{k}"), p.slice(ctx.sub(f"x{k}.pick"), pairs, 4, k, k + 1,
                                                      out=ctx.out(suffix=f"x{k}p")),
                            (nb, sq, nh, half), out=ctx.out(suffix=f"x{k}")) for k in (0, 1))
    else:
        x1 = p.slice(ctx.sub("x0"), rot, 3, 0, half, out=ctx.out(suffix="x0"))
        x2 = p.slice(ctx.sub("x1"), rot, 3, half, rd, out=ctx.out(suffix="x1"))

    def ew(tag, kind, a, b):
        return p.elementwise(ctx.sub(tag), kind, a, b, out=ctx.out(suffix=tag))
    real = ew("real", "sub", ew("c1", "mul", cos, x1), ew("s2", "mul", sin, x2))
    imag = ew("imag", "add", ew("s1", "mul", sin, x1), ew("c2", "mul", cos, x2))
    if ctx.attr("interleaved", 0):
        real = p.reshape(ctx.sub("real.pair"), real, (nb, sq, nh, half, 1),
                         out=ctx.out(suffix="rp"))
        imag = p.reshape(ctx.sub("imag.pair"), imag, (nb, sq, nh, half, 1),
                         out=ctx.out(suffix="ip"))
        both = p.vector(ctx.sub("interleave"), "concat", real, imag, axis=4,
                        out=ctx.out(suffix="inter"))
        both = p.reshape(ctx.sub("rotated"), both, (nb, sq, nh, rd), out=ctx.out(suffix="rotd"))
    else:
        both = p.vector(ctx.sub("rotated"), "concat", real, imag, axis=3,
                        out=ctx.out(suffix="rotd"))
    if rd != d:
        keep = p.slice(ctx.sub("pass"), t, 3, rd, d, out=ctx.out(suffix="pass"))
        both = p.vector(ctx.sub("join"), "concat", both, keep, axis=3, out=ctx.out(suffix="join"))
    if len(src) == 4:
        return [p.permute(ctx.sub(), both, (0, 2, 1, 3), out=ctx.out())]
    return [p.reshape(ctx.sub(), both, src, out=ctx.out())]


def _general_gather_of(ctx, table, ids, tag: str) -> str:
    """Return rows of a 2-D ``table`` (constant or data) picked by ``ids``: the ``gather``
    vector op, ids.shape + (row width,)."""
    p = ctx.p
    t = ctx.tensor(table, f"{ctx.op_name}.{tag}_cache")
    if len(p.shapes[t]) != 2:
        raise _Unsupported(f"the {tag} cache must be 2-D with position_ids")
    i = ctx.tensor(ids, f"{ctx.op_name}.position_ids")
    if isinstance(ids, str):
        ctx.id_bounds[ids] = min(ctx.id_bounds.get(ids, p.shapes[t][0]), p.shapes[t][0])
    return p.vector(ctx.sub(f"{tag}.gather"), "gather", t, i, out=ctx.out(suffix=f"{tag}g"))


_QRANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127),
           np.dtype(np.int16): (-32768, 32767), np.dtype(np.int32): (-2**31, 2**31 - 1)}


def _quant_param(ctx, i: int, shape: tuple, axis: int, block: int):
    """Return input ``i`` (a scale or zero point: per tensor, per ``axis`` or per block of
    ``block`` along it) as a program tensor that broadcasts against x of ``shape``."""
    v = ctx.get(i)
    vs = tuple(ctx.shape(v))
    nd = len(shape)
    axis %= nd
    if math.prod(vs) == 1:
        return ctx.tensor(v, ctx.input_name(i))
    if block and not isinstance(v, Const):  # data: each entry repeated block times
        if len(vs) != nd:
            raise _Unsupported("a blocked scale or zero point must have x's rank")
        p = ctx.p
        t = p.reshape(ctx.sub(f"in{i}.split"), v, vs[:axis + 1] + (1,) + vs[axis + 1:],
                      out=ctx.out(suffix=f"in{i}s"))
        t = p.vector(ctx.sub(f"in{i}.blocks"), "broadcast", t,
                     shape=vs[:axis + 1] + (block,) + vs[axis + 1:],
                     out=ctx.out(suffix=f"in{i}b"))
        t = p.reshape(ctx.sub(f"in{i}.merge"), t,
                      vs[:axis] + (vs[axis] * block,) + vs[axis + 1:],
                      out=ctx.out(suffix=f"in{i}m"))
        if vs[axis] * block != shape[axis]:
            t = p.slice(ctx.sub(f"in{i}.crop"), t, axis, 0, shape[axis],
                        out=ctx.out(suffix=f"in{i}c"))
        return t
    if block:
        if len(vs) != nd:
            raise _Unsupported("a blocked scale or zero point must have x's rank")
        v0 = v
        full = Const(thunk=lambda: np.repeat(v0.value, block, axis=axis).take(
            np.arange(shape[axis]), axis=axis), shape=shape, dtype=v0.dtype)
        return ctx.tensor(full, f"{ctx.input_name(i)}.blocks")
    if vs != (shape[axis],):
        raise _Unsupported(f"a scale or zero point of shape {vs} does not fit axis {axis} of "
                           f"{shape}")
    line = tuple(shape[axis] if a == axis else 1 for a in range(nd))
    if isinstance(v, Const):
        v0 = v
        return ctx.tensor(Const(thunk=lambda: v0.value.reshape(line), shape=line,
                                dtype=v0.dtype), ctx.input_name(i))
    return ctx.p.reshape(ctx.sub(f"in{i}.axis"), v, line, out=ctx.out(suffix=f"in{i}"))


@_handles("DequantizeLinear")
def _dequantize(ctx):
    """DequantizeLinear: (x - zero point) * scale, per tensor, axis or block (``sub``,
    ``mul``)."""
    x = ctx.tensor(ctx.get(0), ctx.input_name(0))
    shape = tuple(ctx.p.shapes[x])
    axis, block = int(ctx.attr("axis", 1)), int(ctx.attr("block_size", 0))
    p = ctx.p
    y = x
    if ctx.has(2):
        zp = _quant_param(ctx, 2, shape, axis, block)
        y = p.elementwise(ctx.sub("zero"), "sub", x, zp, out=ctx.out(suffix="centred"))
    scale = _quant_param(ctx, 1, shape, axis, block)
    return [p.elementwise(ctx.sub(), "mul", y, scale, out=ctx.out())]


@_handles("QuantizeLinear")
def _quantize(ctx):
    """QuantizeLinear: x / scale rounded half to even (``div``, ``round``), plus the zero
    point, saturated to the integer type's range (``clip``); integers carried as float32."""
    x = ctx.tensor(ctx.get(0), ctx.input_name(0))
    shape = tuple(ctx.p.shapes[x])
    axis, block = int(ctx.attr("axis", 1)), int(ctx.attr("block_size", 0))
    if ctx.has(2):
        zv = ctx.get(2)
        to = np.dtype(zv.dtype if isinstance(zv, Const) else
                      ctx.elem_types.get(ctx.node.input[2], np.uint8))
    else:
        to = np.dtype(_DTYPES.get(ctx.attr("output_dtype", 2), np.uint8))
    if to not in _QRANGE:
        raise _Unsupported(f"quantizing to {to} is not supported")
    p = ctx.p
    scale = _quant_param(ctx, 1, shape, axis, block)
    q = p.elementwise(ctx.sub("div"), "div", x, scale, out=ctx.out(suffix="scaled"))
    q = p.elementwise(ctx.sub("round"), "round", q, out=ctx.out(suffix="rounded"))
    if ctx.has(2):
        q = p.elementwise(ctx.sub("zero"), "add", q, _quant_param(ctx, 2, shape, axis, block),
                          out=ctx.out(suffix="shifted"))
    lo, hi = _QRANGE[to]
    out = p.elementwise(ctx.sub(), "clip", q, params=(float(lo), float(hi)), out=ctx.out())
    ctx.dtypes[out] = to
    return [out]


@_handles("DynamicQuantizeLinear")
def _dynamic_quantize(ctx):
    """DynamicQuantizeLinear: scale = (max(x, 0) - min(x, 0)) / 255 over the tensor
    (``reduce`` max and min), zero point = clip(round(-min / scale), 0, 255), y = clip(round(x /
    scale) + zero point, 0, 255); outputs y, scale, zero point."""
    x = ctx.tensor(ctx.get(0), ctx.input_name(0))
    p = ctx.p

    def ew(tag, kind, *args, **kw):
        return p.elementwise(ctx.sub(tag), kind, *args, out=ctx.out(suffix=tag), **kw)
    hi = p.reduce(ctx.sub("max"), "max", x, keepdims=False, out=ctx.out(suffix="max"))
    lo = p.reduce(ctx.sub("min"), "min", x, keepdims=False, out=ctx.out(suffix="min"))
    hi = ew("hi", "relu", hi)
    lo = ew("lo", "scale", ew("neglo", "relu", ew("neg", "neg", lo)), const=-1.0)
    scale = p.elementwise(ctx.sub("scale"), "scale", ew("range", "sub", hi, lo),
                          const=1.0 / 255.0, out=ctx.out(1))
    zp = ew("zp.div", "div", ew("zp.neg", "neg", lo), scale)
    zp = p.elementwise(ctx.sub("zp"), "clip", ew("zp.round", "round", zp),
                       params=(0.0, 255.0), out=ctx.out(2))
    q = ew("q.round", "round", ew("q.div", "div", x, scale))
    y = p.elementwise(ctx.sub(), "clip", ew("q.add", "add", q, zp), params=(0.0, 255.0),
                      out=ctx.out(0))
    for t in (y, zp):
        ctx.dtypes[t] = np.dtype(np.uint8)
    return [y, scale, zp]


def _einsum_terms(eq: str, ranks: list[int]) -> tuple[list[str], str]:
    """Return (each operand's index letters, the output's) of an einsum equation, its
    ellipses spelt out as capital letters (right-aligned, broadcast dims shared) and the
    implicit output (the letters used once, in alphabetical order) made explicit."""
    eq = eq.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise _Unsupported(f"equation {eq!r} names {len(terms)} operands, the node has "
                           f"{len(ranks)}")
    ell = max((r - len(t.replace("...", "")) for t, r in zip(terms, ranks) if "..." in t),
              default=0)
    caps = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:ell]
    out_terms = []
    for t, r in zip(terms, ranks):
        if "..." in t:
            n = r - len(t.replace("...", ""))
            t = t.replace("...", caps[ell - n:])
        if len(t) != r:
            raise _Unsupported(f"term {t!r} does not fit an operand of rank {r}")
        out_terms.append(t)
    if arrow:
        out = rhs.replace("...", caps)
    else:
        counts = {c: "".join(out_terms).count(c) for c in "".join(out_terms)}
        out = caps + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in caps))
    return out_terms, out


@_handles("Einsum")
def _einsum(ctx):
    """Einsum of one or two operands (no index repeated within an operand): indices summed
    away in one operand only are a ``reduce`` first; two operands are then one batched
    ``matmul`` on the array (batch indices, the left's free ones x the contracted ones, the
    contracted x the right's free ones) between free permutes and reshapes."""
    p = ctx.p
    n_in = len(ctx.node.input)
    if n_in not in (1, 2):
        raise _Unsupported(f"Einsum of {n_in} operands (supported: 1 or 2)")
    xs = [ctx.tensor(ctx.get(i), ctx.input_name(i)) for i in range(n_in)]
    eq = ctx.attr("equation")
    eq = eq.decode() if isinstance(eq, bytes) else eq
    terms, out = _einsum_terms(eq, [len(p.shapes[x]) for x in xs])
    if any(len(set(t)) != len(t) for t in terms) or len(set(out)) != len(out):
        raise _Unsupported(f"a repeated index in {eq!r} (a diagonal) is not supported")
    size = {}
    for t, x in zip(terms, xs):
        for c, s_ in zip(t, p.shapes[x]):
            if size.setdefault(c, s_) != s_:
                raise _Unsupported(f"index {c} has sizes {size[c]} and {s_} (broadcast)")
    other = [set("".join(terms[:k] + terms[k + 1:])) for k in range(n_in)]

    def drop(k, x, t):  # sum away indices no other operand and not the output uses
        gone = [i for i, c in enumerate(t) if c not in out and c not in other[k]]
        if not gone:
            return x, t
        x = p.reduce(ctx.sub(f"sum{k}"), "sum", x, axis=tuple(gone), keepdims=False,
                     out=ctx.out(suffix=f"sum{k}"))
        return x, "".join(c for c in t if c not in [t[i] for i in gone]) or ""
    xs_terms = [drop(k, x, t) for k, (x, t) in enumerate(zip(xs, terms))]

    def arrange(x, t, order, tag):
        if t == order or not t:
            return x
        return p.permute(ctx.sub(tag), x, tuple(t.index(c) for c in order),
                         out=ctx.out(suffix=tag))
    final = tuple(size[c] for c in out) or (1,)
    if n_in == 1:
        x, t = xs_terms[0]
        if not t:
            return [p.reshape(ctx.sub(), x, final, out=ctx.out())]
        y = arrange(x, t, out, "order")
        return [y if y != xs[0] else p.elementwise(ctx.sub(), "scale", y, const=1.0,
                                                   out=ctx.out())]
    (a, ta), (b, tb) = xs_terms
    batch = [c for c in out if c in ta and c in tb]
    contract = [c for c in ta if c in tb and c not in out]
    fa = [c for c in ta if c not in batch and c not in contract]
    fb = [c for c in tb if c not in batch and c not in contract]
    prod = (lambda cs: math.prod(size[c] for c in cs))
    a = arrange(a, ta, "".join(batch + fa + contract), "a.order")
    b = arrange(b, tb, "".join(batch + contract + fb), "b.order")
    a = p.reshape(ctx.sub("a.3d"), a, (prod(batch), prod(fa), prod(contract)),
                  out=ctx.out(suffix="a3"))
    b = p.reshape(ctx.sub("b.3d"), b, (prod(batch), prod(contract), prod(fb)),
                  out=ctx.out(suffix="b3"))
    y = p.matmul(ctx.sub("matmul"), a, b, out=ctx.out(suffix="mm"))
    got = "".join(batch + fa + fb)
    y = p.reshape(ctx.sub("unflat"), y, tuple(size[c] for c in got) or (1,),
                  out=ctx.out(suffix="unflat"))
    if got == out:
        return [p.reshape(ctx.sub(), y, final, out=ctx.out())] if p.shapes[y] != final \
            else [y]
    return [p.permute(ctx.sub(), y, tuple(got.index(c) for c in out), out=ctx.out())]


@_handles("CenterCropPad")
def _center_crop_pad(ctx):
    """CenterCropPad: each named axis cropped to its centre (a free slice, the odd element
    off the end) or padded with zeros around it (the ``pad`` op, the odd element at the
    end)."""
    x = ctx.tensor(ctx.get(0), ctx.input_name(0))
    target = [int(v) for v in ctx.const(1, "shape").reshape(-1)]
    src = tuple(ctx.p.shapes[x])
    nd = len(src)
    axes = [int(a) % nd for a in ctx.attr("axes", list(range(nd)))]
    if len(axes) != len(target):
        raise _Unsupported(f"shape {target} does not fit axes {axes}")
    p = ctx.p
    y = x
    pads = [(0, 0)] * nd
    for a, t in zip(axes, target):
        n = p.shapes[y][a]
        if t < n:
            lo = (n - t) // 2
            y = p.slice(ctx.sub(f"crop{a}"), y, a, lo, lo + t, out=ctx.out(suffix=f"crop{a}"))
        elif t > n:
            pads[a] = ((t - n) // 2, t - n - (t - n) // 2)
    if any(b or e for b, e in pads):
        y = p.vector(ctx.sub("pad"), "pad", y, pads=tuple(pads), mode="constant", value=0.0,
                     out=ctx.out(suffix="padded"))
    if y == x:
        return [p.elementwise(ctx.sub(), "scale", x, const=1.0, out=ctx.out())]
    return [p.reshape(ctx.sub(), y, tuple(p.shapes[y]), out=ctx.out())]


@_handles("Col2Im")
def _col2im_op(ctx):
    """Col2Im (2-D blocks): the columns (N, C*kh*kw, L) laid out as the ``col2im`` vector op
    reads them (a permute and a free reshape), then ``col2im`` adds each block back into the
    image (N, C, H, W)."""
    x = ctx.tensor(ctx.get(0), ctx.input_name(0))
    image = [int(v) for v in ctx.const(1, "image_shape").reshape(-1)]
    block = [int(v) for v in ctx.const(2, "block_shape").reshape(-1)]
    if len(image) != 2 or len(block) != 2:
        raise _Unsupported("only 2-D images are supported")
    pads = [int(v) for v in ctx.attr("pads", [0, 0, 0, 0])]
    if pads[:2] != pads[2:]:
        raise _Unsupported(f"asymmetric pads {pads} are not supported")
    nb, ckk, L = ctx.p.shapes[x]
    c = ckk // (block[0] * block[1])
    p = ctx.p
    t = p.permute(ctx.sub("rows"), x, (0, 2, 1), out=ctx.out(suffix="rows"))
    t = p.reshape(ctx.sub("cols"), t, (1, nb * L, ckk), out=ctx.out(suffix="cols"))
    return [p.vector(ctx.sub(), "col2im", t, shape=(nb, c, image[0], image[1]),
                     kernel=tuple(block), stride=tuple(ctx.attr("strides", [1, 1])),
                     padding=tuple(pads[:2]), dilation=tuple(ctx.attr("dilations", [1, 1])),
                     groups=1, out=ctx.out())]


# -- layout ops ---------------------------------------------------------------------------

def _absorb_into_reduce(ctx, x: str, target: tuple[int, ...]) -> str | None:
    """A reshape right after a keepdims mean (GlobalAveragePool + Flatten, ReduceMean + view)
    that only drops the reduced size-1 axes: re-emit the reduction without keepdims, as the zoo
    writes it, and return its output (None when the pattern does not apply)."""
    p = ctx.p
    if not p.ops or p.ops[-1].output != x or ctx.uses.get(x, 0) != 1:
        return None
    op = p.ops[-1]
    if not isinstance(op, Reduce) or not op.keepdims:
        return None
    src = p.shapes[op.inputs[0]]
    axes = range(len(src)) if op.axis is None else \
        (op.axis if isinstance(op.axis, tuple) else (op.axis,))
    dropped = tuple(s for i, s in enumerate(src) if i not in axes) or (1,)
    if dropped != tuple(target):
        return None
    p.ops.pop()
    p._op_names.discard(op.name)
    del p.shapes[x]
    return p.reduce(op.name, op.kind, op.inputs[0], axis=op.axis, keepdims=False, out=x)


def _reshape_to(ctx, x, target: tuple[int, ...]):
    if isinstance(x, _View):
        return x.then("reshape", tuple(target), ctx.op_name)
    if isinstance(x, Const):
        return _fold([x.value], lambda a: a.reshape(target)) if x.size <= _MAX_FOLD_ELEMENTS \
            else Const(thunk=lambda: x.value.reshape(target), shape=target, dtype=x.dtype)
    if tuple(ctx.shape(x)) == tuple(target):
        return x
    absorbed = _absorb_into_reduce(ctx, x, target)
    if absorbed is not None:
        return absorbed
    return ctx.p.reshape(ctx.sub(), x, tuple(target), out=ctx.out())


@_handles("Reshape")
def _reshape(ctx):
    x = ctx.get(0)
    src = ctx.shape(x)
    target = [int(v) for v in ctx.const(1, "the target shape").reshape(-1)]
    if not ctx.attr("allowzero", 0):
        target = [src[i] if v == 0 else v for i, v in enumerate(target)]
    if -1 in target:
        rest = math.prod(v for v in target if v != -1)
        target[target.index(-1)] = math.prod(src) // rest if rest else 0
    if math.prod(target) != math.prod(src):
        raise _Unsupported(f"cannot reshape {src} into {tuple(target)}")
    return [_reshape_to(ctx, x, tuple(target))]


@_handles("Flatten")
def _flatten(ctx):
    x = ctx.get(0)
    src = ctx.shape(x)
    axis = int(ctx.attr("axis", 1))
    axis = axis + len(src) if axis < 0 else axis  # ONNX: a negative axis counts from the back
    return [_reshape_to(ctx, x, (math.prod(src[:axis]), math.prod(src[axis:])))]


def _axes_arg(ctx, i: int, attr: str = "axes"):
    if ctx.has(i):
        return [int(a) for a in ctx.const(i, "axes").reshape(-1)]
    v = ctx.attr(attr, None)
    return None if v is None else [int(a) for a in v]


@_handles("Squeeze")
def _squeeze(ctx):
    x = ctx.get(0)
    src = ctx.shape(x)
    axes = _axes_arg(ctx, 1)
    axes = [i for i, s in enumerate(src) if s == 1] if axes is None else \
        [a % len(src) for a in axes]
    if any(src[a] != 1 for a in axes):
        raise _Unsupported(f"cannot squeeze axes {axes} of {src}")
    target = tuple(s for i, s in enumerate(src) if i not in axes)
    if isinstance(x, Const):
        return [_fold([x.value], lambda a: a.reshape(target))]
    return [_reshape_to(ctx, x, target or (1,))]


_VIEW_AWARE = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Shape", "Size",
               "Identity", "LSTM"}


@_handles("Unsqueeze")
def _unsqueeze(ctx):
    x = ctx.get(0)
    src = list(ctx.shape(x))
    axes = _axes_arg(ctx, 1) or []
    nd = len(src) + len(axes)
    for a in sorted(a % nd for a in axes):
        src.insert(a, 1)
    return [_reshape_to(ctx, x, tuple(src))]


@_handles("Transpose")
def _transpose(ctx):
    x = ctx.get(0)
    nd = len(ctx.shape(x))
    perm = tuple(int(v) for v in ctx.attr("perm", list(range(nd))[::-1]))
    if isinstance(x, _View):
        return [x.then("permute", perm, ctx.op_name)]
    if isinstance(x, Const):
        shape = tuple(x.shape[i] for i in perm)
        return [Const(thunk=lambda: np.ascontiguousarray(np.transpose(x.value, perm)),
                      shape=shape, dtype=x.dtype)]
    if perm == tuple(range(nd)):
        return [x]
    return [ctx.p.permute(ctx.sub(), x, perm, out=ctx.out())]


@_handles("Concat")
def _concat(ctx):
    vals = [ctx.get(i) for i in range(len(ctx.node.input))]
    axis = int(ctx.attr("axis"))
    if all(isinstance(v, Const) for v in vals):
        return [_fold([v.value for v in vals], lambda *a: np.concatenate(a, axis=axis))]
    ts = [ctx.tensor(v, ctx.input_name(i)) for i, v in enumerate(vals)
          if math.prod(ctx.shape(v))]
    if len(ts) == 1:
        return [ts[0]]
    return [ctx.p.vector(ctx.sub(), "concat", *ts, out=ctx.out(), axis=axis)]


@_handles("Split")
def _split(ctx):
    x = ctx.get(0)
    src = ctx.shape(x)
    axis = int(ctx.attr("axis", 0)) % len(src)
    n_out = len(ctx.node.output)
    if ctx.has(1):
        sizes = [int(v) for v in ctx.const(1, "split sizes").reshape(-1)]
    elif ctx.attr("split") is not None:
        sizes = [int(v) for v in ctx.attr("split")]
    else:
        n = int(ctx.attr("num_outputs", n_out))
        chunk = -(-src[axis] // n)
        sizes = [min(chunk, src[axis] - i * chunk) for i in range(n)]
    if isinstance(x, Const):
        cuts = np.cumsum(sizes)[:-1]
        return [_fold([part], lambda a: a) for part in np.split(x.value, cuts, axis=axis)]
    outs, start = [], 0
    for i, s in enumerate(sizes):
        if s == 0:  # an empty piece: a constant of no elements (Concat drops it)
            outs.append(Const(np.zeros(tuple(0 if a == axis else d for a, d in enumerate(src)),
                                       np.float32)))
            continue
        outs.append(ctx.p.slice(ctx.sub(str(i)), x, axis, start, start + s, out=ctx.out(i)))
        start += s
    return outs


@_handles("SplitToSequence")
def _split_to_sequence(ctx):
    x = ctx.get(0)
    src = ctx.shape(x)
    axis = int(ctx.attr("axis", 0)) % len(src)
    if not ctx.has(1) or isinstance(x, Const):
        raise _Unsupported("supported with data input and constant split sizes only")
    sizes = ctx.const(1, "split sizes").reshape(-1).astype(int).tolist()
    if len(sizes) == 1:  # one chunk size: equal pieces, the last one shorter
        chunk = sizes[0]
        sizes = [min(chunk, src[axis] - i) for i in range(0, src[axis], chunk)]
    if not ctx.attr("keepdims", 1) and any(s != 1 for s in sizes):
        raise _Unsupported("keepdims=0 needs pieces of size 1")
    outs, start = [], 0
    for i, s in enumerate(sizes):
        outs.append(ctx.p.slice(ctx.sub(str(i)), x, axis, start, start + s,
                                out=ctx.out(suffix=str(i))))
        start += s
    return [_Sequence(outs)]


@_handles("SequenceAt")
def _sequence_at(ctx):
    seq = ctx.get(0)
    if not isinstance(seq, _Sequence):
        raise _Unsupported("input 0 must be a sequence made by SplitToSequence")
    i = int(ctx.const(1, "position").reshape(-1)[0])
    return [seq.items[i]]


@_handles("Slice")
def _slice(ctx):
    x = ctx.get(0)
    src = ctx.shape(x)
    starts = ctx.const(1, "starts").reshape(-1).tolist()
    ends = ctx.const(2, "ends").reshape(-1).tolist()
    axes = _axes_arg(ctx, 3) if ctx.has(3) else list(range(len(starts)))
    steps = ctx.const(4, "steps").reshape(-1).tolist() if ctx.has(4) else [1] * len(starts)
    if isinstance(x, Const):
        idx = [slice(None)] * len(src)
        for a, s0, e0, st in zip(axes, starts, ends, steps):
            idx[a % len(src)] = slice(int(s0), int(e0), int(st))
        return [_fold([x.value], lambda a: a[tuple(idx)])]
    y = x
    for a, s0, e0, st in zip(axes, starts, ends, steps):
        a = a % len(src)
        if st != 1:  # a strided or reversed slice picks fixed positions: a gather
            picks = np.arange(*slice(int(s0), int(e0), int(st)).indices(src[a]))
            if picks.size == 0:
                raise _Unsupported(f"an empty Slice [{s0}:{e0}:{st}] of axis {a} is not "
                                   "supported")
            y = _general_gather(ctx, y, Const(picks), a)
            continue
        lo, hi, _ = slice(int(s0), int(e0)).indices(src[a])
        if lo == 0 and hi == src[a]:
            continue
        if hi <= lo:
            raise _Unsupported(f"an empty Slice [{s0}:{e0}] of axis {a} is not supported")
        y = ctx.p.slice(ctx.sub(f"axis{a}") if y != x else ctx.sub(), y, a, lo, hi,
                        out=ctx.out(suffix=f"axis{a}") if y != x else ctx.out())
    return [y]


@_handles("Gather")
def _gather(ctx):
    data, idx = ctx.get(0), ctx.get(1)
    axis = int(ctx.attr("axis", 0))
    if isinstance(data, Const) and isinstance(idx, Const):
        return [_fold([data.value, idx.value], lambda d, i: np.take(d, i, axis=axis))]
    if isinstance(idx, Const):  # picking fixed positions of data: a slice (and a reshape)
        src = ctx.shape(data)
        ax = axis % len(src)
        flat = idx.value.reshape(-1).astype(np.int64)
        bad = flat[(flat < -src[ax]) | (flat >= src[ax])]
        if bad.size:
            raise _Unsupported(f"Gather index {int(bad[0])} is out of range for axis {ax} of "
                               f"size {src[ax]}")
        flat = flat % src[ax]  # a negative index counts from the end (ONNX), once
        if flat.size == 0 or np.any(np.diff(flat) != 1):  # not one slice: a gather
            return [_general_gather(ctx, data, idx, ax)]
        lo, hi = int(flat[0]), int(flat[-1]) + 1
        y = data if (lo, hi) == (0, src[ax]) else ctx.p.slice(ctx.sub(), data, ax, lo, hi,
                                                              out=ctx.out(suffix="slice"))
        target = src[:ax] + idx.shape + src[ax + 1:]
        if tuple(target) == ctx.shape(y):
            return [y]
        return [ctx.p.reshape(ctx.sub("reshape"), y, tuple(target) or (1,), out=ctx.out())]
    if not isinstance(data, Const) or axis % len(ctx.shape(data)) != 0 or len(data.shape) != 2:
        return [_general_gather(ctx, data, idx, axis % len(ctx.shape(data)))]
    ctx.id_bounds.setdefault(idx, data.shape[0])
    ctx.id_bounds[idx] = min(ctx.id_bounds[idx], data.shape[0])
    return [ctx.p.vector(ctx.sub(), "gather", ctx.tensor(data, ctx.input_name(0)), idx,
                         out=ctx.out())]


def _general_gather(ctx, data, idx, ax: int) -> str:
    """Gather along axis ``ax`` of any table (data or constant) by any ids (data, or constant
    positions): the table's axis moved to the front (a permute, when ax > 0) and flattened to
    rows (V, rest), the ``gather`` vector op, then the result put in ONNX's order
    pre + ids.shape + post."""
    p = ctx.p
    src = tuple(ctx.shape(data))
    pre, post = src[:ax], src[ax + 1:]
    t = ctx.tensor(data, ctx.input_name(0))
    if ax:
        t = p.permute(ctx.sub("front"), t, (ax,) + tuple(range(ax)) +
                      tuple(range(ax + 1, len(src))), out=ctx.out(suffix="front"))
    rest = math.prod(pre) * math.prod(post)
    table = p.reshape(ctx.sub("rows"), t, (src[ax], rest), out=ctx.out(suffix="rows"))
    if isinstance(idx, Const):
        flat = idx.value.astype(np.int64)
        if flat.size and (flat.min() < -src[ax] or flat.max() >= src[ax]):
            raise _Unsupported(f"Gather index out of range for axis {ax} of size {src[ax]}")
        fixed = np.where(flat < 0, flat + src[ax], flat).reshape(idx.shape or (1,))
        ids = ctx.tensor(Const(fixed), ctx.input_name(1))
        ids_shape = tuple(idx.shape)
    else:
        ids, ids_shape = idx, tuple(ctx.shape(idx))
        ctx.id_bounds[idx] = min(ctx.id_bounds.get(idx, src[ax]), src[ax])
    g = p.vector(ctx.sub("gather"), "gather", table, ids, out=ctx.out(suffix="gather"))
    final = pre + ids_shape + post
    if not pre:
        return p.reshape(ctx.sub(), g, final or (1,), out=ctx.out())
    g = p.reshape(ctx.sub("unrows"), g, ids_shape + pre + post, out=ctx.out(suffix="unrows"))
    k, q = len(ids_shape), len(pre)
    perm = tuple(range(k, k + q)) + tuple(range(k)) + tuple(range(k + q, k + q + len(post)))
    return p.permute(ctx.sub(), g, perm, out=ctx.out())


@_handles("GatherElements")
def _gather_elements(ctx):
    data, idx = ctx.get(0), ctx.get(1)
    nd = len(ctx.shape(data)) if not isinstance(data, Const) else len(data.shape)
    axis = int(ctx.attr("axis", 0))
    if not -nd <= axis < nd:
        raise _Unsupported(f"GatherElements axis {axis} is out of range for rank {nd}")
    if isinstance(data, Const) and isinstance(idx, Const):
        try:
            return [_fold([data.value, idx.value],
                          lambda d, i: gather_elements_values(d, i, axis % nd))]
        except (IndexError, ValueError) as exc:
            raise _Unsupported(f"GatherElements: {exc}") from None
    if isinstance(idx, Const):
        idx = ctx.tensor(idx, ctx.input_name(1))
    if isinstance(data, Const):
        data = ctx.tensor(data, ctx.input_name(0))
    return [ctx.p.vector(ctx.sub(), "gather_elements", data, idx, axis=axis % nd,
                         out=ctx.out())]


@_handles("Tile")
def _tile_op(ctx):
    """Tile: constants fold; data is a free reshape (a size-1 axis before each axis), the
    ``broadcast`` copy to the repeats, and a free reshape."""
    x = ctx.get(0)
    reps = tuple(int(r) for r in ctx.const(1, "repeats").reshape(-1))
    if isinstance(x, Const):
        return [_fold([x.value], lambda a: _tile(a, reps))]
    src = tuple(ctx.shape(x))
    if len(reps) != len(src) or any(r < 1 for r in reps):
        raise _Unsupported(f"repeats {list(reps)} must be one positive count per axis of {src}")
    if all(r == 1 for r in reps):
        return [x]
    p = ctx.p
    split = tuple(v for s in src for v in (1, s))
    t = p.reshape(ctx.sub("split"), x, split, out=ctx.out(suffix="split"))
    t = p.vector(ctx.sub("broadcast"), "broadcast", t,
                 shape=tuple(v for r, s in zip(reps, src) for v in (r, s)),
                 out=ctx.out(suffix="tiled"))
    return [p.reshape(ctx.sub(), t, tuple(r * s for r, s in zip(reps, src)), out=ctx.out())]


@_handles("Pad")
def _pad(ctx):
    """Pad (constant, edge, reflect, wrap) of data: the ``pad`` vector op (a copy)."""
    x = ctx.get(0)
    nd = len(ctx.shape(x))
    mode = ctx.attr("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if ctx.opset < 11:
        pads = [int(v) for v in ctx.attr("pads")]
        value = float(ctx.attr("value", 0.0))
    else:
        pads = [int(v) for v in ctx.const(1, "pads").reshape(-1)]
        value = _scalar(ctx.get(2)) if ctx.has(2) else 0.0
        if ctx.has(2) and value is None:
            raise _Unsupported("constant_value must be a scalar constant")
    axes = _axes_arg(ctx, 3) if ctx.opset >= 18 and ctx.has(3) else list(range(nd))
    axes = [a % nd for a in axes]
    if len(pads) != 2 * len(axes):
        raise _Unsupported(f"{len(pads)} pads for {len(axes)} axes")
    full = [(0, 0)] * nd
    for k, a in enumerate(axes):
        full[a] = (pads[k], pads[k + len(axes)])
    if any(b < 0 or e < 0 for b, e in full):
        raise _Unsupported(f"negative pads {pads} (a crop) are not supported")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise _Unsupported(f"Pad mode {mode!r}")
    if isinstance(x, Const):
        return [_fold([x.value], lambda a: pad_values(a, full, mode, value))]
    if all(p == (0, 0) for p in full):
        return [x]
    return [ctx.p.vector(ctx.sub(), "pad", x, out=ctx.out(), pads=tuple(full), mode=mode,
                         value=value)]


@_handles("Expand")
def _expand(ctx):
    x = ctx.get(0)
    shape = [int(v) for v in ctx.const(1, "shape").reshape(-1)]
    target = tuple(np.broadcast_shapes(ctx.shape(x), tuple(shape)))
    if target == tuple(ctx.shape(x)):
        return [x]
    if isinstance(x, Const) and (x.size == 1 or not np.issubdtype(x.dtype, np.floating)):
        # a fill value (the exporter's zero bias), shapes, masks: folded
        return [Const(thunk=lambda: np.broadcast_to(x.value, target).copy(), shape=target,
                      dtype=x.dtype)]
    # expanding a weight (the class token) copies it: the zoo's broadcast, a move
    return [ctx.p.vector(ctx.sub(), "broadcast", ctx.tensor(x, ctx.input_name(0)),
                         out=ctx.out(), shape=target)]


# --------------------------------------------------------------------------- driver

def _static_shape(onnx, vtype) -> tuple | None:
    """Return a value's static shape from its type (None when unknown or symbolic)."""
    if not vtype.HasField("tensor_type") or not vtype.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in vtype.tensor_type.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def _load(path: str):
    """Return the ModelProto of ``path`` without its external data (read lazily), after the
    input boundary's checks (a regular file within the ONNX size cap) and the confinement of
    every external data file to the model's folder."""
    from ..io_limits import check_regular
    onnx = _onnx()
    p = Path(path)
    where = f"{path}:1"
    check_regular(path, "onnx", WorkloadError)
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, truncated file
        raise WorkloadError(where, "", f"not a readable ONNX model ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise WorkloadError(where, "", "not an ONNX model (no graph)")
    _check_external_data(model, p)
    return model


def _attribute_tensors(graph, prefix: str = ""):
    """Yield (label, TensorProto) of every tensor held by a node attribute (Constant /
    ConstantOfShape ``value``, sparse values, tensors in subgraphs), recursively."""
    for node in graph.node:
        label = f"{prefix}node {node.name or node.op_type}"
        for a in node.attribute:
            if a.HasField("t"):
                yield f"{label} attribute {a.name}", a.t
            for t in a.tensors:
                yield f"{label} attribute {a.name}", t
            if a.HasField("sparse_tensor"):
                yield f"{label} attribute {a.name}", a.sparse_tensor.values
            if a.HasField("g"):
                yield from _attribute_tensors(a.g, f"{label}/")
            for g in a.graphs:
                yield from _attribute_tensors(g, f"{label}/")


def _check_external_data(model, path: Path) -> None:
    """Raise WorkloadError when the external data file of an initializer or of a tensor
    attribute is not a regular file inside the model's folder (an absolute path, ``..``, a
    symlink out, a NUL byte, a location over the length limit), is over the size cap, or is
    shorter than the tensor it should hold. Attribute tensors' data is read now (bounded) into
    the model, so nothing later resolves their location against the current directory."""
    from ..io_limits import check_regular, confine, open_regular
    base = path.parent
    sizes: dict[str, int] = {}
    where = f"{path}:1"
    tensors = [(f"initializer {t.name}", t, False) for t in model.graph.initializer]
    tensors += [(label, t, True) for label, t in _attribute_tensors(model.graph)]
    for f in model.functions:
        tensors += [(f"function {f.name}: {label}", t, True)
                    for label, t in _attribute_tensors(f)]
    for label, t, inline in tensors:
        if t.data_location != 1:  # TensorProto.EXTERNAL
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        f = confine(base, loc, WorkloadError, where, label)
        if loc not in sizes:
            if not f.exists():
                raise WorkloadError(where, label, f"external data file {loc} is missing")
            sizes[loc] = check_regular(f, "onnx_data", WorkloadError, label, line=False)
        try:
            offset, length = int(info.get("offset", 0) or 0), int(info.get("length", 0) or 0)
        except ValueError:
            offset = length = -1
        if offset < 0 or length < 0:
            raise WorkloadError(where, label, f"bad external_data offset/length "
                                f"{info.get('offset')!r}/{info.get('length')!r} (need integers "
                                ">= 0)")
        end = offset + length
        if end > sizes[loc]:
            raise WorkloadError(where, label, f"external data file {loc} is "
                                f"truncated ({sizes[loc]:,} bytes, the tensor ends at {end:,})")
        if inline:
            if "length" not in info:
                end = sizes[loc]
            if end - offset > MAX_ATTRIBUTE_BYTES:
                raise WorkloadError(where, label, f"external data of {end - offset:,} bytes is "
                                    f"over the limit of {MAX_ATTRIBUTE_BYTES:,} for a tensor "
                                    "attribute")
            fd, _ = open_regular(f, "onnx_data", WorkloadError, label, line=False)
            try:
                raw = os.pread(fd, end - offset, offset)
            finally:
                os.close(fd)
            del t.external_data[:]
            t.data_location = 0  # TensorProto.DEFAULT
            t.raw_data = raw


def _shape_model(model):
    """Return a copy of ``model`` for shape inference: big initializers become typed graph
    inputs (their shapes are all inference needs), so their bytes are never copied."""
    onnx = _onnx()
    g = onnx.GraphProto()
    g.name = model.graph.name
    g.node.extend(model.graph.node)
    g.input.extend(model.graph.input)
    g.output.extend(model.graph.output)
    g.value_info.extend(model.graph.value_info)
    listed = {i.name for i in model.graph.input}
    for t in model.graph.initializer:
        if t.data_location != 1 and math.prod(t.dims) <= 4096:
            g.initializer.append(t)
        elif t.name not in listed:
            g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    light = onnx.helper.make_model(g, opset_imports=list(model.opset_import),
                                   ir_version=model.ir_version)
    light.functions.extend(model.functions)
    return light


def import_onnx(path: str | Path, shapes: dict[str, tuple[int, ...]] | None = None,
                name: str | None = None,
                constants: dict[str, np.ndarray] | None = None) -> ImportedModel:
    """Return the ImportedModel of the ONNX file ``path``. ``shapes`` gives (or overrides)
    graph inputs' shapes, e.g. {"x": (8, 3, 224, 224)}, for symbolic dimensions.
    ``constants`` gives graph inputs known at import (the axes, target shape, pads or repeats
    a model takes as inputs), by name: they fold as initializers do and are not data inputs.
    A scalar graph input is a program tensor of shape (1,). Raises WorkloadError (one line
    naming the file and, for a node, its name and operator)."""
    onnx = _onnx()
    path = str(path)
    model = _load(path)
    graph = model.graph
    shapes = dict(shapes or {})
    constants = dict(constants or {})
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    inits = {t.name: t for t in graph.initializer}
    unknown = set(constants) - {i.name for i in graph.input if i.name not in inits}
    if unknown:
        raise WorkloadError(f"{path}:1", f"constant {sorted(unknown)[0]}", "the model has no "
                            f"input {sorted(unknown)[0]!r}")
    folded = {}
    for inp in graph.input:
        if inp.name in constants:
            tt = inp.type.tensor_type
            dtype = _DTYPES.get(tt.elem_type)
            if dtype is None:
                raise WorkloadError(f"{path}:1", f"input {inp.name}", f"element type "
                                    f"{tt.elem_type} is not supported")
            try:
                value = np.asarray(constants[inp.name])
                if value.dtype.kind not in "biuf":
                    raise TypeError(f"a {value.dtype} array")
                value = value.astype(dtype)
            except (TypeError, ValueError) as exc:
                raise WorkloadError(f"{path}:1", f"constant {inp.name}", f"is not an array of "
                                    f"numbers ({str(exc).splitlines()[0][:80]})") from None
            folded[inp.name] = value
            inits[inp.name] = onnx.numpy_helper.from_array(value, inp.name)
    graph_inputs = [i for i in graph.input if i.name not in inits]
    unknown = set(shapes) - {i.name for i in graph_inputs}
    if unknown:
        raise WorkloadError(f"{path}:1", f"--input {sorted(unknown)[0]}", f"the model has no "
                            f"input {sorted(unknown)[0]!r} (inputs: "
                            f"{', '.join(i.name for i in graph_inputs) or 'none'})")
    data: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    for inp in graph_inputs:
        tt = inp.type.tensor_type
        dtype = _DTYPES.get(tt.elem_type)
        if dtype is None:
            raise WorkloadError(f"{path}:1", f"input {inp.name}", f"element type {tt.elem_type} is "
                                "not supported")
        declared = _declared_dims(tt)
        if inp.name in shapes:
            given = shapes[inp.name]
            if not all(isinstance(g, (int, np.integer)) and 0 < g <= MAX_INPUT_ELEMENTS
                       for g in given) or math.prod(given) > MAX_INPUT_ELEMENTS:
                raise WorkloadError(f"{path}:1", f"--input {inp.name}="
                                    f"{'x'.join(map(str, given))}", f"dimensions must be "
                                    f"positive with at most {MAX_INPUT_ELEMENTS:,} elements")
            if len(given) != len(declared) or any(isinstance(d, int) and d != g
                                                  for d, g in zip(declared, given)):
                raise WorkloadError(f"{path}:1", f"--input {inp.name}="
                                    f"{'x'.join(map(str, given))}",
                                    f"the model declares {inp.name} as "
                                    f"{'x'.join(map(str, declared)) or 'a scalar'}")
            dims = tuple(given)
        elif all(isinstance(d, int) and d > 0 for d in declared) and declared:
            dims = tuple(declared)
        elif tt.HasField("shape") and not declared:  # a scalar: one element
            data[inp.name] = ((1,), np.dtype(dtype))
            continue
        else:
            raise WorkloadError(f"{path}:1", f"input {inp.name}", f"has symbolic or unknown "
                                f"dimensions {'x'.join(map(str, declared)) or '(none)'}; give "
                                f"them with --input {inp.name}=D1xD2x...")
        for d, g in zip(tt.shape.dim, dims):
            d.Clear()
            d.dim_value = int(g)
        data[inp.name] = (dims, np.dtype(dtype))
    if folded:
        keep = [i for i in graph.input if i.name not in folded]
        del graph.input[:]
        graph.input.extend(keep)
        graph.initializer.extend(inits[n] for n in folded)
    inferred = _infer_shapes(onnx, _shape_model(model), path)
    known, elem_types = {}, {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + \
            list(inferred.graph.input):
        s = _static_shape(onnx, vi.type)
        if s is not None:
            known[vi.name] = s
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type in _DTYPES:
            elem_types[vi.name] = np.dtype(_DTYPES[vi.type.tensor_type.elem_type])

    program = Program(name or Path(path).stem)
    ctx = _Ctx(path, program, opset)
    ctx.elem_types = elem_types
    for n, (dims, dtype) in data.items():
        program.input(n, dims)
        ctx.env[n] = n
        ctx.dtypes[n] = dtype
        ctx._names.add(n)
    for t in graph.initializer:
        dtype = _DTYPES.get(t.data_type)
        if dtype is None:
            raise WorkloadError(f"{path}:1", f"initializer {t.name}",
                                f"element type {t.data_type} is "
                                "not supported")
        ctx.env[t.name] = Const(thunk=lambda t=t: _initializer(t, path),
                                shape=tuple(t.dims), dtype=dtype, name=t.name)
        ctx._names.add(t.name)
    for node in graph.node:
        for i in node.input:
            if i:
                ctx.uses[i] = ctx.uses.get(i, 0) + 1
                ctx.consumers.setdefault(i, []).append(node.op_type)
    for o in graph.output:
        ctx.uses[o.name] = ctx.uses.get(o.name, 0) + 1
        ctx.consumers.setdefault(o.name, []).append("graph output")

    for k, node in enumerate(graph.node):
        _lower(ctx, node, k, known)

    outputs = []
    for o in graph.output:
        if isinstance(ctx.env.get(o.name), _View):
            ctx.env[o.name] = ctx.env[o.name].emit(ctx)
        v = ctx.env.get(o.name)
        if not isinstance(v, str) or v in data:
            raise WorkloadError(f"{path}:1", f"output {o.name}", "is a constant or a graph input: "
                                "the model computes nothing on the chip for it")
        outputs.append(v)
    if not program.ops:
        raise WorkloadError(f"{path}:1", "graph", "no node computes anything on the chip")
    program.outputs = list(outputs)
    bounds = {k: v for k, v in ctx.id_bounds.items() if k in data}
    return ImportedModel(program.name, program, ctx.params, data, outputs,
                         [o.name for o in graph.output], bounds)


def _infer_shapes(onnx, light, path: str):
    """Return ``light`` with inferred shapes: strict inference with data propagation (which
    resolves shapes computed by Shape / Gather / Concat chains), or, where data propagation
    fails on a model that strict inference alone accepts (as for some ``torch.onnx.export``
    graphs, BLOOM and Funnel among them), strict inference without it. Raise WorkloadError
    when strict inference fails as well."""
    try:
        return onnx.shape_inference.infer_shapes(light, strict_mode=True, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises InferenceError, RuntimeError, ...
        first = exc
    try:
        return onnx.shape_inference.infer_shapes(light, strict_mode=True, data_prop=False)
    except Exception:  # noqa: BLE001
        msg = " ".join(str(first).split())
        raise WorkloadError(f"{path}:1", "shape inference", f"ONNX shape inference failed: "
                            f"{msg[:300]}") from None


def _declared_dims(tt) -> list:
    """Return a graph input's declared dimensions: sizes, or the symbol (``?`` when
    unnamed) of each dynamic one."""
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in tt.shape.dim]


def declared_inputs(path: str | Path) -> list[Feed]:
    """Return the data inputs the ONNX file ``path`` declares (graph inputs that are not
    initializers) as Feeds: fixed dimensions, None for symbolic ones, the numpy dtype (None
    for an element type the importer does not model: import_onnx refuses it)."""
    graph = _load(str(path)).graph
    inits = {t.name for t in graph.initializer}
    feeds = []
    for inp in graph.input:
        if inp.name in inits:
            continue
        tt = inp.type.tensor_type
        dims = tuple(d if isinstance(d, int) and d > 0 else None for d in _declared_dims(tt))
        dtype = _DTYPES.get(tt.elem_type)
        feeds.append(Feed(inp.name, dims, None if dtype is None else np.dtype(dtype)))
    return feeds


def _initializer(t, path: str) -> np.ndarray:
    """Return an initializer's value (reading its external data file when it has one)."""
    onnx = _onnx()
    try:
        return onnx.numpy_helper.to_array(t, base_dir=str(Path(path).parent))
    except Exception as exc:  # unreadable external data, a bad raw_data length
        raise WorkloadError(f"{path}:1", f"initializer {t.name}", f"cannot read its value "
                            f"({type(exc).__name__}: {exc})") from None


def _op_label(node, k: int) -> str:
    """Return the program op name of node ``k``: its module path and operation when the
    exporter recorded them (dynamo's name scopes ``['', 'h.0', 'h.0.attn', 'linear']``, or
    TorchScript's node name ``/h.0/attn/MatMul``) as ``h0.attn.linear`` (a letters-only module
    name and its index join, so the per-layer table groups ops by block as the zoo's names
    do); else the node's name, or OP_k for an unnamed node."""
    path = leaf = None
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = [str(x) for x in __import__("ast").literal_eval(prop.value) if x]
            except (ValueError, SyntaxError):
                scopes = []
            if scopes:
                path, leaf = (scopes[-2] if len(scopes) > 1 else ""), scopes[-1]
    if path is None and node.name.startswith("/") and node.name.strip("/"):
        parts = node.name.strip("/").split("/")
        path, leaf = ".".join(parts[:-1]), parts[-1]
    if path is None:
        return node.name or f"{node.op_type}_{k}"
    bits = path.split(".") if path else []
    if len(bits) > 1 and bits[0].isalpha() and bits[1].isdigit():
        bits[:2] = [bits[0] + bits[1]]
    return ".".join(bits + [leaf]) if bits else leaf


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def _name_objects(ctx, node, message: str) -> str:
    """Return ``message`` with any Python object repr (``<...Const object at 0x...>``) that
    reached it replaced by the name of the node input it is, else by ``a value``: messages name
    tensors, never Python objects."""
    if "object at 0x" not in message:
        return message
    by_id = {f"{id(ctx.env[i]):x}": i for i in node.input if i in ctx.env}

    def name(m) -> str:
        addr = m.group(0).rsplit("0x", 1)[1].rstrip(">").lower().lstrip("0")
        return f"tensor {by_id[addr]}" if addr in by_id else "a value"
    return _OBJECT_REPR.sub(name, message)


def _lower(ctx: _Ctx, node, k: int, known: dict) -> None:
    op = node.op_type
    label = node.name or f"{op}_{k}"
    ctx.node = node
    ctx.op_name = _op_label(node, k)
    where_field = f"node {label} ({op})"
    where = f"{ctx.path}:{k + 1}"  # the node's position in the graph (1: the first node)
    if node.domain not in ("", "ai.onnx"):
        raise WorkloadError(where, where_field, f"operator {node.domain}::{op} is not "
                            "supported")
    handler = HANDLERS.get(op)
    if handler is None:
        raise WorkloadError(where, where_field, f"operator {op} is not supported (supported: "
                            f"{', '.join(sorted(set(HANDLERS) - FOLD_ONLY))}; folded only "
                            f"when every input is a constant: {', '.join(sorted(FOLD_ONLY))})")
    try:
        if op not in _VIEW_AWARE:
            for i in node.input:
                if isinstance(ctx.env.get(i), _View):
                    ctx.env[i] = ctx.env[i].emit(ctx)
        outs = handler(ctx)
    except _Unsupported as exc:
        raise WorkloadError(where, where_field, _name_objects(ctx, node, str(exc))) from None
    except SimulatorInputError as exc:
        raise WorkloadError(where, where_field, _name_objects(ctx, node, exc.message)) from None
    except (ValueError, IndexError, TypeError, KeyError, ZeroDivisionError, AttributeError,
            OverflowError, RuntimeError) as exc:  # malformed attributes or inputs
        raise WorkloadError(where, where_field, _name_objects(
            ctx, node, f"{type(exc).__name__}: {exc}")) from None
    except MemoryError:  # a fold the size checks missed: the last resort
        raise WorkloadError(where, where_field, "folding it at import needs more memory than "
                            "this machine has") from None
    names = [o for o in node.output]
    if len(outs) < len([o for o in names if o]):
        raise WorkloadError(where, where_field, f"{len(names)} outputs are not supported")
    for o, v in zip(names, outs):
        if not o:
            continue
        ctx.env[o] = v
        if isinstance(v, Const) and v.name is None:
            v.name = o
        if isinstance(v, (_Sequence, _Scaled, _View)):
            continue
        if not isinstance(v, Const):
            ctx.dtypes.setdefault(v, np.dtype(np.float32))
        want = known.get(o)
        got = ctx.shape(v)
        if want is not None and tuple(want) != tuple(got) and \
                not (want == () and tuple(got) == (1,)):
            raise WorkloadError(where, where_field, f"output {o} has shape {tuple(got)} here "
                                f"but ONNX shape inference gives {tuple(want)}")
