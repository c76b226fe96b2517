"""Frozen dataclasses of the hardware, built from a validated config (see simulator.config)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .config import load_config, validate_config

__all__ = ["Chip", "SystolicArray", "chip_from_config", "load_chip"]


@dataclass(frozen=True)
class SystolicArray:
    """An R x C grid of multiply-accumulate PEs and the knobs of its timing (DESIGN section 2)."""

    rows: int
    cols: int
    dataflow: str  # "os" | "ws" | "is"
    fill_drain: str  # "full" | "active"
    preload_overlap: bool

    @property
    def pes(self) -> int:
        """Return the number of PEs, R*C."""
        return self.rows * self.cols


@dataclass(frozen=True)
class Chip:
    """A whole chip: clock, number format and the systolic array."""

    name: str
    source: str
    clock_hz: float
    dtype: str  # "int8" | "fp16" | "bf16" | "fp32"
    overflow: str  # "wrap" | "saturate" (int8 only)
    accumulator_bits: int  # int8 only
    array: SystolicArray
    config: Mapping[str, Any] = field(repr=False, compare=False, hash=False)

    @property
    def peak_macs_per_cycle(self) -> int:
        """Return the array's peak MACs per cycle (one per PE)."""
        return self.array.pes

    @property
    def peak_ops_per_s(self) -> float:
        """Return peak arithmetic throughput in operations/s (a MAC counts as two ops)."""
        return 2.0 * self.array.pes * self.clock_hz

    def with_overrides(self, overrides: Mapping[str, Any]) -> "Chip":
        """Return a new Chip with dotted-path overrides applied (validated like a config file)."""
        flat = {}

        def walk(d: Mapping[str, Any], prefix: str) -> None:
            for k, v in d.items():
                p = f"{prefix}.{k}" if prefix else k
                if isinstance(v, Mapping):
                    walk(v, p)
                else:
                    flat[p] = (v, f"chip {self.name}")
        walk(self.config, "")
        flat.update({k: (v, f"override {k}") for k, v in overrides.items()})
        return chip_from_config(validate_config({}, {}, f"chip {self.name}", flat))

    def to_dict(self) -> dict[str, Any]:
        """Return the resolved config (every key, defaults included) as a JSON-ready dict."""
        return copy.deepcopy(dict(self.config))


def chip_from_config(cfg: Mapping[str, Any]) -> Chip:
    """Build a Chip from a validated nested config dict (as returned by load_config)."""
    arr = cfg["array"]
    return Chip(
        name=cfg["name"],
        source=cfg["source"],
        clock_hz=float(cfg["clock_hz"]),
        dtype=cfg["dtype"],
        overflow=cfg["overflow"],
        accumulator_bits=int(cfg["accumulator_bits"]),
        array=SystolicArray(rows=arr["rows"], cols=arr["cols"], dataflow=arr["dataflow"],
                            fill_drain=arr["fill_drain"],
                            preload_overlap=arr["preload_overlap"]),
        config=copy.deepcopy(dict(cfg)),
    )


def load_chip(path: str | Path, overrides: Mapping[str, Any] | None = None,
              sources: Mapping[str, str] | None = None) -> Chip:
    """Load a YAML chip config, apply dotted-path overrides, and return the frozen Chip.

    ``sources`` optionally names where each override came from, for error messages. Raises
    simulator.errors.ConfigError with a ``FILE:LINE: key: message`` text on bad input.
    """
    return chip_from_config(load_config(path, overrides, sources))
