"""TFLite front end: a ``.tflite`` file becomes a Program (extra ``[tflite]``; the flatbuffer is
read with the ``tflite`` package's generated schema, imported here lazily; TensorFlow is never
needed).

``import_tflite(path)`` reads the file's first subgraph and lowers its operators, in the file's
(topological) order, through an op table (``LOWERINGS``: builtin op code name -> lowering
function) onto the same Program ops the zoo builders and the ONNX importer emit.

Layout. TFLite tensors are NHWC; the Program's ``conv2d`` and pooling ops are NCHW. The
importer keeps every 4-D activation that an NCHW op produced in NCHW and remembers so: weights
are transposed at import (offline, free), channel axes of MEAN / CONCATENATION / PAD / SOFTMAX
/ broadcast constants are remapped, and a ``permute`` to NHWC is emitted only where TFLite's
order matters (a RESHAPE of a tensor with both channels and pixels, a graph output). The
model's NHWC input becomes NCHW by a ``permute`` that the array's feeder absorbs when only
convolutions read it (free; DESIGN section 8); a permute the vector unit reads is charged as
data movement.

Quantised (int8) models. Array ops (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED) compute int32
accumulators of the raw int8 values; the output step (``program.Requant``: the bias with the
input zero point folded in, ``-z_in * sum(w)``, the scale ``s_in * s_w[c] / s_out`` per output
channel, the output zero point and the fused activation's clamp) is the array op's int8
output requantisation on the chip (numerics.requantise_fixed). ``kernels="default"`` (LiteRT's
default interpreter, XNNPACK) applies the scale in float32 and rounds to nearest even;
``kernels="reference"`` (BUILTIN_REF) applies TFLite's Q31 multiplier and shift. Padding of a
quantised convolution is an explicit ``pad`` with the input zero point (what TFLite pads
with). Vector ops of int8 tensors dequantise their inputs, compute in float32 and
``quantize`` the result (halves rounded away from zero, clamped to the activation's range);
MAX_POOL_2D, RESHAPE, PAD and CONCATENATION of equal scales, and TRANSPOSE, STRIDED_SLICE,
SPLIT(_V), GATHER and RESIZE_NEAREST_NEIGHBOR (which refuse a change of scale) work on the
integers themselves,
AVERAGE_POOL_2D averages the integers and rounds as TFLite does; MEAN sums the integers and
requantises with the chosen kernels' arithmetic.

Anything else raises one WorkloadError naming the file, the operator's position and code and
why (an unknown builtin, a custom operator, an Edge TPU-compiled file, a dynamic shape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simulator.core.program import Program, Requant
from simulator.errors import SimulatorInputError, WorkloadError
from simulator.frontends.naming import FreshNames
from simulator.frontends.onnx_import import Const, ImportedModel
from simulator.hardware.numerics import quantize_multiplier

__all__ = ["KERNELS", "LOWERINGS", "TFLiteModel", "import_tflite"]

EDGETPU_OP = "edgetpu-custom-op"
# How LiteRT's reference kernels round MultiplyByQuantizedMultiplier (measured against
# OpResolverType.BUILTIN_REF, ai-edge-litert 2.3.0): convolutions and MEAN round twice
# (gemmlowp), FULLY_CONNECTED once (tests/test_tflite_import.py holds every layer to it)
CONV_ROUNDING, FC_ROUNDING = "double", "single"
# The int8 arithmetic import_tflite reproduces: "default", LiteRT's default CPU interpreter
# (Interpreter(model_path) with its XNNPACK delegate: float32 requantisation, rounding to
# nearest even); "reference", its reference kernels (OpResolverType.BUILTIN_REF: fixed point)
KERNELS = ("default", "reference")

# TensorType -> numpy dtype (the types a model's tensors may carry here)
_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8,
          7: np.int16, 6: np.bool_, 10: np.float64}
_ACT = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def _tflite():
    try:
        import tflite
    except ImportError:
        raise WorkloadError("--tflite", "tflite", "the TFLite importer needs the tflite package "
                            "(the flatbuffer schema): pip install 'systolic-sim[tflite]'") from None
    return tflite


class _Unsupported(Exception):
    """An operator the importer cannot lower (turned into one WorkloadError line)."""


# --------------------------------------------------------------------------- the file

@dataclass
class QParams:
    """A tensor's quantisation: scales (float32) and zero points per channel along ``axis``
    (one of each: per tensor)."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    @property
    def per_tensor(self) -> bool:
        """Return True when one scale and zero point cover the whole tensor."""
        return self.scale.size == 1

    @property
    def s(self) -> float:
        """Return the per-tensor scale (a float32 value as a Python float)."""
        return float(self.scale[0])

    @property
    def z(self) -> int:
        """Return the per-tensor zero point."""
        return int(self.zero_point[0])


@dataclass
class _Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    signature: tuple[int, ...] | None
    dtype: np.dtype
    q: QParams | None
    data: np.ndarray | None  # the constant's value (None: an activation)


@dataclass
class _V:
    """A program tensor holding a TFLite tensor; ``nchw``: a 4-D TFLite (N, H, W, C) tensor
    held as (N, C, H, W)."""

    name: str
    nchw: bool = False


def _read(path: str) -> bytes:
    """Return the file's bytes through the input boundary (regular files only, at most the
    2 GiB a flatbuffer addresses; SYSTOLIC_SIM_MAX_BYTES_TFLITE lowers the cap)."""
    from ..io_limits import read_bytes
    try:
        return read_bytes(path, "tflite", WorkloadError, "file")
    except OSError as exc:
        raise WorkloadError(f"{path}:1", "file", f"cannot read it: {exc.strerror or exc}") from None


def _model(tfl, buf: bytes, path: str):
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise WorkloadError(f"{path}:1", "file", "is not a TFLite model (no TFL3 flatbuffer "
                            "identifier; truncated, or another format)")
    try:
        return tfl.Model.GetRootAsModel(buf, 0)
    except Exception:  # noqa: BLE001 - flatbuffers raises assorted errors on garbage
        raise WorkloadError(f"{path}:1", "file", "is not a readable TFLite flatbuffer "
                            "(truncated or corrupt)") from None


def _tensors(tfl, model, graph, buf: bytes, path: str) -> list[_Tensor]:
    out = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        name = (t.Name() or b"").decode("utf-8", "replace") or f"tensor{i}"
        ttype = t.Type()
        if ttype not in _TYPES:
            raise WorkloadError(f"{path}:1", f"tensor {name}", f"element type {ttype} is not "
                                "supported")
        dtype = np.dtype(_TYPES[ttype])
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        sig = tuple(int(d) for d in t.ShapeSignatureAsNumpy()) if t.ShapeSignatureLength() \
            else None
        q = None
        qp = t.Quantization()
        if qp is not None and qp.ScaleLength():
            scale = np.asarray(qp.ScaleAsNumpy(), np.float32).reshape(-1)
            zp = np.asarray(qp.ZeroPointAsNumpy(), np.int64).reshape(-1) if qp.ZeroPointLength() \
                else np.zeros(scale.size, np.int64)
            q = QParams(scale, zp, int(qp.QuantizedDimension()))
        data = None
        b = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
        if b is not None:
            if b.Offset() > 1:  # a >2 GiB model's buffer outside the flatbuffer
                lo, n = int(b.Offset()), int(b.Size())
                raw = buf[lo:lo + n]
                if len(raw) != n:
                    raise WorkloadError(f"{path}:1", f"tensor {name}", "its buffer lies past "
                                        "the end of the file (truncated)")
            elif b.DataLength():
                raw = b.DataAsNumpy().tobytes()
            else:
                raw = None
            if raw is not None:
                want = math.prod(shape) * dtype.itemsize
                if len(raw) != want:
                    raise WorkloadError(f"{path}:1", f"tensor {name}", f"buffer of {len(raw)} "
                                        f"bytes, its shape {shape} needs {want}")
                data = np.frombuffer(raw, dtype).reshape(shape).copy()
        out.append(_Tensor(i, name, shape, sig, dtype, q, data))
    return out


# --------------------------------------------------------------------------- the lowering

