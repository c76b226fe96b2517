"""Programs: DAGs of ops over named N-D tensors (DESIGN sections 5 and 8).

Ops run on a unit: ``MatMul`` and ``Conv2d`` on the systolic array, ``Elementwise``, ``Reduce``
and ``VectorOp`` on the vector unit, ``Layout`` ops (reshape, and permutes and slices the
address generators absorb) on no unit at all. Tensors are named; an op may use a tensor once an
earlier op (or the program's inputs) defined it, so the op list is a topological order and the
DAG follows from the names.

Mapping onto the array (DESIGN section 8):

- ``MatMul`` of ``a (..., M, K)`` and a 2-D ``b (K, N)`` is ONE GEMM with M = the product of a's
  leading dims and M (a linear layer over a batch of sequences: M = batch x tokens).
- ``MatMul`` whose operands both carry batch dims (attention's ``Q K^T`` and ``P V``; numpy
  broadcasting of the batch dims) is ``count`` independent GEMMs of (M, N, K), run one after
  another; each loads its own stationary operand and pays its own fill and drain. Packing
  several small GEMMs into one fold (block-diagonal) is not modelled.
- ``Conv2d`` (NCHW input, (F, C/groups, kh, kw) weight; stride, padding, dilation, groups;
  floor output sizes as PyTorch) is lowered by im2col: one GEMM per group with
  M = batch x out_h x out_w, K = C/groups x kh x kw, N = F/groups. The im2col gather is the
  array feeder's address generation and costs nothing beyond the A operand's reads.

Transposed matmul operands (``X^T`` in ``dW = X^T dY``, ``K^T`` in attention) are not
materialised: the array's feeder reads the operand from the buffer in the order the array needs,
which costs the same bytes as a plain read and no extra cycles. A ``Layout`` permute is likewise
free when every consumer (looking through other layout ops) is an array op; otherwise the engine
charges it as data movement on the vector unit (``move`` class: a buffer read and a write per
element). Reshapes and slices (a split's pieces) are always free: an offset and strides in the
reading unit's address generator. Concat and broadcast copy data and are vector ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import WorkloadError
from .vector import ELEMENTWISE, VECTOR_OPS

__all__ = ["Conv2d", "Elementwise", "Layout", "MatMul", "Op", "Program", "Reduce", "Requant",
           "VectorOp", "conv_out_size"]

REDUCTIONS = ("sum", "mean", "max", "min", "prod")

# Largest number of elements of one tensor (keeps counts inside int64 with room to spare).
MAX_ELEMENTS = 1 << 40


def conv_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Return a convolution's output size along one axis, floor((size + 2p - d(k-1) - 1)/s) + 1
    (PyTorch's convention; SCALE-Sim's topologies use a ceiling instead)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class Requant:
    """The integer output step of an int8 array op (TFLite's, gemmlowp's): per output channel
    ``c``, ``q = clamp(MBQM(acc + bias[c], multiplier[c], shift[c]) + zero_point, qmin, qmax)``
    with MBQM TFLite's MultiplyByQuantizedMultiplier (see numerics.requantise_fixed). Tuples of
    length 1 apply to every channel (per-tensor). ``bias`` holds the layer's int32 bias with the
    input zero point's correction folded in (``-z_in * sum_k w[k, c]``); ``multiplier`` is a
    Q31 significand in [2**30, 2**31), ``shift`` a power-of-two exponent. ``rounding`` "fp32"
    is XNNPACK's QS8 output step (LiteRT's default CPU kernels) instead: ``acc + bias`` converted
    to float32, times the float32 ``scale[c]``, rounded to nearest even, ``+ zero_point`` and
    clamped (``multiplier``/``shift`` are then unused)."""

    bias: tuple[int, ...]
    multiplier: tuple[int, ...]
    shift: tuple[int, ...]
    zero_point: int = 0
    qmin: int = -128
    qmax: int = 127
    rounding: str = "double"  # MultiplyByQuantizedMultiplier: "double" (gemmlowp) or "single"
    scale: tuple[float, ...] = ()  # the float32 scales of rounding "fp32"


@dataclass(frozen=True)
class Op:
    """Base of all ops: a name, the unit it runs on, its input and output tensor names."""

    name: str
    inputs: tuple[str, ...]
    output: str

    unit = "?"


@dataclass(frozen=True)
class MatMul(Op):
    """``out = op(a) @ op(b)`` on the array, op = swap of the last two dims when the flag is set."""

    transpose_a: bool = False
    transpose_b: bool = False
    out_scale: float | None = None  # int8 outputs: this op's requantisation multiplier
    requant: Requant | None = None  # int8 outputs: fixed-point requantisation (replaces out_scale)
    unit = "array"


@dataclass(frozen=True)
class Conv2d(Op):
    """A 2-D convolution (NCHW) on the array, lowered by im2col, one GEMM per group."""

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    out_scale: float | None = None  # int8 outputs: this op's requantisation multiplier
    requant: Requant | None = None  # int8 outputs: fixed-point requantisation (replaces out_scale)
    unit = "array"


@dataclass(frozen=True)
class Elementwise(Op):
    """An elementwise op of ``kind`` (see simulator.core.vector.ELEMENTWISE); operands broadcast as in
    numpy; ``const`` and ``params`` are its scalar constants."""

    kind: str = "add"
    const: float = 0.0
    params: tuple[float, ...] = ()
    unit = "vector"

    @property
    def op_class(self) -> str:
        """Return the vector op class that sets the issue interval."""
        return ELEMENTWISE[self.kind][0]


@dataclass(frozen=True)
class Reduce(Op):
    """``kind`` (sum, mean, max, min, prod) over ``axis`` (None: all elements; an int or a tuple of ints).

    ``keepdims`` keeps reduced axes with size 1 (the 2-D default: axis 0 gives a row vector).
    """

    axis: int | tuple[int, ...] | None = None
    kind: str = "sum"
    keepdims: bool = True
    unit = "vector"


@dataclass(frozen=True)
class VectorOp(Op):
    """A composite vector-unit op (softmax, layernorm, pooling, gather, concat, ...); ``attrs``
    holds its settings as sorted (key, value) pairs. See simulator.core.vector.VECTOR_OPS."""

    kind: str = ""
    attrs: tuple[tuple[str, Any], ...] = ()
    unit = "vector"

    def attr(self, key: str, default: Any = None) -> Any:
        """Return the setting ``key`` (or ``default``)."""
        for k, v in self.attrs:
            if k == key:
                return v
        return default


@dataclass(frozen=True)
class Layout(Op):
    """A layout change: ``reshape`` and ``slice`` (always free), ``permute`` (free when only
    array ops consume it, else charged as data movement by the engine)."""

    kind: str = "reshape"
    attrs: tuple[tuple[str, Any], ...] = ()
    unit = "layout"

    def attr(self, key: str, default: Any = None) -> Any:
        """Return the setting ``key`` (or ``default``)."""
        for k, v in self.attrs:
            if k == key:
                return v
        return default


def _pair(v: Any, what: str, minimum: int, fail) -> tuple[int, int]:
    vals = (v, v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else tuple(v)
    if len(vals) != 2 or any(isinstance(x, bool) or not isinstance(x, (int, np.integer))
                             or x < minimum for x in vals):
        raise fail(f"{what} must be an integer >= {minimum} or a pair of them, got {v!r}")
    return int(vals[0]), int(vals[1])


@dataclass
class Program:
    """A named list of ops over named tensors with known shapes (tuples of positive ints).

    ``outputs`` names the tensors the program hands back (written to DRAM when residency is
    modelled); when empty, every tensor no op consumes is an output.
    """

    name: str
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    _op_names: set = field(default_factory=set, repr=False)

    # -- checks -------------------------------------------------------------------------------
    def _fail(self, op: str, message: str) -> WorkloadError:
        return WorkloadError(f"program {self.name}", op, message)

    def _shape(self, tensor: str, op: str) -> tuple[int, ...]:
        if tensor not in self.shapes:
            raise self._fail(op, f"uses tensor {tensor!r} before any op or input defines it")
        return self.shapes[tensor]

    def _define(self, tensor: str, shape: tuple[int, ...], op: str) -> str:
        if tensor in self.shapes:
            raise self._fail(op, f"tensor {tensor!r} is already defined")
        self.shapes[tensor] = tuple(int(s) for s in shape)
        return tensor

    def _check_op_name(self, name: str) -> None:
        if len(self._op_names) != len(self.ops):  # ops appended directly to the list
            self._op_names = {o.name for o in self.ops}
        if name in self._op_names:
            raise self._fail(name, "duplicate op name")

    def _append(self, op: Op) -> str:
        self.ops.append(op)
        self._op_names.add(op.name)
        return op.output

    def _axis(self, axis: int, ndim: int, op: str) -> int:
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or \
                not -ndim <= axis < ndim:
            raise self._fail(op, f"axis {axis!r} is out of range for a tensor of rank {ndim}")
        return int(axis) % ndim

    # -- inputs -------------------------------------------------------------------------------
    def input(self, tensor: str, shape: tuple[int, ...]) -> str:
        """Declare an input tensor of ``shape`` (any rank >= 1, positive sizes); return its name."""
        try:
            dims = tuple(shape)
        except TypeError:
            raise self._fail(tensor, f"input shape must be a tuple of sizes, got {shape!r}") from None
        if not dims or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0
                           for d in dims):
            raise self._fail(tensor, f"input shape must be positive, got {shape}")
        if math.prod(int(d) for d in dims) > MAX_ELEMENTS:
            raise self._fail(tensor, f"input of {math.prod(dims):,} elements is over "
                             f"{MAX_ELEMENTS:,}")
        self._define(tensor, dims, tensor)
        self.inputs.append(tensor)
        return tensor

    # -- array ops ----------------------------------------------------------------------------
    def matmul(self, name: str, a: str, b: str, out: str | None = None, transpose_a: bool = False,
               transpose_b: bool = False, out_scale: float | None = None,
               requant: Requant | None = None) -> str:
        """Append ``out = op(a) @ op(b)`` on the array; return the output tensor's name.

        2-D operands: one GEMM. ``a (..., M, K) @ b (K, N)``: one GEMM over all leading dims.
        Both with batch dims (broadcast as in numpy): one GEMM per batch element.
        ``out_scale``: on a chip with int8 outputs, the multiplier of the int32 accumulators
        before rounding (default: the chip's output.scale). ``requant``: on such a chip, the
        fixed-point output step per output column instead (Requant; TFLite's int8 models).
        """
        self._check_op_name(name)
        out_scale = self._out_scale(out_scale, name)
        sa, sb = self._shape(a, name), self._shape(b, name)
        if len(sa) < 2 or len(sb) < 2:
            raise self._fail(name, f"matmul operands need rank >= 2, got {sa} and {sb}")
        m, ka = (sa[-1], sa[-2]) if transpose_a else (sa[-2], sa[-1])
        kb, n = (sb[-1], sb[-2]) if transpose_b else (sb[-2], sb[-1])
        if ka != kb:
            raise self._fail(name, f"inner dimensions differ: {a}{'^T' if transpose_a else ''} "
                             f"is {m}x{ka}, {b}{'^T' if transpose_b else ''} is {kb}x{n}")
        try:
            batch = np.broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            raise self._fail(name, f"batch dimensions {sa[:-2]} and {sb[:-2]} do not "
                             "broadcast") from None
        self._check_requant(requant, n, name)
        out = out or name
        self._define(out, (*batch, m, n), name)
        return self._append(MatMul(name, (a, b), out, bool(transpose_a), bool(transpose_b),
                                   out_scale, requant))

    def _check_requant(self, rq: Requant | None, channels: int, name: str) -> None:
        """Raise WorkloadError unless ``rq`` is None or a Requant for ``channels`` outputs."""
        if rq is None:
            return
        if not isinstance(rq, Requant):
            raise self._fail(name, f"requant must be a Requant, got {type(rq).__name__}")
        lens = {len(rq.bias), len(rq.multiplier), len(rq.shift)} - {1}
        if lens and lens != {channels}:
            raise self._fail(name, f"requant has {sorted(lens)} channels, the op {channels}")
        if rq.rounding not in ("double", "single", "fp32"):
            raise self._fail(name, f"requant rounding must be double, single or fp32, got "
                             f"{rq.rounding!r}")
        if rq.rounding == "fp32" and (len(rq.scale) not in (1, channels) or not all(
                np.isfinite(v) and v > 0 for v in rq.scale)):
            raise self._fail(name, f"requant rounding fp32 needs 1 or {channels} positive "
                             "finite scales")
        if not rq.qmin <= rq.qmax or any(not 0 <= m < 2 ** 31 for m in rq.multiplier) or \
                any(not -62 <= s <= 31 for s in rq.shift):
            raise self._fail(name, "requant multipliers must lie in [0, 2**31), shifts in "
                             "[-62, 31] and qmin <= qmax")

    def _out_scale(self, scale: float | None, name: str) -> float | None:
        """Return a checked requantisation multiplier (None: the chip's output.scale)."""
        if scale is None:
            return None
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)) \
                or not np.isfinite(scale) or scale <= 0:
            raise self._fail(name, f"out_scale must be a positive finite number, got {scale!r}")
        return float(scale)

    def linear(self, name: str, x: str, w: str, b: str | None = None, out: str | None = None) -> str:
        """Append a linear layer ``x @ w (+ b)``: a matmul on the array (``name.matmul``) and, with
        a bias, a broadcast add on the vector unit (``name.bias``). ``w`` is (in, out)."""
        if b is None:
            return self.matmul(name, x, w, out=out)
        y = self.matmul(f"{name}.matmul", x, w, out=f"{out or name}.mm")
        return self.elementwise(f"{name}.bias", "add", y, b, out=out or name)

    def conv2d(self, name: str, x: str, w: str, stride=1, padding=0, dilation=1, groups: int = 1,
               out: str | None = None, out_scale: float | None = None,
               requant: Requant | None = None) -> str:
        """Append a convolution of ``x (N, C, H, W)`` with ``w (F, C/groups, kh, kw)`` on the
        array; output (N, F, out_h, out_w), floor sizes (see conv_out_size). ``out_scale`` and
        ``requant`` (per filter): as for matmul."""
        self._check_op_name(name)
        out_scale = self._out_scale(out_scale, name)
        sx, sw = self._shape(x, name), self._shape(w, name)

        def fail(msg: str) -> WorkloadError:
            return self._fail(name, msg)
        if len(sx) != 4 or len(sw) != 4:
            raise fail(f"conv2d needs x (N, C, H, W) and w (F, C/groups, kh, kw), got {sx} and {sw}")
        stride = _pair(stride, "stride", 1, fail)
        padding = _pair(padding, "padding", 0, fail)
        dilation = _pair(dilation, "dilation", 1, fail)
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
            raise fail(f"groups must be a positive integer, got {groups!r}")
        nb, c, h, wd = sx
        f, cg, kh, kw = sw
        if c % groups or f % groups:
            raise fail(f"channels {c} and filters {f} must both divide by groups {groups}")
        if cg != c // groups:
            raise fail(f"weight has {cg} input channels per group, the input {c} / {groups}")
        oh = conv_out_size(h, kh, stride[0], padding[0], dilation[0])
        ow = conv_out_size(wd, kw, stride[1], padding[1], dilation[1])
        if oh <= 0 or ow <= 0:
            raise fail(f"filter {kh}x{kw} (dilation {dilation}) is larger than the padded input "
                       f"{h + 2 * padding[0]}x{wd + 2 * padding[1]}")
        self._check_requant(requant, f, name)
        out = out or name
        self._define(out, (nb, f, oh, ow), name)
        return self._append(Conv2d(name, (x, w), out, stride, padding, dilation, int(groups),
                                   out_scale, requant))

    # -- vector ops ---------------------------------------------------------------------------
    def elementwise(self, name: str, kind: str, *args: str, const: float = 0.0,
                    params: tuple[float, ...] = (), out: str | None = None) -> str:
        """Append an elementwise op; operands broadcast against each other as in numpy."""
        self._check_op_name(name)
        if kind not in ELEMENTWISE:
            raise self._fail(name, f"unknown elementwise kind {kind!r} (known: "
                             f"{', '.join(ELEMENTWISE)})")
        n_in = ELEMENTWISE[kind][1]
        if len(args) != n_in:
            raise self._fail(name, f"{kind} takes {n_in} tensors, got {len(args)}")
        shapes = [self._shape(t, name) for t in args]
        try:
            shape = tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise self._fail(name, f"shapes {' and '.join(map(str, shapes))} do not match (they "
                             "must broadcast as in numpy)") from None
        if kind == "clip" and (len(params) != 2 or not params[0] <= params[1]):
            raise self._fail(name, f"clip takes params (lo, hi) with lo <= hi, got {params!r}")
        if kind in ("sgd", "axpy", "relu_grad") and shape != shapes[0]:
            raise self._fail(name, f"shapes {shapes[0]} and {shapes[1]} do not match")
        out = out or name
        self._define(out, shape, name)
        return self._append(Elementwise(name, tuple(args), out, kind, float(const),
                                        tuple(float(p) for p in params)))

    def reduce(self, name: str, kind: str, x: str, axis=None, keepdims: bool = True,
               out: str | None = None) -> str:
        """Append a reduction ``kind`` (sum, mean, max, min, prod) over ``axis`` (None: all; int
        or tuple); return the output tensor's name."""
        self._check_op_name(name)
        shape = self._shape(x, name)
        if kind not in REDUCTIONS:
            raise self._fail(name, f"unknown reduction {kind!r} (known: {', '.join(REDUCTIONS)})")
        if axis is None:
            axes = tuple(range(len(shape)))
        else:
            raw = axis if isinstance(axis, tuple) else (axis,)
            axes = tuple(sorted({self._axis(a, len(shape), name) for a in raw}))
        if keepdims:
            oshape = tuple(1 if i in axes else s for i, s in enumerate(shape))
        else:
            oshape = tuple(s for i, s in enumerate(shape) if i not in axes) or (1,)
        out = out or name
        self._define(out, oshape, name)
        norm = axis if axis is None or not isinstance(axis, tuple) else axes
        if isinstance(norm, (int, np.integer)):
            norm = self._axis(norm, len(shape), name)
        return self._append(Reduce(name, (x,), out, norm, kind, bool(keepdims)))

    def reduce_sum(self, name: str, x: str, axis: int | None = None, out: str | None = None) -> str:
        """Append a sum over ``axis`` (None, 0 or 1 for 2-D tensors) on the vector unit."""
        shape = self._shape(x, name)
        if len(shape) == 2 and axis not in (None, 0, 1):
            self._check_op_name(name)
            raise self._fail(name, f"axis must be None, 0 or 1, got {axis!r}")
        return self.reduce(name, "sum", x, axis, True, out)

    def vector(self, name: str, kind: str, *args: str, out: str | None = None, **attrs: Any) -> str:
        """Append a composite vector op ``kind`` (softmax, layernorm, maxpool2d, gather, concat,
        ...; see simulator.core.vector.VECTOR_OPS) with settings ``attrs``; return its output."""
        self._check_op_name(name)
        if kind not in VECTOR_OPS:
            raise self._fail(name, f"unknown vector op {kind!r} (known: {', '.join(VECTOR_OPS)})")
        shapes = [self._shape(t, name) for t in args]
        spec = VECTOR_OPS[kind]
        try:
            shape, attrs = spec.shape(shapes, dict(attrs))
        except ValueError as exc:
            raise self._fail(name, f"{kind}: {exc}") from None
        out = out or name
        self._define(out, shape, name)
        return self._append(VectorOp(name, tuple(args), out, kind, tuple(sorted(attrs.items()))))

    # -- layout ops ---------------------------------------------------------------------------
    def reshape(self, name: str, x: str, shape: tuple[int, ...], out: str | None = None) -> str:
        """Append a reshape (free: the same bytes in the same order); one size may be -1."""
        self._check_op_name(name)
        src = self._shape(x, name)
        n = math.prod(src)
        dims = list(shape)
        if dims.count(-1) > 1 or any(d == 0 or d < -1 for d in dims):
            raise self._fail(name, f"bad reshape target {tuple(shape)}")
        if -1 in dims:
            rest = math.prod(d for d in dims if d != -1)
            if n % rest:
                raise self._fail(name, f"cannot reshape {src} into {tuple(shape)}")
            dims[dims.index(-1)] = n // rest
        if math.prod(dims) != n:
            raise self._fail(name, f"cannot reshape {src} ({n} elements) into {tuple(dims)}")
        out = out or name
        self._define(out, tuple(dims), name)
        return self._append(Layout(name, (x,), out, "reshape", (("shape", tuple(dims)),)))

    def permute(self, name: str, x: str, perm: tuple[int, ...], out: str | None = None) -> str:
        """Append a permutation of the axes (``transpose``); free when only array ops read it."""
        self._check_op_name(name)
        src = self._shape(x, name)
        perm = tuple(int(p) % len(src) if -len(src) <= p < len(src) else p for p in perm)
        if sorted(perm) != list(range(len(src))):
            raise self._fail(name, f"{tuple(perm)} is not a permutation of the {len(src)} axes")
        out = out or name
        self._define(out, tuple(src[p] for p in perm), name)
        return self._append(Layout(name, (x,), out, "permute", (("perm", perm),)))

    def transpose(self, name: str, x: str, a: int = -2, b: int = -1, out: str | None = None) -> str:
        """Append a swap of axes ``a`` and ``b`` (a permute)."""
        nd = len(self._shape(x, name))
        perm = list(range(nd))
        a, b = self._axis(a, nd, name), self._axis(b, nd, name)
        perm[a], perm[b] = perm[b], perm[a]
        return self.permute(name, x, tuple(perm), out)

    def slice(self, name: str, x: str, axis: int, start: int, stop: int,
              out: str | None = None) -> str:
        """Append ``x[..., start:stop, ...]`` along ``axis`` (one piece of a split)."""
        self._check_op_name(name)
        src = self._shape(x, name)
        ax = self._axis(axis, len(src), name)
        if not 0 <= start < stop <= src[ax]:
            raise self._fail(name, f"slice {start}:{stop} is out of range for size {src[ax]}")
        out = out or name
        shape = list(src)
        shape[ax] = stop - start
        self._define(out, tuple(shape), name)
        return self._append(Layout(name, (x,), out, "slice",
                                   (("axis", ax), ("start", int(start)), ("stop", int(stop)))))

    def split(self, name: str, x: str, sizes: list[int], axis: int = -1) -> list[str]:
        """Append one slice per piece of ``sizes`` along ``axis``; return the pieces' names."""
        src = self._shape(x, name)
        ax = self._axis(axis, len(src), name)
        if sum(sizes) != src[ax] or any(s <= 0 for s in sizes):
            raise self._fail(name, f"split sizes {list(sizes)} do not add up to {src[ax]}")
        outs, start = [], 0
        for i, s in enumerate(sizes):
            outs.append(self.slice(f"{name}.{i}", x, ax, start, start + s))
            start += s
        return outs

    # -- queries ------------------------------------------------------------------------------
    def gemm_shape(self, op: MatMul | Conv2d) -> tuple[int, int, int]:
        """Return (M, N, K) of one GEMM of an array op (see gemm_count for how many)."""
        if isinstance(op, Conv2d):
            nb, _c, _h, _w = self.shapes[op.inputs[0]]
            f, cg, kh, kw = self.shapes[op.inputs[1]]
            _, _, oh, ow = self.shapes[op.output]
            return nb * oh * ow, f // op.groups, cg * kh * kw
        sa = self.shapes[op.inputs[0]]
        sb = self.shapes[op.inputs[1]]
        m, k = (sa[-1], sa[-2]) if op.transpose_a else (sa[-2], sa[-1])
        n = sb[-2] if op.transpose_b else sb[-1]
        if len(sb) == 2 and len(sa) > 2:  # a linear layer over leading dims: one GEMM
            m *= math.prod(sa[:-2])
        return m, n, k

    def gemm_count(self, op: MatMul | Conv2d) -> int:
        """Return how many independent GEMMs of gemm_shape(op) the op runs."""
        if isinstance(op, Conv2d):
            return op.groups
        sa = self.shapes[op.inputs[0]]
        sb = self.shapes[op.inputs[1]]
        if len(sb) == 2:
            return 1
        return math.prod(self.shapes[op.output][:-2])

    def consumers(self) -> dict[str, list[Op]]:
        """Return, per tensor, the ops that read it (in program order)."""
        uses: dict[str, list[Op]] = {}
        for op in self.ops:
            for t in op.inputs:
                uses.setdefault(t, []).append(op)
        return uses

    def program_outputs(self) -> list[str]:
        """Return ``outputs``, or (when empty) every op output that no op reads."""
        if self.outputs:
            return list(self.outputs)
        used = {t for op in self.ops for t in op.inputs}
        return [op.output for op in self.ops if op.output not in used]

    def numel(self, tensor: str) -> int:
        """Return the number of elements of ``tensor``."""
        return math.prod(self.shapes[tensor])
