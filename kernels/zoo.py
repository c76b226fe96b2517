"""The model zoo: whole networks as Programs, named ``zoo:NAME`` on the command line.

| name | network | sizes (defaults) |
|---|---|---|
| resnet18 | ResNet-18 (torchvision) | batch 1, image 224 |
| resnet50 | ResNet-50 (torchvision, v1.5) | batch 1, image 224 |
| mobilenet-v2 | MobileNetV2 (torchvision, width 1.0) | batch 1, image 224 |
| efficientnet-b0 | EfficientNet-B0 (torchvision) | batch 1, image 224 |
| bert-base | BERT-base encoder | batch 1, seq 128 (<= 512) |
| gpt2-small | GPT-2 small (124M) forward, causal, logits | batch 1, seq 1024 (<= 1024) |
| vit-b16 | ViT-B/16 | batch 1, image 224 (a multiple of 16) |
| lstm | 2-layer LSTM, 80 -> 1024 | batch 1, seq 100 |
| tiny-transformer | encoder d_model 64, 4 heads, 2 layers, mean pool, 10 classes | batch 8, seq 16 |
| small-cnn | 2 conv layers, pools, linear (training tests) | batch 8, image 16 |

Each entry builds its Program (``kernels.resnet``, ``kernels.mobile``, ``kernels.transformer``,
``kernels.lstm``), seeded initial parameters and inputs (no downloads), and a numpy twin of the
same maths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from simulator.errors import WorkloadError
from simulator.core.program import Program

from . import lstm, mobile, resnet, transformer
from .netbuild import Net

__all__ = ["MODELS", "ZooModel", "build_zoo", "is_zoo", "parse_zoo"]

MAX_BATCH = 4096
MAX_SEQ = 1 << 16
MAX_IMAGE = 4096


@dataclass(frozen=True)
class _Entry:
    build: Callable
    twin: Callable
    sizes: tuple[str, ...]  # which of batch, seq, image apply (after batch)
    defaults: dict
    limits: dict  # size -> (minimum, maximum, multiple of)
    about: str


MODELS: dict[str, _Entry] = {
    "resnet18": _Entry(resnet.build_resnet18, resnet.resnet18_numpy, ("image",),
                       {"batch": 1, "image": 224}, {"image": (32, MAX_IMAGE, 1)},
                       "ResNet-18 (torchvision), 1000 classes"),
    "resnet50": _Entry(resnet.build_resnet50, resnet.resnet50_numpy, ("image",),
                       {"batch": 1, "image": 224}, {"image": (32, MAX_IMAGE, 1)},
                       "ResNet-50 (torchvision v1.5, Bottleneck 3-4-6-3), 1000 classes"),
    "mobilenet-v2": _Entry(mobile.build_mobilenet_v2, mobile.mobilenet_v2_numpy, ("image",),
                           {"batch": 1, "image": 224}, {"image": (32, MAX_IMAGE, 1)},
                           "MobileNetV2 (torchvision, width 1.0, ReLU6), 1000 classes"),
    "efficientnet-b0": _Entry(mobile.build_efficientnet_b0, mobile.efficientnet_b0_numpy,
                              ("image",), {"batch": 1, "image": 224},
                              {"image": (32, MAX_IMAGE, 1)},
                              "EfficientNet-B0 (torchvision, SiLU, squeeze-excite), 1000 classes"),
    "bert-base": _Entry(transformer.build_bert, transformer.bert_numpy, ("seq",),
                        {"batch": 1, "seq": 128},
                        {"seq": (1, transformer.BERT_BASE["max_positions"], 1)},
                        "BERT-base encoder (12 layers, d 768)"),
    "gpt2-small": _Entry(transformer.build_gpt2, transformer.gpt2_numpy, ("seq",),
                         {"batch": 1, "seq": 1024},
                         {"seq": (1, transformer.GPT2_SMALL["max_positions"], 1)},
                         "GPT-2 small forward to the logits, causal"),
    "vit-b16": _Entry(transformer.build_vit, transformer.vit_numpy, ("image",),
                      {"batch": 1, "image": 224}, {"image": (16, MAX_IMAGE, 16)},
                      "ViT-B/16, 1000 classes"),
    "lstm": _Entry(lstm.build_lstm, lstm.lstm_numpy, ("seq",), {"batch": 1, "seq": 100},
                   {"seq": (1, 4096, 1)}, "2-layer LSTM, 80 -> 1024 (speech)"),
    "tiny-transformer": _Entry(transformer.build_tiny, transformer.tiny_numpy, ("seq",),
                               {"batch": 8, "seq": 16}, {"seq": (1, MAX_SEQ, 1)},
                               "encoder d_model 64, 4 heads, 2 layers, 10 classes"),
    "small-cnn": _Entry(resnet.build_small_cnn, resnet.small_cnn_numpy, ("image",),
                        {"batch": 8, "image": 16}, {"image": (4, MAX_IMAGE, 1)},
                        "2-conv CNN, 10 classes"),
}


@dataclass
class ZooModel:
    """A built zoo network: its Net (Program and initialisers), output tensor and twin."""

    name: str
    net: Net
    output: str
    twin: Callable[..., np.ndarray]
    sizes: dict

    @property
    def program(self) -> Program:
        """Return the network's Program."""
        return self.net.p

    def inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Return seeded parameters and data inputs: every input of the Program."""
        return {**self.net.init_params(seed), **self.net.make_inputs(seed)}

    def numpy(self, values: dict[str, np.ndarray], dtype: str = "fp32") -> np.ndarray:
        """Return the numpy twin's output for the given inputs (matmul operands rounded as a
        ``dtype`` chip rounds them)."""
        from .nnref import make_mm
        return self.twin(values, values, make_mm(dtype), **self.cfg_kw)

    cfg_kw: dict = None  # hyperparameter table override passed to the twin

    def __post_init__(self):
        if self.cfg_kw is None:
            self.cfg_kw = {}


def is_zoo(text: str) -> bool:
    """Return True when ``text`` names a zoo model (``zoo:NAME``)."""
    return text.strip().lower().startswith("zoo:")


def parse_zoo(text: str) -> str:
    """Return the zoo model name of ``zoo:NAME``; raise WorkloadError for an unknown one."""
    name = text.strip()[4:].strip().lower() if is_zoo(text) else text.strip().lower()
    if name not in MODELS:
        raise WorkloadError(f"--model {text}", "model", f"unknown zoo model {name!r} (known: "
                            f"{', '.join('zoo:' + m for m in MODELS)})")
    return name


def _check_size(model: str, key: str, value, limits: tuple[int, int, int]) -> int:
    lo, hi, mult = limits
    where = f"--model zoo:{model}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise WorkloadError(where, key, f"must be a positive integer, got {value!r}")
    if not lo <= value <= hi:
        raise WorkloadError(where, key, f"must be in [{lo}, {hi}] for zoo:{model}, got {value}")
    if value % mult:
        raise WorkloadError(where, key, f"must be a multiple of {mult} for zoo:{model}, got {value}")
    return int(value)


def build_zoo(text: str, batch: int | None = None, seq: int | None = None,
              image: int | None = None, cfg: dict | None = None) -> ZooModel:
    """Build zoo model ``text`` (``zoo:NAME`` or ``NAME``) at the given sizes (None: the
    model's default; a size the model does not take is an error). ``cfg`` overrides the
    hyperparameter table (small variants for tests). Raises WorkloadError."""
    name = parse_zoo(text)
    entry = MODELS[name]
    given = {"batch": batch, "seq": seq, "image": image}
    for key, value in given.items():
        if value is not None and key != "batch" and key not in entry.sizes:
            raise WorkloadError(f"--model zoo:{name}", key, f"zoo:{name} takes no --{key} "
                                f"(its sizes: --batch, --{', --'.join(entry.sizes)})")
    sizes = {"batch": _check_size(name, "batch", batch if batch is not None else
                                  entry.defaults["batch"], (1, MAX_BATCH, 1))}
    for key in entry.sizes:
        value = given[key] if given[key] is not None else entry.defaults[key]
        sizes[key] = _check_size(name, key, value, entry.limits[key])
    args = [sizes["batch"]] + [sizes[k] for k in entry.sizes]
    kw = {"cfg": cfg} if cfg is not None else {}
    net, out = entry.build(*args, **kw)
    net.p.outputs = [out]
    return ZooModel(name, net, out, entry.twin, sizes, kw)
