"""A convolution's geometry, as the memory model needs it to count feature-map traffic.

With ``memory.conv_lowering: feeder`` the im2col matrix of a convolution is expanded on chip
(in the feeder's address generation), so DRAM and the A buffer hold the input feature map: an
A tile costs the input elements its windows touch, halos included (see docs/conv-traffic.md and
``simulator.core._conv``). ``ConvGeometry`` carries one group's geometry from the workload (a
``Conv2d`` op or a topology's conv layer) down to the numba hot loops as an int64 array.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["ConvGeometry", "conv_geometry_of"]


@dataclass(frozen=True)
class ConvGeometry:
    """One group of a 2-D convolution: batch, input H x W, channels per group, filter
    kh x kw, stride, padding, dilation and output oh x ow (all in elements)."""

    nb: int
    h: int
    w: int
    c: int  # input channels of one group
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    oh: int
    ow: int

    @property
    def gemm_m(self) -> int:
        """Return the im2col rows (output pixels over the batch)."""
        return self.nb * self.oh * self.ow

    @property
    def gemm_k(self) -> int:
        """Return the im2col columns (channels x filter taps)."""
        return self.c * self.kh * self.kw

    def as_array(self) -> np.ndarray:
        """Return the geometry as the int64 array the hot loops take (``_conv.G_*`` order)."""
        return np.array([self.nb, self.h, self.w, self.c, self.kh, self.kw, self.sh, self.sw,
                         self.ph, self.pw, self.dh, self.dw, self.oh, self.ow], np.int64)

    def touched_elems(self) -> int:
        """Return the input elements (of one group) that any window touches: the feature map
        less what only padding or stride gaps would skip; elements. Every output pixel meets
        every tap, so the touched set is (rows any window reaches) x (columns any reaches)."""
        return self.nb * self.c * _reached(self.oh, self.sh, self.ph, self.kh, self.dh, self.h) \
            * _reached(self.ow, self.sw, self.pw, self.kw, self.dw, self.w)


@lru_cache(maxsize=4096)
def _reached(out: int, stride: int, pad: int, taps: int, dilation: int, size: int) -> int:
    """Return how many of the ``size`` input rows (or columns) some window reaches."""
    hit = {o * stride - pad + t * dilation for o in range(out) for t in range(taps)}
    return sum(1 for i in hit if 0 <= i < size)


def conv_geometry_of(program, op) -> ConvGeometry:
    """Return the geometry of one group of a ``Conv2d`` op of ``program`` (NCHW input,
    (F, C/groups, kh, kw) weight)."""
    nb, _c, h, w = program.shapes[op.inputs[0]]
    _f, cg, kh, kw = program.shapes[op.inputs[1]]
    _nb, _f2, oh, ow = program.shapes[op.output]
    return ConvGeometry(nb, h, w, cg, kh, kw, op.stride[0], op.stride[1], op.padding[0],
                        op.padding[1], op.dilation[0], op.dilation[1], oh, ow)


def conv_geometry_of_layer(layer) -> ConvGeometry:
    """Return the geometry of a topology's conv layer (``kernels.conv.ConvLayer``: batch 1,
    one group, square stride, no dilation)."""
    return ConvGeometry(1, layer.ifmap_h, layer.ifmap_w, layer.channels, layer.filter_h,
                        layer.filter_w, layer.stride, layer.stride, layer.padding, layer.padding,
                        1, 1, layer.out_h, layer.out_w)
