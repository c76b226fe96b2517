"""The ops of a decoder-only transformer on one chip of a tensor-parallel group.

:func:`decoder_layer_ops` yields the ops of one decoder layer with their shapes: matmuls on the
array (M, N, K; ``count`` independent GEMMs of that shape), elementwise passes and row
reductions on the vector unit (rows x cols), and the collectives tensor parallelism needs
(bytes per chip). :func:`embed_ops` and :func:`head_ops` give the model's first and last ops,
:func:`backward_ops` the backward pass of a list of forward ops. This op list is the one place
that knows the model's structure; :func:`to_program` turns the ops the engine's 2-D Program can
express into one, so the same ops can be run through :func:`simulator.core.engine.run`.

Conventions (Megatron-LM tensor parallelism, Shoeybi et al. 2019): q, k, v and the
feed-forward's first matrices split by columns, the output and down projections by rows, one
all-reduce after each pair; the output head split over the vocabulary (padded to a multiple of
tp). With fewer key/value heads than tp they are replicated. Mixture-of-experts layers place
whole experts on the chips of the group (expert parallelism): the attention's all-reduce becomes
a reduce-scatter, tokens go to their experts by all-to-all and come back by all-to-all, and an
all-gather restores every token on every chip (GShard, Lepikhin et al. 2020).

Attention of all sequences and key/value heads of a batch runs as one GEMM: the ``c`` products
(queries of a head group x keys) are laid side by side along N when the per-head key operand is
the larger one (decode) and stacked along M otherwise (prefill); the smaller operand of the
``c`` products is then read once rather than ``c`` times, so attention bytes are understated by
at most ``(c-1)`` copies of the smaller operand (scores and probabilities, on the other hand,
go to and from memory, which a fused attention kernel avoids).

Vector-unit ops are the engine's own (:mod:`simulator.core.vector`), costed with the engine's pass
formulas: LayerNorm / RMSNorm and softmax as one vector op each, the attention scale, the causal
mask (prefill), bias and residual adds and the activation (GELU, its tanh form, ReLU) as one
elementwise op each; SiLU is a sigmoid and a multiply, a gated unit one more multiply, rotary
embedding a multiply and an add over q and k (assumptions: the engine has no SiLU or rotary
op). The embedding lookup is the engine's ``gather`` reading the gathered rows from DRAM.
For a dense model these are the ops, in order and shape, that the zoo's transformers
(``simulator.kernels.transformer``) put in a Program: GPT-2 small's prefill at batch 1 with all
logits is the zoo's GPT-2 forward, op for op (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ConfigError
from ..core.program import Program
from ..core.vector import ELEMENTWISE
from .model import ModelSpec

__all__ = ["COMM_KINDS", "VECTOR_FNS", "LayerOp", "backward_ops", "check_tp", "decoder_layer_ops", "embed_ops",
           "head_ops", "layer_split", "to_program"]

COMM_KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")
_PROGRAM_KIND = {"add": "scale", "compare": "relu", "transcendental": "exp"}
# engine vector ops (simulator.core.vector.VECTOR_OPS) the llm uses, with their parameter operands
VECTOR_FNS = {"layernorm": 2, "rmsnorm": 1, "softmax": 0, "gather": 1}


@dataclass(frozen=True)
class LayerOp:
    """One op: ``kind`` is matmul (m x n x k, ``count`` GEMMs), vector (rows m x cols n, of
    ``op_class``), reduce (row sums of m x n), gather (``nbytes`` from memory) or a collective
    (``nbytes`` per chip over ``group`` chips). ``operand`` names a matmul's B operand: weight,
    kv (the KV cache) or act (an activation)."""

    name: str
    kind: str
    m: int = 0
    n: int = 0
    k: int = 0
    count: int = 1
    op_class: str = ""
    operand: str = ""
    nbytes: int = 0
    group: int = 1
    fn: str = ""

    @property
    def macs(self) -> int:
        """Return the multiply-accumulates of a matmul (0 for other ops)."""
        return self.count * self.m * self.n * self.k if self.kind == "matmul" else 0

    @property
    def elements(self) -> int:
        """Return the elements a vector op or reduction passes over (0 for other ops)."""
        return self.m * self.n if self.kind in ("vector", "reduce") else 0


def _mm(name: str, m: int, n: int, k: int, operand: str, count: int = 1) -> LayerOp:
    """A matmul of ``count`` m x n x k GEMMs; a side beyond the hot loops' bound is cut into
    pieces when it is costed (simulator.core.placement, exact totals)."""
    return LayerOp(name, "matmul", m, n, k, count=count, operand=operand)


def _vec(name: str, cls: str, rows: int, cols: int) -> LayerOp:
    return LayerOp(name, "vector", rows, cols, op_class=cls)


def _ew(name: str, fn: str, rows: int, cols: int) -> LayerOp:
    """An elementwise op of the engine (simulator.core.vector.ELEMENTWISE) over rows x cols."""
    return LayerOp(name, "vector", rows, cols, op_class=ELEMENTWISE[fn][0], fn=fn)


def _vop(name: str, fn: str, rows: int, cols: int, cls: str) -> LayerOp:
    """A vector op of the engine (layernorm, rmsnorm, softmax) over rows of ``cols``."""
    return LayerOp(name, "vector", rows, cols, op_class=cls, fn=fn)


def _red(name: str, rows: int, cols: int) -> LayerOp:
    return LayerOp(name, "reduce", rows, cols, op_class="reduction")


def _batched(name: str, c: int, m: int, n: int, k: int, operand: str) -> LayerOp:
    """``c`` independent (m x k) @ (k x n) products run as one GEMM (see the module doc)."""
    if m <= n:
        return _mm(name, m, c * n, k, operand)
    return _mm(name, c * m, n, k, operand)


def _norm(prefix: str, model: ModelSpec, rows: int) -> list[LayerOp]:
    return [_vop(prefix, model.norm, rows, model.d_model, "reduction")]


def _softmax(prefix: str, rows: int, cols: int) -> list[LayerOp]:
    return [_vop(prefix, "softmax", rows, cols, "reduction")]


def _activation(prefix: str, model: ModelSpec, rows: int, cols: int) -> list[LayerOp]:
    if model.activation == "silu":  # x * sigmoid(x): no SiLU op in the engine
        ops = [_ew(f"{prefix}.sigmoid", "sigmoid", rows, cols),
               _ew(f"{prefix}.mul", "mul", rows, cols)]
    else:
        ops = [_ew(prefix, model.activation, rows, cols)]
    if model.ffn_gated:
        ops.append(_ew(f"{prefix}.gate", "mul", rows, cols))
    return ops


def check_tp(model: ModelSpec, tp: int) -> None:
    """Raise ConfigError at the model file's line when ``tp`` cannot split the model: heads,
    feed-forward size or (MoE) experts not divisible, key/value heads neither a multiple nor a
    divisor of tp."""
    if tp < 1:
        raise ConfigError("--tp", "tp", f"must be a positive integer, got {tp}")
    if model.heads % tp:
        raise ConfigError(model.at("heads"), "heads", f"{model.heads} heads do not split over "
                          f"tensor parallelism {tp}")
    if model.kv_heads % tp and tp % model.kv_heads:
        raise ConfigError(model.at("kv_heads"), "kv_heads", f"{model.kv_heads} key/value heads "
                          f"neither split over nor replicate across tensor parallelism {tp}")
    if model.moe:
        if model.experts % tp:
            raise ConfigError(model.at("experts"), "experts", f"{model.experts} experts do not "
                              f"split over tensor (expert) parallelism {tp}")
    elif model.ffn_dim % tp:
        raise ConfigError(model.at("ffn_dim"), "ffn_dim", f"{model.ffn_dim} does not split over "
                          f"tensor parallelism {tp}")


def decoder_layer_ops(model: ModelSpec, batch: int, q: int, ctx: int, tp: int,
                      elem_bytes: int) -> list[LayerOp]:
    """Return the forward ops of one decoder layer on one chip of a ``tp``-chip group.

    ``batch`` sequences each bring ``q`` new tokens (the prompt in prefill, 1 in decode) and
    attend to ``ctx`` keys (their own included); ``elem_bytes`` sizes the collectives.
    """
    d, hd, g = model.d_model, model.head_dim, model.group
    t = batch * q
    h_l = model.heads // tp
    kv_l = max(1, model.kv_heads // tp)
    c = batch * kv_l
    ops = _norm("norm1", model, t)
    qkv_n = (h_l + 2 * kv_l) * hd
    ops.append(_mm("qkv", t, qkv_n, d, "weight"))
    if model.qkv_bias:
        ops.append(_ew("qkv.bias", "add", t, qkv_n))
    if model.position == "rope":
        ops += [_ew("rope.mul", "mul", t, (h_l + kv_l) * hd),
                _ew("rope.add", "add", t, (h_l + kv_l) * hd)]
    rows = c * q * g
    if q > 1:  # prefill: one GEMM per sequence and key/value head, as a batched matmul
        ops.append(_mm("attn.scores", q * g, ctx, hd, "kv", c))
    else:
        ops.append(_batched("attn.scores", c, q * g, ctx, hd, "kv"))
    ops.append(_ew("attn.scale", "scale", rows, ctx))
    if q > 1:  # the causal mask over the prompt's own keys
        ops.append(_ew("attn.mask", "masked_fill", rows, ctx))
    ops += _softmax("attn.softmax", rows, ctx)
    if q > 1:
        ops.append(_mm("attn.pv", q * g, hd, ctx, "kv", c))
    else:
        ops.append(_batched("attn.pv", c, q * g, hd, ctx, "kv"))
    ops.append(_mm("attn.out", t, d, h_l * hd, "weight"))
    if tp > 1:
        kind = "reduce_scatter" if model.moe else "all_reduce"
        ops.append(LayerOp(f"attn.{kind}", kind, nbytes=t * d * elem_bytes, group=tp))
    if model.linear_bias:
        ops.append(_ew("attn.out.bias", "add", t, d))
    ops.append(_ew("residual1", "add", t, d))
    if model.moe:
        t_l = -(-t // tp)
        ops += _norm("norm2", model, t_l)
        ops.append(_mm("moe.router", t_l, model.experts, d, "weight"))
        ops += _softmax("moe.route", t_l, model.experts)
        k_top = model.experts_per_token
        sent = t_l * k_top * d * elem_bytes
        if tp > 1:
            ops.append(LayerOp("moe.dispatch", "all_to_all", nbytes=sent, group=tp))
        active = min(model.experts, t * k_top)
        local = min(model.experts // tp, -(-active // tp))
        m_e = -(-t * k_top // active)
        f = model.ffn_dim
        ops.append(_mm("moe.up", m_e, f * (2 if model.ffn_gated else 1), d, "weight", local))
        if model.linear_bias:
            ops.append(_ew("moe.up.bias", "add", local * m_e, f * (2 if model.ffn_gated else 1)))
        ops += _activation("moe.act", model, local * m_e, f)
        ops.append(_mm("moe.down", m_e, d, f, "weight", local))
        if model.linear_bias:
            ops.append(_ew("moe.down.bias", "add", local * m_e, d))
        if tp > 1:
            ops.append(LayerOp("moe.combine", "all_to_all", nbytes=sent, group=tp))
        ops.append(_vec("moe.weighted_sum", "add", t_l * k_top, d))
        ops.append(_ew("residual2", "add", t_l, d))
        if tp > 1:
            ops.append(LayerOp("moe.all_gather", "all_gather", nbytes=t * d * elem_bytes,
                               group=tp))
        return ops
    ops += _norm("norm2", model, t)
    f_l = model.ffn_dim // tp
    ops.append(_mm("ffn.up", t, f_l * (2 if model.ffn_gated else 1), d, "weight"))
    if model.linear_bias:
        ops.append(_ew("ffn.up.bias", "add", t, f_l * (2 if model.ffn_gated else 1)))
    ops += _activation("ffn.act", model, t, f_l)
    ops.append(_mm("ffn.down", t, d, f_l, "weight"))
    if tp > 1:
        ops.append(LayerOp("ffn.all_reduce", "all_reduce", nbytes=t * d * elem_bytes, group=tp))
    if model.linear_bias:
        ops.append(_ew("ffn.down.bias", "add", t, d))
    ops.append(_ew("residual2", "add", t, d))
    return ops


def embed_ops(model: ModelSpec, tokens: int, elem_bytes: int) -> list[LayerOp]:
    """Return the input ops: the token embedding rows gathered by the vector unit from DRAM
    (with learned positions, their rows are read too and added)."""
    rows = tokens * model.d_model * elem_bytes
    learned = model.position == "learned"
    gather = LayerOp("embed.gather", "vector", tokens, model.d_model, op_class="move",
                     nbytes=2 * rows if learned else rows, fn="gather")
    if learned:
        return [gather, _ew("embed.add_positions", "add", tokens, model.d_model)]
    return [gather]


def head_ops(model: ModelSpec, rows: int, tp: int, elem_bytes: int, train: bool) -> list[LayerOp]:
    """Return the output ops for ``rows`` tokens: final norm, the vocabulary-parallel output
    projection, then the logits all-gathered (inference) or the loss's softmax with its two
    row statistics all-reduced (training, 4-byte floats)."""
    v_l = -(-model.vocab // tp)
    ops = _norm("final_norm", model, rows)
    ops.append(_mm("lm_head", rows, v_l, model.d_model, "weight"))
    if train:
        ops += _softmax("loss.softmax", rows, v_l)
        if tp > 1:
            ops.append(LayerOp("loss.all_reduce", "all_reduce", nbytes=2 * rows * 4, group=tp))
    elif tp > 1:
        ops.append(LayerOp("logits.all_gather", "all_gather", nbytes=rows * v_l * tp * elem_bytes,
                           group=tp))
    return ops


_BACKWARD_COMM = {"all_reduce": "all_reduce", "all_gather": "reduce_scatter",
                  "reduce_scatter": "all_gather", "all_to_all": "all_to_all"}


def backward_ops(ops: list[LayerOp]) -> list[LayerOp]:
    """Return the backward pass of forward ``ops``, in reverse order: each matmul O = A @ B
    gives dA = dO @ B^T (m x k x n) and dB = A^T @ dO (k x n x m); each vector op or reduction
    one op of the same shape and class (an assumption); a gather its scatter-add; a collective
    its conjugate (all-gather <-> reduce-scatter)."""
    out: list[LayerOp] = []
    for op in reversed(ops):
        if op.kind == "matmul":
            out.append(_mm(f"{op.name}.dx", op.m, op.k, op.n, "act", op.count))
            out.append(_mm(f"{op.name}.dw" if op.operand == "weight" else f"{op.name}.db",
                           op.k, op.n, op.m, "act", op.count))
        elif op.kind in COMM_KINDS:
            kind = _BACKWARD_COMM[op.kind]
            out.append(LayerOp(f"{op.name}.bwd", kind, nbytes=op.nbytes, group=op.group))
        else:
            out.append(replace(op, name=f"{op.name}.bwd"))
    return out


def to_program(ops: list[LayerOp], name: str = "layer") -> Program:
    """Return an engine Program with the array and vector ops of ``ops`` (a matmul of count
    c > 1 as one batched MatMul of c GEMMs, placed on the arrays as the llm places it), each on
    its own input tensors; collectives have no Program op, and the
    embedding gather is left out (the engine without residency reads no DRAM for a vector op,
    the llm reads the gathered rows). Timing of each op under :func:`simulator.core.engine.run` is
    the engine's."""
    prog = Program(name)
    for i, op in enumerate(ops):
        if op.kind == "matmul":
            batch = (op.count,) if op.count > 1 else ()
            a = prog.input(f"a{i}", (*batch, op.m, op.k))
            b = prog.input(f"b{i}", (*batch, op.k, op.n))
            prog.matmul(f"{i}.{op.name}", a, b)
        elif op.kind == "vector" and op.fn == "gather":
            continue
        elif op.kind == "vector" and op.fn in VECTOR_FNS:
            x = prog.input(f"x{i}", (op.m, op.n))
            params = [prog.input(f"p{i}.{j}", (op.n,)) for j in range(VECTOR_FNS[op.fn])]
            attrs = {"axis": -1} if op.fn == "softmax" else {"eps": 1e-5}
            prog.vector(f"{i}.{op.name}", op.fn, x, *params, **attrs)
        elif op.kind == "vector" and op.fn:
            xs = [prog.input(f"x{i}.{j}", (op.m, op.n)) for j in range(ELEMENTWISE[op.fn][1])]
            prog.elementwise(f"{i}.{op.name}", op.fn, *xs)
        elif op.kind == "vector":
            x = prog.input(f"x{i}", (op.m, op.n))
            prog.elementwise(f"{i}.{op.name}", _PROGRAM_KIND[op.op_class], x)
        elif op.kind == "reduce":
            x = prog.input(f"x{i}", (op.m, op.n))
            prog.reduce_sum(f"{i}.{op.name}", x, axis=1)
    return prog


def layer_split(layers: int, stages: int) -> list[int]:
    """Return the decoder layers of each pipeline stage: as even as possible, the first
    ``layers % stages`` stages one more."""
    q, r = divmod(layers, stages)
    return [q + (1 if i < r else 0) for i in range(stages)]

