"""Tiling a GEMM to the chip's buffers and timing it against DRAM (DESIGN section 4).

``candidate_plans`` lists the tilings (tile sizes and loop order) that fit the buffers (half of
each when double-buffered) and are Pareto-optimal in estimated array cycles and DRAM traffic,
unless the config fixes them; ``run_gemm_memory`` walks each exactly and keeps the fastest
(ties: less traffic, fewer steps). The candidates do not depend on the DRAM bandwidth, so less
bandwidth can never give fewer cycles; ``run_gemm_memory`` walks the tile steps (O(tiles), never O(elements) or O(cycles)) and
returns cycles with stalls, traffic per operand and level, and event counts for energy.

Tile sizes keep the functional numerics well defined: for ws/is a K tile is a multiple of the
array's rows, smaller than them, or the whole K, so the array's partial sums still cover uniform
chunks of K (see ``numerics_chunk``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import interruptible, one_tile
from ..hardware.chip import ACC_BYTES, Chip
from .conv_geometry import ConvGeometry
from .cycle_limits import check_dram_cycles
from ..errors import WorkloadError
from .one_tile import ORDERS

# The numba hot loops (``_memory``) are imported inside the functions that call them: a GEMM
# that runs as one tile on one array is timed by ``one_tile`` in plain Python, so a timing-only
# run on a chip without a memory model never imports numba (cold start).

__all__ = ["MemoryResult", "TilePlan", "numerics_chunk", "plan_gemm", "run_gemm_memory",
           "dram_traffic_closed_form", "streams"]

_DATAFLOW_CODE = {"os": 0, "ws": 1, "is": 2}
_SPLIT_CODE = {"m": 0, "n": 1, "tiles": 2}
_NO_CONV = np.zeros(0, np.int64)  # the hot loops' "A tiles are im2col tiles in DRAM"


@dataclass(frozen=True)
class TilePlan:
    """Tile sizes (elements), loop order (outermost first) and split of several arrays."""

    tile_m: int
    tile_n: int
    tile_k: int
    loop_order: str
    split: str  # "m", "n" or "tiles"

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as a JSON-ready dict."""
        return {"tile_m": self.tile_m, "tile_n": self.tile_n, "tile_k": self.tile_k,
                "loop_order": self.loop_order, "split": self.split}


