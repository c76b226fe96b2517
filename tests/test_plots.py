"""simulator.tools.plots and `systolic-sim plot`: every kind from shipped examples, as valid images."""

from __future__ import annotations

import json

import pytest
from matplotlib.image import imread

from conftest import CONFIGS, ROOT
from simulator.tools.cli import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("plots")
    assert main(["sweep", str(ROOT / "examples" / "sweep-array.yaml"), "--out", str(d / "r.csv"),
                 "--executor", "serial"]) == 0
    import contextlib
    import io
    for name, argv in (("resnet.json", ["run", str(CONFIGS / "tpu-v1.yaml"), "--topology",
                                        str(CONFIGS / "topologies" / "resnet18.csv"), "--json"]),
                       ("train.json", ["train", str(CONFIGS / "tpu-v4-mxu.yaml"), "--model",
                                       "mlp:10:32:1", "--steps", "2", "--json"])):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(argv) == 0
        (d / name).write_text(buf.getvalue())
    return d


@pytest.mark.parametrize("kind, source, extra", [
    ("utilisation", "r.csv", ["--x", "array.rows"]),
    ("heatmap", "r.csv", ["--x", "array.rows", "--y", "array.dataflow", "--metric",
                          "mapping_efficiency", "--workload", "resnet18"]),
    ("roofline", "resnet.json", []),
    ("energy", "resnet.json", []),
    ("timeline", "train.json", []),
])
@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_every_kind_writes_a_valid_image(inputs, kind, source, extra, suffix, capsys):
    out = inputs / f"{kind}{suffix}"
    assert main(["plot", kind, str(inputs / source), "--out", str(out), *extra]) == 0
    if suffix == ".png":
        img = imread(out)
        assert img.shape[0] > 300 and img.shape[1] > 600
        assert img.std() > 0.05  # not a blank canvas
    else:
        assert out.read_text().lstrip().startswith("<?xml") and "<svg" in out.read_text()


@pytest.mark.parametrize("kind, source, extra, message", [
    ("utilisation", "r.csv", [], "give the swept column"),
    ("utilisation", "r.csv", ["--x", "array.nope"], "no column 'array.nope'"),
    ("roofline", "r.csv", [], "input"),
    ("timeline", "missing.json", [], "no such file"),
])
def test_plot_errors_are_one_line(inputs, kind, source, extra, message, capsys):
    code = main(["plot", kind, str(inputs / source), "--out", str(inputs / "x.png"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_report_json_round_trip_feeds_plots(inputs):
    data = json.loads((inputs / "resnet.json").read_text())
    from simulator.tools import plots
    fig = plots.roofline(data)
    assert fig.axes[0].get_xscale() == "log"
    with pytest.raises(ValueError):
        plots.save(fig, inputs / "x.jpg")
