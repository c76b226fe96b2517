"""The zoo's networks written in PyTorch as a user would write them, and the copy of a zoo Net's
seeded parameters into them (so the chip's values can be compared with PyTorch's).

Stable API (the ONNX importer's tests use it too; add, do not rename):

- ``MODULES[name](cfg)`` -> nn.Module for zoo model ``name`` with the zoo's hyperparameter
  table ``cfg`` (``kernels/transformer.scaled`` variants for small tests);
- ``build_module(name, cfg=None)`` -> the module, in eval mode (``cfg`` None: the zoo's table);
- ``copy_zoo_params(module, name, params)`` copies ``Net.init_params(seed)`` values into it;
- ``torch_inputs(name, values)`` -> the tuple of example inputs the module's forward takes, from
  the zoo's data inputs (``Net.make_inputs``: x, or ids and token types; GPT-2's causal mask is
  built inside the module);
- ``torch_key(name, key)`` -> (state_dict key, transform) of zoo parameter ``key``.

Layouts: the zoo's linear weights are (in, out), PyTorch's (out, in); the zoo's conv biases are
(out, 1, 1), PyTorch's (out,); the zoo's LSTM has one bias per layer (PyTorch's bias_ih, with
bias_hh zero).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simulator.kernels import lstm as L, mobile as MB, resnet as RN, transformer as T

__all__ = ["MODULES", "BasicBlock", "ResNet18", "SmallCNN", "SelfAttention", "PostLNLayer",
           "PreLNBlock", "TinyTransformer", "GPT2", "Bert", "ViT", "LSTMStack", "build_module",
           "copy_zoo_params", "torch_inputs", "torch_key", "ZOO_CFG", "Bottleneck", "ResNet",
           "ResNet50", "Conv2dNormActivation", "InvertedResidual", "MobileNetV2",
           "SqueezeExcitation", "MBConv", "EfficientNetB0"]


# --------------------------------------------------------------------------- CNNs

class BasicBlock(nn.Module):
    """torchvision's BasicBlock (two 3x3 convolutions, identity or 1x1 projection shortcut)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (ResNet v1.5: 1x1 reduce, 3x3 carrying the stride, 1x1 expand
    by 4; identity or 1x1 projection shortcut)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None,
                 eps: float = 1e-5):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, eps=eps)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=eps)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, eps=eps)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision.models.ResNet's structure: stem, four stages of ``block`` (BasicBlock or
    Bottleneck) as ``_make_layer`` builds them, global average pool, fc."""

    def __init__(self, block, cfg: dict):
        super().__init__()
        eps = cfg["bn_eps"]
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=eps)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for s, (planes, blocks) in enumerate(zip(cfg["stages"], cfg["blocks"])):
            layers = []
            for b in range(blocks):
                stride = 2 if s > 0 and b == 0 else 1
                down = None
                if stride != 1 or inplanes != planes * block.expansion:
                    down = nn.Sequential(
                        nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                        nn.BatchNorm2d(planes * block.expansion, eps=eps))
                kw = {"eps": eps} if block is Bottleneck else {}
                layers.append(block(inplanes, planes, stride, down, **kw))
                inplanes = planes * block.expansion
            setattr(self, f"layer{s + 1}", nn.Sequential(*layers))
        self.n_stages = len(cfg["stages"])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, cfg["classes"])

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for s in range(self.n_stages):
            x = getattr(self, f"layer{s + 1}")(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class ResNet18(ResNet):
    """torchvision.models.resnet18's structure (BasicBlock, [2, 2, 2, 2])."""

    def __init__(self, cfg: dict = RN.RESNET18):
        super().__init__(BasicBlock, cfg)


class ResNet50(ResNet):
    """torchvision.models.resnet50's structure (Bottleneck, [3, 4, 6, 3])."""

    def __init__(self, cfg: dict = RN.RESNET50):
        super().__init__(Bottleneck, cfg)