@dataclass(frozen=True)
class MemoryResult:
    """Cycles and event counts of one GEMM with the memory model (bytes, cycles, elements)."""

    plan: TilePlan
    total_cycles: int
    compute_cycles: int
    busy_pe_cycles: int
    steps: int
    dram_a_read_bytes: int
    dram_b_read_bytes: int
    dram_o_read_bytes: int
    dram_o_write_bytes: int
    buffer_read_bytes: int
    buffer_write_bytes: int
    pe_hop_bytes: int
    dram_transfer_cycles: int
    port_stall_cycles: int
    buffer_a_read_bytes: int = 0  # the array's reads of the A buffer (part of buffer_read_bytes)
    buffer_b_read_bytes: int = 0  # the array's reads of the B buffer
    prefetch_cycles: int = 0  # the exposed load before the first tile step
    drain_cycles: int = 0  # the exposed write-back after the last tile step
    register_read_bytes: int = 0  # PE register reads: operands and partial sums of every MAC
    register_write_bytes: int = 0  # PE register writes: operands latched, partial sums updated
    # of dram_a_read_bytes: input elements fetched again because several A tiles' windows
    # touch them (halos; feeder-lowered convs only, see docs/conv-traffic.md)
    dram_a_halo_bytes: int = 0

    def buffer_events(self) -> dict[str, int]:
        """Return bytes read and written per buffer (a, b, o): A and B are written by their DRAM
        fills, O by the array's accumulator writes and partial sums read back from DRAM; O is
        read by the array and by the write-back to DRAM."""
        o_rd = self.buffer_read_bytes - self.buffer_a_read_bytes - self.buffer_b_read_bytes
        o_wr = self.buffer_write_bytes - self.dram_a_read_bytes - self.dram_b_read_bytes
        return {"buffer_a_read_bytes": self.buffer_a_read_bytes,
                "buffer_b_read_bytes": self.buffer_b_read_bytes, "buffer_o_read_bytes": o_rd,
                "buffer_a_write_bytes": self.dram_a_read_bytes,
                "buffer_b_write_bytes": self.dram_b_read_bytes, "buffer_o_write_bytes": o_wr}

    @property
    def stall_cycles(self) -> int:
        """Return cycles lost to memory: total - compute."""
        return self.total_cycles - self.compute_cycles

    @property
    def dram_bytes(self) -> int:
        """Return all bytes moved to or from DRAM."""
        return (self.dram_a_read_bytes + self.dram_b_read_bytes + self.dram_o_read_bytes
                + self.dram_o_write_bytes)

    @property
    def memory_bound(self) -> bool:
        """Return True when DRAM transfers alone take longer than the compute."""
        return self.dram_transfer_cycles > self.compute_cycles

    def traffic(self) -> dict[str, Any]:
        """Return traffic in bytes per operand and per level, and the DRAM bytes per traffic
        class, as a JSON-ready dict.

        Classes (they add up to the DRAM total): ``feature_map`` A reads less halos (for a conv
        lowered in memory, the im2col matrix), ``halo`` A elements re-fetched by neighbouring
        tiles, ``weights`` B reads, ``partial_sums`` O tiles written back before their last K
        tile and read back (twice the read-back), ``outputs`` the final write of O."""
        halo = self.dram_a_halo_bytes
        return {"dram": {"a_read": self.dram_a_read_bytes, "b_read": self.dram_b_read_bytes,
                         "o_read": self.dram_o_read_bytes, "o_write": self.dram_o_write_bytes,
                         "total": self.dram_bytes},
                "buffer": {"read": self.buffer_read_bytes, "write": self.buffer_write_bytes},
                "classes": {"feature_map": self.dram_a_read_bytes - halo, "halo": halo,
                            "weights": self.dram_b_read_bytes,
                            "partial_sums": 2 * self.dram_o_read_bytes,
                            "outputs": self.dram_o_write_bytes - self.dram_o_read_bytes}}


def streams(chip: Chip, m: int, n: int, k: int, plan: TilePlan) -> bool:
    """Return True when the plan's tile steps that keep a stationary tile continue one stream
    on the array (the tile is a single fold on every array and all its steps are consecutive;
    see simulator.core._memory)."""
    from . import _memory
    arr = chip.array
    df = _DATAFLOW_CODE[arr.dataflow]
    return bool(_memory._streams(df, plan.tile_m, plan.tile_n, plan.tile_k, arr.rows, arr.cols,
                                 arr.count, _SPLIT_CODE[plan.split])) and \
        _memory._stationary_visits(df, m, n, k, plan.tile_m, plan.tile_n, plan.tile_k,
                                   _memory.ORDERS.index(plan.loop_order)) == 1


def numerics_chunk(chip: Chip, m: int, n: int, k: int, plan: TilePlan) -> int:
    """Return the K chunk the array sums from 0 before the accumulator adds it (see module doc):
    os sums a K tile, or all of K when the O tile streams its K tiles back to back."""
    tile_k = plan.tile_k
    if chip.array.dataflow == "os":
        return k if streams(chip, m, n, k, plan) else min(tile_k, k)
    rows = chip.array.rows
    return tile_k if tile_k < rows and tile_k < k else rows


def _caps(chip: Chip) -> np.ndarray:
    b = chip.buffers
    return np.array([b.a.bytes, b.b.bytes, b.o.bytes, b.unified_buffer.bytes], np.int64)


def _ports(chip: Chip) -> np.ndarray:
    b = chip.buffers
    return np.array([b.a.port_bytes_per_cycle, b.b.port_bytes_per_cycle,
                     b.o.port_bytes_per_cycle, b.unified_buffer.port_bytes_per_cycle], np.float64)


