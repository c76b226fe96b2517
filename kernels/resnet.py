"""ResNet-18 and ResNet-50 (torchvision's definitions) and a small CNN as Programs, with numpy
twins.

ResNet-18: conv1 7x7/2 (64), BatchNorm, ReLU, max pool 3x3/2, four stages of two BasicBlocks
(64, 128, 256, 512 channels; stages 2-4 start with stride 2 and a 1x1/2 projection shortcut),
global average pool, fc to 1000 classes (He et al., CVPR 2016; torchvision.models.resnet18).
ResNet-50: the same stem and head, four stages of 3, 4, 6 and 3 Bottleneck blocks (1x1 reduce to
``planes``, 3x3, 1x1 expand to 4 x ``planes``; 256, 512, 1024, 2048 output channels). As in
torchvision (ResNet v1.5) the stride of a stage's first block is on its 3x3 convolution, and
every block whose input and output differ in stride or width (the first of each stage, stage 1
included) has a 1x1 projection shortcut; fc 2048 -> 1000 (torchvision.models.resnet50).
Output sizes follow PyTorch's floor convention: 224 -> 112 (conv1) -> 56 -> 28 -> 14 -> 7.
(SCALE-Sim's topology CSV, configs/topologies/resnet18.csv, uses a ceiling and gets 113 for
conv1.) BatchNorm is inference BatchNorm folded into a per-channel scale and shift on the vector
unit. Every convolution is one GEMM per group on the array (im2col); the fc is one GEMM.

Both networks come from one builder (``build_resnet``) and one twin (``resnet_numpy``) that walk
the same block plan (``resnet_plan``); ``cfg["block"]`` picks BasicBlock or Bottleneck.
"""

from __future__ import annotations

import math

import numpy as np

from . import nnref as R
from .netbuild import Net

__all__ = ["RESNET18", "RESNET50", "SMALL_CNN", "build_resnet", "resnet_numpy", "resnet_plan",
           "build_resnet18", "resnet18_numpy", "build_resnet50", "resnet50_numpy",
           "build_small_cnn", "small_cnn_numpy"]

RESNET18 = {"stages": (64, 128, 256, 512), "blocks": (2, 2, 2, 2), "classes": 1000,
            "bn_eps": 1e-5, "block": "basic"}
RESNET50 = {"stages": (64, 128, 256, 512), "blocks": (3, 4, 6, 3), "classes": 1000,
            "bn_eps": 1e-5, "block": "bottleneck"}
SMALL_CNN = {"channels": (8, 16), "classes": 10}

EXPANSION = {"basic": 1, "bottleneck": 4}  # a block's output channels per ``planes``


