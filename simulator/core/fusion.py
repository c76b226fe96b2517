"""Epilogue fusion (``vector.fuse_epilogues``): elementwise ops that finish an array op's
results on their way out, as GEMM epilogues do (bias, activation, residual add, inference batch
norm, a scale).

An elementwise op E is fused into array op G when E reads G's result t and nothing else reads
t, t is not a program output, E's output has t's shape (no broadcast of t), and every other
input of E exists before G starts (a program input, or the result of an op before G in program
order). A chain G -> E1 -> E2 fuses while each link holds. A fused chain's intermediate tensors
(t, E1's result) are never stored: they take no buffer space and move no DRAM bytes; the vector
unit works on the results as the array produces them (each fused op starts with G, and ends no
sooner than one lane group after G's last results), and pays no launch overhead of its own.
Values are those of the unfused graph (a result narrowed by output.dtype is narrowed before the
epilogue reads it, as unfused).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..hardware.chip import Chip
from .grouped import runs_on_vector
from .program import Conv2d, Elementwise, MatMul, Program, VectorOp

__all__ = ["EpilogueFusion", "epilogue_fusion"]

# VectorOp kinds that act on each element alone (with per-channel parameters)
_ELEMENTWISE_VECTOR_KINDS = ("batchnorm",)


@dataclass(frozen=True)
class EpilogueFusion:
    """Which ops are fused into which array op: ``into`` maps a fused op's name to the array
    op's name; ``virtual`` holds the tensors a fused chain never stores."""

    into: Mapping[str, str]
    virtual: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.into)


def _fusable(op) -> bool:
    if isinstance(op, Elementwise):
        return op.kind != "div_trunc"
    return isinstance(op, VectorOp) and op.kind in _ELEMENTWISE_VECTOR_KINDS


def epilogue_fusion(chip: Chip, program: Program, free: set[str]) -> EpilogueFusion:
    """Return the epilogue fusion of ``program`` on ``chip`` (empty unless
    vector.fuse_epilogues is true); ``free`` are the free layout ops (never fused)."""
    if not chip.vector.fuse_epilogues:
        return EpilogueFusion({}, frozenset())
    position = {op.output: i for i, op in enumerate(program.ops)}
    consumers = program.consumers()
    outputs = set(program.program_outputs())
    into: dict[str, str] = {}
    virtual: set[str] = set()
    for i, op in enumerate(program.ops):
        if not isinstance(op, (MatMul, Conv2d)) or runs_on_vector(chip, program, op):
            continue
        t = op.output
        while True:
            users = consumers.get(t, [])
            if t in outputs or len(users) != 1:
                break
            e = users[0]
            if e.name in free or not _fusable(e) or program.shapes[e.output] != program.shapes[t]:
                break
            if any(position.get(x, -1) >= i for x in e.inputs if x != t and x not in virtual):
                break
            into[e.name] = op.name
            virtual.add(t)
            t = e.output
    return EpilogueFusion(into, frozenset(virtual))
