"""Sparse GEMM operands: pattern, storage format and what the array does with zeros (DESIGN s.11).

One operand of ``O[M,N] = A[M,K] @ B[K,N]`` (``sparsity.operand``: a or b) is sparse along K.

Hardware model. The array runs its lanes in lockstep, so a K step can be skipped only when the
sparse operand is zero there for every lane (SCALE-Sim v3's "layer-wise" mapping: one pattern for
the whole operand). With ``action: skip`` the GEMM is timed as M x N x K' on the chip's dataflow,
K' the kept K steps:

- N:M (timing only): K' = (K // M) * N + min(N, K mod M), O(1) in K (SCALE-Sim v3's count);
- unstructured, density d (timing only): K' = ceil(d K), ASSUMING the zeros are shared by every
  lane (a pattern pruned per K index); block: K' = min(K, ceil(d ceil(K / block)) * block);
- given values: K' = the K indices where the operand has any nonzero, one pass over it.

``gate`` keeps the dense cycles but charges MAC energy only for MACs whose sparse operand is
nonzero; ``none`` computes zeros like any value. Values never change (zero terms add nothing).

Bytes. The sparse operand is stored in ``sparsity.format``: dense (zeros stored), csr/csc (each
nonzero + an index of ceil(log2 dim) bits + one 32-bit pointer per row/column, the pointer width an
assumption), ellpack_block / nm (N value slots per group of M + ceil(log2 M) index bits per slot,
SCALE-Sim v3's ELLPACK-block count), or dense where that is smaller (metadata can outweigh the
zeros saved). Its DRAM and buffer bytes are the memory model's scaled by
stored / dense bytes. With skip the dense operand is still read in full from DRAM (its DRAM bytes
scaled by K / K'), while the array reads only the kept K steps from the buffer. Stalls come from
the memory model run on K' (an approximation: the rescaled traffic is not re-timed).

A pattern that keeps everything (N = M, density 1) is the dense run exactly: nothing is
compressed and no metadata is charged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError, WorkloadError

__all__ = ["DENSE", "Sparsity", "kept_k", "kept_indices", "nnz_estimate", "prune_nm",
           "prune_unstructured", "sparsity_from_config", "stored_bytes"]

POINTER_BITS = 32  # ASSUMPTION: csr/csc row/column pointers are 32-bit words (as SCALE-Sim counts)


@dataclass(frozen=True)
class Sparsity:
    """The sparse operand (``none``, ``a`` or ``b``), its pattern along K, storage format and
    the array's action on zeros (see the module docstring)."""

    operand: str = "none"
    pattern: str = "nm"
    n: int = 2
    m: int = 4
    density: float = 1.0
    block: int = 4
    format: str = "dense"
    action: str = "skip"

    @property
    def active(self) -> bool:
        """Return True when one operand is declared sparse."""
        return self.operand != "none"


DENSE = Sparsity()


def sparsity_from_config(cfg: Mapping[str, Any], where) -> Sparsity:
    """Return the Sparsity of a validated config's ``sparsity`` section; ``where(key)`` names
    the FILE:LINE of a key. Raises ConfigError when N > M or the format does not fit the
    pattern."""
    s = cfg["sparsity"]
    sp = Sparsity(operand=s["operand"], pattern=s["pattern"], n=int(s["n"]), m=int(s["m"]),
                  density=float(s["density"]), block=int(s["block"]), format=s["format"],
                  action=s["action"])
    if sp.active and sp.pattern == "nm" and sp.n > sp.m:
        raise ConfigError(where("sparsity.n"), "sparsity.n",
                          f"N must be <= M (sparsity.m = {sp.m}), got {sp.n}")
    if sp.active and sp.format in ("nm", "ellpack_block") and sp.pattern != "nm":
        raise ConfigError(where("sparsity.format"), "sparsity.format",
                          f"{sp.format} stores N:M groups; it needs sparsity.pattern nm, got "
                          f"{sp.pattern}")
    return sp


