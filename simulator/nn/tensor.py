"""Tensors, the session tape and the seed's layers of ``simulator.nn`` (re-exported there; the
package docstring describes them). Layers and ``from_torch`` import from here, not from the
package, so the package imports nothing that imports it back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..core.autodiff import (_conv_grads, _elementwise_grads, _Grad, _layout_grads, _matmul_grads,
                       _reduce_grads, _vector_grads)
from ..hardware.chip import Chip, load_chip
from ..core.engine import run
from ..errors import WorkloadError
from ..core.program import Conv2d as _ConvOp
from ..core.program import Elementwise, Layout, MatMul, Program, Reduce, VectorOp
from ..core.report import Report, format_energy

__all__ = ["Linear", "MSELoss", "Model", "Parameter", "ReLU", "SGD", "Sequential", "Tensor",
           "manual_seed", "report", "reset", "use_chip"]


# --------------------------------------------------------------------------- session state

class _Session:
    def __init__(self) -> None:
        self.chip: Chip | None = None
        self.rng = np.random.default_rng(0)
        self.dropout_rng = np.random.default_rng([0, 1])
        self.steps: list[Report] = []
        self.program: Program | None = None
        self.counter = 0
        self.timing_cache: dict[tuple, Report] = {}

    def new_name(self) -> str:
        self.counter += 1
        return f"t{self.counter}"


_S = _Session()


def use_chip(config: str | Path | Chip, overrides: Mapping[str, Any] | None = None) -> Chip:
    """Select the chip every later op runs on (a YAML path or a Chip); return it.

    Starts a fresh session: an empty report and the layer-initialisation generator reseeded to
    0 (call ``manual_seed`` afterwards for another seed). Raises ConfigError on a bad config.
    """
    chip = config if isinstance(config, Chip) else load_chip(config, overrides)
    if isinstance(config, Chip) and overrides:
        chip = chip.with_overrides(overrides)
    if chip.dtype in ("int8", "int4"):
        raise WorkloadError(chip.where("dtype"), "dtype", "asic training needs a float dtype "
                            "(fp32, bf16 or fp16); pass overrides={'dtype': 'fp32'}")
    _S.chip = chip
    manual_seed(0)
    reset()
    return chip


def manual_seed(seed: int) -> None:
    """Seed the generator that initialises layers and, separately, the one that draws Dropout
    masks (numpy generators: the same seed gives the same weights and masks on every run)."""
    _S.rng = np.random.default_rng(seed)
    _S.dropout_rng = np.random.default_rng([seed, 1])


def reset() -> None:
    """Forget the recorded steps (the chip stays)."""
    _S.steps = []
    _S.program = None
    _S.timing_cache = {}


def _chip() -> Chip:
    if _S.chip is None:
        raise WorkloadError("asic", "use_chip", "no chip selected: call asic.use_chip(CONFIG) first")
    return _S.chip


# --------------------------------------------------------------------------- tensors and ops

class Tensor:
    """A float32 value on the chip (rank >= 2; a 1-D value becomes one row), with a gradient and
    a link to the op that made it. Arithmetic (+, -, *, /, @), ``reshape``, ``transpose``,
    ``mean``, ... run on the chip like PyTorch's tensor methods and are differentiable."""

    def __init__(self, value: Any, requires_grad: bool = False, name: str | None = None,
                 _keep_shape: bool = False):
        arr = np.asarray(value, dtype=np.float32)
        if arr.ndim == 1 and not _keep_shape:
            arr = arr.reshape(1, -1)
        if arr.ndim < (1 if _keep_shape else 2):
            raise WorkloadError("asic", "tensor", f"tensors have rank >= 2 (a 1-D value is one "
                                f"row), got shape {arr.shape}")
        self.value = arr
        self.requires_grad = requires_grad
        self.grad: np.ndarray | None = None
        self.name = name or _S.new_name()
        self._backward: Callable[[np.ndarray, str], None] | None = None
        self._parents: tuple[Tensor, ...] = ()
        self._grad_name: str | None = None
        self._grad_value: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Return the shape, e.g. (rows, cols)."""
        return self.value.shape

    @property
    def ndim(self) -> int:
        """Return the rank."""
        return self.value.ndim

    def numpy(self) -> np.ndarray:
        """Return a copy of the value."""
        return self.value.copy()

    def item(self) -> float:
        """Return the value of a 1x1 tensor as a float."""
        if self.value.size != 1:
            raise WorkloadError("asic", "item", f"only a 1x1 tensor has an item, got {self.shape}")
        return float(self.value[0, 0])

    def __float__(self) -> float:
        return self.item()

    def __repr__(self) -> str:
        return f"Tensor({self.value!r})"

    def backward(self) -> None:
        """Backpropagate from this 1x1 tensor (a loss) through the recorded ops; gradients of a
        tensor used several times are added (on the vector unit), as are a parameter's
        gradients over backward calls without ``zero_grad`` (PyTorch's accumulation)."""
        if self._backward is None or not getattr(self, "_is_loss", False):
            raise WorkloadError("asic", "backward", "this tensor was not produced by a loss")
        if getattr(self, "_backward_done", False):
            raise WorkloadError("asic", "backward", "backward() was already called on this "
                                "loss; compute the loss again")
        self._backward_done = True
        order: list[Tensor] = []
        seen: set[int] = {id(self)}
        stack: list[tuple[Tensor, int]] = [(self, 0)]
        while stack:  # iterative post-order depth-first walk (deep graphs, no recursion limit)
            t, i = stack.pop()
            if i < len(t._parents):
                stack.append((t, i + 1))
                p = t._parents[i]
                if id(p) not in seen:
                    seen.add(id(p))
                    stack.append((p, 0))
            else:
                order.append(t)
        self._backward(None, None)  # a loss seeds its input's gradient itself
        for t in reversed(order):  # consumers before producers: every gradient is complete
            if t is not self and t._grad_name is not None and t._backward is not None:
                t._backward(t._grad_value, t._grad_name)


def _start_step() -> Program:
    if _S.program is None:
        _S.program = Program(f"step {len(_S.steps)}")
    return _S.program


def _exec(build: Callable[[Program], str], inputs: Mapping[str, np.ndarray]) -> tuple[str, np.ndarray]:
    """Run one op on the chip through the engine and record it in the step program."""
    chip = _chip()
    step = _start_step()
    for name, value in inputs.items():
        if name not in step.shapes:
            step.input(name, value.shape)
    one = Program("op")
    for name, value in inputs.items():
        one.input(name, value.shape)
    out = build(one)
    build(step)
    rep = run(chip, one, dict(inputs))
    return out, np.asarray(rep.values[out], dtype=np.float32)


def _set_grad(t: Tensor, value: np.ndarray, name: str) -> None:
    if t._grad_name is not None:  # a second use: add the gradients on the vector unit
        prev_name, prev = t._grad_name, t._grad_value
        out = _S.new_name()
        if prev_name == name:
            name, value = _exec(lambda p: p.elementwise(f"grad.acc.{out}", "scale", name,
                                                        const=2.0, out=out), {name: value})
        else:
            name, value = _exec(lambda p: p.elementwise(f"grad.acc.{out}", "add", prev_name,
                                                        name, out=out),
                                {prev_name: prev, name: value})
    t._grad_value = value
    t._grad_name = name
    if t.requires_grad:  # a leaf parameter keeps its gradient
        t.grad = value


def _matmul(x: Tensor, w: Tensor, layer: str) -> Tensor:
    out_name = _S.new_name()
    name, value = _exec(lambda p: p.matmul(f"{layer}.fwd.{out_name}", x.name, w.name,
                                           out=out_name),
                        {x.name: x.value, w.name: w.value})
    out = Tensor(value, name=name)
    out._parents = (x, w)

    def back(g: np.ndarray, g_name: str) -> None:
        if w.requires_grad or w._parents:
            dn = _S.new_name()
            _, dw = _exec(lambda p: p.matmul(f"{layer}.bwd.{dn}", x.name, g_name, out=dn,
                                             transpose_a=True), {x.name: x.value, g_name: g})
            _set_grad(w, dw, dn)
        if x.requires_grad or x._parents:
            dn = _S.new_name()
            _, dx = _exec(lambda p: p.matmul(f"{layer}.bwd.{dn}", g_name, w.name, out=dn,
                                             transpose_b=True), {g_name: g, w.name: w.value})
            _set_grad(x, dx, dn)
    out._backward = back
    return out


def _elementwise(kind: str, args: list[Tensor], const: float, layer: str) -> Tensor:
    out_name = _S.new_name()
    name, value = _exec(lambda p: p.elementwise(f"{layer}.{kind}.{out_name}", kind,
                                                *[a.name for a in args], const=const,
                                                out=out_name),
                        {a.name: a.value for a in args})
    return Tensor(value, name=name)


def _reduce(x_name: str, x_value: np.ndarray, axis: int | None, layer: str) -> tuple[str, np.ndarray]:
    out_name = _S.new_name()
    return _exec(lambda p: p.reduce_sum(f"{layer}.sum.{out_name}", x_name, axis=axis,
                                        out=out_name), {x_name: x_value})


# --------------------------------------------------------------------------- one-op primitives

_RULES = {MatMul: _matmul_grads, _ConvOp: _conv_grads, Elementwise: _elementwise_grads,
          Reduce: _reduce_grads, VectorOp: _vector_grads, Layout: _layout_grads}


class _TapeGrad(_Grad):
    """autodiff's gradient builder with session-unique op and tensor names."""

    def __init__(self, p: Program, label: str):
        super().__init__(p)
        self.label = label

    def name(self, tag: str) -> str:
        return f"{self.label}.bwd.{tag}.{_S.new_name()}"


def _record(prog: Program) -> None:
    """Append ``prog``'s ops (already run) to the step program, declaring new inputs."""
    step = _start_step()
    for op in prog.ops:
        for t in op.inputs:
            if t not in step.shapes:
                step.input(t, prog.shapes[t])
        step.shapes[op.output] = prog.shapes[op.output]
        step.ops.append(op)
        step._op_names.add(op.name)


def _apply(label: str, args: Sequence[Tensor], build: Callable[[Program, str], Any]) -> Tensor:
    """Run ONE op on the chip (``build(program, out)`` appends it with output ``out``), record
    it in the step program and return its output; the backward applies the op's rule from
    simulator.core.autodiff (the rules ``systolic-sim train`` uses), run on the chip likewise."""
    chip = _chip()
    one = Program("op")
    values: dict[str, np.ndarray] = {}
    for a in args:
        if a.name not in one.shapes:
            one.input(a.name, a.value.shape)
            values[a.name] = a.value
    out_name = _S.new_name()
    build(one, out_name)
    op = one.ops[-1]
    rep = run(chip, one, dict(values))
    _record(one)
    out = Tensor(rep.values[out_name], name=out_name, _keep_shape=True)
    out._parents = tuple(a for a in args if a.requires_grad or a._parents)
    shapes = dict(one.shapes)

    def back(g: np.ndarray, g_name: str) -> None:
        need = {a.name for a in args if a.requires_grad or a._parents}
        if not need:
            return
        p = Program("bwd")
        feed = {**values, out_name: out.value, g_name: g}
        for t in (*dict.fromkeys(op.inputs), out_name, g_name):
            p.input(t, shapes.get(t, g.shape))
        G = _TapeGrad(p, label)
        _RULES[type(op)](G, op, g_name, need)
        grads = {t: G.total(t) for t in need}
        env = feed
        if p.ops:
            env = run(chip, p, feed).values
            _record(p)
        done: set[str] = set()
        for a in args:
            if a.name in need and a.name not in done and grads[a.name] is not None:
                done.add(a.name)
                _set_grad(a, np.asarray(env[grads[a.name]], np.float32), grads[a.name])
    out._backward = back
    return out


def _const(value: Any) -> Tensor:
    """Return a data tensor (no gradient) holding ``value`` as it is shaped."""
    return Tensor(value, _keep_shape=True)


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else _const(x)


def _ew(kind: str, args: Sequence[Tensor], label: str = "asic", const: float = 0.0,
        params: tuple[float, ...] = ()) -> Tensor:
    """Return the elementwise op ``kind`` of ``args`` (numpy broadcasting) on the vector unit."""
    return _apply(label, args, lambda p, o: p.elementwise(f"{label}.{kind}.{o}", kind,
                                                          *[a.name for a in args], const=const,
                                                          params=params, out=o))


def _vec(kind: str, args: Sequence[Tensor], label: str = "asic", **attrs: Any) -> Tensor:
    """Return the composite vector op ``kind`` (softmax, layernorm, gather, ...) of ``args``."""
    def build(p: Program, o: str) -> None:
        try:
            p.vector(f"{label}.{kind}.{o}", kind, *[a.name for a in args], out=o, **attrs)
        except WorkloadError as exc:
            raise WorkloadError(label, kind, exc.message) from None
    return _apply(label, args, build)


def matmul(a: Tensor, b: Tensor, transpose_a: bool = False, transpose_b: bool = False,
           label: str = "asic") -> Tensor:
    """Return ``op(a) @ op(b)`` on the array (numpy's batch broadcasting; a 2-D ``b`` makes one
    GEMM over all of a's leading dims); op transposes the last two axes when its flag is set."""
    return _apply(label, (a, b), lambda p, o: p.matmul(f"{label}.matmul.{o}", a.name, b.name,
                                                       out=o, transpose_a=transpose_a,
                                                       transpose_b=transpose_b))


def _reduce_t(kind: str, x: Tensor, axis, keepdims: bool, label: str = "asic") -> Tensor:
    return _apply(label, (x,), lambda p, o: p.reduce(f"{label}.{kind}.{o}", kind, x.name, axis,
                                                     keepdims, out=o))


def _layout(kind: str, x: Tensor, label: str = "asic", **kw: Any) -> Tensor:
    def build(p: Program, o: str) -> None:
        getattr(p, kind)(f"{label}.{kind}.{o}", x.name, out=o, **kw)
    return _apply(label, (x,), build)


def _dims(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(d) for d in shape)


def _tensor_reshape(self: Tensor, *shape: Any) -> Tensor:
    """Return the tensor with a new shape (one size may be -1): a free layout op."""
    dims = _dims(shape)
    if dims == self.shape:
        return self
    try:
        return _layout("reshape", self, shape=dims)
    except WorkloadError:
        raise WorkloadError("asic", "reshape", f"cannot reshape {self.shape} into {dims}") from None


def _tensor_permute(self: Tensor, *dims: Any) -> Tensor:
    """Return the tensor with its axes permuted (free when only the array reads it)."""
    perm = _dims(dims)
    if sorted(d % self.ndim for d in perm) != list(range(self.ndim)) or len(perm) != self.ndim:
        raise WorkloadError("asic", "permute", f"{perm} is not a permutation of the "
                            f"{self.ndim} axes of {self.shape}")
    return _layout("permute", self, perm=tuple(d % self.ndim for d in perm))


def _tensor_transpose(self: Tensor, dim0: int = -2, dim1: int = -1) -> Tensor:
    """Return the tensor with axes ``dim0`` and ``dim1`` swapped."""
    perm = list(range(self.ndim))
    a, b = _axis(dim0, self.ndim), _axis(dim1, self.ndim)
    perm[a], perm[b] = perm[b], perm[a]
    return _tensor_permute(self, *perm)


def _axis(d: Any, ndim: int) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not -ndim <= d < ndim:
        raise WorkloadError("asic", "dim", f"dimension {d!r} is out of range for rank {ndim}")
    return int(d) % ndim


def _reduction(self: Tensor, kind: str, dim: Any, keepdim: bool) -> Tensor:
    if dim is None:
        axes = tuple(range(self.ndim))
    else:
        raw = dim if isinstance(dim, (tuple, list)) else (dim,)
        axes = tuple(sorted({_axis(d, self.ndim) for d in raw}))
    out = _reduce_t(kind, self, axes, True)
    if keepdim:
        return out
    kept = tuple(s for i, s in enumerate(self.shape) if i not in axes)
    return _tensor_reshape(out, kept or (1,))


def _tensor_getitem(self: Tensor, key: Any) -> Tensor:
    """Return ``x[key]`` for integers and unit-step slices (slices are free layout ops)."""
    key = key if isinstance(key, tuple) else (key,)
    if len(key) > self.ndim:
        raise WorkloadError("asic", "index", f"{len(key)} indices for a tensor of rank {self.ndim}")
    out, drop = self, []
    for ax, k in enumerate(key):
        size = self.shape[ax]
        if isinstance(k, slice):
            start, stop, step = k.indices(size)
            if step != 1 or stop <= start:
                raise WorkloadError("asic", "index", f"only non-empty unit-step slices, got {k}")
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool) and -size <= k < size:
            start, stop = int(k) % size, int(k) % size + 1
            drop.append(ax)
        else:
            raise WorkloadError("asic", "index", f"index {k!r} is not an integer in range or a "
                                "slice")
        if (start, stop) != (0, size):
            out = _layout("slice", out, axis=ax, start=start, stop=stop)
    if drop:
        out = _tensor_reshape(out, tuple(s for i, s in enumerate(out.shape) if i not in drop)
                              or (1,))
    return out


