"""Training steps from forward Programs: loss, backward ops derived per op, optimizer updates.

``training_step(forward, output, params, loss, optimizer)`` returns one Program: the forward ops,
the loss (MSE or cross-entropy over the last axis, against the input ``target``), the backward
ops in reverse program order, and the optimizer's update of every parameter. Its outputs are
``loss``, ``<param>.new`` and the optimizer state ``<param>.m.new``/``.v.new`` (Adam, AdamW) or
``<param>.buf.new`` (SGD with momentum), whose current values are the inputs ``<param>.m``,
``<param>.v``, ``<param>.buf`` (zeros at the first step give PyTorch's first step exactly).

Backward rules (gradients of the same tensor from several consumers are added in reverse
program order):

- matmul ``O = A' B'``: dA' = dO B'^T, dB' = A'^T dO on the array, transposes read in place;
  a linear layer over leading dims flattens them (free reshapes), so dW is one GEMM with
  K = batch x tokens; broadcast batch dims are summed;
- conv2d: im2col of the input (data movement), dW = cols^T dO and dcols = dO W per group on the
  array, col2im (a scatter-add on the vector unit) for dX;
- elementwise: the derivative of each kind (relu: relu_grad, gelu: gelu_grad, tanh: g (1 - y^2),
  sigmoid: g y (1 - y), mul: g b and g a, div: g / b and -(g / b) (a / b), ...); gradients of
  broadcast operands are summed over the broadcast axes;
- reductions: broadcast back (data movement), mean also scales;
- softmax, log_softmax, layernorm (dX by the fused formula; dgamma = sum g xhat, dbeta = sum g
  over the leading axes), pooling, gather (scatter-add into the table), concat (slices),
  broadcast (sum);
- layout: reshape back, the inverse permute, a slice's gradient padded with zeros.

Optimizers follow PyTorch's update formulas: SGD (momentum, weight decay), Adam (L2 weight decay
added to the gradient), AdamW (decoupled decay). Raises WorkloadError for an op without a rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import WorkloadError
from .program import Conv2d, Elementwise, Layout, MatMul, Program, Reduce, VectorOp

__all__ = ["Optimizer", "training_step"]


@dataclass(frozen=True)
class Optimizer:
    """Optimizer settings: kind sgd | adam | adamw, learning rate, momentum (sgd), betas and
    eps (adam/adamw), weight decay, and the step number (1-based; Adam's bias corrections)."""

    kind: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    step: int = 1

    def state(self) -> tuple[str, ...]:
        """Return the suffixes of the per-parameter state tensors."""
        if self.kind in ("adam", "adamw"):
            return ("m", "v")
        return ("buf",) if self.momentum else ()


class _Grad:
    """Builds backward ops into a Program, with fresh names."""

    def __init__(self, p: Program):
        self.p = p
        self.n = 0
        self.grads: dict[str, list[str]] = {}

    def name(self, tag: str) -> str:
        self.n += 1
        return f"bwd{self.n}.{tag}"

    def add(self, tensor: str, grad: str) -> None:
        self.grads.setdefault(tensor, []).append(grad)

    def total(self, tensor: str) -> str | None:
        parts = self.grads.get(tensor)
        if not parts:
            return None
        g = parts[0]
        for other in parts[1:]:
            g = self.p.elementwise(self.name(f"acc.{tensor}"), "add", g, other)
        self.grads[tensor] = [g]
        return g

    # helpers ------------------------------------------------------------------------------
    def ew(self, kind: str, *args: str, const: float = 0.0) -> str:
        return self.p.elementwise(self.name(kind), kind, *args, const=const)

    def unbroadcast(self, g: str, shape: tuple[int, ...]) -> str:
        """Sum ``g`` over the axes broadcast to reach its shape from ``shape``."""
        gs = self.p.shapes[g]
        if gs == tuple(shape):
            return g
        lead = len(gs) - len(shape)
        axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape)
                                          if s == 1 and gs[i + lead] != 1)
        r = self.p.reduce(self.name("unbroadcast"), "sum", g, axes, keepdims=True)
        return self.p.reshape(self.name("unbroadcast.shape"), r, tuple(shape))

    def reshape(self, t: str, shape) -> str:
        if self.p.shapes[t] == tuple(shape):
            return t
        return self.p.reshape(self.name("reshape"), t, tuple(shape))


