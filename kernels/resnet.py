"""ResNet-18 (torchvision's definition) and a small CNN as Programs, with numpy twins.

ResNet-18: conv1 7x7/2 (64), BatchNorm, ReLU, max pool 3x3/2, four stages of two BasicBlocks
(64, 128, 256, 512 channels; stages 2-4 start with stride 2 and a 1x1/2 projection shortcut),
global average pool, fc to 1000 classes (He et al., CVPR 2016; torchvision.models.resnet18).
Output sizes follow PyTorch's floor convention: 224 -> 112 (conv1) -> 56 -> 28 -> 14 -> 7.
(SCALE-Sim's topology CSV, configs/topologies/resnet18.csv, uses a ceiling and gets 113 for
conv1.) BatchNorm is inference BatchNorm folded into a per-channel scale and shift on the vector
unit. Every convolution is one GEMM per group on the array (im2col); the fc is one GEMM.
"""

from __future__ import annotations

import math

import numpy as np

from . import nnref as R
from .netbuild import Net

__all__ = ["RESNET18", "SMALL_CNN", "build_resnet18", "resnet18_numpy", "build_small_cnn",
           "small_cnn_numpy"]

RESNET18 = {"stages": (64, 128, 256, 512), "blocks": (2, 2, 2, 2), "classes": 1000,
            "bn_eps": 1e-5}
SMALL_CNN = {"channels": (8, 16), "classes": 10}


def _conv(net: Net, name: str, x: str, cin: int, cout: int, k: int, stride: int, pad: int) -> str:
    std = math.sqrt(2.0 / (cout * k * k))  # kaiming normal, fan_out (torchvision)
    w = net.param(f"{name}.W", (cout, cin, k, k), ("normal", std))
    return net.p.conv2d(name, x, w, stride=stride, padding=pad, out=f"{name}.out")


def _bn(net: Net, name: str, x: str, c: int, eps: float) -> str:
    ps = [net.param(f"{name}.{k}", (c,), init) for k, init in (
        ("g", ("uniform", 0.8, 1.2)), ("b", ("normal", 0.05)), ("mean", ("normal", 0.05)),
        ("var", ("uniform", 0.8, 1.2)))]
    return net.p.vector(name, "batchnorm", x, *ps, out=f"{name}.out", eps=eps)


def _relu(net: Net, name: str, x: str) -> str:
    return net.p.elementwise(name, "relu", x, out=f"{name}.out")


def build_resnet18(batch: int, image: int, cfg: dict = RESNET18) -> tuple[Net, str]:
    """Return (Net, output) of ResNet-18 on ``image`` x ``image`` RGB input; output logits
    (batch, classes). Input: x (batch, 3, image, image)."""
    net = Net(f"resnet18 b{batch} i{image}")
    p, eps = net.p, cfg["bn_eps"]
    x = net.input("x", (batch, 3, image, image))
    h = _relu(net, "relu1", _bn(net, "bn1", _conv(net, "conv1", x, 3, 64, 7, 2, 3), 64, eps))
    h = p.vector("maxpool", "maxpool2d", h, out="maxpool.out", kernel=3, stride=2, padding=1)
    cin = 64
    for s, (cout, blocks) in enumerate(zip(cfg["stages"], cfg["blocks"])):
        for b in range(blocks):
            stride = 2 if s > 0 and b == 0 else 1
            n = f"layer{s + 1}.{b}"
            o = _relu(net, f"{n}.relu1", _bn(net, f"{n}.bn1",
                                            _conv(net, f"{n}.conv1", h, cin, cout, 3, stride, 1),
                                            cout, eps))
            o = _bn(net, f"{n}.bn2", _conv(net, f"{n}.conv2", o, cout, cout, 3, 1, 1), cout, eps)
            sc = h
            if stride != 1 or cin != cout:
                sc = _bn(net, f"{n}.down.bn", _conv(net, f"{n}.down.conv", h, cin, cout, 1,
                                                    stride, 0), cout, eps)
            o = p.elementwise(f"{n}.add", "add", o, sc, out=f"{n}.add.out")
            h = _relu(net, f"{n}.relu2", o)
            cin = cout
    h = p.reduce("avgpool", "mean", h, axis=(2, 3), keepdims=False, out="avgpool.out")
    return net, net.linear("fc", h, cin, cfg["classes"])


