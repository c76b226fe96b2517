"""Counts that scale memory or time are checked up front (issue 32): a sweep's rows in closed
form, a topology's layers, and the nodes of a YAML file, each refused in one line naming the
file, line and field, before the work they scale is done (docs/errors.md, "Bounded work").

Oracles: the refusal comes in far less time than the work would take (a sweep of 10^18 rows
is refused in the time of a 60-row one; a 1 MiB YAML of 100,000 keys took 8.8 s to parse whole
and is refused at its 65,537th node), the limit follows SYSTOLIC_SIM_MAX_BYTES_MEMORY both ways
(one row or layer under the budget runs), and every shipped file passes.
"""

from __future__ import annotations

import glob
import time

import pytest

from conftest import CONFIGS, ROOT
from hostile_cli import cli, one_line
from simulator.errors import ConfigError, WorkloadError
from simulator.frontends.topology import LAYER_BYTES, load_topology
from simulator.hardware.config import MAX_YAML_NODES, _parse_yaml
from simulator.tools.sweep import SWEEP_ROW_BYTES, load_sweep

TPU_V1 = (CONFIGS / "tpu-v1.yaml").resolve()


def sweep_file(tmp_path, grid: str, workloads: int = 1):
    path = tmp_path / "s.yaml"
    path.write_text(f"base: {TPU_V1}\ngrid:\n{grid}workloads:\n" +
                    "".join(f"  - gemm: {8 * (i + 1)}x8x8\n" for i in range(workloads)))
    return path


def test_a_sweep_of_1e18_rows_is_refused_in_closed_form_before_any_value_is_checked(tmp_path):
    path = sweep_file(tmp_path, "  array.rows: {range: [1, 1000000, 1]}\n"
                                "  array.cols: {range: [1, 1000000, 1]}\n"
                                "  buffers.a.bytes: {range: [1024, 1000000, 1]}\n")
    t0 = time.monotonic()
    line = one_line(cli(["sweep", path, "--out", tmp_path / "r.csv"]), f"{path}:2: grid:",
                    "998,977,000,000,000,000 rows", "SYSTOLIC_SIM_MAX_BYTES_MEMORY")
    # checking 3 million values on the base chip alone would take about 15 minutes
    assert time.monotonic() - t0 < 60, line
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "r.csv.lock").exists()


def test_sweep_rows_are_held_to_the_memory_budget_both_ways(tmp_path, monkeypatch):
    path = sweep_file(tmp_path, "  array.rows: [16, 32, 64]\n  array.cols: [16, 32]\n", 2)
    rows = 3 * 2 * 2
    monkeypatch.setenv("SYSTOLIC_SIM_MAX_BYTES_MEMORY", str(rows * SWEEP_ROW_BYTES))
    assert len(load_sweep(path).points) == 6
    monkeypatch.setenv("SYSTOLIC_SIM_MAX_BYTES_MEMORY", str(rows * SWEEP_ROW_BYTES - 1))
    with pytest.raises(ConfigError, match=r"12 rows \(3 x 2 points x 2 workloads") as exc:
        load_sweep(path)
    assert exc.value.field == "grid" and str(exc.value).startswith(f"{path}:2:")


def test_a_zip_only_sweep_counts_its_zipped_length_once(tmp_path, monkeypatch):
    path = tmp_path / "z.yaml"
    path.write_text(f"base: {TPU_V1}\nzip:\n  array.rows: [16, 32, 64, 128]\n"
                    "  array.cols: [16, 32, 64, 128]\nworkloads:\n  - gemm: 8x8x8\n")
    monkeypatch.setenv("SYSTOLIC_SIM_MAX_BYTES_MEMORY", str(4 * SWEEP_ROW_BYTES))
    assert len(load_sweep(path).points) == 4
    monkeypatch.setenv("SYSTOLIC_SIM_MAX_BYTES_MEMORY", str(4 * SWEEP_ROW_BYTES - 1))
    with pytest.raises(ConfigError, match=r"4 rows"):
        load_sweep(path)


