"""Serving a language model: prefill (TTFT), decode (TPOT) and tokens/s on a system of chips.

Prefill runs the ``prompt`` tokens of ``batch`` sequences and produces each sequence's first
output token; decode then runs ``generate - 1`` steps of one token per sequence, step ``j``
attending to ``prompt + j`` keys (its own included). The batch is cut into ``micro_batches``
(default: as many as pipeline stages, at most the batch) that flow through the pipeline.

Decode steps of one shape are costed once: every op but attention has the same shape at every
step, and the step time ``f(L)`` is evaluated only at ``decode_points + 1`` context lengths
``L`` spread over the decode range and summed as the piecewise-linear interpolation through
them (exact where ``f`` is affine between the points, which the vector unit's and the
bandwidth-bound attention's costs nearly are; ``exact=True`` evaluates every step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import math

import numpy as np

from ..hardware.chip import ELEMENT_BITS, Chip
from ..errors import ConfigError, WorkloadError
from .cost import CATEGORIES, Coster
from .model import ModelSpec
from .ops import decoder_layer_ops, embed_ops, head_ops, layer_split
from .phases import (PassCost, check_parallel, pipeline_seconds, positive, run_pass,
                     stage_weight_bytes)
from .system import system_of

__all__ = ["InferenceResult", "decode_weights", "simulate_inference"]

_VEC = ("seconds",) + CATEGORIES + ("p2p", "bubble", "macs", "dram_bytes", "link_bytes")


@dataclass
class InferenceResult:
    """Everything one ``llm`` run reports (see :meth:`to_dict` for units)."""

    model: ModelSpec
    chip: Chip
    params: dict[str, Any]
    memory: dict[str, Any]
    prefill: dict[str, Any]
    decode: dict[str, Any]
    totals: dict[str, Any]
    prefill_ops: list[dict[str, Any]] = field(default_factory=list)
    decode_ops: list[dict[str, Any]] = field(default_factory=list)
    system: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: seconds (``*_s``), bytes (``*_bytes``), tokens/s."""
        return {"model": {"name": self.model.name, "source": self.model.source,
                          "parameters": self.model.parameters()},
                "chip": {"name": self.chip.name, "dtype": self.chip.dtype,
                         "precision": precision_of(self.chip),
                         "peak_ops_per_s": self.chip.peak_ops_per_s,
                         "peak_ops_per_s_by_format": {
                             f: self.chip.peak_ops_per_s_of(f) for f in ELEMENT_BITS},
                         "dram_bandwidth_bytes_per_s": self.chip.dram.bandwidth_bytes_per_s,
                         "dram_capacity_bytes": self.chip.dram.capacity_bytes},
                "system": self.system, "parallel": self.params, "memory": self.memory,
                "prefill": self.prefill, "decode": self.decode, "totals": self.totals,
                "prefill_ops": self.prefill_ops, "decode_ops": self.decode_ops}


