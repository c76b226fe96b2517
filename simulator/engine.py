"""Running workloads on a chip: timing and, given operands, the values the array computes.

``engine="fast"`` uses the O(1) cycle model (``_timing``) and, in functional mode, the ordered
tile kernels (``_numerics``); ``engine="reference"`` moves every operand through every PE
register (``_pe_array``) and reports the cycles it counted. Both give the same cycles and
bit-identical values; the tests hold them to it.
"""

from __future__ import annotations

import numpy as np

from . import _memory, _numerics, _pe_array
from .chip import Chip
from .dataflow import check_gemm_shape, map_gemm
from .energy import energy_breakdown
from .errors import WorkloadError
from .memory import MemoryResult, TilePlan, numerics_chunk, run_gemm_memory
from .numerics import adder_for, output_dtype, prepare_operand, value_dtype
from .report import OpReport, Report

__all__ = ["ENGINES", "gemm_op", "reference_pe_cycles", "simulate_gemm", "simulate_gemms"]

ENGINES = ("fast", "reference")


def reference_pe_cycles(chip: Chip, m: int, n: int, k: int) -> int:
    """Return the PE-cycles (PEs x compute cycles) the reference engine would simulate."""
    return run_gemm_memory(chip, m, n, k).compute_cycles * chip.pes


def _functional_fast(chip: Chip, a: np.ndarray, b: np.ndarray,
                     plan: TilePlan) -> tuple[np.ndarray, int]:
    mode, lo, hi, span = adder_for(chip)
    out = np.zeros((a.shape[0], b.shape[1]), value_dtype(chip.dtype))
    chunk = numerics_chunk(chip, a.shape[1], plan.tile_k)
    overflows = _numerics._gemm_ordered(a, b, out, chunk, mode, lo, hi, span)
    return out, int(overflows)


