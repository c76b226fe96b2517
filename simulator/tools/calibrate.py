"""Calibration: time kernels on real hardware, fit a chip config's free parameters to the
measurements, and report the prediction error on held-out points (DESIGN section 6).

``measure`` times the kernel references of ``simulator.kernels.reference`` through an array module
(numpy on the host, CuPy on a GPU) over a grid of shapes from launch-bound to compute-bound and
bandwidth-bound, and records provenance (device, driver and library versions, clocks as read,
host, date, threads). ``fit`` splits the points into a training and a held-out set, fits the
free parameters on the training set only with ``scipy.optimize.least_squares`` (residuals are
log(predicted / measured)), and reports each held-out point's predicted and measured time with
the median and 90th-percentile absolute percentage error.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .backend import get_xp, synchronize
from ..hardware.chip import Chip
from ..errors import Interrupted, WorkloadError
from .locking import exclusive, write_atomic

__all__ = ["DEFAULT_FREE", "FitResult", "fit", "fit_spread", "measure", "predict_point",
           "load_measurements"]

KERNELS = ("gemm", "linear-train", "mlp-train")
DTYPES = ("fp32", "fp16", "bf16")
# Free parameters fitted by default: (dotted key, lower bound, upper bound).
DEFAULT_FREE = ("clock_hz", "dram.bandwidth_bytes_per_s", "overhead.launch_s")
_BOUNDS = {"clock_hz": (1e7, 1e11), "dram.bandwidth_bytes_per_s": (1e8, 1e14),
           "overhead.launch_s": (1e-9, 1e-2)}

GEMM_GRID_CPU = [(s, s, s) for s in (8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536,
                                     2048)] + [
    (4096, 4096, 8), (4096, 8, 4096), (8, 4096, 4096), (2048, 2048, 32), (32, 2048, 2048),
    (1024, 256, 4096), (256, 1024, 2048), (3000, 100, 500), (100, 3000, 500), (500, 500, 3000),
    (1000, 1000, 64), (64, 1000, 1000), (2000, 16, 2000), (640, 480, 320), (1200, 1200, 300)]
GEMM_GRID_GPU = [(s, s, s) for s in (64, 128, 256, 512, 1024, 2048, 3072, 4096, 6144, 8192,
                                     12288, 16384)] + [
    (16384, 16384, 64), (16384, 64, 16384), (64, 16384, 16384), (8192, 8192, 128),
    (4096, 1024, 16384), (1024, 4096, 8192), (12000, 300, 5000), (300, 12000, 5000),
    (5000, 5000, 20000), (10000, 10000, 256), (256, 10000, 10000), (20000, 64, 20000),
    (6400, 4800, 3200), (12000, 12000, 3000)]
TRAIN_BATCHES = (16, 64, 256, 1024, 4096, 16384, 65536)


# --------------------------------------------------------------------------- measuring

def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_mhz() -> list[float]:
    try:
        return [float(line.split(":", 1)[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("cpu MHz")]
    except OSError:
        return []


def _gpu_provenance(xp) -> dict[str, Any]:
    import subprocess
    props = xp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    info = {"device": name, "driver_version": xp.cuda.runtime.driverGetVersion(),
            "cuda_runtime_version": xp.cuda.runtime.runtimeGetVersion(),
            "cupy": xp.__version__, "sm_count": props.get("multiProcessorCount"),
            "memory_bytes": props.get("totalGlobalMem")}
    try:  # clocks as read, never changed
        q = "name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.limit"
        out = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["nvidia_smi"] = "unavailable"
    return info


def _provenance(backend: str, xp, threads: int | None) -> dict[str, Any]:
    import ml_dtypes
    import numba
    prov: dict[str, Any] = {
        "backend": backend, "host": platform.node(), "platform": platform.platform(),
        "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
        "ml_dtypes": ml_dtypes.__version__,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "cpu_mhz_as_read": _cpu_mhz(),
    }
    if backend == "cupy":
        prov.update(_gpu_provenance(xp))
    else:
        prov["device"] = _cpu_name()
        try:
            import threadpoolctl
            prov["blas"] = [{k: v for k, v in lib.items() if k in ("internal_api", "version",
                                                                   "num_threads", "architecture")}
                            for lib in threadpoolctl.threadpool_info()]
        except ImportError:
            prov["blas"] = "threadpoolctl not installed: BLAS threads not recorded"
        prov["threads_pinned_to"] = threads
    return prov


def _time_host(fn: Callable[[], Any], min_total_s: float, max_repeats: int) -> list[float]:
    for _ in range(2):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < 5 or time.perf_counter() - start < min_total_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _time_gpu(xp, fn: Callable[[], Any], max_repeats: int) -> list[float]:
    from cupyx.profiler import benchmark
    res = benchmark(fn, n_repeat=max_repeats, n_warmup=3)
    return [float(t) for t in np.asarray(res.gpu_times).reshape(-1)]


def _summary(times: Sequence[float]) -> dict[str, Any]:
    arr = np.sort(np.asarray(times))
    return {"median_s": float(np.median(arr)), "p10_s": float(np.percentile(arr, 10)),
            "p90_s": float(np.percentile(arr, 90)), "min_s": float(arr[0]), "repeats": len(arr)}


def _xp_dtype(xp, dtype: str):
    if dtype == "fp32":
        return xp.float32
    if dtype == "fp16":
        return xp.float16
    import ml_dtypes
    return ml_dtypes.bfloat16 if xp.__name__ == "numpy" else None


def measure(backend: str, kernels: Sequence[str], dtypes: Sequence[str], out: str | Path,
            threads: int | None = None, quick: bool = False,
            log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time the kernels on ``backend`` and write the measurements with provenance to ``out``.

    Returns the written dict. ``quick`` uses a short grid (for tests). Raises WorkloadError on
    an unknown kernel or dtype or a missing backend, or at once if another process holds the
    lock of ``out`` (two measurements at once would time each other's load); Interrupted on
    Ctrl-C, leaving ``out`` as it was.
    """
    with exclusive(out, "--out", wait=False):
        return _measure(backend, kernels, dtypes, out, threads, quick, log)


