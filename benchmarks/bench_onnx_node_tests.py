"""ONNX's own node tests through the ONNX importer, on values (issue 25).

Every node test case that ``onnx.backend.test.case.node`` generates (1,884 with onnx 1.23) is
imported with ``simulator.frontends.onnx_import.import_onnx`` and run functionally on a float32
chip (``configs/tpu-v4-mxu.yaml --set dtype=fp32``) with each of the case's input sets; the
chip's outputs are compared with the case's expected outputs. Outcome per case:

- ``pass``: every output of every data set matches: float outputs within the case's own
  tolerance (onnx's backend tests use rtol 1e-3, atol 1e-7; a case may set its own; float16
  outputs, whose reference rounds every intermediate to float16 where the chip keeps float32,
  within rtol 2**-9, 4 units of float16 roundoff), integer and boolean outputs exactly, with
  the expected shape (a scalar may come back as shape (1,));
- ``wrong``: the importer took the model and the chip computed a different value (must be 0);
- ``refused``: a one-line WorkloadError / SimulatorInputError (an operator, attribute or element
  type the importer does not model), counted per reason;
- ``traceback``: any other exception (must be 0).

    .venv/bin/python benchmarks/bench_onnx_node_tests.py [--table FILE.md] [--only SUBSTR]
        [--show wrong|refused|traceback|pass] [--slice] [--summary FILE.json]

Inputs of rank 0 or 1 that nodes read only as secondary inputs (axes, a target shape, pads,
repeats, scales, a depth: what a compiler for the chip specialises on) are given at import
(``import_onnx(constants=...)``) when the case is refused with every input as data.

``--slice`` runs only the representative slice the CI test runs (``SLICE``). Prints the counts,
then a per-operator table (pass / wrong / refused / traceback); ``--table`` writes the table as
Markdown, ``--summary`` the counts as JSON (``benchmarks/onnx_node_tests.json`` is the one
docs/models-coverage.md shows; regenerate the page after writing it). Exit status 1 when
any case is wrong or a traceback, else 0.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import load_chip  # noqa: E402
from simulator.core.engine import run  # noqa: E402
from simulator.errors import SimulatorInputError, WorkloadError  # noqa: E402
from simulator.frontends.onnx_import import import_onnx  # noqa: E402

CONFIG = ROOT / "configs" / "tpu-v4-mxu.yaml"
# float16 outputs: the reference rounds every intermediate to float16, the fp32 chip does
# not; they compare within 4 units of float16 roundoff (2**-9) relative
FP16_RTOL = 2.0 ** -9

# The CI slice: cases spread over the operator families, passing and refused ones (the test
# holds the slice to no wrong value, no traceback, and at least SLICE_MIN_PASS passes).
SLICE = [
    "test_abs", "test_add", "test_add_bcast", "test_sub", "test_mul", "test_div",
    "test_div_bcast", "test_relu", "test_sigmoid", "test_tanh", "test_exp", "test_log",
    "test_sqrt", "test_erf", "test_reciprocal", "test_neg", "test_floor", "test_ceil",
    "test_sign", "test_where_example", "test_equal", "test_less", "test_greater", "test_not_2d",
    "test_and2d", "test_max_example", "test_min_example", "test_sum_example",
    "test_mean_example", "test_clip", "test_leakyrelu", "test_elu", "test_selu", "test_softplus",
    "test_hardsigmoid", "test_hardswish", "test_gelu_default_1", "test_pow",
    "test_softmax_axis_0", "test_logsoftmax_axis_1", "test_reduce_sum_keepdims_example",
    "test_reduce_mean_default_axes_keepdims_example", "test_reduce_max_do_not_keepdims_example",
    "test_reduce_min_keepdims_example", "test_argmax_default_axis_example",
    "test_transpose_default", "test_reshape_reordered_all_dims", "test_squeeze",
    "test_unsqueeze_axis_0", "test_concat_2d_axis_0", "test_split_equal_parts_1d_opset18",
    "test_slice", "test_gather_0", "test_expand_dim_changed", "test_tile", "test_matmul_2d",
    "test_gemm_default_no_bias", "test_conv_with_strides_padding",
    "test_maxpool_2d_default", "test_averagepool_2d_pads_count_include_pad",
    "test_batchnorm_example", "test_layer_normalization_2d_axis1",
    "test_globalaveragepool", "test_cast_FLOAT_to_DOUBLE", "test_cast_FLOAT_to_BFLOAT16",
    "test_string_concat", "test_identity", "test_maxpool_3d_default",
    "test_attention_4d_gqa", "test_attention_3d_causal", "test_attention_4d_attn_mask_bool",
    "test_nllloss_NCd1d2_with_weight_reduction_mean", "test_sce_mean_weight_ii",
    "test_argmin_keepdims_example_select_last_index", "test_cumsum_1d_reverse_exclusive",
    "test_bitshift_right_int8_negative_shift", "test_bitwise_not_4d",
    "test_onehot_negative_indices", "test_layer_normalization_3d_axis1_epsilon",
    "test_rms_normalization_3d_axis1_epsilon", "test_instancenorm_example",
    "test_group_normalization_example", "test_conv_with_autopad_same", "test_maxpool_2d_ceil",
    "test_averagepool_2d_pads", "test_averagepool_1d_default", "test_mod_mixed_sign_int32",
    "test_mod_mixed_sign_float32", "test_reduce_log_sum_exp_keepdims_example",
    "test_reduce_l2_default_axes_keepdims_example", "test_hardmax_axis_1",
    "test_gather_elements_negative_indices", "test_constant_pad", "test_edge_pad",
    "test_tile_precomputed",
    "test_lpnormalization_default", "test_div_int8", "test_pow_types_int32_int32",
    "test_resize_upsample_scales_cubic", "test_resize_downsample_sizes_linear_antialias",
    "test_convtranspose_group_2", "test_scatter_elements_with_reduction_max",
    "test_scatternd_multiply", "test_top_k_smallest", "test_gru_seq_length",
    "test_simple_rnn_bidirectional", "test_lstm_with_peepholes", "test_einsum_batch_matmul",
    "test_rotary_embedding_interleaved", "test_quantizelinear_axis",
    "test_dynamicquantizelinear", "test_depthtospace_crd_mode_example", "test_lppool_2d_pads",
    "test_add_uint8", "test_mul_example", "test_einsum_batch_diagonal",
]
SLICE_MIN_PASS = 110  # the slice's passes today; the CI test holds it from dropping below


def collect(only: str | None = None, names: list[str] | None = None) -> list:
    """Return onnx's node test cases (onnx.backend.test.case.node), in name order, those whose
    name contains ``only`` or (``names``) those named."""
    from onnx.backend.test.case import node

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = node.collect_testcases(None)
    cases = sorted(cases, key=lambda c: c.name)
    if names is not None:
        want = set(names)
        cases = [c for c in cases if c.name in want]
    if only:
        cases = [c for c in cases if only in c.name]
    return cases


def _ops(case) -> str:
    """Return the case's operator: its graph's node types joined by '+' (one for most)."""
    types = []
    for n in case.model.graph.node:
        if n.op_type not in types:
            types.append(n.op_type)
    return "+".join(types) or "?"


def _matches(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> str | None:
    """Return None when the chip's ``got`` equals ``want`` (see the module doc), else why not."""
    got = np.asarray(got)
    want = np.asarray(want)
    if want.dtype.kind in "OUSV" or want.dtype.kind == "c":
        return f"expected {want.dtype} values"
    if got.shape != want.shape:
        if got.size == want.size and want.ndim == 0:
            got = got.reshape(want.shape)
        else:
            return f"shape {got.shape}, expected {want.shape}"
    if want.dtype.kind in "biu":
        if not np.array_equal(got.astype(np.float64), want.astype(np.float64)):
            bad = np.flatnonzero(got.reshape(-1).astype(np.float64) !=
                                 want.reshape(-1).astype(np.float64))[0]
            return (f"value {got.reshape(-1)[bad]!r} at {bad}, expected "
                    f"{want.reshape(-1)[bad]!r} (exact)")
        return None
    if want.dtype == np.float16:  # the reference rounds every step to float16, the chip not
        rtol = max(rtol, FP16_RTOL)
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    ok = np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
    if not ok.all():
        bad = np.flatnonzero(~ok.reshape(-1))[0]
        return f"value {g.reshape(-1)[bad]!r} at {bad}, expected {w.reshape(-1)[bad]!r}"
    return None