def _feeder(chip: Chip, m: int, k: int, conv: ConvGeometry | None) -> np.ndarray:
    """Return the geometry array the hot loops take: the conv's when the chip expands conv
    windows in the feeder (``memory.conv_lowering: feeder``), else empty (im2col in DRAM)."""
    if conv is None or chip.conv_lowering != "feeder":
        return _NO_CONV
    if (conv.gemm_m, conv.gemm_k) != (m, k):
        raise WorkloadError("conv", "shape", f"conv geometry gives an im2col matrix of "
                            f"{conv.gemm_m}x{conv.gemm_k}, the GEMM is {m}x{k}")
    return conv.as_array()


def _candidates(size: int, grains: tuple[int, ...], k_dim_ws: int = 0) -> np.ndarray:
    """Tile-size candidates for a dimension: the whole size, powers of two, and grain x 2^i.

    ``k_dim_ws`` > 0 (the array's rows) restricts K tiles of ws/is to multiples of it or sizes
    below it.
    """
    cands = {size}
    p = 1
    while p < size:
        cands.add(p)
        p *= 2
    for g in grains:
        p = g
        while p < size:
            cands.add(p)
            p *= 2
    if k_dim_ws:
        cands = {c for c in cands if c == size or c < k_dim_ws or c % k_dim_ws == 0}
    return np.array(sorted(cands), np.int64)


def _check_fixed_tile(name: str, value: int, chip: Chip, k: int) -> None:
    rows = chip.array.rows
    if name == "tile_k" and chip.array.dataflow != "os" and value < k and value > rows \
            and value % rows:
        raise WorkloadError(chip.where("tiling.tile_k"), "tiling.tile_k",
                            f"must be a multiple of array.rows ({rows}), below it, or >= K for "
                            f"{chip.array.dataflow}, got {value}")


