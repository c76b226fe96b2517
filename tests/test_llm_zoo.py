"""The llm's GPT-2 small prefill is the zoo's GPT-2 forward: same ops, same shapes, same cycles.

Oracle: ``simulator.kernels.transformer.build_gpt2`` run by ``simulator.core.engine.run`` (timing
only). The llm costs each op on its own, which is the engine without tensor residency, so the
chips here have ``buffers.residency: false``. The one deliberate difference: the llm's
embedding gather reads its rows from DRAM, the engine without residency charges a vector op no
DRAM; on a chip with ideal DRAM the two agree exactly, on a finite one by that transfer.
"""

from __future__ import annotations

import pytest

from conftest import CONFIGS
from simulator import load_chip
from simulator.hardware.chip import INPUT_BYTES
from simulator.core.engine import dram_xfer_cycles, run
from simulator.kernels.zoo import build_zoo
from simulator.llm import load_model, simulate_inference, system_of
from simulator.llm.cost import Coster
from simulator.llm.ops import decoder_layer_ops, embed_ops, head_ops
from simulator.core.vector import vector_cycles

GPT2 = CONFIGS / "models" / "gpt2-small.yaml"


def llm_ops(model, chip, prompt):
    b = INPUT_BYTES[chip.dtype]
    return (embed_ops(model, prompt, b)
            + decoder_layer_ops(model, 1, prompt, prompt, 1, b) * model.layers
            + head_ops(model, prompt, 1, b, train=False))


@pytest.mark.parametrize("config, overrides, prompt", [
    ("tpu-v4-mxu.yaml", {}, 16),  # no DRAM section: ideal DRAM
    ("tpu-v4-mxu.yaml", {"dram.bandwidth_bytes_per_s": 300e9, "dram.latency_cycles": 100}, 33),
    ("gemmini.yaml", {}, 24),  # int8, 16 GB/s DMA
    ("gemmini.yaml", {"dtype": "fp32", "array.dataflow": "os"}, 7),
])
def test_gpt2_prefill_is_the_zoo_forward_op_for_op(config, overrides, prompt):
    chip = load_chip(CONFIGS / config, {**overrides, "buffers.residency": False})
    model = load_model(GPT2)
    zoo = build_zoo("zoo:gpt2-small", batch=1, seq=prompt)
    rep = run(chip, zoo.program)
    costed = [r for r in rep.ops if not (r.unit == "layout" and r.total_cycles == 0)]
    ops = llm_ops(model, chip, prompt)
    assert len(ops) == len(costed)
    coster = Coster(chip, system_of(chip))
    gather_extra = 0
    for op, r in zip(ops, costed):
        if op.kind == "matmul":
            assert r.unit == "array", (op.name, r.name)
            assert (op.m, op.n, op.k, op.count) == (*r.shape, r.gemms), (op.name, r.name)
        else:
            assert r.unit == "vector", (op.name, r.name)
            n = 1
            for s in r.shape:
                n *= s
            assert op.m * op.n == n, (op.name, r.name)
            assert r.kind == f"vector.{op.fn}", (op.name, r.name)
        want = r.total_cycles
        if op.fn == "gather":  # the rows come from DRAM while the vector unit moves them
            body = vector_cycles(chip.vector, "move", op.m * op.n)
            assert r.compute_cycles == body
            gather_extra = max(0, dram_xfer_cycles(chip, op.nbytes) - body)
            want += gather_extra
        assert coster.cycles(op) == want, (op.name, r.name)
    assert (gather_extra == 0) == chip.dram.ideal
    makespan = max(r.end_cycle for r in rep.ops)
    res = simulate_inference(chip, model, 1, prompt, 1, all_logits=True).to_dict()
    assert res["prefill"]["time_s"] * chip.clock_hz == pytest.approx(makespan + gather_extra,
                                                                      rel=1e-12)
