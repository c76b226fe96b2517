"""simulator.nn (`asic`) on real layers: every new layer's forward and backward equal PyTorch's
(hypothesis over small random shapes), a small transformer LM trained 50 steps with Adam equals
PyTorch's loop, ``asic.from_torch`` keeps weights, forward and Adam training, Dropout's mask is
applied identically forward and backward, and bad use is a one-line WorkloadError.

"Equal to 1e-4" is relative to the tensor's scale: max|asic - torch| <= 1e-4 * max|torch|
(elementwise relative error is meaningless for entries that pass through zero)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CONFIGS, ROOT
from simulator import WorkloadError, load_chip

torch = pytest.importorskip("torch")
import simulator.nn as asic  # noqa: E402

CHIP = load_chip(CONFIGS / "tpu-v4-mxu.yaml", {"dtype": "fp32"})
SETTINGS = settings(max_examples=8, deadline=None, derandomize=True)
F32 = np.float32


@pytest.fixture(autouse=True)
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only contend on a shared machine
    yield
    torch.set_num_threads(old)


def fresh(seed: int = 0) -> None:
    asic.use_chip(CHIP)
    asic.manual_seed(seed)


def close(a, t, tol=1e-4, what=""):
    a = np.asarray(a, np.float64)
    t = np.asarray(t.detach().numpy() if hasattr(t, "detach") else t, np.float64)
    assert a.shape == t.shape, (what, a.shape, t.shape)
    scale = max(float(np.max(np.abs(t))) if t.size else 0.0, 1e-6)
    err = float(np.max(np.abs(a - t))) if t.size else 0.0
    assert err <= tol * scale, f"{what}: max error {err:.3g} vs scale {scale:.3g}"


def torch_layout(model: asic.Model, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return {name: value} with asic Linear weights (in, out) and biases (1, out) in PyTorch's
    (out, in) and (out,) layouts."""
    linear = {name for name, m in model.named_modules() if isinstance(m, asic.Linear)}
    out = {}
    for k, v in values.items():
        owner, _, leaf = k.rpartition(".")
        if owner in linear or (owner == "" and isinstance(model, asic.Linear)):
            v = v.T if leaf == "weight" else v.reshape(-1)
        out[k] = np.asarray(v)
    return out


def grads_of(model: asic.Model) -> dict[str, np.ndarray]:
    return torch_layout(model, {k: p.grad for k, p in model.named_parameters()
                                if p.grad is not None})


def check(tlayer, xs, call=None, tol=1e-4, seed=0):
    """Run the asic twin (from_torch) and the torch layer on inputs ``xs`` with an MSE loss
    against a random target; compare the output, the inputs' and the parameters' gradients."""
    call = call or (lambda m, *a: m(*a))
    fresh(seed)
    layer = asic.from_torch(tlayer)
    ins = [asic.Parameter(x) for x in xs]
    y = call(layer, *ins)
    # its own stream: a target equal to the input makes some true gradients vanish
    target = np.random.default_rng([seed, 7]).standard_normal(y.shape).astype(F32)
    asic.MSELoss()(y, target).backward()
    tins = [torch.tensor(x, requires_grad=True) for x in xs]
    ty = call(tlayer, *tins)
    torch.nn.functional.mse_loss(ty, torch.from_numpy(target)).backward()
    close(y.value, ty, tol, "output")
    for i, (a, t) in enumerate(zip(ins, tins)):
        close(a.grad, t.grad, tol, f"input {i} grad")
    mine = grads_of(layer)
    for name, p in tlayer.named_parameters():
        close(mine[name], p.grad, tol, f"{name} grad")
    return layer, y


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(F32)


# --------------------------------------------------------------------------- layers vs PyTorch

@SETTINGS
@given(b=st.integers(1, 3), s=st.integers(1, 5), d=st.integers(4, 9),
       approx=st.sampled_from(["none", "tanh"]), seed=st.integers(0, 99))
