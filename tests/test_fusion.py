"""Epilogue fusion (vector.fuse_epilogues): which ops fuse, the bytes they stop moving, their
place in the timeline, and values unchanged."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from conftest import CONFIGS
from simulator import load_chip
from simulator.core.engine import run
from simulator.core.fusion import epilogue_fusion
from simulator.core.program import Program
from simulator.core.residency import free_layout_ops, plan_residency
from simulator.core.vector import passes_cycles


def chip_with(fuse, capacity=1 << 30, launch_s=0.0, store="fp32"):
    return load_chip(CONFIGS / "gemmini.yaml", {
        "dtype": "fp32", "buffers.unified": True, "buffers.unified_buffer.bytes": capacity,
        "buffers.double_buffered": False, "dram.bandwidth_bytes_per_s": 4e9,
        "dram.latency_cycles": 10, "vector.fuse_epilogues": fuse,
        "overhead.launch_s": launch_s, "vector.output_dtype": store})


def block(batch, width, residual, act="gelu"):
    """x -> fc (+ bias) -> act [-> + x] -> fc2 -> softmax: the epilogue of fc is bias, act and
    the residual add; fc2's result feeds softmax (not elementwise: never fused)."""
    p = Program("block")
    x = p.input("x", (batch, width))
    for name in ("W", "W2"):
        p.input(name, (width, width))
    p.input("b", (width,))
    h = p.matmul("fc", x, "W", out="h")
    h = p.elementwise("bias", "add", h, "b", out="hb")
    h = p.elementwise("act", act, h, out="ha")
    if residual:
        h = p.elementwise("res", "add", h, x, out="hr")
    y = p.matmul("fc2", h, "W2", out="y")
    p.vector("sm", "softmax", y, out="out", axis=-1)
    return p


def test_the_chain_after_an_array_op_fuses():
    p = block(8, 16, residual=True)
    f = epilogue_fusion(chip_with(True), p, free_layout_ops(p))
    assert f.into == {"bias": "fc", "act": "fc", "res": "fc"}
    assert f.virtual == {"h", "hb", "ha"}
    assert not epilogue_fusion(chip_with(False), p, free_layout_ops(p))


def test_what_does_not_fuse():
    """A result read twice, a program output, a broadcast of the result, an input made after
    the array op, and non-elementwise ops stay unfused."""
    p = Program("no")
    p.input("x", (4, 8))
    p.input("W", (8, 8))
    p.input("c", (4, 8))
    p.matmul("mm1", "x", "W", out="a")  # read by two ops
    p.elementwise("r1", "relu", "a", out="a1")
    p.elementwise("r2", "exp", "a", out="a2")
    p.matmul("mm2", "a1", "W", out="b")  # its consumer's other input comes after mm2
    p.elementwise("late", "exp", "c", out="c2")
    p.elementwise("mix", "add", "b", "c2", out="bm")
    p.matmul("mm3", "a2", "W", out="d")
    p.vector("sm", "softmax", "d", out="ds", axis=-1)  # softmax is not elementwise
    p.matmul("mm4", "bm", "W", out="e")  # e's consumer broadcasts it
    p.input("big", (3, 4, 8))
    p.elementwise("bc", "add", "e", "big", out="eb")
    f = epilogue_fusion(chip_with(True), p, free_layout_ops(p))
    assert f.into == {}
    q = Program("out")
    q.input("x", (4, 8))
    q.input("W", (8, 8))
    q.matmul("mm", "x", "W", out="y")
    q.elementwise("relu", "relu", "y", out="z")
    q.elementwise("exp", "exp", "z", out="w")
    assert epilogue_fusion(chip_with(True), q, set()).into == {"relu": "mm", "exp": "mm"}
    q.outputs = ["z", "w"]  # z must be stored: the chain stops before exp
    f = epilogue_fusion(chip_with(True), q, set())
    assert f.into == {"relu": "mm"} and f.virtual == {"y"}


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 40), width=st.sampled_from([8, 16, 32]),
       residual=st.booleans(), cap=st.sampled_from([2 << 10, 8 << 10, 1 << 30]),
       act=st.sampled_from(["gelu", "relu", "tanh"]))
def test_fusion_changes_no_value_and_moves_no_more_bytes(batch, width, residual, cap, act):
    """Same values bit for bit; the fused intermediates take no buffer bytes and no DRAM bytes;
    the program moves at most the unfused DRAM bytes and takes at most its cycles."""
    p = block(batch, width, residual, act)
    rng = np.random.default_rng(batch * 31 + width)
    vals = {t: rng.standard_normal(p.shapes[t]).astype(np.float32) for t in p.inputs}
    off = run(chip_with(False, cap), p, vals)
    on = run(chip_with(True, cap), p, vals)
    for t in off.values:
        np.testing.assert_array_equal(off.values[t], on.values[t])
    plan = plan_residency(chip_with(True, cap), p)
    for t in ("h", "hb") + (("ha",) if residual else ()):
        assert plan.nbytes[t] == 0 and plan.resident[t]
    dram = lambda rep: rep.totals()["traffic_bytes"]["dram"]["total"]  # noqa: E731
    assert dram(on) <= dram(off)
    assert on.total_cycles <= off.total_cycles


def test_a_fused_op_runs_beside_its_array_op_and_pays_no_launch():
    """Each fused op starts with the array op and ends no sooner than one lane group after the
    array op's last results; it pays no launch overhead, unfused ops do."""
    chip = chip_with(True, launch_s=1e-6)
    p = block(64, 32, residual=True)
    rep = run(chip, p)
    by = {o.name: o for o in rep.ops}
    fc = by["fc"]
    for name in ("bias", "act", "res"):
        op = by[name]
        assert op.fused_into == "fc"
        assert op.overhead_cycles == 0
        assert op.start_cycle >= fc.start_cycle
        tail, _ = passes_cycles(chip.vector, [("add" if name != "act" else "transcendental",
                                               chip.vector.lanes, 0)])
        assert op.end_cycle >= fc.end_cycle + tail
        assert op.metrics()["fused_into"] == "fc"
    assert by["sm"].overhead_cycles == chip.launch_cycles > 0
    assert by["sm"].fused_into is None
    # the chain ends in order: bias before act before res
    assert by["bias"].end_cycle <= by["act"].end_cycle <= by["res"].end_cycle


def test_h100_fuses_bert_epilogues():
    """configs/h100.yaml fuses: BERT-base's bias adds, GELUs and residual adds run in their
    GEMMs' epilogues and the model takes fewer cycles and DRAM bytes than unfused."""
    from simulator.kernels.zoo import build_zoo
    prog = build_zoo("zoo:bert-base", batch=16, seq=384).program  # spills the 50 MB L2
    chip = load_chip(CONFIGS / "h100.yaml", {"dtype": "int8"})
    assert chip.vector.fuse_epilogues
    on = run(chip, prog)
    off = run(chip.with_overrides({"vector.fuse_epilogues": False}), prog)
    fused = [o for o in on.ops if o.fused_into]
    kinds = {o.kind for o in fused}
    assert {"vector.add", "vector.gelu"} <= kinds
    assert on.total_cycles < off.total_cycles
    assert on.totals()["traffic_bytes"]["dram"]["total"] < \
        off.totals()["traffic_bytes"]["dram"]["total"]
