"""A report's timeline as Chrome Trace Event JSON (opens in ui.perfetto.dev and chrome://tracing):
``systolic-sim run ... --trace FILE.json``.

One process per chip; one track (thread) per unit: each systolic array, the vector unit, the
vector unit's requantisation passes, one DMA track per DRAM stream (A read, B read, O read,
O write); one complete ("X") slice per op with its shape, cycles, bytes, energy and utilisation
in ``args``; counter ("C") tracks of buffer occupancy (bytes) and DRAM bandwidth (GB/s).
Timestamps and durations are microseconds at the chip clock (``cycles / clock_hz * 1e6``); each
slice's ``args`` also hold its exact ``start_cycle`` and ``end_cycle``.

DMA slices: the engine reports each op's DRAM bytes per stream, not the order of its tiles, so
a stream's slice starts with its op and lasts the transfer time at that stream's DRAM bandwidth
(the op's span when DRAM is ideal); when two ops on different units move the same stream at
once, the later slice starts where the earlier one ends (one track never overlaps).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from ..core.report import Report, layer_rows

__all__ = ["DMA_STREAMS", "trace_events", "write_trace"]

DMA_STREAMS = (("a_read", "DMA A read", 0), ("b_read", "DMA B read", 1),
               ("o_read", "DMA O read", 2), ("o_write", "DMA O write", 2))
_PID = 1
_VECTOR_TID, _REQUANT_TID, _DMA_TID0, _ARRAY_TID0 = 1, 2, 10, 100


def _us(cycles: float, clock_hz: float) -> float:
    """Return ``cycles`` in microseconds at ``clock_hz``."""
    return cycles / clock_hz * 1e6


def _meta(name: str, pid: int, tid: int | None, value: Any) -> dict[str, Any]:
    ev = {"name": name, "ph": "M", "pid": pid, "args": {"name" if "name" in name else
                                                        "sort_index": value}}
    if tid is not None:
        ev["tid"] = tid
    return ev


def _slice(name: str, cat: str, tid: int, start: int, end: int, clock_hz: float,
           args: dict[str, Any], pid: int = _PID) -> dict[str, Any]:
    return {"name": name, "cat": cat, "ph": "X", "pid": pid, "tid": tid,
            "ts": _us(start, clock_hz), "dur": _us(end - start, clock_hz),
            "args": {**args, "start_cycle": int(start), "end_cycle": int(end)}}


def _arrays_used(op, count: int) -> int:
    """Return how many of the chip's ``count`` arrays an array op occupies."""
    p = op.placement
    if not p:
        return count
    return max(1, min(count, int(p["arrays_per_gemm"]) * int(p["gemms_at_once"])))


def _steps(intervals: Iterable[tuple[int, int, float]]) -> list[tuple[int, float]]:
    """Return the step function (cycle, value) of the sum of ``(start, end, value)`` intervals,
    one point per cycle where it changes."""
    delta: dict[int, float] = {}
    for start, end, value in intervals:
        if end > start and value:
            delta[start] = delta.get(start, 0.0) + value
            delta[end] = delta.get(end, 0.0) - value
    out, level = [], 0.0
    for cycle in sorted(delta):
        level += delta[cycle]
        out.append((cycle, max(level, 0.0) if abs(level) > 1e-9 * (1 + abs(level)) else 0.0))
    return out


def _max_steps(intervals: list[tuple[int, int, float]]) -> list[tuple[int, float]]:
    """Return the step function (cycle, value) of the largest value among the intervals active
    at each cycle (0 where none is)."""
    cuts = sorted({c for s, e, _v in intervals for c in (s, e)})
    out: list[tuple[int, float]] = []
    for cycle in cuts:
        value = max((v for s, e, v in intervals if s <= cycle < e), default=0.0)
        if not out or out[-1][1] != value:
            out.append((cycle, float(value)))
    return out


