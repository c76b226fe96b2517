"""The ``asic`` module's layers beyond Linear/ReLU: convolution, normalisation, pooling,
embedding, activations, dropout, multi-head attention, cross-entropy and Adam/AdamW.

Every layer is a composition of one-op primitives (``simulator.nn._apply``): each op runs on the
chip through the engine and is recorded in the step Program; its backward is the rule
``simulator.core.autodiff`` gives that op (the rules ``systolic-sim train`` uses). Parameters are
initialised as PyTorch initialises them, from the session generator (``asic.manual_seed``).

Layouts: parameters keep PyTorch's shapes (Conv2d weight (F, C/groups, kh, kw), LayerNorm and
BatchNorm weight and bias (C,), Embedding weight (V, D), MultiheadAttention in_proj_weight
(3E, E), read transposed by the array's feeder) except ``Linear`` weights, which are (in, out)
(the chip's layout; ``out_proj`` of attention is a Linear). Conv2d bias is (F,).

Dropout draws its keep-mask with numpy's generator seeded by ``asic.manual_seed`` (not
PyTorch's generator: masks are equal in distribution, not bit for bit); the mask, scaled by
1 / (1 - p), is a data input of one elementwise multiply, so forward and backward apply the same
mask. In eval mode, or with p = 0, Dropout is the identity and runs no op.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from . import tensor as _nn
from ..errors import WorkloadError
from .tensor import (SGD, Linear, Model, Parameter, Tensor, _S, _apply, _as_tensor, _const, _ew,
                 _exec, _reduction, _tensor_reshape, _vec, matmul)

__all__ = ["Adam", "AdamW", "BatchNorm2d", "Conv2d", "CrossEntropyLoss", "Dropout", "Embedding",
           "Flatten", "GELU", "LayerNorm", "MaxPool2d", "MultiheadAttention", "Softmax"]

_F = np.float32


def _positive(layer: str, **kw: Any) -> None:
    for n, v in kw.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise WorkloadError(layer, n, f"must be a positive integer, got {v!r}")


def _pair(layer: str, name: str, v: Any, minimum: int) -> tuple[int, int]:
    vals = (v, v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v
    try:
        vals = tuple(vals)
    except TypeError:
        vals = ()
    if len(vals) != 2 or any(isinstance(x, bool) or not isinstance(x, (int, np.integer))
                             or x < minimum for x in vals):
        raise WorkloadError(layer, name, f"must be an integer >= {minimum} or a pair of them, "
                            f"got {v!r}")
    return int(vals[0]), int(vals[1])


def _rate(layer: str, name: str, v: Any, lo: float = 0.0, hi: float = math.inf,
          hi_open: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
            v < lo or v > hi or (hi_open and v == hi):
        rng = f"[{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise WorkloadError(layer, name, f"must be a number in {rng}, got {v!r}")
    return float(v)


def _check_rank(layer: str, x: Tensor, ranks: Iterable[int], what: str) -> None:
    if x.ndim not in tuple(ranks):
        raise WorkloadError(layer, "input", f"expects {what} inputs, got shape {x.shape}")


# --------------------------------------------------------------------------- activations

class GELU(Model):
    """x * Phi(x) (``approximate='none'``, the erf form) or GPT-2's tanh form
    (``approximate='tanh'``); backward gelu_grad / gelu_tanh_grad on the vector unit."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise WorkloadError("GELU", "approximate", f"must be 'none' or 'tanh', got "
                                f"{approximate!r}")
        self.approximate = approximate

    def __repr__(self) -> str:
        return f"GELU(approximate={self.approximate!r})"

    def forward(self, x: Tensor) -> Tensor:
        """Return GELU of ``x`` elementwise (the erf form, or the tanh form with ``approximate="tanh"``), a Tensor of the same shape."""
        return _ew("gelu" if self.approximate == "none" else "gelu_tanh", [x], self._label)