def kept_k(sp: Sparsity, k: int) -> int:
    """Return K', the K steps a lockstep array must stream for the declared pattern (timing
    only, O(1))."""
    if not sp.active:
        return k
    if sp.pattern == "nm":
        return (k // sp.m) * sp.n + min(sp.n, k % sp.m)
    if sp.pattern == "unstructured":
        return max(1, min(k, math.ceil(sp.density * k)))
    blocks = -(-k // sp.block)
    return max(1, min(k, math.ceil(sp.density * blocks) * sp.block))


def kept_indices(sp: Sparsity, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the K indices where the sparse operand has a nonzero in any lane (int64, sorted);
    at least one index is kept so that the GEMM keeps a shape."""
    x = a if sp.operand == "a" else b
    nz = np.any(x != 0, axis=0 if sp.operand == "a" else 1)
    idx = np.flatnonzero(nz)
    return idx if idx.size else np.zeros(1, np.int64)


def nnz_estimate(sp: Sparsity, k: int, width: int) -> int:
    """Return the nonzeros of a K x width operand with the declared pattern (timing only)."""
    if sp.pattern == "nm":
        return kept_k(sp, k) * width
    return min(k * width, math.ceil(sp.density * k * width))


def stored_bytes(sp: Sparsity, k: int, width: int, kept: int, nnz: int, in_bytes: int) -> int:
    """Return bytes (values + metadata) of the sparse operand (K x width, ``nnz`` nonzeros,
    ``kept`` K steps of the N:M pattern) in ``sp.format``."""
    if sp.format == "dense":
        return k * width * in_bytes
    if sp.format in ("nm", "ellpack_block"):
        slots = kept * width
        return math.ceil(slots * in_bytes + slots * math.ceil(math.log2(sp.m)) / 8) \
            if sp.m > 1 else slots * in_bytes
    # csc compresses along K for B (one column per lane) and along the lanes for A; csr the reverse
    along_k = (sp.format == "csc") == (sp.operand == "b")
    index_dim, pointers = (k, width) if along_k else (width, k)
    index_bits = math.ceil(math.log2(index_dim)) if index_dim > 1 else 0
    return math.ceil(nnz * in_bytes + nnz * index_bits / 8 + (pointers + 1) * POINTER_BITS / 8)


# ------------------------------------------------------------------------------ pruning

def _check_operand(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":  # complex: ranking by real part would be silently wrong
        raise WorkloadError("prune", name, f"must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.size == 0:
        raise WorkloadError("prune", name, f"must be a non-empty 2-D matrix, got shape {arr.shape}")
    return arr


def prune_nm(x: object, n: int, m: int, axis: int = 0, shared: bool = True) -> np.ndarray:
    """Return a copy of matrix ``x`` keeping the ``n`` largest-magnitude of every ``m``
    consecutive elements along ``axis`` (K: 0 for B, 1 for A), zeros elsewhere. ``shared``:
    one pattern for every lane, chosen by the summed magnitude per K index (SCALE-Sim v3's
    layer-wise pattern, which a lockstep array can skip); otherwise per lane (NVIDIA 2:4)."""
    arr = _check_operand(x, "x")
    if not (0 < n <= m):
        raise WorkloadError("prune", "n", f"need 0 < N <= M, got {n}:{m}")
    xk = np.moveaxis(arr, axis, 0)  # K x lanes
    k = xk.shape[0]
    keep = np.zeros(xk.shape, bool)
    mag = np.abs(xk.astype(np.float64))
    for g0 in range(0, k, m):
        g = mag[g0:g0 + m]
        take = min(n, g.shape[0])
        if shared:
            order = np.argsort(-g.sum(axis=1), kind="stable")[:take]
            keep[g0 + order, :] = True
        else:
            order = np.argsort(-g, axis=0, kind="stable")[:take]
            np.put_along_axis(keep[g0:g0 + m], order, True, axis=0)
    out = np.where(keep, xk, 0).astype(arr.dtype)
    return np.moveaxis(out, 0, axis)


def prune_unstructured(x: object, density: float, axis: int = 0,
                       shared: bool = True) -> np.ndarray:
    """Return a copy of matrix ``x`` keeping the ``ceil(density * size)`` largest magnitudes
    (``shared``: whole K indices along ``axis`` ranked by summed magnitude, ceil(density * K) of
    them), zeros elsewhere. ``density`` must lie in (0, 1]."""
    arr = _check_operand(x, "x")
    if not (0 < density <= 1):
        raise WorkloadError("prune", "density", f"must be in (0, 1], got {density!r}")
    mag = np.abs(arr.astype(np.float64))
    if shared:
        score = mag.sum(axis=1 - axis)
        kk = max(1, math.ceil(density * score.size))
        idx = np.argsort(-score, kind="stable")[:kk]
        keep = np.zeros(score.size, bool)
        keep[idx] = True
        keep = keep[:, None] if axis == 0 else keep[None, :]
        return np.where(keep, arr, 0).astype(arr.dtype)
    kk = max(1, math.ceil(density * arr.size))
    idx = np.argsort(-mag, axis=None, kind="stable")[:kk]
    keep = np.zeros(arr.size, bool)
    keep[idx] = True
    return np.where(keep.reshape(arr.shape), arr, 0).astype(arr.dtype)