class Conv2dNormActivation(nn.Sequential):
    """torchvision.ops.Conv2dNormActivation: conv (no bias, padding (k - 1) // 2), BatchNorm,
    activation (none for a linear projection)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, activation_layer=nn.ReLU, eps: float = 1e-5):
        layers = [nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2,
                            groups=groups, bias=False), nn.BatchNorm2d(cout, eps=eps)]
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """torchvision's MobileNetV2 InvertedResidual: 1x1 expand (t != 1), depthwise 3x3, linear
    1x1 projection; the input is added when the stride is 1 and the widths agree."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, eps: float = 1e-5):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden, 1, activation_layer=nn.ReLU6, eps=eps))
        layers += [Conv2dNormActivation(hidden, hidden, 3, stride, groups=hidden,
                                        activation_layer=nn.ReLU6, eps=eps),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup, eps=eps)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.mobilenet_v2 (width 1.0): features (stem, 17 inverted residuals, 1x1
    head), adaptive average pool, classifier (Dropout 0.2, Linear)."""

    def __init__(self, cfg: dict = MB.MOBILENET_V2):
        super().__init__()
        eps = cfg["bn_eps"]
        cin = cfg["stem"]
        features = [Conv2dNormActivation(3, cin, 3, 2, activation_layer=nn.ReLU6, eps=eps)]
        for t, c, n, s in cfg["stages"]:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t, eps))
                cin = c
        features.append(Conv2dNormActivation(cin, cfg["last"], 1, activation_layer=nn.ReLU6,
                                             eps=eps))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(cfg["last"], cfg["classes"]))

    def forward(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: average pool, fc1 (1x1 conv), activation, fc2,
    sigmoid gate times the input."""

    def __init__(self, input_channels: int, squeeze_channels: int, activation=nn.ReLU):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x):
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return self.scale_activation(scale) * x


class MBConv(nn.Module):
    """torchvision's EfficientNet MBConv: 1x1 expand (t != 1), depthwise k x k, squeeze-excite
    (to max(1, cin // 4), SiLU), linear 1x1 projection; residual when stride 1 and widths agree
    (stochastic depth is the identity in eval, so it is left out)."""

    def __init__(self, expand_ratio: int, kernel: int, stride: int, cin: int, cout: int,
                 eps: float = 1e-5):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        hidden = cin * expand_ratio
        layers = []
        if hidden != cin:
            layers.append(Conv2dNormActivation(cin, hidden, 1, activation_layer=nn.SiLU, eps=eps))
        layers += [Conv2dNormActivation(hidden, hidden, kernel, stride, groups=hidden,
                                        activation_layer=nn.SiLU, eps=eps),
                   SqueezeExcitation(hidden, max(1, cin // 4), nn.SiLU),
                   Conv2dNormActivation(hidden, cout, 1, activation_layer=None, eps=eps)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        result = self.block(x)
        if self.use_res_connect:
            result += x
        return result


class EfficientNetB0(nn.Module):
    """torchvision.models.efficientnet_b0: features (stem, 7 stages of MBConv, 1x1 head to
    1280), adaptive average pool, classifier (Dropout 0.2, Linear)."""

    def __init__(self, cfg: dict = MB.EFFICIENTNET_B0):
        super().__init__()
        eps = cfg["bn_eps"]
        features = [Conv2dNormActivation(3, cfg["stem"], 3, 2, activation_layer=nn.SiLU, eps=eps)]
        for t, k, s, cin, cout, n in cfg["stages"]:
            features.append(nn.Sequential(*(MBConv(t, k, s if b == 0 else 1,
                                                   cin if b == 0 else cout, cout, eps)
                                            for b in range(n))))
        features.append(Conv2dNormActivation(cfg["stages"][-1][4], cfg["last"], 1,
                                             activation_layer=nn.SiLU, eps=eps))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2, inplace=True),
                                        nn.Linear(cfg["last"], cfg["classes"]))

    def forward(self, x):
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)


class SmallCNN(nn.Module):
    """The zoo's small CNN: conv 3x3, ReLU, max pool 2, conv 3x3, ReLU, mean pool, linear."""

    def __init__(self, cfg: dict = RN.SMALL_CNN):
        super().__init__()
        c1, c2 = cfg["channels"]
        self.conv1 = nn.Conv2d(3, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc = nn.Linear(c2, cfg["classes"])

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        h = F.relu(self.conv2(h))
        return self.fc(h.mean(dim=(2, 3)))


# --------------------------------------------------------------------------- transformers

class SelfAttention(nn.Module):
    """Multi-head self-attention with nn.Linear projections (separate q, k, v as BERT, or one
    fused c_attn as GPT-2) and F.scaled_dot_product_attention (causal for GPT-2)."""

    def __init__(self, d: int, heads: int, fused: bool = False, causal: bool = False):
        super().__init__()
        self.d, self.heads, self.fused, self.causal = d, heads, fused, causal
        if fused:
            self.qkv = nn.Linear(d, 3 * d)
        else:
            self.q = nn.Linear(d, d)
            self.k = nn.Linear(d, d)
            self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)

    def forward(self, x):
        b, s, d = x.shape
        if self.fused:
            q, k, v = self.qkv(x).split(self.d, dim=2)
        else:
            q, k, v = self.q(x), self.k(x), self.v(x)
        dh = d // self.heads
        q = q.view(b, s, self.heads, dh).transpose(1, 2)
        k = k.view(b, s, self.heads, dh).transpose(1, 2)
        v = v.view(b, s, self.heads, dh).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.o(o.transpose(1, 2).reshape(b, s, d))


