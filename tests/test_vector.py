"""simulator.core.vector: cycle formula and the lane/tree order of reductions."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, strategies as st

from simulator.hardware.chip import VectorUnit
from simulator.core.vector import (ELEMENTWISE, elementwise_values, reduce_sum_values,
                              reduction_cycles, vector_cycles)

units = st.builds(VectorUnit, lanes=st.integers(1, 512), latency_cycles=st.integers(1, 20),
                  interval=st.fixed_dictionaries({k: st.integers(1, 8) for k in
                                                  ("add", "compare", "transcendental",
                                                   "reduction")}))


@given(unit=units, n=st.integers(1, 100000), cls=st.sampled_from(["add", "compare",
                                                                   "transcendental"]))
def test_elementwise_cycles_formula(unit, n, cls):
    assert vector_cycles(unit, cls, n) == \
        math.ceil(n / unit.lanes) * unit.interval[cls] + unit.latency_cycles - 1


@given(unit=units, groups=st.integers(1, 50), group=st.integers(1, 2000))
def test_reduction_cycles_add_tree_depth(unit, groups, group):
    n = groups * group
    depth = math.ceil(math.log2(min(group, unit.lanes))) if group > 1 else 0
    assert reduction_cycles(unit, n, group) == \
        math.ceil(n / unit.lanes) * unit.interval["reduction"] + unit.latency_cycles - 1 + depth


def scalar_lane_sum(values, lanes):
    """Oracle: lane i % lanes accumulates in element order, then a pairwise tree, in float32."""
    width = min(len(values), lanes)
    acc = [None] * width
    for i, v in enumerate(values):
        lane = i % width
        acc[lane] = np.float32(v) if acc[lane] is None else np.float32(acc[lane] + np.float32(v))
    while len(acc) > 1:
        nxt = [np.float32(acc[j] + acc[j + 1]) for j in range(0, len(acc) - 1, 2)]
        if len(acc) % 2:
            nxt.append(acc[-1])
        acc = nxt
    return acc[0]


@given(n=st.integers(1, 300), lanes=st.integers(1, 64), seed=st.integers(0, 2**32 - 1))
def test_reduction_values_follow_lane_then_tree_order(n, lanes, seed):
    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32) * 1e3
    got = reduce_sum_values(x.reshape(1, -1), None, lanes)[0, 0]
    assert got.tobytes() == scalar_lane_sum(list(x), lanes).tobytes()


@given(rows=st.integers(1, 20), cols=st.integers(1, 20), lanes=st.integers(1, 16),
       seed=st.integers(0, 2**32 - 1))
def test_axis_reductions(rows, cols, lanes, seed):
    x = np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)
    by_col = reduce_sum_values(x, 0, lanes)
    assert by_col.shape == (1, cols)
    for j in range(cols):
        assert by_col[0, j] == scalar_lane_sum(list(x[:, j]), lanes)
    by_row = reduce_sum_values(x, 1, lanes)
    assert by_row.shape == (rows, 1) and by_row[0, 0] == scalar_lane_sum(list(x[0]), lanes)


def test_elementwise_kinds():
    a = np.array([[1.5, -2.0]], np.float32)
    b = np.array([[0.5, 4.0]], np.float32)
    assert set(ELEMENTWISE) >= {"add", "sub", "mul", "scale", "sgd", "relu", "relu_grad", "exp"}
    assert np.array_equal(elementwise_values("relu", [a], 0), [[1.5, 0.0]])
    assert np.array_equal(elementwise_values("relu_grad", [b, a], 0), [[0.5, 0.0]])
    assert np.array_equal(elementwise_values("sgd", [a, b], 0.1),
                          a - np.float32(0.1) * b)