def _reference_block(chip: Chip, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> tuple[int, int, int]:
    """Run one array's sub-GEMM PE by PE, adding into ``out`` (a view); return
    (cycles, last_output_cycle, overflows)."""
    arr = chip.array
    mode, lo, hi, span = adder_for(chip)
    full = arr.fill_drain == "full"
    if arr.dataflow == "os":
        return _pe_array._os_reference(a, b, arr.rows, arr.cols, full, mode, lo, hi, span, out)
    if arr.dataflow == "ws":
        return _pe_array._ws_reference(a, b, arr.rows, arr.cols, full, arr.preload_overlap,
                                       mode, lo, hi, span, out)
    # is: A is stationary; the same array computes O^T = B^T A^T with B^T streamed
    out_t = np.ascontiguousarray(out.T)
    res = _pe_array._ws_reference(np.ascontiguousarray(b.T), np.ascontiguousarray(a.T),
                                  arr.rows, arr.cols, full, arr.preload_overlap, mode, lo, hi,
                                  span, out_t)
    out[...] = out_t.T
    return res


def _reference(chip: Chip, a: np.ndarray, b: np.ndarray,
               plan: TilePlan) -> tuple[np.ndarray, int, int, int]:
    """Run every tile step's sub-GEMM on every array PE by PE, in the plan's loop order.

    Return (output, compute cycles, last output cycle, overflows); a step lasts as long as its
    slowest array, and steps follow each other.
    """
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), value_dtype(chip.dtype))
    trips = {"m": -(-m // plan.tile_m), "n": -(-n // plan.tile_n), "k": -(-k // plan.tile_k)}
    tile = {"m": plan.tile_m, "n": plan.tile_n, "k": plan.tile_k}
    count = chip.array.count
    cycles = 0
    last = -1
    overflows = 0
    for idx in np.ndindex(*(trips[d] for d in plan.loop_order)):
        pos = dict(zip(plan.loop_order, idx))
        lo_ = {d: pos[d] * tile[d] for d in "mnk"}
        hi_ = {d: min(lo_[d] + tile[d], {"m": m, "n": n, "k": k}[d]) for d in "mnk"}
        size = hi_[plan.split] - lo_[plan.split]
        q, rem = divmod(size, count)
        step = 0
        start = lo_[plan.split]
        for i in range(count):
            share = q + (1 if i < rem else 0)
            if share == 0:
                continue
            rng = {d: (lo_[d], hi_[d]) for d in "mnk"}
            rng[plan.split] = (start, start + share)
            start += share
            (m0, m1), (n0, n1), (k0, k1) = rng["m"], rng["n"], rng["k"]
            c, lst, ovf = _reference_block(chip, np.ascontiguousarray(a[m0:m1, k0:k1]),
                                           np.ascontiguousarray(b[k0:k1, n0:n1]),
                                           out[m0:m1, n0:n1])
            overflows += ovf
            step = max(step, c)
            last = max(last, cycles + lst)
        cycles += step
    return out, cycles, last, overflows


def _op_report(chip: Chip, name: str, kind: str, shape: tuple[int, ...], macs: int, folds: int,
               mem: MemoryResult, compute_cycles: int, start_cycle: int,
               overflows: int | None) -> OpReport:
    total = compute_cycles + mem.stall_cycles
    events = {"macs": macs, "pe_hop_bytes": mem.pe_hop_bytes,
              "buffer_read_bytes": mem.buffer_read_bytes,
              "buffer_write_bytes": mem.buffer_write_bytes, "dram_bytes": mem.dram_bytes,
              "vector_lane_ops": 0}
    energy = energy_breakdown(chip, events, total / chip.clock_hz)
    return OpReport(name=name, kind=kind, unit="array", shape=shape,
                    dataflow=chip.array.dataflow, pes=chip.pes, compute_cycles=compute_cycles,
                    stall_cycles=mem.stall_cycles, macs=macs, folds=folds,
                    busy_pe_cycles=mem.busy_pe_cycles, start_cycle=start_cycle,
                    overflow_events=overflows, events=events, energy_pj=energy,
                    traffic_bytes=mem.traffic(), tiling=mem.plan.to_dict(),
                    memory_bound=mem.memory_bound)


def gemm_op(chip: Chip, m: int, n: int, k: int, name: str = "gemm", kind: str = "gemm",
            start_cycle: int = 0) -> OpReport:
    """Return the timing-only OpReport of an m x n x k GEMM (memory model and energy included)."""
    m, n, k = check_gemm_shape(m, n, k, name)
    mem = run_gemm_memory(chip, m, n, k)
    mapping = map_gemm(chip.array, m, n, k)
    return _op_report(chip, name, kind, (m, n, k), mapping.macs, mapping.folds, mem,
                      mem.compute_cycles, start_cycle, None)


def simulate_gemms(chip: Chip, shapes: list[tuple[str, int, int, int]]) -> Report:
    """Time a list of (name, M, N, K) GEMMs run one after another; return one Report (timing)."""
    ops = []
    start = 0
    for name, m, n, k in shapes:
        op = gemm_op(chip, m, n, k, name=name, start_cycle=start)
        ops.append(op)
        start = op.end_cycle
    if not ops:
        raise WorkloadError("workload", "layers", "no layers to simulate")
    return Report(chip=chip, ops=ops, engine="fast", mode="timing")


def simulate_gemm(chip: Chip, shape: tuple[int, int, int] | None = None, a: object = None,
                  b: object = None, engine: str = "fast", name: str = "gemm") -> Report:
    """Simulate ``O = A @ B`` on ``chip`` and return its Report.

    Timing only: pass ``shape=(M, N, K)``; ``report.output`` is None. Functional: pass operands
    ``a`` (M x K) and ``b`` (K x N); ``report.output`` holds O as the array computes it (int32 for
    int8 chips, float32 otherwise). ``engine="reference"`` runs the PE-level reference (operands
    required): its compute cycles are the ones it counted, and memory stalls come from the
    memory model. Raises WorkloadError on a bad shape or operands.
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

    mem = run_gemm_memory(chip, m, n, k)
    mapping = map_gemm(chip.array, m, n, k)
    compute = mem.compute_cycles
    output = None
    overflows = None
    last_output = None
    if functional and engine == "fast":
        out, overflows = _functional_fast(chip, a, b, mem.plan)
        output = out.astype(output_dtype(chip.dtype), copy=False)
    elif functional:
        out, compute, last_output, overflows = _reference(chip, a, b, mem.plan)
        output = out.astype(output_dtype(chip.dtype), copy=False)
    if chip.dtype != "int8":
        overflows = None
    op = _op_report(chip, name, "gemm", (m, n, k), mapping.macs, mapping.folds, mem, compute,
                    0, overflows)
    return Report(chip=chip, ops=[op], engine=engine,
                  mode="functional" if functional else "timing", output=output,
                  last_output_cycle=last_output)
