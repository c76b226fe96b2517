"""Timing, MACs and compressed bytes of a GEMM with a sparse operand (see simulator.hardware.sparsity)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..hardware.chip import Chip
from .memory import MemoryResult, run_gemm_memory
from ..hardware.sparsity import kept_indices, kept_k, nnz_estimate, stored_bytes

__all__ = ["SparseGemm", "plan_sparse_gemm"]


@dataclass(frozen=True)
class SparseGemm:
    """A GEMM as the array runs it with the chip's sparsity: kept K steps, MACs performed, and
    the memory result with compressed bytes (see the module docstring)."""

    k: int  # the GEMM's K
    k_run: int  # K steps the array streams (K' with skip, K otherwise)
    macs: int  # MACs the hardware performs (pays energy for)
    mem: MemoryResult
    kept: np.ndarray | None = None  # kept K indices (given values and skip), else None


def plan_sparse_gemm(chip: Chip, m: int, n: int, k: int, a: np.ndarray | None = None,
                     b: np.ndarray | None = None) -> SparseGemm:
    """Return the SparseGemm of an m x n x k GEMM on ``chip``: from the pattern (timing only) or
    from the operands' values (one pass over the sparse operand). Dense chips and patterns that
    keep everything give the dense memory result unchanged."""
    sp = chip.sparsity
    if not sp.active:
        return SparseGemm(k, k, m * n * k, run_gemm_memory(chip, m, n, k))
    width = m if sp.operand == "a" else n
    other = n if sp.operand == "a" else m
    kept_idx = None
    if a is not None and b is not None:
        kept_idx = kept_indices(sp, a, b)
        x = a if sp.operand == "a" else b
        nnz = int(np.count_nonzero(x))
        kept = int(kept_idx.size)
        pattern_kept = kept_k(sp, k) if sp.pattern == "nm" else kept
    else:
        kept = pattern_kept = kept_k(sp, k)
        nnz = nnz_estimate(sp, k, width)
    if kept == k and nnz == k * width:  # nothing pruned: the dense run
        return SparseGemm(k, k, m * n * k, run_gemm_memory(chip, m, n, k))
    skip = sp.action == "skip"
    k_run = kept if skip else k
    mem = run_gemm_memory(chip, m, n, k_run)
    macs = {"skip": m * n * k_run, "gate": nnz * other, "none": m * n * k}[sp.action]
    # stored compressed only where that saves bytes (a tiny or dense operand stays dense)
    stored = min(stored_bytes(sp, k, width, pattern_kept, nnz, chip.input_bytes),
                 k * width * chip.input_bytes)
    ratio = stored / (k_run * width * chip.input_bytes)
    # stored dense, the sparse operand's kept K steps are what the array reads from the buffer
    mem = _rescale(mem, sp.operand, ratio, ratio if sp.format != "dense" else 1.0, k / k_run)
    return SparseGemm(k, k_run, macs, mem, kept_idx if skip else None)


def _rescale(mem: MemoryResult, operand: str, ratio: float, buf_ratio: float,
             dense_ratio: float) -> MemoryResult:
    """Return ``mem`` with the sparse operand's DRAM bytes scaled by ``ratio`` and its buffer
    reads by ``buf_ratio``, the dense operand's DRAM bytes by ``dense_ratio`` (buffer fills
    follow DRAM reads)."""
    sx, dx = ("a", "b") if operand == "a" else ("b", "a")
    dram = {x: getattr(mem, f"dram_{x}_read_bytes") for x in "ab"}
    buf = {x: getattr(mem, f"buffer_{x}_read_bytes") for x in "ab"}
    new_dram = {sx: round(dram[sx] * ratio), dx: round(dram[dx] * dense_ratio)}
    new_buf = {sx: round(buf[sx] * buf_ratio), dx: buf[dx]}
    d_dram = sum(new_dram.values()) - sum(dram.values())
    d_buf = sum(new_buf.values()) - sum(buf.values())
    return dataclasses.replace(
        mem, dram_a_read_bytes=new_dram["a"], dram_b_read_bytes=new_dram["b"],
        buffer_a_read_bytes=new_buf["a"], buffer_b_read_bytes=new_buf["b"],
        buffer_read_bytes=mem.buffer_read_bytes + d_buf,
        buffer_write_bytes=mem.buffer_write_bytes + d_dram)
