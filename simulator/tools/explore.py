"""Design-space exploration: search a space of chips for the Pareto front of chosen objectives.

An explore file (YAML)::

    base: ../configs/edge-tpu.yaml           # relative to the explore file
    space:                                    # config keys and their values
      array.rows: {log_range: [8, 128, 2]}    # lo, hi (inclusive), factor: 8, 16, ..., 128
      array.cols: {log_range: [8, 128, 2]}
      array.dataflow: {choices: [os, ws, is]} # or a plain list
      clock_hz: {range: [2.0e8, 8.0e8, 2.0e8]}  # start, stop (inclusive), step
    rules:                                    # every point must satisfy them
      - array.cols == array.rows
    workloads:                                # as in a sweep, each with a weight (default 1)
      - model: mobilenet-v2
        weight: 1
      - llm: ../configs/models/llama-2-7b.yaml  # one decode (or prefill) step of an LLM
        phase: decode
        context: 2048
        weight: 256
    objectives: {latency_s: min, energy_j: min}
    constraints: [power_w <= 2]               # or area_mm2 <= 25, utilisation >= 0.3, power_w <= tdp
    search: {algorithm: nsga2, budget: 200, seed: 0}   # defaults for the command's flags

Objectives and constraint metrics, over the weighted workloads: ``latency_s`` (sum of weight x
time, s), ``throughput`` (1 / latency_s, weighted workload sets per s), ``energy_j`` (sum of
weight x energy, J), ``edp`` (energy_j x latency_s, J s), ``power_w`` (energy_j / latency_s, W),
``utilisation`` (time-weighted mean array utilisation, 0..1), ``area_mm2`` (the chip's die area,
mm2, from ``simulator.hardware.area``). ``tdp`` in a constraint is the base chip's power.tdp_w.

The search (Optuna: NSGA-II for several objectives, TPE for one, random; ``grid`` enumerates
the space in order) asks points in batches and tells the results in the order asked, so a seed
makes a search repeatable whatever the executor. Every evaluated point is appended to the
results file (JSON lines, one per point, one ``write`` each) as it finishes; re-running the same
search reads the file back, drops torn lines, and replays the search: points already in the file
are not evaluated again, so a search killed at any moment resumes to the same front. A results
file of another spec is refused, naming the first field that differs.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import math
import operator
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import ConfigError, Interrupted, WorkloadError
from ..io_limits import read_user_file
from ..hardware.config import _nest, _parse_yaml, flatten, load_config, validate_config
from .sweep import EXECUTORS, _axis_values, _parse_workload

__all__ = ["ALGORITHMS", "OBJECTIVES", "Explore", "ExploreResult", "explore", "load_explore",
           "pareto_front", "run_explore"]

ALGORITHMS = ("nsga2", "tpe", "random", "grid")
OBJECTIVES = ("latency_s", "throughput", "energy_j", "edp", "area_mm2", "power_w")
METRICS = OBJECTIVES + ("utilisation",)
_DIRECTIONS = {"min": "minimize", "minimise": "minimize", "minimize": "minimize",
               "max": "maximize", "maximise": "maximize", "maximize": "maximize"}
_SPACE_LIMIT = 1_000_000  # points enumerated to check rules (and for grid)


@dataclass(frozen=True)
class Explore:
    """A loaded explore spec: base config, space, rules, workloads, objectives, constraints."""

    path: Path
    base_raw: dict[str, Any]  # the base file's own keys (written into front YAMLs)
    base: dict[str, Any]  # the complete base config
    keys: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]  # each key's values, in order
    ordered: tuple[bool, ...]  # numeric keys: the sampler sees an index into the values
    rules: tuple[tuple[str, Any], ...]  # (text, parsed expression)
    workloads: tuple[dict[str, Any], ...]  # sweep workloads plus "weight"
    objectives: tuple[tuple[str, str], ...]  # (metric, "minimize" | "maximize")
    constraints: tuple[tuple[str, Any], ...]  # (text, parsed comparison)
    defaults: dict[str, Any] = field(default_factory=dict)  # search: algorithm, budget, seed

    @property
    def size(self) -> int:
        """Return the number of points of the space before the rules."""
        return math.prod(len(v) for v in self.values)

    def identity(self) -> dict[str, Any]:
        """Return what makes two specs the same search (the results file's header)."""
        return {"base": self.base, "space": dict(zip(self.keys, map(list, self.values))),
                "rules": [r for r, _ in self.rules],
                "workloads": list(self.workloads),
                "objectives": [list(o) for o in self.objectives],
                "constraints": [c for c, _ in self.constraints]}

    @property
    def needs_area(self) -> bool:
        """Return True when an objective or a constraint uses area_mm2."""
        return any(m == "area_mm2" for m, _ in self.objectives) or \
            any("area_mm2" in _names(e) for _, e in self.constraints)


# --------------------------------------------------------------------------- expressions

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge}


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def _parse_expr(text: Any, where: str, field_name: str, known: set[str]) -> ast.AST:
    """Parse a rule or constraint (arithmetic, comparisons, and/or/not over dotted names and
    numbers or strings); raise ConfigError naming an unknown name or an unsupported form."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(where, field_name, "must be an expression like 'array.cols == array.rows'")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ConfigError(where, field_name, f"cannot parse {text!r}") from None

    def check(node: ast.AST) -> None:
        name = _dotted(node)
        if name is not None:
            if name not in known:
                raise ConfigError(where, field_name, f"unknown name {name!r} in {text!r}")
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
            return
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            check(node.left), check(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
            check(node.operand)
        elif isinstance(node, ast.BoolOp):
            for v in node.values:
                check(v)
        elif isinstance(node, ast.Compare) and all(type(o) in _CMPOPS for o in node.ops):
            check(node.left)
            for c in node.comparators:
                check(c)
        else:
            raise ConfigError(where, field_name, f"unsupported expression {text!r} (use numbers, "
                              "names, + - * / // % **, comparisons, and, or, not)")
    check(tree)
    return tree


def _names(node: ast.AST) -> set[str]:
    name = _dotted(node)
    if name is not None:
        return {name}
    return set().union(*(_names(c) for c in ast.iter_child_nodes(node))) \
        if list(ast.iter_child_nodes(node)) else set()


def _eval(node: ast.AST, env: dict[str, Any]) -> Any:
    name = _dotted(node)
    if name is not None:
        return env[name]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_eval(node.left, env), _eval(node.right, env))
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, env)
        return (not v) if isinstance(node.op, ast.Not) else (-v if isinstance(node.op, ast.USub)
                                                             else +v)
    if isinstance(node, ast.BoolOp):
        vals = (_eval(v, env) for v in node.values)
        return all(vals) if isinstance(node.op, ast.And) else any(vals)
    left = _eval(node.left, env)
    for op, comp in zip(node.ops, node.comparators):
        right = _eval(comp, env)
        if not _CMPOPS[type(op)](left, right):
            return False
        left = right
    return True


def _violation(node: ast.AST, env: dict[str, Any]) -> float:
    """Return how far a constraint ``A op B`` is from holding, relative to |B| (0 when met)."""
    try:
        if _eval(node, env):
            return 0.0
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            a, b = float(_eval(node.left, env)), float(_eval(node.comparators[0], env))
            return abs(a - b) / (abs(b) or 1.0)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        pass
    return 1.0


# --------------------------------------------------------------------------- loading

def _space_values(spec: Any, where: str, key: str) -> tuple[list[Any], bool]:
    """Return a key's values and whether they are ordered numbers (range, log_range, numbers)."""
    if isinstance(spec, dict) and set(spec) == {"choices"}:
        spec = spec["choices"]
        if not isinstance(spec, list):
            raise ConfigError(where, key, "choices must be a list of values")
    if isinstance(spec, dict) and set(spec) == {"log_range"}:
        r = spec["log_range"]
        if not (isinstance(r, list) and len(r) == 3 and all(isinstance(v, (int, float)) and
                                                            not isinstance(v, bool) for v in r)):
            raise ConfigError(where, key, "log_range must be [low, high, factor] numbers")
        lo, hi, factor = r
        if lo <= 0 or factor <= 1 or hi < lo:
            raise ConfigError(where, key, f"log_range needs 0 < low <= high and factor > 1, got {r}")
        vals, v = [], lo
        while v <= hi * (1 + 1e-12) and len(vals) <= 10_000:
            vals.append(v)
            v = v * factor
        return vals, True
    if isinstance(spec, dict) and set(spec) != {"range"}:
        raise ConfigError(where, key, "must be a list, {choices: [...]}, {range: [start, stop, "
                          "step]} or {log_range: [low, high, factor]}")
    vals = _axis_values(spec, where, key)
    if len(set(map(json.dumps, vals))) != len(vals):
        raise ConfigError(where, key, "lists a value twice")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
    return vals, numeric and vals == sorted(vals)