def _binary(kind: str, a: Tensor, b: Any, reverse: bool = False) -> Tensor:
    if isinstance(b, (int, float, np.floating, np.integer)) and not isinstance(b, bool):
        c = float(b)
        if kind == "add":
            return _ew("add_const", [a], const=c)
        if kind == "sub":
            return _ew("add_const", [_ew("scale", [a], const=-1.0)], const=c) if reverse else \
                _ew("add_const", [a], const=-c)
        if kind == "mul":
            return _ew("scale", [a], const=c)
        if kind == "div" and not reverse:
            return _ew("scale", [a], const=1.0 / c)
    if isinstance(b, (int, float, np.floating, np.integer)) and not isinstance(b, bool):
        b = _const(np.full((1,) * a.ndim, b, np.float32))
    b = _as_tensor(b)
    args = [b, a] if reverse else [a, b]
    return _ew(kind, args)


def _method(doc: str, fn: Callable) -> Callable:
    fn.__doc__ = doc
    return fn


_T = Tensor
_T.reshape = _T.view = _tensor_reshape
_T.permute = _tensor_permute
_T.transpose = _tensor_transpose
_T.__getitem__ = _tensor_getitem
_T.__add__ = _method("Return self + other (a tensor, broadcast as in numpy, or a number).",
                     lambda a, b: _binary("add", a, b))
