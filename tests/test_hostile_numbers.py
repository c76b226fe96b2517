"""Never a silent wrong number (issue 32, part of item 5): very slow DRAM is refused in one line
naming the key and the limit, never wrapped into fewer cycles or an OverflowError; quantities
that do not exist are null in JSON and "-" in text; a ``--torch`` file that exits is an error;
a sweep resume drops every malformed row.

Oracles: a slower DRAM never gives fewer cycles, and an accepted run takes at least its DRAM
bytes over the port's bytes per cycle (computed here in Python floats); the resumed results
file equals a clean serial run of the same sweep row for row.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings, strategies as st

from conftest import CONFIGS
from hostile_cli import cli, one_line
from simulator.core.cycle_limits import CYCLE_LIMIT
from simulator.core.engine import simulate_gemm
from simulator.errors import ConfigError
from simulator.hardware.chip import load_chip
from simulator.tools.sweep import load_sweep, read_results, run_sweep

GEMMINI = load_chip(CONFIGS / "gemmini.yaml")
H100 = str(CONFIGS / "h100.yaml")
LLAMA = str(CONFIGS / "models" / "llama-3-8b.yaml")


# --------------------------------------------------------------------------- slow DRAM

def cycles(chip, shape, overrides):
    """Return the total cycles of a timing-only GEMM, or the ConfigError raised."""
    try:
        return simulate_gemm(chip.with_overrides(overrides), shape=shape).total_cycles
    except ConfigError as exc:
        return exc


bandwidths = st.floats(1e-300, 1e16, allow_nan=False, allow_infinity=False)
dims = st.integers(1, 600)


@settings(max_examples=60, deadline=None)
@given(m=dims, n=dims, k=dims, bw=st.lists(bandwidths, min_size=2, max_size=2, unique=True),
       per_operand=st.booleans())
def test_slower_dram_never_gives_fewer_cycles(m, n, k, bw, per_operand):
    slow, fast = sorted(bw)
    key = "dram.a.bandwidth_bytes_per_s" if per_operand else "dram.bandwidth_bytes_per_s"
    base = {"dram.ports": "per_operand", "dram.bandwidth_bytes_per_s": 16e9} if per_operand \
        else {}
    c_slow = cycles(GEMMINI, (m, n, k), {**base, key: slow})
    c_fast = cycles(GEMMINI, (m, n, k), {**base, key: fast})
    for c, b in ((c_slow, slow), (c_fast, fast)):
        if isinstance(c, ConfigError):  # refused: one line naming the key and the limit
            assert c.field == key and "2^62" in str(c) and "\n" not in str(c)
        else:
            assert 0 < c <= CYCLE_LIMIT
            # a lower bound from the bytes the A operand must cross that port at least once
            assert c >= m * k * GEMMINI.input_bytes / (b / GEMMINI.clock_hz) * (1 - 1e-12)
    if isinstance(c_fast, ConfigError):
        assert isinstance(c_slow, ConfigError)  # refusing the fast one refuses the slow one
    elif not isinstance(c_slow, ConfigError):
        assert c_slow >= c_fast


@pytest.mark.parametrize("sets, key", [
    (["dram.ports=per_operand", "dram.a.bandwidth_bytes_per_s=1e-8"],
     "dram.a.bandwidth_bytes_per_s"),
    (["dram.bandwidth_bytes_per_s=1e-300"], "dram.bandwidth_bytes_per_s"),
    (["dram.bandwidth_bytes_per_s=1e-8"], "dram.bandwidth_bytes_per_s"),
])
def test_the_issue_examples_are_refused_in_one_line(sets, key):
    args = ["run", CONFIGS / "gemmini.yaml", "--gemm", "256x256x256"]
    for s in sets:
        args += ["--set", s]
    line = one_line(cli(args), key, "over the limit of 2^62 cycles", "give at least")
    assert "OverflowError" not in line


def test_slow_but_representable_dram_is_computed_exactly():
    # 1e-3 bytes/s at gemmini's clock: 1.97e17 cycles, inside int64, more than 16 GB/s gives
    fast = simulate_gemm(GEMMINI, shape=(256, 256, 256)).total_cycles
    slow = simulate_gemm(GEMMINI.with_overrides({"dram.bandwidth_bytes_per_s": 1e-3}),
                         shape=(256, 256, 256))
    bpc = 1e-3 / GEMMINI.clock_hz
    assert slow.total_cycles > fast
    assert slow.total_cycles >= slow.totals()["traffic_bytes"]["dram"]["total"] / bpc * (1 - 1e-9)


# --------------------------------------------------------------------------- no decode

def test_llm_generate_one_has_no_tpot_in_json():
    proc = cli(["llm", H100, "--model", LLAMA, "--prompt", "64", "--generate", "1", "--json"])
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["decode"]["steps"] == 0
    for key in ("tpot_mean_s", "tpot_first_s", "tpot_last_s"):
        assert d["decode"][key] is None
    assert d["totals"]["decode_tokens_per_s"] is None
    assert d["totals"]["tokens_per_s"] > 0


def test_llm_generate_one_shows_a_dash_in_text():
    proc = cli(["llm", H100, "--model", LLAMA, "--prompt", "64", "--generate", "1",
                "--batch", "1,2"])
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[1:3]]
    assert all(r[6] == "-" for r in rows), proc.stdout  # TPOT (TTFT is "7.9 ms")
    one = cli(["llm", H100, "--model", LLAMA, "--prompt", "64", "--generate", "1"])
    assert ", - tokens/s in decode" in one.stdout
    assert "decode --bound" not in proc.stdout and "no decode" in proc.stdout


def test_llm_generate_two_has_a_tpot():
    proc = cli(["llm", H100, "--model", LLAMA, "--prompt", "64", "--generate", "2", "--json"])
    d = json.loads(proc.stdout)
    assert d["decode"]["tpot_mean_s"] > 0 and d["totals"]["decode_tokens_per_s"] > 0


# --------------------------------------------------------------------------- --torch exits

@pytest.mark.parametrize("body, line", [
    ("import sys\nsys.exit(0)\n", 2),
    ("x = 1\nraise SystemExit('bye')\n", 2),
    ("import os\nimport sys\n\n\nsys.exit(3)\n", 5),
])
def test_torch_file_that_exits_on_import_is_an_error(tmp_path, body, line):
    pytest.importorskip("torch")
    (tmp_path / "m.py").write_text(body)
    proc = cli(["run", CONFIGS / "gemmini.yaml", "--torch", "m.py:factory", "--input", "2x4"],
               cwd=tmp_path)
    one_line(proc, f"m.py:{line}: torch: exits while being imported")
    assert proc.stdout == ""


def test_torch_factory_that_exits_is_an_error(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "m.py").write_text("import sys\n\ndef factory():\n    sys.exit(0)\n")
    proc = cli(["run", CONFIGS / "gemmini.yaml", "--torch", "m.py:factory", "--input", "2x4"],
               cwd=tmp_path)
    one_line(proc, "m.py:4: factory: factory() exits")


# --------------------------------------------------------------------------- sweep resume

SWEEP = (f"base: {CONFIGS / 'gemmini.yaml'}\ngrid:\n  array.rows: [4, 8, 16, 32]\n"
         "  array.dataflow: [os, ws]\nworkloads:\n  - gemm: 64x48x32\n  - gemm: 40x40x40\n")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    (folder / "s.yaml").write_text(SWEEP)
    sweep = load_sweep(folder / "s.yaml")
    run_sweep(sweep, folder / "clean.csv", "serial")
    return sweep, (folder / "clean.csv").read_text()


def _damage(line: str, how: str, cut: int) -> str:
    body = line.rstrip("\n")
    if how == "truncate":  # a cut inside the last field alone cannot be told from a value
        return body[:cut % max(1, body.rfind(",") + 1)] + "\n"
    if how == "garble":
        return body[:cut % max(1, len(body))] + "\udcff\x00,,\n"
    if how == "junk":
        return line + "not,a,row\n"
    if how == "fields":
        return body + ",extra\n"
    return line + line  # duplicate


@settings(max_examples=40, deadline=None)
@given(damage=st.lists(st.tuples(st.integers(0, 15), st.sampled_from(
    ["truncate", "garble", "junk", "fields", "duplicate"]), st.integers(0, 400)),
    min_size=1, max_size=5), torn_tail=st.integers(0, 60))
@example(damage=[(0, "truncate", 0), (0, "truncate", 0)], torn_tail=0)  # a row cut to nothing
def test_resume_drops_every_malformed_row(reference, tmp_path_factory, damage, torn_tail):
    sweep, clean = reference
    header, *rows = clean.splitlines(keepends=True)
    for index, how, cut in damage:
        rows[index] = _damage(rows[index], how, cut)
    text = header + "".join(rows)
    text += rows[-1][:torn_tail % max(1, len(rows[-1]) - 1)]  # a torn last line
    out = tmp_path_factory.mktemp("resume") / "r.csv"
    out.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    written, before = run_sweep(sweep, out, "serial")
    assert written + before == 16
    got = {(r["point"], r["workload"]): r for r in read_results(out)}
    want = {(r["point"], r["workload"]): r for r in read_results_text(clean)}
    assert got == want and len(read_results(out)) == 16
    assert out.read_bytes().endswith(b"\n")


def read_results_text(text: str):
    import csv
    import io
    return list(csv.DictReader(io.StringIO(text)))