def test_gelu_layernorm_softmax_match_pytorch(b, s, d, approx, seed):
    # d >= 4: at d = 2 layer norm maps x to +-1, its input gradient is pure cancellation
    rng = np.random.default_rng(seed)
    x = randn(rng, b, s, d)
    check(torch.nn.GELU(approximate=approx), [x])
    ln = torch.nn.LayerNorm(d)
    with torch.no_grad():
        ln.weight.copy_(torch.from_numpy(randn(rng, d)))
        ln.bias.copy_(torch.from_numpy(randn(rng, d)))
    check(ln, [x])
    check(torch.nn.LayerNorm(d, elementwise_affine=False), [x])
    for dim in (-1, 1):
        check(torch.nn.Softmax(dim=dim), [x])


@SETTINGS
@given(v=st.integers(2, 12), dim=st.integers(1, 8), shape=st.sampled_from([(3,), (2, 4), (2, 2, 3)]),
       seed=st.integers(0, 99))
def test_embedding_matches_pytorch(v, dim, shape, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, v, shape)  # repeated ids: the table's gradient rows add up
    emb = torch.nn.Embedding(v, dim)
    fresh(seed)
    layer = asic.from_torch(emb)
    y = layer(ids)
    target = randn(rng, *y.shape)
    asic.MSELoss()(y, target).backward()
    ty = emb(torch.from_numpy(ids))
    torch.nn.functional.mse_loss(ty, torch.from_numpy(target)).backward()
    close(y.value, ty, what="output")
    close(layer.weight.grad, emb.weight.grad, what="table grad")


@SETTINGS
@given(n=st.integers(1, 2), c=st.sampled_from([1, 2, 4]), hw=st.integers(3, 7),
       f=st.sampled_from([2, 4]), k=st.integers(1, 3), stride=st.integers(1, 2),
       pad=st.integers(0, 1), dil=st.integers(1, 2), grouped=st.booleans(), bias=st.booleans(),
       seed=st.integers(0, 99))
def test_conv2d_matches_pytorch(n, c, hw, f, k, stride, pad, dil, grouped, bias, seed):
    groups = 2 if grouped and c % 2 == 0 else 1
    if dil * (k - 1) + 1 > hw + 2 * pad:
        dil = 1
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(c, f, k, stride=stride, padding=pad, dilation=dil, groups=groups,
                           bias=bias)
    check(conv, [randn(np.random.default_rng(seed), n, c, hw, hw)])


@SETTINGS
@given(n=st.integers(1, 2), c=st.integers(1, 3), hw=st.integers(2, 7), k=st.integers(1, 3),
       stride=st.integers(1, 3), pad=st.integers(0, 1), seed=st.integers(0, 99))
def test_maxpool2d_matches_pytorch(n, c, hw, k, stride, pad, seed):
    k = min(k, hw)
    pad = min(pad, k // 2)
    check(torch.nn.MaxPool2d(k, stride=stride, padding=pad),
          [randn(np.random.default_rng(seed), n, c, hw, hw)])


@SETTINGS
@given(n=st.integers(2, 3), c=st.integers(1, 4), hw=st.integers(1, 4), train=st.booleans(),
       affine=st.booleans(), seed=st.integers(0, 99))
def test_batchnorm2d_matches_pytorch(n, c, hw, train, affine, seed):
    rng = np.random.default_rng(seed)
    bn = torch.nn.BatchNorm2d(c, momentum=0.2, affine=affine)
    with torch.no_grad():
        bn.running_mean.copy_(torch.from_numpy(randn(rng, c)))
        bn.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2, c).astype(F32)))
        if affine:
            bn.weight.copy_(torch.from_numpy(randn(rng, c)))
            bn.bias.copy_(torch.from_numpy(randn(rng, c)))
    bn.train(train)
    layer, _ = check(bn, [randn(rng, n, c, hw, hw) * 3 + 1])
    close(layer.running_mean, bn.running_mean, what="running mean")
    close(layer.running_var, bn.running_var, what="running var")


@SETTINGS
@given(b=st.integers(1, 2), lq=st.integers(1, 4), s=st.integers(1, 4), heads=st.sampled_from([1, 2]),
       dh=st.integers(1, 4), batch_first=st.booleans(), mode=st.sampled_from(
           ["self", "cross", "causal", "float_mask", "padding"]), bias=st.booleans(),
       seed=st.integers(0, 99))
