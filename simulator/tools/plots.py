"""Plots: pure functions from results (sweep rows, report dicts) to matplotlib Figures.

No pyplot state is touched: every function builds a ``matplotlib.figure.Figure`` and returns it;
``save`` writes one to PNG or SVG. Inputs are what the CLI writes: rows of a sweep CSV
(``simulator.tools.sweep.read_results``) or a report dict (``Report.to_dict()``, the JSON of
``systolic-sim run --json``; ``systolic-sim train --json`` holds one as ``step_report``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..core.report import format_energy

__all__ = ["KINDS", "energy_breakdown", "heatmap", "op_utilisation", "roofline", "save",
           "timeline", "utilisation_curve"]

KINDS = ("utilisation", "roofline", "energy", "timeline", "heatmap")
__all__.append("compare_bars")
_ENERGY_PARTS = ("mac", "pe_hops", "register_read", "register_write", "buffer_read",
                 "buffer_write", "dram", "vector", "static")


def _num(v: str) -> float:
    return float(v)


def _select(rows: Sequence[Mapping[str, str]], keep: Sequence[str],
            workload: str | None) -> tuple[list[Mapping[str, str]], str]:
    """Keep ok rows of one workload; pin every other swept axis to its first value."""
    rows = [r for r in rows if r.get("status") == "ok"]
    if not rows:
        raise ValueError("no successful rows to plot")
    workload = workload or rows[0]["workload"]
    rows = [r for r in rows if r["workload"] == workload]
    if not rows:
        raise ValueError(f"no rows for workload {workload!r}")
    fixed = {}
    meta = {"sweep", "point", "workload", "status", "error"}
    metric_cols = {"total_cycles", "compute_cycles", "stall_cycles", "macs", "folds",
                   "utilisation", "compute_utilisation", "mapping_efficiency", "time_s",
                   "energy_pj", "dram_bytes", "memory_bound_ops"}
    for col in rows[0]:
        if col in meta or col in metric_cols or col in keep:
            continue
        fixed[col] = rows[0][col]
    rows = [r for r in rows if all(r[c] == v for c, v in fixed.items())]
    note = ", ".join(f"{c}={v}" for c, v in fixed.items())
    return rows, f"{workload}" + (f" ({note})" if note else "")


def utilisation_curve(rows: Sequence[Mapping[str, str]], x: str, workload: str | None = None) -> Figure:
    """Return utilisation and mapping efficiency (%) against swept column ``x``, one colour per
    dataflow (solid: utilisation, dashed: mapping efficiency)."""
    keep = [x, "array.dataflow"]
    rows, title = _select(rows, keep, workload)
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r.get("array.dataflow", "all"), []).append(r)
    for i, (df, rs) in enumerate(sorted(groups.items())):
        rs = sorted(rs, key=lambda r: _num(r[x]))
        xs = [_num(r[x]) for r in rs]
        color = f"C{i}"
        ax.plot(xs, [100 * _num(r["utilisation"]) for r in rs], "-o", color=color, ms=4,
                label=f"{df}: utilisation")
        ax.plot(xs, [100 * _num(r["mapping_efficiency"]) for r in rs], "--s", color=color, ms=3,
                label=f"{df}: mapping efficiency")
    ax.set_xlabel(x)
    ax.set_ylabel("% of PEs")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.set_title(f"Utilisation vs {x}: {title}", fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    return fig


def heatmap(rows: Sequence[Mapping[str, str]], x: str, y: str, metric: str = "utilisation",
            workload: str | None = None) -> Figure:
    """Return a heatmap of ``metric`` over swept columns ``x`` and ``y`` (values annotated)."""
    rows, title = _select(rows, [x, y], workload)
    xs = sorted({r[x] for r in rows}, key=_sort_key)
    ys = sorted({r[y] for r in rows}, key=_sort_key)
    grid = [[float("nan")] * len(xs) for _ in ys]
    for r in rows:
        grid[ys.index(r[y])][xs.index(r[x])] = _num(r[metric])
    scale = 100.0 if metric in ("utilisation", "compute_utilisation", "mapping_efficiency") else 1.0
    data = [[v * scale for v in row] for row in grid]
    fig = Figure(figsize=(1.2 + 0.9 * len(xs), 1.2 + 0.6 * len(ys)), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(data, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    unit = " (%)" if scale == 100.0 else ""
    fig.colorbar(im, ax=ax, label=f"{metric}{unit}")
    finite = [v for row in data for v in row if v == v]
    mid = (max(finite) + min(finite)) / 2 if finite else 0
    for i, row in enumerate(data):
        for j, v in enumerate(row):
            if v == v:
                ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7,
                        color="black" if v > mid else "white")
    ax.set_title(f"{metric}: {title}", fontsize=10)
    return fig


def _sort_key(v: str):
    try:
        return (0, float(v), "")
    except ValueError:
        return (1, 0.0, v)


def roofline(report: Mapping[str, Any]) -> Figure:
    """Return the chip's roofline (peak ops/s, DRAM bandwidth) with the report's array ops
    placed by arithmetic intensity (ops per DRAM byte) and achieved ops/s."""
    chip = report["chip"]
    peak = report["totals"]["peak_ops_per_s"]
    bw = chip["dram"]["bandwidth_bytes_per_s"]
    clock = chip["clock_hz"]
    ops = [o for o in report["ops"] if o.get("macs", 0) > 0]
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    pts = []
    for o in ops:
        dram = o["traffic_bytes"]["dram"]["total"]
        ai = 2 * o["macs"] / dram if dram else float("inf")
        perf = 2 * o["macs"] / (o["total_cycles"] / clock)
        pts.append((ai, perf, o["name"]))
    finite_ai = [p[0] for p in pts if p[0] != float("inf")] or [1.0]
    lo = min(finite_ai + [peak / bw if bw else 1.0]) / 4
    hi = max(finite_ai + [peak / bw if bw else 1.0]) * 4
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    if bw:
        ax.plot(xs, [min(peak, x * bw) for x in xs], "k-", lw=2,
                label=f"roof: {peak / 1e12:.3g} TOPS, {bw / 1e9:.3g} GB/s")
        ax.axvline(peak / bw, color="gray", ls=":", lw=1)
    else:
        ax.plot(xs, [peak] * len(xs), "k-", lw=2, label=f"roof: {peak / 1e12:.3g} TOPS (ideal DRAM)")
    for i, (ai, perf, name) in enumerate(pts):
        ax.plot([min(ai, hi)], [perf], "o", color=f"C{i % 10}", ms=6, label=name if len(pts) <= 12
                else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (ops per DRAM byte)")
    ax.set_ylabel("achieved throughput (ops/s)")
    ax.grid(alpha=0.3, which="both")
    ax.set_title(f"Roofline of {chip['name']}: {len(pts)} ops", fontsize=10)
    ax.legend(fontsize=7, ncol=2 if len(pts) > 6 else 1)
    return fig


def energy_breakdown(report: Mapping[str, Any]) -> Figure:
    """Return stacked bars of each op's energy (uJ) by part: mac, pe_hops, buffers, dram, ..."""
    ops = report["ops"]
    fig = Figure(figsize=(max(6, 0.45 * len(ops) + 2), 4.5), layout="constrained")
    ax = fig.add_subplot()
    bottom = [0.0] * len(ops)
    names = [o["name"] for o in ops]
    for i, part in enumerate(_ENERGY_PARTS):
        vals = [o["energy_pj"].get(part, 0.0) / 1e6 for o in ops]
        if not any(vals):
            continue
        ax.bar(range(len(ops)), vals, bottom=bottom, color=f"C{i}", label=part)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(ops)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("energy (uJ)")
    ax.set_title(f"Energy per op on {report['chip']['name']}: "
                 f"{format_energy(report['totals']['energy_pj']['total'])} in all", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def timeline(report: Mapping[str, Any]) -> Figure:
    """Return a Gantt chart of the ops per unit (array, vector), in cycles."""
    report = report.get("step_report", report)
    ops = [o for o in report["ops"] if o["unit"] != "layout"]  # free layout ops take no time
    units = sorted({o["unit"] for o in ops}, key=lambda u: (u != "array", u))
    kinds = sorted({o["kind"] for o in ops})
    fig = Figure(figsize=(10, max(1.2 + 0.9 * len(units), 0.25 * len(kinds) + 0.8)),
                 layout="constrained")
    ax = fig.add_subplot()
    total = max(o["end_cycle"] for o in ops)
    for o in ops:
        y = units.index(o["unit"])
        width = o["end_cycle"] - o["start_cycle"]
        ax.barh(y, width, left=o["start_cycle"], height=0.6, color=f"C{kinds.index(o['kind']) % 10}",
                edgecolor="black", lw=0.5)
        if width > 0.06 * total:
            ax.text(o["start_cycle"] + width / 2, y, o["name"], ha="center", va="center",
                    fontsize=7)
    handles = [Patch(color=f"C{i % 10}", label=k) for i, k in enumerate(kinds)]
    ax.set_yticks(range(len(units)), units)
    ax.set_xlabel("cycle")
    ax.set_xlim(0, total)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"Timeline of {len(ops)} ops on {report['chip']['name']}: {total:,} cycles",
                 fontsize=10)
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def op_utilisation(report: Mapping[str, Any]) -> Figure:
    """Return each op's utilisation (fraction of the unit's peak, in %) as a horizontal segment
    over the cycles it runs, one panel per unit (array: MACs / (PEs x cycles); vector:
    lane-ops / (lanes x cycles))."""
    report = report.get("step_report", report)
    chip = report["chip"]
    pes = chip["array"]["rows"] * chip["array"]["cols"] * chip["array"].get("count", 1)
    lanes = chip["vector"]["lanes"]
    units = [u for u in ("array", "vector") if any(o["unit"] == u for o in report["ops"])]
    fig = Figure(figsize=(10, 1.0 + 2.0 * max(len(units), 1)), layout="constrained")
    axes = fig.subplots(max(len(units), 1), 1, sharex=True, squeeze=False)[:, 0]
    for ax, unit in zip(axes, units):
        for o in report["ops"]:
            if o["unit"] != unit or o["total_cycles"] <= 0:
                continue
            work = o["macs"] / pes if unit == "array" else \
                o["events"].get("vector_lane_ops", 0) / lanes
            util = 100 * work / o["total_cycles"]
            ax.hlines(util, o["start_cycle"], o["end_cycle"], color="C0" if unit == "array"
                      else "C1", lw=2)
        ax.set_ylim(0, 105)
        ax.set_ylabel(f"{unit} util (%)")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("cycle")
    axes[0].set_title(f"Utilisation per op on {chip['name']}: "
                      f"{100 * report['totals']['utilisation']:.1f} % overall", fontsize=10)
    return fig


