"""Number formats of issue 26 item 2: fp8_e4m3, fp8_e5m2 and int4 operands, per-tensor
precision (precision.weights / activations / kv_cache) and the MAC rate per format
(array.macs_per_pe_cycle).

Values: the fast kernels and the PE reference against a scalar oracle in the array's order,
with operands rounded by ml_dtypes directly (not through the simulator's rounding). Timing: a
rate r equals the rate-1 array clocked r times faster (closed form), checked against the chip
with every cycle-per-byte knob rescaled by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from oracles import ordered_gemm
from simulator import WorkloadError, simulate_gemm
from simulator.errors import ConfigError
from simulator.hardware.chip import chip_from_config, load_chip, tensor_bytes
from simulator.hardware.config import validate_config

ROOT = Path(__file__).resolve().parent.parent
ML = {"fp8_e4m3": ml_dtypes.float8_e4m3fn, "fp8_e5m2": ml_dtypes.float8_e5m2}


def chip_of(**flat):
    """Return a Chip built through the real validator from dotted keys."""
    base = {"array.rows": 4, "array.cols": 4, "array.dataflow": "os", "name": "t"}
    base.update(flat)
    return chip_from_config(validate_config({}, {}, "test", {k: (v, "test") for k, v in base.items()}))


def bits_of(x):
    return x.view(np.uint32) if x.dtype == np.float32 else x


def fp8_operands(rng, m, n, k, fmt, scale):
    """Random normals times ``scale`` (large scales reach e4m3's saturation / e5m2's range)."""
    return scale * rng.standard_normal((m, k)), scale * rng.standard_normal((k, n))


@settings(deadline=None, max_examples=60)
@given(fmt=st.sampled_from(["fp8_e4m3", "fp8_e5m2"]), dataflow=st.sampled_from(["os", "ws", "is"]),
       rows=st.integers(1, 8), cols=st.integers(1, 8), m=st.integers(1, 14),
       n=st.integers(1, 14), k=st.integers(1, 40), scale=st.sampled_from([0.01, 1.0, 30.0]),
       seed=st.integers(0, 2**32 - 1))
def test_fp8_fast_and_reference_equal_ml_dtypes_oracle(fmt, dataflow, rows, cols, m, n, k, scale,
                                                       seed):
    chip = chip_of(**{"array.rows": rows, "array.cols": cols, "array.dataflow": dataflow,
                      "dtype": fmt})
    a, b = fp8_operands(np.random.default_rng(seed), m, n, k, fmt, scale)
    fast = simulate_gemm(chip, a=a, b=b)
    ref = simulate_gemm(chip, a=a, b=b, engine="reference")
    # the oracle: ml_dtypes rounds each operand (nearest even), fp32 products and fp32 adds in
    # the array's order (os: one chunk of K; ws/is: chunks of R rows)
    av = a.astype(ML[fmt]).astype(np.float32)
    bv = b.astype(ML[fmt]).astype(np.float32)
    want, _ = ordered_gemm(av, bv, k if dataflow == "os" else rows, fmt)
    assert fast.output.dtype == np.float32
    assert np.array_equal(bits_of(fast.output), bits_of(want.astype(np.float32)))
    assert np.array_equal(bits_of(ref.output), bits_of(fast.output))
    assert fast.compute_cycles == ref.compute_cycles


def test_fp8_rounding_is_the_formats_own():
    # 0.3 rounds to 0.3125 in both (e4m3 neighbours 0.28125/0.3125, e5m2 0.25/0.3125); 1.125
    # is exact in e4m3 (3 mantissa bits) but a tie between 1.0 and 1.25 in e5m2 (2 bits): even,
    # 1.0; 50000 in e5m2 lies between 49152 and 57344 (step 8192 above 32768): 49152
    x = np.array([[1.125, 0.3]])
    one = np.ones((2, 1))
    e4 = simulate_gemm(chip_of(dtype="fp8_e4m3"), a=x, b=one).output
    e5 = simulate_gemm(chip_of(dtype="fp8_e5m2"), a=x, b=one).output
    assert e4[0, 0] == np.float32(1.125) + np.float32(0.3125)
    assert e5[0, 0] == np.float32(1.0) + np.float32(0.3125)
    big = simulate_gemm(chip_of(dtype="fp8_e5m2"), a=np.array([[50000.0]]), b=np.ones((1, 1)))
    assert big.output[0, 0] == 49152.0


@settings(deadline=None, max_examples=60)
@given(dataflow=st.sampled_from(["os", "ws", "is"]), overflow=st.sampled_from(["wrap", "saturate"]),
       acc_bits=st.sampled_from([16, 32]), rows=st.integers(1, 8), cols=st.integers(1, 8),
       m=st.integers(1, 14), n=st.integers(1, 14), k=st.integers(1, 60),
       seed=st.integers(0, 2**32 - 1))
def test_int4_fast_and_reference_equal_integer_oracle(dataflow, overflow, acc_bits, rows, cols, m,
                                                      n, k, seed):
    chip = chip_of(**{"array.rows": rows, "array.cols": cols, "array.dataflow": dataflow,
                      "dtype": "int4", "overflow": overflow, "accumulator_bits": acc_bits})
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-8, 8, (m, k)), rng.integers(-8, 8, (k, n))
    fast = simulate_gemm(chip, a=a, b=b)
    ref = simulate_gemm(chip, a=a, b=b, engine="reference")
    want, overflows = ordered_gemm(a, b, k if dataflow == "os" else rows, "int8", overflow,
                                   acc_bits)
    assert fast.output.dtype == np.int32
    assert np.array_equal(fast.output, want.astype(np.int32))
    assert np.array_equal(ref.output, fast.output)
    assert fast.overflow_events == ref.overflow_events == overflows
    if acc_bits == 32:  # 8 * 8 * 60 never overflows int32: exact numpy
        assert np.array_equal(fast.output, a @ b)


def test_int4_operands_must_be_in_range():
    chip = chip_of(dtype="int4")
    with pytest.raises(WorkloadError, match=r"\[-8, 7\] for int4, got \[-8, 8\]"):
        simulate_gemm(chip, a=np.array([[8, -8]]), b=np.ones((2, 1), np.int64))
    simulate_gemm(chip, a=np.array([[7, -8]]), b=np.ones((2, 1), np.int64))


def test_mixed_precision_rounds_each_operand_to_its_class():
    # W4A16-style: int4 weights, bf16 activations: MACs run in bf16 (fp32 accumulation), the
    # weights enter as exact small integers; fp8 weights with fp16 activations likewise
    chip = chip_of(**{"dtype": "bf16", "precision.weights": "int4"})
    assert chip.compute_dtype == "bf16"
    a = np.array([[1.00390625, 3.0]])  # 1 + 2^-8: rounds to 1.0 in bf16
    b = np.array([[2], [-8]])
    out = simulate_gemm(chip, a=a, b=b).output
    assert out[0, 0] == np.float32(2.0 - 24.0)
    chip = chip_of(**{"dtype": "fp16", "precision.weights": "fp8_e4m3"})
    assert chip.compute_dtype == "fp16"
    out = simulate_gemm(chip, a=np.array([[1.00390625]]), b=np.array([[1.0625 + 0.01]])).output
    # a keeps fp16's 10 bits (1 + 2^-8 exact), b rounds to e4m3: 1.0725 -> 1.125 (step 1/8)
    assert out[0, 0] == np.float32(1.00390625) * np.float32(1.125)


def test_compute_format_and_bytes():
    c = chip_of(**{"dtype": "bf16", "precision.weights": "fp8_e4m3",
                   "precision.activations": "fp8_e4m3", "precision.kv_cache": "fp16"})
    assert (c.weights_dtype, c.activations_dtype, c.kv_dtype) == ("fp8_e4m3", "fp8_e4m3", "fp16")
    assert c.compute_dtype == "fp8_e4m3" and c.input_bytes == 1
    c = chip_of(**{"dtype": "int8", "precision.weights": "int4"})
    assert c.compute_dtype == "int8"  # the wider integer format
    c = chip_of(**{"dtype": "bf16", "precision.activations": "int8"})
    assert c.compute_dtype == "bf16"  # integer and float mixed: the float one
    assert [tensor_bytes("int4", e) for e in (1, 2, 3, 7)] == [1, 1, 2, 4]
    assert tensor_bytes("fp8_e5m2", 5) == 5 and tensor_bytes("bf16", 5) == 10


def test_h100_fp8_and_int8_peak_twice_bf16():
    chip = load_chip(ROOT / "configs/h100.yaml")
    bf16 = chip.peak_ops_per_s_of("bf16")
    # NVIDIA H100 SXM datasheet, dense: BF16 989.4 TFLOPS, FP8 1,979 TFLOPS, INT8 1,979 TOPS
    assert bf16 == pytest.approx(989.4e12, rel=1e-3)
    for fmt in ("fp8_e4m3", "fp8_e5m2", "int8"):
        assert chip.peak_ops_per_s_of(fmt) == 2 * bf16
    fp8 = chip.with_overrides({"precision.weights": "fp8_e4m3",
                               "precision.activations": "fp8_e4m3"})
    assert fp8.peak_ops_per_s == 2 * chip.peak_ops_per_s


def rescaled_by_hand(chip, r):
    """The rate-1 chip the docs say a rate r equals, built from the config (not the code's
    twin): clock x r, DRAM latency x r, buffer ports / r, rate 1."""
    cfg = chip.to_dict()
    over = {"clock_hz": chip.clock_hz * r,
            "dram.latency_cycles": chip.dram.latency_cycles * r,
            f"array.macs_per_pe_cycle.{chip.compute_dtype}": 1}
    for b in ("a", "b", "o", "unified_buffer"):
        over[f"buffers.{b}.port_bytes_per_cycle"] = cfg["buffers"][b]["port_bytes_per_cycle"] / r
    return chip.with_overrides(over)


@settings(deadline=None, max_examples=25)
@given(r=st.integers(2, 4), dataflow=st.sampled_from(["os", "ws", "is"]),
       m=st.integers(1, 300), n=st.integers(1, 300), k=st.integers(1, 300),
       bw=st.sampled_from([0.0, 2e9, 8e9]), buf=st.sampled_from([0, 4096]))
def test_rate_r_is_the_rate_one_array_r_times_faster(r, dataflow, m, n, k, bw, buf):
    chip = chip_of(**{"array.rows": 8, "array.cols": 8, "array.dataflow": dataflow,
                      "dtype": "fp8_e4m3", "array.macs_per_pe_cycle.fp8_e4m3": r,
                      "dram.bandwidth_bytes_per_s": bw, "dram.latency_cycles": 3,
                      "buffers.a.bytes": buf, "buffers.b.bytes": buf, "buffers.o.bytes": buf * 4,
                      "buffers.a.port_bytes_per_cycle": 16.0})
    fast = simulate_gemm(chip, (m, n, k))
    one = simulate_gemm(rescaled_by_hand(chip, r), (m, n, k))
    assert fast.compute_cycles == -(-one.compute_cycles // r)
    assert fast.total_cycles == -(-one.total_cycles // r)
    assert fast.ops[0].events["dram_bytes"] == one.ops[0].events["dram_bytes"]
    # utilisation counts MAC slots (PEs x r): never above 1
    assert 0 < fast.totals()["compute_utilisation"] <= 1.0
    # an ideal-memory GEMM: compute halves (r = 2) up to rounding, never below the bound
    if bw == 0.0 and buf == 0:
        slow = simulate_gemm(chip.with_overrides({"array.macs_per_pe_cycle.fp8_e4m3": 1}),
                             (m, n, k))
        assert fast.compute_cycles == -(-slow.compute_cycles // r)


@settings(deadline=None, max_examples=20)
@given(r=st.integers(2, 3), dataflow=st.sampled_from(["os", "ws", "is"]), rows=st.integers(1, 6),
       m=st.integers(1, 12), n=st.integers(1, 12), k=st.integers(1, 20),
       seed=st.integers(0, 2**32 - 1))
def test_reference_counts_the_same_cycles_at_rate_r(r, dataflow, rows, m, n, k, seed):
    chip = chip_of(**{"array.rows": rows, "array.cols": 3, "array.dataflow": dataflow,
                      "dtype": "int8", "array.macs_per_pe_cycle.int8": r})
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    fast = simulate_gemm(chip, a=a, b=b)
    ref = simulate_gemm(chip, a=a, b=b, engine="reference")
    assert fast.compute_cycles == ref.compute_cycles
    assert np.array_equal(fast.output, ref.output)


def test_rate_one_is_unchanged():
    base = chip_of(**{"dtype": "bf16"})
    same = chip_of(**{"dtype": "bf16", "array.macs_per_pe_cycle.fp8_e4m3": 4})
    assert simulate_gemm(base, (40, 50, 60)).total_cycles == \
        simulate_gemm(same, (40, 50, 60)).total_cycles


@pytest.mark.parametrize("key,value,msg", [
    ("array.macs_per_pe_cycle.fp8_e4m3", 0, "must be a positive integer, got 0"),
    ("array.macs_per_pe_cycle.fp8_e4m3", 1.5, "must be a positive integer"),
    ("precision.weights", "fp4", "must be one of dtype, int8, int4, fp8_e4m3"),
    ("dtype", "fp8", "must be one of int8, int4, fp8_e4m3, fp8_e5m2"),
])
def test_bad_format_keys_are_one_line_errors(tmp_path, key, value, msg):
    section, leaf = key.rsplit(".", 1) if "." in key else ("", key)
    path = tmp_path / "c.yaml"
    if key.startswith("array.macs"):
        path.write_text(f"array:\n  rows: 4\n  macs_per_pe_cycle:\n    {leaf}: {value}\n")
        line = 4
    elif section:
        path.write_text(f"{section}:\n  {leaf}: {value}\n")
        line = 2
    else:
        path.write_text(f"{key}: {value}\n")
        line = 1
    with pytest.raises(ConfigError) as err:
        load_chip(path)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{path}:{line}: {key}: ") and msg in text


def test_unknown_format_in_rate_table_lists_the_formats(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("array:\n  macs_per_pe_cycle: {fp4: 4}\n")
    with pytest.raises(ConfigError, match=r"c.yaml:2: array.macs_per_pe_cycle.fp4: unknown key "
                       r"\(known here: bf16, fp16, fp32, fp8_e4m3, fp8_e5m2, int4, int8\)"):
        load_chip(path)


def test_int4_output_input_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dtype: int4\noutput:\n  dtype: input\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3: output.dtype: input is not an output type"):
        load_chip(path)


def test_fp8_timing_only_run_imports_no_ml_dtypes():
    # the format's numpy type (ml_dtypes) is needed only where values are computed
    code = ("import sys; from simulator import simulate_gemm; "
            "from simulator.hardware.chip import load_chip; "
            "c = load_chip('configs/h100.yaml', {'precision.weights': 'fp8_e4m3', "
            "'precision.activations': 'fp8_e4m3'}); r = simulate_gemm(c, (256, 256, 256)); "
            "assert r.total_cycles > 0; assert 'ml_dtypes' not in sys.modules, 'imported'; "
            "from simulator.hardware.numerics import input_type; input_type('fp8_e5m2'); "
            "assert 'ml_dtypes' in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


LLAMA = str(ROOT / "configs/models/llama-3-8b.yaml")
H100 = str(ROOT / "configs/h100.yaml")
ACCEPT = ["llm", H100, "--model", LLAMA, "--batch", "16", "--prompt", "2048", "--generate", "256",
          "--set", "precision.weights=fp8_e4m3", "--set", "precision.activations=fp8_e4m3",
          "--set", "precision.kv_cache=fp16"]


def test_issue_26_llm_acceptance_fp8_weights_and_activations_fp16_kv(capsys):
    import json

    from simulator.llm.model import load_model
    from simulator.tools.cli import main
    assert main(ACCEPT) == 0
    text = capsys.readouterr().out
    assert ("precision        weights fp8_e4m3, activations fp8_e4m3, KV cache fp16; MACs in "
            "fp8_e4m3: peak 1,978.9 TFLOP/s per chip, bf16 989.4") in text
    assert main(ACCEPT + ["--json"]) == 0
    fp8 = json.loads(capsys.readouterr().out)
    assert main(ACCEPT[:10] + ["--json"]) == 0
    bf16 = json.loads(capsys.readouterr().out)
    peaks = fp8["chip"]["peak_ops_per_s_by_format"]
    assert peaks["fp8_e4m3"] == 2 * peaks["bf16"] == fp8["chip"]["peak_ops_per_s"]
    assert bf16["chip"]["peak_ops_per_s"] == peaks["bf16"]
    model = load_model(LLAMA)
    # bytes per class: 1-byte weights, 2-byte KV cache (as bf16's), independent counts
    assert fp8["memory"]["weight_bytes_total"] == model.parameters()
    assert bf16["memory"]["weight_bytes_total"] == 2 * model.parameters()
    kv = 2 * model.layers * model.kv_heads * model.head_dim * 16 * (2048 + 256) * 2
    assert fp8["memory"]["kv_bytes_total"] == bf16["memory"]["kv_bytes_total"] == kv
    # twice the MAC rate: a compute-bound prefill takes at most ~0.6x as long; decode moves half
    # the weight bytes
    assert fp8["prefill"]["breakdown_s"]["array"] < 0.6 * bf16["prefill"]["breakdown_s"]["array"]
    assert fp8["decode"]["dram_bytes"] < 0.75 * bf16["decode"]["dram_bytes"]


def test_int4_weights_take_half_a_byte_each():
    from simulator.llm.inference import simulate_inference
    from simulator.llm.model import load_model
    model = load_model(LLAMA)
    chip = load_chip(H100, {"precision.weights": "int4"})
    assert chip.compute_dtype == "bf16" and chip.mac_rate == 1  # W4A16: bf16 MACs
    res = simulate_inference(chip, model, batch=1, prompt=16, generate=2).to_dict()
    assert res["memory"]["weight_bytes_total"] == -(-model.parameters() // 2)
    assert res["parallel"]["precision"] == {"weights": "int4", "activations": "bf16",
                                            "kv_cache": "bf16", "compute": "bf16"}
