"""One prefill or one decode step of a language model on one chip, as a sweep / explore workload.

The step's ops are the ``llm`` command's own (:func:`~simulator.llm.ops.decoder_layer_ops` once
per decoder layer, the embedding gather first, the output head last; tensor and pipeline
parallelism 1), run one after another. Each array and vector op is timed and charged energy by
:func:`simulator.core.engine.run` on the op's Program (:func:`~simulator.llm.ops.to_program`),
which is exactly what the ``llm`` command's :class:`~simulator.llm.cost.Coster` charges for it
(``tests/test_llm.py`` holds the two equal); the embedding gather, which the Program leaves out,
is the Coster's (its rows streamed from DRAM through the vector unit) with the energy of its DRAM
bytes and vector lane operations from :func:`simulator.hardware.energy.energy_breakdown`. Static
power is charged over the step's time. The step time equals what ``systolic-sim llm`` reports
for one step at that context with ``--tp 1 --pp 1`` (a decode step: ``tpot_at_s``; a prefill:
``ttft``).

A decode step runs ``batch`` sequences of one new token each attending to ``context`` keys (its
own included); a prefill runs ``batch`` prompts of ``context`` tokens and projects each
sequence's last position to the vocabulary. The model's weights and KV cache must fit in the
chip's DRAM (``dram.capacity_bytes``; 0 means unbounded).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError, WorkloadError
from ..hardware.chip import Chip
from ..hardware.energy import energy_breakdown
from .cost import Coster
from .model import ModelSpec
from .ops import decoder_layer_ops, embed_ops, head_ops, to_program
from .phases import positive
from .system import system_of

__all__ = ["PHASES", "step_totals"]

PHASES = ("decode", "prefill")


def step_totals(chip: Chip, model: ModelSpec, phase: str, batch: int, context: int
                ) -> dict[str, Any]:
    """Return the totals of one ``phase`` step (decode or prefill) of ``model`` on ``chip``.

    Keys as the engine's ``Report.totals()`` has them: ``time_s`` (s), ``total_cycles``,
    ``compute_cycles``, ``stall_cycles`` (clock cycles), ``macs``, ``folds``, ``utilisation``,
    ``compute_utilisation``, ``mapping_efficiency`` (0..1), ``energy_pj`` ({part: pJ}, with
    ``total``), ``dram_bytes`` (bytes), ``memory_bound_ops`` (ops, each layer's counted once per
    layer). Raises WorkloadError for a phase other than decode or prefill, a context beyond the
    model's or weights and KV cache that do not fit in the chip's DRAM.
    """
    if phase not in PHASES:
        raise WorkloadError(f"phase {phase}", "phase", f"must be one of {', '.join(PHASES)}")
    positive(batch, "batch", "batch")
    positive(context, "context", "context")
    if context > model.max_context:
        raise ConfigError(model.at("max_context"), "max_context", f"context {context} exceeds "
                          f"the model's {model.max_context} tokens")
    from ..core.engine import run
    from .inference import _elem_bytes
    coster = Coster(chip, system_of(chip))
    b = _elem_bytes(chip.activations_dtype)
    need = math.ceil(model.parameters() * _elem_bytes(chip.weights_dtype)) + math.ceil(
        2 * model.layers * model.kv_heads * model.head_dim * batch * context
        * _elem_bytes(chip.kv_dtype))
    cap = chip.dram.capacity_bytes
    if cap and need > cap:
        raise WorkloadError(f"llm {model.name}", "dram.capacity_bytes",
                            f"weights and KV cache need {need / 2**30:.2f} GiB; the chip's DRAM "
                            f"holds {cap / 2**30:.2f} GiB")
    q = 1 if phase == "decode" else context
    layer = decoder_layer_ops(model, batch, q, context, 1, b)
    head = head_ops(model, batch, 1, b, train=False)
    (gather,) = [op for op in embed_ops(model, batch * q, b) if op.fn == "gather"] or [None]
    rest = [op for op in embed_ops(model, batch * q, b) if op.fn != "gather"]
    flat = chip.with_overrides({"buffers.residency": False})  # each op costed on its own
    acc = dict.fromkeys(("total_cycles", "compute_cycles", "stall_cycles", "macs", "folds",
                         "busy", "dram_bytes", "memory_bound_ops"), 0)
    energy: dict[str, float] = {}
    for ops, times in ((layer, model.layers), (head + rest, 1)):
        prog = to_program(ops)
        if not prog.ops:
            continue
        for op in run(flat, prog).ops:
            acc["total_cycles"] += times * op.total_cycles
            acc["compute_cycles"] += times * op.compute_cycles
            acc["stall_cycles"] += times * op.stall_cycles
            acc["macs"] += times * op.macs
            acc["folds"] += times * op.folds
            acc["busy"] += times * op.busy_pe_cycles
            acc["dram_bytes"] += times * int(op.events.get("dram_bytes", 0))
            acc["memory_bound_ops"] += times * int(op.memory_bound)
            for k, v in op.energy_pj.items():
                if k not in ("static", "total"):
                    energy[k] = energy.get(k, 0.0) + times * v
    if gather is not None:
        cyc = coster.cycles(gather)
        acc["total_cycles"] += cyc
        acc["stall_cycles"] += int(round(coster.cost(gather).memory * chip.clock_hz))
        acc["dram_bytes"] += gather.nbytes
        acc["memory_bound_ops"] += int(coster.cost(gather).memory_bound)
        parts = energy_breakdown(chip, {"dram_bytes": gather.nbytes,
                                        "vector_lane_ops": gather.m * gather.n}, 0.0)
        for k, v in parts.items():
            if k not in ("static", "total"):
                energy[k] = energy.get(k, 0.0) + v
    time_s = acc["total_cycles"] / chip.clock_hz
    energy["static"] = chip.energy.static_w * time_s * 1e12
    energy["total"] = sum(v for k, v in energy.items() if k != "total")
    pes = chip.peak_macs_per_cycle

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0
    return {"total_cycles": acc["total_cycles"], "compute_cycles": acc["compute_cycles"],
            "stall_cycles": acc["stall_cycles"], "macs": acc["macs"], "folds": acc["folds"],
            "utilisation": ratio(acc["macs"], pes * acc["total_cycles"]),
            "compute_utilisation": ratio(acc["macs"], pes * acc["compute_cycles"]),
            "mapping_efficiency": ratio(acc["busy"], pes * acc["compute_cycles"]),
            "time_s": time_s, "energy_pj": energy, "dram_bytes": acc["dram_bytes"],
            "memory_bound_ops": acc["memory_bound_ops"]}
