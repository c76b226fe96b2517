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


def conv_tile_inputs(conv, m0, m1, k0, k1):
    """Return the set of input elements (image, channel, iy, ix) that rows [m0, m1) x columns
    [k0, k1) of a conv's im2col matrix read, walking every entry; rows are ordered (image,
    oy, ox), columns (channel, ky, kx); taps that fall in the padding read nothing. ``conv``
    has fields nb, h, w, c, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow."""
    g = conv
    out = set()
    for r in range(m0, m1):
        img, p = divmod(r, g.oh * g.ow)
        oy, ox = divmod(p, g.ow)
        for col in range(k0, k1):
            ch, t = divmod(col, g.kh * g.kw)
            ky, kx = divmod(t, g.kw)
            iy = oy * g.sh - g.ph + ky * g.dh
            ix = ox * g.sw - g.pw + kx * g.dw
            if 0 <= iy < g.h and 0 <= ix < g.w:
                out.add((img, ch, iy, ix))
    return out


def tile_sequence(m, n, k, tm, tn, tk, order):
    """Return (trips per dimension, the tile steps in loop order ``order``, outermost first,
    each a dict of tile indices {"m", "n", "k"})."""
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
    return trips, seq


def slow_tile_walk(m, n, k, tm, tn, tk, order, in_b, acc_b, out_b=None, conv=None):
    """Walk tile steps one by one, keeping the resident tile of each operand in a variable.

    An O tile written back before its last k tile holds partial sums (``acc_b`` bytes each);
    written back after it, results in the output precision (``out_b``, default ``acc_b``).

    Return (dram dict, list of (load bytes, write bytes, (em, en, ek), tile indices {"m", "n",
    "k"}, (A, B, O read-back) load bytes)) per step. ``conv``: the GEMM is this conv's im2col
    expanded in the feeder: an A tile loads the distinct input elements it reads
    (``conv_tile_inputs``); ``dram["a_halo"]`` is then the A bytes beyond one fetch of every
    input element per pass over A (passes = A fetches / distinct A tiles).
    """
    trips, seq = tile_sequence(m, n, k, tm, tn, tk, order)
    dram = {"a": 0, "b": 0, "o_rd": 0, "o_wr": 0}
    res_a = res_b = res_o = None
    steps = []
    seen_a: dict = {}  # distinct A tiles -> their input elements (conv)
    fetches_a = 0
    for s, st in enumerate(seq):
        em = min(tm, m - st["m"] * tm)
        en = min(tn, n - st["n"] * tn)
        ek = min(tk, k - st["k"] * tk)
        load = [0, 0, 0]
        if res_a != (st["m"], st["k"]):
            res_a = (st["m"], st["k"])
            if conv is None:
                load[0] = em * ek * in_b
            else:
                m0, k0 = st["m"] * tm, st["k"] * tk
                tile = conv_tile_inputs(conv, m0, m0 + em, k0, k0 + ek)
                seen_a.setdefault(res_a, tile)
                load[0] = len(tile) * in_b
                fetches_a += 1
            dram["a"] += load[0]
        if res_b != (st["k"], st["n"]):
            res_b = (st["k"], st["n"])
            load[1] = ek * en * in_b
            dram["b"] += ek * en * in_b
        if res_o != (st["m"], st["n"]):
            res_o = (st["m"], st["n"])
            if st["k"] > 0:
                load[2] = em * en * acc_b
                dram["o_rd"] += em * en * acc_b
        nxt = seq[s + 1] if s + 1 < len(seq) else None
        write = 0
        if nxt is None or (nxt["m"], nxt["n"]) != res_o:
            done = st["k"] == trips["k"] - 1  # the O tile's k range is complete
            write = em * en * (acc_b if out_b is None or not done else out_b)
            dram["o_wr"] += write
        steps.append((sum(load), write, (em, en, ek), dict(st), tuple(load)))
    if conv is not None:
        passes, rem = divmod(fetches_a, len(seen_a))
        assert rem == 0  # every A tile is fetched equally often
        fmap = len(set().union(*seen_a.values())) * in_b
        dram["a_halo"] = dram["a"] - passes * fmap
    return dram, steps


def streaming_steps(steps, df, rows, cols, tm, tn, tk):
    """Return, per step of ``slow_tile_walk``, whether it continues the previous step's stream
    on one array: the stationary tile (ws: B, is: A, os: O) is one fold of the rows x cols
    array and the previous step used the same one."""
    stat = {"os": ("m", "n"), "ws": ("k", "n"), "is": ("m", "k")}[df]
    fold = {"os": (tm, tn), "ws": (tk, tn), "is": (tk, tm)}[df]
    single = fold[0] <= rows and fold[1] <= cols
    out = []
    for i, st in enumerate(steps):
        out.append(single and i > 0 and all(steps[i - 1][3][d] == st[3][d] for d in stat))
    return out


