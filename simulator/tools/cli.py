"""Command line: ``systolic-sim`` (also ``python -m simulator``).

Bad input of any kind ends in one line on stderr, ``LOCATION: FIELD: MESSAGE``, and exit status 2.
Ctrl-C (SIGINT) ends in one line on stderr saying what was done, and exit status 130.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..hardware.chip import INTEGER_FORMATS, Chip, load_chip
from ..hardware.config import schema_markdown
from .chip_args import add_chip_args, load_chip_args
from ..core.report_groups import GROUP_BY
from ..hardware.dataflow import parse_gemm
from ..core.engine import ENGINES, reference_pe_cycles, simulate_gemm, simulate_gemms
from ..exit_codes import EXIT_INPUT, EXIT_INTERRUPTED
from ..errors import Interrupted, SimulatorInputError, WorkloadError
from ..hardware.numerics import float_error_bound, input_type, random_operands
from ..frontends.scalesim import export_compute_report, import_scalesim_config
from ..frontends.topology import load_topology

__all__ = ["main"]

# validate --model: largest max |diff| / max |reference| accepted per tensor. The chip and numpy
# differ only in summation order (same rounding of matmul operands), far below this.
MODEL_RTOL = 1e-5
# Refuse reference runs longer than this many PE-cycles (minutes at ~5e8 PE-cycles/s) unless
# --force: a typo in --gemm should not start an hour of simulation.
REFERENCE_LIMIT_PE_CYCLES = 1e11
# Refuse functional runs whose operands and output would take more memory than this.
FUNCTIONAL_LIMIT_BYTES = 4 * 2**30


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line with exit status 2."""

    def _print_message(self, message: str, file=None) -> None:
        # argparse ignores OSError here; let it through (``--help > /dev/full`` fails in a line)
        if message:
            (file or sys.stdout).write(message)

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_INPUT)


def _check_functional_size(chip: Chip, m: int, n: int, k: int, engine: str, force: bool) -> None:
    where = f"--gemm {m}x{n}x{k}"
    value_bytes = 8 if chip.dtype in INTEGER_FORMATS else 4
    need = (m * k + k * n + 2 * m * n) * value_bytes
    if need > FUNCTIONAL_LIMIT_BYTES and not force:
        raise WorkloadError(where, "gemm", f"functional mode would hold {need / 2**30:.1f} GiB of "
                            f"operands and outputs (limit {FUNCTIONAL_LIMIT_BYTES / 2**30:.0f} GiB);"
                            " drop --functional for timing only, or pass --force")
    if engine == "reference":
        pe_cycles = reference_pe_cycles(chip, m, n, k)
        if pe_cycles > REFERENCE_LIMIT_PE_CYCLES and not force:
            raise WorkloadError(where, "engine", f"the reference would simulate {pe_cycles:.3g} "
                                f"PE-cycles (over {REFERENCE_LIMIT_PE_CYCLES:.0e}); use the fast "
                                "engine, a smaller GEMM, or pass --force")


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse unwritable --trace, --html, --csv and --save-outputs paths before anything is
    simulated."""
    from .outputs import check_output_path
    for flag in ("trace", "html", "csv", "save_outputs"):
        if getattr(args, flag, None):
            check_output_path(getattr(args, flag), f"--{flag.replace('_', '-')}")


def _write_outputs(args: argparse.Namespace, rep, title: str) -> None:
    """Write the --trace and --html files of a run's report ``rep``."""
    if getattr(args, "trace", None):
        from .trace import write_trace
        write_trace(rep, args.trace, title)
    if getattr(args, "html", None):
        from .html_report import write_html
        write_html(rep, args.html, title)


def _check_feed_flags(args: argparse.Namespace) -> None:
    """Raise WorkloadError when --inputs or --save-outputs is given without a model road
    (--model, --torch, --onnx) or without --functional."""
    for flag in ("inputs", "save_outputs"):
        text = getattr(args, flag, None)
        if text is None:
            continue
        name = f"--{flag.replace('_', '-')} {text}"
        if not (args.model or args.torch or getattr(args, "onnx", None)
                or getattr(args, "tflite", None) or getattr(args, "keras", None)):
            raise WorkloadError(name, flag.replace("_", "-"), "applies to whole models "
                                "(--model zoo:NAME, --torch, --onnx, --tflite, --keras) only")
        if not args.functional:
            raise WorkloadError(name, flag.replace("_", "-"), "needs --functional (values "
                                "are computed only in functional runs)")


def _cmd_run(args: argparse.Namespace) -> int:
    _check_outputs(args)
    chip = load_chip_args(args)
    _check_feed_flags(args)
    if args.model or args.torch:
        return _run_model(args, chip)
    if getattr(args, "onnx", None):
        return _run_onnx(args, chip)
    if getattr(args, "tflite", None):
        return _run_tflite(args, chip)
    if getattr(args, "keras", None):
        return _run_keras(args, chip)
    if args.input:
        raise WorkloadError("--input", "input", "applies to --torch FILE.py:factory and --onnx "
                            "FILE.onnx only")
    for flag in ("batch", "seq", "image", "csv", "group_by"):
        if getattr(args, flag) is not None:
            name = flag.replace("_", "-")
            raise WorkloadError(f"--{name}", name, "applies to --model zoo:NAME only")
    if args.topology:
        if args.functional or args.engine != "fast":
            raise WorkloadError(f"--topology {args.topology}", "topology",
                                "topologies run timing-only with the fast engine")
        layers = load_topology(args.topology)
        rep = simulate_gemms(chip, [layer.entry for layer in layers])
    else:
        m, n, k = parse_gemm(args.gemm)
        functional = args.functional or args.engine == "reference"
        if functional:
            _check_functional_size(chip, m, n, k, args.engine, args.force)
            a, b = random_operands(np.random.default_rng(args.seed), m, n, k, chip.dtype)
            rep = simulate_gemm(chip, a=a, b=b, engine=args.engine)
        else:
            rep = simulate_gemm(chip, shape=(m, n, k))
    if args.export_scalesim:
        export_compute_report(rep, args.export_scalesim, on_wait=_say)
    _write_outputs(args, rep, f"--topology {args.topology}" if args.topology
                   else f"--gemm {args.gemm}")
    print(rep.to_json() if args.json else rep.to_text())
    return 0


def _bar_callback(bar):
    """Return a callback that moves a tqdm ``bar`` to a done count (any further arguments, such
    as a total, are ignored), or None without a bar."""
    if bar is None:
        return None
    return lambda done, *_total: bar.update(done - bar.n)


def _torch_run(args: argparse.Namespace):
    """Return the ModelRun of ``--torch FILE.py:factory`` (``--input`` shapes or ``--inputs``
    arrays)."""
    from .models import load_torch
    for flag in ("batch", "seq", "image"):
        if getattr(args, flag, None) is not None:
            raise WorkloadError(f"--{flag} {getattr(args, flag)}", flag, "does not apply to "
                                "--torch; give the input shapes with --input AxBxC")
    return load_torch(args.torch, args.input, getattr(args, "seed", 0),
                      getattr(args, "inputs", None))


def _torch_model(args: argparse.Namespace):
    """Return the ImportedModel of ``--torch FILE.py:factory`` (``--input`` shapes)."""
    return _torch_run(args).model


def _check_functional_inputs(program, what: str, force: bool) -> None:
    """Raise WorkloadError when a functional run's inputs (parameters and data inputs, 4 bytes
    an element) would take more than FUNCTIONAL_LIMIT_BYTES, unless ``force``."""
    elements = sum(math.prod(program.shapes[n]) for n in program.inputs)
    if elements * 4 > FUNCTIONAL_LIMIT_BYTES and not force:
        raise WorkloadError(what, "functional", f"{elements:,} parameter and input elements "
                            f"({elements * 4 / 2**30:.1f} GiB) exceed the functional memory "
                            f"limit of {FUNCTIONAL_LIMIT_BYTES / 2**30:.0f} GiB; drop "
                            "--functional for timing only, or pass --force")


