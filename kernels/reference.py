"""Kernel references written once against an array module ``xp`` (numpy or CuPy).

These are the workloads that calibration times on real hardware and that the numpy twins of
the training programs compute: GEMM, convolution (im2col GEMM), and one SGD step of a linear
layer or a Linear-ReLU-Linear MLP with MSE loss. ``rnd`` rounds matmul operands to the chip's
input type (identity by default), so the same code is also the exact maths of the chip.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

__all__ = ["gemm", "conv2d_im2col", "linear_step", "mlp_step"]


def _ident(v):
    return v


def gemm(xp: ModuleType, a, b):
    """Return A @ B computed by ``xp``."""
    return a @ b


def conv2d_im2col(xp: ModuleType, a_cols, w_mat):
    """Return the lowered convolution: the im2col matrix times the reshaped filters."""
    return a_cols @ w_mat


def linear_step(xp: ModuleType, x, t, w, b, lr: float, rnd=None) -> dict:
    """One SGD step of nn.Linear + MSELoss: return loss, Y, dW, db, W_new, b_new (float32)."""
    r = rnd or _ident
    f32 = np.float32
    numel = t.size
    y = r(x) @ r(w) + b
    d = y - t
    dy = d * f32(2.0 / numel)
    dw = r(x).T @ r(dy)
    db = dy.sum(axis=0, keepdims=True, dtype=xp.float32)
    loss = (d * d).sum(dtype=xp.float32) * f32(1.0 / numel)
    return {"loss": loss.reshape(1, 1), "Y": y, "dW": dw, "db": db,
            "W_new": w - f32(lr) * dw, "b_new": b - f32(lr) * db}


def mlp_step(xp: ModuleType, x, t, w1, b1, w2, b2, lr: float, rnd=None) -> dict:
    """One SGD step of Linear-ReLU-Linear + MSELoss: loss, Y, gradients, new parameters."""
    r = rnd or _ident
    f32 = np.float32
    numel = t.size
    h1 = r(x) @ r(w1) + b1
    h = xp.maximum(h1, f32(0))
    y = r(h) @ r(w2) + b2
    d = y - t
    dy = d * f32(2.0 / numel)
    dw2 = r(h).T @ r(dy)
    db2 = dy.sum(axis=0, keepdims=True, dtype=xp.float32)
    dh = r(dy) @ r(w2).T
    dh1 = xp.where(h1 > 0, dh, f32(0)).astype(xp.float32)
    dw1 = r(x).T @ r(dh1)
    db1 = dh1.sum(axis=0, keepdims=True, dtype=xp.float32)
    loss = (d * d).sum(dtype=xp.float32) * f32(1.0 / numel)
    return {"loss": loss.reshape(1, 1), "Y": y, "dW1": dw1, "db1": db1, "dW2": dw2, "db2": db2,
            "W1_new": w1 - f32(lr) * dw1, "b1_new": b1 - f32(lr) * db1,
            "W2_new": w2 - f32(lr) * dw2, "b2_new": b2 - f32(lr) * db2}