def candidate_plans(chip: Chip, m: int, n: int, k: int, split: str,
                    with_estimates: bool = False, conv: ConvGeometry | None = None) -> list:
    """Return the tilings of an m x n x k GEMM on ``chip`` worth timing: the config's fixed
    tiles, or those that fit and are Pareto-optimal in (estimated array cycles, DRAM bytes);
    with ``with_estimates``, (plan, estimated array cycles) pairs. ``conv``: the GEMM is this
    conv's im2col (with feeder lowering an A tile's footprint is its input elements).

    Raises WorkloadError (pointing at the buffer's config line) when no tile fits.
    """
    from . import _memory
    t = chip.tiling
    arr = chip.array
    in_b = chip.input_bytes
    orders = np.arange(len(ORDERS), dtype=np.int64) if t.loop_order == "auto" else \
        np.array([ORDERS.index(t.loop_order)], np.int64)
    for name, value in (("tile_m", t.tile_m), ("tile_n", t.tile_n), ("tile_k", t.tile_k)):
        if value:
            _check_fixed_tile(name, value, chip, k)
    grains = (arr.rows, arr.cols)
    cand_m = np.array([min(t.tile_m, m)], np.int64) if t.tile_m else _candidates(m, grains)
    cand_n = np.array([min(t.tile_n, n)], np.int64) if t.tile_n else _candidates(n, grains)
    cand_k = np.array([min(t.tile_k, k)], np.int64) if t.tile_k else \
        _candidates(k, grains, arr.rows if arr.dataflow != "os" else 0)
    caps = _caps(chip)
    geom = _feeder(chip, m, k, conv)
    a_whole = conv.touched_elems() if geom.size else m * k
    if not (t.tile_m or t.tile_n or t.tile_k) and _memory._fits_a(
            a_whole, m, n, k, in_b, ACC_BYTES, caps, chip.buffers.unified,
            chip.buffers.double_buffered):
        # the whole GEMM fits: one tile moves every operand once and adds no fill/drain, so it
        # is the only Pareto-optimal tiling
        cand_m, cand_n, cand_k = (np.array([v], np.int64) for v in (m, n, k))
        orders = orders[:1]
    rows, est, traffic, steps = _memory._search_tiling(
        m, n, k, cand_m, cand_n, cand_k, orders, in_b, ACC_BYTES, caps,
        chip.buffers.unified, chip.buffers.double_buffered, _DATAFLOW_CODE[arr.dataflow],
        arr.rows, arr.cols, arr.fill_drain == "full", arr.overlap_code, arr.count,
        _SPLIT_CODE[split], arr.split_tile_m, arr.split_tile_n, chip.output_bytes, geom)
    if len(rows):  # the Pareto front in (estimated cycles, traffic): sorted by the estimate,
        order = np.lexsort((steps, traffic, est))  # keep each tiling that lowers the traffic
        t_sorted = traffic[order]
        prev_min = np.concatenate(([np.iinfo(np.int64).max], np.minimum.accumulate(t_sorted)[:-1]))
        keep = order[t_sorted < prev_min]
        rows, est = rows[keep], est[keep]
    if len(rows) == 0:
        tm_, tn_, tk_ = int(cand_m[0]), int(cand_n[0]), int(cand_k[0])
        div = 2 if chip.buffers.double_buffered else 1
        need = {"a": tm_ * tk_ * in_b * div, "b": tk_ * tn_ * in_b * div,
                "o": tm_ * tn_ * ACC_BYTES * div}
        if chip.buffers.unified:
            key, size = "buffers.unified_buffer.bytes", sum(need.values())
        else:
            name = next(b for b in "abo" if 0 < getattr(chip.buffers, b).bytes < need[b])
            key, size = f"buffers.{name}.bytes", need[name]
        raise WorkloadError(chip.where(key), key, f"too small for the smallest tile of gemm "
                            f"{m}x{n}x{k} ({tm_}x{tn_}x{tk_} needs {size} bytes, "
                            f"double_buffered={str(chip.buffers.double_buffered).lower()})")
    plans = [TilePlan(int(r[0]), int(r[1]), int(r[2]), ORDERS[int(r[3])], split)
             for r in rows]
    return list(zip(plans, (float(e) for e in est))) if with_estimates else plans


def plan_gemm(chip: Chip, m: int, n: int, k: int, split: str,
              conv: ConvGeometry | None = None) -> TilePlan:
    """Return the tiling run_gemm_memory would use with this split (the fastest candidate)."""
    return run_gemm_memory(chip, m, n, k, splits=(split,), conv=conv).plan


def _rank(res: "MemoryResult") -> tuple[int, int, int]:
    return res.total_cycles, res.dram_bytes, res.steps


def _rank_compute(res: "MemoryResult") -> tuple[int, int, int, int]:
    return res.compute_cycles, res.total_cycles, res.dram_bytes, res.steps


def dram_traffic_closed_form(chip: Chip, m: int, n: int, k: int, plan: TilePlan,
                             conv: ConvGeometry | None = None) -> tuple[int, ...]:
    """Return DRAM bytes (A read, B read, O read back, O written) of a plan, in closed form;
    for a feeder-lowered ``conv``, A is its reps times the input bytes of every A tile."""
    from . import _memory
    a, b, o_rd, o_wr = (int(v) for v in _memory._dram_traffic(
        m, n, k, plan.tile_m, plan.tile_n, plan.tile_k, ORDERS.index(plan.loop_order),
        chip.input_bytes, ACC_BYTES, chip.output_bytes))
    geom = _feeder(chip, m, k, conv)
    if geom.size:
        tiles = one_tile.cdiv(m, plan.tile_m) * one_tile.cdiv(k, plan.tile_k)
        a = a // (m * k) * int(interruptible.call(tiles, _memory._tiles_sum, geom, m, k,
                                                  plan.tile_m, plan.tile_k, name="conv-tiles"))
    return a, b, o_rd, o_wr


# The tile walk (numba) runs about 3e7 tile steps a second; a GEMM needing more than this many
# is refused up front rather than walked for minutes (docs/errors.md, "Bounded work").
MAX_TILE_STEPS = 1 << 27


