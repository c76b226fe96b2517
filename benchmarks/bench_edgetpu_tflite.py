"""The Edge TPU table (issue 27): four int8 TFLite models built in code on configs/edge-tpu.yaml,
our latency beside Coral's published latency for the same architecture, as a ratio.

Each model is built in Keras with random weights (weights=None; the values do not change the
timing), converted by TensorFlow's own converter to a full-integer int8 file (calibrated on
random inputs, int8 input and output, per-channel weights) and imported with
simulator.frontends.tflite_import (the `--tflite` road); the Program runs timing only. Printed
per model: cycles, ms at the chip's clock, MACs, Coral's figure and the ratio ours / Coral's.
The table and its sources are in docs/edgetpu-table.md.

    .venv/bin/python benchmarks/bench_edgetpu_tflite.py [--markdown] [CONFIG]

The models:

- MobileNet V1 (1.0, 224x224) and MobileNet V2 (1.0, 224x224): keras.applications, as Coral's
  table names them.
- EfficientNet-Lite0 (224x224): EfficientNet-B0's stages (kernels, strides, expansions,
  repeats) without squeeze-excite, ReLU6 in place of swish (built here, `efficientnet_lite0`).
- SSD-MobileNetV2 (300x300): Keras' MobileNetV2 backbone, SSD's extra feature layers and 1x1
  box / class convolutions on six feature maps (19, 10, 5, 3, 2, 1 pixels square; 3 anchors
  on the first, 6 on the rest; 91 classes), the heads' outputs reshaped and concatenated.
  No anchor decoding and no non-maximum suppression: Coral's SSD models end in the
  TFLite_Detection_PostProcess custom op, which the Edge TPU compiler leaves to the CPU.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

# Coral's published figures (copied, not tuned): ms per inference at batch 1.
BENCH_URL = "https://coral.ai/docs/edgetpu/benchmarks/"
DETECT_URL = "https://coral.ai/models/object-detection/"
LITE_URL = "https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite"


@dataclass(frozen=True)
class Published:
    """One published latency: ``ms`` (milliseconds per inference), where it was measured and
    its source."""
    ms: float
    hardware: str
    citation: str
    url: str


PUBLISHED = {
    "mobilenet-v1": [
        Published(2.4, "USB Accelerator (USB 3.0), desktop CPU", "Coral, 'Edge TPU performance "
                  "benchmarks', Table 1, row MobileNet v1 (224x224)", BENCH_URL),
        Published(2.4, "Dev Board", "Coral, 'Edge TPU performance benchmarks', Table 1, row "
                  "MobileNet v1 (224x224)", BENCH_URL)],
    "mobilenet-v2": [
        Published(2.6, "USB Accelerator (USB 3.0), desktop CPU", "Coral, 'Edge TPU performance "
                  "benchmarks', Table 1, row MobileNet v2 (224x224)", BENCH_URL),
        Published(2.6, "Dev Board", "Coral, 'Edge TPU performance benchmarks', Table 1, row "
                  "MobileNet v2 (224x224)", BENCH_URL)],
    "efficientnet-lite0": [
        Published(3.8, "Pixel 4 Edge TPU (not a Coral device)", "tensorflow/tpu, EfficientNet-"
                  "Lite README, row efficientnet-lite0, column INT8 TPU latency", LITE_URL)],
    "ssd-mobilenet-v2": [
        Published(7.3, "Coral Edge TPU (the page's Latency column)", "Coral, 'Object detection' "
                  "models, row SSD MobileNet V2, 90 objects, 300x300x3, TF1", DETECT_URL),
        Published(7.2, "USB Accelerator (USB 3.0), desktop CPU", "Coral, 'Edge TPU performance "
                  "benchmarks', Table 1, row MobileNet v2 SSD (labelled 224x224)", BENCH_URL),
        Published(14.0, "Dev Board", "Coral, 'Edge TPU performance benchmarks', Table 1, row "
                  "MobileNet v2 SSD (labelled 224x224)", BENCH_URL)],
}

# EfficientNet-B0's stages: (repeats, kernel, first stride, expansion, output channels).
B0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
             (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def _keras():
    """Return the keras module (Keras 3, TensorFlow backend)."""
    import keras
    return keras


def mobilenet_v1(size: int = 224):
    """Return Keras' MobileNet (V1, alpha 1.0) at ``size`` x ``size``, batch 1, random weights."""
    keras = _keras()
    return keras.applications.MobileNet(weights=None, input_tensor=keras.Input(
        (size, size, 3), batch_size=1))


