"""benchmarks/bench_edgetpu_tflite.py, the Edge TPU table of docs/edgetpu-table.md, on a slice:

- MobileNet V1 (224): the Keras layers' MACs equal the closed form of the MobileNet paper's
  Table 1 (569 M), the imported int8 Program's MACs equal them, and its row (MACs, cycles, ms)
  is the one docs/edgetpu-table.md shows;
- EfficientNet-Lite0 built in code: no squeeze-excite (no multiply), ReLU6 only, and the
  imported MACs equal the Keras layers' count; the SSD detector at a small size likewise, with
  its box and class outputs;
- the published MobileNet v2 figures equal those of calibration/published/coral_edgetpu.yaml.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
pytest.importorskip("tensorflow")
pytest.importorskip("tflite")

from conftest import CONFIGS, ROOT  # noqa: E402
from simulator import load_chip  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_edgetpu_tflite",
                                               ROOT / "benchmarks" / "bench_edgetpu_tflite.py")
B = importlib.util.module_from_spec(_spec)
sys.modules["bench_edgetpu_tflite"] = B  # its dataclasses look their module up
_spec.loader.exec_module(B)
EDGE = load_chip(str(CONFIGS / "edge-tpu.yaml"))


def mobilenet_v1_closed_form(size: int = 224, classes: int = 1000) -> int:
    """MACs of MobileNet V1 (alpha 1) from its layer table: a 3x3/2 convolution to 32
    channels, 13 depthwise-separable blocks, a 1024 -> classes classifier."""
    h = size // 2
    macs = h * h * 27 * 32
    c = 32
    for out, stride in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + \
            [(512, 1)] * 5 + [(1024, 2), (1024, 1)]:
        h //= stride
        macs += h * h * c * 9 + h * h * c * out
        c = out
    return macs + c * classes


def test_mobilenet_v1_row_matches_the_closed_form_and_the_docs(tmp_path):
    row = B.measure("mobilenet-v1", EDGE, tmp_path)
    assert mobilenet_v1_closed_form() == 568_740_352 == row.keras_macs == row.macs
    assert row.ms == pytest.approx(row.cycles / EDGE.clock_hz * 1e3)
    page = (ROOT / "docs" / "edgetpu-table.md").read_text()
    assert f"| {row.label} | {row.macs / 1e6:.0f} M | {row.cycles:,} | {row.ms:.2f} |" in page


def test_efficientnet_lite0_has_no_squeeze_excite_and_imports_its_macs(tmp_path):
    keras = B._keras()
    model = B.efficientnet_lite0(224)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Multiply" not in kinds and "Activation" not in kinds  # no SE gate, no swish
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    assert relus and all(float(layer.max_value) == 6.0 for layer in relus)
    depthwise = [layer for layer in model.layers
                 if isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert len(depthwise) == sum(s[0] for s in B.B0_STAGES) == 16
    row = B.measure("efficientnet-lite0", EDGE, tmp_path)
    assert row.macs == row.keras_macs == B.keras_macs(model)
    assert 380e6 < row.macs < 410e6  # the EfficientNet-Lite README: 407 M MAdds


def test_ssd_detector_imports_its_macs_and_outputs(tmp_path):
    from simulator.core.engine import run
    from simulator.frontends.tflite_import import import_tflite
    model = B.ssd_mobilenet_v2(128)
    path = tmp_path / "ssd.tflite"
    path.write_bytes(B.to_int8_tflite(model, 128, samples=2))
    imported = import_tflite(str(path))
    rep = run(EDGE, imported.program)
    assert rep.macs == B.keras_macs(model)
    shapes = sorted(imported.program.shapes[t] for t in imported.outputs)
    anchors = 3 * 8 * 8 + 6 * (4 * 4 + 2 * 2 + 1 + 1 + 1)  # feature maps 8, 4, 2, 1, 1, 1
    assert shapes == [(1, anchors, 4), (1, anchors, 91)]


def test_published_mobilenet_v2_figures_equal_the_published_suite():
    suite = yaml.safe_load((ROOT / "calibration" / "published" / "coral_edgetpu.yaml")
                           .read_text())
    want = {r["id"]: r["value"] for r in suite}
    usb, board = B.PUBLISHED["mobilenet-v2"]
    assert usb.ms == want["coral-bench-usb-mobilenet-v2-224"]
    assert board.ms == want["coral-bench-devboard-mobilenet-v2-224"]
    assert all(p.url.startswith("https://") and p.ms > 0
               for rows in B.PUBLISHED.values() for p in rows)
