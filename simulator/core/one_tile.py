"""A GEMM that runs as one tile on one array, timed in plain Python (no numba).

When the whole GEMM fits the buffers (always, when they are unbounded) and no tile size is
fixed, the tiling search has a single candidate: one tile step that loads A and B, runs the
array once and writes O back. Timing it needs only the O(1) cycle model, so this module does it
in plain Python and the command line answers without importing numba or loading its cache
(``memory.run_gemm_memory`` takes this path for one array). Each function is the plain-Python
twin of the numba function named in its docstring; ``tests/test_one_tile.py`` holds every one
equal to its twin over random arguments, and the whole result equal to the tile walk.
"""

from __future__ import annotations

import math

# loop orders of the tile loops, outermost first (``_memory.ORDER_POS`` follows this order)
ORDERS = ("mnk", "mkn", "nmk", "nkm", "kmn", "knm")


def cdiv(a: int, b: int) -> int:
    """Return ceil(a / b) for positive integers."""
    return (a + b - 1) // b


def load_stream(t_len: int, r: int, c: int, big_r: int, big_c: int, full: bool,
                has_load: bool) -> tuple[int, int]:
    """Return (load cycles, stream cycles) of one fold; twin of ``_timing._load_stream``."""
    rr = big_r if full else r
    cc = big_c if full else c
    return (rr if has_load else 0), t_len + rr + cc - 2


def fold_charge(t_len: int, r: int, c: int, nr: int, nc: int, last: bool, big_r: int,
                big_c: int, full: bool, has_load: bool, overlap: int) -> int:
    """Return the cycles charged to a fold (r x c used PEs, successor nr x nc), without the
    first fold's exposed load; ``overlap``: bit 1 preload_overlap, bit 2 fold_pipelining. Twin
    of ``_timing._fold_charge``."""
    load, stream = load_stream(t_len, r, c, big_r, big_c, full, has_load)
    pipe = (overlap & 2) != 0
    ovl = (overlap & 1) != 0 and has_load
    if last:
        return stream if ovl else load + stream
    same = full or (r == nr and c == nc)
    base = t_len if (pipe and same) else stream
    if ovl:
        return max(base, load_stream(t_len, nr, nc, big_r, big_c, full, has_load)[0])
    return load + base


def gemm_cycles(t_len: int, outer_size: int, outer_tile: int, inner_size: int, inner_tile: int,
                rows_from_outer: bool, big_r: int, big_c: int, full: bool, has_load: bool,
                overlap: int) -> tuple[int, int, int]:
    """Return (cycles, busy PE-cycles, folds) of one array's GEMM in O(1); twin of
    ``_timing._gemm_cycles`` (see ``_timing`` for the model and the fold classes)."""
    n_outer = cdiv(outer_size, outer_tile)
    n_inner = cdiv(inner_size, inner_tile)
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
                count_i, ei, next_ei = (n_inner - 2 if n_inner >= 2 else 0), inner_tile, inner_tile
            elif ic == 1:
                count_i, ei, next_ei = (1 if n_inner >= 2 else 0), inner_tile, last_inner
            else:
                count_i, ei, next_ei = 1, last_inner, first_inner
            if count_i == 0:
                continue
            r = eo if rows_from_outer else ei
            c = ei if rows_from_outer else eo
            if ic < 2 or oc == 1:
                nexts = ((count_o * count_i, eo),)
            else:  # the next block is not last (n_outer - 2 times) or last (once)
                nexts = ((count_o - 1, outer_tile), (1, last_outer))
            for cnt, next_eo in nexts:
                if cnt == 0:
                    continue
                nr = next_eo if rows_from_outer else next_ei
                nc = next_ei if rows_from_outer else next_eo
                charge = fold_charge(t_len, r, c, nr, nc, ic == 2 and oc == 1, big_r, big_c,
                                     full, has_load, overlap)
                total += cnt * charge
                busy += cnt * charge * r * c
    if overlapped:
        r0 = (outer_tile if n_outer > 1 else last_outer) if rows_from_outer else first_inner
        c0 = first_inner if rows_from_outer else (outer_tile if n_outer > 1 else last_outer)
        load0 = load_stream(t_len, r0, c0, big_r, big_c, full, has_load)[0]
        total += load0
        busy += load0 * r0 * c0
    return total, busy, n_outer * n_inner


