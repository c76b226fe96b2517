"""Hot loops: the PE-level register-transfer reference of the systolic array (numba).

Every cycle, every PE register of the array is updated from its neighbours' registers of the
previous cycle (double-buffered register files), operands enter skewed by one cycle per row or
column, and a small controller decides when folds start, end and load. Nothing here uses the
closed forms of ``_timing``: cycles are counted as they happen, so the equality of the two is a
real test.

Microarchitecture (both kernels):
- Each operand register carries a valid bit. A fold's stream ends when the feeder has injected its
  last operand and no valid operand is in flight (none will move into another PE next cycle);
  the next fold may start streaming at the next cycle. A fold's start clears the valid bits of
  the operand registers: what the previous fold left there was its last, already used operands,
  which gated PEs would otherwise keep.
- ``full`` (fill_drain: full): the feeder drives all R rows and C columns, padding a partial fold
  with valid zeros (SCALE-Sim's behaviour). ``active``: only the r x c PEs a fold uses are
  clocked; the others are gated, and ws/is outputs leave from the last used row (a bypass).
- Outputs are accumulated with the same adder as the PEs (``_arith._add``), counting overflows.

``_os_reference``: A enters the left edge (row i gets A[m0+i, k] at cycle k+i) and moves right,
B enters the top edge (column j gets B[k, n0+j] at cycle k+j) and moves down; PE(i, j) MACs when
both are valid, and after its K-th MAC its sum leaves the array and the accumulator clears.

``_ws_reference`` (also is, on transposed operands): the stationary tile is shifted into the
shadow bank of double-buffered weight registers, one row per cycle, in L = rr cycles; a fold
starts by swapping banks. The streamed operand enters row i at cycle t+i and moves right; the
partial sum enters the top of each column as 0, gains one product per PE on its way down, and
leaves the bottom (full) or the last used row (active) into the accumulator. With
``overlap`` the next fold's load starts when the current fold starts streaming; without it, the
load starts when the previous fold's stream has ended.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._arith import _add


@njit(cache=True)
def _os_reference(a, b, big_r, big_c, full, mode, lo, hi, span, out):
    """Run an OS GEMM PE by PE: out (M, N) += A @ B. Return (cycles, last_output_cycle, overflows)."""
    m_dim, k_dim = a.shape
    n_dim = b.shape[1]
    zero = a[0, 0] - a[0, 0]
    a_reg = np.zeros((2, big_r, big_c), a.dtype)
    a_ok = np.zeros((2, big_r, big_c), np.bool_)
    b_reg = np.zeros((2, big_r, big_c), a.dtype)
    b_ok = np.zeros((2, big_r, big_c), np.bool_)
    acc = np.zeros((big_r, big_c), a.dtype)
    count = np.zeros((big_r, big_c), np.int64)
    b_in = np.zeros(big_c, a.dtype)
    b_in_ok = np.zeros(big_c, np.bool_)
    t = 0
    last_out = -1
    overflows = 0
    cur = 0
    for m0 in range(0, m_dim, big_r):
        r = min(big_r, m_dim - m0)
        for n0 in range(0, n_dim, big_c):
            c = min(big_c, n_dim - n0)
            rr = big_r if full else r
            cc = big_c if full else c
            last_inject = k_dim - 1 + max(rr, cc) - 1
            tau = 0
            a_ok[:] = False
            b_ok[:] = False
            while True:
                nxt = 1 - cur
                in_flight = 0
                for j in range(cc):  # top-edge feeder for this cycle
                    kk = tau - j
                    b_in_ok[j] = 0 <= kk < k_dim
                    b_in[j] = b[kk, n0 + j] if (b_in_ok[j] and j < c) else zero
                for i in range(rr):
                    kk = tau - i
                    ain_ok = 0 <= kk < k_dim
                    ain = a[m0 + i, kk] if (ain_ok and i < r) else zero
                    for j in range(cc):
                        if j == 0:
                            av = ain
                            aok = ain_ok
                        else:
                            av = a_reg[cur, i, j - 1]
                            aok = a_ok[cur, i, j - 1]
                        if i == 0:
                            bv = b_in[j]
                            bok = b_in_ok[j]
                        else:
                            bv = b_reg[cur, i - 1, j]
                            bok = b_ok[cur, i - 1, j]
                        a_reg[nxt, i, j] = av
                        a_ok[nxt, i, j] = aok
                        b_reg[nxt, i, j] = bv
                        b_ok[nxt, i, j] = bok
                        if aok and bok:
                            s, o = _add(acc[i, j], av * bv, mode, lo, hi, span)
                            overflows += o
                            count[i, j] += 1
                            if count[i, j] == k_dim:
                                if i < r and j < c:
                                    out[m0 + i, n0 + j] = s
                                last_out = t
                                acc[i, j] = zero
                                count[i, j] = 0
                            else:
                                acc[i, j] = s
                        if aok and j < cc - 1:
                            in_flight += 1
                        if bok and i < rr - 1:
                            in_flight += 1
                cur = nxt
                t += 1
                tau += 1
                if tau > last_inject and in_flight == 0:
                    break
    return t, last_out, overflows


@njit(cache=True)
def _ws_reference(x, w, big_r, big_c, full, overlap, mode, lo, hi, span, out):
    """Run a WS GEMM PE by PE: out (T, Nd) += x (T, Kd) @ w (Kd, Nd), w stationary.

    Folds go outer over Nd (by C), inner over Kd (by R). Return (cycles, last_output_cycle,
    overflows).
    """
    t_len, k_dim = x.shape
    n_dim = w.shape[1]
    zero = x[0, 0] - x[0, 0]
    n_inner = (k_dim + big_r - 1) // big_r
    n_outer = (n_dim + big_c - 1) // big_c
    n_folds = n_inner * n_outer
    bank = np.zeros((2, big_r, big_c), x.dtype)  # double-buffered weight registers
    bank_ok = np.zeros((2, big_r, big_c), np.bool_)
    a_reg = np.zeros((2, big_r, big_c), x.dtype)
    a_ok = np.zeros((2, big_r, big_c), np.bool_)
    p_reg = np.zeros((2, big_r, big_c), x.dtype)
    p_ok = np.zeros((2, big_r, big_c), np.bool_)
    active = 0  # index of the bank the PEs multiply with; the other is the shadow
    cur = 0
    t = 0
    last_out = -1
    overflows = 0
    stream_f = -1  # fold streaming now
    next_stream = 0
    load_f = -1  # fold whose weights are being shifted in
    load_step = 0
    loaded_f = -1  # fold whose weights sit complete in the shadow bank
    next_load = 0
    tau = 0
    in_flight = 0
    s_k0 = s_r = s_n0 = s_c = s_rr = s_cc = 0
    while True:
        # -- controller, at the start of cycle t
        if stream_f >= 0 and tau > t_len - 1 + s_rr - 1 and in_flight == 0:
            stream_f = -1
        if stream_f < 0 and next_stream < n_folds and loaded_f == next_stream:
            active = 1 - active  # swap banks: the loaded weights become the PEs' weights
            loaded_f = -1
            stream_f = next_stream
            next_stream += 1
            tau = 0
            s_k0 = (stream_f % n_inner) * big_r
            s_n0 = (stream_f // n_inner) * big_c
            s_r = min(big_r, k_dim - s_k0)
            s_c = min(big_c, n_dim - s_n0)
            s_rr = big_r if full else s_r
            s_cc = big_c if full else s_c
            a_ok[:] = False
            p_ok[:] = False
        if stream_f < 0 and next_stream >= n_folds:
            break
        if load_f < 0 and loaded_f < 0 and next_load < n_folds and (overlap or stream_f < 0):
            load_f = next_load
            next_load += 1
            load_step = 0
        # -- weight load: shift the shadow bank down one row, push a row in at the top
        if load_f >= 0:
            sh = 1 - active
            l_k0 = (load_f % n_inner) * big_r
            l_n0 = (load_f // n_inner) * big_c
            l_r = min(big_r, k_dim - l_k0)
            l_c = min(big_c, n_dim - l_n0)
            l_rows = big_r if full else l_r
            l_cols = big_c if full else l_c
            for i in range(l_rows - 1, 0, -1):
                for j in range(l_cols):
                    bank[sh, i, j] = bank[sh, i - 1, j]
                    bank_ok[sh, i, j] = bank_ok[sh, i - 1, j]
            row = l_rows - 1 - load_step
            for j in range(l_cols):
                bank[sh, 0, j] = w[l_k0 + row, l_n0 + j] if (row < l_r and j < l_c) else zero
                bank_ok[sh, 0, j] = True
            load_step += 1
            if load_step == l_rows:
                loaded_f = load_f
                load_f = -1
        # -- stream: every used PE takes its left and upper neighbours' registers
        if stream_f >= 0:
            nxt = 1 - cur
            in_flight = 0
            bottom = s_rr - 1
            for i in range(s_rr):
                mm = tau - i
                ain_ok = 0 <= mm < t_len
                ain = x[mm, s_k0 + i] if (ain_ok and i < s_r) else zero
                for j in range(s_cc):
                    if j == 0:
                        av = ain
                        aok = ain_ok
                    else:
                        av = a_reg[cur, i, j - 1]
                        aok = a_ok[cur, i, j - 1]
                    if i == 0:
                        pv = zero
                        pok = True
                    else:
                        pv = p_reg[cur, i - 1, j]
                        pok = p_ok[cur, i - 1, j]
                    a_reg[nxt, i, j] = av
                    a_ok[nxt, i, j] = aok
                    valid = aok and pok and bank_ok[active, i, j]
                    p_ok[nxt, i, j] = valid
                    if valid:
                        s, o = _add(pv, av * bank[active, i, j], mode, lo, hi, span)
                        overflows += o
                        p_reg[nxt, i, j] = s
                        if i == bottom:  # the partial sum leaves the array
                            last_out = t
                            if j < s_c:
                                mo = tau - bottom - j
                                v, o2 = _add(out[mo, s_n0 + j], s, mode, lo, hi, span)
                                out[mo, s_n0 + j] = v
                                overflows += o2
                        else:
                            in_flight += 1
                    if aok and j < s_cc - 1:
                        in_flight += 1
            cur = nxt
            tau += 1
        t += 1
    return t, last_out, overflows