def _steps(m: int, n: int, k: int, plan: TilePlan) -> int:
    """Return the number of tile steps the walk of ``plan`` takes (Python integers)."""
    return one_tile.cdiv(m, plan.tile_m) * one_tile.cdiv(n, plan.tile_n) * \
        one_tile.cdiv(k, plan.tile_k)


def _run(chip: Chip, m: int, n: int, k: int, plan: TilePlan,
         conv: ConvGeometry | None = None) -> MemoryResult:
    from . import _memory
    arr = chip.array
    geom = _feeder(chip, m, k, conv)
    # the im2col traffic bounds a feeder-lowered conv's (a tile touches at most its elements)
    steps = _steps(m, n, k, plan)
    if steps > MAX_TILE_STEPS:
        raise WorkloadError(f"gemm {m}x{n}x{k}", "tile steps", f"walking it takes {steps:,} tile "
                            f"steps ({plan.tile_m}x{plan.tile_n}x{plan.tile_k} tiles), over the "
                            f"limit of 2^27 = {MAX_TILE_STEPS:,} (a few seconds); split the GEMM or "
                            "give the chip larger buffers")
    check_dram_cycles(chip, sum(dram_traffic_closed_form(chip, m, n, k, plan)), 4 * steps,
                      f"gemm {m}x{n}x{k}")
    c = interruptible.call(  # a long walk runs off the main thread, so Ctrl-C stops it
        steps, _memory._run_steps, _DATAFLOW_CODE[arr.dataflow], m, n, k, plan.tile_m, plan.tile_n, plan.tile_k,
        ORDERS.index(plan.loop_order), arr.rows, arr.cols, arr.fill_drain == "full",
        arr.overlap_code, arr.count, _SPLIT_CODE[plan.split], arr.split_tile_m,
        arr.split_tile_n, chip.input_bytes, ACC_BYTES,
        np.array(chip.dram.bytes_per_cycle(chip.clock_hz), np.float64), chip.dram.per_operand,
        chip.dram.latency_cycles, chip.buffers.double_buffered, chip.buffers.unified, _ports(chip),
        chip.output_bytes, geom, name="tile-walk")
    halo = 0
    if geom.size:  # each pass over A fetches the touched feature map once; the rest is halo
        reps = _memory._dram_traffic(m, n, k, plan.tile_m, plan.tile_n, plan.tile_k,
                                     ORDERS.index(plan.loop_order), 1, 1, 1)[0] // (m * k)
        halo = int(c[_memory.C_DRAM_A]) - int(reps) * conv.touched_elems() * chip.input_bytes
    M = _memory
    return MemoryResult(plan, int(c[M.C_TOTAL]), int(c[M.C_COMPUTE]), int(c[M.C_BUSY]),
                        int(c[M.C_STEPS]), int(c[M.C_DRAM_A]), int(c[M.C_DRAM_B]),
                        int(c[M.C_DRAM_O_RD]), int(c[M.C_DRAM_O_WR]), int(c[M.C_BUF_RD]),
                        int(c[M.C_BUF_WR]), int(c[M.C_HOP_BYTES]), int(c[M.C_XFER]),
                        int(c[M.C_PORT]), int(c[M.C_BUF_RD_A]), int(c[M.C_BUF_RD_B]),
                        int(c[M.C_PREFETCH]), int(c[M.C_DRAIN]), int(c[M.C_REG_RD]),
                        int(c[M.C_REG_WR]), halo)


