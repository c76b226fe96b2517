"""Decoder-only language-model shapes (no weights): ``configs/models/*.yaml`` -> ModelSpec.

A model file lists hyperparameters as the model's own config (``config.json``) names them, under
the keys of ``MODEL_SCHEMA``; every file carries its ``source``. Unknown keys, wrong types and
inconsistent shapes (``d_model`` not ``heads x head_dim`` when head_dim is absent, ``heads`` not a
multiple of ``kv_heads``, top-k above the expert count) end in one line ``FILE:LINE: key: message``
(:class:`simulator.errors.ConfigError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..hardware.config import Field, _check_value, _parse_yaml
from ..hardware.dataflow import MAX_GEMM_DIM
from ..errors import ConfigError
from ..io_limits import read_user_file

__all__ = ["MODEL_SCHEMA", "ModelSpec", "load_model", "model_from_dict"]

# largest dimension accepted: the engine's largest GEMM side (far beyond any published model)
_BIG = MAX_GEMM_DIM

MODEL_SCHEMA: tuple[Field, ...] = (
    Field("name", "str", None, "-", "Model name, echoed in reports."),
    Field("source", "str", None, "-", "Where the numbers come from (model card, config.json)."),
    Field("layers", "int", None, "layers", "Decoder layers (num_hidden_layers).", positive=True,
          maximum=_BIG),
    Field("d_model", "int", None, "elements", "Hidden size (hidden_size).", positive=True,
          maximum=_BIG),
    Field("heads", "int", None, "heads", "Query heads (num_attention_heads).", positive=True,
          maximum=_BIG),
    Field("kv_heads", "int", 0, "heads", "Key/value heads (num_key_value_heads; GQA/MQA); "
          "0 = heads (multi-head attention).", minimum=0, maximum=_BIG),
    Field("head_dim", "int", 0, "elements", "Elements per head; 0 = d_model / heads.",
          minimum=0, maximum=_BIG),
    Field("ffn_dim", "int", None, "elements", "Feed-forward inner size (intermediate_size), per "
          "expert for a mixture of experts.", positive=True, maximum=_BIG),
    Field("ffn_gated", "bool", None, "-", "Gated feed-forward (SwiGLU: gate and up projections, "
          "then down) instead of up then down."),
    Field("vocab", "int", None, "tokens", "Vocabulary size (vocab_size).", positive=True,
          maximum=_BIG),
    Field("norm", "choice", None, "-", "Normalisation before attention and feed-forward.",
          choices=("layernorm", "rmsnorm")),
    Field("activation", "choice", None, "-", "Feed-forward activation.",
          choices=("gelu", "gelu_tanh", "silu", "relu")),
    Field("position", "choice", None, "-", "Positional scheme: learned absolute embeddings "
          "(added once at the input) or rotary (applied to q and k in every layer).",
          choices=("learned", "rope")),
    Field("tied_embeddings", "bool", False, "-", "Output projection shares the embedding matrix."),
    Field("qkv_bias", "bool", False, "-", "The q, k, v projections have a bias."),
    Field("linear_bias", "bool", False, "-", "The attention output and feed-forward projections "
          "have biases too (GPT-2)."),
    Field("max_context", "int", None, "tokens", "Longest context (max_position_embeddings).",
          positive=True, maximum=_BIG),
    Field("experts", "int", 1, "experts", "Feed-forward experts per layer (1 = dense).",
          positive=True, maximum=1 << 16),
    Field("experts_per_token", "int", 1, "experts", "Experts each token is routed to (top-k).",
          positive=True, maximum=1 << 16),
)
_FIELDS = {f.path: f for f in MODEL_SCHEMA}


@dataclass(frozen=True)
class ModelSpec:
    """Shapes of a decoder-only transformer; ``where`` maps each key to FILE:LINE."""

    name: str
    source: str
    layers: int
    d_model: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn_dim: int
    ffn_gated: bool
    vocab: int
    norm: str
    activation: str
    position: str
    tied_embeddings: bool
    qkv_bias: bool
    linear_bias: bool
    max_context: int
    experts: int
    experts_per_token: int
    where: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def at(self, key: str) -> str:
        """Return FILE:LINE of ``key`` in the model file (the file's first line when absent)."""
        return self.where.get(key) or self.where.get("", f"model {self.name}")

    @property
    def moe(self) -> bool:
        """Return True for a mixture-of-experts model (experts > 1)."""
        return self.experts > 1

    @property
    def group(self) -> int:
        """Return query heads per key/value head (the GQA group size)."""
        return self.heads // self.kv_heads

    def layer_weight_elements(self) -> int:
        """Return the matmul weight elements of one decoder layer (all experts, router, biases
        excluded; norms excluded): q, k, v, o projections and the feed-forward matrices."""
        attn = self.d_model * (self.heads + 2 * self.kv_heads) * self.head_dim \
            + self.heads * self.head_dim * self.d_model
        ffn = self.d_model * self.ffn_dim * (3 if self.ffn_gated else 2)
        return attn + self.experts * ffn + (self.d_model * self.experts if self.moe else 0)

    def parameters(self) -> int:
        """Return all parameters (elements): layers, norms, biases, embeddings, output head."""
        d = self.d_model
        norm = d * (2 if self.norm == "layernorm" else 1)
        per_layer = self.layer_weight_elements() + 2 * norm
        if self.qkv_bias:
            per_layer += (self.heads + 2 * self.kv_heads) * self.head_dim
        if self.linear_bias:  # the output projection's, and each expert's up and down biases
            per_layer += d + self.experts * (self.ffn_dim * (2 if self.ffn_gated else 1) + d)
        total = self.layers * per_layer + norm + self.vocab * d
        if not self.tied_embeddings:
            total += self.vocab * d
        if self.position == "learned":
            total += self.max_context * d
        return total


def model_from_dict(data: object, lines: Mapping[str, int], location: str) -> ModelSpec:
    """Validate a parsed model mapping; return the ModelSpec. Raises ConfigError at FILE:LINE."""
    top = f"{location}:{lines.get('', 1)}"
    if not isinstance(data, dict):
        raise ConfigError(top, "(top level)", "must be a mapping of model keys to values")
    where: dict[str, str] = {"": f"{location}:1"}
    values: dict[str, object] = {}
    for key, value in data.items():
        at = f"{location}:{lines.get(key, 1)}"
        if key not in _FIELDS:
            raise ConfigError(at, key, f"unknown model key (known: {', '.join(_FIELDS)})")
        values[key] = _check_value(_FIELDS[key], value, at)
        where[key] = at
    for f in MODEL_SCHEMA:
        if f.path not in values:
            if f.default is None:
                raise ConfigError(top, f.path, f"missing (required: {f.doc})")
            values[f.path] = f.default
    if not values["kv_heads"]:
        values["kv_heads"] = values["heads"]
    if values["heads"] % values["kv_heads"]:
        raise ConfigError(where.get("kv_heads", top), "kv_heads", f"{values['heads']} query heads "
                          f"do not split into groups over {values['kv_heads']} key/value heads")
    if not values["head_dim"]:
        if values["d_model"] % values["heads"]:
            raise ConfigError(where.get("heads", top), "heads", f"d_model {values['d_model']} is "
                              f"not a multiple of {values['heads']} heads; give head_dim")
        values["head_dim"] = values["d_model"] // values["heads"]
    if values["heads"] * values["head_dim"] > _BIG:
        raise ConfigError(where.get("head_dim", top), "head_dim", f"heads x head_dim = "
                          f"{values['heads'] * values['head_dim']} exceeds {_BIG}")
    if values["experts_per_token"] > values["experts"]:
        raise ConfigError(where.get("experts_per_token", top), "experts_per_token",
                          f"top-{values['experts_per_token']} of only {values['experts']} experts")
    return ModelSpec(where=where, **values)


def load_model(path: str | Path) -> ModelSpec:
    """Read a model YAML file; return its ModelSpec. Raises ConfigError (FILE:LINE: key: ...)."""
    location = str(path)
    text = read_user_file(path, ConfigError, "a model YAML file", "model")
    data, lines = _parse_yaml(text, location)
    return model_from_dict(data, lines, location)
