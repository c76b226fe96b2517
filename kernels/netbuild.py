"""A small helper for writing network Programs: parameters with seeded initialisers, data
inputs, unique op names, and the layers the zoo shares (linear, layer norm, attention).

A ``Net`` wraps a Program. ``param`` declares a weight (a program input) with its initialiser;
``data`` declares a data input (activations, token ids, masks, targets) with its generator.
``init_params(seed)`` and ``make_inputs(seed)`` return float32 arrays (ids as int64) from a seeded
numpy generator: nothing is downloaded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulator.core.program import Program

__all__ = ["Net"]


class Net:
    """A Program under construction plus how to initialise its parameters and inputs."""

    def __init__(self, name: str):
        self.p = Program(name)
        self.params: dict[str, tuple[tuple[int, ...], tuple]] = {}
        self.data: dict[str, tuple[tuple[int, ...], tuple]] = {}
        self._count: dict[str, int] = {}

    # -- declarations ---------------------------------------------------------------------
    def param(self, name: str, shape: tuple[int, ...], init: tuple) -> str:
        """Declare a parameter; ``init`` is ("normal", std), ("uniform", lo, hi), ("const", v)."""
        self.p.input(name, tuple(shape))
        self.params[name] = (tuple(shape), init)
        return name

    def input(self, name: str, shape: tuple[int, ...], kind: tuple = ("normal", 1.0)) -> str:
        """Declare a data input; ``kind`` is ("normal", std), ("ids", vocab), ("causal_mask",),
        ("onehot", classes) or ("const", v)."""
        self.p.input(name, tuple(shape))
        self.data[name] = (tuple(shape), kind)
        return name

    def uid(self, prefix: str) -> str:
        """Return a fresh op/tensor name starting with ``prefix``."""
        i = self._count.get(prefix, 0)
        self._count[prefix] = i + 1
        return prefix if i == 0 else f"{prefix}#{i}"

    # -- values ---------------------------------------------------------------------------
    def init_params(self, seed: int) -> dict[str, np.ndarray]:
        """Return every parameter's initial value (float32), drawn in declaration order."""
        rng = np.random.default_rng(seed)
        return {n: _draw(rng, shape, init) for n, (shape, init) in self.params.items()}

    def make_inputs(self, seed: int) -> dict[str, np.ndarray]:
        """Return every data input's value, drawn in declaration order from seed + 1."""
        rng = np.random.default_rng(seed + 1)
        return {n: _draw(rng, shape, kind) for n, (shape, kind) in self.data.items()}

    # -- layers ---------------------------------------------------------------------------
    def linear(self, name: str, x: str, d_in: int, d_out: int, bias: bool = True,
               std: float | None = None) -> str:
        """Return ``x @ W + b`` with W (d_in, d_out) and b ~ N(0, std), or both
        U(+-1/sqrt(d_in)) (PyTorch's nn.Linear default) when ``std`` is None."""
        init = ("normal", std) if std is not None else \
            ("uniform", -1 / math.sqrt(d_in), 1 / math.sqrt(d_in))
        w = self.param(f"{name}.W", (d_in, d_out), init)
        b = self.param(f"{name}.b", (d_out,), init) if bias else None
        return self.p.linear(name, x, w, b, out=f"{name}.out")

    def layernorm(self, name: str, x: str, d: int, eps: float) -> str:
        """Return LayerNorm over the last axis (gamma ~ 1, beta ~ 0, perturbed for testing)."""
        g = self.param(f"{name}.g", (d,), ("uniform", 0.8, 1.2))
        b = self.param(f"{name}.b", (d,), ("normal", 0.02))
        return self.p.vector(name, "layernorm", x, g, b, out=f"{name}.out", eps=eps)

    def attention(self, name: str, q: str, k: str, v: str, batch: int, seq: int, heads: int,
                  d: int, mask: str | None = None) -> str:
        """Return multi-head attention of q, k, v (batch, seq, d): the heads' Q K^T and P V are
        batched matmuls (batch x heads GEMMs each); K^T and the head split are read through
        the array's address generators (free); merging the heads moves data."""
        p = self.p
        dh = d // heads

        def heads_of(t: str, tag: str, perm: tuple) -> str:
            r = p.reshape(f"{name}.{tag}.split", t, (batch, seq, heads, dh), out=f"{name}.{tag}4")
            return p.permute(f"{name}.{tag}.heads", r, perm, out=f"{name}.{tag}h")
        qh = heads_of(q, "q", (0, 2, 1, 3))
        kt = heads_of(k, "k", (0, 2, 3, 1))
        vh = heads_of(v, "v", (0, 2, 1, 3))
        s = p.matmul(f"{name}.qk", qh, kt, out=f"{name}.scores")
        s = p.elementwise(f"{name}.scale", "scale", s, const=1.0 / math.sqrt(dh),
                          out=f"{name}.scaled")
        if mask is not None:
            s = p.elementwise(f"{name}.mask", "masked_fill", s, mask, const=-1e9,
                              out=f"{name}.masked")
        pr = p.vector(f"{name}.softmax", "softmax", s, out=f"{name}.probs", axis=-1)
        o = p.matmul(f"{name}.pv", pr, vh, out=f"{name}.ctx")
        o = p.permute(f"{name}.merge", o, (0, 2, 1, 3), out=f"{name}.ctx_t")
        return p.reshape(f"{name}.merge.reshape", o, (batch, seq, d), out=f"{name}.ctx_m")


def _draw(rng: np.random.Generator, shape: tuple[int, ...], init: tuple) -> np.ndarray:
    kind = init[0]
    if kind == "normal":
        return (rng.standard_normal(shape) * init[1]).astype(np.float32)
    if kind == "uniform":
        return rng.uniform(init[1], init[2], size=shape).astype(np.float32)
    if kind == "const":
        return np.full(shape, init[1], np.float32)
    if kind == "ids":
        return rng.integers(0, init[1], size=shape, dtype=np.int64)
    if kind == "causal_mask":  # True (1) where a query would see a later position
        s = shape[-1]
        return np.broadcast_to(np.triu(np.ones((s, s), np.float32), 1), shape).copy()
    if kind == "onehot":
        labels = rng.integers(0, init[1], size=shape[:-1])
        return np.eye(init[1], dtype=np.float32)[labels]
    raise ValueError(f"unknown initialiser {init!r}")  # pragma: no cover - builders pass known ones


def shapes_of(values: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Return the shapes of a dict of arrays."""
    return {k: tuple(np.shape(v)) for k, v in values.items()}
