"""MobileNetV2 and EfficientNet-B0 (torchvision's definitions) as Programs, with numpy twins.

MobileNetV2 (Sandler et al., CVPR 2018; torchvision.models.mobilenet_v2, width 1.0): a 3x3/2
stem convolution to 32 channels, 17 inverted residual blocks and a 1x1 head convolution to 1280
channels, each convolution followed by inference BatchNorm and ReLU6 (the blocks' last, linear
1x1 projection by BatchNorm only), global average pool and a linear classifier to 1000 classes
(dropout is off in eval). A block of expansion t widens its input to ``t * cin`` channels with a
1x1 convolution (absent when t = 1), filters each channel with a depthwise 3x3 convolution
(stride 1 or 2) and projects to ``cout`` with a 1x1 convolution; it adds its input when the
stride is 1 and ``cin == cout``. Stages (t, c, n, s): (1, 16, 1, 1), (6, 24, 2, 2),
(6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1).

EfficientNet-B0 (Tan and Le, ICML 2019; torchvision.models.efficientnet_b0, width and depth 1.0):
a 3x3/2 stem to 32 channels, 16 MBConv blocks in 7 stages and a 1x1 head convolution to 1280,
with SiLU activations (x * sigmoid(x)), global average pool and a linear classifier to 1000
classes (stochastic depth and dropout are identities in eval). An MBConv block is the inverted
residual above with kernel 3 or 5 and, between the depthwise convolution and the projection,
squeeze-and-excitation: the mean over H and W, a 1x1 convolution with bias to
``max(1, cin // 4)`` channels, SiLU, a 1x1 convolution with bias back, sigmoid, and the product
with the block's activations (broadcast over H and W). Stages (t, k, s, cin, cout, n):
(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
(6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1). BatchNorm eps is
PyTorch's default 1e-5 in both networks (torchvision uses 1e-3 only from B5 up).

Every convolution is a ``Conv2d`` on the array; a depthwise convolution is one with
``groups == channels`` (one GEMM per group unless the chip packs groups). ReLU6 is one
``clip`` pass (0, 6) on the vector unit; SiLU is a sigmoid pass and a multiply pass.

Names follow torchvision's feature indices: MobileNetV2's ``stem`` (features.0), ``block1`` ..
``block17`` (features.1-17), ``head`` (features.18); EfficientNet-B0's ``stem`` (features.0),
``stage{s}.{b}`` (features.s.b, s = 1..7), ``head`` (features.8); both end in ``avgpool`` and
``fc`` (classifier.1). A conv-BN-activation unit ``U`` has ops ``U.conv``, ``U.bn``, ``U.act``
(and ``U.act.sigmoid`` for SiLU); a block's units are ``expand``, ``dw``, ``se.fc1``/``se.fc2``
and ``project``.
"""

from __future__ import annotations

import math

import numpy as np

from . import nnref as R
from .netbuild import Net
from .resnet import _bn, _conv

__all__ = ["MOBILENET_V2", "EFFICIENTNET_B0", "mobilenet_v2_plan", "efficientnet_b0_plan",
           "build_mobilenet_v2", "mobilenet_v2_numpy", "build_efficientnet_b0",
           "efficientnet_b0_numpy"]

MOBILENET_V2 = {"stem": 32, "stages": ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2),
                                       (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                                       (6, 320, 1, 1)),
                "last": 1280, "classes": 1000, "bn_eps": 1e-5}
EFFICIENTNET_B0 = {"stem": 32, "stages": ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2),
                                          (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                                          (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
                                          (6, 3, 1, 192, 320, 1)),
                   "last": 1280, "classes": 1000, "bn_eps": 1e-5}

F32 = np.float32


def mobilenet_v2_plan(cfg: dict = MOBILENET_V2) -> list[dict]:
    """Return MobileNetV2's inverted residual blocks in order: name, cin, hidden (expanded)
    channels, cout, kernel, stride, squeeze channels (0: no SE) and whether the input is added."""
    plan, cin, i = [], cfg["stem"], 1
    for t, c, n, s in cfg["stages"]:
        for j in range(n):
            stride = s if j == 0 else 1
            plan.append({"name": f"block{i}", "cin": cin, "hidden": int(round(cin * t)),
                         "cout": c, "kernel": 3, "stride": stride, "se": 0,
                         "res": stride == 1 and cin == c})
            cin, i = c, i + 1
    return plan


