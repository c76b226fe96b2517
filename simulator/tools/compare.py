"""One workload on several chips: time, throughput, energy, power, utilisation, EDP."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..hardware.chip import load_chip
from ..hardware.dataflow import parse_gemm
from ..core.engine import run, simulate_gemm, simulate_gemms
from ..errors import WorkloadError
from ..frontends.topology import load_topology

__all__ = ["COLUMNS", "compare_chips"]

# (row key, header, unit, which is better)
COLUMNS = (("time_s", "time", "s", min), ("throughput", "throughput", "", max),
           ("energy_j", "energy", "J", min), ("power_w", "avg power", "W", min),
           ("utilisation", "PE util", "%", max), ("edp_js", "EDP", "J*s", min))


def compare_chips(configs: Sequence[str | Path], model: str | None = None,
                  topology: str | Path | None = None, gemm: str | None = None,
                  batch: int | None = None, torch: str | None = None,
                  inputs: list[str] | None = None, onnx: str | Path | None = None,
                  onnx_inputs: dict[str, tuple[int, ...]] | None = None,
                  tflite: str | Path | None = None,
                  ) -> tuple[list[dict[str, Any]], str, str]:
    """Run one workload (a training step of ``model``, a forward pass of a ``zoo:NAME`` model at
    batch ``batch`` (default 64; given with another workload it is an error), one inference of ``topology``, a forward pass of the ONNX file ``onnx``
    with input shapes ``onnx_inputs``, of the TFLite file ``tflite``, or a ``gemm`` MxNxK) on
    every chip; return (rows,
    workload description, throughput unit).

    Each row: chip, dtype, PEs, time_s (per step or inference), throughput (samples/s,
    inferences/s or TOPS; a torch or ONNX pass counts the leading dimension of its first data
    input as its samples), energy_j, power_w (average), utilisation (array PEs), edp_js
    (energy x time), cycles. ``torch`` (``FILE.py:factory``, input shapes ``inputs``) is a
    forward pass of a PyTorch module instead (simulator.frontends.torch_import).
    """
    from simulator.kernels.train import parse_model  # lazy: kernels sit above the simulator core
    if sum(x is not None for x in (model, topology, gemm, torch, onnx, tflite)) != 1:
        raise WorkloadError("compare", "workload", "give exactly one of model, topology, gemm, "
                            "torch, onnx, tflite")
    if batch is not None and not model:
        raise WorkloadError(f"--batch {batch}", "batch", "applies to --model only (a torch, "
                            "ONNX or TFLite model takes its batch from its input shapes)")
    if inputs and not torch:
        raise WorkloadError("--input", "input", "applies to --torch FILE.py:factory and --onnx "
                            "FILE.onnx only")
    if onnx_inputs and not onnx:
        raise WorkloadError("--input", "input", "applies to --torch FILE.py:factory and --onnx "
                            "FILE.onnx only")
    batch = 64 if batch is None else batch
    if isinstance(batch, bool) or not isinstance(batch, int) or batch <= 0:
        raise WorkloadError("compare", "batch", f"must be a positive integer, got {batch}")
    zoo = None
    if torch:
        from ..frontends.torch_import import import_torch
        zoo = import_torch(torch, inputs)
        batch = zoo.program.shapes[zoo.data[0]][0] if zoo.data else 1
        sizes = ", ".join(f"{k} {v}" for k, v in zoo.sizes.items())
        what, per = f"one forward pass of {zoo.label} ({sizes})", "samples/s"
    elif model and model.strip().lower().startswith("zoo:"):
        from simulator.kernels.zoo import build_zoo
        zoo = build_zoo(model, batch)
        sizes = ", ".join(f"{k} {v}" for k, v in zoo.sizes.items())
        what, per = f"one forward pass of zoo:{zoo.name} ({sizes})", "samples/s"
    elif model:
        spec = parse_model(model)
        what, per = f"one training step of {spec}, batch {batch}", "samples/s"
    elif onnx is not None:  # one forward pass of an imported ONNX model
        from simulator.frontends.onnx_import import import_onnx
        zoo = import_onnx(onnx, onnx_inputs)
        batch = next(iter(zoo.data.values()))[0][0] if zoo.data else 1  # as torch's
        sizes = ", ".join(f"{k} {v}" for k, v in zoo.sizes.items())
        what, per = f"one forward pass of {Path(onnx).name} ({sizes})", "samples/s"
    elif tflite is not None:  # one forward pass of an imported TFLite model
        from simulator.frontends.tflite_import import import_tflite
        zoo = import_tflite(tflite)
        batch = next(iter(zoo.data.values()))[0][0] if zoo.data else 1  # as torch's
        sizes = ", ".join(f"{k} {v}" for k, v in zoo.sizes.items())
        what, per = f"one forward pass of {Path(tflite).name} ({sizes})", "samples/s"
    elif topology:
        layers = load_topology(topology)
        what, per = f"one inference of {Path(topology).stem} ({len(layers)} layers)", "inf/s"
    else:
        m, n, k = parse_gemm(gemm)
        what, per = f"GEMM {m}x{n}x{k}", "TOPS"
    rows = []
    for path in configs:
        chip = load_chip(path)
        if zoo is not None:
            rep = run(chip, zoo.program)
        elif model:
            rep = run(chip, spec.build_step(batch, 0.01))
        elif topology:
            rep = simulate_gemms(chip, [layer.entry for layer in layers])
        else:
            rep = simulate_gemm(chip, shape=(m, n, k))
        t = rep.totals()
        time_s = rep.time_s
        energy = t["energy_pj"]["total"] * 1e-12
        throughput = (batch / time_s if model or torch or onnx is not None
                      or tflite is not None else 1.0 / time_s if topology
                      else t["achieved_ops_per_s"] / 1e12)
        rows.append({"chip": chip.name, "config": str(path), "dtype": chip.dtype,
                     "pes": chip.pes, "time_s": time_s, "throughput": throughput,
                     "energy_j": energy, "power_w": energy / time_s,
                     "utilisation": t["utilisation"], "edp_js": energy * time_s,
                     "cycles": t["total_cycles"], "static_modelled": chip.energy.static_w > 0})
    return rows, what, per
