"""Placing an op's independent GEMMs on a chip's arrays, and GEMMs cut into pieces
(simulator.core.placement): bounds, the split placement's old behaviour, event counts against
the fold walk (``oracles.slow_events``), the PE reference, and exact totals of pieces."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from oracles import slow_events
from simulator import WorkloadError, simulate_gemm
from simulator.core.engine import gemm_op, run
from simulator.core.placement import (cut_sizes, gemm_pieces, place_gemms, placement_candidates,
                                      sub_chip)
from simulator.core.program import Program
from simulator.hardware.dataflow import MAX_GEMM_DIM
from strategies import make_chip

OUT_B = {"accumulator": 4, "int8": 1, "bf16": 2, "fp16": 2, "fp32": 4}


@st.composite
def batched_chips(draw, memory=True):
    """A small chip of 1-6 arrays (random dataflow, split, buffers and DRAM when ``memory``)
    and a batch of GEMMs: (chip, count, (m, n, k))."""
    df = draw(st.sampled_from(["os", "ws", "is"]))
    rows, cols = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    keys = {"array.count": draw(st.integers(1, 6)),
            "array.split": draw(st.sampled_from(["m", "n", "auto", "tiles"])),
            "array.split_tile_m": draw(st.integers(1, 12)),
            "array.split_tile_n": draw(st.integers(1, 12)), "clock_hz": 1e9}
    if memory:
        keys["buffers.double_buffered"] = draw(st.booleans())
        keys["dram.bandwidth_bytes_per_s"] = draw(st.sampled_from([0.0, 1e9, 4e9, 32e9]))
        keys["dram.latency_cycles"] = draw(st.integers(0, 20))
        if draw(st.booleans()):
            keys["buffers.unified"] = True
            keys["buffers.unified_buffer.bytes"] = draw(st.integers(2000, 40000))
    dtype = draw(st.sampled_from(["int8", "fp32"]))
    base = make_chip(rows, cols, df, draw(st.sampled_from(["full", "active"])),
                     draw(st.booleans()), dtype)
    shape = tuple(draw(st.integers(1, 24)) for _ in range(3))
    return base.with_overrides(keys), draw(st.integers(1, 12)), shape


def _op(chip, shape, count, placement="auto"):
    try:
        return gemm_op(chip.with_overrides({"array.batch_placement": placement}), *shape,
                       count=count)
    except WorkloadError:  # no tile fits the buffer share: tested in test_memory
        return None


@settings(max_examples=120)
@given(batched_chips(memory=False))
def test_batched_cycles_lie_between_the_mac_bound_and_rounds_of_one_array(case):
    chip, count, (m, n, k) = case
    op = gemm_op(chip, m, n, k, count=count)
    arrays = chip.array.count
    assert op.macs == count * m * n * k
    assert op.compute_cycles >= -(-count * m * n * k // chip.pes)
    one_array = simulate_gemm(chip.with_overrides({"array.count": 1}), shape=(m, n, k))
    rounds = -(-count // arrays)
    assert op.total_cycles - op.overhead_cycles <= rounds * one_array.ops[0].compute_cycles
    assert op.stall_cycles == 0  # ideal DRAM, unbounded buffers


@settings(max_examples=120)
@given(batched_chips())
def test_placement_is_never_slower_than_splitting_every_gemm(case):
    chip, count, shape = case
    auto, split = _op(chip, shape, count), _op(chip, shape, count, "split")
    if auto is None or split is None:
        return
    assert auto.total_cycles <= split.total_cycles
    assert split.placement is None or split.placement["choice"] == "split"
    if chip.array.count == 1 or count == 1:  # nothing to place: the split run, field for field
        assert auto == split


@settings(max_examples=80)
@given(batched_chips())
def test_split_without_double_buffering_is_count_gemms_back_to_back(case):
    chip, count, shape = case
    chip = chip.with_overrides({"buffers.double_buffered": False, "array.batch_placement": "split"})
    op = _op(chip, shape, count, "split")
    if op is None:
        return
    one = simulate_gemm(chip, shape=shape).ops[0]
    assert op.compute_cycles == count * one.compute_cycles
    assert op.stall_cycles == count * one.stall_cycles
    assert op.events["dram_bytes"] == count * one.events["dram_bytes"]


@settings(max_examples=120)
@given(batched_chips())
def test_event_counts_equal_the_fold_walk_on_each_arrays_share(case):
    """Every array reads its own operands: events are count x one GEMM's on its share of the
    chip, counted by walking tile steps, arrays and folds (oracles.slow_events)."""
    chip, count, (m, n, k) = case
    op = _op(chip, (m, n, k), count)
    if op is None:
        return
    pl = op.placement or {"arrays_per_gemm": chip.array.count, "gemms_at_once": 1}
    arr = chip.array
    t = op.tiling
    want, _ = slow_events(arr.dataflow, arr.rows, arr.cols, m, n, k, t["tile_m"], t["tile_n"],
                          t["tile_k"], t["loop_order"], chip.input_bytes, 4,
                          pl["arrays_per_gemm"], t["split"], arr.split_tile_m, arr.split_tile_n,
                          OUT_B[chip.output_dtype])
    rq = m * n * count * (4 + chip.output_bytes) if chip.narrows_output else 0
    assert op.events["macs"] == count * want["macs"]
    assert op.events["pe_hop_bytes"] == count * want["pe_hop_bytes"]
    assert op.events["dram_bytes"] == count * want["dram_bytes"]
    assert op.events["register_read_bytes"] == count * want["register_read_bytes"]
    assert op.events["buffer_read_bytes"] + op.events["buffer_write_bytes"] == \
        count * (want["buffer_read_bytes"] + want["buffer_write_bytes"]) + rq


def test_candidates_cover_whole_split_and_the_mixes_between():
    cands = {(p.arrays_per_gemm, p.gemms_at_once, p.rounds)
             for p in placement_candidates(132, 384)}
    assert (132, 1, 384) in cands  # split
    assert (1, 128, 3) in cands  # whole: 3 rounds need only 128 at once
    assert all(g * p <= 132 and p * r >= 384 for g, p, r in cands)
    # 2 GEMMs on 4 arrays: one round with two arrays each (mix), two rounds (split), whole
    assert [(p.arrays_per_gemm, p.gemms_at_once, p.choice) for p in placement_candidates(4, 2)] \
        == [(2, 2, "mix"), (4, 1, "split"), (1, 2, "whole")]
    assert [p.choice for p in placement_candidates(8, 5, "whole")] == ["whole"]
    assert [p.choice for p in placement_candidates(8, 5, "split")] == ["split"]
    assert [p.choice for p in placement_candidates(1, 5)] == ["split"]


def test_sub_chip_shares_buffers_ports_and_bandwidth():
    chip = make_chip(4, 4).with_overrides({
        "array.count": 8, "buffers.unified": True, "buffers.unified_buffer.bytes": 1000,
        "buffers.unified_buffer.port_bytes_per_cycle": 64.0,
        "dram.bandwidth_bytes_per_s": 8e9})
    sub = sub_chip(chip, 2, 4)
    assert sub.array.count == 2
    assert sub.buffers.unified_buffer.bytes == 250
    assert sub.buffers.unified_buffer.port_bytes_per_cycle == 16.0
    assert sub.dram.bandwidth_bytes_per_s == 2e9
    assert sub_chip(chip, 8, 1) is chip


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["os", "ws", "is"]), st.integers(2, 5), st.integers(2, 4),
       st.integers(1, 4), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9),
       st.integers(1, 9), st.sampled_from(["int8", "fp32"]), st.integers(0, 10 ** 6))
def test_the_pe_reference_runs_the_placement_cycle_for_cycle_and_bit_for_bit(
        df, arrays, side, batch, heads, m, n, k, dtype, seed):
    chip = make_chip(side, side, df, "full", True, dtype).with_overrides(
        {"array.count": arrays, "array.split": "m"})
    p = Program("bmm")
    p.input("a", (batch, heads, m, k))
    p.input("b", (batch, heads, k, n))
    p.matmul("mm", "a", "b", out="o")
    rng = np.random.default_rng(seed)
    if dtype == "int8":
        a = rng.integers(-128, 128, (batch, heads, m, k)).astype(np.int64)
        b = rng.integers(-128, 128, (batch, heads, k, n)).astype(np.int64)
    else:
        a = rng.standard_normal((batch, heads, m, k)).astype(np.float32)
        b = rng.standard_normal((batch, heads, k, n)).astype(np.float32)
    fast = run(chip, p, {"a": a, "b": b})
    ref = run(chip, p, {"a": a, "b": b}, engine="reference")
    assert fast.ops[0].compute_cycles == ref.ops[0].compute_cycles
    assert np.array_equal(fast.output, ref.output)
    if dtype == "int8":
        assert np.array_equal(fast.output, a @ b)
    else:
        np.testing.assert_allclose(fast.output, a @ b, rtol=1e-4, atol=1e-4)


@given(st.integers(1, 20 * MAX_GEMM_DIM))
def test_cut_sizes_add_up_and_fit(size):
    cut = cut_sizes(size)
    assert sum(x * c for x, c in cut) == size
    assert all(1 <= x <= MAX_GEMM_DIM for x, _c in cut)
    assert sum(c for _x, c in cut) == -(-size // MAX_GEMM_DIM)
    assert max(x for x, _c in cut) - min(x for x, _c in cut) <= 1


@given(st.integers(1, 5 * MAX_GEMM_DIM), st.integers(1, 5 * MAX_GEMM_DIM),
       st.integers(1, MAX_GEMM_DIM))
def test_gemm_pieces_have_exact_macs(m, n, k):
    pieces = gemm_pieces(m, n, k)
    assert sum(mm * nn * kk * c for (mm, nn, kk), c in pieces) == m * n * k
    assert all(max(s) <= MAX_GEMM_DIM for s, _c in pieces)


def test_a_reduction_longer_than_the_bound_is_refused_in_one_line():
    with pytest.raises(WorkloadError, match="gemm.K"):
        gemm_pieces(4, 4, MAX_GEMM_DIM + 1)


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_a_gemm_beyond_the_bound_costs_its_pieces_exactly(df):
    """M = 3 x 2^20 + 5 rows: four pieces (two sizes); compute cycles, MACs and DRAM bytes are
    the pieces' sums, each piece a GEMM of its own (one array, ideal memory)."""
    chip = make_chip(16, 16, df, "full", True, "int8")
    m, n, k = 3 * MAX_GEMM_DIM + 5, 24, 40
    p = Program("big")
    p.input("a", (m, k))
    p.input("w", (k, n))
    p.matmul("mm", "a", "w", out="o")
    op = run(chip, p).ops[0]
    pieces = gemm_pieces(m, n, k)
    assert len(pieces) == 2 and sum(c for _s, c in pieces) == 4
    assert op.macs == m * n * k and op.placement["pieces"]
    want = sum(c * gemm_op(chip, *s).compute_cycles for s, c in pieces)
    assert op.compute_cycles == want
    assert op.events["dram_bytes"] == sum(c * gemm_op(chip, *s).events["dram_bytes"]
                                          for s, c in pieces)


