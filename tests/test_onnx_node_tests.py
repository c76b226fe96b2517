"""A slice of ONNX's own node tests (``onnx.backend.test.case.node``) through the ONNX
importer on an fp32 chip, as benchmarks/bench_onnx_node_tests.py runs all 1,884 of them: no
case may compute a wrong value or end in a traceback, and the slice's passes may not drop."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

pytest.importorskip("onnx")

from conftest import ROOT  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_onnx_node_tests",
                                               ROOT / "benchmarks" / "bench_onnx_node_tests.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_onnx_node_tests"] = bench
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def slice_rows():
    cases = bench.collect(names=bench.SLICE)
    assert len(cases) == len(bench.SLICE)  # every named case exists in this onnx
    return bench.run_all(cases)


def test_slice_has_no_wrong_value_and_no_traceback(slice_rows):
    bad = [r for r in slice_rows if r[2] in ("wrong", "traceback")]
    assert not bad, bad


def test_slice_pass_count_does_not_drop(slice_rows):
    passed = sum(r[2] == "pass" for r in slice_rows)
    assert passed >= bench.SLICE_MIN_PASS, [r for r in slice_rows if r[2] != "pass"]


def test_refusals_are_one_line(slice_rows):
    refused = [r for r in slice_rows if r[2] == "refused"]
    assert refused  # the slice holds cases the engine does not model (strings, bfloat16)
    assert all("\n" not in r[3].strip() and r[3] for r in refused)


def test_a_wrong_value_is_counted_as_wrong():
    # the comparison the benchmark makes: integers exactly, floats within the case's rtol
    assert bench._matches(np.array([3, -3]), np.array([3, -4], np.int32), 1e-3, 1e-7)
    assert bench._matches(np.array([1.0]), np.array([1.01], np.float32), 1e-3, 1e-7)
    assert bench._matches(np.array([1.0005]), np.array([1.0], np.float32), 1e-3, 1e-7) is None
    assert bench._matches(np.zeros((1,)), np.zeros((), np.float32), 1e-3, 1e-7) is None
    assert bench._matches(np.zeros((2,)), np.zeros((1, 2), np.float32), 1e-3, 1e-7)