_T.__radd__ = _method("Return other + self.", lambda a, b: _binary("add", a, b, True))
_T.__sub__ = _method("Return self - other.", lambda a, b: _binary("sub", a, b))
_T.__rsub__ = _method("Return other - self.", lambda a, b: _binary("sub", a, b, True))
_T.__mul__ = _method("Return self * other.", lambda a, b: _binary("mul", a, b))
_T.__rmul__ = _method("Return other * self.", lambda a, b: _binary("mul", a, b, True))
_T.__truediv__ = _method("Return self / other (a number: times its float reciprocal).",
                         lambda a, b: _binary("div", a, b))
_T.__neg__ = _method("Return -self.", lambda a: _ew("scale", [a], const=-1.0))
_T.__matmul__ = _method("Return self @ other on the array.",
                        lambda a, b: matmul(a, _as_tensor(b)))
_T.contiguous = _method("Return self (layouts are the address generators' business).",
                        lambda self: self)
_T.dim = _method("Return the rank.", lambda self: self.ndim)
_T.size = _method("Return the shape, or the size of axis ``dim``.",
                  lambda self, dim=None: self.shape if dim is None else
                  self.shape[_axis(dim, self.ndim)])
_T.mean = _method("Return the mean over ``dim`` (None: all; an int or a tuple), on the vector "
                  "unit.", lambda self, dim=None, keepdim=False:
                  _reduction(self, "mean", dim, keepdim))
