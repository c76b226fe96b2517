"""Running workloads on a chip: timing and, given operands, the values the array computes.

``engine="fast"`` uses the O(1) cycle model (``_timing``) and, in functional mode, the ordered
tile kernels (``_numerics``); ``engine="reference"`` moves every operand through every PE
register (``_pe_array``) and reports the cycles it counted. Both give the same cycles and
bit-identical values; the tests hold them to it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .chip import Chip
from .dataflow import check_gemm_shape, map_gemm
from .energy import energy_breakdown
from .errors import Interrupted, WorkloadError
from .memory import MemoryResult, TilePlan, numerics_chunk, run_gemm_memory, streams
from .numerics import adder_for, output_dtype, prepare_operand, value_dtype
from .program import MatMul, Op, Program, Reduce
from .report import OpReport, Report
from .sparse_gemm import plan_sparse_gemm
from .vector import elementwise_values, reduce_sum_values, reduction_cycles, vector_cycles

__all__ = ["ENGINES", "gemm_op", "reference_pe_cycles", "run", "simulate_gemm", "simulate_gemms"]

ENGINES = ("fast", "reference")


def reference_pe_cycles(chip: Chip, m: int, n: int, k: int) -> int:
    """Return the PE-cycles (PEs x compute cycles) the reference engine would simulate."""
    return run_gemm_memory(chip, m, n, k).compute_cycles * chip.pes


def _functional_fast(chip: Chip, a: np.ndarray, b: np.ndarray,
                     plan: TilePlan) -> tuple[np.ndarray, int]:
    from . import _numerics  # numba: imported where it runs, not on a timing-only start
    mode, lo, hi, span = adder_for(chip)
    out = np.zeros((a.shape[0], b.shape[1]), value_dtype(chip.dtype))
    chunk = numerics_chunk(chip, a.shape[0], b.shape[1], a.shape[1], plan)
    overflows = _numerics._gemm_ordered(a, b, out, chunk, mode, lo, hi, span)
    return out, int(overflows)


def _reference_block(chip: Chip, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> tuple[int, int, int]:
    """Run one array's sub-GEMM PE by PE, adding into ``out`` (a view); return
    (cycles, last_output_cycle, overflows)."""
    from . import _pe_array  # numba: imported where it runs, not on a timing-only start
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


def _array_blocks(chip: Chip, plan: TilePlan, ranges: dict[str, tuple[int, int]]) -> list[list]:
    """Return, per array, the (m, n, k) ranges of the sub-GEMMs it runs in one tile step."""
    count = chip.array.count
    if plan.split == "tiles":
        arr = chip.array
        (m0, m1), (n0, n1) = ranges["m"], ranges["n"]
        blocks: list[list] = [[] for _ in range(count)]
        t = 0
        for i in range(m0, m1, arr.split_tile_m):
            for j in range(n0, n1, arr.split_tile_n):
                blocks[t % count].append({"m": (i, min(i + arr.split_tile_m, m1)),
                                          "n": (j, min(j + arr.split_tile_n, n1)),
                                          "k": ranges["k"]})
                t += 1
        return blocks
    lo, hi = ranges[plan.split]
    q, rem = divmod(hi - lo, count)
    blocks = []
    start = lo
    for i in range(count):
        share = q + (1 if i < rem else 0)
        rng = dict(ranges)
        rng[plan.split] = (start, start + share)
        start += share
        blocks.append([rng] if share else [])
    return blocks


# the streamed dimension and the stationary tile's dimensions of each dataflow
_STREAMED = {"os": "k", "ws": "m", "is": "n"}


def _reference_run(chip: Chip, a: np.ndarray, b: np.ndarray, out: np.ndarray,
                   blocks: list[dict[str, tuple[int, int]]]) -> tuple[int, int, int]:
    """Run one array's blocks of consecutive tile steps that keep its stationary tile as ONE
    stream: the streamed operand's slices are concatenated along the streamed dimension and go
    through the PE array without a restart. Return (cycles, last_output_cycle, overflows)."""
    if len(blocks) == 1:
        (m0, m1), (n0, n1), (k0, k1) = blocks[0]["m"], blocks[0]["n"], blocks[0]["k"]
        return _reference_block(chip, np.ascontiguousarray(a[m0:m1, k0:k1]),
                                np.ascontiguousarray(b[k0:k1, n0:n1]), out[m0:m1, n0:n1])
    dim = _STREAMED[chip.array.dataflow]
    idx = np.concatenate([np.arange(*blk[dim]) for blk in blocks])
    (m0, m1), (n0, n1), (k0, k1) = blocks[0]["m"], blocks[0]["n"], blocks[0]["k"]
    if dim == "k":  # os: the O tile stays; K streams on
        return _reference_block(chip, np.ascontiguousarray(a[m0:m1][:, idx]),
                                np.ascontiguousarray(b[idx][:, n0:n1]), out[m0:m1, n0:n1])
    if dim == "m":  # ws: the B tile stays; rows of A stream on
        part = np.ascontiguousarray(out[idx, n0:n1])
        res = _reference_block(chip, np.ascontiguousarray(a[idx, k0:k1]),
                               np.ascontiguousarray(b[k0:k1, n0:n1]), part)
        out[idx, n0:n1] = part
        return res
    part = np.ascontiguousarray(out[m0:m1][:, idx])  # is: the A tile stays; columns of B
    res = _reference_block(chip, np.ascontiguousarray(a[m0:m1, k0:k1]),
                           np.ascontiguousarray(b[k0:k1][:, idx]), part)
    out[m0:m1, idx] = part
    return res


def _reference(chip: Chip, a: np.ndarray, b: np.ndarray,
               plan: TilePlan) -> tuple[np.ndarray, int, int, int]:
    """Run every tile step's sub-GEMMs on every array PE by PE, in the plan's loop order.

    Return (output, compute cycles, last output cycle, overflows); a step lasts as long as its
    slowest array (which runs its blocks one after another), and steps follow each other.
    Where the plan streams (``memory.streams``), the steps that keep a stationary tile form a
    run that each array executes as one uninterrupted stream (``_reference_run``); a run lasts
    as long as its slowest array.
    """
    m, k = a.shape
    n = b.shape[1]
    dims = {"m": m, "n": n, "k": k}
    out = np.zeros((m, n), value_dtype(chip.dtype))
    tile = {"m": plan.tile_m, "n": plan.tile_n, "k": plan.tile_k}
    trips = {d: -(-dims[d] // tile[d]) for d in "mnk"}
    stationary = [d for d in "mnk" if d != _STREAMED[chip.array.dataflow]]
    stream = streams(chip, m, n, k, plan)
    runs: list[list[dict]] = []  # runs of tile steps (ranges); a run keeps its stationary tile
    prev = None
    for idx in np.ndindex(*(trips[d] for d in plan.loop_order)):
        pos = dict(zip(plan.loop_order, idx))
        ranges = {d: (pos[d] * tile[d], min((pos[d] + 1) * tile[d], dims[d])) for d in "mnk"}
        key = tuple(pos[d] for d in stationary)
        if stream and key == prev:
            runs[-1].append(ranges)
        else:
            runs.append([ranges])
        prev = key
    cycles = 0
    last = -1
    overflows = 0
    for run in runs:
        per_step = [_array_blocks(chip, plan, ranges) for ranges in run]
        step = 0
        for i in range(chip.array.count):
            if len(run) > 1:  # streaming splits give each array at most one block per step
                blocks = [[blk for st in per_step for blk in st[i]]]
            else:
                blocks = [[blk] for blk in per_step[0][i]]
            busy = 0
            for group in blocks:
                if not group:
                    continue
                c, lst, ovf = _reference_run(chip, a, b, out, group)
                overflows += ovf
                last = max(last, cycles + busy + lst)
                busy += c
            step = max(step, busy)
        cycles += step
    return out, cycles, last, overflows


def _op_report(chip: Chip, name: str, kind: str, shape: tuple[int, ...], macs: int, folds: int,
               mem: MemoryResult, compute_cycles: int, start_cycle: int,
               overflows: int | None) -> OpReport:
    total = compute_cycles + mem.stall_cycles + chip.launch_cycles
    events = {"macs": macs, "pe_hop_bytes": mem.pe_hop_bytes,
              "buffer_read_bytes": mem.buffer_read_bytes,
              "buffer_write_bytes": mem.buffer_write_bytes, "dram_bytes": mem.dram_bytes,
              "vector_lane_ops": 0, **mem.buffer_events()}
    energy = energy_breakdown(chip, events, total / chip.clock_hz)
    return OpReport(name=name, kind=kind, unit="array", shape=shape,
                    dataflow=chip.array.dataflow, pes=chip.pes, compute_cycles=compute_cycles,
                    stall_cycles=mem.stall_cycles, macs=macs, folds=folds,
                    busy_pe_cycles=mem.busy_pe_cycles, start_cycle=start_cycle,
                    overhead_cycles=chip.launch_cycles,
                    overflow_events=overflows, events=events, energy_pj=energy,
                    traffic_bytes=mem.traffic(), tiling=mem.plan.to_dict(),
                    memory_bound=mem.memory_bound, prefetch_cycles=mem.prefetch_cycles,
                    drain_cycles=mem.drain_cycles)


def gemm_op(chip: Chip, m: int, n: int, k: int, name: str = "gemm", kind: str = "gemm",
            start_cycle: int = 0) -> OpReport:
    """Return the timing-only OpReport of an m x n x k GEMM (memory model and energy included)."""
    m, n, k = check_gemm_shape(m, n, k, name)
    sg = plan_sparse_gemm(chip, m, n, k)  # the dense run unless chip.sparsity says otherwise
    return _op_report(chip, name, kind, (m, n, k), sg.macs,
                      map_gemm(chip.array, m, n, sg.k_run).folds, sg.mem,
                      sg.mem.compute_cycles, start_cycle, None)


def simulate_gemms(chip: Chip, shapes: list[tuple[str, int, int, int]]) -> Report:
    """Time a list of (name, M, N, K) GEMMs run one after another; return one Report (timing).

    Raises Interrupted on Ctrl-C, saying how many layers were done."""
    ops = []
    start = 0
    seen: dict[tuple[int, int, int], OpReport] = {}  # networks repeat layer shapes
    try:
        for name, m, n, k in shapes:
            first = seen.get((m, n, k))
            if first is None:
                op = seen[(m, n, k)] = gemm_op(chip, m, n, k, name=name, start_cycle=start)
            else:
                op = dataclasses.replace(first, name=name, start_cycle=start)
            ops.append(op)
            start = op.end_cycle
    except KeyboardInterrupt:
        raise Interrupted(f"{len(ops)} of {len(shapes)} layers simulated") from None
    if not ops:
        raise WorkloadError("workload", "layers", "no layers to simulate")
    return Report(chip=chip, ops=ops, engine="fast", mode="timing")


def _matmul_values(chip: Chip, a: np.ndarray, b: np.ndarray, plan: TilePlan,
                   engine: str) -> tuple[np.ndarray, int | None, int | None, int | None]:
    """Return (O, reference compute cycles or None, last output cycle or None, overflows)."""
    if engine == "fast":
        out, overflows = _functional_fast(chip, a, b, plan)
        return out.astype(output_dtype(chip.dtype), copy=False), None, None, overflows
    out, cycles, last, overflows = _reference(chip, a, b, plan)
    return out.astype(output_dtype(chip.dtype), copy=False), cycles, last, overflows


def _vector_op(chip: Chip, program: Program, op: Op, start: int) -> tuple[OpReport, int]:
    unit = chip.vector
    in_elems = sum(program.shapes[t][0] * program.shapes[t][1] for t in op.inputs)
    rows, cols = program.shapes[op.output]
    out_elems = rows * cols
    if isinstance(op, Reduce):
        src_rows, src_cols = program.shapes[op.inputs[0]]
        group = {None: src_rows * src_cols, 0: src_rows, 1: src_cols}[op.axis]
        n = src_rows * src_cols
        cycles = reduction_cycles(unit, n, group)
        kind = "vector.reduce_sum"
    else:
        n = out_elems
        cycles = vector_cycles(unit, op.op_class, n)
        kind = f"vector.{op.kind}"
    events = {"macs": 0, "pe_hop_bytes": 0, "buffer_read_bytes": 4 * in_elems,
              "buffer_write_bytes": 4 * out_elems, "dram_bytes": 0, "vector_lane_ops": n}
    energy = energy_breakdown(chip, events, (cycles + chip.launch_cycles) / chip.clock_hz)
    return OpReport(name=op.name, kind=kind, unit="vector", shape=(rows, cols), dataflow="-",
                    pes=chip.pes, compute_cycles=cycles, stall_cycles=0, macs=0, folds=0,
                    busy_pe_cycles=0, start_cycle=start, overhead_cycles=chip.launch_cycles,
                    events=events, energy_pj=energy), n


def run(chip: Chip, program: Program, inputs: dict[str, object] | None = None,
        engine: str = "fast") -> Report:
    """Run ``program`` on ``chip``: schedule every op and, given ``inputs``, compute values.

    An op starts when its input tensors are ready and its unit (array or vector) is free, so the
    units overlap where the DAG allows. Returns a Report with one row per op (start and end
    cycle, cycles, MACs or lane-ops, energy); ``report.values`` maps every tensor to its value
    in functional mode, and ``report.output`` is the last op's output. Raises WorkloadError.
    """
    if engine not in ENGINES:
        raise WorkloadError("engine", "engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    if not program.ops:
        raise WorkloadError(f"program {program.name}", "ops", "the program has no ops")
    functional = inputs is not None
    env: dict[str, np.ndarray] = {}
    if functional:
        missing = [t for t in program.inputs if t not in inputs]
        if missing:
            raise WorkloadError(f"program {program.name}", missing[0], "input not given")
        for t in program.inputs:
            env[t] = inputs[t]
    elif engine == "reference":
        raise WorkloadError("engine", "engine", "the reference engine needs operands "
                            "(it computes values); use the fast engine for timing only")
    ready = {t: 0 for t in program.inputs}
    unit_free = {"array": 0, "vector": 0}
    ops: list[OpReport] = []
    last_output = None
    for op in program.ops:
        start = max([ready[t] for t in op.inputs] + [unit_free[op.unit]])
        if isinstance(op, MatMul):
            m, n, k = program.gemm_shape(op)
            a = b = None
            if functional:
                a = np.asarray(env[op.inputs[0]])
                b = np.asarray(env[op.inputs[1]])
                a = prepare_operand(a.T if op.transpose_a else a, chip.dtype, op.inputs[0])
                b = prepare_operand(b.T if op.transpose_b else b, chip.dtype, op.inputs[1])
            sg = plan_sparse_gemm(chip, m, n, k, a, b)  # dense unless chip.sparsity is set
            mem = sg.mem
            compute, overflows = mem.compute_cycles, None
            if functional:
                if sg.kept is not None:  # skip: the array streams only the kept K steps
                    a = np.ascontiguousarray(a[:, sg.kept])
                    b = np.ascontiguousarray(b[sg.kept, :])
                env[op.output], ref_cycles, last, overflows = _matmul_values(
                    chip, a, b, mem.plan, engine)
                if ref_cycles is not None:
                    compute = ref_cycles
                    last_output = start + last
                if chip.dtype != "int8":
                    overflows = None
            rep = _op_report(chip, op.name, "matmul" if len(program.ops) > 1 else "gemm",
                             (m, n, k), sg.macs, map_gemm(chip.array, m, n, sg.k_run).folds,
                             mem, compute, start, overflows)
        else:
            rep, _lane_ops = _vector_op(chip, program, op, start)
            if functional:
                args = [env[t] for t in op.inputs]
                if isinstance(op, Reduce):
                    env[op.output] = reduce_sum_values(args[0], op.axis, chip.vector.lanes)
                else:
                    env[op.output] = elementwise_values(op.kind, args, op.const)
        ops.append(rep)
        unit_free[op.unit] = rep.end_cycle
        ready[op.output] = rep.end_cycle
    output = env.get(program.ops[-1].output) if functional else None
    return Report(chip=chip, ops=ops, engine=engine,
                  mode="functional" if functional else "timing", output=output,
                  last_output_cycle=last_output, values=env if functional else None)


def simulate_gemm(chip: Chip, shape: tuple[int, int, int] | None = None, a: object = None,
                  b: object = None, engine: str = "fast", name: str = "gemm") -> Report:
    """Simulate ``O = A @ B`` on ``chip`` and return its Report (a one-op Program under run).

    Timing only: pass ``shape=(M, N, K)``; ``report.output`` is None. Functional: pass operands
    ``a`` (M x K) and ``b`` (K x N); ``report.output`` holds O as the array computes it (int32 for
    int8 chips, float32 otherwise). ``engine="reference"`` runs the PE-level reference (operands
    required): its compute cycles are the ones it counted, and memory stalls come from the
    memory model. Raises WorkloadError on a bad shape or operands.
    """
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
        try:
            m, n, k = shape
        except (TypeError, ValueError):
            raise WorkloadError("gemm", "shape", f"must be (M, N, K), got {shape!r}") from None
        m, n, k = check_gemm_shape(m, n, k)
    program = Program(name)
    program.input("A", (m, k))
    program.input("B", (k, n))
    program.matmul(name, "A", "B", out="O")
    return run(chip, program, {"A": a, "B": b} if functional else None, engine)