def load_explore(path: str | Path) -> Explore:
    """Read and check an explore file; return the Explore. Raises ConfigError (FILE:LINE: ...)."""
    path = Path(path)
    text = read_user_file(path, ConfigError, "an explore YAML file")
    data, lines = _parse_yaml(text, str(path))

    def where(key: str) -> str:
        return f"{path}:{lines.get(key, 1)}"
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1", "(top level)", "must be a mapping with base, space, "
                          "workloads, objectives")
    known_top = ("base", "space", "rules", "workloads", "objectives", "constraints", "search")
    unknown = set(data) - set(known_top)
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise ConfigError(where(key), key, f"unknown key (known: {', '.join(known_top)})")
    if "base" not in data or not isinstance(data["base"], str):
        raise ConfigError(where("base"), "base", "must name the base chip config file")
    base_path = (path.parent / data["base"]).resolve()
    try:
        base = load_config(base_path)
        base_raw, _ = _parse_yaml(read_user_file(base_path, ConfigError, "a YAML file"),
                                  str(base_path))
    except ConfigError as exc:
        raise ConfigError(where("base"), "base", str(exc)) from None
    base_flat = flatten(base)
    space = data.get("space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(where("space"), "space", "must map config keys to their values")
    keys, values, ordered = [], [], []
    for key, spec in space.items():
        w = where(f"space.{key}")
        if key not in base_flat:
            raise ConfigError(w, f"space.{key}", "unknown config key (systolic-sim keys lists "
                              "them)")
        vals, is_ordered = _space_values(spec, w, f"space.{key}")
        for v in vals:  # each value alone must be valid on the base chip
            flat = {p: (val, w) for p, val in base_flat.items()}
            flat[key] = (v, w)
            validate_config({}, {}, w, flat)
        keys.append(key)
        values.append(tuple(vals))
        ordered.append(is_ordered)
    names = set(base_flat)
    rules = []
    for i, rule in enumerate(data.get("rules") or []):
        rules.append((rule, _parse_expr(rule, where(f"rules[{i}]"), f"rules[{i}]", names)))
    raw_w = data.get("workloads")
    if not isinstance(raw_w, list) or not raw_w:
        raise ConfigError(where("workloads"), "workloads", "must list at least one workload")
    workloads = []
    for i, item in enumerate(raw_w):
        w = where(f"workloads[{i}]")
        weight = 1.0
        if isinstance(item, dict) and "weight" in item:
            item = dict(item)
            weight = item.pop("weight")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or \
                    not weight > 0 or not math.isfinite(weight):
                raise ConfigError(w, f"workloads[{i}].weight", f"must be a positive number, got "
                                  f"{weight!r}")
        wl = _parse_workload(item, w, path.parent, i)
        if any(x["name"] == wl["name"] for x in workloads):
            raise ConfigError(w, f"workloads[{i}]", f"duplicate workload name {wl['name']!r}; "
                              "give it a distinct name:")
        workloads.append({**wl, "weight": float(weight)})
    objectives_raw = data.get("objectives")
    if isinstance(objectives_raw, list):  # [latency_s, energy_j]: minimise each
        objectives_raw = {o: "min" for o in objectives_raw}
    if not isinstance(objectives_raw, dict) or not objectives_raw:
        raise ConfigError(where("objectives"), "objectives", f"must map objectives "
                          f"({', '.join(OBJECTIVES)}) to min or max")
    objectives = []
    for name, direction in objectives_raw.items():
        w = where(f"objectives.{name}")
        if name not in OBJECTIVES:
            raise ConfigError(w, f"objectives.{name}", f"unknown objective (known: "
                              f"{', '.join(OBJECTIVES)})")
        if direction not in _DIRECTIONS:
            raise ConfigError(w, f"objectives.{name}", f"must be min or max, got {direction!r}")
        objectives.append((name, _DIRECTIONS[direction]))
    constraints = []
    cnames = set(METRICS) | names | {"tdp"}
    for i, c in enumerate(data.get("constraints") or []):
        w = where(f"constraints[{i}]")
        node = _parse_expr(c, w, f"constraints[{i}]", cnames)
        if not (isinstance(node, ast.Compare) and len(node.ops) == 1):
            raise ConfigError(w, f"constraints[{i}]", f"must be one comparison like 'power_w <= "
                              f"2', got {c!r}")
        if "tdp" in _names(node) and not base["power"]["tdp_w"]:
            raise ConfigError(w, f"constraints[{i}]", "names tdp but the base chip states no "
                              "power.tdp_w")
        constraints.append((c, node))
    search = data.get("search") or {}
    if not isinstance(search, dict) or set(search) - {"algorithm", "budget", "seed", "time_s"}:
        raise ConfigError(where("search"), "search", "may hold algorithm, budget, seed, time_s")
    spec = Explore(path, base_raw if isinstance(base_raw, dict) else {}, base, tuple(keys),
                   tuple(values), tuple(ordered), tuple(rules), tuple(workloads),
                   tuple(objectives), tuple(constraints), dict(search))
    if rules and spec.size <= _SPACE_LIMIT and not any(True for _ in _valid_points(spec)):
        raise ConfigError(where("rules"), "rules", f"no point of the space ({spec.size:,}) "
                          "satisfies them")
    return spec


def _env(spec: Explore, point: Sequence[Any]) -> dict[str, Any]:
    env = flatten(spec.base)
    env.update(zip(spec.keys, point))
    return env


def _satisfies(spec: Explore, point: Sequence[Any]) -> bool:
    if not spec.rules:
        return True
    env = _env(spec, point)
    try:
        return all(bool(_eval(node, env)) for _, node in spec.rules)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return False


def _valid_points(spec: Explore) -> Iterable[tuple[Any, ...]]:
    return (p for p in itertools.product(*spec.values) if _satisfies(spec, p))


def digest(spec: Explore) -> str:
    """Return the spec's identity as a short hash."""
    return hashlib.sha256(json.dumps(spec.identity(), sort_keys=True, default=str)
                          .encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- evaluation

def _aggregate(spec: Explore, point: Sequence[Any], results: Sequence[dict[str, Any]]
               ) -> dict[str, Any]:
    """Combine one point's per-workload results into its record (metrics, violations)."""
    errors = [f"{w['name']}: {r['error']}" for w, r in zip(spec.workloads, results)
              if r["status"] != "ok"]
    rec: dict[str, Any] = {"point": list(point)}
    if errors:
        return {**rec, "status": "error", "error": "; ".join(errors)}
    latency_s = sum(w["weight"] * r["time_s"] for w, r in zip(spec.workloads, results))
    energy_j = sum(w["weight"] * r["energy_pj"] * 1e-12 for w, r in zip(spec.workloads, results))
    util = sum(w["weight"] * r["time_s"] * r["utilisation"]
               for w, r in zip(spec.workloads, results)) / latency_s if latency_s else 0.0
    m = {"latency_s": latency_s, "throughput": 1.0 / latency_s if latency_s else math.inf,
         "energy_j": energy_j, "edp": energy_j * latency_s,
         "power_w": energy_j / latency_s if latency_s else 0.0, "utilisation": util}
    if spec.needs_area:
        try:
            from ..hardware.area import chip_area_mm2
        except ImportError:
            raise WorkloadError(str(spec.path), "area_mm2", "area model not available") from None
        from ..hardware.chip import chip_from_config
        chip = chip_from_config(_config(spec, point))
        m["area_mm2"] = float(chip_area_mm2(chip))
    return {**rec, "status": "ok", "error": "", "metrics": m}


def _config(spec: Explore, point: Sequence[Any]) -> dict[str, Any]:
    flat = {p: (v, "explore") for p, v in flatten(spec.base).items()}
    flat.update({k: (v, "explore") for k, v in zip(spec.keys, point)})
    return validate_config({}, {}, "explore", flat)


def _violations(spec: Explore, metrics: dict[str, Any], point: Sequence[Any]) -> list[float]:
    env = _env(spec, point)
    env.update(metrics)
    env["tdp"] = spec.base["power"]["tdp_w"]
    return [_violation(node, env) for _, node in spec.constraints]


class _ProcessPool:
    """One local process pool for a whole search (the sweep's executor starts a pool per call,
    which a search would pay once per batch); workers leave Ctrl-C to this process and die
    with it, as a sweep's do."""

    def __init__(self, workers: int | None):
        self.workers = workers
        self.pool = None

    def results(self, args, chunks: list[list]) -> Iterable[list]:
        """Yield each chunk's rows (sweep._evaluate_chunk) as it finishes."""
        import concurrent.futures as cf
        import multiprocessing as mp
        from . import sweep as sw
        from .interrupt import start_workers
        from .pool import parent_death_initializer, pool_size
        with start_workers():  # workers start on submit: they must inherit the blocked Ctrl-C
            if self.pool is None:
                ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
                self.pool = cf.ProcessPoolExecutor(
                    max_workers=pool_size(self.workers, 1 << 30), mp_context=ctx,
                    initializer=parent_death_initializer, initargs=(os.getpid(),))
            futures = [self.pool.submit(sw._evaluate_chunk, *args, c) for c in chunks]
        try:
            for fut in cf.as_completed(futures):
                yield fut.result()
        except BaseException:  # Ctrl-C, an error, or the reader stopped: stop the workers now
            self.close(stop=True)
            raise

    def close(self, stop: bool = False) -> None:
        """Shut the pool down (``stop``: terminate its workers at once)."""
        if self.pool is not None:
            from . import sweep as sw
            if stop:
                sw._stop_pool(self.pool)
            else:
                self.pool.shutdown()
            self.pool = None


class _DaskPool:
    """One Dask client for a whole search: a local cluster of ``workers`` processes (one thread
    each), or the scheduler at ``scheduler``; the sweep's executor starts a cluster per call,
    which a search would pay once per batch."""

    def __init__(self, workers: int | None, scheduler: str | None):
        self.workers = workers
        self.scheduler = scheduler
        self.client = None
        self.cluster = None

    def _start(self) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise WorkloadError("--executor dask", "executor", "needs dask.distributed: pip "
                                "install 'systolic-sim[dask]' (or 'dask[distributed]')") from None
        import logging
        from .interrupt import ignored
        from .pool import pool_size
        with ignored():  # the local cluster's workers are spawned ignoring Ctrl-C
            if self.scheduler:
                self.client = Client(self.scheduler)
            else:
                self.cluster = LocalCluster(n_workers=pool_size(self.workers, 1 << 30),
                                            threads_per_worker=1, processes=True,
                                            dashboard_address=None, silence_logs=logging.ERROR)
                self.client = Client(self.cluster)

    def results(self, args, chunks: list[list]) -> Iterable[list]:
        """Yield each chunk's rows (sweep._evaluate_chunk) as it finishes."""
        import logging
        from dask.distributed import as_completed
        from . import sweep as sw
        if self.client is None:
            self._start()
        tornado_log = logging.getLogger("tornado.application")  # as the sweep's dask executor
        level = tornado_log.level
        tornado_log.setLevel(logging.CRITICAL)
        futures = self.client.map(sw._evaluate_chunk, *([a] * len(chunks) for a in args),
                                  chunks, pure=False)
        try:
            for fut in as_completed(futures):
                yield fut.result()
        except BaseException:  # Ctrl-C, an error, or the reader stopped: drop the rest
            self.client.cancel(futures)
            raise
        finally:
            tornado_log.setLevel(level)

    def close(self, stop: bool = False) -> None:
        """Close the client and the local cluster (``stop`` is accepted for symmetry with
        _ProcessPool: closing the cluster stops its workers either way)."""
        try:
            if self.client is not None:
                self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        finally:
            self.client = self.cluster = None


def _evaluate_points(spec: Explore, points: list[tuple[Any, ...]], executor: str,
                     workers: int | None, scheduler: str | None,
                     pool: _ProcessPool | _DaskPool | None = None
                     ) -> Iterable[tuple[int, dict[str, Any]]]:
    """Evaluate points (each on every workload) on a sweep executor (``pool``, when given, for
    the process or dask executor); yield (index, record) as each point's last workload
    finishes."""
    from . import sweep as sw
    args = (flatten(spec.base), spec.keys, spec.workloads)
    items = [(pi, wi, p) for pi, p in enumerate(points) for wi in range(len(spec.workloads))]
    chunk = 1 if executor == "serial" else max(1, min(sw.CHUNK, len(items) // 8 or 1))
    chunks = list(sw._chunks(items, chunk))
    if executor == "serial":
        results = sw._results_serial(args, chunks)
    elif executor == "process":
        results = pool.results(args, chunks) if pool is not None else \
            sw._results_process(args, chunks, workers)
    else:
        results = pool.results(args, chunks) if pool is not None else \
            sw._results_dask(args, chunks, workers, scheduler)
    got: dict[int, dict[int, dict[str, Any]]] = {}
    try:
        for rows in results:
            for pi, wi, res in rows:
                got.setdefault(pi, {})[wi] = res
                if len(got[pi]) == len(spec.workloads):
                    yield pi, _aggregate(spec, points[pi],
                                         [got[pi][i] for i in range(len(spec.workloads))])
    finally:
        results.close()


# --------------------------------------------------------------------------- Pareto

def pareto_front(values: Sequence[Sequence[float]], maximise: Sequence[bool] | None = None
                 ) -> list[int]:
    """Return the indices (ascending) of the rows of ``values`` that no other row dominates.

    A row dominates another when it is no worse in every column and better in one; columns are
    minimised unless ``maximise`` marks them. Equal rows do not dominate each other (both stay).
    """
    import numpy as np
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return []
    v = v.reshape(len(v), -1)
    if maximise is not None:
        v = np.where(np.asarray(maximise, dtype=bool), -v, v)
    keep = []
    for i in range(len(v)):
        le = np.all(v <= v[i], axis=1)
        lt = np.any(v < v[i], axis=1)
        if not np.any(le & lt):
            keep.append(i)
    return keep


# --------------------------------------------------------------------------- results file

def _header(spec: Explore, algorithm: str, seed: int, batch: int) -> dict[str, Any]:
    return {"explore": digest(spec), "algorithm": algorithm, "seed": seed, "batch": batch,
            **spec.identity()}


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k, "<absent>") != b.get(k, "<absent>"):
                return _first_difference(a.get(k, "<absent>"), b.get(k, "<absent>"),
                                         f"{path}.{k}" if path else str(k))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path or '(spec)'} is {json.dumps(a, default=str)[:80]} there, "\
           f"{json.dumps(b, default=str)[:80]} here"


def _read_results(out: Path, header: dict[str, Any], spec: Explore) -> dict[str, dict[str, Any]]:
    """Create the results file, or read it back: refuse another spec's file naming the first
    difference; drop torn or malformed lines (rewriting the file whole when any was); return
    {point key: record}."""
    from .outputs import OutputError, os_error_text, write_output
    head = json.dumps(header, sort_keys=True, default=str) + "\n"
    try:
        raw = out.read_bytes() if out.exists() else b""
    except OSError as exc:
        raise OutputError(str(out), "out", f"cannot be read: {os_error_text(exc)}") from None
    if not raw:
        write_output(out, "--out", head)
        return {}
    text = raw[:raw.rfind(b"\n") + 1].decode("utf-8", errors="replace")
    lines = text.splitlines(keepends=True)
    try:
        theirs = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        theirs = None
    if not isinstance(theirs, dict) or "explore" not in theirs:
        raise WorkloadError(str(out), "--out", "is not an explore results file; choose another "
                            "file")
    mine = json.loads(head)
    if theirs != mine:
        raise WorkloadError(str(out), "--out", "holds results of a different search: "
                            f"{_first_difference(theirs, mine)}; choose another file")
    done: dict[str, dict[str, Any]] = {}
    kept = [lines[0]]
    for line in lines[1:]:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not _valid_record(rec, spec):
            continue
        key = _key(rec["point"])
        if key not in done:
            done[key] = rec
            kept.append(line)
    if sum(map(len, kept)) != len(raw.decode("utf-8", errors="replace")):
        write_output(out, "--out", "".join(kept))
    return done


def _valid_record(rec: Any, spec: Explore) -> bool:
    if not isinstance(rec, dict) or rec.get("status") not in ("ok", "error") or \
            not isinstance(rec.get("point"), list) or len(rec["point"]) != len(spec.keys):
        return False
    if any(_key([v]) not in {_key([x]) for x in vals} for v, vals in zip(rec["point"],
                                                                         spec.values)):
        return False
    if rec["status"] == "ok":
        m = rec.get("metrics")
        if not isinstance(m, dict) or not all(isinstance(m.get(k), (int, float))
                                              for k in METRICS if k != "area_mm2"):
            return False
    return True


def _key(point: Sequence[Any]) -> str:
    return json.dumps(list(point), default=str)


# --------------------------------------------------------------------------- search

@dataclass
class ExploreResult:
    """A finished search: every evaluated point and the Pareto front, as plain rows."""

    spec: Explore
    points: list[dict[str, Any]]  # config keys, metrics, status, error, feasible, trial
    front: list[dict[str, Any]]
    importance: dict[str, dict[str, float]]  # objective -> {key: importance}
    evaluated_now: int
    evaluated_before: int
    study: Any = None


def _row(spec: Explore, rec: dict[str, Any], order: int) -> dict[str, Any]:
    row: dict[str, Any] = {"evaluation": order}
    row.update(zip(spec.keys, rec["point"]))
    row["status"] = rec["status"]
    row["error"] = rec.get("error", "")
    if rec["status"] == "ok":
        row.update(rec["metrics"])
        viol = _violations(spec, rec["metrics"], rec["point"])
        row["feasible"] = not any(viol)
        row["violation"] = sum(viol)
    else:
        row["feasible"] = False
        row["violation"] = math.inf
    return row


def _make_study(spec: Explore, algorithm: str, seed: int, batch: int):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    if algorithm == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=batch)
    elif algorithm == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                             n_startup_trials=max(10, batch))
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    return optuna.create_study(directions=[d for _, d in spec.objectives], sampler=sampler)


def _distributions(spec: Explore):
    import optuna.distributions as od
    return {k: (od.IntDistribution(0, len(v) - 1) if o else od.CategoricalDistribution(v))
            for k, v, o in zip(spec.keys, spec.values, spec.ordered)}


def _suggest(spec: Explore, trial) -> tuple[Any, ...]:
    point = []
    for k, vals, ordered in zip(spec.keys, spec.values, spec.ordered):
        if ordered:
            point.append(vals[trial.suggest_int(k, 0, len(vals) - 1)])
        else:
            point.append(trial.suggest_categorical(k, list(vals)))
    return tuple(point)


def _params(spec: Explore, point: Sequence[Any]) -> dict[str, Any]:
    return {k: (vals.index(v) if o else v)
            for k, v, vals, o in zip(spec.keys, point, spec.values, spec.ordered)}


def _objective_values(spec: Explore, rec: dict[str, Any]) -> list[float]:
    return [float(rec["metrics"][m]) for m, _ in spec.objectives]


def default_batch(algorithm: str) -> int:
    """Return how many points a search asks at a time: NSGA-II's population, a small batch for
    TPE (it learns between batches), a large one for random and grid. It does not depend on the
    executor, so a search is the same search (and resumes) on any of them."""
    return {"nsga2": 24, "tpe": 8}.get(algorithm, 64)


def search(spec: Explore, algorithm: str, budget: int | None, seed: int, batch: int,
           evaluate: Callable[[list[tuple[Any, ...]]], Iterable[tuple[int, dict[str, Any]]]],
           known: dict[str, dict[str, Any]], time_s: float | None = None,
           on_record: Callable[[dict[str, Any]], None] | None = None,
           on_progress: Callable[[int, list[dict[str, Any]]], None] | None = None):
    """Run the search loop: ask ``batch`` points, evaluate those not in ``known`` with
    ``evaluate`` (calling ``on_record`` on each new record), tell every result in the order
    asked. Stops after ``budget`` distinct points (or the whole space), or ``time_s`` seconds.
    Returns (study, records in evaluation order, evaluated now)."""
    import optuna
    from optuna.trial import TrialState
    study = _make_study(spec, algorithm, seed, batch)
    dists = _distributions(spec)
    seen: dict[str, dict[str, Any]] = {}
    order: list[dict[str, Any]] = []
    now = 0
    start = time.monotonic()
    valid_total = None
    if spec.size <= _SPACE_LIMIT:
        valid_total = sum(1 for _ in _valid_points(spec))
    limit = min(budget if budget is not None else math.inf,
                valid_total if valid_total is not None else math.inf)
    grid = _valid_points(spec) if algorithm == "grid" else None
    asks = 0
    max_asks = (budget or 10_000) * 50 + 1000

    def tell(trial, rec):
        if rec["status"] != "ok":
            study.tell(trial, state=TrialState.FAIL)
            return
        for i, v in enumerate(_violations(spec, rec["metrics"], rec["point"])):
            trial.set_constraint(f"c{i}", v)  # feasible when every value is <= 0
        study.tell(trial, _objective_values(spec, rec))

    while len(seen) < limit and asks < max_asks:
        if time_s is not None and time.monotonic() - start >= time_s:
            break
        want = int(min(batch, limit - len(seen)))
        asked: list[tuple[Any, tuple[Any, ...]]] = []  # (trial or None, point)
        if grid is not None:
            for p in itertools.islice(grid, want):
                asked.append((None, p))
            if not asked:
                break
        else:
            fresh: set[str] = set()
            while len(fresh) < want and asks < max_asks:
                trial = study.ask(dists)
                asks += 1
                p = _suggest(spec, trial)
                if not _satisfies(spec, p):
                    study.tell(trial, state=TrialState.FAIL)
                    continue
                asked.append((trial, p))
                if _key(p) not in seen:
                    fresh.add(_key(p))
        new = []
        for _, p in asked:
            k = _key(p)
            if k not in seen and k not in known and p not in new:
                new.append(p)
        for i, rec in evaluate(new) if new else ():
            known[_key(new[i])] = rec
            now += 1
            if on_record is not None:
                on_record(rec)
        for trial, p in asked:
            rec = known[_key(p)]
            if _key(p) not in seen:
                seen[_key(p)] = rec
                order.append(rec)
            if trial is None:
                if rec["status"] == "ok":
                    study.add_trial(optuna.trial.create_trial(
                        params=_params(spec, p), distributions=dists,
                        values=_objective_values(spec, rec),
                        constraints={f"c{i}": v for i, v in
                                     enumerate(_violations(spec, rec["metrics"], p))}))
            else:
                tell(trial, rec)
        if on_progress is not None:
            on_progress(len(seen), order)
    return study, order, now