def compare_bars(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple], what: str,
                 per: str) -> Figure:
    """Return one bar panel per metric (time, throughput, energy, power, utilisation, EDP), one
    bar per chip; the best chip of each panel is outlined. Log scales where values span > 20x."""
    fig = Figure(figsize=(12, 6.5), layout="constrained")
    axes = fig.subplots(2, 3)
    chips = [r["chip"] for r in rows]
    for ax, (key, header, unit, better) in zip(axes.flat, columns):
        vals = [r[key] * (100 if key == "utilisation" else 1) for r in rows]
        best = vals.index(better(vals))
        bars = ax.bar(range(len(rows)), vals, color=[f"C{i}" for i in range(len(rows))])
        bars[best].set_edgecolor("black")
        bars[best].set_linewidth(2.5)
        positive = [v for v in vals if v > 0]
        if positive and max(positive) / min(positive) > 20:
            ax.set_yscale("log")
        ax.set_xticks(range(len(rows)), chips, rotation=25, ha="right", fontsize=8)
        label = f"{header} ({per})" if key == "throughput" else f"{header} ({unit})"
        ax.set_ylabel(label, fontsize=9)
        ax.set_title(f"{header}: {'lower' if better is min else 'higher'} is better; best "
                     f"{chips[best]}", fontsize=9)
        ax.grid(axis="y", alpha=0.3, which="both")
    fig.suptitle(f"Compared on {what}", fontsize=11)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (.png at 150 dpi, or .svg); return the path."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"--out must end in .png or .svg, got {path.name}")
    from .outputs import make_folder, write_with
    make_folder(path.parent, "--out")
    write_with(path, "--out", lambda fh: fig.savefig(fh, format=path.suffix.lower()[1:], dpi=150),
               binary=True)
    return path


