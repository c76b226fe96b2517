"""The PyTorch importer (simulator.frontends.torch_import): the zoo's networks written in
PyTorch (tests/torch_zoo.py) against the zoo builders and against PyTorch itself."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import torch_zoo as TZ  # noqa: E402
from test_zoo import SMALL, rel  # noqa: E402
from simulator.kernels.zoo import build_zoo  # noqa: E402


def zoo_small(name, batch=2):
    m = build_zoo(f"zoo:{name}", batch=batch, **SMALL[name])
    return m, m.inputs(seed=3)


def torch_twin(name, m):
    """The nn.Module twin of zoo model ``m`` with the zoo's seeded parameters copied in."""
    mod = TZ.build_module(name, m.cfg_kw.get("cfg"), image=m.sizes.get("image"))
    return TZ.copy_zoo_params(mod, name, m.net.init_params(3))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_torch_zoo_modules_equal_the_numpy_twins(name):
    m, vals = zoo_small(name)
    with torch.no_grad():
        got = torch_twin(name, m)(*TZ.torch_inputs(name, vals)).numpy()
    want = m.numpy(vals)
    assert got.shape == want.shape
    assert rel(got, want) < 1e-5


# --------------------------------------------------------------------------- helpers

import json  # noqa: E402
import sys  # noqa: E402
import math  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402
from torch import nn  # noqa: E402

from conftest import CONFIGS, ROOT, write  # noqa: E402
from test_zoo import FP32  # noqa: E402
from simulator import WorkloadError, load_chip, simulate_gemm  # noqa: E402
from simulator.core.autodiff import Optimizer  # noqa: E402
from simulator.tools.cli import main  # noqa: E402
from simulator.tools.compare import compare_chips  # noqa: E402
from simulator.core.engine import run  # noqa: E402
from simulator.frontends.torch_import import import_module, import_torch  # noqa: E402
from simulator.kernels.zoo_train import target_for, train_zoo  # noqa: E402
from simulator.core.program import Conv2d, MatMul  # noqa: E402
from simulator.tools.sweep import load_sweep, read_results, run_sweep  # noqa: E402

MXU = str(CONFIGS / "tpu-v4-mxu.yaml")
TESTS = str(__import__("pathlib").Path(__file__).resolve().parent)


def signature(p):
    """Per op: its class, kind, input shapes and output shape (names aside)."""
    return [(type(o).__name__, getattr(o, "kind", ""), tuple(p.shapes[t] for t in o.inputs),
             p.shapes[o.output]) for o in p.ops]


def imported(name, m, vals):
    mod = torch_twin(name, m)
    return mod, import_module(mod, TZ.torch_inputs(name, vals), where=f"torch_zoo:{name}")


def factory_file(tmp_path, body):
    """Write a factory file that can import tests/torch_zoo.py."""
    return write(tmp_path, f"import sys\nsys.path.insert(0, {TESTS!r})\nimport torch\n"
                           f"import torch_zoo as TZ\nfrom torch import nn\n{body}", "model.py")


# --------------------------------------------------------------------------- the zoo, imported

@pytest.mark.parametrize("name", sorted(SMALL))
def test_imported_zoo_networks_have_the_zoo_ops_cycles_and_pytorch_values(name):
    m, vals = zoo_small(name)
    mod, im = imported(name, m, vals)
    assert signature(im.program) == signature(m.program)
    assert [im.program.shapes[t] for t in im.program.outputs] == [m.program.shapes[m.output]]
    want, got = run(FP32, m.program), run(FP32, im.program, im.inputs())
    assert [r.compute_cycles for r in got.ops] == [r.compute_cycles for r in want.ops]
    assert [r.total_cycles for r in got.ops] == [r.total_cycles for r in want.ops]
    assert got.total_cycles == want.total_cycles
    with torch.no_grad():
        ref = mod(*TZ.torch_inputs(name, vals)).numpy()
    out = got.values[im.output]
    assert out.shape == ref.shape and rel(out, ref) < 1e-4


def test_a_sequence_as_long_as_the_position_table_keeps_the_zoo_ops():
    cfg = SMALL["gpt2-small"]["cfg"]
    m = build_zoo("zoo:gpt2-small", batch=1, seq=cfg["max_positions"], cfg=cfg)
    _mod, im = imported("gpt2-small", m, m.inputs(seed=3))
    assert signature(im.program) == signature(m.program)


