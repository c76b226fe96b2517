"""simulator.core.one_tile: the plain-Python one-tile path equals the numba functions it twins and
the tile walk (``memory._run``) it replaces; a timing-only run on a chip without a memory model
imports no numba."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import assume, example, given, settings, strategies as st

from conftest import CONFIGS, ROOT
from simulator.core import _memory, _timing, one_tile
from simulator.core.memory import _run, _run_one_tile, candidate_plans, run_gemm_memory
from simulator.errors import WorkloadError
from strategies import conv_geometries, make_chip

bools = st.booleans()


@settings(max_examples=1000)  # cheap; small extents reach the overlap cases where a load wins
@example(1, 2, 1, 6, 5, False, 8, 8, False, True, True)  # next fold's load outlasts this stream
@given(t_len=st.integers(1, 12), outer=st.integers(1, 60), outer_tile=st.integers(1, 12),
       inner=st.integers(1, 60), inner_tile=st.integers(1, 12), rows_from_outer=bools,
       big_r=st.integers(1, 12), big_c=st.integers(1, 12), full=bools, has_load=bools,
       overlap=bools)
def test_gemm_cycles_equals_numba_twin(t_len, outer, outer_tile, inner, inner_tile,
                                       rows_from_outer, big_r, big_c, full, has_load, overlap):
    args = (t_len, outer, outer_tile, inner, inner_tile, rows_from_outer, big_r, big_c, full,
            has_load, overlap)
    assert one_tile.gemm_cycles(*args) == tuple(_timing._gemm_cycles(*args))
    assert one_tile.gemm_cycles(*args) == tuple(_timing._gemm_cycles_per_fold(*args))


@given(df=st.integers(0, 2), m=st.integers(1, 200), n=st.integers(1, 200), k=st.integers(1, 200),
       big_r=st.integers(1, 40), big_c=st.integers(1, 40), full=bools, overlap=bools)
def test_one_array_equals_numba_twin(df, m, n, k, big_r, big_c, full, overlap):
    assert one_tile.one_array(df, m, n, k, big_r, big_c, full, overlap) == \
        tuple(_memory._one_array(df, m, n, k, big_r, big_c, full, overlap, False))
    assert one_tile.fold_sum_triangle(k, big_r) == _memory._fold_sum_triangle(k, big_r)


@given(nbytes=st.integers(0, 10**9), bpc=st.sampled_from([0.0, 0.3, 1.0, 7.5, 256.0]),
       latency=st.integers(0, 500))
def test_transfer_and_port_equal_numba_twins(nbytes, bpc, latency):
    assert one_tile.transfer_cycles(nbytes, bpc, latency) == _memory._xfer(nbytes, bpc, latency)
    assert one_tile.port_cycles(nbytes, bpc) == _memory._port(nbytes, bpc)


def test_orders_are_the_hot_loops_orders():
    assert _memory.ORDERS == one_tile.ORDERS and len(_memory.ORDER_POS) == len(one_tile.ORDERS)


@given(df=st.sampled_from(["os", "ws", "is"]), rows=st.integers(1, 32), cols=st.integers(1, 32),
       m=st.integers(1, 300), n=st.integers(1, 300), k=st.integers(1, 300),
       fill=st.sampled_from(["full", "active"]), overlap=bools,
       dtype=st.sampled_from(["int8", "bf16", "fp32"]), unified=bools, db=bools,
       cap=st.sampled_from([0, 1 << 16, 1 << 20, 1 << 24]),
       ports=st.tuples(*[st.sampled_from([0.0, 1.0, 3.0, 64.0])] * 4),
       bw=st.sampled_from([0.0, 0.5e9, 16e9]), latency=st.integers(0, 100),
       order=st.sampled_from(("auto",) + one_tile.ORDERS), split=st.sampled_from(["m", "n"]),
       narrow=bools)
def test_one_tile_result_equals_tile_walk(df, rows, cols, m, n, k, fill, overlap, dtype, unified,
                                          db, cap, ports, bw, latency, order, split, narrow):
    over = {"buffers.unified": unified, "buffers.double_buffered": db,
            "dram.bandwidth_bytes_per_s": bw, "dram.latency_cycles": latency,
            "tiling.loop_order": order, "output.dtype": "input" if narrow else "accumulator"}
    for i, name in enumerate(("a", "b", "o", "unified_buffer")):
        if (name == "unified_buffer") == unified:
            over[f"buffers.{name}.bytes"] = cap
        over[f"buffers.{name}.port_bytes_per_cycle"] = ports[i]
    chip = make_chip(rows, cols, df, fill, overlap, dtype).with_overrides(over)
    fast = _run_one_tile(chip, m, n, k, split)
    plans = candidate_plans(chip, m, n, k, split)
    whole = (plans[0].tile_m, plans[0].tile_n, plans[0].tile_k) == (m, n, k)
    assert (fast is not None) == (len(plans) == 1 and whole)
    assume(fast is not None)
    assert fast == _run(chip, m, n, k, plans[0])


@given(geom=conv_geometries(), n=st.integers(1, 40), df=st.sampled_from(["os", "ws", "is"]),
       unified=bools, db=bools, slack=st.integers(-2, 64), bw=st.sampled_from([0.0, 16e9]),
       latency=st.integers(0, 50), split=st.sampled_from(["m", "n"]))
def test_one_tile_feeder_conv_equals_tile_walk(geom, n, df, unified, db, slack, bw, latency,
                                               split):
    """A feeder-lowered conv that fits whole (its touched input, weights and outputs; the buffer
    sized around that) is timed in plain Python exactly as the tile walk times it."""
    m, k = geom.gemm_m, geom.gemm_k
    div = 2 if db else 1
    need = (geom.touched_elems() + k * n + 4 * m * n) * div + slack
    over = {"buffers.unified": True, "buffers.unified_buffer.bytes": max(need, 1),
            "buffers.double_buffered": db, "dram.bandwidth_bytes_per_s": bw,
            "dram.latency_cycles": latency, "memory.conv_lowering": "feeder"} if unified else \
        {"buffers.a.bytes": max(geom.touched_elems() * div + slack, 1),
         "buffers.double_buffered": db, "dram.bandwidth_bytes_per_s": bw,
         "dram.latency_cycles": latency, "memory.conv_lowering": "feeder"}
    chip = make_chip(3, 4, df).with_overrides(over)
    fast = _run_one_tile(chip, m, n, k, split, geom)
    try:
        plans = candidate_plans(chip, m, n, k, split, conv=geom)
    except WorkloadError:  # not even the smallest tile fits
        assert fast is None and slack < 0
        return
    whole = (plans[0].tile_m, plans[0].tile_n, plans[0].tile_k) == (m, n, k)
    assert (fast is not None) == (len(plans) == 1 and whole) == (slack >= 0)
    assume(fast is not None)
    assert fast == _run(chip, m, n, k, plans[0], geom)
    assert fast.dram_a_read_bytes == geom.touched_elems()


def test_one_tile_path_not_taken_for_several_arrays_or_fixed_tiles():
    chip = make_chip(4, 4, "ws")
    assert _run_one_tile(chip, 30, 20, 10, "m") is not None
    assert _run_one_tile(chip.with_overrides({"array.count": 2}), 30, 20, 10, "m") is None
    assert _run_one_tile(chip, 30, 20, 10, "tiles") is None
    assert _run_one_tile(chip.with_overrides({"tiling.tile_m": 30}), 30, 20, 10, "m") is None
    assert run_gemm_memory(chip.with_overrides({"array.count": 2}), 30, 20, 10).plan.split \
        in ("m", "n")


NO_NUMBA = """
import sys
from simulator.tools.cli import main
from simulator import load_chip, simulate_gemm
assert main(sys.argv[1:]) == 0
rep = simulate_gemm(load_chip(sys.argv[2]), shape=(1000, 300, 700))
assert rep.total_cycles > 0
loaded = sorted(m for m in sys.modules if m == "numba" or m.startswith("numba."))
assert not loaded, loaded[:5]
"""


def test_timing_only_run_without_memory_model_imports_no_numba():
    for config in ("tpu-v4-mxu.yaml", "scalesim-compat.yaml"):
        for extra in ([], ["--json"]):
            proc = subprocess.run([sys.executable, "-c", NO_NUMBA, "run", str(CONFIGS / config),
                                   "--gemm", "4096x4096x4096", *extra], cwd=ROOT,
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr
