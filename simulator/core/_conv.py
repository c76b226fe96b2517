"""Hot loops: input elements an im2col tile of a convolution touches (numba).

A convolution lowered in the feeder (``memory.conv_lowering: feeder``) keeps its input feature
map, not the im2col matrix, in DRAM and the buffer. An A tile of the im2col matrix (rows: output
pixels, ordered image, output row, output column; columns: ordered channel, filter row, filter
column, as ``simulator.core.vector.im2col_nchw``) needs only the input elements its windows touch:
element (image, channel, iy, ix) with iy = oy*sh - ph + ky*dh, ix = ox*sw - pw + kx*dw inside
the H x W map (padding taps read nothing). See docs/conv-traffic.md.

``g`` is the conv's geometry as an int64 array (``G_*`` indices below, one group's channels);
every count is in elements.
"""

from __future__ import annotations

import numpy as np
from numba import njit

G_NB, G_H, G_W, G_C, G_KH, G_KW, G_SH, G_SW, G_PH, G_PW, G_DH, G_DW, G_OH, G_OW = range(14)
N_GEOM = 14


@njit(cache=True)
def _cdiv(a, b):
    return (a + b - 1) // b


@njit(cache=True)
def _segments(p0, p1, width, out):
    """Cut the row-major range [p0, p1) of a grid ``width`` wide into at most three rectangles
    (first partial row, whole rows, last partial row); write (row lo, row hi, col lo, col hi)
    rows into ``out`` and return how many."""
    r0 = p0 // width
    r1 = (p1 - 1) // width
    c0 = p0 - r0 * width
    c1 = p1 - r1 * width  # exclusive
    n = 0
    if r0 == r1:
        out[0, 0], out[0, 1], out[0, 2], out[0, 3] = r0, r0 + 1, c0, c1
        return 1
    lo = r0
    if c0 > 0:
        out[n, 0], out[n, 1], out[n, 2], out[n, 3] = r0, r0 + 1, c0, width
        n += 1
        lo = r0 + 1
    hi = r1 + 1
    if c1 < width:
        hi = r1
    if hi > lo:
        out[n, 0], out[n, 1], out[n, 2], out[n, 3] = lo, hi, 0, width
        n += 1
    if c1 < width:
        out[n, 0], out[n, 1], out[n, 2], out[n, 3] = r1, r1 + 1, 0, c1
        n += 1
    return n


@njit(cache=True)
def _plane(g, p0, p1, t0, t1):
    """Return the distinct (iy, ix) of one image and channel that output pixels [p0, p1) (row
    major over ow) touch through filter taps [t0, t1) (row major over kw)."""
    h, w = g[G_H], g[G_W]
    pix = np.zeros((3, 4), np.int64)
    tap = np.zeros((3, 4), np.int64)
    npix = _segments(p0, p1, g[G_OW], pix)
    ntap = _segments(t0, t1, g[G_KW], tap)
    rowmask = np.zeros(h, np.int64)
    colset = np.zeros((9, w), np.bool_)
    lo, hi = h, 0  # the input rows reached
    for i in range(npix):
        for j in range(ntap):
            bit = i * 3 + j
            hit_rows = False
            for oy in range(pix[i, 0], pix[i, 1]):
                for ky in range(tap[j, 0], tap[j, 1]):
                    iy = oy * g[G_SH] - g[G_PH] + ky * g[G_DH]
                    if 0 <= iy < h:
                        rowmask[iy] |= 1 << bit
                        hit_rows = True
                        lo = min(lo, iy)
                        hi = max(hi, iy + 1)
            if not hit_rows:
                continue
            for ox in range(pix[i, 2], pix[i, 3]):
                for kx in range(tap[j, 2], tap[j, 3]):
                    ix = ox * g[G_SW] - g[G_PW] + kx * g[G_DW]
                    if 0 <= ix < w:
                        colset[bit, ix] = True
    memo = np.full(512, -1, np.int64)
    total = 0
    for iy in range(lo, hi):
        mask = rowmask[iy]
        if mask == 0:
            continue
        if memo[mask] < 0:
            cnt = 0
            for ix in range(w):
                for bit in range(9):
                    if (mask >> bit) & 1 and colset[bit, ix]:
                        cnt += 1
                        break
            memo[mask] = cnt
        total += memo[mask]
    return total