def efficientnet_b0_plan(cfg: dict = EFFICIENTNET_B0) -> list[dict]:
    """Return EfficientNet-B0's MBConv blocks in order (the fields of mobilenet_v2_plan)."""
    plan = []
    for s, (t, k, stride, cin, cout, n) in enumerate(cfg["stages"], 1):
        for b in range(n):
            ci, st = (cin, stride) if b == 0 else (cout, 1)
            plan.append({"name": f"stage{s}.{b}", "cin": ci, "hidden": ci * t, "cout": cout,
                         "kernel": k, "stride": st, "se": max(1, ci // 4),
                         "res": st == 1 and ci == cout})
    return plan


# --------------------------------------------------------------------------- Programs

def _act(net: Net, name: str, x: str, act: str | None) -> str:
    p = net.p
    if act is None:
        return x
    if act == "relu6":
        return p.elementwise(name, "clip", x, params=(0.0, 6.0), out=f"{name}.out")
    s = p.elementwise(f"{name}.sigmoid", "sigmoid", x, out=f"{name}.sigmoid.out")
    return p.elementwise(name, "mul", x, s, out=f"{name}.out")  # SiLU


def _cna(net: Net, name: str, x: str, cin: int, cout: int, k: int, stride: int, act: str | None,
         eps: float, groups: int = 1) -> str:
    """Conv2dNormActivation: conv (no bias, padding (k - 1) // 2), BatchNorm, activation."""
    h = _conv(net, f"{name}.conv", x, cin, cout, k, stride, (k - 1) // 2, groups)
    return _act(net, f"{name}.act", _bn(net, f"{name}.bn", h, cout, eps), act)


def _se(net: Net, name: str, x: str, c: int, sq: int) -> str:
    """Squeeze-and-excitation: mean over H, W; 1x1 conv + bias; SiLU; 1x1 conv + bias; sigmoid;
    times x."""
    p = net.p
    s = p.reduce(f"{name}.pool", "mean", x, axis=(2, 3), keepdims=True, out=f"{name}.pool.out")
    for fc, ci, co in (("fc1", c, sq), ("fc2", sq, c)):
        n = f"{name}.{fc}"
        bound = 1 / math.sqrt(ci)
        w = net.param(f"{n}.W", (co, ci, 1, 1), ("uniform", -bound, bound))
        b = net.param(f"{n}.b", (co, 1, 1), ("uniform", -bound, bound))
        s = p.conv2d(n, s, w, out=f"{n}.conv")
        s = p.elementwise(f"{n}.bias", "add", s, b, out=f"{n}.out")
        if fc == "fc1":
            s = _act(net, f"{name}.act", s, "silu")
    s = p.elementwise(f"{name}.gate", "sigmoid", s, out=f"{name}.gate.out")
    return p.elementwise(f"{name}.scale", "mul", x, s, out=f"{name}.out")


def _build_mobile(label: str, plan: list[dict], cfg: dict, act: str, batch: int, image: int,
                  fc_std: float | None) -> tuple[Net, str]:
    net = Net(f"{label} b{batch} i{image}")
    p, eps = net.p, cfg["bn_eps"]
    x = net.input("x", (batch, 3, image, image))
    h = _cna(net, "stem", x, 3, cfg["stem"], 3, 2, act, eps)
    for blk in plan:
        n, cin, hid, cout = blk["name"], blk["cin"], blk["hidden"], blk["cout"]
        o = h
        if hid != cin:
            o = _cna(net, f"{n}.expand", o, cin, hid, 1, 1, act, eps)
        o = _cna(net, f"{n}.dw", o, hid, hid, blk["kernel"], blk["stride"], act, eps, groups=hid)
        if blk["se"]:
            o = _se(net, f"{n}.se", o, hid, blk["se"])
        o = _cna(net, f"{n}.project", o, hid, cout, 1, 1, None, eps)
        if blk["res"]:
            o = p.elementwise(f"{n}.add", "add", o, h, out=f"{n}.add.out")
        h = o
    cout = plan[-1]["cout"]
    h = _cna(net, "head", h, cout, cfg["last"], 1, 1, act, eps)
    h = p.reduce("avgpool", "mean", h, axis=(2, 3), keepdims=False, out="avgpool.out")
    return net, net.linear("fc", h, cfg["last"], cfg["classes"], std=fc_std)


def build_mobilenet_v2(batch: int, image: int, cfg: dict = MOBILENET_V2) -> tuple[Net, str]:
    """Return (Net, output) of MobileNetV2 on ``image`` x ``image`` RGB input; output logits
    (batch, classes). Input: x (batch, 3, image, image). The classifier's weights and bias are
    N(0, 0.01) (torchvision draws the weight so and zeroes the bias)."""
    return _build_mobile("mobilenet-v2", mobilenet_v2_plan(cfg), cfg, "relu6", batch, image, 0.01)


def build_efficientnet_b0(batch: int, image: int,
                          cfg: dict = EFFICIENTNET_B0) -> tuple[Net, str]:
    """Return (Net, output) of EfficientNet-B0 on ``image`` x ``image`` RGB input; output logits
    (batch, classes). Input: x (batch, 3, image, image)."""
    return _build_mobile("efficientnet-b0", efficientnet_b0_plan(cfg), cfg, "silu", batch, image,
                         None)


# --------------------------------------------------------------------------- numpy twins

def _twin(w: dict, x: np.ndarray, mm, plan: list[dict], eps: float, act) -> np.ndarray:
    def cna(name, v, stride, pad, groups=1, activation=act):
        v = R.conv2d(v, w[f"{name}.conv.W"], stride, pad, mm, groups=groups)
        v = R.batchnorm(v, w[f"{name}.bn.g"], w[f"{name}.bn.b"], w[f"{name}.bn.mean"],
                        w[f"{name}.bn.var"], eps)
        return v if activation is None else activation(v)

    h = cna("stem", x, 2, 1)
    for blk in plan:
        n, k = blk["name"], blk["kernel"]
        o = h
        if blk["hidden"] != blk["cin"]:
            o = cna(f"{n}.expand", o, 1, 0)
        o = cna(f"{n}.dw", o, blk["stride"], (k - 1) // 2, groups=blk["hidden"])
        if blk["se"]:
            s = o.mean(axis=(2, 3), keepdims=True, dtype=F32)
            s = _silu(R.conv2d(s, w[f"{n}.se.fc1.W"], 1, 0, mm) + w[f"{n}.se.fc1.b"])
            s = R.sigmoid(R.conv2d(s, w[f"{n}.se.fc2.W"], 1, 0, mm) + w[f"{n}.se.fc2.b"])
            o = o * s
        o = cna(f"{n}.project", o, 1, 0, activation=None)
        h = o + h if blk["res"] else o
    h = cna("head", h, 1, 0)
    return R.linear(h.mean(axis=(2, 3), dtype=F32), w["fc.W"], w["fc.b"], mm)


def _relu6(v: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(v, F32(0)), F32(6))


def _silu(v: np.ndarray) -> np.ndarray:
    return v * R.sigmoid(v)


def mobilenet_v2_numpy(w: dict, x: dict, mm, cfg: dict = MOBILENET_V2) -> np.ndarray:
    """Return MobileNetV2's logits in numpy float32 (the twin of build_mobilenet_v2)."""
    return _twin(w, x["x"], mm, mobilenet_v2_plan(cfg), cfg["bn_eps"], _relu6)


def efficientnet_b0_numpy(w: dict, x: dict, mm, cfg: dict = EFFICIENTNET_B0) -> np.ndarray:
    """Return EfficientNet-B0's logits in numpy float32 (the twin of build_efficientnet_b0)."""
    return _twin(w, x["x"], mm, efficientnet_b0_plan(cfg), cfg["bn_eps"], _silu)
