"""systolic-sim: a cycle-approximate simulator of systolic-array accelerators.

    from simulator import load_chip, simulate_gemm
    chip = load_chip("configs/gemmini.yaml", overrides={"array.rows": 8})
    rep = simulate_gemm(chip, shape=(64, 64, 64))

The names below are loaded on first use (PEP 562), so importing the package costs nothing
until one of them is needed (the command line's start-up and its Ctrl-C handling rely on it).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Chip": ".hardware.chip", "SystolicArray": ".hardware.chip",
            "load_chip": ".hardware.chip", "simulate_gemm": ".core.engine",
            "ConfigError": ".errors", "SimulatorInputError": ".errors", "WorkloadError": ".errors",
            "OpReport": ".core.report", "Report": ".core.report",
            "explore": ".tools.explore"}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'simulator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