def _loss(p: Program, y: str, loss: str) -> tuple[str, str]:
    """Append the loss against input ``target``; return (loss tensor, dL/dy)."""
    shape = p.shapes[y]
    if loss == "mse":
        n = math.prod(shape)
        d = p.elementwise("loss.diff", "sub", y, "target", out="loss.d")
        sq = p.elementwise("loss.square", "mul", d, d, out="loss.d2")
        s = p.reduce("loss.sum", "sum", sq, None, keepdims=False, out="loss.s")
        lo = p.elementwise("loss.mean", "scale", s, const=1.0 / n, out="loss")
        dy = p.elementwise("loss.grad", "scale", d, const=2.0 / n, out="loss.dy")
        return lo, dy
    if loss == "cross_entropy":  # target: one-hot (or probabilities) over the last axis
        rows = math.prod(shape[:-1])
        ls = p.vector("loss.log_softmax", "log_softmax", y, out="loss.ls", axis=-1)
        tl = p.elementwise("loss.pick", "mul", "target", ls, out="loss.tl")
        s = p.reduce("loss.sum", "sum", tl, None, keepdims=False, out="loss.s")
        lo = p.elementwise("loss.mean", "scale", s, const=-1.0 / rows, out="loss")
        pr = p.elementwise("loss.softmax", "exp", ls, out="loss.p")
        d = p.elementwise("loss.diff", "sub", pr, "target", out="loss.d")
        dy = p.elementwise("loss.grad", "scale", d, const=1.0 / rows, out="loss.dy")
        return lo, dy
    raise WorkloadError("train", "loss", f"must be mse or cross_entropy, got {loss!r}")


def _matmul_grads(G: _Grad, op: MatMul, g: str, need: set[str]) -> None:
    p = G.p
    a, b = op.inputs
    ta, tb = op.transpose_a, op.transpose_b
    sa, sb = p.shapes[a], p.shapes[b]
    if len(sb) == 2 and len(sa) > 2:  # a linear layer over the leading dims of a
        if ta:
            raise WorkloadError(f"program {p.name}", op.name, "no backward rule for a "
                                "transposed N-D operand with a 2-D weight")
        k = sa[-1]
        n = p.shapes[op.output][-1]
        if a in need:
            G.add(a, p.matmul(G.name(f"d.{a}"), g, b, transpose_b=not tb))
        if b in need:
            a2 = G.reshape(a, (-1, k))
            g2 = G.reshape(g, (-1, n))
            db = p.matmul(G.name(f"d.{b}"), a2, g2, transpose_a=True) if not tb else \
                p.matmul(G.name(f"d.{b}"), g2, a2, transpose_a=True)
            G.add(b, db)
        return
    if a in need:
        da = p.matmul(G.name(f"d.{a}"), g, b, transpose_b=not tb) if not ta else \
            p.matmul(G.name(f"d.{a}"), b, g, transpose_a=tb, transpose_b=True)
        G.add(a, G.unbroadcast(da, sa))
    if b in need:
        db = p.matmul(G.name(f"d.{b}"), a, g, transpose_a=not ta) if not tb else \
            p.matmul(G.name(f"d.{b}"), g, a, transpose_a=True, transpose_b=ta)
        G.add(b, G.unbroadcast(db, sb))