def _run_one_tile(chip: Chip, m: int, n: int, k: int, split: str,
                  conv: ConvGeometry | None = None) -> MemoryResult | None:
    """Return the MemoryResult of a GEMM that runs as one tile on one array, computed in plain
    Python (``one_tile``), or None when the GEMM does not qualify: several arrays, split
    ``tiles``, a fixed tile size, or a GEMM that does not fit the buffers whole. Equal to
    ``_run`` on the single candidate ``candidate_plans`` returns then (tested)."""
    arr, t, buf = chip.array, chip.tiling, chip.buffers
    if arr.count != 1 or split not in ("m", "n") or t.tile_m or t.tile_n or t.tile_k \
            or chip.dram.per_operand:
        return None
    caps = (buf.a.bytes, buf.b.bytes, buf.o.bytes, buf.unified_buffer.bytes)
    # a feeder-lowered conv loads the input elements its windows touch (plain Python)
    a_elems = conv.touched_elems() if _feeder(chip, m, k, conv).size else None
    if not one_tile.fits(m, n, k, chip.input_bytes, ACC_BYTES, caps, buf.unified,
                         buf.double_buffered, a_elems):
        return None
    ports = (buf.a.port_bytes_per_cycle, buf.b.port_bytes_per_cycle,
             buf.o.port_bytes_per_cycle, buf.unified_buffer.port_bytes_per_cycle)
    check_dram_cycles(chip, (m * k + k * n) * chip.input_bytes
                      + m * n * (ACC_BYTES + chip.output_bytes), 4, f"gemm {m}x{n}x{k}")
    bpc = 0.0 if chip.dram.ideal else chip.dram.bandwidth_bytes_per_s / chip.clock_hz
    c = one_tile.one_step(_DATAFLOW_CODE[arr.dataflow], m, n, k, arr.rows, arr.cols,
                          arr.fill_drain == "full", arr.overlap_code, chip.input_bytes,
                          ACC_BYTES, bpc, chip.dram.latency_cycles, buf.unified, ports,
                          chip.output_bytes, a_elems)
    plan = TilePlan(m, n, k, ORDERS[0] if t.loop_order == "auto" else t.loop_order, split)
    return MemoryResult(plan, c["total"], c["compute"], c["busy"], c["steps"], c["dram_a"],
                        c["dram_b"], c["dram_o_rd"], c["dram_o_wr"], c["buf_rd"], c["buf_wr"],
                        c["hop_bytes"], c["xfer"], c["port"], c["buf_rd_a"], c["buf_rd_b"],
                        c["prefetch"], c["drain"], c["reg_rd"], c["reg_wr"])


def _transfer_bound(chip: Chip, traffic: tuple[int, ...]) -> float:
    """Return a lower bound on the cycles DRAM needs for (A, B, O read, O write) bytes: the
    busiest port's bytes over its bandwidth (0 with ideal DRAM)."""
    bpc_a, bpc_b, bpc_o = chip.dram.bytes_per_cycle(chip.clock_hz)
    a, b, o_rd, o_wr = traffic
    if not chip.dram.per_operand:
        return sum(traffic) / bpc_a if bpc_a else 0.0
    return max(a / bpc_a if bpc_a else 0.0, b / bpc_b if bpc_b else 0.0,
               (o_rd + o_wr) / bpc_o if bpc_o else 0.0)


def rate_one_chip(chip: Chip) -> Chip:
    """Return the rate-1 twin of a chip whose compute format runs r = chip.mac_rate MACs per PE
    per cycle: the same array clocked r times faster against the same buffers and DRAM (clock
    x r, DRAM latency in cycles x r, buffer ports' bytes per cycle / r), with rate 1. Its cycle
    counts divided by r are the chip's (docs/numerics.md, "MAC rate")."""
    import dataclasses
    r = chip.mac_rate
    buf = chip.buffers

    def port(b):
        return dataclasses.replace(b, port_bytes_per_cycle=b.port_bytes_per_cycle / r)

    return dataclasses.replace(
        chip, clock_hz=chip.clock_hz * r,
        dram=dataclasses.replace(chip.dram, latency_cycles=chip.dram.latency_cycles * r),
        buffers=dataclasses.replace(buf, a=port(buf.a), b=port(buf.b), o=port(buf.o),
                                    unified_buffer=port(buf.unified_buffer)),
        macs_per_pe_cycle={**chip.macs_per_pe_cycle, chip.compute_dtype: 1})