def slow_timeline(steps, compute, bytes_per_cycle, latency, double_buffered, port_cycles=None):
    """Total cycles of tile steps (see _memory doc): ``compute`` is a list of each step's cycles
    or a function of its shape; ``bytes_per_cycle`` is one shared port's bandwidth or a tuple
    (A, B, O) of separate ports' (0 = ideal).

    ``port_cycles`` (one figure per step, optional): the cycles the buffer ports need to move
    that step's operands into and results out of the array; a step's array phase lasts the
    longer of its compute and its port time.
    """
    import math

    per_port = isinstance(bytes_per_cycle, tuple)
    bpc = bytes_per_cycle if per_port else (bytes_per_cycle,) * 3

    def xfer(b, port):
        if b == 0 or bpc[port] == 0:
            return 0
        return latency + math.ceil(b / bpc[port])
    if per_port:  # (A and B ports, O port) load times
        loads = [(max(xfer(s[4][0], 0), xfer(s[4][1], 1)), xfer(s[4][2], 2)) for s in steps]
    else:
        loads = [(0, xfer(s[0], 0)) for s in steps]
    writes = [xfer(s[1], 2) for s in steps]
    comp = list(compute) if isinstance(compute, list) else [compute(s[2]) for s in steps]
    if port_cycles is not None:
        comp = [max(c, p) for c, p in zip(comp, port_cycles)]
    if not double_buffered:
        return sum(max(ld) for ld in loads) + sum(comp) + sum(writes)
    total = max(loads[0])
    for s in range(len(steps)):
        ab, lo = loads[s + 1] if s + 1 < len(steps) else (0, 0)
        dma = max(ab, (writes[s - 1] if s >= 1 else 0) + lo)
        total += max(comp[s], dma)
    return total + writes[-1]


def _chunks(size, width):
    """Extents of the folds of a dimension of ``size`` cut into pieces of at most ``width``."""
    return [min(width, size - start) for start in range(0, size, width)]


def _array_blocks(em, en, count, split, split_tile_m, split_tile_n):
    """Per array, the blocks (row, col, rows, cols) of O it computes in one tile step of em x en.

    split "m" / "n": the first (size mod count) arrays get one row / column more than the others;
    "tiles": O cut into split_tile_m x split_tile_n tiles dealt round-robin, row by row.
    """
    blocks = [[] for _ in range(count)]
    if split == "tiles":
        t = 0
        for i in range(0, em, split_tile_m):
            for j in range(0, en, split_tile_n):
                blocks[t % count].append((i, j, min(split_tile_m, em - i), min(split_tile_n, en - j)))
                t += 1
        return blocks
    size = em if split == "m" else en
    start = 0
    for i in range(count):
        share = size // count + (1 if i < size % count else 0)
        if share:
            blocks[i].append((start, 0, share, en) if split == "m" else (0, start, em, share))
        start += share
    return blocks


def _fold_registers(df, r, c, streamed, bk, cont):
    """Walk the PEs of one fold (r x c PEs in use) and count their register accesses, in
    elements: (operand reads, partial-sum reads, operand writes, partial-sum writes).

    Every MAC reads its two operands and reads and updates its partial sum (os: the sum held in
    the PE; ws/is: the sum arriving from above, passed on below). Every operand value a PE
    latches is a write: os latches each A and each B value that passes it (one per MAC); ws/is
    latch the streamed operand once per MAC and, while the stationary tile loads from the top,
    PE row i latches the values of rows i .. r-1 as they shift down (none when the tile is
    already in the PEs, ``cont``). ``streamed``: MACs per PE (os: K; ws: rows of A; is:
    columns of B).
    """
    op_rd = ps_rd = op_wr = ps_wr = 0
    for i in range(r):
        for _j in range(c):
            macs = streamed if df != "os" else bk
            op_rd += 2 * macs
            ps_rd += macs
            ps_wr += macs
            if df == "os":
                op_wr += 2 * macs  # the A value from the left and the B value from above
            else:
                op_wr += macs + (0 if cont else r - i)  # streamed values + stationary shift
    return op_rd, ps_rd, op_wr, ps_wr