_T.sum = _method("Return the sum over ``dim`` (None: all; an int or a tuple).",
                 lambda self, dim=None, keepdim=False: _reduction(self, "sum", dim, keepdim))
_T.flatten = _method("Return the tensor with axes start_dim..end_dim merged (free).",
                     lambda self, start_dim=0, end_dim=-1: _flatten(self, start_dim, end_dim))
_T.softmax = _method("Return the softmax along ``dim``.", lambda self, dim:
                     _vec("softmax", [self], axis=_axis(dim, self.ndim)))
_T.log_softmax = _method("Return the log-softmax along ``dim``.", lambda self, dim:
                         _vec("log_softmax", [self], axis=_axis(dim, self.ndim)))
for _kind in ("relu", "exp", "tanh", "sigmoid", "sqrt"):
    setattr(_T, _kind, _method(f"Return {_kind}(self), elementwise on the vector unit.",
                               lambda self, k=_kind: _ew(k, [self])))


def _flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    a, b = _axis(start_dim, x.ndim), _axis(end_dim, x.ndim)
    if a > b:
        raise WorkloadError("asic", "flatten", f"start_dim {start_dim} is after end_dim {end_dim}")
    return _tensor_reshape(x, (*x.shape[:a], math.prod(x.shape[a:b + 1]), *x.shape[b + 1:]))