AT_IMPORT = "with inputs given at import"  # a pass's detail when the retry passed


def _shape_inputs(case) -> list[str]:
    """Return the graph inputs a simulator needs at import: those of rank 0 or 1 that every
    node reading them reads as a secondary input (position 1 on: axes, a target shape, pads,
    repeats, Resize's scales, OneHot's depth, Trilu's k), which set shapes or attributes."""
    inits = {t.name for t in case.model.graph.initializer}
    primary = {n.input[0] for n in case.model.graph.node if n.input}
    read = {i for n in case.model.graph.node for i in n.input[1:]}
    out = []
    for i in case.model.graph.input:
        tt = i.type.tensor_type
        if i.name in inits or not tt.HasField("shape") or i.name in primary:
            continue
        if len(tt.shape.dim) <= 1 and i.name in read:
            out.append(i.name)
    return out


def _array(v) -> np.ndarray:
    """Return a data set's value as a numpy array (onnx keeps some as TensorProtos, and
    sequences as lists)."""
    import onnx

    if isinstance(v, onnx.TensorProto):
        return onnx.numpy_helper.to_array(v)
    try:
        return np.asarray(v)
    except ValueError:  # a sequence of tensors of different shapes: kept as objects
        out = np.empty(len(v), object)
        out[:] = list(v)
        return out