def test_multihead_attention_matches_pytorch(b, lq, s, heads, dh, batch_first, mode, bias, seed):
    e = heads * dh
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    mha = torch.nn.MultiheadAttention(e, heads, bias=bias, batch_first=batch_first)
    if bias:
        with torch.no_grad():
            mha.in_proj_bias.copy_(torch.from_numpy(randn(rng, 3 * e)))
    if mode in ("self", "causal", "float_mask", "padding"):
        s = lq
    shape = (lambda length: (b, length, e)) if batch_first else (lambda length: (length, b, e))
    kw: dict = {}
    if mode == "causal":
        kw["attn_mask"] = np.triu(np.ones((lq, s), bool), 1)
    elif mode == "float_mask":
        kw["attn_mask"] = randn(rng, lq, s)
    elif mode == "padding":
        pad = np.zeros((b, s), bool)
        pad[:, s - 1:] = s > 1  # never mask a whole row
        kw["key_padding_mask"] = pad
    tkw = {k: torch.from_numpy(v) for k, v in kw.items()}
    if mode == "cross":
        xs = [randn(rng, *shape(lq)), randn(rng, *shape(s)), randn(rng, *shape(s))]
        layer, _ = check(mha, xs, call=lambda m, q, k, v: m(q, k, v, need_weights=False)[0])
    else:
        x = randn(rng, *shape(lq))
        is_torch = [False]

        def call(m, t):
            is_torch[0] = not isinstance(m, asic.Model)
            return m(t, t, t, **(tkw if is_torch[0] else kw))[0]
        layer, _ = check(mha, [x], call=call)
    # the averaged attention weights
    q = randn(rng, *shape(lq))
    _, w = layer(q, q, q)
    _, tw = mha(torch.from_numpy(q), torch.from_numpy(q), torch.from_numpy(q))
    close(w.value, tw, what="attention weights")


def test_dropout_mask_is_seeded_and_shared_by_forward_and_backward():
    fresh(3)
    drop = asic.Dropout(0.25)
    x = asic.Parameter(np.random.default_rng(0).uniform(1, 2, (64, 32)))
    y = drop(x)
    mask = y.value / x.value
    keep = np.isclose(mask, 1 / 0.75)
    assert np.all(keep | (mask == 0))
    assert abs((~keep).mean() - 0.25) < 5 * math.sqrt(0.25 * 0.75 / mask.size)
    target = np.zeros_like(y.value)
    asic.MSELoss()(y, target).backward()
    tx = torch.tensor(x.value, requires_grad=True)
    torch.nn.functional.mse_loss(tx * torch.from_numpy(mask.astype(F32)),
                                 torch.from_numpy(target)).backward()
    close(x.grad, tx.grad, 1e-6, "grad through the same mask")
    fresh(3)
    again = asic.Dropout(0.25)(asic.Parameter(x.value))
    assert np.array_equal(again.value, y.value)  # the same seed: the same mask
    fresh(4)
    assert not np.array_equal(asic.Dropout(0.25)(asic.Parameter(x.value)).value, y.value)
    # identity: p = 0, or eval mode (no op runs)
    for layer in (asic.Dropout(0.0), asic.Dropout(0.5).eval()):
        fresh()
        t = asic.Tensor(x.value)
        assert layer(t) is t
    assert asic.Dropout(0.5).eval().training is False


@SETTINGS
@given(n=st.integers(1, 6), c=st.integers(2, 7), kind=st.sampled_from(["ids", "probs"]),
       smoothing=st.sampled_from([0.0, 0.1]), ignore=st.booleans(),
       reduction=st.sampled_from(["mean", "sum"]), seed=st.integers(0, 99))