def fold_sum_triangle(size: int, tile: int) -> int:
    """Return the sum over folds of r*(r-1)/2 (stationary load hops, in elements); twin of
    ``_memory._fold_sum_triangle``."""
    full = size // tile
    rem = size - full * tile
    return full * (tile * (tile - 1) // 2) + rem * (rem - 1) // 2


def one_array(df: int, m: int, n: int, k: int, big_r: int, big_c: int, full: bool,
              overlap: int) -> tuple[int, ...]:
    """Return (cycles, busy PE-cycles, A reads, B reads, acc reads, acc writes, operand hops,
    partial-sum hops) of one array on an m x n x k GEMM, reads, writes and hops in elements;
    ``df`` 0 os, 1 ws, 2 is; ``overlap`` bit 1 preload_overlap, bit 2 fold_pipelining. Twin of ``_memory._one_array``."""
    if df == 0:  # os
        cyc, busy, _f = gemm_cycles(k, m, big_r, n, big_c, True, big_r, big_c, full, False,
                                    overlap)
        a_rd = cdiv(n, big_c) * m * k
        b_rd = cdiv(m, big_r) * k * n
        hops = k * m * (n - cdiv(n, big_c)) + k * n * (m - cdiv(m, big_r))
        return cyc, busy, a_rd, b_rd, 0, m * n, hops, 0
    if df == 2:  # is: ws on O^T = B^T A^T, operands' roles swapped
        m, n = n, m
    cyc, busy, _f = gemm_cycles(m, n, big_c, k, big_r, False, big_r, big_c, full, True, overlap)
    kf = cdiv(k, big_r)
    b_rd = k * n
    a_rd = cdiv(n, big_c) * m * k
    hops = m * k * (n - cdiv(n, big_c)) + n * fold_sum_triangle(k, big_r)
    if df == 2:
        a_rd, b_rd = b_rd, a_rd
    return cyc, busy, a_rd, b_rd, (kf - 1) * m * n, kf * m * n, hops, m * n * (k - kf)


def transfer_cycles(nbytes: int, bytes_per_cycle: float, latency_cycles: int) -> int:
    """Return the cycles of one DRAM transfer (0 when nothing moves or DRAM is ideal); twin of
    ``_memory._xfer``."""
    if nbytes <= 0 or bytes_per_cycle <= 0.0:
        return 0
    return latency_cycles + int(math.ceil(nbytes / bytes_per_cycle))


def port_cycles(nbytes: int, port_bytes_per_cycle: float) -> int:
    """Return the cycles a buffer read port needs for ``nbytes`` (0 = unbounded port); twin of
    ``_memory._port``."""
    return 0 if port_bytes_per_cycle <= 0.0 else int(math.ceil(nbytes / port_bytes_per_cycle))


def fits(tm: int, tn: int, tk: int, in_b: int, acc_b: int, caps: tuple[int, int, int, int],
         unified: bool, double_buffered: bool, a_elems: int | None = None) -> bool:
    """Return True if tm x tn x tk tiles fit buffers of ``caps`` = (A, B, O, unified) bytes,
    0 = unbounded; ``a_elems``: the A tile's elements when not tm * tk (a feeder-lowered conv's
    input elements); twin of ``_memory._fits_a``."""
    div = 2 if double_buffered else 1
    a = (tm * tk if a_elems is None else a_elems) * in_b * div
    b = tk * tn * in_b * div
    o = tm * tn * acc_b * div
    if unified:
        return caps[3] == 0 or a + b + o <= caps[3]
    return (caps[0] == 0 or a <= caps[0]) and (caps[1] == 0 or b <= caps[1]) and \
        (caps[2] == 0 or o <= caps[2])


def one_step(df: int, m: int, n: int, k: int, big_r: int, big_c: int, full: bool, overlap: int,
             in_b: int, acc_b: int, bytes_per_cycle: float, latency_cycles: int, unified: bool,
             ports: tuple[float, float, float, float], out_b: int,
             a_load_elems: int | None = None) -> dict[str, int]:
    """Return the counters of a GEMM run as one tile step on one array (cycles, bytes): what
    ``_memory._run_steps`` returns for tiles of the whole GEMM, keyed by the names of its
    ``C_*`` indices (``total``, ``compute``, ``busy``, ``steps``, ``dram_a``, ``dram_b``,
    ``dram_o_rd``, ``dram_o_wr``, ``buf_rd``, ``buf_wr``, ``hop_bytes``, ``xfer``, ``port``,
    ``buf_rd_a``, ``buf_rd_b``, ``prefetch``, ``drain``, ``reg_rd``, ``reg_wr``), with one shared
    DRAM port; the write-back moves ``out_b`` bytes per result (output.dtype).

    The step loads A and B, computes, and writes O back; with one step double buffering hides
    nothing, so total = load + max(compute, port time) + write-back. ``a_load_elems``: the
    elements A loads from DRAM when not m * k (a feeder-lowered conv: its input elements).
    """
    cyc, busy, a_el, b_el, o_rd_el, o_wr_el, hops, p_hops = one_array(df, m, n, k, big_r, big_c,
                                                                       full, overlap)
    a_load = (m * k if a_load_elems is None else a_load_elems) * in_b
    load = a_load + k * n * in_b
    write = m * n * out_b
    a_rd, b_rd, o_rd, o_wr = a_el * in_b, b_el * in_b, o_rd_el * acc_b, o_wr_el * acc_b
    if unified:
        port = port_cycles(a_rd + b_rd + o_rd + o_wr, ports[3])
    else:
        port = max(port_cycles(a_rd, ports[0]), port_cycles(b_rd, ports[1]),
                   port_cycles(o_rd + o_wr, ports[2]))
    step = max(cyc, port)
    t_load = transfer_cycles(load, bytes_per_cycle, latency_cycles)
    t_write = transfer_cycles(write, bytes_per_cycle, latency_cycles)
    return {"total": t_load + step + t_write, "compute": cyc, "busy": busy, "steps": 1,
            "dram_a": a_load, "dram_b": k * n * in_b, "dram_o_rd": 0, "dram_o_wr": write,
            "buf_rd": a_rd + b_rd + o_rd + write, "buf_wr": o_wr + load,
            "hop_bytes": hops * in_b + p_hops * acc_b, "xfer": t_load + t_write,
            "port": step - cyc, "buf_rd_a": a_rd, "buf_rd_b": b_rd, "prefetch": t_load,
            "drain": t_write, "reg_rd": m * n * k * (2 * in_b + acc_b),
            "reg_wr": m * n * k * acc_b + (a_el + b_el + hops) * in_b}