def _conv_grads(G: _Grad, op: Conv2d, g: str, need: set[str]) -> None:
    p = G.p
    x, w = op.inputs
    nb, c, h, wd = p.shapes[x]
    f, cg, kh, kw = p.shapes[w]
    _, _, oh, ow = p.shapes[op.output]
    grp = op.groups
    m = nb * oh * ow
    attrs = dict(kernel=(kh, kw), stride=op.stride, padding=op.padding, dilation=op.dilation,
                 groups=grp)
    go = p.permute(G.name("dconv.nhwc"), g, (0, 2, 3, 1))
    go = p.reshape(G.name("dconv.rows"), go, (m, grp, f // grp))
    go = p.permute(G.name("dconv.groups"), go, (1, 0, 2))  # (g, M, F/g)
    if w in need:
        cols = p.vector(G.name("dconv.im2col"), "im2col", x, **attrs)  # (g, M, Kg)
        dw = p.matmul(G.name(f"d.{w}"), cols, go, transpose_a=True)  # (g, Kg, F/g)
        dw = p.permute(G.name("dconv.dw.t"), dw, (0, 2, 1))
        G.add(w, p.reshape(G.name("dconv.dw"), dw, (f, cg, kh, kw)))
    if x in need:
        wm = p.reshape(G.name("dconv.wmat"), w, (grp, f // grp, cg * kh * kw))
        dcols = p.matmul(G.name("dconv.dcols"), go, wm)  # (g, M, Kg)
        G.add(x, p.vector(G.name(f"d.{x}"), "col2im", dcols, shape=(nb, c, h, wd), **attrs))


def _elementwise_grads(G: _Grad, op: Elementwise, g: str, need: set[str]) -> None:
    p = G.p
    k = op.kind
    ins = op.inputs
    y = op.output

    def give(i: int, grad: str) -> None:
        if ins[i] in need:
            G.add(ins[i], G.unbroadcast(grad, p.shapes[ins[i]]))
    if k == "add":
        give(0, g)
        give(1, g)
    elif k == "sub":
        give(0, g)
        if ins[1] in need:
            give(1, G.ew("scale", g, const=-1.0))
    elif k == "mul":
        if ins[0] in need:
            give(0, G.ew("mul", g, ins[1]))
        if ins[1] in need:
            give(1, G.ew("mul", g, ins[0]))
    elif k == "div":
        t = G.ew("div", g, ins[1])
        give(0, t)
        if ins[1] in need:
            give(1, G.ew("scale", G.ew("mul", t, y), const=-1.0))
    elif k == "scale":
        give(0, G.ew("scale", g, const=op.const))
    elif k == "add_const":
        give(0, g)
    elif k == "square":
        give(0, G.ew("scale", G.ew("mul", g, ins[0]), const=2.0))
    elif k == "relu":
        give(0, G.ew("relu_grad", g, ins[0]))
    elif k in ("gelu", "gelu_tanh"):
        give(0, G.ew(f"{k}_grad", g, ins[0]))
    elif k in ("tanh", "sigmoid"):
        give(0, G.ew(f"{k}_grad", g, y))
    elif k == "exp":
        give(0, G.ew("mul", g, y))
    elif k == "log":
        give(0, G.ew("div", g, ins[0]))
    elif k == "sqrt":
        give(0, G.ew("scale", G.ew("div", g, y), const=0.5))
    elif k == "masked_fill":
        give(0, p.elementwise(G.name("masked_fill"), "masked_fill", g, ins[1], const=0.0))
    else:
        raise WorkloadError(f"program {p.name}", op.name, f"no backward rule for {k}")


def _vector_grads(G: _Grad, op: VectorOp, g: str, need: set[str]) -> None:
    p = G.p
    k = op.kind
    ins = op.inputs
    if k in ("softmax", "log_softmax"):
        if ins[0] in need:
            G.add(ins[0], p.vector(G.name(f"{k}_grad"), f"{k}_grad", op.output, g,
                                   axis=op.attr("axis")))
    elif k == "layernorm":
        x, gamma, beta = ins
        eps = op.attr("eps")
        lead = tuple(range(len(p.shapes[x]) - 1))
        if x in need:
            G.add(x, p.vector(G.name("layernorm_grad"), "layernorm_grad", x, gamma, g, eps=eps))
        if gamma in need:
            xhat = p.vector(G.name("normalize"), "normalize", x, eps=eps)
            G.add(gamma, p.reduce(G.name("dgamma"), "sum", G.ew("mul", g, xhat), lead,
                                  keepdims=False))
        if beta in need:
            G.add(beta, p.reduce(G.name("dbeta"), "sum", g, lead, keepdims=False))
    elif k in ("maxpool2d", "avgpool2d"):
        if ins[0] in need:
            G.add(ins[0], p.vector(G.name(f"{k}_grad"), f"{k}_grad", ins[0], g,
                                   kernel=op.attr("kernel"), stride=op.attr("stride"),
                                   padding=op.attr("padding")))
    elif k == "gather":
        if ins[0] in need:
            G.add(ins[0], p.vector(G.name("scatter_add"), "scatter_add", ins[1], g,
                                   rows=p.shapes[ins[0]][0]))
    elif k == "concat":
        ax = op.attr("axis")
        start = 0
        for t in ins:
            size = p.shapes[t][ax]
            if t in need:
                G.add(t, p.slice(G.name("dconcat"), g, ax, start, start + size))
            start += size
    elif k == "broadcast":
        if ins[0] in need:
            G.add(ins[0], G.unbroadcast(g, p.shapes[ins[0]]))
    else:
        raise WorkloadError(f"program {p.name}", op.name, f"no backward rule for {k}")


def _reduce_grads(G: _Grad, op: Reduce, g: str, need: set[str]) -> None:
    p = G.p
    x = op.inputs[0]
    if x not in need:
        return
    if op.kind not in ("sum", "mean"):
        raise WorkloadError(f"program {p.name}", op.name,
                            f"no backward rule for a {op.kind} reduction")
    sx = p.shapes[x]
    axes = range(len(sx)) if op.axis is None else \
        (op.axis if isinstance(op.axis, tuple) else (op.axis,))
    axes = {a % len(sx) for a in axes}
    kept = G.reshape(g, tuple(1 if i in axes else s for i, s in enumerate(sx)))
    b = p.vector(G.name("dreduce"), "broadcast", kept, shape=sx)
    if op.kind == "mean":
        b = G.ew("scale", b, const=1.0 / math.prod(sx[a] for a in axes))
    G.add(x, b)


def _layout_grads(G: _Grad, op: Layout, g: str, need: set[str]) -> None:
    p = G.p
    x = op.inputs[0]
    if x not in need:
        return
    if op.kind == "reshape":
        G.add(x, G.reshape(g, p.shapes[x]))
    elif op.kind == "permute":
        perm = op.attr("perm")
        inv = tuple(int(i) for i in np.argsort(perm))
        G.add(x, p.permute(G.name("dpermute"), g, inv))
    else:
        G.add(x, p.vector(G.name("dslice"), "pad_slice", g, shape=p.shapes[x],
                          axis=op.attr("axis"), start=op.attr("start")))


def _update(p: Program, param: str, g: str, opt: Optimizer) -> list[str]:
    """Append the optimizer's update of ``param``; return its new tensors."""
    c = opt
    if c.kind == "sgd":
        if c.weight_decay:
            g = p.elementwise(f"opt.{param}.decay", "axpy", g, param, const=c.weight_decay)
        outs = []
        if c.momentum:
            g = p.elementwise(f"opt.{param}.momentum", "momentum", f"{param}.buf", g,
                              const=c.momentum, out=f"{param}.buf.new")
            outs.append(g)
        return [p.elementwise(f"opt.{param}.update", "sgd", param, g, const=c.lr,
                              out=f"{param}.new")] + outs
    if c.kind not in ("adam", "adamw"):
        raise WorkloadError("train", "optimizer", f"must be sgd, adam or adamw, got {c.kind!r}")
    wd = c.weight_decay
    if c.kind == "adam" and wd:
        g = p.elementwise(f"opt.{param}.decay", "axpy", g, param, const=wd)
    b1, b2 = c.betas
    m = p.elementwise(f"opt.{param}.m", "adam_m", f"{param}.m", g, const=b1, out=f"{param}.m.new")
    v = p.elementwise(f"opt.{param}.v", "adam_v", f"{param}.v", g, const=b2, out=f"{param}.v.new")
    bc1 = 1 - b1 ** c.step
    bc2 = math.sqrt(1 - b2 ** c.step)
    new = p.elementwise(f"opt.{param}.update", "adam_w", param, m, v,
                        params=(c.lr, wd if c.kind == "adamw" else 0.0, bc1, bc2, c.eps),
                        out=f"{param}.new")
    return [new, m, v]


def training_step(forward: Program, output: str, params: list[str], loss: str,
                  optimizer: Optimizer) -> Program:
    """Return the Program of one training step of ``forward`` (see module doc); the target
    input is ``target``, shaped like ``output``."""
    p = Program(f"{forward.name} train step")
    for t in forward.inputs:
        p.input(t, forward.shapes[t])
    p.input("target", forward.shapes[output])
    for param in params:
        for s in optimizer.state():
            p.input(f"{param}.{s}", forward.shapes[param])
    for op in forward.ops:  # the forward ops, unchanged
        p.shapes[op.output] = forward.shapes[op.output]
        p.ops.append(op)
    need = set(params)
    for op in forward.ops:
        if any(t in need for t in op.inputs):
            need.add(op.output)
    lo, dy = _loss(p, output, loss)
    G = _Grad(p)
    G.add(output, dy)
    for op in reversed(forward.ops):
        if op.output not in need:
            continue
        g = G.total(op.output)
        if g is None:
            continue
        if isinstance(op, MatMul):
            _matmul_grads(G, op, g, need)
        elif isinstance(op, Conv2d):
            _conv_grads(G, op, g, need)
        elif isinstance(op, Elementwise):
            _elementwise_grads(G, op, g, need)
        elif isinstance(op, Reduce):
            _reduce_grads(G, op, g, need)
        elif isinstance(op, VectorOp):
            _vector_grads(G, op, g, need)
        elif isinstance(op, Layout):
            _layout_grads(G, op, g, need)
    outs = [lo]
    for param in params:
        g = G.total(param)
        if g is None:
            raise WorkloadError(f"program {forward.name}", param, "the loss does not depend on "
                                "this parameter")
        outs += _update(p, param, g, optimizer)
    p.outputs = outs
    return p
