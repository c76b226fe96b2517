"""Training small linear networks on a simulated chip: model specs, data, the SGD loop.

``linear:IN:OUT`` is ``nn.Linear(IN, OUT)``; ``mlp:IN:HIDDEN:OUT`` is Linear-ReLU-Linear. Weights
are laid out (in_features, out_features); biases are (1, out_features). Initial parameters
follow PyTorch's ``nn.Linear`` default, U(-1/sqrt(in), 1/sqrt(in)) for weight and bias, drawn
from a seeded numpy generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..hardware.chip import Chip
from ..core.engine import run
from ..errors import Interrupted, WorkloadError
from ..hardware.numerics import round_to_input
from ..core.program import Program
from ..core.report import Report

from .linear import build_linear_step, linear_step_numpy
from .mlp import build_mlp_step, mlp_step_numpy

# Largest layer width and largest batch x width: functional training holds these arrays in memory.
MAX_WIDTH = 1 << 16
MAX_BATCH_ELEMENTS = 1 << 26

__all__ = ["ModelSpec", "TrainResult", "init_params", "load_data", "parse_model", "synthetic_data",
           "train", "numpy_step"]


@dataclass(frozen=True)
class ModelSpec:
    """A model: ``linear`` (dims in, out) or ``mlp`` (dims in, hidden, out)."""

    kind: str
    dims: tuple[int, ...]

    @property
    def in_features(self) -> int:
        """Return the input width."""
        return self.dims[0]

    @property
    def out_features(self) -> int:
        """Return the output width."""
        return self.dims[-1]

    @property
    def param_shapes(self) -> dict[str, tuple[int, int]]:
        """Return parameter names and shapes, in the order of ``--data`` files."""
        if self.kind == "linear":
            i, o = self.dims
            return {"W": (i, o), "b": (1, o)}
        i, h, o = self.dims
        return {"W1": (i, h), "b1": (1, h), "W2": (h, o), "b2": (1, o)}

    def __str__(self) -> str:
        return ":".join([self.kind, *map(str, self.dims)])

    def build_step(self, batch: int, lr: float) -> Program:
        """Return the Program of one training step at this batch size and learning rate."""
        if self.kind == "linear":
            return build_linear_step(batch, *self.dims, lr)
        return build_mlp_step(batch, *self.dims, lr)


def parse_model(text: str) -> ModelSpec:
    """Parse ``linear:IN:OUT`` or ``mlp:IN:HIDDEN:OUT``; raise WorkloadError on anything else."""
    where = f"--model {text}"
    parts = text.strip().split(":")
    kind = parts[0].lower()
    want = {"linear": 2, "mlp": 3}
    if kind not in want or len(parts) != want[kind] + 1:
        raise WorkloadError(where, "model", "expected linear:IN:OUT or mlp:IN:HIDDEN:OUT, "
                            "e.g. linear:10:1")
    dims = []
    for p in parts[1:]:
        try:
            v = int(p)
        except ValueError:
            raise WorkloadError(where, "model", f"sizes must be positive integers, got {p!r}") from None
        if v <= 0:
            raise WorkloadError(where, "model", f"sizes must be positive integers, got {v}")
        if v > MAX_WIDTH:
            raise WorkloadError(where, "model", f"sizes must be <= {MAX_WIDTH}, got {v}")
        dims.append(v)
    return ModelSpec(kind, tuple(dims))


def init_params(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """Return PyTorch-default initial parameters (float32), seeded."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in spec.param_shapes.items():
        fan_in = spec.param_shapes["W" + name[1:]][0] if name.startswith("b") else shape[0]
        bound = 1.0 / math.sqrt(fan_in)
        params[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return params


def synthetic_data(spec: ModelSpec, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return a seeded regression problem: X ~ N(0, 1), Y = X A + c + 0.01 noise (float32)."""
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((samples, spec.in_features)).astype(np.float32)
    a = rng.standard_normal((spec.in_features, spec.out_features)).astype(np.float32)
    c = rng.standard_normal((1, spec.out_features)).astype(np.float32)
    noise = 0.01 * rng.standard_normal((samples, spec.out_features))
    return x, (x @ a + c + noise).astype(np.float32)


def load_data(path: str | Path, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read ``X``, ``Y`` and optional initial parameters from an .npz file; check shapes.

    Returns (X, Y, params) with params possibly empty. Raises WorkloadError naming the array.
    """
    where = str(path)
    from simulator.io_limits import load_array  # size caps, regular files, header checks
    data = load_array(path, WorkloadError, line=False)
    if isinstance(data, np.ndarray):
        raise WorkloadError(where, "", "is a .npy array; --data needs a .npz with X and Y")
    try:
        with data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise WorkloadError(where, "", f"not a readable .npz file ({exc})") from None
    for need in ("X", "Y"):
        if need not in arrays:
            raise WorkloadError(where, need, "missing (the file needs X and Y)")

    def check(name: str, arr: np.ndarray, shape: tuple[int | None, int]) -> np.ndarray:
        if name.startswith("b") and arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or (shape[0] is not None and arr.shape[0] != shape[0]) or \
                arr.shape[1] != shape[1]:
            want = f"({'samples' if shape[0] is None else shape[0]}, {shape[1]})"
            raise WorkloadError(where, name, f"must have shape {want}, got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise WorkloadError(where, name, "must hold finite numbers")
        return arr.astype(np.float32)

    x = check("X", arrays["X"], (None, spec.in_features))
    y = check("Y", arrays["Y"], (None, spec.out_features))
    if x.shape[0] != y.shape[0]:
        raise WorkloadError(where, "Y", f"has {y.shape[0]} samples but X has {x.shape[0]}")
    if x.shape[0] == 0:
        raise WorkloadError(where, "X", "has 0 samples; training needs at least one")
    params = {}
    names = [n for n in spec.param_shapes if n in arrays]
    if names and len(names) != len(spec.param_shapes):
        missing = [n for n in spec.param_shapes if n not in arrays]
        raise WorkloadError(where, missing[0], f"missing: give all of "
                            f"{', '.join(spec.param_shapes)} or none")
    for name in names:
        params[name] = check(name, arrays[name], spec.param_shapes[name])
    return x, y, params


def numpy_step(spec: ModelSpec, x: np.ndarray, t: np.ndarray, params: dict[str, np.ndarray],
               lr: float, dtype: str = "fp32") -> dict[str, np.ndarray]:
    """Return one step in plain numpy; matmul operands rounded to ``dtype`` first (the chip's)."""
    rnd = None if dtype == "fp32" else (lambda v: round_to_input(v, dtype))
    if spec.kind == "linear":
        return linear_step_numpy(x, t, params["W"], params["b"], lr, rnd)
    return mlp_step_numpy(x, t, params["W1"], params["b1"], params["W2"], params["b2"], lr, rnd)


@dataclass
class TrainResult:
    """What a training run produced: per-step loss, cycles and energy, the last step's Report,
    and the final parameters."""

    spec: ModelSpec
    losses: list[float] = field(default_factory=list)
    cycles: list[int] = field(default_factory=list)
    energy_pj: list[float] = field(default_factory=list)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    step_report: Report | None = None

    def to_dict(self) -> dict:
        """Return steps, totals and final params as a JSON-ready dict."""
        rep = self.step_report
        total_cycles = int(sum(self.cycles))
        clock = rep.chip.clock_hz
        energy = float(sum(self.energy_pj))
        step_totals = rep.totals()
        return {
            "model": str(self.spec),
            "steps": [{"step": i, "loss": float(loss), "cycles": int(c), "energy_pj": float(e)}
                      for i, (loss, c, e) in enumerate(zip(self.losses, self.cycles,
                                                           self.energy_pj))],
            "totals": {"steps": len(self.losses), "total_cycles": total_cycles,
                       "time_s": total_cycles / clock, "energy_pj": energy,
                       "average_power_w": energy * 1e-12 / (total_cycles / clock),
                       "macs": step_totals["macs"] * len(self.losses),
                       "cycles_per_step": step_totals["total_cycles"],
                       "energy_pj_per_step": step_totals["energy_pj"],
                       "unit_utilisation": step_totals["unit_utilisation"],
                       "utilisation": step_totals["utilisation"],
                       "final_loss": float(self.losses[-1])},
            "params": {k: v.tolist() for k, v in self.params.items()},
            "step_report": rep.to_dict(),
        }


def train(chip: Chip, spec: ModelSpec, x: np.ndarray, y: np.ndarray, batch: int, steps: int,
          lr: float, params: dict[str, np.ndarray],
          progress: Callable[[int], None] | None = None) -> TrainResult:
    """Run ``steps`` SGD steps on the chip, batches taken in order and wrapping around.

    Each step's values come from the engine (the array's matmuls in the chip's dtype, fp32
    vector ops); its cycles and energy are the engine's. Returns a TrainResult; raises
    Interrupted on Ctrl-C, saying how many steps were done.
    """
    if chip.dtype == "int8":
        raise WorkloadError(chip.where("dtype"), "dtype", "training needs a float dtype (fp32, bf16 or "
                            "fp16), got int8; override with --set dtype=fp32")
    if batch <= 0 or steps <= 0:
        raise WorkloadError("train", "batch" if batch <= 0 else "steps",
                            f"must be a positive integer, got {batch if batch <= 0 else steps}")
    if not (math.isfinite(lr) and lr > 0):
        raise WorkloadError("train", "lr", f"must be a positive finite number, got {lr}")
    if batch * max(spec.dims) > MAX_BATCH_ELEMENTS:
        raise WorkloadError("train", "batch", f"batch x widest layer = {batch * max(spec.dims):,} "
                            f"elements is over {MAX_BATCH_ELEMENTS:,}")
    samples = x.shape[0]
    if y.shape[0] != samples:
        raise WorkloadError("train", "Y", f"has {y.shape[0]} samples but X has {samples}")
    if samples == 0:
        raise WorkloadError("train", "X", "has 0 samples; training needs at least one")
    program = spec.build_step(batch, lr)
    params = {k: np.asarray(v, np.float32).copy() for k, v in params.items()}
    result = TrainResult(spec)
    try:
        for step in range(steps):
            rows = (np.arange(batch) + step * batch) % samples
            inputs = {"X": x[rows], "T": y[rows], **params}
            rep = run(chip, program, inputs)
            result.losses.append(float(rep.values["loss"][0, 0]))
            result.cycles.append(rep.total_cycles)
            result.energy_pj.append(rep.totals()["energy_pj"]["total"])
            params = {k: rep.values[f"{k}_new"] for k in params}
            result.step_report = rep
            if progress is not None:
                progress(step + 1)
    except KeyboardInterrupt:
        raise Interrupted(f"{len(result.losses)} of {steps} steps done") from None
    result.params = params
    return result
