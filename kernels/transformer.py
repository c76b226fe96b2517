"""Transformer models as Programs, with numpy twins: BERT-base encoder, GPT-2 small (causal,
forward to the logits), ViT-B/16 and a tiny transformer encoder for tests.

Weights are laid out (in_features, out_features); a linear layer over (batch, seq, d) is one
GEMM with M = batch x seq. Attention: per layer, Q K^T and P V are batched matmuls of batch x
heads GEMMs each (see simulator.core.program). Hyperparameters: one small table per model below
(BERT-base: Devlin et al. 2019 / HF bert-base-uncased config; GPT-2 small: Radford et al. 2019 /
HF gpt2 config; ViT-B/16: Dosovitskiy et al. 2021, Table 1).
"""

from __future__ import annotations

import numpy as np

from . import nnref as R
from .netbuild import Net

__all__ = ["BERT_BASE", "GPT2_SMALL", "VIT_B16", "TINY", "build_bert", "build_gpt2", "build_vit",
           "build_tiny", "bert_numpy", "gpt2_numpy", "vit_numpy", "tiny_numpy"]

BERT_BASE = {"layers": 12, "d_model": 768, "heads": 12, "d_ff": 3072, "vocab": 30522,
             "max_positions": 512, "type_vocab": 2, "ln_eps": 1e-12}
GPT2_SMALL = {"layers": 12, "d_model": 768, "heads": 12, "d_ff": 3072, "vocab": 50257,
              "max_positions": 1024, "ln_eps": 1e-5}
VIT_B16 = {"layers": 12, "d_model": 768, "heads": 12, "d_ff": 3072, "patch": 16,
           "channels": 3, "classes": 1000, "ln_eps": 1e-6}
TINY = {"layers": 2, "d_model": 64, "heads": 4, "d_ff": 256, "classes": 10, "ln_eps": 1e-5}

STD = 0.02  # BERT / GPT-2 initializer_range


def _ffn(net: Net, name: str, x: str, d: int, d_ff: int, act: str, std) -> str:
    h = net.linear(f"{name}.fc1", x, d, d_ff, std=std)
    h = net.p.elementwise(f"{name}.act", act, h, out=f"{name}.act.out")
    return net.linear(f"{name}.fc2", h, d_ff, d, std=std)


def _mha(net: Net, name: str, x: str, batch: int, seq: int, cfg: dict, std, mask=None,
         fused: bool = False) -> str:
    d = cfg["d_model"]
    if fused:  # GPT-2's c_attn: one (d, 3d) projection, split into q, k, v (free slices)
        qkv = net.linear(f"{name}.qkv", x, d, 3 * d, std=std)
        q, k, v = net.p.split(f"{name}.split", qkv, [d, d, d], axis=-1)
    else:
        q = net.linear(f"{name}.q", x, d, d, std=std)
        k = net.linear(f"{name}.k", x, d, d, std=std)
        v = net.linear(f"{name}.v", x, d, d, std=std)
    ctx = net.attention(name, q, k, v, batch, seq, cfg["heads"], d, mask)
    return net.linear(f"{name}.o", ctx, d, d, std=std)


def _post_ln_layer(net, name, h, batch, seq, cfg, act, std):
    a = _mha(net, f"{name}.attn", h, batch, seq, cfg, std)
    h = net.p.elementwise(f"{name}.res1", "add", a, h, out=f"{name}.res1.out")
    h = net.layernorm(f"{name}.ln1", h, cfg["d_model"], cfg["ln_eps"])
    f = _ffn(net, f"{name}.ffn", h, cfg["d_model"], cfg["d_ff"], act, std)
    h = net.p.elementwise(f"{name}.res2", "add", f, h, out=f"{name}.res2.out")
    return net.layernorm(f"{name}.ln2", h, cfg["d_model"], cfg["ln_eps"])