def _measure(backend: str, kernels: Sequence[str], dtypes: Sequence[str], out: str | Path,
             threads: int | None, quick: bool, log: Callable[[str], None] | None) -> dict[str, Any]:
    from simulator.kernels import reference
    for k in kernels:
        if k not in KERNELS:
            raise WorkloadError("--kernels", "kernels", f"unknown kernel {k!r} (known: "
                                f"{', '.join(KERNELS)})")
    for d in dtypes:
        if d not in DTYPES:
            raise WorkloadError("--dtypes", "dtypes", f"unknown dtype {d!r} (known: "
                                f"{', '.join(DTYPES)})")
    xp = get_xp(backend)
    gpu = backend == "cupy"
    limiter = None
    if not gpu:
        try:
            import threadpoolctl
            threads = threads or os.cpu_count()
            limiter = threadpoolctl.threadpool_limits(limits=threads)
        except ImportError:
            threads = None
    prov = _provenance(backend, xp, threads)
    points = []
    rng = np.random.default_rng(0)
    grid = GEMM_GRID_GPU if gpu else GEMM_GRID_CPU
    if quick:
        grid = grid[:4] + grid[-3:]
    batches = TRAIN_BATCHES[:3] if quick else TRAIN_BATCHES

    def timed(fn):
        if gpu:
            return _time_gpu(xp, fn, 10 if quick else 30)
        return _time_host(fn, 0.02 if quick else 0.25, 20 if quick else 200)
    try:
        for dtype in dtypes:
            xdt = _xp_dtype(xp, dtype)
            if xdt is None:
                if log:
                    log(f"skip {dtype}: not available on {backend}")
                continue
            if "gemm" in kernels:
                for m, n, k in grid:
                    a = xp.asarray(rng.standard_normal((m, k)).astype(np.float32)).astype(xdt)
                    b = xp.asarray(rng.standard_normal((k, n)).astype(np.float32)).astype(xdt)

                    def fn(a=a, b=b):
                        r = reference.gemm(xp, a, b)
                        synchronize(xp)
                        return r
                    points.append({"kernel": "gemm", "dtype": dtype, "shape": [m, n, k],
                                   **_summary(timed(fn))})
                    if log:
                        log(f"gemm {dtype} {m}x{n}x{k}: {points[-1]['median_s'] * 1e3:.4g} ms")
            for kernel, model in (("linear-train", (10, 1)), ("mlp-train", (10, 32, 1))):
                if kernel not in kernels or dtype != "fp32":
                    continue  # training steps run in fp32, as the seed's PyTorch loop does
                for batch in batches:
                    x = xp.asarray(rng.standard_normal((batch, model[0])).astype(np.float32))
                    t = xp.asarray(rng.standard_normal((batch, model[-1])).astype(np.float32))
                    if kernel == "linear-train":
                        w = xp.asarray(rng.standard_normal(model).astype(np.float32))
                        bias = xp.zeros((1, model[1]), xp.float32)

                        def fn(x=x, t=t, w=w, bias=bias):
                            r = reference.linear_step(xp, x, t, w, bias, 0.01)
                            synchronize(xp)
                            return r
                    else:
                        w1 = xp.asarray(rng.standard_normal(model[:2]).astype(np.float32))
                        w2 = xp.asarray(rng.standard_normal(model[1:]).astype(np.float32))
                        b1 = xp.zeros((1, model[1]), xp.float32)
                        b2 = xp.zeros((1, model[2]), xp.float32)

                        def fn(x=x, t=t, w1=w1, b1=b1, w2=w2, b2=b2):
                            r = reference.mlp_step(xp, x, t, w1, b1, w2, b2, 0.01)
                            synchronize(xp)
                            return r
                    points.append({"kernel": kernel, "dtype": "fp32",
                                   "model": ":".join(["linear" if kernel == "linear-train"
                                                      else "mlp", *map(str, model)]),
                                   "batch": batch, **_summary(timed(fn))})
                    if log:
                        log(f"{kernel} batch {batch}: {points[-1]['median_s'] * 1e6:.4g} us")
    except KeyboardInterrupt:
        raise Interrupted(f"{len(points)} points timed; {out} not written") from None
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    data = {"format": "systolic-sim calibration v1", "provenance": prov, "points": points}
    out = Path(out)
    from .outputs import make_folder
    make_folder(out.parent, "--out")
    write_atomic(out, json.dumps(data, indent=1) + "\n", "--out")
    return data


