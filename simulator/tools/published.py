"""Published measurements of real chips held against the simulator (``calibrate --published``).

Each YAML file under ``calibration/published/`` is a list of records, one per published figure:
its citation, the hardware and workload as published, the measured ``value`` and ``unit``, and a
``sim`` mapping that says how the simulator reproduces it (a shipped chip config, overrides, a
workload the simulator has, and the metric that converts the run into the published unit).
``evaluate`` runs every record (one simulation per distinct ``sim`` mapping, GEMM costs cached),
``summarise`` gives per-family median and max |log(ours / measured)|, and ``fit_splits`` fits at
most three named parameters per chip family on a training split and reports the held-out error
over seeded random splits.

Fitting re-times each record from its own run's time breakdown instead of re-running it: at the
nominal config a run's time T0 splits into compute (array and vector unit), memory stalls, per-op
launch overhead and the rest (links, pipeline bubbles); with clock scale c, achievable bandwidth
fraction b and launch overhead o per op the record takes ``T = T_compute / c + T_memory / b +
n_ops * o + T_rest`` (a first-order model: it ignores that a slower memory can hide under compute
in the engine's overlap). Time-like metrics (latency, cycles) scale with T, rates (samples/s,
tokens/s, TOPS) with 1 / T; power records are not fitted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import yaml

from ..errors import WorkloadError

__all__ = ["FIT_PARAMS", "METRICS", "Record", "evaluate", "fit_splits", "load_records",
           "log_ratio_stats", "plot_published", "summarise"]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = "calibration/published"

# metric -> (accepted units, how the metric depends on run time: +1 ~ T, -1 ~ 1/T, 0 not fitted)
METRICS: dict[str, tuple[tuple[str, ...], int]] = {
    "samples_per_s": (("samples/s", "inferences/s"), -1),
    "latency_ms": (("ms",), +1),
    "cycles": (("cycles",), +1),
    "tops": (("TOPS",), -1),
    "watts": (("W",), 0),
    "watts_without_dram": (("W",), 0),
    "output_tokens_per_s": (("tokens/s",), -1),
    "output_tokens_per_s_per_chip": (("tokens/s/chip",), -1),
    "ttft_ms": (("ms",), +1),
}
KINDS = ("zoo", "gemms", "llm")
REQUIRED = ("family", "citation", "url", "hardware", "accelerators", "workload", "precision",
            "value", "unit", "sim")
OPTIONAL = ("id", "scenario", "batch_or_note", "round", "software")
SIM_REQUIRED = ("config", "run", "metric", "mapping")
SIM_OPTIONAL = ("set", "scale")
RUN_KEYS = {"zoo": ({"model"}, {"batch", "seq", "image", "cfg"}),
            "gemms": ({"gemms"}, {"batch"}),
            "llm": ({"model", "batch", "prompt", "generate"}, {"tp", "pp"})}
# Fitted parameters: name -> (start, lower bound, upper bound). clock_scale: clock under load
# over the config's clock_hz; bandwidth_fraction: achievable DRAM bandwidth over the config's;
# launch_s: overhead per op launch in seconds (start: the config's overhead.launch_s).
FIT_PARAMS = {"clock_scale": (1.0, 0.3, 1.2), "bandwidth_fraction": (1.0, 0.05, 1.0),
              "launch_s": (None, 0.0, 1e-3)}


@dataclass
class Record:
    """One published figure and how the simulator maps onto it."""

    data: dict[str, Any]
    where: str  # FILE:LINE of the record's first key

    @property
    def family(self) -> str:
        """Return the chip family (e.g. "H100")."""
        return str(self.data["family"])

    @property
    def value(self) -> float:
        """Return the measured value in the record's unit."""
        return float(self.data["value"])

    @property
    def label(self) -> str:
        """Return a short name: the record's id, else its workload and unit."""
        return str(self.data.get("id") or f"{self.data['workload']} [{self.data['unit']}]")

    @property
    def sim(self) -> dict[str, Any]:
        """Return the record's ``sim`` mapping."""
        return self.data["sim"]


# --------------------------------------------------------------------------- loading

