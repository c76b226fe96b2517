"""One self-contained HTML page of a run (``systolic-sim run ... --html FILE.html``): the summary,
a sortable table of every op, and the utilisation, roofline, energy and timeline plots embedded
as base64 PNG; or of a design-space search (``systolic-sim explore ... --html FILE.html``): the
summary, the Pareto plot, a sortable table of the front and each knob's importance. Nothing is
fetched: no external script, style sheet, font or image."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Mapping

from ..core.report import Report, format_bytes, format_energy, layer_rows
from ..core.report_groups import op_group_name

__all__ = ["ENERGY_GROUPS_SHOWN", "OP_COLUMNS", "explore_html_page", "html_page", "write_html",
           "write_explore_html"]

ENERGY_GROUPS_SHOWN = 24  # the energy plot shows the op groups with the most energy
# (header, layer_rows key, kind: "text" sorts as text, "num" by the value in data-v)
OP_COLUMNS = (("op", "name", "text"), ("kind", "kind", "text"), ("unit", "unit", "text"),
              ("shape", "shape", "text"), ("start cycle", "start_cycle", "num"),
              ("cycles", "cycles", "num"), ("share %", "share", "num"),
              ("util %", "utilisation", "num"), ("stall cycles", "stall_cycles", "num"),
              ("MACs", "macs", "num"), ("DRAM", "dram_bytes", "num"),
              ("energy", "energy_pj", "num"), ("mapping", "mapping", "text"))

_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}pre{background:#f6f6f6;padding:.8em;
overflow-x:auto;font-size:12px}table{border-collapse:collapse;font-size:12px}th,td{border:1px
solid #ccc;padding:2px 6px}td.n{text-align:right}th{background:#eee;cursor:pointer;position:sticky;
top:0}figure{margin:1em 0}img{max-width:100%}"""
_SORT_JS = """document.querySelectorAll('table.sortable th').forEach(function(th,i){
th.addEventListener('click',function(){var tb=th.closest('table').tBodies[0];
var rows=Array.prototype.slice.call(tb.rows);var num=th.dataset.type==='num';
var dir=th.dataset.dir==='asc'?-1:1;th.dataset.dir=dir===1?'asc':'desc';
rows.sort(function(a,b){var x=a.cells[i],y=b.cells[i];
if(num){return dir*(parseFloat(x.dataset.v)-parseFloat(y.dataset.v));}
return dir*x.textContent.localeCompare(y.textContent);});
rows.forEach(function(r){tb.appendChild(r);});});});"""


def _png(fig) -> str:
    """Return ``fig`` as a data: URI of a PNG (base64)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _energy_groups(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of report dict ``data`` whose ops are the op groups (op_group_name) with
    the most energy, parts summed, so the per-op energy plot stays readable."""
    groups: dict[str, dict[str, Any]] = {}
    for o in data["ops"]:
        g = groups.setdefault(op_group_name(o["name"]), {"name": op_group_name(o["name"]),
                                                         "energy_pj": {}})
        for part, pj in o["energy_pj"].items():
            g["energy_pj"][part] = g["energy_pj"].get(part, 0.0) + pj
    top = sorted(groups.values(), key=lambda g: -g["energy_pj"].get("total", 0.0))
    return {**data, "ops": top[:ENERGY_GROUPS_SHOWN]}