def resnet18_numpy(w: dict, x: dict, mm, cfg: dict = RESNET18) -> np.ndarray:
    """Return ResNet-18's logits in numpy float32 (the twin of build_resnet18)."""
    eps = cfg["bn_eps"]

    def bn(name, v):
        return R.batchnorm(v, w[f"{name}.g"], w[f"{name}.b"], w[f"{name}.mean"],
                           w[f"{name}.var"], eps)

    def relu(v):
        return np.maximum(v, np.float32(0))
    h = relu(bn("bn1", R.conv2d(x["x"], w["conv1.W"], 2, 3, mm)))
    h = R.maxpool2d(h, 3, 2, 1)
    cin = 64
    for s, (cout, blocks) in enumerate(zip(cfg["stages"], cfg["blocks"])):
        for b in range(blocks):
            stride = 2 if s > 0 and b == 0 else 1
            n = f"layer{s + 1}.{b}"
            o = relu(bn(f"{n}.bn1", R.conv2d(h, w[f"{n}.conv1.W"], stride, 1, mm)))
            o = bn(f"{n}.bn2", R.conv2d(o, w[f"{n}.conv2.W"], 1, 1, mm))
            sc = h
            if stride != 1 or cin != cout:
                sc = bn(f"{n}.down.bn", R.conv2d(h, w[f"{n}.down.conv.W"], stride, 0, mm))
            h = relu(o + sc)
            cin = cout
    h = h.mean(axis=(2, 3), dtype=np.float32)
    return R.linear(h, w["fc.W"], w["fc.b"], mm)


def build_small_cnn(batch: int, image: int, cfg: dict = SMALL_CNN) -> tuple[Net, str]:
    """Return (Net, output) of a small CNN for training tests: conv 3x3 (3 -> c1), ReLU,
    max pool 2x2, conv 3x3 (c1 -> c2), ReLU, global average pool, linear to ``classes``.
    Convolutions have biases; weights follow PyTorch's default U(+-1/sqrt(fan_in))."""
    net = Net(f"small-cnn b{batch} i{image}")
    p = net.p
    c1, c2 = cfg["channels"]
    x = net.input("x", (batch, 3, image, image))

    def conv(name, v, cin, cout):
        bound = 1 / math.sqrt(cin * 9)
        wt = net.param(f"{name}.W", (cout, cin, 3, 3), ("uniform", -bound, bound))
        bias = net.param(f"{name}.b", (cout, 1, 1), ("uniform", -bound, bound))
        y = p.conv2d(name, v, wt, padding=1, out=f"{name}.conv")
        return p.elementwise(f"{name}.bias", "add", y, bias, out=f"{name}.out")
    h = _relu(net, "relu1", conv("conv1", x, 3, c1))
    h = p.vector("pool1", "maxpool2d", h, out="pool1.out", kernel=2, stride=2)
    h = _relu(net, "relu2", conv("conv2", h, c1, c2))
    h = p.reduce("gap", "mean", h, axis=(2, 3), keepdims=False, out="gap.out")
    return net, net.linear("fc", h, c2, cfg["classes"])


def small_cnn_numpy(w: dict, x: dict, mm, cfg: dict = SMALL_CNN) -> np.ndarray:
    """Return the small CNN's logits in numpy float32 (the twin of build_small_cnn)."""
    def relu(v):
        return np.maximum(v, np.float32(0))
    h = relu(R.conv2d(x["x"], w["conv1.W"], 1, 1, mm) + w["conv1.b"])
    h = R.maxpool2d(h, 2, 2, 0)
    h = relu(R.conv2d(h, w["conv2.W"], 1, 1, mm) + w["conv2.b"])
    return R.linear(h.mean(axis=(2, 3), dtype=np.float32), w["fc.W"], w["fc.b"], mm)