def test_cross_entropy_matches_pytorch(n, c, kind, smoothing, ignore, reduction, seed):
    rng = np.random.default_rng(seed)
    logits = randn(rng, n, c) * 3
    if kind == "ids":
        labels = rng.integers(0, c, n)
        if ignore and n > 1:
            labels[0] = -100
        tlabels = torch.from_numpy(labels)
    else:
        labels = rng.dirichlet(np.ones(c), n).astype(F32)
        tlabels = torch.from_numpy(labels)
    fresh()
    x = asic.Parameter(logits)
    loss = asic.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)(x, labels)
    loss.backward()
    tx = torch.tensor(logits, requires_grad=True)
    tl = torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)(tx, tlabels)
    tl.backward()
    close(loss.value.reshape(()), tl, what="loss")
    close(x.grad, tx.grad, what="logits grad")


def test_cross_entropy_over_only_ignored_labels_is_nan_as_in_pytorch():
    fresh()
    x = asic.Parameter(np.ones((3, 4), F32))
    loss = asic.CrossEntropyLoss()(x, np.array([-100, -100, -100]))
    loss.backward()
    tx = torch.ones((3, 4), requires_grad=True)
    tl = torch.nn.CrossEntropyLoss()(tx, torch.tensor([-100, -100, -100]))
    tl.backward()
    assert np.isnan(loss.value).all() and torch.isnan(tl)
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())  # zeros: every row weighs 0


@pytest.mark.parametrize("kind", ["Adam", "AdamW"])
def test_adam_and_adamw_match_pytorch(kind):
    fresh(1)
    model = asic.Sequential(asic.Linear(5, 8), asic.GELU(), asic.Linear(8, 3))
    tmodel = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.GELU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for k, v in torch_layout(model, model.state_dict()).items():
            dict(tmodel.named_parameters())[k].copy_(torch.from_numpy(np.ascontiguousarray(v)))
    kw = dict(lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=0.05)
    opt = getattr(asic, kind)(model.parameters(), **kw)
    topt = getattr(torch.optim, kind)(tmodel.parameters(), **kw)
    rng = np.random.default_rng(0)
    x, y = randn(rng, 16, 5), rng.integers(0, 3, 16)
    for _ in range(15):
        opt.zero_grad()
        asic.CrossEntropyLoss()(model(x), y).backward()
        opt.step()
        topt.zero_grad()
        torch.nn.CrossEntropyLoss()(tmodel(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        topt.step()
    mine = torch_layout(model, model.state_dict())
    for k, p in tmodel.named_parameters():
        close(mine[k], p, what=k)


# --------------------------------------------------------------------------- the transformer loop

def readme_loop() -> str:
    """Return the python block of the manual's section "The asic loop on real layers"."""
    text = (ROOT / "docs" / "training.md").read_text()
    section = text.split("## The asic loop on real layers", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


class TorchLM(torch.nn.Module):
    """The manual's TinyLM (docs/training.md) written in PyTorch."""

    def __init__(self, V, D, S):
        super().__init__()
        nn = torch.nn
        self.V, self.S = V, S
        self.tok, self.pos = nn.Embedding(V, D), nn.Embedding(S, D)
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.attn = nn.MultiheadAttention(D, 2, bias=False, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))
        self.head = nn.Linear(D, V)
        self.register_buffer("mask", torch.triu(torch.ones(S, S, dtype=torch.bool), 1))

    def forward(self, ids):
        x = self.tok(ids) + self.pos(torch.arange(self.S))
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, attn_mask=self.mask, need_weights=False)
        x = x + a
        x = x + self.mlp(self.ln2(x))
        return self.head(x).reshape(-1, self.V)


def test_manual_transformer_loop_50_steps_equals_pytorch(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    ns: dict = {}
    exec(compile(readme_loop(), "docs/training.md transformer loop", "exec"), ns)
    assert "asic report on tpu-v4-mxu" in capsys.readouterr().out
    rep = asic.report()
    assert len(rep.steps) == 50 and "TinyLM.attn" in str(rep)
    units = rep.steps[-1].totals()["unit_utilisation"]
    assert units["array"] > 0 and units["vector"] > 0
    # the same initial weights: a fresh session with the same seed
    asic.use_chip("configs/tpu-v4-mxu.yaml", overrides={"dtype": "fp32"})
    init = ns["TinyLM"]()
    inputs, labels = ns["inputs"], ns["labels"]
    first = ns["criterion"](init(inputs), labels).item()
    tm = TorchLM(ns["V"], ns["D"], ns["S"])
    with torch.no_grad():
        for k, v in torch_layout(init, init.state_dict()).items():
            dict(tm.named_parameters())[k].copy_(torch.from_numpy(np.ascontiguousarray(v)))
    topt = torch.optim.Adam(tm.parameters(), lr=1e-2)
    tlosses = []
    for _ in range(50):
        topt.zero_grad()
        tl = torch.nn.CrossEntropyLoss()(tm(torch.from_numpy(inputs)), torch.from_numpy(labels))
        tl.backward()
        topt.step()
        tlosses.append(tl.item())
    loss = ns["loss"].item()
    assert first == pytest.approx(tlosses[0], rel=1e-5)
    assert loss < 0.1 * first
    assert loss == pytest.approx(tlosses[-1], rel=1e-4)
    model = ns["model"]
    mine = torch_layout(model, model.state_dict())
    assert list(mine) == [k for k, _ in tm.named_parameters()]
    for k, p in tm.named_parameters():
        close(mine[k], p, what=k)


# --------------------------------------------------------------------------- from_torch

class Block(torch.nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.attn = torch.nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, 2 * d), torch.nn.GELU(),
                                       torch.nn.Linear(2 * d, d), torch.nn.Dropout(0.0))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class Classifier(torch.nn.Module):
    """A custom module: its own nn.Parameter, a ModuleList of blocks, x.shape, mean pooling."""

    def __init__(self, vocab=11, d=8, heads=2, seq=5, classes=3):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Parameter(torch.randn(seq, d) * 0.1)
        self.blocks = torch.nn.ModuleList([Block(d, heads) for _ in range(2)])
        self.norm = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, classes)

    def forward(self, ids):
        x = self.emb(ids) + self.pos
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x).mean(dim=1)
        return self.head(x)