def _conv(net: Net, name: str, x: str, cin: int, cout: int, k: int, stride: int, pad: int,
          groups: int = 1) -> str:
    std = math.sqrt(2.0 / (cout * k * k))  # kaiming normal, fan_out = cout k k (torchvision)
    w = net.param(f"{name}.W", (cout, cin // groups, k, k), ("normal", std))
    return net.p.conv2d(name, x, w, stride=stride, padding=pad, groups=groups, out=f"{name}.out")


def _bn(net: Net, name: str, x: str, c: int, eps: float) -> str:
    ps = [net.param(f"{name}.{k}", (c,), init) for k, init in (
        ("g", ("uniform", 0.8, 1.2)), ("b", ("normal", 0.05)), ("mean", ("normal", 0.05)),
        ("var", ("uniform", 0.8, 1.2)))]
    return net.p.vector(name, "batchnorm", x, *ps, out=f"{name}.out", eps=eps)


def _relu(net: Net, name: str, x: str) -> str:
    return net.p.elementwise(name, "relu", x, out=f"{name}.out")


def resnet_plan(cfg: dict) -> list[dict]:
    """Return the residual blocks of ResNet table ``cfg`` in order: per block its name
    (``layer{stage}.{index}``), convolutions (cin, cout, kernel, stride, padding; the last one's
    output is added to the shortcut), the shortcut's projection (cin, cout, stride) or None for
    the identity, and its output channels."""
    kind = cfg.get("block", "basic")
    exp = EXPANSION[kind]
    plan, cin = [], 64
    for s, (planes, blocks) in enumerate(zip(cfg["stages"], cfg["blocks"])):
        for b in range(blocks):
            stride = 2 if s > 0 and b == 0 else 1
            cout = planes * exp
            if kind == "basic":
                convs = [(cin, planes, 3, stride, 1), (planes, planes, 3, 1, 1)]
            else:  # v1.5: the stride is on the 3x3
                convs = [(cin, planes, 1, 1, 0), (planes, planes, 3, stride, 1),
                         (planes, cout, 1, 1, 0)]
            down = (cin, cout, stride) if stride != 1 or cin != cout else None
            plan.append({"name": f"layer{s + 1}.{b}", "convs": convs, "down": down, "out": cout})
            cin = cout
    return plan


def build_resnet(batch: int, image: int, cfg: dict = RESNET18,
                 name: str = "resnet") -> tuple[Net, str]:
    """Return (Net, output) of the ResNet of table ``cfg`` on ``image`` x ``image`` RGB input;
    output logits (batch, classes). Input: x (batch, 3, image, image). Ops of a block
    ``layerS.B``: convI, bnI, reluI for each convolution I but the last, then the last conv and
    bn, the shortcut's down.conv and down.bn, add, and the ReLU after the add (relu2 of a
    BasicBlock, relu3 of a Bottleneck)."""
    net = Net(f"{name} b{batch} i{image}")
    p, eps = net.p, cfg["bn_eps"]
    x = net.input("x", (batch, 3, image, image))
    h = _relu(net, "relu1", _bn(net, "bn1", _conv(net, "conv1", x, 3, 64, 7, 2, 3), 64, eps))
    h = p.vector("maxpool", "maxpool2d", h, out="maxpool.out", kernel=3, stride=2, padding=1)
    cout = 64
    for blk in resnet_plan(cfg):
        n, convs = blk["name"], blk["convs"]
        o = h
        for i, (ci, co, k, st, pad) in enumerate(convs, 1):
            o = _bn(net, f"{n}.bn{i}", _conv(net, f"{n}.conv{i}", o, ci, co, k, st, pad), co, eps)
            if i < len(convs):
                o = _relu(net, f"{n}.relu{i}", o)
        sc = h
        if blk["down"] is not None:
            ci, co, st = blk["down"]
            sc = _bn(net, f"{n}.down.bn", _conv(net, f"{n}.down.conv", h, ci, co, 1, st, 0),
                     co, eps)
        o = p.elementwise(f"{n}.add", "add", o, sc, out=f"{n}.add.out")
        h = _relu(net, f"{n}.relu{len(convs)}", o)
        cout = blk["out"]
    h = p.reduce("avgpool", "mean", h, axis=(2, 3), keepdims=False, out="avgpool.out")
    return net, net.linear("fc", h, cout, cfg["classes"])


def resnet_numpy(w: dict, x: dict, mm, cfg: dict = RESNET18) -> np.ndarray:
    """Return the logits of the ResNet of table ``cfg`` in numpy float32 (the twin of
    build_resnet)."""
    eps = cfg["bn_eps"]

    def bn(name, v):
        return R.batchnorm(v, w[f"{name}.g"], w[f"{name}.b"], w[f"{name}.mean"],
                           w[f"{name}.var"], eps)

    def relu(v):
        return np.maximum(v, np.float32(0))
    h = relu(bn("bn1", R.conv2d(x["x"], w["conv1.W"], 2, 3, mm)))
    h = R.maxpool2d(h, 3, 2, 1)
    for blk in resnet_plan(cfg):
        n, convs = blk["name"], blk["convs"]
        o = h
        for i, (_ci, _co, _k, st, pad) in enumerate(convs, 1):
            o = bn(f"{n}.bn{i}", R.conv2d(o, w[f"{n}.conv{i}.W"], st, pad, mm))
            if i < len(convs):
                o = relu(o)
        sc = h
        if blk["down"] is not None:
            sc = bn(f"{n}.down.bn", R.conv2d(h, w[f"{n}.down.conv.W"], blk["down"][2], 0, mm))
        h = relu(o + sc)
    h = h.mean(axis=(2, 3), dtype=np.float32)
    return R.linear(h, w["fc.W"], w["fc.b"], mm)


def build_resnet18(batch: int, image: int, cfg: dict = RESNET18) -> tuple[Net, str]:
    """Return (Net, output) of ResNet-18 (see build_resnet)."""
    return build_resnet(batch, image, cfg, "resnet18")


def resnet18_numpy(w: dict, x: dict, mm, cfg: dict = RESNET18) -> np.ndarray:
    """Return ResNet-18's logits in numpy float32 (the twin of build_resnet18)."""
    return resnet_numpy(w, x, mm, cfg)


def build_resnet50(batch: int, image: int, cfg: dict = RESNET50) -> tuple[Net, str]:
    """Return (Net, output) of ResNet-50 (see build_resnet)."""
    return build_resnet(batch, image, cfg, "resnet50")


def resnet50_numpy(w: dict, x: dict, mm, cfg: dict = RESNET50) -> np.ndarray:
    """Return ResNet-50's logits in numpy float32 (the twin of build_resnet50)."""
    return resnet_numpy(w, x, mm, cfg)


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