def _fold_events(df, rows, cols, bm, bn, bk):
    """Walk the folds of one array on a bm x bn x bk sub-GEMM; return, per fold, the events
    (elements and hops) and the region of O it writes, as a list of dicts.

    os: a fold holds r x c outputs (r <= rows of M, c <= cols of N); each of the r rows takes bk A
    elements at the left edge, each of the c columns bk B elements at the top; every A element
    hops c - 1 PEs right, every B element r - 1 PEs down; the r x c results go to the accumulator.
    ws: a fold holds r x c weights (r <= rows of K, c <= cols of N) loaded from the top: the weight
    of row i hops i PEs down; each of the bm rows of A streams r elements in at the left edge that
    hop c - 1 PEs right; each of the bm x c partial sums hops r - 1 PEs down, then goes to the
    accumulator. is: ws on O^T = B^T A^T (A stationary over K x M, B streamed).
    """
    out = []
    if df == "os":
        i0 = 0
        for r in _chunks(bm, rows):
            j0 = 0
            for c in _chunks(bn, cols):
                out.append({"a_rd": r * bk, "b_rd": c * bk,
                            "op_hops": r * bk * (c - 1) + c * bk * (r - 1), "psum_hops": 0,
                            "region": (i0, i0 + r, j0, j0 + c)})
                j0 += c
            i0 += r
        return out
    streamed = bm if df == "ws" else bn  # rows of A (ws) or columns of B (is) streamed through
    other = bn if df == "ws" else bm  # the dimension the array's columns hold
    j0 = 0
    for c in _chunks(other, cols):
        for r in _chunks(bk, rows):
            load = r * c
            ev = {"op_hops": c * sum(range(r)) + streamed * r * (c - 1),
                  "psum_hops": streamed * c * (r - 1)}
            ev["b_rd" if df == "ws" else "a_rd"] = load
            ev["a_rd" if df == "ws" else "b_rd"] = streamed * r
            ev["region"] = (0, bm, j0, j0 + c) if df == "ws" else (j0, j0 + c, 0, bn)
            out.append(ev)
        j0 += c
    return out