def _attempt(case, chip, path: Path, constant_names: list[str]) -> tuple[str, str]:
    inits = {t.name for t in case.model.graph.initializer}
    names = [i.name for i in case.model.graph.input if i.name not in inits]
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            first = {n: _array(v) for n, v in zip(names, case.data_sets[0][0])} \
                if case.data_sets else {}
            im = import_onnx(path, constants={n: first[n] for n in constant_names}) \
                if constant_names else import_onnx(path)
            for k, (inputs, outputs) in enumerate(case.data_sets):
                given = {n: _array(v) for n, v in zip(names, inputs)}
                if any(not np.array_equal(given[n], first[n]) for n in constant_names):
                    return "refused", "data sets differ in an input needed at import"
                feeds = {n: np.asarray(v) for n, v in given.items() if n not in constant_names}
                rep = run(chip, im.program, im.inputs(0, feeds))
                for j, want in enumerate(outputs):
                    if j >= len(im.outputs):
                        return "wrong", f"output {j} missing"
                    want = _array(want)
                    if want.dtype.kind not in "biuf":
                        return "refused", (f"expected output {im.onnx_outputs[j]} of type "
                                           f"{want.dtype}, which the engine does not model")
                    why = _matches(rep.values[im.outputs[j]], want, case.rtol, case.atol)
                    if why is not None:
                        return "wrong", f"data set {k} output {im.onnx_outputs[j]}: {why}"
    except (WorkloadError, SimulatorInputError) as exc:
        text = str(exc)
        if "\n" in text.strip():
            return "traceback", f"a refusal of several lines: {text.splitlines()[0]}"
        return "refused", text
    except Exception as exc:  # noqa: BLE001 - what the benchmark counts
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return "traceback", (f"{type(exc).__name__}: {str(exc)[:200]} "
                             f"({Path(tb.filename).name}:{tb.lineno})")
    return "pass", ""


def run_case(case, chip, tmp: Path) -> tuple[str, str]:
    """Return (outcome, detail) of one node test case: outcome is pass, wrong, refused or
    traceback; detail the refusal's line, the mismatch or the traceback's last line.

    The case runs with every graph input as data first; when that is refused and the model
    has inputs of rank 0 or 1 read only as secondary inputs (axes, a shape, pads, scales:
    what a compiler specialises on),
    it runs again with those given at import (``import_onnx(constants=...)``)."""
    import onnx

    path = tmp / f"{case.name}.onnx"
    try:
        onnx.save(case.model, str(path))
    except Exception as exc:  # noqa: BLE001 - a model onnx itself cannot write
        return "refused", f"onnx cannot save the model ({type(exc).__name__})"
    outcome, detail = _attempt(case, chip, path, [])
    shape_inputs = _shape_inputs(case)
    if outcome == "refused" and shape_inputs:
        outcome, detail = _attempt(case, chip, path, shape_inputs)
        if outcome == "pass":
            detail = f"{AT_IMPORT}: {', '.join(shape_inputs)}"
    return outcome, detail


