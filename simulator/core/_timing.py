"""Hot loops: the per-fold cycle model of a GEMM on one array (numba; scalars only).

A fold with ``r`` used rows and ``c`` used columns (out of R x C) streams T operands:

    used rows rr = R if full else r;   used cols cc = C if full else c
    load   L = rr        (ws/is: stationary operand shifted in one row per cycle; os: 0)
    stream S = T + rr + cc - 2   (skew in over rr rows, across cc columns, last output out)

Without preload overlap the folds run back to back: total = sum(L_f + S_f). With overlap the next
fold's load starts when the current fold starts streaming, so fold f+1 starts streaming at
max(end of f's stream, end of f+1's load): total = L_0 + sum_{f<F-1} max(S_f, L_{f+1}) + S_{F-1}.

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
def _gemm_cycles_per_fold(t_len, outer_size, outer_tile, inner_size, inner_tile,
                          rows_from_outer, big_r, big_c, full, has_load, overlap):
    """O(folds) reference of the cycle model: return (cycles, busy PE-cycles, folds)."""
    n_outer = (outer_size + outer_tile - 1) // outer_tile
    n_inner = (inner_size + inner_tile - 1) // inner_tile
    n_folds = n_outer * n_inner
    total = 0
    busy = 0
    for f in range(n_folds):
        eo = _extent(outer_size, outer_tile, f // n_inner)
        ei = _extent(inner_size, inner_tile, f % n_inner)
        r = eo if rows_from_outer else ei
        c = ei if rows_from_outer else eo
        load, stream = _load_stream(t_len, r, c, big_r, big_c, full, has_load)
        if overlap and has_load:
            charge = load if f == 0 else 0
            if f + 1 < n_folds:
                g = f + 1
                eo2 = _extent(outer_size, outer_tile, g // n_inner)
                ei2 = _extent(inner_size, inner_tile, g % n_inner)
                r2 = eo2 if rows_from_outer else ei2
                c2 = ei2 if rows_from_outer else eo2
                load2, _s2 = _load_stream(t_len, r2, c2, big_r, big_c, full, has_load)
                charge += stream if stream > load2 else load2
            else:
                charge += stream
        else:
            charge = load + stream
        total += charge
        busy += charge * r * c
    return total, busy, n_folds


@njit(cache=True)
def _gemm_cycles(t_len, outer_size, outer_tile, inner_size, inner_tile,
                 rows_from_outer, big_r, big_c, full, has_load, overlap):
    """O(1) cycle model: return (cycles, busy PE-cycles, folds); equals _gemm_cycles_per_fold.

    Fold positions along a dimension fall in two classes, "not last" (extent = tile) and "last"
    (the remainder, possibly = tile). The load of fold f+1 depends only on its inner extent.
    """
    n_outer = (outer_size + outer_tile - 1) // outer_tile
    n_inner = (inner_size + inner_tile - 1) // inner_tile
    last_outer = outer_size - (n_outer - 1) * outer_tile
    last_inner = inner_size - (n_inner - 1) * inner_tile
    overlapped = overlap and has_load
    first_inner = inner_tile if n_inner > 1 else last_inner
    total = 0
    busy = 0
    for oc in range(2):  # 0: outer blocks that are not last, 1: the last outer block
        count_o = n_outer - 1 if oc == 0 else 1
        if count_o == 0:
            continue
        eo = outer_tile if oc == 0 else last_outer
        block_total = 0
        block_busy = 0
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
            load, stream = _load_stream(t_len, r, c, big_r, big_c, full, has_load)
            if overlapped:
                if ic == 2 and oc == 1:
                    charge = stream  # the very last fold
                else:
                    nr = eo if rows_from_outer else next_ei
                    nc = next_ei if rows_from_outer else eo
                    next_load, _ns = _load_stream(t_len, nr, nc, big_r, big_c, full, has_load)
                    charge = stream if stream > next_load else next_load
            else:
                charge = load + stream
            block_total += count_i * charge
            block_busy += count_i * charge * r * c
        total += count_o * block_total
        busy += count_o * block_busy
    if overlapped:
        r0 = (outer_tile if n_outer > 1 else last_outer) if rows_from_outer else first_inner
        c0 = first_inner if rows_from_outer else (outer_tile if n_outer > 1 else last_outer)
        load0, _s0 = _load_stream(t_len, r0, c0, big_r, big_c, full, has_load)
        total += load0
        busy += load0 * r0 * c0
    return total, busy, n_outer * n_inner
