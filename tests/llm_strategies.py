"""Hypothesis strategies for LLM tests: small random models and chips with finite memory."""

from __future__ import annotations

from hypothesis import strategies as st

from simulator.hardware.chip import chip_from_config
from simulator.hardware.config import validate_config
from simulator.llm.model import model_from_dict


def make_model(**kw):
    """Return a ModelSpec from keyword values through the real validator."""
    base = {"name": "tiny", "source": "test", "layers": 2, "d_model": 32, "heads": 4,
            "ffn_dim": 64, "ffn_gated": True, "vocab": 100, "norm": "rmsnorm",
            "activation": "silu", "position": "rope", "max_context": 4096}
    base.update(kw)
    return model_from_dict(base, {}, "test-model")


def make_llm_chip(**flat):
    """Return a Chip built through the validator from dotted keys."""
    return chip_from_config(validate_config({}, {}, "test", {k: (v, "test") for k, v in flat.items()}))


@st.composite
def models(draw, moe: bool | None = None):
    """Draw a small decoder-only model (dense or mixture of experts)."""
    heads = draw(st.sampled_from([1, 2, 4, 8]))
    kv = draw(st.sampled_from([k for k in (1, 2, 4, 8) if heads % k == 0]))
    hd = draw(st.sampled_from([4, 8, 16]))
    is_moe = draw(st.booleans()) if moe is None else moe
    experts = draw(st.sampled_from([2, 4, 8])) if is_moe else 1
    return make_model(
        layers=draw(st.integers(1, 5)), d_model=heads * hd, heads=heads, kv_heads=kv,
        ffn_dim=draw(st.sampled_from([8, 16, 24, 48, 64])), ffn_gated=draw(st.booleans()),
        vocab=draw(st.integers(10, 300)), norm=draw(st.sampled_from(["rmsnorm", "layernorm"])),
        activation=draw(st.sampled_from(["gelu", "silu", "relu"])),
        position=draw(st.sampled_from(["learned", "rope"])),
        tied_embeddings=draw(st.booleans()), qkv_bias=draw(st.booleans()), max_context=4096,
        experts=experts, experts_per_token=draw(st.integers(1, experts)))


@st.composite
def chips(draw, launch: bool = True):
    """Draw a small chip with finite DRAM bandwidth and a multi-chip switch or torus system."""
    flat = {"array.rows": draw(st.sampled_from([4, 8, 16])),
            "array.cols": draw(st.sampled_from([4, 8, 16])),
            "array.dataflow": draw(st.sampled_from(["os", "ws", "is"])),
            "array.count": draw(st.sampled_from([1, 2])),
            "dtype": draw(st.sampled_from(["bf16", "int8", "fp32"])),
            "clock_hz": 1e9,
            "dram.bandwidth_bytes_per_s": draw(st.sampled_from([1e9, 1e10, 1e11])),
            "vector.lanes": draw(st.sampled_from([4, 16, 64])),
            "overhead.launch_s": draw(st.sampled_from([0.0, 1e-7])) if launch else 0.0,
            "system.chips": 64,
            "system.topology": draw(st.sampled_from(["switch", "ring", "torus3d"])),
            "system.link_bandwidth_bytes_per_s": 1e10, "system.link_latency_s": 1e-7,
            "system.links_per_chip": 6}
    if draw(st.booleans()):
        flat["buffers.unified"] = True
        flat["buffers.unified_buffer.bytes"] = draw(st.sampled_from([4096, 65536]))
    return make_llm_chip(**flat)
