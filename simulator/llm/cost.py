"""Cost of LLM ops on one chip with the engine's single-chip models.

A matmul costs what :func:`simulator.core.engine.gemm_op` says (array compute, memory stalls from the
tiling and DRAM model, launch overhead); ``count`` GEMMs of one shape are one grouped launch,
placed on the chip's arrays and cut into pieces where a side exceeds the hot loops' bound exactly
as the engine places a batched matmul (:mod:`simulator.core.placement`): ``compute + stall +
requantisation + launch``, the requantisation (a chip whose ``output.dtype`` narrows results)
the exposed part of one vector-unit pass over all their results, pipelined with the array. Vector ops and row reductions cost
:func:`simulator.core.vector.vector_cycles` / :func:`simulator.core.vector.reduction_cycles` plus the launch,
exactly as the engine charges them (an op naming an engine vector op, ``fn``, costs that op's
passes). The embedding gather moves its rows on the vector unit and reads them from DRAM; the
transfer beyond the vector time is a memory stall, as the engine charges a vector op's DRAM
traffic.
Collectives cost what the :class:`~simulator.llm.system.System` says. Every GEMM shape is
timed once per Coster and remembered.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hardware.chip import Chip
from ..core.engine import dram_xfer_cycles, gemm_op, requant_cost
from ..core.vector import VECTOR_OPS, passes_cycles, reduction_cycles, vector_cycles
from .ops import LayerOp
from .system import System

__all__ = ["CATEGORIES", "Coster", "OpCost"]

# Where an op's time goes: array compute, memory stalls (and gathers), vector unit, fixed
# launch overhead, inter-chip communication.
CATEGORIES = ("array", "memory", "vector", "overhead", "comm")


@dataclass(frozen=True)
class OpCost:
    """Seconds of one op by category, its MACs, DRAM bytes and link bytes sent per chip."""

    array: float
    memory: float
    vector: float
    overhead: float
    comm: float
    macs: int
    dram_bytes: int
    link_bytes: float
    memory_bound: bool = False

    @property
    def seconds(self) -> float:
        """Return the op's total seconds (the sum of its categories)."""
        return self.array + self.memory + self.vector + self.overhead + self.comm


