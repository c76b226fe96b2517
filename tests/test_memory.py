"""simulator.core.memory / _memory: tiling, DRAM traffic and stalls against closed forms and a slow,
obviously-correct tile-by-tile walk."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from oracles import slow_tile_walk, slow_timeline, streaming_steps
from simulator import WorkloadError, simulate_gemm
from simulator.core import _memory, _timing
from simulator.core.memory import _run, dram_traffic_closed_form, plan_gemm, run_gemm_memory, streams
from strategies import make_chip

orders = st.sampled_from(_memory.ORDERS)


def chip_with(**kw):
    base = dict(rows=4, cols=4, dataflow="os", fill_drain="full", preload_overlap=False)
    extra = {k: kw.pop(k) for k in list(kw) if "." in k}
    base.update(kw)
    return make_chip(**base).with_overrides(extra) if extra else make_chip(**base)


@given(m=st.integers(1, 90), n=st.integers(1, 90), k=st.integers(1, 90), tm=st.integers(1, 40),
       tn=st.integers(1, 40), tk=st.integers(1, 40), order=orders, in_b=st.sampled_from([1, 2, 4]),
       out_b=st.sampled_from([1, 2, 4]))
def test_dram_traffic_closed_form_equals_walk(m, n, k, tm, tn, tk, order, in_b, out_b):
    # partial sums leave and return in 4 bytes; results once in out_b bytes (output.dtype)
    dram, _ = slow_tile_walk(m, n, k, tm, tn, tk, order, in_b, 4, out_b)
    closed = _memory._dram_traffic(m, n, k, tm, tn, tk, _memory.ORDERS.index(order), in_b, 4,
                                   out_b)
    assert closed == (dram["a"], dram["b"], dram["o_rd"], dram["o_wr"])


@given(df=st.sampled_from(["os", "ws", "is"]), rows=st.integers(1, 8), cols=st.integers(1, 8),
       m=st.integers(1, 70), n=st.integers(1, 70), k=st.integers(1, 70), tm=st.integers(1, 40),
       tn=st.integers(1, 40), tk=st.integers(1, 40), order=orders,
       bw=st.sampled_from([0.0, 0.5e9, 3e9, 16e9]), latency=st.integers(0, 50),
       db=st.booleans(), dtype=st.sampled_from(["int8", "bf16", "fp32"]),
       ports=st.sampled_from([None, (0.5e9, 3e9, 1e9), (2e9, 0.0, 16e9), (0.0, 0.0, 0.0)]))
def test_stalls_equal_slow_timeline(df, rows, cols, m, n, k, tm, tn, tk, order, bw, latency, db,
                                    dtype, ports):
    keys = {"tiling.tile_m": tm, "tiling.tile_n": tn, "tiling.tile_k": tk,
            "tiling.loop_order": order, "dram.bandwidth_bytes_per_s": bw,
            "dram.latency_cycles": latency, "buffers.double_buffered": db, "clock_hz": 1e9}
    if ports is not None:  # one port per operand; a port left at 0 takes the shared bandwidth
        keys.update({"dram.ports": "per_operand", **{f"dram.{x}.bandwidth_bytes_per_s": v
                                                     for x, v in zip("abo", ports)}})
    chip = chip_with(rows=rows, cols=cols, dataflow=df, dtype=dtype, **keys)
    tk_eff = min(tk, k)
    assume(df == "os" or tk_eff >= k or tk_eff < rows or tk_eff % rows == 0)
    res = run_gemm_memory(chip, m, n, k)
    in_b = chip.input_bytes
    tiles = (min(tm, m), min(tn, n), tk_eff)
    dram, steps = slow_tile_walk(m, n, k, *tiles, order, in_b, 4)

    bare = make_chip(rows, cols, df)
    cache = {}

    def compute(shape):
        if shape not in cache:
            cache[shape] = simulate_gemm(bare, shape=shape).compute_cycles
        return cache[shape]
    # a step keeping a single-fold stationary tile streams on: it costs only its stream
    streamed = {"os": 2, "ws": 0, "is": 1}[df]
    cycles = [s[2][streamed] if cont else compute(s[2])
              for s, cont in zip(steps, streaming_steps(steps, df, rows, cols, *tiles))]
    bpc = bw / 1e9 if ports is None else tuple((p or bw) / 1e9 for p in ports)
    assert res.total_cycles == slow_timeline(steps, cycles, bpc, latency, db)
    assert (res.dram_a_read_bytes, res.dram_b_read_bytes, res.dram_o_read_bytes,
            res.dram_o_write_bytes) == (dram["a"], dram["b"], dram["o_rd"], dram["o_wr"])
    assert res.compute_cycles == sum(cycles)
    assert res.stall_cycles >= 0


@given(df=st.sampled_from(["os", "ws", "is"]), rows=st.integers(1, 16), cols=st.integers(1, 16),
       m=st.integers(1, 300), n=st.integers(1, 300), k=st.integers(1, 300),
       fd=st.sampled_from(["full", "active"]), ov=st.booleans())
def test_unbounded_memory_means_no_stalls_and_core_cycles(df, rows, cols, m, n, k, fd, ov):
    chip = make_chip(rows, cols, df, fd, ov)
    rep = simulate_gemm(chip, shape=(m, n, k))
    assert rep.stall_cycles == 0
    mp = {"os": (k, m, rows, n, cols, True, False), "ws": (m, n, cols, k, rows, False, True),
          "is": (n, m, cols, k, rows, False, True)}[df]
    cyc, _b, _f = _timing._gemm_cycles_per_fold(*mp[:5], mp[5], rows, cols, fd == "full", mp[6], ov)
    assert rep.compute_cycles == rep.total_cycles == cyc
    t = rep.totals()["traffic_bytes"]["dram"]
    assert (t["a_read"], t["b_read"], t["o_read"], t["o_write"]) == (m * k, k * n, 0, 4 * m * n)


@given(m=st.integers(1, 400), n=st.integers(1, 400), k=st.integers(1, 400),
       cap=st.integers(64, 20000), unified=st.booleans(), db=st.booleans(),
       df=st.sampled_from(["os", "ws", "is"]))
def test_chosen_tiles_fit_and_minimise_traffic(m, n, k, cap, unified, db, df):
    keys = {"buffers.unified": unified, "buffers.double_buffered": db}
    if unified:
        keys["buffers.unified_buffer.bytes"] = 3 * cap
    else:
        keys.update({"buffers.a.bytes": cap, "buffers.b.bytes": cap, "buffers.o.bytes": 4 * cap})
    chip = chip_with(rows=8, cols=8, dataflow=df, **keys)
    plan = plan_gemm(chip, m, n, k, "m")
    div = 2 if db else 1
    a, b, o = plan.tile_m * plan.tile_k, plan.tile_k * plan.tile_n, 4 * plan.tile_m * plan.tile_n
    if unified:
        assert (a + b + o) * div <= 3 * cap
    else:
        assert a * div <= cap and b * div <= cap and o * div <= 4 * cap
    best = sum(dram_traffic_closed_form(chip, m, n, k, plan))
    fastest = _run(chip, m, n, k, plan).total_cycles
    # with ideal DRAM no order of these tiles is faster (the order decides whether tile steps
    # stream), and of the equally fast ones the chosen moves least data
    for order in _memory.ORDERS:
        other = plan.__class__(plan.tile_m, plan.tile_n, plan.tile_k, order, "m")
        cycles = _run(chip, m, n, k, other).total_cycles
        assert cycles >= fastest
        assert cycles > fastest or sum(dram_traffic_closed_form(chip, m, n, k, other)) >= best


@given(df=st.sampled_from(["os", "ws", "is"]), m=st.integers(1, 200), n=st.integers(1, 200),
       k=st.integers(1, 200), bw=st.floats(1e8, 1e11), cap=st.integers(256, 8192),
       latency=st.integers(0, 100), db=st.booleans())
def test_halving_dram_bandwidth_never_lowers_cycles(df, m, n, k, bw, cap, latency, db):
    keys = {"buffers.a.bytes": cap, "buffers.b.bytes": cap, "buffers.o.bytes": 4 * cap,
            "dram.latency_cycles": latency, "buffers.double_buffered": db}
    fast = simulate_gemm(chip_with(dataflow=df, **keys, **{"dram.bandwidth_bytes_per_s": bw}),
                         shape=(m, n, k))
    slow = simulate_gemm(chip_with(dataflow=df, **keys, **{"dram.bandwidth_bytes_per_s": bw / 2}),
                         shape=(m, n, k))
    assert slow.total_cycles >= fast.total_cycles  # the tiling may adapt, the time never drops


@given(df=st.sampled_from(["os", "ws", "is"]), rows=st.integers(1, 8), cols=st.integers(1, 8),
       m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 60), cap=st.integers(16, 600),
       dtype=st.sampled_from(["int8", "bf16", "fp32"]), count=st.integers(1, 3),
       split=st.sampled_from(["m", "n", "auto", "tiles"]), tile=st.integers(1, 12),
       seed=st.integers(0, 2**32 - 1))
def test_tiled_functional_equals_tiled_reference(df, rows, cols, m, n, k, cap, dtype, count,
                                                 split, tile, seed):
    chip = chip_with(rows=rows, cols=cols, dataflow=df, dtype=dtype, **{
        "buffers.a.bytes": cap, "buffers.b.bytes": cap, "buffers.o.bytes": 4 * cap,
        "array.count": count, "array.split": split, "array.split_tile_m": tile,
        "array.split_tile_n": tile + 1})
    rng = np.random.default_rng(seed)
    if dtype == "int8":
        a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    else:
        a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    try:
        fast = simulate_gemm(chip, a=a, b=b)
    except WorkloadError:
        return  # buffers too small for any tile: reported as an error, checked below
    ref = simulate_gemm(chip, a=a, b=b, engine="reference")
    view = (lambda x: x.view(np.uint32)) if dtype != "int8" else (lambda x: x)
    assert np.array_equal(view(fast.output), view(ref.output))
    assert fast.compute_cycles == ref.compute_cycles
    assert fast.stall_cycles == ref.stall_cycles
    if dtype == "int8":
        assert np.array_equal(fast.output, a @ b)


def test_buffers_too_small_is_a_clear_error():
    chip = chip_with(**{"buffers.a.bytes": 1, "buffers.double_buffered": True})
    with pytest.raises(WorkloadError, match="buffers.a.bytes: too small for the smallest tile"):
        simulate_gemm(chip, shape=(8, 8, 8))


def test_fixed_tile_k_must_keep_chunks_uniform():
    chip = chip_with(rows=8, dataflow="ws", **{"tiling.tile_k": 12})
    with pytest.raises(WorkloadError, match="tiling.tile_k: must be a multiple of array.rows"):
        simulate_gemm(chip, shape=(8, 8, 64))


def test_several_arrays_split_and_count_all_pes():
    one = chip_with(rows=8, cols=8, dataflow="ws")
    four = chip_with(rows=8, cols=8, dataflow="ws", **{"array.count": 4, "array.split": "m"})
    r1 = simulate_gemm(one, shape=(400, 64, 64))
    r4 = simulate_gemm(four, shape=(400, 64, 64))
    assert r4.compute_cycles == simulate_gemm(one, shape=(100, 64, 64)).compute_cycles
    assert r4.utilisation == pytest.approx(r1.macs / (4 * 64 * r4.total_cycles))
    auto = chip_with(rows=8, cols=8, dataflow="ws", **{"array.count": 4, "array.split": "auto"})
    n_split = chip_with(rows=8, cols=8, dataflow="ws", **{"array.count": 4, "array.split": "n"})
    ra, rn = simulate_gemm(auto, shape=(8, 512, 64)), simulate_gemm(n_split, shape=(8, 512, 64))
    assert ra.total_cycles == min(rn.total_cycles, simulate_gemm(
        chip_with(rows=8, cols=8, dataflow="ws", **{"array.count": 4, "array.split": "m"}),
        shape=(8, 512, 64)).total_cycles)
    assert ra.ops[0].tiling["split"] == "n"


def test_memory_bound_flag_and_report_fields():
    chip = chip_with(rows=16, cols=16, dataflow="ws", **{
        "buffers.a.bytes": 4096, "buffers.b.bytes": 4096, "buffers.o.bytes": 16384,
        "dram.bandwidth_bytes_per_s": 1e8, "clock_hz": 1e9})
    rep = simulate_gemm(chip, shape=(256, 256, 256))
    op = rep.to_dict()["ops"][0]
    assert op["memory_bound"] and op["stall_cycles"] > 0
    assert set(op["tiling"]) == {"tile_m", "tile_n", "tile_k", "loop_order", "split"}
    assert op["traffic_bytes"]["dram"]["total"] == sum(
        op["traffic_bytes"]["dram"][x] for x in ("a_read", "b_read", "o_read", "o_write"))


def test_tiles_split_runs_in_waves():
    # 132 arrays, O of 1024 x 1024 in 128 x 128 tiles: 64 tiles -> one wave of one tile each;
    # 2048 x 1024: 128 tiles -> still one wave; 4096 x 1024: 256 tiles -> two waves; 264 tiles
    # (m = 128 * 33) fill exactly two waves, 272 spill into a third
    def chip(**kw):
        return chip_with(rows=16, cols=16, dataflow="ws", **{
            "array.count": 132, "array.split": "tiles", **kw})
    one_tile = simulate_gemm(chip_with(rows=16, cols=16, dataflow="ws"), shape=(128, 128, 512))
    for m, waves in ((1024, 1), (2048, 1), (4096, 2), (128 * 33, 2), (128 * 34, 3)):
        rep = simulate_gemm(chip(), shape=(m, 1024, 512))
        assert rep.compute_cycles == waves * one_tile.compute_cycles, m
        assert rep.macs == m * 1024 * 512


def test_launch_overhead_is_added_to_every_op():
    base = chip_with(rows=8, cols=8)
    slow = chip_with(rows=8, cols=8, **{"overhead.launch_s": 1e-6, "clock_hz": 1e9})
    a, b = simulate_gemm(base, shape=(64, 64, 64)), simulate_gemm(slow, shape=(64, 64, 64))
    assert b.total_cycles == a.total_cycles + 1000
    assert b.compute_cycles == a.compute_cycles and b.totals()["overhead_cycles"] == 1000


@given(df=st.sampled_from(["os", "ws", "is"]), m=st.integers(1, 300), n=st.integers(1, 300),
       k=st.integers(1, 300), cap=st.integers(64, 6000), bw=st.sampled_from([0.0, 1e9, 8e9]))
def test_chosen_plan_is_the_fastest_candidate(df, m, n, k, cap, bw):
    from simulator.core.memory import _run, candidate_plans
    chip = chip_with(rows=8, cols=8, dataflow=df, **{
        "buffers.a.bytes": cap, "buffers.b.bytes": cap, "buffers.o.bytes": 4 * cap,
        "dram.bandwidth_bytes_per_s": bw, "clock_hz": 1e9})
    try:
        cands = candidate_plans(chip, m, n, k, "m")
    except WorkloadError:
        return
    chosen = run_gemm_memory(chip, m, n, k)
    assert chosen.total_cycles == min(_run(chip, m, n, k, p).total_cycles for p in cands)


_STREAM_ORDERS = {"os": ("mnk", "nmk"), "ws": ("knm", "nkm"), "is": ("kmn", "mkn")}


@given(df=st.sampled_from(["os", "ws", "is"]), rows=st.integers(1, 6), cols=st.integers(1, 6),
       m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 40), ts=st.integers(1, 40),
       inner=st.integers(0, 1), count=st.integers(1, 3), split=st.sampled_from(["m", "n"]),
       fd=st.sampled_from(["full", "active"]), ov=st.booleans(),
       dtype=st.sampled_from(["int8", "bf16", "fp32"]), seed=st.integers(0, 2**32 - 1))
def test_streaming_tile_steps_equal_one_stream_and_the_pe_reference(
        df, rows, cols, m, n, k, ts, inner, count, split, fd, ov, dtype, seed):
    # stationary tiles of one fold, the streamed dimension (os k, ws m, is n) cut into tiles of
    # ts and looped innermost: consecutive steps keep the stationary tile and stream on
    tiles = {"os": (min(rows, m), min(cols, n), min(ts, k)),
             "ws": (min(ts, m), min(cols, n), min(rows, k)),
             "is": (min(cols, m), min(ts, n), min(rows, k))}[df]
    chip = make_chip(rows, cols, df, fd, ov, dtype).with_overrides({
        "tiling.tile_m": tiles[0], "tiling.tile_n": tiles[1], "tiling.tile_k": tiles[2],
        "tiling.loop_order": _STREAM_ORDERS[df][inner], "array.count": count,
        "array.split": split})
    res = run_gemm_memory(chip, m, n, k)
    assert streams(chip, m, n, k, res.plan)
    rng = np.random.default_rng(seed)
    if dtype == "int8":
        a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    else:
        a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    fast = simulate_gemm(chip, a=a, b=b)
    ref = simulate_gemm(chip, a=a, b=b, engine="reference")
    view = (lambda x: x.view(np.uint32)) if dtype != "int8" else (lambda x: x)
    assert np.array_equal(view(fast.output), view(ref.output))
    assert fast.compute_cycles == ref.compute_cycles == res.compute_cycles
    if dtype == "int8":
        assert np.array_equal(fast.output, a @ b)
    if count == 1:  # as if the streamed dimension were not tiled: one stream per stationary tile
        bare = make_chip(rows, cols, df, fd, ov)
        tm, tn, tk = tiles
        if df == "os":
            shapes = [(min(tm, m - i), min(tn, n - j), k) for i in range(0, m, tm)
                      for j in range(0, n, tn)]
        elif df == "ws":
            shapes = [(m, min(tn, n - j), min(tk, k - p)) for j in range(0, n, tn)
                      for p in range(0, k, tk)]
        else:
            shapes = [(min(tm, m - i), n, min(tk, k - p)) for i in range(0, m, tm)
                      for p in range(0, k, tk)]
        assert res.compute_cycles == sum(simulate_gemm(bare, shape=s).compute_cycles
                                         for s in shapes)


@given(df=st.sampled_from(["os", "ws", "is"]), rows=st.integers(1, 12), cols=st.integers(1, 12),
       m=st.integers(1, 300), n=st.integers(1, 300), k=st.integers(1, 300),
       cap=st.integers(16, 6000), count=st.integers(1, 4), split=st.sampled_from(["m", "n"]),
       fd=st.sampled_from(["full", "active"]), ov=st.booleans())
def test_tiling_estimate_is_the_walked_compute(df, rows, cols, m, n, k, cap, count, split, fd,
                                               ov):
    # the estimate that ranks tilings and bounds the walk is exact for splits m and n, with
    # and without streaming tile steps
    from simulator.core.memory import _run, candidate_plans
    chip = make_chip(rows, cols, df, fd, ov).with_overrides({
        "buffers.a.bytes": cap, "buffers.b.bytes": cap, "buffers.o.bytes": 4 * cap,
        "array.count": count})
    try:
        cands = candidate_plans(chip, m, n, k, split, with_estimates=True)
    except WorkloadError:
        return
    for plan, est in cands:
        assert est == _run(chip, m, n, k, plan).compute_cycles, plan
