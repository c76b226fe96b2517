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


def slow_tile_walk(m, n, k, tm, tn, tk, order, in_b, acc_b):
    """Walk tile steps one by one, keeping the resident tile of each operand in a variable.

    Return (dram dict, list of (load bytes, write bytes, (em, en, ek), first_visit)) per step.
    """
    trips = {"m": -(-m // tm), "n": -(-n // tn), "k": -(-k // tk)}
    seq = []

    def rec(level, cur):
        if level == 3:
            seq.append(dict(cur))
            return
        d = order[level]
        for i in range(trips[d]):
            cur[d] = i
            rec(level + 1, cur)
    rec(0, {})
    dram = {"a": 0, "b": 0, "o_rd": 0, "o_wr": 0}
    res_a = res_b = res_o = None
    steps = []
    for s, st in enumerate(seq):
        em = min(tm, m - st["m"] * tm)
        en = min(tn, n - st["n"] * tn)
        ek = min(tk, k - st["k"] * tk)
        load = 0
        if res_a != (st["m"], st["k"]):
            res_a = (st["m"], st["k"])
            load += em * ek * in_b
            dram["a"] += em * ek * in_b
        if res_b != (st["k"], st["n"]):
            res_b = (st["k"], st["n"])
            load += ek * en * in_b
            dram["b"] += ek * en * in_b
        if res_o != (st["m"], st["n"]):
            res_o = (st["m"], st["n"])
            if st["k"] > 0:
                load += em * en * acc_b
                dram["o_rd"] += em * en * acc_b
        nxt = seq[s + 1] if s + 1 < len(seq) else None
        write = 0
        if nxt is None or (nxt["m"], nxt["n"]) != res_o:
            write = em * en * acc_b
            dram["o_wr"] += write
        steps.append((load, write, (em, en, ek)))
    return dram, steps


def slow_timeline(steps, compute, bytes_per_cycle, latency, double_buffered):
    """Total cycles of tile steps: compute(shape) gives each step's cycles (see _memory doc)."""
    import math

    def xfer(b):
        if b == 0 or bytes_per_cycle == 0:
            return 0
        return latency + math.ceil(b / bytes_per_cycle)
    loads = [xfer(s[0]) for s in steps]
    writes = [xfer(s[1]) for s in steps]
    comp = [compute(s[2]) for s in steps]
    if not double_buffered:
        return sum(loads) + sum(comp) + sum(writes)
    total = loads[0]
    for s in range(len(steps)):
        dma = (writes[s - 1] if s >= 1 else 0) + (loads[s + 1] if s + 1 < len(steps) else 0)
        total += max(comp[s], dma)
    return total + writes[-1]