def test_resnet18_per_layer_compute_cycles_equal_the_zoo_on_scalesim_compat():
    chip = load_chip(CONFIGS / "scalesim-compat.yaml")
    m = build_zoo("zoo:resnet18")
    mod = TZ.build_module("resnet18")
    im = import_module(mod, (torch.zeros(1, 3, 224, 224),))
    assert signature(im.program) == signature(m.program)
    want, got = run(chip, m.program), run(chip, im.program)
    arrays = [i for i, op in enumerate(im.program.ops) if isinstance(op, (Conv2d, MatMul))]
    assert len(arrays) == 21
    assert [got.ops[i].compute_cycles for i in arrays] == [want.ops[i].compute_cycles
                                                           for i in arrays]
    for i in arrays:  # and each is the cycles of its GEMM alone (the zoo's own check)
        mm, nn_, kk = im.program.gemm_shape(im.program.ops[i])
        assert got.ops[i].compute_cycles == simulate_gemm(chip, shape=(mm, nn_, kk)).compute_cycles
    assert [r.compute_cycles for r in got.ops] == [r.compute_cycles for r in want.ops]


def test_parameters_are_named_by_state_dict_keys_in_the_zoo_layout():
    m, vals = zoo_small("gpt2-small")
    mod, im = imported("gpt2-small", m, vals)
    sd = mod.state_dict()
    assert im.sources["h.0.attn.qkv.weight"] == ("h.0.attn.qkv.weight", "T")
    assert im.program.shapes["h.0.attn.qkv.weight"] == (48, 144)  # (in, out) as the zoo's
    # the LM head is tied to the token embedding: one parameter, read transposed in place
    tied = [k for k in im.params if k in ("wte.weight", "lm_head.weight")]
    assert len(tied) == 1 and im.sources[tied[0]][1] == "same"
    head = [o for o in im.program.ops if isinstance(o, MatMul) and tied[0] in o.inputs]
    assert len(head) == 1 and head[0].transpose_b
    back = im.torch_params(im.values)
    for key, value in back.items():
        np.testing.assert_array_equal(value, sd[key].numpy())


# --------------------------------------------------------------------------- other modules

class NanoAttention(nn.Module):
    """nanoGPT's attention: explicit matmuls and a masked_fill from a tril buffer."""

    def __init__(self, d=32, heads=4, seq=8):
        super().__init__()
        self.c_attn, self.c_proj, self.heads = nn.Linear(d, 3 * d), nn.Linear(d, d), heads
        self.register_buffer("bias", torch.tril(torch.ones(seq, seq)).view(1, 1, seq, seq))

    def forward(self, x):
        b, t, c = x.size()
        q, k, v = self.c_attn(x).split(c, dim=2)
        k = k.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        q = q.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
        y = torch.softmax(att, dim=-1) @ v
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return torch.nn.functional.gelu(self.c_proj(y)) * 0.5 - x / 3 + \
            torch.tanh(x).sum(-1, keepdim=True)


class Encoders(nn.Module):
    """Two nn.TransformerEncoderLayer (post-LN ReLU, pre-LN GELU), dropout set but eval."""

    def __init__(self):
        super().__init__()
        self.a = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)
        self.b = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True,
                                            norm_first=True, activation="gelu")

    def forward(self, x):
        return self.b(self.a(x))


@pytest.mark.parametrize("cls", [NanoAttention, Encoders])
def test_hand_written_attention_and_nn_transformer_encoder_layer_equal_pytorch(cls):
    torch.manual_seed(1)
    mod = cls().eval()
    x = torch.randn(2, 8, 32)
    im = import_module(mod, (x,))
    got = run(FP32, im.program, im.inputs()).values[im.output]
    with torch.no_grad():
        assert rel(got, mod(x).numpy()) < 1e-4
    gemms = sorted(im.program.gemm_shape(o) for o in im.program.ops if isinstance(o, MatMul))
    if cls is Encoders:  # nn.MultiheadAttention's packed in-projection is one GEMM, N = 3d
        assert gemms.count((16, 96, 32)) == 2 and gemms.count((8, 8, 8)) == 4
    else:
        assert (16, 96, 32) in gemms and gemms.count((8, 8, 8)) == 2