def _importance(spec: Explore, study) -> dict[str, dict[str, float]]:
    """Return each objective's knob importances (Optuna's PED-ANOVA evaluator), or {} when too
    few points completed or the space has one knob."""
    import optuna
    from optuna.trial import TrialState
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 8 or len(spec.keys) < 1:
        return {}
    out = {}
    for i, (name, direction) in enumerate(spec.objectives):
        sign = -1.0 if direction == "maximize" else 1.0  # the evaluator looks for low targets
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imp = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                    target=lambda t, i=i, sign=sign: sign * t.values[i])
        except (RuntimeError, ValueError, ZeroDivisionError):
            continue
        out[name] = {k: float(v) for k, v in imp.items()}
    return out


def run_explore(spec: Explore, out: str | Path, algorithm: str | None = None,
                budget: int | None = None, seed: int | None = None, time_s: float | None = None,
                executor: str = "serial", workers: int | None = None,
                scheduler: str | None = None, batch: int | None = None, progress: bool = False,
                on_wait: Callable[[str], None] | None = None) -> ExploreResult:
    """Search ``spec``, streaming every evaluation to ``out`` (resumable); return the result.

    ``algorithm`` (nsga2, tpe, random, grid; default: the spec's, else NSGA-II for several
    objectives and TPE for one), ``budget`` (distinct points evaluated), ``seed``, ``time_s``
    (seconds of search) default to the spec's ``search`` section. Raises WorkloadError (bad
    argument, a results file of another search, no feasible point), Interrupted on Ctrl-C.
    """
    d = spec.defaults
    algorithm = algorithm or d.get("algorithm") or ("nsga2" if len(spec.objectives) > 1
                                                    else "tpe")
    if algorithm not in ALGORITHMS:
        raise WorkloadError("--algorithm", "algorithm", f"must be one of {', '.join(ALGORITHMS)}, "
                            f"got {algorithm!r}")
    budget = budget if budget is not None else d.get("budget")
    if budget is None and time_s is None and d.get("time_s") is None and algorithm != "grid":
        raise WorkloadError("--budget", "budget", "give --budget N or --time S (or search.budget "
                            "in the spec)")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                               or budget < 1):
        raise WorkloadError(f"--budget {budget}", "budget", "must be a positive integer")
    time_s = time_s if time_s is not None else d.get("time_s")
    if time_s is not None and not (isinstance(time_s, (int, float)) and time_s > 0):
        raise WorkloadError(f"--time {time_s}", "time", "must be a positive number of seconds")
    seed = int(seed if seed is not None else d.get("seed", 0))
    if executor not in EXECUTORS:
        raise WorkloadError("--executor", "executor", f"must be one of {', '.join(EXECUTORS)}, "
                            f"got {executor!r}")
    from .pool import check_workers
    check_workers(workers)
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise WorkloadError("explore", "algorithm", "needs optuna: pip install "
                            "'systolic-sim[explore]' (or 'optuna>=5')") from None
    if spec.needs_area:
        try:
            from ..hardware.area import chip_area_mm2  # noqa: F401
        except ImportError:
            raise WorkloadError(str(spec.path), "area_mm2", "area model not available") from None
    batch = batch or default_batch(algorithm)
    header = _header(spec, algorithm, seed, batch)
    from .locking import exclusive
    from .outputs import OutputError, os_error_text
    out = Path(out)
    with exclusive(out, "--out", wait=True, on_wait=on_wait):
        known = _read_results(out, header, spec)
        before = len(known)
        try:
            fd = os.open(out, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise OutputError(str(out), "out", f"cannot be written: {os_error_text(exc)}") from None
        bar = _Progress(spec, budget, progress)
        written = 0

        def on_record(rec: dict[str, Any]) -> None:
            nonlocal written
            from .interrupt import deferred
            view = memoryview((json.dumps(rec, default=str) + "\n").encode())
            try:
                with deferred():  # Ctrl-C lands between records, never inside one
                    while view:
                        view = view[os.write(fd, view):]
            except OSError as exc:
                raise OutputError(str(out), "out", f"cannot be written: {os_error_text(exc)} "
                                  "(a re-run resumes)") from None
            written += 1

        pool = _ProcessPool(workers) if executor == "process" else \
            _DaskPool(workers, scheduler) if executor == "dask" else None

        def evaluate(points):
            return _evaluate_points(spec, points, executor, workers, scheduler, pool)
        try:
            study, order, now = search(spec, algorithm, budget, seed, batch, evaluate, known,
                                       time_s, on_record, bar.update)
        except KeyboardInterrupt:
            raise Interrupted(f"{written} points evaluated now, {before + written} in {out}; run "
                              "the same command again to resume") from None
        finally:
            if pool is not None:
                pool.close()
            os.close(fd)
            bar.close()
    rows = [_row(spec, rec, i) for i, rec in enumerate(order)]
    front = front_rows(spec, rows)
    imp = _importance(spec, study) if algorithm != "grid" or len(rows) >= 8 else {}
    return ExploreResult(spec, rows, front, imp, now, before, study)


def front_rows(spec: Explore, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the feasible rows no other feasible row dominates on the spec's objectives."""
    feas = [r for r in rows if r["status"] == "ok" and r["feasible"]]
    idx = pareto_front([[r[m] for m, _ in spec.objectives] for r in feas],
                       [d == "maximize" for _, d in spec.objectives])
    return [feas[i] for i in idx]


class _Progress:
    """A tqdm bar over distinct points evaluated, with the current best and the front's size."""

    def __init__(self, spec: Explore, budget: int | None, enabled: bool):
        from .progress import progress_bar
        self.spec = spec
        self.bar = progress_bar(budget or 0, "chips", enabled)
        self.n = 0

    def update(self, n: int, order: list[dict[str, Any]]) -> None:
        if self.bar is None:
            return
        self.bar.update(n - self.n)
        self.n = n
        rows = [_row(self.spec, r, i) for i, r in enumerate(order)]
        front = front_rows(self.spec, rows)
        name, direction = self.spec.objectives[0]
        best = [r[name] for r in front]
        if best:
            b = min(best) if direction == "minimize" else max(best)
            self.bar.set_postfix_str(f"best {name} {b:.4g}, front {len(front)}")
        else:
            self.bar.set_postfix_str("no feasible point yet")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_feasible(result: ExploreResult, out: str | Path) -> None:
    """Raise WorkloadError when no evaluated point meets the constraints, naming the closest."""
    if result.front:
        return
    spec = result.spec
    ok = sorted((r for r in result.points if r["status"] == "ok"), key=lambda r: r["violation"])
    if not ok:
        first = next((r["error"] for r in result.points if r["error"]), "no point evaluated")
        raise WorkloadError(str(out), "explore", f"no point evaluated without an error (first "
                            f"error: {first})")
    closest = "; ".join(
        ", ".join(f"{k}={r[k]}" for k in spec.keys) + " (" +
        ", ".join(f"{c}: {_describe(node, r, spec)}" for c, node in spec.constraints) + ")"
        for r in ok[:3])
    raise WorkloadError(str(out), "constraints", f"no evaluated point ({len(result.points)}) "
                        f"meets them; closest: {closest}")


def _describe(node: ast.AST, row: dict[str, Any], spec: Explore) -> str:
    env = _env(spec, [row[k] for k in spec.keys])
    env.update({k: row[k] for k in METRICS if k in row})
    env["tdp"] = spec.base["power"]["tdp_w"]
    try:
        return f"{float(_eval(node.left, env)):.4g}"
    except (TypeError, ValueError, KeyError):
        return "?"


# --------------------------------------------------------------------------- outputs

def front_config(spec: Explore, row: dict[str, Any]) -> dict[str, Any]:
    """Return the nested YAML config of a front row: the base file's keys plus the point's."""
    flat = flatten(spec.base_raw)
    flat.update({k: row[k] for k in spec.keys})
    cfg = _nest(flat)
    return cfg


def write_front(spec: Explore, front: list[dict[str, Any]], folder: str | Path) -> list[Path]:
    """Write each front chip as a YAML that ``systolic-sim run`` takes; return the paths."""
    import yaml
    from .outputs import make_folder, write_output
    folder = make_folder(folder, "--front")
    paths = []
    base_name = spec.base.get("name", "chip")
    for i, row in enumerate(front):
        cfg = front_config(spec, row)
        cfg["name"] = f"{base_name}-explore-{i}"
        objectives = ", ".join(f"{m} {row[m]!r}" for m, _ in spec.objectives)
        text = (f"# Pareto-optimal chip {i} of {spec.path.name}: {objectives}\n"
                + yaml.safe_dump(cfg, sort_keys=False))
        paths.append(write_output(folder / f"chip-{i}.yaml", "--front", text))
    return paths


def table(spec: Explore, rows: list[dict[str, Any]]) -> str:
    """Return the rows as a text table: the knobs, then the objectives and constraint metrics."""
    cols = list(spec.keys) + [m for m, _ in spec.objectives]
    cols += [m for m in METRICS if m not in cols and any(m in r for r in rows)
             and any(m in _names(n) for _, n in spec.constraints)]
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(x[i]) for x in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(x.rjust(w) for x, w in zip(line, widths)) for line in cells]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def pareto_figure(spec: Explore, rows: list[dict[str, Any]], front: list[dict[str, Any]]):
    """Return a matplotlib Figure: the objectives of every point, feasible and infeasible
    distinguished, the front highlighted; 2-D for two objectives, a pair matrix for more."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [m for m, _ in spec.objectives]
    ok = [r for r in rows if r["status"] == "ok"]
    feas = [r for r in ok if r["feasible"]]
    infeas = [r for r in ok if not r["feasible"]]
    n = len(names)
    if n == 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        for group, style in ((infeas, dict(c="0.7", marker="x", label="infeasible")),
                             (feas, dict(c="tab:blue", marker="o", s=12, label="feasible"))):
            ax.scatter([r["evaluation"] for r in group], [r[names[0]] for r in group], **style)
        ax.scatter([r["evaluation"] for r in front], [r[names[0]] for r in front], c="tab:red",
                   marker="*", s=80, label="best")
        ax.set_xlabel("evaluation")
        ax.set_ylabel(names[0])
        ax.legend()
        return fig
    pairs = [(0, 1)] if n == 2 else None
    if pairs:
        fig, ax = plt.subplots(figsize=(6.5, 5))
        axes = {(0, 1): ax}
    else:
        fig, grid = plt.subplots(n, n, figsize=(3.2 * n, 3.2 * n), squeeze=False)
        axes = {}
        for i in range(n):
            for j in range(n):
                if i == j:
                    grid[i][j].text(0.5, 0.5, names[i], ha="center", va="center",
                                    transform=grid[i][j].transAxes)
                    grid[i][j].set_xticks([])
                    grid[i][j].set_yticks([])
                else:
                    axes[(j, i)] = grid[i][j]
    for (x, y), ax in axes.items():
        ax.scatter([r[names[x]] for r in infeas], [r[names[y]] for r in infeas], c="0.7",
                   marker="x", s=14, label="infeasible")
        ax.scatter([r[names[x]] for r in feas], [r[names[y]] for r in feas], c="tab:blue",
                   s=10, alpha=0.6, label="feasible")
        fr = sorted(front, key=lambda r: r[names[x]])
        ax.plot([r[names[x]] for r in fr], [r[names[y]] for r in fr], "-*" if n == 2 else "*",
                c="tab:red", ms=9, label="Pareto front")  # a line only where it is the front
        ax.set_xlabel(names[x])
        ax.set_ylabel(names[y])
        for v, setter in ((names[x], ax.set_xscale), (names[y], ax.set_yscale)):
            vals = [r[v] for r in ok if r[v] > 0]
            if vals and max(vals) / min(vals) > 100:
                setter("log")
    next(iter(axes.values())).legend(fontsize=8)
    fig.suptitle(f"{spec.path.name}: {len(ok)} chips, {len(front)} on the front")
    fig.tight_layout()
    return fig


def explore(spec: str | Path | Explore, out: str | Path, algorithm: str | None = None,
            budget: int | None = None, seed: int | None = None, time_s: float | None = None,
            executor: str = "serial", workers: int | None = None,
            scheduler: str | None = None) -> dict[str, Any]:
    """Search a spec (a path or a loaded Explore), streaming evaluations to ``out`` (resumable).

    Returns plain rows: ``{"front": [...], "points": [...], "importance": {objective: {key:
    share}}}``; each row holds the config keys, the metrics (latency_s, throughput, energy_j,
    edp, power_w, utilisation, area_mm2 when asked for), status, error and feasible.
    """
    spec = spec if isinstance(spec, Explore) else load_explore(spec)
    res = run_explore(spec, out, algorithm, budget, seed, time_s, executor, workers, scheduler)
    return {"front": res.front, "points": res.points, "importance": res.importance}