# --------------------------------------------------------------------------- fitting

def load_measurements(path: str | Path) -> dict[str, Any]:
    """Read a calibration JSON; raise WorkloadError if it is not one."""
    where = str(path)
    try:
        from ..io_limits import read_text
        data = json.loads(read_text(path, "json", WorkloadError, line=False))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkloadError(where, "", f"not JSON ({exc})") from None
    if not isinstance(data, dict) or "points" not in data or not data["points"]:
        raise WorkloadError(where, "points", "no measurements (expected a calibration file "
                            "written by `systolic-sim calibrate measure`)")
    for i, p in enumerate(data["points"]):
        if p.get("kernel") not in KERNELS or not (p.get("median_s", 0) > 0):
            raise WorkloadError(where, f"points[{i}]", "needs a known kernel and median_s > 0")
    return data


def predict_point(chip: Chip, point: dict[str, Any]) -> float:
    """Return the chip's predicted time in seconds for one measured point."""
    from simulator.kernels.train import parse_model

    from ..core.engine import run, simulate_gemm
    if point["dtype"] != chip.dtype:
        chip = chip.with_overrides({"dtype": point["dtype"]})
    if point["kernel"] == "gemm":
        rep = simulate_gemm(chip, shape=tuple(point["shape"]))
    else:
        rep = run(chip, parse_model(point["model"]).build_step(point["batch"], 0.01))
    return rep.time_s


