"""Convolutions lowered in the feeder (memory.conv_lowering: feeder): A tiles cost the input
elements their windows touch, against plain-Python walks over every im2col entry."""

from __future__ import annotations

import numpy as np
from hypothesis import event, given, strategies as st

from oracles import conv_tile_inputs, slow_tile_walk
from simulator.core import _conv
from simulator.core.engine import gemm_op, run
from simulator.core.memory import dram_traffic_closed_form, run_gemm_memory
from simulator.core.program import Program
from strategies import conv_geometries, make_chip


@given(conv_geometries(), st.data())
def test_tile_inputs_equal_the_entry_walk(geom, data):
    m, k = geom.gemm_m, geom.gemm_k
    m0 = data.draw(st.integers(0, m - 1))
    m1 = data.draw(st.integers(m0 + 1, m))
    k0 = data.draw(st.integers(0, k - 1))
    k1 = data.draw(st.integers(k0 + 1, k))
    g = geom.as_array()
    want = len(conv_tile_inputs(geom, m0, m1, k0, k1))
    assert _conv._tile_elems(g, m0, m1, k0, k1) == want
    # the tiler's footprint bound holds for a tile of this size anywhere
    assert want <= _conv._tile_bound(g, m1 - m0, k1 - k0) <= (m1 - m0) * (k1 - k0)
    whole = len(conv_tile_inputs(geom, 0, m, 0, k))
    assert geom.touched_elems() == whole == _conv._tile_elems(g, 0, m, 0, k)


def _conv_program(geom, groups, f_per_group):
    p = Program("conv")
    p.input("X", (geom.nb, geom.c * groups, geom.h, geom.w))
    p.input("W", (f_per_group * groups, geom.c, geom.kh, geom.kw))
    p.conv2d("conv", "X", "W", stride=(geom.sh, geom.sw), padding=(geom.ph, geom.pw),
             dilation=(geom.dh, geom.dw), groups=groups, out="O")
    return p


def _feeder(chip):
    return chip.with_overrides({"memory.conv_lowering": "feeder"})


@given(conv_geometries(), st.integers(1, 2), st.integers(1, 5),
       st.sampled_from(["os", "ws", "is"]), st.sampled_from(["int8", "bf16"]), st.booleans(),
       st.booleans())
def test_a_conv_that_fits_reads_its_input_and_weights_once(geom, groups, f, df, dtype, unified,
                                                           double):
    """Buffers just big enough for the feature map the windows touch, the weights and the
    outputs (too small for the im2col matrix when that is bigger): DRAM reads exactly the
    touched input and the weights, and writes exactly the outputs."""
    m, n, k = geom.gemm_m, f, geom.gemm_k
    touched = len(conv_tile_inputs(geom, 0, m, 0, k))
    chip = make_chip(4, 3, df, dtype=dtype)
    in_b = chip.input_bytes
    div = 2 if double else 1
    need = {"a": touched * in_b * div, "b": k * n * in_b * div, "o": m * n * 4 * div}
    keys = {"buffers.unified": unified, "buffers.double_buffered": double,
            "dram.bandwidth_bytes_per_s": 8e9, "memory.conv_lowering": "feeder"}
    if unified:
        keys["buffers.unified_buffer.bytes"] = sum(need.values())
    else:
        keys.update({f"buffers.{b}.bytes": v for b, v in need.items()})
    chip = chip.with_overrides(keys)
    op = run(chip, _conv_program(geom, groups, f)).ops[0]
    event("im2col would not fit" if m * k > touched else "im2col as small")
    dram = op.traffic_bytes["dram"]
    assert dram["a_read"] == groups * touched * in_b
    assert dram["b_read"] == groups * k * n * in_b
    assert (dram["o_read"], dram["o_write"]) == (0, groups * m * n * 4)
    assert op.traffic_bytes["classes"]["halo"] == 0
    assert op.tiling["tile_m"] == m and op.tiling["tile_k"] == k


