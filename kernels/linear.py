"""One SGD training step of ``nn.Linear`` with ``MSELoss`` as a Program, and its numpy twin.

Shapes: X (batch, in), T (batch, out), W (in, out), b (1, out). The step computes

    Y  = X W + b                      forward: array, then vector add (b broadcast)
    D  = Y - T;  loss = sum(D*D) / N  N = batch * out (MSELoss's mean)
    dY = D * (2 / N)
    dW = X^T dY                       array (X read transposed from the buffer)
    db = sum over the batch of dY     vector reduction
    W' = W - lr dW;  b' = b - lr db   vector (two roundings each: lr*g, then the subtraction)

and the numpy reference does the same maths in float32 (matmuls by numpy, so their summation
order differs from the array's within float rounding).
"""

from __future__ import annotations

import numpy as np

from ..core.program import Program

from . import reference

__all__ = ["build_linear_step", "linear_step_numpy"]


def build_linear_step(batch: int, in_features: int, out_features: int, lr: float) -> Program:
    """Return the Program of one training step; inputs X, T, W, b; outputs loss, W_new, b_new."""
    p = Program(f"linear:{in_features}:{out_features} batch {batch}")
    p.input("X", (batch, in_features))
    p.input("T", (batch, out_features))
    p.input("W", (in_features, out_features))
    p.input("b", (1, out_features))
    numel = batch * out_features
    p.matmul("fwd.matmul", "X", "W", out="Y0")
    p.elementwise("fwd.bias", "add", "Y0", "b", out="Y")
    p.elementwise("loss.diff", "sub", "Y", "T", out="D")
    p.elementwise("bwd.dY", "scale", "D", const=2.0 / numel, out="dY")
    p.matmul("bwd.dW", "X", "dY", out="dW", transpose_a=True)
    p.reduce_sum("bwd.db", "dY", axis=0, out="db")
    p.elementwise("loss.square", "mul", "D", "D", out="D2")
    p.reduce_sum("loss.sum", "D2", out="loss_sum")
    p.elementwise("loss.mean", "scale", "loss_sum", const=1.0 / numel, out="loss")
    p.elementwise("sgd.W", "sgd", "W", "dW", const=lr, out="W_new")
    p.elementwise("sgd.b", "sgd", "b", "db", const=lr, out="b_new")
    return p


def linear_step_numpy(x: np.ndarray, t: np.ndarray, w: np.ndarray, b: np.ndarray, lr: float,
                      rnd=None) -> dict[str, np.ndarray]:
    """Return the same step in plain numpy float32: loss, Y, dW, db, W_new, b_new.

    ``rnd`` rounds matmul operands to the chip's input type (identity for fp32).
    """
    x, t, w, b = (np.asarray(v, np.float32) for v in (x, t, w, b))
    return reference.linear_step(np, x, t, w, b, lr, rnd)
