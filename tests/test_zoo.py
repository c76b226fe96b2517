"""The model zoo: every network's chip output against its numpy twin and against the same
network written in PyTorch; ResNet-18's shapes and per-GEMM cycles; bad names and sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import CONFIGS
from simulator.kernels import lstm as L, transformer as T
from simulator.kernels.zoo import MODELS, build_zoo
from simulator import WorkloadError, load_chip, simulate_gemm
from simulator.core.engine import run
from simulator.core.program import Conv2d, MatMul

FP32 = load_chip(CONFIGS / "tpu-v4-mxu.yaml", {"dtype": "fp32"})

# Small variants of the big tables (same builders, fewer and narrower layers) keep the tests fast;
# the full-size shapes are checked timing-only below.
SMALL = {
    "bert-base": dict(seq=12, cfg=T.scaled(T.BERT_BASE, layers=2, d_model=48, heads=4, d_ff=96,
                                           vocab=97, max_positions=20)),
    "gpt2-small": dict(seq=12, cfg=T.scaled(T.GPT2_SMALL, layers=2, d_model=48, heads=4, d_ff=96,
                                            vocab=97, max_positions=20)),
    "vit-b16": dict(image=32, cfg=T.scaled(T.VIT_B16, layers=2, d_model=48, heads=4, d_ff=96,
                                           classes=10)),
    "lstm": dict(seq=6, cfg=dict(L.LSTM_SPEECH, input=10, hidden=24)),
    "tiny-transformer": dict(seq=10),
    "small-cnn": dict(image=12),
    "resnet18": dict(image=32),
}


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def small(name, batch=2):
    m = build_zoo(f"zoo:{name}", batch=batch, **SMALL[name])
    return m, m.inputs(seed=3)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_fp32_output_equals_numpy_twin(name):
    m, vals = small(name)
    got = run(FP32, m.program, vals).values[m.output]
    want = m.numpy(vals)
    assert got.shape == want.shape and np.all(np.isfinite(got))
    assert rel(got, want) < 1e-5


@pytest.mark.parametrize("dtype, config", [("bf16", "tpu-v4-mxu"), ("int8", "gemmini"),
                                           ("fp16", "tpu-v4-mxu")])
@pytest.mark.parametrize("name", ["tiny-transformer", "small-cnn", "gpt2-small"])
def test_low_precision_chips_equal_numpy_with_the_same_rounding(name, dtype, config):
    # results leave as accumulators, as the twin keeps them (output.dtype: test_output)
    chip = load_chip(CONFIGS / f"{config}.yaml", {"dtype": dtype, "output.dtype": "accumulator"})
    m, vals = small(name)
    got = run(chip, m.program, vals).values[m.output]
    want = m.numpy(vals, dtype)
    # The chip and the twin round the same operands the same way; only fp32 summation order
    # differs, which can flip one operand's rounding to the narrow format in a later layer. The
    # twin's order is numpy's BLAS's: with numpy 2.4.6 (OpenBLAS 0.3.31) the fp16 twins differ by
    # 1.1e-4 and 1.3e-4, a few flips of fp16's 2^-11 rounding step; the bound is half of that
    # step for fp16 and stays 1e-4 (under a tenth of bf16's 2^-8) for the others.
    err = rel(got, want)
    assert err < (2.0 ** -12 if dtype == "fp16" else 1e-4)
    # the rounding is really there: the chip is much nearer the rounded twin than the fp32 one
    # (fp16 rounds 8x finer than bf16, so its distance to the fp32 twin is smaller: 2.9e-4 and
    # 4.2e-4 here, against 1.1e-4 and 1.3e-4 to the fp16 twin)
    assert err * (2 if dtype == "fp16" else 5) < rel(got, m.numpy(vals, "fp32"))


def test_every_model_has_a_small_variant_under_test():
    from test_zoo_cnn import CNN_SMALL  # ResNet-50, MobileNetV2, EfficientNet-B0 run there
    assert not set(SMALL) & set(CNN_SMALL)
    assert set(SMALL) | set(CNN_SMALL) == set(MODELS)


def test_resnet18_has_torchvision_shapes_and_each_gemm_the_cycles_of_the_gemm_alone():
    chip = load_chip(CONFIGS / "scalesim-compat.yaml")
    m = build_zoo("zoo:resnet18")
    p = m.program
    assert p.shapes["conv1.out"] == (1, 64, 112, 112)
    assert p.shapes["maxpool.out"] == (1, 64, 56, 56)
    for stage, size in zip((1, 2, 3, 4), (56, 28, 14, 7)):
        assert p.shapes[f"layer{stage}.1.relu2.out"][2:] == (size, size)
    assert p.shapes[m.output] == (1, 1000)
    rep = run(chip, p)
    rows = {r.name: r for r in rep.ops}
    arrays = [op for op in p.ops if isinstance(op, (Conv2d, MatMul))]
    assert len(arrays) == 21  # 20 convolutions (3 of them 1x1 projections) + fc
    assert rows["conv1"].shape == (112 * 112, 64, 7 * 7 * 3)
    for op in arrays:
        mm, nn, kk = p.gemm_shape(op)
        assert rows[op.name].compute_cycles == simulate_gemm(chip, shape=(mm, nn, kk)).compute_cycles
    macs = sum(math.prod(rows[op.name].shape) for op in arrays)
    assert macs == 1_814_073_344  # ResNet-18's 1.82 GMACs at 224 x 224


@pytest.mark.parametrize("name, kw, ops_min", [
    ("bert-base", dict(batch=8, seq=128), 300), ("gpt2-small", dict(seq=1024), 300),
    ("vit-b16", {}, 300), ("lstm", dict(seq=20), 500)])
def test_full_size_models_time_and_have_the_published_sizes(name, kw, ops_min):
    m = build_zoo(f"zoo:{name}", **kw)
    params = sum(math.prod(s) for s, _ in m.net.params.values())
    want = {"bert-base": (108_000_000, 110_000_000), "gpt2-small": (124_000_000, 125_000_000),
            "vit-b16": (86_000_000, 87_000_000), "lstm": (12_900_000, 13_000_000)}[name]
    assert want[0] <= params <= want[1], params
    rep = run(FP32, m.program)
    assert len(rep.ops) >= ops_min and rep.total_cycles > 0 and rep.macs > 0


@pytest.mark.parametrize("text, kw, match", [
    ("zoo:alexnet", {}, "unknown zoo model 'alexnet'"),
    ("zoo:bert-base", {"seq": 0}, "seq: must be in"),
    ("zoo:bert-base", {"seq": 513}, "seq: must be in"),
    ("zoo:bert-base", {"image": 224}, "takes no --image"),
    ("zoo:vit-b16", {"image": 100}, "multiple of 16"),
    ("zoo:resnet18", {"batch": -1}, "batch: must be in"),
])
def test_bad_names_and_sizes_are_one_line(text, kw, match):
    with pytest.raises(WorkloadError, match=match) as err:
        build_zoo(text, **kw)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- PyTorch


def torch_reference(name, m, vals):
    """The same networks written with torch (modules where torch has them), fp32."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    w = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in vals.items()}
    cfg = m.cfg_kw.get("cfg")

    def lin(n, x):
        return F.linear(x, w[f"{n}.W"].T, w.get(f"{n}.b"))

    def ln(n, x, eps):
        return F.layer_norm(x, x.shape[-1:], w[f"{n}.g"], w[f"{n}.b"], eps)

    def mha(n, x, heads, mask=None, fused=False):
        b, s, d = x.shape
        if fused:
            q, k, v = lin(f"{n}.qkv", x).split(d, dim=-1)
        else:
            q, k, v = (lin(f"{n}.{t}", x) for t in "qkv")
        q, k, v = (t.reshape(b, s, heads, d // heads).transpose(1, 2) for t in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=mask is not None)
        return lin(f"{n}.o", o.transpose(1, 2).reshape(b, s, d))

    with torch.no_grad():
        if name == "bert-base":
            ids, tt = w["ids"], w["token_type"]
            h = F.embedding(ids, w["emb.word"]) + w["emb.pos"][:ids.shape[1]] + \
                F.embedding(tt, w["emb.type"])
            h = ln("emb.ln", h, cfg["ln_eps"])
            for i in range(cfg["layers"]):
                h = ln(f"l{i}.ln1", mha(f"l{i}.attn", h, cfg["heads"]) + h, cfg["ln_eps"])
                f = lin(f"l{i}.ffn.fc2", F.gelu(lin(f"l{i}.ffn.fc1", h)))
                h = ln(f"l{i}.ln2", f + h, cfg["ln_eps"])
            return h.numpy()
        if name in ("gpt2-small", "vit-b16"):
            gpt = name == "gpt2-small"
            if gpt:
                ids = w["ids"]
                h = F.embedding(ids, w["wte"]) + w["wpe"][:ids.shape[1]]
            else:
                t = F.conv2d(w["x"], w["patch.W"], w["patch.b"].reshape(-1), stride=16)
                t = t.flatten(2).transpose(1, 2)
                h = torch.cat([w["cls"].expand(t.shape[0], 1, -1), t], 1) + w["pos"]
            pre = "h" if gpt else "b"
            for i in range(cfg["layers"]):
                a = ln(f"{pre}{i}.ln1", h, cfg["ln_eps"])
                h = mha(f"{pre}{i}.attn", a, cfg["heads"], mask=gpt or None, fused=gpt) + h
                a = ln(f"{pre}{i}.ln2", h, cfg["ln_eps"])
                act = F.gelu(lin(f"{pre}{i}.mlp.fc1", a), approximate="tanh" if gpt else "none")
                h = lin(f"{pre}{i}.mlp.fc2", act) + h
            if gpt:
                return (ln("ln_f", h, cfg["ln_eps"]) @ w["wte"].T).numpy()
            return lin("head", ln("ln", h, cfg["ln_eps"])[:, 0]).numpy()
        if name == "lstm":
            net = torch.nn.LSTM(cfg["input"], cfg["hidden"], cfg["layers"], batch_first=True)
            for i in range(cfg["layers"]):
                getattr(net, f"weight_ih_l{i}").copy_(w[f"lstm{i}.W_ih"].T)
                getattr(net, f"weight_hh_l{i}").copy_(w[f"lstm{i}.W_hh"].T)
                getattr(net, f"bias_ih_l{i}").copy_(w[f"lstm{i}.b"])
                getattr(net, f"bias_hh_l{i}").zero_()
            return net(w["x"])[0].numpy()
        if name == "tiny-transformer":
            return torch_tiny(torch, w, T.TINY)(w["x"]).numpy()
        if name == "small-cnn":
            h = F.relu(F.conv2d(w["x"], w["conv1.W"], w["conv1.b"].reshape(-1), padding=1))
            h = F.max_pool2d(h, 2, 2)
            h = F.relu(F.conv2d(h, w["conv2.W"], w["conv2.b"].reshape(-1), padding=1))
            return lin("fc", h.mean((2, 3))).numpy()
        if name == "resnet18":
            def bn(n, x):
                return F.batch_norm(x, w[f"{n}.mean"], w[f"{n}.var"], w[f"{n}.g"], w[f"{n}.b"],
                                    False, 0.0, 1e-5)
            h = F.relu(bn("bn1", F.conv2d(w["x"], w["conv1.W"], stride=2, padding=3)))
            h = F.max_pool2d(h, 3, 2, 1)
            cin = 64
            for s, cout in enumerate((64, 128, 256, 512)):
                for b in range(2):
                    st = 2 if s and not b else 1
                    n = f"layer{s + 1}.{b}"
                    o = F.relu(bn(f"{n}.bn1", F.conv2d(h, w[f"{n}.conv1.W"], stride=st, padding=1)))
                    o = bn(f"{n}.bn2", F.conv2d(o, w[f"{n}.conv2.W"], padding=1))
                    sc = bn(f"{n}.down.bn", F.conv2d(h, w[f"{n}.down.conv.W"], stride=st)) \
                        if st != 1 or cin != cout else h
                    h = F.relu(o + sc)
                    cin = cout
            return lin("fc", h.mean((2, 3))).numpy()
    raise AssertionError(name)


def torch_tiny(torch, w, cfg):
    """torch.nn.TransformerEncoder layers with our weights, mean pool and head, as a callable."""
    d = cfg["d_model"]
    layers = []
    for i in range(cfg["layers"]):
        layer = torch.nn.TransformerEncoderLayer(d, cfg["heads"], cfg["d_ff"], dropout=0.0,
                                                 batch_first=True)
        n = f"l{i}"
        with torch.no_grad():
            layer.self_attn.in_proj_weight.copy_(torch.cat([w[f"{n}.attn.{t}.W"].T for t in "qkv"]))
            layer.self_attn.in_proj_bias.copy_(torch.cat([w[f"{n}.attn.{t}.b"] for t in "qkv"]))
            layer.self_attn.out_proj.weight.copy_(w[f"{n}.attn.o.W"].T)
            layer.self_attn.out_proj.bias.copy_(w[f"{n}.attn.o.b"])
            layer.linear1.weight.copy_(w[f"{n}.ffn.fc1.W"].T)
            layer.linear1.bias.copy_(w[f"{n}.ffn.fc1.b"])
            layer.linear2.weight.copy_(w[f"{n}.ffn.fc2.W"].T)
            layer.linear2.bias.copy_(w[f"{n}.ffn.fc2.b"])
            for j in (1, 2):
                getattr(layer, f"norm{j}").weight.copy_(w[f"{n}.ln{j}.g"])
                getattr(layer, f"norm{j}").bias.copy_(w[f"{n}.ln{j}.b"])
        layer.eval()
        layers.append(layer)

    def forward(x):
        with torch.no_grad():
            h = x
            for layer in layers:
                h = layer(h)
            return torch.nn.functional.linear(h.mean(1), w["head.W"].T, w["head.b"])
    return forward


@pytest.mark.parametrize("name", sorted(SMALL))
def test_fp32_output_equals_pytorch(name):
    pytest.importorskip("torch")
    m, vals = small(name)
    got = run(FP32, m.program, vals).values[m.output]
    assert rel(got, torch_reference(name, m, vals)) < 1e-4
