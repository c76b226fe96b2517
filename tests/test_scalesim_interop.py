"""simulator.scalesim: config import, COMPUTE_REPORT export, and ResNet-18 per-layer cycles
against SCALE-Sim v3's closed forms (docs/scalesim.md)."""

from __future__ import annotations

import pytest

from conftest import CONFIGS, write
from simulator import WorkloadError, load_chip
from simulator.engine import simulate_gemms
from simulator.scalesim import COMPUTE_REPORT_HEADER, export_compute_report, import_scalesim_config
from simulator.topology import load_topology
from test_scalesim import scalesim_closed_form

CFG = """[general]
run_name = my_run

[architecture_presets]
ArrayHeight:    16
ArrayWidth:     8
IfmapSramSzkB:  64
FilterSramSzkB: 32
OfmapSramSzkB:  16
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : ws
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[run_presets]
InterfaceBandwidth: USER
"""


@pytest.mark.parametrize("topology", ["resnet18", "alexnet"])
@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_topology_layers_match_scalesim_with_constant_offset(topology, dataflow):
    chip = load_chip(CONFIGS / "scalesim-compat.yaml", {"array.dataflow": dataflow})
    layers = load_topology(CONFIGS / "topologies" / f"{topology}.csv")
    rep = simulate_gemms(chip, [(layer.name, *layer.shape) for layer in layers])
    for op, layer in zip(rep.ops, layers):
        expected = scalesim_closed_form(dataflow, 32, 32, *layer.shape)
        assert op.compute_cycles - expected == 1, layer.name
        assert op.stall_cycles == 0


def test_import_scalesim_config(tmp_path):
    cfg = write(tmp_path, CFG, "x.cfg")
    yaml_path = tmp_path / "chip.yaml"
    yaml_path.write_text(import_scalesim_config(cfg))
    chip = load_chip(yaml_path)
    assert (chip.name, chip.array.rows, chip.array.cols, chip.array.dataflow) == \
        ("my_run", 16, 8, "ws")
    assert (chip.buffers.a.bytes, chip.buffers.b.bytes, chip.buffers.o.bytes) == \
        (65536, 32768, 16384)
    assert chip.dram.bandwidth_bytes_per_s == 10 * 1e9
    assert chip.array.fill_drain == "full" and chip.array.preload_overlap is False


@pytest.mark.parametrize("text, message", [
    ("[architecture_presets]\nArrayHeight: 4\n", "[architecture_presets] ArrayWidth: missing"),
    (CFG.replace("Dataflow : ws", "Dataflow : xx"), "Dataflow: must be os, ws or is"),
    (CFG.replace("ArrayHeight:    16", "ArrayHeight:    0"), "ArrayHeight: must be >= 1"),
    ("not an ini", "not a SCALE-Sim config"),
])
def test_import_errors(tmp_path, text, message):
    with pytest.raises(WorkloadError, match=message.replace("[", r"\[").replace("]", r"\]")):
        import_scalesim_config(write(tmp_path, text, "bad.cfg"))


def test_export_compute_report(tmp_path):
    chip = load_chip(CONFIGS / "scalesim-compat.yaml", {"array.rows": 8, "array.cols": 8})
    rep = simulate_gemms(chip, [("a", 64, 64, 64), ("b", 20, 30, 40)])
    path = export_compute_report(rep, tmp_path / "out")
    lines = path.read_text().splitlines()
    assert lines[0] == COMPUTE_REPORT_HEADER
    assert lines[1].startswith("0, 4991, 4991, 0, ") and lines[2].startswith("1, 647, 647, 0, ")
    assert len(lines) == 3