def _pre_ln_layer(net, name, h, batch, seq, cfg, act, std, mask=None, fused=False):
    a = net.layernorm(f"{name}.ln1", h, cfg["d_model"], cfg["ln_eps"])
    a = _mha(net, f"{name}.attn", a, batch, seq, cfg, std, mask, fused)
    h = net.p.elementwise(f"{name}.res1", "add", a, h, out=f"{name}.res1.out")
    m = net.layernorm(f"{name}.ln2", h, cfg["d_model"], cfg["ln_eps"])
    f = _ffn(net, f"{name}.mlp", m, cfg["d_model"], cfg["d_ff"], act, std)
    return net.p.elementwise(f"{name}.res2", "add", f, h, out=f"{name}.res2.out")


# --------------------------------------------------------------------------- BERT-base

def build_bert(batch: int, seq: int, cfg: dict = BERT_BASE) -> tuple[Net, str]:
    """Return (Net, output tensor) of the BERT encoder: embeddings (word + position + token
    type, LayerNorm) and ``layers`` post-LN encoder layers (GELU, erf form); output
    (batch, seq, d_model). Inputs: ids, token_type (batch, seq)."""
    net = Net(f"bert-base b{batch} s{seq}")
    p, d = net.p, cfg["d_model"]
    ids = net.input("ids", (batch, seq), ("ids", cfg["vocab"]))
    tt = net.input("token_type", (batch, seq), ("ids", cfg["type_vocab"]))
    we = net.param("emb.word", (cfg["vocab"], d), ("normal", STD))
    pe = net.param("emb.pos", (cfg["max_positions"], d), ("normal", STD))
    te = net.param("emb.type", (cfg["type_vocab"], d), ("normal", STD))
    h = p.vector("emb.word.gather", "gather", we, ids, out="emb.w")
    pos = p.slice("emb.pos.slice", pe, 0, 0, seq, out="emb.p")
    h = p.elementwise("emb.add_pos", "add", h, pos, out="emb.wp")
    t = p.vector("emb.type.gather", "gather", te, tt, out="emb.t")
    h = p.elementwise("emb.add_type", "add", h, t, out="emb.sum")
    h = net.layernorm("emb.ln", h, d, cfg["ln_eps"])
    for i in range(cfg["layers"]):
        h = _post_ln_layer(net, f"l{i}", h, batch, seq, cfg, "gelu", STD)
    return net, h


def bert_numpy(w: dict, x: dict, mm, cfg: dict = BERT_BASE) -> np.ndarray:
    """Return the BERT encoder's output in numpy float32 (the twin of build_bert)."""
    eps = cfg["ln_eps"]
    seq = x["ids"].shape[1]
    h = w["emb.word"][x["ids"]] + w["emb.pos"][:seq] + w["emb.type"][x["token_type"]]
    h = R.layernorm(h, w["emb.ln.g"], w["emb.ln.b"], eps)
    for i in range(cfg["layers"]):
        n = f"l{i}"
        a = _attn_numpy(w, f"{n}.attn", h, cfg, mm)
        h = R.layernorm(a + h, w[f"{n}.ln1.g"], w[f"{n}.ln1.b"], eps)
        f = _ffn_numpy(w, f"{n}.ffn", h, mm, R.gelu)
        h = R.layernorm(f + h, w[f"{n}.ln2.g"], w[f"{n}.ln2.b"], eps)
    return h


def _lin(w, name, x, mm):
    return R.linear(x, w[f"{name}.W"], w.get(f"{name}.b"), mm)


def _ffn_numpy(w, name, x, mm, act):
    return _lin(w, f"{name}.fc2", act(_lin(w, f"{name}.fc1", x, mm)), mm)


def _attn_numpy(w, name, x, cfg, mm, mask=None, fused=False):
    d = cfg["d_model"]
    if fused:
        qkv = _lin(w, f"{name}.qkv", x, mm)
        q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
    else:
        q, k, v = (_lin(w, f"{name}.{t}", x, mm) for t in "qkv")
    ctx = R.attention(q, k, v, cfg["heads"], mm, mask)
    return _lin(w, f"{name}.o", ctx, mm)


# --------------------------------------------------------------------------- GPT-2 small

