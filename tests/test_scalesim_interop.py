"""simulator.frontends.scalesim: config import, COMPUTE_REPORT export, and ResNet-18 per-layer cycles
against SCALE-Sim v3's closed forms (docs/scalesim.md)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from conftest import CONFIGS, write
from simulator import WorkloadError, load_chip
from simulator.core.engine import simulate_gemms
from simulator.core.memory import _run, candidate_plans, run_gemm_memory
from simulator.frontends.scalesim import (COMPUTE_REPORT_HEADER, export_compute_report,
                                import_scalesim_config, scalesim_columns)
from simulator.frontends.topology import load_topology
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

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 20
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[run_presets]
InterfaceBandwidth: USER
"""


def scalesim_cfg(tmp_path, rows, cols, dataflow, kib, mode="CALC", bw=(10, 10, 10)):
    """Write a SCALE-Sim 3.0.0 config: SRAMs of ``kib`` (ifmap, filter, ofmap) KiB, DRAM
    bandwidths ``bw`` = (ifmap, filter, ofmap) words per cycle in USER mode."""
    text = (CFG.replace("ArrayHeight:    16", f"ArrayHeight: {rows}")
            .replace("ArrayWidth:     8", f"ArrayWidth: {cols}")
            .replace("Dataflow : ws", f"Dataflow : {dataflow}")
            .replace("IfmapSramSzkB:  64", f"IfmapSramSzkB: {kib[0]}")
            .replace("FilterSramSzkB: 32", f"FilterSramSzkB: {kib[1]}")
            .replace("OfmapSramSzkB:  16", f"OfmapSramSzkB: {kib[2]}")
            .replace("IfmapSRAMBankBandwidth: 10", f"IfmapSRAMBankBandwidth: {bw[0]}")
            .replace("FilterSRAMBankBandwidth: 20", f"FilterSRAMBankBandwidth: {bw[1]}")
            .replace("Bandwidth : 10", f"Bandwidth : {bw[2]}")
            .replace("InterfaceBandwidth: USER", f"InterfaceBandwidth: {mode}"))
    cfg = write(tmp_path, text, "s.cfg")
    return load_chip(write(tmp_path, import_scalesim_config(cfg), "s.yaml"))


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
    # SCALE-Sim 3.0.0 in USER mode: ifmap and filter DRAM at the [layout] bank bandwidths,
    # ofmap at Bandwidth, each on its own port (words of 1 byte per cycle at 1 GHz)
    assert chip.dram.per_operand
    assert chip.dram.port_bandwidth_bytes_per_s == (10e9, 20e9, 10e9)
    assert chip.dram.bytes_per_cycle(chip.clock_hz) == (10.0, 20.0, 10.0)
    assert chip.array.fill_drain == "full" and chip.array.preload_overlap is False


