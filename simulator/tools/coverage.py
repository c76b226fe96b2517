"""The manual's model coverage page, generated from the code that defines it.

``python -m simulator.tools.coverage > docs/models-coverage.md`` writes it; a test holds the
file to this output. It lists the model zoo (``simulator.kernels.zoo.MODELS``), the ATen
operators the PyTorch importer lowers (``torch_import.LOWER``) and the ONNX operators the ONNX
importer accepts (``onnx_import.HANDLERS``). It needs the ``[torch]`` and ``[onnx]`` extras.
"""

from __future__ import annotations


def _zoo_rows() -> list[str]:
    from ..kernels.zoo import MODELS

    rows = ["| model | network | sizes and defaults | limits |", "|---|---|---|---|"]
    for name, e in MODELS.items():
        sizes = ", ".join(f"`--{k} {v}`" for k, v in e.defaults.items())
        limits = "; ".join(f"{k} {lo} to {hi}" + (f", a multiple of {step}" if step > 1 else "")
                           for k, (lo, hi, step) in e.limits.items())
        rows.append(f"| `zoo:{name}` | {e.about} | {sizes} | {limits} |")
    return rows


def _torch_ops() -> list[str]:
    import torch

    from ..frontends.torch_import import LOWER, _op_name

    names = sorted({_op_name(k) for k in LOWER(torch)})
    return [f"PyTorch {torch.__version__.split('+')[0]}: {len(names)} operator overloads.", "",
            ", ".join(f"`{n}`" for n in names)]


def _onnx_ops() -> list[str]:
    from ..frontends.onnx_import import HANDLERS

    lowered = sorted(op for op, fn in HANDLERS.items() if "_numpy_fold" not in fn.__qualname__)
    folded = sorted(op for op, fn in HANDLERS.items() if "_numpy_fold" in fn.__qualname__)
    return [f"Lowered to ops on the chip or folded at import ({len(lowered)}):", "",
            ", ".join(f"`{n}`" for n in lowered), "",
            f"Accepted only on constants known at import, folded there ({len(folded)}):", "",
            ", ".join(f"`{n}`" for n in folded)]


def _node_tests() -> list[str]:
    """Return the ONNX node-test section from benchmarks/onnx_node_tests.json (written by
    benchmarks/bench_onnx_node_tests.py --summary); empty outside a source checkout."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "onnx_node_tests.json"
    if not path.is_file():
        return []
    s = json.loads(path.read_text())
    return ["### ONNX's node tests", "",
            f"Every node test case onnx {s['onnx']} generates (`onnx.backend.test.case.node`), "
            "imported and run on values on an fp32 chip (`configs/tpu-v4-mxu.yaml --set "
            "dtype=fp32`) against the case's expected outputs (rtol 1e-3, atol 1e-7; float16 "
            "outputs, rounded at every step by the reference, rtol 2^-9; integers and "
            "booleans exactly). Inputs of rank 0 or 1 that nodes read only as secondary "
            "inputs (axes, a shape, pads, scales, a depth) are given at import "
            "(`import_onnx(constants=...)`) when a case is "
            "refused with them as data:", "",
            f"**{s['pass']:,} of {s['cases']:,} pass** ({s['pass'] - s['pass_at_import']:,} "
            f"with every graph input as data, {s['pass_at_import']} with inputs given at "
            f"import), {s['wrong']} wrong, "
            f"{s['refused']:,} refused in one line (an operator, attribute or element type "
            f"not modelled: strings, bfloat16, float8, int4, uint16, sequences, ...), "
            f"{s['traceback']} tracebacks. Of {s['operators']} operators, "
            f"{s['operators_all_pass']} pass every case and {s['operators_some_pass']} some.",
            "", "<!-- docs-test: skip: runs all 1,884 node tests (about half a minute); CI "
            "runs a slice of them in tests/test_onnx_node_tests.py -->", "```bash",
            ".venv/bin/" + s["command"] + " --table node-tests.md", "```",
            "", "`--show refused` lists every refusal, `--only NAME` runs the cases whose "
            "name holds NAME.", ""]


def coverage_markdown() -> str:
    """Return the model coverage page (docs/models-coverage.md is this text)."""
    lines = ["# Model coverage", "",
             "Generated from the code (`python -m simulator.tools.coverage > "
             "docs/models-coverage.md`; a test holds this page to it). How each operator is "
             "costed: [PyTorch](import-torch.md), [ONNX](import-onnx.md); the zoo: "
             "[whole networks](networks.md).", "",
             "## The model zoo", "", *_zoo_rows(), "",
             "## PyTorch operators (`--torch`)", "",
             "The ATen operators `torch.export` graphs are lowered from; any other operator "
             "is a one-line error naming it.", "", *_torch_ops(), "",
             "## ONNX operators (`--onnx`)", "",
             "Any other operator is a one-line error `FILE:N: node NAME (OP): why`.", "",
             *_onnx_ops(), "", *_node_tests()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(coverage_markdown(), end="")
