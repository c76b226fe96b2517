"""``asic.from_torch(module)``: a PyTorch nn.Module's structure and weights on the simulated chip.

A supported layer becomes its ``asic`` twin with the same weights (``Linear`` weights transposed
to the chip's (in, out) layout, biases as the twin holds them). ``nn.Sequential`` becomes an
``asic.Sequential`` with the same child names. Any other module is traced with ``torch.fx``
(``symbolic_trace``): its leaf layers are converted and registered under the same dotted names
as in PyTorch (so ``state_dict`` keys agree), its own ``nn.Parameter``s become asic Parameters,
its buffers constants, and its forward is replayed node by node with the asic layers and tensor
ops (+, -, *, /, @, reshape/view, flatten, transpose, permute, mean, sum, softmax, relu, gelu,
dropout, indexing, ``x.shape``, ``torch.arange``). Anything else raises a one-line
WorkloadError naming the layer or function. Training mode is copied from the module.

torch is imported here, lazily, only when ``from_torch`` is called.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np

from ..errors import WorkloadError
from .tensor import Linear, Model, Parameter, ReLU, Sequential, Tensor, _as_tensor, _const, _ew
from .layers import (BatchNorm2d, Conv2d, Dropout, Embedding, Flatten, GELU, LayerNorm,
                        MaxPool2d, MultiheadAttention, Softmax, _dropout)

__all__ = ["from_torch", "SUPPORTED"]

SUPPORTED = ("Linear", "Conv2d", "BatchNorm2d", "MaxPool2d", "Embedding", "LayerNorm", "GELU",
             "ReLU", "Softmax", "Dropout", "Flatten", "Identity", "MultiheadAttention",
             "Sequential")

_WHERE = "from_torch"


def _torch():
    try:
        import torch
        import torch.fx  # noqa: F401
    except ImportError:
        raise WorkloadError(_WHERE, "torch", "PyTorch is not installed: pip install "
                            "'systolic-sim[torch]'") from None
    return torch


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


class Identity(Model):
    """Returns its input (PyTorch's nn.Identity)."""

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` unchanged."""
        return x


def _unsupported(path: str, mod: Any, why: str) -> WorkloadError:
    return WorkloadError(_WHERE, path or "<root>", f"{type(mod).__name__}: {why}")


def _convert_leaf(torch, mod: Any, path: str) -> Model | None:
    """Return the asic twin of a supported torch layer (None: not a supported leaf)."""
    nn = torch.nn
    name = type(mod).__name__

    def need(cond: bool, why: str) -> None:
        if not cond:
            raise _unsupported(path, mod, f"{why} is not supported")
    if type(mod) is nn.Linear or name == "NonDynamicallyQuantizableLinear":
        out = Linear(mod.in_features, mod.out_features, bias=mod.bias is not None)
        out.weight.value = np.ascontiguousarray(_np(mod.weight).T)
        if mod.bias is not None:
            out.bias.value = _np(mod.bias).reshape(1, -1)
    elif type(mod) is nn.Conv2d:
        need(mod.padding_mode == "zeros", f"padding_mode={mod.padding_mode!r}")
        need(not isinstance(mod.padding, str), f"padding={mod.padding!r}")
        out = Conv2d(mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride, mod.padding,
                     mod.dilation, mod.groups, bias=mod.bias is not None)
        out.weight.value = _np(mod.weight)
        if mod.bias is not None:
            out.bias.value = _np(mod.bias)
    elif type(mod) is nn.BatchNorm2d:
        need(mod.momentum is not None, "momentum=None (cumulative average)")
        out = BatchNorm2d(mod.num_features, mod.eps, mod.momentum, mod.affine,
                          mod.track_running_stats)
        if mod.affine:
            out.weight.value, out.bias.value = _np(mod.weight), _np(mod.bias)
        if mod.track_running_stats:
            out.running_mean, out.running_var = _np(mod.running_mean), _np(mod.running_var)
    elif type(mod) is nn.MaxPool2d:
        need(mod.dilation in (1, (1, 1)), f"dilation={mod.dilation}")
        need(not mod.ceil_mode, "ceil_mode=True")
        need(not mod.return_indices, "return_indices=True")
        out = MaxPool2d(mod.kernel_size, mod.stride, mod.padding)
    elif type(mod) is nn.Embedding:
        need(mod.padding_idx is None, f"padding_idx={mod.padding_idx}")
        need(mod.max_norm is None, f"max_norm={mod.max_norm}")
        need(not mod.scale_grad_by_freq and not mod.sparse, "scale_grad_by_freq/sparse")
        out = Embedding(mod.num_embeddings, mod.embedding_dim)
        out.weight.value = _np(mod.weight)
    elif type(mod) is nn.LayerNorm:
        need(len(mod.normalized_shape) == 1, f"normalized_shape={tuple(mod.normalized_shape)}")
        out = LayerNorm(mod.normalized_shape[0], mod.eps, mod.elementwise_affine,
                        mod.bias is not None)
        if mod.weight is not None:
            out.weight.value = _np(mod.weight)
        if mod.bias is not None:
            out.bias.value = _np(mod.bias)
    elif type(mod) is nn.GELU:
        out = GELU(mod.approximate)
    elif type(mod) is nn.ReLU:
        out = ReLU()
    elif type(mod) is nn.Softmax:
        need(mod.dim is not None, "dim=None")
        out = Softmax(mod.dim)
    elif type(mod) is nn.Dropout:
        out = Dropout(mod.p)
    elif type(mod) is nn.Flatten:
        out = Flatten(mod.start_dim, mod.end_dim)
    elif type(mod) is nn.Identity:
        out = Identity()
    elif type(mod) is nn.MultiheadAttention:
        need(mod._qkv_same_embed_dim, "kdim/vdim other than embed_dim")
        need(mod.bias_k is None and not mod.add_zero_attn, "add_bias_kv/add_zero_attn")
        out = MultiheadAttention(mod.embed_dim, mod.num_heads, mod.dropout,
                                 bias=mod.in_proj_bias is not None, batch_first=mod.batch_first)
        out.in_proj_weight.value = _np(mod.in_proj_weight)
        if mod.in_proj_bias is not None:
            out.in_proj_bias.value = _np(mod.in_proj_bias)
        out.out_proj.weight.value = np.ascontiguousarray(_np(mod.out_proj.weight).T)
        if mod.out_proj.bias is not None:
            out.out_proj.bias.value = _np(mod.out_proj.bias).reshape(1, -1)
    else:
        return None
    return out.train(mod.training)


def _is_torch_layer(torch, mod: Any) -> bool:
    return type(mod).__module__.startswith("torch.") and not isinstance(
        mod, (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict))


def _convert(torch, mod: Any, path: str) -> Model:
    leaf = _convert_leaf(torch, mod, path)
    if leaf is not None:
        return leaf
    if isinstance(mod, torch.nn.Sequential):
        seq = Sequential()
        for key, child in mod.named_children():
            setattr(seq, key, _convert(torch, child, f"{path}.{key}" if path else key))
        return seq.train(mod.training)
    if _is_torch_layer(torch, mod) or isinstance(mod, (torch.nn.ModuleList, torch.nn.ModuleDict)):
        raise _unsupported(path, mod, f"not a supported layer (supported: "
                           f"{', '.join(SUPPORTED)}, and custom modules built from them)")
    return _Traced(torch, mod, path)


# --------------------------------------------------------------------------- traced modules

def _f_softmax(x, dim=None, _stacklevel=3, dtype=None):
    if dim is None or dtype is not None:
        raise WorkloadError(_WHERE, "softmax", "needs dim and no dtype")
    return _as_tensor(x).softmax(dim)


def _f_log_softmax(x, dim=None, _stacklevel=3, dtype=None):
    if dim is None or dtype is not None:
        raise WorkloadError(_WHERE, "log_softmax", "needs dim and no dtype")
    return _as_tensor(x).log_softmax(dim)


def _f_gelu(x, approximate="none"):
    return _ew("gelu" if approximate == "none" else "gelu_tanh", [x])


def _f_dropout(x, p=0.5, training=True, inplace=False):
    return _dropout(x, float(p), bool(training), "dropout")


def _f_arange(*args, dtype=None, device=None, **_kw):
    return _const(np.arange(*[int(a) for a in args]).astype(np.float32))


def _method(name: str) -> Callable:
    def call(obj, *args, **kwargs):
        if not isinstance(obj, Tensor) and name not in ("size", "dim"):
            obj = _as_tensor(obj)
        return getattr(obj, name)(*args, **kwargs)
    return call


def _functions(torch) -> dict[Any, Callable]:
    F = torch.nn.functional
    table: dict[Any, Callable] = {
        operator.add: operator.add, operator.sub: operator.sub, operator.mul: operator.mul,
        operator.truediv: operator.truediv, operator.neg: operator.neg,
        operator.matmul: lambda a, b: _as_tensor(a) @ b, operator.getitem: operator.getitem,
        getattr: getattr,
        torch.add: operator.add, torch.sub: operator.sub, torch.mul: operator.mul,
        torch.div: operator.truediv, torch.matmul: lambda a, b: _as_tensor(a) @ b,
        torch.flatten: _method("flatten"), torch.reshape: _method("reshape"),
        torch.transpose: _method("transpose"), torch.permute: _method("permute"),
        torch.mean: _method("mean"), torch.sum: _method("sum"), torch.relu: _method("relu"),
        torch.tanh: _method("tanh"), torch.sigmoid: _method("sigmoid"),
        torch.exp: _method("exp"), torch.softmax: _f_softmax, F.softmax: _f_softmax,
        torch.log_softmax: _f_log_softmax, F.log_softmax: _f_log_softmax,
        F.relu: lambda x, inplace=False: _as_tensor(x).relu(), F.gelu: _f_gelu,
        F.dropout: _f_dropout, torch.arange: _f_arange,
    }
    return table


_METHODS = ("reshape", "view", "flatten", "transpose", "permute", "mean", "sum", "softmax",
            "log_softmax", "relu", "exp", "tanh", "sigmoid", "sqrt", "contiguous", "size", "dim")


class _Traced(Model):
    """A custom torch module: converted leaf layers under their torch names, its forward
    replayed from its torch.fx graph."""

    def __init__(self, torch, mod: Any, path: str):
        super().__init__()
        try:
            gm = torch.fx.symbolic_trace(mod)
        except Exception as exc:  # torch.fx raises many types; report the first line
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise _unsupported(path, mod, f"torch.fx cannot trace its forward ({msg})") from None
        object.__setattr__(self, "_nodes", list(gm.graph.nodes))
        object.__setattr__(self, "_consts", {})
        object.__setattr__(self, "_funcs", _functions(torch))
        object.__setattr__(self, "_torch_type", type(mod).__name__)
        used = {n.target for n in self._nodes if n.op == "call_module"}
        attrs = {n.target for n in self._nodes if n.op == "get_attr"}
        self._build(torch, mod, path, "", used, attrs)
        self.train(mod.training)

    def _build(self, torch, mod: Any, root: str, prefix: str, used: set, attrs: set) -> None:
        """Mirror ``mod``'s tree (registration order) down to the layers the graph calls."""
        holder = self._at(prefix)
        for key, p in mod.named_parameters(recurse=False):
            full = f"{prefix}{key}"
            if full in attrs:
                setattr(holder, key, Parameter(np.atleast_1d(_np(p))))
        for key, b in mod.named_buffers(recurse=False):
            full = f"{prefix}{key}"
            if full in attrs and b is not None:
                self._consts[full] = b.detach().cpu().numpy()
        for key, child in mod.named_children():
            full = f"{prefix}{key}"
            where = f"{root}.{full}" if root else full
            if full in used:
                leaf = _convert(torch, child, where) if _is_torch_layer(torch, child) or \
                    isinstance(child, torch.nn.Sequential) else None
                if leaf is None:
                    raise _unsupported(where, child, "is called but not traced through")
                setattr(holder, key, leaf)
            elif any(u.startswith(full + ".") for u in used | attrs):
                setattr(holder, key, Model())
                self._build(torch, child, root, full + ".", used, attrs)

    def _at(self, dotted: str) -> Model:
        mod: Model = self
        for part in [p for p in dotted.split(".") if p]:
            mod = mod._modules[part]
        return mod

    def _get_attr(self, target: str) -> Any:
        if target in self._consts:
            return self._consts[target]
        *parents, last = target.split(".")
        holder = self._at(".".join(parents))
        if last in holder._params:
            return holder._params[last]
        raise WorkloadError(_WHERE, target, "the forward reads a layer's weight directly; only "
                            "a custom module's own parameters and buffers can be read")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        import torch.fx
        env: dict[Any, Any] = {}
        pos = list(args)
        label = self._label

        def val(a):
            return torch.fx.node.map_arg(a, lambda n: env[n])
        for node in self._nodes:
            if node.op == "placeholder":
                if pos:
                    env[node] = pos.pop(0)
                elif node.target in kwargs:
                    env[node] = kwargs[node.target]
                elif node.args:
                    env[node] = node.args[0]
                else:
                    raise WorkloadError(label, node.target, "input not given")
                if isinstance(env[node], np.ndarray) or hasattr(env[node], "detach"):
                    env[node] = Tensor(np.asarray(env[node]), _keep_shape=True)
            elif node.op == "get_attr":
                env[node] = self._get_attr(node.target)
            elif node.op == "call_module":
                env[node] = self._at(node.target)(*val(node.args), **val(node.kwargs))
            elif node.op == "call_function":
                fn = self._funcs.get(node.target)
                if fn is None:
                    raise WorkloadError(_WHERE, f"{self._torch_type}.forward", f"function "
                                        f"{getattr(node.target, '__name__', node.target)} is "
                                        "not supported")
                env[node] = fn(*val(node.args), **val(node.kwargs))
            elif node.op == "call_method":
                if node.target not in _METHODS:
                    raise WorkloadError(_WHERE, f"{self._torch_type}.forward", f"tensor method "
                                        f".{node.target}() is not supported")
                env[node] = _method(node.target)(*val(node.args), **val(node.kwargs))
            elif node.op == "output":
                return val(node.args[0])
        raise WorkloadError(label, "forward", "the traced graph has no output")


def from_torch(module: Any) -> Model:
    """Return an asic model with ``module``'s structure and weights (see the module doc);
    raises WorkloadError (one line) for a layer, option or function it does not support."""
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise WorkloadError(_WHERE, "module", f"must be a torch.nn.Module, got "
                            f"{type(module).__name__}")
    return _convert(torch, module, "")