def topology(tmp_path, layers: int):
    path = tmp_path / "t.csv"
    path.write_text("Layer, M, N, K,\n" + "".join(f"l{i}, 8, 8, {8 + i},\n"
                                                  for i in range(layers)))
    return path


def test_topology_layers_are_held_to_the_memory_budget_both_ways(tmp_path, monkeypatch):
    path = topology(tmp_path, 40)
    monkeypatch.setenv("SYSTOLIC_SIM_MAX_BYTES_MEMORY", str(40 * LAYER_BYTES))
    assert len(load_topology(path)) == 40
    monkeypatch.setenv("SYSTOLIC_SIM_MAX_BYTES_MEMORY", str(40 * LAYER_BYTES - 1))
    with pytest.raises(WorkloadError, match="a topology of 40 layers") as exc:
        load_topology(path)
    assert exc.value.field == "layers" and str(exc.value).startswith(f"{path}:1:")


def test_a_topology_over_the_budget_is_one_line_on_the_command_line(tmp_path, monkeypatch):
    path = topology(tmp_path, 200)
    monkeypatch.setenv("SYSTOLIC_SIM_MAX_BYTES_MEMORY", "1M")
    one_line(cli(["run", CONFIGS / "gemmini.yaml", "--topology", path]), f"{path}:1: layers:",
             "200 layers", "SYSTOLIC_SIM_MAX_BYTES_MEMORY")


@pytest.mark.parametrize("shape", ["keys", "flow list", "block list"])
def test_yaml_with_more_nodes_than_the_limit_is_refused_at_that_node(shape):
    n = MAX_YAML_NODES  # the mapping (or list) itself is one node, so n items are one too many
    text = {"keys": "".join(f"k{i}: 1\n" for i in range(n // 2)),
            "flow list": "a: [" + ", ".join(["1"] * n) + "]\n",
            "block list": "a:\n" + "  - 1\n" * n}[shape]
    with pytest.raises(ConfigError, match=f"more than {MAX_YAML_NODES:,} YAML nodes") as exc:
        _parse_yaml(text, "f.yaml")
    line = int(str(exc.value).split(":")[1])
    expected = {"keys": MAX_YAML_NODES // 2, "flow list": 1,
                "block list": MAX_YAML_NODES - 1}[shape]  # item j is node j + 3, on line j + 1
    assert line == expected, str(exc.value)


def test_yaml_at_the_node_limit_parses():
    # one mapping, one key, one list and MAX_YAML_NODES - 3 items: exactly the limit
    value, _ = _parse_yaml("a: [" + ", ".join(["1"] * (MAX_YAML_NODES - 3)) + "]\n", "f.yaml")
    assert len(value["a"]) == MAX_YAML_NODES - 3


@pytest.mark.parametrize("command", [["run", "{f}", "--gemm", "8x8x8"],
                                     ["llm", str(CONFIGS / "h100.yaml"), "--model", "{f}"],
                                     ["sweep", "{f}", "--out", "r.csv"]])
def test_a_1_mib_yaml_of_keys_is_one_line_in_seconds(tmp_path, command):
    path = tmp_path / "big.yaml"
    path.write_text("".join(f"k{i}: 1\n" for i in range(100_000)))
    t0 = time.monotonic()
    one_line(cli([a.format(f=path) for a in command], cwd=tmp_path), f"{path}:",
             "YAML nodes")
    assert time.monotonic() - t0 < 30  # parsing it whole took 8.8 s and 185 MB


def test_every_shipped_yaml_is_far_under_the_node_limit():
    files = [f for pattern in ("configs/**/*.yaml", "examples/**/*.yaml")
             for f in glob.glob(str(ROOT / pattern), recursive=True)]
    assert len(files) > 10
    for f in files:
        from simulator.hardware.config import _Loader
        loader = _Loader(open(f, encoding="utf-8").read())
        loader.get_single_node()
        assert loader.nodes < MAX_YAML_NODES // 16, f