@dataclass
class FitResult:
    """Fitted parameters and per-point predictions with their split."""

    params: dict[str, float]
    start: dict[str, float]
    rows: list[dict[str, Any]]  # kernel, label, split, measured_s, predicted_s, ape

    def errors(self, split: str) -> dict[str, float]:
        """Return median and p90 absolute percentage error (in %) of one split."""
        apes = [r["ape"] for r in self.rows if r["split"] == split]
        if not apes:
            return {"median_ape_pct": float("nan"), "p90_ape_pct": float("nan"), "points": 0}
        return {"median_ape_pct": float(np.median(apes)),
                "p90_ape_pct": float(np.percentile(apes, 90)), "points": len(apes)}

    def to_dict(self) -> dict[str, Any]:
        """Return fitted params, errors per split and every point, JSON-ready."""
        return {"params": self.params, "start": self.start, "train": self.errors("train"),
                "holdout": self.errors("holdout"), "points": self.rows}


def _label(p: dict[str, Any]) -> str:
    if p["kernel"] == "gemm":
        return f"gemm {p['dtype']} {'x'.join(map(str, p['shape']))}"
    return f"{p['kernel']} batch {p['batch']}"


def fit(chip: Chip, data: dict[str, Any], holdout: float = 0.3, seed: int = 0,
        free: Sequence[str] = DEFAULT_FREE, kernels: Sequence[str] | None = None) -> FitResult:
    """Fit ``free`` config keys of ``chip`` to the training split; return predictions for all.

    The split is a seeded random permutation: ``round(holdout * N)`` points are held out and
    never seen by the optimiser.
    """
    from scipy.optimize import least_squares
    points = [p for p in data["points"] if kernels is None or p["kernel"] in kernels]
    if len(points) < 4:
        raise WorkloadError("calibration data", "points", f"need at least 4 points, got {len(points)}")
    if not 0 <= holdout < 1:
        raise WorkloadError("--holdout", "holdout", f"must be in [0, 1), got {holdout}")
    for key in free:
        if key not in _BOUNDS:
            raise WorkloadError("--free", "free", f"cannot fit {key!r} (fittable: "
                                f"{', '.join(_BOUNDS)})")
    order = np.random.default_rng(seed).permutation(len(points))
    n_hold = int(round(holdout * len(points)))
    held = set(order[:n_hold].tolist())
    train = [p for i, p in enumerate(points) if i not in held]
    flat_start = {"clock_hz": chip.clock_hz,
                  "dram.bandwidth_bytes_per_s": chip.dram.bandwidth_bytes_per_s or 1e11,
                  "overhead.launch_s": chip.launch_s or 1e-6}
    start = {k: float(flat_start[k]) for k in free}
    lo = np.log([_BOUNDS[k][0] for k in free])
    hi = np.log([_BOUNDS[k][1] for k in free])
    x0 = np.clip(np.log([start[k] for k in free]), lo + 1e-9, hi - 1e-9)
    measured = np.log([p["median_s"] for p in train])

    def chip_at(x: np.ndarray) -> Chip:
        return chip.with_overrides({k: float(math.exp(v)) for k, v in zip(free, x)})

    def residuals(x: np.ndarray) -> np.ndarray:
        c = chip_at(x)
        return np.log([predict_point(c, p) for p in train]) - measured

    sol = least_squares(residuals, x0, bounds=(lo, hi), x_scale=1.0, diff_step=1e-3,
                        max_nfev=200)
    best = chip_at(sol.x)
    rows = []
    for i, p in enumerate(points):
        pred = predict_point(best, p)
        rows.append({"kernel": p["kernel"], "label": _label(p),
                     "split": "holdout" if i in held else "train", "measured_s": p["median_s"],
                     "predicted_s": pred, "ape": 100.0 * abs(pred - p["median_s"]) / p["median_s"]})
    return FitResult({k: float(math.exp(v)) for k, v in zip(free, sol.x)}, start, rows)


