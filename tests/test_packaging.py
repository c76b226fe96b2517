"""The installed distribution exposes the kernels as ``simulator.kernels`` and no top-level
``kernels`` package (that name belongs to an unrelated PyPI package)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

SCRIPT = r"""
import importlib.util, pathlib
import simulator.kernels.conv, simulator.kernels.train, simulator.kernels.reference
from simulator.kernels.train import parse_model
assert pathlib.Path(simulator.kernels.__file__).parent.name == "kernels", simulator.kernels.__file__
assert importlib.util.find_spec("kernels") is None, importlib.util.find_spec("kernels")
print("ok")
"""


def test_kernels_install_as_simulator_kernels(tmp_path):
    # run outside the repository so the checkout's own folders are not on sys.path
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert (ROOT / "kernels" / "__init__.py").is_file()