def build_gpt2(batch: int, seq: int, cfg: dict = GPT2_SMALL) -> tuple[Net, str]:
    """Return (Net, output) of GPT-2's forward pass: token + position embeddings, ``layers``
    pre-LN blocks with causal attention (fused q/k/v projection, GELU tanh form), the final
    LayerNorm and the LM head tied to the token embedding; output logits (batch, seq, vocab).
    Inputs: ids (batch, seq), mask (seq, seq) = 1 above the diagonal (future positions)."""
    net = Net(f"gpt2-small b{batch} s{seq}")
    p, d = net.p, cfg["d_model"]
    ids = net.input("ids", (batch, seq), ("ids", cfg["vocab"]))
    mask = net.input("mask", (seq, seq), ("causal_mask",))
    wte = net.param("wte", (cfg["vocab"], d), ("normal", STD))
    wpe = net.param("wpe", (cfg["max_positions"], d), ("normal", 0.01))
    h = p.vector("emb.gather", "gather", wte, ids, out="emb.tok")
    pos = p.slice("emb.pos.slice", wpe, 0, 0, seq, out="emb.pos")
    h = p.elementwise("emb.add", "add", h, pos, out="emb.out")
    for i in range(cfg["layers"]):
        h = _pre_ln_layer(net, f"h{i}", h, batch, seq, cfg, "gelu_tanh", STD, mask, fused=True)
    h = net.layernorm("ln_f", h, d, cfg["ln_eps"])
    return net, p.matmul("lm_head", h, wte, out="logits", transpose_b=True)


def gpt2_numpy(w: dict, x: dict, mm, cfg: dict = GPT2_SMALL) -> np.ndarray:
    """Return GPT-2's logits in numpy float32 (the twin of build_gpt2)."""
    eps = cfg["ln_eps"]
    seq = x["ids"].shape[1]
    h = w["wte"][x["ids"]] + w["wpe"][:seq]
    mask = x["mask"] != 0
    for i in range(cfg["layers"]):
        n = f"h{i}"
        a = R.layernorm(h, w[f"{n}.ln1.g"], w[f"{n}.ln1.b"], eps)
        h = _attn_numpy(w, f"{n}.attn", a, cfg, mm, mask, fused=True) + h
        m = R.layernorm(h, w[f"{n}.ln2.g"], w[f"{n}.ln2.b"], eps)
        h = _ffn_numpy(w, f"{n}.mlp", m, mm, R.gelu_tanh) + h
    h = R.layernorm(h, w["ln_f.g"], w["ln_f.b"], eps)
    return mm(h, w["wte"].T)


# --------------------------------------------------------------------------- ViT-B/16