def test_from_torch_custom_transformer_same_weights_forward_and_adam_training():
    torch.manual_seed(0)
    tm = Classifier()
    with torch.no_grad():  # non-zero attention biases, so their gradients are exercised
        for blk in tm.blocks:
            blk.attn.in_proj_bias.uniform_(-0.1, 0.1)
    fresh()
    model = asic.from_torch(tm)
    mine = torch_layout(model, model.state_dict())
    tsd = dict(tm.named_parameters())
    assert list(mine) == list(tsd)
    for k, p in tsd.items():
        assert np.array_equal(mine[k], p.detach().numpy()), k
    ids = np.random.default_rng(1).integers(0, 11, (4, 5))
    close(model(ids).value, tm(torch.from_numpy(ids)), what="forward")
    labels = np.array([0, 1, 2, 1])
    opt = asic.Adam(model.parameters(), lr=3e-3)
    topt = torch.optim.Adam(tm.parameters(), lr=3e-3)
    for _ in range(4):
        opt.zero_grad()
        loss = asic.CrossEntropyLoss()(model(ids), labels)
        loss.backward()
        opt.step()
        topt.zero_grad()
        tl = torch.nn.CrossEntropyLoss()(tm(torch.from_numpy(ids)), torch.from_numpy(labels))
        tl.backward()
        topt.step()
        assert loss.item() == pytest.approx(tl.item(), rel=1e-4)
    mine = torch_layout(model, model.state_dict())
    for k, p in tm.named_parameters():
        if k.endswith("in_proj_bias"):  # the key bias [d:2d] has an exactly zero gradient
            d = p.shape[0] // 3  # (softmax ignores a per-row shift): Adam steps on rounding
            close(np.delete(mine[k], np.s_[d:2 * d]), np.delete(p.detach().numpy(),  # noise
                                                               np.s_[d:2 * d]), what=k)
            continue
        close(mine[k], p, what=k)


