"""Independent oracles written without numba: plain Python/numpy scalar loops."""

from __future__ import annotations

import numpy as np


def ordered_gemm(a, b, chunk, dtype, overflow="wrap", bits=32):
    """Return (O, overflows) summing each element in the array's order, scalar by scalar.

    Per element: chunks of ``chunk`` k's start at 0 and add products in k order; the accumulator
    starts at 0 and adds the chunk sums in order (DESIGN section 3). Floats use numpy float32
    scalars (each op rounds); ints use Python ints clamped or wrapped at ``bits``.
    """
    m, k = a.shape
    n = b.shape[1]
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    overflows = 0

    def add(x, y):
        nonlocal overflows
        if dtype != "int8":
            return np.float32(np.float32(x) + np.float32(y))
        s = int(x) + int(y)
        if lo <= s <= hi:
            return s
        overflows += 1
        if overflow == "saturate":
            return hi if s > hi else lo
        return ((s - lo) % (1 << bits)) + lo

    out = np.zeros((m, n), np.int64 if dtype == "int8" else np.float32)
    for i in range(m):
        for j in range(n):
            acc = 0 if dtype == "int8" else np.float32(0)
            for c0 in range(0, k, chunk):
                ps = 0 if dtype == "int8" else np.float32(0)
                for kk in range(c0, min(c0 + chunk, k)):
                    prod = int(a[i, kk]) * int(b[kk, j]) if dtype == "int8" else \
                        np.float32(np.float32(a[i, kk]) * np.float32(b[kk, j]))
                    ps = add(ps, prod)
                acc = add(acc, ps)
            out[i, j] = acc
    return out, overflows
