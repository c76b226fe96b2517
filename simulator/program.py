"""Programs: small DAGs of ops over named 2-D tensors (DESIGN section 5).

Ops run on a unit: ``MatMul`` on the systolic array, ``Elementwise`` and ``Reduce`` on the vector
unit. Tensors are named; an op may use a tensor once an earlier op (or the program's inputs)
defined it, so the op list is a topological order and the DAG follows from the names.

Transposed matmul operands (``X^T`` in ``dW = X^T dY``) are not materialised: the array's feeder
reads the operand from the buffer in the order the array needs (column-wise), which costs the
same bytes as a plain read and no extra cycles (the buffer's address generator strides). The
memory model therefore charges a transposed operand exactly like a plain one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import WorkloadError
from .vector import ELEMENTWISE

__all__ = ["Elementwise", "MatMul", "Op", "Program", "Reduce"]


@dataclass(frozen=True)
class Op:
    """Base of all ops: a name, the unit it runs on, its input and output tensor names."""

    name: str
    inputs: tuple[str, ...]
    output: str

    unit = "?"


@dataclass(frozen=True)
class MatMul(Op):
    """``out = op(a) @ op(b)`` on the array, op = transpose when the flag is set."""

    transpose_a: bool = False
    transpose_b: bool = False
    unit = "array"


@dataclass(frozen=True)
class Elementwise(Op):
    """An elementwise op of ``kind`` (see simulator.vector.ELEMENTWISE) with constant ``const``."""

    kind: str = "add"
    const: float = 0.0
    unit = "vector"

    @property
    def op_class(self) -> str:
        """Return the vector op class that sets the issue interval."""
        return ELEMENTWISE[self.kind][0]


@dataclass(frozen=True)
class Reduce(Op):
    """Sum over ``axis`` (None: all elements, 0: rows -> a row vector, 1: columns)."""

    axis: int | None = None
    unit = "vector"


@dataclass
class Program:
    """A named list of ops over named tensors with known shapes (rows, cols)."""

    name: str
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)

    def _fail(self, op: str, message: str) -> WorkloadError:
        return WorkloadError(f"program {self.name}", op, message)

    def _shape(self, tensor: str, op: str) -> tuple[int, int]:
        if tensor not in self.shapes:
            raise self._fail(op, f"uses tensor {tensor!r} before any op or input defines it")
        return self.shapes[tensor]

    def _define(self, tensor: str, shape: tuple[int, int], op: str) -> str:
        if tensor in self.shapes:
            raise self._fail(op, f"tensor {tensor!r} is already defined")
        self.shapes[tensor] = shape
        return tensor

    def _check_op_name(self, name: str) -> None:
        if any(o.name == name for o in self.ops):
            raise self._fail(name, "duplicate op name")

    def input(self, tensor: str, shape: tuple[int, int]) -> str:
        """Declare an input tensor of ``shape`` (rows, cols); return its name."""
        rows, cols = shape
        if rows <= 0 or cols <= 0:
            raise self._fail(tensor, f"input shape must be positive, got {shape}")
        self.inputs.append(tensor)
        return self._define(tensor, (int(rows), int(cols)), tensor)

    def matmul(self, name: str, a: str, b: str, out: str | None = None, transpose_a: bool = False,
               transpose_b: bool = False) -> str:
        """Append ``out = op(a) @ op(b)`` on the array; return the output tensor's name."""
        self._check_op_name(name)
        sa, sb = self._shape(a, name), self._shape(b, name)
        m, ka = (sa[1], sa[0]) if transpose_a else sa
        kb, n = (sb[1], sb[0]) if transpose_b else sb
        if ka != kb:
            raise self._fail(name, f"inner dimensions differ: {a}{'^T' if transpose_a else ''} "
                             f"is {m}x{ka}, {b}{'^T' if transpose_b else ''} is {kb}x{n}")
        out = out or name
        self._define(out, (m, n), name)
        self.ops.append(MatMul(name, (a, b), out, transpose_a, transpose_b))
        return out

    def elementwise(self, name: str, kind: str, *args: str, const: float = 0.0,
                    out: str | None = None) -> str:
        """Append an elementwise op; a (1, cols) second operand broadcasts over rows."""
        self._check_op_name(name)
        if kind not in ELEMENTWISE:
            raise self._fail(name, f"unknown elementwise kind {kind!r} (known: "
                             f"{', '.join(ELEMENTWISE)})")
        n_in = ELEMENTWISE[kind][1]
        if len(args) != n_in:
            raise self._fail(name, f"{kind} takes {n_in} tensors, got {len(args)}")
        shape = self._shape(args[0], name)
        for other in args[1:]:
            s = self._shape(other, name)
            if s != shape and not (s[0] == 1 and s[1] == shape[1]):
                raise self._fail(name, f"shapes {shape} and {s} do not match (only a (1, cols) "
                                 "row vector broadcasts)")
        out = out or name
        self._define(out, shape, name)
        self.ops.append(Elementwise(name, tuple(args), out, kind, float(const)))
        return out

    def reduce_sum(self, name: str, x: str, axis: int | None = None, out: str | None = None) -> str:
        """Append a sum over ``axis`` (None, 0 or 1) on the vector unit."""
        self._check_op_name(name)
        rows, cols = self._shape(x, name)
        if axis not in (None, 0, 1):
            raise self._fail(name, f"axis must be None, 0 or 1, got {axis!r}")
        shape = {None: (1, 1), 0: (1, cols), 1: (rows, 1)}[axis]
        out = out or name
        self._define(out, shape, name)
        self.ops.append(Reduce(name, (x,), out, axis))
        return out

    def gemm_shape(self, op: MatMul) -> tuple[int, int, int]:
        """Return (M, N, K) of a MatMul op."""
        sa = self.shapes[op.inputs[0]]
        sb = self.shapes[op.inputs[1]]
        m, k = (sa[1], sa[0]) if op.transpose_a else sa
        n = sb[0] if op.transpose_b else sb[1]
        return m, n, k