def run_all(cases, chip=None) -> list[tuple[str, str, str, str]]:
    """Return (case name, operator, outcome, detail) of every case."""
    chip = chip or load_chip(CONFIG, {"dtype": "fp32"})
    rows = []
    with tempfile.TemporaryDirectory() as tmp, np.errstate(all="ignore"):
        for case in cases:
            outcome, detail = run_case(case, chip, Path(tmp))
            rows.append((case.name, _ops(case), outcome, detail))
    return rows


def _per_op(rows) -> dict:
    """Return operator -> Counter of outcomes; a graph of several operators (a function
    expanded into its body) counts under ``several operators``."""
    per: dict = collections.OrderedDict()
    for _name, op, outcome, _d in sorted(rows, key=lambda r: r[1]):
        key = "several operators (expanded functions)" if "+" in op else op
        per.setdefault(key, collections.Counter())[outcome] += 1
    return per


def summary(rows) -> dict:
    """Return the run's summary: onnx's version, the counts per outcome, and how many
    operators pass in every case, in some, in none (docs/models-coverage.md shows it)."""
    import onnx

    counts = collections.Counter(r[2] for r in rows)
    per = _per_op(rows)
    single = {op: c for op, c in per.items() if not op.startswith("several")}
    return {"onnx": onnx.__version__, "cases": len(rows),
            **{k: counts[k] for k in ("pass", "wrong", "refused", "traceback")},
            "pass_at_import": sum(r[2] == "pass" and r[3].startswith(AT_IMPORT) for r in rows),
            "operators": len(single),
            "operators_all_pass": sum(c["pass"] == sum(c.values()) for c in single.values()),
            "operators_some_pass": sum(0 < c["pass"] < sum(c.values())
                                       for c in single.values()),
            "command": "python benchmarks/bench_onnx_node_tests.py --summary "
                       "benchmarks/onnx_node_tests.json"}


def op_table(rows) -> str:
    """Return the per-operator Markdown table (pass / wrong / refused / traceback counts)."""
    per = _per_op(rows)
    lines = ["| operator | cases | pass | wrong | refused | traceback |",
             "|---|---|---|---|---|---|"]
    for op, c in per.items():
        lines.append(f"| {op} | {sum(c.values())} | {c['pass']} | {c['wrong']} | "
                     f"{c['refused']} | {c['traceback']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the node tests; print counts and the per-operator table. Return the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="only cases whose name contains this")
    ap.add_argument("--slice", action="store_true", help="only the CI slice")
    ap.add_argument("--table", help="write the per-operator table (Markdown) here")
    ap.add_argument("--summary", help="write the summary (JSON; docs/models-coverage.md "
                    "shows benchmarks/onnx_node_tests.json) here")
    ap.add_argument("--show", action="append", default=[],
                    choices=["pass", "wrong", "refused", "traceback"],
                    help="list the cases with this outcome")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cases = collect(args.only, SLICE if args.slice else None)
    rows = run_all(cases)
    counts = collections.Counter(r[2] for r in rows)
    for name, op, outcome, detail in rows:
        if outcome in args.show:
            print(f"{outcome:9} {name} ({op}): {detail}")
    table = op_table(rows)
    if args.summary:
        import json

        Path(args.summary).write_text(json.dumps(summary(rows), indent=1) + "\n")
    if args.table:
        Path(args.table).write_text(table)
    else:
        print(table)
    reasons = collections.Counter(r[3].split(": ", 2)[-1][:90] for r in rows
                                  if r[2] == "refused")
    print("most common refusals:")
    for why, n in reasons.most_common(12):
        print(f"  {n:4}  {why}")
    at_import = sum(r[2] == "pass" and r[3].startswith(AT_IMPORT) for r in rows)
    print(f"{len(rows)} node tests: {counts['pass']} pass ({at_import} with inputs given at "
          f"import), {counts['wrong']} wrong, "
          f"{counts['refused']} refused, {counts['traceback']} traceback "
          f"({time.perf_counter() - t0:.0f} s)")
    return 1 if counts["wrong"] or counts["traceback"] else 0


if __name__ == "__main__":
    sys.exit(main())