def mobilenet_v2(size: int = 224):
    """Return Keras' MobileNetV2 (alpha 1.0) at ``size`` x ``size``, batch 1, random weights."""
    keras = _keras()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return keras.applications.MobileNetV2(weights=None, input_tensor=keras.Input(
            (size, size, 3), batch_size=1))


def efficientnet_lite0(size: int = 224, classes: int = 1000):
    """Return EfficientNet-Lite0 at ``size`` x ``size``, batch 1: EfficientNet-B0's stem (3x3/2,
    32), its seven stages of inverted residual blocks (B0_STAGES) without squeeze-excite and
    with ReLU6, the 1x1 head (1280), global average pooling and a dense classifier; batch norm
    after each convolution (the converter folds it), a residual add where a block keeps its
    size and width."""
    keras = _keras()
    L = keras.layers

    def bn_relu6(y, act=True):
        y = L.BatchNormalization()(y)
        return L.ReLU(6.0)(y) if act else y

    x = keras.Input((size, size, 3), batch_size=1)
    y = bn_relu6(L.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(x))
    cin = 32
    for repeats, k, stride, expand, cout in B0_STAGES:
        for i in range(repeats):
            s = stride if i == 0 else 1
            inp = y
            if expand != 1:
                y = bn_relu6(L.Conv2D(cin * expand, 1, use_bias=False)(y))
            y = bn_relu6(L.DepthwiseConv2D(k, strides=s, padding="same", use_bias=False)(y))
            y = bn_relu6(L.Conv2D(cout, 1, use_bias=False)(y), act=False)
            if s == 1 and cin == cout:
                y = L.Add()([inp, y])
            cin = cout
    y = bn_relu6(L.Conv2D(1280, 1, use_bias=False)(y))
    y = L.GlobalAveragePooling2D()(y)
    y = L.Dense(classes, activation="softmax")(y)
    return keras.Model(x, y, name="efficientnet_lite0")


def ssd_mobilenet_v2(size: int = 300, classes: int = 91):
    """Return an SSD-MobileNetV2 detector at ``size`` x ``size``, batch 1: Keras' MobileNetV2
    backbone (features at block_13_expand_relu and out_relu), four extra layers (1x1 then 3x3
    stride 2: 256/512, 128/256, 128/256, 64/128), and per feature map a 1x1 box convolution
    (anchors x 4) and a 1x1 class convolution (anchors x ``classes``); outputs: boxes (1, A, 4)
    and class logits (1, A, classes), A anchors in all. No post-processing."""
    keras = _keras()
    L = keras.layers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = keras.applications.MobileNetV2(weights=None, include_top=False,
                                              input_tensor=keras.Input((size, size, 3),
                                                                       batch_size=1))
    feats = [base.get_layer("block_13_expand_relu").output, base.get_layer("out_relu").output]
    y = feats[-1]
    for mid, out in [(256, 512), (128, 256), (128, 256), (64, 128)]:
        y = L.ReLU(6.0)(L.Conv2D(mid, 1)(y))
        y = L.ReLU(6.0)(L.Conv2D(out, 3, strides=2, padding="same")(y))
        feats.append(y)
    boxes, scores = [], []
    for i, f in enumerate(feats):
        anchors = 3 if i == 0 else 6
        boxes.append(L.Reshape((-1, 4))(L.Conv2D(anchors * 4, 1)(f)))
        scores.append(L.Reshape((-1, classes))(L.Conv2D(anchors * classes, 1)(f)))
    return keras.Model(base.input, [L.Concatenate(axis=1)(boxes),
                                    L.Concatenate(axis=1)(scores)], name="ssd_mobilenet_v2")


