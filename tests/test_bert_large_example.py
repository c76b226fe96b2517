"""examples/models/bert_large.py: BERT-Large + SQuAD span head (MLPerf BERT-99) in plain PyTorch,
imported with --torch."""

from __future__ import annotations

import contextlib
import importlib.util
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import CONFIGS, ROOT  # noqa: E402
from simulator import load_chip  # noqa: E402
from simulator.core.engine import run  # noqa: E402
from simulator.frontends.torch_import import import_module, import_torch  # noqa: E402
from simulator.tools.cli import main  # noqa: E402

PATH = ROOT / "examples" / "models" / "bert_large.py"
# per encoder layer, in order: Q, K, V projections, Q K^T, P V, attention output, FFN up, down
PER_LAYER = ["attention.self.query.matmul", "attention.self.key.matmul",
             "attention.self.value.matmul", "attention.self.matmul", "attention.self.matmul#1",
             "attention.output.dense.matmul", "intermediate.dense.matmul",
             "output.dense.matmul"]


def example():
    spec = importlib.util.spec_from_file_location("bert_large_example", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def closed_form_macs(layers, b, s, h, i):
    """Per layer and sample: Q, K, V and output projections 4*S*H*H; Q K^T and P V over all
    heads 2*S*S*H (heads x S*S*(H/heads) each); FFN 2*S*H*I. Span head: S*H*2."""
    return layers * (4 * s * h * h + 2 * s * s * h + 2 * s * h * i) * b + b * s * h * 2


def rel(got, want):
    return np.linalg.norm(got - want) / np.linalg.norm(want)


def check_structure(program, layers):
    arr = [op for op in program.ops if op.unit == "array"]
    assert len(arr) == layers * len(PER_LAYER) + 1  # + the span head
    names = [op.name for op in arr]
    want = [f"bert.encoder.layer.{n}.{s}" for n in range(layers) for s in PER_LAYER]
    assert names == want + ["qa_outputs.matmul"]


def test_tiny_bert_through_the_torch_importer_equals_pytorch():
    """make_tiny (2 layers, hidden 64) via import_torch (the CLI's --torch): both span logits
    equal PyTorch's within 1e-4 on an fp32 chip; 2 x 8 + 1 array ops; MACs the closed form."""
    mod = example()
    im = import_torch(f"{PATH}:make_tiny")
    model, (ids, types) = mod.make_tiny()
    values = im.inputs(0)
    assert im.data == ["input_ids", "token_type_ids"]
    np.testing.assert_array_equal(values["input_ids"], ids.numpy())
    np.testing.assert_array_equal(values["token_type_ids"], types.numpy())
    rep = run(load_chip(CONFIGS / "h100.yaml", {"dtype": "fp32"}), im.program, values)
    with torch.no_grad():
        want = model(ids, types)
    assert len(im.program.outputs) == 2
    for out, w in zip(im.program.outputs, want):
        assert rep.values[out].shape == tuple(w.shape) == (2, 32)
        assert rel(rep.values[out], w.numpy()) <= 1e-4
    check_structure(im.program, 2)
    cfg = mod.TINY
    assert rep.macs == closed_form_macs(2, 2, 32, cfg["hidden"], cfg["intermediate"])


def test_tiny_bert_with_a_padding_mask_equals_pytorch():
    """The optional attention_mask (Hugging Face's additive -10000) imports and computes
    PyTorch's values."""
    model, (ids, types) = example().make_tiny()
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    im = import_module(model, (ids, types, mask))
    rep = run(load_chip(CONFIGS / "h100.yaml", {"dtype": "fp32"}), im.program, im.inputs(0))
    with torch.no_grad():
        want = model(ids, types, mask)
    for out, w in zip(im.program.outputs, want):
        assert rel(rep.values[out], w.numpy()) <= 1e-4


def test_tiny_bert_runs_from_the_command_line():
    """The documented command's form, on the tiny variant and two --input shapes."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["run", str(CONFIGS / "h100.yaml"), "--set", "dtype=int8", "--torch",
                     f"{PATH}:make_tiny", "--input", "4x16", "--input", "4x16"])
    assert code == 0, err.getvalue()
    assert "cycles" in out.getvalue()


def test_full_bert_large_has_24_layers_of_array_ops_and_the_closed_form_macs():
    """make() at full size (334M parameters; batch 1, seq 384): 24 x 8 array ops + the span
    head, and the array ops' MACs equal 24*(4SH^2 + 2S^2H + 2SHI)*B + B*S*H*2 with H = 1024,
    I = 4096. (About 15 s and 3 GB peak RSS, most of it the importer's copy of the weights.)"""
    im = import_torch(f"{PATH}:make")
    assert im.data == ["input_ids", "token_type_ids"]
    # BertModel's 335,143,938 (bert-large-uncased) less the pooler's 1,049,600, plus the
    # head's 2,050
    assert sum(v.size for k, v in im.values.items() if k not in im.data) == 334_094_338
    check_structure(im.program, 24)
    rep = run(load_chip(CONFIGS / "h100.yaml", {"dtype": "int8"}), im.program)
    array_macs = sum(op.macs for op in rep.ops if op.unit == "array")
    assert array_macs == rep.macs == closed_form_macs(24, 1, 384, 1024, 4096)
    assert rep.macs == 123_212_660_736