def _node_to_python(node: yaml.Node, lines: dict[int, dict[str, int]]) -> Any:
    """Return the Python value of a YAML node; record each mapping's key lines in ``lines``
    (keyed by id of the returned dict)."""
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        keylines: dict[str, int] = {"": node.start_mark.line + 1}
        for k, v in node.value:
            key = str(k.value)
            out[key] = _node_to_python(v, lines)
            keylines[key] = k.start_mark.line + 1
        lines[id(out)] = keylines
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_node_to_python(v, lines) for v in node.value]
    return yaml.SafeLoader.construct_object(_CONSTRUCTOR, node, deep=True)


class _Constructor(yaml.SafeLoader):
    """A SafeLoader used only to construct scalars."""

    def __init__(self):  # no stream
        yaml.SafeLoader.__init__(self, "")


_CONSTRUCTOR = _Constructor()


def _fail(path: Path, line: int, fld: str, msg: str) -> WorkloadError:
    return WorkloadError(f"{path}:{line}", fld, msg)


def _positive_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _check_record(rec: dict, path: Path, lines: dict[int, dict[str, int]], i: int) -> None:
    """Raise WorkloadError (FILE:LINE: FIELD: message) unless record ``rec`` is well formed."""
    kl = lines.get(id(rec), {"": 0})
    at = kl[""]
    for key in rec:
        if key not in REQUIRED and key not in OPTIONAL:
            raise _fail(path, kl.get(key, at), key, f"unknown record key (known: "
                        f"{', '.join(REQUIRED + OPTIONAL)})")
    for key in REQUIRED:
        if key not in rec:
            raise _fail(path, at, key, f"record {i} has no {key!r}")
    for key in ("family", "citation", "url", "hardware", "workload", "precision", "unit"):
        if not isinstance(rec[key], str) or not rec[key].strip():
            raise _fail(path, kl[key], key, "must be a non-empty string")
    if not _positive_number(rec["value"]):
        raise _fail(path, kl["value"], "value", f"must be a positive number, got {rec['value']!r}")
    if not isinstance(rec["accelerators"], int) or rec["accelerators"] < 1:
        raise _fail(path, kl["accelerators"], "accelerators", "must be a positive integer")
    sim = rec["sim"]
    if not isinstance(sim, dict):
        raise _fail(path, kl["sim"], "sim", "must be a mapping")
    sl = lines.get(id(sim), {"": kl["sim"]})
    for key in sim:
        if key not in SIM_REQUIRED and key not in SIM_OPTIONAL:
            raise _fail(path, sl.get(key, sl[""]), f"sim.{key}", "unknown key (known: "
                        f"{', '.join(SIM_REQUIRED + SIM_OPTIONAL)})")
    for key in SIM_REQUIRED:
        if key not in sim:
            raise _fail(path, sl[""], f"sim.{key}", "missing")
    if not (REPO_ROOT / str(sim["config"])).is_file():
        raise _fail(path, sl["config"], "sim.config", f"no such chip config {sim['config']!r}")
    if sim["metric"] not in METRICS:
        raise _fail(path, sl["metric"], "sim.metric", f"unknown metric {sim['metric']!r} "
                    f"(known: {', '.join(METRICS)})")
    units = METRICS[sim["metric"]][0]
    if rec["unit"] not in units:
        raise _fail(path, kl["unit"], "unit", f"{rec['unit']!r} does not match sim.metric "
                    f"{sim['metric']} (expected {' or '.join(units)})")
    if "scale" in sim and not _positive_number(sim["scale"]):
        raise _fail(path, sl["scale"], "sim.scale", "must be a positive number")
    if "set" in sim and not isinstance(sim["set"], dict):
        raise _fail(path, sl["set"], "sim.set", "must be a mapping of config keys to values")
    if not isinstance(sim["mapping"], str) or not sim["mapping"].strip():
        raise _fail(path, sl["mapping"], "sim.mapping", "must say in words how the record maps")
    run = sim["run"]
    if not isinstance(run, dict) or run.get("kind") not in KINDS:
        raise _fail(path, sl["run"], "sim.run.kind", f"must be one of {', '.join(KINDS)}")
    rl = lines.get(id(run), {"": sl["run"]})
    need, may = RUN_KEYS[run["kind"]]
    for key in need:
        if key not in run:
            raise _fail(path, rl[""], f"sim.run.{key}", f"missing (a {run['kind']} run needs "
                        f"{', '.join(sorted(need))})")
    for key in run:
        if key != "kind" and key not in need and key not in may:
            raise _fail(path, rl.get(key, rl[""]), f"sim.run.{key}", f"unknown key for a "
                        f"{run['kind']} run (known: {', '.join(sorted(need | may))})")
    for key in ("batch", "seq", "image", "prompt", "generate", "tp", "pp"):
        if key in run and (not isinstance(run[key], int) or isinstance(run[key], bool)
                           or run[key] < 1):
            raise _fail(path, rl[key], f"sim.run.{key}", "must be a positive integer")
    if run["kind"] == "gemms":
        _check_gemms(run["gemms"], path, rl["gemms"])
    if run["kind"] == "llm" and not (REPO_ROOT / str(run["model"])).is_file():
        raise _fail(path, rl["model"], "sim.run.model", f"no such model file {run['model']!r}")