class _Ctx(FreshNames):
    """Lowering state of one operator: the Program, TFLite tensor -> _V or constant, helpers."""

    def __init__(self, path: str, program: Program, tensors: list[_Tensor],
                 kernels: str = "reference"):
        self.path, self.p, self.t = path, program, tensors
        self.kernels = kernels  # "reference" (TFLite's fixed point) or "default" (XNNPACK)
        self.env: dict[int, Any] = {}  # tensor index -> _V | np.ndarray (a constant)
        self.params: dict[str, Const] = {}
        self._names: set[str] = set()
        self.op = None  # the flatbuffer Operator
        self.opts = None  # its builtin options table, typed
        self.op_name = ""
        self.opcode = ""  # the operator's builtin code name (CONV_2D, ...)
        self.dequantised: dict[int, int] = {}  # DEQUANTIZE output -> its int8 input
        self.inputs: list[int] = []
        self.outputs: list[int] = []

    def out_name(self, suffix: str = "") -> str:
        """Return a fresh program tensor name for the operator's output."""
        return self.fresh(self.t[self.outputs[0]].name + (f".{suffix}" if suffix else ""))

    # -- operands -----------------------------------------------------------------------
    def tin(self, i: int) -> _Tensor:
        """Return the file's record of input ``i``."""
        return self.t[self.inputs[i]]

    def tout(self, i: int = 0) -> _Tensor:
        """Return the file's record of output ``i``."""
        return self.t[self.outputs[i]]

    def has(self, i: int) -> bool:
        """Return True when input ``i`` is given (TFLite marks an absent one -1)."""
        return i < len(self.inputs) and self.inputs[i] >= 0

    def get(self, i: int):
        """Return input ``i``: a _V or a numpy constant."""
        idx = self.inputs[i]
        if idx not in self.env:
            raise _Unsupported(f"input {self.t[idx].name!r} is not defined by an earlier "
                               "operator, a constant or a graph input")
        return self.env[idx]

    def const(self, i: int, what: str) -> np.ndarray:
        """Return input ``i``'s value; it must be a constant in the file."""
        v = self.get(i)
        if isinstance(v, _V):
            raise _Unsupported(f"{what} ({self.tin(i).name}) must be a constant in the file")
        return v

    def param(self, value: np.ndarray, base: str) -> str:
        """Return a new program input holding the constant ``value`` (a parameter)."""
        value = np.asarray(value)
        name = self.fresh(base)
        self.p.input(name, value.shape if value.shape else (1,))
        self.params[name] = Const(value=value if value.shape else value.reshape(1), name=name)
        return name

    def nchw(self, v: _V) -> str:
        """Return ``v`` (4-D) as an NCHW program tensor (a permute when held NHWC)."""
        if v.nchw:
            return v.name
        if len(self.p.shapes[v.name]) != 4:
            raise _Unsupported(f"needs a 4-D (N, H, W, C) tensor, got {self.p.shapes[v.name]}")
        return self.p.permute(self.sub("to_nchw"), v.name, (0, 3, 1, 2),
                              out=self.fresh(f"{v.name}.nchw"))

    def plain(self, v: _V) -> str:
        """Return ``v`` in TFLite's own (NHWC) order: a permute of an NCHW tensor, unless its
        channels or its pixels are a single one (then both orders are the same bytes: a free
        reshape)."""
        if not v.nchw:
            return v.name
        n, c, h, w = self.p.shapes[v.name]
        if c == 1 or h * w == 1:
            return self.p.reshape(self.sub("to_nhwc"), v.name, (n, h, w, c),
                                  out=self.fresh(f"{v.name}.nhwc"))
        return self.p.permute(self.sub("to_nhwc"), v.name, (0, 2, 3, 1),
                              out=self.fresh(f"{v.name}.nhwc"))

    def set(self, name: str, nchw: bool = False, i: int = 0) -> None:
        """Record program tensor ``name`` as output ``i`` of the operator; check its shape
        against the file's."""
        idx = self.outputs[i]
        got = self.p.shapes[name]
        if nchw:
            n, c, h, w = got
            got = (n, h, w, c)
        want = self.t[idx].shape or (1,)
        if tuple(got) != tuple(want):
            raise _Unsupported(f"output {self.t[idx].name} has shape {tuple(got)} here but "
                               f"{tuple(want)} in the file")
        self.env[idx] = _V(name, nchw)

    # -- quantisation ------------------------------------------------------------------
    def quantised(self) -> bool:
        """Return True when the operator's output is int8 (a quantised operator)."""
        return self.tout().dtype == np.int8

    def qp(self, tensor: _Tensor) -> QParams:
        """Return the tensor's quantisation (it must have one)."""
        if tensor.q is None:
            raise _Unsupported(f"int8 tensor {tensor.name} has no scale and zero point")
        return tensor.q

    def dequant(self, i: int) -> tuple[str | np.ndarray, bool]:
        """Return input ``i`` as float32: (program tensor or constant, nchw); an int8 tensor
        is dequantised by a ``dequantize`` op, a constant at import."""
        v, t = self.get(i), self.tin(i)
        if t.dtype != np.int8:
            return (v.name, v.nchw) if isinstance(v, _V) else (np.asarray(v, np.float32), False)
        q = self.qp(t)
        if isinstance(v, _V):
            if not q.per_tensor:
                raise _Unsupported(f"per-channel quantised activation {t.name} is not supported")
            return self.p.elementwise(self.sub(f"dequant{i}"), "dequantize", v.name,
                                      params=(q.s, q.z), out=self.fresh(f"{v.name}.f32")), v.nchw
        shape = [1] * v.ndim
        if v.ndim:
            shape[q.axis] = -1
        return ((v.astype(np.float32) - q.zero_point.reshape(shape).astype(np.float32))
                * q.scale.reshape(shape)).astype(np.float32), False

    def quant(self, x: str, tensor: _Tensor, act: str = "NONE", suffix: str = "quant") -> str:
        """Return ``x`` (float32) quantised to ``tensor``'s int8 scale and zero point,
        clamped to the fused activation's range."""
        q = self.qp(tensor)
        lo, hi = _act_range(act, q)
        return self.p.elementwise(self.sub(suffix), "quantize", x,
                                  params=(q.s, q.z, lo, hi), out=self.out_name())


def _act_range(act: str, q: QParams) -> tuple[int, int]:
    """Return TFLite's int8 clamp of a fused activation (CalculateActivationRangeQuantized)."""
    s = np.float32(q.s)

    def quantize(f: float) -> int:
        v = np.float32(f) / s
        return q.z + int(np.sign(v) * np.floor(abs(float(v)) + 0.5))
    if act == "NONE":
        return -128, 127
    if act == "RELU":
        return max(-128, quantize(0.0)), 127
    if act == "RELU6":
        return max(-128, quantize(0.0)), min(127, quantize(6.0))
    if act == "RELU_N1_TO_1":
        return max(-128, quantize(-1.0)), min(127, quantize(1.0))
    raise _Unsupported(f"fused activation {act} is not supported on an int8 operator")


def _float_act(ctx: _Ctx, y: str, act: str) -> str:
    """Return ``y`` after a float operator's fused activation (the last op writes the output)."""
    if act == "NONE":
        return y
    p = ctx.p
    if act == "RELU":
        return p.elementwise(ctx.sub("relu"), "relu", y, out=ctx.out_name())
    if act == "RELU6":
        return p.elementwise(ctx.sub("relu6"), "clip", y, params=(0.0, 6.0), out=ctx.out_name())
    if act == "RELU_N1_TO_1":
        return p.elementwise(ctx.sub("relu_n1_to_1"), "clip", y, params=(-1.0, 1.0),
                             out=ctx.out_name())
    if act == "TANH":
        return p.elementwise(ctx.sub("tanh"), "tanh", y, out=ctx.out_name())
    raise _Unsupported(f"fused activation {act} is not supported")


def _options(ctx: _Ctx, cls_name: str):
    tfl = _tflite()
    table = ctx.op.BuiltinOptions()
    if table is None:
        return None
    o = getattr(tfl, cls_name)()
    o.Init(table.Bytes, table.Pos)
    return o


