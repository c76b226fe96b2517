"""Convolution layers lowered to GEMM by im2col, the way SCALE-Sim lowers them.

For an input of H x W x channels, a filter of fh x fw, ``filters`` output channels and a stride:

    out_h = ceil((H + 2*padding - fh + stride) / stride)     (likewise out_w)
    M = out_h * out_w,  K = fh * fw * channels,  N = filters

Note the ceiling (SCALE-Sim's): when the stride does not divide evenly, the last output row or
column has a window that runs past the (padded) input; those taps read zeros, as if the input
had extra zero padding at the bottom and right. ``im2col`` and ``conv2d_direct`` both follow it,
so the GEMM path and the direct convolution agree value for value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import WorkloadError

__all__ = ["ConvLayer", "im2col", "weights_to_gemm", "conv2d_direct", "conv2d_gemm"]


@dataclass(frozen=True)
class ConvLayer:
    """A conv layer's shape (no batch): ifmap H x W x channels, fh x fw filters, stride, padding."""

    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    filters: int
    stride: int = 1
    padding: int = 0

    def __post_init__(self) -> None:
        for name in ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "filters", "stride"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise WorkloadError("conv", f"conv.{name}", f"must be a positive integer, got {v!r}")
        p = self.padding
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 0:
            raise WorkloadError("conv", "conv.padding", f"must be an integer >= 0, got {p!r}")
        if self.filter_h > self.ifmap_h + 2 * p or self.filter_w > self.ifmap_w + 2 * p:
            raise WorkloadError("conv", "conv.filter_h" if self.filter_h > self.ifmap_h + 2 * p
                                else "conv.filter_w",
                                f"filter {self.filter_h}x{self.filter_w} is larger than the padded "
                                f"input {self.ifmap_h + 2 * p}x{self.ifmap_w + 2 * p}")

    @property
    def out_h(self) -> int:
        """Return output rows: ceil((H + 2p - fh + stride) / stride), SCALE-Sim's convention."""
        return -(-(self.ifmap_h + 2 * self.padding - self.filter_h + self.stride) // self.stride)

    @property
    def out_w(self) -> int:
        """Return output columns, as out_h."""
        return -(-(self.ifmap_w + 2 * self.padding - self.filter_w + self.stride) // self.stride)

    @property
    def gemm_shape(self) -> tuple[int, int, int]:
        """Return (M, N, K) = (out_h*out_w, filters, fh*fw*channels) of the lowered GEMM."""
        return (self.out_h * self.out_w, self.filters,
                self.filter_h * self.filter_w * self.channels)

    @property
    def macs(self) -> int:
        """Return the multiply-accumulates of the layer, M*N*K."""
        m, n, k = self.gemm_shape
        return m * n * k


def _padded(layer: ConvLayer, x: np.ndarray) -> np.ndarray:
    """Return x (H, W, C) zero-padded by ``padding`` plus what the ceiling needs at bottom/right."""
    p = layer.padding
    need_h = (layer.out_h - 1) * layer.stride + layer.filter_h
    need_w = (layer.out_w - 1) * layer.stride + layer.filter_w
    extra_h = max(0, need_h - (layer.ifmap_h + 2 * p))
    extra_w = max(0, need_w - (layer.ifmap_w + 2 * p))
    return np.pad(x, ((p, p + extra_h), (p, p + extra_w), (0, 0)))


def _check_input(layer: ConvLayer, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.shape != (layer.ifmap_h, layer.ifmap_w, layer.channels):
        raise WorkloadError("conv", "ifmap", f"must have shape (H, W, C) = "
                            f"{(layer.ifmap_h, layer.ifmap_w, layer.channels)}, got {x.shape}")
    return x


def im2col(layer: ConvLayer, x: np.ndarray) -> np.ndarray:
    """Return the A operand (M x K) of the lowered GEMM: one row per output pixel (row-major),
    columns ordered (filter row, filter column, channel)."""
    xp = _padded(layer, _check_input(layer, x))
    s = layer.stride
    rows = []
    for oy in range(layer.out_h):
        for ox in range(layer.out_w):
            win = xp[oy * s:oy * s + layer.filter_h, ox * s:ox * s + layer.filter_w, :]
            rows.append(win.reshape(-1))
    return np.stack(rows)


def weights_to_gemm(layer: ConvLayer, w: np.ndarray) -> np.ndarray:
    """Return the B operand (K x N) from weights of shape (fh, fw, channels, filters)."""
    w = np.asarray(w)
    want = (layer.filter_h, layer.filter_w, layer.channels, layer.filters)
    if w.shape != want:
        raise WorkloadError("conv", "weights", f"must have shape (fh, fw, C, filters) = {want}, "
                            f"got {w.shape}")
    return w.reshape(-1, layer.filters)


def conv2d_direct(layer: ConvLayer, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Return the direct convolution (out_h, out_w, filters), summing in float64 or int64."""
    xp = _padded(layer, _check_input(layer, x))
    acc_type = np.int64 if np.issubdtype(np.asarray(x).dtype, np.integer) else np.float64
    xp = xp.astype(acc_type)
    w = np.asarray(w).astype(acc_type)
    s = layer.stride
    out = np.zeros((layer.out_h, layer.out_w, layer.filters), acc_type)
    for dy in range(layer.filter_h):
        for dx in range(layer.filter_w):
            patch = xp[dy:dy + s * (layer.out_h - 1) + 1:s, dx:dx + s * (layer.out_w - 1) + 1:s, :]
            out += np.tensordot(patch, w[dy, dx], axes=([2], [0]))
    return out


def conv2d_gemm(layer: ConvLayer, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the GEMM operands (A, B) of the layer; O = A @ B reshapes to (out_h, out_w, N)."""
    return im2col(layer, x), weights_to_gemm(layer, w)
