"""Hot loops: tiling a GEMM to the buffers, DRAM traffic, the tile-step timeline (numba).

Tiles are tm x tn x tk; the tile loops run in one of six orders (``ORDER_POS[i]`` gives the loop
positions of m, n, k, 0 = outermost). A buffer holds the current tile of each operand; a tile is
fetched again only when one of its indices changes, so operand X is fetched

    reps(X) = product of the trip counts of the loops that X does not index and that sit
              outside X's innermost loop of more than one trip

times in full. O tiles are written back at the end of each visit and read back when a later
visit continues their k range (visits of an O tile start at k tile 0, so the first never reads).
A visit that ends before the last k tile writes partial sums (``acc_b`` bytes per element,
read back the same); the visit that completes the k range writes the requantised results
(``out_b`` bytes per element, output.dtype).

Register events (bytes): every MAC reads its two operands (``in_b`` each) and reads and writes
its partial sum (``acc_b`` each); every operand element a PE latches, entering at the array's
edge or hopping in from a neighbour (stationary loads included), is a register write of
``in_b``.
For a conv lowered in the feeder (a geometry array ``conv``, see ``_conv``), a fetch of an A
tile moves the input elements its windows touch instead of its tm x tk entries.

Streaming tile steps: the array holds one stationary tile (ws: B, is: A, os: O). When that
tile is a single fold on every array and the next tile step keeps it (ws: same B tile, the step
streams the next rows of A; is: same A tile, next columns of B; os: same O tile, next k range),
the array does not restart: no stationary reload, no new fill and drain; the continuing step
costs only its stream (``_one_array(..., cont=True)``), and the run of steps is timed as one
longer stream (``_streams`` says whether a tiling can do it).

Timeline (double-buffered): the first tile's load is exposed, then each step lasts
max(compute, write-back of the previous step's O + load of the next step's operands), and the
last write-back is exposed. Single-buffered: load, compute and write back in turn. A transfer
of b > 0 bytes takes latency + ceil(b / bytes_per_cycle) cycles; with ideal DRAM it takes 0.
Shared DRAM port: all of a step's loads are one transfer and share the port with the
write-back. Per-operand ports (``per_port``): A, B and O move at the same time on their own
ports, so a phase's DMA time is max(load A, load B, write-back O + read-back O).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._conv import _tile_bound, _tile_elems, _tiles_sum  # noqa: F401 (used via _memory)
from ._timing import _gemm_cycles
from .one_tile import ORDERS  # the loop orders ORDER_POS follows (plain Python, no numba)

ORDER_POS = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]], np.int64)

# indices into the counters array returned by _run_steps
C_TOTAL, C_COMPUTE, C_BUSY, C_STEPS = 0, 1, 2, 3
C_DRAM_A, C_DRAM_B, C_DRAM_O_RD, C_DRAM_O_WR = 4, 5, 6, 7
C_BUF_RD, C_BUF_WR, C_HOP_BYTES, C_XFER, C_PORT = 8, 9, 10, 11, 12
C_BUF_RD_A, C_BUF_RD_B = 13, 14  # the array's reads of the A and B buffers (part of C_BUF_RD)
C_PREFETCH, C_DRAIN = 15, 16  # the exposed first load and last write-back, cycles
C_REG_RD, C_REG_WR = 17, 18  # PE register reads and writes, bytes (see module doc)
N_COUNTERS = 19


@njit(cache=True)
def _cdiv(a, b):
    return (a + b - 1) // b


@njit(cache=True)
def _reps(trips_m, trips_n, trips_k, pm, pn, pk):
    """Return (reps of A, reps of B, visits per O tile) for loop positions pm, pn, pk.

    A loop of one trip never changes a tile, so it does not count as X's innermost loop.
    """
    qm = pm if trips_m > 1 else -1
    qn = pn if trips_n > 1 else -1
    qk = pk if trips_k > 1 else -1
    pa = max(qm, qk)
    pb = max(qk, qn)
    po = max(qm, qn)
    ra = trips_n if qn >= 0 and qn < pa else 1
    rb = trips_m if qm >= 0 and qm < pb else 1
    ro = trips_k if qk >= 0 and qk < po else 1
    return ra, rb, ro


@njit(cache=True)
def _dram_traffic(m, n, k, tm, tn, tk, order, in_b, acc_b, out_b):
    """Return DRAM bytes (A read, B read, O read back, O written) of a tiling, in closed form:
    each O tile's visits but the last write partial sums (acc_b), the last its results
    (out_b)."""
    pm = ORDER_POS[order, 0]
    pn = ORDER_POS[order, 1]
    pk = ORDER_POS[order, 2]
    ra, rb, ro = _reps(_cdiv(m, tm), _cdiv(n, tn), _cdiv(k, tk), pm, pn, pk)
    return (ra * m * k * in_b, rb * k * n * in_b, (ro - 1) * m * n * acc_b,
            (ro - 1) * m * n * acc_b + m * n * out_b)


@njit(cache=True)
def _fits(tm, tn, tk, in_b, acc_b, caps, unified, double_buffered):
    """True if the tiles fit: caps = (A, B, O, unified) bytes, 0 = unbounded."""
    return _fits_a(tm * tk, tm, tn, tk, in_b, acc_b, caps, unified, double_buffered)


@njit(cache=True)
def _fits_a(a_elems, tm, tn, tk, in_b, acc_b, caps, unified, double_buffered):
    """True if the tiles fit with an A tile of ``a_elems`` elements (tm * tk, or the input
    elements of a feeder-lowered conv's tile): caps = (A, B, O, unified) bytes, 0 = unbounded."""
    div = 2 if double_buffered else 1
    a = a_elems * in_b * div
    b = tk * tn * in_b * div
    o = tm * tn * acc_b * div
    if unified:
        return caps[3] == 0 or a + b + o <= caps[3]
    return (caps[0] == 0 or a <= caps[0]) and (caps[1] == 0 or b <= caps[1]) and \
        (caps[2] == 0 or o <= caps[2])


@njit(cache=True)
def _search_tiling(m, n, k, cand_m, cand_n, cand_k, orders, in_b, acc_b, caps, unified,
                   double_buffered, df, big_r, big_c, full, overlap, count, split, tile_m,
                   tile_n, out_b, conv):
    """Return every tiling that fits, as (rows of (tm, tn, tk, order), estimated array cycles,
    DRAM bytes, tile steps); empty arrays when none fits.

    The estimate sums the array cycles of the (at most 8) distinct tile shapes; none of these
    figures depends on the DRAM bandwidth. ``conv``: the geometry of a feeder-lowered conv
    (``_conv``; empty for a plain GEMM or im2col in memory): an A tile then takes the bound
    ``_conv._tile_bound`` on its input elements in the buffer, and its DRAM bytes are estimated
    from that bound (the tile walk counts them exactly).
    """
    n_cand = cand_m.size * cand_n.size * cand_k.size * orders.size
    rows = np.zeros((n_cand, 4), np.int64)
    comp = np.zeros(n_cand, np.float64)
    traffic = np.zeros(n_cand, np.int64)
    steps = np.zeros(n_cand, np.int64)
    used = 0
    whole = _tile_elems(conv, 0, m, 0, k) if conv.size else 0  # the whole map, exact
    for tm in cand_m:
        for tn in cand_n:
            for tk in cand_k:
                a_el = tm * tk
                if conv.size:  # the whole map: exact; a tile: its bound
                    a_el = whole if tm >= m and tk >= k else _tile_bound(conv, tm, tk)
                if not _fits_a(a_el, tm, tn, tk, in_b, acc_b, caps, unified, double_buffered):
                    continue
                est_plain = _estimate_compute(m, n, k, tm, tn, tk, df, big_r, big_c, full,
                                              overlap, count, split, tile_m, tile_n, False)
                can_stream = _streams(df, tm, tn, tk, big_r, big_c, count, split)
                est_stream = est_plain
                if can_stream:
                    est_stream = _estimate_compute(m, n, k, tm, tn, tk, df, big_r, big_c, full,
                                                   overlap, count, split, tile_m, tile_n, True)
                st = _cdiv(m, tm) * _cdiv(n, tn) * _cdiv(k, tk)
                for o in orders:
                    est = est_stream if can_stream and _stationary_visits(
                        df, m, n, k, tm, tn, tk, o) == 1 else est_plain
                    a, b, orr, ow = _dram_traffic(m, n, k, tm, tn, tk, o, in_b, acc_b, out_b)
                    if conv.size:  # reps of A x every tile at its bound (<= im2col bytes)
                        a = a // (m * k * in_b) * min(m * k, st // _cdiv(n, tn) * a_el) * in_b
                    rows[used, 0] = tm
                    rows[used, 1] = tn
                    rows[used, 2] = tk
                    rows[used, 3] = o
                    comp[used] = est
                    traffic[used] = a + b + orr + ow
                    steps[used] = st
                    used += 1
    return rows[:used], comp[:used], traffic[:used], steps[:used]


@njit(cache=True)
def _streams(df, tm, tn, tk, big_r, big_c, count, split):
    """True when the stationary tile of a tm x tn x tk tiling is a single fold on every array,
    so that tile steps keeping it continue the stream (never with split 2, tiles)."""
    if split == 2:
        return False
    if df == 0:  # O: rows from m, columns from n
        rows = _cdiv(tm, count) if split == 0 else tm
        cols = _cdiv(tn, count) if split == 1 else tn
    elif df == 1:  # B: rows from k, columns from n
        rows = tk
        cols = _cdiv(tn, count) if split == 1 else tn
    else:  # A: rows from k, columns from m
        rows = tk
        cols = _cdiv(tm, count) if split == 0 else tm
    return rows <= big_r and cols <= big_c


@njit(cache=True)
def _stationary_visits(df, m, n, k, tm, tn, tk, order):
    """Return how often each stationary tile (ws: B, is: A, os: O) is visited: 1 when all the
    tile steps that use it are consecutive."""
    ra, rb, ro = _reps(_cdiv(m, tm), _cdiv(n, tn), _cdiv(k, tk), ORDER_POS[order, 0],
                       ORDER_POS[order, 1], ORDER_POS[order, 2])
    return ro if df == 0 else (rb if df == 1 else ra)


@njit(cache=True)
def _estimate_compute(m, n, k, tm, tn, tk, df, big_r, big_c, full, overlap, count, split,
                      tile_m, tile_n, stream):
    """Array cycles of all tile steps, from the distinct tile shapes: exact for splits m and n
    (a cheap upper bound for split tiles; the step walk gives the exact figure). ``stream``:
    every stationary tile's steps run back to back as one stream (see module doc), so along
    the streamed dimension (ws m, is n, os k) only the first step of each run pays the full
    cost and the others their stream."""
    total = 0.0
    s_dim = 2 if df == 0 else (0 if df == 1 else 1)  # the streamed dimension
    for a in range(2):
        cm = m // tm if a == 0 else (1 if m % tm else 0)
        em = tm if a == 0 else m % tm
        if cm == 0:
            continue
        for b in range(2):
            cn = n // tn if b == 0 else (1 if n % tn else 0)
            en = tn if b == 0 else n % tn
            if cn == 0:
                continue
            for c in range(2):
                ck = k // tk if c == 0 else (1 if k % tk else 0)
                ek = tk if c == 0 else k % tk
                if ck == 0:
                    continue
                if split == 2:  # waves of tile_m x tile_n tiles over the arrays
                    tiles = _cdiv(em, tile_m) * _cdiv(en, tile_n)
                    one = _one_array(df, min(em, tile_m), min(en, tile_n), ek, big_r, big_c,
                                     full, overlap, False)[0]
                    total += cm * cn * ck * _cdiv(tiles, count) * one
                    continue
                sm = _cdiv(em, count) if split == 0 else em
                sn = _cdiv(en, count) if split == 1 else en
                cyc = _one_array(df, sm, sn, ek, big_r, big_c, full, overlap, False)[0]
                if not stream:
                    total += cm * cn * ck * cyc
                    continue
                cont = _one_array(df, sm, sn, ek, big_r, big_c, full, overlap, True)[0]
                cls = a if s_dim == 0 else (b if s_dim == 1 else c)
                n_s = cm if s_dim == 0 else (cn if s_dim == 1 else ck)  # steps in this class
                others = cm * cn * ck // n_s
                full_s = (m // tm) if s_dim == 0 else ((n // tn) if s_dim == 1 else (k // tk))
                # each run starts with a full-size step (class 0) unless the dimension has only
                # its edge tile
                first = cls == 0 or full_s == 0
                total += others * (cyc + (n_s - 1) * cont if first else n_s * cont)
    return total


@njit(cache=True)
def _fold_sum_triangle(size, tile):
    """Sum over the folds of a dimension of r*(r-1)/2 (r = fold extent): stationary load hops."""
    full = size // tile
    rem = size - full * tile
    return full * (tile * (tile - 1) // 2) + rem * (rem - 1) // 2


@njit(cache=True)
def _one_array(df, m, n, k, big_r, big_c, full, overlap, cont):
    """One array on an m x n x k GEMM: return (cycles, busy, A reads, B reads, acc reads,
    acc writes, operand hops, partial-sum hops), reads/writes/hops in elements.

    ``cont``: the GEMM is a single fold continuing the previous step's stream with the same
    stationary tile: it costs only its stream (os k, ws m, is n cycles), reads no stationary
    operand, moves no stationary load hops, and (os) leaves its outputs in the PEs for the
    step that started the run to write once.
    """
    if cont:
        if df == 0:
            return k, m * n * k, m * k, k * n, 0, 0, k * m * (n - 1) + k * n * (m - 1), 0
        if df == 1:
            return m, m * n * k, m * k, 0, 0, m * n, m * k * (n - 1), m * n * (k - 1)
        return n, m * n * k, 0, k * n, 0, m * n, n * k * (m - 1), m * n * (k - 1)
    if df == 0:  # os
        cyc, busy, _f = _gemm_cycles(k, m, big_r, n, big_c, True, big_r, big_c, full, False,
                                     overlap)
        a_rd = _cdiv(n, big_c) * m * k
        b_rd = _cdiv(m, big_r) * k * n
        o_rd = 0
        o_wr = m * n
        hops = k * m * (n - _cdiv(n, big_c)) + k * n * (m - _cdiv(m, big_r))
        p_hops = 0
    else:  # ws: B stationary, A streamed. is: A stationary, B streamed, the same array
        # working on O^T = B^T A^T, i.e. ws with m and n swapped and the operands' roles too
        if df == 2:
            m, n = n, m
        cyc, busy, _f = _gemm_cycles(m, n, big_c, k, big_r, False, big_r, big_c, full, True,
                                     overlap)
        kf = _cdiv(k, big_r)
        b_rd = k * n
        a_rd = _cdiv(n, big_c) * m * k
        o_wr = kf * m * n
        o_rd = (kf - 1) * m * n
        hops = m * k * (n - _cdiv(n, big_c)) + n * _fold_sum_triangle(k, big_r)
        p_hops = m * n * (k - kf)
        if df == 2:
            a_rd, b_rd = b_rd, a_rd
    return cyc, busy, a_rd, b_rd, o_rd, o_wr, hops, p_hops


@njit(cache=True)
def _arrays(df, m, n, k, big_r, big_c, full, overlap, count, split, tile_m, tile_n, cont):
    """``count`` arrays sharing an m x n x k GEMM: return the slowest array's cycles and the
    other _one_array figures summed over the arrays (``cont``: see _one_array; splits m, n).

    split 0: along m, 1: along n (shares differ by at most one row or column); 2: O cut into
    tile_m x tile_n tiles dealt round-robin to the arrays (waves), each array running its tiles
    one after another.
    """
    out = np.zeros(8, np.int64)
    if split == 2:
        tiles_m = (m + tile_m - 1) // tile_m
        tiles_n = (n + tile_n - 1) // tile_n
        per_array = np.zeros(min(count, tiles_m * tiles_n), np.int64)
        cache = np.zeros((2, 2, 8), np.int64)  # [m edge?][n edge?] -> figures of that tile shape
        for a in range(2):
            for b in range(2):
                em = min(tile_m, m) if a == 0 else m - (tiles_m - 1) * tile_m
                en = min(tile_n, n) if b == 0 else n - (tiles_n - 1) * tile_n
                r = _one_array(df, em, en, k, big_r, big_c, full, overlap, False)
                for i in range(8):
                    cache[a, b, i] = r[i]
        for t in range(tiles_m * tiles_n):
            a = 1 if t // tiles_n == tiles_m - 1 else 0
            b = 1 if t % tiles_n == tiles_n - 1 else 0
            per_array[t % per_array.size] += cache[a, b, 0]
            for i in range(1, 8):
                out[i] += cache[a, b, i]
        out[0] = per_array.max()
        return out
    split_n = split == 1
    size = n if split_n else m
    q = size // count
    rem = size - q * count
    for part in range(2):  # rem arrays get q + 1, the others q
        share = q + 1 if part == 0 else q
        arrays = rem if part == 0 else count - rem
        if share == 0 or arrays == 0:
            continue
        if split_n:
            r = _one_array(df, m, share, k, big_r, big_c, full, overlap, cont)
        else:
            r = _one_array(df, share, n, k, big_r, big_c, full, overlap, cont)
        if r[0] > out[0]:
            out[0] = r[0]
        for i in range(1, 8):
            out[i] += arrays * r[i]
    return out


@njit(cache=True)
def _xfer(nbytes, bytes_per_cycle, latency):
    if nbytes <= 0 or bytes_per_cycle <= 0.0:  # nothing to move, or ideal DRAM
        return 0
    return latency + int(np.ceil(nbytes / bytes_per_cycle))


@njit(cache=True)
def _port(nbytes, port):
    return 0 if port <= 0.0 else int(np.ceil(nbytes / port))


@njit(cache=True, nogil=True)  # nogil: a long walk runs off the main thread (Ctrl-C)
def _run_steps(df, m, n, k, tm, tn, tk, order, big_r, big_c, full, overlap, count, split,
               tile_m, tile_n, in_b, acc_b, bpc, per_port, latency, double_buffered, unified,
               ports, out_b, conv):
    """Walk the tile steps in loop order; return the counters (see C_* indices) as int64.

    ``conv``: the geometry of a feeder-lowered conv (``_conv``; empty: A tiles are im2col
    tiles in DRAM): an A tile then loads the distinct input elements its windows touch.

    ``bpc`` = (A, B, O) DRAM bytes/cycle, 0 = ideal; with ``per_port`` False one shared port
    at bpc[0] carries everything. ``ports`` = (A, B, O, unified) buffer read bandwidth into the
    array, bytes/cycle, 0 = unbounded. ``out_b``: bytes per element of the final write-back.
    """
    out = np.zeros(N_COUNTERS, np.int64)
    trips = np.array([_cdiv(m, tm), _cdiv(n, tn), _cdiv(k, tk)], np.int64)
    pos = ORDER_POS[order]
    loop_dim = np.zeros(3, np.int64)  # loop_dim[p] = dimension (0 m, 1 n, 2 k) at position p
    for d in range(3):
        loop_dim[pos[d]] = d
    n_steps = trips[0] * trips[1] * trips[2]
    # input elements of each A tile (feeder-lowered conv), counted once per tile
    a_elems = np.full(trips[0] * trips[2] if conv.size else 0, -1, np.int64)
    can_stream = _streams(df, tm, tn, tk, big_r, big_c, count, split)
    idx = np.zeros(3, np.int64)
    cur_a = (-1, -1)
    cur_b = (-1, -1)
    cur_o = (-1, -1)
    # double buffering: phase s lasts max(c_s, W_{s-1} + L_{s+1}); it is charged once L_{s+1}
    # is known, i.e. while handling step s+1. c_prev = c_{s-1}, w_prev = W_{s-1}, w_prev2 = W_{s-2}
    # (W on the O port; L split into the A/B ports' part and the O port's part)
    c_prev = 0
    w_prev = 0
    w_prev2 = 0
    total = 0
    x_a = 0  # busy cycles of each DRAM port (per_port), for the memory-bound flag
    x_b = 0
    x_o = 0
    shape_figs = np.zeros((2, 8, 8), np.int64)  # [continues?][tile shape class]
    known = np.zeros((2, 8), np.bool_)
    s = 0
    while s < n_steps:
        # decode step s into tile indices
        rest = s
        for p in range(2, -1, -1):
            d = loop_dim[p]
            idx[d] = rest % trips[d]
            rest //= trips[d]
        mi, ni, ki = idx[0], idx[1], idx[2]
        em = min(tm, m - mi * tm)
        en = min(tn, n - ni * tn)
        ek = min(tk, k - ki * tk)
        # does this step keep the previous step's stationary tile (and so its stream)?
        if df == 0:
            cont = can_stream and (mi, ni) == cur_o
        elif df == 1:
            cont = can_stream and (ki, ni) == cur_b
        else:
            cont = can_stream and (mi, ki) == cur_a
        load_a = 0
        load_b = 0
        load_o = 0
        if (mi, ki) != cur_a:
            if conv.size:
                t_a = mi * trips[2] + ki
                if a_elems[t_a] < 0:
                    a_elems[t_a] = _tile_elems(conv, mi * tm, mi * tm + em, ki * tk,
                                               ki * tk + ek)
                load_a = a_elems[t_a] * in_b
            else:
                load_a = em * ek * in_b
            cur_a = (mi, ki)
        if (ki, ni) != cur_b:
            load_b = ek * en * in_b
            cur_b = (ki, ni)
        continues_o = False
        if (mi, ni) != cur_o:
            if ki > 0:  # a later visit of this O tile: read its partial sums back
                load_o = em * en * acc_b
            cur_o = (mi, ni)
        else:
            continues_o = True
        out[C_DRAM_A] += load_a
        out[C_DRAM_B] += load_b
        out[C_DRAM_O_RD] += load_o
        load = load_a + load_b + load_o
        # does the O tile's visit end after this step? (next step has another O tile, or none)
        write = 0
        # a visit ending at the last k tile writes results, any other partial sums
        wr_b = out_b if ki == trips[2] - 1 else acc_b
        if s + 1 == n_steps:
            write = em * en * wr_b
        else:
            rest = s + 1
            nidx0 = 0
            nidx1 = 0
            for p in range(2, -1, -1):
                d = loop_dim[p]
                v = rest % trips[d]
                rest //= trips[d]
                if d == 0:
                    nidx0 = v
                elif d == 1:
                    nidx1 = v
            if nidx0 != mi or nidx1 != ni:
                write = em * en * wr_b
        out[C_DRAM_O_WR] += write
        # the arrays on this step's sub-GEMM: one of at most 8 tile shapes (x continuing or
        # not), computed once each
        cls = (4 if em != tm else 0) + (2 if en != tn else 0) + (1 if ek != tk else 0)
        ci = 1 if cont else 0
        if not known[ci, cls]:
            shape_figs[ci, cls] = _arrays(df, em, en, ek, big_r, big_c, full, overlap, count,
                                          split, tile_m, tile_n, cont)
            known[ci, cls] = True
        r = shape_figs[ci, cls]
        cyc = r[0]
        # a step continuing an O tile (or starting a later visit) adds into the accumulators,
        # unless (os, streaming) the sums stay in the PEs
        extra_acc_rd = em * en if (continues_o or ki > 0) and not (cont and df == 0) else 0
        a_rd = r[2] * in_b
        b_rd = r[3] * in_b
        o_rd = (r[4] + extra_acc_rd) * acc_b
        o_wr = r[5] * acc_b
        if unified:
            port_cyc = _port(a_rd + b_rd + o_rd + o_wr, ports[3])
        else:
            port_cyc = max(_port(a_rd, ports[0]), max(_port(b_rd, ports[1]),
                                                      _port(o_rd + o_wr, ports[2])))
        busy_cyc = max(cyc, port_cyc)
        out[C_COMPUTE] += cyc
        out[C_BUSY] += r[1]
        out[C_PORT] += busy_cyc - cyc
        out[C_BUF_RD] += a_rd + b_rd + o_rd + write  # array reads + write-back to DRAM
        out[C_BUF_RD_A] += a_rd
        out[C_BUF_RD_B] += b_rd
        out[C_BUF_WR] += o_wr + load  # accumulator writes + fills from DRAM
        out[C_HOP_BYTES] += r[6] * in_b + r[7] * acc_b
        out[C_REG_RD] += em * en * ek * (2 * in_b + acc_b)
        out[C_REG_WR] += em * en * ek * acc_b + (r[2] + r[3] + r[6]) * in_b
        # DMA: t_ab = loads on the A and B ports, t_lo = load on the O port (with one shared
        # port, every load is on it), t_write = write-back on the O port
        if per_port:
            t_ab = max(_xfer(load_a, bpc[0], latency), _xfer(load_b, bpc[1], latency))
            t_lo = _xfer(load_o, bpc[2], latency)
            t_write = _xfer(write, bpc[2], latency)
            x_a += _xfer(load_a, bpc[0], latency)
            x_b += _xfer(load_b, bpc[1], latency)
            x_o += t_lo + t_write
        else:
            t_ab = 0
            t_lo = _xfer(load, bpc[0], latency)
            t_write = _xfer(write, bpc[0], latency)
            x_o += t_lo + t_write
        if double_buffered:
            if s == 0:
                total += max(t_ab, t_lo)  # the first load is exposed
                out[C_PREFETCH] = max(t_ab, t_lo)
            else:  # phase s-1: compute s-1 while writing back s-2 and loading s
                total += max(c_prev, max(t_ab, w_prev2 + t_lo))
            c_prev = busy_cyc
            w_prev2 = w_prev
            w_prev = t_write
        else:
            if s == 0:
                out[C_PREFETCH] = max(t_ab, t_lo)
            total += max(t_ab, t_lo) + busy_cyc + t_write
            w_prev = t_write
        s += 1
    if double_buffered:  # the last phase, then the last write-back, exposed
        total += max(c_prev, w_prev2) + w_prev
    out[C_DRAIN] = w_prev
    out[C_XFER] = max(x_a, max(x_b, x_o))
    out[C_TOTAL] = total
    out[C_STEPS] = n_steps
    return out
