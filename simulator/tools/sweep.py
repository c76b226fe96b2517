"""Design-space sweeps: a base chip, a grid of overrides, workloads; rows stream to a CSV.

A sweep file (YAML)::

    base: ../configs/tpu-v1.yaml          # relative to the sweep file
    grid:                                  # cartesian product of the axes
      array.dataflow: [os, ws, is]
      array.rows: {range: [32, 256, 32]}   # start, stop (inclusive), step
    zip:                                   # axes varied together (equal lengths), times the grid
      array.rows: [32, 64]
      array.cols: [32, 64]
    workloads:
      - gemm: 1024x1024x1024
      - topology: ../configs/topologies/resnet18.csv
      - train: linear:10:1                 # one training step; batch defaults to 64
        batch: 64
      - onnx: model.onnx                   # a forward pass of an ONNX model (extra [onnx])
        inputs: {x: 1x3x224x224}           # shapes of symbolic inputs (optional)
      - tflite: model.tflite               # a forward pass of a TFLite model (extra [tflite])
      - llm: ../configs/models/llama-2-7b.yaml   # one step of a language model (simulator.llm)
        phase: decode                      # or prefill; default decode
        batch: 1                           # sequences; default 1
        context: 2048                      # keys attended (decode) or prompt tokens (prefill)

Every point is a pure function of (base config, overrides, workload), evaluated timing-only.
Rows are appended to the output as points finish, one line per (point, workload), written in one
``write`` and flushed; re-running the same command reads the file back, drops every malformed
row (a torn last line from a run killed mid-write, a torn or garbled row anywhere, a duplicate),
and evaluates only the rows that are missing, so no row is lost or duplicated. Worker processes:
``pool.pool_size`` of them, each exiting when this process dies. One sweep at a time writes a results file: a second one started on the same file
waits for the first to finish (or stop), then re-reads the file and evaluates only what is still
missing. Ctrl-C stops the workers, leaves every row written complete, and raises Interrupted
saying how many rows are in the file. Executors: ``serial``, ``process`` (a local process pool,
the default) and ``dask`` (``dask.distributed``, an optional extra imported only when asked for).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import itertools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..hardware.chip import chip_from_config
from ..hardware.config import _parse_yaml, flatten, load_config, validate_config
from ..hardware.dataflow import parse_gemm
from ..errors import ConfigError, Interrupted, SimulatorInputError, WorkloadError
from ..io_limits import check_planned_bytes, read_user_file
from .interrupt import deferred, ignored, start_workers
from .progress import progress_bar
from .locking import exclusive

__all__ = ["EXECUTORS", "METRICS", "Sweep", "load_sweep", "run_sweep", "read_results"]

EXECUTORS = ("serial", "process", "dask")
METRICS = ("total_cycles", "compute_cycles", "stall_cycles", "macs", "folds", "utilisation",
           "compute_utilisation", "mapping_efficiency", "time_s", "energy_pj", "dram_bytes",
           "memory_bound_ops")
# points handed to a worker at a time: large enough to amortise inter-process traffic
CHUNK = 64


@dataclass(frozen=True)
class Sweep:
    """A loaded sweep: base config, the list of override points, the workloads."""

    path: Path
    base: dict[str, Any]
    axes: tuple[str, ...]
    points: tuple[tuple[Any, ...], ...]  # values in the order of ``axes``
    workloads: tuple[dict[str, Any], ...]  # {"name", "kind", "shapes" or "model"/"batch"}
    digest: str

    @property
    def columns(self) -> list[str]:
        """Return the CSV header."""
        return ["sweep", "point", "workload", *self.axes, "status", "error", *METRICS]


def _axis_values(spec: Any, where: str, path: str) -> list[Any]:
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(where, path, "must list at least one value")
        return spec
    if isinstance(spec, dict) and set(spec) == {"range"}:
        r = spec["range"]
        if not (isinstance(r, list) and len(r) == 3 and all(isinstance(v, (int, float)) and
                                                            not isinstance(v, bool) for v in r)):
            raise ConfigError(where, path, "range must be [start, stop, step] numbers")
        start, stop, step = r
        if step <= 0 or stop < start:
            raise ConfigError(where, path, f"range needs step > 0 and stop >= start, got {r}")
        count = int((stop - start) // step) + 1
        if count > 1_000_000:
            raise ConfigError(where, path, f"range has {count} values (over 1,000,000)")
        return [start + i * step for i in range(count)]
    raise ConfigError(where, path, "must be a list of values or {range: [start, stop, step]}")


def _parse_workload(item: Any, where: str, base_dir: Path, index: int) -> dict[str, Any]:
    from simulator.kernels.train import parse_model  # lazy: kernels sit above the simulator core

    from ..frontends.topology import load_topology
    field = f"workloads[{index}]"
    if not isinstance(item, dict) or not item:
        raise ConfigError(where, field, "must be a mapping like {gemm: 512x512x512}")
    kinds = [k for k in ("gemm", "topology", "train", "model", "torch", "onnx", "tflite", "llm")
             if k in item]
    allowed = {"train": {"batch"}, "model": {"batch", "seq", "image"}, "torch": {"input"},
               "onnx": {"inputs"}, "llm": {"phase", "batch", "context"}}  # plus name for any
    extra = set(item) - set(kinds) - {"name"} - (allowed.get(kinds[0], set()) if len(kinds) == 1
                                                 else set())
    if len(kinds) != 1 or extra:
        unknown = f"; not allowed here: {', '.join(sorted(map(str, extra)))}" if extra else ""
        raise ConfigError(where, field, "needs exactly one of gemm, topology, train, model, torch, "
                          "onnx, tflite or llm (plus batch for train; batch, seq, image for model; input "
                          "for torch; inputs for onnx; phase, batch, context for llm; name for "
                          f"any){unknown}")
    kind = kinds[0]
    value = item[kind]
    try:
        if kind == "gemm":
            m, n, k = parse_gemm(str(value))
            return {"name": item.get("name", f"gemm {m}x{n}x{k}"), "kind": "gemm",
                    "shapes": [("gemm", m, n, k)]}
        if kind == "topology":
            path = (base_dir / str(value)).resolve()
            layers = load_topology(path)
            return {"name": item.get("name", Path(str(value)).stem), "kind": "topology",
                    "shapes": [layer.entry for layer in layers]}
        if kind == "onnx":  # an imported ONNX model's forward pass
            from simulator.frontends.onnx_import import import_onnx, parse_input_shape
            path = str((base_dir / str(value)).resolve())
            given = item.get("inputs") or {}
            if not isinstance(given, dict):
                raise ConfigError(where, f"{field}.inputs", "must map input names to shapes "
                                  "like {x: 1x3x224x224}")
            shapes = dict(parse_input_shape(f"{k}={v}", path) for k, v in given.items())
            model = import_onnx(path, shapes)  # checked here, rebuilt in the workers
            label = ", ".join(f"{k} {v}" for k, v in model.sizes.items())
            return {"name": item.get("name", f"{Path(path).name} {label}"), "kind": "onnx",
                    "onnx": path, "inputs": {k: list(v) for k, v in shapes.items()}}
        if kind == "tflite":  # an imported TFLite model's forward pass
            from simulator.frontends.tflite_import import import_tflite
            path = str((base_dir / str(value)).resolve())
            model = import_tflite(path)  # checked here, rebuilt in the workers
            label = ", ".join(f"{k} {v}" for k, v in model.sizes.items())
            return {"name": item.get("name", f"{Path(path).name} {label}"), "kind": "tflite",
                    "tflite": path}
        if kind == "model":  # a zoo network's forward pass
            from simulator.kernels.zoo import build_zoo
            sizes = {k: item.get(k) for k in ("batch", "seq", "image")}
            for k, v in sizes.items():
                if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                    raise ConfigError(where, f"{field}.{k}", f"must be a positive integer, got {v!r}")
            zoo = build_zoo(str(value), **sizes)
            label = ", ".join(f"{k} {v}" for k, v in zoo.sizes.items())
            return {"name": item.get("name", f"zoo:{zoo.name} {label}"), "kind": "model",
                    "model": f"zoo:{zoo.name}", "sizes": zoo.sizes}
        if kind == "torch":  # a PyTorch module's forward pass (FILE.py:factory)
            from ..frontends.torch_import import import_torch
            shapes = item.get("input")
            shapes = [shapes] if isinstance(shapes, str) else shapes
            if shapes is not None and (not isinstance(shapes, list) or
                                       not all(isinstance(x, str) for x in shapes)):
                raise ConfigError(where, f"{field}.input", "must be a shape AxBxC or a list of "
                                  f"them, got {shapes!r}")
            file, _, fn = str(value).rpartition(":")
            spec = f"{(base_dir / file).resolve()}:{fn}" if file else str(value)
            model = import_torch(spec, shapes)
            label = ", ".join(f"{k} {v}" for k, v in model.sizes.items())
            return {"name": item.get("name", f"torch:{value} {label}"), "kind": "torch",
                    "torch": spec, "inputs": shapes}
        if kind == "llm":  # one prefill or decode step of a language model (simulator.llm)
            return _parse_llm(item, where, field, base_dir)
        spec = parse_model(str(value))
        batch = item.get("batch", 64)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch <= 0:
            raise ConfigError(where, f"{field}.batch", f"must be a positive integer, got {batch!r}")
        return {"name": item.get("name", f"train {spec} batch {batch}"), "kind": "train",
                "model": str(spec), "batch": batch}
    except ConfigError:
        raise
    except SimulatorInputError as exc:
        raise ConfigError(where, f"{field}.{kind}", str(exc)) from None


def _parse_llm(item: dict[str, Any], where: str, field: str, base_dir: Path) -> dict[str, Any]:
    """Check an ``llm`` workload (a model YAML, phase decode or prefill, batch, context);
    return its sweep workload."""
    from ..llm.model import load_model
    from ..llm.step import PHASES
    path = (base_dir / str(item["llm"])).resolve()
    model = load_model(path)
    phase = item.get("phase", "decode")
    if phase not in PHASES:
        raise ConfigError(where, f"{field}.phase", f"must be one of {', '.join(PHASES)}, got "
                          f"{phase!r}")
    sizes = {"batch": item.get("batch", 1), "context": item.get("context", 2048)}
    for k, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(where, f"{field}.{k}", f"must be a positive integer, got {v!r}")
    if sizes["context"] > model.max_context:
        raise ConfigError(where, f"{field}.context", f"{sizes['context']} tokens exceed the "
                          f"model's context of {model.max_context}")
    name = f"llm {model.name} {phase} batch {sizes['batch']} context {sizes['context']}"
    return {"name": item.get("name", name), "kind": "llm", "llm": str(path), "phase": phase,
            **sizes}


@functools.lru_cache(maxsize=8)
def _llm_model(path: str):
    """Return the ModelSpec of an llm workload (read once per worker process)."""
    from ..llm.model import load_model
    return load_model(path)


# Bytes a sweep holds per row (point x workload) while it runs: the point's values, its task
# and its chunk, the resume set, the digest's text. Measured 200 bytes a row on a 405,000-row
# sweep (two axes of 450 values, two workloads); the rule takes five times that.
SWEEP_ROW_BYTES = 1024


def _check_rows(grid_values: list[list[Any]], zip_values: list[list[Any]], workloads: int,
                where: str) -> None:
    """Raise ConfigError when the sweep's rows, counted in closed form (the grid axes' lengths
    multiplied, times the zipped length, times the workloads) would hold more than half this
    machine's memory at SWEEP_ROW_BYTES a row; return None before any point is built."""
    rows = workloads * (len(zip_values[0]) if zip_values else 1)
    for values in grid_values:
        rows *= len(values)
    sizes = " x ".join(str(len(v)) for v in grid_values + zip_values[:1])
    check_planned_bytes(rows * SWEEP_ROW_BYTES, ConfigError, where, "grid",
                        f"the sweep's {rows:,} rows ({sizes} points x {workloads} workloads, "
                        f"{SWEEP_ROW_BYTES:,} bytes a row)", of="rows")


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; return the Sweep. Raises ConfigError (FILE:LINE: ...)."""
    path = Path(path)
    text = read_user_file(path, ConfigError, "a sweep YAML file", "sweep")
    data, lines = _parse_yaml(text, str(path))

    def where(key: str) -> str:
        return f"{path}:{lines.get(key, 1)}"
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1", "(top level)", "must be a mapping with base, grid, workloads")
    unknown = set(data) - {"base", "grid", "zip", "workloads"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(where(key), key, "unknown key (known: base, grid, zip, workloads)")
    if "base" not in data or not isinstance(data["base"], str):
        raise ConfigError(where("base"), "base", "must name the base chip config file")
    base_path = (path.parent / data["base"]).resolve()
    try:
        base = load_config(base_path)
    except ConfigError as exc:
        raise ConfigError(where("base"), "base", str(exc)) from None
    base_flat = flatten(base)
    axes: list[str] = []
    grid_values: list[list[Any]] = []
    zip_values: list[list[Any]] = []
    zip_axes: list[str] = []
    checks: list[tuple[str, str, list[Any]]] = []
    for section, store, names in (("grid", grid_values, axes), ("zip", zip_values, zip_axes)):
        spec = data.get(section) or {}
        if not isinstance(spec, dict):
            raise ConfigError(where(section), section, "must map dotted config keys to values")
        for key, values in spec.items():
            k = f"{section}.{key}"
            vals = _axis_values(values, where(k), key)
            if key in axes or key in zip_axes:
                raise ConfigError(where(k), key, "appears twice")
            names.append(key)
            store.append(vals)
            checks.append((k, key, vals))
    if zip_values and len({len(v) for v in zip_values}) != 1:
        raise ConfigError(where("zip"), "zip", "all zipped axes need the same number of values")
    workloads_raw = data.get("workloads")
    if not isinstance(workloads_raw, list) or not workloads_raw:
        raise ConfigError(where("workloads"), "workloads", "must list at least one workload")
    # the rows, in closed form, before a value is checked or a point built
    _check_rows(grid_values, zip_values, len(workloads_raw),
                where("grid" if grid_values else "zip" if zip_values else "workloads"))
    for k, key, vals in checks:
        for v in vals:  # each value alone must be valid on the base chip
            flat = {p: (val, where(k)) for p, val in base_flat.items()}
            flat[key] = (v, where(k))
            validate_config({}, {}, where(k), flat)
    workloads = tuple(_parse_workload(w, where(f"workloads[{i}]"), path.parent, i)
                      for i, w in enumerate(workloads_raw))
    names = [w["name"] for w in workloads]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(where(f"workloads[{i}]"), f"workloads[{i}]",
                              f"duplicate workload name {name!r}; give it a distinct name:")
    grid_points = list(itertools.product(*grid_values)) if grid_values else [()]
    zip_points = list(zip(*zip_values)) if zip_values else [()]
    points = tuple(g + z for g in grid_points for z in zip_points)
    all_axes = tuple(axes + zip_axes)
    digest = hashlib.sha256(json.dumps([base, all_axes, points, workloads], sort_keys=True,
                                       default=str).encode()).hexdigest()[:16]
    return Sweep(path, base, all_axes, points, workloads, digest)


# --------------------------------------------------------------------------- evaluation

@functools.lru_cache(maxsize=4)
def _torch_program(spec: str, inputs: tuple[str, ...]):
    """Return the Program of a torch workload (imported once per worker process)."""
    from ..frontends.torch_import import import_torch
    return import_torch(spec, list(inputs) or None).program


def _evaluate(base_flat: dict[str, Any], axes: tuple[str, ...], values: tuple[Any, ...],
              workload: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one (point, workload): return the metric columns, or status/error."""
    from ..core.engine import run, simulate_gemms
    try:
        flat = {p: (v, "sweep") for p, v in base_flat.items()}
        flat.update({a: (v, "sweep") for a, v in zip(axes, values)})
        chip = chip_from_config(validate_config({}, {}, "sweep", flat))
        if workload["kind"] == "model":
            from simulator.kernels.zoo import build_zoo
            rep = run(chip, build_zoo(workload["model"], **workload["sizes"]).program)
        elif workload["kind"] == "torch":
            rep = run(chip, _torch_program(workload["torch"], tuple(workload["inputs"] or ())))
        elif workload["kind"] == "onnx":
            rep = run(chip, _onnx_program(workload["onnx"],
                                          tuple((k, tuple(v)) for k, v in
                                                sorted(workload["inputs"].items()))))
        elif workload["kind"] == "tflite":
            rep = run(chip, _tflite_program(workload["tflite"]))
        elif workload["kind"] == "train":
            from simulator.kernels.train import parse_model
            spec = parse_model(workload["model"])
            rep = run(chip, spec.build_step(workload["batch"], 0.01))
        elif workload["kind"] == "llm":
            from ..llm.step import step_totals
            rep = None
            t = step_totals(chip, _llm_model(workload["llm"]), workload["phase"],
                            workload["batch"], workload["context"])
        else:
            rep = simulate_gemms(chip, workload["shapes"])
    except SimulatorInputError as exc:
        return {"status": "error", "error": str(exc)}
    t = rep.totals() if rep is not None else t
    out = {k: t[k] for k in METRICS if k in t}
    out["energy_pj"] = t["energy_pj"]["total"]
    out["dram_bytes"] = t["traffic_bytes"].get("dram", {}).get("total", 0) \
        if "traffic_bytes" in t else t["dram_bytes"]
    out["status"] = "ok"
    out["error"] = ""
    return out


