"""systolic-sim: a cycle-approximate simulator of systolic-array accelerators.

    from simulator import load_chip, simulate_gemm
    chip = load_chip("configs/gemmini.yaml", overrides={"array.rows": 8})
    rep = simulate_gemm(chip, shape=(64, 64, 64))
"""

from .chip import Chip, SystolicArray, load_chip
from .engine import simulate_gemm
from .errors import ConfigError, SimulatorInputError, WorkloadError
from .report import OpReport, Report

__all__ = ["Chip", "ConfigError", "OpReport", "Report", "SimulatorInputError", "SystolicArray",
           "WorkloadError", "load_chip", "simulate_gemm"]
__version__ = "0.1.0"