# --------------------------------------------------------------------------- language models
# Rows are those of simulator.llm.sweep.sweep_inference (``systolic-sim llm`` sweeps).

_LLM_PARTS = ("array", "memory", "vector", "overhead", "comm", "bubble")


def _llm_ok(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        raise ValueError("no successful llm points to plot")
    return ok


def llm_throughput(rows: Sequence[Mapping[str, Any]], title: str = "") -> Figure:
    """Return tokens/s against batch (left) and the latency-throughput curve, decode tokens/s
    against TPOT in ms (right), one line per (tp, pp) at the largest chip count swept."""
    ok = _llm_ok(rows)
    chips = max(r["chips"] for r in ok)
    ok = [r for r in ok if r["chips"] == chips]
    fig = Figure(figsize=(11, 4.3), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    groups: dict[tuple[int, int], list] = {}
    for r in ok:
        groups.setdefault((r["tp"], r["pp"]), []).append(r)
    for i, ((tp, pp), rs) in enumerate(sorted(groups.items())):
        rs = sorted(rs, key=lambda r: r["batch"])
        label = f"tp {tp} x pp {pp}"
        style = "-o" if i < 10 else "--s"  # ten colours, then dashed lines
        ax1.plot([r["batch"] for r in rs], [r["tokens_per_s"] for r in rs], style, ms=4,
                 color=f"C{i % 10}", label=label)
        rs = [r for r in rs if r["tpot_s"] is not None]  # no decode (generate 1): no TPOT
        ax2.plot([1e3 * r["tpot_s"] for r in rs], [r["decode_tokens_per_s"] for r in rs], style,
                 ms=4, color=f"C{i % 10}", label=label)
        for r in rs:
            ax2.annotate(str(r["batch"]), (1e3 * r["tpot_s"], r["decode_tokens_per_s"]),
                         fontsize=6, xytext=(3, 3), textcoords="offset points")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    ax1.set_xlabel("batch (sequences)")
    ax1.set_ylabel("tokens/s (prefill + decode)")
    ax2.set_xlabel("TPOT (ms per output token)")
    ax2.set_ylabel("decode tokens/s (labels: batch)")
    ax1.set_title("Throughput vs batch", fontsize=10)
    ax2.set_title("Latency-throughput", fontsize=10)
    fig.suptitle(f"{title} ({chips} chips)", fontsize=10)
    return fig


def llm_phases(rows: Sequence[Mapping[str, Any]], title: str = "") -> Figure:
    """Return stacked bars of prefill (TTFT) and decode time by part (array, memory, vector,
    overhead, comm, pipeline bubble), one bar per point (at most 24: the best per case)."""
    ok = _llm_ok(rows)
    if len(ok) > 24:
        best: dict[tuple, Mapping[str, Any]] = {}
        for r in ok:
            key = (r["chips"], r["batch"])
            if key not in best or r["tokens_per_s"] > best[key]["tokens_per_s"]:
                best[key] = r
        ok = [best[k] for k in sorted(best)][:24]
    labels = [f"{r['chips']}ch b{r['batch']}\ntp{r['tp']} pp{r['pp']}" for r in ok]
    fig = Figure(figsize=(max(7, 0.6 * len(ok) + 3), 7), layout="constrained")
    axes = fig.subplots(2, 1)
    for ax, phase in zip(axes, ("prefill", "decode")):
        bottom = [0.0] * len(ok)
        for i, part in enumerate(_LLM_PARTS):
            vals = [float(r[f"{phase}_{part}_s"]) for r in ok]
            if not any(vals):
                continue
            ax.bar(range(len(ok)), vals, bottom=bottom, color=f"C{i}", label=part)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_xticks(range(len(ok)), labels, fontsize=7)
        ax.set_ylabel(f"{phase} time (s)")
        ax.set_title(f"{phase}: {'time to first token' if phase == 'prefill' else 'all decode steps'}"
                     " by part", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=3)
    fig.suptitle(title, fontsize=10)
    return fig


def llm_scaling(rows: Sequence[Mapping[str, Any]], title: str = "") -> Figure:
    """Return the best tokens/s (over tp, pp) against chip count, one line per batch, with
    linear scaling from the smallest count dashed."""
    ok = [r for r in _llm_ok(rows) if r["fits"] in (True, "True")]
    if not ok:
        raise ValueError("no point fits the chips' memory")
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for i, batch in enumerate(sorted({r["batch"] for r in ok})):
        best: dict[int, Mapping[str, Any]] = {}
        for r in ok:
            if r["batch"] == batch and (r["chips"] not in best or
                                        r["tokens_per_s"] > best[r["chips"]]["tokens_per_s"]):
                best[r["chips"]] = r
        xs = sorted(best)
        ys = [best[x]["tokens_per_s"] for x in xs]
        ax.plot(xs, ys, "-o", color=f"C{i % 10}", ms=4, label=f"batch {batch}")
        ax.plot(xs, [ys[0] * x / xs[0] for x in xs], "--", color=f"C{i % 10}", lw=0.8)
        for x in xs:
            ax.annotate(f"tp{best[x]['tp']} pp{best[x]['pp']}", (x, best[x]["tokens_per_s"]),
                        fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("chips in the system")
    ax.set_ylabel("tokens/s (best tp x pp)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"Scaling with chip count (dashed: linear): {title}", fontsize=9)
    return fig


__all__ += ["llm_phases", "llm_scaling", "llm_throughput"]