def _check_gemms(gemms: Any, path: Path, line: int) -> None:
    """Raise unless ``gemms`` is a list of {shape: MxNxK, count: n}."""
    if not isinstance(gemms, list) or not gemms:
        raise _fail(path, line, "sim.run.gemms", "must be a non-empty list of {shape, count}")
    for g in gemms:
        if not isinstance(g, dict) or set(g) - {"shape", "count"} or "shape" not in g:
            raise _fail(path, line, "sim.run.gemms", "each entry is {shape: MxNxK, count: n}")
        parts = str(g["shape"]).split("x")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise _fail(path, line, "sim.run.gemms", f"bad shape {g['shape']!r} (MxNxK)")
        if not isinstance(g.get("count", 1), int) or g.get("count", 1) < 1:
            raise _fail(path, line, "sim.run.gemms", "count must be a positive integer")


def load_file(path: str | Path) -> list[Record]:
    """Return the records of one YAML file; raise WorkloadError (FILE:LINE: FIELD: ...) on a
    malformed file or record."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise WorkloadError(str(path), "", f"cannot read ({exc.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise _fail(path, line, "yaml", str(getattr(exc, "problem", exc))) from None
    if node is None:
        raise _fail(path, 1, "records", "empty file (expected a list of records)")
    lines: dict[int, dict[str, int]] = {}
    data = _node_to_python(node, lines)
    if not isinstance(data, list):
        raise _fail(path, node.start_mark.line + 1, "records", "expected a list of records")
    out = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise _fail(path, node.value[i].start_mark.line + 1, "records",
                        f"record {i} is not a mapping")
        _check_record(rec, path, lines, i)
        out.append(Record(rec, f"{path}:{lines[id(rec)]['']}"))
    return out


def load_records(directory: str | Path = DEFAULT_DIR) -> list[Record]:
    """Return the records of every ``*.yaml`` file in ``directory`` (sorted by file name)."""
    d = Path(directory)
    if not d.is_dir():
        raise WorkloadError(str(directory), "--published", "no such directory")
    files = sorted(d.glob("*.yaml"))
    if not files:
        raise WorkloadError(str(directory), "--published", "no *.yaml record files")
    return [r for f in files for r in load_file(f)]


# --------------------------------------------------------------------------- running

@dataclass
class Outcome:
    """What one simulation gives a record: the predicted value and its time breakdown (s)."""

    metric_value: float
    compute_s: float
    memory_s: float
    overhead_s: float
    rest_s: float
    n_launch: float
    launch_s: float  # the config's overhead.launch_s
    extra: dict[str, Any] = field(default_factory=dict)


def _chip(sim: dict[str, Any]):
    from ..hardware.chip import load_chip
    return load_chip(str(REPO_ROOT / sim["config"]), dict(sim.get("set") or {}),
                     {k: f"record sim.set.{k}" for k in (sim.get("set") or {})})


def _report_outcome(chip, rep, batch: int) -> dict[str, float]:
    """Return the quantities of an engine Report: time split (s), samples/s, TOPS, W, cycles."""
    t = rep.totals()
    clock = chip.clock_hz
    time_s = t["time_s"]
    memory_s = t["stall_cycles"] / clock
    overhead_s = t["overhead_cycles"] / clock
    return {"time_s": time_s, "compute_s": time_s - memory_s - overhead_s, "memory_s": memory_s,
            "overhead_s": overhead_s, "rest_s": 0.0, "n_launch": float(len(rep.ops)),
            "samples_per_s": batch / time_s, "latency_ms": time_s * 1e3,
            "cycles": float(t["total_cycles"]), "tops": t["achieved_ops_per_s"] / 1e12,
            "watts": float(t["average_power_w"] or 0.0),
            "watts_without_dram": (t["energy_pj"].get("total", 0.0)
                                   - t["energy_pj"].get("dram", 0.0)) * 1e-12 / time_s}


def _run_zoo(chip, run: dict[str, Any]) -> dict[str, float]:
    from ..core.engine import run as run_program
    from simulator.kernels.zoo import build_zoo
    cfg = None
    if run.get("cfg"):
        from simulator.kernels import transformer
        base = {"bert-base": transformer.BERT_BASE, "gpt2-small": transformer.GPT2_SMALL,
                "vit-b16": transformer.VIT_B16}.get(run["model"])
        if base is None:
            raise WorkloadError(f"zoo:{run['model']}", "sim.run.cfg", "hyperparameter "
                                "overrides apply to bert-base, gpt2-small and vit-b16 only")
        cfg = dict(base, **run["cfg"])
    model = build_zoo(run["model"], run.get("batch"), run.get("seq"), run.get("image"), cfg)
    rep = run_program(chip, model.program)
    return _report_outcome(chip, rep, model.sizes["batch"])


def _run_gemms(chip, run: dict[str, Any], cache: dict) -> dict[str, float]:
    """Return the outcome of a list of GEMMs run one after another (each shape's cost cached)."""
    from ..core.engine import simulate_gemm
    parts = []
    for g in run["gemms"]:
        m, n, k = (int(x) for x in str(g["shape"]).split("x"))
        key = (json.dumps(chip.to_dict(), sort_keys=True, default=str), (m, n, k))
        if key not in cache:
            cache[key] = _report_outcome(chip, simulate_gemm(chip, shape=(m, n, k)), 1)
        parts.append((cache[key], int(g.get("count", 1))))
    out = {k: sum(p[k] * c for p, c in parts) for k in ("time_s", "compute_s", "memory_s",
                                                        "overhead_s", "n_launch", "cycles")}
    energy_j = sum(p["watts"] * p["time_s"] * c for p, c in parts)
    die_j = sum(p["watts_without_dram"] * p["time_s"] * c for p, c in parts)
    ops = sum(p["tops"] * 1e12 * p["time_s"] * c for p, c in parts)
    batch = run.get("batch", 1)
    out.update(rest_s=0.0, samples_per_s=batch / out["time_s"], latency_ms=out["time_s"] * 1e3,
               tops=ops / out["time_s"] / 1e12, watts=energy_j / out["time_s"],
               watts_without_dram=die_j / out["time_s"])
    return out


def _run_llm(chip, run: dict[str, Any]) -> dict[str, float]:
    from ..llm.inference import simulate_inference
    from ..llm.model import load_model
    model = load_model(str(REPO_ROOT / run["model"]))
    tp, pp = run.get("tp", 1), run.get("pp", 1)
    res = simulate_inference(chip, model, run["batch"], run["prompt"], run["generate"], tp, pp)
    d = res.to_dict()
    br = {k: d["prefill"]["breakdown_s"].get(k, 0.0) + d["decode"]["breakdown_s"].get(k, 0.0)
          for k in set(d["prefill"]["breakdown_s"]) | set(d["decode"]["breakdown_s"])}
    time_s = d["totals"]["time_s"]
    compute = br.get("array", 0.0) + br.get("vector", 0.0)
    memory = br.get("memory", 0.0)
    overhead = br.get("overhead", 0.0)
    tokens = d["totals"]["tokens_generated"]
    return {"time_s": time_s, "compute_s": compute, "memory_s": memory, "overhead_s": overhead,
            "rest_s": max(0.0, time_s - compute - memory - overhead),
            "n_launch": overhead / chip.launch_s if chip.launch_s > 0 else 0.0,
            "output_tokens_per_s": tokens / time_s,
            "output_tokens_per_s_per_chip": tokens / time_s / (tp * pp),
            "ttft_ms": d["prefill"]["time_s"] * 1e3}


def simulate_record(rec: Record, cache: dict) -> Outcome:
    """Run a record's ``sim`` mapping (or reuse the run of an identical mapping in ``cache``)
    and return its Outcome in the record's unit."""
    sim = rec.sim
    key = json.dumps({k: sim[k] for k in ("config", "set", "run") if k in sim}, sort_keys=True)
    if key not in cache:
        chip = _chip(sim)
        run = sim["run"]
        if run["kind"] == "zoo":
            res = _run_zoo(chip, run)
        elif run["kind"] == "gemms":
            res = _run_gemms(chip, run, cache.setdefault("__gemm__", {}))
        else:
            res = _run_llm(chip, run)
        res["launch_s"] = chip.launch_s
        cache[key] = res
    res = cache[key]
    metric = sim["metric"]
    if metric not in res:
        raise WorkloadError(rec.where, "sim.metric", f"a {sim['run']['kind']} run does not give "
                            f"{metric}")
    scale = float(sim.get("scale", 1.0))
    return Outcome(res[metric] * scale, res["compute_s"], res["memory_s"], res["overhead_s"],
                   res["rest_s"], res["n_launch"], res["launch_s"])


def evaluate(records: Sequence[Record], on_record: Callable[[], None] | None = None
             ) -> tuple[list[dict[str, Any]], list[Outcome]]:
    """Run every record; return (rows, outcomes). A row: family, label, where, unit, measured,
    ours, ratio (ours / measured) and log_ratio (natural log)."""
    from ..errors import SimulatorInputError
    cache: dict = {}
    rows, outs = [], []
    for rec in records:
        try:
            out = simulate_record(rec, cache)
        except SimulatorInputError as exc:  # name the record as well as the file at fault
            raise WorkloadError(rec.where, "sim", f"{rec.label}: {exc}") from None
        ratio = out.metric_value / rec.value
        rows.append({"family": rec.family, "label": rec.label, "where": rec.where,
                     "metric": rec.sim["metric"], "unit": rec.data["unit"],
                     "measured": rec.value, "ours": out.metric_value, "ratio": ratio,
                     "log_ratio": math.log(ratio)})
        outs.append(out)
        if on_record is not None:
            on_record()
    return rows, outs


# --------------------------------------------------------------------------- statistics

def log_ratio_stats(log_ratios: Sequence[float]) -> dict[str, float]:
    """Return {records, median_abs_log_ratio, max_abs_log_ratio, geomean_ratio} of natural-log
    ratios ours / measured."""
    a = np.abs(np.asarray(log_ratios, dtype=float))
    if a.size == 0:
        return {"records": 0, "median_abs_log_ratio": float("nan"),
                "max_abs_log_ratio": float("nan"), "geomean_ratio": float("nan")}
    return {"records": int(a.size), "median_abs_log_ratio": float(np.median(a)),
            "max_abs_log_ratio": float(a.max()),
            "geomean_ratio": float(math.exp(float(np.mean(log_ratios))))}


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Return {"all": stats, "families": {family: stats}} of the rows' log ratios."""
    fams: dict[str, list[float]] = {}
    for r in rows:
        fams.setdefault(r["family"], []).append(r["log_ratio"])
    return {"all": log_ratio_stats([r["log_ratio"] for r in rows]),
            "families": {f: log_ratio_stats(v) for f, v in sorted(fams.items())}}


# --------------------------------------------------------------------------- fitting

def refit_value(out: Outcome, metric: str, base_value: float, params: dict[str, float]) -> float:
    """Return the record's predicted value with ``params`` (clock_scale, bandwidth_fraction,
    launch_s) applied to its time breakdown; power metrics are returned unchanged."""
    sign = METRICS[metric][1]
    if sign == 0:
        return base_value
    t0 = out.compute_s + out.memory_s + out.overhead_s + out.rest_s
    t = (out.compute_s / params["clock_scale"] + out.memory_s / params["bandwidth_fraction"]
         + out.n_launch * params["launch_s"] + out.rest_s)
    return base_value * (t / t0) ** sign


def fit_family(outs: Sequence[Outcome], metrics: Sequence[str], base: Sequence[float],
               measured: Sequence[float], launch0: float) -> dict[str, float]:
    """Fit clock_scale, bandwidth_fraction and launch_s to the given (training) records only;
    return the fitted parameters (start values when no record is time-like)."""
    from scipy.optimize import least_squares
    idx = [i for i, m in enumerate(metrics) if METRICS[m][1] != 0]
    start = {"clock_scale": 1.0, "bandwidth_fraction": 1.0, "launch_s": launch0}
    if not idx:
        return start
    names = list(FIT_PARAMS)
    lo = np.array([FIT_PARAMS[n][1] for n in names])
    hi = np.array([FIT_PARAMS[n][2] for n in names])
    x0 = np.clip(np.array([start[n] for n in names]), lo, hi)
    scale = np.array([1.0, 1.0, 1e-5])  # launch_s in units of 10 us

    def resid(x: np.ndarray) -> np.ndarray:
        p = dict(zip(names, x * scale))
        return np.array([math.log(refit_value(outs[i], metrics[i], base[i], p) / measured[i])
                         for i in idx])
    sol = least_squares(resid, x0 / scale, bounds=(lo / scale, hi / scale), diff_step=1e-4,
                        loss="soft_l1", f_scale=0.05)
    return {n: float(v) for n, v in zip(names, sol.x * scale)}


def split_indices(families: Sequence[str], holdout: float, seed: int) -> set[int]:
    """Return the held-out record indices of one seeded split: per family, round(holdout x n)
    records (at least one and at most n - 1 where a family has two or more)."""
    rng = np.random.default_rng(seed)
    held: set[int] = set()
    for fam in sorted(set(families)):
        idx = [i for i, f in enumerate(families) if f == fam]
        if len(idx) < 2:
            continue
        n = min(len(idx) - 1, max(1, int(round(holdout * len(idx)))))
        held.update(int(i) for i in rng.permutation(idx)[:n])
    return held


def fit_splits(rows: Sequence[dict[str, Any]], outs: Sequence[Outcome], seeds: Sequence[int],
               holdout: float = 0.3) -> dict[str, Any]:
    """Fit per family on each seed's training split; return per split the fitted parameters and
    the held-out rows' |log ratio| stats, and over all splits the median and max of the
    held-out median and max |log ratio| (time-like records only; power is not fitted)."""
    fams = [r["family"] for r in rows]
    timed = [i for i, r in enumerate(rows) if METRICS[r["metric"]][1] != 0]
    splits = []
    for seed in seeds:
        held = split_indices([fams[i] for i in timed], holdout, seed)
        held = {timed[j] for j in held}
        params, held_rows = {}, []
        for fam in sorted(set(fams)):
            train = [i for i in timed if fams[i] == fam and i not in held]
            if not train:
                continue
            p = fit_family([outs[i] for i in train], [rows[i]["metric"] for i in train],
                           [rows[i]["ours"] for i in train], [rows[i]["measured"] for i in train],
                           outs[train[0]].launch_s)
            params[fam] = p
            for i in sorted(held):
                if fams[i] == fam:
                    v = refit_value(outs[i], rows[i]["metric"], rows[i]["ours"], p)
                    held_rows.append({"index": i, "family": fam, "label": rows[i]["label"],
                                      "measured": rows[i]["measured"], "ours_fitted": v,
                                      "log_ratio": math.log(v / rows[i]["measured"])})
        splits.append({"seed": seed, "params": params, "holdout_rows": held_rows,
                       "holdout": summarise(held_rows)})
    med = [s["holdout"]["all"]["median_abs_log_ratio"] for s in splits]
    mx = [s["holdout"]["all"]["max_abs_log_ratio"] for s in splits]
    return {"seeds": list(seeds), "holdout_fraction": holdout, "splits": splits,
            "holdout_median_abs_log_ratio": {"median": float(np.median(med)),
                                             "max": float(np.max(med))},
            "holdout_max_abs_log_ratio": {"median": float(np.median(mx)),
                                          "max": float(np.max(mx))}}


# --------------------------------------------------------------------------- plotting

def plot_published(rows: Sequence[dict[str, Any]], title: str):
    """Return a Figure of ours vs measured, log-log, one colour per family (each record's
    value in its own unit: the axes span units, the diagonal is ours = measured)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.add_subplot()
    from .calibrate import parity_axes
    vals = [r[k] for r in rows for k in ("measured", "ours")]
    parity_axes(ax, min(vals) / 3, max(vals) * 3, "ours = measured (dotted: x0.5, x2)",
                (0.5, 2.0), "measured (record's unit)", "ours (same unit)")
    for n, fam in enumerate(sorted({r["family"] for r in rows})):
        rs = [r for r in rows if r["family"] == fam]
        ax.scatter([r["measured"] for r in rs], [r["ours"] for r in rs], color=f"C{n}", s=22,
                   alpha=0.85, label=f"{fam} ({len(rs)})")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return fig