class FFN(nn.Module):
    """fc1, activation, fc2."""

    def __init__(self, d: int, d_ff: int, act: nn.Module):
        super().__init__()
        self.fc1 = nn.Linear(d, d_ff)
        self.act = act
        self.fc2 = nn.Linear(d_ff, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class PostLNLayer(nn.Module):
    """Post-LN encoder layer (BERT, nn.TransformerEncoderLayer's default order)."""

    def __init__(self, cfg: dict, act: nn.Module):
        super().__init__()
        d = cfg["d_model"]
        self.attn = SelfAttention(d, cfg["heads"])
        self.ln1 = nn.LayerNorm(d, eps=cfg["ln_eps"])
        self.ffn = FFN(d, cfg["d_ff"], act)
        self.ln2 = nn.LayerNorm(d, eps=cfg["ln_eps"])

    def forward(self, x):
        x = self.ln1(self.attn(x) + x)
        return self.ln2(self.ffn(x) + x)


class PreLNBlock(nn.Module):
    """Pre-LN block (GPT-2, ViT)."""

    def __init__(self, cfg: dict, act: nn.Module, fused: bool = False, causal: bool = False):
        super().__init__()
        d = cfg["d_model"]
        self.ln1 = nn.LayerNorm(d, eps=cfg["ln_eps"])
        self.attn = SelfAttention(d, cfg["heads"], fused, causal)
        self.ln2 = nn.LayerNorm(d, eps=cfg["ln_eps"])
        self.mlp = FFN(d, cfg["d_ff"], act)

    def forward(self, x):
        x = self.attn(self.ln1(x)) + x
        return self.mlp(self.ln2(x)) + x


class TinyTransformer(nn.Module):
    """The zoo's tiny encoder: post-LN layers (ReLU), mean over the sequence, linear head."""

    def __init__(self, cfg: dict = T.TINY):
        super().__init__()
        self.layers = nn.ModuleList(PostLNLayer(cfg, nn.ReLU()) for _ in range(cfg["layers"]))
        self.head = nn.Linear(cfg["d_model"], cfg["classes"])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.head(x.mean(dim=1))


class GPT2(nn.Module):
    """GPT-2: token + position embeddings, pre-LN causal blocks (fused c_attn, GELU tanh),
    final LayerNorm, LM head tied to the token embedding."""

    def __init__(self, cfg: dict = T.GPT2_SMALL):
        super().__init__()
        d = cfg["d_model"]
        self.wte = nn.Embedding(cfg["vocab"], d)
        self.wpe = nn.Embedding(cfg["max_positions"], d)
        self.h = nn.ModuleList(PreLNBlock(cfg, nn.GELU(approximate="tanh"), fused=True,
                                          causal=True) for _ in range(cfg["layers"]))
        self.ln_f = nn.LayerNorm(d, eps=cfg["ln_eps"])
        self.lm_head = nn.Linear(d, cfg["vocab"], bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.wte(ids) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


class Bert(nn.Module):
    """BERT encoder: word + position + token-type embeddings, LayerNorm, post-LN layers
    (GELU erf form); output the last hidden states."""

    def __init__(self, cfg: dict = T.BERT_BASE):
        super().__init__()
        d = cfg["d_model"]
        self.word = nn.Embedding(cfg["vocab"], d)
        self.pos = nn.Embedding(cfg["max_positions"], d)
        self.tok_type = nn.Embedding(cfg["type_vocab"], d)
        self.ln = nn.LayerNorm(d, eps=cfg["ln_eps"])
        self.layers = nn.ModuleList(PostLNLayer(cfg, nn.GELU()) for _ in range(cfg["layers"]))

    def forward(self, ids, token_type):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word(ids) + self.pos(pos)
        x = self.ln(x + self.tok_type(token_type))
        for layer in self.layers:
            x = layer(x)
        return x


class ViT(nn.Module):
    """ViT: patch convolution, class token, position embeddings, pre-LN blocks (GELU), final
    LayerNorm, head on the class token."""

    def __init__(self, cfg: dict = T.VIT_B16, image: int = 224):
        super().__init__()
        d, ps = cfg["d_model"], cfg["patch"]
        self.patch = nn.Conv2d(cfg["channels"], d, ps, ps)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.zeros(1, (image // ps) ** 2 + 1, d))
        self.blocks = nn.ModuleList(PreLNBlock(cfg, nn.GELU()) for _ in range(cfg["layers"]))
        self.ln = nn.LayerNorm(d, eps=cfg["ln_eps"])
        self.head = nn.Linear(d, cfg["classes"])

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], dim=1) + self.pos
        for block in self.blocks:
            t = block(t)
        return self.head(self.ln(t)[:, 0])


class LSTMStack(nn.Module):
    """nn.LSTM (batch first); output the top layer's hidden state at every step."""

    def __init__(self, cfg: dict = L.LSTM_SPEECH):
        super().__init__()
        self.lstm = nn.LSTM(cfg["input"], cfg["hidden"], cfg["layers"], batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0]


ZOO_CFG = {"resnet18": RN.RESNET18, "small-cnn": RN.SMALL_CNN, "tiny-transformer": T.TINY,
           "gpt2-small": T.GPT2_SMALL, "bert-base": T.BERT_BASE, "vit-b16": T.VIT_B16,
           "lstm": L.LSTM_SPEECH, "resnet50": RN.RESNET50, "mobilenet-v2": MB.MOBILENET_V2,
           "efficientnet-b0": MB.EFFICIENTNET_B0}

MODULES = {"resnet18": ResNet18, "small-cnn": SmallCNN, "tiny-transformer": TinyTransformer,
           "gpt2-small": GPT2, "bert-base": Bert, "vit-b16": ViT, "lstm": LSTMStack,
           "resnet50": ResNet50, "mobilenet-v2": MobileNetV2, "efficientnet-b0": EfficientNetB0}


def build_module(name: str, cfg: dict | None = None, image: int | None = None) -> nn.Module:
    """Return zoo model ``name`` as an nn.Module in eval mode (``image``: ViT's image side,
    which sets its position table)."""
    cfg = cfg or ZOO_CFG[name]
    m = ViT(cfg, image or 224) if name == "vit-b16" else MODULES[name](cfg)
    return m.eval()


# --------------------------------------------------------------------------- parameters

def _t(v):
    return v.T


def _flat(v):
    return v.reshape(-1)


def _same(v):
    return v


_RN_KEYS = {"W": "weight", "g": "weight", "b": "bias", "mean": "running_mean",
            "var": "running_var"}


_BN_KEYS = {"g": "weight", "b": "bias", "mean": "running_mean", "var": "running_var"}


def _mobile_key(name: str, key: str):
    """The torchvision state_dict key of a MobileNetV2 / EfficientNet-B0 zoo parameter (the
    zoo's default tables; kernels/mobile.py names the units). torchvision's layout: a
    Conv2dNormActivation ``U`` holds ``U.0`` (conv) and ``U.1`` (BatchNorm); a MobileNetV2 block
    is ``features.i.conv`` = [expand,] dw, project conv, project BN; an EfficientNet block is
    ``features.s.b.block`` = [expand,] dw, SE (fc1, fc2), project."""
    base, _, leaf = key.rpartition(".")
    if base == "fc":
        return f"classifier.1.{'weight' if leaf == 'W' else 'bias'}", _t if leaf == "W" else _same
    unit, _, part = base.rpartition(".")  # part: conv or bn (fc1 or fc2 in an SE)
    tensor = "weight" if leaf == "W" else _BN_KEYS[leaf] if part == "bn" else "bias"
    cna = {"conv": "0", "bn": "1"}.get(part)  # index inside a Conv2dNormActivation
    mobilenet = name == "mobilenet-v2"
    plan = MB.mobilenet_v2_plan() if mobilenet else MB.efficientnet_b0_plan()
    if unit in ("stem", "head"):
        head = len(plan) + 1 if mobilenet else len(MB.EFFICIENTNET_B0["stages"]) + 1
        return f"features.{0 if unit == 'stem' else head}.{cna}.{tensor}", _same
    blk_name, sub = unit.rsplit(".", 1)  # block7.expand | stage3.1.dw | stage3.1.se
    blk = next(x for x in plan if x["name"] == blk_name)
    order = (["expand"] if blk["hidden"] != blk["cin"] else []) + ["dw"]
    if mobilenet:
        mod = f"features.{blk_name[len('block'):]}.conv"
        if sub == "project":  # a bare Conv2d then BatchNorm2d, not a Conv2dNormActivation
            return f"{mod}.{len(order) + (part == 'bn')}.{tensor}", _same
        return f"{mod}.{order.index(sub)}.{cna}.{tensor}", _same
    mod = f"features.{blk_name[len('stage'):]}.block"
    order += ["se", "project"]
    if sub == "se":
        return f"{mod}.{order.index('se')}.{part}.{tensor}", _same if leaf == "W" else _flat
    return f"{mod}.{order.index(sub)}.{cna}.{tensor}", _same


def torch_key(name: str, key: str):
    """Return (state_dict key, transform of the zoo value to PyTorch's layout) of zoo parameter
    ``key`` of model ``name``."""
    base, _, leaf = key.rpartition(".")
    if name in ("mobilenet-v2", "efficientnet-b0"):
        return _mobile_key(name, key)
    if name in ("resnet18", "resnet50", "small-cnn"):
        tb = base.replace(".down.conv", ".downsample.0").replace(".down.bn", ".downsample.1")
        if base == "fc":
            return f"fc.{'weight' if leaf == 'W' else 'bias'}", _t if leaf == "W" else _same
        if name == "small-cnn" and leaf == "b":
            return f"{base}.bias", _flat
        return f"{tb}.{_RN_KEYS[leaf]}", _same
    if name == "lstm":  # lstm{i}.W_ih / W_hh / b
        layer = base[4:]
        if leaf == "b":
            return f"lstm.bias_ih_l{layer}", _same
        return f"lstm.weight_{leaf[2:]}_l{layer}", _t
    if name == "gpt2-small":
        if key in ("wte", "wpe"):
            return f"{key}.weight", _same
    if name == "bert-base" and key.startswith("emb."):
        if key == "emb.ln.g":
            return "ln.weight", _same
        if key == "emb.ln.b":
            return "ln.bias", _same
        return {"emb.word": "word", "emb.pos": "pos", "emb.type": "tok_type"}[key] + ".weight", _same
    if name == "vit-b16":
        if key in ("cls", "pos"):
            return key, _same
        if key == "patch.W":
            return "patch.weight", _same
        if key == "patch.b":
            return "patch.bias", _flat
        base = "blocks." + base[1:] if base.startswith("b") and base[1:2].isdigit() else base
    if name == "tiny-transformer" or name == "bert-base":
        base = "layers." + base[1:] if base.startswith("l") and base[1:2].isdigit() else base
    if name == "gpt2-small" and base.startswith("h") and base[1:2].isdigit():
        base = "h." + base[1:]
    if leaf == "W":
        return f"{base}.weight", _t
    if leaf == "g":
        return f"{base}.weight", _same
    return f"{base}.bias", _same


def copy_zoo_params(module: nn.Module, name: str, params: dict[str, np.ndarray]) -> nn.Module:
    """Copy the zoo's parameter values ``params`` (name -> array, zoo layout) into ``module``;
    PyTorch parameters the zoo does not have (the LSTM's bias_hh) are zeroed. Returns the
    module. Raises KeyError when a zoo parameter has no place in the module."""
    sd = module.state_dict()
    done = set()
    with torch.no_grad():
        for key, value in params.items():
            tk, fn = torch_key(name, key)
            if tk not in sd:
                raise KeyError(f"{name}: zoo parameter {key} -> {tk} is not in the module")
            src = torch.from_numpy(np.ascontiguousarray(fn(np.asarray(value))))
            sd[tk].copy_(src.reshape(sd[tk].shape))
            done.add(tk)
        for tk, t in sd.items():
            if tk not in done and "bias_hh" in tk:
                t.zero_()
    return module


def torch_inputs(name: str, values: dict[str, np.ndarray]) -> tuple:
    """Return the forward's example inputs (torch tensors) from the zoo's data inputs."""
    if name in ("gpt2-small",):
        return (torch.from_numpy(values["ids"]),)
    if name == "bert-base":
        return torch.from_numpy(values["ids"]), torch.from_numpy(values["token_type"])
    return (torch.from_numpy(np.ascontiguousarray(values["x"])),)


def zoo_size_kwargs(name: str, shape: tuple[int, ...]) -> dict:
    """Return build_zoo's size keywords (batch, seq or image) for an input of ``shape``."""
    if name in ("resnet18", "small-cnn", "vit-b16", "resnet50", "mobilenet-v2",
                "efficientnet-b0"):
        return {"batch": shape[0], "image": shape[-1]}
    return {"batch": shape[0], "seq": shape[1]}



def tiny_factory():
    """A CLI factory (``--torch tests/torch_zoo.py:tiny_factory``): the zoo's tiny transformer
    with its zoo seed-0 parameters and example inputs x (2, 5, 64)."""
    from simulator.kernels.zoo import build_zoo
    m = build_zoo("zoo:tiny-transformer", batch=2, seq=5)
    mod = copy_zoo_params(build_module("tiny-transformer"), "tiny-transformer",
                          m.net.init_params(0))
    return mod, torch_inputs("tiny-transformer", m.net.make_inputs(0))
