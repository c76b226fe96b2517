"""Mapping grouped and depthwise convolutions (``array.depthwise``, DESIGN section 14).

A convolution with ``groups`` groups is ``groups`` independent GEMMs of M = batch x out pixels,
K = Kc = channels per group x kh x kw, N = Ng = filters per group. A depthwise convolution (one
input channel per group) has K = kh x kw and N = the depth multiplier (usually 1): on an R x C
array one such GEMM fills a few rows and one column. Mappings:

- ``per_channel``: one GEMM per group (placed on the arrays like any batch of GEMMs).
- ``packed``: ``p`` groups at once as one GEMM of M x (p Ng) x (p Kc) whose B is block diagonal
  (group j's weights in rows j Kc .. (j+1) Kc - 1 and columns j Ng .. (j+1) Ng - 1, zeros
  elsewhere) and whose A is the p groups' im2col columns side by side. The array streams and
  multiplies the zeros: they are MACs performed (energy, time) but not useful MACs. ``p`` is
  the most groups whose block diagonal fits one fold: ws p Kc <= R and p Ng <= C (the weights
  stationary), is p Kc <= R (the inputs stationary), os p Ng <= C (the outputs stationary, K
  streamed). The last packed GEMM takes the groups left over. A window that does not fit
  (Kc > R for ws/is, Ng > C for ws/os) cannot be packed: a WorkloadError names the key.
  Mapping efficiency counts the PEs that hold useful work: under ws a PE holding a zero weight
  holds none (busy PE-cycles x useful / performed MACs); under os and is every stationary
  output or input is useful.
- ``vector``: a depthwise convolution (one input channel per group) runs on the vector unit: one
  multiply-add per tap and output, ``outputs x kh x kw`` lane-ops of class ``add``; its values
  are float32 sums in tap order (channel, filter row, filter column). Grouped convolutions with
  several input channels per group stay on the array, one GEMM per group.

A convolution with one group is a plain GEMM under every mapping.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import WorkloadError
from ..hardware.chip import Chip
from .conv_geometry import ConvGeometry
from .program import Conv2d, Program

__all__ = ["GroupedMapping", "depthwise_vector_values", "grouped_mapping", "pack_pairs",
           "runs_on_vector", "unpack_outputs"]


@dataclass(frozen=True)
class GroupedMapping:
    """How a grouped conv maps: ``mapping`` per_channel, packed or vector; ``per_gemm`` groups
    per packed GEMM; ``gemms`` [(groups in the GEMM, how many such GEMMs)] (per_channel:
    [(1, groups)])."""

    mapping: str
    groups: int
    per_gemm: int
    gemms: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the mapping as a JSON-ready dict."""
        return {"mapping": self.mapping, "groups": self.groups,
                "groups_per_gemm": self.per_gemm,
                "gemms": sum(c for _r, c in self.gemms)}


def is_depthwise(program: Program, op: Conv2d) -> bool:
    """Return True for a convolution with several groups of one input channel each."""
    return op.groups > 1 and program.shapes[op.inputs[1]][1] == 1


def runs_on_vector(chip: Chip, program: Program, op) -> bool:
    """Return True when ``op`` is a depthwise convolution the chip runs on the vector unit."""
    return isinstance(op, Conv2d) and chip.array.depthwise == "vector" and \
        is_depthwise(program, op)


def _packable(chip: Chip, kc: int, ng: int) -> int:
    """Return the most groups of a Kc x Ng GEMM whose block diagonal fits one fold."""
    arr = chip.array
    if arr.dataflow == "ws":
        return min(arr.rows // kc, arr.cols // ng)
    if arr.dataflow == "is":
        return arr.rows // kc
    return arr.cols // ng


def grouped_mapping(chip: Chip, program: Program, op: Conv2d) -> GroupedMapping | None:
    """Return the mapping of a grouped conv on ``chip`` (None for one group). Raises
    WorkloadError when ``packed`` cannot place even one group's block in a fold."""
    g = op.groups
    if g == 1:
        return None
    mode = chip.array.depthwise
    if mode == "vector" and is_depthwise(program, op):
        return GroupedMapping("vector", g, 1, ())
    if mode != "packed":
        return GroupedMapping("per_channel", g, 1, ((1, g),))
    m, ng, kc = program.gemm_shape(op)
    p = _packable(chip, kc, ng)
    if p < 1:
        arr = chip.array
        need = f"{kc} taps x channels per group on {arr.rows} rows" \
            if arr.dataflow in ("ws", "is") and kc > arr.rows else \
            f"{ng} filters per group on {arr.cols} columns"
        raise WorkloadError(chip.where("array.depthwise"), "array.depthwise",
                            f"packed: conv {op.name!r} has groups of {need} ({arr.dataflow}): "
                            f"one group's block does not fit the {arr.rows}x{arr.cols} array; "
                            f"use per_channel")
    p = min(p, g)
    full, rest = divmod(g, p)
    gemms = ((p, full),) + (((rest, 1),) if rest else ())
    return GroupedMapping("packed", g, p, gemms)


def packed_geometry(conv: ConvGeometry | None, groups: int) -> ConvGeometry | None:
    """Return the feeder geometry of a packed GEMM of ``groups`` groups: one conv over their
    input channels side by side (None stays None)."""
    if conv is None:
        return None
    return dataclasses.replace(conv, c=conv.c * groups)


def pack_pairs(a_all: np.ndarray, b_all: np.ndarray, mapping: GroupedMapping) -> list[list]:
    """Return, per entry of ``mapping.gemms``, the (A, B) operand pairs of its packed GEMMs:
    A the groups' im2col matrices side by side (M x r Kc), B their weights block diagonal
    (r Kc x r Ng, zeros elsewhere). ``a_all`` (groups, M, Kc), ``b_all`` (groups, Kc, Ng)."""
    out = []
    g0 = 0
    for r, cnt in mapping.gemms:
        pairs = []
        for _ in range(cnt):
            blk = range(g0, g0 + r)
            a = np.ascontiguousarray(np.concatenate([a_all[g] for g in blk], axis=1))
            kc, ng = b_all.shape[1], b_all.shape[2]
            b = np.zeros((r * kc, r * ng), b_all.dtype)
            for j, g in enumerate(blk):
                b[j * kc:(j + 1) * kc, j * ng:(j + 1) * ng] = b_all[g]
            pairs.append((a, b))
            g0 += r
        out.append(pairs)
    return out


def unpack_outputs(outs: list[np.ndarray], mapping: GroupedMapping, ng: int) -> list[np.ndarray]:
    """Return the per-group outputs (M x Ng each, in group order) of packed GEMMs' outputs
    (M x r Ng each, in the order pack_pairs made them)."""
    per_group = []
    i = 0
    for r, cnt in mapping.gemms:
        for _ in range(cnt):
            o = outs[i]
            i += 1
            per_group.extend(np.ascontiguousarray(o[:, j * ng:(j + 1) * ng]) for j in range(r))
    return per_group


def depthwise_vector_values(a_all: np.ndarray, b_all: np.ndarray) -> np.ndarray:
    """Return (groups, M, Ng) float32 outputs of a depthwise conv on the vector unit: each
    output adds its taps' products in tap order, rounding to float32 after every multiply and
    every add. ``a_all`` (groups, M, Kc), ``b_all`` (groups, Kc, Ng)."""
    a = np.asarray(a_all, np.float32)
    b = np.asarray(b_all, np.float32)
    g, m, kc = a.shape
    out = np.zeros((g, m, b.shape[2]), np.float32)
    for t in range(kc):
        out += a[:, :, t:t + 1] * b[:, t:t + 1, :]
    return out
