"""simulator.hardware.config: YAML parsing with lines, schema validation, overrides, docs."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import CONFIGS, ROOT, write
from simulator.hardware.config import SCHEMA, load_config, parse_override, schema_markdown
from simulator.errors import ConfigError


def err(tmp_path: Path, text: str, overrides=None, sources=None) -> str:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(p, overrides, sources)
    msg = str(info.value)
    assert "\n" not in msg
    return msg.replace(str(p), "F")


def test_defaults_fill_every_key(tmp_path):
    cfg = load_config(write(tmp_path, "name: x\n"))
    for f in SCHEMA:
        node = cfg
        for part in f.path.split("."):
            node = node[part]
        # energy.sram.model "auto" resolves: no SRAM cost given -> capacity (docs/energy.md)
        want = {"name": "x", "energy.sram.model": "capacity"}.get(f.path, f.default)
        assert node == want


def test_empty_file_is_all_defaults(tmp_path):
    assert load_config(write(tmp_path, ""))["array"]["rows"] == 128


@pytest.mark.parametrize("name", ["tpu-v1", "tpu-v4-mxu", "gemmini", "scalesim-compat"])
def test_shipped_configs_load_and_name_a_source(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg["name"] == name
    assert cfg["source"]


def test_yaml12_floats_and_ints_for_floats(tmp_path):
    assert load_config(write(tmp_path, "clock_hz: 7e8\n"))["clock_hz"] == 7e8
    assert load_config(write(tmp_path, "clock_hz: 700000000\n"))["clock_hz"] == 7e8
    assert load_config(write(tmp_path, "array:\n  rows: 8.0\n"))["array"]["rows"] == 8


@pytest.mark.parametrize("text, expected", [
    ("name: x\narray:\n  rows: -3\n", "F:3: array.rows: must be a positive integer, got -3"),
    ("array:\n  rows: 0\n", "F:2: array.rows: must be a positive integer, got 0"),
    ("array:\n  cols: 2.5\n", "F:2: array.cols: must be a positive integer <= 65536, got 2.5"),
    ("array:\n  cols: 100000\n", "F:2: array.cols: must be <= 65536, got 100000"),
    ("array:\n  rows: true\n", "F:2: array.rows: must be a positive integer <= 65536, got True"),
    ("array:\n  rows: '8'\n", "F:2: array.rows: must be a positive integer <= 65536, got '8'"),
    ("array:\n  dataflow: xs\n", "F:2: array.dataflow: must be one of os, ws, is, got 'xs'"),
    ("array:\n  preload_overlap: 1\n",
     "F:2: array.preload_overlap: must be a boolean (true or false), got 1"),
    ("clock_hz: .inf\n", "F:1: clock_hz: must be a positive finite number <= 10000000000000, got inf"),
    ("clock_hz: -5\n", "F:1: clock_hz: must be a positive number, got -5.0"),
    ("accumulator_bits: 64\n", "F:1: accumulator_bits: must be <= 32, got 64"),
    ("name: x\nbogus: 1\n", "F:2: bogus: unknown key (known here: accumulator_bits, area, array, "
                            "buffers, clock_hz, dram, dtype, energy, memory, name, output, overflow, overhead, power, "
                            "precision, source, sparsity, system, technology, tiling, vector)"),
    ("array:\n  rows: 4\n  colz: 4\n",
     "F:3: array.colz: unknown key (known here: batch_placement, cols, count, dataflow, "
     "depthwise, fill_drain, fold_pipelining, macs_per_pe_cycle, preload_overlap, rows, split, "
     "split_tile_m, "
     "split_tile_n)"),
    ("energy:\n  dram: {pj_per_byte: -1}\n",
     "F:2: energy.dram.pj_per_byte: must be >= 0, got -1.0"),
    ("buffers:\n  a:\n    bytes: 1.5\n",
     "F:3: buffers.a.bytes: must be an integer in [0, 1125899906842624], got 1.5"),
    ("array: 5\n", "F:1: array: must be a mapping of keys to values, got int"),
    ("- 1\n", "F:1: (top level): must be a mapping of keys to values, got list"),
    ("name: x\nname: y\n", "F:2: name: duplicate key"),
    ("name: [1\n", "F:2: YAML syntax error: expected ',' or ']', but got '<stream end>'"),
    ("a: b: c\n", "F:1: YAML syntax error: mapping values are not allowed here"),
    ("1: 2\n", "F:1: (top level): keys must be strings, got 1"),
    ("dtype: int2\n", "F:1: dtype: must be one of int8, int4, fp8_e4m3, fp8_e5m2, fp16, bf16, "
                     "fp32, got 'int2'"),
    ("precision:\n  kv_cache: fp4\n", "F:2: precision.kv_cache: must be one of dtype, int8, "
                                      "int4, fp8_e4m3, fp8_e5m2, fp16, bf16, fp32, got 'fp4'"),
    ("array:\n  macs_per_pe_cycle:\n    fp8_e4m3: 0\n",
     "F:3: array.macs_per_pe_cycle.fp8_e4m3: must be a positive integer, got 0"),
])
def test_bad_configs_give_one_line_with_file_line_field(tmp_path, text, expected):
    assert err(tmp_path, text) == expected


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match=r":1: no such file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r":1: is a directory"):
        load_config(tmp_path)
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r":1: not UTF-8"):
        load_config(p)


def test_overrides_win_and_are_validated(tmp_path):
    p = write(tmp_path, "array:\n  rows: 4\n")
    assert load_config(p, {"array.rows": 8})["array"]["rows"] == 8
    assert err(tmp_path, "", {"array.rows": -1}) == \
        "override array.rows: array.rows: must be a positive integer, got -1"
    assert err(tmp_path, "", {"array.rows": -1}, {"array.rows": "--set array.rows=-1"}) == \
        "--set array.rows=-1: array.rows: must be a positive integer, got -1"
    assert err(tmp_path, "", {"array": 3}).startswith("override array: array: unknown key")


@pytest.mark.parametrize("text, path, value", [
    ("array.rows=8", "array.rows", 8), ("clock_hz=7e8", "clock_hz", 7e8),
    ("array.dataflow=ws", "array.dataflow", "ws"),
    ("array.preload_overlap=false", "array.preload_overlap", False),
    ("name=my chip", "name", "my chip"),
])
def test_parse_override(text, path, value):
    p, v, where = parse_override(text)
    assert (p, v) == (path, value) and where == f"--set {text}"


@pytest.mark.parametrize("text", ["array.rows", "=5", "array.rows=[1"])
def test_parse_override_errors(text):
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    assert str(info.value).startswith(f"--set {text}")


def test_docs_are_generated_from_the_schema():
    assert (ROOT / "docs" / "config.md").read_text() == schema_markdown()
    for f in SCHEMA:
        assert f.unit and f.doc


ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
    for p, c in zip("abcdefgh", "bcdefghi"))  # nine levels: 9^9 leaves once expanded


@contextmanager
def hang_guard(seconds=5.0):
    """Fail (rather than hang) if the body runs longer than ``seconds``."""
    def stop(_sig, _frame):
        raise TimeoutError(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("text, line, what", [
    (ALIAS_BOMB, 1, "&a"),
    ("name: x\narray:\n  rows: 8\n  cols: *r\n", 4, "*r"),
    ("name: x\narray:\n  rows: &r 8\n", 3, "&r"),
    ("base: &b {rows: 8}\narray:\n  <<: *b\n", 1, "&b"),
])
def test_yaml_anchors_and_aliases_are_refused(tmp_path, text, line, what):
    with hang_guard():
        msg = err(tmp_path, text)
    assert msg == (f"F:{line}: YAML anchors and aliases are not supported (found {what}); "
                   "write each value out")


def test_yaml_aliases_are_refused_in_overrides_and_sweep_files(tmp_path):
    from simulator.tools.sweep import load_sweep
    with pytest.raises(ConfigError, match=r"^--set array.rows=\*x:1: YAML anchors and aliases"):
        parse_override("array.rows=*x")
    p = write(tmp_path, f"base: {CONFIGS / 'gemmini.yaml'}\nworkloads: [{{gemm: 4x4x4}}]\n"
              + ALIAS_BOMB, "s.yaml")
    with hang_guard(), pytest.raises(ConfigError) as info:
        load_sweep(p)
    assert str(info.value).startswith(f"{p}:3: YAML anchors and aliases are not supported")