def test_a_conv_beyond_the_bound_is_cut_between_images():
    """80 images of 128 x 128 outputs: M = 1,310,720 > 2^20; cut into two pieces of 40
    images, each keeping the feeder's conv geometry."""
    chip = make_chip(16, 16, "ws", "full", True, "int8").with_overrides(
        {"memory.conv_lowering": "feeder"})
    p = Program("conv")
    p.input("x", (80, 3, 128, 128))
    p.input("w", (8, 3, 3, 3))
    p.conv2d("c", "x", "w", padding=1, out="y")
    op = run(chip, p).ops[0]
    assert op.shape == (80 * 128 * 128, 8, 27)
    assert op.placement["pieces"] == [{"shape": [40 * 128 * 128, 8, 27], "count": 2,
                                       "choice": "split", "arrays_per_gemm": 1,
                                       "gemms_at_once": 1, "rounds": 2}]
    half = Program("half")
    half.input("x", (40, 3, 128, 128))
    half.input("w", (8, 3, 3, 3))
    half.conv2d("c", "x", "w", padding=1, out="y")
    one = run(chip, half).ops[0]
    assert op.compute_cycles == 2 * one.compute_cycles
    assert op.events["dram_bytes"] == 2 * one.events["dram_bytes"]
    assert op.macs == 2 * one.macs


