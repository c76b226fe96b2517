"""Plain-numpy float32 building blocks of the zoo models' numpy twins.

These are written from the layers' textbook definitions, independently of the simulator's
vector unit and lowering code, so a twin checks the chip's Program rather than repeating it.
``mm(a, b)`` is the matmul of the chip's number format (see ``make_mm``): the twin rounds matmul
operands as the array does and computes everything else in float32.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["make_mm", "linear", "layernorm", "rmsnorm", "softmax", "log_softmax", "gelu",
           "gelu_tanh", "sigmoid", "conv2d", "batchnorm", "maxpool2d", "avgpool2d",
           "attention"]

F32 = np.float32


def make_mm(dtype: str = "fp32") -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Return matmul(a, b) (numpy broadcasting of batch dims) in the chip's number format:
    fp32 as is; fp16/bf16 operands rounded to the type; int8: each operand tensor quantised
    symmetrically per tensor (scale max|x|/127, round half to even, clip to +-127), an integer
    matmul, and the result times the product of the scales."""
    if dtype == "int8":
        def mm8(a, b):
            qa, sa = _quant(a)
            qb, sb = _quant(b)
            return np.matmul(qa, qb).astype(F32) * F32(sa * sb)
        return mm8
    if dtype in ("fp16", "bf16"):
        import ml_dtypes
        t = np.float16 if dtype == "fp16" else ml_dtypes.bfloat16

        def mm16(a, b):
            ra = np.asarray(a, F32).astype(t).astype(F32)
            rb = np.asarray(b, F32).astype(t).astype(F32)
            return np.matmul(ra, rb)
        return mm16
    return lambda a, b: np.matmul(np.asarray(a, F32), np.asarray(b, F32))


def _quant(x):
    x = np.asarray(x, F32)
    amax = float(np.max(np.abs(x)))
    s = F32(amax / 127.0) if amax > 0 else F32(1.0)
    return np.clip(np.rint(x / s), -127, 127).astype(np.int64), s


def linear(x, w, b, mm):
    """Return x @ w + b (w laid out (in, out))."""
    y = mm(x, w)
    return y if b is None else y + b


def layernorm(x, g, b, eps):
    """Return (x - mean) / sqrt(var + eps) * g + b over the last axis (biased variance)."""
    mu = x.mean(-1, keepdims=True, dtype=F32)
    d = x - mu
    var = (d * d).mean(-1, keepdims=True, dtype=F32)
    return d / np.sqrt(var + F32(eps)) * g + b


def rmsnorm(x, g, eps):
    """Return x / sqrt(mean(x^2) + eps) * g over the last axis."""
    return x / np.sqrt((x * x).mean(-1, keepdims=True, dtype=F32) + F32(eps)) * g


def softmax(x, axis=-1):
    """Return exp(x - max) / sum(exp(x - max)) along ``axis``."""
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True, dtype=F32)


def log_softmax(x, axis=-1):
    """Return x - max - log(sum(exp(x - max))) along ``axis``."""
    z = x - x.max(axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis, keepdims=True, dtype=F32))


def gelu(x):
    """Return x * Phi(x) (the erf form)."""
    from scipy.special import erf
    return (F32(0.5) * x * (F32(1) + erf(x.astype(np.float64) / math.sqrt(2.0)).astype(F32)))


def gelu_tanh(x):
    """Return GPT-2's tanh approximation of GELU."""
    return F32(0.5) * x * (F32(1) + np.tanh(F32(math.sqrt(2 / math.pi)) * (x + F32(0.044715) * x ** 3)))


def sigmoid(x):
    """Return 1 / (1 + exp(-x))."""
    return F32(1) / (F32(1) + np.exp(-x))


def conv2d(x, w, stride, padding, mm, groups=1, dilation=1):
    """Return the NCHW convolution of x with w (F, C/groups, kh, kw), floor output sizes,
    through sliding windows and one matmul per group."""
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    span_h, span_w = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (span_h, span_w), axis=(2, 3))
    win = win[:, :, ::stride, ::stride, ::dilation, ::dilation]  # n c oh ow kh kw
    oh, ow = win.shape[2], win.shape[3]
    outs = []
    fg = f // groups
    for g in range(groups):
        cols = win[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, -1)
        wm = w[g * fg:(g + 1) * fg].reshape(fg, -1).T
        outs.append(mm(cols, wm).reshape(n, oh, ow, fg))
    return np.concatenate(outs, axis=3).transpose(0, 3, 1, 2)


def batchnorm(x, g, b, mean, var, eps):
    """Return inference BatchNorm over axis 1, folded: x * s + (b - mean * s),
    s = g / sqrt(var + eps)."""
    s = g / np.sqrt(var + F32(eps))
    sh = (1, -1, 1, 1)
    return x * s.reshape(sh) + (b - mean * s).reshape(sh)


def maxpool2d(x, k, s, p):
    """Return the k x k max pool with stride s and padding p (padding never wins)."""
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return win.max(axis=(4, 5)).astype(F32)


def avgpool2d(x, k, s):
    """Return the k x k average pool with stride s (no padding)."""
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return win.mean(axis=(4, 5), dtype=F32)


def attention(q, k, v, heads, mm, mask=None):
    """Return multi-head attention of q, k, v (B, S, D): heads split, softmax(q k^T / sqrt(d))
    with future positions masked when ``mask`` (S, S, True = masked) is given, merged."""
    bsz, s, d = q.shape
    dh = d // heads

    def split(t):
        return t.reshape(bsz, s, heads, dh).transpose(0, 2, 1, 3)
    qh, kh, vh = split(q), split(k), split(v)
    scores = mm(qh, kh.transpose(0, 1, 3, 2)) * F32(1.0 / math.sqrt(dh))
    if mask is not None:
        scores = np.where(mask, F32(-1e9), scores)
    p = softmax(scores, -1)
    return mm(p, vh).transpose(0, 2, 1, 3).reshape(bsz, s, d)
