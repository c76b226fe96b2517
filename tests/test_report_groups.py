"""Grouped network tables (``run --model ... --group-by op|layer|kind``, the default ``op``;
``--all-ops`` the flat list), checked against sums taken directly over the engine's ops."""

from __future__ import annotations

import csv

import pytest

from conftest import CONFIGS
from simulator import load_chip
from simulator.core.engine import run
from simulator.core.report import layer_rows
from simulator.core.report_groups import group_rows, op_group_name
from simulator.kernels.zoo import build_zoo
from simulator.tools.cli import main

MXU = str(CONFIGS / "tpu-v4-mxu.yaml")


@pytest.fixture(scope="module")
def bert():
    return run(load_chip(MXU), build_zoo("zoo:bert-base").program)


@pytest.mark.parametrize("name, group", [
    ("l3.attn.qk", "attn.qk"), ("l11.ffn.fc1.matmul", "ffn.fc1.matmul"),
    ("layer2.1.conv1", "conv1"), ("lstm0.t7.h", "h"), ("emb.word.gather", "emb.word.gather"),
    ("h0.attn.split.0", "attn.split"), ("conv1", "conv1"), ("fc.bias", "fc.bias"), ("0", "0")])
def test_op_group_name(name, group):
    assert op_group_name(name) == group


def test_op_groups_sum_the_layers(bert):
    groups = {g["op"]: g for g in group_rows(layer_rows(bert), "op")}
    qk = [op for op in bert.ops if op.name in {f"l{i}.attn.qk" for i in range(12)}]
    assert len(qk) == 12
    g = groups["attn.qk"]
    assert g["count"] == 12
    assert g["cycles"] == sum(op.total_cycles for op in qk)
    assert g["macs"] == sum(op.macs for op in qk)
    assert g["energy_pj"] == pytest.approx(sum(op.energy_pj["total"] for op in qk), rel=1e-12)
    assert g["dram_bytes"] == sum(op.events.get("dram_bytes", 0) for op in qk)
    assert g["units"] == "array"
    # every op in exactly one group; shares of all ops' cycles sum to 1; longest first
    assert sum(x["count"] for x in groups.values()) == len(bert.ops)
    assert sum(x["share"] for x in groups.values()) == pytest.approx(1.0, abs=1e-12)
    cycles = [x["cycles"] for x in group_rows(layer_rows(bert), "op")]
    assert cycles == sorted(cycles, reverse=True)
    # array utilisation of a group: its MACs over PEs x its cycles
    assert g["utilisation"] == pytest.approx(g["macs"] / (bert.chip.pes * g["cycles"]),
                                             rel=1e-12)


@pytest.mark.parametrize("by, key", [("layer", lambda n: n.split(".")[0]),
                                     ("kind", None)])
def test_layer_and_kind_groups(bert, by, key):
    want: dict[str, int] = {}
    for op in bert.ops:
        k = key(op.name) if key else op.kind
        want[k] = want.get(k, 0) + op.total_cycles
    assert {g[by]: g["cycles"] for g in group_rows(layer_rows(bert), by)} == want


def test_bert_base_prints_the_grouped_table_by_default(capsys):
    assert main(["run", MXU, "--model", "zoo:bert-base"]) == 0
    out = capsys.readouterr().out
    assert "354 ops in" in out and "groups by op" in out
    rows = [line.split() for line in out.splitlines()]
    qk = [r for r in rows if r and r[0] == "attn.qk"]
    assert len(qk) == 1 and qk[0][1] == "12"
    assert not any(r and r[0] in ("l0", "l11") for r in rows)  # no per-layer rows


def test_all_ops_keeps_the_flat_list(capsys):
    assert main(["run", MXU, "--model", "zoo:bert-base", "--all-ops"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()]
    assert sum(1 for r in rows if len(r) > 1 and r[0].startswith("l") and r[1] == "attn.qk") \
        == 12


@pytest.mark.parametrize("by", ["op", "layer", "kind"])
def test_csv_follows_the_grouping(tmp_path, capsys, by):
    path = tmp_path / "g.csv"
    assert main(["run", MXU, "--model", "zoo:tiny-transformer", "--group-by", by,
                 "--csv", str(path)]) == 0
    rows = list(csv.DictReader(path.open()))
    rep = run(load_chip(MXU), build_zoo("zoo:tiny-transformer").program)
    assert rows[0].keys() >= {by, "count", "cycles", "share", "dram_bytes", "energy_pj"}
    assert sum(int(r["count"]) for r in rows) == len(rep.ops)
    assert sum(int(r["cycles"]) for r in rows) == sum(op.total_cycles for op in rep.ops)


@pytest.mark.parametrize("argv, flag", [
    (["--model", "zoo:tiny-transformer", "--group-by", "nope"], "--group-by"),
    (["--model", "zoo:tiny-transformer", "--group-by", "layer", "--all-ops"], "--group-by"),
    (["--gemm", "8x8x8", "--group-by", "op"], "--group-by"),
])
def test_bad_grouping_exits_2_with_one_line(argv, flag, capsys):
    try:
        code = main(["run", MXU, *argv])
    except SystemExit as exc:  # argparse's choices check
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert flag in err and "\n" not in err
