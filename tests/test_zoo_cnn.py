"""The zoo's ImageNet CNNs (ResNet-50, MobileNetV2, EfficientNet-B0): the chip's fp32 output
against the numpy twin, PyTorch's torchvision-structured twins (tests/torch_zoo.py) against the
numpy twin, the Program's MACs against PyTorch's FlopCounterMode, and timing-only runs at
224 x 224 on an edge and a datacentre chip; ReLU6's ``clip`` elementwise kind."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import CONFIGS
from simulator import WorkloadError, load_chip
from simulator.core.engine import run
from simulator.core.program import Conv2d, MatMul, Program
from simulator.kernels.zoo import build_zoo

FP32 = load_chip(CONFIGS / "tpu-v4-mxu.yaml", {"dtype": "fp32"})

# The small functional runs: the full networks on 32 x 32 images (the last stages run at 1 x 1).
CNN_SMALL = {"resnet50": dict(image=32), "mobilenet-v2": dict(image=32),
             "efficientnet-b0": dict(image=32)}
NAMES = sorted(CNN_SMALL)

# Multiply-accumulates of the conv and linear layers at batch 1, 224 x 224 (torchvision's
# published figures: ResNet-50 4.09 GMACs, MobileNetV2 0.30, EfficientNet-B0 0.39).
MACS_224 = {"resnet50": 4_089_184_256, "mobilenet-v2": 300_774_272,
            "efficientnet-b0": 385_814_752}
# torchvision's published parameter counts (weights and biases; BatchNorm's running statistics
# are buffers, not parameters).
TORCHVISION_PARAMS = {"resnet50": 25_557_032, "mobilenet-v2": 3_504_872,
                      "efficientnet-b0": 5_288_548}


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def small(name, batch=2):
    m = build_zoo(f"zoo:{name}", batch=batch, **CNN_SMALL[name])
    return m, m.inputs(seed=3)


def program_macs(p):
    return sum(math.prod(p.gemm_shape(op)) * p.gemm_count(op) for op in p.ops
               if isinstance(op, (Conv2d, MatMul)))


@pytest.mark.parametrize("name", NAMES)
def test_fp32_output_equals_numpy_twin(name):
    m, vals = small(name)
    got = run(FP32, m.program, vals).values[m.output]
    want = m.numpy(vals)
    assert got.shape == want.shape == (2, 1000) and np.all(np.isfinite(got))
    assert np.std(want) > 0.01  # the logits are not a constant (every block contributes)
    assert rel(got, want) < 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_the_torchvision_twin_with_the_zoo_weights_equals_the_numpy_twin(name):
    torch = pytest.importorskip("torch")
    import torch_zoo as TZ
    m, vals = small(name)
    mod = TZ.build_module(name)
    params = m.net.init_params(3)
    TZ.copy_zoo_params(mod, name, params)
    # every tensor of the torchvision state_dict is one of the zoo's parameters, one to one
    keys = [TZ.torch_key(name, k)[0] for k in params]
    assert sorted(keys) == sorted(k for k in mod.state_dict() if "num_batches_tracked" not in k)
    assert sum(p.numel() for p in mod.parameters()) == TORCHVISION_PARAMS[name]
    with torch.no_grad():
        got = mod(*TZ.torch_inputs(name, vals)).numpy()
    want = m.numpy(vals)
    assert got.shape == want.shape
    assert rel(got, want) < 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_program_macs_equal_pytorch_flop_counter_at_224(name):
    """ResNet-50 4,089,184,256 MACs (4.09 G), MobileNetV2 300,774,272 (0.30 G), EfficientNet-B0
    385,814,752 (0.39 G): the sum over the Program's array ops of M x N x K x GEMM count equals
    half of FlopCounterMode's convolution and linear FLOPs of the PyTorch twin, exactly."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode
    import torch_zoo as TZ
    m = build_zoo(f"zoo:{name}")
    assert m.sizes == {"batch": 1, "image": 224}
    mod = TZ.build_module(name).to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        mod(torch.empty(1, 3, 224, 224, device="meta"))
    counts = {str(k).split(".")[-1]: v for k, v in counter.get_flop_counts()["Global"].items()}
    conv_linear = sum(v for k, v in counts.items() if k in ("convolution", "addmm", "mm"))
    assert counts["convolution"] > 0 and counts["addmm"] > 0
    assert conv_linear == counter.get_total_flops()  # nothing else was counted
    assert program_macs(m.program) * 2 == conv_linear
    assert program_macs(m.program) == MACS_224[name]