def build_vit(batch: int, image: int, cfg: dict = VIT_B16) -> tuple[Net, str]:
    """Return (Net, output) of ViT: a patch x patch stride-patch convolution (on the array),
    the class token and position embeddings, ``layers`` pre-LN blocks (GELU erf form), the final
    LayerNorm and the head on the class token; output (batch, classes). Input: x (batch, 3,
    image, image)."""
    net = Net(f"vit-b16 b{batch} i{image}")
    p, d, ps = net.p, cfg["d_model"], cfg["patch"]
    n_patch = (image // ps) ** 2
    seq = n_patch + 1
    x = net.input("x", (batch, cfg["channels"], image, image))
    wp = net.param("patch.W", (d, cfg["channels"], ps, ps), ("normal", STD))
    bp = net.param("patch.b", (d, 1, 1), ("normal", STD))
    t = p.conv2d("patch.conv", x, wp, stride=ps, out="patch.conv.out")
    t = p.elementwise("patch.bias", "add", t, bp, out="patch.out")
    t = p.reshape("patch.flatten", t, (batch, d, n_patch), out="patch.flat")
    t = p.permute("patch.tokens", t, (0, 2, 1), out="patch.tok")
    cls = net.param("cls", (1, 1, d), ("normal", STD))
    cls_b = p.vector("cls.expand", "broadcast", cls, out="cls.b", shape=(batch, 1, d))
    t = p.vector("tokens.concat", "concat", cls_b, t, out="tokens", axis=1)
    pos = net.param("pos", (1, seq, d), ("normal", STD))
    h = p.elementwise("tokens.pos", "add", t, pos, out="tokens.pos.out")
    for i in range(cfg["layers"]):
        h = _pre_ln_layer(net, f"b{i}", h, batch, seq, cfg, "gelu", STD)
    h = net.layernorm("ln", h, d, cfg["ln_eps"])
    c = p.slice("cls.take", h, 1, 0, 1, out="cls.tok")
    c = p.reshape("cls.flat", c, (batch, d), out="cls.flat.out")
    return net, net.linear("head", c, d, cfg["classes"], std=STD)


def vit_numpy(w: dict, x: dict, mm, cfg: dict = VIT_B16) -> np.ndarray:
    """Return ViT's logits in numpy float32 (the twin of build_vit)."""
    eps, ps = cfg["ln_eps"], cfg["patch"]
    img = x["x"]
    bsz = img.shape[0]
    t = R.conv2d(img, w["patch.W"], ps, 0, mm) + w["patch.b"]
    t = t.reshape(bsz, cfg["d_model"], -1).transpose(0, 2, 1)
    cls = np.broadcast_to(w["cls"], (bsz, 1, cfg["d_model"]))
    h = np.concatenate([cls, t], axis=1) + w["pos"]
    for i in range(cfg["layers"]):
        n = f"b{i}"
        a = R.layernorm(h, w[f"{n}.ln1.g"], w[f"{n}.ln1.b"], eps)
        h = _attn_numpy(w, f"{n}.attn", a, cfg, mm) + h
        m = R.layernorm(h, w[f"{n}.ln2.g"], w[f"{n}.ln2.b"], eps)
        h = _ffn_numpy(w, f"{n}.mlp", m, mm, R.gelu) + h
    h = R.layernorm(h, w["ln.g"], w["ln.b"], eps)
    return _lin(w, "head", h[:, 0], mm)


# --------------------------------------------------------------------------- tiny encoder

def build_tiny(batch: int, seq: int, cfg: dict = TINY) -> tuple[Net, str]:
    """Return (Net, output) of a small encoder as torch.nn.TransformerEncoderLayer builds it
    (post-LN, ReLU feed-forward, no dropout), ``layers`` deep, then the mean over the sequence
    and a linear head; output (batch, classes). Input: x (batch, seq, d_model)."""
    net = Net(f"tiny-transformer b{batch} s{seq}")
    p, d = net.p, cfg["d_model"]
    h = net.input("x", (batch, seq, d))
    for i in range(cfg["layers"]):
        h = _post_ln_layer(net, f"l{i}", h, batch, seq, cfg, "relu", None)
    m = p.reduce("pool", "mean", h, axis=1, keepdims=False, out="pool.out")
    return net, net.linear("head", m, d, cfg["classes"])


def tiny_numpy(w: dict, x: dict, mm, cfg: dict = TINY) -> np.ndarray:
    """Return the tiny encoder's logits in numpy float32 (the twin of build_tiny)."""
    eps = cfg["ln_eps"]
    h = x["x"]
    for i in range(cfg["layers"]):
        n = f"l{i}"
        a = _attn_numpy(w, f"{n}.attn", h, cfg, mm)
        h = R.layernorm(a + h, w[f"{n}.ln1.g"], w[f"{n}.ln1.b"], eps)
        f = _ffn_numpy(w, f"{n}.ffn", h, mm, lambda v: np.maximum(v, np.float32(0)))
        h = R.layernorm(f + h, w[f"{n}.ln2.g"], w[f"{n}.ln2.b"], eps)
    return _lin(w, "head", h.mean(1, dtype=np.float32), mm)


def scaled(cfg: dict, **changes) -> dict:
    """Return a copy of a hyperparameter table with some entries changed (for small tests)."""
    out = dict(cfg)
    out.update(changes)
    if out["d_model"] % out["heads"]:
        raise ValueError("d_model must divide by heads")
    return out

