"""simulator.core._timing: the O(1) cycle model against the per-fold loop and hand derivations."""

from __future__ import annotations

from hypothesis import given, strategies as st

from simulator.core import _timing

dims = st.integers(1, 300)
tiles = st.integers(1, 40)


@given(t=st.integers(1, 100), osz=dims, otile=tiles, isz=dims, itile=tiles,
       rows_from_outer=st.booleans(), big_r=tiles, big_c=tiles, full=st.booleans(),
       has_load=st.booleans(), overlap=st.booleans())
def test_closed_form_equals_per_fold_loop(t, osz, otile, isz, itile, rows_from_outer, big_r,
                                          big_c, full, has_load, overlap):
    args = (t, osz, otile, isz, itile, rows_from_outer, big_r, big_c, full, has_load, overlap)
    assert _timing._gemm_cycles(*args) == _timing._gemm_cycles_per_fold(*args)


def test_per_fold_loop_by_hand():
    # ws, R=4, C=3, M(T)=5, K=6 (inner folds 4,2), N=3 (one outer fold), full, no overlap:
    # each fold: load 4 + stream 5+4+3-2 = 14 -> 2 folds = 28
    assert _timing._gemm_cycles_per_fold(5, 3, 3, 6, 4, False, 4, 3, True, True, False)[0] == 28
    # same with overlap: load0 4 + max(S0=10, L1=4) + S1 = 4 + 10 + 10 = 24
    assert _timing._gemm_cycles_per_fold(5, 3, 3, 6, 4, False, 4, 3, True, True, True)[0] == 24
    # active, overlap: L0=4, S0=5+4+3-2=10, L1=2, S1=5+2+3-2=8 -> 4 + max(10,2) + 8 = 22
    assert _timing._gemm_cycles_per_fold(5, 3, 3, 6, 4, False, 4, 3, False, True, True)[0] == 22
    # a load longer than the stream: R=8, C=1, T=1 (one row of A): S = 1+8+1-2 = 8 = L, tie;
    # R=8, C=1, T=1 active with inner extents 8,8: L=8 > S? S=8 -> max = 8
    assert _timing._gemm_cycles_per_fold(1, 1, 1, 16, 8, False, 8, 1, True, True, True)[0] == 8 + 8 + 8


def test_busy_cycles_give_full_mapping_efficiency_when_folds_fill_the_array():
    cycles, busy, folds = _timing._gemm_cycles(64, 64, 8, 64, 8, True, 8, 8, True, False, False)
    assert folds == 64 and busy == cycles * 64


def test_timing_cost_does_not_grow_with_size():
    # O(1): a 65536^3 GEMM evaluates like a tiny one (no per-fold loop, no arrays)
    big = _timing._gemm_cycles(65536, 65536, 128, 65536, 128, False, 128, 128, True, True, True)
    assert big[2] == 512 * 512
    assert big[0] == 128 + 512 * 512 * (65536 + 128 + 128 - 2)
