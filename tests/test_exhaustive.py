"""Fast cycle model == PE-level reference, cycle for cycle, and values bit for bit, over every
array shape up to 8 x 8 and every dataflow and knob (fill_drain full/active, preload_overlap
on/off).

``-m exhaustive`` runs every GEMM with M, N, K in 1..24 (13,824 per array shape, 10.6 million
in all); the default suite runs a deterministic stratified subset of them (see ``_dims``). One
numba call per array shape runs its GEMMs in parallel (``simulator.core._crosscheck``).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

from simulator.core import _crosscheck, _numerics
from simulator.hardware._arith import MODE_FLOAT, adder_limits

MAX_ARRAY = 8
MAX_DIM = 24
LO, HI, SPAN = adder_limits(32, np.float32)
_rng = np.random.default_rng(0)
A = _rng.standard_normal((MAX_DIM, MAX_DIM)).astype(np.float32)
B = _rng.standard_normal((MAX_DIM, MAX_DIM)).astype(np.float32)
KNOBS = list(itertools.product(["os", "ws", "is"], ["full", "active"], [False, True]))
DF_CODE = {"os": 0, "ws": 1, "is": 2}


@functools.lru_cache(maxsize=None)
def _expected_bits(chunk: int) -> np.ndarray:
    """float32 bits of A[:, :k] @ B[:k, :] for every k, from the fast functional kernel summing
    K in chunks of ``chunk`` (0: the whole K, as os does); index [k, m, n]."""
    out = np.zeros((MAX_DIM + 1, MAX_DIM, MAX_DIM), np.uint32)
    for k in range(1, MAX_DIM + 1):
        o = np.zeros((MAX_DIM, MAX_DIM), np.float32)
        _numerics._gemm_ordered(np.ascontiguousarray(A[:, :k]), np.ascontiguousarray(B[:k]), o,
                                chunk or k, MODE_FLOAT, LO, HI, SPAN)
        out[k] = o.view(np.uint32)
    return out


def _folds(x: int) -> set[int]:
    """Sizes of a dimension cut into folds of x: one partial fold, one full, a full and a
    one-wide partial, ..., three folds or more, and the largest."""
    return {1, x - 1, x, x + 1, 2 * x, 2 * x + 1, 3 * x - 1, MAX_DIM}


def _dims(df: str, rows: int, cols: int) -> tuple[set[int], set[int], set[int]]:
    """The stratified subset's sizes of M, N and K: the dimensions an array folds (os: M by
    rows, N by cols; ws: K by rows, N by cols; is: K by rows, M by cols) take _folds sizes, the
    streamed one (os K, ws M, is N) 1, 2, 3, rows - 1 .. rows + 1, cols and 24."""
    streamed = {1, 2, 3, rows - 1, rows, rows + 1, cols, MAX_DIM}
    by_rows, by_cols = _folds(rows), _folds(cols)
    m, n, k = {"os": (by_rows, by_cols, streamed), "ws": (streamed, by_cols, by_rows),
               "is": (by_cols, streamed, by_rows)}[df]
    return tuple({v for v in s if 1 <= v <= MAX_DIM} for s in (m, n, k))


def _shapes(df: str, rows: int, cols: int, whole: bool) -> np.ndarray:
    if whole:
        dims = (range(1, MAX_DIM + 1),) * 3
    else:
        dims = tuple(sorted(s) for s in _dims(df, rows, cols))
    return np.array(list(itertools.product(*dims)), np.int64)


def _check(df: str, fill_drain: str, overlap: bool, whole: bool) -> int:
    """Run every array shape; assert cycles and values equal; return the GEMMs checked."""
    checked = 0
    for rows, cols in itertools.product(range(1, MAX_ARRAY + 1), repeat=2):
        shapes = _shapes(df, rows, cols, whole)
        expected = _expected_bits(0 if df == "os" else rows)
        ref, fast, same = _crosscheck._fast_vs_reference(
            DF_CODE[df], rows, cols, fill_drain == "full", overlap, shapes, A, B, expected, LO,
            HI, SPAN)
        bad = np.flatnonzero((ref != fast) | ~same)
        assert bad.size == 0, [
            f"{rows}x{cols} array, gemm {tuple(shapes[i])}: reference {ref[i]} cycles, fast "
            f"{fast[i]}, values equal: {same[i]}" for i in bad[:5]]
        checked += len(shapes)
    return checked


@pytest.mark.parametrize("df, fill_drain, overlap", KNOBS)
def test_fast_equals_reference_on_a_stratified_subset(df, fill_drain, overlap):
    assert _check(df, fill_drain, overlap, whole=False) > 64 * 100


@pytest.mark.exhaustive
@pytest.mark.parametrize("df, fill_drain, overlap", KNOBS)
def test_fast_equals_reference_on_every_gemm_up_to_24(df, fill_drain, overlap):
    assert _check(df, fill_drain, overlap, whole=True) == 64 * MAX_DIM ** 3


def test_the_cross_check_sees_a_wrong_value_and_a_wrong_cycle():
    shapes = np.array([[3, 2, 5], [4, 4, 4]], np.int64)
    expected = _expected_bits(2).copy()
    ref, fast, same = _crosscheck._fast_vs_reference(1, 2, 2, True, False, shapes, A, B,
                                                     expected, LO, HI, SPAN)
    assert same.all() and (ref == fast).all()
    expected[5, 2, 1] ^= 1  # one bit of O[2, 1] of the 3x2x5 GEMM
    _, _, same = _crosscheck._fast_vs_reference(1, 2, 2, True, False, shapes, A, B, expected,
                                                LO, HI, SPAN)
    assert list(same) == [False, True]
    # the reference counts its own cycles: on a 2x3 array the 4x4x4 GEMM takes longer
    ref2, fast2, _ = _crosscheck._fast_vs_reference(1, 2, 3, True, False, shapes, A, B,
                                                    expected, LO, HI, SPAN)
    assert ref2[1] == fast2[1] != ref[1]
