"""Training zoo models on a chip: a step Program from simulator.core.autodiff, seeded data, the loop.

The data is one seeded batch (the model's inputs from ``ZooModel.inputs`` and a target: one-hot
random labels for classifiers, trained with cross-entropy; normal targets with MSE for models
whose output is not a distribution), reused every step, so the loss of a working step falls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from simulator.core.autodiff import Optimizer, training_step
from simulator.hardware.chip import Chip
from simulator.core.engine import run
from simulator.errors import WorkloadError
from simulator.core.program import Program
from simulator.core.report import Report

from .zoo import ZooModel

__all__ = ["DEFAULT_LOSS", "ZooTrainResult", "step_program", "target_for", "train_zoo"]

# cross-entropy over the last axis for models that output logits, MSE otherwise
DEFAULT_LOSS = {"resnet18": "cross_entropy", "vit-b16": "cross_entropy",
                "gpt2-small": "cross_entropy", "tiny-transformer": "cross_entropy",
                "small-cnn": "cross_entropy", "bert-base": "mse", "lstm": "mse"}


def step_program(model: ZooModel, loss: str, opt: Optimizer) -> Program:
    """Return the training-step Program of ``model`` (forward, loss, backward, update)."""
    return training_step(model.program, model.output, list(model.net.params), loss, opt)


def target_for(model: ZooModel, loss: str, seed: int) -> np.ndarray:
    """Return a seeded target shaped like the model's output (one-hot rows for
    cross-entropy, standard normal for MSE)."""
    shape = model.program.shapes[model.output]
    rng = np.random.default_rng(seed + 2)
    if loss == "cross_entropy":
        labels = rng.integers(0, shape[-1], size=shape[:-1])
        return np.eye(shape[-1], dtype=np.float32)[labels]
    return rng.standard_normal(shape).astype(np.float32)


@dataclass
class ZooTrainResult:
    """Per-step loss, cycles and energy, the last step's Report and the final parameters."""

    model: str
    losses: list[float] = field(default_factory=list)
    cycles: list[int] = field(default_factory=list)
    energy_pj: list[float] = field(default_factory=list)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    step_report: Report | None = None

    def to_dict(self) -> dict:
        """Return steps and totals as a JSON-ready dict (parameters left out: they are big)."""
        rep = self.step_report
        clock = rep.chip.clock_hz
        total = int(sum(self.cycles))
        energy = float(sum(self.energy_pj))
        return {"model": self.model,
                "steps": [{"step": i, "loss": float(lo), "cycles": int(c), "energy_pj": float(e)}
                          for i, (lo, c, e) in enumerate(zip(self.losses, self.cycles,
                                                             self.energy_pj))],
                "totals": {"steps": len(self.cycles), "total_cycles": total,
                           "time_s": total / clock, "energy_pj": energy,
                           "average_power_w": energy * 1e-12 / (total / clock) if total else 0.0,
                           "cycles_per_step": rep.total_cycles,
                           "unit_utilisation": rep.totals()["unit_utilisation"],
                           "utilisation": rep.utilisation,
                           "final_loss": float(self.losses[-1]) if self.losses else None},
                "step_report": rep.to_dict()}


def train_zoo(chip: Chip, model: ZooModel, steps: int, opt: Optimizer, loss: str | None = None,
              seed: int = 0, functional: bool = True,
              progress: Callable[[int], None] | None = None) -> ZooTrainResult:
    """Run ``steps`` training steps of ``model`` on the chip (values from the engine: matmuls
    in the chip's dtype, fp32 vector ops); timing only when not ``functional`` (one step's
    Program timed, repeated). Returns a ZooTrainResult. Raises WorkloadError."""
    loss = loss or DEFAULT_LOSS[model.name]
    if steps <= 0:
        raise WorkloadError("train", "steps", f"must be a positive integer, got {steps}")
    if not (math.isfinite(opt.lr) and opt.lr > 0):
        raise WorkloadError("train", "lr", f"must be a positive finite number, got {opt.lr}")
    if chip.dtype == "int8" and functional:
        raise WorkloadError(chip.where("dtype"), "dtype", "training needs a float dtype (fp32, "
                            "bf16 or fp16), got int8; override with --set dtype=fp32")
    result = ZooTrainResult(getattr(model, "label", "") or f"zoo:{model.name}")
    if not functional:
        rep = run(chip, step_program(model, loss, opt))
        result.step_report = rep
        result.cycles = [rep.total_cycles] * steps
        result.energy_pj = [rep.totals()["energy_pj"]["total"]] * steps
        return result
    values = model.inputs(seed)
    names = list(model.net.params)
    params = {k: values[k] for k in names}
    data = {k: v for k, v in values.items() if k not in params}
    data["target"] = target_for(model, loss, seed)
    state = {f"{k}.{s}": np.zeros_like(v) for k, v in params.items() for s in opt.state()}
    for step in range(1, steps + 1):
        o = Optimizer(opt.kind, opt.lr, opt.momentum, opt.betas, opt.eps, opt.weight_decay, step)
        rep = run(chip, step_program(model, loss, o), {**params, **data, **state})
        v = rep.values
        result.losses.append(float(np.asarray(v["loss"]).reshape(-1)[0]))
        result.cycles.append(rep.total_cycles)
        result.energy_pj.append(rep.totals()["energy_pj"]["total"])
        params = {k: v[f"{k}.new"] for k in names}
        state = {k: v[f"{k}.new"] for k in state}
        result.step_report = rep
        if progress is not None:
            progress(step)
    result.params = params
    return result
