"""``--trace FILE.json``: the timeline as Chrome Trace Event JSON, checked against the format's
required keys and types per event phase, against the engine's ops (one slice per op, cycles
converted at the chip clock, DMA bytes per stream), and for overlaps within a track."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from conftest import CONFIGS
from simulator import load_chip, simulate_gemm
from simulator.core.engine import run
from simulator.kernels.zoo import build_zoo
from simulator.tools.cli import main
from simulator.tools.trace import trace_events

MXU = str(CONFIGS / "tpu-v4-mxu.yaml")
H100 = str(CONFIGS / "h100.yaml")
_NUM = (int, float)
_META = {"process_name", "thread_name", "process_sort_index", "thread_sort_index",
         "process_labels"}


def check_trace_format(doc) -> None:
    """Assert ``doc`` is a Trace Event Format JSON object (the JSON Object Format of the
    Trace Event Format document): the keys each phase needs, with their types."""
    assert isinstance(doc, dict) and isinstance(doc["traceEvents"], list)
    assert doc.get("displayTimeUnit", "ms") in ("ms", "ns")
    for ev in doc["traceEvents"]:
        assert isinstance(ev["name"], str) and isinstance(ev["ph"], str), ev
        assert isinstance(ev["pid"], int), ev
        if ev["ph"] == "X":
            assert isinstance(ev["tid"], int), ev
            assert isinstance(ev["ts"], _NUM) and ev["ts"] >= 0, ev
            assert isinstance(ev["dur"], _NUM) and ev["dur"] >= 0, ev
            assert isinstance(ev.get("args", {}), dict) and isinstance(ev.get("cat", ""), str)
        elif ev["ph"] == "C":
            assert isinstance(ev["ts"], _NUM) and ev["ts"] >= 0, ev
            assert ev["args"] and all(isinstance(v, _NUM) for v in ev["args"].values()), ev
        elif ev["ph"] == "M":
            assert ev["name"] in _META, ev
            if ev["name"].startswith("thread"):
                assert isinstance(ev["tid"], int), ev
            key = "sort_index" if ev["name"].endswith("sort_index") else "name"
            assert isinstance(ev["args"][key], int if key == "sort_index" else str), ev
        else:
            raise AssertionError(f"unexpected phase {ev['ph']!r}")


def slices_by_track(doc) -> dict[tuple[int, int], list[dict]]:
    tracks = defaultdict(list)
    for ev in doc["traceEvents"]:
        if ev["ph"] == "X":
            tracks[(ev["pid"], ev["tid"])].append(ev)
    return tracks


def check_no_overlap(doc) -> None:
    """Assert no two slices of one track overlap, in cycles exactly and in microseconds."""
    for track, evs in slices_by_track(doc).items():
        evs = sorted(evs, key=lambda e: (e["args"]["start_cycle"], e["args"]["end_cycle"]))
        for a, b in zip(evs, evs[1:]):
            assert a["args"]["end_cycle"] <= b["args"]["start_cycle"], (track, a, b)
            assert a["ts"] + a["dur"] <= b["ts"] + 1e-6 * max(1.0, b["ts"]), (track, a, b)


def thread_names(doc) -> dict[int, str]:
    return {e["tid"]: e["args"]["name"] for e in doc["traceEvents"]
            if e["ph"] == "M" and e["name"] == "thread_name"}


@pytest.fixture(scope="module")
def bert():
    chip = load_chip(CONFIGS / "tpu-v1.yaml")  # buffers and bounded DRAM: DMA slices take time
    return run(chip, build_zoo("zoo:bert-base").program)


def test_bert_trace_is_valid_and_matches_the_ops(bert):
    doc = json.loads(json.dumps(trace_events(bert, "zoo:bert-base")))
    check_trace_format(doc)
    check_no_overlap(doc)
    names = thread_names(doc)
    tid = {v: k for k, v in names.items()}
    assert {"array 0", "vector unit", "DMA A read", "DMA B read", "DMA O write"} <= set(tid)
    tracks = slices_by_track(doc)
    clk = bert.chip.clock_hz
    want = {(op.name, "array 0" if op.unit == "array" else "vector unit"): op
            for op in bert.ops if op.unit != "layout"}
    got = {(e["name"], names[t]): e for (_p, t), evs in tracks.items() for e in evs
           if names[t] in ("array 0", "vector unit")}
    assert got.keys() == want.keys()  # one slice per op, on its unit's track
    for key, op in want.items():
        e = got[key]
        assert e["ts"] == pytest.approx(op.start_cycle / clk * 1e6, rel=1e-12, abs=1e-12)
        assert e["dur"] == pytest.approx(op.total_cycles / clk * 1e6, rel=1e-12, abs=1e-12)
        assert e["args"]["macs"] == op.macs
        assert e["args"]["energy_pj"] == pytest.approx(op.energy_pj.get("total", 0.0))
    # DMA: per stream, the slices carry exactly the engine's DRAM bytes
    dram = bert.totals()["traffic_bytes"]["dram"]
    for stream, label in (("a_read", "DMA A read"), ("b_read", "DMA B read"),
                          ("o_read", "DMA O read"), ("o_write", "DMA O write")):
        carried = sum(e["args"]["bytes"] for e in tracks.get((1, tid[label]), []))
        assert carried == dram[stream], stream


def _counter(doc, name):
    pts = [(e["ts"], next(iter(e["args"].values()))) for e in doc["traceEvents"]
           if e["ph"] == "C" and e["name"] == name]
    return sorted(pts)


def test_dram_bandwidth_counter_integrates_to_the_dram_bytes(bert):
    doc = trace_events(bert)
    pts = _counter(doc, "DRAM bandwidth")
    # GB/s x us summed over the steps = 1e-3 x bytes
    integral = sum(v * (t1 - t0) for (t0, v), (t1, _v) in zip(pts, pts[1:]))
    dram_bytes = sum(op.events.get("dram_bytes", 0) for op in bert.ops if op.total_cycles)
    assert integral * 1e3 == pytest.approx(dram_bytes, rel=1e-6)
    occ = _counter(doc, "buffer occupancy")
    assert max(v for _t, v in occ) == max(op.residency.get("buffer_bytes", 0) for op in bert.ops
                                          if op.unit != "layout" and op.total_cycles)


def test_each_array_has_a_track_on_a_multi_array_chip():
    chip = load_chip(H100)
    rep = run(chip, build_zoo("zoo:tiny-transformer").program)
    doc = trace_events(rep)
    check_trace_format(doc)
    check_no_overlap(doc)
    names = thread_names(doc)
    arrays = sorted(n for n in names.values() if n.startswith("array "))
    assert len(arrays) == chip.array.count > 1
    used = {names[t] for (_p, t), evs in slices_by_track(doc).items() if evs}
    assert "array 0" in used


def test_cli_writes_a_trace_for_a_gemm_and_a_model(tmp_path, capsys):
    path = tmp_path / "g.json"
    assert main(["run", MXU, "--gemm", "256x128x64", "--trace", str(path)]) == 0
    doc = json.loads(path.read_text())
    check_trace_format(doc)
    rep = simulate_gemm(load_chip(MXU), shape=(256, 128, 64))
    (x,) = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["tid"] == 100]
    assert x["args"]["end_cycle"] - x["args"]["start_cycle"] == rep.total_cycles
    path = tmp_path / "m.json"
    assert main(["run", MXU, "--model", "zoo:tiny-transformer", "--trace", str(path)]) == 0
    check_no_overlap(json.loads(path.read_text()))


@pytest.mark.parametrize("where", ["missing/dir/t.json", "."])
def test_unwritable_trace_path_exits_2_naming_the_flag(where, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", MXU, "--gemm", "8x8x8", "--trace", where]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"--trace {where}: trace:") and "\n" not in err


def test_the_checks_catch_a_bad_trace():
    ok = {"name": "a", "ph": "X", "pid": 1, "tid": 1, "ts": 0.0, "dur": 2.0,
          "args": {"start_cycle": 0, "end_cycle": 2}}
    late = {**ok, "ts": 1.0, "args": {"start_cycle": 1, "end_cycle": 3}}
    with pytest.raises(AssertionError):
        check_no_overlap({"traceEvents": [ok, late]})
    with pytest.raises(AssertionError):
        check_trace_format({"traceEvents": [{**ok, "ts": "0"}]})
    with pytest.raises(AssertionError):
        check_trace_format({"traceEvents": [{"name": "c", "ph": "C", "pid": 1, "ts": 0,
                                             "args": {"x": "1"}}]})