@settings(max_examples=12, deadline=None)
@given(c=st.integers(1, 4), f=st.integers(1, 6), k=st.integers(1, 3), stride=st.integers(1, 2),
       pad=st.integers(0, 1), groups=st.sampled_from([1, 2]), side=st.integers(4, 9),
       bias=st.booleans(), pool=st.booleans(), out=st.integers(1, 5))
def test_random_cnns_equal_pytorch_and_each_gemm_costs_the_gemm_alone(c, f, k, stride, pad,
                                                                      groups, side, bias, pool,
                                                                      out):
    c, f = c * groups, f * groups
    layers = [nn.Conv2d(c, f, k, stride, pad, groups=groups, bias=bias), nn.BatchNorm2d(f),
              nn.ReLU()]
    oh = (side + 2 * pad - k) // stride + 1
    if pool and oh >= 2:
        layers.append(nn.MaxPool2d(2))
        oh //= 2
    mod = nn.Sequential(*layers, nn.Flatten(), nn.Linear(f * oh * oh, out))
    torch.manual_seed(c * 100 + f)
    with torch.no_grad():
        for bn in mod.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 1.5)
    mod.eval()
    x = torch.randn(2, c, side, side)
    im = import_module(mod, (x,))
    per_group = FP32.with_overrides({"array.depthwise": "per_channel"})  # one GEMM per group
    rep = run(per_group, im.program, im.inputs())
    with torch.no_grad():
        assert rel(rep.values[im.output], mod(x).numpy()) < 1e-4
    p = im.program
    conv = next(o for o in p.ops if isinstance(o, Conv2d))
    assert p.gemm_shape(conv) == (2 * oh_conv(side, k, stride, pad) ** 2, f // groups,
                                  c // groups * k * k)
    assert p.gemm_count(conv) == groups
    rows = {r.name: r for r in rep.ops}
    for o in p.ops:
        if isinstance(o, (Conv2d, MatMul)):
            assert rows[o.name].compute_cycles == p.gemm_count(o) * simulate_gemm(
                per_group, shape=p.gemm_shape(o)).compute_cycles


def oh_conv(side, k, stride, pad):
    return (side + 2 * pad - k) // stride + 1


# --------------------------------------------------------------------------- training

def test_one_adam_step_of_an_imported_transformer_equals_torch_optim_adam():
    m, vals = zoo_small("tiny-transformer")
    mod = torch_twin("tiny-transformer", m)
    x = TZ.torch_inputs("tiny-transformer", vals)
    im = import_module(mod, x)
    lr = 1e-3
    res = train_zoo(FP32, im, 1, Optimizer("adam", lr), "cross_entropy", seed=5)
    ours = im.torch_params(res.params)
    target = target_for(im, "cross_entropy", 5)
    before = {k: v.detach().clone().numpy() for k, v in mod.named_parameters()}
    mod.train()
    opt = torch.optim.Adam(mod.parameters(), lr=lr)
    logits = mod(*x)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(target.argmax(-1)))
    assert abs(res.losses[0] - loss.item()) < 1e-5 * abs(loss.item())
    loss.backward()
    grads = {k: v.grad.norm().item() for k, v in mod.named_parameters()}
    opt.step()
    assert set(ours) == set(before)
    checked = 0
    for key, v in mod.named_parameters():
        new = v.detach().numpy()
        if grads[key] < 1e-6:
            # The key bias's gradient is zero in exact arithmetic (softmax ignores a shift
            # along a row), so Adam turns each side's rounding noise into steps of up to lr.
            assert "attn.k.bias" in key
            assert np.max(np.abs(ours[key] - before[key])) <= lr * (1 + 1e-3)
            continue
        assert rel(ours[key], new) < 1e-4, key
        assert rel(ours[key] - before[key], new - before[key]) < 1e-3, key
        checked += 1
    assert checked == len(before) - 2


# --------------------------------------------------------------------------- command line