def _at_rate(res: MemoryResult, r: int) -> MemoryResult:
    """Return the MemoryResult of the rate-1 twin (rate_one_chip) in the real chip's cycles:
    every cycle count divided by r, rounded up (bytes and busy MAC slots unchanged)."""
    import dataclasses

    def up(c: int) -> int:
        return -(-int(c) // r)
    return dataclasses.replace(
        res, total_cycles=up(res.total_cycles), compute_cycles=up(res.compute_cycles),
        dram_transfer_cycles=up(res.dram_transfer_cycles),
        port_stall_cycles=up(res.port_stall_cycles), prefetch_cycles=up(res.prefetch_cycles),
        drain_cycles=up(res.drain_cycles))


def run_gemm_memory(chip: Chip, m: int, n: int, k: int,
                    splits: tuple[str, ...] | None = None,
                    conv: ConvGeometry | None = None) -> MemoryResult:
    """Tile and time an m x n x k GEMM on ``chip``: the candidate tilings (and, for several
    arrays with split ``auto``, both splits) are walked exactly and the fastest is kept (ties:
    less DRAM traffic, fewer steps, split m). Candidates are walked in order of a lower bound on
    their time, max(array cycles, DRAM transfer time), and the walk stops once the bound
    reaches the best time found, so usually one or two are walked. With ``tiling.objective:
    compute`` the fewest array cycles win instead (ties: the fastest, then less traffic):
    candidates are walked in order of their array-cycle estimate (a lower bound on their array
    cycles, exact for streaming tile steps) until it exceeds the best array cycles found.
    ``splits`` overrides the splits tried. ``conv``: the GEMM is this conv's im2col matrix; with
    ``memory.conv_lowering: feeder`` its A tiles load the input elements their windows touch
    (halos included) and occupy that much buffer; otherwise A is the im2col matrix in DRAM."""
    rate = chip.mac_rate
    if rate > 1:
        return _at_rate(run_gemm_memory(rate_one_chip(chip), m, n, k, splits, conv), rate)
    if splits is None:
        splits = ("m", "n") if chip.array.split == "auto" and chip.array.count > 1 else \
            (chip.array.split if chip.array.split != "auto" else "m",)
    if len(splits) == 1:
        res = _run_one_tile(chip, m, n, k, splits[0], conv)
        if res is not None:
            return res
    geom = _feeder(chip, m, k, conv)
    touched = conv.touched_elems() if geom.size else 0
    by_compute = chip.tiling.objective == "compute"
    rank = _rank_compute if by_compute else _rank
    cands = []
    for split in splits:
        for plan, est in candidate_plans(chip, m, n, k, split, with_estimates=True, conv=conv):
            if by_compute:
                cands.append((est, plan))
                continue
            traffic = dram_traffic_closed_form(chip, m, n, k, plan)
            if geom.size:  # a lower bound: each pass over A fetches the touched map at least
                traffic = (traffic[0] // (m * k) * touched, *traffic[1:])
            bound = max(est, _transfer_bound(chip, traffic))
            cands.append((bound, plan))
    cands.sort(key=lambda c: c[0])
    walkable = [c for c in cands if _steps(m, n, k, c[1]) <= MAX_TILE_STEPS]
    if not walkable:  # _run refuses the candidate with the fewest steps, in one line
        walkable = [min(cands, key=lambda c: _steps(m, n, k, c[1]))]
    cands = walkable
    best = None
    walked = 0  # tile steps walked for this GEMM, all candidates together
    for bound, plan in cands:
        if best is not None and bound > (best.compute_cycles if by_compute else best.total_cycles):
            break
        steps = _steps(m, n, k, plan)
        if best is not None and walked + steps > MAX_TILE_STEPS:
            break  # the walk budget is spent: keep the best tiling walked (docs/errors.md)
        walked += steps
        res = _run(chip, m, n, k, plan, conv)
        if best is None or rank(res) < rank(best):
            best = res
    return best