class Coster:
    """Costs LayerOps on ``chip`` within ``system``; remembers every GEMM shape it timed."""

    def __init__(self, chip: Chip, system: System,
                 gemm_cache: dict[tuple, tuple[int, int, int, bool]] | None = None):
        """``gemm_cache`` may be shared by Costers of chips that differ only in system keys."""
        self.chip = chip
        self.system = system
        self.clock = chip.clock_hz
        self.launch = chip.launch_cycles
        self._gemm = {} if gemm_cache is None else gemm_cache
        self._ops: dict[tuple, tuple[int, OpCost]] = {}
        # the chip a matmul runs on by its B operand: weights (precision.weights), the KV cache
        # (its K and V in precision.kv_cache) or an activation (precision.activations); A is
        # always an activation. The formats set the bytes moved and the MACs' rate and energy.
        import dataclasses
        self._by_operand = {
            "weight": chip,
            "kv": dataclasses.replace(chip, precision_weights=chip.kv_dtype),
            "act": dataclasses.replace(chip, precision_weights=chip.activations_dtype)}

    def gemm(self, m: int, n: int, k: int, count: int = 1,
             operand: str = "weight") -> tuple[int, int, int, bool]:
        """Return (compute cycles, stall cycles, DRAM bytes, memory bound) of ``count``
        independent m x n x k GEMMs placed on the chip's arrays (launch and requantisation not
        included); ``operand``: what B is (weight, kv or act), which sets its format."""
        chip = self._by_operand.get(operand, self.chip)
        key = (m, n, k, count, chip.weights_dtype, chip.activations_dtype)
        got = self._gemm.get(key)
        if got is None:
            rep = gemm_op(chip, m, n, k, count=count)
            got = self._gemm[key] = (rep.compute_cycles, rep.stall_cycles,
                                     int(rep.events["dram_bytes"]), bool(rep.memory_bound))
        return got

    def cycles(self, op: LayerOp) -> int:
        """Return the on-chip cycles of an array, vector, reduce or gather op (launch included)."""
        return self._cost(op)[0]

    def cost(self, op: LayerOp) -> OpCost:
        """Return the OpCost of ``op`` (seconds by category, counts)."""
        return self._cost(op)[1]

    def _cost(self, op: LayerOp) -> tuple[int, OpCost]:
        key = (op.kind, op.m, op.n, op.k, op.count, op.op_class, op.nbytes, op.group, op.fn,
               op.operand)
        got = self._ops.get(key)
        if got is None:
            got = self._ops[key] = self._compute(op)
        return got

    def _compute(self, op: LayerOp) -> tuple[int, OpCost]:
        clk = self.clock
        kind = op.kind
        if kind == "matmul":
            comp, stall, dram, bound = self.gemm(op.m, op.n, op.k, op.count, op.operand or "weight")
            # results narrowed to output.dtype: one requantisation pass over all the GEMMs'
            # results on the vector unit, pipelined with the array, as the engine charges a
            # batched matmul (its exposed part)
            rq, _, _ = requant_cost(self.chip, op.count * op.m * op.n, comp + stall)
            cyc = comp + stall + rq + self.launch
            return cyc, OpCost(comp / clk, stall / clk, rq / clk,
                               self.launch / clk, 0.0, op.macs, dram, 0.0, bound)
        if kind == "vector" and op.fn in VECTOR_OPS:
            body, _ = passes_cycles(self.chip.vector, _passes(op))
            stall = max(0, dram_xfer_cycles(self.chip, op.nbytes) - body) if op.nbytes else 0
            return body + stall + self.launch, OpCost(0.0, stall / clk, body / clk,
                                                      self.launch / clk, 0.0, 0, op.nbytes, 0.0,
                                                      stall > 0)
        if kind == "vector":
            body = vector_cycles(self.chip.vector, op.op_class, op.m * op.n)
            return body + self.launch, OpCost(0.0, 0.0, body / clk, self.launch / clk, 0.0, 0,
                                              0, 0.0)
        if kind == "reduce":
            body = reduction_cycles(self.chip.vector, op.m * op.n, op.n)
            return body + self.launch, OpCost(0.0, 0.0, body / clk, self.launch / clk, 0.0, 0,
                                              0, 0.0)
        if kind == "gather":
            per = self.chip.dram_bytes_per_cycle
            body = 0 if per == float("inf") else int(-(-op.nbytes // per))
            return body + self.launch, OpCost(0.0, body / clk, 0.0, self.launch / clk, 0.0, 0,
                                              op.nbytes, 0.0, True)
        s, n = float(op.nbytes), op.group
        sysm = self.system
        if kind == "all_reduce":
            sec, sent = sysm.all_reduce(s, n), 2.0 * (n - 1) / n * s
        elif kind in ("all_gather", "reduce_scatter"):
            sec, sent = sysm.all_gather(s, n), (n - 1) / n * s
        elif kind == "all_to_all":
            sec, sent = sysm.all_to_all(s, n), (n - 1) / n * s
        else:
            raise ValueError(f"unknown op kind {kind!r}")  # pragma: no cover - ops.py makes them
        return 0, OpCost(0.0, 0.0, 0.0, 0.0, sec, 0, 0, sent)


def _passes(op: LayerOp) -> list[tuple[str, int, int]]:
    """Return the engine's vector passes of ``op`` (rows m x cols n, parameters of width n)."""
    spec = VECTOR_OPS[op.fn]
    x = (op.m, op.n)
    if op.fn == "gather":  # (table, ids) -> rows of width n
        return spec.passes([(op.m, op.n), (op.m,)], x, {})
    shapes = [x] + [(op.n,)] * {"layernorm": 2, "rmsnorm": 1}.get(op.fn, 0)
    return spec.passes(shapes, x, {"axis": -1, "eps": 1e-5})
