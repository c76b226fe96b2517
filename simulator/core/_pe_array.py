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

``_os_pipelined`` and ``_ws_pipelined`` (``array.fold_pipelining``): operands carry their
fold's index, and the next fold of the same charged shape enters right behind the current one;
an os PE sends its sum out when it uses a fold's last operand, a ws PE swaps its shadow weight
in when an operand of a new fold reaches it (and counts a hazard if that weight had not finished
loading). Their docstrings give the controller's rules; ``_timing`` has the closed form.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..hardware._arith import MODE_FLOAT, _add


@njit(cache=True, nogil=True)  # nogil: runs off the main thread (Ctrl-C)
def _os_reference(a, b, big_r, big_c, full, mode, lo, hi, span, out):
    """Run an OS GEMM PE by PE: out (M, N) += A @ B through the adder (out holds earlier K
    tiles' partial sums, or zeros). Return (cycles, last_output_cycle, overflows).

    The feeder tags the last operand of each row's stream (k = K-1), and the tag travels with
    it; the PE whose MAC uses a tagged operand latches the sum into its output register (read
    out into ``out`` when the fold ends) and clears its accumulator.
    """
    m_dim, k_dim = a.shape
    n_dim = b.shape[1]
    zero = np.zeros(1, a.dtype)[0]
    a_cur = np.zeros((big_r, big_c), a.dtype)
    a_nxt = np.zeros((big_r, big_c), a.dtype)
    aok_cur = np.zeros((big_r, big_c), np.bool_)
    aok_nxt = np.zeros((big_r, big_c), np.bool_)
    b_cur = np.zeros((big_r, big_c), a.dtype)
    b_nxt = np.zeros((big_r, big_c), a.dtype)
    bok_cur = np.zeros((big_r, big_c), np.bool_)
    bok_nxt = np.zeros((big_r, big_c), np.bool_)
    acc = np.zeros((big_r, big_c), a.dtype)
    result = np.zeros((big_r, big_c), a.dtype)  # each PE's output register
    last_cur = np.zeros((big_r, big_c), np.bool_)  # "last k" tags riding with A
    last_nxt = np.zeros((big_r, big_c), np.bool_)
    b_in = np.zeros(big_c, a.dtype)
    b_in_ok = np.zeros(big_c, np.bool_)
    t = 0
    last_out = -1
    overflows = 0
    for m0 in range(0, m_dim, big_r):
        r = min(big_r, m_dim - m0)
        for n0 in range(0, n_dim, big_c):
            c = min(big_c, n_dim - n0)
            rr = big_r if full else r
            cc = big_c if full else c
            last_inject = k_dim - 1 + max(rr, cc) - 1
            tau = 0
            aok_cur[:] = False
            bok_cur[:] = False
            while True:
                in_flight = 0
                fired = 0
                for j in range(cc):  # top-edge feeder for this cycle
                    kk = tau - j
                    b_in_ok[j] = 0 <= kk < k_dim
                    b_in[j] = b[kk, n0 + j] if (b_in_ok[j] and j < c) else zero
                for i in range(rr):
                    kk = tau - i
                    ain_ok = 0 <= kk < k_dim
                    a_row = a_nxt[i]
                    aok_row = aok_nxt[i]
                    last_row = last_nxt[i]
                    a_row[0] = a[m0 + i, kk] if (ain_ok and i < r) else zero
                    aok_row[0] = ain_ok
                    last_row[0] = kk == k_dim - 1
                    tagged = last_row[0]
                    a_prev = a_cur[i]
                    aok_prev = aok_cur[i]
                    last_prev = last_cur[i]
                    for j in range(1, cc):  # A moves one PE to the right
                        a_row[j] = a_prev[j - 1]
                        aok_row[j] = aok_prev[j - 1]
                        last_row[j] = last_prev[j - 1]
                        tagged |= last_prev[j - 1]
                    b_row = b_nxt[i]
                    bok_row = bok_nxt[i]
                    if i == 0:
                        b_src = b_in
                        bok_src = b_in_ok
                    else:
                        b_src = b_cur[i - 1]
                        bok_src = bok_cur[i - 1]
                    acc_row = acc[i]
                    res_row = result[i]
                    n_a = 0
                    n_b = 0
                    if mode == MODE_FLOAT and not tagged:  # split out of _add to vectorise
                        for j in range(cc):  # B moves one PE down; PEs with two operands MAC
                            bv = b_src[j]
                            bok = bok_src[j]
                            aok = aok_row[j]
                            b_row[j] = bv
                            bok_row[j] = bok
                            s = acc_row[j] + a_row[j] * bv
                            acc_row[j] = s if (aok & bok) else acc_row[j]
                            n_a += aok
                            n_b += bok
                    else:  # general adder; a PE using a tagged operand emits its sum
                        for j in range(cc):
                            bv = b_src[j]
                            bok = bok_src[j]
                            aok = aok_row[j]
                            b_row[j] = bv
                            bok_row[j] = bok
                            valid = aok & bok
                            s, o = _add(acc_row[j], a_row[j] * bv, mode, lo, hi, span)
                            done = valid & last_row[j]
                            res_row[j] = s if done else res_row[j]
                            acc_row[j] = zero if done else (s if valid else acc_row[j])
                            overflows += o if valid else 0
                            fired += done
                            n_a += aok
                            n_b += bok
                    # operands in flight: A not in the last column, B not in the last row
                    in_flight += n_a - aok_row[cc - 1] + (n_b if i < rr - 1 else 0)
                if fired:
                    last_out = t
                a_cur, a_nxt = a_nxt, a_cur
                aok_cur, aok_nxt = aok_nxt, aok_cur
                last_cur, last_nxt = last_nxt, last_cur
                b_cur, b_nxt = b_nxt, b_cur
                bok_cur, bok_nxt = bok_nxt, bok_cur
                t += 1
                tau += 1
                if tau > last_inject and in_flight == 0:
                    break
            for i in range(r):  # the output registers drain into the accumulators
                for j in range(c):
                    v, o2 = _add(out[m0 + i, n0 + j], result[i, j], mode, lo, hi, span)
                    out[m0 + i, n0 + j] = v
                    overflows += o2
    return t, last_out, overflows


