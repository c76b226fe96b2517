"""Grouped and depthwise convolutions under ``array.depthwise`` (simulator.core.grouped):
packed groups on the PE reference cycle for cycle and bit for bit, values against PyTorch-free
numpy oracles, the vector mapping's closed-form cycles, and the one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT
from simulator import WorkloadError
from simulator.core.engine import run
from simulator.core.grouped import depthwise_vector_values, grouped_mapping
from simulator.core.program import Program
from simulator.kernels import nnref
from strategies import make_chip


def _conv_program(nb, c, hw, groups, mult, kernel, stride, pad):
    p = Program("gconv")
    p.input("x", (nb, c, hw, hw))
    p.input("w", (groups * mult, c // groups, kernel, kernel))
    p.conv2d("conv", "x", "w", stride=stride, padding=pad, groups=groups, out="y")
    return p


def _numpy_conv(x, w, stride, pad, groups):
    return nnref.conv2d(x.astype(np.float64), w.astype(np.float64), stride, pad,
                        lambda a, b: a @ b, groups)


@st.composite
def grouped_cases(draw):
    df = draw(st.sampled_from(["os", "ws", "is"]))
    kernel = draw(st.integers(1, 3))
    cg = draw(st.integers(1, 2))
    mult = draw(st.integers(1, 2))
    kc = cg * kernel * kernel
    rows = draw(st.integers(kc, max(kc, 20)))
    cols = draw(st.integers(mult, 8))
    groups = draw(st.integers(2, 7))
    hw = draw(st.integers(kernel, 6))
    return dict(df=df, kernel=kernel, cg=cg, mult=mult, rows=rows, cols=cols, groups=groups,
                hw=hw, nb=draw(st.integers(1, 2)), stride=draw(st.integers(1, 2)),
                pad=draw(st.integers(0, 1)), arrays=draw(st.integers(1, 3)),
                dtype=draw(st.sampled_from(["int8", "fp32"])),
                fill=draw(st.sampled_from(["full", "active"])), seed=draw(st.integers(0, 9999)))


def _inputs(case):
    rng = np.random.default_rng(case["seed"])
    c = case["groups"] * case["cg"]
    xs = (case["nb"], c, case["hw"], case["hw"])
    ws = (case["groups"] * case["mult"], case["cg"], case["kernel"], case["kernel"])
    if case["dtype"] == "int8":
        return (rng.integers(-128, 128, xs).astype(np.int64),
                rng.integers(-128, 128, ws).astype(np.int64))
    return rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32)


def _chip(case, mapping):
    return make_chip(case["rows"], case["cols"], case["df"], case["fill"], True,
                     case["dtype"]).with_overrides({"array.depthwise": mapping,
                                                    "array.count": case["arrays"]})


@settings(max_examples=60, deadline=None)
@given(grouped_cases())
def test_packed_groups_run_on_the_pe_reference_cycle_for_cycle_and_bit_for_bit(case):
    p = _conv_program(case["nb"], case["groups"] * case["cg"], case["hw"], case["groups"],
                      case["mult"], case["kernel"], case["stride"], case["pad"])
    x, w = _inputs(case)
    chip = _chip(case, "packed")
    fast = run(chip, p, {"x": x, "w": w})
    ref = run(chip, p, {"x": x, "w": w}, engine="reference")
    assert fast.ops[0].compute_cycles == ref.ops[0].compute_cycles
    assert np.array_equal(fast.output, ref.output)
    per_channel = run(_chip(case, "per_channel"), p, {"x": x, "w": w})
    # the zeros of the block diagonal add exact zeros: the same values as one GEMM per group
    assert np.array_equal(fast.output, per_channel.output)
    want = _numpy_conv(x, w, case["stride"], case["pad"], case["groups"])
    if case["dtype"] == "int8":
        assert np.array_equal(fast.output, want.astype(np.int64))
    else:
        np.testing.assert_allclose(fast.output, want, rtol=1e-4, atol=1e-4)
    op = fast.ops[0]
    m, n, k = p.gemm_shape(p.ops[0])
    assert op.macs == m * n * k * case["groups"]  # useful MACs
    gm = op.grouped
    assert gm["mapping"] == "packed" and gm["groups"] == case["groups"]
    per = gm["groups_per_gemm"]
    full, rest = divmod(case["groups"], per)
    assert op.events["macs"] == gm["macs_performed"] == \
        m * n * k * (full * per * per + rest * rest)  # the zeros streamed are MACs performed


@pytest.mark.parametrize("df, rows, cols, per", [("ws", 64, 64, 7), ("is", 64, 64, 7),
                                                 ("os", 64, 64, 64), ("ws", 16, 4, 1),
                                                 ("os", 16, 4, 4)])
def test_groups_per_packed_gemm_fill_one_fold(df, rows, cols, per):
    """3x3 depthwise: ws packs rows // 9 windows (and at most C columns), is rows // 9, os one
    channel per column."""
    chip = make_chip(rows, cols, df).with_overrides({"array.depthwise": "packed"})
    p = _conv_program(1, 128, 8, 128, 1, 3, 1, 1)
    assert grouped_mapping(chip, p, p.ops[0]).per_gemm == per


def test_packed_depthwise_raises_the_edge_tpus_mapping_efficiency_sevenfold():
    """A 3x3 depthwise layer (MobileNet's 112 x 112 x 32) on a 64x64 ws array: one channel per
    GEMM holds 9 of 4096 PEs; packed, 7 channels' windows hold 63: 32 channels in 5 GEMMs
    (4 of 7, one of 4) instead of 32, each as long as one channel's."""
    p = _conv_program(1, 32, 112, 32, 1, 3, 1, 1)
    eff = {}
    for mapping in ("per_channel", "packed"):
        chip = make_chip(64, 64, "ws", "full", True, "int8").with_overrides(
            {"array.depthwise": mapping})
        rep = run(chip, p)
        eff[mapping] = rep.ops[0].busy_pe_cycles / (chip.pes * rep.ops[0].compute_cycles)
    assert eff["packed"] / eff["per_channel"] == pytest.approx(32 / 5, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(grouped_cases())
def test_depthwise_on_the_vector_unit_adds_taps_in_order(case):
    case = dict(case, cg=1)
    p = _conv_program(case["nb"], case["groups"], case["hw"], case["groups"], case["mult"],
                      case["kernel"], case["stride"], case["pad"])
    x, w = _inputs(case)
    chip = _chip(case, "vector")
    rep = run(chip, p, {"x": x, "w": w})
    op = rep.ops[0]
    assert op.unit == "vector" and op.kind == "vector.depthwise_conv2d"
    assert op.grouped == {"mapping": "vector", "groups": case["groups"]}
    # closed form: a multiply-add per tap and output, class add
    outs = int(np.prod(p.shapes["y"]))
    taps = case["kernel"] ** 2
    lanes, lat = chip.vector.lanes, chip.vector.latency_cycles
    interval = chip.vector.interval["add"]
    assert op.compute_cycles == -(-outs * taps // lanes) * interval + lat - 1
    assert op.events["vector_lane_ops"] == outs * taps
    # values: float32 products and sums in tap order (a naive loop)
    want = _numpy_conv(x, w, case["stride"], case["pad"], case["groups"])
    np.testing.assert_allclose(rep.output, want, rtol=1e-4, atol=1e-3)


def test_vector_depthwise_values_equal_a_naive_tap_loop():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 5, 9)).astype(np.float32)
    b = rng.standard_normal((3, 9, 2)).astype(np.float32)
    want = np.zeros((3, 5, 2), np.float32)
    for g in range(3):
        for i in range(5):
            for j in range(2):
                acc = np.float32(0)
                for t in range(9):
                    acc = np.float32(acc + np.float32(a[g, i, t] * b[g, t, j]))
                want[g, i, j] = acc
    assert np.array_equal(depthwise_vector_values(a, b), want)


def test_grouped_convs_with_several_channels_per_group_stay_on_the_array_under_vector():
    chip = make_chip(8, 8, "ws").with_overrides({"array.depthwise": "vector"})
    p = _conv_program(1, 8, 6, 4, 1, 3, 1, 1)  # 2 channels per group: not depthwise
    op = run(chip, p).ops[0]
    assert op.unit == "array" and op.grouped["mapping"] == "per_channel"


def test_per_channel_is_the_default_and_unchanged():
    chip = make_chip(8, 8, "ws")
    assert chip.array.depthwise == "per_channel"
    p = _conv_program(1, 6, 6, 6, 1, 3, 1, 1)
    op = run(chip, p).ops[0]
    assert op.gemms == 6 and op.events["macs"] == op.macs


def test_a_window_taller_than_the_array_cannot_be_packed():
    chip = make_chip(8, 8, "ws").with_overrides({"array.depthwise": "packed"})
    p = _conv_program(1, 6, 6, 6, 1, 3, 1, 1)  # 9 taps on 8 rows
    with pytest.raises(WorkloadError, match="array.depthwise"):
        run(chip, p)


def test_the_cli_refuses_an_unpackable_array_in_one_line(tmp_path):
    """`packed` on an array narrower than one window: one line naming the key, exit 2."""
    topo = tmp_path / "net.py"
    topo.write_text("import torch\n"
                    "def make():\n"
                    "    return torch.nn.Conv2d(8, 8, 5, padding=2, groups=8)\n")
    out = subprocess.run([sys.executable, "-m", "simulator", "run",
                          str(ROOT / "configs" / "gemmini.yaml"), "--set", "array.rows=16",
                          "--set", "array.dataflow=ws", "--set", "array.depthwise=packed",
                          "--torch", f"{topo}:make", "--input", "1x8x8x8"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "array.depthwise" in lines[0] and "Traceback" not in out.stderr
