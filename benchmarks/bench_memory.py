"""Speed of the memory + energy model (issue 4 target): a whole ResNet-18 (21 layers),
timing with tiling, DRAM stalls and energy, per network after warm-up (target < 20 ms). The
layers carry their conv geometry, so chips with ``memory.conv_lowering: feeder`` (the shipped
real chips) count every A tile's input elements and halos (issue 16).

    .venv/bin/python benchmarks/bench_memory.py
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from simulator import load_chip
from simulator.core.engine import simulate_gemms
from simulator.frontends.topology import load_topology

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    layers = load_topology(ROOT / "configs" / "topologies" / "resnet18.csv")
    shapes = [layer.entry for layer in layers]  # convs carry their geometry
    for name in ("tpu-v1", "gemmini", "tpu-v4-tensorcore", "scalesim-compat"):
        chip = load_chip(ROOT / "configs" / f"{name}.yaml")
        simulate_gemms(chip, shapes)  # warm-up: compilation
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            rep = simulate_gemms(chip, shapes)
            times.append(time.perf_counter() - t0)
        print(f"ResNet-18 on {name:<18} {min(times) * 1e3:7.2f} ms best, "
              f"{statistics.median(times) * 1e3:7.2f} ms median per network "
              f"({rep.total_cycles:,} cycles, {rep.totals()['energy_pj']['total'] / 1e9:.3g} mJ; "
              f"target < 20 ms)")


if __name__ == "__main__":
    main()
