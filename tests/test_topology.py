"""simulator.frontends.topology: SCALE-Sim topology CSVs, and one-line errors for malformed ones."""

from __future__ import annotations

import pytest

from conftest import CONFIGS, write
from simulator import WorkloadError
from simulator.frontends.topology import load_topology


def test_shipped_resnet18_and_alexnet():
    resnet = load_topology(CONFIGS / "topologies" / "resnet18.csv")
    assert len(resnet) == 21 and resnet[0].name == "conv1"
    assert resnet[0].shape == (113 * 113, 64, 7 * 7 * 3)
    assert resnet[-1].shape == (1, 1000, 512)
    # 1.82 GMACs in the published model; SCALE-Sim's ceiling adds the extra output rows
    assert 1.8e9 < sum(layer.m * layer.n * layer.k for layer in resnet) < 1.9e9
    alex = load_topology(CONFIGS / "topologies" / "alexnet.csv")
    assert [layer.name for layer in alex][:2] == ["conv1", "conv2"]
    assert alex[0].shape == (55 * 55, 96, 11 * 11 * 3)


def test_gemm_format_with_and_without_trailing_field(tmp_path):
    p = write(tmp_path, "Layer, M, N, K,\nl1, 8, 16, 32,\nl2, 4, 4, 4\n# comment\n\n", "g.csv")
    assert [layer.shape for layer in load_topology(p)] == [(8, 16, 32), (4, 4, 4)]


def test_target_column_is_dropped(tmp_path):
    p = write(tmp_path, "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                        "Channels, Num Filter, Strides, Target\nc1, 30, 30, 3, 3, 16, 32, 1, x\n",
              "c.csv")
    assert load_topology(p)[0].shape == (28 * 28, 32, 3 * 3 * 16)


CONV_HEAD = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
             "Num Filter, Strides,\n")


@pytest.mark.parametrize("text, line, message", [
    ("Layer, M, N, K,\nl1, 0, 4, 4,\n", 2, "M: must be a positive integer, got 0"),
    ("Layer, M, N, K,\nl1, 4, x, 4,\n", 2, "N: must be a positive integer, got 'x'"),
    ("Layer, M, N, K,\nl1, 4, 4, 4, 5, 6,\n", 2, "row: expected 4 fields"),
    ("Layer, M, N, K,\nl1, 4, 4,\n", 2, "row: expected 4 fields"),
    ("Layer, M, N, K,\nl1, 4, 4, 4,\nl1, 2, 2, 2,\n", 3, "name: duplicate layer name"),
    ("Layer, M, N, K,\n, 4, 4, 4,\n", 2, "name: must not be empty"),
    ("Layer, M, N, K,\n", 1, "no layers after the header"),
    ("", 1, "empty topology"),
    ("foo, bar\n1, 2\n", 1, "header: expected SCALE-Sim's GEMM header"),
    (CONV_HEAD + "c1, 2, 2, 3, 3, 1, 1, 1,\n", 2, "conv.filter_h: filter 3x3 is larger"),
    (CONV_HEAD + "c1, 8, 8, 3, 3, 1, 1, 0,\n", 2, "Strides: must be a positive integer, got 0"),
    (CONV_HEAD + "c1, 8, 8, 3, 3, 1, 1, 1, 7, 7,\n", 2, "row: expected 8 fields"),
])
def test_malformed_rows(tmp_path, text, line, message):
    p = write(tmp_path, text, "t.csv")
    with pytest.raises(WorkloadError) as info:
        load_topology(p)
    assert str(info.value).startswith(f"{p}:{line}: {message}")
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(WorkloadError, match=":1: no such file"):
        load_topology(tmp_path / "none.csv")
