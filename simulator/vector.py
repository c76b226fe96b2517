"""The SIMD vector unit: cycle cost and fp32 values of elementwise ops and reductions.

Cost of an op over n elements (DESIGN section 5):

    cycles = ceil(n / lanes) * interval[class] + latency - 1        (+ tree depth for reductions)

A reduction of n elements into each output is done lane-parallel: element i of a group goes to
lane i mod lanes and each lane adds its elements in order; then the lanes' partial sums are
added pairwise in a tree of depth ceil(log2(min(n, lanes))): lane 2j + lane 2j+1, level by
level. Values are float32 and every operation rounds to float32, in exactly that order.

Elementwise kinds and their class: add, sub, mul, scale (x * c), sgd (w - fl(c * g): two
roundings, issued as one fma-class lane-op), axpy (x + fl(c * y), likewise) -> "add";
relu (max(x, 0)), relu_grad (g where x > 0 else 0) -> "compare"; exp -> "transcendental".
"""

from __future__ import annotations

import math

import numpy as np

from .chip import VectorUnit

__all__ = ["ELEMENTWISE", "elementwise_values", "reduce_sum_values", "vector_cycles",
           "reduction_cycles"]

# kind -> (op class, number of tensor inputs)
ELEMENTWISE = {
    "add": ("add", 2), "sub": ("add", 2), "mul": ("add", 2), "scale": ("add", 1),
    "sgd": ("add", 2), "axpy": ("add", 2), "relu": ("compare", 1), "relu_grad": ("compare", 2),
    "exp": ("transcendental", 1),
}


def vector_cycles(unit: VectorUnit, op_class: str, n: int) -> int:
    """Return the cycles of an elementwise op of ``op_class`` over n elements."""
    return -(-n // unit.lanes) * unit.interval[op_class] + unit.latency_cycles - 1


def reduction_cycles(unit: VectorUnit, n: int, group: int) -> int:
    """Return the cycles of reducing n elements in groups of ``group`` (one output per group)."""
    depth = math.ceil(math.log2(min(group, unit.lanes))) if group > 1 else 0
    return vector_cycles(unit, "reduction", n) + depth


def elementwise_values(kind: str, inputs: list[np.ndarray], const: float) -> np.ndarray:
    """Return the float32 result of an elementwise op (row vectors broadcast over rows)."""
    xs = [np.asarray(x, np.float32) for x in inputs]
    c = np.float32(const)
    if kind == "add":
        return xs[0] + xs[1]
    if kind == "sub":
        return xs[0] - xs[1]
    if kind == "mul":
        return xs[0] * xs[1]
    if kind == "scale":
        return xs[0] * c
    if kind == "sgd":
        return xs[0] - (c * xs[1])
    if kind == "axpy":
        return xs[0] + (c * xs[1])
    if kind == "relu":
        return np.maximum(xs[0], np.float32(0))
    if kind == "relu_grad":
        return np.where(xs[1] > 0, xs[0], np.float32(0)).astype(np.float32)
    if kind == "exp":
        return np.exp(xs[0]).astype(np.float32)
    raise ValueError(f"unknown elementwise kind {kind!r}")  # pragma: no cover - Program checks


def _lane_tree_sum(groups: np.ndarray, lanes: int) -> np.ndarray:
    """Sum each row of ``groups`` (float32) in the lane order described in the module doc."""
    rows, n = groups.shape
    width = min(n, lanes)
    passes = -(-n // width)
    padded = np.zeros((rows, passes * width), np.float32)
    padded[:, :n] = groups
    chunks = padded.reshape(rows, passes, width)
    acc = chunks[:, 0, :].copy()
    for p in range(1, passes):  # lane-wise, in element order (padding adds exact zeros)
        last = min(n - p * width, width)
        acc[:, :last] = acc[:, :last] + chunks[:, p, :last]
    while acc.shape[1] > 1:  # pairwise tree across lanes
        if acc.shape[1] % 2:
            acc = np.concatenate([acc, np.zeros((rows, 1), np.float32)], axis=1)
            odd = True
        else:
            odd = False
        summed = acc[:, 0::2] + acc[:, 1::2]
        if odd:  # the unpaired last lane passes through unchanged (x + 0 would be exact too)
            summed[:, -1] = acc[:, -2]
        acc = summed
    return acc[:, 0]


def reduce_sum_values(x: np.ndarray, axis: int | None, lanes: int) -> np.ndarray:
    """Return the float32 sum of ``x`` over ``axis`` (None: all elements) as the unit adds it.

    axis=None gives shape (1, 1); axis=0 gives a row vector (1, cols); axis=1 a column (rows, 1).
    """
    x = np.asarray(x, np.float32)
    if axis is None:
        return _lane_tree_sum(x.reshape(1, -1), lanes).reshape(1, 1)
    if axis == 0:
        return _lane_tree_sum(np.ascontiguousarray(x.T), lanes).reshape(1, -1)
    return _lane_tree_sum(x, lanes).reshape(-1, 1)
