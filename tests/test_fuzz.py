"""Robustness: mutated shipped configs, random workloads and malformed topologies never give a
traceback or a hang; each run succeeds or exits 2 with one line naming where the problem is.

The suite runs FUZZ_EXAMPLES examples (default 300); the README's fuzz command runs 10,000.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import CONFIGS
from simulator.tools.cli import main

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
SHIPPED = sorted(p for p in CONFIGS.glob("*.yaml"))
# no deadline: the first example may compile numba kernels (a fresh cache in CI)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.integers(-10**30, 10**30), st.sampled_from([0, -1, 1, 2**31, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.text(max_size=12), st.sampled_from(["os", "ws", "is", "full", "active", "int8", "bf16",
                                           "auto", "tiles", "1e9", "-0", ".nan"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                          max_size=2))


def paths(d, prefix=()):
    for k, v in d.items():
        yield prefix + (k,)
        if isinstance(v, dict):
            yield from paths(v, prefix + (k,))


@st.composite
def mutated_config(draw):
    src = draw(st.sampled_from(SHIPPED))
    text = src.read_text()
    data = yaml.safe_load(text)
    kind = draw(st.sampled_from(["value", "delete", "unknown", "syntax", "truncate", "nesting",
                                 "none"]))
    all_paths = list(paths(data))
    if kind == "syntax":
        pos = draw(st.integers(0, len(text)))
        junk = draw(st.sampled_from([":", "[", "{", "\t", "- ", "'", '"', "\n  x", "&a", "*b",
                                     "!!python/object:os.system", "%YAML 9.9\n"]))
        return text[:pos] + junk + text[pos:]
    if kind == "truncate":
        return text[:draw(st.integers(0, len(text)))]
    if kind != "none":
        path = draw(st.sampled_from(all_paths))
        parent = data
        for p in path[:-1]:
            parent = parent[p]
        if kind == "value":
            parent[path[-1]] = draw(scalars)
        elif kind == "delete":
            del parent[path[-1]]
        elif kind == "unknown":
            parent[draw(st.text(min_size=1, max_size=8))] = draw(scalars)
        else:  # nesting: a section becomes a scalar or a scalar a mapping
            parent[path[-1]] = draw(scalars) if isinstance(parent[path[-1]], dict) else {
                "x": parent[path[-1]]}
    return yaml.safe_dump(data, sort_keys=False)


gemm_text = st.one_of(
    st.tuples(st.integers(-3, 5000), st.integers(-3, 5000), st.integers(-3, 5000)).map(
        lambda t: "x".join(map(str, t))),
    st.sampled_from(["", "x", "1x1", "1x1x1x1", "axbxc", "1e3x4x4", "64X64X64", "4*4*4",
                     "99999999999999x1x1", " 8 x 8 x 8 "]),
    st.text(max_size=12))

overrides = st.lists(st.one_of(
    st.tuples(st.sampled_from(["array.rows", "array.cols", "array.dataflow", "clock_hz",
                               "dtype", "buffers.a.bytes", "dram.bandwidth_bytes_per_s",
                               "array.count", "array.split", "nope", "array", ""]),
              st.one_of(st.integers(-5, 70000).map(str), st.sampled_from(
                  ["ws", "os", "x", "[1", "{}", ".inf", "-1e9", "true", "", "null"]))).map(
        lambda kv: f"{kv[0]}={kv[1]}"),
    st.text(max_size=10)), max_size=3)

LOCATION = re.compile(r"^(\S.*?:\d+: |--gemm |--set |--topology |systolic-sim|"
                      r"train: |plot |--model |--torch |--input |--batch )")


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def check(code, out, err):
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    if code == 2:
        assert out == "" and err.endswith("\n") and err.count("\n") == 1, err
        assert LOCATION.match(err), err
    else:
        assert err == "" and out


@SETTINGS
@given(text=mutated_config(), gemm=gemm_text, sets=overrides, json_out=st.booleans())
def test_fuzz_config_and_gemm(tmp_path_factory, text, gemm, sets, json_out):
    cfg = tmp_path_factory.mktemp("fz") / "chip.yaml"
    cfg.write_text(text)
    argv = ["run", str(cfg), "--gemm", gemm]
    for s in sets:
        argv += ["--set", s]
    if json_out:
        argv.append("--json")
    code, out, err = run(argv)
    check(code, out, err)
    if code == 2 and err.startswith(str(cfg)):
        assert re.match(re.escape(str(cfg)) + r":\d+: ", err)


topology_rows = st.lists(st.lists(st.one_of(st.integers(-2, 300).map(str), st.text(max_size=4),
                                            st.just("")), min_size=0, max_size=11),
                         max_size=5)


@SETTINGS
@given(header=st.sampled_from(["Layer, M, N, K,", "Layer name, IFMAP Height, IFMAP Width, "
                               "Filter Height, Filter Width, Channels, Num Filter, Strides,",
                               "garbage", ""]),
       rows=topology_rows, name=st.sampled_from(["gemmini", "scalesim-compat", "tpu-v1"]))
def test_fuzz_topologies(tmp_path_factory, header, rows, name):
    path = tmp_path_factory.mktemp("tp") / "t.csv"
    path.write_text(header + "\n" + "\n".join(", ".join(r) for r in rows) + "\n")
    code, out, err = run(["run", str(CONFIGS / f"{name}.yaml"), "--topology", str(path)])
    check(code, out, err)
    if code == 2:
        assert err.startswith(f"{path}:")


@settings(max_examples=max(20, EXAMPLES // 10), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(model=st.one_of(st.sampled_from(["linear:10:1", "mlp:4:8:2", "linear:3", "mlp:0:1:1",
                                        "cnn:1:1", "linear:70000:1"]), st.text(max_size=10)),
       batch=st.integers(-2, 300), steps=st.integers(-1, 3),
       lr=st.sampled_from(["0.01", "-1", "nan", "1e-3", "x"]))
def test_fuzz_train(model, batch, steps, lr):
    code, out, err = run(["train", str(CONFIGS / "tpu-v4-mxu.yaml"), "--model", model,
                          "--batch", str(batch), "--steps", str(steps), "--lr", lr, "--json"])
    check(code, out, err)


TORCH_MODELS = """
import torch
from torch import nn

def cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))

def with_example():
    return nn.Sequential(nn.Linear(6, 4), nn.GELU(), nn.LayerNorm(4)), torch.randn(2, 6)

def unsupported():
    class M(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, 1)
    return M()

def not_a_module():
    return "cnn"
"""

torch_inputs = st.lists(st.one_of(
    st.lists(st.integers(-1, 12), min_size=0, max_size=5).map(lambda d: "x".join(map(str, d))),
    st.sampled_from(["2x3x8x8", "1x3x5x5", "2x6", "3x6", "2x3x8", "2x4x8x8", "x", "2x3x8x8x1"]),
    st.text(max_size=8)), max_size=2)


@settings(max_examples=max(10, EXAMPLES // 15), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(factory=st.sampled_from(["cnn", "with_example", "unsupported", "not_a_module", "nope"]),
       inputs=torch_inputs, command=st.sampled_from(["run", "train"]), json_out=st.booleans())
def test_fuzz_torch_models(tmp_path_factory, factory, inputs, command, json_out):
    path = tmp_path_factory.mktemp("tm") / "models.py"
    path.write_text(TORCH_MODELS)
    argv = [command, str(CONFIGS / "tpu-v4-mxu.yaml"), "--torch", f"{path}:{factory}"]
    for shape in inputs:
        argv += [f"--input={shape}"]
    argv += ["--json"] if json_out else []
    argv += ["--steps", "1", "--timing"] if command == "train" else []
    code, out, err = run(argv)
    check(code, out, err)
    if factory in ("unsupported", "not_a_module", "nope"):
        assert code == 2
def _small_onnx() -> bytes:
    """A small valid ONNX model (Conv, Relu, GlobalAveragePool, Flatten, Gemm) as bytes."""
    import numpy as np
    import onnx
    h = onnx.helper
    rng = np.random.default_rng(0)
    inits = [onnx.numpy_helper.from_array(v, n) for n, v in (
        ("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
        ("fw", rng.standard_normal((5, 4)).astype(np.float32)),
        ("fb", np.zeros(5, np.float32)))]
    g = h.make_graph([h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                      h.make_node("Relu", ["c"], ["r"]),
                      h.make_node("GlobalAveragePool", ["r"], ["p"]),
                      h.make_node("Flatten", ["p"], ["f"]),
                      h.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)], "g",
                     [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ("batch", 3, 8, 8))],
                     [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                     initializer=inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 18)]).SerializeToString()


@settings(max_examples=max(30, EXAMPLES // 5), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(cut=st.one_of(st.none(), st.integers(0, 2000)),
       flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=3),
       inputs=st.lists(st.one_of(st.sampled_from(["x=2x3x8x8", "x=2x4x8x8", "x=1x3x2x2", "x=0x3x8x8",
                                                  "x=2x3x8", "y=2x3x8x8", "x=", "=2", "x=2x3x8x8x1",
                                                  "x=1x3x8x8"]),
                                 st.text(max_size=8)), max_size=2))
def test_fuzz_onnx_files_and_input_shapes(tmp_path_factory, cut, flips, inputs):
    """Truncated, corrupted and valid ONNX files with good and bad --input shapes: a report, or
    one line and exit status 2."""
    pytest = __import__("pytest")
    pytest.importorskip("onnx")
    data = bytearray(_small_onnx())
    for pos, byte in flips:
        if pos < len(data):
            data[pos] = byte
    if cut is not None:
        data = data[:cut]
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    path.write_bytes(bytes(data))
    argv = ["run", str(CONFIGS / "tpu-v4-mxu.yaml"), "--onnx", str(path)]
    for text in inputs:
        argv += ["--input", text]
    code, out, err = run(argv)
    check(code, out, err)
