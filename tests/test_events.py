"""Event counts, energy and buffer ports against a slow walk over every tile step, array and fold
(``oracles.slow_events``), on random shapes, chips and tilings."""

from __future__ import annotations

import math

import pytest
from hypothesis import event, given, strategies as st

from oracles import _array_blocks, slow_events, slow_tile_walk, slow_timeline
from simulator import WorkloadError, simulate_gemm
from simulator.core.engine import gemm_op, run
from simulator.core.program import Program
from strategies import conv_geometries, make_chip

ACC_B = 4
OUT_B = {"accumulator": 4, "int8": 1, "bf16": 2, "fp16": 2, "fp32": 4}
ORDERS = ("mnk", "mkn", "nmk", "nkm", "kmn", "knm")


@st.composite
def memory_chips(draw, ports=False):
    """A small chip with random dataflow, array, buffers, DRAM, arrays and tiling, and a GEMM."""
    df = draw(st.sampled_from(["os", "ws", "is"]))
    rows, cols = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    m, n, k = draw(st.integers(1, 40)), draw(st.integers(1, 40)), draw(st.integers(1, 40))
    keys = {"buffers.double_buffered": draw(st.booleans()),
            "dram.bandwidth_bytes_per_s": draw(st.sampled_from([0.0, 1e9, 4e9, 32e9])),
            "dram.latency_cycles": draw(st.integers(0, 20)), "clock_hz": 1e9}
    unified = draw(st.booleans())
    keys["buffers.unified"] = unified
    if draw(st.integers(0, 3)):  # mostly bounded buffers: the GEMM is tiled to fit
        cap = draw(st.integers(64, 4000))
        if unified:
            keys["buffers.unified_buffer.bytes"] = 6 * cap
        else:
            keys.update({"buffers.a.bytes": cap, "buffers.b.bytes": cap,
                         "buffers.o.bytes": 4 * cap})
    if draw(st.booleans()):  # a fixed tiling
        keys["tiling.loop_order"] = draw(st.sampled_from(ORDERS))
        for d in "mnk":
            if draw(st.booleans()):
                keys[f"tiling.tile_{d}"] = draw(st.integers(3, 40))
        tk = keys.get("tiling.tile_k", 0)
        if df != "os" and tk and k > tk > rows and tk % rows:
            keys["tiling.tile_k"] = rows * max(1, tk // rows)  # ws/is: K tiles keep chunks whole
    count = draw(st.integers(1, 3))
    keys["array.count"] = count
    keys["array.split"] = draw(st.sampled_from(["m", "n", "auto", "tiles"]))
    keys["array.split_tile_m"] = draw(st.integers(1, 12))
    keys["array.split_tile_n"] = draw(st.integers(1, 12))
    if ports:
        for name in ("a", "b", "o", "unified_buffer"):
            keys[f"buffers.{name}.port_bytes_per_cycle"] = draw(
                st.sampled_from([0.0, 0.5, 1.0, 3.0, 16.0]))
    dtype = draw(st.sampled_from(["int8", "bf16", "fp32"]))
    base = make_chip(rows, cols, df, draw(st.sampled_from(["full", "active"])), draw(st.booleans()),
                     dtype)
    keys["output.dtype"] = draw(st.sampled_from(
        ["accumulator", "int8"] if dtype == "int8" else ["accumulator", "bf16", "fp16", "fp32"]))
    return base.with_overrides(keys), (m, n, k)


def _oracle(chip, shape, tiling, conv=None):
    arr = chip.array
    m, n, k = shape
    return slow_events(arr.dataflow, arr.rows, arr.cols, m, n, k, tiling["tile_m"],
                       tiling["tile_n"], tiling["tile_k"], tiling["loop_order"], chip.input_bytes,
                       ACC_B, arr.count, tiling["split"], arr.split_tile_m, arr.split_tile_n,
                       OUT_B[chip.config["output"]["dtype"]], conv)


def _requant(chip, shape):
    """Return (lane-ops, accumulator bytes read, result bytes written) of narrowing the M x N
    results to output.dtype: int8 is two passes over every result (scale, then round and
    saturate), bf16/fp16 one (round); none when results leave as accumulators."""
    out = chip.config["output"]["dtype"]
    if OUT_B[out] == ACC_B:
        return 0, 0, 0
    n_out = shape[0] * shape[1]
    return (2 if out == "int8" else 1) * n_out, n_out * ACC_B, n_out * OUT_B[out]


def _run(chip, shape, conv=None):
    try:
        if conv is not None:
            return gemm_op(chip, *shape, conv=conv)
        return simulate_gemm(chip, shape=shape).ops[0]
    except WorkloadError:
        event("no tile fits")
        return None  # no tile fits the buffers: an error, tested in test_memory


def _feeder_case(case, geom, tile_m):
    """A memory_chips case turned into a feeder-lowered conv of ``geom`` (its N kept), with M
    tiles of ``tile_m`` output pixels when nonzero (tiles that cut output rows: halos)."""
    chip, (_m, n, _k) = case
    keys = {"memory.conv_lowering": "feeder"}
    if tile_m:
        keys["tiling.tile_m"] = tile_m
    return chip.with_overrides(keys), (geom.gemm_m, n, geom.gemm_k), geom


@given(memory_chips())
def test_every_event_count_equals_the_fold_walk(case):
    _check_every_event(*case)


@given(memory_chips(), conv_geometries(), st.integers(0, 24))
def test_feeder_conv_event_counts_equal_the_fold_walk(case, geom, tile_m):
    # A tiles load the distinct input elements their windows touch (halos included)
    _check_every_event(*_feeder_case(case, geom, tile_m))


def _check_every_event(chip, shape, conv=None):
    op = _run(chip, shape, conv)
    if op is None:
        return
    t = chip.tiling
    for d, v in (("m", t.tile_m), ("n", t.tile_n), ("k", t.tile_k)):  # a fixed tiling is used
        if v:
            assert op.tiling[f"tile_{d}"] == min(v, dict(zip("mnk", shape))[d])
    if t.loop_order != "auto":
        assert op.tiling["loop_order"] == t.loop_order
    want, per_step = _oracle(chip, shape, op.tiling, conv)
    event(f"tile steps: {'1' if len(per_step) == 1 else '2-9' if len(per_step) < 10 else '10+'}")
    event(f"output {chip.config['output']['dtype']}")
    # the requantisation pass reads every accumulator and writes every result in the O buffer
    rq_ops, rq_rd, rq_wr = _requant(chip, shape)
    want["buf_rd_o"] += rq_rd
    want["buf_wr_o"] += rq_wr
    want["buffer_read_bytes"] += rq_rd
    want["buffer_write_bytes"] += rq_wr
    assert dict(op.events) == {
        "macs": want["macs"], "pe_hop_bytes": want["pe_hop_bytes"],
        "register_read_bytes": want["register_read_bytes"],
        "register_write_bytes": want["register_write_bytes"],
        "buffer_read_bytes": want["buffer_read_bytes"],
        "buffer_write_bytes": want["buffer_write_bytes"], "dram_bytes": want["dram_bytes"],
        "vector_lane_ops": rq_ops,
        **{f"buffer_{b}_{kind}_bytes": want[f"buf_{short}_{b}"]
           for kind, short in (("read", "rd"), ("write", "wr")) for b in "abo"}}
    assert want["macs"] == math.prod(shape)
    assert op.traffic_bytes == {
        "dram": {"a_read": want["dram_a"], "b_read": want["dram_b"], "o_read": want["dram_o_rd"],
                 "o_write": want["dram_o_wr"], "total": want["dram_bytes"]},
        "buffer": {"read": want["buffer_read_bytes"], "write": want["buffer_write_bytes"]},
        "classes": {"feature_map": want["dram_a"] - want["dram_a_halo"],
                    "halo": want["dram_a_halo"], "weights": want["dram_b"],
                    "partial_sums": 2 * want["dram_o_rd"],
                    "outputs": math.prod(shape[:2]) * OUT_B[chip.config["output"]["dtype"]]}}
    assert (op.requant_cycles > 0) == (rq_ops > 0)
    if conv is not None and want["dram_a_halo"]:
        event("halo re-fetched")
    e, tab = op.energy_pj, chip.energy
    bufs = ("unified_buffer",) * 3 if chip.buffers.unified else ("a", "b", "o")
    time_s = op.total_cycles / chip.clock_hz
    parts = {"mac": want["macs"] * tab.mac_pj[chip.dtype],
             "pe_hops": want["pe_hop_bytes"] * tab.pe_hop_pj_per_byte,
             "register_read": want["register_read_bytes"] * tab.register_read_pj_per_byte,
             "register_write": want["register_write_bytes"] * tab.register_write_pj_per_byte,
             "buffer_read": sum(want[f"buf_rd_{b}"] * tab.buffer_read_pj(buf)
                                for b, buf in zip("abo", bufs)),
             "buffer_write": sum(want[f"buf_wr_{b}"] * tab.buffer_write_pj(buf)
                                 for b, buf in zip("abo", bufs)),
             "dram": want["dram_bytes"] * tab.dram_pj_per_byte,
             "vector": rq_ops * tab.vector_lane_op_pj,
             "static": tab.static_w * time_s * 1e12}
    for key, value in parts.items():
        assert e[key] == pytest.approx(value, rel=1e-12, abs=1e-9), key
    assert e["total"] == pytest.approx(sum(parts.values()), rel=1e-12)


def test_event_counts_of_one_ws_fold_by_hand():
    # ws 4x4, M=5, N=4, K=8 (two K folds), int8, unbounded buffers (one tile step):
    # A reads 2 folds x 5 rows x 4 = 40 B; B (weights) 32 B; the accumulator is written
    # 2 x 5 x 4 = 40 times (160 B) and read back 20 times (80 B) for the second fold; the
    # write-back of O to DRAM reads 5 x 4 x 4 = 80 B; fills: A 40 + B 32; O written 160 B.
    chip = make_chip(4, 4, "ws", "full", False)
    ev = simulate_gemm(chip, shape=(5, 4, 8)).ops[0].events
    assert ev["buffer_read_bytes"] == 40 + 32 + 80 + 80
    assert ev["buffer_write_bytes"] == 160 + 40 + 32
    totals, _ = slow_events("ws", 4, 4, 5, 4, 8, 5, 4, 8, "mnk", 1, 4)
    assert (totals["buffer_read_bytes"], totals["buffer_write_bytes"]) == (232, 232)


@given(rows=st.integers(1, 12), cols=st.integers(1, 12), lanes=st.integers(1, 16),
       axis=st.sampled_from([None, 0, 1]), kind=st.sampled_from(["add", "relu", "exp", "scale"]),
       broadcast=st.booleans())
def test_vector_op_events_equal_a_lane_walk(rows, cols, lanes, axis, kind, broadcast):
    chip = make_chip().with_overrides({"vector.lanes": lanes})
    prog = Program("p")
    prog.input("X", (rows, cols))
    prog.input("Y", (1, cols) if broadcast else (rows, cols))
    if kind == "add":
        prog.elementwise("e", "add", "X", "Y")
        reads, out_elems = rows * cols + (cols if broadcast else rows * cols), rows * cols
    else:
        prog.elementwise("e", kind, "X")
        reads, out_elems = rows * cols, rows * cols
    prog.reduce_sum("r", "e", axis=axis)
    rep = run(chip, prog)
    # lane walk: every element goes through one lane in one issue pass (elementwise: one lane-op
    # per output element; a reduction: one per input element, the group's first pass loading
    # the lanes and the later passes and the tree adding)
    ew_ops = sum(min(lanes, rows * cols - p) for p in range(0, rows * cols, lanes))
    groups = {None: [rows * cols], 0: [rows] * cols, 1: [cols] * rows}[axis]
    red_ops = sum(min(lanes, g - p) for g in groups for p in range(0, g, lanes))
    red_out = {None: 1, 0: cols, 1: rows}[axis]
    e_op, r_op = rep.ops
    # residency (the default): the program's inputs come from DRAM at their first use, the
    # program's output goes back at its definition, nothing else leaves the buffer
    for op, lane_ops, rd, wr, dram in ((e_op, ew_ops, reads, out_elems, reads),
                                       (r_op, red_ops, rows * cols, red_out, red_out)):
        assert dict(op.events) == {"macs": 0, "pe_hop_bytes": 0, "buffer_read_bytes": 4 * rd,
                                   "buffer_write_bytes": 4 * wr, "dram_bytes": 4 * dram,
                                   "vector_lane_ops": lane_ops}
        tab = chip.energy
        assert op.energy_pj["vector"] == pytest.approx(lane_ops * tab.vector_lane_op_pj)
        assert op.energy_pj["buffer_write"] == pytest.approx(4 * wr * tab.buffer_write_pj_per_byte)
        assert op.energy_pj["buffer_read"] == pytest.approx(4 * rd * tab.buffer_read_pj_per_byte)


def _port_cycles(chip, step):
    """Cycles the buffer ports need for one step's array traffic (oracle bytes / port width)."""
    b = chip.buffers

    def need(nbytes, port):
        return math.ceil(nbytes / port) if port > 0 else 0
    p = step["port"]
    if b.unified:
        return need(p["a"] + p["b"] + p["o"], b.unified_buffer.port_bytes_per_cycle)
    return max(need(p["a"], b.a.port_bytes_per_cycle), need(p["b"], b.b.port_bytes_per_cycle),
               need(p["o"], b.o.port_bytes_per_cycle))


@given(memory_chips(ports=True))
def test_buffer_ports_slow_steps_as_the_slow_timeline_says(case):
    _check_timeline(*case)


@given(memory_chips(ports=True), conv_geometries(), st.integers(0, 24))
def test_feeder_conv_timeline_equals_the_slow_timeline(case, geom, tile_m):
    # the timeline moves each A tile's input elements, not its im2col entries
    _check_timeline(*_feeder_case(case, geom, tile_m))


def _check_timeline(chip, shape, conv=None):
    op = _run(chip, shape, conv)
    if op is None:
        return
    arr = chip.array
    m, n, k = shape
    tiling = op.tiling
    _, per_step = _oracle(chip, shape, tiling, conv)
    _, steps = slow_tile_walk(m, n, k, tiling["tile_m"], tiling["tile_n"], tiling["tile_k"],
                              tiling["loop_order"], chip.input_bytes, ACC_B,
                              OUT_B[chip.config["output"]["dtype"]], conv)
    bare = make_chip(arr.rows, arr.cols, arr.dataflow, arr.fill_drain, arr.preload_overlap)
    cache = {}

    def one_array(bm, bn, bk):
        if (bm, bn, bk) not in cache:
            cache[bm, bn, bk] = simulate_gemm(bare, shape=(bm, bn, bk)).compute_cycles
        return cache[bm, bn, bk]

    def compute(step_shape):  # the slowest array, running its blocks one after another
        em, en, ek = step_shape
        return max(sum(one_array(bm, bn, ek) for _i, _j, bm, bn in blocks)
                   for blocks in _array_blocks(em, en, arr.count, tiling["split"],
                                               arr.split_tile_m, arr.split_tile_n))
    ports = [_port_cycles(chip, s) for s in per_step]
    # a step continuing the array's stream costs only its stream (os K, ws rows of A, is
    # columns of B); any other step restarts the array
    comp = [ps["stream"] if ps["stream"] is not None else compute(s[2])
            for ps, s in zip(per_step, steps)]
    bpc = 0.0 if chip.dram.ideal else chip.dram.bandwidth_bytes_per_s / chip.clock_hz
    db, lat = chip.buffers.double_buffered, chip.dram.latency_cycles
    total = slow_timeline(steps, comp, bpc, lat, db, ports)
    assert op.compute_cycles == sum(comp)
    assert op.compute_cycles + op.stall_cycles == total


def test_a_narrow_port_slows_one_fold_by_hand():
    # os 4x4, fill_drain full, GEMM 4x4x4 int8, unbounded buffers, ideal DRAM: one fold of
    # K + R + C - 2 = 10 cycles. The array reads 4 rows x 4 A elements = 16 bytes: through a
    # 1-byte/cycle A port that takes 16 cycles, so the step lasts 16 (6 stall cycles); the O
    # port carries the 16 results x 4 bytes = 64 bytes: at 8 bytes/cycle, 8 cycles (no stall).
    chip = make_chip(4, 4, "os", "full").with_overrides({
        "buffers.a.port_bytes_per_cycle": 1.0, "buffers.o.port_bytes_per_cycle": 8.0})
    op = simulate_gemm(chip, shape=(4, 4, 4)).ops[0]
    assert (op.compute_cycles, op.stall_cycles) == (10, 6)
    narrow_o = chip.with_overrides({"buffers.a.port_bytes_per_cycle": 0.0,
                                    "buffers.o.port_bytes_per_cycle": 2.0})
    assert simulate_gemm(narrow_o, shape=(4, 4, 4)).ops[0].stall_cycles == 32 - 10
    unified = chip.with_overrides({"buffers.unified": True,
                                   "buffers.unified_buffer.port_bytes_per_cycle": 6.0})
    # unified: A 16 + B 16 + O 64 = 96 bytes through one 6-byte/cycle port = 16 cycles
    assert simulate_gemm(unified, shape=(4, 4, 4)).ops[0].stall_cycles == 16 - 10