def _run_model(args: argparse.Namespace, chip: Chip) -> int:
    """``run --model zoo:NAME`` or ``run --torch FILE.py:factory``: a whole network, timing only
    or (--functional) with values."""
    from simulator.kernels.zoo import build_zoo, is_zoo
    what = f"--torch {args.torch}" if args.torch else f"--model {args.model}"
    if not args.torch and not is_zoo(args.model):
        raise WorkloadError(f"--model {args.model}", "model", "run takes zoo:NAME models (e.g. "
                            "zoo:bert-base); train takes linear:... and mlp:...")
    if args.engine != "fast":
        raise WorkloadError(what, "engine", "whole models run on the fast "
                            "engine; validate single GEMMs against the PE reference")
    if args.torch:
        mrun = _torch_run(args)
    else:
        from .models import load_zoo
        if args.input:
            raise WorkloadError("--input", "input", "applies to --torch FILE.py:factory only")
        mrun = load_zoo(build_zoo(args.model, args.batch, args.seq, args.image), args.seed,
                        args.inputs)
    model = mrun.model
    values = None
    if args.functional:
        _check_functional_inputs(model.program, what, args.force)
        values = mrun.values
    sizes = ", ".join(f"{k} {v}" for k, v in model.sizes.items())
    label = getattr(model, "label", "") or f"zoo:{model.name}"
    return _print_network(args, chip, mrun, values, f"{label} ({sizes})",
                          {"name": model.name, "sizes": model.sizes, "output": model.output})


def _print_network(args: argparse.Namespace, chip: Chip, mrun, values, label: str,
                   about: dict) -> int:
    """Run a whole network's Program (``mrun``: a tools.models.ModelRun; with a progress bar
    when functional on a terminal) and print its per-layer table or JSON (``about`` under
    "model"), writing --csv and --save-outputs; return 0."""
    from ..core.engine import run as run_program
    from .progress import progress_bar
    from ..core.report import grouped_text, network_text, write_layer_csv
    from .models import output_arrays
    from ..frontends.feeds import save_arrays
    group_by = _group_by(args)
    model = mrun.model
    bar = progress_bar(len(model.program.ops), "ops",
                       args.functional and sys.stderr.isatty() and not args.json)
    try:
        rep = run_program(chip, model.program, values, progress=_bar_callback(bar))
    finally:
        if bar is not None:
            bar.close()
    title = f"{label}, {len(model.program.ops)} ops"
    if args.csv:
        write_layer_csv(rep, args.csv, group_by)
    if getattr(args, "save_outputs", None):
        save_arrays(args.save_outputs, output_arrays(mrun, rep.values))
    _write_outputs(args, rep, label)
    if args.json:
        data = rep.to_dict()
        data["model"] = dict(about)
        if values is not None:
            out = rep.values[model.output]
            data["model"]["output_shape"] = list(out.shape)
            data["model"]["output_norm"] = float(np.linalg.norm(out))
        print(json.dumps(data, indent=2))
        return 0
    print(network_text(rep, title) if group_by is None else grouped_text(rep, title, group_by))
    if values is not None:
        out = rep.values[model.output]
        print(f"output      {model.output} {tuple(out.shape)}: norm {np.linalg.norm(out):.6g}, "
              f"first values {np.array2string(out.ravel()[:4], precision=5)}")
    return 0


def _group_by(args: argparse.Namespace) -> str | None:
    """Return how a network's table is grouped (op, layer or kind; op by default), or None
    for --all-ops (every op). Raises WorkloadError when both are given."""
    if args.all_ops and args.group_by:
        raise WorkloadError(f"--group-by {args.group_by}", "group-by", "--all-ops lists every "
                            "op ungrouped; give one of the two")
    return None if args.all_ops else (args.group_by or "op")


def _onnx_shapes(args: argparse.Namespace) -> dict:
    """Return the ``--input name=D1xD2...`` shapes of an ONNX run."""
    from ..frontends.onnx_import import parse_input_shape
    shapes = {}
    for text in args.input or []:
        name, shape = parse_input_shape(text, args.onnx)
        shapes[name] = shape
    return shapes


def _run_onnx(args: argparse.Namespace, chip: Chip) -> int:
    """``run --onnx FILE.onnx``: an imported network, reported as a zoo model is."""
    from .models import load_onnx
    for flag in ("batch", "seq", "image"):
        if getattr(args, flag) is not None:
            raise WorkloadError(f"--{flag}", flag, "--onnx models take their sizes from the "
                                "file or from --input NAME=D1xD2x...")
    if args.engine != "fast":
        raise WorkloadError(f"--onnx {args.onnx}", "engine", "whole models run on the fast "
                            "engine; validate single GEMMs against the PE reference")
    mrun = load_onnx(args.onnx, _onnx_shapes(args), args.seed, args.inputs)
    model = mrun.model
    values = None
    if args.functional:
        _check_functional_inputs(model.program, f"--onnx {args.onnx}", args.force)
        values = mrun.values
    sizes = ", ".join(f"{k} {v}" for k, v in model.sizes.items())
    return _print_network(args, chip, mrun, values, f"onnx:{Path(args.onnx).name} ({sizes})",
                          {"name": model.name, "onnx": str(args.onnx), "sizes": model.sizes,
                           "output": model.output})


def _run_tflite(args: argparse.Namespace, chip: Chip) -> int:
    """``run --tflite FILE.tflite``: an imported TFLite network, reported as a zoo model is."""
    from .models import check_quantised_chip, load_tflite
    for flag in ("batch", "seq", "image", "input"):
        if getattr(args, flag) is not None:
            raise WorkloadError(f"--{flag}", flag, "--tflite models take their (static) sizes "
                                "from the file")
    if args.engine != "fast":
        raise WorkloadError(f"--tflite {args.tflite}", "engine", "whole models run on the fast "
                            "engine; validate single GEMMs against the PE reference")
    what = f"--tflite {args.tflite}"
    mrun = load_tflite(args.tflite, args.seed, args.inputs, args.tflite_kernels)
    model = mrun.model
    values = None
    if args.functional:
        check_quantised_chip(model, chip, what)
        _check_functional_inputs(model.program, what, args.force)
        values = mrun.values
    sizes = ", ".join(f"{k} {v}" for k, v in model.sizes.items())
    kind = "int8" if model.quantised else "float"
    return _print_network(args, chip, mrun, values,
                          f"tflite:{Path(args.tflite).name} ({kind}; {sizes})",
                          {"name": model.name, "tflite": str(args.tflite), "sizes": model.sizes,
                           "quantised": model.quantised, "output": model.output})


def _run_keras(args: argparse.Namespace, chip: Chip) -> int:
    """``run --keras FILE.py:factory``: a Keras model (converted to a float TFLite file by
    TensorFlow's converter, then the TFLite lowering), reported as a zoo model is."""
    from .models import load_keras
    for flag in ("batch", "seq", "image"):
        if getattr(args, flag) is not None:
            raise WorkloadError(f"--{flag}", flag, "--keras models take their sizes from the "
                                "model or --input AxBxC")
    if args.engine != "fast":
        raise WorkloadError(f"--keras {args.keras}", "engine", "whole models run on the fast "
                            "engine; validate single GEMMs against the PE reference")
    what = f"--keras {args.keras}"
    mrun = load_keras(args.keras, args.input, args.seed, args.inputs)
    model = mrun.model
    values = None
    if args.functional:
        _check_functional_inputs(model.program, what, args.force)
        values = mrun.values
    sizes = ", ".join(f"{k} {v}" for k, v in model.sizes.items())
    return _print_network(args, chip, mrun, values, f"keras:{args.keras} ({sizes})",
                          {"name": model.name, "keras": str(args.keras), "sizes": model.sizes,
                           "output": model.output})


def _cmd_import_scalesim(args: argparse.Namespace) -> int:
    text = import_scalesim_config(args.cfg)
    if args.output == "-":
        print(text, end="")
    else:
        from .outputs import write_output
        write_output(args.output, "--output", text)
        load_chip(args.output)  # the written file must load
        print(f"wrote {args.output}")
    return 0


def _say(line: str) -> None:
    """Print one line on stderr at once (e.g. that the command waits for a file's lock)."""
    print(line, file=sys.stderr, flush=True)


def _train_inputs(args: argparse.Namespace, spec):
    from simulator.kernels.train import init_params, load_data, synthetic_data
    if args.data:
        x, y, params = load_data(args.data, spec)
    else:
        from ..io_limits import check_planned_bytes
        samples = max(16 * args.batch, 1024)
        # the dataset (X, Y float32, the noise float64) and a step's float64 activations,
        # gradients and their copies (4 per width), before anything is allocated
        planned = samples * (4 * spec.in_features + 12 * spec.out_features) \
            + 4 * 8 * args.batch * sum(spec.dims)
        check_planned_bytes(planned, WorkloadError, f"--batch {args.batch}", "batch",
                            f"{spec.kind} {'x'.join(map(str, spec.dims))} at this batch")
        x, y = synthetic_data(spec, samples, args.seed)
        params = {}
    return x, y, params or init_params(spec, args.seed)


