"""An ``llm`` run's prefill and first decode step as Chrome Trace Event JSON (open it in
ui.perfetto.dev): ``systolic-sim llm ... --trace FILE.json``.

One process per pipeline stage (one chip of its tensor-parallel group: every chip of a group
runs the same ops at the same time); per stage one track per unit: the systolic array (matmuls,
their DRAM stalls included), the vector unit (vector ops, reductions), DMA (gathers: embedding
rows) and the chip links (tensor-parallel collectives); a "pipeline links" track carries the
activations sent to the next stage. One slice per op run (``l3.attn.qkv`` is layer 3's), with
its shape, seconds by category, MACs, DRAM and link bytes in ``args``; a DRAM bandwidth counter
per stage. Times are microseconds (the costs are seconds at the chip clock).

The schedule is the greedy pipeline: micro-batch j starts on stage i when it has left stage
i-1 (plus the hop) and micro-batch j-1 has left stage i; ops of a stage run one after another
(simulator.llm.phases). With equal stages and micro-batches its prefill ends at the run's TTFT.
The decode step is laid out from an empty pipeline, so with several micro-batches it is longer
than the run's TPOT, which is the steady state where consecutive steps overlap
(``max(sum_j max_i, sum_i + (p-1) hop)``).
"""

from __future__ import annotations

import json
from typing import Any

from ..hardware.chip import Chip
from .cost import Coster, OpCost
from .inference import _Run
from .model import ModelSpec
from .phases import check_parallel
from .ops import LayerOp, decoder_layer_ops, embed_ops, head_ops, layer_split
from .system import system_of

__all__ = ["llm_trace_events", "write_llm_trace"]

_UNIT_OF_KIND = {"matmul": "array", "vector": "vector unit", "reduce": "vector unit",
                 "gather": "DMA"}
_UNITS = ("array", "vector unit", "DMA", "chip links")
_LINKS_PID = 1000


def _stage_ops(run: _Run, model: ModelSpec, q: int, ctx: int, bm: int,
               stage: int, pp: int) -> list[tuple[str, LayerOp, OpCost]]:
    """Return (slice name, op, cost) of one micro-batch of ``bm`` sequences on pipeline stage
    ``stage``: the embedding on the first stage, its decoder layers, the head on the last."""
    coster = run.coster
    layer = decoder_layer_ops(model, bm, q, ctx, run.tp, run.b)
    split = layer_split(model.layers, pp)
    first_layer = sum(split[:stage])
    out: list[tuple[str, LayerOp, OpCost]] = []
    if stage == 0:
        out += [(op.name, op, coster.cost(op)) for op in embed_ops(model, bm * q, run.b)]
    for li in range(first_layer, first_layer + split[stage]):
        out += [(f"l{li}.{op.name}", op, coster.cost(op)) for op in layer]
    if stage == pp - 1:
        last = head_ops(model, bm * q if run.all_logits else bm, run.tp, run.b, train=False)
        out += [(op.name, op, coster.cost(op)) for op in last]
    return out


def _shape(op: LayerOp) -> list[int]:
    return [op.m, op.n, op.k] if op.kind == "matmul" else \
        [op.m, op.n] if op.kind in ("vector", "reduce") else [op.nbytes]