@njit(cache=True, nogil=True)  # nogil: runs off the main thread (Ctrl-C)
def _ws_reference(x, w, big_r, big_c, full, overlap, mode, lo, hi, span, out):
    """Run a WS GEMM PE by PE: out (T, Nd) += x (T, Kd) @ w (Kd, Nd), w stationary.

    Folds go outer over Nd (by C), inner over Kd (by R). Return (cycles, last_output_cycle,
    overflows).
    """
    t_len, k_dim = x.shape
    n_dim = w.shape[1]
    zero = np.zeros(1, x.dtype)[0]
    n_inner = (k_dim + big_r - 1) // big_r
    n_outer = (n_dim + big_c - 1) // big_c
    n_folds = n_inner * n_outer
    # double-buffered weight registers: the PEs multiply with w_act; loads go to w_sh
    w_act = np.zeros((big_r, big_c), x.dtype)
    w_sh = np.zeros((big_r, big_c), x.dtype)
    wok_act = np.zeros((big_r, big_c), np.bool_)
    wok_sh = np.zeros((big_r, big_c), np.bool_)
    a_cur = np.zeros((big_r, big_c), x.dtype)
    a_nxt = np.zeros((big_r, big_c), x.dtype)
    aok_cur = np.zeros((big_r, big_c), np.bool_)
    aok_nxt = np.zeros((big_r, big_c), np.bool_)
    p_cur = np.zeros((big_r, big_c), x.dtype)
    p_nxt = np.zeros((big_r, big_c), x.dtype)
    pok_cur = np.zeros((big_r, big_c), np.bool_)
    pok_nxt = np.zeros((big_r, big_c), np.bool_)
    top_p = np.zeros(big_c, x.dtype)  # partial sums enter the top of every column as 0
    top_ok = np.ones(big_c, np.bool_)
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
            w_act, w_sh = w_sh, w_act  # swap banks: the loaded weights become the PEs' weights
            wok_act, wok_sh = wok_sh, wok_act
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
            aok_cur[:] = False
            pok_cur[:] = False
        if stream_f < 0 and next_stream >= n_folds:
            break
        if load_f < 0 and loaded_f < 0 and next_load < n_folds and (overlap or stream_f < 0):
            load_f = next_load
            next_load += 1
            load_step = 0
        # -- weight load: shift the shadow bank down one row, push a row in at the top
        if load_f >= 0:
            l_k0 = (load_f % n_inner) * big_r
            l_n0 = (load_f // n_inner) * big_c
            l_r = min(big_r, k_dim - l_k0)
            l_c = min(big_c, n_dim - l_n0)
            l_rows = big_r if full else l_r
            l_cols = big_c if full else l_c
            for i in range(l_rows - 1, 0, -1):
                for j in range(l_cols):
                    w_sh[i, j] = w_sh[i - 1, j]
                    wok_sh[i, j] = wok_sh[i - 1, j]
            row = l_rows - 1 - load_step
            for j in range(l_cols):
                w_sh[0, j] = w[l_k0 + row, l_n0 + j] if (row < l_r and j < l_c) else zero
                wok_sh[0, j] = True
            load_step += 1
            if load_step == l_rows:
                loaded_f = load_f
                load_f = -1
        # -- stream: every used PE takes its left and upper neighbours' registers
        if stream_f >= 0:
            in_flight = 0
            bottom = s_rr - 1
            for i in range(s_rr):
                mm = tau - i
                ain_ok = 0 <= mm < t_len
                a_row = a_nxt[i]
                aok_row = aok_nxt[i]
                a_row[0] = x[mm, s_k0 + i] if (ain_ok and i < s_r) else zero
                aok_row[0] = ain_ok
                a_prev = a_cur[i]
                aok_prev = aok_cur[i]
                for j in range(1, s_cc):  # the streamed operand moves one PE to the right
                    a_row[j] = a_prev[j - 1]
                    aok_row[j] = aok_prev[j - 1]
                if i == 0:
                    p_src = top_p
                    pok_src = top_ok
                else:
                    p_src = p_cur[i - 1]
                    pok_src = pok_cur[i - 1]
                w_row = w_act[i]
                wok_row = wok_act[i]
                p_row = p_nxt[i]
                pok_row = pok_nxt[i]
                if mode == MODE_FLOAT:  # the same adder as _add, split out so it vectorises
                    for j in range(s_cc):  # the partial sum moves one PE down, gaining a product
                        p_row[j] = p_src[j] + a_row[j] * w_row[j]
                        pok_row[j] = aok_row[j] & pok_src[j] & wok_row[j]
                else:
                    for j in range(s_cc):
                        valid = aok_row[j] & pok_src[j] & wok_row[j]
                        s, o = _add(p_src[j], a_row[j] * w_row[j], mode, lo, hi, span)
                        p_row[j] = s
                        pok_row[j] = valid
                        overflows += o if valid else 0
                for j in range(s_cc - 1):
                    in_flight += aok_row[j]
                if i < bottom:
                    for j in range(s_cc):
                        in_flight += pok_row[j]
                else:  # the bottom row's partial sums leave the array into the accumulator
                    for j in range(s_cc):
                        if pok_row[j]:
                            last_out = t
                            if j < s_c:
                                mo = tau - bottom - j
                                v, o2 = _add(out[mo, s_n0 + j], p_row[j], mode, lo, hi, span)
                                out[mo, s_n0 + j] = v
                                overflows += o2
            a_cur, a_nxt = a_nxt, a_cur
            aok_cur, aok_nxt = aok_nxt, aok_cur
            p_cur, p_nxt = p_nxt, p_cur
            pok_cur, pok_nxt = pok_nxt, pok_cur
            tau += 1
        t += 1
    return t, last_out, overflows


@njit(cache=True, nogil=True)  # nogil: runs off the main thread (Ctrl-C)
def _os_pipelined(a, b, big_r, big_c, full, mode, lo, hi, span, out):
    """Run an OS GEMM PE by PE with fold pipelining: out (M, N) += A @ B. Return (cycles,
    last_output_cycle, overflows).

    Folds go outer over M (by R), inner over N (by C). A fold f starting at cycle s_f feeds row
    i with A[m0+i, k] at cycle s_f + k + i and column j with B[k, n0+j] at s_f + k + j; every
    operand carries its fold's index. The next fold starts at s_f + K when it uses the same
    charged rows and columns (rr x cc; always under ``full``), so its operands enter right
    behind the current fold's; otherwise it starts when the array has drained (no operand in
    flight). A PE whose MAC uses an operand tagged "last k" sends its sum out (added into
    ``out`` at once) and clears its accumulator, so the next fold's first MAC starts from zero
    as the wavefront passes.
    """
    m_dim, k_dim = a.shape
    n_dim = b.shape[1]
    zero = np.zeros(1, a.dtype)[0]
    n_inner = (n_dim + big_c - 1) // big_c
    n_outer = (m_dim + big_r - 1) // big_r
    n_folds = n_inner * n_outer
    starts = np.full(n_folds + 1, -1, np.int64)
    a_v = np.zeros((2, big_r, big_c), a.dtype)
    a_ok = np.zeros((2, big_r, big_c), np.bool_)
    a_f = np.zeros((2, big_r, big_c), np.int64)  # the fold each A operand belongs to
    a_last = np.zeros((2, big_r, big_c), np.bool_)
    b_v = np.zeros((2, big_r, big_c), a.dtype)
    b_ok = np.zeros((2, big_r, big_c), np.bool_)
    acc = np.zeros((big_r, big_c), a.dtype)
    row_f = np.zeros(big_r, np.int64)  # per edge feeder: the fold it feeds or will feed next
    col_f = np.zeros(big_c, np.int64)
    b_in = np.zeros(big_c, a.dtype)
    b_in_ok = np.zeros(big_c, np.bool_)
    t = 0
    cur = 0  # register bank holding this cycle's state
    last_out = -1
    overflows = 0
    started = 0
    run_rr = run_cc = 0
    running = False
    in_flight = 0
    while True:
        # -- controller, at the start of cycle t
        if running and t - starts[started - 1] > k_dim - 1 + max(run_rr, run_cc) - 1 \
                and in_flight == 0:
            running = False  # the run has drained
        if started < n_folds:
            g = started
            r = min(big_r, m_dim - (g // n_inner) * big_r)
            c = min(big_c, n_dim - (g % n_inner) * big_c)
            rr = big_r if full else r
            cc = big_c if full else c
            if not running:
                run_rr, run_cc = rr, cc
                running = True
                a_ok[cur] = False
                b_ok[cur] = False
                row_f[:] = g  # a new run: every earlier fold has left the array
                col_f[:] = g
                starts[g] = t
                started += 1
            elif rr == run_rr and cc == run_cc and t >= starts[g - 1] + k_dim:
                starts[g] = t
                started += 1
        if not running and started >= n_folds:
            break
        nxt = 1 - cur
        in_flight = 0
        fired = 0
        for j in range(run_cc):  # top edge: column j feeds B
            while col_f[j] < started - 1 and t - j >= starts[col_f[j]] + k_dim:
                col_f[j] += 1
            g = col_f[j]
            kk = t - j - starts[g] if g < started else -1
            ok = 0 <= kk < k_dim
            n0 = (g % n_inner) * big_c
            c = min(big_c, n_dim - n0) if ok else 0
            b_in[j] = b[kk, n0 + j] if (ok and j < c) else zero
            b_in_ok[j] = ok
        for i in range(run_rr):
            while row_f[i] < started - 1 and t - i >= starts[row_f[i]] + k_dim:
                row_f[i] += 1  # left edge: row i feeds A of the fold whose turn it is
            g = row_f[i]
            kk = t - i - starts[g] if g < started else -1
            ok = 0 <= kk < k_dim
            m0 = (g // n_inner) * big_r
            r = min(big_r, m_dim - m0) if ok else 0
            av_n = a_v[nxt, i]
            aok_n = a_ok[nxt, i]
            af_n = a_f[nxt, i]
            al_n = a_last[nxt, i]
            av_c = a_v[cur, i]
            aok_c = a_ok[cur, i]
            af_c = a_f[cur, i]
            al_c = a_last[cur, i]
            tagged = False
            for j in range(1, run_cc):  # A moves one PE to the right
                av_n[j] = av_c[j - 1]
                aok_n[j] = aok_c[j - 1]
                af_n[j] = af_c[j - 1]
                al_n[j] = al_c[j - 1]
                tagged |= al_c[j - 1]
            av_n[0] = a[m0 + i, kk] if (ok and i < r) else zero
            aok_n[0] = ok
            af_n[0] = g
            al_n[0] = ok and kk == k_dim - 1
            tagged |= al_n[0]
            bv_n = b_v[nxt, i]
            bok_n = b_ok[nxt, i]
            if i == 0:
                b_src = b_in
                bok_src = b_in_ok
            else:
                b_src = b_v[cur, i - 1]
                bok_src = b_ok[cur, i - 1]
            acc_row = acc[i]
            n_a = 0
            n_b = 0
            if mode == MODE_FLOAT and not tagged:  # split out of _add so it vectorises
                for j in range(run_cc):  # B moves one PE down; PEs with two operands MAC
                    bv = b_src[j]
                    bok = bok_src[j]
                    aok = aok_n[j]
                    bv_n[j] = bv
                    bok_n[j] = bok
                    sm = acc_row[j] + av_n[j] * bv
                    acc_row[j] = sm if (aok & bok) else acc_row[j]
                    n_a += aok
                    n_b += bok
            else:  # general adder; a PE using a tagged operand sends its sum out
                for j in range(run_cc):
                    bv = b_src[j]
                    bok = bok_src[j]
                    aok = aok_n[j]
                    bv_n[j] = bv
                    bok_n[j] = bok
                    n_a += aok
                    n_b += bok
                    if not (aok & bok):
                        continue
                    sm, o = _add(acc_row[j], av_n[j] * bv, mode, lo, hi, span)
                    overflows += o
                    if al_n[j]:  # the fold's last MAC here: the sum leaves the PE
                        g = af_n[j]
                        m0 = (g // n_inner) * big_r
                        n0 = (g % n_inner) * big_c
                        if i < min(big_r, m_dim - m0) and j < min(big_c, n_dim - n0):
                            v, o2 = _add(out[m0 + i, n0 + j], sm, mode, lo, hi, span)
                            out[m0 + i, n0 + j] = v
                            overflows += o2
                        acc_row[j] = zero
                        fired += 1
                    else:
                        acc_row[j] = sm
            # operands in flight: A not in the last column, B not in the last row
            in_flight += n_a - aok_n[run_cc - 1] + (n_b if i < run_rr - 1 else 0)
        if fired:
            last_out = t
        cur = nxt
        t += 1
    return t, last_out, overflows


@njit(cache=True, nogil=True)  # nogil: runs off the main thread (Ctrl-C)
def _ws_pipelined(x, w, big_r, big_c, full, overlap, mode, lo, hi, span, out):
    """Run a WS GEMM PE by PE with fold pipelining: out (T, Nd) += x (T, Kd) @ w (Kd, Nd), w
    stationary. Return (cycles, last_output_cycle, overflows); cycles is -1 if a PE ever
    switched to a stationary value that had not finished loading (a timing hazard).

    Folds go outer over Nd (by C), inner over Kd (by R). Each PE has an active and a shadow
    weight register. A load of fold g starting at cycle l shifts its tile down the shadow
    registers column by column, column j one cycle behind column j-1 (cycles l + j .. l + j +
    L - 1, L = rr), a row taking part from the step that reaches it; column j holds the whole
    tile after cycle l + j + L - 1. The streamed operand carries its fold's index: a PE whose
    incoming operand belongs to a fold other than its active weights' swaps the shadow register
    in (the wavefront switch). Fold g+1 starts streaming at the first cycle that (a) its load
    has run L cycles, and (b) it can follow: g's last operand has entered row 0 (t >= s_g + T)
    when g+1 has the same charged rows and columns, or the array has drained otherwise. Loads:
    with ``overlap`` & 1 the load of g+1 starts when g starts streaming; without, when g's
    last operand has entered row 0 (same shape) or the array has drained (shape change).
    """
    t_len, k_dim = x.shape
    n_dim = w.shape[1]
    zero = np.zeros(1, x.dtype)[0]
    n_inner = (k_dim + big_r - 1) // big_r
    n_outer = (n_dim + big_c - 1) // big_c
    n_folds = n_inner * n_outer
    ovl = (overlap & 1) != 0
    starts = np.full(n_folds + 1, -1, np.int64)
    lstarts = np.full(n_folds + 1, -1, np.int64)
    w_act = np.zeros((big_r, big_c), x.dtype)
    w_sht = np.zeros((big_c, big_r), x.dtype)  # the shadow bank, column-major ([j, i])
    act_f = np.full((big_r, big_c), -1, np.int64)  # the fold of each PE's active weight
    sh_ft = np.full((big_c, big_r), -1, np.int64)  # the fold whose load completed, [j, i]
    top_p = np.zeros(big_c, x.dtype)  # partial sums enter the top of every column as 0
    top_ok = np.ones(big_c, np.bool_)
    a_v = np.zeros((2, big_r, big_c), x.dtype)
    a_ok = np.zeros((2, big_r, big_c), np.bool_)
    a_f = np.zeros((2, big_r, big_c), np.int64)
    p_v = np.zeros((2, big_r, big_c), x.dtype)
    p_ok = np.zeros((2, big_r, big_c), np.bool_)
    row_f = np.zeros(big_r, np.int64)
    col_l = np.zeros(big_c, np.int64)  # per column: the load it runs or will run next
    t = 0
    cur = 0
    last_out = -1
    overflows = 0
    hazards = 0
    started = 0
    loads = 0
    run_rr = run_cc = 0
    running = False
    in_flight = 0
    while True:
        # -- controller, at the start of cycle t
        if running and t - starts[started - 1] > t_len - 1 + run_rr - 1 and in_flight == 0:
            running = False
        if started < n_folds and loads > started:  # the next fold may start streaming
            g = started
            nr = big_r if full else min(big_r, k_dim - (g % n_inner) * big_r)
            nc = big_c if full else min(big_c, n_dim - (g // n_inner) * big_c)
            if t >= lstarts[g] + nr:
                if not running:
                    run_rr, run_cc = nr, nc
                    running = True
                    a_ok[cur] = False
                    p_ok[cur] = False
                    row_f[:] = g  # a new run: every earlier fold has left the array
                    starts[g] = t
                    started += 1
                elif nr == run_rr and nc == run_cc and t >= starts[g - 1] + t_len:
                    starts[g] = t
                    started += 1
        if not running and started >= n_folds:
            break
        # a load may start: the first at once; the next when its predecessor fold has started
        # (overlap), or the predecessor's feed is done (same shape) or the array has drained
        if loads < n_folds and loads == started:
            g = loads
            nr = big_r if full else min(big_r, k_dim - (g % n_inner) * big_r)
            nc = big_c if full else min(big_c, n_dim - (g // n_inner) * big_c)
            same = running and nr == run_rr and nc == run_cc
            if g == 0 or ovl or not running or (same and t >= starts[g - 1] + t_len):
                lstarts[g] = t
                loads += 1
        nxt = 1 - cur
        # -- stream: the streamed operand moves right, partial sums down
        if running:
            in_flight = 0
            bottom = run_rr - 1
            cc = run_cc
            for i in range(run_rr):
                while row_f[i] < started - 1 and t - i >= starts[row_f[i]] + t_len:
                    row_f[i] += 1
                g = row_f[i]
                mm = t - i - starts[g] if g < started else -1
                ok = 0 <= mm < t_len
                k0 = (g % n_inner) * big_r
                r = min(big_r, k_dim - k0) if ok else 0
                av_n = a_v[nxt, i]
                aok_n = a_ok[nxt, i]
                af_n = a_f[nxt, i]
                av_c = a_v[cur, i]
                aok_c = a_ok[cur, i]
                af_c = a_f[cur, i]
                for j in range(1, cc):  # the streamed operand moves one PE right
                    av_n[j] = av_c[j - 1]
                    aok_n[j] = aok_c[j - 1]
                    af_n[j] = af_c[j - 1]
                av_n[0] = x[mm, k0 + i] if (ok and i < r) else zero
                aok_n[0] = ok
                af_n[0] = g
                # the wavefront switch: fold gg's first operand is in column t - i - s_gg; a PE
                # whose incoming operand carries a fold other than its weights' swaps banks
                wact = w_act[i]
                actf = act_f[i]
                gg = g if g < started else started - 1
                while gg >= 0:
                    j = t - i - starts[gg]
                    if j >= cc:
                        break
                    if j >= 0 and aok_n[j] and af_n[j] != actf[j]:
                        if sh_ft[j, i] != af_n[j]:
                            hazards += 1
                        wact[j] = w_sht[j, i]
                        actf[j] = af_n[j]
                    gg -= 1
                if i == 0:
                    p_src = top_p
                    pok_src = top_ok
                else:
                    p_src = p_v[cur, i - 1]
                    pok_src = p_ok[cur, i - 1]
                pv_n = p_v[nxt, i]
                pok_n = p_ok[nxt, i]
                if mode == MODE_FLOAT:  # the same adder as _add, split out so it vectorises
                    for j in range(cc):
                        pv_n[j] = p_src[j] + av_n[j] * wact[j]
                        pok_n[j] = aok_n[j] & pok_src[j]
                else:
                    for j in range(cc):
                        valid = aok_n[j] & pok_src[j]
                        s, o = _add(p_src[j], av_n[j] * wact[j], mode, lo, hi, span)
                        pv_n[j] = s
                        pok_n[j] = valid
                        overflows += o if valid else 0
                n_a = 0
                for j in range(cc - 1):
                    n_a += aok_n[j]
                in_flight += n_a
                if i < bottom:
                    n_p = 0
                    for j in range(cc):
                        n_p += pok_n[j]
                    in_flight += n_p
                else:  # the bottom row's partial sums leave into the accumulator
                    for j in range(cc):
                        if pok_n[j]:
                            last_out = t
                            n0 = (af_n[j] // n_inner) * big_c
                            if j < min(big_c, n_dim - n0):
                                mo = t - bottom - j - starts[af_n[j]]  # the row of A it is for
                                v, o2 = _add(out[mo, n0 + j], pv_n[j], mode, lo, hi, span)
                                out[mo, n0 + j] = v
                                overflows += o2
        # -- loads: each column shifts its load's tile down the shadow registers, skewed
        for j in range(big_c):
            while col_l[j] < loads - 1:
                gl = col_l[j]
                lr = big_r if full else min(big_r, k_dim - (gl % n_inner) * big_r)
                if t - j < lstarts[gl] + lr:
                    break
                col_l[j] += 1
            gl = col_l[j]
            if gl >= loads:
                continue
            step = t - j - lstarts[gl]
            if step < 0:
                continue
            k0 = (gl % n_inner) * big_r
            n0 = (gl // n_inner) * big_c
            l_r = min(big_r, k_dim - k0)
            l_c = min(big_c, n_dim - n0)
            l_rows = big_r if full else l_r
            l_cols = big_c if full else l_c
            if j >= l_cols or step >= l_rows:
                continue
            col = w_sht[j]  # column j of the shadow bank, stored contiguously
            for i in range(min(step, l_rows - 1), 0, -1):
                col[i] = col[i - 1]
            row = l_rows - 1 - step
            col[0] = w[k0 + row, n0 + j] if (row < l_r and j < l_c) else zero
            if step == l_rows - 1:
                for i in range(l_rows):
                    sh_ft[j, i] = gl
        cur = nxt
        t += 1
    if hazards:
        return -1, last_out, overflows
    return t, last_out, overflows