def slow_events(df, rows, cols, m, n, k, tm, tn, tk, order, in_b, acc_b, count=1, split="m",
                split_tile_m=1, split_tile_n=1, out_b=None, conv=None):
    """Count every event of a tiled GEMM by walking its tile steps, arrays and folds one by one.

    Return (totals, per_step): ``totals`` has macs, pe_hop_bytes, buffer reads and writes per
    operand (``buf_rd_a`` ...) and in all, DRAM bytes per operand; ``per_step`` lists per tile step
    the bytes each buffer port moves into/out of the array ({"a", "b", "o"}) and the blocks
    ((row, col, rows, cols) of O, per array) its arrays run on the step's slice of K.

    Buffer model: fills from DRAM write the buffers, write-backs to DRAM read the O buffer; the
    array reads A and B elements where they enter it; every result a fold sends to the
    accumulator writes O, and reads O first when that element already holds a partial sum
    (tracked per element of O over the whole run).

    Streaming: when the tiling's stationary tile (ws: B over K x N, is: A over K x M, os: O over
    M x N) is a single fold on every array (judged on the first, full-size step; never with
    split "tiles"), a step that keeps the previous step's stationary tile finds it already in
    the PEs: ws/is load no stationary operand (no reads, no load hops), and os keeps its
    partial sums in the PEs (no accumulator traffic: the run's first step sends them once).
    Such a step costs only its stream; ``per_step[i]["stream"]`` is that length (os: K, ws: the
    rows of A, is: the columns of B of the step), None for a step that restarts the array.

    PE registers: ``register_read_bytes`` and ``register_write_bytes`` from a walk over the PEs
    of every fold (``_fold_registers``): operands in ``in_b``, partial sums in ``acc_b``.
    ``out_b``: bytes of a result written back once its k range is complete (default acc_b).
    ``conv``: the GEMM is this conv's im2col expanded in the feeder (see ``slow_tile_walk``);
    the array still reads im2col elements from the A buffer.
    """
    dram, steps = slow_tile_walk(m, n, k, tm, tn, tk, order, in_b, acc_b, out_b, conv)
    halo = dram.pop("a_halo", 0)
    _, seq = tile_sequence(m, n, k, tm, tn, tk, order)
    held = np.zeros((m, n), bool)  # element of O already holds a partial sum
    t = {"macs": 0, "op_hops": 0, "psum_hops": 0, "a_rd": 0, "b_rd": 0, "acc_rd": 0,
         "acc_wr": 0, "reg_op_rd": 0, "reg_ps_rd": 0, "reg_op_wr": 0, "reg_ps_wr": 0}
    per_step = []
    stationary = {"os": ("m", "n"), "ws": ("k", "n"), "is": ("m", "k")}[df]

    def one_fold(bm, bn, bk):  # the stationary block fits the array as one fold
        r, c = {"os": (bm, bn), "ws": (bk, bn), "is": (bk, bm)}[df]
        return r <= rows and c <= cols
    first = _array_blocks(min(tm, m), min(tn, n), count, split, split_tile_m, split_tile_n)
    streamable = split != "tiles" and all(
        one_fold(bm, bn, min(tk, k)) for arr_blocks in first for _i, _j, bm, bn in arr_blocks)
    prev = None
    for st, (load, write, (em, en, ek), *_rest) in zip(seq, steps):
        m0, n0 = st["m"] * tm, st["n"] * tn
        cont = streamable and prev is not None and all(st[d] == prev[d] for d in stationary)
        prev = st
        port = {"a": 0, "b": 0, "o": 0}
        blocks = _array_blocks(em, en, count, split, split_tile_m, split_tile_n)
        stream = None
        for arr_blocks in blocks:
            for bi, bj, bm, bn in arr_blocks:
                t["macs"] += bm * bn * ek
                if cont:
                    stream = max(stream or 0, {"os": ek, "ws": bm, "is": bn}[df])
                for f in _fold_events(df, rows, cols, bm, bn, ek):
                    f = dict(f)
                    i0, i1, j0, j1 = f["region"]
                    if df == "os":  # the fold's PEs: r rows of O by c columns
                        fr, fc = i1 - i0, j1 - j0
                    else:  # c columns of N (ws) or M (is); r rows of K, from the load r x c
                        fc = j1 - j0 if df == "ws" else i1 - i0
                        fr = f["b_rd" if df == "ws" else "a_rd"] // fc
                    regs = _fold_registers(df, fr, fc, bm if df == "ws" else bn, ek, cont)
                    for key, v in zip(("reg_op_rd", "reg_ps_rd", "reg_op_wr", "reg_ps_wr"), regs):
                        t[key] += v
                    if cont and df != "os":  # the stationary block is already in the PEs
                        r, c = ek, (bn if df == "ws" else bm)
                        f["b_rd" if df == "ws" else "a_rd"] = 0
                        f["op_hops"] -= c * sum(range(r))
                    for key in ("a_rd", "b_rd", "op_hops", "psum_hops"):
                        t[key] += f[key]
                    port["a"] += f["a_rd"] * in_b
                    port["b"] += f["b_rd"] * in_b
                    if cont and df == "os":  # the partial sums stay in the PEs
                        continue
                    i0, i1, j0, j1 = f["region"]
                    reg = held[m0 + bi + i0:m0 + bi + i1, n0 + bj + j0:n0 + bj + j1]
                    acc_rd = int(reg.sum())
                    acc_wr = reg.size
                    reg[...] = True
                    t["acc_rd"] += acc_rd
                    t["acc_wr"] += acc_wr
                    port["o"] += (acc_rd + acc_wr) * acc_b
        per_step.append({"port": port, "blocks": blocks, "load": load, "write": write,
                         "stream": stream})
    totals = {
        "macs": t["macs"],
        "pe_hop_bytes": t["op_hops"] * in_b + t["psum_hops"] * acc_b,
        "register_read_bytes": t["reg_op_rd"] * in_b + t["reg_ps_rd"] * acc_b,
        "register_write_bytes": t["reg_op_wr"] * in_b + t["reg_ps_wr"] * acc_b,
        "buf_rd_a": t["a_rd"] * in_b, "buf_rd_b": t["b_rd"] * in_b,
        "buf_rd_o": t["acc_rd"] * acc_b + dram["o_wr"],
        "buf_wr_a": dram["a"], "buf_wr_b": dram["b"],
        "buf_wr_o": t["acc_wr"] * acc_b + dram["o_rd"],
        "dram_a": dram["a"], "dram_b": dram["b"], "dram_o_rd": dram["o_rd"],
        "dram_o_wr": dram["o_wr"],
    }
    totals["buffer_read_bytes"] = totals["buf_rd_a"] + totals["buf_rd_b"] + totals["buf_rd_o"]
    totals["buffer_write_bytes"] = totals["buf_wr_a"] + totals["buf_wr_b"] + totals["buf_wr_o"]
    totals["dram_bytes"] = sum(dram.values())
    totals["dram_a_halo"] = halo
    return totals, per_step

