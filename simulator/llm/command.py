"""The ``systolic-sim llm`` subcommand: one run, a training step, or a sweep with plots."""

from __future__ import annotations

import argparse
import csv
import json

from ..errors import WorkloadError
from ..tools.chip_args import add_chip_args, load_chip_args

__all__ = ["add_llm_parser"]


def _ints(text: str, flag: str) -> list[int]:
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise WorkloadError(f"{flag} {text}", flag.lstrip("-"),
                            "must be a positive integer or a comma-separated list") from None
    if not vals or min(vals) < 1:
        raise WorkloadError(f"{flag} {text}", flag.lstrip("-"), "must be positive integers")
    return vals


def _cmd_llm(args: argparse.Namespace) -> int:
    from .inference import simulate_inference
    from .model import load_model
    from .report import inference_text, sweep_text, training_text
    if args.trace:
        from ..tools.outputs import check_output_path
        check_output_path(args.trace, "--trace")
    chip = load_chip_args(args)
    model = load_model(args.model)
    tps, pps = _ints(args.tp, "--tp"), _ints(args.pp, "--pp")
    if args.trace and (args.train or "," in f"{args.batch}{args.tp}{args.pp}" or args.chips
                       or args.plot_throughput or args.plot_phases or args.plot_scaling):
        raise WorkloadError(f"--trace {args.trace}", "trace", "traces one serving run (one "
                            "batch, tp and pp; no --train, sweep or plots)")
    if args.train:
        from .training import simulate_training
        dps = _ints(args.dp, "--dp")
        if len(tps) > 1 or len(pps) > 1 or len(dps) > 1:
            raise WorkloadError("--train", "train", "a training step takes one dp, tp and pp")
        res = simulate_training(chip, model, args.global_batch, args.seq, dps[0], tps[0], pps[0],
                                args.micro_batch)
        print(json.dumps(res.to_dict(), indent=2) if args.json else training_text(res.to_dict()))
        return 0
    batches = _ints(args.batch, "--batch")
    chips = _ints(args.chips, "--chips") if args.chips else None
    contexts = _ints(args.context, "--context") if args.context else []
    plots = args.plot_throughput or args.plot_phases or args.plot_scaling
    if len(batches) == 1 and len(tps) == 1 and len(pps) == 1 and not chips and not plots:
        res = simulate_inference(chip, model, batches[0], args.prompt, args.generate, tps[0],
                                 pps[0], args.micro_batches, args.decode_points, contexts,
                                 args.exact_decode, all_logits=args.all_logits)
        if args.trace:
            from .trace import write_llm_trace
            write_llm_trace(args.trace, chip=chip, model=model, batch=batches[0],
                            prompt=args.prompt, tp=tps[0], pp=pps[0],
                            micro_batches=args.micro_batches, all_logits=args.all_logits)
        print(json.dumps(res.to_dict(), indent=2) if args.json else inference_text(res.to_dict()))
        return 0
    from .sweep import COLUMNS, best_points, sweep_inference
    rows = sweep_inference(chip, model, batches, tps, pps, chips, args.prompt, args.generate,
                           args.decode_points)
    best = best_points(rows)
    if args.out:
        from ..tools.outputs import write_with

        def write(fh) -> None:
            w = csv.DictWriter(fh, COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in COLUMNS})
        write_with(args.out, "--out", write)
    if plots:
        from ..tools import plots as pl
        title = f"{model.name} on {chip.name}, prompt {args.prompt}, generate {args.generate}"
        for path, fn in ((args.plot_throughput, pl.llm_throughput),
                         (args.plot_phases, pl.llm_phases), (args.plot_scaling, pl.llm_scaling)):
            if path:
                try:
                    pl.save(fn(rows, title), path)
                except ValueError as exc:
                    raise WorkloadError(f"--plot {path}", "plot", str(exc)) from None
    if args.json:
        print(json.dumps({"rows": rows, "best": best}, indent=2))
    else:
        print(sweep_text(rows, best))
        if args.out:
            print(f"wrote {args.out}")
    return 0


def add_llm_parser(sub) -> None:
    """Add the ``llm`` subcommand to the ``systolic-sim`` subparsers ``sub``."""
    p = sub.add_parser("llm", help="serve or train a language model on a system of chips")
    add_chip_args(p)
    p.add_argument("--model", required=True, metavar="FILE.yaml",
                   help="model shapes, e.g. configs/models/llama-3-8b.yaml")
    p.add_argument("--batch", default="1", help="sequences (a comma list sweeps)")
    p.add_argument("--prompt", type=int, default=2048, help="prompt tokens per sequence")
    p.add_argument("--generate", type=int, default=256, help="output tokens per sequence")
    p.add_argument("--tp", default="1", help="tensor parallelism (a comma list sweeps)")
    p.add_argument("--pp", default="1", help="pipeline stages (a comma list sweeps)")
    p.add_argument("--chips", help="sweep system.chips over a comma list (scaling)")
    p.add_argument("--micro-batches", type=int, default=0,
                   help="micro-batches through the pipeline (default: min(batch, pp))")
    p.add_argument("--context", help="also report TPOT at these context lengths (comma list)")
    p.add_argument("--decode-points", type=int, default=16,
                   help="decode context lengths costed; the rest interpolated (default 16)")
    p.add_argument("--exact-decode", action="store_true", help="cost every decode step")
    p.add_argument("--all-logits", action="store_true",
                   help="prefill projects every prompt position to the vocabulary (scoring), not "
                   "only the last")
    p.add_argument("--train", action="store_true", help="cost one training step instead")
    p.add_argument("--global-batch", type=int, default=1024, help="training: sequences per step")
    p.add_argument("--seq", type=int, default=4096, help="training: tokens per sequence")
    p.add_argument("--dp", default="1", help="training: data-parallel replicas")
    p.add_argument("--micro-batch", type=int, default=1, help="training: sequences per micro-batch")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--trace", metavar="FILE.json",
                   help="one run: also write the prefill and first decode step as Chrome Trace "
                        "Event JSON (a process per pipeline stage: array, vector unit, DMA, "
                        "chip links; pipeline links)")
    p.add_argument("--out", metavar="FILE.csv", help="sweep: write every point")
    p.add_argument("--plot-throughput", metavar="FILE.png", help="sweep: tokens/s vs batch")
    p.add_argument("--plot-phases", metavar="FILE.png", help="sweep: per-phase breakdown")
    p.add_argument("--plot-scaling", metavar="FILE.png", help="sweep: tokens/s vs chips")
    p.set_defaults(func=_cmd_llm)