def _phase(events: list[dict[str, Any]], run: _Run, model: ModelSpec, q: int, ctx: int,
           t0_s: float, label: str) -> float:
    """Append the slices of one phase (every micro-batch through every stage) starting at
    ``t0_s`` seconds; return the second the phase ends."""
    pp = run.pp
    stage_free = [t0_s] * pp
    end = t0_s
    for j, bm in enumerate(size for size, n in run.sizes for _ in range(n)):
        ready = t0_s
        hop_bytes = bm * q * model.d_model * run.b / run.tp
        hop_s = run.system.p2p(hop_bytes) if pp > 1 else 0.0
        for i in range(pp):
            t = max(ready, stage_free[i])
            for name, op, c in _stage_ops(run, model, q, ctx, bm, i, pp):
                unit = _UNIT_OF_KIND.get(op.kind, "chip links")
                args = {"phase": label, "micro_batch": j, "kind": op.kind,
                        "shape": _shape(op), "seconds": c.seconds, "array_s": c.array,
                        "memory_s": c.memory, "vector_s": c.vector,
                        "overhead_s": c.overhead, "comm_s": c.comm, "macs": c.macs,
                        "dram_bytes": c.dram_bytes, "link_bytes": c.link_bytes}
                events.append({"name": name, "cat": label, "ph": "X", "pid": i,
                               "tid": _UNITS.index(unit), "ts": t * 1e6,
                               "dur": c.seconds * 1e6, "args": args})
                if c.seconds > 0:
                    events.append({"name": f"stage {i} DRAM bandwidth", "ph": "C", "pid": i,
                                   "ts": t * 1e6, "args": {"GB/s": c.dram_bytes / c.seconds
                                                           / 1e9}})
                t += c.seconds
            stage_free[i] = t
            events.append({"name": f"stage {i} DRAM bandwidth", "ph": "C", "pid": i,
                           "ts": t * 1e6, "args": {"GB/s": 0.0}})
            if i < pp - 1:
                events.append({"name": f"{label} mb{j} stage {i} -> {i + 1}", "cat": label,
                               "ph": "X", "pid": _LINKS_PID, "tid": i, "ts": t * 1e6,
                               "dur": hop_s * 1e6, "args": {"bytes": hop_bytes,
                                                            "seconds": hop_s}})
                ready = t + hop_s
            end = max(end, t)
    return end


def llm_trace_events(chip: Chip, model: ModelSpec, batch: int, prompt: int, tp: int = 1,
                     pp: int = 1, micro_batches: int = 0,
                     all_logits: bool = False) -> dict[str, Any]:
    """Return the Trace Event JSON object of the prefill of ``batch`` sequences of ``prompt``
    tokens and the first decode step on tp x pp chips; ``otherData`` holds the phase ends in
    seconds (``prefill_end_s``, ``decode_step_end_s``)."""
    coster = Coster(chip, system_of(chip))
    check_parallel(model, coster, tp, pp)
    m = micro_batches or min(batch, pp)
    run = _Run(coster, model, tp, pp, batch, m, all_logits)
    events: list[dict[str, Any]] = []
    for i in range(pp):
        events.append({"name": "process_name", "ph": "M", "pid": i,
                       "args": {"name": f"stage {i} ({chip.name}, 1 of tp {tp})"}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": i, "args":
                       {"sort_index": i}})
        for tid, unit in enumerate(_UNITS):
            events.append({"name": "thread_name", "ph": "M", "pid": i, "tid": tid,
                           "args": {"name": unit}})
    if pp > 1:
        events.append({"name": "process_name", "ph": "M", "pid": _LINKS_PID,
                       "args": {"name": "pipeline links"}})
        for i in range(pp - 1):
            events.append({"name": "thread_name", "ph": "M", "pid": _LINKS_PID, "tid": i,
                           "args": {"name": f"stage {i} -> {i + 1}"}})
    prefill_end = _phase(events, run, model, prompt, prompt, 0.0, "prefill")
    decode_end = _phase(events, run, model, 1, prompt + 1, prefill_end, "decode step 1")
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"model": model.name, "chip": chip.name, "tp": tp, "pp": pp,
                          "micro_batches": m, "prefill_end_s": prefill_end,
                          "decode_step_end_s": decode_end,
                          "time_unit": "microseconds"}}


def write_llm_trace(path: str, flag: str = "--trace", **kwargs: Any) -> None:
    """Write llm_trace_events(**kwargs) to ``path`` as JSON (WorkloadError naming ``flag`` when
    it cannot be written)."""
    from ..tools.outputs import write_output
    write_output(path, flag, json.dumps(llm_trace_events(**kwargs)))
