"""Running workloads on a chip: timing and, given operands, the values the array computes.

``engine="fast"`` uses the O(1) cycle model (``_timing``) and, in functional mode, the ordered
tile kernels (``_numerics``); ``engine="reference"`` moves every operand through every PE
register (``_pe_array``) and reports the cycles it counted. Both give the same cycles and
bit-identical values; the tests hold them to it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..hardware.chip import ACC_BYTES, INTEGER_FORMATS, Chip
from .conv_geometry import ConvGeometry, conv_geometry_of
from ..hardware.dataflow import check_gemm_shape, map_gemm
from ..hardware.energy import energy_breakdown
from ..errors import Interrupted, WorkloadError
from . import interruptible
from .memory import MemoryResult, TilePlan, numerics_chunk, run_gemm_memory, streams
from .grouped import (depthwise_vector_values, grouped_mapping, pack_pairs, packed_geometry,
                      runs_on_vector, unpack_outputs)
from .placement import PlacedGemms, add_results, place_gemms
from ..hardware.numerics import (INT_RANGE, adder_for, output_dtype, prepare_operand, requantise,
                                 requantise_fixed, value_dtype)
from .program import Conv2d, Elementwise, Layout, MatMul, Op, Program, Reduce, VectorOp
from .report import OpReport, Report
from .fusion import epilogue_fusion
from .residency import free_layout_ops, plan_residency, vector_narrowed
from .sparse_gemm import plan_sparse_gemm
from .vector import (VECTOR_OPS, elementwise_values, im2col_nchw, keeps_integers, passes_cycles,
                     reduce_values, requant_passes, vector_op_values)

__all__ = ["ENGINES", "dram_xfer_cycles", "gemm_op", "reference_pe_cycles", "run", "simulate_gemm", "simulate_gemms"]

ENGINES = ("fast", "reference")
# Functional GEMMs below this many MACs run on one thread: the thread pool's start-up costs more
# than the work (a host-speed setting; it changes no value: both kernels add in the same order).
PARALLEL_MIN_MACS = 1 << 22


def reference_pe_cycles(chip: Chip, m: int, n: int, k: int) -> int:
    """Return the PE-cycles (PEs x compute cycles) the reference engine would simulate."""
    return run_gemm_memory(chip, m, n, k).compute_cycles * chip.pes


def _functional_fast(chip: Chip, a: np.ndarray, b: np.ndarray,
                     plan: TilePlan) -> tuple[np.ndarray, int]:
    from . import _numerics  # numba: imported where it runs, not on a timing-only start
    mode, lo, hi, span = adder_for(chip)
    out = np.zeros((a.shape[0], b.shape[1]), value_dtype(chip.compute_dtype))
    chunk = numerics_chunk(chip, a.shape[0], b.shape[1], a.shape[1], plan)
    macs = a.shape[0] * a.shape[1] * b.shape[1]
    kernel = _numerics._gemm_ordered if macs >= PARALLEL_MIN_MACS else \
        _numerics._gemm_ordered_serial
    # a long GEMM runs off the main thread, so Ctrl-C stops it within 0.1 s
    overflows = interruptible.call(macs, kernel, a, b, out, chunk, mode, lo, hi, span,
                                   name="functional-gemm")
    return out, int(overflows)


def _reference_block(chip: Chip, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> tuple[int, int, int]:
    """Run one array's sub-GEMM PE by PE, adding into ``out`` (a view); return
    (cycles, last_output_cycle, overflows). A long one runs off the main thread
    (``interruptible``), so Ctrl-C stops it within 0.1 s."""
    from . import _pe_array  # numba: imported where it runs, not on a timing-only start
    arr = chip.array
    mode, lo, hi, span = adder_for(chip)
    full = arr.fill_drain == "full"
    work = a.shape[0] * a.shape[1] * b.shape[1]  # MACs: a lower bound of the PE-cycles
    if arr.dataflow == "os":
        kernel = _pe_array._os_pipelined if arr.fold_pipelining else _pe_array._os_reference
        return interruptible.call(work, kernel, a, b, arr.rows, arr.cols, full, mode, lo, hi,
                                  span, out, name="pe-reference")
    if arr.fold_pipelining:
        ws_kernel, overlap = _pe_array._ws_pipelined, arr.overlap_code
    else:
        ws_kernel, overlap = _pe_array._ws_reference, arr.preload_overlap
    if arr.dataflow == "ws":
        return interruptible.call(work, ws_kernel, a, b, arr.rows, arr.cols, full, overlap, mode,
                                  lo, hi, span, out, name="pe-reference")
    # is: A is stationary; the same array computes O^T = B^T A^T with B^T streamed
    out_t = np.ascontiguousarray(out.T)
    res = interruptible.call(work, ws_kernel, np.ascontiguousarray(b.T),
                             np.ascontiguousarray(a.T), arr.rows, arr.cols, full, overlap, mode,
                             lo, hi, span, out_t, name="pe-reference")
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
    out = np.zeros((m, n), value_dtype(chip.compute_dtype))
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


def requant_cost(chip: Chip, outputs: int, array_cycles: int = 0) -> tuple[int, int, int]:
    """Return (exposed cycles, vector-unit busy cycles, lane-ops) of narrowing ``outputs``
    results to output.dtype; (0, 0, 0) when results leave as accumulators.

    The vector unit requantises results as the array produces them (a pipeline beside the
    array, as TPU v1's activation unit): of its ``busy`` cycles only what the ``array_cycles``
    (compute + stall) do not cover is exposed, and at least the pass over the last results
    (one lane-group through every pass, the pipeline's drain)."""
    if not chip.narrows_output:
        return 0, 0, 0
    passes = requant_passes(chip.output_dtype, outputs)
    busy, lane_ops = passes_cycles(chip.vector, passes)
    last, _ = passes_cycles(chip.vector, requant_passes(chip.output_dtype,
                                                        min(outputs, chip.vector.lanes)))
    return max(busy - array_cycles, last), busy, lane_ops


def _op_report(chip: Chip, name: str, kind: str, shape: tuple[int, ...], macs: int, folds: int,
               mem: MemoryResult, compute_cycles: int, start_cycle: int,
               overflows: int | None, gemms: int = 1,
               placed: PlacedGemms | None = None,
               performed_macs: int | None = None) -> OpReport:
    """Return the OpReport of an array op: the memory model's counts, PE register events and,
    when output.dtype narrows the results, the requantisation pass (folded into this op,
    pipelined with the array: its exposed cycles after the array's and its busy cycles on the
    vector unit, see requant_cost; its lane-ops, its reads of the accumulators and writes of
    the narrowed results in the O buffer). ``performed_macs``: the MACs the PEs perform when
    more than the useful ``macs`` (a packed grouped conv's zeros; energy counts them)."""
    outputs = shape[0] * shape[1] * gemms
    rq_cycles, rq_busy, rq_ops = requant_cost(chip, outputs, compute_cycles + mem.stall_cycles)
    total = compute_cycles + mem.stall_cycles + chip.launch_cycles + rq_cycles
    events = {"macs": macs if performed_macs is None else performed_macs,
              "pe_hop_bytes": mem.pe_hop_bytes,
              "register_read_bytes": mem.register_read_bytes,
              "register_write_bytes": mem.register_write_bytes,
              "buffer_read_bytes": mem.buffer_read_bytes,
              "buffer_write_bytes": mem.buffer_write_bytes, "dram_bytes": mem.dram_bytes,
              "vector_lane_ops": rq_ops, **mem.buffer_events()}
    if rq_ops:
        rq_rd, rq_wr = outputs * ACC_BYTES, outputs * chip.output_bytes
        events["buffer_read_bytes"] += rq_rd
        events["buffer_o_read_bytes"] += rq_rd
        events["buffer_write_bytes"] += rq_wr
        events["buffer_o_write_bytes"] += rq_wr
    energy = energy_breakdown(chip, events, total / chip.clock_hz)
    traffic = mem.traffic()
    traffic["buffer"] = {"read": events["buffer_read_bytes"],
                         "write": events["buffer_write_bytes"]}
    return OpReport(name=name, kind=kind, unit="array", shape=shape,
                    dataflow=chip.array.dataflow, pes=chip.peak_macs_per_cycle,  # MAC slots
                    compute_cycles=compute_cycles,
                    stall_cycles=mem.stall_cycles, macs=macs, folds=folds,
                    busy_pe_cycles=mem.busy_pe_cycles, start_cycle=start_cycle,
                    overhead_cycles=chip.launch_cycles,
                    overflow_events=overflows, events=events, energy_pj=energy,
                    traffic_bytes=traffic, tiling=mem.plan.to_dict(),
                    memory_bound=mem.memory_bound, prefetch_cycles=mem.prefetch_cycles,
                    drain_cycles=mem.drain_cycles, requant_cycles=rq_cycles,
                    requant_busy_cycles=rq_busy, gemms=gemms,
                    placement=_placement_record(chip, placed))


def _placement_record(chip: Chip, placed: PlacedGemms | None) -> dict | None:
    """Return the report's placement record: how the op's GEMMs went onto the arrays (chips
    with several arrays) and the pieces of a GEMM cut for size; None when there is nothing to
    say (one array, no pieces)."""
    if placed is None:
        return None
    rec = placed.to_dict()
    if chip.array.count == 1 and "pieces" not in rec:
        return None
    return rec


def gemm_op(chip: Chip, m: int, n: int, k: int, name: str = "gemm", kind: str = "gemm",
            start_cycle: int = 0, conv: ConvGeometry | None = None, count: int = 1,
            cache: dict | None = None) -> OpReport:
    """Return the timing-only OpReport of ``count`` independent m x n x k GEMMs (memory model
    and energy included), placed on the chip's arrays and cut into pieces where a side exceeds
    MAX_GEMM_DIM (simulator.core.placement); ``conv``: the GEMM is this conv's im2col (see
    memory.conv_lowering); ``cache`` (a dict) remembers memory results across calls."""
    m, n, k = check_gemm_shape(m, n, k, name, bounded=False)
    if not chip.sparsity.active or count > 1:  # as the engine: sparsity applies to one GEMM
        # (a sparse chip costs a conv as a plain GEMM, below)
        placed = place_gemms(chip, m, n, k, count, conv, cache=cache, where=name)
        mem = placed.mem
        return _op_report(chip, name, kind, (m, n, k), m * n * k * count, placed.folds, mem,
                          mem.compute_cycles, start_cycle, None, count, placed)
    m, n, k = check_gemm_shape(m, n, k, name)
    sg = plan_sparse_gemm(chip, m, n, k)  # the sparse chip's run
    return _op_report(chip, name, kind, (m, n, k), sg.macs,
                      map_gemm(chip.array, m, n, sg.k_run).folds, sg.mem,
                      sg.mem.compute_cycles, start_cycle, None)


def simulate_gemms(chip: Chip, shapes: list[tuple]) -> Report:
    """Time a list of (name, M, N, K) GEMMs run one after another; return one Report (timing).
    An entry may carry a fifth item, the ConvGeometry of the conv whose im2col it is (None for
    a plain GEMM; see memory.conv_lowering).

    Raises Interrupted on Ctrl-C, saying how many layers were done."""
    ops = []
    start = 0
    seen: dict[tuple, OpReport] = {}  # networks repeat layer shapes
    try:
        for name, m, n, k, *rest in shapes:
            conv = rest[0] if rest and chip.conv_lowering == "feeder" else None
            first = seen.get((m, n, k, conv))
            if first is None:
                op = seen[(m, n, k, conv)] = gemm_op(chip, m, n, k, name=name,
                                                     start_cycle=start, conv=conv)
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
        return out.astype(output_dtype(chip.compute_dtype), copy=False), None, None, overflows
    out, cycles, last, overflows = _reference(chip, a, b, plan)
    r = chip.mac_rate  # r MACs per PE per cycle: the rate-1 schedule r times faster
    # (memory.rate_one_chip): counts round up, a cycle index falls in cycle index // r
    return out.astype(output_dtype(chip.compute_dtype), copy=False), -(-cycles // r), last // r, \
        overflows


def _quantise_int8(x: np.ndarray, hi: int = 127) -> tuple[np.ndarray, np.float32]:
    """Return (q, scale): symmetric per-tensor integer quantisation of a float tensor,
    scale = max|x| / hi (1 when x is all zeros), q = clip(rint(x / scale), -hi, hi); hi is 127
    for int8, 7 for int4."""
    x = np.asarray(x, np.float32)
    amax = float(np.max(np.abs(x))) if x.size else 0.0
    scale = np.float32(amax / float(hi)) if amax > 0 else np.float32(1.0)
    q = np.clip(np.rint(x / scale), -hi, hi).astype(np.int64)
    return q, scale


def _array_operand(chip: Chip, x: np.ndarray, name: str) -> tuple[np.ndarray, np.float32 | None]:
    """Return an array operand in the chip's value type and, for a float tensor on an int8 or
    int4 chip, its quantisation scale (the output is dequantised by the product of the
    scales)."""
    x = np.asarray(x)
    fmt = chip.compute_dtype
    if fmt in INTEGER_FORMATS and not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        q, scale = _quantise_int8(x, INT_RANGE[fmt][1])
        return q, scale
    return x, None


def _pieces_of(placed: PlacedGemms, a: np.ndarray, b: np.ndarray) -> list[tuple]:
    """Return the pieces of one GEMM ``a @ b`` as placed: [(group index, rows, cols)] with
    row and column slices of the output, in order (one piece unless the GEMM was cut)."""
    if placed.cut_m == (a.shape[0],) and placed.cut_n == (b.shape[1],):
        return [(0, slice(None), slice(None))]
    index = {g.shape[:2]: i for i, g in enumerate(placed.groups)}
    out = []
    r0 = 0
    for rows in placed.cut_m:
        c0 = 0
        for cols in placed.cut_n:
            out.append((index[(rows, cols)], slice(r0, r0 + rows), slice(c0, c0 + cols)))
            c0 += cols
        r0 += rows
    return out


def operand_formats(chip: Chip, b_is_weight: bool = True) -> tuple[str, str]:
    """Return the formats A and B are rounded to on their way into the array: A an activation
    (precision.activations), B a weight (precision.weights) or, when ``b_is_weight`` is false
    (a tensor some op computed), an activation."""
    return chip.activations_dtype, chip.weights_dtype if b_is_weight else chip.activations_dtype


def array_operand(x: object, fmt: str, chip: Chip, name: str) -> np.ndarray:
    """Return operand ``x`` rounded to (or checked against) ``fmt`` and held in the value type
    of the chip's compute format (int4 weights of a bf16 MAC travel as float32). Integer
    operands of a float MAC may arrive as floats holding whole numbers."""
    if fmt in INTEGER_FORMATS and chip.compute_dtype not in INTEGER_FORMATS:
        arr = np.asarray(x)
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.rint(arr)):
            x = arr.astype(np.int64)
    q = prepare_operand(x, fmt, name)
    vt = value_dtype(chip.compute_dtype)
    return q if q.dtype == vt else np.ascontiguousarray(q.astype(vt))


def _run_pairs(placed: PlacedGemms, pairs: list, engine: str, names: tuple[str, str],
               scales: tuple, b_is_weight: bool = True
               ) -> tuple[list | np.ndarray, int | None, int | None, int]:
    """Run 2-D GEMMs as ``placed`` puts them on the arrays (each piece on its group's share of
    the chip, with its tiling); ``scales`` are the operands' int8 quantisation scales (None: not
    quantised). Returns (outputs, reference cycles or None, last cycle or None, overflows); a
    single pair returns its output array instead of a list. The reference cycles follow the
    placement: a group's GEMMs run in rounds of ``gemms_at_once``, a round lasting as long as
    its slowest GEMM, the groups one after another."""
    outs = []
    runs: list[list[tuple[int, int]]] = [[] for _ in placed.groups]  # per group: (cycles, last)
    overflows = 0
    sa, sb = scales
    chip = placed.groups[0].chip
    for a2, b2 in pairs:
        fa, fb = operand_formats(chip, b_is_weight)
        qa = array_operand(a2, fa, chip, names[0])
        qb = array_operand(b2, fb, chip, names[1])
        pieces = _pieces_of(placed, qa, qb)
        if len(pieces) == 1:
            g = placed.groups[pieces[0][0]]
            out, cyc, lst, ovf = _matmul_values(g.chip, qa, qb, g.one.plan, engine)
            if cyc is not None:
                runs[pieces[0][0]].append((cyc, lst))
        else:
            out = np.zeros((qa.shape[0], qb.shape[1]), output_dtype(chip.compute_dtype))
            ovf = 0
            for gi, rows, cols in pieces:
                g = placed.groups[gi]
                part, cyc, lst, o = _matmul_values(
                    g.chip, np.ascontiguousarray(qa[rows]), np.ascontiguousarray(qb[:, cols]),
                    g.one.plan, engine)
                out[rows, cols] = part
                ovf += o or 0
                if cyc is not None:
                    runs[gi].append((cyc, lst))
        if sa is not None or sb is not None:
            out = out.astype(np.float32) * np.float32((sa if sa is not None else 1)
                                                      * (sb if sb is not None else 1))
        outs.append(out)
        overflows += ovf or 0
    cycles_sum, last = None, None
    if any(runs):
        cycles_sum = 0
        for g, run in zip(placed.groups, runs):
            p = g.placement.gemms_at_once
            for r in range(0, len(run), p):
                rnd = run[r:r + p]
                last = cycles_sum + max(lst for _c, lst in rnd)
                cycles_sum += max(c for c, _l in rnd)
    if len(pairs) == 1:
        return outs[0], cycles_sum, last, overflows
    return outs, cycles_sum, last, overflows


def _is_weight(program: Program, op: MatMul | Conv2d) -> bool:
    """Return True when the op's B operand is a parameter (no op of the program computes it):
    a weight, in precision.weights; else an activation."""
    return all(o.output != op.inputs[1] for o in program.ops)


def _batched_values(chip: Chip, program: Program, op: MatMul | Conv2d, env: dict,
                    placed: PlacedGemms, engine: str, packed: tuple | None = None):
    """Return (output, reference cycles or None, last cycle or None, overflows) of an array op
    with any number of GEMMs, run in order (batch index, then group). On an int8 chip a float
    operand tensor is quantised once, per tensor, before it is cut into GEMMs."""
    a, sa = _array_operand(chip, np.asarray(env[op.inputs[0]]), op.inputs[0])
    b, sb = _array_operand(chip, np.asarray(env[op.inputs[1]]), op.inputs[1])
    if isinstance(op, Conv2d):
        f = b.shape[0]
        kh, kw = b.shape[2], b.shape[3]
        a_all = im2col_nchw(a, (kh, kw), op.stride, op.padding, op.dilation, op.groups)
        b_all = b.reshape(op.groups, f // op.groups, -1).transpose(0, 2, 1)
        pairs = [(a_all[g], b_all[g]) for g in range(op.groups)]
    else:
        if op.transpose_a:
            a = np.swapaxes(a, -1, -2)
        if op.transpose_b:
            b = np.swapaxes(b, -1, -2)
        if b.ndim == 2:  # one GEMM over all leading dims of a
            pairs = [(a.reshape(-1, a.shape[-1]), b)]
        else:
            batch = program.shapes[op.output][:-2]
            a_b = np.broadcast_to(a, (*batch, *a.shape[-2:])).reshape(-1, *a.shape[-2:])
            b_b = np.broadcast_to(b, (*batch, *b.shape[-2:])).reshape(-1, *b.shape[-2:])
            pairs = [(a_b[i], b_b[i]) for i in range(a_b.shape[0])]
    if packed is not None:  # groups packed block-diagonally (simulator.core.grouped)
        mapping, packs = packed
        outs, cycles, last, overflows = [], None, None, 0
        for pk, pk_pairs in zip(packs, pack_pairs(a_all, b_all, mapping)):
            o, cyc, lst, ovf = _run_pairs(pk, pk_pairs, engine, op.inputs, (sa, sb),
                                          _is_weight(program, op))
            outs.extend(o if isinstance(o, list) else [o])
            overflows += ovf
            if cyc is not None:
                last = (cycles or 0) + lst
                cycles = (cycles or 0) + cyc
        outs = unpack_outputs(outs, mapping, b_all.shape[2])
    else:
        outs, cycles, last, overflows = _run_pairs(placed, pairs, engine, op.inputs, (sa, sb),
                                                   _is_weight(program, op))
    if isinstance(op, Conv2d):
        nb, f, oh, ow = program.shapes[op.output]
        o = np.stack(outs) if isinstance(outs, list) else outs[None]
        o = o.reshape(op.groups, nb, oh, ow, f // op.groups).transpose(1, 0, 4, 2, 3)
        value = np.ascontiguousarray(o.reshape(nb, f, oh, ow))
    elif isinstance(outs, list):
        value = np.stack(outs).reshape(program.shapes[op.output])
    else:
        value = outs.reshape(program.shapes[op.output])
    return value, cycles, last, overflows


def _vector_conv_values(program: Program, op: Conv2d, args: list) -> np.ndarray:
    """Return the float32 output of a depthwise conv run on the vector unit (see
    simulator.core.grouped)."""
    x = np.asarray(args[0])
    w = np.asarray(args[1])
    f, _cg, kh, kw = w.shape
    a_all = im2col_nchw(x, (kh, kw), op.stride, op.padding, op.dilation, op.groups)
    b_all = w.reshape(op.groups, f // op.groups, -1).transpose(0, 2, 1)
    o = depthwise_vector_values(a_all, b_all)
    nb, _f, oh, ow = program.shapes[op.output]
    o = o.reshape(op.groups, nb, oh, ow, f // op.groups).transpose(1, 0, 4, 2, 3)
    return np.ascontiguousarray(o.reshape(nb, f, oh, ow))


def dram_xfer_cycles(chip: Chip, nbytes: int) -> int:
    """Return the cycles to move ``nbytes`` to or from DRAM in one stream (latency +
    ceil(bytes / bytes per cycle); 0 with ideal DRAM or no bytes)."""
    if nbytes <= 0 or chip.dram.ideal:
        return 0
    from .cycle_limits import check_dram_cycles
    check_dram_cycles(chip, nbytes, 1, f"a transfer of {nbytes:,} bytes")
    return chip.dram.latency_cycles + int(np.ceil(nbytes / chip.dram_bytes_per_cycle))


class _Residency:
    """Per-op DRAM traffic under the residency plan (None: the earlier model)."""

    def __init__(self, chip: Chip, program: Program, free: set[str]):
        self.plan = plan_residency(chip, program, free) if chip.buffers.residency else None

    def info(self, i: int) -> dict:
        """Return the residency record of op i for the report (empty when off)."""
        p = self.plan
        if p is None:
            return {}
        return {"dram_read": {t: b for t, (b, _w) in p.reads[i].items()},
                "dram_write": {t: b for t, (b, _w) in p.writes[i].items()},
                "why": {t: w for d in (p.reads[i], p.writes[i]) for t, (_b, w) in d.items()},
                "spilled": sorted(t for d in (p.reads[i], p.writes[i]) for t, (_b, w) in d.items()
                                  if w == "spill"),
                "buffer_bytes": p.buffer_bytes[i]}

    def array_mem(self, chip: Chip, program: Program, i: int, op, mem: MemoryResult) -> MemoryResult:
        """Return the array op's memory result with resident operands served from the buffer.

        When every operand comes from DRAM anyway (a first load, a spill) the GEMM's own tiled
        traffic and stalls stand unchanged; otherwise a resident operand moves no DRAM bytes
        (a first-loaded input: its bytes once), a spilled one keeps its tiled traffic, and the
        stall is min(the tiled stall, max(0, transfer time of the bytes left - compute)).
        """
        p = self.plan
        if p is None:
            return mem
        r_a, r_b, r_o = p.root[op.inputs[0]], p.root[op.inputs[1]], p.root[op.output]
        first_a = p.first_use.get(r_a) == i
        first_b = p.first_use.get(r_b) == i
        from_dram = ((not p.resident[r_a] or first_a) and (not p.resident[r_b] or first_b)
                     and (not p.resident[r_o] or r_o in p.outputs))
        if from_dram:
            return mem

        def read(root: str, first: bool, tiled: int) -> int:
            if not p.resident[root]:
                return tiled
            return p.nbytes[root] if first else 0
        a = read(r_a, first_a, mem.dram_a_read_bytes)
        b = read(r_b, first_b, mem.dram_b_read_bytes)
        if r_b == r_a:
            b = 0 if p.resident[r_a] else b
        if p.resident[r_o]:
            o_rd, o_wr = 0, p.nbytes[r_o] if r_o in p.outputs else 0
        else:
            o_rd, o_wr = mem.dram_o_read_bytes, mem.dram_o_write_bytes
        total = a + b + o_rd + o_wr
        xfer = dram_xfer_cycles(chip, total)
        stall = min(mem.stall_cycles, max(0, xfer - mem.compute_cycles))
        return dataclasses.replace(mem, total_cycles=mem.compute_cycles + stall,
                                   dram_a_read_bytes=a, dram_b_read_bytes=b,
                                   dram_a_halo_bytes=mem.dram_a_halo_bytes
                                   if a == mem.dram_a_read_bytes else 0,
                                   dram_o_read_bytes=o_rd, dram_o_write_bytes=o_wr,
                                   dram_transfer_cycles=xfer)

    def vector_traffic(self, i: int) -> tuple[int, int]:
        """Return (DRAM bytes read, written) by vector op i."""
        p = self.plan
        if p is None:
            return 0, 0
        return (sum(b for b, _w in p.reads[i].values()),
                sum(b for b, _w in p.writes[i].values()))


def _vector_cost(chip: Chip, program: Program, op: Op) -> tuple[str, tuple, list]:
    """Return (report kind, shape, passes) of a vector-unit op."""
    shapes = [program.shapes[t] for t in op.inputs]
    out_shape = program.shapes[op.output]
    if isinstance(op, Reduce):
        src = shapes[0]
        n = math.prod(src)
        axes = range(len(src)) if op.axis is None else \
            (op.axis if isinstance(op.axis, tuple) else (op.axis,))
        group = math.prod(src[a] for a in axes)
        passes = [("reduction", n, group)]
        if op.kind == "mean":
            passes.append(("divide" if "divide" in chip.vector.interval else "add",
                           n // max(group, 1), 0))
        return f"vector.reduce_{op.kind}", out_shape, passes
    if isinstance(op, Elementwise):
        return f"vector.{op.kind}", out_shape, [(op.op_class, math.prod(out_shape), 0)]
    if isinstance(op, Layout):  # a permute or slice that moves data
        return f"vector.{op.kind}", out_shape, [("move", math.prod(out_shape), 0)]
    if isinstance(op, Conv2d):  # a depthwise conv: a multiply-add per tap and output
        taps = shapes[1][1] * shapes[1][2] * shapes[1][3]
        return "vector.depthwise_conv2d", out_shape, [("add", math.prod(out_shape) * taps, 0)]
    spec = VECTOR_OPS[op.kind]
    return f"vector.{op.kind}", out_shape, spec.passes(shapes, out_shape, dict(op.attrs))


def _epilogue_report(chip: Chip, program: Program, op: Op, rep: OpReport, into: str,
                     producer_end: int) -> OpReport:
    """Return the report of ``op`` fused into array op ``into`` as its epilogue: it ends no
    sooner than one lane group after the producer's last results (``producer_end``), so it
    starts later when its own passes would end before that."""
    _kind, _shape, passes = _vector_cost(chip, program, op)
    group = min(chip.vector.lanes, math.prod(program.shapes[op.output]))
    tail, _ = passes_cycles(chip.vector, [(c, min(n, group), g and min(g, group))
                                          for c, n, g in passes])
    start = max(rep.start_cycle, producer_end + tail - rep.total_cycles)
    return dataclasses.replace(rep, start_cycle=start, fused_into=into)


def _vector_op(chip: Chip, program: Program, op: Op, start: int,
               res: _Residency | None = None, index: int = 0,
               narrowed: set[str] | frozenset = frozenset(),
               by_vector: set[str] | frozenset = frozenset(),
               launch: bool = True) -> tuple[OpReport, int]:
    """Return (report, lane-ops) of a vector-unit op; it reads 4 bytes per input element, or
    output.dtype's bytes for a tensor an array op wrote narrowed (``narrowed``), or
    vector.output_dtype's for one the vector unit stored narrowed (``by_vector``), and writes
    its output in vector.output_dtype when ``by_vector`` holds it (4 bytes otherwise)."""
    unit = chip.vector

    def width(t: str) -> int:
        if t in narrowed:
            return chip.output_bytes
        return chip.vector_output_bytes if t in by_vector else ACC_BYTES
    in_bytes = sum(math.prod(program.shapes[t]) * width(t) for t in op.inputs)
    if isinstance(op, VectorOp) and op.kind == "gather":  # only the gathered rows are read
        in_bytes = 4 * (math.prod(program.shapes[op.output])
                        + math.prod(program.shapes[op.inputs[1]]))
    kind, shape, passes = _vector_cost(chip, program, op)
    out_elems = math.prod(shape)
    cycles, n = passes_cycles(unit, passes)
    dram_rd, dram_wr = res.vector_traffic(index) if res is not None else (0, 0)
    stall = max(0, dram_xfer_cycles(chip, dram_rd + dram_wr) - cycles)
    out_bytes = width(op.output) * out_elems
    events = {"macs": 0, "pe_hop_bytes": 0, "buffer_read_bytes": in_bytes,
              "buffer_write_bytes": out_bytes, "dram_bytes": dram_rd + dram_wr,
              "vector_lane_ops": n}
    overhead = chip.launch_cycles if launch else 0
    energy = energy_breakdown(chip, events, (cycles + stall + overhead) / chip.clock_hz)
    traffic = {}
    info = {}
    if res is not None and res.plan is not None:
        traffic = {"dram": {"a_read": dram_rd, "b_read": 0, "o_read": 0, "o_write": dram_wr,
                            "total": dram_rd + dram_wr},
                   "buffer": {"read": in_bytes, "write": out_bytes},
                   # a vector op reads activations and writes its output (docs/conv-traffic.md)
                   "classes": {"feature_map": dram_rd, "halo": 0, "weights": 0,
                               "partial_sums": 0, "outputs": dram_wr}}
        info = res.info(index)
    return OpReport(name=op.name, kind=kind, unit="vector", shape=tuple(shape), dataflow="-",
                    pes=chip.pes, compute_cycles=cycles, stall_cycles=stall, macs=0, folds=0,
                    busy_pe_cycles=0, start_cycle=start, overhead_cycles=overhead,
                    events=events, energy_pj=energy, traffic_bytes=traffic,
                    residency=info), n


def _layout_report(chip: Chip, program: Program, op: Layout, start: int,
                   info: dict) -> OpReport:
    events = {"macs": 0, "pe_hop_bytes": 0, "buffer_read_bytes": 0, "buffer_write_bytes": 0,
              "dram_bytes": 0, "vector_lane_ops": 0}
    return OpReport(name=op.name, kind=f"layout.{op.kind}", unit="layout",
                    shape=tuple(program.shapes[op.output]), dataflow="-", pes=chip.pes,
                    compute_cycles=0, stall_cycles=0, macs=0, folds=0, busy_pe_cycles=0,
                    start_cycle=start, overhead_cycles=0, events=events,
                    energy_pj=energy_breakdown(chip, events, 0.0), residency=info)


def _layout_values(op: Layout, x: np.ndarray) -> np.ndarray:
    if op.kind == "reshape":
        return np.reshape(x, op.attr("shape"))
    if op.kind == "permute":
        return np.ascontiguousarray(np.transpose(x, op.attr("perm")))
    ax = op.attr("axis")
    idx = [slice(None)] * x.ndim
    idx[ax] = slice(op.attr("start"), op.attr("stop"))
    return np.ascontiguousarray(x[tuple(idx)])


def _narrow(chip: Chip, op: MatMul | Conv2d, env: dict) -> np.ndarray:
    """Return an array op's output value as it leaves the array in output.dtype (see
    numerics.requantise): int8 outputs of integer operands are requantised with the op's
    fixed-point ``requant`` (zero points, per-channel multipliers: numerics.requantise_fixed),
    else its out_scale (or output.scale); a float tensor the engine quantised per tensor on its way
    into an int8 array keeps its dequantised float32 result (its int8 form is the next array
    op's per-tensor quantisation); bf16/fp16 outputs are rounded."""
    value = env[op.output]
    if not chip.narrows_output:
        return value
    if chip.output_dtype == "int8":
        if not all(np.issubdtype(np.asarray(env[t]).dtype, np.integer) for t in op.inputs):
            return value
        if op.requant is not None:  # TFLite's fixed-point output step, per output channel
            return requantise_fixed(value, op.requant, 1 if isinstance(op, Conv2d) else -1)
        scale = op.out_scale if op.out_scale is not None else chip.output_scale
        return requantise(value, "int8", scale)
    return requantise(value, chip.output_dtype, 0.0)


def _plain_matmul(program: Program, op) -> bool:
    """Return True for a MatMul of two 2-D operands computed as one GEMM (what sparsity applies to)."""
    return isinstance(op, MatMul) and program.gemm_count(op) == 1 and \
        len(program.shapes[op.inputs[0]]) == 2 and len(program.shapes[op.inputs[1]]) == 2


def run(chip: Chip, program: Program, inputs: dict[str, object] | None = None,
        engine: str = "fast", progress=None) -> Report:
    """Run ``program`` on ``chip``: schedule every op and, given ``inputs``, compute values.

    An op starts when its input tensors are ready and its unit (array or vector) is free, so the
    units overlap where the DAG allows; free layout ops take no time. With
    ``buffers.residency`` the DRAM traffic of every op follows the residency plan (see
    simulator.core.residency). Returns a Report with one row per op (start and end cycle, cycles,
    MACs or lane-ops, DRAM and buffer bytes, energy); ``report.values`` maps every tensor to its
    value in functional mode, and ``report.output`` is the last op's output. ``progress``, if
    given, is called with (ops done, ops in all). Raises WorkloadError.
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
            value = np.asarray(inputs[t])
            if len(program.shapes[t]) != 2 and value.shape != program.shapes[t]:
                raise WorkloadError(f"program {program.name}", t, f"input has shape "
                                    f"{value.shape}, the program declares {program.shapes[t]}")
            env[t] = inputs[t]
    elif engine == "reference":
        raise WorkloadError("engine", "engine", "the reference engine needs operands "
                            "(it computes values); use the fast engine for timing only")
    simple = all(isinstance(o, (MatMul, Elementwise, Reduce)) for o in program.ops)
    free = set() if simple else free_layout_ops(program)
    res = _Residency(chip, program, free)
    ready = {t: 0 for t in program.inputs}
    unit_free = {"array": 0, "vector": 0}
    ops: list[OpReport] = []
    last_output = None
    gemm_cache: dict[tuple, MemoryResult] = {}  # place_gemms' memory results
    narrowed: set[str] = set()  # tensors array ops wrote in output.dtype (narrower than 4 B)
    by_vector = vector_narrowed(chip, program, free)  # stored in vector.output_dtype
    fusion = epilogue_fusion(chip, program, free)
    epi: dict[str, tuple[int, int]] = {}  # a fused chain's tensor -> (producer start, end)
    single = len(program.ops) == 1
    for i, op in enumerate(program.ops):
        if isinstance(op, Layout) and op.name in free:
            start = max([ready[t] for t in op.inputs])
            rep = _layout_report(chip, program, op, start, res.info(i))
            if op.inputs[0] in narrowed:  # a free reshape or slice of a narrowed tensor
                narrowed.add(op.output)
            if functional:
                env[op.output] = _layout_values(op, np.asarray(env[op.inputs[0]]))
            ops.append(rep)
            ready[op.output] = start
            continue
        on_vector = runs_on_vector(chip, program, op)
        unit = "vector" if isinstance(op, Layout) or on_vector else op.unit
        # a fused epilogue starts with its array op: it reads the results as they leave
        start = max([epi[t][0] if t in epi else ready[t] for t in op.inputs]
                    + [unit_free[unit]])
        if isinstance(op, (MatMul, Conv2d)) and not on_vector:
            m, n, k = program.gemm_shape(op)
            ref_cycles = None
            sparse_macs = sparse_folds = None
            if chip.sparsity.active and _plain_matmul(program, op):
                a = b = None
                if functional:
                    a = np.asarray(env[op.inputs[0]])
                    b = np.asarray(env[op.inputs[1]])
                    fa, fb = operand_formats(chip, _is_weight(program, op))
                    a = array_operand(a.T if op.transpose_a else a, fa, chip, op.inputs[0])
                    b = array_operand(b.T if op.transpose_b else b, fb, chip, op.inputs[1])
                sg = plan_sparse_gemm(chip, m, n, k, a, b)
                mem, count = sg.mem, 1
                sparse_macs, sparse_folds = sg.macs, map_gemm(chip.array, m, n, sg.k_run).folds
                compute, overflows = mem.compute_cycles, None
                if functional:
                    if sg.kept is not None:  # skip: the array streams only the kept K steps
                        a = np.ascontiguousarray(a[:, sg.kept])
                        b = np.ascontiguousarray(b[sg.kept, :])
                    env[op.output], ref_cycles, last, overflows = _matmul_values(
                        chip, a, b, mem.plan, engine)
            else:
                count = program.gemm_count(op)
                conv = conv_geometry_of(program, op) if isinstance(op, Conv2d) and \
                    chip.conv_lowering == "feeder" else None
                grouped = grouped_mapping(chip, program, op) if isinstance(op, Conv2d) else None
                if grouped is not None and grouped.mapping == "packed":
                    packs = [place_gemms(chip, m, r * n, r * k, cnt, packed_geometry(conv, r),
                                         cache=gemm_cache, where=op.name)
                             for r, cnt in grouped.gemms]
                    placed = packs[0]
                    total = packs[0].mem
                    for more in packs[1:]:
                        total = add_results(total, more.mem)
                    folds = sum(pk.folds for pk in packs)
                    performed = sum(m * r * n * r * k * cnt for r, cnt in grouped.gemms)
                    if chip.array.dataflow == "ws":  # PEs holding zero weights do no useful work
                        total = dataclasses.replace(total, busy_pe_cycles=total.busy_pe_cycles
                                                    * (m * n * k * count) // performed)
                else:
                    packs = None
                    placed = place_gemms(chip, m, n, k, count, conv, cache=gemm_cache,
                                         where=op.name)
                    total, folds, performed = placed.mem, placed.folds, None
                mem = res.array_mem(chip, program, i, op, total)
                compute, overflows = mem.compute_cycles, None
                if functional:
                    if _plain_matmul(program, op):
                        a, sa = _array_operand(chip, np.asarray(env[op.inputs[0]]), op.inputs[0])
                        b, sb = _array_operand(chip, np.asarray(env[op.inputs[1]]), op.inputs[1])
                        a = a.T if op.transpose_a else a
                        b = b.T if op.transpose_b else b
                        env[op.output], ref_cycles, last, overflows = _run_pairs(
                            placed, [(a, b)], engine, op.inputs, (sa, sb))
                    else:
                        env[op.output], ref_cycles, last, overflows = _batched_values(
                            chip, program, op, env, placed, engine,
                            (grouped, packs) if packs is not None else None)
            if functional:
                env[op.output] = _narrow(chip, op, env)
            if ref_cycles is not None:
                compute = ref_cycles
                mem = dataclasses.replace(mem, total_cycles=ref_cycles + mem.stall_cycles,
                                          compute_cycles=ref_cycles)
                last_output = start + last
            if functional and chip.compute_dtype not in INTEGER_FORMATS:
                overflows = None
            kind = ("gemm" if single else "matmul") if isinstance(op, MatMul) else "conv2d"
            if sparse_macs is None:
                rep = _op_report(chip, op.name, kind, (m, n, k), m * n * k * count, folds,
                                 mem, compute, start, overflows, count, placed, performed)
                if grouped is not None:
                    rec = grouped.to_dict()
                    if performed is not None:
                        rec["macs_performed"] = performed
                    rep = dataclasses.replace(rep, grouped=rec)
            else:  # sparse: the MACs performed and the folds of the K steps streamed
                rep = _op_report(chip, op.name, kind, (m, n, k), sparse_macs, sparse_folds, mem,
                                 compute, start, overflows)
            if res.plan is not None:
                rep = dataclasses.replace(rep, residency=res.info(i))
            if chip.narrows_output:
                narrowed.add(op.output)
            # the requantisation runs on the vector unit during the op's last requant_busy
            # cycles: it cannot start before the unit is free, so an op whose pass would
            # overlap a running vector op starts later
            wait = unit_free["vector"] - rep.requant_start_cycle \
                if rep.requant_busy_cycles else 0
            if wait > 0:
                rep = dataclasses.replace(rep, start_cycle=rep.start_cycle + wait)
                if last_output is not None and ref_cycles is not None:
                    last_output += wait
        else:
            fused_into = fusion.into.get(op.name)
            rep, _lane_ops = _vector_op(chip, program, op, start, res, i, narrowed, by_vector,
                                        launch=fused_into is None)
            if fused_into is not None:
                rep = _epilogue_report(chip, program, op, rep, fused_into,
                                       max(epi[t][1] for t in op.inputs if t in epi))
            if on_vector:
                rep = dataclasses.replace(rep, grouped={"mapping": "vector",
                                                        "groups": op.groups})
            if functional:
                args = [env[t] for t in op.inputs]
                if isinstance(op, Reduce):
                    env[op.output] = reduce_values(op.kind, args[0], op.axis, op.keepdims,
                                                   chip.vector.lanes)
                elif isinstance(op, Elementwise):
                    env[op.output] = elementwise_values(op.kind, args, op.const, op.params)
                elif isinstance(op, Layout):
                    env[op.output] = _layout_values(op, np.asarray(args[0]))
                elif isinstance(op, Conv2d):
                    env[op.output] = _vector_conv_values(program, op, args)
                else:
                    try:
                        env[op.output] = vector_op_values(op.kind, args, dict(op.attrs),
                                                          chip.vector.lanes)
                    except IndexError as exc:
                        raise WorkloadError(f"program {program.name}", op.name,
                                            str(exc)) from None
                if op.output in by_vector and not keeps_integers(op, env[op.output]):
                    # stored in vector.output_dtype (int8 values of a quantised model stay)
                    env[op.output] = requantise(np.asarray(env[op.output], np.float32),
                                                chip.vector_store_dtype, 0.0)
        ops.append(rep)
        if op.output in fusion.virtual:
            epi[op.output] = (rep.start_cycle, rep.end_cycle)
        unit_free[unit] = rep.end_cycle
        if rep.requant_busy_cycles:  # the array op's requantisation holds the vector unit
            unit_free["vector"] = max(unit_free["vector"], rep.end_cycle)
        ready[op.output] = rep.end_cycle
        if progress is not None:
            progress(i + 1, len(program.ops))
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
        fa, fb = operand_formats(chip)
        a = array_operand(a, fa, chip, "a")
        b = array_operand(b, fb, chip, "b")
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
