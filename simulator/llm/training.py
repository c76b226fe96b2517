"""One training step of a language model on dp x tp x pp chips.

Each of ``dp`` data-parallel replicas takes ``global_batch / dp`` sequences of ``seq`` tokens in
micro-batches of ``micro_batch`` sequences, run through ``pp`` stages with the 1F1B schedule
(same bubble as GPipe: the first micro-batch's forward and backward cross every stage, the
others follow at the slowest stage's pace). Backward ops come from
:func:`simulator.llm.ops.backward_ops` (two GEMMs per forward matmul). Gradients are
all-reduced over the data-parallel group (chips strided by tp x pp); the all-reduce overlaps
with the backward pass of the last micro-batch, so only what exceeds it is exposed. The update
is plain SGD, one add-class vector pass over the chip's parameters. No activation
recomputation: every op's output is kept for backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..hardware.chip import INPUT_BYTES, Chip
from ..errors import WorkloadError
from ..core.vector import vector_cycles
from .cost import CATEGORIES, Coster
from .model import ModelSpec
from .ops import backward_ops, decoder_layer_ops, embed_ops, head_ops, layer_split
from .phases import Tally, check_parallel, pipeline_seconds_uniform, positive, stage_weight_bytes
from .system import system_of

__all__ = ["TrainResult", "simulate_training"]


@dataclass
class TrainResult:
    """One training step's time, throughput, breakdown and memory (see :meth:`to_dict`)."""

    model: ModelSpec
    chip: Chip
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: seconds (``*_s``), bytes (``*_bytes``), tokens/s."""
        return {"model": {"name": self.model.name, "source": self.model.source,
                          "parameters": self.model.parameters()},
                "chip": {"name": self.chip.name, "dtype": self.chip.dtype,
                         "peak_ops_per_s": self.chip.peak_ops_per_s}, **self.data}


def simulate_training(chip: Chip, model: ModelSpec, global_batch: int, seq: int, dp: int = 1,
                      tp: int = 1, pp: int = 1, micro_batch: int = 1,
                      coster: Coster | None = None) -> TrainResult:
    """Cost one training step; return the TrainResult. Raises ConfigError / WorkloadError."""
    positive(global_batch, "--global-batch", "global_batch")
    positive(seq, "--seq", "seq")
    positive(micro_batch, "--micro-batch", "micro_batch")
    coster = coster or Coster(chip, system_of(chip))
    check_parallel(model, coster, tp, pp, dp)
    if seq > model.max_context:
        raise WorkloadError(f"--seq {seq}", "seq", f"exceeds the model's context of "
                            f"{model.max_context} ({model.at('max_context')})")
    if global_batch % (dp * micro_batch):
        raise WorkloadError(f"--global-batch {global_batch}", "global_batch",
                            f"must be a multiple of dp x micro-batch = {dp * micro_batch}")
    m = global_batch // (dp * micro_batch)
    b = INPUT_BYTES[chip.dtype]
    t = micro_batch * seq
    layer_f = decoder_layer_ops(model, micro_batch, seq, seq, tp, b)
    layer_b = backward_ops(layer_f)
    first_f = embed_ops(model, t, b)
    last_f = head_ops(model, t, tp, b, train=True)
    split = layer_split(model.layers, pp)

    def tally(ops) -> Tally:
        out = Tally()
        for op in ops:
            out.add(coster.cost(op))
        return out

    lf, lb = tally(layer_f), tally(layer_b)
    fwd, bwd = [], []
    for i, n in enumerate(split):
        f, bk = Tally(), Tally()
        f.merge(lf, n)
        bk.merge(lb, n)
        if i == 0:
            f.merge(tally(first_f))
            bk.merge(tally(backward_ops(first_f)))
        if i == pp - 1:
            f.merge(tally(last_f))
            bk.merge(tally(backward_ops(last_f)))
        fwd.append(f)
        bwd.append(bk)
    stage_s = [f.total + bk.total for f, bk in zip(fwd, bwd)]
    hop_bytes = t * model.d_model * b / tp
    hop = coster.system.p2p(hop_bytes) if pp > 1 else 0.0
    pipe = pipeline_seconds_uniform(stage_s, m, 2 * hop)
    weights = stage_weight_bytes(model, tp, pp, b)
    params_chip = [w // b for w in weights]
    dp_s = [coster.system.all_reduce(w, dp, inner=tp * pp) for w in weights]
    exposed = max(max(0.0, s - bk.total) for s, bk in zip(dp_s, bwd))
    opt_s = max(vector_cycles(chip.vector, "add", p) + chip.launch_cycles
                for p in params_chip) / chip.clock_hz
    step = pipe + exposed + opt_s
    cats = dict.fromkeys(CATEGORIES, 0.0)
    macs = 0
    dram = 0
    link = 0.0
    for f, bk in zip(fwd, bwd):
        for c in CATEGORIES:
            cats[c] += m * (f.seconds[c] + bk.seconds[c]) / pp
        macs += m * (f.macs + bk.macs) * tp * dp
        dram += m * (f.dram_bytes + bk.dram_bytes) * tp * dp
        link += m * (f.link_bytes + bk.link_bytes) * tp * dp
    link += sum(2.0 * (dp - 1) / dp * w for w in weights) * tp * dp if dp > 1 else 0.0
    link += 2 * m * (pp - 1) * hop_bytes * tp * dp
    busy = sum(cats.values())
    p2p = min(2 * m * (pp - 1) * hop / pp, max(0.0, pipe - busy))
    breakdown = {**cats, "p2p": p2p, "bubble": max(0.0, pipe - busy - p2p),
                 "dp_exposed": exposed, "optimizer": opt_s}
    chips = dp * tp * pp
    acts = sum(op.m * op.n * op.count for op in layer_f if op.kind == "matmul") \
        + sum(op.m * op.n for op in layer_f if op.kind in ("vector", "reduce"))
    in_flight = min(m, pp)
    act_bytes = [n * acts * b * in_flight for n in split]
    need = [2 * w + a for w, a in zip(weights, act_bytes)]
    cap = chip.dram.capacity_bytes
    data = {
        "system": coster.system.to_dict(),
        "parallel": {"global_batch": global_batch, "seq": seq, "dp": dp, "tp": tp, "pp": pp,
                     "micro_batch": micro_batch, "micro_batches": m, "chips_used": chips,
                     "dtype": chip.dtype},
        "step": {"time_s": step, "tokens": global_batch * seq,
                 "tokens_per_s": global_batch * seq / step, "flops": 2.0 * macs,
                 "flops_utilisation": 2.0 * macs / (chip.peak_ops_per_s * chips * step),
                 "dram_bytes": float(dram), "link_bytes": float(link),
                 "dp_all_reduce_s": max(dp_s), "breakdown_s": breakdown,
                 "bound": max(breakdown, key=breakdown.get)},
        "memory": {"weight_bytes_per_chip": max(weights), "grad_bytes_per_chip": max(weights),
                   "activation_bytes_per_chip": max(act_bytes), "need_bytes_per_chip": max(need),
                   "capacity_bytes": cap, "fits": (not cap) or max(need) <= cap},
    }
    return TrainResult(model, chip, data)
