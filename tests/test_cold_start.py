"""Fast start (issue 28 item 5): a timing-only GEMM run of the command line, in a fresh process
under ``python -X importtime``, loads none of the heavy optional libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("ml_dtypes", "numba", "matplotlib", "torch", "onnx", "scipy")


def imported_modules(stderr: str) -> set[str]:
    """Return the module names ``-X importtime`` reported in ``stderr`` (its lines are
    ``import time: SELF | CUMULATIVE | NAME``, NAME indented by nesting)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name)
    return names


def _importtime(*args: str) -> set[str]:
    out = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return imported_modules(out.stderr)


def test_timing_only_gemm_loads_no_heavy_module():
    mods = _importtime("-m", "simulator", "run", "configs/scalesim-compat.yaml",
                       "--gemm", "64x64x64")
    assert "simulator.tools.cli" in mods and "numpy" in mods  # the probe sees the run's imports
    loaded = sorted(m for m in mods if m.split(".")[0] in HEAVY)
    assert not loaded, f"a timing-only GEMM imported {loaded}"


@pytest.mark.parametrize("module", ["ml_dtypes", "yaml"])
def test_the_probe_sees_a_module_that_is_imported(module):
    # control: the same parsing on a process that does import the module (both are
    # dependencies of the package)
    assert module in _importtime("-c", f"import {module}")


def test_bf16_still_imports_ml_dtypes_where_it_is_computed():
    code = ("import sys; from simulator.hardware.numerics import input_type; "
            "assert 'ml_dtypes' not in sys.modules; t = input_type('bf16'); "
            "assert t.name == 'bfloat16' and 'ml_dtypes' in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