def test_from_torch_sequential_cnn_trains_like_pytorch():
    torch.manual_seed(1)
    nn = torch.nn
    # no conv bias: before a training-mode BatchNorm its gradient is exactly zero, and Adam
    # would step on each side's rounding noise
    tm = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                       nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.0), nn.Linear(4 * 3 * 3, 3))
    fresh()
    model = asic.from_torch(tm)
    assert isinstance(model, asic.Sequential) and isinstance(model._modules["0"], asic.Conv2d)
    rng = np.random.default_rng(2)
    x, labels = randn(rng, 5, 2, 6, 6), rng.integers(0, 3, 5)
    close(model(x).value, tm(torch.from_numpy(x)), what="forward")
    opt = asic.Adam(model.parameters(), lr=1e-2)
    topt = torch.optim.Adam(tm.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        asic.CrossEntropyLoss()(model(x), labels).backward()
        opt.step()
        topt.zero_grad()
        nn.CrossEntropyLoss()(tm(torch.from_numpy(x)), torch.from_numpy(labels)).backward()
        topt.step()
    mine = torch_layout(model, model.state_dict())
    for k, p in tm.named_parameters():
        close(mine[k], p, what=k)
    close(model._modules["1"].running_var, tm[1].running_var, what="running var")
    model.eval()
    tm.eval()
    close(model(x).value, tm(torch.from_numpy(x)), what="eval forward")


def test_native_layers_have_pytorch_names_shapes_and_init_ranges():
    fresh()
    nn = torch.nn
    pairs = [(asic.Conv2d(4, 6, 3, groups=2), nn.Conv2d(4, 6, 3, groups=2)),
             (asic.BatchNorm2d(5), nn.BatchNorm2d(5)), (asic.LayerNorm(7), nn.LayerNorm(7)),
             (asic.Embedding(9, 4), nn.Embedding(9, 4)),
             (asic.MultiheadAttention(8, 2), nn.MultiheadAttention(8, 2))]
    for mine, theirs in pairs:
        ours = torch_layout(mine, mine.state_dict())
        tsd = dict(theirs.named_parameters())
        assert list(ours) == list(tsd), type(mine).__name__
        for k, v in ours.items():
            assert v.shape == tuple(tsd[k].shape), k
    conv = pairs[0][0]
    bound = 1 / math.sqrt(2 * 3 * 3)
    assert np.abs(conv.weight.value).max() <= bound and np.abs(conv.weight.value).max() > bound / 2
    mha = pairs[4][0]
    assert np.all(mha.in_proj_bias.value == 0) and np.all(mha.out_proj.bias.value == 0)


# --------------------------------------------------------------------------- bad use

def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_bad_shapes_are_one_line_workload_errors():
    fresh()
    x3 = np.ones((2, 3, 5), F32)
    cases = [
        (lambda: asic.LayerNorm(4)(x3), r"LayerNorm: input: LayerNorm\(4.*\(2, 3, 5\)"),
        (lambda: asic.Conv2d(3, 4, 3)(x3), r"Conv2d: input: .*expects \(N, 3, H, W\)"),
        (lambda: asic.Conv2d(3, 4, 7)(np.ones((1, 3, 4, 4))), r"Conv2d: input: .*larger"),
        (lambda: asic.BatchNorm2d(4)(np.ones((2, 3, 4, 4))), r"BatchNorm2d: input"),
        (lambda: asic.MaxPool2d(2)(x3), r"MaxPool2d: input: expects \(N, C, H, W\)"),
        (lambda: asic.Embedding(4, 2)(np.array([[1, 4]])), r"Embedding: input: ids must be "
                                                          r"integers in \[0, 4\)"),
        (lambda: asic.MultiheadAttention(4, 2)(x3, x3, x3), r"MultiheadAttention: query: "
                                                             r"expects \(L, N, E\) inputs"),
        (lambda: asic.MultiheadAttention(5, 1)(x3, x3, x3, attn_mask=np.ones((3, 3), bool)),
         r"attn_mask: must be \(2, 2\)"),
        (lambda: asic.MultiheadAttention(4, 3), r"num_heads: embed_dim 4 must divide by"),
        (lambda: asic.Softmax(3)(x3), r"Softmax: input: dim 3 is out of range"),
        (lambda: asic.Dropout(1.5), r"Dropout: p: must be a number in \[0, 1\]"),
        (lambda: asic.CrossEntropyLoss()(asic.Tensor(np.ones((4, 3))), [0, 1, 3, 0]),
         r"CrossEntropyLoss: labels: class ids must lie in \[0, 3\), got 3"),
        (lambda: asic.CrossEntropyLoss()(asic.Tensor(x3), [0]), r"CrossEntropyLoss: outputs"),
        (lambda: asic.Tensor(x3).reshape(4, 4), r"reshape: cannot reshape \(2, 3, 5\)"),
        (lambda: asic.Adam([asic.Parameter(np.ones(2))], betas=(0.9, 1.0)), r"Adam: betas"),
    ]
    for fn, pattern in cases:
        with pytest.raises(WorkloadError, match=pattern) as info:
            fn()
        one_line(info)


def test_from_torch_rejects_unknown_layers_options_and_functions():
    nn = torch.nn
    fresh()
    with pytest.raises(WorkloadError, match=r"from_torch: 1: LSTM: not a supported layer") as e:
        asic.from_torch(nn.Sequential(nn.Linear(3, 3), nn.LSTM(3, 3)))
    one_line(e)
    with pytest.raises(WorkloadError, match=r"from_torch: 0: MaxPool2d: ceil_mode=True is not "
                                            r"supported") as e:
        asic.from_torch(nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)))
    one_line(e)

    class Cos(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return torch.cos(self.lin(x))
    model = asic.from_torch(Cos())
    with pytest.raises(WorkloadError, match=r"from_torch: Cos.forward: function cos is not "
                                            r"supported") as e:
        model(np.ones((2, 3), F32))
    one_line(e)

    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x
    with pytest.raises(WorkloadError, match=r"from_torch: <root>: Branchy: torch.fx cannot "
                                            r"trace") as e:
        asic.from_torch(Branchy())
    one_line(e)
    with pytest.raises(WorkloadError, match="must be a torch.nn.Module"):
        asic.from_torch(object())


def test_backward_twice_and_shared_tensors():
    fresh()
    lin = asic.Linear(3, 2)
    x = np.ones((4, 3), F32)
    h = lin(x)
    loss = asic.MSELoss()(h * h + h, np.zeros((4, 2), F32))  # h used three times: grads add
    loss.backward()
    th = torch.tensor(h.value, requires_grad=True)
    torch.nn.functional.mse_loss(th * th + th, torch.zeros(4, 2)).backward()
    tw = torch.from_numpy(x).T @ th.grad
    close(lin.weight.grad, tw, 1e-5, "accumulated weight grad")
    with pytest.raises(WorkloadError, match="backward\\(\\) was already called"):
        loss.backward()


@SETTINGS
@given(b=st.integers(1, 3), m=st.integers(2, 4), n=st.integers(2, 5), c=st.floats(0.5, 3),
       seed=st.integers(0, 99))
def test_tensor_ops_forward_and_backward_match_pytorch(b, m, n, c, seed):
    rng = np.random.default_rng(seed)
    xs = [randn(rng, b, m, n), randn(rng, m, n), randn(rng, b, n, m)]

    def f(x, y, z):
        u = (x * y - c) / c + x.mean(dim=1, keepdim=True) - 1.0 * y.sum(0)
        v = u.transpose(1, 2) @ z.reshape(b, n, m).transpose(1, 2)  # (b, n, n)
        w = (-v).softmax(-1) + v.permute(0, 2, 1)[:, 1:, :].sum(dim=1, keepdim=True)
        return (c - w)[:, 0] + w.flatten(1)[:, :n]
    fresh(seed)
    ins = [asic.Parameter(x) for x in xs]
    out = f(*ins)
    target = np.random.default_rng([seed, 7]).standard_normal(out.shape).astype(F32)
    asic.MSELoss()(out, target).backward()
    tins = [torch.tensor(x, requires_grad=True) for x in xs]
    tout = f(*tins)
    torch.nn.functional.mse_loss(tout, torch.from_numpy(target)).backward()
    close(out.value, tout, what="output")
    for i, (a, t) in enumerate(zip(ins, tins)):
        close(a.grad, t.grad, what=f"input {i} grad")
