"""simulator.llm: physical floors, engine equivalence, grouped decode, scaling, bad input."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings, strategies as st

from conftest import CONFIGS
from llm_strategies import chips, make_llm_chip, make_model, models
from simulator import load_chip
from simulator.hardware.chip import INPUT_BYTES
from simulator.core.engine import dram_xfer_cycles, run
from simulator.errors import ConfigError, SimulatorInputError
from simulator.llm import load_model, simulate_inference, system_of
from simulator.llm.cost import Coster
from simulator.llm.inference import decode_weights
from simulator.llm.model import model_from_dict
from simulator.llm.ops import check_tp, decoder_layer_ops, embed_ops, head_ops, to_program
from simulator.llm.training import simulate_training
from simulator.core.vector import vector_cycles

MODELS = CONFIGS / "models"
FEW = settings(max_examples=40, deadline=None)


def valid_tp(model, tp):
    try:
        check_tp(model, tp)
        return True
    except ConfigError:
        return False


# published parameter counts (model cards) -> the shapes in our files reproduce them
@pytest.mark.parametrize("name, params, rel", [
    ("gpt2-small", 124.44e6, 0.005), ("llama-3-8b", 8.03e9, 0.002),
    ("llama-3-70b", 70.55e9, 0.002), ("qwen2.5-0.5b", 0.494e9, 0.002),
    ("smollm2-135m", 134.5e6, 0.005), ("mixtral-8x7b", 46.7e9, 0.002),
    ("llama-2-7b", 6.74e9, 0.002), ("llama-2-70b", 68.98e9, 0.002),
    ("llama-3.1-8b", 8.03e9, 0.002), ("llama-3.3-70b", 70.55e9, 0.002)])
def test_model_files_reproduce_published_parameter_counts(name, params, rel):
    m = load_model(MODELS / f"{name}.yaml")
    assert m.source
    assert abs(m.parameters() - params) <= rel * params


def dense_macs_per_token(model):
    """Closed form: MACs per token of the matmul weights of one layer (dense models)."""
    d, hd, h, kv = model.d_model, model.head_dim, model.heads, model.kv_heads
    return d * (h + 2 * kv) * hd + h * hd * d + d * model.ffn_dim * (3 if model.ffn_gated else 2)


@FEW
@given(model=models(moe=False), chip=chips(), batch=st.integers(1, 6), prompt=st.integers(1, 40),
       generate=st.integers(2, 40), tp=st.sampled_from([1, 2, 4]), pp=st.integers(1, 3))
def test_physical_floors(model, chip, batch, prompt, generate, tp, pp):
    assume(valid_tp(model, tp) and pp <= model.layers)
    res = simulate_inference(chip, model, batch, prompt, generate, tp, pp).to_dict()
    b = INPUT_BYTES[chip.dtype]
    n = tp * pp
    bw = chip.dram.bandwidth_bytes_per_s
    peak = chip.peak_ops_per_s
    # prefill: FLOPs of the weights and of attention (full P x P scores), closed form
    pre_flops = 2 * (model.layers * (batch * prompt * dense_macs_per_token(model)
                                     + 2 * batch * model.heads * prompt * prompt * model.head_dim)
                     + batch * model.d_model * model.vocab)
    assert res["prefill"]["time_s"] * (1 + 1e-9) >= pre_flops / (peak * n)
    # decode: every weight and the mean KV cache read once per step, from n chips' memories
    steps = generate - 1
    mean_ctx = prompt + 1 + (steps - 1) / 2
    weight_bytes = (model.layers * dense_macs_per_token(model) + model.d_model * model.vocab) * b
    kv_bytes = 2 * model.layers * batch * model.kv_heads * model.head_dim * mean_ctx * b
    tpot = res["decode"]["tpot_mean_s"]
    assert tpot * (1 + 1e-9) >= (weight_bytes + kv_bytes) / (bw * n)
    dec_flops = 2 * (model.layers * (batch * dense_macs_per_token(model)
                                     + 2 * batch * model.heads * mean_ctx * model.head_dim)
                     + batch * model.d_model * model.vocab)
    assert tpot * (1 + 1e-9) >= dec_flops / (peak * n)


@FEW
@given(model=models(), chip=chips(), batch=st.integers(1, 6), prompt=st.integers(1, 30),
       generate=st.integers(1, 20), tp=st.sampled_from([1, 2]), pp=st.integers(1, 2),
       more=st.sampled_from(["tp", "pp"]))
def test_adding_chips_never_lowers_bytes_moved(model, chip, batch, prompt, generate, tp, pp, more):
    """With buffers that hold the test models' GEMM tiles without refetching (a 4 KiB buffer
    can refetch, and splitting the GEMM over more chips' buffers then saves real bytes: see
    the next test)."""
    if chip.buffers.unified:
        chip = chip.with_overrides({"buffers.unified_buffer.bytes": 1 << 20})
    tp2, pp2 = (2 * tp, pp) if more == "tp" else (tp, pp + 1)
    assume(valid_tp(model, tp) and valid_tp(model, tp2) and pp2 <= model.layers)
    small = simulate_inference(chip, model, batch, prompt, generate, tp, pp).to_dict()
    big = simulate_inference(chip, model, batch, prompt, generate, tp2, pp2).to_dict()
    assert big["totals"]["bytes_moved"] >= small["totals"]["bytes_moved"]


def test_more_chips_can_move_fewer_bytes_when_their_buffers_end_refetching():
    """The counterexample hypothesis found for the property above with a 4 KiB buffer: one
    chip refetches the q/k/v weights (the GEMM's tiles do not fit); two chips each hold half
    and read every byte once, so the pair moves fewer DRAM bytes than the one chip."""
    chip = make_llm_chip(**{"array.rows": 8, "array.cols": 4, "array.dataflow": "is",
                            "dtype": "bf16", "clock_hz": 1e9, "vector.lanes": 4,
                            "dram.bandwidth_bytes_per_s": 1e11, "buffers.unified": True,
                            "buffers.unified_buffer.bytes": 4096, "system.chips": 2,
                            "system.link_bandwidth_bytes_per_s": 1e10})
    model = model_from_dict(dict(name="tiny", source="test", layers=1, d_model=64, heads=4,
                                 kv_heads=2, ffn_dim=8, ffn_gated=False, vocab=10,
                                 norm="rmsnorm", activation="gelu", position="learned",
                                 max_context=64), {}, "test-model")
    one, two = (simulate_inference(chip, model, 1, 1, 1, tp).to_dict() for tp in (1, 2))
    qkv = {r["name"]: r for r in one["prefill_ops"]}["qkv"]
    weight_bytes = 64 * (4 + 2 * 2) * 16 * 2
    assert qkv["dram_bytes"] > weight_bytes + 64 * 2 + 128 * 4  # refetched
    assert two["totals"]["bytes_moved"] < one["totals"]["bytes_moved"]


@FEW
@given(model=models(), chip=chips(), batch=st.integers(1, 4), q=st.integers(1, 24),
       extra=st.integers(0, 24))
def test_one_chip_equals_the_engine_running_the_same_ops(model, chip, batch, q, extra):
    """tp = pp = 1: every op costs what engine.run charges for it in a Program, and a prefill
    is the sum of those op times (ops one after another) plus the embedding gather. The llm
    costs each op on its own (matmuls with the GEMM memory model, vector ops from the buffer),
    which is the engine without tensor residency."""
    chip = chip.with_overrides({"buffers.residency": False})
    coster = Coster(chip, system_of(chip))
    b = INPUT_BYTES[chip.dtype]
    layer = decoder_layer_ops(model, batch, q, q + extra, 1, b)
    head = head_ops(model, batch, 1, b, train=False)
    embed = embed_ops(model, batch * q, b)
    engine_cycles = []
    for ops in (layer, head, embed):
        prog = to_program(ops)
        rep = run(chip, prog) if prog.ops else None
        engine = iter(rep.ops if rep else [])
        for op in ops:
            if op.kind in ("matmul", "vector", "reduce") and op.fn != "gather":
                # a grouped GEMM is one batched matmul, placed on the arrays alike
                assert coster.cycles(op) == next(engine).total_cycles, op.name
        assert next(engine, None) is None
        engine_cycles.append(sum(r.total_cycles for r in rep.ops) if rep else 0)
    nbytes = batch * q * model.d_model * b * (2 if model.position == "learned" else 1)
    # the gather moves its rows on the vector unit while DRAM streams them in
    gather_c = max(vector_cycles(chip.vector, "move", batch * q * model.d_model),
                   dram_xfer_cycles(chip, nbytes)) + chip.launch_cycles
    assert coster.cycles(embed[0]) == gather_c
    if extra == 0:  # a prefill of q tokens: every op once per layer, one after another
        res = simulate_inference(chip, model, batch, q, 1).to_dict()
        want = model.layers * engine_cycles[0] + engine_cycles[1] \
            + engine_cycles[2] + gather_c
        assert res["prefill"]["time_s"] == pytest.approx(want / chip.clock_hz, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(model=models(), chip=chips(), batch=st.integers(1, 8), prompt=st.integers(1, 200),
       generate=st.integers(2, 300), tp=st.sampled_from([1, 2]), pp=st.integers(1, 2))
def test_grouped_decode_is_close_to_costing_every_step(model, chip, batch, prompt, generate, tp,
                                                       pp):
    assume(valid_tp(model, tp) and pp <= model.layers)
    coster = Coster(chip, system_of(chip))
    exact = simulate_inference(chip, model, batch, prompt, generate, tp, pp, exact=True,
                               coster=coster).to_dict()["decode"]
    grouped = simulate_inference(chip, model, batch, prompt, generate, tp, pp, decode_points=16,
                                 coster=coster).to_dict()["decode"]
    assert grouped["evaluated_contexts"] <= 17
    assert grouped["time_s"] == pytest.approx(exact["time_s"], rel=0.02)
    assert grouped["tpot_first_s"] == exact["tpot_first_s"]
    assert grouped["tpot_last_s"] == exact["tpot_last_s"]


@given(n=st.integers(1, 2000), points=st.integers(1, 40))
def test_decode_weights_sum_affine_functions_exactly(n, points):
    offsets, weights = decode_weights(n, points)
    assert len(offsets) <= max(points + 1, 1) or len(offsets) == n
    assert weights.sum() == pytest.approx(n)
    a, c = 3.25, -7.5  # any affine f(x) = a x + c is summed exactly
    assert float((weights * (a * offsets + c)).sum()) == pytest.approx(
        a * n * (n - 1) / 2 + c * n, rel=1e-9)


def test_llama_70b_on_eight_h100():
    chip = load_chip(CONFIGS / "h100.yaml")
    res = simulate_inference(chip, load_model(MODELS / "llama-3-70b.yaml"), 16, 2048, 256,
                             tp=8).to_dict()
    assert res["memory"]["fits"]
    assert res["decode"]["bound"] in ("memory", "overhead")
    assert res["prefill"]["bound"] == "array"
    assert res["decode"]["breakdown_s"]["comm"] > 0  # two all-reduces per layer


def test_training_step_floor_and_data_parallel_traffic():
    chip = make_llm_chip(**{"array.rows": 8, "array.cols": 8, "dtype": "bf16",
                            "dram.bandwidth_bytes_per_s": 1e10, "system.chips": 16,
                            "system.link_bandwidth_bytes_per_s": 1e9})
    model = make_model()
    one = simulate_training(chip, model, 8, 32, dp=1, tp=2, pp=2).to_dict()
    two = simulate_training(chip, model, 8, 32, dp=2, tp=2, pp=2).to_dict()
    tokens = 8 * 32
    fwd = model.layers * tokens * dense_macs_per_token(model) + tokens * 32 * 100
    for r in (one, two):
        chips_used = r["parallel"]["chips_used"]
        assert r["step"]["time_s"] >= 2 * 3 * fwd / (chip.peak_ops_per_s * chips_used)
    assert two["step"]["link_bytes"] > one["step"]["link_bytes"]
    assert two["step"]["dp_all_reduce_s"] > 0 == one["step"]["dp_all_reduce_s"]


@pytest.mark.parametrize("call, where", [
    (lambda m, c: simulate_inference(c, m, 1, 8, 4, tp=3), "test-model"),
    (lambda m, c: simulate_inference(c, m, 1, 8, 4, tp=64), "test-model"),
    (lambda m, c: simulate_inference(c, m, 1, 5000, 4), "test-model"),
    (lambda m, c: simulate_inference(c, m, 0, 8, 4), "--batch 0"),
    (lambda m, c: simulate_training(c, m, 7, 8, dp=2), "--global-batch 7"),
])
def test_bad_parallelism_and_sizes_are_one_line_errors(call, where):
    chip = make_llm_chip(**{"system.chips": 4, "system.link_bandwidth_bytes_per_s": 1e9})
    with pytest.raises(SimulatorInputError) as exc:
        call(make_model(), chip)
    assert str(exc.value).startswith(where) and "\n" not in str(exc.value)


def test_model_that_fits_nowhere_points_at_the_capacity_key(tmp_path):
    cfg = tmp_path / "chip.yaml"
    cfg.write_text("name: small\ndram:\n  bandwidth_bytes_per_s: 1.0e12\n"
                   "  capacity_bytes: 1000000000\nsystem:\n  chips: 8\n"
                   "  link_bandwidth_bytes_per_s: 1.0e11\n")
    chip = load_chip(cfg)
    with pytest.raises(ConfigError, match=r"chip.yaml:4: dram.capacity_bytes: llama-3-8b needs"):
        simulate_inference(chip, load_model(MODELS / "llama-3-8b.yaml"), 1, 128, 16, tp=8)


@pytest.mark.parametrize("text, expected", [
    ("name: x\nlayerz: 3\n", "M:2: layerz: unknown model key"),
    ("name: x\nsource: s\nlayers: -1\n", "M:3: layers: must be a positive integer"),
    ("name: x\nsource: s\n", "M:1: layers: missing"),
])
def test_bad_model_files_are_one_line_errors(tmp_path, text, expected):
    path = tmp_path / "M"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_model(path)
    assert str(exc.value).startswith(f"{path}:{expected.split(':', 1)[1].split(':', 1)[0]}") or \
        str(exc.value).replace(str(path), "M").startswith(expected)


def test_heads_not_splitting_over_tp_points_at_the_heads_line():
    m = load_model(MODELS / "llama-3-8b.yaml")
    with pytest.raises(ConfigError) as exc:
        check_tp(m, 3)
    assert str(exc.value).startswith(f"{MODELS / 'llama-3-8b.yaml'}:")
    line = int(str(exc.value).split(":")[1])
    assert (MODELS / "llama-3-8b.yaml").read_text().splitlines()[line - 1].startswith("heads:")