class Softmax(Model):
    """exp(x - max) / sum(exp(x - max)) along ``dim`` (the vector unit's softmax op)."""

    def __init__(self, dim: int):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise WorkloadError("Softmax", "dim", f"must be an integer axis, got {dim!r}")
        self.dim = int(dim)

    def __repr__(self) -> str:
        return f"Softmax(dim={self.dim})"

    def forward(self, x: Tensor) -> Tensor:
        """Return softmax of ``x`` over ``dim``, a Tensor of the same shape."""
        if not -x.ndim <= self.dim < x.ndim:
            raise WorkloadError(self._label, "input", f"dim {self.dim} is out of range for "
                                f"shape {x.shape}")
        return _vec("softmax", [x], self._label, axis=self.dim % x.ndim)


class Flatten(Model):
    """Merge axes ``start_dim`` .. ``end_dim`` into one (a free reshape)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def __repr__(self) -> str:
        return f"Flatten({self.start_dim}, {self.end_dim})"

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` with dimensions ``start_dim..end_dim`` merged into one (a free reshape)."""
        return x.flatten(self.start_dim, self.end_dim)


class Dropout(Model):
    """In training mode, zero each element with probability p and scale the rest by 1/(1-p):
    y = x * mask, the mask (0 or 1/(1-p)) drawn from the session's dropout generator (see the
    module doc for how it differs from PyTorch's). Identity in eval mode or with p = 0."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = _rate("Dropout", "p", p, 0.0, 1.0)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p:g})"

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` with elements dropped (p) and the rest scaled by 1/(1-p) in training; ``x`` itself in eval mode or with p = 0."""
        return _dropout(x, self.p, self.training, self._label)


def _dropout(x: Tensor, p: float, training: bool, label: str) -> Tensor:
    if not training or p == 0.0:
        return x
    if p == 1.0:
        mask = np.zeros(x.shape, _F)
    else:
        keep = _S.dropout_rng.random(x.shape) >= p
        mask = np.where(keep, _F(1.0 / (1.0 - p)), _F(0.0)).astype(_F)
    return _ew("mul", [x, _const(mask)], label)


# --------------------------------------------------------------------------- normalisation

