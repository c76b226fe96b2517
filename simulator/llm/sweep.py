"""Sweeps of ``llm`` runs over batch, tp, pp and system size; the best (tp, pp) per case.

Every point is one :func:`simulator.llm.inference.simulate_inference`; chips that differ only in
``system.chips`` share one table of timed GEMM shapes, so a shape is timed once per sweep. A
point the model or system cannot take (tp not splitting heads, more chips than the system has,
memory too small) becomes a row with its one-line reason in ``status``.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..hardware.chip import Chip
from ..errors import SimulatorInputError
from .cost import Coster
from .inference import simulate_inference
from .model import ModelSpec
from .system import system_of

__all__ = ["COLUMNS", "best_points", "sweep_inference"]

COLUMNS = ("chips", "batch", "tp", "pp", "status", "ttft_s", "tpot_s", "tokens_per_s",
           "decode_tokens_per_s", "prefill_bound", "decode_bound", "fits",
           "weight_bytes_per_chip", "kv_bytes_per_chip", "prefill_s", "decode_s",
           "prefill_array_s", "prefill_memory_s", "prefill_vector_s", "prefill_overhead_s",
           "prefill_comm_s", "prefill_bubble_s", "decode_array_s", "decode_memory_s",
           "decode_vector_s", "decode_overhead_s", "decode_comm_s", "decode_bubble_s")


def _row(res, chips: int) -> dict[str, Any]:
    d = res.to_dict()
    row = {"chips": chips, "batch": d["parallel"]["batch"], "tp": d["parallel"]["tp"],
           "pp": d["parallel"]["pp"], "status": "ok", "ttft_s": d["prefill"]["time_s"],
           "tpot_s": d["decode"]["tpot_mean_s"], "tokens_per_s": d["totals"]["tokens_per_s"],
           "decode_tokens_per_s": d["totals"]["decode_tokens_per_s"],
           "prefill_bound": d["prefill"]["bound"], "decode_bound": d["decode"]["bound"],
           "fits": d["memory"]["fits"],
           "weight_bytes_per_chip": d["memory"]["weight_bytes_per_chip"],
           "kv_bytes_per_chip": d["memory"]["kv_bytes_per_chip"],
           "prefill_s": d["prefill"]["time_s"], "decode_s": d["decode"]["time_s"]}
    for phase in ("prefill", "decode"):
        br = d[phase]["breakdown_s"]
        for cat in ("array", "memory", "vector", "overhead"):
            row[f"{phase}_{cat}_s"] = br[cat]
        row[f"{phase}_comm_s"] = br["comm"] + br["p2p"]
        row[f"{phase}_bubble_s"] = br["bubble"]
    return row


def sweep_inference(chip: Chip, model: ModelSpec, batches: Sequence[int], tps: Sequence[int],
                    pps: Sequence[int], chips: Sequence[int] | None = None, prompt: int = 2048,
                    generate: int = 256, decode_points: int = 16) -> list[dict[str, Any]]:
    """Return one row (COLUMNS) per (chips, batch, tp, pp) point, in that nesting order; a
    ``chips`` value other than the config's resets ``system.torus_dims`` to the most even
    shape."""
    cache: dict = {}
    rows = []
    for n in chips or [system_of(chip).chips]:
        # another chip count: a fixed torus shape gives way to the most even one
        c = chip if n == system_of(chip).chips else \
            chip.with_overrides({"system.chips": n, "system.torus_dims": ""})
        coster = Coster(c, system_of(c), cache)
        for batch in batches:
            for tp in tps:
                for pp in pps:
                    try:
                        res = simulate_inference(c, model, batch, prompt, generate, tp, pp,
                                                 decode_points=decode_points, coster=coster)
                        rows.append(_row(res, n))
                    except SimulatorInputError as exc:
                        rows.append({"chips": n, "batch": batch, "tp": tp, "pp": pp,
                                     "status": str(exc)})
    return rows


def best_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return, per (chips, batch), the fitting ok row with the most tokens/s."""
    best: dict[tuple[int, int], dict[str, Any]] = {}
    for r in rows:
        if r["status"] != "ok" or not r["fits"]:
            continue
        key = (r["chips"], r["batch"])
        if key not in best or r["tokens_per_s"] > best[key]["tokens_per_s"]:
            best[key] = r
    return [best[k] for k in sorted(best)]
