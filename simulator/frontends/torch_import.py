"""PyTorch front end: an ``nn.Module`` and example inputs become a Program (extra ``[torch]``).

The module is captured with ``torch.export.export`` (eval mode: dropout off, BatchNorm on its
running statistics) and its ATen graph is lowered node by node, through one small function per
operator (``LOWER``), to the SAME Program ops the zoo builders emit (``kernels/netbuild.py``):

- ``linear`` -> ``Program.linear`` (a matmul on the array plus a bias add on the vector unit);
  a weight only ever used as a linear weight is stored (in, out) as the zoo stores it, a tied
  one (GPT-2's LM head) is read transposed in place (``transpose_b``);
- ``conv2d`` -> ``Program.conv2d`` (im2col, one GEMM per group) plus a bias add, the bias
  stored (out, 1, 1); inference ``batch_norm`` -> the vector unit's ``batchnorm``;
- ``scaled_dot_product_attention`` -> ``Net.attention``'s sequence: Q K^T (a batched matmul, K^T
  read in place), scale, mask, softmax, P V; ``is_causal`` adds a causal mask input;
- ``lstm`` -> the zoo's unrolled LSTM (one input-projection GEMM per layer, one recurrent GEMM
  per step after the first when h_0 = 0, gate slices free); the two biases of a layer are
  stored as their sum (one parameter on the chip);
- layout ops (view, reshape, flatten, transpose, permute, slice, select, split, unsqueeze)
  -> reshape / permute / slice, free where the zoo's are; a clean-up pass merges chains of
  permutes and of reshapes, and folds ``adaptive_avg_pool2d(1) + flatten`` into one mean;
- the elementwise, reduction, normalisation, pooling, embedding and concat operators map to
  the vector unit's kinds (``simulator.core.vector``).

Parameters become program inputs named by their state_dict keys, with their values from the
module; buffers and computations on constants only (``torch.arange`` position ids, masks
built from buffers) are evaluated once at import (constant folding). An operator with no
lowering ends in ONE line naming the node, its operator and the file (``WorkloadError``); no
node is dropped or costed as zero silently (only nodes whose results nothing uses are skipped).

Training (``ImportedModel`` plugs into ``kernels.zoo_train.train_zoo``): only the forward is
captured; the loss, the backward and the optimizer come from ``simulator.core.autodiff.
training_step``, the same costed ops as the zoo's training (PyTorch's joint graph would bring
ATen backward kernels with no array/vector costing of their own and a second lowering to keep
in step). The forward is captured in eval mode (no dropout, BatchNorm on running statistics).

torch is imported lazily, inside the functions here; the simulator core never imports it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import logging
import math
import operator
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simulator.errors import WorkloadError
from simulator.core.program import Layout, Program, Reduce
from simulator.frontends.feeds import Feed, match_feeds

__all__ = ["ImportedModel", "LOWER", "import_module", "load_factory", "import_torch",
           "parse_input_shape"]

# Largest example input the CLI draws for a shape given with --input (elements).
MAX_INPUT_ELEMENTS = 1 << 31


def _torch():
    try:
        import torch
    except ImportError:
        raise WorkloadError("--torch", "torch", "PyTorch is not installed; install the extra: "
                            "pip install 'systolic-sim[torch]'") from None
    return torch


# --------------------------------------------------------------------------- the result

@dataclass
class _Params:
    """Duck-types ``Net.params`` for kernels.zoo_train: parameter name -> (shape, source)."""

    items: dict[str, tuple[tuple[int, ...], tuple]] = field(default_factory=dict)

    def __iter__(self):
        return iter(self.items)

    def values(self):
        """Return (shape, source) of every parameter."""
        return self.items.values()

    def __len__(self):
        return len(self.items)


@dataclass
class _NetView:
    params: _Params


@dataclass
class ImportedModel:
    """A Program imported from PyTorch with every input's value.

    ``values``: parameters (zoo layout), constants and example data, by program input name;
    ``params``: the trainable parameters (program inputs) in order; ``sources``: per parameter,
    (state_dict key, layout) where layout is ``same``, ``T`` (stored transposed: PyTorch's
    (out, in) linear weight as (in, out)), ``c11`` (a conv bias as (out, 1, 1)) or ``sum`` (an
    LSTM's two biases added); ``sizes``: the data inputs' shapes. Plugs into the zoo's run and
    train paths (``program``, ``output``, ``net.params``, ``inputs(seed)``, ``sizes``).
    """

    name: str
    program: Program
    output: str
    values: dict[str, np.ndarray]
    params: list[str]
    sources: dict[str, tuple[str, str]]
    data: list[str]
    label: str = ""
    module: Any = None  # the nn.Module imported (eval mode), to run it in PyTorch

    @property
    def net(self) -> _NetView:
        """Return a view with ``params`` (name -> (shape, source)), as kernels.netbuild.Net."""
        return _NetView(_Params({k: (self.program.shapes[k], self.sources[k])
                                 for k in self.params}))

    @property
    def sizes(self) -> dict:
        """Return the data inputs' shapes, ``{name: "AxBxC"}``."""
        return {k: "x".join(map(str, self.program.shapes[k])) for k in self.data}

    def inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Return every program input's value (the module's parameters and the example
        inputs; ``seed`` is unused: the values are the module's)."""
        del seed
        return dict(self.values)

    def torch_params(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Return parameter values (program layout, e.g. after a training step) in PyTorch's
        layout, keyed by state_dict key (an LSTM's summed bias comes back under bias_ih)."""
        out = {}
        for name in self.params:
            key, layout = self.sources[name]
            v = np.asarray(values[name])
            out[key] = v.T if layout == "T" else v.reshape(-1) if layout == "c11" else v
        return out


# --------------------------------------------------------------------------- lowering state

class _Const:
    """A value known at import time (a buffer, a folded computation, a Python scalar)."""

    __slots__ = ("value", "hint")

    def __init__(self, value, hint: str | None = None):
        self.value = value
        self.hint = hint


class _Lowering:
    """Lowers one exported graph into a Program."""

    def __init__(self, torch, ep, where: str, name: str):
        self.torch = torch
        self.ep = ep
        self.where = where
        self.p = Program(name)
        self.values: dict[str, np.ndarray] = {}
        self.params: list[str] = []
        self.sources: dict[str, tuple[str, str]] = {}
        self.data: list[str] = []
        self.env: dict[str, Any] = {}
        self.count: dict[str, int] = {}
        self.const_inputs: dict[int, str] = {}
        self.node = None
        self.param_nodes: dict[str, tuple[str, Any]] = {}  # node name -> (state key, tensor)
        self.layout: dict[str, str] = {}  # param node name -> chosen layout
        self.lstm_bias: dict[tuple[str, str], str] = {}

    # -- errors -------------------------------------------------------------------------------
    def fail(self, message: str) -> WorkloadError:
        n = self.node
        what = f"node {n.name} ({_op_name(n.target)})" if n is not None else "graph"
        err = WorkloadError(_node_location(n) or self.where, what, message)
        err.importer = True
        return err

    # -- names --------------------------------------------------------------------------------
    def opname(self, short: str) -> str:
        """Return a fresh op name: the node's module path, plus ``short`` unless the op is the
        module's own (a Linear's linear)."""
        stack = self.node.meta.get("nn_module_stack") if self.node is not None else None
        path = ""
        leaf = ""
        if stack:
            path, leaf = list(stack.values())[-1]
            leaf = leaf if isinstance(leaf, str) else getattr(leaf, "__name__", "")
        own = path and leaf.startswith("torch.nn.modules") and \
            leaf.rsplit(".", 1)[-1].lower().startswith(short.replace("_", "")[:4])
        base = path if own else f"{path}.{short}" if path else short
        i = self.count.get(base, 0)
        self.count[base] = i + 1
        return base if i == 0 else f"{base}#{i}"

    # -- operands -----------------------------------------------------------------------------
    def arg(self, a):
        """Return the lowered value of a node argument (tensor name, _Const, list, scalar)."""
        fx = self.torch.fx
        if isinstance(a, fx.Node):
            if a.name in self.param_nodes:
                return self.param(a.name, self.layout.get(a.name, "same"))
            return self.env[a.name]
        if isinstance(a, (list, tuple)):
            return type(a)(self.arg(x) for x in a)
        return a

    def tensor(self, v, hint: str = "const") -> str:
        """Return a program tensor for a lowered value (constants become inputs)."""
        if isinstance(v, str):
            return v
        if isinstance(v, _Const):
            key = id(v)
            if key not in self.const_inputs:
                arr = _to_numpy(self.torch, v.value)
                if arr.ndim == 0:
                    arr = arr.reshape(1)
                name = self.fresh_tensor(v.hint or hint)
                self.p.input(name, arr.shape)
                self.values[name] = arr
                self.const_inputs[key] = name
            return self.const_inputs[key]
        raise self.fail(f"expected a tensor operand, got {type(v).__name__} {v!r}")

    def fresh_tensor(self, base: str) -> str:
        name, i = base, 0
        while name in self.p.shapes:
            i += 1
            name = f"{base}#{i}"
        return name

    def shape(self, t: str) -> tuple[int, ...]:
        return self.p.shapes[t]

    def out(self, op: str) -> str:
        return self.fresh_tensor(f"{op}.out")

    # -- parameters ---------------------------------------------------------------------------
    def param(self, node_name: str, layout: str = "same") -> str:
        """Return the program input of parameter node ``node_name`` in ``layout``."""
        key, tensor = self.param_nodes[node_name]
        chosen = self.layout.get(node_name, "same")
        if chosen != layout:
            raise self.fail(f"parameter {key} is used both as {chosen} and as {layout}")
        if key not in self.p.shapes:
            arr = _to_numpy(self.torch, tensor)
            if layout == "T":
                arr = np.ascontiguousarray(arr.T)
            elif layout == "c11":
                arr = arr.reshape(-1, 1, 1)
            if arr.ndim == 0:
                arr = arr.reshape(1)
            self.p.input(key, arr.shape)
            self.values[key] = arr.astype(np.float32)
            self.params.append(key)
            self.sources[key] = (key, layout)
        return key

    def operand(self, a, hint: str = "const") -> str:
        """Return the program tensor of a tensor argument (parameters in their own layout)."""
        return self.tensor(self.arg(a), hint)

    # -- emitting -------------------------------------------------------------------------------
    def ew(self, short: str, kind: str, *xs: str, const: float = 0.0) -> str:
        n = self.opname(short)
        return self.p.elementwise(n, kind, *xs, const=const, out=self.out(n))

    def vec(self, short: str, kind: str, *xs: str, **attrs) -> str:
        n = self.opname(short)
        return self.p.vector(n, kind, *xs, out=self.out(n), **attrs)

    def reshape(self, x: str, shape, short: str = "reshape") -> str:
        shape = tuple(int(s) for s in shape)
        if -1 in shape:
            known = math.prod(s for s in shape if s != -1)
            shape = tuple(math.prod(self.shape(x)) // known if s == -1 else s for s in shape)
        if self.shape(x) == shape:
            return x
        n = self.opname(short)
        return self.p.reshape(n, x, shape, out=self.out(n))

    def permute(self, x: str, perm, short: str = "permute") -> str:
        perm = tuple(int(q) % len(self.shape(x)) for q in perm)
        if perm == tuple(range(len(perm))):
            return x
        n = self.opname(short)
        return self.p.permute(n, x, perm, out=self.out(n))

    def slice(self, x: str, axis: int, start: int, stop: int, short: str = "slice") -> str:
        if start == 0 and stop == self.shape(x)[axis]:
            return x
        n = self.opname(short)
        return self.p.slice(n, x, axis, start, stop, out=self.out(n))


_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def _node_location(node) -> str | None:
    """Return ``FILE:LINE`` of the user's source line that made ``node`` (the innermost frame
    outside torch itself), or None when the graph does not say."""
    trace = node.meta.get("stack_trace") if node is not None else None
    frames = _FRAME.findall(trace or "")
    if not frames:
        return None
    torch_dir = str(Path(_torch().__file__).parent)
    user = [f for f in frames if not f[0].startswith(torch_dir)]
    file, line = (user or frames)[-1]
    return f"{file}:{line}"


def _op_name(target) -> str:
    if isinstance(target, str):
        return target
    name = getattr(target, "__name__", None) or str(target)
    if hasattr(target, "_schema") or "aten" in str(target):
        return str(target)
    return name


def _to_numpy(torch, v) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        t = v.detach().cpu()
        if t.dtype == torch.bool:
            return t.numpy().astype(np.float32)
        if t.is_floating_point():
            return t.to(torch.float32).numpy()
        return t.to(torch.int64).numpy()
    arr = np.asarray(v)
    return arr.astype(np.float32) if arr.dtype.kind in "fb" else arr.astype(np.int64)


def _scalar(L: _Lowering, v) -> float | None:
    """Return v as a Python float when it is a scalar (or a one-element constant), else None."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, _Const):
        t = v.value
        if isinstance(t, (int, float, bool)):
            return float(t)
        if isinstance(t, L.torch.Tensor) and t.numel() == 1:
            return float(t.reshape(()).item())
    return None


def _ax(L: _Lowering, x: str, axis: int) -> int:
    return int(axis) % len(L.shape(x))


# --------------------------------------------------------------------------- lowerings

def _linear(L, n):
    x = L.tensor(L.arg(n.args[0]))
    w_node = n.args[1]
    b_node = n.args[2] if len(n.args) > 2 else n.kwargs.get("bias")
    name = L.opname("linear")
    w = L.operand(w_node, "weight")  # the weight first: parameters in the zoo's order
    b = L.operand(b_node, "bias") if b_node is not None else None
    if w_node.name in L.param_nodes and L.layout.get(w_node.name) == "T":
        return L.p.linear(name, x, w, b, out=L.out(name))
    if b is None:
        return L.p.matmul(name, x, w, out=L.out(name), transpose_b=True)
    y = L.p.matmul(f"{name}.matmul", x, w, out=L.out(f"{name}.matmul"), transpose_b=True)
    return L.p.elementwise(f"{name}.bias", "add", y, b, out=L.out(name))


def _conv2d(L, n):
    a = list(n.args) + [None] * (7 - len(n.args))
    x, w_node, b_node = L.tensor(L.arg(a[0])), a[1], a[2]
    stride = a[3] if a[3] is not None else n.kwargs.get("stride", [1, 1])
    padding = a[4] if a[4] is not None else n.kwargs.get("padding", [0, 0])
    dilation = a[5] if a[5] is not None else n.kwargs.get("dilation", [1, 1])
    groups = a[6] if a[6] is not None else n.kwargs.get("groups", 1)
    if isinstance(padding, str):
        raise L.fail(f"padding={padding!r} is not supported; give explicit padding sizes")
    w = L.operand(w_node, "weight")
    name = L.opname("conv2d")
    if b_node is None:
        return L.p.conv2d(name, x, w, stride=list(stride), padding=list(padding),
                          dilation=list(dilation), groups=groups, out=L.out(name))
    y = L.p.conv2d(name, x, w, stride=list(stride), padding=list(padding),
                   dilation=list(dilation), groups=groups, out=L.out(f"{name}.conv"))
    if b_node.name in L.param_nodes and L.layout.get(b_node.name) == "c11":
        b = L.param(b_node.name, "c11")
    else:
        b = L.reshape(L.operand(b_node, "bias"), (-1, 1, 1), "bias.reshape")
    return L.p.elementwise(f"{name}.bias", "add", y, b, out=L.out(f"{name}.bias"))


def _batch_norm(L, n):
    args = list(n.args)
    x = L.tensor(L.arg(args[0]))
    c = L.shape(x)[1]
    if n.target == L.torch.ops.aten.batch_norm.default:
        training, eps = args[5], args[7]
    else:  # _native_batch_norm_legit_no_training(x, w, b, mean, var, momentum, eps)
        training, eps = False, args[6]
    if training:
        raise L.fail("batch_norm in training mode (batch statistics) is not supported; the "
                     "importer captures the module in eval mode")
    ops = []
    for a, default in zip(args[1:5], (1.0, 0.0, 0.0, 1.0)):
        if a is None:
            ops.append(L.tensor(_Const(L.torch.full((c,), default)), "bn.const"))
        else:
            ops.append(L.operand(a, "bn"))
    y = L.vec("batch_norm", "batchnorm", x, *ops, eps=float(eps))
    if n.target != L.torch.ops.aten.batch_norm.default:
        return (y, None, None)
    return y


def _unary(kind):
    def lower(L, n):
        return L.ew(kind, kind, L.tensor(L.arg(n.args[0])))
    return lower


def _gelu(L, n):
    approx = n.kwargs.get("approximate", n.args[1] if len(n.args) > 1 else "none")
    kind = "gelu_tanh" if approx == "tanh" else "gelu"
    return L.ew("gelu", kind, L.tensor(L.arg(n.args[0])))


def _binary(kind):
    def lower(L, n):
        a, b = L.arg(n.args[0]), L.arg(n.args[1])
        alpha = n.kwargs.get("alpha", n.args[2] if len(n.args) > 2 else 1)
        sa, sb = _scalar(L, a), _scalar(L, b)
        if sa is not None and sb is not None:
            raise L.fail("an operation on two scalars should have been folded")
        if kind in ("add", "sub"):
            sign = 1.0 if kind == "add" else -1.0
            if sb is not None:
                return L.ew(kind, "add_const", L.tensor(a), const=sign * alpha * sb)
            if sa is not None:  # c - x or c + x
                y = L.tensor(b)
                if kind == "sub" or alpha != 1:
                    y = L.ew("scale", "scale", y, const=sign * alpha)
                return L.ew(kind, "add_const", y, const=sa)
            ta, tb = L.operand(n.args[0]), L.operand(n.args[1])
            if alpha != 1:
                tb = L.ew("scale", "scale", tb, const=alpha)
            return L.ew(kind, kind, ta, tb)
        if kind == "mul":
            if sb is not None:
                return L.ew("mul", "scale", L.tensor(a), const=sb)
            if sa is not None:
                return L.ew("mul", "scale", L.tensor(b), const=sa)
            return L.ew("mul", "mul", L.operand(n.args[0]), L.operand(n.args[1]))
        if kind == "div":
            if n.kwargs.get("rounding_mode") is not None:
                raise L.fail("div with a rounding mode is not supported")
            if sb is not None:
                return L.ew("div", "scale", L.tensor(a), const=1.0 / sb)
            return L.ew("div", "div", L.operand(n.args[0]), L.operand(n.args[1]))
        if kind in ("max", "min"):
            if sa is not None or sb is not None:
                raise L.fail(f"{kind}imum with a scalar is not supported")
            return L.ew(kind, kind, L.operand(n.args[0]), L.operand(n.args[1]))
        raise AssertionError(kind)  # pragma: no cover
    return lower


def _rsub(L, n):  # rsub(x, c, alpha) = c - alpha * x
    c = _scalar(L, L.arg(n.args[1]))
    alpha = n.kwargs.get("alpha", n.args[2] if len(n.args) > 2 else 1)
    if c is None:
        raise L.fail("rsub with a tensor is not supported")
    y = L.ew("rsub", "scale", L.tensor(L.arg(n.args[0])), const=-float(alpha))
    return L.ew("rsub", "add_const", y, const=c)


def _neg(L, n):
    return L.ew("neg", "scale", L.tensor(L.arg(n.args[0])), const=-1.0)


def _pow(L, n):
    e = n.args[1]
    x = L.tensor(L.arg(n.args[0]))
    if e == 2:
        return L.ew("pow", "square", x)
    if e == 0.5:
        return L.ew("pow", "sqrt", x)
    if e == -0.5:
        return L.ew("pow", "rsqrt", x)
    raise L.fail(f"pow with exponent {e!r} is not supported (2, 0.5 and -0.5 are)")


def _masked_fill(L, n):
    x = L.tensor(L.arg(n.args[0]))
    value = _scalar(L, L.arg(n.args[2]))
    if value is None:
        raise L.fail("masked_fill with a tensor value is not supported")
    m = L.tensor(L.arg(n.args[1]), "mask")
    return L.ew("masked_fill", "masked_fill", x, m, const=value)


def _where(L, n):
    c, a, b = (L.arg(x) for x in n.args[:3])
    a, b = (v if isinstance(v, (str, _Const)) else _Const(L.torch.tensor(float(v)))
            for v in (a, b))
    return L.ew("where", "where", L.tensor(c, "cond"), L.tensor(a), L.tensor(b))


def _softmax(kind):
    def lower(L, n):
        x = L.tensor(L.arg(n.args[0]))
        return L.vec(kind, kind, x, axis=_ax(L, x, n.args[1]))
    return lower


def _layer_norm(L, n):
    x = L.tensor(L.arg(n.args[0]))
    shape = list(n.args[1])
    if len(shape) != 1 or shape[0] != L.shape(x)[-1]:
        raise L.fail(f"layer_norm over {shape} is not supported (over the last axis only)")
    w = n.args[2] if len(n.args) > 2 else n.kwargs.get("weight")
    b = n.args[3] if len(n.args) > 3 else n.kwargs.get("bias")
    eps = n.args[4] if len(n.args) > 4 else n.kwargs.get("eps", 1e-5)
    if w is None and b is None:
        return L.vec("layer_norm", "normalize", x, eps=float(eps))
    d = L.shape(x)[-1]
    w = L.operand(w, "ln") if w is not None else L.tensor(_Const(L.torch.ones(d)))
    b = L.operand(b, "ln") if b is not None else L.tensor(_Const(L.torch.zeros(d)))
    return L.vec("layer_norm", "layernorm", x, w, b, eps=float(eps))


def _rms_norm(L, n):
    x = L.tensor(L.arg(n.args[0]))
    shape = list(n.args[1])
    if len(shape) != 1 or shape[0] != L.shape(x)[-1]:
        raise L.fail(f"rms_norm over {shape} is not supported (over the last axis only)")
    w = n.args[2] if len(n.args) > 2 else n.kwargs.get("weight")
    eps = n.args[3] if len(n.args) > 3 else n.kwargs.get("eps")
    if w is None or eps is None:
        raise L.fail("rms_norm needs a weight and an explicit eps")
    return L.vec("rms_norm", "rmsnorm", x, L.operand(w, "rms"), eps=float(eps))


def _pool(kind):
    def lower(L, n):
        a = list(n.args) + [None] * (7 - len(n.args))
        x = L.tensor(L.arg(a[0]))
        k = list(a[1])
        s = list(a[2]) if a[2] else k
        pad = a[3] if a[3] is not None else 0
        if kind == "maxpool2d":
            dil, ceil = a[4] if a[4] is not None else 1, a[5] or False
            if any(d != 1 for d in (dil if isinstance(dil, (list, tuple)) else [dil])):
                raise L.fail("max_pool2d with dilation is not supported")
        else:
            ceil = a[4] or False
            include = a[5] if a[5] is not None else True
            if a[6] is not None:
                raise L.fail("avg_pool2d with divisor_override is not supported")
            pads = pad if isinstance(pad, (list, tuple)) else [pad]
            if not include and any(pads):
                raise L.fail("avg_pool2d with padding and count_include_pad=False is not "
                             "supported")
        if ceil:
            raise L.fail("ceil_mode=True is not supported")
        short = "max_pool2d" if kind == "maxpool2d" else "avg_pool2d"
        return L.vec(short, kind, x, kernel=_int_or_pair(k), stride=_int_or_pair(s),
                     padding=_int_or_pair(pad))
    return lower


def _int_or_pair(v):
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    if len(v) == 1:
        return int(v[0])
    return int(v[0]) if v[0] == v[1] else (int(v[0]), int(v[1]))


def _adaptive_avg_pool2d(L, n):
    x = L.tensor(L.arg(n.args[0]))
    oh, ow = (list(n.args[1]) * 2)[:2] if len(list(n.args[1])) == 1 else list(n.args[1])
    _, _, h, w = L.shape(x)
    if (oh, ow) == (1, 1):
        name = L.opname("adaptive_avg_pool2d")
        return L.p.reduce(name, "mean", x, axis=(2, 3), keepdims=True, out=L.out(name))
    if h % oh or w % ow:
        raise L.fail(f"adaptive_avg_pool2d from {h}x{w} to {oh}x{ow} is not supported (the "
                     "output must divide the input)")
    return L.vec("adaptive_avg_pool2d", "avgpool2d", x, kernel=_int_or_pair([h // oh, w // ow]),
                 stride=_int_or_pair([h // oh, w // ow]))


def _reduce(kind):
    def lower(L, n):
        x = L.tensor(L.arg(n.args[0]))
        dims = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
        keep = n.args[2] if len(n.args) > 2 else n.kwargs.get("keepdim", False)
        if n.kwargs.get("dtype") is not None:
            raise L.fail(f"{kind} with a dtype is not supported")
        if dims is None or dims == []:
            axis = None
        else:
            dims = [dims] if isinstance(dims, int) else list(dims)
            axis = tuple(sorted(_ax(L, x, d) for d in dims))
            axis = axis[0] if len(axis) == 1 else axis
        name = L.opname(kind)
        return L.p.reduce(name, kind, x, axis=axis, keepdims=bool(keep), out=L.out(name))
    return lower


def _view(L, n):
    x = L.tensor(L.arg(n.args[0]))
    return L.reshape(x, list(n.meta["val"].shape), "view")


def _transpose(L, n):
    x = L.tensor(L.arg(n.args[0]))
    nd = len(L.shape(x))
    if n.target == L.torch.ops.aten.t.default:
        a, b = 0, nd - 1
    else:
        a, b = n.args[1] % nd, n.args[2] % nd
    perm = list(range(nd))
    perm[a], perm[b] = perm[b], perm[a]
    return L.permute(x, perm, "transpose")


def _permute(L, n):
    return L.permute(L.tensor(L.arg(n.args[0])), n.args[1], "permute")


def _alias(L, n):
    v = L.arg(n.args[0])
    return v


def _dropout(L, n):
    train = n.args[2] if len(n.args) > 2 else n.kwargs.get("train", False)
    if train:
        raise L.fail("dropout in training mode is not supported (the importer runs eval mode)")
    return L.arg(n.args[0])


def _to_copy(L, n):
    v = L.arg(n.args[0])
    dtype = n.kwargs.get("dtype")
    if dtype not in (None, L.torch.float32):
        raise L.fail(f"a cast to {dtype} is not supported (the chip computes in its own dtype)")
    return v


def _split(L, n):
    x = L.tensor(L.arg(n.args[0]))
    dim = _ax(L, x, n.args[2] if len(n.args) > 2 else n.kwargs.get("dim", 0))
    return _pieces(L, x, n.args[1], dim)


def _pieces(L, x: str, size, dim: int) -> list[str]:
    total = L.shape(x)[dim]
    if isinstance(size, int):
        sizes = [min(size, total - i) for i in range(0, total, size)]
    else:
        sizes = list(size)
    outs, start = [], 0
    name = L.opname("split")
    for i, s in enumerate(sizes):
        outs.append(L.p.slice(f"{name}.{i}", x, dim, start, start + s, out=L.out(f"{name}.{i}")))
        start += s
    return outs


def _chunk(L, n):
    x = L.tensor(L.arg(n.args[0]))
    chunks = n.args[1]
    dim = _ax(L, x, n.args[2] if len(n.args) > 2 else 0)
    return _pieces(L, x, -(-L.shape(x)[dim] // chunks), dim)


def _slice(L, n):
    x = L.tensor(L.arg(n.args[0]))
    a = list(n.args) + [None] * (5 - len(n.args))
    dim = _ax(L, x, a[1] or 0)
    size = L.shape(x)[dim]
    start, stop, step = a[2] or 0, a[3], a[4] or 1
    if step != 1:
        raise L.fail("a slice with a step is not supported")
    stop = size if stop is None else stop
    start = max(0, start + size if start < 0 else start)
    stop = min(size, stop + size if stop < 0 else stop)
    return L.slice(x, dim, start, stop)


def _select(L, n):
    x = L.tensor(L.arg(n.args[0]))
    dim = _ax(L, x, n.args[1])
    i = n.args[2] % L.shape(x)[dim]
    s = L.slice(x, dim, i, i + 1, "select")
    shape = list(L.shape(x))
    del shape[dim]
    return L.reshape(s, shape, "select.reshape")


def _cat(L, n):
    xs = [L.operand(t) for t in n.args[0]]
    dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0)
    if len(xs) == 1:
        return xs[0]
    return L.vec("cat", "concat", *xs, axis=_ax(L, xs[0], dim))


def _expand(L, n):
    x = L.operand(n.args[0])
    target = tuple(int(s) for s in n.meta["val"].shape)
    if L.shape(x) == target:
        return x
    return L.vec("expand", "broadcast", x, shape=target)


def _embedding(L, n):
    table = L.operand(n.args[0], "table")
    ids = L.arg(n.args[1])
    if isinstance(ids, _Const):
        idx = _to_numpy(L.torch, ids.value)
        if idx.ndim == 1 and np.array_equal(idx, np.arange(idx.size)):
            name = L.opname("embedding")  # positions 0..n-1: a free slice, as the zoo's
            return L.p.slice(name, table, 0, 0, int(idx.size), out=L.out(name))
    return L.vec("embedding", "gather", table, L.tensor(ids, "ids"))


def _matmul(L, n):
    a, b = L.operand(n.args[0]), L.operand(n.args[1])
    if len(L.shape(a)) < 2 or len(L.shape(b)) < 2:
        raise L.fail("matmul with a 1-D operand is not supported")
    name = L.opname("matmul")
    return L.p.matmul(name, a, b, out=L.out(name))


def _addmm(L, n):
    bias, a, b = (L.operand(x) for x in n.args[:3])
    if n.kwargs.get("beta", 1) != 1 or n.kwargs.get("alpha", 1) != 1:
        raise L.fail("addmm with alpha or beta is not supported")
    name = L.opname("addmm")
    y = L.p.matmul(f"{name}.matmul", a, b, out=L.out(f"{name}.matmul"))
    return L.p.elementwise(f"{name}.bias", "add", y, bias, out=L.out(name))


def _sdpa(L, n):
    a = list(n.args) + [None] * (7 - len(n.args))
    q, k, v = (L.tensor(L.arg(x)) for x in a[:3])
    mask = a[3] if a[3] is not None else n.kwargs.get("attn_mask")
    dropout = a[4] if a[4] is not None else n.kwargs.get("dropout_p", 0.0)
    causal = a[5] if a[5] is not None else n.kwargs.get("is_causal", False)
    scale = a[6] if a[6] is not None else n.kwargs.get("scale")
    if dropout:
        raise L.fail("attention dropout is not supported (dropout_p must be 0)")
    if n.kwargs.get("enable_gqa"):
        raise L.fail("grouped-query attention (enable_gqa) is not supported")
    sq, sk = L.shape(q), L.shape(k)
    if sq[:-2] != sk[:-2]:
        raise L.fail(f"q {sq} and k {sk} differ in their batch dims")
    nd = len(sk)
    kt = L.permute(k, list(range(nd - 2)) + [nd - 1, nd - 2], "k_t")
    name = L.opname("attention")
    s = L.p.matmul(f"{name}.qk", q, kt, out=L.out(f"{name}.qk"))
    scale = 1.0 / math.sqrt(sq[-1]) if scale is None else float(scale)
    s = L.p.elementwise(f"{name}.scale", "scale", s, const=scale, out=L.out(f"{name}.scale"))
    lq, lk = sq[-2], sk[-2]
    if causal:
        key = ("causal", lq, lk)
        if key not in L.const_inputs:
            m = np.triu(np.ones((lq, lk), np.float32), 1)
            L.const_inputs[key] = L.tensor(_Const(L.torch.from_numpy(m), "causal_mask"))
        s = L.p.elementwise(f"{name}.mask", "masked_fill", s, L.const_inputs[key], const=-1e9,
                            out=L.out(f"{name}.mask"))
    if mask is not None:
        mv = L.arg(mask)
        is_bool = mask.meta["val"].dtype == L.torch.bool
        if is_bool:
            if not isinstance(mv, _Const):
                raise L.fail("a boolean attention mask must be a constant (a buffer or built "
                             "from one); pass an additive float mask instead")
            hidden = _Const(L.torch.logical_not(mv.value), "attn_mask")
            s = L.p.elementwise(f"{name}.mask", "masked_fill", s, L.tensor(hidden),
                                const=-1e9, out=L.out(f"{name}.amask"))
        else:
            s = L.p.elementwise(f"{name}.mask", "add", s, L.tensor(mv, "attn_mask"),
                                out=L.out(f"{name}.amask"))
    pr = L.p.vector(f"{name}.softmax", "softmax", s, out=L.out(f"{name}.softmax"), axis=-1)
    return L.p.matmul(f"{name}.pv", pr, v, out=L.out(f"{name}.pv"))


def _lstm(L, n):
    torch = L.torch
    x_node, hx, flat, has_bias, layers, dropout, train, bidir, batch_first = n.args[:9]
    if bidir:
        raise L.fail("bidirectional LSTM is not supported")
    if not batch_first:
        raise L.fail("LSTM with batch_first=False is not supported; use batch_first=True")
    if dropout and train:
        raise L.fail("LSTM dropout in training mode is not supported")
    x = L.tensor(L.arg(x_node))
    batch, seq, _ = L.shape(x)
    per = 4 if has_bias else 2
    if len(flat) != per * layers:
        raise L.fail("LSTM with projections (proj_size) is not supported")
    h0s, c0s = (L.arg(h) for h in hx)

    def zero(v):
        return isinstance(v, _Const) and not bool(torch.as_tensor(v.value).any())
    top = None
    for layer in range(layers):
        w_ih, w_hh = flat[per * layer], flat[per * layer + 1]
        wi, wh = L.param(w_ih.name, "T"), L.param(w_hh.name, "T")
        hd = L.shape(wh)[0]
        base = L.opname(f"l{layer}")
        b = None
        if has_bias:
            b = _lstm_bias(L, flat[per * layer + 2], flat[per * layer + 3])
        xp = L.p.linear(f"{base}.in", x, wi, b, out=L.out(f"{base}.in"))
        h = c = None
        if not zero(h0s) or not zero(c0s):
            h = L.reshape(L.slice(L.tensor(h0s, "h0"), 0, layer, layer + 1, "h0"), (batch, hd))
            c = L.reshape(L.slice(L.tensor(c0s, "c0"), 0, layer, layer + 1, "c0"), (batch, hd))
        outs = []
        p = L.p
        for t in range(seq):
            s = f"{base}.t{t}"
            g = p.slice(f"{s}.x", xp, 1, t, t + 1, out=L.out(f"{s}.x"))
            g = p.reshape(f"{s}.x2", g, (batch, 4 * hd), out=L.out(f"{s}.x2"))
            if h is not None:
                r = p.matmul(f"{s}.rec", h, wh, out=L.out(f"{s}.rec"))
                g = p.elementwise(f"{s}.gates", "add", g, r, out=L.out(f"{s}.gates"))
            i_, f_, g_, o_ = p.split(f"{s}.split", g, [hd] * 4, axis=-1)
            i_ = p.elementwise(f"{s}.i", "sigmoid", i_, out=L.out(f"{s}.i"))
            g_ = p.elementwise(f"{s}.gg", "tanh", g_, out=L.out(f"{s}.gg"))
            o_ = p.elementwise(f"{s}.o", "sigmoid", o_, out=L.out(f"{s}.o"))
            ig = p.elementwise(f"{s}.ixg", "mul", i_, g_, out=L.out(f"{s}.ixg"))
            if c is None:
                c = ig
            else:
                f_ = p.elementwise(f"{s}.f", "sigmoid", f_, out=L.out(f"{s}.f"))
                fc = p.elementwise(f"{s}.fxc", "mul", f_, c, out=L.out(f"{s}.fxc"))
                c = p.elementwise(f"{s}.c", "add", fc, ig, out=L.out(f"{s}.c"))
            tc = p.elementwise(f"{s}.tanh_c", "tanh", c, out=L.out(f"{s}.tanh_c"))
            h = p.elementwise(f"{s}.h", "mul", o_, tc, out=L.out(f"{s}.h"))
            outs.append(p.reshape(f"{s}.h3", h, (batch, 1, hd), out=L.out(f"{s}.h3")))
        x = outs[0] if seq == 1 else p.vector(f"{base}.stack", "concat", *outs,
                                              out=L.out(f"{base}.stack"), axis=1)
        top = x
    return ("lstm", top)


def _lstm_bias(L, b_ih, b_hh) -> str:
    key = (b_ih.name, b_hh.name)
    if key in L.lstm_bias:
        return L.lstm_bias[key]
    (k1, t1), (_k2, t2) = L.param_nodes[b_ih.name], L.param_nodes[b_hh.name]
    arr = (_to_numpy(L.torch, t1) + _to_numpy(L.torch, t2)).astype(np.float32)
    L.p.input(k1, arr.shape)
    L.values[k1] = arr
    L.params.append(k1)
    L.sources[k1] = (k1, "sum")
    L.lstm_bias[key] = k1
    return k1


def _getitem(L, n):
    v = L.arg(n.args[0])
    i = n.args[1]
    if isinstance(v, tuple) and len(v) == 2 and v[0] == "lstm":
        if i != 0:
            raise L.fail("the LSTM's final states (h_n, c_n) are not supported; use its output")
        return v[1]
    if isinstance(v, (list, tuple)):
        if v[i] is None:
            raise L.fail(f"output {i} of {_op_name(n.args[0].target)} is not supported")
        return v[i]
    raise L.fail(f"cannot index a {type(v).__name__}")


def _unsqueeze(L, n):
    return L.reshape(L.tensor(L.arg(n.args[0])), list(n.meta["val"].shape), "unsqueeze")


def _nothing(L, n):
    return None


class _Ops:
    """torch.ops.aten, answering None for an overload this torch version lacks."""

    def __init__(self, aten):
        self.aten = aten

    def __getattr__(self, name):
        packet = getattr(self.aten, name, None)
        return _Overloads(packet)


class _Overloads:
    def __init__(self, packet):
        self.packet = packet

    def __getattr__(self, name):
        return getattr(self.packet, name, None) if self.packet is not None else None


def _build_table(torch) -> dict[Any, Callable]:
    A = _Ops(torch.ops.aten)
    t: dict[Any, Callable] = {
        A.linear.default: _linear,
        A.conv2d.default: _conv2d,
        A.batch_norm.default: _batch_norm,
        A._native_batch_norm_legit_no_training.default: _batch_norm,
        A.layer_norm.default: _layer_norm,
        A.rms_norm.default: _rms_norm,
        A.gelu.default: _gelu, A.gelu_.default: _gelu,
        A.add.Tensor: _binary("add"), A.add_.Tensor: _binary("add"),
        A.add.Scalar: _binary("add"),
        A.sub.Tensor: _binary("sub"), A.sub_.Tensor: _binary("sub"), A.rsub.Scalar: _rsub,
        A.mul.Tensor: _binary("mul"), A.mul_.Tensor: _binary("mul"), A.mul.Scalar: _binary("mul"),
        A.div.Tensor: _binary("div"), A.div_.Tensor: _binary("div"), A.div.Scalar: _binary("div"),
        A.maximum.default: _binary("max"), A.minimum.default: _binary("min"),
        A.neg.default: _neg, A.pow.Tensor_Scalar: _pow,
        A.masked_fill.Scalar: _masked_fill, A.masked_fill_.Scalar: _masked_fill,
        A.where.self: _where,
        A.softmax.int: _softmax("softmax"), A._softmax.default: _softmax("softmax"),
        A.log_softmax.int: _softmax("log_softmax"),
        A._log_softmax.default: _softmax("log_softmax"),
        A.max_pool2d.default: _pool("maxpool2d"), A.avg_pool2d.default: _pool("avgpool2d"),
        A.adaptive_avg_pool2d.default: _adaptive_avg_pool2d,
        A.mean.dim: _reduce("mean"), A.sum.dim_IntList: _reduce("sum"),
        A.amax.default: _reduce("max"),
        A.view.default: _view, A.reshape.default: _view, A._unsafe_view.default: _view,
        A.flatten.using_ints: _view, A.unflatten.int: _view,
        A.unsqueeze.default: _unsqueeze, A.squeeze.dim: _unsqueeze, A.squeeze.dims: _unsqueeze,
        A.squeeze.default: _unsqueeze,
        A.transpose.int: _transpose, A.t.default: _transpose, A.permute.default: _permute,
        A.contiguous.default: _alias, A.clone.default: _alias, A.alias.default: _alias,
        A.detach.default: _alias, A.lift_fresh_copy.default: _alias,
        A.dropout.default: _dropout, A._to_copy.default: _to_copy, A.to.dtype: _to_copy,
        A.split.Tensor: _split, A.split_with_sizes.default: _split, A.chunk.default: _chunk,
        A.slice.Tensor: _slice, A.select.int: _select,
        A.cat.default: _cat, A.expand.default: _expand,
        A.embedding.default: _embedding,
        A.matmul.default: _matmul, A.mm.default: _matmul, A.bmm.default: _matmul,
        A.addmm.default: _addmm,
        A.scaled_dot_product_attention.default: _sdpa,
        A.lstm.input: _lstm,
        operator.getitem: _getitem,
        A._assert_tensor_metadata.default: _nothing,
    }
    for name, kind in (("relu", "relu"), ("tanh", "tanh"), ("sigmoid", "sigmoid"),
                       ("exp", "exp"), ("log", "log"), ("sqrt", "sqrt"), ("rsqrt", "rsqrt"),
                       ("sin", "sin"), ("cos", "cos")):
        t[getattr(A, name).default] = _unary(kind)
        t[getattr(A, f"{name}_").default] = _unary(kind)
    return {k: v for k, v in t.items() if k is not None and v is not None}


_TABLE: dict | None = None


def LOWER(torch) -> dict:  # noqa: N802 - the table is the public face of the converter
    """Return the lowering table: ATen overload -> function(lowering, node) -> value."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _build_table(torch)
    return _TABLE


# --------------------------------------------------------------------------- the converter

def _choose_layouts(torch, graph, param_names: set[str]) -> dict[str, str]:
    """Return, per parameter node, the layout it is stored in: ``T`` when every use is a
    linear's weight (or an LSTM weight), ``c11`` when every use is a conv2d bias."""
    A = torch.ops.aten
    out = {}
    for node in graph.nodes:
        if node.name not in param_names:
            continue
        uses = set()
        for user in node.users:
            if user.target == A.linear.default and len(user.args) > 1 and \
                    user.args[1] is node and user.args[0] is not node:
                uses.add("T")
            elif user.target == A.conv2d.default and len(user.args) > 2 and \
                    user.args[2] is node:
                uses.add("c11")
            elif user.target == A.lstm.input and any(a is node for a in user.args[2]):
                uses.add("lstm")
            else:
                uses.add("same")
        if uses == {"T"} or uses == {"c11"}:
            out[node.name] = uses.pop()
        elif uses == {"lstm"}:
            out[node.name] = "T"  # weights; the biases are summed by _lstm_bias
        elif "lstm" in uses:
            out[node.name] = "mixed"
        else:
            out[node.name] = "same"
    return out


def _is_const_node(node, const: set[str], fx) -> bool:
    def ok(a):
        if isinstance(a, fx.Node):
            return a.name in const
        if isinstance(a, (list, tuple)):
            return all(ok(x) for x in a)
        if isinstance(a, dict):
            return all(ok(x) for x in a.values())
        return True
    return ok(list(node.args)) and ok(dict(node.kwargs))


def _fold(L: _Lowering, node):
    """Evaluate a node whose inputs are all constants with torch; return a _Const."""
    def val(a):
        if isinstance(a, L.torch.fx.Node):
            v = L.env[a.name]
            return v.value if isinstance(v, _Const) else v
        if isinstance(a, (list, tuple)):
            return type(a)(val(x) for x in a)
        return a
    args = val(list(node.args))
    kwargs = {k: val(v) for k, v in node.kwargs.items()}
    try:
        with L.torch.no_grad():
            return _Const(node.target(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - any failure here is the user's graph
        raise L.fail(f"could not evaluate a constant: {type(exc).__name__}: "
                     f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def _convert(torch, ep, where: str, name: str) -> _Lowering:
    fx = torch.fx
    sig = ep.graph_signature
    state = dict(ep.state_dict)
    consts = dict(getattr(ep, "constants", {}) or {})
    L = _Lowering(torch, ep, where, name)
    graph = ep.graph
    kinds = {s.arg.name: s for s in sig.input_specs if hasattr(s.arg, "name")}
    const_nodes: set[str] = set()
    user_inputs = []
    for node in graph.nodes:
        if node.op != "placeholder":
            continue
        spec = kinds.get(node.name)
        kind = spec.kind.name if spec is not None else "USER_INPUT"
        if kind == "PARAMETER":
            L.param_nodes[node.name] = (spec.target, state[spec.target])
        elif kind == "BUFFER":
            value = state[spec.target] if spec.target in state else consts[spec.target]
            L.env[node.name] = _Const(value, spec.target)
            const_nodes.add(node.name)
        elif kind in ("CONSTANT_TENSOR", "CUSTOM_OBJ"):
            L.env[node.name] = _Const(consts[spec.target], spec.target)
            const_nodes.add(node.name)
        elif kind == "USER_INPUT":
            user_inputs.append(node)
        else:
            raise WorkloadError(where, f"input {node.name}", f"inputs of kind {kind} are not "
                                "supported")
    L.layout = _choose_layouts(torch, graph, set(L.param_nodes))
    for pname, lay in L.layout.items():
        if lay == "mixed":
            raise WorkloadError(where, f"parameter {L.param_nodes[pname][0]}", "an LSTM "
                                "parameter used elsewhere too is not supported")
    for node in user_inputs:
        val = node.meta.get("val")
        if val is None or not isinstance(val, torch.Tensor):
            raise WorkloadError(where, f"input {node.name}", "only tensor inputs are supported")
        shape = tuple(int(s) for s in val.shape)
        if not shape:
            raise WorkloadError(where, f"input {node.name}", "0-d (scalar) inputs are not "
                                "supported")
        L.p.input(node.name, shape)
        L.data.append(node.name)
        L.env[node.name] = node.name
    table = LOWER(torch)
    live = _live_nodes(graph)
    outputs = None
    for node in graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            outputs = node.args[0]
            continue
        if node.name not in live:
            continue
        L.node = node
        if node.op != "call_function":
            raise L.fail(f"{node.op} nodes are not supported")
        if _is_const_node(node, const_nodes, fx):
            L.env[node.name] = _fold(L, node)
            const_nodes.add(node.name)
            continue
        fn = table.get(node.target)
        if fn is None:
            raise L.fail("operator not supported by the PyTorch importer (see "
                         "docs/import-torch.md for the supported ones)")
        try:
            value = fn(L, node)
        except WorkloadError as exc:
            if getattr(exc, "importer", False):
                raise
            raise L.fail(f"{exc.field}: {exc.message}") from None
        L.env[node.name] = value
        _check_shape(L, node, value)
        if node.target in _INPLACE(torch) and isinstance(node.args[0], fx.Node):
            L.env[node.args[0].name] = value  # later reads of the mutated tensor see the result
    L.node = None
    outs = []
    for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs]):
        if not isinstance(o, fx.Node):
            raise WorkloadError(where, "output", f"non-tensor output {o!r} is not supported")
        v = L.env.get(o.name)
        if isinstance(v, _Const):
            raise WorkloadError(where, f"output {o.name}", "the output does not depend on the "
                                "inputs or parameters (a constant)")
        if not isinstance(v, str):
            raise WorkloadError(where, f"output {o.name}", "only tensor outputs are supported")
        outs.append(v)
    L.p.outputs = outs
    return L


_INPLACE_SET = None


def _INPLACE(torch) -> set:  # noqa: N802
    global _INPLACE_SET
    if _INPLACE_SET is None:
        A = torch.ops.aten
        _INPLACE_SET = {getattr(A, n).default if hasattr(getattr(A, n), "default")
                        else getattr(A, n).Tensor
                        for n in ("relu_", "tanh_", "sigmoid_", "exp_", "gelu_")}
        _INPLACE_SET |= {A.add_.Tensor, A.sub_.Tensor, A.mul_.Tensor, A.div_.Tensor,
                         A.masked_fill_.Scalar}
    return _INPLACE_SET


def _live_nodes(graph) -> set[str]:
    """Return the names of the nodes the outputs depend on; an in-place op (a mutable
    schema) on a live tensor is live too."""
    live: set[str] = set()
    stack = [n for n in graph.nodes if n.op == "output"]
    while stack:
        n = stack.pop()
        if n.name in live:
            continue
        live.add(n.name)
        stack.extend(n.all_input_nodes)
        for u in n.users:
            schema = getattr(u.target, "_schema", None)
            if schema is not None and schema.is_mutable and u.args and u.args[0] is n:
                stack.append(u)
    return live


def _check_shape(L: _Lowering, node, value) -> None:
    val = node.meta.get("val")
    if isinstance(value, str) and val is not None and hasattr(val, "shape"):
        want = tuple(int(s) for s in val.shape)
        got = L.shape(value)
        if want != got and not (want == () and got == (1,)):
            raise L.fail(f"lowered to shape {got}, PyTorch's is {want} (an importer bug)")


# --------------------------------------------------------------------------- clean-up

def _simplify(p: Program) -> Program:
    """Return ``p`` with chains of permutes merged, chains of reshapes merged and a keepdims
    reduction whose only use reshapes the kept axes away made a plain one (all free layout
    changes; the zoo builders emit the merged forms)."""
    changed = True
    ops = list(p.ops)
    keep = set(p.program_outputs())
    while changed:
        changed = False
        producer = {op.output: op for op in ops}
        uses: dict[str, int] = {}
        for op in ops:
            for t in op.inputs:
                uses[t] = uses.get(t, 0) + 1
        for i, op in enumerate(ops):
            if not isinstance(op, Layout) or op.kind not in ("permute", "reshape"):
                continue
            src = producer.get(op.inputs[0])
            if src is None or uses.get(src.output, 0) != 1 or src.output in keep:
                continue
            new = None
            if isinstance(src, Layout) and src.kind == op.kind == "permute":
                p1, p2 = src.attr("perm"), op.attr("perm")
                new = Layout(op.name, src.inputs, op.output, "permute",
                             (("perm", tuple(p1[j] for j in p2)),))
            elif isinstance(src, Layout) and src.kind == op.kind == "reshape":
                new = Layout(op.name, src.inputs, op.output, "reshape", op.attrs)
            elif isinstance(src, Reduce) and src.keepdims and op.kind == "reshape" and \
                    src.axis is not None:
                axes = src.axis if isinstance(src.axis, tuple) else (src.axis,)
                shape_in = p.shapes[src.inputs[0]]
                dropped = tuple(s for j, s in enumerate(shape_in) if j not in axes)
                if tuple(op.attr("shape")) == dropped:
                    new = Reduce(src.name, src.inputs, op.output, src.axis, src.kind, False)
            if new is None:
                continue
            ops[ops.index(src)] = new  # at the first op's place, as the zoo builders emit it
            del ops[i]
            changed = True
            break
    out = Program(p.name)
    for t in p.inputs:
        out.input(t, p.shapes[t])
    for op in ops:
        out.shapes[op.output] = p.shapes[op.output]
        out.ops.append(op)
    out.outputs = list(p.outputs)
    return out


# --------------------------------------------------------------------------- entry points

def import_module(module, example_inputs: tuple, where: str = "torch",
                  name: str | None = None, label: str | None = None) -> ImportedModel:
    """Capture ``module`` on ``example_inputs`` (a tuple of tensors) with torch.export and
    return the ImportedModel (Program, parameter and input values). Raises WorkloadError (one
    line: the source line ``FILE:LINE`` of the node when the graph records it, else ``where``;
    the node and its operator) for what cannot be imported."""
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise WorkloadError(where, "module", f"the factory must return an nn.Module (or the "
                            f"module and example inputs), got {type(module).__name__}")
    module.eval()
    shapes = ", ".join(f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"
                       if isinstance(t, torch.Tensor) else type(t).__name__
                       for t in example_inputs)
    before = logging.root.manager.disable
    try:
        with torch.no_grad(), warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")  # e.g. nn.LSTM's flat-weights notice
            logging.disable(logging.CRITICAL)  # torch logs its tracing trouble (at ERROR) too
            ep = torch.export.export(module, tuple(example_inputs))
    except Exception as exc:  # noqa: BLE001 - whatever export raises is the user's module
        text = str(exc).strip().splitlines()
        first = next((line for line in text if line.strip()), "")[:300]
        raise WorkloadError(where, "export", f"torch.export failed on inputs {shapes}: "
                            f"{type(exc).__name__}: {first}") from None
    finally:
        logging.disable(before)
    name = name or type(module).__name__
    L = _convert(torch, ep, where, name)
    prog = _simplify(L.p)
    values = dict(L.values)
    for node_name, t in zip(L.data, example_inputs):
        values[node_name] = _to_numpy(torch, t)
    return ImportedModel(name, prog, prog.outputs[0], values, L.params, L.sources, L.data,
                         label=label or f"torch:{name}", module=module)


def parse_input_shape(text: str) -> tuple[int, ...]:
    """Return the shape of ``--input AxBxC``; raise WorkloadError for a malformed one."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise WorkloadError(f"--input {text}", "input", "must be sizes joined by x, e.g. "
                            "8x3x224x224") from None
    if not dims or any(d <= 0 for d in dims):
        raise WorkloadError(f"--input {text}", "input", "sizes must be positive")
    if math.prod(dims) > MAX_INPUT_ELEMENTS:
        raise WorkloadError(f"--input {text}", "input", f"{math.prod(dims):,} elements is over "
                            f"{MAX_INPUT_ELEMENTS:,}")
    return dims


def _exit_line(exc: BaseException, file: Path) -> int:
    """Return the line of ``file`` where ``exc`` was raised (its last frame in that file), or 1."""
    lines = [tb.tb_lineno for tb in _tracebacks(exc.__traceback__)
             if Path(tb.tb_frame.f_code.co_filename) == file.resolve()
             or tb.tb_frame.f_code.co_filename == str(file)]
    return lines[-1] if lines else 1


def load_factory(spec: str):
    """Return (module, example inputs or None, ``FILE:LINE`` of the factory) from
    ``FILE.py:factory``; raise WorkloadError for a missing file or factory, or a factory that
    fails or returns something else."""
    torch = _torch()
    path, sep, fn_name = spec.rpartition(":")
    if not sep or not path or not fn_name:
        raise WorkloadError(f"--torch {spec}", "torch", "must be FILE.py:factory")
    file = Path(path)
    from ..io_limits import check_regular
    check_regular(file, "torch", WorkloadError, "torch")
    mod_name = f"_systolic_torch_{abs(hash(str(file.resolve())))}"
    try:
        loader = importlib.util.spec_from_file_location(mod_name, file)
        module = importlib.util.module_from_spec(loader)
        sys.modules[mod_name] = module
        loader.loader.exec_module(module)
    except SystemExit as exc:  # sys.exit() or exit() while importing: not a model
        sys.modules.pop(mod_name, None)
        raise WorkloadError(f"{path}:{_exit_line(exc, file)}", "torch", "exits while being "
                            f"imported (sys.exit({exc.code!r})); a model file must only define "
                            "its factory") from None
    except Exception as exc:  # noqa: BLE001 - the user's file
        raise WorkloadError(f"{path}:1", "torch", f"could not load: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    factory = getattr(module, fn_name, None)
    if not callable(factory):
        raise WorkloadError(f"{path}:1", "factory", f"{path} has no function {fn_name}")
    code = getattr(factory, "__code__", None)
    where = f"{path}:{code.co_firstlineno if code is not None else 1}"
    try:
        made = factory()
    except SystemExit as exc:
        raise WorkloadError(f"{path}:{_exit_line(exc, file)}", "factory", f"{fn_name}() exits "
                            f"(sys.exit({exc.code!r})) instead of returning a module") from None
    except Exception as exc:  # noqa: BLE001
        line = [tb.tb_lineno for tb in _tracebacks(exc.__traceback__)
                if Path(tb.tb_frame.f_code.co_filename) == file.resolve() or
                tb.tb_frame.f_code.co_filename == str(file)]
        raise WorkloadError(f"{path}:{line[-1]}" if line else where, "factory",
                            f"{fn_name}() failed: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    example = None
    if isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], torch.nn.Module):
        made, example = made
        if isinstance(example, torch.Tensor):
            example = (example,)
        if not isinstance(example, (tuple, list)) or not all(
                isinstance(t, torch.Tensor) for t in example):
            raise WorkloadError(where, "factory", "example inputs must be a tensor "
                                "or a tuple of tensors")
        example = tuple(example)
    if not isinstance(made, torch.nn.Module):
        raise WorkloadError(where, "factory", f"{fn_name}() must return an "
                            f"nn.Module or (module, example inputs), got {type(made).__name__}")
    return made, example, where


def _tracebacks(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def forward_inputs(module, example) -> list[Feed]:
    """Return the inputs ``module.forward`` takes as Feeds, by parameter name (the names
    torch.export gives the graph's inputs): every positional parameter without a default,
    with the dtype of the factory's example input when there is one (else float32 for
    floats, int64 for integers)."""
    params = [p for p in inspect.signature(module.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
              and p.default is p.empty]
    feeds = []
    for i, p in enumerate(params):
        ex = example[i] if example is not None and i < len(example) else None
        dtype = None if ex is None else np.dtype(str(ex.dtype).replace("torch.", ""))
        feeds.append(Feed(p.name, None, dtype))
    return feeds


def _given_tensors(torch, module, example, arrays, path: str) -> tuple:
    """Return the tensors of given arrays (--inputs) in forward()'s order (floats float32,
    integers int64 unless the example says otherwise)."""
    feeds = forward_inputs(module, example)
    given = match_feeds(arrays, feeds, path)
    out = []
    for f in feeds:
        v = given[f.name]
        if f.dtype is None:
            v = v.astype(np.float32) if v.dtype.kind in "fb" else v.astype(np.int64)
        out.append(torch.from_numpy(np.ascontiguousarray(v)))
    return tuple(out)


def import_torch(spec: str, inputs: list[str] | None = None, seed: int = 0,
                 arrays=None, arrays_path: str = "--inputs") -> ImportedModel:
    """Import ``FILE.py:factory`` (the CLI's --torch) on the shapes of ``inputs`` (--input
    AxBxC, one per model input; float32 normal values from ``seed``, or the dtype and value
    range of the factory's example inputs), on given ``arrays`` (--inputs: name -> array by
    forward()'s parameter names, or one array; read from ``arrays_path``) or on the factory's
    example inputs."""
    torch = _torch()
    module, example, where = load_factory(spec)
    name = Path(spec.rpartition(":")[0]).stem + ":" + spec.rpartition(":")[2]
    if arrays is not None:
        if inputs:
            raise WorkloadError(f"--torch {spec}", "input", "--inputs gives the shapes; drop "
                                "--input")
        tensors = _given_tensors(torch, module, example, arrays, arrays_path)
        try:
            return import_module(module, tensors, where=where, name=name,
                                 label=f"torch:{spec}")
        except WorkloadError as exc:
            if exc.field != "export":
                raise
            shapes = ", ".join(f"{f.name} {'x'.join(map(str, t.shape))}"
                               for f, t in zip(forward_inputs(module, example), tensors))
            raise WorkloadError(arrays_path, f"arrays {shapes}", exc.message) from None
    if inputs:
        shapes = [parse_input_shape(s) for s in inputs]
        if example is not None and len(example) != len(shapes):
            raise WorkloadError(f"--torch {spec}", "input", f"the factory's example has "
                                f"{len(example)} inputs, --input gives {len(shapes)}")
        gen = torch.Generator().manual_seed(seed)
        made = []
        for i, shape in enumerate(shapes):
            ex = example[i] if example is not None else None
            if ex is not None and not ex.is_floating_point():
                hi = int(ex.max()) + 1 if ex.numel() else 1
                made.append(torch.randint(0, max(hi, 1), shape, generator=gen, dtype=ex.dtype))
            else:
                made.append(torch.randn(shape, generator=gen, dtype=torch.float32))
        example = tuple(made)
    elif example is None:
        raise WorkloadError(f"--torch {spec}", "input", "give the input shapes with --input "
                            "AxBxC (the factory returns no example inputs)")
    return import_module(module, example, where=where, name=name, label=f"torch:{spec}")
