"""Training zoo models: one step equals PyTorch (Adam, AdamW, SGD with momentum; cross-entropy
and MSE), the backward rules through every op kind the zoo uses, and the loss falls."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import CONFIGS
from simulator.kernels import lstm as L, transformer as T
from simulator.kernels.zoo import build_zoo
from simulator.kernels.zoo_train import step_program, target_for, train_zoo
from simulator import WorkloadError, load_chip
from simulator.core.autodiff import Optimizer
from simulator.core.engine import run

FP32 = load_chip(CONFIGS / "tpu-v4-mxu.yaml", {"dtype": "fp32"})

CASES = {  # name -> (sizes, loss)
    "tiny-transformer": (dict(batch=4, seq=6), "cross_entropy"),
    "small-cnn": (dict(batch=4, image=8), "cross_entropy"),
    "gpt2-small": (dict(batch=2, seq=6, cfg=T.scaled(T.GPT2_SMALL, layers=2, d_model=32, heads=4,
                                                      d_ff=64, vocab=41, max_positions=8)),
                   "cross_entropy"),
    "vit-b16": (dict(batch=2, image=32, cfg=T.scaled(T.VIT_B16, layers=1, d_model=32, heads=4,
                                                      d_ff=64, classes=5)), "cross_entropy"),
    "bert-base": (dict(batch=2, seq=5, cfg=T.scaled(T.BERT_BASE, layers=1, d_model=32, heads=4,
                                                     d_ff=64, vocab=31, max_positions=8)), "mse"),
    "lstm": (dict(batch=2, seq=3, cfg=dict(L.LSTM_SPEECH, input=6, hidden=8)), "mse"),
}


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30))


def torch_forward(torch, name, m, w):
    """The zoo networks in torch.nn.functional over a dict of (leaf) tensors."""
    F = torch.nn.functional
    cfg = m.cfg_kw.get("cfg") or {"tiny-transformer": T.TINY}.get(name)

    def lin(n, x):
        return F.linear(x, w[f"{n}.W"].T, w.get(f"{n}.b"))

    def ln(n, x):
        return F.layer_norm(x, x.shape[-1:], w[f"{n}.g"], w[f"{n}.b"], cfg["ln_eps"])

    def mha(n, x, causal=False, fused=False):
        b, s, d = x.shape
        h = cfg["heads"]
        q, k, v = lin(f"{n}.qkv", x).split(d, -1) if fused else (lin(f"{n}.{t}", x) for t in "qkv")
        q, k, v = (t.reshape(b, s, h, d // h).transpose(1, 2) for t in (q, k, v))
        sc = q @ k.transpose(-1, -2) / (d // h) ** 0.5
        if causal:
            sc = sc.masked_fill(torch.triu(torch.ones(s, s, dtype=torch.bool), 1), -1e9)
        o = torch.softmax(sc, -1) @ v
        return lin(f"{n}.o", o.transpose(1, 2).reshape(b, s, d))

    if name in ("tiny-transformer", "bert-base"):
        if name == "bert-base":
            ids = w["ids"]
            h = ln("emb.ln", F.embedding(ids, w["emb.word"]) + w["emb.pos"][:ids.shape[1]]
                   + F.embedding(w["token_type"], w["emb.type"]))
        else:
            h = w["x"]
        act = F.relu if name == "tiny-transformer" else F.gelu
        for i in range(cfg["layers"]):
            h = ln(f"l{i}.ln1", mha(f"l{i}.attn", h) + h)
            h = ln(f"l{i}.ln2", lin(f"l{i}.ffn.fc2", act(lin(f"l{i}.ffn.fc1", h))) + h)
        return lin("head", h.mean(1)) if name == "tiny-transformer" else h
    if name in ("gpt2-small", "vit-b16"):
        gpt = name == "gpt2-small"
        if gpt:
            h = F.embedding(w["ids"], w["wte"]) + w["wpe"][:w["ids"].shape[1]]
        else:
            t = F.conv2d(w["x"], w["patch.W"], w["patch.b"].reshape(-1), stride=16)
            t = t.flatten(2).transpose(1, 2)
            h = torch.cat([w["cls"].expand(t.shape[0], 1, -1), t], 1) + w["pos"]
        pre = "h" if gpt else "b"
        for i in range(cfg["layers"]):
            h = mha(f"{pre}{i}.attn", ln(f"{pre}{i}.ln1", h), causal=gpt, fused=gpt) + h
            a = lin(f"{pre}{i}.mlp.fc1", ln(f"{pre}{i}.ln2", h))
            h = lin(f"{pre}{i}.mlp.fc2", F.gelu(a, approximate="tanh" if gpt else "none")) + h
        return ln("ln_f", h) @ w["wte"].T if gpt else lin("head", ln("ln", h)[:, 0])
    if name == "small-cnn":
        h = F.relu(F.conv2d(w["x"], w["conv1.W"], w["conv1.b"].reshape(-1), padding=1))
        h = F.max_pool2d(h, 2, 2)
        h = F.relu(F.conv2d(h, w["conv2.W"], w["conv2.b"].reshape(-1), padding=1))
        return lin("fc", h.mean((2, 3)))
    if name == "lstm":
        x = w["x"]
        hd = cfg["hidden"]
        for layer in range(cfg["layers"]):
            n = f"lstm{layer}"
            xp = x @ w[f"{n}.W_ih"] + w[f"{n}.b"]
            h = c = None
            outs = []
            for t in range(x.shape[1]):
                g = xp[:, t] if h is None else xp[:, t] + h @ w[f"{n}.W_hh"]
                i_, f_, g_, o_ = g.split(hd, -1)
                ig = torch.sigmoid(i_) * torch.tanh(g_)
                c = ig if c is None else torch.sigmoid(f_) * c + ig
                h = torch.sigmoid(o_) * torch.tanh(c)
                outs.append(h[:, None])
            x = torch.cat(outs, 1)
        return x
    raise AssertionError(name)


def torch_step(name, m, vals, target, loss, opt):
    torch = pytest.importorskip("torch")
    params = {k: torch.tensor(vals[k], requires_grad=True) for k in m.net.params}
    data = {k: torch.from_numpy(np.asarray(v)) for k, v in vals.items() if k not in params}
    y = torch_forward(torch, name, m, {**params, **data})
    t = torch.from_numpy(target)
    if loss == "cross_entropy":
        lo = torch.nn.functional.cross_entropy(y.reshape(-1, y.shape[-1]),
                                               t.reshape(-1, t.shape[-1]).argmax(-1))
    else:
        lo = torch.nn.functional.mse_loss(y, t)
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[opt.kind]
    kw = dict(lr=opt.lr, weight_decay=opt.weight_decay)
    if opt.kind == "sgd":
        kw["momentum"] = opt.momentum
    else:
        kw.update(betas=opt.betas, eps=opt.eps)
    o = kind(list(params.values()), **kw)
    o.zero_grad()
    lo.backward()
    o.step()
    return float(lo.detach()), {k: v.detach().numpy() for k, v in params.items()}


OPTS = {"adam": Optimizer("adam", 1e-3), "adamw": Optimizer("adamw", 1e-3, weight_decay=0.1),
        "sgd": Optimizer("sgd", 0.1, momentum=0.9, weight_decay=0.01)}


@pytest.mark.parametrize("opt", sorted(OPTS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_one_step_equals_pytorch(name, opt):
    pytest.importorskip("torch")
    sizes, loss = CASES[name]
    m = build_zoo(f"zoo:{name}", **sizes)
    vals = m.inputs(seed=1)
    target = target_for(m, loss, 1)
    o = OPTS[opt]
    rep = run(FP32, step_program(m, loss, o), {**vals, "target": target,
                                               **{f"{k}.{s}": np.zeros_like(vals[k])
                                                  for k in m.net.params for s in o.state()}})
    want_loss, want = torch_step(name, m, vals, target, loss, o)
    assert abs(float(rep.values["loss"].reshape(-1)[0]) - want_loss) <= 1e-5 * abs(want_loss)
    for k in m.net.params:
        got, ref = rep.values[f"{k}.new"], want[k]
        if opt != "sgd" and (k.endswith(".k.b") or k.endswith(".qkv.b")):
            # softmax ignores a shift shared by a row of scores, so the key bias has a zero
            # gradient in exact arithmetic: Adam scales both sides' rounding noise up to +-lr
            keep = np.ones(got.shape, bool)
            d = got.shape[0] // 3
            keep[(slice(None) if k.endswith(".k.b") else slice(d, 2 * d))] = False
            got, ref = got[keep], ref[keep]
            if not got.size:
                continue
        assert rel(got, ref) < 1e-4, k
        moved = want[k] - vals[k]
        if np.linalg.norm(moved) > 0 and opt == "sgd":  # the update itself, not just the weights
            assert rel(got - vals[k], moved) < 1e-4, k


@pytest.mark.parametrize("name", ["tiny-transformer", "small-cnn"])
def test_fifty_adam_steps_reduce_the_loss(name):
    sizes, loss = CASES[name]
    res = train_zoo(FP32, build_zoo(f"zoo:{name}", **sizes), 50, Optimizer("adam", 1e-2))
    assert len(res.losses) == 50 and res.losses[-1] < 0.2 * res.losses[0]
    assert all(np.isfinite(res.losses))


def test_timing_only_training_steps_of_big_models():
    m = build_zoo("zoo:gpt2-small", seq=128)
    rep = run(FP32, step_program(m, "cross_entropy", Optimizer("adamw", 1e-4)))
    fwd = run(FP32, m.program)
    assert rep.macs == pytest.approx(3 * fwd.macs, rel=0.02)  # forward + two GEMMs per GEMM
    assert rep.total_cycles > 2 * fwd.total_cycles


def test_models_without_a_backward_rule_say_so():
    m = build_zoo("zoo:resnet18", image=32)  # inference BatchNorm
    with pytest.raises(WorkloadError, match="no backward rule for batchnorm"):
        step_program(m, "cross_entropy", Optimizer())