def decode_weights(n_steps: int, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (offsets, weights): the step offsets 0..n_steps-1 at which to evaluate the decode
    step time and the weight of each, so that sum(weights * f(offsets)) is the sum over all
    steps of the piecewise-linear interpolation of f through the evaluated offsets (every
    offset, weight 1, when n_steps <= points + 1)."""
    if n_steps <= 0:
        return np.zeros(0, np.int64), np.zeros(0)
    if n_steps <= points + 1:
        return np.arange(n_steps, dtype=np.int64), np.ones(n_steps)
    b = np.unique(np.linspace(0, n_steps - 1, points + 1).round().astype(np.int64))
    w = np.zeros(len(b))
    for j in range(len(b) - 1):
        n = int(b[j + 1] - b[j])
        w[j] += (n + 1) / 2
        w[j + 1] += (n - 1) / 2
    w[-1] += 1
    return b, w


class _Run:
    """One configuration's costing: passes, pipeline, breakdowns. The batch is cut into
    ``m`` micro-batches as even as possible (sizes differ by at most one)."""

    def __init__(self, coster: Coster, model: ModelSpec, tp: int, pp: int, batch: int, m: int,
                 all_logits: bool = False):
        self.coster, self.model, self.tp, self.pp, self.m = coster, model, tp, pp, m
        self.all_logits = all_logits
        lo, extra = divmod(batch, m)
        self.sizes = [(lo + 1, extra)] + ([(lo, m - extra)] if lo and m > extra else [])
        self.sizes = [(size, n) for size, n in self.sizes if n]
        # bytes per element of activations (network tensors, collectives), weights and the
        # KV cache (precision.*; int4: half a byte)
        self.b = _elem_bytes(coster.chip.activations_dtype)
        self.wb = _elem_bytes(coster.chip.weights_dtype)
        self.kvb = _elem_bytes(coster.chip.kv_dtype)
        self.system = coster.system

    def pass_cost(self, q: int, ctx: int, bm: int) -> PassCost:
        layer = decoder_layer_ops(self.model, bm, q, ctx, self.tp, self.b)
        first = embed_ops(self.model, bm * q, self.b)
        last = head_ops(self.model, bm * q if self.all_logits else bm, self.tp, self.b,
                        train=False)
        return run_pass(self.coster, self.model, layer, first, last, self.pp)

    def phase(self, q: int, ctx: int, decode: bool) -> tuple[np.ndarray, PassCost]:
        """Return the phase vector (_VEC) of one prefill or one decode step, and the pass of
        the largest micro-batch."""
        vec = dict.fromkeys(_VEC, 0.0)
        per_micro: list[list[float]] = []
        hops: list[float] = []
        p2p_work = 0.0
        largest = None
        for bm, n in self.sizes:
            pc = self.pass_cost(q, ctx, bm)
            largest = largest or pc
            hop_bytes = bm * q * self.model.d_model * self.b / self.tp
            hop = self.system.p2p(hop_bytes) if self.pp > 1 else 0.0
            per_micro += [[t.total for t in pc.stages]] * n
            hops.append(hop)
            for t in pc.stages:
                for c in CATEGORIES:
                    vec[c] += n * t.seconds[c] / self.pp
                vec["macs"] += n * t.macs * self.tp
                vec["dram_bytes"] += n * t.dram_bytes * self.tp
                vec["link_bytes"] += n * t.link_bytes * self.tp
            p2p_work += n * (self.pp - 1) * hop / self.pp
            vec["link_bytes"] += n * (self.pp - 1) * hop_bytes * self.tp
        total = pipeline_seconds(per_micro, hops[0], decode)
        vec["seconds"] = total
        busy = sum(vec[c] for c in CATEGORIES)
        vec["p2p"] = min(p2p_work, max(0.0, total - busy))
        vec["bubble"] = max(0.0, total - busy - vec["p2p"])
        return np.array([vec[k] for k in _VEC]), largest


def _breakdown(vec: np.ndarray) -> dict[str, float]:
    return {k: float(v) for k, v in zip(_VEC[1:1 + len(CATEGORIES) + 2], vec[1:])}


def _op_rows(pc: PassCost, clock_hz: float, per: float = 1.0) -> list[dict[str, Any]]:
    """Per-op rows: shape, runs per pass, seconds (all runs), roofline position."""
    rows: dict[str, dict[str, Any]] = {}
    for op, c, times in pc.ops:
        row = rows.get(op.name)
        if row is None:
            shape = [op.m, op.n, op.k] if op.kind == "matmul" else \
                [op.m, op.n] if op.kind in ("vector", "reduce") else [op.nbytes]
            row = rows[op.name] = {"name": op.name, "kind": op.kind, "shape": shape,
                                   "count": op.count, "runs": 0, "seconds": 0.0, "macs": 0,
                                   "dram_bytes": 0, "bound": "", "intensity_ops_per_byte": None,
                                   "achieved_ops_per_s": None}
        row["runs"] += times
        row["seconds"] += times * c.seconds * per
        row["macs"] += times * c.macs
        row["dram_bytes"] += times * c.dram_bytes
        if op.kind == "matmul":
            row["bound"] = "memory" if c.memory_bound else "compute"
        elif op.kind == "gather":
            row["bound"] = "memory"
        elif op.kind in ("vector", "reduce"):
            row["bound"] = "vector"
        else:
            row["bound"] = "network"
    for row in rows.values():
        if row["macs"]:
            row["intensity_ops_per_byte"] = 2 * row["macs"] / row["dram_bytes"] \
                if row["dram_bytes"] else None
            row["achieved_ops_per_s"] = 2 * row["macs"] / row["seconds"] if row["seconds"] else None
    return list(rows.values())


def simulate_inference(chip: Chip, model: ModelSpec, batch: int, prompt: int, generate: int,
                       tp: int = 1, pp: int = 1, micro_batches: int = 0,
                       decode_points: int = 16, contexts: Sequence[int] = (),
                       exact: bool = False, coster: Coster | None = None,
                       all_logits: bool = False) -> InferenceResult:
    """Cost serving ``batch`` sequences of ``prompt`` tokens generating ``generate`` tokens each
    on tp x pp chips of ``chip``'s system; return the InferenceResult (seconds, bytes).

    The prefill projects only each sequence's last position to the vocabulary (what serving
    needs), or every position with ``all_logits`` (scoring a text, as a forward pass does).

    Raises ConfigError / WorkloadError (one line, FILE:LINE where a file is at fault) on bad
    sizes, parallelism the model or system cannot take, or weights and KV cache that do not fit
    in the memory of all the system's chips.
    """
    positive(batch, "--batch", "batch")
    positive(prompt, "--prompt", "prompt")
    positive(generate, "--generate", "generate")
    positive(decode_points, "--decode-points", "decode_points")
    coster = coster or Coster(chip, system_of(chip))
    check_parallel(model, coster, tp, pp)
    if prompt + generate > model.max_context:
        raise ConfigError(model.at("max_context"), "max_context", f"prompt {prompt} + generate "
                          f"{generate} tokens exceed the model's context of {model.max_context}")
    m = micro_batches or min(batch, pp)
    positive(m, "--micro-batches", "micro_batches")
    if m > batch:
        raise WorkloadError(f"--micro-batches {m}", "micro_batches",
                            f"{m} micro-batches exceed the batch of {batch}")
    bm = -(-batch // m)
    run = _Run(coster, model, tp, pp, batch, m, all_logits)
    memory = _memory(chip, coster, model, batch, prompt + generate, tp, pp, run.wb, run.kvb)

    pre_vec, pre = run.phase(prompt, prompt, decode=False)
    n_steps = generate - 1
    offsets, weights = decode_weights(n_steps, n_steps if exact else decode_points)
    dec_sum = np.zeros(len(_VEC))
    evals: dict[int, float] = {}
    for off, w in zip(offsets, weights):
        ctx = prompt + 1 + int(off)
        vec = run.phase(1, ctx, decode=True)[0]
        evals[ctx] = float(vec[0])
        dec_sum += w * vec
    at = {}
    for ctx in contexts:
        if not prompt < ctx <= model.max_context:
            raise WorkloadError(f"--context {ctx}", "context", f"must lie in ({prompt}, "
                                f"{model.max_context}]: decode contexts follow the prompt")
        at[str(ctx)] = float(run.phase(1, ctx, decode=True)[0][0])
    ttft = float(pre_vec[0])
    dec_total = float(dec_sum[0])
    mid_ctx = prompt + 1 + n_steps // 2 if n_steps else prompt + 1
    mid = run.pass_cost(1, mid_ctx, bm)
    hd, kv = model.head_dim, model.kv_heads
    kv_read_mean = 2 * model.layers * batch * kv * hd * (prompt + 1 + (n_steps - 1) / 2) * run.kvb \
        if n_steps else 0.0
    prefill = {"time_s": ttft, "tokens": batch * prompt, "flops": 2.0 * pre_vec[_VEC.index("macs")],
               "dram_bytes": float(pre_vec[_VEC.index("dram_bytes")]),
               "link_bytes": float(pre_vec[_VEC.index("link_bytes")]),
               "breakdown_s": _breakdown(pre_vec), "bound": _bound(pre_vec)}
    decode = {"steps": n_steps, "time_s": dec_total,
              # no decode step (generate 1): no time per output token (null, "-" in text)
              "tpot_mean_s": dec_total / n_steps if n_steps else None,
              "tpot_first_s": evals.get(prompt + 1, 0.0) if n_steps else None,
              "tpot_last_s": evals.get(prompt + n_steps, 0.0) if n_steps else None,
              "tpot_at_s": at, "evaluated_contexts": len(evals),
              "flops": 2.0 * float(dec_sum[_VEC.index("macs")]),
              "dram_bytes": float(dec_sum[_VEC.index("dram_bytes")]),
              "link_bytes": float(dec_sum[_VEC.index("link_bytes")]),
              "kv_bytes_read_mean": float(kv_read_mean),
              "breakdown_s": _breakdown(dec_sum), "bound": _bound(dec_sum) if n_steps else "-"}
    total_s = ttft + dec_total
    totals = {"time_s": total_s, "tokens_generated": batch * generate,
              "tokens_per_s": batch * generate / total_s,
              "decode_tokens_per_s": batch * n_steps / dec_total if n_steps else None,
              "chips_used": tp * pp,
              "bytes_moved": prefill["dram_bytes"] + prefill["link_bytes"] + decode["dram_bytes"]
              + decode["link_bytes"]}
    params = {"batch": batch, "prompt": prompt, "generate": generate, "tp": tp, "pp": pp,
              "micro_batches": m, "micro_batch_size": bm, "dtype": chip.dtype,
              "precision": precision_of(chip),
              "decode_points": len(offsets), "exact_decode": bool(exact or n_steps <= decode_points + 1),
              "all_logits": bool(all_logits)}
    return InferenceResult(model, chip, params, memory, prefill, decode, totals,
                           _op_rows(pre, chip.clock_hz, m), _op_rows(mid, chip.clock_hz, m),
                           coster.system.to_dict())


def _elem_bytes(fmt: str) -> int | float:
    """Return bytes per element of ``fmt``: an int for whole bytes, 0.5 for int4."""
    bits = ELEMENT_BITS[fmt]
    return bits // 8 if bits % 8 == 0 else bits / 8


def precision_of(chip: Chip) -> dict[str, str]:
    """Return the formats of weights, activations and the KV cache and the MACs' format."""
    return {"weights": chip.weights_dtype, "activations": chip.activations_dtype,
            "kv_cache": chip.kv_dtype, "compute": chip.compute_dtype}