@pytest.mark.parametrize("name", NAMES)
def test_torchvision_shapes_depthwise_convs_and_parameter_counts(name):
    m = build_zoo(f"zoo:{name}")
    p = m.program
    assert p.shapes[m.output] == (1, 1000)
    convs = [op for op in p.ops if isinstance(op, Conv2d)]
    assert p.shapes[convs[0].output] == ((1, 64, 112, 112) if name == "resnet50"
                                        else (1, 32, 112, 112))
    pool = next(op for op in p.ops if op.name == "avgpool")
    width = 2048 if name == "resnet50" else 1280
    assert p.shapes[pool.inputs[0]] == (1, width, 7, 7) and p.shapes[pool.output] == (1, width)
    dw = [op for op in convs if op.groups > 1]
    for op in dw:  # depthwise: one filter per channel, groups == channels
        c = p.shapes[op.inputs[0]][1]
        assert op.groups == c == p.shapes[op.output][1] and p.shapes[op.inputs[1]][1] == 1
    assert len(dw) == {"resnet50": 0, "mobilenet-v2": 17, "efficientnet-b0": 16}[name]
    n_convs = {"resnet50": 53, "mobilenet-v2": 52, "efficientnet-b0": 81}[name]
    assert len(convs) == n_convs  # EfficientNet-B0: 49 + 2 SE convs in each of its 16 blocks
    bn_stats = sum(math.prod(s) for k, (s, _) in m.net.params.items()
                   if k.endswith((".mean", ".var")))
    total = sum(math.prod(s) for s, _ in m.net.params.values())
    assert total - bn_stats == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("config", ["edge-tpu", "h100"])
@pytest.mark.parametrize("name", NAMES)
def test_timing_only_at_224_on_edge_and_datacentre_chips(name, config):
    chip = load_chip(CONFIGS / f"{config}.yaml")
    m = build_zoo(f"zoo:{name}")
    rep = run(chip, m.program)
    assert rep.total_cycles > 0 and rep.compute_cycles > 0
    assert program_macs(m.program) == MACS_224[name]
    # the array's MACs, and the depthwise layers' multiply-adds as lane-ops where the chip runs
    # them on the vector unit (h100: array.depthwise vector)
    on_vector = [o for o in rep.ops if (o.grouped or {}).get("mapping") == "vector"]
    assert bool(on_vector) == (chip.array.depthwise == "vector" and name != "resnet50")
    dw_macs = sum(math.prod(m.program.gemm_shape(op)) * m.program.gemm_count(op)
                  for op in m.program.ops if op.name in {o.name for o in on_vector})
    assert sum(o.events["vector_lane_ops"] for o in on_vector) == dw_macs
    assert rep.macs == MACS_224[name] - dw_macs
    assert len(rep.ops) == len(m.program.ops)


@pytest.mark.parametrize("text, kw, match", [
    ("zoo:resnet50", {"image": 16}, "image: must be in"),
    ("zoo:mobilenet-v2", {"seq": 8}, "takes no --seq"),
    ("zoo:efficientnet-b0", {"batch": 0}, "batch: must be in"),
])
def test_bad_sizes_are_one_line(text, kw, match):
    with pytest.raises(WorkloadError, match=match) as err:
        build_zoo(text, **kw)
    assert "\n" not in str(err.value)


def test_every_cnn_is_in_the_zoo():
    from simulator.kernels.zoo import MODELS
    assert set(CNN_SMALL) <= set(MODELS)


# --------------------------------------------------------------------------- ReLU6 (clip)

def test_clip_is_relu6_on_the_vector_unit_in_one_compare_pass():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(0, 5, (2, 8, 5, 5)).astype(np.float32)
    p = Program("relu6")
    p.input("x", x.shape)
    p.elementwise("r6", "clip", "x", params=(0.0, 6.0), out="y")
    p.elementwise("r", "relu", "x", out="z")
    rep = run(FP32, p, {"x": x})
    want = torch.nn.functional.relu6(torch.from_numpy(x)).numpy()
    assert np.array_equal(rep.values["y"], want)
    assert (want == 6).any() and (want == 0).any()  # both bounds were reached
    rows = {r.name: r for r in rep.ops}
    assert rows["r6"].total_cycles == rows["r"].total_cycles > 0  # one compare-class pass


@pytest.mark.parametrize("params", [(), (0.0,), (6.0, 0.0)])
def test_clip_needs_lo_and_hi(params):
    p = Program("bad")
    p.input("x", (4, 4))
    with pytest.raises(WorkloadError, match="clip takes params"):
        p.elementwise("c", "clip", "x", params=params)