@functools.lru_cache(maxsize=8)
def _onnx_program(path: str, inputs: tuple):
    """Return the Program of an ONNX workload (imported once per worker process)."""
    from simulator.frontends.onnx_import import import_onnx
    return import_onnx(path, dict(inputs)).program


@functools.lru_cache(maxsize=8)
def _tflite_program(path: str):
    """Return the Program of a TFLite workload (imported once per worker process)."""
    from simulator.frontends.tflite_import import import_tflite
    return import_tflite(path).program


def _evaluate_chunk(base_flat, axes, workloads, items):
    """Evaluate a list of (point index, workload index, values); return result rows."""
    return [(pi, wi, _evaluate(base_flat, axes, values, workloads[wi]))
            for pi, wi, values in items]


def _format(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _row_text(sweep: Sweep, pi: int, wi: int, result: dict[str, Any]) -> str:
    buf = io.StringIO()
    values = dict(zip(sweep.axes, sweep.points[pi]))
    row = [sweep.digest, pi, sweep.workloads[wi]["name"], *(values[a] for a in sweep.axes),
           result["status"], result["error"], *(result.get(m, "") for m in METRICS)]
    csv.writer(buf, lineterminator="\n").writerow([_format(v) for v in row])
    return buf.getvalue()


def _valid_row(sweep: Sweep, row: list[str], names: set[str]) -> bool:
    """Return True when ``row`` (CSV fields) is a complete row of ``sweep``: every column, a
    point index in range, a known workload, a status, and numbers in the metric columns of an
    ``ok`` row. Rows of another sweep (another digest) count as valid: they are refused whole."""
    if len(row) != len(sweep.columns) or any("\ufffd" in v for v in row):
        return False
    rec = dict(zip(sweep.columns, row))
    if rec["sweep"] != sweep.digest:
        return True
    if not rec["point"].isdigit() or int(rec["point"]) >= len(sweep.points) \
            or rec["workload"] not in names or rec["status"] not in ("ok", "error"):
        return False
    if rec["status"] == "ok":
        try:
            for m in METRICS:
                float(rec[m])
        except ValueError:
            return False
    return True


def read_results(path: str | Path) -> list[dict[str, str]]:
    """Return the complete rows of a results CSV as dicts (a torn last line is ignored)."""
    from ..io_limits import read_text
    text = read_text(path, "results", WorkloadError, "results", line=False)
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text)))