# --------------------------------------------------------------------------- modules

class Parameter(Tensor):
    """A trainable tensor (requires_grad=True), shaped as given (1-D stays 1-D)."""

    def __init__(self, value: Any, name: str | None = None):
        super().__init__(value, requires_grad=True, name=name, _keep_shape=True)


class Model:
    """Base class of models (PyTorch's nn.Module): parameters and submodules register
    themselves when assigned as attributes; calling the model calls ``forward``."""

    def __init__(self) -> None:
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_label", type(self).__name__)
        object.__setattr__(self, "training", True)

    def __setattr__(self, key: str, value: Any) -> None:
        if "_params" not in self.__dict__:
            raise WorkloadError("asic", type(self).__name__, "call super().__init__() in "
                                "__init__ before assigning layers")
        if isinstance(value, Parameter):
            self._params[key] = value
        elif isinstance(value, Model):
            self._modules[key] = value
            value._rename(f"{self._label}.{key}")
        object.__setattr__(self, key, value)

    def _rename(self, label: str) -> None:
        object.__setattr__(self, "_label", label)
        for key, mod in self._modules.items():
            mod._rename(f"{label}.{key}")

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield (dotted name, parameter) for every parameter, depth first."""
        for key, p in self._params.items():
            yield f"{prefix}{key}", p
        for key, mod in self._modules.items():
            yield from mod.named_parameters(f"{prefix}{key}.")

    def parameters(self) -> list[Parameter]:
        """Return every parameter, in registration order."""
        return [p for _, p in self.named_parameters()]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return {dotted name: a copy of the value} (weights laid out in x out)."""
        return {k: p.value.copy() for k, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy values into the parameters; shapes must match."""
        for k, p in self.named_parameters():
            if k not in state:
                raise WorkloadError(self._label, k, "missing from the state dict")
            v = np.asarray(state[k], np.float32).reshape(p.shape) if np.size(state[k]) == \
                p.value.size else None
            if v is None:
                raise WorkloadError(self._label, k, f"shape {np.shape(state[k])} does not fit "
                                    f"{p.shape}")
            p.value = v.copy()

    def forward(self, *args: Any) -> Tensor:
        """Compute the model's output (subclasses define it)."""
        raise WorkloadError(self._label, "forward", "the model defines no forward()")

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Model"]]:
        """Yield (dotted name, module) for this module and every submodule, depth first."""
        yield prefix.rstrip("."), self
        for key, mod in self._modules.items():
            yield from mod.named_modules(f"{prefix}{key}.")

    def train(self, mode: bool = True) -> "Model":
        """Set training mode (Dropout draws masks, BatchNorm uses batch statistics) on this
        module and its submodules; return self."""
        for _, mod in self.named_modules():
            object.__setattr__(mod, "training", bool(mode))
        return self

    def eval(self) -> "Model":
        """Set evaluation mode (``train(False)``); return self."""
        return self.train(False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args = tuple(a if isinstance(a, Tensor) or a is None else Tensor(a) for a in args)
        return self.forward(*args, **kwargs)


class Linear(Model):
    """y = x W + b with W (in_features, out_features), b (1, out_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        for n, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise WorkloadError("Linear", n, f"must be a positive integer, got {v!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(_S.rng.uniform(-bound, bound, (in_features, out_features)))
        if bias:
            self.bias = Parameter(_S.rng.uniform(-bound, bound, (1, out_features)))
        else:
            object.__setattr__(self, "bias", None)

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features})"

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise WorkloadError(self._label, "input", f"{self!r} expects (batch, "
                                f"{self.in_features}) inputs, got {x.shape}")
        if x.ndim > 2:  # (..., in): one GEMM over all leading dims (free reshapes around it)
            y2 = self.forward(_tensor_reshape(x, (-1, self.in_features)))
            return _tensor_reshape(y2, (*x.shape[:-1], self.out_features))
        y = _matmul(x, self.weight, self._label)
        if self.bias is None:
            return y
        out = _elementwise("add", [y, self.bias], 0.0, self._label)
        out._parents = (y, self.bias)
        bias = self.bias
        label = self._label

        def back(g: np.ndarray, g_name: str) -> None:
            _set_grad(y, g, g_name)  # d(y + b)/dy is the identity: same tensor, no op
            dn, db = _reduce(g_name, g, 0, label)
            _set_grad(bias, db, dn)
        out._backward = back
        return out


class ReLU(Model):
    """max(x, 0); backward passes the gradient where x > 0."""

    def __repr__(self) -> str:
        return "ReLU()"

    def forward(self, x: Tensor) -> Tensor:
        out = _elementwise("relu", [x], 0.0, self._label)
        out._parents = (x,)
        label = self._label

        def back(g: np.ndarray, g_name: str) -> None:
            dn = _S.new_name()
            _, dx = _exec(lambda p: p.elementwise(f"{label}.relu_grad.{dn}", "relu_grad",
                                                  g_name, x.name, out=dn),
                          {g_name: g, x.name: x.value})
            _set_grad(x, dx, dn)
        out._backward = back
        return out


class Sequential(Model):
    """Layers applied in order; registered as 0, 1, 2, ... like PyTorch's."""

    def __init__(self, *layers: Model):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Model):
                raise WorkloadError("Sequential", str(i), f"not a layer: {layer!r}")
            setattr(self, str(i), layer)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self._modules.values():
            x = layer(x)
        return x


class MSELoss:
    """mean((y - t)^2) over all elements; backward dY = (y - t) * (2 / N)."""

    def __call__(self, outputs: Tensor, labels: Any) -> Tensor:
        t = labels if isinstance(labels, Tensor) else Tensor(labels)
        if not isinstance(outputs, Tensor):
            raise WorkloadError("MSELoss", "outputs", "must be the model's output tensor")
        if t.shape != outputs.shape:
            raise WorkloadError("MSELoss", "labels", f"shape {t.shape} does not match the "
                                f"outputs' {outputs.shape}")
        numel = outputs.value.size
        d = _elementwise("sub", [outputs, t], 0.0, "MSELoss")
        d2 = _elementwise("mul", [d, d], 0.0, "MSELoss")
        sname, svalue = _reduce(d2.name, d2.value, None, "MSELoss")
        s = Tensor(svalue, name=sname)
        loss = _elementwise("scale", [s], 1.0 / numel, "MSELoss")
        loss._parents = (outputs,)
        loss._is_loss = True

        def back(_g, _name) -> None:
            dn = _S.new_name()
            _, dy = _exec(lambda p: p.elementwise(f"MSELoss.bwd.{dn}", "scale", d.name,
                                                  const=2.0 / numel, out=dn), {d.name: d.value})
            _set_grad(outputs, dy, dn)
        loss._backward = back
        return loss


class SGD:
    """Stochastic gradient descent as PyTorch defines it (lr, momentum, dampening, weight
    decay, nesterov); every update op runs on the vector unit."""

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        self.params = list(params)
        if not self.params:
            raise WorkloadError("SGD", "params", "no parameters to optimise")
        for n, v in (("lr", lr), ("momentum", momentum), ("dampening", dampening),
                     ("weight_decay", weight_decay)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise WorkloadError("SGD", n, f"must be a finite number >= 0, got {v!r}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise WorkloadError("SGD", "nesterov", "needs momentum > 0 and dampening 0")
        self.lr, self.momentum, self.dampening = float(lr), float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), nesterov
        self.buffers: dict[int, np.ndarray] = {}

    def zero_grad(self) -> None:
        """Clear the parameters' gradients (the tape starts afresh)."""
        for p in self.params:
            p.grad = None
            p._grad_name = None

    def _op(self, tag: str, kind: str, a: tuple[str, np.ndarray], b: tuple[str, np.ndarray] | None,
            const: float) -> tuple[str, np.ndarray]:
        out = _S.new_name()
        args = [a[0]] + ([b[0]] if b else [])
        inputs = {a[0]: a[1], **({b[0]: b[1]} if b else {})}
        return _exec(lambda pr: pr.elementwise(f"SGD.{tag}.{out}", kind, *args, const=const,
                                               out=out), inputs)

    def step(self) -> None:
        """Update every parameter with its gradient (PyTorch's order of operations); close the
        step and time it."""
        for p in self.params:
            if p.grad is None:
                continue
            g = (p._grad_name, p.grad)
            if self.weight_decay:  # d_p = d_p + wd * p
                g = self._op("decay", "axpy", g, (p.name, p.value), self.weight_decay)
            if self.momentum:
                prev = self.buffers.get(id(p))
                if prev is None:  # the first step's buffer is d_p itself
                    buf = g
                else:  # buf = momentum * buf + (1 - dampening) * d_p
                    scaled = self._op("momentum", "scale", (_S.new_name(), prev), None,
                                      self.momentum)
                    buf = self._op("dampen", "axpy", scaled, g, 1.0 - self.dampening)
                self.buffers[id(p)] = buf[1]
                g = self._op("nesterov", "axpy", g, buf, self.momentum) if self.nesterov else buf
            _, new = self._op("update", "sgd", (p.name, p.value), g, self.lr)
            p.value = new
            p.name = _S.new_name()  # the updated value is a new tensor of the next step
        _close_step()


def _close_step() -> None:
    prog = _S.program
    _S.program = None
    if prog is None or not prog.ops:
        return
    key = tuple((type(o).__name__, getattr(o, "kind", ""), tuple(prog.shapes[t] for t in o.inputs))
                for o in prog.ops)
    if key not in _S.timing_cache:
        _S.timing_cache[key] = run(_chip(), prog)
    _S.steps.append(_S.timing_cache[key])


# --------------------------------------------------------------------------- the report

class SessionReport:
    """What the recorded steps cost: per step, per op (of one step) and per unit."""

    def __init__(self, chip: Chip, steps: list[Report]):
        self.chip = chip
        self.steps = steps

    def to_dict(self) -> dict[str, Any]:
        """Return steps (cycles, time, energy), totals and the last step's report as a dict."""
        clock = self.chip.clock_hz
        steps = [{"step": i, "cycles": r.total_cycles, "time_s": r.total_cycles / clock,
                  "energy_pj": r.totals()["energy_pj"]["total"]} for i, r in enumerate(self.steps)]
        cycles = sum(s["cycles"] for s in steps)
        energy = sum(s["energy_pj"] for s in steps)
        return {"chip": self.chip.name, "steps": steps,
                "totals": {"steps": len(steps), "total_cycles": cycles, "time_s": cycles / clock,
                           "energy_pj": energy,
                           "average_power_w": energy * 1e-12 / (cycles / clock) if cycles else 0.0},
                "step_report": self.steps[-1].to_dict() if self.steps else None}

    def __str__(self) -> str:
        if not self.steps:
            return f"asic report on {self.chip.name}: no steps recorded (call optimizer.step())"
        d = self.to_dict()
        t = d["totals"]
        last = self.steps[-1]
        lt = last.totals()
        distinct = sorted({s["cycles"] for s in d["steps"]})
        lines = [
            f"asic report on {self.chip.name} ({self.chip.dtype}, {self.chip.array.rows}x"
            f"{self.chip.array.cols} {self.chip.array.dataflow}, {self.chip.clock_hz / 1e6:g} MHz)",
            f"steps       {t['steps']}: {t['total_cycles']:,} cycles = {t['time_s'] * 1e3:.4f} ms, "
            f"{format_energy(t['energy_pj'])}, average power {t['average_power_w']:.3g} W",
            f"per step    {', '.join(f'{c:,}' for c in distinct)} cycles = "
            f"{lt['total_cycles'] / self.chip.clock_hz * 1e6:.3f} us, "
            f"{format_energy(lt['energy_pj']['total'])}",
            "per unit    " + ", ".join(f"{u} busy {100 * v:.1f} %" for u, v in
                                       lt["unit_utilisation"].items())
            + f"; array PE utilisation {100 * lt['utilisation']:.3f} %",
            "", "last step, per op:",
            f"{'op':<34}{'unit':>7}{'start':>8}{'end':>8}{'MACs / lane-ops':>17}{'energy':>11}",
        ]
        for op in last.ops:
            work = op.macs if op.unit == "array" else op.events.get("vector_lane_ops", 0)
            lines.append(f"{op.name[:33]:<34}{op.unit:>7}{op.start_cycle:>8,}{op.end_cycle:>8,}"
                         f"{work:>17,}{format_energy(op.energy_pj.get('total', 0.0)):>11}")
        return "\n".join(lines)


def report() -> SessionReport:
    """Return the report of the steps recorded since ``use_chip`` (print it for a summary)."""
    return SessionReport(_chip(), list(_S.steps))

