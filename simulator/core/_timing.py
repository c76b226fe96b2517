"""Hot loops: the per-fold cycle model of a GEMM on one array (numba; scalars only).

A fold with ``r`` used rows and ``c`` used columns (out of R x C) streams T operands:

    used rows rr = R if full else r;   used cols cc = C if full else c
    load   L = rr        (ws/is: stationary operand shifted in one row per cycle; os: 0)
    stream S = T + rr + cc - 2   (skew in over rr rows, across cc columns, last output out)

Without preload overlap the folds run back to back: total = sum(L_f + S_f). With overlap the next
fold's load starts when the current fold starts streaming, so fold f+1 starts streaming at
max(end of f's stream, end of f+1's load): total = L_0 + sum_{f<F-1} max(S_f, L_{f+1}) + S_{F-1}.

With fold pipelining (``overlap`` bit 2, ``array.fold_pipelining``) consecutive folds that use
the same charged rows and columns form a run: the next fold's first operand enters the cycle
after the current fold's last one (double-buffered stationary registers switch as the wavefront
passes), so within a run a fold holds the array for T cycles instead of S, and fill and drain
(rr + cc - 2) are paid once per run. A change of shape (only under ``fill_drain: active``) ends
the run: the array drains first. Writing base_f = T_f within a run and S_f at its end:

    no preload overlap: total = sum_f (L_f + base_f)
    preload overlap:    total = L_0 + sum_{f<F-1} max(base_f, L_{f+1}) + S_{F-1}

(without pipelining base_f = S_f, the formulas above).

Each fold is charged the cycles between its start and the next fold's start (the first also
pays L_0), so the charges add up to the total; ``busy`` weights each fold's used PEs (r*c) by
its charge, which gives the mapping efficiency busy / (R*C*total).

``_gemm_cycles`` evaluates this in O(1) by grouping folds into the (at most) four distinct fold
shapes and their transitions; ``_gemm_cycles_per_fold`` is the obviously-correct O(folds) loop it
is tested against.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def _extent(size, tile, index):
    """Extent of fold ``index`` of a dimension of ``size`` cut into ``tile``-sized folds."""
    rest = size - index * tile
    return tile if rest > tile else rest


@njit(cache=True)
def _load_stream(t_len, r, c, big_r, big_c, full, has_load):
    rr = big_r if full else r
    cc = big_c if full else c
    load = rr if has_load else 0
    return load, t_len + rr + cc - 2


@njit(cache=True)
def _fold_charge(t_len, r, c, nr, nc, last, big_r, big_c, full, has_load, overlap):
    """Return the cycles charged to a fold of r x c used PEs whose successor uses nr x nc
    (ignored when ``last``), not counting the exposed load of the first fold (added once).

    ``overlap`` is a bit set: 1 preload_overlap, 2 fold_pipelining. A fold's stream occupies the
    array for ``base`` cycles before the next fold may enter: S, or T when the folds are
    pipelined and the next one uses the same charged rows and columns (one run).
    """
    load, stream = _load_stream(t_len, r, c, big_r, big_c, full, has_load)
    pipe = (overlap & 2) != 0
    ovl = (overlap & 1) != 0 and has_load
    if last:
        return stream if ovl else load + stream
    same = full or (r == nr and c == nc)
    base = t_len if (pipe and same) else stream
    if ovl:
        next_load, _ns = _load_stream(t_len, nr, nc, big_r, big_c, full, has_load)
        return base if base > next_load else next_load
    return load + base


@njit(cache=True)
def _fold_rc(outer_size, outer_tile, inner_size, inner_tile, n_inner, rows_from_outer, f):
    """Return (used rows, used cols) of fold ``f`` (outer-major order)."""
    eo = _extent(outer_size, outer_tile, f // n_inner)
    ei = _extent(inner_size, inner_tile, f % n_inner)
    if rows_from_outer:
        return eo, ei
    return ei, eo


@njit(cache=True)
def _gemm_cycles_per_fold(t_len, outer_size, outer_tile, inner_size, inner_tile,
                          rows_from_outer, big_r, big_c, full, has_load, overlap):
    """O(folds) reference of the cycle model: return (cycles, busy PE-cycles, folds).
    ``overlap``: bit 1 preload_overlap, bit 2 fold_pipelining (a bool means preload_overlap)."""
    n_outer = (outer_size + outer_tile - 1) // outer_tile
    n_inner = (inner_size + inner_tile - 1) // inner_tile
    n_folds = n_outer * n_inner
    ovl = (overlap & 1) != 0 and has_load
    total = 0
    busy = 0
    for f in range(n_folds):
        r, c = _fold_rc(outer_size, outer_tile, inner_size, inner_tile, n_inner,
                        rows_from_outer, f)
        last = f + 1 == n_folds
        nr, nc = r, c
        if not last:
            nr, nc = _fold_rc(outer_size, outer_tile, inner_size, inner_tile, n_inner,
                              rows_from_outer, f + 1)
        charge = _fold_charge(t_len, r, c, nr, nc, last, big_r, big_c, full, has_load, overlap)
        if f == 0 and ovl:
            charge += _load_stream(t_len, r, c, big_r, big_c, full, has_load)[0]
        total += charge
        busy += charge * r * c
    return total, busy, n_folds


@njit(cache=True)
def _gemm_cycles(t_len, outer_size, outer_tile, inner_size, inner_tile,
                 rows_from_outer, big_r, big_c, full, has_load, overlap):
    """O(1) cycle model: return (cycles, busy PE-cycles, folds); equals _gemm_cycles_per_fold.

    Fold positions along a dimension fall in two classes, "not last" (extent = tile) and "last"
    (the remainder, possibly = tile). A fold's charge depends on its shape and its successor's;
    the last fold of an outer block that is not the last is followed by the first fold of a
    block that is either not last (n_outer - 2 of them) or last (one).
    """
    n_outer = (outer_size + outer_tile - 1) // outer_tile
    n_inner = (inner_size + inner_tile - 1) // inner_tile
    last_outer = outer_size - (n_outer - 1) * outer_tile
    last_inner = inner_size - (n_inner - 1) * inner_tile
    overlapped = (overlap & 1) != 0 and has_load
    first_inner = inner_tile if n_inner > 1 else last_inner
    total = 0
    busy = 0
    for oc in range(2):  # 0: outer blocks that are not last, 1: the last outer block
        count_o = n_outer - 1 if oc == 0 else 1
        if count_o == 0:
            continue
        eo = outer_tile if oc == 0 else last_outer
        for ic in range(3):  # 0: inner not last, next not last; 1: inner second-to-last; 2: last
            if ic == 0:
                count_i = n_inner - 2 if n_inner >= 2 else 0
                ei = inner_tile
                next_ei = inner_tile
            elif ic == 1:
                count_i = 1 if n_inner >= 2 else 0
                ei = inner_tile
                next_ei = last_inner
            else:
                count_i = 1
                ei = last_inner
                next_ei = first_inner  # first fold of the next outer block
            if count_i == 0:
                continue
            r = eo if rows_from_outer else ei
            c = ei if rows_from_outer else eo
            for sub in range(2):  # the next fold's outer extent: same block, or next block's
                if ic < 2 or oc == 1:
                    if sub == 1:
                        continue
                    cnt = count_o * count_i
                    next_eo = eo
                else:
                    cnt = count_o - 1 if sub == 0 else 1
                    next_eo = outer_tile if sub == 0 else last_outer
                if cnt == 0:
                    continue
                last = ic == 2 and oc == 1
                nr = next_eo if rows_from_outer else next_ei
                nc = next_ei if rows_from_outer else next_eo
                charge = _fold_charge(t_len, r, c, nr, nc, last, big_r, big_c, full, has_load,
                                      overlap)
                total += cnt * charge
                busy += cnt * charge * r * c
    if overlapped:
        r0 = (outer_tile if n_outer > 1 else last_outer) if rows_from_outer else first_inner
        c0 = first_inner if rows_from_outer else (outer_tile if n_outer > 1 else last_outer)
        load0, _s0 = _load_stream(t_len, r0, c0, big_r, big_c, full, has_load)
        total += load0
        busy += load0 * r0 * c0
    return total, busy, n_outer * n_inner