def _plots(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return (caption, data URI) of the utilisation, roofline, energy and timeline plots."""
    from . import plots
    return [
        ("Utilisation of each op over time", _png(plots.op_utilisation(data))),
        ("Roofline: each array op by arithmetic intensity", _png(plots.roofline(data))),
        (f"Energy by part of the {ENERGY_GROUPS_SHOWN} op groups (summed across layers) with "
         "the most energy", _png(plots.energy_breakdown(_energy_groups(data)))),
        ("Timeline of the ops per unit", _png(plots.timeline(data))),
    ]


def _cell(key: str, kind: str, row: Mapping[str, Any]) -> str:
    value = row[key]
    if kind == "text":
        return f"<td>{html.escape(str(value))}</td>"
    text = {"share": f"{100 * value:.2f}", "utilisation": f"{100 * value:.1f}",
            "dram_bytes": format_bytes(value), "energy_pj": format_energy(value)}.get(
        key, f"{value:,}")
    return f'<td class="n" data-v="{float(value)!r}">{html.escape(text)}</td>'


def html_page(report: Report, title: str = "") -> str:
    """Return the HTML text of ``report``: summary, sortable table of every op, plots."""
    data = report.to_dict()
    rows = layer_rows(report)
    for op, row in zip(report.ops, rows):
        row["name"] = op.name
    head = f"{report.chip.name}" + (f": {title}" if title else "")
    summary = report.to_text().split("\n\n")[0]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(head)}</title><style>{_STYLE}</style></head><body>",
           f"<h1>{html.escape(head)}</h1>", "<h2>Summary</h2>",
           f"<pre>{html.escape(summary)}</pre>", "<h2>Plots</h2>"]
    for caption, uri in _plots(data):
        out.append(f'<figure><img alt="{html.escape(caption)}" src="{uri}">'
                   f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    out.append(f"<h2>Ops ({len(rows)})</h2><p>Click a column header to sort.</p>")
    out.append('<table class="sortable" id="ops"><thead><tr>' + "".join(
        f'<th data-type="{kind}">{html.escape(header)}</th>' for header, _k, kind in OP_COLUMNS)
        + "</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(_cell(key, kind, row) for _h, key, kind in OP_COLUMNS)
                   + "</tr>")
    out.append(f"</tbody></table><script>{_SORT_JS}</script></body></html>")
    return "\n".join(out)


def write_html(report: Report, path: str | Path, title: str = "", flag: str = "--html") -> Path:
    """Write html_page(report) to ``path``; return the path (WorkloadError naming ``flag``
    when it cannot be written)."""
    from .outputs import write_output
    return write_output(str(path), flag, html_page(report, title))


def _value_cell(value: Any) -> str:
    """Return a table cell: numbers right-aligned and sorted by value, the rest as text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"<td>{html.escape(str(value))}</td>"
    text = f"{value:.4g}" if isinstance(value, float) else f"{value:,}"
    return f'<td class="n" data-v="{float(value)!r}">{html.escape(text)}</td>'


def explore_html_page(result: Any, title: str = "") -> str:
    """Return the HTML text of an explore result (``simulator.tools.explore.ExploreResult``):
    the search's summary, the Pareto plot, a sortable table of the front (knobs, objectives,
    constraint metrics, then the other metrics) and each objective's knob importance."""
    from .explore import METRICS, pareto_figure
    spec = result.spec
    points, front = result.points, result.front
    ok = sum(r["status"] == "ok" for r in points)
    feasible = sum(bool(r["feasible"]) for r in points)
    head = f"explore {spec.path.name}" + (f": {title}" if title else "")
    objectives = [m for m, _ in spec.objectives]
    summary = [f"base chip: {spec.base.get('name', '')}",
               f"space: {spec.size:,} chips over {', '.join(spec.keys)}",
               "rules: " + ("; ".join(r for r, _ in spec.rules) or "none"),
               "workloads: " + "; ".join(f"{w['name']} (weight {w['weight']:g})"
                                         for w in spec.workloads),
               "objectives: " + ", ".join(f"{m} ({d[:3]})" for m, d in spec.objectives),
               "constraints: " + ("; ".join(c for c, _ in spec.constraints) or "none"),
               f"evaluated: {len(points)} chips ({result.evaluated_before} from the results "
               f"file, {result.evaluated_now} now); {ok} ok, {len(points) - ok} failed, "
               f"{feasible} meet the constraints; {len(front)} on the Pareto front"]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(head)}</title><style>{_STYLE}</style></head><body>",
           f"<h1>{html.escape(head)}</h1>", "<h2>Summary</h2>",
           f"<pre>{html.escape(chr(10).join(summary))}</pre>", "<h2>Pareto plot</h2>"]
    if ok:
        caption = ("Every chip evaluated, objective against objective: feasible chips in blue, "
                   "infeasible as grey crosses, the Pareto front in red")
        import matplotlib.pyplot as plt
        fig = pareto_figure(spec, points, front)
        uri = _png(fig)
        plt.close(fig)
        out.append(f'<figure><img alt="{html.escape(caption)}" src="{uri}">'
                   f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    cols = list(spec.keys) + objectives + [m for m in METRICS if m not in objectives
                                           and any(m in r for r in front)]
    out.append(f"<h2>Pareto front ({len(front)} chips)</h2><p>Click a column header to sort."
               "</p>")
    kinds = ["num" if all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                          for r in front) else "text" for c in cols]
    out.append('<table class="sortable" id="front"><thead><tr><th data-type="num">chip</th>'
               + "".join(f'<th data-type="{k}">{html.escape(c)}</th>' for c, k in zip(cols, kinds))
               + "</tr></thead><tbody>")
    for i, row in enumerate(front):
        out.append("<tr>" + _value_cell(i) + "".join(_value_cell(row.get(c, "")) for c in cols)
                   + "</tr>")
    out.append("</tbody></table>")
    out.append("<h2>Importance</h2>")
    if result.importance:
        knobs = list(spec.keys)
        out.append('<table class="sortable" id="importance"><thead><tr>'
                   '<th data-type="text">objective</th>' + "".join(
                       f'<th data-type="num">{html.escape(k)}</th>' for k in knobs)
                   + "</tr></thead><tbody>")
        for name, shares in result.importance.items():
            out.append(f"<tr><td>{html.escape(name)}</td>" + "".join(
                _value_cell(float(shares.get(k, 0.0))) for k in knobs) + "</tr>")
        out.append("</tbody></table><p>Each objective's share of variation explained by each "
                   "knob (Optuna's PED-ANOVA evaluator; a row sums to 1).</p>")
    else:
        out.append("<p>Not computed: fewer than 8 chips completed.</p>")
    out.append(f"<script>{_SORT_JS}</script></body></html>")
    return "\n".join(out)


def write_explore_html(result: Any, path: str | Path, title: str = "",
                       flag: str = "--html") -> Path:
    """Write explore_html_page(result) to ``path``; return the path (OutputError naming
    ``flag`` when it cannot be written)."""
    from .outputs import write_output
    return write_output(str(path), flag, explore_html_page(result, title))
