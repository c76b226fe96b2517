"""Hot loops: functional GEMM in the array's accumulation order (numba, parallel over tiles).

The order the array adds in (DESIGN section 3), per output element O[m, n]:
- os: one accumulator, 0 + p_0 + p_1 + ... + p_{K-1}, in k order.
- ws/is: K is cut into chunks of R rows; each chunk's partial sum starts at 0 at the top of a
  column and gains its products in k order; the accumulator adds the chunks' sums in k order.
os is the same computation with one chunk of K (the accumulator's 0 + chunk is exact and never
overflows), so one kernel serves all dataflows with ``chunk`` = K or R.

Every add goes through the chip's adder (float32, or int with wrap/saturate at ``bits``). Loops
may be blocked over i, j and k freely as long as each element's adds keep this order; there is
no fused multiply-add (LLVM does not contract without fast-math, which we never enable).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..hardware._arith import MODE_FLOAT, _add

TILE_M = 64
TILE_N = 128
BLOCK_K = 128


@njit(cache=True)
def _chunk_float(a, b, ps, i0, i1, j0, j1, k0, k1):
    """ps[i-i0, j-j0] += a[i, k] * b[k, j] for k in [k0, k1), k ascending per element (float32)."""
    width = j1 - j0
    i = i0
    while i + 4 <= i1:
        p0 = ps[i - i0]
        p1 = ps[i - i0 + 1]
        p2 = ps[i - i0 + 2]
        p3 = ps[i - i0 + 3]
        for k in range(k0, k1):
            a0 = a[i, k]
            a1 = a[i + 1, k]
            a2 = a[i + 2, k]
            a3 = a[i + 3, k]
            brow = b[k, j0:j1]
            for j in range(width):
                bv = brow[j]
                p0[j] = p0[j] + a0 * bv
                p1[j] = p1[j] + a1 * bv
                p2[j] = p2[j] + a2 * bv
                p3[j] = p3[j] + a3 * bv
        i += 4
    while i < i1:
        p0 = ps[i - i0]
        for k in range(k0, k1):
            a0 = a[i, k]
            brow = b[k, j0:j1]
            for j in range(width):
                p0[j] = p0[j] + a0 * brow[j]
        i += 1


@njit(cache=True)
def _chunk_int(a, b, ps, i0, i1, j0, j1, k0, k1, mode, lo, hi, span):
    """Integer version of _chunk_float through the chip's adder; return the overflow count."""
    overflows = 0
    for i in range(i0, i1):
        for k in range(k0, k1):
            av = a[i, k]
            for j in range(j0, j1):
                s, o = _add(ps[i - i0, j - j0], av * b[k, j], mode, lo, hi, span)
                ps[i - i0, j - j0] = s
                overflows += o
    return overflows


@njit(cache=True)
def _gemm_tile(a, b, out, chunk, mode, lo, hi, span, tile, tiles_n):
    """Compute one TILE_M x TILE_N tile of out (see _gemm_ordered); return its overflows."""
    m_dim, k_dim = a.shape
    n_dim = b.shape[1]
    single_chunk = chunk >= k_dim
    i0 = (tile // tiles_n) * TILE_M
    j0 = (tile % tiles_n) * TILE_N
    i1 = min(i0 + TILE_M, m_dim)
    j1 = min(j0 + TILE_N, n_dim)
    ps = np.zeros((i1 - i0, j1 - j0), a.dtype)
    acc = np.zeros((i1 - i0, j1 - j0), a.dtype)
    ovf = 0
    for c0 in range(0, k_dim, chunk):
        c1 = min(c0 + chunk, k_dim)
        ps[:] = 0
        for kb in range(c0, c1, BLOCK_K):
            kb1 = min(kb + BLOCK_K, c1)
            if mode == MODE_FLOAT:
                _chunk_float(a, b, ps, i0, i1, j0, j1, kb, kb1)
            else:
                ovf += _chunk_int(a, b, ps, i0, i1, j0, j1, kb, kb1, mode, lo, hi, span)
        if single_chunk:
            acc[:] = ps
        elif mode == MODE_FLOAT:
            acc += ps
        else:
            for i in range(i1 - i0):
                for j in range(j1 - j0):
                    s, o = _add(acc[i, j], ps[i, j], mode, lo, hi, span)
                    acc[i, j] = s
                    ovf += o
    out[i0:i1, j0:j1] = acc
    return ovf


@njit(parallel=True, cache=True, nogil=True)  # nogil: runs off the main thread (Ctrl-C)
def _gemm_ordered(a, b, out, chunk, mode, lo, hi, span):
    """out[:] = A @ B summed in chunks of ``chunk`` along K (see module doc). Return overflows."""
    tiles_m = (a.shape[0] + TILE_M - 1) // TILE_M
    tiles_n = (b.shape[1] + TILE_N - 1) // TILE_N
    overflow_per_tile = np.zeros(tiles_m * tiles_n, np.int64)
    for tile in prange(tiles_m * tiles_n):
        overflow_per_tile[tile] = _gemm_tile(a, b, out, chunk, mode, lo, hi, span, tile, tiles_n)
    return overflow_per_tile.sum()


@njit(cache=True, nogil=True)
def _gemm_ordered_serial(a, b, out, chunk, mode, lo, hi, span):
    """_gemm_ordered on one thread (same order, same values): small GEMMs, where starting the
    thread pool costs more than the work."""
    tiles_m = (a.shape[0] + TILE_M - 1) // TILE_M
    tiles_n = (b.shape[1] + TILE_N - 1) // TILE_N
    ovf = 0
    for tile in range(tiles_m * tiles_n):
        ovf += _gemm_tile(a, b, out, chunk, mode, lo, hi, span, tile, tiles_n)
    return ovf