def _prepare_output(sweep: Sweep, out: Path) -> set[tuple[int, str]]:
    """Create the output, or repair it: drop every malformed row (a torn last line, a torn or
    garbled row anywhere, a duplicate), rewriting the file whole (temporary file and rename) if
    any was dropped. Return the (point, workload) pairs done. Raises WorkloadError when the file
    holds another sweep's header or rows or cannot be read (over the results cap, unreadable),
    OutputError when it cannot be written."""
    from .outputs import write_output
    header = ",".join(sweep.columns) + "\n"
    from ..io_limits import read_bytes  # a results file to resume: capped like any input
    raw = read_bytes(out, "results", WorkloadError, "--out", line=False) if out.exists() else b""
    if not raw:
        write_output(out, "--out", header)
        return set()
    text = raw[:raw.rfind(b"\n") + 1].decode("utf-8", errors="replace")  # no torn last line
    if not text.startswith(header):
        raise WorkloadError(str(out), "--out", "exists with another header: it holds results of "
                            "a different sweep; choose another file")
    names = {w["name"] for w in sweep.workloads}
    done: set[tuple[int, str]] = set()
    kept = [header]
    for line in text[len(header):].splitlines(keepends=True):
        try:
            row = next(csv.reader([line]), [])
        except csv.Error:
            continue
        if not _valid_row(sweep, row, names):
            continue
        rec = dict(zip(sweep.columns, row))
        if rec["sweep"] != sweep.digest:
            raise WorkloadError(str(out), "--out", f"holds rows of another sweep (digest "
                                f"{rec['sweep']}, this one {sweep.digest}); choose another file")
        key = (int(rec["point"]), rec["workload"])
        if key not in done:
            done.add(key)
            kept.append(line)
    if sum(map(len, kept)) != len(raw.decode("utf-8", errors="replace")):
        write_output(out, "--out", "".join(kept))  # some row was dropped: rewrite it whole
    return done


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _results_serial(args, chunks: Iterable[list]) -> Iterator[list]:
    for chunk in chunks:
        yield _evaluate_chunk(*args, chunk)