def trace_events(report: Report, title: str = "") -> dict[str, Any]:
    """Return the Trace Event JSON object (``traceEvents``, ``displayTimeUnit``, ``otherData``)
    of ``report``'s timeline; times in microseconds at the chip clock."""
    chip = report.chip
    clk = chip.clock_hz
    count = chip.array.count
    events: list[dict[str, Any]] = [_meta("process_name", _PID, None,
                                          f"{chip.name}" + (f": {title}" if title else ""))]
    tracks = {_VECTOR_TID: "vector unit", _REQUANT_TID: "vector unit: requantisation"}
    tracks.update({_ARRAY_TID0 + i: f"array {i}" for i in range(count)})
    tracks.update({_DMA_TID0 + i: label for i, (_k, label, _p) in enumerate(DMA_STREAMS)})
    for tid, label in sorted(tracks.items()):
        events.append(_meta("thread_name", _PID, tid, label))
        events.append(_meta("thread_sort_index", _PID, tid, tid))
    bpc = chip.dram.bytes_per_cycle(clk)
    dma_free = [0] * len(DMA_STREAMS)
    rows = layer_rows(report)
    dram_rate, occupancy = [], []
    for op, row in zip(report.ops, rows):
        if op.unit == "layout":  # free layout changes occupy no unit
            continue
        args = {"kind": op.kind, "shape": row["shape"], "unit": op.unit,
                "cycles": op.total_cycles, "compute_cycles": op.compute_cycles,
                "stall_cycles": op.stall_cycles, "macs": op.macs,
                "dram_bytes": row["dram_bytes"], "buffer_bytes": row["buffer_bytes"],
                "energy_pj": row["energy_pj"], "utilisation": row["utilisation"]}
        if row["mapping"]:
            args["mapping"] = row["mapping"]
        if op.unit == "array":
            for i in range(_arrays_used(op, count)):
                events.append(_slice(op.name, op.kind, _ARRAY_TID0 + i, op.start_cycle,
                                     op.end_cycle, clk, args))
            if op.requant_busy_cycles:
                events.append(_slice(op.name + " (requantise)", "requantise", _REQUANT_TID,
                                     op.requant_start_cycle, op.end_cycle, clk,
                                     {"cycles": op.requant_busy_cycles}))
        else:
            events.append(_slice(op.name, op.kind, _VECTOR_TID, op.start_cycle, op.end_cycle,
                                 clk, args))
        dram = op.traffic_bytes.get("dram", {}) or {}
        for i, (key, _label, port) in enumerate(DMA_STREAMS):
            nbytes = int(dram.get(key, 0) or 0)
            if nbytes <= 0:
                continue
            start = max(op.start_cycle, dma_free[i])
            dur = math.ceil(nbytes / bpc[port]) if bpc[port] > 0 else op.total_cycles
            end = start + max(dur, 1)
            dma_free[i] = end
            events.append(_slice(op.name, "dma", _DMA_TID0 + i, start, end, clk,
                                 {"bytes": nbytes, "op": op.name, "stream": key}))
        if op.total_cycles > 0:
            dram_rate.append((op.start_cycle, op.end_cycle,
                              row["dram_bytes"] / (op.total_cycles / clk) / 1e9))
            occupancy.append((op.start_cycle, op.end_cycle, float(row["buffer_bytes"])))
    for name, series, points in (("DRAM bandwidth", "GB/s", _steps(dram_rate)),
                                 ("buffer occupancy", "bytes", _max_steps(occupancy))):
        for cycle, value in points or [(0, 0.0)]:
            events.append({"name": name, "ph": "C", "pid": _PID, "ts": _us(cycle, clk),
                           "args": {series: value}})
    t = report.totals()
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"chip": chip.name, "clock_hz": clk, "title": title,
                          "total_cycles": report.total_cycles, "time_s": t["time_s"],
                          "energy_pj": t["energy_pj"].get("total", 0.0),
                          "time_unit": "microseconds at the chip clock"}}


def write_trace(report: Report, path: str | Path, title: str = "",
                flag: str = "--trace") -> Path:
    """Write trace_events(report) to ``path`` as JSON; return the path (WorkloadError naming
    ``flag`` when it cannot be written)."""
    from .outputs import write_output
    return write_output(str(path), flag, json.dumps(trace_events(report, title)))
