"""Array-module selection: numpy, or CuPy on an NVIDIA GPU. The only module that imports CuPy.

Kernel references (``simulator.kernels.reference``) are written once against an array module ``xp`` and
run on either.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import WorkloadError

__all__ = ["BACKENDS", "get_xp", "to_numpy", "synchronize"]

BACKENDS = ("numpy", "cupy")


def get_xp(name: str = "numpy") -> ModuleType:
    """Return the array module for ``name`` ("numpy" or "cupy"), importing CuPy lazily.

    Raises WorkloadError with an install hint when CuPy (or a GPU for it) is missing.
    """
    if name == "numpy":
        import numpy
        return numpy
    if name != "cupy":
        raise WorkloadError("--backend", "backend", f"must be one of {', '.join(BACKENDS)}, "
                            f"got {name!r}")
    try:
        cupy = importlib.import_module("cupy")
    except ImportError:
        raise WorkloadError("--backend cupy", "backend", "CuPy is not installed: pip install "
                            "'systolic-sim[gpu]' (needs an NVIDIA GPU and CUDA)") from None
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver or device missing
        raise WorkloadError("--backend cupy", "backend", f"CuPy found no usable GPU ({exc})") from None
    return cupy


def to_numpy(x):
    """Return ``x`` as a numpy array (copies from the GPU for CuPy arrays)."""
    get = getattr(x, "get", None)
    return get() if callable(get) else x


def synchronize(xp: ModuleType) -> None:
    """Wait for queued GPU work (no-op for numpy)."""
    if xp.__name__ == "cupy":
        xp.cuda.Device().synchronize()