def _train_zoo(args: argparse.Namespace, chip: Chip) -> int:
    """``train --model zoo:NAME`` or ``train --torch FILE.py:factory``: training steps of a
    whole network (autodiff, optimizer)."""
    from simulator.kernels.zoo import build_zoo
    from simulator.kernels.zoo_train import DEFAULT_LOSS, train_zoo
    from ..core.autodiff import Optimizer
    if args.data:
        raise WorkloadError(f"--data {args.data}", "data", "zoo models train on seeded "
                            "synthetic data; --data is for linear:... and mlp:...")
    if args.torch:
        model = _torch_model(args)
    else:
        model = build_zoo(args.model, args.batch, args.seq, args.image)
    for name, value in (("momentum", args.momentum), ("weight-decay", args.weight_decay)):
        if not (np.isfinite(value) and value >= 0):
            raise WorkloadError(f"--{name}", name, f"must be a finite number >= 0, got {value}")
    opt = Optimizer(args.optimizer or "adam", args.lr, args.momentum, weight_decay=args.weight_decay)
    loss = args.loss or DEFAULT_LOSS.get(model.name, "cross_entropy")
    from .progress import progress_bar
    bar = progress_bar(args.steps, "steps", sys.stderr.isatty() and not args.json
                       and not args.timing)
    try:
        res = train_zoo(chip, model, args.steps, opt, loss, args.seed,
                        functional=not args.timing, progress=_bar_callback(bar))
    except WorkloadError as exc:  # the training program (autodiff) names no file: say train
        if exc.location.startswith("program "):
            raise WorkloadError(f"train: {exc.location}", exc.field, exc.message) from None
        raise
    finally:
        if bar is not None:
            bar.close()
    data = res.to_dict()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    tot = data["totals"]
    sizes = ", ".join(f"{k} {v}" for k, v in model.sizes.items())
    label = getattr(model, "label", "") or f"zoo:{model.name}"
    print(f"train {label} ({sizes}) on {chip.name} ({chip.dtype}, "
          f"{chip.array.rows}x{chip.array.cols} {chip.array.dataflow}): {opt.kind} lr {opt.lr:g}, "
          f"{loss}, {args.steps} steps, {'timing only' if args.timing else 'seeded data'}")
    rep = res.step_report
    print(f"per step    {tot['cycles_per_step']:,} cycles = "
          f"{tot['cycles_per_step'] / chip.clock_hz * 1e3:.4f} ms, {len(rep.ops)} ops, "
          f"{rep.macs:,} MACs")
    util = ", ".join(f"{u} {100 * v:.1f} %" for u, v in tot["unit_utilisation"].items())
    print(f"busy        {util} of each step (array PE utilisation {100 * tot['utilisation']:.2f} %)")
    if res.losses:
        every = max(1, args.steps // 10)
        for i, lo in enumerate(res.losses):
            if i % every == 0 or i == len(res.losses) - 1:
                print(f"  step {i:>5}  loss {lo:.6g}")
    print(f"total       {tot['total_cycles']:,} cycles = {tot['time_s'] * 1e3:.4f} ms, "
          f"{tot['energy_pj'] / 1e6:.4g} uJ")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from simulator.kernels.train import parse_model, train
    from simulator.kernels.zoo import is_zoo
    chip = load_chip_args(args)
    if args.torch and args.model:
        raise WorkloadError("--torch", "torch", "give --model or --torch, not both")
    if args.input and not args.torch:
        raise WorkloadError("--input", "input", "applies to --torch FILE.py:factory only")
    if args.torch:
        return _train_zoo(args, chip)
    if not args.model:
        raise WorkloadError("train", "model", "give --model SPEC or --torch FILE.py:factory")
    if is_zoo(args.model):
        return _train_zoo(args, chip)
    if args.batch is None:
        args.batch = 64
    spec = parse_model(args.model)
    x, y, params = _train_inputs(args, spec)
    from .progress import progress_bar
    bar = progress_bar(args.steps, "steps", sys.stderr.isatty() and args.steps >= 20
                       and not args.json)
    try:
        res = train(chip, spec, x, y, args.batch, args.steps, args.lr, params,
                    _bar_callback(bar))
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
        return 0
    data = res.to_dict()
    tot = data["totals"]
    rep = res.step_report
    print(f"train {spec} on {chip.name} ({chip.dtype}, {chip.array.rows}x{chip.array.cols} "
          f"{chip.array.dataflow}, {chip.clock_hz / 1e6:g} MHz): batch {args.batch}, "
          f"{args.steps} steps, lr {args.lr:g}, "
          f"{'data ' + args.data if args.data else f'synthetic data (seed {args.seed})'}")
    step_cycles = tot["cycles_per_step"]
    print(f"per step    {step_cycles:,} cycles = {step_cycles / chip.clock_hz * 1e6:.3f} us, "
          f"{tot['energy_pj_per_step']['total'] / 1e3:.3f} nJ, "
          f"{rep.macs:,} MACs, {rep.totals()['events'].get('vector_lane_ops', 0):,} vector lane-ops")
    util = ", ".join(f"{u} {100 * v:.1f} %" for u, v in tot["unit_utilisation"].items())
    print(f"busy        {util} of each step (array PE utilisation {100 * tot['utilisation']:.3f} %)")
    every = max(1, args.steps // 10)
    print(f"{'step':>6}{'loss':>14}{'cycles':>10}{'energy nJ':>12}")
    for st in data["steps"]:
        if st["step"] % every == 0 or st["step"] == args.steps - 1:
            print(f"{st['step']:>6}{st['loss']:>14.6g}{st['cycles']:>10,}"
                  f"{st['energy_pj'] / 1e3:>12.3f}")
    print(f"total       {tot['total_cycles']:,} cycles = {tot['time_s'] * 1e3:.4f} ms, "
          f"{tot['energy_pj'] / 1e6:.4g} uJ, average power {tot['average_power_w']:.3g} W; "
          f"loss {res.losses[0]:.6g} -> {res.losses[-1]:.6g}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import load_sweep, run_sweep
    sweep = load_sweep(args.sweep)
    total = len(sweep.points) * len(sweep.workloads)
    written, before = run_sweep(sweep, args.out, args.executor, args.workers, args.scheduler,
                                progress=sys.stderr.isatty(),
                                on_wait=_say)
    print(f"sweep {args.sweep}: {len(sweep.points)} points x {len(sweep.workloads)} workloads = "
          f"{total} rows; {before} already in {args.out}, {written} written now")
    return 0


def _cmd_explore(args: argparse.Namespace) -> int:
    from .explore import check_feasible, load_explore, pareto_figure, run_explore, table, \
        write_front
    from .outputs import check_output_path, write_with
    spec = load_explore(args.spec)
    if args.plot:
        check_output_path(args.plot, "--plot")
    if args.html:
        check_output_path(args.html, "--html")
    res = run_explore(spec, args.out, args.algorithm, args.budget, args.seed, args.time,
                      args.executor, args.workers, args.scheduler,
                      progress=sys.stderr.isatty(), on_wait=_say)
    ok = sum(r["status"] == "ok" for r in res.points)
    feasible = sum(bool(r["feasible"]) for r in res.points)
    print(f"explore {args.spec}: {len(res.points)} chips ({res.evaluated_before} already in "
          f"{args.out}, {res.evaluated_now} evaluated now); {ok} ok, "
          f"{len(res.points) - ok} failed, {feasible} feasible")
    failed = [r for r in res.points if r["status"] != "ok"]
    if failed:
        print(f"failed: {len(failed)} chips, e.g. " + ", ".join(
            f"{k}={failed[0][k]}" for k in spec.keys) + f": {failed[0]['error']}")
    check_feasible(res, args.out)
    print(f"Pareto front ({len(res.front)} chips):")
    print(table(spec, res.front))
    if args.front:
        paths = write_front(spec, res.front, args.front)
        print(f"front chips: {', '.join(str(p) for p in paths)}")
    if args.plot:
        fig = pareto_figure(spec, res.points, res.front)
        write_with(args.plot, "--plot", lambda fh: fig.savefig(fh, format="png", dpi=110),
                   binary=True)
        print(f"plot: {args.plot}")
    for name, imp in res.importance.items():
        print(f"importance for {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in imp.items()))
    if args.html:
        from .html_report import write_explore_html
        write_explore_html(res, args.html)
        print(f"html: {args.html}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from . import plots
    from .sweep import read_results
    where = f"plot {args.kind} {args.input}"
    src = Path(args.input)
    from ..io_limits import check_regular
    check_regular(args.input, "results" if args.kind in ("utilisation", "heatmap") else "json",
                  WorkloadError, "input", line=False)
    try:
        if args.kind in ("utilisation", "heatmap"):
            rows = read_results(src)
            if not rows or "status" not in rows[0]:
                raise ValueError("not a sweep results CSV (systolic-sim sweep --out)")
            needed = [c for c in (args.x, args.y if args.kind == "heatmap" else None) if c]
            if not needed or (args.kind == "heatmap" and len(needed) < 2):
                raise ValueError("give the swept column(s): --x (and --y for a heatmap)")
            for col in needed + ([args.metric] if args.kind == "heatmap" else []):
                if col not in rows[0]:
                    raise ValueError(f"no column {col!r} in the results")
            fig = plots.utilisation_curve(rows, args.x, args.workload) \
                if args.kind == "utilisation" else \
                plots.heatmap(rows, args.x, args.y, args.metric, args.workload)
        else:
            from ..io_limits import read_text
            data = json.loads(read_text(src, "json", WorkloadError, "report"))
            report = data.get("step_report", data)
            if not isinstance(report, dict) or "ops" not in report:
                raise ValueError("not a report JSON (systolic-sim run --json or train --json)")
            fig = {"roofline": plots.roofline, "energy": plots.energy_breakdown,
                   "timeline": plots.timeline}[args.kind](report)
        out = plots.save(fig, args.out)
    except SimulatorInputError:
        raise
    except (ValueError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkloadError(where, "input", str(exc).strip("'\"")) from None
    print(f"wrote {out}")
    return 0


def _cmd_calibrate_measure(args: argparse.Namespace) -> int:
    from .calibrate import measure
    data = measure(args.backend, [k.strip() for k in args.kernels.split(",") if k.strip()],
                   [d.strip() for d in args.dtypes.split(",") if d.strip()], args.out,
                   threads=args.threads, quick=args.quick,
                   log=lambda msg: print(msg, file=sys.stderr) if sys.stderr.isatty() else None)
    prov = data["provenance"]
    print(f"wrote {args.out}: {len(data['points'])} points on {prov.get('device')} "
          f"({prov['backend']}, {prov['date_utc']})")
    return 0


def _cmd_calibrate_fit(args: argparse.Namespace) -> int:
    from .calibrate import fit, fit_spread, load_measurements, plot_fit
    from .progress import progress_bar
    chip = load_chip_args(args)
    data = load_measurements(args.data)
    free = [f.strip() for f in args.free.split(",") if f.strip()]
    kernels = [k.strip() for k in args.kernels.split(",")] if args.kernels else None
    if args.splits < 1:
        raise WorkloadError("--splits", "splits", f"must be >= 1, got {args.splits}")
    res = fit(chip, data, args.holdout, args.seed, free, kernels)
    bar = progress_bar(args.splits, "fits", sys.stderr.isatty() and not args.json)
    try:
        spread = fit_spread(chip, data, args.holdout, range(args.seed, args.seed + args.splits),
                            free, kernels, on_fit=None if bar is None else lambda: bar.update(1))
    finally:
        if bar is not None:
            bar.close()
    if args.plot:
        from .plots import save
        device = data.get("provenance", {}).get("device", "device")
        save(plot_fit(res, f"{chip.name} fitted to {device}"), args.plot)
    if args.json:
        print(json.dumps({**res.to_dict(), "spread": spread}, indent=2))
        return 0
    prov = data.get("provenance", {})
    print(f"fit {chip.name} to {args.data} ({prov.get('device', '?')}, {prov.get('date_utc', '?')}):"
          f" {len(res.rows)} points, holdout {args.holdout:g}, seed {args.seed}")
    for k, v in res.params.items():
        print(f"  {k:<28} {res.start[k]:>12.4g} -> {v:.4g}")
    print(f"{'held-out point':<34}{'measured':>12}{'predicted':>12}{'error %':>9}")
    for r in sorted((r for r in res.rows if r["split"] == "holdout"), key=lambda r: r["measured_s"]):
        print(f"{r['label']:<34}{r['measured_s']:>12.4g}{r['predicted_s']:>12.4g}{r['ape']:>9.1f}")
    for split in ("train", "holdout"):
        e = res.errors(split)
        print(f"{split:<8} median APE {e['median_ape_pct']:.2f} %, p90 {e['p90_ape_pct']:.2f} % "
              f"over {e['points']} points")
    seeds = spread["seeds"]
    print(f"over {len(seeds)} random splits (seeds {seeds[0]}-{seeds[-1]}), min / median / max:")
    for key, label, unit in (("holdout_median_ape_pct", "held-out median APE", " %"),
                             ("holdout_p90_ape_pct", "held-out p90 APE", " %")):
        s = spread[key]
        print(f"  {label:<28} {s['min']:.2f} / {s['median']:.2f} / {s['max']:.2f}{unit}")
    for k, s in spread["params"].items():
        print(f"  {k:<28} {s['min']:.4g} / {s['median']:.4g} / {s['max']:.4g}")
    return 0


def _cmd_calibrate_published(args: argparse.Namespace) -> int:
    """``calibrate --published [DIR]``: print ours / measured per record and per family."""
    from .published import evaluate, fit_splits, load_records, plot_published, summarise
    if args.published is None:
        raise WorkloadError("calibrate", "command", "give a subcommand (measure, fit) or "
                            "--published [DIR]")
    records = load_records(args.published)
    rows, outs = evaluate(records)
    summary = summarise(rows)
    fitted = fit_splits(rows, outs, range(5)) if args.pub_fit else None
    if args.pub_plot:
        from .plots import save
        s = summary["all"]
        save(plot_published(rows, f"{len(rows)} published measurements: median |log(ours / "
                            f"measured)| {s['median_abs_log_ratio']:.2f}, max "
                            f"{s['max_abs_log_ratio']:.2f}"), args.pub_plot)
    if args.pub_json:
        out = {"rows": rows, "summary": summary}
        if fitted is not None:
            out["fit"] = fitted
        print(json.dumps(out, indent=2))
        return 0
    print(_published_text(rows, summary, fitted))
    return 0


def _published_text(rows: list, summary: dict, fitted: dict | None) -> str:
    """Return the text table of ``calibrate --published``: one line per record, then per
    family, then (with --fit) the held-out errors over the splits."""
    lines = [f"{'family':<10}{'record':<58}{'unit':<15}{'measured':>11}{'ours':>11}"
             f"{'ours/meas':>10}"]
    for r in rows:
        lines.append(f"{r['family']:<10}{r['label'][:57]:<58}{r['unit']:<15}{r['measured']:>11.4g}"
                     f"{r['ours']:>11.4g}{r['ratio']:>10.3f}")
    lines.append("")
    lines.append(f"{'family':<10}{'records':>8}{'median |log|':>14}{'max |log|':>11}"
                 f"{'geomean ours/meas':>19}")
    for fam, s in list(summary["families"].items()) + [("all", summary["all"])]:
        lines.append(f"{fam:<10}{s['records']:>8}{s['median_abs_log_ratio']:>14.3f}"
                     f"{s['max_abs_log_ratio']:>11.3f}{s['geomean_ratio']:>19.3f}")
    if fitted is not None:
        lines.append("")
        lines.append(f"--fit: per family clock_scale, bandwidth_fraction, launch_s on a training "
                     f"split (held-out fraction {fitted['holdout_fraction']:g} per family), "
                     f"seeds {fitted['seeds'][0]}-{fitted['seeds'][-1]}; held-out |log ratio|:")
        for s in fitted["splits"]:
            h = s["holdout"]["all"]
            lines.append(f"  seed {s['seed']}: {h['records']} held out, median "
                         f"{h['median_abs_log_ratio']:.3f}, max {h['max_abs_log_ratio']:.3f}")
            for fam, p in s["params"].items():
                hf = s["holdout"]["families"].get(fam)
                tail = (f"; held out median {hf['median_abs_log_ratio']:.3f} max "
                        f"{hf['max_abs_log_ratio']:.3f}" if hf else "")
                lines.append(f"    {fam:<10} clock x{p['clock_scale']:.3f}, bandwidth "
                             f"x{p['bandwidth_fraction']:.3f}, launch {p['launch_s'] * 1e6:.3g} us"
                             + tail)
        m, x = fitted["holdout_median_abs_log_ratio"], fitted["holdout_max_abs_log_ratio"]
        lines.append(f"over the splits: held-out median |log| median {m['median']:.3f} (worst "
                     f"{m['max']:.3f}); held-out max |log| median {x['median']:.3f} (worst "
                     f"{x['max']:.3f})")
    return "\n".join(lines)


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import COLUMNS, compare_chips
    onnx = getattr(args, "onnx", None)
    rows, what, per = compare_chips(args.configs, model=args.model, topology=args.topology,
                                    gemm=args.gemm, batch=args.batch, torch=args.torch,
                                    inputs=None if onnx else args.input, onnx=onnx,
                                    onnx_inputs=_onnx_shapes(args) if onnx else None,
                                    tflite=getattr(args, "tflite", None))
    winners = {key: better(rows, key=lambda r: r[key])["chip"] for key, _h, _u, better in COLUMNS}
    if args.plot:
        from .plots import compare_bars, save
        save(compare_bars(rows, COLUMNS, what, per), args.plot)
    if args.json:
        print(json.dumps({"workload": what, "throughput_unit": per, "chips": rows,
                          "winners": winners}, indent=2))
        return 0
    print(f"compare: {what}")
    head = ["chip", "dtype", "PEs", "time", f"throughput ({per})", "energy", "avg power",
            "PE util", "EDP (J*s)"]
    table = [head]
    for r in rows:
        def mark(key: str) -> str:
            return " *" if winners[key] == r["chip"] else ""
        table.append([r["chip"], r["dtype"], f"{r['pes']:,}", _fmt_s(r["time_s"]) + mark("time_s"),
                      f"{r['throughput']:.4g}" + mark("throughput"),
                      f"{r['energy_j'] * 1e6:.4g} uJ" + mark("energy_j"),
                      f"{r['power_w']:.3g} W" + mark("power_w"),
                      f"{100 * r['utilisation']:.3g} %" + mark("utilisation"),
                      f"{r['edp_js']:.3g}" + mark("edp_js")])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print(row[0].ljust(widths[0]) + "".join("  " + c.rjust(w) for c, w in
                                                 zip(row[1:], widths[1:])))
    print("* best in its column (time, energy, power, EDP: lowest; throughput, PE util: highest)")
    no_static = [r["chip"] for r in rows if not r["static_modelled"]]
    if no_static:
        print(f"note: static power is not modelled for {', '.join(no_static)}: their energy and "
              "power are dynamic only, not wall-plug figures")
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    from ..hardware.sparsity import prune_nm, prune_unstructured
    from ..io_limits import load_array
    x = load_array(args.input, WorkloadError, "input", npz=False)
    if x.dtype.kind not in "biuf":
        what = {"c": "complex numbers (magnitude ranking would need a rule: give the real part "
                "or abs() yourself)", "U": "strings", "S": "bytes", "M": "dates",
                "m": "time deltas", "V": "records"}.get(x.dtype.kind, str(x.dtype))
        raise WorkloadError(f"{args.input}:1", "input", f"holds {what}, not real numbers "
                            f"(dtype {x.dtype})")
    if x.ndim != 2 or 0 in x.shape:
        raise WorkloadError(f"{args.input}:1", "input", f"must be a non-empty matrix (2-D), got "
                            f"shape {'x'.join(map(str, x.shape)) or 'scalar'}")
    axis = 0 if args.operand == "b" else 1
    if args.nm is not None:
        try:
            n, m = (int(v) for v in args.nm.split(":"))
        except ValueError:
            raise WorkloadError(f"--nm {args.nm}", "nm", "expected N:M, e.g. 2:4") from None
        out = prune_nm(x, n, m, axis=axis, shared=not args.per_lane)
    else:
        out = prune_unstructured(x, args.density, axis=axis, shared=not args.per_lane)
    from .outputs import write_with
    write_with(args.output, "output", lambda fh: np.save(fh, out), binary=True)
    print(f"{args.output}: kept {int(np.count_nonzero(out)):,} of {out.size:,} elements "
          f"(density {np.count_nonzero(out) / out.size:.3f})")
    return 0


def _fmt_s(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds / 1e-9:.4g} ns"


def _validate_model(args: argparse.Namespace, chip: Chip) -> int:
    from simulator.kernels.train import numpy_step, parse_model
    from simulator.core.engine import run
    spec = parse_model(args.model)
    x, y, params = _train_inputs(args, spec)
    rows = np.arange(args.batch) % x.shape[0]
    if chip.dtype in INTEGER_FORMATS:
        raise WorkloadError(chip.where("dtype"), "dtype", "training kernels need a float dtype")
    if chip.narrows_output:  # the numpy twin keeps fp32 results: compare the accumulators
        print(f"note: output.dtype {chip.output_dtype} not applied; matmul results compared as "
              "fp32 accumulators")
        chip = chip.with_overrides({"output.dtype": "accumulator"})
    rep = run(chip, spec.build_step(args.batch, args.lr), {"X": x[rows], "T": y[rows], **params})
    want = numpy_step(spec, x[rows], y[rows], params, args.lr, chip.dtype)
    print(f"validate {spec} step on {chip.name} ({chip.dtype}), batch {args.batch}, "
          f"against numpy (matmul operands rounded to {chip.dtype}; rtol {MODEL_RTOL:g})")
    ok = True
    for name, ref in want.items():
        got = rep.values[name]
        scale = float(np.max(np.abs(ref))) or 1.0
        err = float(np.max(np.abs(got - ref))) / scale
        passed = got.shape == ref.shape and err <= MODEL_RTOL
        ok &= passed
        print(f"  {'PASS' if passed else 'FAIL'}  {name:<8} max |diff| / max |ref| = {err:.3g}")
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


def _validate_framework(args: argparse.Namespace, chip: Chip) -> int:
    """``validate --torch F.py:fn`` / ``--onnx F.onnx``: the model on the chip (functional) and
    in PyTorch / onnxruntime on the same inputs; print max abs and max rel error per output;
    return 0 within models.model_tolerance(chip), else 1."""
    from ..core.engine import run as run_program
    from .models import (compare_outputs, framework_outputs, load_onnx, load_torch,
                         model_tolerance, output_arrays)
    tol = model_tolerance(chip)
    if args.torch:
        what, framework = f"torch:{args.torch}", "PyTorch"
        mrun = load_torch(args.torch, args.input, args.seed, args.inputs)
    else:
        what, framework = f"onnx:{args.onnx}", "onnxruntime"
        mrun = load_onnx(args.onnx, _onnx_shapes(args), args.seed, args.inputs)
    _check_functional_inputs(mrun.model.program, what, args.force)
    got = output_arrays(mrun, run_program(chip, mrun.model.program, mrun.values).values)
    want = framework_outputs(mrun, args.onnx)
    if len(want) != len(got):
        raise WorkloadError(what, "outputs", f"{framework} gives {len(want)} outputs, the chip "
                            f"{len(got)}")
    src = f"--inputs {args.inputs}" if args.inputs else f"seed {args.seed}"
    print(f"validate {what} on {chip.name} ({chip.dtype}) against {framework}, inputs from "
          f"{src}; tolerance max |diff| / max |ref| <= {tol:.3g} per output")
    ok = True
    for (name, g), w in zip(got.items(), want):
        max_abs, max_rel = compare_outputs(g, w)
        passed = max_rel <= tol
        ok &= passed
        print(f"  {'PASS' if passed else 'FAIL'}  {name} {tuple(w.shape)}: max abs "
              f"{max_abs:.3g}, max rel {max_rel:.3g}")
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


def _validate_tflite(args: argparse.Namespace, chip: Chip) -> int:
    """``validate --tflite F.tflite``: the model on the chip (functional) and in the LiteRT
    interpreter on the same inputs, both with ``--tflite-kernels`` (default: the default
    interpreter's arithmetic; reference: BUILTIN_REF's). Float outputs: max |diff| / max
    |ref| within models.model_tolerance(chip); int8 outputs (an int8 model on an int8 chip):
    every element within 1 LSB and at least INT8_EXACT_FRACTION of them equal. Return 0 when
    every output passes, else 1."""
    from ..core.engine import run as run_program
    from .models import (INT8_EXACT_FRACTION, check_quantised_chip, compare_outputs,
                         load_tflite, model_tolerance, output_arrays, tflite_outputs)
    what = f"tflite:{args.tflite}"
    if args.input:
        raise WorkloadError("--input", "input", "--tflite models take their (static) sizes "
                            "from the file")
    mrun = load_tflite(args.tflite, args.seed, args.inputs, args.tflite_kernels)
    check_quantised_chip(mrun.model, chip, f"--tflite {args.tflite}")
    tol = None if mrun.model.quantised else model_tolerance(chip)
    _check_functional_inputs(mrun.model.program, what, args.force)
    got = output_arrays(mrun, run_program(chip, mrun.model.program, mrun.values).values)
    want = tflite_outputs(mrun, args.tflite)
    src = f"--inputs {args.inputs}" if args.inputs else f"seed {args.seed}"
    rule = (f"every output element within 1 LSB of the int8 output (dequantised: its scale), "
            f">= {INT8_EXACT_FRACTION:.0%} exact" if tol is None else
            f"max |diff| / max |ref| <= {tol:.3g} per output")
    print(f"validate {what} on {chip.name} ({chip.dtype}) against LiteRT's "
          f"{args.tflite_kernels} kernels, inputs from {src}; {rule}")
    ok = True
    for (name, g), w in zip(got.items(), want):
        g = np.asarray(g).reshape(w.shape) if np.asarray(g).size == w.size else np.asarray(g)
        step = 1.0 if w.dtype == np.int8 else mrun.model.output_steps.get(name)
        if step is not None and mrun.model.quantised:  # in LSBs of the int8 output
            diff = np.abs(g.astype(np.float64) - w.astype(np.float64)) / step \
                if g.shape == w.shape else np.array([np.inf])
            diff = np.rint(diff * 1e3) / 1e3  # a dequantised value: exact to float32
            exact = float(np.mean(diff == 0))
            passed = float(diff.max()) <= 1 and exact >= INT8_EXACT_FRACTION
            print(f"  {'PASS' if passed else 'FAIL'}  {name} {tuple(w.shape)} int8: max "
                  f"{float(diff.max()):g} LSB, {exact:.2%} exact")
        else:
            max_abs, max_rel = compare_outputs(g, w)
            passed = tol is not None and max_rel <= tol
            print(f"  {'PASS' if passed else 'FAIL'}  {name} {tuple(w.shape)}: max abs "
                  f"{max_abs:.3g}, max rel {max_rel:.3g}")
        ok &= passed
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


def _validate_keras(args: argparse.Namespace, chip: Chip) -> int:
    """``validate --keras F.py:fn``: the model on the chip (functional) and in Keras itself
    (fp32, inference mode) on the same inputs; print max abs and max rel error per output;
    return 0 within models.model_tolerance(chip), else 1."""
    from ..core.engine import run as run_program
    from ..frontends.keras_import import keras_outputs
    from .models import compare_outputs, load_keras, model_tolerance, output_arrays
    what = f"keras:{args.keras}"
    if chip.dtype == "int8":
        raise WorkloadError(what, "dtype", "a Keras model is float: validate it on a float "
                            "chip (e.g. --set dtype=fp32)")
    tol = model_tolerance(chip)
    mrun = load_keras(args.keras, args.input, args.seed, args.inputs)
    _check_functional_inputs(mrun.model.program, what, args.force)
    got = output_arrays(mrun, run_program(chip, mrun.model.program, mrun.values).values)
    want = keras_outputs(mrun.keras_model, [mrun.values[n] for n in mrun.model.data])
    if len(want) != len(got):
        raise WorkloadError(what, "outputs", f"Keras gives {len(want)} outputs, the chip "
                            f"{len(got)}")
    src = f"--inputs {args.inputs}" if args.inputs else f"seed {args.seed}"
    print(f"validate {what} on {chip.name} ({chip.dtype}) against Keras, inputs from {src}; "
          f"tolerance max |diff| / max |ref| <= {tol:.3g} per output")
    ok = True
    for (name, g), w in zip(got.items(), want):
        g = np.asarray(g)
        g = g.reshape(w.shape) if g.size == w.size else g
        max_abs, max_rel = compare_outputs(g, w)
        passed = max_rel <= tol
        ok &= passed
        print(f"  {'PASS' if passed else 'FAIL'}  {name} {tuple(w.shape)}: max abs "
              f"{max_abs:.3g}, max rel {max_rel:.3g}")
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


def _cmd_validate(args: argparse.Namespace) -> int:
    chip = load_chip_args(args)
    if getattr(args, "tflite", None):
        return _validate_tflite(args, chip)
    if getattr(args, "keras", None):
        return _validate_keras(args, chip)
    if args.torch or args.onnx:
        return _validate_framework(args, chip)
    for flag in ("input", "inputs"):
        if getattr(args, flag):
            raise WorkloadError(f"--{flag}", flag, "applies to --torch and --onnx only")
    if args.model:
        return _validate_model(args, chip)
    m, n, k = parse_gemm(args.gemm)
    _check_functional_size(chip, m, n, k, "reference", args.force)
    a, b = random_operands(np.random.default_rng(args.seed), m, n, k, chip.dtype)
    narrowed = chip
    if chip.narrows_output:  # check the accumulators, then their requantisation
        chip = chip.with_overrides({"output.dtype": "accumulator"})
    fast = simulate_gemm(chip, a=a, b=b)
    ref = simulate_gemm(chip, a=a, b=b, engine="reference")
    arr = chip.array
    print(f"validate {chip.name}: {m}x{n}x{k} GEMM on {arr.rows}x{arr.cols} {arr.dataflow}, "
          f"{chip.dtype}, seed {args.seed}")
    ok = True

    def line(label: str, passed: bool, detail: str) -> None:
        nonlocal ok
        ok &= passed
        print(f"  {'PASS' if passed else 'FAIL'}  {label:<40}{detail}")

    line("cycles: fast model == PE reference", fast.compute_cycles == ref.compute_cycles,
         f"{fast.compute_cycles:,} vs {ref.compute_cycles:,}")
    integer = chip.dtype in INTEGER_FORMATS
    same = np.array_equal(fast.output.view(np.uint32) if not integer else fast.output,
                          ref.output.view(np.uint32) if not integer else ref.output)
    line("values: fast == PE reference", same, "bit for bit" if same else
         f"{int(np.sum(fast.output != ref.output))} elements differ")
    if integer:
        line("overflow counts agree", fast.overflow_events == ref.overflow_events,
             f"{fast.overflow_events} vs {ref.overflow_events}")
        exact = a.astype(np.int64) @ b.astype(np.int64)
        if chip.overflow == "wrap":
            bits = chip.accumulator_bits
            want = ((exact + (1 << (bits - 1))) % (1 << bits)) - (1 << (bits - 1))
            line("values: == numpy (wrapped)", np.array_equal(fast.output, want),
                 f"{int(np.sum(fast.output != want))} elements differ")
        elif fast.overflow_events == 0:
            line("values: == numpy (no overflow)", np.array_equal(fast.output, exact),
                 f"{int(np.sum(fast.output != exact))} elements differ")
        else:
            print(f"  note  {fast.overflow_events} adds saturated: numpy's exact result differs "
                  f"in {int(np.sum(fast.output != exact))} elements by design")
    else:
        exact = a.astype(np.float64) @ b.astype(np.float64)
        err = np.abs(fast.output.astype(np.float64) - exact)
        bound = float_error_bound(a, b)
        line("values: within rounding of numpy f64", bool(np.all(err <= bound)),
             f"max |err| {err.max():.3g}, max bound {bound.max():.3g}")
    if narrowed.narrows_output:
        out = simulate_gemm(narrowed, a=a, b=b).output
        if narrowed.output_dtype == "int8":  # numpy: round half to even, saturate
            want = np.clip(np.rint(fast.output.astype(np.float64) * narrowed.output_scale),
                           -128, 127).astype(np.int8)
        else:  # numpy (ml_dtypes): round to nearest even
            want = fast.output.astype(input_type(narrowed.output_dtype)).astype(np.float32)
        line(f"outputs: {narrowed.output_dtype} == numpy requantised", np.array_equal(
            out.view(np.uint32) if out.dtype == np.float32 else out,
            want.view(np.uint32) if want.dtype == np.float32 else want),
            f"{int(np.sum(out != want))} elements differ")
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    """Return the argparse parser of the ``systolic-sim`` command."""
    parser = _Parser(prog="systolic-sim",
                     description="Cycle-approximate simulator of systolic-array accelerators.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="simulate a workload on a chip")
    add_chip_args(run)
    what = run.add_mutually_exclusive_group(required=True)
    what.add_argument("--gemm", metavar="MxNxK", help="GEMM O[M,N] = A[M,K] @ B[K,N]")
    what.add_argument("--topology", metavar="FILE.csv",
                      help="SCALE-Sim topology CSV (conv or GEMM format), one row per layer")
    what.add_argument("--model", metavar="zoo:NAME",
                      help="a whole network from the zoo: zoo:resnet18, zoo:resnet50, "
                           "zoo:mobilenet-v2, zoo:efficientnet-b0, zoo:bert-base, "
                           "zoo:gpt2-small, zoo:vit-b16, zoo:lstm, zoo:tiny-transformer, "
                           "zoo:small-cnn")
    what.add_argument("--torch", metavar="FILE.py:factory",
                      help="a PyTorch nn.Module from factory() in FILE.py (returns the module, "
                           "or the module and example inputs); see docs/import-torch.md")
    what.add_argument("--onnx", metavar="FILE.onnx",
                      help="a network from an ONNX file (extra [onnx]; docs/import-onnx.md)")
    what.add_argument("--tflite", metavar="FILE.tflite",
                      help="a network from a TFLite file, float or int8 (extra [tflite]; "
                           "docs/import-tflite.md)")
    what.add_argument("--keras", metavar="FILE.py:factory",
                      help="a Keras 3 keras.Model from factory() in FILE.py, through "
                           "TensorFlow's TFLite converter (extra [keras]; docs/import-keras.md)")
    run.add_argument("--input", action="append", metavar="SHAPE",
                     help="--torch, --keras: AxBxC, the shape of one model input (repeat for "
                          "several, in order; float32 unless the factory gives example "
                          "inputs; --keras: default the model's, batch 1); --onnx: "
                          "NAME=D1xD2x..., the shape of graph input NAME (symbolic dimensions)")
    run.add_argument("--batch", type=int, help="--model: batch size (default: the model's)")
    run.add_argument("--seq", type=int, help="--model: sequence length (transformers, LSTM)")
    run.add_argument("--image", type=int, help="--model: image side (CNNs, ViT)")
    run.add_argument("--csv", metavar="FILE",
                     help="--model: write the table as CSV (grouped as --group-by, or every op "
                          "with --all-ops)")
    run.add_argument("--group-by", choices=GROUP_BY,
                     help="--model: sum the ops by op name across layers (op, the default: "
                          "l0..l11 attn.qk is one row), by layer, or by kind")
    run.add_argument("--all-ops", action="store_true",
                     help="--model: list every op, in program order, instead of groups")
    run.add_argument("--functional", action="store_true",
                     help="also compute values on random operands of the chip's dtype")
    run.add_argument("--engine", choices=ENGINES, default="fast",
                     help="fast cycle model, or the PE-level reference (implies --functional)")
    run.add_argument("--seed", type=int, default=0, help="seed of the random operands")
    run.add_argument("--tflite-kernels", choices=("default", "reference"), default="default",
                     help="--tflite int8 models: the LiteRT kernels whose arithmetic the values "
                          "reproduce: default (the interpreter's default, XNNPACK) or "
                          "reference (OpResolverType.BUILTIN_REF); docs/import-tflite.md")
    run.add_argument("--inputs", metavar="FILE.npz|FILE.npy", help="whole models, "
                     "--functional: the data inputs' values (.npz: one array per graph input "
                     "name; .npy: the one input of a single-input model)")
    run.add_argument("--save-outputs", metavar="FILE.npz", help="whole models, --functional: "
                     "write the outputs' values, by graph output name")
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    run.add_argument("--force", action="store_true", help="allow very large functional runs")
    run.add_argument("--export-scalesim", metavar="DIR",
                     help="also write DIR/COMPUTE_REPORT.csv in SCALE-Sim's format")
    run.add_argument("--trace", metavar="FILE.json",
                     help="also write the timeline as Chrome Trace Event JSON (open it in "
                          "ui.perfetto.dev): a track per array, the vector unit and each DMA "
                          "stream; buffer occupancy and DRAM bandwidth counters")
    run.add_argument("--html", metavar="FILE.html",
                     help="also write a self-contained HTML report (summary, sortable per-op "
                          "table, plots embedded; opens offline)")
    run.set_defaults(func=_cmd_run)

    imp = sub.add_parser("import-scalesim", help="convert a SCALE-Sim .cfg into a chip YAML")
    imp.add_argument("cfg", help="SCALE-Sim config (.cfg)")
    imp.add_argument("-o", "--output", default="-", help="YAML file to write (default: stdout)")
    imp.set_defaults(func=_cmd_import_scalesim)

    tr = sub.add_parser("train", help="train a small linear network on the chip")
    add_chip_args(tr)
    tr.add_argument("--model", metavar="SPEC",
                    help="linear:IN:OUT or mlp:IN:HIDDEN:OUT (W laid out in x out), or a zoo "
                         "model zoo:NAME (e.g. zoo:tiny-transformer)")
    tr.add_argument("--torch", metavar="FILE.py:factory",
                    help="train a PyTorch nn.Module from factory() in FILE.py instead")
    tr.add_argument("--input", action="append", metavar="AxBxC",
                    help="--torch: shape of one model input (repeat for several)")
    tr.add_argument("--batch", type=int, default=None,
                    help="rows per step (default 64; zoo models: the model's)")
    tr.add_argument("--seq", type=int, help="zoo models: sequence length")
    tr.add_argument("--image", type=int, help="zoo models: image side")
    tr.add_argument("--optimizer", choices=("sgd", "adam", "adamw"),
                    help="zoo models: optimizer (default adam)")
    tr.add_argument("--momentum", type=float, default=0.0, help="zoo models, sgd: momentum")
    tr.add_argument("--weight-decay", type=float, default=0.0, help="zoo models: weight decay")
    tr.add_argument("--loss", choices=("mse", "cross_entropy"),
                    help="zoo models: loss (default: cross-entropy for classifiers, else mse)")
    tr.add_argument("--timing", action="store_true",
                    help="zoo models: time one step's Program only (no values)")
    tr.add_argument("--steps", type=int, default=100, help="SGD steps (default 100)")
    tr.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    tr.add_argument("--seed", type=int, default=0, help="seed of synthetic data and init")
    tr.add_argument("--data", metavar="FILE.npz", help="X, Y and optionally initial parameters")
    tr.add_argument("--json", action="store_true", help="print steps, totals and params as JSON")
    tr.set_defaults(func=_cmd_train)

    sw = sub.add_parser("sweep", help="evaluate a design-space sweep into a CSV (resumable)")
    sw.add_argument("sweep", help="sweep YAML (base config, grid/zip of overrides, workloads)")
    sw.add_argument("--out", required=True, metavar="FILE.csv", help="results; re-runs resume")
    sw.add_argument("--executor", choices=("serial", "process", "dask"), default="process")
    sw.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    sw.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler (default: local)")
    sw.set_defaults(func=_cmd_sweep)

    ex = sub.add_parser("explore", help="search a design space for the Pareto front of chips "
                        "(resumable)")
    ex.add_argument("spec", help="explore YAML (base, space, rules, workloads, objectives, "
                    "constraints)")
    ex.add_argument("--out", required=True, metavar="FILE.jsonl",
                    help="every evaluation; re-runs resume")
    ex.add_argument("--algorithm", choices=("nsga2", "tpe", "random", "grid"),
                    help="default: the spec's, else nsga2 for several objectives, tpe for one")
    ex.add_argument("--budget", type=int, help="distinct chips to evaluate")
    ex.add_argument("--time", type=float, metavar="S", help="seconds of search")
    ex.add_argument("--seed", type=int, help="sampler seed (default: the spec's, else 0)")
    ex.add_argument("--front", metavar="DIR", help="write each Pareto-optimal chip as a YAML here")
    ex.add_argument("--plot", metavar="FILE.png", help="draw the Pareto plot")
    ex.add_argument("--html", metavar="FILE.html", help="write one self-contained page: the "
                    "summary, the Pareto plot, the front table and the knobs' importance")
    ex.add_argument("--executor", choices=("serial", "process", "dask"), default="process")
    ex.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ex.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler (default: local)")
    ex.set_defaults(func=_cmd_explore)

    pl = sub.add_parser("plot", help="draw utilisation curves, rooflines, energy, timelines")
    pl.add_argument("kind", choices=("utilisation", "roofline", "energy", "timeline", "heatmap"))
    pl.add_argument("input", help="sweep CSV (utilisation, heatmap) or report JSON (others)")
    pl.add_argument("--out", required=True, metavar="FILE.png|svg")
    pl.add_argument("--x", help="swept column on the x axis (utilisation, heatmap)")
    pl.add_argument("--y", help="swept column on the y axis (heatmap)")
    pl.add_argument("--metric", default="utilisation", help="heatmap value (default utilisation)")
    pl.add_argument("--workload", help="which workload of the sweep (default: the first)")
    pl.set_defaults(func=_cmd_plot)

    cal = sub.add_parser("calibrate", help="time kernels on hardware; fit a chip to them; hold "
                         "the simulator against published measurements (--published)")
    cal.add_argument("--published", nargs="?", const="calibration/published", metavar="DIR",
                     help="run every published-measurement record in DIR (default "
                          "calibration/published) and print ours / measured (docs/published.md)")
    cal.add_argument("--fit", dest="pub_fit", action="store_true",
                     help="--published: fit clock scale, bandwidth fraction and launch overhead "
                          "per chip family on a training split; report held-out error over 5 "
                          "seeded splits")
    cal.add_argument("--json", dest="pub_json", action="store_true",
                     help="--published: print {\"rows\": [...], \"summary\": {...}}")
    cal.add_argument("--plot", dest="pub_plot", metavar="FILE.png",
                     help="--published: ours vs measured, log-log, one colour per family")
    cal.set_defaults(func=_cmd_calibrate_published)
    csub = cal.add_subparsers(dest="calibrate_command", required=False, parser_class=_Parser)
    cm = csub.add_parser("measure", help="time kernels with numpy (host) or CuPy (GPU)")
    cm.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    cm.add_argument("--kernels", default="gemm,linear-train,mlp-train")
    cm.add_argument("--dtypes", default="fp32")
    cm.add_argument("--out", required=True, metavar="calibration/NAME.json")
    cm.add_argument("--threads", type=int, default=None,
                    help="numpy: pin BLAS to this many threads (default: all cores)")
    cm.add_argument("--quick", action="store_true", help="a short grid (for testing)")
    cm.set_defaults(func=_cmd_calibrate_measure)
    cf = csub.add_parser("fit", help="fit a chip config's free parameters to measurements")
    cf.add_argument("data", help="calibration JSON from `calibrate measure`")
    cf.add_argument("--config", required=True, help="chip config to fit (e.g. configs/h100.yaml)")
    cf.add_argument("--set", action="append", metavar="PATH=VALUE")
    cf.add_argument("--free", default="clock_hz,dram.bandwidth_bytes_per_s,overhead.launch_s",
                    help="comma-separated keys to fit")
    cf.add_argument("--kernels", help="fit only these kernels, e.g. gemm (default: all)")
    cf.add_argument("--holdout", type=float, default=0.3)
    cf.add_argument("--seed", type=int, default=0, help="split shown point by point")
    cf.add_argument("--splits", type=int, default=10,
                    help="fit this many random splits (seeds SEED, SEED+1, ...) and report "
                         "the min / median / max of their held-out errors (default 10)")
    cf.add_argument("--json", action="store_true")
    cf.add_argument("--plot", metavar="FILE.png", help="predicted vs measured, log axes")
    cf.set_defaults(func=_cmd_calibrate_fit)

    cmp_ = sub.add_parser("compare", help="one workload on several chips: time, energy, power")
    cmp_.add_argument("configs", nargs="+", metavar="CONFIG")
    cwhat = cmp_.add_mutually_exclusive_group(required=True)
    cwhat.add_argument("--model", metavar="SPEC", help="a training step: linear:IN:OUT, mlp:...")
    cwhat.add_argument("--topology", metavar="FILE.csv", help="one inference of a topology")
    cwhat.add_argument("--gemm", metavar="MxNxK")
    cwhat.add_argument("--torch", metavar="FILE.py:factory",
                       help="one forward pass of a PyTorch module (see docs/import-torch.md)")
    cwhat.add_argument("--onnx", metavar="FILE.onnx", help="one forward pass of an ONNX model")
    cwhat.add_argument("--tflite", metavar="FILE.tflite",
                       help="one forward pass of a TFLite model (extra [tflite])")
    cmp_.add_argument("--input", action="append", metavar="SHAPE",
                      help="--torch: AxBxC per model input; --onnx: NAME=D1xD2x... per graph "
                           "input with symbolic dimensions")
    cmp_.add_argument("--batch", type=int, default=None,
                      help="--model: batch of the training step or zoo pass (default 64)")
    cmp_.add_argument("--json", action="store_true")
    cmp_.add_argument("--plot", metavar="FILE.png", help="grouped bars of the same table")
    cmp_.set_defaults(func=_cmd_compare)

    val = sub.add_parser("validate", help="check fast model, PE reference and numpy agree; "
                         "or a whole model on the chip against PyTorch or onnxruntime")
    add_chip_args(val)
    vwhat = val.add_mutually_exclusive_group(required=True)
    vwhat.add_argument("--gemm", metavar="MxNxK")
    vwhat.add_argument("--model", metavar="SPEC", help="one training step of linear:... or mlp:...")
    vwhat.add_argument("--torch", metavar="FILE.py:factory", help="a PyTorch model: the chip "
                       "against PyTorch on the same inputs")
    vwhat.add_argument("--onnx", metavar="FILE.onnx", help="an ONNX model: the chip against "
                       "onnxruntime on the same inputs")
    vwhat.add_argument("--tflite", metavar="FILE.tflite", help="a TFLite model: the chip "
                       "against the LiteRT interpreter on the same inputs (int8 models: in "
                       "LSBs, on an int8 chip)")
    vwhat.add_argument("--keras", metavar="FILE.py:factory", help="a Keras 3 model: the chip "
                       "against Keras (fp32) on the same inputs")
    val.add_argument("--input", action="append", metavar="SHAPE",
                     help="--torch, --keras: AxBxC per model input; --onnx: NAME=D1xD2x... "
                          "(repeatable)")
    val.add_argument("--tflite-kernels", choices=("default", "reference"), default="default",
                     help="--tflite int8 models: compute as, and compare with, LiteRT's default "
                          "interpreter (XNNPACK) or its reference kernels (BUILTIN_REF)")
    val.add_argument("--inputs", metavar="FILE.npz|FILE.npy",
                     help="--torch/--onnx/--keras: the data inputs' values (by input name)")
    val.add_argument("--batch", type=int, default=64)
    val.add_argument("--lr", type=float, default=0.01)
    val.add_argument("--data", metavar="FILE.npz")
    val.add_argument("--seed", type=int, default=0)
    val.add_argument("--force", action="store_true", help="allow very large runs")
    val.set_defaults(func=_cmd_validate)
    pr = sub.add_parser("prune", help="magnitude-prune a .npy matrix to N:M or a density")
    pr.add_argument("input", help="matrix (.npy)")
    pr.add_argument("output", help="pruned matrix (.npy) to write")
    pwhat = pr.add_mutually_exclusive_group(required=True)
    pwhat.add_argument("--nm", metavar="N:M", help="keep N of every M along K, e.g. 2:4")
    pwhat.add_argument("--density", type=float, help="unstructured: fraction kept, in (0, 1]")
    pr.add_argument("--operand", choices=("a", "b"), default="b",
                    help="the matrix is A (K along columns) or B (K along rows; default)")
    pr.add_argument("--per-lane", action="store_true",
                    help="a pattern per row/column (NVIDIA 2:4) instead of one shared by all "
                         "lanes (SCALE-Sim layer-wise, what a lockstep array can skip)")
    pr.set_defaults(func=_cmd_prune)
    from ..llm.command import add_llm_parser
    add_llm_parser(sub)
    keys = sub.add_parser("keys", help="print every config key with its default and unit")
    keys.set_defaults(func=lambda args: print(schema_markdown(), end="") or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 1 validation mismatch, 2 bad input,
    130 stopped by Ctrl-C)."""
    from .stdout_guard import guarded
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _refuse_empty_workloads(args)
        with guarded():  # stdout to a full device: one line naming <stdout>
            return args.func(args)
    except SimulatorInputError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt as exc:
        print(_interrupted_line(args, exc), file=sys.stderr)
        return EXIT_INTERRUPTED


# the workload flags a command dispatches on: an empty value would pick another road
_WORKLOAD_FLAGS = ("model", "torch", "onnx", "tflite", "keras", "topology", "gemm")


def _refuse_empty_workloads(args: argparse.Namespace) -> None:
    """Raise WorkloadError for a workload flag given as an empty string (``--onnx ''``)."""
    for flag in _WORKLOAD_FLAGS:
        value = getattr(args, flag, None)
        if isinstance(value, str) and not value.strip():
            raise WorkloadError(f"--{flag} {value!r}", flag, "must not be empty")


def _interrupted_line(args: argparse.Namespace, exc: KeyboardInterrupt) -> str:
    """Return the one line printed on Ctrl-C: the command and what it had done."""
    command = " ".join(c for c in (args.command, getattr(args, "calibrate_command", None)) if c)
    done = exc.done if isinstance(exc, Interrupted) else "stopped before finishing"
    if args.command in ("run", "train", "validate", "compare"):  # they print only at the end
        done += "; nothing printed or written"
    start = "\n" if sys.stderr.isatty() else ""  # below a progress bar or the echoed ^C
    return f"{start}systolic-sim {command}: interrupted (Ctrl-C): {done}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