def test_placed_values_of_pieces_equal_numpy():
    """A functional GEMM cut into pieces computes every output in its piece (int8: exact)."""
    chip = make_chip(8, 8, "os", "full", True, "int8")
    m = MAX_GEMM_DIM + 3
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (m, 3)).astype(np.int64)
    b = rng.integers(-128, 128, (3, 2)).astype(np.int64)
    rep = simulate_gemm(chip, a=a, b=b)
    assert rep.ops[0].placement["pieces"]
    assert np.array_equal(rep.output, a @ b)


def test_the_h100_attention_gemms_go_whole_onto_the_arrays():
    """BERT-base's Q K^T at batch 32, seq 384 on the 132-array H100 config: 384 GEMMs of
    384x384x64 run whole, 128 at once, in 3 rounds (the split run cuts each into 132 slivers)."""
    from simulator import load_chip
    from conftest import ROOT
    chip = load_chip(ROOT / "configs" / "h100.yaml", overrides={"dtype": "int8"})
    placed = place_gemms(chip, 384, 384, 64, 384)
    assert placed.placement.to_dict() == {"choice": "whole", "arrays_per_gemm": 1,
                                          "gemms_at_once": 128, "rounds": 3}
    split = place_gemms(chip.with_overrides({"array.batch_placement": "split"}), 384, 384, 64, 384)
    assert placed.mem.compute_cycles * 10 < split.mem.compute_cycles
    # mapping efficiency: 384 GEMMs of 72 full 32x64 folds each, in 3 rounds of 132 arrays;
    # busy counts MAC slots, PEs x the MAC rate (int8 runs 2 per PE per cycle on H100)
    assert chip.peak_macs_per_cycle == 2 * chip.pes
    assert placed.mem.busy_pe_cycles * 396 == \
        chip.peak_macs_per_cycle * placed.mem.compute_cycles * 384