def _min_median_max(values: Sequence[float]) -> dict[str, float]:
    return {"min": float(np.min(values)), "median": float(np.median(values)),
            "max": float(np.max(values))}


def fit_spread(chip: Chip, data: dict[str, Any], holdout: float = 0.3,
               seeds: Sequence[int] = range(10), free: Sequence[str] = DEFAULT_FREE,
               kernels: Sequence[str] | None = None,
               on_fit: Callable[[], None] | None = None) -> dict[str, Any]:
    """Fit once per seed (each a different random split) and return how the result varies.

    Returns a JSON-ready dict: ``splits`` (one row per seed: seed, fitted params, train and
    held-out errors in %), and ``holdout_median_ape_pct``, ``holdout_p90_ape_pct`` and
    ``params`` (per key) as {min, median, max} over the seeds. One split can be lucky or unlucky
    by several points of error; report the spread, not one seed. ``on_fit`` is called after
    each fit (progress).
    """
    seeds = list(seeds)
    if not seeds:
        raise WorkloadError("--splits", "splits", "need at least one split")
    rows = []
    for seed in seeds:
        res = fit(chip, data, holdout, seed, free, kernels)
        rows.append({"seed": seed, "params": res.params, "train": res.errors("train"),
                     "holdout": res.errors("holdout")})
        if on_fit is not None:
            on_fit()
    return {"splits": rows, "seeds": seeds, "holdout": holdout,
            "holdout_median_ape_pct": _min_median_max([r["holdout"]["median_ape_pct"]
                                                       for r in rows]),
            "holdout_p90_ape_pct": _min_median_max([r["holdout"]["p90_ape_pct"] for r in rows]),
            "params": {k: _min_median_max([r["params"][k] for r in rows]) for k in free}}


def parity_axes(ax, lo: float, hi: float, label: str, band: Sequence[float], xlabel: str,
                ylabel: str) -> None:
    """Make ``ax`` a log-log parity plot over [lo, hi] on both axes: the diagonal (``label``)
    and dotted lines at each factor in ``band``; returns nothing."""
    ax.plot([lo, hi], [lo, hi], "k-", lw=1, label=label)
    for x in band:
        ax.plot([lo, hi], [lo * x, hi * x], "k:", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def plot_fit(result: FitResult, title: str):
    """Return a Figure of predicted vs measured time (log axes), train and held-out points."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(5.8, 5.2), layout="constrained")
    ax = fig.add_subplot()
    allv = [r[k] for r in result.rows for k in ("measured_s", "predicted_s")]
    parity_axes(ax, min(allv) / 2, max(allv) * 2, "predicted = measured", (0.8, 1.25),
                "measured time (s)", "predicted time (s)")
    for split, marker in (("train", "o"), ("holdout", "^")):
        for kernel, color in (("gemm", "C0"), ("linear-train", "C1"), ("mlp-train", "C2")):
            rs = [r for r in result.rows if r["split"] == split and r["kernel"] == kernel]
            if rs:
                ax.scatter([r["measured_s"] for r in rs], [r["predicted_s"] for r in rs],
                           marker=marker, color=color, s=28 if split == "holdout" else 14,
                           alpha=0.9 if split == "holdout" else 0.5,
                           label=f"{kernel} ({split})")
    h = result.errors("holdout")
    ax.set_title(f"{title}\nheld-out: median APE {h['median_ape_pct']:.1f} %, "
                 f"p90 {h['p90_ape_pct']:.1f} % ({h['points']} points); dotted: +-25 %",
                 fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return fig