@njit(cache=True)
def _channels(g, p0, p1, k0, k1):
    """Return the distinct elements of one image that pixels [p0, p1) touch through im2col
    columns [k0, k1) (channel-major; channels are disjoint, so their counts add)."""
    q = g[G_KH] * g[G_KW]
    c0 = k0 // q
    c1 = (k1 - 1) // q
    t0 = k0 - c0 * q
    t1 = k1 - c1 * q
    if c0 == c1:
        return _plane(g, p0, p1, t0, t1)
    whole = c1 - c0 - 1 + (1 if t0 == 0 else 0) + (1 if t1 == q else 0)  # channels with all taps
    total = whole * _plane(g, p0, p1, 0, q) if whole else 0
    if t0 > 0:
        total += _plane(g, p0, p1, t0, q)
    if t1 < q:
        total += _plane(g, p0, p1, 0, t1)
    return total


@njit(cache=True)
def _tile_elems(g, m0, m1, k0, k1):
    """Return the distinct input elements im2col rows [m0, m1) x columns [k0, k1) touch
    (images are disjoint, so their counts add)."""
    p = g[G_OH] * g[G_OW]
    n0 = m0 // p
    n1 = (m1 - 1) // p
    q0 = m0 - n0 * p
    q1 = m1 - n1 * p
    if n0 == n1:
        return _channels(g, q0, q1, k0, k1)
    whole = n1 - n0 - 1 + (1 if q0 == 0 else 0) + (1 if q1 == p else 0)  # images with all pixels
    total = whole * _channels(g, 0, p, k0, k1) if whole else 0
    if q0 > 0:
        total += _channels(g, q0, p, k0, k1)
    if q1 < p:
        total += _channels(g, 0, q1, k0, k1)
    return total


@njit(cache=True, nogil=True)  # nogil: a long sum runs off the main thread (Ctrl-C)
def _tiles_sum(g, m, k, tm, tk):
    """Return the sum over all tm x tk A tiles of the im2col matrix of the input elements each
    touches (each tile fetched once), elements."""
    total = 0
    for mi in range(_cdiv(m, tm)):
        for ki in range(_cdiv(k, tk)):
            total += _tile_elems(g, mi * tm, min(m, (mi + 1) * tm), ki * tk,
                                 min(k, (ki + 1) * tk))
    return total


@njit(cache=True)
def _tile_bound(g, tm, tk):
    """Return an upper bound on the input elements any tm x tk A tile touches: per image and
    channel, the rows x columns of input its output rows and filter taps can reach (at most
    the rows spanned times the taps' rows, and at most the window's extent), capped by the
    im2col tile's own size. The tiler's fit check uses it (a tile that passes fits)."""
    p = g[G_OH] * g[G_OW]
    q = g[G_KH] * g[G_KW]
    images = min(g[G_NB], 1 + _cdiv(tm - 1, p))
    if tm >= p:
        orows, ocols = g[G_OH], g[G_OW]
    else:
        orows = min(g[G_OH], 1 + _cdiv(tm - 1, g[G_OW]))
        ocols = min(g[G_OW], tm)
    chans = min(g[G_C], 1 + _cdiv(tk - 1, q))
    if tk >= q:
        trows, tcols = g[G_KH], g[G_KW]
    else:
        trows = min(g[G_KH], 1 + _cdiv(tk - 1, g[G_KW]))
        tcols = min(g[G_KW], tk)
    rows = min(g[G_H], min(orows * trows, (orows - 1) * g[G_SH] + (trows - 1) * g[G_DH] + 1))
    cols = min(g[G_W], min(ocols * tcols, (ocols - 1) * g[G_SW] + (tcols - 1) * g[G_DW] + 1))
    return min(tm * tk, images * chans * rows * cols)