class LayerNorm(Model):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis (biased variance), the
    vector unit's layernorm op; backward: layernorm_grad for x, sums for weight and bias."""

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True):
        super().__init__()
        shape = normalized_shape if isinstance(normalized_shape, (tuple, list)) else \
            (normalized_shape,)
        if len(shape) != 1:
            raise WorkloadError("LayerNorm", "normalized_shape", f"only the last axis can be "
                                f"normalised, got {tuple(shape)}")
        _positive("LayerNorm", normalized_shape=shape[0])
        self.d = int(shape[0])
        self.eps = _rate("LayerNorm", "eps", eps)
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.d, _F))
            if bias:
                self.bias = Parameter(np.zeros(self.d, _F))
        self._one = _const(np.ones(self.d, _F))
        self._zero = _const(np.zeros(self.d, _F))

    def __repr__(self) -> str:
        return f"LayerNorm({self.d}, eps={self.eps:g})"

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` normalised over its last ``normalized_shape`` dimensions (times weight, plus bias), a Tensor of the same shape."""
        if x.shape[-1] != self.d:
            raise WorkloadError(self._label, "input", f"{self!r} expects (..., {self.d}) inputs, "
                                f"got {x.shape}")
        w = self._params.get("weight", self._one)
        b = self._params.get("bias", self._zero)
        return _vec("layernorm", [x, w, b], self._label, eps=self.eps)


class BatchNorm2d(Model):
    """Batch normalisation of (N, C, H, W) inputs per channel.

    Training mode (or no running statistics): the batch's mean and biased variance over
    (N, H, W), y = (x - mean) / sqrt(var + eps) * weight + bias, composed of reductions and
    elementwise ops (so its backward is the chain of their rules), and the running statistics
    updated as PyTorch does (momentum, unbiased variance). Eval mode: the running statistics.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        _positive("BatchNorm2d", num_features=num_features)
        self.num_features = int(num_features)
        self.eps = _rate("BatchNorm2d", "eps", eps)
        self.momentum = _rate("BatchNorm2d", "momentum", momentum, 0.0, 1.0)
        c = self.num_features
        if affine:
            self.weight = Parameter(np.ones(c, _F))
            self.bias = Parameter(np.zeros(c, _F))
        self.track_running_stats = bool(track_running_stats)
        self.running_mean = np.zeros(c, _F)
        self.running_var = np.ones(c, _F)

    def __repr__(self) -> str:
        return f"BatchNorm2d({self.num_features}, eps={self.eps:g}, momentum={self.momentum:g})"

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` (N, C, H, W) normalised per channel: batch statistics in training (running statistics updated), running statistics in eval mode; same shape."""
        c = self.num_features
        if x.ndim != 4 or x.shape[1] != c:
            raise WorkloadError(self._label, "input", f"{self!r} expects (N, {c}, H, W) inputs, "
                                f"got {x.shape}")
        label = self._label
        if self.training or not self.track_running_stats:
            n = x.shape[0] * x.shape[2] * x.shape[3]
            mean = _reduction(x, "mean", (0, 2, 3), True)
            cen = _ew("sub", [x, mean], label)
            var = _reduction(_ew("mul", [cen, cen], label), "mean", (0, 2, 3), True)
            xhat = _ew("div", [cen, _ew("sqrt", [_ew("add_const", [var], label,
                                                        const=self.eps)], label)], label)
            if self.training and self.track_running_stats:
                self._update_running(mean, var, n)
        else:
            mean = _const(self.running_mean.reshape(1, c, 1, 1))
            var = _const(self.running_var.reshape(1, c, 1, 1))
            std = _ew("sqrt", [_ew("add_const", [var], label, const=self.eps)], label)
            xhat = _ew("div", [_ew("sub", [x, mean], label), std], label)
        if "weight" not in self._params:
            return xhat
        w = _tensor_reshape(self.weight, (1, c, 1, 1))
        b = _tensor_reshape(self.bias, (1, c, 1, 1))
        return _ew("add", [_ew("mul", [xhat, w], label), b], label)

    def _update_running(self, mean: Tensor, var: Tensor, n: int) -> None:
        """running = (1 - momentum) running + momentum * batch (the variance made unbiased by
        folding n / (n - 1) into the constant), on the vector unit; no gradient flows through it."""
        c, m = self.num_features, self.momentum
        for attr, batch, rate in (("running_mean", mean.value.reshape(c), m),
                                  ("running_var", var.value.reshape(c), m * n / max(n - 1, 1))):
            old = getattr(self, attr)
            a, b = _nn._S.new_name(), _nn._S.new_name()
            scaled_name, scaled = _exec(lambda p: p.elementwise(
                f"{self._label}.{attr}.{a}", "scale", f"{a}.in", const=1.0 - m, out=a),
                {f"{a}.in": old})
            _, new = _exec(lambda p: p.elementwise(
                f"{self._label}.{attr}.{b}", "axpy", scaled_name, f"{b}.in", const=rate, out=b),
                {scaled_name: scaled, f"{b}.in": batch})
            setattr(self, attr, new.astype(_F))


# --------------------------------------------------------------------------- conv and pooling

class Conv2d(Model):
    """2-D convolution of (N, C, H, W) inputs on the array (im2col lowering), weight
    (F, C/groups, kh, kw) and bias (F,) initialised as PyTorch's U(-1/sqrt(fan_in), ...)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True):
        super().__init__()
        _positive("Conv2d", in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise WorkloadError("Conv2d", "groups", f"in_channels {in_channels} and "
                                f"out_channels {out_channels} must both divide by {groups}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), \
            int(groups)
        self.kernel_size = _pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = _pair("Conv2d", "stride", stride, 1)
        self.padding = _pair("Conv2d", "padding", padding, 0)
        self.dilation = _pair("Conv2d", "dilation", dilation, 1)
        kh, kw = self.kernel_size
        fan_in = in_channels // groups * kh * kw
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = Parameter(_S.rng.uniform(-bound, bound,
                                               (out_channels, in_channels // groups, kh, kw)))
        if bias:
            self.bias = Parameter(_S.rng.uniform(-bound, bound, out_channels))

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding})")

    def forward(self, x: Tensor) -> Tensor:
        """Return the convolution of ``x`` (N, C, H, W): a Tensor (N, out_channels, H_out, W_out), run as im2col GEMMs on the array."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise WorkloadError(self._label, "input", f"{self!r} expects (N, {self.in_channels}"
                                f", H, W) inputs, got {x.shape}")
        w = self.weight
        label = self._label

        def build(p, o):
            try:
                p.conv2d(f"{label}.conv.{o}", x.name, w.name, stride=self.stride,
                         padding=self.padding, dilation=self.dilation, groups=self.groups, out=o)
            except WorkloadError as exc:
                raise WorkloadError(label, "input", exc.message) from None
        y = _apply(label, (x, w), build)
        if "bias" not in self._params:
            return y
        return _ew("add", [y, _tensor_reshape(self.bias, (self.out_channels, 1, 1))], label)


class MaxPool2d(Model):
    """Max over kernel windows of (N, C, H, W) inputs (padding never wins); backward routes each
    gradient to its window's first maximum, as PyTorch does."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0):
        super().__init__()
        self.kernel_size = _pair("MaxPool2d", "kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else _pair("MaxPool2d", "stride",
                                                                     stride, 1)
        self.padding = _pair("MaxPool2d", "padding", padding, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise WorkloadError("MaxPool2d", "padding", f"must be at most half the kernel "
                                f"{self.kernel_size}, got {self.padding}")

    def __repr__(self) -> str:
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride})"

    def forward(self, x: Tensor) -> Tensor:
        """Return the max pool of ``x`` (N, C, H, W): a Tensor (N, C, H_out, W_out)."""
        _check_rank(self._label, x, (4,), "(N, C, H, W)")
        return _vec("maxpool2d", [x], self._label, kernel=self.kernel_size, stride=self.stride,
                    padding=self.padding)


# --------------------------------------------------------------------------- embedding

class Embedding(Model):
    """Rows of ``weight`` (num_embeddings, embedding_dim), initialised N(0, 1), picked by integer
    ids of any shape (a gather on the vector unit); backward scatter-adds into the table."""

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        _positive("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.weight = Parameter(_S.rng.standard_normal((num_embeddings, embedding_dim)))

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"

    def __call__(self, ids: Any, *args: Any, **kwargs: Any) -> Tensor:
        raw = ids.value if isinstance(ids, Tensor) else np.asarray(ids)
        if raw.size and (not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)) or
                         raw.min() < 0 or raw.max() >= self.num_embeddings):
            raise WorkloadError(self._label, "input", f"ids must be integers in [0, "
                                f"{self.num_embeddings}), got values in [{raw.min()}, "
                                f"{raw.max()}]")
        if raw.ndim == 0:
            raw = raw.reshape(1)
        return self.forward(_const(raw.astype(_F)))

    def forward(self, ids: Tensor) -> Tensor:
        """Return the rows of ``weight`` at ``ids``: a Tensor ``ids.shape + (embedding_dim,)``."""
        return _vec("gather", [self.weight, ids], self._label)


# --------------------------------------------------------------------------- attention

class MultiheadAttention(Model):
    """PyTorch's nn.MultiheadAttention: q, k, v projected by ``in_proj_weight`` (3E, E) and
    ``in_proj_bias`` (3E,), split into heads, softmax(q k^T / sqrt(E / heads)) v per head on the
    array, heads merged and projected by ``out_proj`` (a Linear). Inputs are (L, N, E), or
    (N, L, E) with ``batch_first``. ``attn_mask`` (L, S): boolean (True = masked) or added to
    the scores; ``key_padding_mask`` (N, S) boolean. Returns (output, weights): the attention
    weights averaged over heads (``average_attn_weights``) or per head, or None without
    ``need_weights``."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False):
        super().__init__()
        _positive("MultiheadAttention", embed_dim=embed_dim, num_heads=num_heads)
        if embed_dim % num_heads:
            raise WorkloadError("MultiheadAttention", "num_heads", f"embed_dim {embed_dim} must "
                                f"divide by num_heads {num_heads}")
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.dropout = _rate("MultiheadAttention", "dropout", dropout, 0.0, 1.0)
        self.batch_first = bool(batch_first)
        e = self.embed_dim
        bound = math.sqrt(6.0 / (e + 3 * e))  # xavier_uniform_ of a (3E, E) matrix
        self.in_proj_weight = Parameter(_S.rng.uniform(-bound, bound, (3 * e, e)))
        if bias:
            self.in_proj_bias = Parameter(np.zeros(3 * e, _F))
        self.out_proj = Linear(e, e, bias=bias)
        if bias:
            self.out_proj.bias.value[...] = 0.0

    def __repr__(self) -> str:
        return f"MultiheadAttention({self.embed_dim}, {self.num_heads})"

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Any = None,
                need_weights: bool = True, attn_mask: Any = None,
                average_attn_weights: bool = True, is_causal: bool = False):
        """Return (attention output, attention weights or None), as PyTorch's: the output has
        the query's shape; the weights (N, L, S), averaged over heads unless told otherwise."""
        label, e, h = self._label, self.embed_dim, self.num_heads
        query, key, value = (_as_tensor(t) for t in (query, key, value))
        layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
        for n, t in (("query", query), ("key", key), ("value", value)):
            if t.ndim != 3 or t.shape[-1] != e:
                raise WorkloadError(label, n, f"expects {layout} inputs with E = {e}, got "
                                    f"{t.shape}")
        if key.shape != value.shape:
            raise WorkloadError(label, "value", f"key {key.shape} and value {value.shape} differ")
        bdim = 0 if self.batch_first else 1
        if query.shape[bdim] != key.shape[bdim]:
            raise WorkloadError(label, "key", f"batch sizes differ: query {query.shape}, key "
                                f"{key.shape}")
        if is_causal and attn_mask is None:
            raise WorkloadError(label, "is_causal", "is a hint that needs attn_mask (as in "
                                "PyTorch)")
        same = query is key and key is value

        def to_batch_first(t):
            return t if self.batch_first else t.transpose(0, 1)
        w, b = self.in_proj_weight, self._params.get("in_proj_bias")

        def project(x, lo, hi):  # x @ W[lo:hi]^T + b[lo:hi]
            wi = w if (lo, hi) == (0, 3 * e) else w[lo:hi]
            y = matmul(x, wi, transpose_b=True, label=label)
            if b is None:
                return y
            return _ew("add", [y, b if (lo, hi) == (0, 3 * e) else b[lo:hi]], label)
        if same:
            qkv = project(to_batch_first(query), 0, 3 * e)
            q, k, v = qkv[:, :, 0:e], qkv[:, :, e:2 * e], qkv[:, :, 2 * e:]
        else:
            q = project(to_batch_first(query), 0, e)
            k = project(to_batch_first(key), e, 2 * e)
            v = project(to_batch_first(value), 2 * e, 3 * e)
        n, lq, s = q.shape[0], q.shape[1], k.shape[1]
        dh = e // h

        def heads(t, length):
            return t.reshape(n, length, h, dh).permute(0, 2, 1, 3)  # (N, H, len, dh)
        qh = _ew("scale", [heads(q, lq)], label, const=1.0 / math.sqrt(dh))
        scores = matmul(qh, heads(k, s), transpose_b=True, label=label)  # (N, H, L, S)
        scores = self._mask(scores, attn_mask, key_padding_mask, n, lq, s)
        attn = _vec("softmax", [scores], label, axis=3)
        attn = _dropout(attn, self.dropout, self.training, label)
        o = matmul(attn, heads(v, s), label=label)  # (N, H, L, dh)
        o = o.permute(0, 2, 1, 3).reshape(n, lq, e)
        out = self.out_proj(o)
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, (attn.mean(dim=1) if average_attn_weights else attn)

    def _mask(self, scores: Tensor, attn_mask: Any, key_padding_mask: Any, n: int, lq: int,
              s: int) -> Tensor:
        label = self._label
        if attn_mask is not None:
            m = np.asarray(attn_mask.value if isinstance(attn_mask, Tensor) else attn_mask)
            if m.shape not in ((lq, s), (n * self.num_heads, lq, s)):
                raise WorkloadError(label, "attn_mask", f"must be ({lq}, {s}) or "
                                    f"({n * self.num_heads}, {lq}, {s}), got {m.shape}")
            m = m.reshape((1, 1, lq, s) if m.ndim == 2 else (n, self.num_heads, lq, s))
            if m.dtype == np.bool_:
                scores = _ew("masked_fill", [scores, _const(m.astype(_F))], label,
                             const=-math.inf)
            else:
                scores = _ew("add", [scores, _const(m.astype(_F))], label)
        if key_padding_mask is not None:
            m = np.asarray(key_padding_mask.value if isinstance(key_padding_mask, Tensor)
                           else key_padding_mask)
            if m.shape != (n, s):
                raise WorkloadError(label, "key_padding_mask", f"must be ({n}, {s}), got "
                                    f"{m.shape}")
            m = m.reshape(n, 1, 1, s)
            if m.dtype == np.bool_:
                scores = _ew("masked_fill", [scores, _const(m.astype(_F))], label,
                             const=-math.inf)
            else:
                scores = _ew("add", [scores, _const(m.astype(_F))], label)
        return scores


# --------------------------------------------------------------------------- loss

class CrossEntropyLoss:
    """Cross-entropy of logits (N, C) against class ids (N,) or class probabilities (N, C):
    loss = -sum(q * log_softmax(x)) / N over rows (``reduction='mean'``; ids equal to
    ``ignore_index`` drop out of the sum and the count) or without the division ('sum'); q is
    the one-hot (or given) target mixed with the uniform distribution by ``label_smoothing``.
    Backward is the fused dX = (softmax(x) * sum(q) - q) / N."""

    def __init__(self, reduction: str = "mean", ignore_index: int = -100,
                 label_smoothing: float = 0.0):
        if reduction not in ("mean", "sum"):
            raise WorkloadError("CrossEntropyLoss", "reduction", f"must be 'mean' or 'sum', got "
                                f"{reduction!r}")
        self.reduction = reduction
        self.ignore_index = int(ignore_index)
        self.label_smoothing = _rate("CrossEntropyLoss", "label_smoothing", label_smoothing,
                                     0.0, 1.0)

    def _targets(self, shape: tuple[int, int], labels: Any) -> tuple[np.ndarray, float]:
        n, c = shape
        raw = labels.value if isinstance(labels, Tensor) else np.asarray(labels)
        eps = self.label_smoothing
        if raw.shape == (n, c) and np.issubdtype(raw.dtype, np.floating):
            q = raw.astype(_F) * _F(1 - eps) + _F(eps / c)
            return q.astype(_F), float(n)
        if raw.shape == (1, n) and isinstance(labels, Tensor):  # a 1-D Tensor became one row
            raw = raw.reshape(n)
        if raw.shape != (n,) or (raw.size and np.any(raw != np.round(raw))):
            raise WorkloadError("CrossEntropyLoss", "labels", f"must be class ids of shape "
                                f"({n},) or probabilities of shape ({n}, {c}), got "
                                f"{raw.dtype} {raw.shape}")
        ids = raw.astype(np.int64)
        valid = ids != self.ignore_index
        bad = valid & ((ids < 0) | (ids >= c))
        if bad.any():
            raise WorkloadError("CrossEntropyLoss", "labels", f"class ids must lie in [0, {c}), "
                                f"got {ids[bad][0]}")
        q = np.zeros((n, c), _F)
        q[np.arange(n)[valid], ids[valid]] = 1.0
        if eps:
            q = (q * _F(1 - eps) + _F(eps / c)) * valid[:, None].astype(_F)
        return q.astype(_F), float(valid.sum())

    def __call__(self, outputs: Tensor, labels: Any) -> Tensor:
        if not isinstance(outputs, Tensor) or outputs.ndim != 2:
            raise WorkloadError("CrossEntropyLoss", "outputs", "must be the model's (N, C) "
                                "logits tensor (reshape (..., C) logits to (-1, C)), got "
                                f"{getattr(outputs, 'shape', type(outputs).__name__)}")
        q, count = self._targets(outputs.shape, labels)
        denom = count if self.reduction == "mean" else 1.0
        # the mean over no counted samples (every label ignore_index) is nan, as in PyTorch
        inv = 1.0 / denom if denom else float("nan")
        label = "CrossEntropyLoss"
        tq = _const(q)
        ls = _vec("log_softmax", [Tensor(outputs.value, name=outputs.name, _keep_shape=True)],
                  label, axis=1)
        s = _reduction(_ew("mul", [tq, ls], label), "sum", None, True)
        loss = _ew("scale", [s], label, const=-inv)
        loss._parents = (outputs,)
        loss._is_loss = True
        rowsum = q.sum(axis=1, keepdims=True, dtype=_F)

        def back(_g, _name) -> None:
            p = _ew("exp", [ls], label)
            if not np.all(rowsum == 1.0):
                p = _ew("mul", [p, _const(rowsum)], label)
            # no counted sample: PyTorch's gradient is 0 (every row weighs 0), not nan
            dy = _ew("scale", [_ew("sub", [p, tq], label)], label, const=inv if denom else 0.0)
            _nn._set_grad(outputs, dy.value, dy.name)
        loss._backward = back
        return loss


# --------------------------------------------------------------------------- optimizers

class _OptimizerBase(SGD):
    def _run(self, tag: str, kind: str, args: list[tuple[str, np.ndarray]], const: float = 0.0,
             params: tuple[float, ...] = ()) -> tuple[str, np.ndarray]:
        out = _S.new_name()
        name = type(self).__name__
        return _exec(lambda pr: pr.elementwise(f"{name}.{tag}.{out}", kind, *[a[0] for a in args],
                                               const=const, params=params, out=out),
                     dict(args))


class Adam(_OptimizerBase):
    """Adam as PyTorch defines it (torch.optim.Adam, amsgrad off): m = lerp(m, g, 1 - beta1),
    v = beta2 v + (1 - beta2) g^2, w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t)
    + eps); ``weight_decay`` adds wd * w to the gradient. The same vector ops (adam_m, adam_v,
    adam_w) as ``systolic-sim train``'s optimizer."""

    decoupled = False

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        name = type(self).__name__
        self.params = list(params)
        if not self.params:
            raise WorkloadError(name, "params", "no parameters to optimise")
        self.lr = _rate(name, "lr", lr)
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise WorkloadError(name, "betas", f"must be a pair, got {betas!r}") from None
        self.betas = (_rate(name, "betas", b1, 0.0, 1.0, True),
                      _rate(name, "betas", b2, 0.0, 1.0, True))
        self.eps = _rate(name, "eps", eps)
        self.weight_decay = _rate(name, "weight_decay", weight_decay)
        self.state: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}

    def step(self) -> None:
        """Update every parameter that has a gradient; close the step and time it."""
        b1, b2 = self.betas
        wd = self.weight_decay
        for p in self.params:
            if p.grad is None:
                continue
            t, m, v = self.state.get(id(p), (0, np.zeros_like(p.value), np.zeros_like(p.value)))
            t += 1
            g = (p._grad_name, p.grad)
            if wd and not self.decoupled:  # g = g + wd * w
                g = self._run("decay", "axpy", [g, (p.name, p.value)], wd)
            m = self._run("m", "adam_m", [(_S.new_name(), m), g], b1)
            v = self._run("v", "adam_v", [(_S.new_name(), v), g], b2)
            bc1 = 1 - b1 ** t
            bc2 = math.sqrt(1 - b2 ** t)
            _, new = self._run("update", "adam_w", [(p.name, p.value), m, v],
                               params=(self.lr, wd if self.decoupled else 0.0, bc1, bc2,
                                       self.eps))
            self.state[id(p)] = (t, m[1], v[1])
            p.value = new
            p.name = _S.new_name()
        _nn._close_step()


class AdamW(Adam):
    """AdamW (torch.optim.AdamW): Adam with decoupled weight decay, w *= 1 - lr * wd before the
    update (default wd 0.01)."""

    decoupled = True

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr, betas, eps, weight_decay)
