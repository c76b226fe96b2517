"""One SGD training step of Linear -> ReLU -> Linear with ``MSELoss`` as a Program, and its
numpy twin.

Shapes: X (batch, in), T (batch, out), W1 (in, hidden), b1 (1, hidden), W2 (hidden, out),
b2 (1, out). Forward: H1 = X W1 + b1, H = relu(H1), Y = H W2 + b2; loss as in linear.py.
Backward: dY = 2 (Y - T) / N, dW2 = H^T dY, db2 = sum dY, dH = dY W2^T, dH1 = dH where H1 > 0,
dW1 = X^T dH1, db1 = sum dH1; then SGD on all four parameters.
"""

from __future__ import annotations

import numpy as np

from ..core.program import Program

from . import reference

__all__ = ["build_mlp_step", "mlp_step_numpy"]


def build_mlp_step(batch: int, in_features: int, hidden: int, out_features: int,
                   lr: float) -> Program:
    """Return the Program of one step; inputs X, T, W1, b1, W2, b2; outputs loss and *_new."""
    p = Program(f"mlp:{in_features}:{hidden}:{out_features} batch {batch}")
    p.input("X", (batch, in_features))
    p.input("T", (batch, out_features))
    p.input("W1", (in_features, hidden))
    p.input("b1", (1, hidden))
    p.input("W2", (hidden, out_features))
    p.input("b2", (1, out_features))
    numel = batch * out_features
    p.matmul("fwd1.matmul", "X", "W1", out="H0")
    p.elementwise("fwd1.bias", "add", "H0", "b1", out="H1")
    p.elementwise("fwd1.relu", "relu", "H1", out="H")
    p.matmul("fwd2.matmul", "H", "W2", out="Y0")
    p.elementwise("fwd2.bias", "add", "Y0", "b2", out="Y")
    p.elementwise("loss.diff", "sub", "Y", "T", out="D")
    p.elementwise("bwd.dY", "scale", "D", const=2.0 / numel, out="dY")
    p.matmul("bwd2.dW", "H", "dY", out="dW2", transpose_a=True)
    p.matmul("bwd2.dH", "dY", "W2", out="dH", transpose_b=True)
    p.reduce_sum("bwd2.db", "dY", axis=0, out="db2")
    p.elementwise("loss.square", "mul", "D", "D", out="D2")
    p.reduce_sum("loss.sum", "D2", out="loss_sum")
    p.elementwise("loss.mean", "scale", "loss_sum", const=1.0 / numel, out="loss")
    p.elementwise("bwd1.relu", "relu_grad", "dH", "H1", out="dH1")
    p.matmul("bwd1.dW", "X", "dH1", out="dW1", transpose_a=True)
    p.reduce_sum("bwd1.db", "dH1", axis=0, out="db1")
    p.elementwise("sgd.W2", "sgd", "W2", "dW2", const=lr, out="W2_new")
    p.elementwise("sgd.b2", "sgd", "b2", "db2", const=lr, out="b2_new")
    p.elementwise("sgd.W1", "sgd", "W1", "dW1", const=lr, out="W1_new")
    p.elementwise("sgd.b1", "sgd", "b1", "db1", const=lr, out="b1_new")
    return p


def mlp_step_numpy(x, t, w1, b1, w2, b2, lr: float, rnd=None) -> dict[str, np.ndarray]:
    """Return the same step in plain numpy float32 (loss, Y, gradients, new parameters).

    ``rnd`` rounds matmul operands to the chip's input type (identity for fp32).
    """
    x, t, w1, b1, w2, b2 = (np.asarray(v, np.float32) for v in (x, t, w1, b1, w2, b2))
    return reference.mlp_step(np, x, t, w1, b1, w2, b2, lr, rnd)
