"""Hot loop: the fast cycle model and the PE-level reference side by side on many GEMMs (numba).

One call runs every (M, N, K) of a list on one array configuration, in parallel over the GEMMs,
so that an exhaustive cross-check over tens of thousands of small GEMMs does not pay Python's
call overhead per GEMM. The reference is ``_pe_array`` (cycles counted as they happen), the fast
model ``_memory._one_array`` (the closed form behind every fast-engine GEMM, one array and
unbounded buffers); nothing is shared between the two but the adder.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..hardware._arith import MODE_FLOAT
from ._memory import _one_array
from ._pe_array import _os_pipelined, _os_reference, _ws_pipelined, _ws_reference


@njit(parallel=True, cache=True)
def _fast_vs_reference(df, big_r, big_c, full, overlap, shapes, a, b, expected_bits, lo, hi,
                       span):
    """Run each GEMM (row m, n, k of ``shapes``) on float32 operands a[:m, :k] @ b[:k, :n] with
    dataflow ``df`` (0 os, 1 ws, 2 is) through the PE reference and the fast model.

    Return (reference cycles, fast cycles, values equal bit for bit) per GEMM; the values are
    held to ``expected_bits[k, :m, :n]`` (the float32 bits of the result in the array's order).
    """
    count = shapes.shape[0]
    ref = np.zeros(count, np.int64)
    fast = np.zeros(count, np.int64)
    same = np.zeros(count, np.bool_)
    for i in prange(count):
        m = shapes[i, 0]
        n = shapes[i, 1]
        k = shapes[i, 2]
        x = np.ascontiguousarray(a[:m, :k])
        w = np.ascontiguousarray(b[:k, :n])
        out = np.zeros((m, n), np.float32)
        pipe = (overlap & 2) != 0
        if df == 0:
            if pipe:
                cyc, _last, _ovf = _os_pipelined(x, w, big_r, big_c, full, MODE_FLOAT, lo, hi,
                                                 span, out)
            else:
                cyc, _last, _ovf = _os_reference(x, w, big_r, big_c, full, MODE_FLOAT, lo, hi,
                                                 span, out)
        else:
            if df == 1:  # ws
                xs = x
                ws = w
                dst = out
            else:  # is: A stationary, the array computes O^T = B^T A^T
                xs = np.ascontiguousarray(w.T)
                ws = np.ascontiguousarray(x.T)
                dst = np.zeros((n, m), np.float32)
            if pipe:
                cyc, _last, _ovf = _ws_pipelined(xs, ws, big_r, big_c, full, overlap, MODE_FLOAT,
                                                 lo, hi, span, dst)
            else:
                cyc, _last, _ovf = _ws_reference(xs, ws, big_r, big_c, full, (overlap & 1) != 0,
                                                 MODE_FLOAT, lo, hi, span, dst)
            if df == 2:
                out[:, :] = dst.T
        ref[i] = cyc
        fast[i] = _one_array(df, m, n, k, big_r, big_c, full, overlap, False)[0]
        bits = out.view(np.uint32)
        ok = True
        for r in range(m):
            for c in range(n):
                if bits[r, c] != expected_bits[k, r, c]:
                    ok = False
        same[i] = ok
    return ref, fast, same
