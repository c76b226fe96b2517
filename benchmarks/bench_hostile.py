"""Probe benchmark of hostile input (issue 32): generate hundreds of hostile inputs across the
commands, run each as a user would (``python -m simulator ...`` in a subprocess, 30 s timeout),
and count the outcomes.

Inputs (seeded, so every run generates the same set): random bytes as chip configs, model
YAMLs, topology CSVs, sweep specs, ONNX models, .npy files and PyTorch factory files; crafted
.npy headers (terabytes declared, complex, strings, objects, empty); devices, FIFOs,
directories, missing and over-long paths where a file is expected; the largest counts the
flags accept (GEMM dimensions on every shipped chip, batches, global batches, tokens,
workers); ONNX models built here whose initializers or Constant nodes keep their data in a
file outside the model's folder (absolute path, ``..``, a symlink out, over-long name).

Outcomes: ``one-line error`` (non-zero exit, one line on stderr, no traceback), ``ok`` (exit
0), ``traceback``, ``hang`` (over the timeout), ``over-memory`` (peak RSS over the cap for a
refused input), ``read outside`` (a model whose data lies outside its folder ran: exit 0),
``other`` (a non-zero exit with several lines and no traceback). The target is 0 of each of
the last five.

    python benchmarks/bench_hostile.py [--jobs 2] [--timeout 30] [--rss-mb 2048] [--show other]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(str(p) for p in (ROOT / "configs").glob("*.yaml"))
GEMMINI = str(ROOT / "configs" / "gemmini.yaml")
H100 = str(ROOT / "configs" / "h100.yaml")
LLAMA = str(ROOT / "configs" / "models" / "llama-3-8b.yaml")
OUTCOMES = ("one-line error", "ok", "traceback", "hang", "over-memory", "read outside", "other")


def _random_files(folder: Path, rng: random.Random, stem: str, suffix: str, count: int,
                  text_like: bool) -> list[Path]:
    """Write ``count`` files of random content (bytes, or printable text and YAML-ish
    punctuation when ``text_like``) of sizes from 0 bytes to 3 MiB."""
    sizes = [0, 1, 7, 100, 4096, 65536, 3 << 20]
    out = []
    for i in range(count):
        n = sizes[i % len(sizes)] if i < len(sizes) else rng.randrange(0, 20000)
        if text_like:
            alphabet = "abcxyz0123456789:-[]{}#&*!|>'\"%@`, \n\t.=e+_/\\?"
            data = "".join(rng.choice(alphabet) for _ in range(min(n, 200000))).encode()
            if n > 200000:
                data = data * (n // len(data) + 1)
            data = data[:n]
        else:
            data = rng.randbytes(n)
        p = folder / f"{stem}{i}{suffix}"
        p.write_bytes(data)
        out.append(p)
    return out


def _npy_cases(folder: Path) -> list[Path]:
    """Crafted .npy files: headers declaring huge or negative shapes, complex, strings,
    objects, truncated bodies, an empty file."""
    import numpy as np
    from numpy.lib import format as npf
    out = []

    def header(name, descr, shape, body=b""):
        p = folder / name
        with open(p, "wb") as fh:
            npf.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False,
                                            "shape": shape})
            fh.write(body)
        out.append(p)
    header("huge.npy", "<f8", (10 ** 6, 10 ** 6))
    header("huge3.npy", "<f4", (1 << 20, 1 << 20, 4))
    header("trunc.npy", "<f8", (64, 64), b"\0" * 100)
    header("obj.npy", "|O", (2, 2), b"\0" * 32)
    header("neg.npy", "<f8", (-1, 4))
    for name, arr in (("complex.npy", np.ones((4, 4), complex)),
                      ("str.npy", np.array([["a", "b"], ["c", "d"]])),
                      ("bytes.npy", np.array([[b"a", b"b"]])),
                      ("dates.npy", np.array([["2020-01-01"]], "datetime64[D]")),
                      ("vec.npy", np.arange(8.0)), ("scalar.npy", np.float64(3)),
                      ("empty2d.npy", np.zeros((0, 4))), ("ok.npy", np.arange(16.0).reshape(4, 4)),
                      ("records.npy", np.zeros((2, 2), [("a", "i4"), ("b", "f4")]))):
        np.save(folder / name, arr)
        out.append(folder / name)
    (folder / "zero.npy").write_bytes(b"")
    out.append(folder / "zero.npy")
    np.savez(folder / "arch.npz", a=np.ones((2, 2)))
    out.append(folder / "arch.npz")
    return out


def onnx_external_model(folder: Path, how: str, location: str) -> Path:
    """Write ``folder``/m.onnx: y = x @ C (2x2 float32), where C is a Constant node's value
    (``how`` = constant), an initializer (initializer), or a ConstantOfShape fill
    (constant_of_shape), its data kept in the external file ``location``. Also used by
    tests/test_hostile_inputs.py."""
    import numpy as np
    from onnx import TensorProto, helper
    shape = [1] if how == "constant_of_shape" else [2, 2]
    t = helper.make_tensor("value" if how == "constant_of_shape" else "c", TensorProto.FLOAT,
                           shape, [0.0] * int(np.prod(shape)))
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(4 * np.prod(shape)))):
        e = t.external_data.add()
        e.key, e.value = k, v
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    inits = []
    if how == "constant":
        nodes = [helper.make_node("Constant", [], ["c"], value=t)]
    elif how == "initializer":
        nodes, inits = [], [t]
    else:
        s = helper.make_tensor("s", TensorProto.INT64, [2], [2, 2])
        nodes = [helper.make_node("Constant", [], ["s"], value=s),
                 helper.make_node("ConstantOfShape", ["s"], ["c"], value=t)]
    nodes.append(helper.make_node("MatMul", ["x", "c"], ["y"]))
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                          opset_imports=[helper.make_opsetid("", 17)])
    p = folder / "m.onnx"
    p.write_bytes(m.SerializeToString())
    return p


def _onnx_traversal(folder: Path) -> list[tuple[str, list[str], bool]]:
    """Build ONNX models whose initializer or Constant value keeps its data in an external
    file; return (label, argv, data outside the folder?) per model."""
    try:
        import numpy as np
        import onnx  # noqa: F401
    except ImportError:
        return []
    secret = folder / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    cases = []
    locations = [("inside", "w.bin", False), ("absolute", str(secret), True),
                 ("dotdot", "../secret.bin", True), ("dotdot-deep", "sub/../../secret.bin", True),
                 ("symlink", "link.bin", True), ("long", "a" * 5000, True),
                 ("dir", "subdir", True), ("missing", "nothere.bin", True),
                 ("backslash", "..\\secret.bin", True), ("dev", "/dev/zero", True)]
    for how in ("constant", "initializer", "constant_of_shape"):
        for label, loc, outside in locations:
            d = folder / f"onnx_{how}_{label}"
            d.mkdir()
            (d / "w.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
            (d / "subdir").mkdir()
            os.symlink(secret, d / "link.bin")
            p = onnx_external_model(d, how, loc)
            cases.append((f"onnx {how} data {label}", ["run", GEMMINI, "--onnx", str(p)],
                          outside))
    return cases


def _count_files(folder: Path) -> list[tuple[str, str, object]]:
    """Return (file name, text, argv maker) of input files whose counts scale the work: a
    sweep of 10^18 rows, a sweep axis of 100,000 listed values, and chip, model and sweep
    YAML files of 100,000 keys (each refused up front, docs/errors.md "Bounded work")."""
    base = ROOT / "configs" / "tpu-v1.yaml"
    keys = "".join(f"k{i}: 1\n" for i in range(100_000))
    sweep = lambda p: ["sweep", p, "--out", str(folder / "count-out.csv"), "--executor",
                       "serial"]
    return [
        ("rows.yaml", f"base: {base}\ngrid:\n" + "".join(
            f"  {k}: {{range: [1, 1000000, 1]}}\n" for k in ("array.rows", "array.cols",
                                                            "buffers.a.bytes")) +
         "workloads:\n  - gemm: 8x8x8\n", sweep),
        ("values.yaml", f"base: {base}\ngrid:\n  array.rows: [" +
         ", ".join(str(v) for v in range(1, 100_001)) + "]\nworkloads:\n  - gemm: 8x8x8\n",
         sweep),
        ("keys-config.yaml", keys, lambda p: ["run", p, "--gemm", "8x8x8"]),
        ("keys-model.yaml", keys, lambda p: ["llm", H100, "--model", p]),
        ("keys-sweep.yaml", keys, sweep),
    ]


def generate(folder: Path, seed: int = 32) -> list[tuple[str, list[str], str]]:
    """Return the cases: (class, argv after ``python -m simulator``, expectation) where the
    expectation is ``fail`` (must be refused), ``any`` (a result or a refusal) or ``inside``
    (an ONNX model whose data must not be read from outside its folder)."""
    rng = random.Random(seed)
    cases: list[tuple[str, list[str], str]] = []
    fifo = folder / "fifo"
    os.mkfifo(fifo)
    bad_paths = ["/dev/zero", "/dev/urandom", "/dev/null", str(folder), str(fifo),
                 str(folder / "missing.file"), "x" * 5000, "/proc/self/mem"]
    kinds = {
        "config": lambda p: ["run", p, "--gemm", "8x8x8"],
        "model": lambda p: ["llm", H100, "--model", p, "--prompt", "8", "--generate", "2"],
        "topology": lambda p: ["run", GEMMINI, "--topology", p],
        "sweep": lambda p: ["sweep", p, "--out", str(folder / "sweep-out.csv"),
                            "--executor", "serial"],
        "onnx": lambda p: ["run", GEMMINI, "--onnx", p],
        "npy": lambda p: ["prune", p, str(folder / "pruned.npy"), "--nm", "2:4"],
        "inputs": lambda p: ["validate", GEMMINI, "--onnx", str(folder / "onnx_initializer_inside"
                                                                  / "m.onnx"), "--input", p],
        "torch": lambda p: ["run", GEMMINI, "--torch", f"{p}:build"],
        "report": lambda p: ["plot", "roofline", p, "--out", str(folder / "plot.png")],
    }
    for kind, argv in kinds.items():
        for p in bad_paths:
            cases.append((f"{kind}: device or bad path", argv(p), "fail"))
    counts = {"config": 40, "model": 40, "topology": 30, "sweep": 20, "onnx": 40, "npy": 30,
              "torch": 4}
    suffix = {"config": ".yaml", "model": ".yaml", "topology": ".csv", "sweep": ".yaml",
              "onnx": ".onnx", "npy": ".npy", "torch": ".py"}
    for kind, n in counts.items():
        d = folder / f"rand_{kind}"
        d.mkdir()
        half = n // 2
        files = _random_files(d, rng, "b", suffix[kind], half, False) + \
            _random_files(d, rng, "t", suffix[kind], n - half, True)
        for p in files:
            cases.append((f"{kind}: random content", kinds[kind](str(p)), "any"))
    for p in _npy_cases(folder):
        cases.append(("npy: crafted header or dtype", kinds["npy"](str(p)), "any"))
    for nm in ("", ":", "0:4", "5:4", "2:0", "-1:4", "a:b", "2:4:8", "99999999999999999999:1"):
        cases.append(("prune --nm", ["prune", str(folder / "ok.npy"), str(folder / "o.npy"),
                                     "--nm", nm], "fail"))
    big = 1 << 20
    for cfg in CONFIGS:
        for g in (f"{big}x{big}x{big}", f"1x1x{big}", f"{big}x1x1", f"{big}x{big}x1",
                  f"{big + 1}x8x8", "0x8x8", "8x8x-1"):
            cases.append(("huge or bad GEMM", ["run", cfg, "--gemm", g], "any"))
    for a in (["train", GEMMINI, "--set", "dtype=fp32", "--model", "mlp:64:32:10", "--batch",
               "1000000000000"],
              ["validate", GEMMINI, "--set", "dtype=fp32", "--model", "mlp:64:32:10", "--batch",
               "100000000"],
              ["train", GEMMINI, "--batch", "1e12"],
              ["run", GEMMINI, "--model", "zoo:resnet18", "--batch", "1000000000000"],
              ["llm", H100, "--model", LLAMA, "--train", "--global-batch", "600000000"],
              ["llm", H100, "--model", LLAMA, "--train", "--global-batch", str(1 << 62)],
              ["llm", H100, "--model", LLAMA, "--batch", "1000000000000", "--prompt", "64"],
              ["llm", H100, "--model", LLAMA, "--prompt", str(1 << 40), "--generate", "1"],
              ["llm", H100, "--model", LLAMA, "--prompt", "8", "--generate", str(1 << 40)],
              ["llm", H100, "--model", LLAMA, "--prompt", "8", "--generate", "-1"],
              ["sweep", str(ROOT / "examples" / "sweep-array.yaml"), "--out",
               str(folder / "w.csv"), "--workers", "0"],
              ["sweep", str(ROOT / "examples" / "sweep-array.yaml"), "--out", "/dev/full"],
              ["run", GEMMINI, "--gemm", "64x64x64", "--set",
               "dram.bandwidth_bytes_per_s=1e-300"],
              ["run", GEMMINI, "--gemm", "64x64x64", "--set", "array.rows=1e12"],
              ["run", GEMMINI, "--gemm", "64x64x64", "--trace", "/dev/full"]):
        cases.append(("huge count or bad flag", a, "any"))
    for name, text, make in _count_files(folder):
        path = folder / name
        path.write_text(text)
        cases.append(("huge count in a file", make(str(path)), "fail"))
    for label, argv, outside in _onnx_traversal(folder):
        cases.append(("onnx external data", argv, "inside" if outside else "any"))
    return cases


def run_case(argv: list[str], cwd: Path, timeout: float) -> tuple[int | None, str, int, float]:
    """Run ``python -m simulator ARGV``; return (exit status or None on timeout, stderr, peak
    RSS in KiB of the child, seconds)."""
    import subprocess
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR",
                                                           str(cwd / ".numba"))}
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        t0 = time.monotonic()
        p = subprocess.Popen([sys.executable, "-m", "simulator", *argv], cwd=cwd, stdout=out,
                             stderr=err, stdin=subprocess.DEVNULL, env=env)
        status, rss = None, 0
        while time.monotonic() - t0 < timeout:
            pid, st, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                status, rss = os.waitstatus_to_exitcode(st), usage.ru_maxrss
                break
            time.sleep(0.02)
        if status is None:
            p.kill()
            _, st, usage = os.wait4(p.pid, 0)
            rss = usage.ru_maxrss
        p.returncode = status if status is not None else -9  # reaped here
        err.seek(0)
        return status, err.read().decode("utf-8", "replace"), rss, time.monotonic() - t0


def classify(status, stderr: str, rss_kib: int, expect: str, rss_cap_kib: int) -> str:
    """Return the outcome of one case."""
    if status is None:
        return "hang"
    if "Traceback" in stderr:
        return "traceback"
    if status == 0:
        return "read outside" if expect == "inside" else "ok"
    if rss_kib > rss_cap_kib:
        return "over-memory"
    if len(stderr.strip().splitlines()) == 1:
        return "one-line error"
    return "other"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--rss-mb", type=int, default=2048, help="peak RSS cap of a refused input")
    ap.add_argument("--show", default="traceback,hang,over-memory,read outside,other",
                    help="outcomes whose cases are listed (comma list)")
    ap.add_argument("--limit", type=int, default=0, help="run only the first N cases")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        folder = Path(tmp)
        cases = generate(folder)
        if args.limit:
            cases = cases[:args.limit]
        t0 = time.monotonic()
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda c: run_case(c[1], folder, args.timeout), cases))
        wall = time.monotonic() - t0
    table = collections.Counter()
    per_class = collections.defaultdict(collections.Counter)
    shown = set(args.show.split(","))
    worst_refused = 0
    for (cls, argv_, expect), (status, err, rss, secs) in zip(cases, results):
        outcome = classify(status, err, rss, expect, args.rss_mb * 1024)
        if expect == "fail" and outcome == "ok":
            outcome = "other"
        table[outcome] += 1
        per_class[cls][outcome] += 1
        if status not in (0, None):
            worst_refused = max(worst_refused, rss)
        if outcome in shown:
            tail = err.strip().splitlines()[-1][:200] if err.strip() else ""
            print(f"  {outcome}: {' '.join(a[:60] for a in argv_)} -> {status} {tail}")
    print(f"{len(cases)} hostile inputs, {wall:.0f} s with {args.jobs} jobs")
    print("| input class | " + " | ".join(OUTCOMES) + " |")
    print("|---|" + "---|" * len(OUTCOMES))
    for cls in per_class:
        print(f"| {cls} | " + " | ".join(str(per_class[cls][o]) for o in OUTCOMES) + " |")
    print("| **all** | " + " | ".join(f"**{table[o]}**" for o in OUTCOMES) + " |")
    print(f"peak RSS of a refused input: {worst_refused / 1024:.0f} MB")
    bad = sum(table[o] for o in ("traceback", "hang", "over-memory", "read outside", "other"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
