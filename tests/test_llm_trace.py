"""``systolic-sim llm ... --trace FILE.json``: the prefill and first decode step as Trace Event
JSON: valid per phase, no overlap within a track, the prefill ends at the run's TTFT."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from conftest import CONFIGS
from test_trace import check_trace_format
from simulator.hardware.chip import load_chip
from simulator.llm.inference import simulate_inference
from simulator.llm.model import load_model
from simulator.llm.ops import layer_split
from simulator.llm.trace import llm_trace_events
from simulator.tools.cli import main

MODEL = str(CONFIGS / "models" / "smollm2-135m.yaml")
H100 = str(CONFIGS / "h100.yaml")


def _no_overlap(doc) -> None:
    tracks = defaultdict(list)
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            tracks[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"], e["name"]))
    for key, spans in tracks.items():
        spans.sort()
        for a, b in zip(spans, spans[1:]):
            assert a[1] <= b[0] + 1e-9 * max(1.0, b[0]), (key, a, b)


@pytest.mark.parametrize("tp, pp, batch", [(1, 1, 2), (3, 2, 6), (1, 3, 6)])
def test_prefill_ends_at_the_ttft_and_tracks_do_not_overlap(tp, pp, batch):
    chip, model = load_chip(H100), load_model(MODEL)
    doc = llm_trace_events(chip, model, batch, 64, tp, pp)
    check_trace_format(doc)
    _no_overlap(doc)
    res = simulate_inference(chip, model, batch, 64, 4, tp, pp)
    assert doc["otherData"]["prefill_end_s"] == pytest.approx(res.prefill["time_s"], rel=1e-9)
    stages = {e["pid"] for e in doc["traceEvents"] if e["ph"] == "X" and e["pid"] < 1000}
    assert stages == set(range(pp))
    units = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert {"array", "vector unit", "chip links"} <= units
    # every decoder layer's matmuls are on the array track of the stage that holds the layer
    owner = [i for i, n in enumerate(layer_split(model.layers, pp)) for _ in range(n)]
    seen = set()
    for e in doc["traceEvents"]:
        hit = re.match(r"^l(\d+)\.", e["name"])
        if e["ph"] == "X" and hit and e["args"]["kind"] == "matmul":
            assert e["pid"] == owner[int(hit.group(1))] and e["tid"] == 0, e["name"]
            seen.add(int(hit.group(1)))
    assert seen == set(range(model.layers))


def test_cli_llm_trace_and_refusals(tmp_path, capsys):
    path = tmp_path / "t.json"
    argv = ["llm", H100, "--model", MODEL, "--batch", "2", "--prompt", "32", "--generate", "4"]
    assert main([*argv, "--trace", str(path)]) == 0
    check_trace_format(json.loads(path.read_text()))
    capsys.readouterr()
    assert main([*argv, "--tp", "1,2", "--trace", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("--trace ") and "\n" not in err
    assert main([*argv, "--trace", str(tmp_path / "none" / "t.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("--trace ") and "does not exist" in err
