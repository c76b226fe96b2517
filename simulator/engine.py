"""Running workloads on a chip: timing and, given operands, the values the array computes.

``engine="fast"`` uses the O(1) cycle model (``_timing``) and, in functional mode, the ordered
tile kernels (``_numerics``); ``engine="reference"`` moves every operand through every PE
register (``_pe_array``) and reports the cycles it counted. Both give the same cycles and
bit-identical values; the tests hold them to it.
"""

from __future__ import annotations

import numpy as np

from . import _numerics, _pe_array, _timing
from .chip import Chip
from .dataflow import GemmMapping, check_gemm_shape, map_gemm
from .errors import WorkloadError
from .numerics import adder_for, output_dtype, prepare_operand, value_dtype
from .report import OpReport, Report

__all__ = ["ENGINES", "gemm_timing", "reference_pe_cycles", "simulate_gemm"]

ENGINES = ("fast", "reference")


def gemm_timing(chip: Chip, mapping: GemmMapping) -> tuple[int, int]:
    """Return (compute cycles, busy PE-cycles) of a mapped GEMM from the O(1) cycle model."""
    arr = chip.array
    cycles, busy, _folds = _timing._gemm_cycles(
        mapping.stream_len, mapping.outer_size, mapping.outer_tile, mapping.inner_size,
        mapping.inner_tile, mapping.rows_from_outer, arr.rows, arr.cols,
        arr.fill_drain == "full", mapping.has_stationary_load, arr.preload_overlap)
    return int(cycles), int(busy)


def reference_pe_cycles(chip: Chip, m: int, n: int, k: int) -> int:
    """Return the PE-cycles (PEs x cycles) the reference engine would simulate for this GEMM."""
    cycles, _ = gemm_timing(chip, map_gemm(chip.array, m, n, k))
    return cycles * chip.array.pes


def _functional_fast(chip: Chip, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    mode, lo, hi, span = adder_for(chip)
    out = np.zeros((a.shape[0], b.shape[1]), value_dtype(chip.dtype))
    chunk = a.shape[1] if chip.array.dataflow == "os" else chip.array.rows
    overflows = _numerics._gemm_ordered(a, b, out, chunk, mode, lo, hi, span)
    return out, int(overflows)


def _reference(chip: Chip, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    """Return (output, cycles, last_output_cycle, overflows) from the PE-level reference."""
    arr = chip.array
    mode, lo, hi, span = adder_for(chip)
    full = arr.fill_drain == "full"
    m, n = a.shape[0], b.shape[1]
    if arr.dataflow == "os":
        out = np.zeros((m, n), value_dtype(chip.dtype))
        cycles, last, ovf = _pe_array._os_reference(a, b, arr.rows, arr.cols, full, mode, lo, hi,
                                                    span, out)
    elif arr.dataflow == "ws":
        out = np.zeros((m, n), value_dtype(chip.dtype))
        cycles, last, ovf = _pe_array._ws_reference(a, b, arr.rows, arr.cols, full,
                                                    arr.preload_overlap, mode, lo, hi, span, out)
    else:  # is: A is stationary; the same array computes O^T = B^T A^T with B^T streamed
        out_t = np.zeros((n, m), value_dtype(chip.dtype))
        cycles, last, ovf = _pe_array._ws_reference(
            np.ascontiguousarray(b.T), np.ascontiguousarray(a.T), arr.rows, arr.cols, full,
            arr.preload_overlap, mode, lo, hi, span, out_t)
        out = np.ascontiguousarray(out_t.T)
    return out, int(cycles), int(last), int(ovf)


def simulate_gemm(chip: Chip, shape: tuple[int, int, int] | None = None, a: object = None,
                  b: object = None, engine: str = "fast", name: str = "gemm") -> Report:
    """Simulate ``O = A @ B`` on ``chip`` and return its Report.

    Timing only: pass ``shape=(M, N, K)``; ``report.output`` is None. Functional: pass operands
    ``a`` (M x K) and ``b`` (K x N); ``report.output`` holds O as the array computes it (int32 for
    int8 chips, float32 otherwise). ``engine="reference"`` runs the PE-level reference (operands
    required). Raises WorkloadError on a bad shape or operands.
    """
    if engine not in ENGINES:
        raise WorkloadError("engine", "engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    functional = a is not None or b is not None
    if functional:
        if a is None or b is None:
            raise WorkloadError("operands", "a" if a is None else "b",
                                "functional mode needs both operands a and b")
        a = prepare_operand(a, chip.dtype, "a")
        b = prepare_operand(b, chip.dtype, "b")
        if a.shape[1] != b.shape[0]:
            raise WorkloadError("operands", "b", f"inner dimensions differ: a is {a.shape[0]}x"
                                f"{a.shape[1]} but b is {b.shape[0]}x{b.shape[1]}")
        m, k = a.shape
        n = b.shape[1]
        if shape is not None and tuple(shape) != (m, n, k):
            raise WorkloadError("operands", "shape", f"shape {tuple(shape)} disagrees with the "
                                f"operands' (M, N, K) = {(m, n, k)}")
    else:
        if shape is None:
            raise WorkloadError("gemm", "shape", "give shape=(M, N, K) or operands a and b")
        if engine == "reference":
            raise WorkloadError("engine", "engine", "the reference engine needs operands "
                                "(it computes values); use the fast engine for timing only")
        try:
            m, n, k = shape
        except (TypeError, ValueError):
            raise WorkloadError("gemm", "shape", f"must be (M, N, K), got {shape!r}") from None
        m, n, k = check_gemm_shape(m, n, k)

    mapping = map_gemm(chip.array, m, n, k)
    cycles, busy = gemm_timing(chip, mapping)
    output = None
    overflows = None
    last_output = None
    if functional and engine == "fast":
        out, overflows = _functional_fast(chip, a, b)
        output = out.astype(output_dtype(chip.dtype), copy=False)
    elif functional:
        out, ref_cycles, last_output, overflows = _reference(chip, a, b)
        output = out.astype(output_dtype(chip.dtype), copy=False)
        cycles = ref_cycles  # the reference's own count; tests hold it equal to the model's
    if overflows is not None and chip.dtype != "int8":
        overflows = None
    op = OpReport(name=name, kind="gemm", unit="array", shape=(m, n, k),
                  dataflow=chip.array.dataflow, pes=chip.array.pes, compute_cycles=cycles,
                  stall_cycles=0, macs=mapping.macs, folds=mapping.folds, busy_pe_cycles=busy,
                  overflow_events=overflows)
    return Report(chip=chip, ops=[op], engine=engine,
                  mode="functional" if functional else "timing", output=output,
                  last_output_cycle=last_output)