def test_cli_run_torch_equals_the_zoo_model_and_writes_the_csv(tmp_path, capsys):
    f = factory_file(tmp_path, "def cnn():\n    return TZ.build_module('small-cnn')\n")
    csv_path = tmp_path / "layers.csv"
    assert main(["run", MXU, "--torch", f"{f}:cnn", "--input", "8x3x16x16", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    zoo = run(load_chip(MXU), build_zoo("zoo:small-cnn").program)
    assert data["totals"]["total_cycles"] == zoo.total_cycles
    assert [o["compute_cycles"] for o in data["ops"]] == [r.compute_cycles for r in zoo.ops]
    assert main(["run", MXU, "--set", "dtype=fp32", "--torch", f"{f}:cnn", "--input",
                 "2x3x8x8", "--functional", "--csv", str(csv_path), "--all-ops"]) == 0
    text = capsys.readouterr().out
    assert "torch:" in text and "conv1" in text and "output" in text
    assert len(csv_path.read_text().splitlines()) == 1 + 10


def test_cli_functional_memory_guard_counts_parameters_and_data_inputs(tmp_path, capsys,
                                                                       monkeypatch):
    import simulator.tools.cli as cli_mod
    f = factory_file(tmp_path, "def lin():\n    return torch.nn.Linear(4, 2)\n")
    monkeypatch.setattr(cli_mod, "FUNCTIONAL_LIMIT_BYTES", 4 * 1000)  # 1000 float32 elements
    # 4x2 weight + 2 bias = 10 parameter elements; the data input makes up the rest
    assert main(["run", MXU, "--torch", f"{f}:lin", "--input", "248x4", "--functional"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "functional" in err and "1,002" in err
    assert main(["run", MXU, "--torch", f"{f}:lin", "--input", "248x4"]) == 0  # timing only
    assert main(["run", MXU, "--torch", f"{f}:lin", "--input", "247x4", "--functional"]) == 0


def test_cli_train_torch_with_example_inputs_lowers_the_loss(capsys):
    assert main(["train", MXU, "--set", "dtype=fp32", "--torch",
                 f"{TESTS}/torch_zoo.py:tiny_factory", "--steps", "4", "--lr", "0.003",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    losses = [s["loss"] for s in data["steps"]]
    assert len(losses) == 4 and losses[-1] < losses[0]
    zoo = build_zoo("zoo:tiny-transformer", batch=2, seq=5)
    from simulator.kernels.zoo_train import step_program
    want = run(load_chip(MXU, {"dtype": "fp32"}),
               step_program(zoo, "cross_entropy", Optimizer("adam", 0.003))).total_cycles
    assert data["totals"]["cycles_per_step"] == want


def test_compare_and_sweep_take_torch_models(tmp_path):
    f = factory_file(tmp_path, "def cnn():\n    return TZ.build_module('small-cnn')\n")
    rows, what, per = compare_chips([MXU, str(CONFIGS / "gemmini.yaml")], torch=f"{f}:cnn",
                                    inputs=["4x3x12x12"])
    assert "torch:" in what and per == "samples/s"
    want = run(load_chip(MXU), build_zoo("zoo:small-cnn", 4, image=12).program).total_cycles
    assert rows[0]["cycles"] == want
    sweep = write(tmp_path, f"base: {CONFIGS / 'gemmini.yaml'}\ngrid:\n  array.rows: [8, 16]\n"
                            "workloads:\n  - torch: model.py:cnn\n    input: 2x3x8x8\n", "s.yaml")
    run_sweep(load_sweep(sweep), tmp_path / "r.csv", "serial")
    got = read_results(tmp_path / "r.csv")
    assert len(got) == 2 and all(r["status"] == "ok" for r in got)
    chip = load_chip(CONFIGS / "gemmini.yaml", {"array.rows": 8})
    assert int(got[0]["total_cycles"]) == run(chip, build_zoo("zoo:small-cnn", 2, image=8)
                                              .program).total_cycles


BAD = """
def fft():
    class M(nn.Module):
        def forward(self, x):
            return torch.fft.fft(x).real
    return M()

def branchy():
    class M(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x * 2
            return x
    return M()

def not_a_module():
    return 42

def boom():
    raise ValueError('no weights here')

def cnn():
    return TZ.build_module('small-cnn')
"""


@pytest.mark.parametrize("args, match", [
    (["--torch", "{f}:fft", "--input", "2x8"],
     r"model.py:10: node fft_fft \(aten.fft_fft.default\): operator not supported"),
    (["--torch", "{f}:branchy", "--input", "2x8"], r"model.py:13: export: torch.export "
                                                   r"failed on inputs \(2, 8\) float32: "),
    (["--torch", "{f}:cnn", "--input", "2x4x16x16"], r"export: torch.export failed on inputs "
                                                     r"\(2, 4, 16, 16\) float32: RuntimeError"),
    (["--torch", "{f}:cnn", "--input", "2x3x16"], r"export: torch.export failed on inputs"),
    (["--torch", "{f}:cnn", "--input", "2x3xx16"], r"--input 2x3xx16: input: must be sizes"),
    (["--torch", "{f}:cnn", "--input", "0x3x16x16"], r"input: sizes must be positive"),
    (["--torch", "{f}:cnn"], r"give the input shapes with --input"),
    (["--torch", "{f}:cnn", "--input", "2x3x8x8", "--batch", "2"], r"--batch 2: batch: does not"),
    (["--torch", "{f}:missing", "--input", "2x3"], r"model.py:1: factory: .* has no function"),
    (["--torch", "{f}:not_a_module", "--input", "2x3"], r"py:21: factory: .*must return an "),
    (["--torch", "{f}:boom", "--input", "2x3"], r"py:25: factory: boom\(\) failed: ValueError"),
    (["--torch", "/no/such/file.py:f", "--input", "2x3"], r"/no/such/file.py:1: torch: no such"),
    (["--torch", "nocolon", "--input", "2x3"], r"must be FILE.py:factory"),
])
def test_cli_bad_torch_models_are_one_line_and_exit_2(tmp_path, capsys, args, match):
    f = factory_file(tmp_path, BAD)
    argv = ["run", MXU] + [a.format(f=f) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert __import__("re").search(match, err), err


def test_import_torch_is_lazy_and_the_core_never_imports_torch():
    import subprocess
    import sys
    code = ("import sys, simulator, simulator.tools.cli, simulator.core.engine, simulator.tools.sweep, "
            "simulator.tools.compare, simulator.frontends.torch_import; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_import_errors_name_the_node_and_operator():
    class Cumsum(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, dim=1) + 1

    line = Cumsum.forward.__code__.co_firstlineno + 1
    with pytest.raises(WorkloadError, match=rf"test_torch_import.py:{line}: node cumsum "
                                            r"\(aten.cumsum.default\): operator not supported"):
        import_module(Cumsum(), (torch.ones(2, 3),), where="here.py:1")
    with pytest.raises(WorkloadError, match="must return an nn.Module"):
        import_module(lambda x: x, (torch.ones(2, 3),))
    with pytest.raises(WorkloadError, match="--torch x.py"):
        import_torch("x.py")


@pytest.mark.parametrize("name", ["tiny-transformer", "small-cnn", "gpt2-small"])
def test_imported_training_step_is_the_zoo_training_step(name):
    m, vals = zoo_small(name)
    _mod, im = imported(name, m, vals)
    assert [im.program.shapes[k] for k in im.params] == [s for s, _ in m.net.params.values()]
    from simulator.kernels.zoo_train import step_program
    opt = Optimizer("adam", 1e-3)
    a, b = step_program(m, "cross_entropy", opt), step_program(im, "cross_entropy", opt)
    assert signature(a) == signature(b)
    assert run(FP32, a).total_cycles == run(FP32, b).total_cycles


class Sink(nn.Module):
    """Many operators at once: depthwise and pointwise convs, pools, norms, addmm, chunk,
    SDPA with a constant boolean and a float mask, bmm, log-softmax, elementwise kinds,
    reductions, select, cat, mm."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.pw = nn.Conv2d(4, 6, 1, bias=False)
        self.ln = nn.LayerNorm(6, elementwise_affine=False)
        self.rms = nn.RMSNorm(6, eps=1e-6)
        self.fc = nn.Linear(6, 6)
        self.w = nn.Parameter(torch.randn(6, 6) * 0.3)
        self.b = nn.Parameter(torch.randn(6) * 0.1)
        self.register_buffer("keep", torch.tril(torch.ones(9, 9)).bool())
    def forward(self, x, m):
        h = self.pw(F.relu(self.dw(x)))                      # (2, 6, 6, 6)
        a = F.avg_pool2d(h, 2)                                # (2, 6, 3, 3)
        a2 = F.adaptive_avg_pool2d(h, 2)                      # (2, 6, 2, 2)
        t = a.flatten(2).transpose(1, 2)                      # (2, 9, 6)
        t = self.ln(t) + self.rms(t)
        t = torch.addmm(self.b, t.reshape(18, 6), self.w).view(2, 9, 6)
        q, k = t.chunk(2, dim=-1)                             # (2, 9, 3)
        q4, k4 = q.unsqueeze(1), k.unsqueeze(1)
        o1 = F.scaled_dot_product_attention(q4, k4, q4, attn_mask=self.keep)
        o2 = F.scaled_dot_product_attention(q4, k4, k4, attn_mask=m)
        o = torch.cat([o1, o2], dim=-1).squeeze(1)            # (2, 9, 6)
        s = torch.bmm(o, o.transpose(1, 2)).log_softmax(-1)   # (2, 9, 9)
        u = torch.sigmoid(self.fc(o)) * torch.exp(-o.pow(2)) + torch.sqrt(o.pow(2) + 1) \
            - torch.rsqrt(o * o + 2) / 3 + torch.log(torch.sigmoid(o) + 0.5)
        u = torch.maximum(u, -u * 0.5) + torch.where(self.keep[3:5, 0:6].unsqueeze(1), o, 0.1 * o)
        u = u - (1 - F.gelu(u, approximate="tanh")) / (torch.tanh(u) + 2)
        r = u.sum(dim=1) + u.amax(dim=(1,)) + s.mean(dim=-1)[:, :6] + a2.flatten(1)[:, :6]
        return torch.cat([r, u[:, 0], -s.select(2, 3)[:, :6]], dim=1).view(2, 3, 6) @ torch.mm(self.w, self.w)


def test_many_operators_at_once_equal_pytorch():
    torch.manual_seed(0)
    mod = Sink().eval()
    x, mask = torch.randn(2, 4, 6, 6), torch.randn(1, 1, 9, 9) * 0.1
    im = import_module(mod, (x, mask))
    got = run(FP32, im.program, im.inputs()).values[im.output]
    with torch.no_grad():
        assert rel(got, mod(x, mask).numpy()) < 1e-4
    kinds = {getattr(o, "kind", type(o).__name__) for o in im.program.ops}
    assert {"avgpool2d", "normalize", "rmsnorm", "log_softmax", "where", "max", "gelu_tanh",
            "concat", "masked_fill", "sqrt", "rsqrt", "log"} <= kinds


def test_training_a_batchnorm_network_says_inference_batchnorm_has_no_rule(tmp_path, capsys):
    f = factory_file(tmp_path, "def cnn():\n    return TZ.build_module('resnet18')\n")
    assert main(["train", MXU, "--torch", f"{f}:cnn", "--input", "1x3x32x32", "--timing",
                 "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "batchnorm" in err


def test_a_failed_export_prints_one_line_in_a_real_process(tmp_path):
    """torch logs a failed trace at ERROR through handlers bound to the real stderr (in-process
    capture does not see them): the command line's stderr must still be exactly one line."""
    import subprocess
    model = tmp_path / "m.py"
    model.write_text("from torch import nn\n\ndef lin():\n    return nn.Linear(4, 3)\n")
    proc = subprocess.run([sys.executable, "-m", "simulator", "run",
                           str(CONFIGS / "tpu-v1.yaml"), "--torch", f"{model}:lin", "--input",
                           "2x5"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "export" in lines[0] and f"{model}:3" in lines[0], proc.stderr


def test_sin_and_cos_equal_pytorch():
    """Sinusoidal position features (the elementwise kinds ONNX's Sin and Cos lower to too)."""
    class Waves(nn.Module):
        def forward(self, x):
            return torch.sin(x) * torch.cos(2 * x)

    x = torch.randn(3, 5) * 4
    im = import_module(Waves(), (x,))
    kinds = {getattr(op, "kind", None) for op in im.program.ops}
    assert {"sin", "cos"} <= kinds
    got = run(FP32, im.program, im.inputs()).values[im.output]
    assert rel(got, Waves()(x).numpy()) < 1e-6