def _same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """Return TFLite's SAME padding (before, after) along one axis."""
    eff = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _pads(padding: int, h: int, w: int, kh: int, kw: int, s: tuple, d: tuple) -> tuple:
    """Return ((top, bottom), (left, right)) of Padding ``padding`` (0 SAME, 1 VALID)."""
    if padding == 1:
        return (0, 0), (0, 0)
    if padding != 0:
        raise _Unsupported(f"padding type {padding} is not supported")
    return _same_pads(h, kh, s[0], d[0]), _same_pads(w, kw, s[1], d[1])


def _explicit_pad(ctx: _Ctx, x: str, pads: tuple, value: float) -> str:
    """Return NCHW ``x`` padded spatially by ``pads`` with ``value`` (a ``pad`` op: data
    movement on the vector unit)."""
    return ctx.p.vector(ctx.sub("pad"), "pad", x, out=ctx.fresh(f"{x}.padded"),
                        pads=((0, 0), (0, 0), pads[0], pads[1]), value=float(value))


def _multipliers(s_in: float, w_scales: np.ndarray, s_out: float, per_channel: bool
                 ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Return the Q31 multipliers and shifts of ``s_in * s_w / s_out``: per channel in
    float64 (TFLite's PopulateConvolutionQuantizationParams), per tensor with the product
    s_in * s_w rounded to float32 first (GetQuantizedConvolutionMultipler)."""
    mults, shifts = [], []
    for sw in (w_scales if per_channel else w_scales[:1]):
        if per_channel:
            m = float(np.float64(np.float32(s_in)) * np.float64(sw) / np.float64(np.float32(s_out)))
        else:
            m = float(np.float64(np.float32(s_in) * np.float32(sw)) / np.float64(np.float32(s_out)))
        q, sh = quantize_multiplier(m)
        mults.append(q)
        shifts.append(sh)
    return tuple(mults), tuple(shifts)


def _fp32_scales(s_in: float, w_scales: np.ndarray, s_out: float) -> tuple[float, ...]:
    """Return XNNPACK's float32 requantisation scales ``s_in * s_w / s_out``: each product and
    the quotient rounded to float32, as its QS8 operators compute them."""
    si, so = np.float32(s_in), np.float32(s_out)
    return tuple(float((si * np.float32(sw)) / so) for sw in w_scales)


def _requant(ctx: _Ctx, w_nchw_or_kn: np.ndarray, out_axis: int, bias_idx: int, act: str,
             x_t: _Tensor, w_t: _Tensor, conv: bool) -> Requant:
    """Return the Requant of an int8 array op: bias - z_in * sum(w) per output channel, the
    multipliers of s_in * s_w / s_out, the output zero point and the activation's clamp."""
    qx, qw, qo = ctx.qp(x_t), ctx.qp(w_t), ctx.qp(ctx.tout())
    if np.any(qw.zero_point != 0):
        raise _Unsupported(f"weights {w_t.name} have non-zero zero points (TFLite's int8 "
                           "weights are symmetric)")
    w = np.asarray(w_nchw_or_kn, np.int64)
    axes = tuple(a for a in range(w.ndim) if a != out_axis)
    wsum = w.sum(axis=axes)
    n = wsum.size
    bias = np.zeros(n, np.int64)
    if ctx.has(bias_idx):
        b = np.asarray(ctx.const(bias_idx, "the bias"), np.int64).reshape(-1)
        if b.size != n:
            raise _Unsupported(f"bias has {b.size} values for {n} outputs")
        bias = b
    folded = bias - qx.z * wsum
    per_channel = not qw.per_tensor or conv
    scales = qw.scale if not qw.per_tensor else np.repeat(qw.scale, n if per_channel else 1)
    mults, shifts = _multipliers(qx.s, scales, qo.s, per_channel)
    lo, hi = _act_range(act, qo)
    if ctx.kernels == "default":
        return Requant(tuple(int(v) for v in folded), mults, shifts, qo.z, lo, hi, "fp32",
                       _fp32_scales(qx.s, scales if per_channel else scales[:1], qo.s))
    return Requant(tuple(int(v) for v in folded), mults, shifts, qo.z, lo, hi,
                   CONV_ROUNDING if conv else FC_ROUNDING)


def _check_int8_weights(ctx: _Ctx, i: int) -> None:
    t = ctx.tin(i)
    if t.dtype != np.int8:
        raise _Unsupported(f"an int8 operator with {t.dtype} weights {t.name} is not supported "
                           "(full-integer int8 models only)")


LOWERINGS: dict[str, Callable[[_Ctx], None]] = {}
_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_MULTI_OUTPUT = ("SPLIT", "SPLIT_V")  # one output per piece


def _lowers(*codes: str):
    def deco(fn):
        for c in codes:
            LOWERINGS[c] = fn
        return fn
    return deco


def _conv_common(ctx: _Ctx, depthwise: bool) -> None:
    x = ctx.get(0)
    if not isinstance(x, _V):
        raise _Unsupported("a convolution of a constant input is not supported")
    w = ctx.const(1, "the filter")
    xt, wt = ctx.tin(0), ctx.tin(1)
    o = _options(ctx, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
    stride = (o.StrideH(), o.StrideW())
    dil = (o.DilationHFactor() or 1, o.DilationWFactor() or 1)
    act = _ACT.get(o.FusedActivationFunction(), "?")
    n, h, wd, c = xt.shape
    if depthwise:  # (1, kh, kw, C * multiplier) -> (C * multiplier, 1, kh, kw), groups C
        _one, kh, kw, f = w.shape
        w_nchw = np.ascontiguousarray(w.transpose(3, 0, 1, 2))
        groups = c
    else:  # (F, kh, kw, C / groups) -> (F, C / groups, kh, kw)
        f, kh, kw, cg = w.shape
        w_nchw = np.ascontiguousarray(w.transpose(0, 3, 1, 2))
        if c % cg:
            raise _Unsupported(f"input channels {c} do not divide by the filter's {cg}")
        groups = c // cg
    pads = _pads(o.Padding(), h, wd, kh, kw, stride, dil)
    xs = ctx.nchw(x)
    p = ctx.p
    if ctx.quantised():
        if xt.dtype != np.int8:
            raise _Unsupported(f"an int8 convolution of a {xt.dtype} input is not supported")
        _check_int8_weights(ctx, 1)
        rq = _requant(ctx, w_nchw, 0, 2, act, xt, wt, True)
        zx = ctx.qp(xt).z
        padding = (0, 0)
        if any(pads[0]) or any(pads[1]):
            if zx == 0 and pads[0][0] == pads[0][1] and pads[1][0] == pads[1][1]:
                padding = (pads[0][0], pads[1][0])
            else:  # TFLite pads with the input zero point: so does the chip's feeder here
                xs = _explicit_pad(ctx, xs, pads, zx)
        wname = ctx.param(w_nchw.astype(np.int64), f"{wt.name}.oihw")
        y = p.conv2d(ctx.sub(), xs, wname, stride=stride, padding=padding, dilation=dil,
                     groups=groups, out=ctx.out_name(), requant=rq)
        ctx.set(y, nchw=True)
        return
    padding = (0, 0)
    if pads[0][0] == pads[0][1] and pads[1][0] == pads[1][1]:
        padding = (pads[0][0], pads[1][0])
    else:
        xs = _explicit_pad(ctx, xs, pads, 0.0)
    wname = ctx.param(np.asarray(w_nchw, np.float32), f"{wt.name}.oihw")
    bias = ctx.const(2, "the bias") if ctx.has(2) else None
    last = bias is None or not np.any(bias)
    y = p.conv2d(ctx.sub("conv" if not last or act != "NONE" else ""), xs, wname, stride=stride,
                 padding=padding, dilation=dil, groups=groups,
                 out=ctx.out_name("conv") if not last or act != "NONE" else ctx.out_name())
    if bias is not None and np.any(bias):
        bname = ctx.param(np.asarray(bias, np.float32).reshape(f, 1, 1), f"{ctx.tin(2).name}")
        y = p.elementwise(ctx.sub("bias"), "add", y, bname,
                          out=ctx.out_name("biased") if act != "NONE" else ctx.out_name())
    ctx.set(_float_act(ctx, y, act), nchw=True)


@_lowers("CONV_2D")
def _conv2d(ctx: _Ctx) -> None:
    _conv_common(ctx, False)


@_lowers("DEPTHWISE_CONV_2D")
def _depthwise(ctx: _Ctx) -> None:
    _conv_common(ctx, True)


@_lowers("FULLY_CONNECTED")
def _fully_connected(ctx: _Ctx) -> None:
    x = ctx.get(0)
    if not isinstance(x, _V):
        raise _Unsupported("a fully connected layer of a constant input is not supported")
    w = ctx.const(1, "the weights")
    o = _options(ctx, "FullyConnectedOptions")
    act = _ACT.get(o.FusedActivationFunction(), "?") if o is not None else "NONE"
    if o is not None and o.WeightsFormat() != 0:
        raise _Unsupported("shuffled weights are not supported")
    nout, k = w.shape
    xs = ctx.plain(x)
    shape = ctx.p.shapes[xs]
    if math.prod(shape) % k:
        raise _Unsupported(f"input {shape} does not flatten into rows of {k}")
    if len(shape) != 2 or shape[-1] != k:
        xs = ctx.p.reshape(ctx.sub("flatten"), xs, (-1, k), out=ctx.fresh(f"{xs}.rows"))
    p = ctx.p
    want = ctx.tout().shape
    rows_out = tuple(want) == (math.prod(ctx.p.shapes[xs][:-1]), nout)
    if ctx.quantised():
        if ctx.tin(0).dtype != np.int8:
            raise _Unsupported("an int8 fully connected layer of a non-int8 input is not "
                               "supported")
        _check_int8_weights(ctx, 1)
        w_kn = np.ascontiguousarray(np.asarray(w, np.int64).T)
        rq = _requant(ctx, w_kn, 1, 2, act, ctx.tin(0), ctx.tin(1), False)
        wname = ctx.param(w_kn, f"{ctx.tin(1).name}.kn")
        y = p.matmul(ctx.sub(), xs, wname, out=ctx.out_name() if rows_out else
                     ctx.out_name("rows"), requant=rq)
    else:
        wname = ctx.param(np.ascontiguousarray(np.asarray(w, np.float32).T),
                          f"{ctx.tin(1).name}.kn")
        bias = ctx.const(2, "the bias") if ctx.has(2) else None
        has_bias = bias is not None and bool(np.any(bias))
        post = has_bias or act != "NONE" or not rows_out
        y = p.matmul(ctx.sub("matmul" if post else ""), xs, wname,
                     out=ctx.out_name("mm") if post else ctx.out_name())
        if has_bias:
            bname = ctx.param(np.asarray(bias, np.float32).reshape(-1), ctx.tin(2).name)
            y = p.elementwise(ctx.sub("bias"), "add", y, bname,
                              out=ctx.out_name("biased") if act != "NONE" or not rows_out
                              else ctx.out_name())
        if act != "NONE":
            y = _float_act(ctx, y, act) if rows_out else \
                _float_act_named(ctx, y, act, ctx.out_name("act"))
    if not rows_out:
        y = p.reshape(ctx.sub("reshape"), y, tuple(want), out=ctx.out_name())
    ctx.set(y)


def _float_act_named(ctx: _Ctx, y: str, act: str, out: str) -> str:
    kinds = {"RELU": ("relu", ()), "RELU6": ("clip", (0.0, 6.0)),
             "RELU_N1_TO_1": ("clip", (-1.0, 1.0)), "TANH": ("tanh", ())}
    if act not in kinds:
        raise _Unsupported(f"fused activation {act} is not supported")
    kind, params = kinds[act]
    return ctx.p.elementwise(ctx.sub(act.lower()), kind, y, params=params, out=out)


def _nchw_const(v: np.ndarray, rank: int) -> np.ndarray:
    """Return a constant broadcast against a 4-D NHWC tensor, laid out for its NCHW form."""
    v = np.asarray(v)
    v = v.reshape((1,) * (rank - v.ndim) + v.shape)
    return np.ascontiguousarray(v.transpose(0, 3, 1, 2))


def _binary_operands(ctx: _Ctx, a, b) -> tuple[str, str, bool]:
    """Return both operands (float32 program tensors or constants) as program tensors in one
    layout, and whether it is NCHW."""
    (va, na), (vb, nb) = a, b
    rank = len(ctx.tout().shape)
    nchw = rank == 4 and (na or nb)

    def bring(v, is_nchw, i):
        if isinstance(v, np.ndarray):
            if nchw:
                v = _nchw_const(v, 4)
            return ctx.param(v.astype(np.float32), f"{ctx.tin(i).name}")
        if nchw and not is_nchw:
            if len(ctx.p.shapes[v]) != 4:
                raise _Unsupported("broadcasting a lower-rank tensor against a 4-D one is not "
                                   "supported")
            return ctx.nchw(_V(v))
        if not nchw and is_nchw:
            return ctx.plain(_V(v, True))
        return v
    return bring(va, na, 0), bring(vb, nb, 1), bool(nchw)


@_lowers("ADD", "MUL", "SUB", "MAXIMUM", "MINIMUM")
def _binary(ctx: _Ctx) -> None:
    code = ctx.opcode
    kind = {"ADD": "add", "MUL": "mul", "SUB": "sub", "MAXIMUM": "max", "MINIMUM": "min"}[code]
    o = _options(ctx, {"ADD": "AddOptions", "MUL": "MulOptions", "SUB": "SubOptions"}
                 .get(code, "MaximumMinimumOptions")) if code in ("ADD", "MUL", "SUB") else None
    act = _ACT.get(o.FusedActivationFunction(), "?") if o is not None else "NONE"
    if all(not isinstance(ctx.get(i), _V) for i in (0, 1)):
        raise _Unsupported("an operator of two constants is not supported")
    if ctx.quantised():
        a, b = ctx.dequant(0), ctx.dequant(1)
        ta, tb, nchw = _binary_operands(ctx, a, b)
        y = ctx.p.elementwise(ctx.sub(kind), kind, ta, tb, out=ctx.out_name("f32"))
        ctx.set(ctx.quant(y, ctx.tout(), act), nchw=nchw)
        return
    a, b = ctx.dequant(0), ctx.dequant(1)
    ta, tb, nchw = _binary_operands(ctx, a, b)
    y = ctx.p.elementwise(ctx.sub(kind if act != "NONE" else ""), kind, ta, tb,
                          out=ctx.out_name(kind) if act != "NONE" else ctx.out_name())
    ctx.set(_float_act(ctx, y, act), nchw=nchw)


def _pool(ctx: _Ctx, kind: str) -> None:
    x = ctx.get(0)
    if not isinstance(x, _V):
        raise _Unsupported("pooling a constant is not supported")
    o = _options(ctx, "Pool2DOptions")
    k = (o.FilterHeight(), o.FilterWidth())
    s = (o.StrideH(), o.StrideW())
    act = _ACT.get(o.FusedActivationFunction(), "?")
    _n, h, w, _c = ctx.tin(0).shape
    pads = _pads(o.Padding(), h, w, k[0], k[1], s, (1, 1))
    xs = ctx.nchw(x)
    q = ctx.quantised()
    if q:
        qi, qo = ctx.qp(ctx.tin(0)), ctx.qp(ctx.tout())
        if (qi.s, qi.z) != (qo.s, qo.z):
            raise _Unsupported("int8 pooling with different input and output scales is not "
                               "supported")
    padding = (0, 0)
    if any(pads[0]) or any(pads[1]):
        if kind == "avgpool2d":
            raise _Unsupported("AVERAGE_POOL_2D with SAME padding that pads is not supported "
                               "(TFLite leaves the padding out of the count)")
        if pads[0][0] == pads[0][1] and pads[1][0] == pads[1][1] and \
                2 * pads[0][0] <= k[0] and 2 * pads[1][0] <= k[1] and not q:
            padding = (pads[0][0], pads[1][0])
        else:
            xs = _explicit_pad(ctx, xs, pads, -128.0 if q else -np.inf)
    p = ctx.p
    if q:
        lo, hi = _act_range(act, ctx.qp(ctx.tout()))
        if kind == "maxpool2d" and (lo, hi) == (-128, 127):
            y = p.vector(ctx.sub(), kind, xs, out=ctx.out_name(), kernel=k, stride=s,
                         padding=padding)
        else:  # average of the integers, rounded half away from zero as TFLite does
            y = p.vector(ctx.sub(kind), kind, xs, out=ctx.out_name("sum"), kernel=k, stride=s,
                         padding=padding)
            y = p.elementwise(ctx.sub("round"), "quantize", y, params=(1.0, 0.0, lo, hi),
                              out=ctx.out_name())
        ctx.set(y, nchw=True)
        return
    y = p.vector(ctx.sub(kind if act != "NONE" else ""), kind, xs,
                 out=ctx.out_name("pool") if act != "NONE" else ctx.out_name(), kernel=k,
                 stride=s, padding=padding)
    ctx.set(_float_act(ctx, y, act), nchw=True)


@_lowers("MAX_POOL_2D")
def _maxpool(ctx: _Ctx) -> None:
    _pool(ctx, "maxpool2d")


@_lowers("AVERAGE_POOL_2D")
def _avgpool(ctx: _Ctx) -> None:
    _pool(ctx, "avgpool2d")


_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


@_lowers("MEAN", "SUM", "REDUCE_MAX")
def _reduce(ctx: _Ctx) -> None:
    kind = {"MEAN": "mean", "SUM": "sum", "REDUCE_MAX": "max"}[ctx.opcode]
    x = ctx.get(0)
    if not isinstance(x, _V):
        raise _Unsupported("reducing a constant is not supported")
    rank = len(ctx.tin(0).shape)
    axes = sorted({int(a) % rank for a in np.asarray(ctx.const(1, "the axes")).reshape(-1)})
    o = _options(ctx, "ReducerOptions")
    keep = bool(o.KeepDims()) if o is not None else False
    quant = ctx.quantised()
    if quant and kind == "mean":
        _int8_mean(ctx, x, axes, keep)
        return
    if quant:
        xs, nchw = ctx.dequant(0)
    else:
        xs, nchw = x.name, x.nchw
    if nchw and not keep and not (3 in axes or {1, 2} <= set(axes)):
        xs, nchw = ctx.plain(_V(xs, True)), False
    ax = tuple(sorted(_TO_NCHW_AXIS[a] for a in axes)) if nchw else tuple(axes)
    p = ctx.p
    y = p.reduce(ctx.sub(kind if quant else ""), kind, xs, axis=ax, keepdims=keep,
                 out=ctx.out_name("f32") if quant else ctx.out_name())
    if quant:
        y = ctx.quant(y, ctx.tout())
    ctx.set(y, nchw=nchw and keep)


def _int8_mean(ctx: _Ctx, x: _V, axes: list[int], keep: bool) -> None:
    """An int8 MEAN as TFLite's reference kernel (QuantizedMeanOrSum) computes it: the sum of
    the raw int8 values less the input zero point's share, times the Q31 multiplier of
    s_in / s_out with the division by the count folded into it, plus the output zero point."""
    qi, qo = ctx.qp(ctx.tin(0)), ctx.qp(ctx.tout())
    xs, nchw = x.name, x.nchw
    if nchw and not keep and not (3 in axes or {1, 2} <= set(axes)):
        xs, nchw = ctx.plain(x), False
    ax = tuple(sorted(_TO_NCHW_AXIS[a] for a in axes)) if nchw else tuple(axes)
    shape = ctx.tin(0).shape
    count = math.prod(shape[a] for a in axes)
    p = ctx.p
    if ctx.kernels == "default":  # XNNPACK: float32 scale s_in / (s_out * count), nearest even
        scale = float(np.float32(qi.s) / (np.float32(qo.s) * np.float32(count)))
        y = p.reduce(ctx.sub("sum"), "sum", xs, axis=ax, keepdims=keep, out=ctx.out_name("sum"))
        y = p.elementwise(ctx.sub("requant"), "requantize_fp32", y,
                          params=(-qi.z * count, scale, qo.z, -128, 127), out=ctx.out_name())
        ctx.set(y, nchw=nchw and keep)
        return
    mult, shift = quantize_multiplier(float(np.float64(np.float32(qi.s))
                                            / np.float64(np.float32(qo.s))))
    # TFLite folds 1/count into the multiplier: (m << k) // count, shift - k, with
    # k = floor(log2 count) clamped to 32 and to 31 + shift
    k = min(count.bit_length() - 1, 32, 31 + shift)
    mult, shift = (mult << k) // count, shift - k
    bias, zo = -qi.z * count, qo.z
    p = ctx.p
    y = p.reduce(ctx.sub("sum"), "sum", xs, axis=ax, keepdims=keep, out=ctx.out_name("sum"))
    y = p.elementwise(ctx.sub("requant"), "requantize", y,
                      params=(bias, mult, shift, zo, -128, 127),
                      out=ctx.out_name())
    ctx.set(y, nchw=nchw and keep)


@_lowers("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
def _reshape(ctx: _Ctx) -> None:
    x = ctx.get(0)
    if not isinstance(x, _V):
        raise _Unsupported("reshaping a constant is not supported")
    if ctx.tin(0).dtype == np.int8:
        qi, qo = ctx.qp(ctx.tin(0)), ctx.qp(ctx.tout())
        if (qi.s, qi.z) != (qo.s, qo.z):
            raise _Unsupported("a reshape that changes the scale is not supported")
    target = ctx.tout().shape or (1,)
    xs = ctx.plain(x)
    if tuple(ctx.p.shapes[xs]) == tuple(target):
        ctx.env[ctx.outputs[0]] = _V(xs)
        return
    ctx.set(ctx.p.reshape(ctx.sub(), xs, tuple(target), out=ctx.out_name()))


@_lowers("SOFTMAX")
def _softmax(ctx: _Ctx) -> None:
    o = _options(ctx, "SoftmaxOptions")
    beta = float(o.Beta()) if o is not None else 1.0
    quant = ctx.quantised()
    xs, nchw = ctx.dequant(0) if quant else (ctx.get(0).name, ctx.get(0).nchw)
    p = ctx.p
    if beta != 1.0:
        xs = p.elementwise(ctx.sub("beta"), "scale", xs, const=beta, out=ctx.out_name("beta"))
    y = p.vector(ctx.sub("softmax" if quant else ""), "softmax", xs, axis=1 if nchw else -1,
                 out=ctx.out_name("f32") if quant else ctx.out_name())
    if quant:
        y = ctx.quant(y, ctx.tout())
    ctx.set(y, nchw=nchw)


@_lowers("LOGISTIC", "RELU", "RELU6", "TANH", "RELU_N1_TO_1")
def _unary(ctx: _Ctx) -> None:
    kind, params = {"LOGISTIC": ("sigmoid", ()), "RELU": ("relu", ()),
                    "RELU6": ("clip", (0.0, 6.0)), "TANH": ("tanh", ()),
                    "RELU_N1_TO_1": ("clip", (-1.0, 1.0))}[ctx.opcode]
    quant = ctx.quantised()
    x = ctx.get(0)
    if not isinstance(x, _V):
        raise _Unsupported("an activation of a constant is not supported")
    xs, nchw = ctx.dequant(0) if quant else (x.name, x.nchw)
    y = ctx.p.elementwise(ctx.sub(kind if quant else ""), kind, xs, params=params,
                          out=ctx.out_name("f32") if quant else ctx.out_name())
    if quant:
        y = ctx.quant(y, ctx.tout())
    ctx.set(y, nchw=nchw)


@_lowers("CONCATENATION")
def _concat(ctx: _Ctx) -> None:
    o = _options(ctx, "ConcatenationOptions")
    rank = len(ctx.tout().shape)
    axis = int(o.Axis()) % rank
    act = _ACT.get(o.FusedActivationFunction(), "?")
    if act != "NONE":
        raise _Unsupported(f"a fused {act} on CONCATENATION is not supported")
    vals = [ctx.get(i) for i in range(len(ctx.inputs))]
    quant = ctx.quantised()
    nchw = rank == 4 and any(isinstance(v, _V) and v.nchw for v in vals)
    names = []
    for i, v in enumerate(vals):
        t = ctx.tin(i)
        if isinstance(v, np.ndarray):
            c = v if not nchw else _nchw_const(v, 4)
            names.append(ctx.param(c.astype(np.int64 if quant else np.float32), t.name))
            continue
        s = ctx.nchw(v) if nchw else ctx.plain(v)
        if quant and (ctx.qp(t).s, ctx.qp(t).z) != (ctx.qp(ctx.tout()).s, ctx.qp(ctx.tout()).z):
            f = ctx.p.elementwise(ctx.sub(f"dequant{i}"), "dequantize", s,
                                  params=(ctx.qp(t).s, ctx.qp(t).z), out=ctx.fresh(f"{s}.f32"))
            qo = ctx.qp(ctx.tout())
            s = ctx.p.elementwise(ctx.sub(f"requant{i}"), "quantize", f,
                                  params=(qo.s, qo.z, -128, 127), out=ctx.fresh(f"{s}.rq"))
        names.append(s)
    ax = _TO_NCHW_AXIS[axis] if nchw else axis
    y = ctx.p.vector(ctx.sub(), "concat", *names, axis=ax, out=ctx.out_name())
    ctx.set(y, nchw=nchw)


@_lowers("PAD", "PADV2")
def _pad(ctx: _Ctx) -> None:
    x = ctx.get(0)
    if not isinstance(x, _V):
        raise _Unsupported("padding a constant is not supported")
    pads = np.asarray(ctx.const(1, "the paddings"), np.int64).reshape(-1, 2)
    rank = len(ctx.tin(0).shape)
    if pads.shape[0] != rank:
        raise _Unsupported(f"paddings {pads.tolist()} for a rank-{rank} tensor")
    quant = ctx.quantised()
    if ctx.has(2):
        value = float(np.asarray(ctx.const(2, "the pad value")).reshape(-1)[0])
    else:
        value = float(ctx.qp(ctx.tout()).z) if quant else 0.0
    if quant and (ctx.qp(ctx.tin(0)).s, ctx.qp(ctx.tin(0)).z) != \
            (ctx.qp(ctx.tout()).s, ctx.qp(ctx.tout()).z):
        raise _Unsupported("a PAD that changes the scale is not supported")
    xs, nchw = x.name, x.nchw
    pl = [tuple(int(v) for v in r) for r in pads]
    if nchw:
        pl = [pl[0], pl[3], pl[1], pl[2]]
    y = ctx.p.vector(ctx.sub(), "pad", xs, pads=tuple(pl), value=value, out=ctx.out_name())
    ctx.set(y, nchw=nchw)


@_lowers("QUANTIZE")
def _quantize(ctx: _Ctx) -> None:
    x = ctx.get(0)
    if not isinstance(x, _V):
        raise _Unsupported("quantising a constant is not supported")
    if ctx.tout().dtype != np.int8:
        raise _Unsupported(f"QUANTIZE to {ctx.tout().dtype} is not supported (int8 only)")
    xs, nchw = ctx.dequant(0)
    ctx.set(ctx.quant(xs, ctx.tout()), nchw=nchw)


@_lowers("DEQUANTIZE")
def _dequantize(ctx: _Ctx) -> None:
    x = ctx.get(0)
    if not isinstance(x, _V):  # fp16 / int8 weights stored compressed: unpacked at import
        v, _ = ctx.dequant(0) if ctx.tin(0).dtype == np.int8 else (np.asarray(x, np.float32), 0)
        ctx.env[ctx.outputs[0]] = np.asarray(v, np.float32)
        return
    if ctx.tin(0).dtype != np.int8:
        raise _Unsupported(f"DEQUANTIZE of {ctx.tin(0).dtype} activations is not supported")
    q = ctx.qp(ctx.tin(0))
    y = ctx.p.elementwise(ctx.sub(), "dequantize", x.name, params=(q.s, q.z),
                          out=ctx.out_name())
    ctx.dequantised[ctx.outputs[0]] = ctx.inputs[0]
    ctx.set(y, nchw=x.nchw)


# --------------------------------------------------------------------------- data movement

def _same_q(ctx: _Ctx, what: str, outs: tuple[int, ...] = (0,)) -> None:
    """Refuse an int8 data-movement operator whose outputs' scale and zero point differ from
    its input's (the integers move unchanged)."""
    if ctx.tin(0).dtype != np.int8:
        return
    qi = ctx.qp(ctx.tin(0))
    for k in outs:
        qo = ctx.qp(ctx.tout(k))
        if not (qi.per_tensor and qo.per_tensor) or (qi.s, qi.z) != (qo.s, qo.z):
            raise _Unsupported(f"an int8 {what} that changes the scale or zero point is not "
                               "supported")


def _data(ctx: _Ctx, what: str) -> _V:
    x = ctx.get(0)
    if not isinstance(x, _V):
        raise _Unsupported(f"{what} of a constant is not supported")
    return x


def _take(ctx: _Ctx, xs: str, picks: np.ndarray, ax: int, out: str | None = None) -> str:
    """Return ``xs`` at the constant positions ``picks`` (1-D) along axis ``ax``: the axis
    moved to the front (a permute when ax > 0), flattened to rows, the ``gather`` vector op,
    and the rows put back."""
    p = ctx.p
    src = tuple(p.shapes[xs])
    picks = np.asarray(picks, np.int64).reshape(-1)
    rest = src[:ax] + src[ax + 1:]
    t = xs
    if ax:
        t = p.permute(ctx.sub("front"), t, (ax,) + tuple(range(ax)) +
                      tuple(range(ax + 1, len(src))), out=ctx.fresh(f"{xs}.front"))
    table = p.reshape(ctx.sub("rows"), t, (src[ax], math.prod(rest)),
                      out=ctx.fresh(f"{xs}.rows"))
    ids = ctx.param(picks, f"{ctx.op_name}.ids")
    g = p.vector(ctx.sub("gather"), "gather", table, ids, out=ctx.fresh(f"{xs}.gather"))
    g = p.reshape(ctx.sub("unrows"), g, (picks.size,) + rest,
                  out=ctx.fresh(f"{xs}.unrows") if ax else (out or ctx.out_name()))
    if not ax:
        return g
    perm = tuple(range(1, ax + 1)) + (0,) + tuple(range(ax + 1, len(src)))
    return p.permute(ctx.sub(), g, perm, out=out or ctx.out_name())


@_lowers("TRANSPOSE")
def _transpose(ctx: _Ctx) -> None:
    x = _data(ctx, "transposing")
    _same_q(ctx, "TRANSPOSE")
    perm = tuple(int(v) for v in np.asarray(ctx.const(1, "the permutation")).reshape(-1))
    xs = ctx.plain(x)
    if perm == tuple(range(len(perm))):
        ctx.env[ctx.outputs[0]] = _V(xs)
        return
    ctx.set(ctx.p.permute(ctx.sub(), xs, perm, out=ctx.out_name()))


@_lowers("STRIDED_SLICE")
def _strided_slice(ctx: _Ctx) -> None:
    x = _data(ctx, "slicing")
    _same_q(ctx, "STRIDED_SLICE")
    o = _options(ctx, "StridedSliceOptions")
    bm, em = (o.BeginMask(), o.EndMask()) if o is not None else (0, 0)
    sm = o.ShrinkAxisMask() if o is not None else 0
    if o is not None and (o.EllipsisMask() or o.NewAxisMask() or o.Offset()):
        raise _Unsupported("STRIDED_SLICE with an ellipsis, new-axis or offset mask is not "
                           "supported")
    begin = [int(v) for v in np.asarray(ctx.const(1, "begin")).reshape(-1)]
    end = [int(v) for v in np.asarray(ctx.const(2, "end")).reshape(-1)]
    strides = [int(v) for v in np.asarray(ctx.const(3, "strides")).reshape(-1)] \
        if ctx.has(3) else [1] * len(begin)
    xs = ctx.plain(x)
    src = tuple(ctx.p.shapes[xs])
    y = xs
    for a in range(len(begin)):
        st = strides[a]
        if st == 0:
            raise _Unsupported("a stride of 0")
        if sm >> a & 1:
            b = begin[a] % src[a] if -src[a] <= begin[a] < src[a] else None
            if b is None:
                raise _Unsupported(f"begin {begin[a]} is out of range for axis {a}")
            s = slice(b, b + 1, 1)
        else:
            s = slice(None if bm >> a & 1 else begin[a], None if em >> a & 1 else end[a], st)
        picks = np.arange(*s.indices(src[a]))
        if picks.size == 0:
            raise _Unsupported(f"an empty slice of axis {a} is not supported")
        if st == 1 or picks.size == 1:
            lo, hi = int(picks[0]), int(picks[-1]) + 1
            if (lo, hi) == (0, src[a]):
                continue
            y = ctx.p.slice(ctx.sub(f"axis{a}"), y, a, lo, hi, out=ctx.out_name(f"axis{a}"))
        else:
            y = _take(ctx, y, picks, a, out=ctx.out_name(f"axis{a}"))
    want = ctx.tout().shape or (1,)
    if y == xs or tuple(ctx.p.shapes[y]) != tuple(want):
        y = ctx.p.reshape(ctx.sub("reshape"), y, tuple(want), out=ctx.out_name())
    ctx.set(y)


@_lowers("SPLIT", "SPLIT_V")
def _split(ctx: _Ctx) -> None:
    if ctx.opcode == "SPLIT":  # inputs (axis, x)
        axis_i, x_i = 0, 1
    else:  # inputs (x, size_splits, axis)
        axis_i, x_i = 2, 0
    x = ctx.get(x_i)
    if not isinstance(x, _V):
        raise _Unsupported("splitting a constant is not supported")
    t = ctx.tin(x_i)
    rank = len(t.shape)
    axis = int(np.asarray(ctx.const(axis_i, "the axis")).reshape(-1)[0]) % rank
    sizes = [ctx.tout(k).shape[axis] for k in range(len(ctx.outputs))]
    if sum(sizes) != t.shape[axis]:
        raise _Unsupported(f"pieces {sizes} do not add up to {t.shape[axis]}")
    if t.dtype == np.int8:
        qi = ctx.qp(t)
        for k in range(len(ctx.outputs)):
            qo = ctx.qp(ctx.tout(k))
            if (qi.s, qi.z) != (qo.s, qo.z):
                raise _Unsupported(f"an int8 {ctx.opcode} that changes the scale or zero "
                                   "point is not supported")
    ax = _TO_NCHW_AXIS[axis] if x.nchw else axis
    start = 0
    for k, size in enumerate(sizes):
        if size == t.shape[axis]:
            ctx.env[ctx.outputs[k]] = x
            continue
        y = ctx.p.slice(ctx.sub(str(k)), x.name, ax, start, start + size,
                        out=ctx.fresh(ctx.tout(k).name))
        ctx.set(y, nchw=x.nchw, i=k)
        start += size


@_lowers("GATHER")
def _gather(ctx: _Ctx) -> None:
    x = _data(ctx, "GATHER")
    _same_q(ctx, "GATHER")
    o = _options(ctx, "GatherOptions")
    if o is not None and o.BatchDims():
        raise _Unsupported("GATHER with batch_dims is not supported")
    if isinstance(ctx.get(1), _V):
        raise _Unsupported("GATHER of computed indices is not supported (constant indices only)")
    idx = np.asarray(ctx.const(1, "the indices"), np.int64)
    xs = ctx.plain(x)
    src = tuple(ctx.p.shapes[xs])
    ax = (int(o.Axis()) if o is not None else 0) % len(src)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= src[ax]:
        raise _Unsupported(f"indices out of range for axis {ax} of size {src[ax]}")
    y = _take(ctx, xs, idx.reshape(-1), ax, out=ctx.out_name("take"))
    want = tuple(ctx.tout().shape or (1,))
    if tuple(ctx.p.shapes[y]) != want:
        y = ctx.p.reshape(ctx.sub("reshape"), y, want, out=ctx.out_name())
    ctx.set(y)


@_lowers("RESIZE_NEAREST_NEIGHBOR")
def _resize_nearest(ctx: _Ctx) -> None:
    x = _data(ctx, "resizing")
    _same_q(ctx, "RESIZE_NEAREST_NEIGHBOR")
    o = _options(ctx, "ResizeNearestNeighborOptions")
    align = bool(o.AlignCorners()) if o is not None else False
    half = bool(o.HalfPixelCenters()) if o is not None else False
    _n, h, w, _c = ctx.tin(0).shape
    _n, oh, ow, _c = ctx.tout().shape

    def picks(n_in: int, n_out: int) -> np.ndarray:  # TFLite's GetNearestNeighbor (float32)
        scale = np.float32(n_in - 1) / np.float32(n_out - 1) if align and n_out > 1 else \
            np.float32(n_in) / np.float32(n_out)
        off = np.float32(0.5 if half else 0.0)
        pos = (np.arange(n_out, dtype=np.float32) + off) * scale
        # TfLiteRound (halves away from zero) with align_corners, else floor
        v = np.floor(pos + np.float32(0.5)) if align else np.floor(pos)
        v = np.minimum(v.astype(np.int64), n_in - 1)
        return np.maximum(v, 0) if half else v
    y = xs = ctx.nchw(x)
    ph, pw = picks(h, oh), picks(w, ow)
    if not np.array_equal(ph, np.arange(h)):
        y = _take(ctx, y, ph, 2, out=ctx.out_name("rows" if not np.array_equal(
            pw, np.arange(w)) else ""))
    if not np.array_equal(pw, np.arange(w)):
        y = _take(ctx, y, pw, 3, out=ctx.out_name())
    if y == xs:
        ctx.env[ctx.outputs[0]] = x
        return
    ctx.set(y, nchw=True)


@_lowers("HARD_SWISH")
def _hard_swish(ctx: _Ctx) -> None:
    x = _data(ctx, "HARD_SWISH")
    if ctx.quantised():
        raise _Unsupported("an int8 HARD_SWISH is not supported (float only)")
    p = ctx.p
    # x * relu6(x + 3) / 6
    t = p.elementwise(ctx.sub("add3"), "add_const", x.name, const=3.0, out=ctx.out_name("add3"))
    t = p.elementwise(ctx.sub("relu6"), "clip", t, params=(0.0, 6.0), out=ctx.out_name("relu6"))
    t = p.elementwise(ctx.sub("mul"), "mul", x.name, t, out=ctx.out_name("mul"))
    ctx.set(p.elementwise(ctx.sub(), "scale", t, const=1.0 / 6.0, out=ctx.out_name()),
            nchw=x.nchw)


@_lowers("BATCH_MATMUL")
def _batch_matmul(ctx: _Ctx) -> None:
    if ctx.quantised():
        raise _Unsupported("an int8 BATCH_MATMUL is not supported (float only)")
    o = _options(ctx, "BatchMatMulOptions")
    adj_x, adj_y = (bool(o.AdjX()), bool(o.AdjY())) if o is not None else (False, False)
    names = []
    for i in (0, 1):
        v = ctx.get(i)
        if isinstance(v, _V):
            names.append(ctx.plain(v))
        else:
            names.append(ctx.param(np.asarray(v, np.float32), ctx.tin(i).name))
    if not any(isinstance(ctx.get(i), _V) for i in (0, 1)):
        raise _Unsupported("a BATCH_MATMUL of two constants is not supported")
    ctx.set(ctx.p.matmul(ctx.sub(), names[0], names[1], out=ctx.out_name(), transpose_a=adj_x,
                         transpose_b=adj_y))


# --------------------------------------------------------------------------- the model

@dataclass
class TFLiteModel(ImportedModel):
    """An imported TFLite model: ImportedModel's fields (``onnx_outputs`` holds the file's
    output tensor names), ``quantised`` (True when any operator computes on int8 values) and
    the data inputs' quantisation (name -> (scale, zero point); int8 inputs only) and
    ``tensors``: every activation of the file (its tensor name) -> (the program tensor holding
    it, True when held NCHW), to compare any layer with the interpreter's; ``output_steps``:
    per output name, the value of one LSB of the int8 tensor it holds or dequantises;
    ``output_dtypes``: per output name, its type in the file (float32 or int8); ``kernels``:
    the LiteRT kernels whose int8 arithmetic the program reproduces (KERNELS)."""

    quantised: bool = False
    input_qparams: dict[str, tuple[float, int]] = field(default_factory=dict)
    tensors: dict[str, tuple[str, bool]] = field(default_factory=dict)
    output_steps: dict[str, float] = field(default_factory=dict)
    output_dtypes: dict[str, np.dtype] = field(default_factory=dict)
    kernels: str = "default"

    def make_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Return seeded values of the data inputs: float32 N(0, 1), or for an int8 input the
        int8 values of N(0, 1) samples quantised with its scale and zero point."""
        rng = np.random.default_rng(seed + 1)
        out = {}
        for n, (shape, dtype) in self.data.items():
            x = rng.standard_normal(shape).astype(np.float32)
            if dtype == np.int8:
                s, z = self.input_qparams[n]
                x = np.clip(np.floor(np.abs(x / np.float32(s)) + 0.5) * np.sign(x) + z,
                            -128, 127).astype(np.int8)
            out[n] = x
        return out


def _code_name(tfl, code: int) -> str:
    names = getattr(_code_name, "names", None)
    if names is None:
        names = {v: k for k, v in vars(tfl.BuiltinOperator).items()
                 if not k.startswith("_") and isinstance(v, int)}
        _code_name.names = names
    return names.get(code, f"builtin {code}")


def import_tflite(path: str | Path, name: str | None = None,
                  kernels: str = "default") -> TFLiteModel:
    """Return the TFLiteModel of the ``.tflite`` file ``path``: its Program (NCHW inside, see
    the module docstring), the constants it reads (program inputs with values), its data
    inputs (name -> (shape, numpy dtype)) and outputs. ``kernels`` picks the int8 arithmetic
    of the values (``KERNELS``): "default" computes what LiteRT's default CPU interpreter
    (the XNNPACK delegate) computes, "reference" what its reference kernels
    (OpResolverType.BUILTIN_REF) compute; float models are the same either way. Raises
    WorkloadError (one line naming the file and, for an operator, its position and code)."""
    path = str(path)
    if kernels not in KERNELS:
        raise WorkloadError(path, "kernels", f"must be one of {', '.join(KERNELS)}, got "
                            f"{kernels!r}")
    tfl = _tflite()
    buf = _read(path)
    model = _model(tfl, buf, path)
    where = f"{path}:1"
    try:
        if model.SubgraphsLength() < 1:
            raise WorkloadError(where, "file", "has no subgraph")
        graph = model.Subgraphs(0)
        tensors = _tensors(tfl, model, graph, buf, path)
        g_inputs = [int(i) for i in graph.InputsAsNumpy()] if graph.InputsLength() else []
        g_outputs = [int(i) for i in graph.OutputsAsNumpy()] if graph.OutputsLength() else []
        ops = []
        for k in range(graph.OperatorsLength()):
            op = graph.Operators(k)
            oc = model.OperatorCodes(op.OpcodeIndex())
            code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
            custom = (oc.CustomCode() or b"").decode("utf-8", "replace") \
                if code == tfl.BuiltinOperator.CUSTOM else None
            ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
            ops.append((op, code, custom, ins, outs))
    except WorkloadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt flatbuffer fails in assorted ways
        raise WorkloadError(where, "file", f"is not a readable TFLite flatbuffer (truncated or "
                            f"corrupt: {type(exc).__name__})") from None
    for _op, code, custom, _i, _o in ops:  # refuse a compiled file before anything else
        if custom == EDGETPU_OP:
            raise WorkloadError(where, f"custom op {EDGETPU_OP}", "the file was compiled by "
                                "edgetpu_compiler: give the model before compilation (the "
                                "uncompiled, full-integer .tflite)")
    for t in tensors:
        if t.signature is not None and any(d < 0 for d in t.signature):
            raise WorkloadError(where, f"tensor {t.name}", f"has a dynamic shape (signature "
                                f"{list(t.signature)}): convert the model with static shapes "
                                "(e.g. a fixed batch size)")
    program = Program(name or Path(path).stem)
    ctx = _Ctx(path, program, tensors, kernels)
    data: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    input_q: dict[str, tuple[float, int]] = {}
    for i in g_inputs:
        t = tensors[i]
        if t.dtype not in (np.float32, np.int8):
            raise WorkloadError(where, f"input {t.name}", f"element type {t.dtype} is not "
                                "supported (float32 or int8)")
        if not t.shape or any(d <= 0 for d in t.shape):
            raise WorkloadError(where, f"input {t.name}", f"has no static shape ({t.shape})")
        program.input(t.name, t.shape)
        ctx._names.add(t.name)
        ctx.env[i] = _V(t.name)
        data[t.name] = (t.shape, t.dtype)
        if t.dtype == np.int8:
            q = ctx.qp(t) if t.q is not None else None
            if q is None:
                raise WorkloadError(where, f"input {t.name}", "int8 input without a scale")
            input_q[t.name] = (q.s, q.z)
    for t in tensors:
        if t.data is not None and t.index not in ctx.env:
            ctx.env[t.index] = t.data
    quantised = False
    for k, (op, code, custom, ins, outs) in enumerate(ops):
        opname = _code_name(tfl, code)
        label = f"op {k} {custom if custom is not None else opname}"
        loc = f"{path}:{k + 1}"
        if custom is not None:
            raise WorkloadError(loc, label, f"custom operator {custom!r} is not supported")
        fn = LOWERINGS.get(opname)
        if fn is None:
            raise WorkloadError(loc, label, f"operator {opname} is not supported (supported: "
                                f"{', '.join(sorted(LOWERINGS))})")
        ctx.op, ctx.opcode, ctx.inputs, ctx.outputs = op, opname, ins, outs
        ctx.op_name = f"{opname.lower()}{k}"
        if len(outs) != 1 and opname not in _MULTI_OUTPUT:
            raise WorkloadError(loc, label, f"{len(outs)} outputs are not supported")
        for o_i in outs:
            out_t = tensors[o_i]
            if out_t.dtype not in (np.float32, np.int8):
                raise WorkloadError(loc, label, f"output {out_t.name} is {out_t.dtype}: only "
                                    "float32 and full-integer int8 models are supported")
        out_t = tensors[outs[0]]
        if opname in _WEIGHTED and out_t.dtype == np.float32 and len(ins) > 1 and \
                ins[1] >= 0 and tensors[ins[1]].dtype not in (np.float32, np.float16):
            raise WorkloadError(loc, label, f"{tensors[ins[1]].dtype} weights with float "
                                "activations (dynamic-range quantisation) are not supported: "
                                "convert float, or full-integer int8")
        try:
            fn(ctx)
        except _Unsupported as exc:
            raise WorkloadError(loc, label, str(exc)) from None
        except SimulatorInputError as exc:
            raise WorkloadError(loc, label, exc.message) from None
        except (ValueError, IndexError, TypeError, KeyError, AttributeError, ZeroDivisionError,
                OverflowError) as exc:  # a malformed operator
            raise WorkloadError(loc, label, f"{type(exc).__name__}: {exc}") from None
        quantised |= tensors[outs[0]].dtype == np.int8
    outputs = []
    for i in g_outputs:
        v = ctx.env.get(i)
        if not isinstance(v, _V) or v.name in data:
            raise WorkloadError(where, f"output {tensors[i].name}", "is a constant or a graph "
                                "input: the model computes nothing on the chip for it")
        if v.nchw:  # hand back TFLite's layout
            ctx.op_name = f"output{len(outputs)}"
            outputs.append(ctx.plain(v))
        else:
            outputs.append(v.name)
    if not program.ops:
        raise WorkloadError(where, "graph", "no operator computes anything on the chip")
    program.outputs = list(outputs)
    held = {tensors[i].name: (v.name, v.nchw) for i, v in ctx.env.items() if isinstance(v, _V)}
    steps = {}
    for i in g_outputs:
        t = tensors[i]
        src = ctx.dequantised.get(i)
        q = t.q if t.dtype == np.int8 else (tensors[src].q if src is not None else None)
        if q is not None and q.per_tensor:
            steps[t.name] = 1.0 if t.dtype == np.int8 else q.s
    return TFLiteModel(program.name, program, ctx.params, data, outputs,
                       [tensors[i].name for i in g_outputs], {}, quantised, input_q, held,
                       steps, {tensors[i].name: tensors[i].dtype for i in g_outputs}, kernels)
