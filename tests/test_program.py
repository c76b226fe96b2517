"""simulator.core.program and engine.run: DAG checks, valid schedules, array/vector overlap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from conftest import CONFIGS
from simulator.kernels.linear import build_linear_step
from simulator.kernels.mlp import build_mlp_step
from simulator import WorkloadError, load_chip
from simulator.core.engine import run
from simulator.core.program import Program


def check_schedule(program, report):
    ends = {}
    busy = {}
    for op, row in zip(program.ops, report.ops):
        assert row.name == op.name
        for t in op.inputs:
            assert row.start_cycle >= ends.get(t, 0), (op.name, t)
        for s, e in busy.get(op.unit, []):
            assert row.start_cycle >= e or row.end_cycle <= s, op.name
        busy.setdefault(op.unit, []).append((row.start_cycle, row.end_cycle))
        ends[op.output] = row.end_cycle
    assert report.total_cycles == max(r.end_cycle for r in report.ops)


@given(kind=st.sampled_from(["linear", "mlp"]), batch=st.integers(1, 300),
       din=st.integers(1, 300), hidden=st.integers(1, 300), dout=st.integers(1, 50),
       chip=st.sampled_from(["tpu-v4-mxu", "gemmini", "tpu-v1", "tpu-v4-tensorcore"]))
def test_training_step_schedules_are_valid(kind, batch, din, hidden, dout, chip):
    c = load_chip(CONFIGS / f"{chip}.yaml", {"dtype": "fp32"})
    p = build_linear_step(batch, din, dout, 0.1) if kind == "linear" else \
        build_mlp_step(batch, din, hidden, dout, 0.1)
    check_schedule(p, run(c, p))


def test_overlap_shortens_a_step_versus_a_serial_schedule():
    chip = load_chip(CONFIGS / "tpu-v4-mxu.yaml", {"dtype": "fp32"})
    p = build_mlp_step(256, 128, 256, 64, 0.01)
    rep = run(chip, p)
    serial = sum(op.total_cycles for op in rep.ops)
    assert rep.total_cycles < serial
    overlapped = [(a, b) for a in rep.ops for b in rep.ops if a.unit == "array" and
                  b.unit == "vector" and a.start_cycle < b.end_cycle and b.start_cycle < a.end_cycle]
    assert overlapped  # some vector op ran while the array was busy


def test_program_errors_name_the_op():
    p = Program("t")
    p.input("X", (4, 3))
    p.input("W", (5, 2))
    with pytest.raises(WorkloadError, match="program t: mm: inner dimensions differ"):
        p.matmul("mm", "X", "W")
    with pytest.raises(WorkloadError, match="uses tensor 'Q' before"):
        p.elementwise("e", "relu", "Q")
    with pytest.raises(WorkloadError, match="unknown elementwise kind"):
        p.elementwise("e", "frobnicate", "X")
    p.input("b", (1, 3))
    p.elementwise("e", "add", "X", "b")
    with pytest.raises(WorkloadError, match="duplicate op name"):
        p.elementwise("e", "add", "X", "b", out="other")
    with pytest.raises(WorkloadError, match="do not match"):
        p.elementwise("f", "add", "X", "W")
    with pytest.raises(WorkloadError, match="input not given"):
        run(load_chip(CONFIGS / "tpu-v4-mxu.yaml"), p, {"X": np.ones((4, 3))})
