"""Sparse operands: SCALE-Sim v3 agreement, fast == PE reference, values, monotonicity, bytes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import CONFIGS, write
from simulator import load_chip, simulate_gemm
from simulator.tools.cli import main
from simulator.hardware.sparsity import kept_k, prune_nm, prune_unstructured, stored_bytes, Sparsity

COMPAT = CONFIGS / "scalesim-compat.yaml"


def sparse_chip(rows=8, cols=8, dataflow="ws", **sp):
    over = {"array.rows": rows, "array.cols": cols, "array.dataflow": dataflow}
    over.update({f"sparsity.{k}": v for k, v in sp.items()})
    return load_chip(COMPAT, over)


# SCALE-Sim v3 (scalesim 3.0.0), WS 8x8, [sparsity] SparsitySupport true, SparseRep
# ellpack_block, OptimizedMapping false; GEMM topology rows "name, M, N, K, N:M,". Run once:
# COMPUTE_REPORT "Total Cycles" and SPARSE_REPORT "New Storage (Filter+Metadata)" (4-byte words).
SCALESIM_SPARSE = [  # (M, N, K, n, m, total cycles, new filter storage in words)
    (20, 30, 40, 2, 4, 503, 637.5),
    (64, 64, 64, 1, 4, 1375, 1088.0),
    (16, 24, 37, 3, 4, 455, 714.0),
    (20, 30, 40, 1, 2, 503, 618.75),
    (33, 10, 50, 2, 8, 219, 153.125),
]


@pytest.mark.parametrize("m, n, k, sn, sm, cycles, words", SCALESIM_SPARSE)
def test_scalesim_v3_layerwise_nm_examples(m, n, k, sn, sm, cycles, words):
    chip = sparse_chip(operand="b", pattern="nm", n=sn, m=sm, format="ellpack_block")
    rep = simulate_gemm(chip, shape=(m, n, k))
    assert rep.scalesim_cycles == cycles
    sp = chip.sparsity
    assert stored_bytes(sp, k, n, kept_k(sp, k), 0, 4) == math.ceil(words * 4)


@given(k=st.integers(1, 5000), m=st.integers(1, 16), data=st.data())
def test_nm_kept_steps_closed_form_equals_pattern_walk(k, m, data):
    n = data.draw(st.integers(1, m))
    pattern = [i % m < n for i in range(k)]  # the first N of every group of M (SCALE-Sim)
    assert kept_k(Sparsity(operand="b", n=n, m=m), k) == sum(pattern)


shapes = st.tuples(st.integers(1, 24), st.integers(1, 24), st.integers(1, 40))


@settings(max_examples=60)
@given(shape=shapes, rows=st.integers(1, 6), cols=st.integers(1, 6),
       dataflow=st.sampled_from(["os", "ws", "is"]), operand=st.sampled_from(["a", "b"]),
       action=st.sampled_from(["skip", "gate", "none"]), fmt=st.sampled_from(["dense", "csr",
                                                                              "csc", "nm"]),
       nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (3, 8)]), shared=st.booleans(),
       seed=st.integers(0, 2**31))
def test_fast_equals_pe_reference_and_values_equal_numpy(shape, rows, cols, dataflow, operand,
                                                         action, fmt, nm, shared, seed):
    m, n, k = shape
    chip = sparse_chip(rows, cols, dataflow, operand=operand, n=nm[0], m=nm[1], format=fmt,
                       action=action)
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    if operand == "a":
        a = prune_nm(a, *nm, axis=1, shared=shared)
    else:
        b = prune_nm(b, *nm, axis=0, shared=shared)
    fast = simulate_gemm(chip, a=a, b=b)
    ref = simulate_gemm(chip, a=a, b=b, engine="reference")
    assert fast.totals()["compute_cycles"] == ref.totals()["compute_cycles"]
    expected = a.astype(np.int64) @ b.astype(np.int64)
    assert np.array_equal(fast.output, expected) and np.array_equal(ref.output, expected)
    dense = simulate_gemm(sparse_chip(rows, cols, dataflow), a=a, b=b)
    if action == "skip":
        assert fast.totals()["compute_cycles"] <= dense.totals()["compute_cycles"]
    else:
        assert fast.totals()["compute_cycles"] == dense.totals()["compute_cycles"]
    x = a if operand == "a" else b
    if action == "gate":  # only MACs with a nonzero sparse operand are paid for
        assert fast.totals()["events"]["macs"] == np.count_nonzero(x) * (n if operand == "a" else m)


def test_float_values_within_bound():
    chip = load_chip(CONFIGS / "tpu-v4-mxu.yaml", {"array.rows": 8, "array.cols": 8,
                                                   "sparsity.operand": "b"})
    rng = np.random.default_rng(1)
    a = rng.standard_normal((30, 50)).astype(np.float32)
    b = prune_nm(rng.standard_normal((50, 20)).astype(np.float32), 2, 4)
    out = simulate_gemm(chip, a=a, b=b).output
    ref = a.astype(np.float64) @ b.astype(np.float64)
    assert np.allclose(out, ref, rtol=2e-2, atol=2e-2 * np.abs(ref).max())


chips = st.sampled_from(["scalesim-compat", "tpu-v1", "gemmini", "tpu-v4-tensorcore"])
big = st.tuples(st.integers(1, 3000), st.integers(1, 3000), st.integers(1, 3000))


@settings(max_examples=40)
@given(name=chips, shape=big, operand=st.sampled_from(["a", "b"]),
       fmt=st.sampled_from(["dense", "csr", "csc"]), action=st.sampled_from(["skip", "gate",
                                                                             "none"]))
def test_density_one_is_the_dense_run_exactly(name, shape, operand, fmt, action):
    base = load_chip(CONFIGS / f"{name}.yaml")
    sparse = base.with_overrides({"sparsity.operand": operand, "sparsity.pattern": "unstructured",
                                  "sparsity.density": 1.0, "sparsity.format": fmt,
                                  "sparsity.action": action})
    assert simulate_gemm(sparse, shape=shape).to_dict()["totals"] == \
        simulate_gemm(base, shape=shape).to_dict()["totals"]
    nm = base.with_overrides({"sparsity.operand": operand, "sparsity.n": 4, "sparsity.m": 4})
    assert simulate_gemm(nm, shape=shape).to_dict()["totals"] == \
        simulate_gemm(base, shape=shape).to_dict()["totals"]


@settings(max_examples=60)
@given(shape=big, d1=st.floats(0.01, 1.0), d2=st.floats(0.01, 1.0),
       pattern=st.sampled_from(["unstructured", "block"]), operand=st.sampled_from(["a", "b"]),
       dataflow=st.sampled_from(["os", "ws", "is"]), fmt=st.sampled_from(["dense", "csr", "csc"]))
def test_lower_density_never_raises_cycles_when_skipping(shape, d1, d2, pattern, operand,
                                                         dataflow, fmt):
    lo, hi = sorted((d1, d2))

    def cycles(d):
        chip = sparse_chip(32, 32, dataflow, operand=operand, pattern=pattern, density=d,
                           format=fmt, action="skip")
        return simulate_gemm(chip, shape=shape).totals()["total_cycles"]
    assert cycles(lo) <= cycles(hi)


@settings(max_examples=60)
@given(name=chips, shape=big, d1=st.floats(0.01, 1.0), d2=st.floats(0.01, 1.0),
       operand=st.sampled_from(["a", "b"]), fmt=st.sampled_from(["dense", "csr", "csc"]))
def test_lower_density_never_raises_energy_when_gating(name, shape, d1, d2, operand, fmt):
    lo, hi = sorted((d1, d2))

    def energy(d):
        chip = load_chip(CONFIGS / f"{name}.yaml", {
            "sparsity.operand": operand, "sparsity.pattern": "unstructured",
            "sparsity.density": d, "sparsity.format": fmt, "sparsity.action": "gate"})
        t = simulate_gemm(chip, shape=shape).totals()
        return t["energy_pj"]["total"], t["total_cycles"]
    (e_lo, c_lo), (e_hi, c_hi) = energy(lo), energy(hi)
    assert c_lo == c_hi
    assert e_lo <= e_hi * (1 + 1e-12)


def test_compressed_bytes_reach_dram():
    # unbounded buffers: B is read from DRAM once, compressed (values + 2 index bits per slot)
    m, n, k = 64, 48, 80
    dense = simulate_gemm(sparse_chip(), shape=(m, n, k)).totals()["traffic_bytes"]["dram"]
    chip = sparse_chip(operand="b", n=2, m=4, format="nm")
    t = simulate_gemm(chip, shape=(m, n, k)).totals()
    assert t["traffic_bytes"]["dram"]["b_read"] == (k // 2) * n + (k // 2) * n * 2 // 8
    assert t["traffic_bytes"]["dram"]["a_read"] == dense["a_read"]  # A still read in full
    assert t["events"]["macs"] == m * n * (k // 2)


@given(k=st.integers(1, 60), lanes=st.integers(1, 20), n=st.integers(1, 8), m=st.integers(1, 8),
       shared=st.booleans(), seed=st.integers(0, 2**31))
def test_prune_nm_keeps_the_largest_n_of_each_group(k, lanes, n, m, shared, seed):
    n = min(n, m)
    x = np.random.default_rng(seed).permutation(k * lanes).reshape(k, lanes) + 1
    p = prune_nm(x, n, m, axis=0, shared=shared)
    for g in range(0, k, m):
        grp, pg = x[g:g + m], p[g:g + m]
        assert (np.count_nonzero(pg, axis=0) == min(n, grp.shape[0])).all()
        if not shared:  # the kept ones are the n largest in every lane
            assert (np.sort(pg, axis=0)[-min(n, grp.shape[0]):] ==
                    np.sort(grp, axis=0)[-min(n, grp.shape[0]):]).all()
    if shared:
        assert ((p != 0) == (p[:, :1] != 0)).all()
    assert np.array_equal(prune_nm(x.T, n, m, axis=1, shared=shared), p.T)


def test_prune_unstructured_density():
    x = np.arange(1, 101).reshape(10, 10)
    assert np.count_nonzero(prune_unstructured(x, 0.3, shared=False)) == 30
    assert np.count_nonzero(prune_unstructured(x, 0.3, shared=True)) == 30  # 3 whole K rows


def test_cli_prune(tmp_path, capsys):
    src = tmp_path / "w.npy"
    np.save(src, np.random.default_rng(0).standard_normal((16, 8)))
    assert main(["prune", str(src), str(tmp_path / "p.npy"), "--nm", "2:4"]) == 0
    p = np.load(tmp_path / "p.npy")
    assert np.count_nonzero(p) == 8 * 8
    assert main(["prune", str(src), str(tmp_path / "p.npy"), "--nm", "5:4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "N <= M" in err


@pytest.mark.parametrize("text, line, field", [
    ("sparsity:\n  operand: b\n  n: 5\n  m: 4\n", 3, "sparsity.n: N must be <= M"),
    ("sparsity:\n  operand: b\n  density: 0\n", 3, "sparsity.density: must be a positive"),
    ("sparsity:\n  operand: b\n  density: 1.5\n", 3, "sparsity.density: must be <= 1"),
    ("sparsity:\n  operand: c\n", 2, "sparsity.operand: must be one of none, a, b"),
    ("sparsity:\n  operand: a\n  pattern: unstructured\n  format: nm\n", 4,
     "sparsity.format: nm stores N:M groups"),
])
def test_bad_sparsity_is_one_line_with_file_and_line(capsys, tmp_path, text, line, field):
    p = write(tmp_path, text)
    code = main(["run", str(p), "--gemm", "4x4x4"])
    out = capsys.readouterr()
    assert code == 2 and out.out == ""
    assert out.err.startswith(f"{p}:{line}: {field}"), out.err
    assert out.err.count("\n") == 1