def _results_process(args, chunks: list[list], workers: int | None) -> Iterator[list]:
    import concurrent.futures as cf
    import multiprocessing as mp
    from .pool import parent_death_initializer, pool_size
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    rows = sum(len(chunk) for chunk in chunks)
    with start_workers():  # workers leave Ctrl-C to this process, and die with it
        pool = cf.ProcessPoolExecutor(max_workers=pool_size(workers, rows), mp_context=ctx,
                                      initializer=parent_death_initializer,
                                      initargs=(os.getpid(),))
        futures = [pool.submit(_evaluate_chunk, *args, chunk) for chunk in chunks]
    try:
        for fut in cf.as_completed(futures):
            yield fut.result()
    except BaseException:  # Ctrl-C, an error, or the reader stopped: stop the workers now
        _stop_pool(pool)
        raise
    pool.shutdown()


def _stop_pool(pool) -> None:
    """Cancel what is queued, terminate the running workers and reap them (no orphans)."""
    # Python < 3.14 has no public terminate_workers(); _processes is the pool's pid -> Process
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join()


def _results_dask(args, chunks: list[list], workers: int | None,
                  scheduler: str | None) -> Iterator[list]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise WorkloadError("--executor dask", "executor", "needs dask.distributed: pip install "
                            "'systolic-sim[dask]' (or 'dask[distributed]')") from None
    cluster = None
    with ignored():  # the local cluster's worker processes are spawned ignoring Ctrl-C
        if scheduler:
            client = Client(scheduler)
        else:
            # silence_logs: dask's warnings (slow event loop, tasks cancelled by Ctrl-C, workers
            # killed on close) would break the one-line output; errors still show
            from .pool import pool_size
            rows = sum(len(chunk) for chunk in chunks)
            cluster = LocalCluster(n_workers=pool_size(workers, rows), threads_per_worker=1,
                                   processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
    # a Ctrl-C that lands while the client waits on its event loop makes tornado log the
    # cancelled wait as an ERROR with a traceback (distributed.utils.sync); task errors still
    # reach us through fut.result(), so that logger is quiet while the sweep runs
    tornado_log = logging.getLogger("tornado.application")
    level = tornado_log.level
    tornado_log.setLevel(logging.CRITICAL)
    try:
        futures = client.map(_evaluate_chunk, *([a] * len(chunks) for a in args), chunks,
                             pure=False)
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        finally:
            tornado_log.setLevel(level)


def run_sweep(sweep: Sweep, out: str | Path, executor: str = "process", workers: int | None = None,
              scheduler: str | None = None, progress: bool = False,
              on_row: Callable[[], None] | None = None,
              on_wait: Callable[[str], None] | None = None) -> tuple[int, int]:
    """Evaluate the rows missing from ``out`` and append them as they finish, holding the
    file's lock: if another sweep holds it, call ``on_wait`` with one line and wait for it.

    Returns (rows written now, rows already present). Raises WorkloadError on a bad executor or
    an output file that belongs to another sweep, Interrupted on Ctrl-C (rows written so far
    are complete; a re-run resumes).
    """
    if executor not in EXECUTORS:
        raise WorkloadError("--executor", "executor", f"must be one of {', '.join(EXECUTORS)}, "
                            f"got {executor!r}")
    from .pool import check_workers
    check_workers(workers)
    with exclusive(out, "--out", wait=True, on_wait=on_wait):
        return _append_missing(sweep, Path(out), executor, workers, scheduler, progress, on_row)


def _append_missing(sweep: Sweep, out: Path, executor: str, workers: int | None,
                    scheduler: str | None, progress: bool,
                    on_row: Callable[[], None] | None) -> tuple[int, int]:
    done = _prepare_output(sweep, out)
    todo = [(pi, wi, sweep.points[pi]) for pi in range(len(sweep.points))
            for wi in range(len(sweep.workloads))
            if (pi, sweep.workloads[wi]["name"]) not in done]
    if not todo:
        return 0, len(done)
    bar = progress_bar(len(todo), "rows", progress)
    args = (flatten(sweep.base), sweep.axes, sweep.workloads)
    chunks = list(_chunks(todo, CHUNK if executor != "serial" else 1))
    if executor == "serial":
        results = _results_serial(args, chunks)
    elif executor == "process":
        results = _results_process(args, chunks, workers)
    else:
        results = _results_dask(args, chunks, workers, scheduler)
    from .outputs import OutputError, os_error_text
    written = 0
    try:
        fd = os.open(out, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        results.close()
        raise OutputError(str(out), "out", f"cannot be written: {os_error_text(exc)}") from None
    try:
        for rows in results:
            data = "".join(_row_text(sweep, pi, wi, res) for pi, wi, res in rows).encode()
            view = memoryview(data)
            with deferred():  # Ctrl-C lands between rows, never inside one
                while view:  # appends only; a kill leaves at most a torn last line
                    view = view[os.write(fd, view):]
                written += len(rows)
            if bar is not None:
                bar.update(len(rows))
            if on_row is not None:
                on_row()
    except OSError as exc:  # a full disk mid-sweep: the rows written so far are complete
        raise OutputError(str(out), "out", f"cannot be written: {os_error_text(exc)} "
                          f"({len(done) + written} rows in the file; a re-run resumes)") from None
    except KeyboardInterrupt:
        total = len(sweep.points) * len(sweep.workloads)
        raise Interrupted(f"{written} rows written now, {len(done) + written} of {total} in "
                          f"{out}; run the same command again to resume") from None
    finally:
        results.close()  # a generator: closing it stops its workers at once
        os.close(fd)
        if bar is not None:
            bar.close()
    return written, len(done)
