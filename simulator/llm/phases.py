"""Shared pieces of inference and training: a pass through the pipeline stages, tallies of
where time goes, the pipeline schedule and device-memory use.

A *pass* pushes one micro-batch through every stage: stage ``i`` runs its decoder layers (the
same op list, costed once and multiplied) plus the embedding (first stage) and the output head
(last stage). Ops of a stage run one after another, each consuming the previous one's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError, WorkloadError
from .cost import CATEGORIES, Coster, OpCost
from .model import ModelSpec
from .ops import LayerOp, check_tp, layer_split

__all__ = ["PassCost", "Tally", "check_parallel", "layer_weight_bytes", "pipeline_seconds",
           "positive", "run_pass"]


@dataclass
class Tally:
    """Seconds by category (CATEGORIES) plus MACs, DRAM bytes and link bytes; addable."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))
    macs: int = 0
    dram_bytes: int = 0
    link_bytes: float = 0.0

    def add(self, c: OpCost, times: float = 1) -> None:
        """Add ``times`` copies of op cost ``c``."""
        s = self.seconds
        s["array"] += times * c.array
        s["memory"] += times * c.memory
        s["vector"] += times * c.vector
        s["overhead"] += times * c.overhead
        s["comm"] += times * c.comm
        self.macs += int(times * c.macs)
        self.dram_bytes += int(times * c.dram_bytes)
        self.link_bytes += times * c.link_bytes

    def merge(self, other: "Tally", times: float = 1) -> None:
        """Add ``times`` copies of another tally."""
        for k, v in other.seconds.items():
            self.seconds[k] += times * v
        self.macs += int(times * other.macs)
        self.dram_bytes += int(times * other.dram_bytes)
        self.link_bytes += times * other.link_bytes

    @property
    def total(self) -> float:
        """Return the tally's seconds over all categories."""
        return sum(self.seconds.values())


@dataclass
class PassCost:
    """One micro-batch through all stages: per-stage tallies and the ops with their costs and
    how many times each runs per pass on one chip of its stage (layers x ops)."""

    stages: list[Tally]
    ops: list[tuple[LayerOp, OpCost, int]]


def positive(value: int, flag: str, name: str) -> int:
    """Return ``value`` or raise WorkloadError naming the command-line ``flag``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorkloadError(f"{flag} {value}", name, f"must be a positive integer, got {value!r}")
    return value


def check_parallel(model: ModelSpec, coster: Coster, tp: int, pp: int, dp: int = 1) -> None:
    """Raise ConfigError / WorkloadError when tp x pp x dp cannot run ``model`` on the system:
    tp not splitting heads or FFN, more stages than layers, more chips than the system has."""
    positive(tp, "--tp", "tp")
    positive(pp, "--pp", "pp")
    positive(dp, "--dp", "dp")
    check_tp(model, tp)
    if pp > model.layers:
        raise ConfigError(model.at("layers"), "layers", f"{model.layers} layers cannot fill "
                          f"{pp} pipeline stages")
    coster.system.need(tp * pp * dp, f"tp {tp} x pp {pp}" + (f" x dp {dp}" if dp > 1 else ""))


def run_pass(coster: Coster, model: ModelSpec, layer: list[LayerOp], first: list[LayerOp],
             last: list[LayerOp], pp: int) -> PassCost:
    """Return the PassCost of a pass: ``layer`` ops on every stage's layers, ``first`` on the
    first stage and ``last`` on the last one."""
    split = layer_split(model.layers, pp)
    layer_tally = Tally()
    costs = []
    for op in layer:
        c = coster.cost(op)
        layer_tally.add(c)
        costs.append((op, c, model.layers))
    stages = []
    for i, n in enumerate(split):
        t = Tally()
        t.merge(layer_tally, n)
        stages.append(t)
    for ops, idx in ((first, 0), (last, pp - 1)):
        for op in ops:
            c = coster.cost(op)
            stages[idx].add(c)
            costs.append((op, c, 1))
    return PassCost(stages, costs)


def pipeline_seconds(micro: list[list[float]], hop_s: float, decode: bool) -> float:
    """Return the seconds of micro-batches through the pipeline stages; ``micro[j][i]`` is
    micro-batch j's time on stage i (the largest first), ``hop_s`` one stage-to-stage
    transfer. A forward pass (prefill, training): the first micro-batch crosses every stage,
    each other follows at its slowest stage's pace, ``sum + (p-1) hop + sum_j>0 max_i`` (m
    equal stages: the bubble is (p-1)/(m+p-1) of the time). A decode step: every
    micro-batch's token must cross every stage before its next one, so the step takes
    ``max(sum_j max_i, sum_i + (p-1) hop)``."""
    first = micro[0]
    through = sum(first) + (len(first) - 1) * hop_s
    paced = sum(max(s) for s in micro)
    if decode:
        return max(paced, through)
    return through + paced - max(first)


def pipeline_seconds_uniform(stage: list[float], m: int, hop_s: float) -> float:
    """Return :func:`pipeline_seconds` of ``m`` identical micro-batches (forward pass) in
    closed form, ``sum + (p-1) hop + (m-1) max``: time and memory do not grow with ``m``
    (``llm --train --global-batch 600000000`` costs as fast as 1024)."""
    through = sum(stage) + (len(stage) - 1) * hop_s
    return through + (m - 1) * max(stage)


def layer_weight_bytes(model: ModelSpec, tp: int, elem_bytes: int) -> int:
    """Return one decoder layer's parameter bytes on one chip of a tp group (matmul weights
    split or, for MoE, whole experts per chip; norms, router and replicated KV heads whole)."""
    d, hd = model.d_model, model.head_dim
    h_l, kv_l = model.heads // tp, max(1, model.kv_heads // tp)
    attn = d * (h_l + 2 * kv_l) * hd + h_l * hd * d
    if model.qkv_bias:
        attn += (h_l + 2 * kv_l) * hd
    per_ffn = d * model.ffn_dim * (3 if model.ffn_gated else 2)
    up_bias = model.ffn_dim * (2 if model.ffn_gated else 1) if model.linear_bias else 0
    if model.linear_bias:  # the output projection's bias whole on every chip
        attn += d
    if model.moe:  # whole experts per chip, each with its biases
        ffn = model.experts // tp * (per_ffn + (up_bias + d if model.linear_bias else 0)) \
            + d * model.experts
    else:  # up weights and biases split, the down projection's bias whole
        ffn = per_ffn // tp + up_bias // tp + (d if model.linear_bias else 0)
    norms = 2 * d * (2 if model.norm == "layernorm" else 1)
    return (attn + ffn + norms) * elem_bytes


def stage_weight_bytes(model: ModelSpec, tp: int, pp: int, elem_bytes: int) -> list[int]:
    """Return the parameter bytes on one chip of each pipeline stage: its layers, the
    vocabulary-parallel embedding on the first stage, final norm and output head on the last
    (a tied head shares the embedding only when both sit on one stage)."""
    v_l = -(-model.vocab // tp)
    per_layer = layer_weight_bytes(model, tp, elem_bytes)
    out = [n * per_layer for n in layer_split(model.layers, pp)]
    out[0] += v_l * model.d_model * elem_bytes
    if model.position == "learned":
        out[0] += model.max_context * model.d_model * elem_bytes
    out[-1] += model.d_model * (2 if model.norm == "layernorm" else 1) * elem_bytes
    if not (model.tied_embeddings and pp == 1):
        out[-1] += v_l * model.d_model * elem_bytes
    return out


__all__.append("stage_weight_bytes")
