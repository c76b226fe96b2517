"""Grouped per-op tables of a network report: the ops summed by op name across layers, by layer,
or by kind (``systolic-sim run --model ... --group-by op|layer|kind``).

Units: cycles are array clock cycles (each op's total; ops that overlap in time are counted
each, as in the flat table), bytes are DRAM bytes, energy is pJ; ``share`` is a fraction of the
sum of all ops' cycles.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

__all__ = ["GROUP_BY", "group_columns", "group_key", "group_rows", "op_group_name"]

GROUP_BY = ("op", "layer", "kind")
_LAYER = re.compile(r"^[A-Za-z_]*\d+$")  # l0, h11, b3, layer1, lstm0: an indexed layer
_INDEX = re.compile(r"^(\d+|t\d+)$")  # a block or piece number (0, 1), a time step (t0, t99)


def op_group_name(name: str) -> str:
    """Return an op's name with its layer and step indices removed: the first dot-separated part
    when it ends in a digit (``l0``, ``h11``, ``layer1``, ``lstm0``) and more parts follow, and
    every part that is a number (``0``) or a time step (``t99``). ``l3.attn.qk`` -> ``attn.qk``;
    ``l3.ffn.fc1.matmul`` -> ``ffn.fc1.matmul``; ``layer2.1.conv1`` -> ``conv1``;
    ``lstm0.t7.h`` -> ``h``; ``emb.word.gather`` stays; a name that is only indices stays whole."""
    parts = name.split(".")
    if len(parts) > 1 and _LAYER.match(parts[0]):
        parts = parts[1:]
    kept = [p for p in parts if not _INDEX.match(p)]
    return ".".join(kept) if kept else name


def group_key(row: Mapping[str, Any], by: str) -> str:
    """Return the group of one layer_rows row under ``by`` (op, layer or kind)."""
    if by == "op":
        name = row["layer"] + ("." + row["op"] if row["op"] != row["layer"] else "")
        return op_group_name(name)
    if by == "layer":
        return row["layer"]
    if by == "kind":
        return row["kind"]
    raise ValueError(f"group by one of {', '.join(GROUP_BY)}, got {by!r}")


def group_columns(by: str) -> tuple[str, ...]:
    """Return the columns of a grouped table (and of its CSV) under ``by``."""
    return (by, "count", "units", "kinds", "cycles", "share", "utilisation", "stall_cycles",
            "macs", "dram_bytes", "energy_pj")


def group_rows(rows: Iterable[Mapping[str, Any]], by: str) -> list[dict[str, Any]]:
    """Return one row per group of the per-op ``rows`` (simulator.core.report.layer_rows),
    longest first: the group, its op count, units and kinds (space-separated, in order of first
    appearance), summed cycles, share of all ops' cycles, utilisation (the ops' utilisations
    weighted by their cycles), summed stall cycles, MACs, DRAM bytes and energy (pJ)."""
    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = group_key(r, by)
        g = groups.setdefault(key, {by: key, "count": 0, "units": [], "kinds": [], "cycles": 0,
                                    "share": 0.0, "_util_cycles": 0.0, "stall_cycles": 0,
                                    "macs": 0, "dram_bytes": 0, "energy_pj": 0.0})
        g["count"] += 1
        for col, value in (("units", r["unit"]), ("kinds", r["kind"])):
            if value not in g[col]:
                g[col].append(value)
        g["cycles"] += r["cycles"]
        g["share"] += r["share"]
        g["_util_cycles"] += r["utilisation"] * r["cycles"]
        for col in ("stall_cycles", "macs", "dram_bytes", "energy_pj"):
            g[col] += r[col]
    out = []
    for g in groups.values():
        util_cycles = g.pop("_util_cycles")
        g["utilisation"] = util_cycles / g["cycles"] if g["cycles"] else 0.0
        g["units"] = " ".join(g["units"])
        g["kinds"] = " ".join(g["kinds"])
        out.append({c: g[c] for c in group_columns(by)})
    out.sort(key=lambda g: -g["cycles"])  # stable: ties keep program order
    return out