@given(conv_geometries(), st.integers(1, 6), st.sampled_from(["os", "ws", "is"]),
       st.sampled_from(["int8", "fp32"]), st.integers(1, 20), st.integers(1, 6),
       st.integers(1, 20), st.sampled_from(("mnk", "mkn", "nmk", "nkm", "kmn", "knm")),
       st.integers(0, 2**32 - 1))
def test_both_lowerings_give_the_same_compute_and_values(geom, f, df, dtype, tm, tn, tk, order,
                                                         seed):
    """With the same tiling (fixed tile sizes and loop order), im2col in memory and in the feeder give the same
    compute cycles and bit-identical values; the feeder moves no more A bytes from DRAM."""
    rows = 3
    if df != "os" and geom.gemm_k > tk > rows and tk % rows:
        tk = rows * (tk // rows)  # ws/is: K tiles keep chunks whole
    chip = make_chip(rows, 4, df, dtype=dtype).with_overrides({
        "tiling.tile_m": tm, "tiling.tile_n": tn, "tiling.tile_k": tk,
        "tiling.loop_order": order, "dram.bandwidth_bytes_per_s": 4e9,
        "buffers.a.bytes": 1 << 20})
    rng = np.random.default_rng(seed)
    prog = _conv_program(geom, 1, f)
    x = rng.integers(-100, 100, (geom.nb, geom.c, geom.h, geom.w)).astype(
        np.int8 if dtype == "int8" else np.float32)
    w = rng.integers(-100, 100, (f, geom.c, geom.kh, geom.kw)).astype(x.dtype)
    mem = run(chip, prog, {"X": x, "W": w})
    fed = run(_feeder(chip), prog, {"X": x, "W": w})
    a, b = mem.ops[0], fed.ops[0]
    assert a.tiling == b.tiling
    assert a.compute_cycles == b.compute_cycles and a.busy_pe_cycles == b.busy_pe_cycles
    assert np.array_equal(mem.output, fed.output)
    assert b.traffic_bytes["dram"]["a_read"] <= a.traffic_bytes["dram"]["a_read"]
    for key in ("b_read", "o_read", "o_write"):
        assert a.traffic_bytes["dram"][key] == b.traffic_bytes["dram"][key]


@given(conv_geometries(), st.integers(1, 8), st.integers(1, 30), st.integers(1, 8),
       st.integers(1, 30), st.sampled_from(("mnk", "mkn", "nmk", "nkm", "kmn", "knm")))
def test_closed_form_conv_traffic_equals_the_tile_walk(geom, n, tm, tn, tk, order):
    m, k = geom.gemm_m, geom.gemm_k
    chip = _feeder(make_chip(2, 2, "os")).with_overrides({
        "tiling.tile_m": tm, "tiling.tile_n": tn, "tiling.tile_k": tk,
        "tiling.loop_order": order})
    plan = gemm_op(chip, m, n, k, conv=geom).tiling
    from simulator.core.memory import TilePlan
    tp = TilePlan(plan["tile_m"], plan["tile_n"], plan["tile_k"], plan["loop_order"],
                  plan["split"])
    dram, _ = slow_tile_walk(m, n, k, tp.tile_m, tp.tile_n, tp.tile_k, order, 1, 4, conv=geom)
    assert dram_traffic_closed_form(chip, m, n, k, tp, conv=geom) == \
        (dram["a"], dram["b"], dram["o_rd"], dram["o_wr"])
    res = run_gemm_memory(chip, m, n, k, conv=geom)
    assert (res.dram_a_read_bytes, res.dram_a_halo_bytes) == (dram["a"], dram["a_halo"])


@given(conv_geometries(), st.integers(1, 8))
def test_im2col_in_memory_ignores_the_geometry(geom, n):
    """memory.conv_lowering: memory (the default) costs the im2col matrix as today, geometry
    or not."""
    chip = make_chip(2, 2, "ws").with_overrides({"buffers.a.bytes": 64,
                                                 "dram.bandwidth_bytes_per_s": 1e9})
    m, k = geom.gemm_m, geom.gemm_k
    with_geom = run_gemm_memory(chip, m, n, k, conv=geom)
    assert with_geom == run_gemm_memory(chip, m, n, k)
    assert with_geom.dram_a_halo_bytes == 0