def _bound(vec: np.ndarray) -> str:
    parts = {k: vec[_VEC.index(k)] for k in ("array", "memory", "vector", "overhead", "comm",
                                              "p2p", "bubble")}
    return max(parts, key=parts.get)


def _memory(chip: Chip, coster: Coster, model: ModelSpec, batch: int, context: int, tp: int,
            pp: int, wb: float, kvb: float) -> dict[str, Any]:
    """Return per-chip weight and KV-cache bytes (largest stage) and whether they fit; raise
    ConfigError at dram.capacity_bytes when they do not fit even over all the system's chips.
    ``wb``, ``kvb``: bytes per weight and per KV-cache element (precision.weights, kv_cache;
    int4: 0.5, totals rounded up to whole bytes)."""
    def up(x: float) -> int:
        return int(math.ceil(x))
    weights = [up(w) for w in stage_weight_bytes(model, tp, pp, wb)]
    kv_l = max(1, model.kv_heads // tp)
    kv = [up(n * 2 * kv_l * model.head_dim * batch * context * kvb)
          for n in layer_split(model.layers, pp)]
    need = [w + k for w, k in zip(weights, kv)]
    cap = chip.dram.capacity_bytes
    total_weights = up(model.parameters() * wb)
    total_kv = up(2 * model.layers * model.kv_heads * model.head_dim * batch * context * kvb)
    chips = coster.system.chips
    if cap and total_weights + total_kv > chips * cap:
        raise ConfigError(chip.where("dram.capacity_bytes"), "dram.capacity_bytes",
                          f"{model.name} needs {(total_weights + total_kv) / 2**30:.1f} GiB "
                          f"(weights {total_weights / 2**30:.1f} + KV cache "
                          f"{total_kv / 2**30:.1f}); all {chips} chips hold "
                          f"{chips * cap / 2**30:.1f} GiB")
    return {"weight_bytes_per_chip": max(weights), "kv_bytes_per_chip": max(kv),
            "need_bytes_per_chip": max(need), "capacity_bytes": cap,
            "fits": (not cap) or max(need) <= cap,
            "weight_bytes_total": total_weights, "kv_bytes_total": total_kv}