MODELS = {  # name -> (label, builder, input size)
    "mobilenet-v1": ("MobileNet V1 (1.0, 224x224)", mobilenet_v1, 224),
    "mobilenet-v2": ("MobileNet V2 (1.0, 224x224)", mobilenet_v2, 224),
    "efficientnet-lite0": ("EfficientNet-Lite0 (224x224)", efficientnet_lite0, 224),
    "ssd-mobilenet-v2": ("SSD-MobileNetV2 (300x300, no NMS)", ssd_mobilenet_v2, 300),
}


def keras_macs(model) -> int:
    """Return the multiply-accumulates of ``model``'s Conv2D, DepthwiseConv2D and Dense layers
    (a count from the layers' shapes: output elements x kernel taps x input channels per
    group), the work the array does; elementwise and pooling ops are not counted."""
    keras = _keras()
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += int(np.prod(layer.output.shape[1:])) * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            total += int(np.prod(layer.output.shape[1:])) * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.output.shape[1:])) * layer.input.shape[-1]
    return total


def to_int8_tflite(model, size: int, samples: int = 4, seed: int = 0) -> bytes:
    """Return ``model`` converted by tf.lite.TFLiteConverter to a full-integer int8 flatbuffer
    (int8 input and output; calibrated on ``samples`` uniform random inputs in [-1, 1])."""
    import tensorflow as tf
    rng = np.random.default_rng(seed)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: (
        [rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)] for _ in range(samples))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its saved signature
        return conv.convert()


@dataclass
class Row:
    """One model's row: ``cycles`` (array clock cycles), ``ms`` (milliseconds at the chip's
    clock), ``macs`` (the imported Program's MACs), ``keras_macs`` (keras_macs of the built
    model) and the build + convert and import seconds."""
    name: str
    label: str
    cycles: int
    ms: float
    macs: int
    keras_macs: int
    convert_s: float
    import_s: float


def measure(name: str, chip, folder: Path) -> Row:
    """Build, convert and import model ``name`` (a key of MODELS) into ``folder`` and return
    its Row on ``chip`` (timing only)."""
    from simulator.core.engine import run
    from simulator.frontends.tflite_import import import_tflite
    label, build, size = MODELS[name]
    t0 = time.perf_counter()
    model = build(size)
    path = folder / f"{name}_int8.tflite"
    path.write_bytes(to_int8_tflite(model, size))
    t1 = time.perf_counter()
    imported = import_tflite(str(path))
    t2 = time.perf_counter()
    rep = run(chip, imported.program)
    return Row(name, label, rep.total_cycles, rep.time_s * 1e3, rep.macs, keras_macs(model),
               t1 - t0, t2 - t1)


def markdown(rows: list[Row]) -> str:
    """Return the docs' table (one line per published figure) as Markdown text."""
    lines = ["| Model | MACs | Our cycles | Our ms | Published ms (where) | Ours / published |",
             "|---|---:|---:|---:|---|---:|"]
    for r in rows:
        for p in PUBLISHED[r.name]:
            lines.append(f"| {r.label} | {r.macs / 1e6:.0f} M | {r.cycles:,} | {r.ms:.2f} | "
                         f"{p.ms:g} ({p.hardware}; [{p.citation}]({p.url})) | "
                         f"{r.ms / p.ms:.2f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import tempfile

    from simulator import load_chip
    md = "--markdown" in argv
    args = [a for a in argv if a != "--markdown"]
    chip = load_chip(args[0] if args else str(ROOT / "configs" / "edge-tpu.yaml"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            r = measure(name, chip, Path(tmp))
            rows.append(r)
            pub = " ".join(f"{p.ms:g} ms ({p.hardware}) ratio {r.ms / p.ms:.2f};"
                           for p in PUBLISHED[name])
            print(f"{r.label:<36} {r.cycles:>10,} cycles {r.ms:7.2f} ms  {r.macs / 1e6:7.1f} M MACs"
                  f" (Keras layers {r.keras_macs / 1e6:.1f} M)  build+convert {r.convert_s:.1f} s,"
                  f" import {r.import_s:.2f} s | published: {pub}", flush=True)
    if md:
        print()
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