def test_import_reads_each_operands_bandwidth(tmp_path):
    # Bandwidth (ofmap) and the layout bandwidths (ifmap, filter) differ: each port gets its own
    chip = scalesim_cfg(tmp_path, 8, 8, "os", (64, 64, 64), "USER", bw=(10, 3, 50))
    assert chip.dram.port_bandwidth_bytes_per_s == (10e9, 3e9, 50e9)
    calc = scalesim_cfg(tmp_path, 8, 8, "os", (64, 64, 64), "CALC", bw=(10, 3, 50))
    assert calc.dram.ideal and not calc.dram.per_operand
    # the A port at 10 bytes/cycle, not 50, paces the load of A: 64 KiB SRAMs hold the whole
    # 1024 x 8 x 8 GEMM (O: 32 KiB of sums, double-buffered), so its load is the exposed first
    # load, A's 8 KiB at 10 bytes/cycle while B's 64 bytes come at 3 on their own port
    op = simulate_gemms(chip, [("g", 1024, 8, 8)]).ops[0]
    assert op.tiling["tile_m"] == 1024 and op.prefetch_cycles == -(-1024 * 8 // 10)
    assert op.drain_cycles == -(-1024 * 8 * 4 // 50)


@pytest.mark.parametrize("text, message", [
    ("[architecture_presets]\nArrayHeight: 4\n", "[architecture_presets] ArrayWidth: missing"),
    (CFG.replace("Dataflow : ws", "Dataflow : xx"), "Dataflow: must be os, ws or is"),
    (CFG.replace("ArrayHeight:    16", "ArrayHeight:    0"), "ArrayHeight: must be >= 1"),
    ("not an ini", "not a SCALE-Sim config"),
    (CFG.split("[layout]")[0] + "[run_presets]\nInterfaceBandwidth: USER\n",
     "[layout] IfmapSRAMBankBandwidth: missing"),
    (CFG.replace("FilterSRAMBankBandwidth: 20", "FilterSRAMBankBandwidth: 0"),
     "FilterSRAMBankBandwidth: must be a positive number"),
])
def test_import_errors(tmp_path, text, message):
    with pytest.raises(WorkloadError, match=message.replace("[", r"\[").replace("]", r"\]")):
        import_scalesim_config(write(tmp_path, text, "bad.cfg"))


# COMPUTE_REPORT.csv rows of real SCALE-Sim 3.0.0 runs (8x8, GEMM 20x30x40, 64 MiB SRAMs, CALC):
# Total Cycles, Stall Cycles, Overall Util %, Mapping Efficiency %, Compute Util %
SCALESIM_ROWS = {"os": (647, 0, 57.95981452859351, 78.125, 57.87037037037036),
                 "ws": (839, 0, 44.69606674612634, 93.75, 38.26530612244897),
                 "is": (779, 0, 48.138639281129656, 83.33333333333334, 42.372881355932215)}


def read_report(path):
    lines = path.read_text().splitlines()
    head = [h.strip() for h in lines[0].split(",")]
    return [dict(zip(head, (float(x) for x in line.split(",") if x.strip())))
            for line in lines[1:]]


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_export_columns_equal_a_real_scalesim_run(tmp_path, df):
    chip = load_chip(CONFIGS / "scalesim-compat.yaml",
                     {"array.rows": 8, "array.cols": 8, "array.dataflow": df})
    rep = simulate_gemms(chip, [("g", 20, 30, 40)])
    path = export_compute_report(rep, tmp_path / "out")
    assert path.read_text().splitlines()[0] == COMPUTE_REPORT_HEADER
    row = read_report(path)[0]
    total, stall, overall, mapping, compute = SCALESIM_ROWS[df]
    assert (row["Total Cycles"], row["Stall Cycles"]) == (total, stall)
    assert row["Overall Util %"] == pytest.approx(overall, rel=1e-5)
    assert row["Mapping Efficiency %"] == pytest.approx(mapping, rel=1e-5)
    assert row["Compute Util %"] == pytest.approx(compute, rel=1e-5)
    # ours, under our names: compute util over our fold time, which SCALE-Sim does not use
    assert row["ours: total_cycles"] == total + 1
    assert row["ours: compute_utilisation %"] == pytest.approx(100 * 24000 / (64 * (total + 1)),
                                                               rel=1e-5)


@given(df=st.sampled_from(["os", "ws", "is"]), r=st.integers(1, 16), c=st.integers(1, 16),
       m=st.integers(1, 300), n=st.integers(1, 300), k=st.integers(1, 300),
       bw=st.tuples(*[st.integers(1, 64)] * 3), latency=st.integers(0, 20))
def test_export_of_one_tile_books_first_load_and_last_write_as_prefetch(df, r, c, m, n, k, bw,
                                                                         latency):
    # unbounded SRAMs: one tile, so its load and write-back are the only transfers: SCALE-Sim
    # books them in "Total Cycles (incl. prefetch)" only, never as stalls
    chip = load_chip(CONFIGS / "scalesim-compat.yaml", {
        "array.rows": r, "array.cols": c, "array.dataflow": df, "dram.ports": "per_operand",
        "dram.latency_cycles": latency, "clock_hz": 1e9,
        **{f"dram.{x}.bandwidth_bytes_per_s": w * 1e9 for x, w in zip("abo", bw)}})
    op = simulate_gemms(chip, [("g", m, n, k)]).ops[0]
    col = scalesim_columns(op, r, c)
    closed = scalesim_closed_form(df, r, c, m, n, k)
    load = max(latency + -(-m * k // bw[0]), latency + -(-k * n // bw[1]))
    write = latency + -(-4 * m * n // bw[2])
    assert (col["Total Cycles"], col["Stall Cycles"]) == (closed, 0)
    assert col["Total Cycles (incl. prefetch)"] == closed + load + write
    assert col["Overall Util %"] == pytest.approx(100 * m * n * k / (max(closed, 1) * r * c))


@settings(max_examples=60)
@given(df=st.sampled_from(["os", "ws", "is"]), r=st.integers(1, 24), c=st.integers(1, 24),
       m=st.integers(1, 400), n=st.integers(1, 400), k=st.integers(1, 400),
       kib=st.tuples(*[st.integers(0, 24)] * 3), user=st.booleans(),
       bw=st.tuples(*[st.integers(1, 20)] * 3))
def test_imported_compute_equals_scalesim_tiled_or_not(tmp_path_factory, df, r, c, m, n, k,
                                                       kib, user, bw):
    # SRAMs from the smallest that holds a single-fold stationary tile (8 R C bytes: a
    # double-buffered R x C tile of 4-byte sums) up: a layer that does not fit is tiled, its
    # tile steps stream, and the compute is SCALE-Sim's whether or not it is tiled
    least = -(-8 * r * c // 1024)
    sizes = tuple(least + x for x in kib)
    chip = scalesim_cfg(tmp_path_factory.mktemp("s"), r, c, df, sizes,
                        "USER" if user else "CALC", bw)
    assert chip.tiling.objective == "compute"  # what import-scalesim writes
    op = simulate_gemms(chip, [("g", m, n, k)]).ops[0]
    closed = scalesim_closed_form(df, r, c, m, n, k)
    assert op.compute_cycles == closed + 1
    if user:  # finite DRAM: our own objective (time) may take more compute for fewer stalls
        fastest = run_gemm_memory(chip.with_overrides({"tiling.objective": "time"}), m, n, k)
        assert fastest.compute_cycles >= op.compute_cycles
        assert fastest.total_cycles <= op.total_cycles
    col = scalesim_columns(op, r, c)
    assert col["Total Cycles"] - col["Stall Cycles"] == op.compute_cycles - 1
    assert col["Stall Cycles"] >= 0
    assert col["Total Cycles (incl. prefetch)"] >= col["Total Cycles"]
    if not user:
        assert op.stall_cycles == 0


@settings(max_examples=40)
@given(df=st.sampled_from(["os", "ws", "is"]), r=st.integers(1, 12), c=st.integers(1, 12),
       m=st.integers(1, 200), n=st.integers(1, 200), k=st.integers(1, 200),
       kib=st.tuples(*[st.integers(0, 6)] * 3), bw=st.tuples(*[st.integers(1, 20)] * 3))
def test_compute_objective_takes_the_fewest_array_cycles_of_every_candidate(
        tmp_path_factory, df, r, c, m, n, k, kib, bw):
    """The early stop of the compute objective loses nothing: against walking every candidate
    tiling, the kept one has the fewest array cycles and, among those, the fewest total; each
    candidate's estimate is a lower bound on its array cycles."""
    least = -(-8 * r * c // 1024)
    chip = scalesim_cfg(tmp_path_factory.mktemp("s"), r, c, df,
                        tuple(least + x for x in kib), "USER", bw)
    best = run_gemm_memory(chip, m, n, k)
    walked = []
    for plan, est in candidate_plans(chip, m, n, k, "m", with_estimates=True):
        res = _run(chip, m, n, k, plan)
        assert est <= res.compute_cycles
        walked.append(res)
    fewest = min(w.compute_cycles for w in walked)
    assert best.compute_cycles == fewest
    assert best.total_cycles == min(w.total_cycles for w in walked if w.compute_cycles == fewest)
