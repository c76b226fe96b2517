"""The Report of a simulation: one row per op plus totals; JSON and text-table exports.

Units: cycles are array clock cycles; ``time_s`` is seconds at the chip's clock; utilisations
and efficiencies are fractions in [0, 1]. ``scalesim_cycles`` is SCALE-Sim v3's "Total Cycles"
convention for the same compute, i.e. ``compute_cycles - 1`` per op (SCALE-Sim reports the index
of the last cycle, counting from 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..hardware.chip import Chip

__all__ = ["OpReport", "Report", "SCALESIM_CYCLE_OFFSET"]

# compute_cycles - SCALE-Sim "Total Cycles" for the same op (see module doc).
SCALESIM_CYCLE_OFFSET = 1


@dataclass(frozen=True)
class OpReport:
    """Timing and counts of one op on one unit.

    ``busy_pe_cycles`` is the sum over folds of (PEs holding useful work) x (cycles charged to
    the fold); the mapping efficiency is busy_pe_cycles / (PEs x compute_cycles).
    """

    name: str
    kind: str
    unit: str
    shape: tuple[int, ...]
    dataflow: str
    pes: int
    compute_cycles: int
    stall_cycles: int
    macs: int
    folds: int
    busy_pe_cycles: int
    start_cycle: int = 0
    overhead_cycles: int = 0  # fixed per-op time (launch, dispatch)
    overflow_events: int | None = None
    events: Mapping[str, int] = field(default_factory=dict)
    energy_pj: Mapping[str, float] = field(default_factory=dict)
    traffic_bytes: Mapping[str, Any] = field(default_factory=dict)
    tiling: Mapping[str, Any] | None = None
    memory_bound: bool = False
    gemms: int = 1  # independent GEMMs of ``shape`` (batched matmul, conv groups)
    # residency (DESIGN s.8): DRAM bytes read/written per tensor and why, spilled tensors,
    # resident bytes in the buffer during the op; empty when buffers.residency is off
    residency: Mapping[str, Any] = field(default_factory=dict)
    prefetch_cycles: int = 0  # of stall_cycles: the exposed load before the first tile step
    drain_cycles: int = 0  # of stall_cycles: the exposed write-back after the last tile step
    # an array op whose results leave narrowed (output.dtype): the vector unit's requantisation
    # pass, pipelined with the array: the cycles it adds after the array (part of
    # total_cycles) and the cycles it keeps the vector unit busy (the op's last ones)
    requant_cycles: int = 0
    requant_busy_cycles: int = 0
    # how the op's GEMMs went onto the arrays (simulator.core.placement: choice, arrays per
    # GEMM, GEMMs at once, rounds; the pieces of a GEMM cut for size); None: one array, one piece
    placement: Mapping[str, Any] | None = None
    # a grouped convolution's mapping (array.depthwise): per_channel, packed (with the groups
    # per packed GEMM) or vector; None for other ops
    grouped: Mapping[str, Any] | None = None
    # vector.fuse_epilogues: the array op this op runs in as its epilogue; None when unfused
    fused_into: str | None = None

    @property
    def total_cycles(self) -> int:
        """Return compute plus stall plus fixed overhead plus requantisation cycles."""
        return self.compute_cycles + self.stall_cycles + self.overhead_cycles + \
            self.requant_cycles

    @property
    def requant_start_cycle(self) -> int:
        """Return the cycle the requantisation pass starts on the vector unit (it ends with the
        op; not before the array starts)."""
        return max(self.end_cycle - self.requant_busy_cycles,
                   self.start_cycle + self.overhead_cycles)

    @property
    def end_cycle(self) -> int:
        """Return the cycle after the op's last one (start_cycle + total_cycles)."""
        return self.start_cycle + self.total_cycles

    @property
    def scalesim_cycles(self) -> int:
        """Return SCALE-Sim v3's "Total Cycles" for this op's compute (compute_cycles - 1)."""
        return self.compute_cycles - SCALESIM_CYCLE_OFFSET

    def metrics(self) -> dict[str, Any]:
        """Return the op's metrics (cycles, counts, fractions, traffic, energy) as a dict."""
        out = _metrics(self.pes, self.total_cycles, self.compute_cycles, self.stall_cycles,
                       self.macs, self.folds, self.busy_pe_cycles, self.scalesim_cycles,
                       self.overflow_events)
        out["overhead_cycles"] = self.overhead_cycles
        if self.requant_cycles:
            out["requant_cycles"] = self.requant_cycles
            out["requant_busy_cycles"] = self.requant_busy_cycles
        out["memory_bound"] = self.memory_bound
        out["traffic_bytes"] = _plain(self.traffic_bytes)
        out["events"] = dict(self.events)
        out["energy_pj"] = dict(self.energy_pj)
        if self.tiling is not None:
            out["tiling"] = dict(self.tiling)
        if self.gemms != 1:
            out["gemms"] = self.gemms
        if self.placement is not None:
            out["placement"] = _plain(self.placement)
        if self.grouped is not None:
            out["grouped"] = _plain(self.grouped)
        if self.residency:
            out["residency"] = _plain(self.residency)
        if self.fused_into is not None:
            out["fused_into"] = self.fused_into
        return out


def _plain(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) if isinstance(v, Mapping) else v for k, v in d.items()}


def _add_nested(into: dict[str, Any], more: Mapping[str, Any]) -> None:
    for k, v in more.items():
        if type(v) is dict or (type(v) not in (int, float) and isinstance(v, Mapping)):
            _add_nested(into.setdefault(k, {}), v)
        else:
            into[k] = into.get(k, 0) + v


def tdp_check(tdp_w: float, includes_dram: bool, energy_pj: Mapping[str, float],
              time_s: float) -> dict[str, Any]:
    """Return {"tdp_w", "tdp_power_w", "over_tdp"} for a chip that states power.tdp_w, else {}.

    ``tdp_power_w`` is the run's average power in W over what the TDP covers: all energy, or all
    but energy.dram when the TDP leaves the DRAM chips out (power.tdp_includes_dram false).
    ``over_tdp`` is True when it exceeds ``tdp_w``. The simulator does not throttle: the clock
    stays at clock_hz, so cycles and time are those of a chip that could dissipate the excess."""
    if not tdp_w:
        return {}
    joules = (energy_pj.get("total", 0.0) - (0.0 if includes_dram else energy_pj.get("dram", 0.0))
              ) * 1e-12
    power = _ratio(joules, time_s)
    return {"tdp_w": float(tdp_w), "tdp_power_w": power,
            "over_tdp": bool(power is not None and power > tdp_w)}


def tdp_line(power_w: float, tdp_w: float, includes_dram: bool) -> str:
    """Return the report line comparing a run's power (W, over what the TDP covers) with the
    chip's TDP (W): over it, or within it once the DRAM outside the TDP is left out."""
    what = "average power" if includes_dram else "average power without DRAM"
    if power_w > tdp_w:
        return (f"power       {what} {power_w:.3g} W exceeds the chip's TDP of {tdp_w:.3g} W "
                f"(power.tdp_w) by {100 * (power_w / tdp_w - 1):.1f} %; not throttled: the clock "
                "stays at clock_hz")
    return (f"power       {what} {power_w:.3g} W is within the chip's TDP of {tdp_w:.3g} W "
            "(power.tdp_w; the DRAM chips lie outside it: power.tdp_includes_dram false)")


def _precision_text(chip: Chip) -> str:
    """Return " (weights W, activations A; MACs in C at r per PE per cycle)" where precision.*
    or the MAC rate differ from one MAC a cycle in the chip's dtype, else ""."""
    w, a, c, r = chip.weights_dtype, chip.activations_dtype, chip.compute_dtype, chip.mac_rate
    if w == a == chip.dtype and r == 1:
        return ""
    return f" (weights {w}, activations {a}; MACs in {c} at {r} per PE per cycle)"


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def _metrics(pes: int, total: int, compute: int, stall: int, macs: int, folds: int, busy: int,
             scalesim: int, overflows: int | None) -> dict[str, Any]:
    return {
        "total_cycles": int(total),
        "compute_cycles": int(compute),
        "stall_cycles": int(stall),
        "scalesim_cycles": int(scalesim),
        "macs": int(macs),
        "folds": int(folds),
        "utilisation": _ratio(macs, pes * total),
        "compute_utilisation": _ratio(macs, pes * compute),
        "mapping_efficiency": _ratio(busy, pes * compute),
        "overflow_events": overflows,
    }


@dataclass
class Report:
    """Result of a simulation: the chip, one OpReport per op, totals, and optional output values."""

    chip: Chip
    ops: list[OpReport]
    engine: str
    mode: str  # "timing" | "functional"
    output: np.ndarray | None = field(default=None, repr=False)
    last_output_cycle: int | None = None  # reference engine: cycle index the last output left
    values: dict[str, np.ndarray] | None = field(default=None, repr=False)  # every tensor

    # -- totals --------------------------------------------------------------------------
    @property
    def total_cycles(self) -> int:
        """Return cycles from the first op's start to the last op's end."""
        return max(op.end_cycle for op in self.ops) - min(op.start_cycle for op in self.ops)

    @property
    def compute_cycles(self) -> int:
        """Return the sum of the array ops' compute cycles."""
        return sum(op.compute_cycles for op in self.ops if op.unit == "array")

    @property
    def stall_cycles(self) -> int:
        """Return the sum of the array ops' memory-stall cycles."""
        return sum(op.stall_cycles for op in self.ops if op.unit == "array")

    def unit_busy_cycles(self) -> dict[str, int]:
        """Return, per unit (array, vector), the cycles it was busy with an op."""
        busy: dict[str, int] = {}
        for op in self.ops:
            if op.unit == "layout":  # free layout changes occupy no unit
                continue
            busy[op.unit] = busy.get(op.unit, 0) + op.total_cycles
        return busy

    @property
    def macs(self) -> int:
        """Return the useful multiply-accumulates of all ops."""
        return sum(op.macs for op in self.ops)

    @property
    def folds(self) -> int:
        """Return the folds of all ops."""
        return sum(op.folds for op in self.ops)

    @property
    def overflow_events(self) -> int | None:
        """Return the integer adds that overflowed (functional int8 runs), else None."""
        counts = [op.overflow_events for op in self.ops]
        return None if any(c is None for c in counts) else sum(counts)

    @property
    def time_s(self) -> float:
        """Return total_cycles in seconds at the chip's clock."""
        return self.total_cycles / self.chip.clock_hz

    @property
    def utilisation(self) -> float:
        """Return MACs / (PEs x total_cycles)."""
        return self.totals()["utilisation"]

    @property
    def compute_utilisation(self) -> float:
        """Return MACs / (PEs x compute_cycles)."""
        return self.totals()["compute_utilisation"]

    @property
    def mapping_efficiency(self) -> float:
        """Return useful PEs / all PEs, averaged over folds weighted by fold time."""
        return self.totals()["mapping_efficiency"]

    @property
    def scalesim_cycles(self) -> int:
        """Return the sum of SCALE-Sim's per-op "Total Cycles" (compute_cycles - 1 per array op)."""
        return sum(op.scalesim_cycles for op in self.ops if op.unit == "array")

    def totals(self) -> dict[str, Any]:
        """Return the totals over all ops as a JSON-ready dict (cycles, counts, fractions, s)."""
        pes = self.chip.peak_macs_per_cycle  # MAC slots: PEs x the MAC rate
        out = _metrics(pes, self.total_cycles, self.compute_cycles, self.stall_cycles, self.macs,
                       self.folds, sum(op.busy_pe_cycles for op in self.ops),
                       self.scalesim_cycles, self.overflow_events)
        out["memory_bound_ops"] = sum(op.memory_bound for op in self.ops)
        out["overhead_cycles"] = sum(op.overhead_cycles for op in self.ops)
        requant = sum(op.requant_cycles for op in self.ops)
        if requant:
            out["requant_cycles"] = requant
        traffic: dict[str, Any] = {}
        events: dict[str, Any] = {}
        energy: dict[str, Any] = {}
        for op in self.ops:
            _add_nested(traffic, op.traffic_bytes)
            _add_nested(events, op.events)
            _add_nested(energy, op.energy_pj)
        if energy:  # static power is charged once over the whole run, not per overlapping op
            energy["static"] = self.chip.energy.static_w * self.time_s * 1e12
            energy["total"] = sum(v for k, v in energy.items() if k != "total")
        out["traffic_bytes"] = traffic
        out["events"] = events
        out["energy_pj"] = energy
        busy = self.unit_busy_cycles()
        out["unit_busy_cycles"] = busy
        out["unit_utilisation"] = {u: _ratio(c, self.total_cycles) for u, c in busy.items()}
        out["time_s"] = self.time_s
        out["average_power_w"] = _ratio(energy.get("total", 0.0) * 1e-12, self.time_s)
        out.update(tdp_check(self.chip.tdp_w, self.chip.tdp_includes_dram, energy,
                             self.time_s))
        out["achieved_ops_per_s"] = _ratio(2 * self.macs, self.time_s)
        out["peak_ops_per_s"] = self.chip.peak_ops_per_s
        return out

    # -- exports -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return the whole report (chip echo, totals, ops) as a JSON-ready dict, without values."""
        ops = []
        for op in self.ops:
            row = {"name": op.name, "kind": op.kind, "unit": op.unit, "shape": list(op.shape),
                   "dataflow": op.dataflow, "start_cycle": op.start_cycle,
                   "end_cycle": op.end_cycle}
            row.update(op.metrics())
            ops.append(row)
        out = {"chip": self.chip.to_dict(), "engine": self.engine, "mode": self.mode,
               "energy_scaling": self.chip.energy.scaling, "totals": self.totals(),
               "area": area_dict(self.chip), "ops": ops}
        if self.last_output_cycle is not None:
            out["last_output_cycle"] = self.last_output_cycle
        return out

    def to_json(self) -> str:
        """Return to_dict() as indented JSON text (deterministic key order)."""
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        """Return a readable summary table of the totals and of each op."""
        t = self.totals()
        arr = self.chip.array
        lines = [
            f"chip        {self.chip.name}: {arr.rows}x{arr.cols} {arr.dataflow.upper()}, "
            f"{self.chip.dtype}{_precision_text(self.chip)}, {self.chip.clock_hz / 1e6:g} MHz, "
            f"fill_drain={arr.fill_drain}, "
            f"preload_overlap={str(arr.preload_overlap).lower()}"
            + (", fold_pipelining=true" if arr.fold_pipelining else "")
            + (f", vector results stored {self.chip.vector_store_dtype}"
               if self.chip.vector_output_bytes < 4 and any(
                   o.unit == "vector" for o in self.ops) else ""),
            f"engine      {self.engine} ({self.mode})",
            f"cycles      {t['total_cycles']:,} total = {t['compute_cycles']:,} compute + "
            f"{t['stall_cycles']:,} stall"
            + (f" + {t['requant_cycles']:,} requantisation" if t.get("requant_cycles") else "")
            + "   (SCALE-Sim convention, compute: "
            f"{t['scalesim_cycles']:,})",
            f"time        {_fmt_time(t['time_s'])} at {self.chip.clock_hz / 1e6:g} MHz",
            f"MACs        {t['macs']:,} in {t['folds']:,} folds",
            f"utilisation {100 * t['utilisation']:.2f} % overall, "
            f"{100 * t['compute_utilisation']:.2f} % of compute cycles; mapping efficiency "
            f"{100 * t['mapping_efficiency']:.2f} %",
            f"throughput  {t['achieved_ops_per_s'] / 1e12:.3f} of {t['peak_ops_per_s'] / 1e12:.3f} "
            f"peak TOPS",
        ]
        if t["overflow_events"] is not None:
            lines.append(f"overflows   {t['overflow_events']:,} integer adds overflowed "
                         f"({self.chip.overflow})")
        if self.last_output_cycle is not None:
            lines.append(f"last output left the array in cycle {self.last_output_cycle:,} "
                         f"(counting from 0)")
        dram = t["traffic_bytes"].get("dram", {})
        if dram:
            lines.append(f"DRAM        {format_bytes(dram['total'])} (A {format_bytes(dram['a_read'])}, "
                         f"B {format_bytes(dram['b_read'])}, O read {format_bytes(dram['o_read'])}, "
                         f"O write {format_bytes(dram['o_write'])}); memory-bound ops: "
                         f"{t['memory_bound_ops']} of {len(self.ops)}")
        classes = t["traffic_bytes"].get("classes", {})
        if classes:  # what the DRAM bytes are (docs/conv-traffic.md)
            lines.append("traffic     " + ", ".join(
                f"{k.replace('_', ' ')} {format_bytes(v)}" for k, v in classes.items()))
        energy = t["energy_pj"]
        if energy:
            parts = ", ".join(f"{k} {100 * v / energy['total']:.1f} %" for k, v in energy.items()
                              if k != "total" and v > 0) if energy["total"] > 0 else ""
            lines.append(f"energy      {format_energy(energy['total'])} ({parts}); average power "
                         f"{t['average_power_w']:.3g} W")
            lines.append(f"scaling     {self.chip.energy.scaling}")
            if t.get("tdp_w") and max(t["tdp_power_w"] or 0.0,
                                      t["average_power_w"] or 0.0) > t["tdp_w"]:
                lines.append(tdp_line(t["tdp_power_w"], t["tdp_w"],
                                      self.chip.tdp_includes_dram))
        lines.append(area_line(self.chip))
        if len(self.ops) > 1:
            lines.append("")
            lines.append(f"{'layer':<20}{'M x N x K':>20}{'cycles':>13}{'stall':>11}{'util %':>8}"
                         f"{'map %':>7}{'DRAM':>11}{'energy':>11}  tiles")
            for op in self.ops:
                m = op.metrics()
                shape = "x".join(str(s) for s in op.shape)
                tiling = op.tiling or {}
                tiles = (f"{tiling['tile_m']}x{tiling['tile_n']}x{tiling['tile_k']} "
                         f"{tiling['loop_order']}") if tiling else ""
                bound = " mem" if op.memory_bound else ""
                dram_b = m["traffic_bytes"].get("dram", {}).get("total", 0)
                lines.append(f"{op.name[:19]:<20}{shape:>20}{m['total_cycles']:>13,}"
                             f"{m['stall_cycles']:>11,}{100 * m['utilisation']:>8.1f}"
                             f"{100 * m['mapping_efficiency']:>7.1f}{format_bytes(dram_b):>11}"
                             f"{format_energy(m['energy_pj'].get('total', 0.0)):>11}  {tiles}{bound}")
        return "\n".join(lines)


def area_dict(chip: Chip) -> dict[str, Any]:
    """Return the chip's area (simulator.hardware.area) as a JSON-ready dict (mm2 per
    component, total_mm2, node_nm, sources; die_mm2 and model_over_die when area.die_mm2 is
    stated), or {"error": why} for a node outside the area model's range."""
    from ..hardware.area import chip_area
    try:
        return chip_area(chip).to_dict()
    except ValueError as exc:
        return {"error": str(exc)}


def area_line(chip: Chip) -> str:
    """Return the text report's ``area`` line: total mm2, the largest components, the die check."""
    from ..hardware.area import chip_area
    try:
        return chip_area(chip).text()
    except ValueError as exc:
        return f"area        not modelled: {exc}"


# columns of the per-layer table and of its CSV (cycles: the op's total; share: of the sum
# of all ops' cycles, overlapping ops counted each)
LAYER_COLUMNS = ("layer", "op", "kind", "shape", "unit", "start_cycle", "cycles", "share",
                 "utilisation", "stall_cycles", "requant_cycles", "macs", "dram_bytes",
                 "buffer_bytes",
                 "spilled", "energy_pj", "mapping")


def mapping_text(op: "OpReport") -> str:
    """Return how an op's GEMMs went onto the chip in words (placement over the arrays, pieces
    of a GEMM cut for size, a grouped conv's mapping); empty when there is nothing to say."""
    parts = []
    g = op.grouped
    if g:
        parts.append({"per_channel": "per channel", "vector": "depthwise on the vector unit"}.get(
            g["mapping"], f"packed {g.get('groups_per_gemm')} groups per GEMM"))
    p = op.placement
    if p:
        parts.append(f"{p['choice']}: {p['arrays_per_gemm']} arrays per GEMM, "
                     f"{p['gemms_at_once']} at once, {p['rounds']} rounds")
        if "pieces" in p:
            parts.append(f"cut into {sum(x['count'] for x in p['pieces']) // max(op.gemms, 1)} "
                         f"pieces per GEMM")
    return "; ".join(parts)


def layer_rows(report: Report) -> list[dict[str, Any]]:
    """Return one row per op for the per-layer table: layer (the op name up to its first dot),
    op, kind, shape, unit, cycles (total), share of all ops' cycles, utilisation (array ops:
    MACs / (PEs x cycles); vector ops: lane-ops / (lanes x cycles)), stall cycles,
    requantisation cycles (array ops with narrowed outputs), MACs, DRAM
    bytes, resident buffer bytes, spilled tensors, energy (pJ) and the mapping (mapping_text)."""
    total = sum(op.total_cycles for op in report.ops) or 1
    lanes = report.chip.vector.lanes
    rows = []
    for op in report.ops:
        layer, _, rest = op.name.partition(".")
        if op.unit == "array":
            util = _ratio(op.macs, op.pes * op.total_cycles)
        elif op.unit == "vector":
            util = _ratio(op.events.get("vector_lane_ops", 0), lanes * op.total_cycles)
        else:
            util = 0.0
        rows.append({"layer": layer, "op": rest or op.name, "kind": op.kind,
                     "shape": "x".join(str(s) for s in op.shape) +
                              (f" x{op.gemms}" if op.gemms != 1 else ""),
                     "unit": op.unit, "start_cycle": op.start_cycle, "cycles": op.total_cycles,
                     "share": op.total_cycles / total, "utilisation": util,
                     "stall_cycles": op.stall_cycles, "requant_cycles": op.requant_cycles,
                     "macs": op.macs,
                     "dram_bytes": op.events.get("dram_bytes", 0),
                     "buffer_bytes": op.residency.get("buffer_bytes", 0),
                     "spilled": " ".join(op.residency.get("spilled", [])),
                     "energy_pj": op.energy_pj.get("total", 0.0),
                     "mapping": mapping_text(op)})
    return rows


def unit_summary(report: Report) -> dict[str, Any]:
    """Return where the time goes: busy cycles of the array and the vector unit, cycles lost
    to DRAM stalls (array and vector ops), DRAM bytes, and each as a share of the run."""
    busy = {"array": 0, "vector": 0}
    compute = {"array": 0, "vector": 0}
    stall = 0
    for op in report.ops:
        if op.unit in busy:
            busy[op.unit] += op.total_cycles
            compute[op.unit] += op.compute_cycles
            stall += op.stall_cycles
    total = report.total_cycles or 1
    return {"total_cycles": report.total_cycles, "array_busy_cycles": busy["array"],
            "vector_busy_cycles": busy["vector"], "array_compute_cycles": compute["array"],
            "vector_compute_cycles": compute["vector"], "dram_stall_cycles": stall,
            "array_share": busy["array"] / total, "vector_share": busy["vector"] / total,
            "dram_stall_share": stall / total,
            "dram_bytes": sum(op.events.get("dram_bytes", 0) for op in report.ops)}


def _network_head(report: Report, title: str) -> list[str]:
    """Return the lines above a network's table: the summary, the model, where the time goes."""
    u = unit_summary(report)
    return [report.to_text().split("\n\n")[0], f"model       {title}",
            f"time goes   array busy {100 * u['array_share']:.1f} %, vector unit busy "
            f"{100 * u['vector_share']:.1f} %, DRAM stalls {100 * u['dram_stall_share']:.1f} % "
            f"of {u['total_cycles']:,} cycles (units overlap); DRAM "
            f"{format_bytes(u['dram_bytes'])}", ""]


def network_text(report: Report, title: str, limit: int | None = None) -> str:
    """Return the report's summary, where the time goes, and the per-layer table (the
    ``limit`` longest ops when given, in program order)."""
    lines = _network_head(report, title)
    rows = layer_rows(report)
    shown = rows
    if limit is not None and len(rows) > limit:
        keep = set(sorted(range(len(rows)), key=lambda i: -rows[i]["cycles"])[:limit])
        shown = [r for i, r in enumerate(rows) if i in keep]
        lines.append(f"the {limit} longest of {len(rows)} ops (--csv FILE writes them all):")
    lines.append(f"{'layer':<10}{'op':<22}{'kind':<20}{'shape':>22}{'unit':>8}{'cycles':>13}"
                 f"{'share':>8}{'util %':>8}{'DRAM':>11}{'energy':>11}")
    for r in shown:
        util = f"{100 * r['utilisation']:.1f}" if r["unit"] != "layout" else "-"
        lines.append(f"{r['layer'][:9]:<10}{r['op'][:21]:<22}{r['kind'][:19]:<20}"
                     f"{r['shape'][:21]:>22}{r['unit']:>8}{r['cycles']:>13,}"
                     f"{100 * r['share']:>7.1f}%{util:>8}{format_bytes(r['dram_bytes']):>11}"
                     f"{format_energy(r['energy_pj']):>11}")
    return "\n".join(lines)


def grouped_text(report: Report, title: str, by: str) -> str:
    """Return the report's summary, where the time goes, and the per-op table grouped ``by``
    op name across layers, layer or kind (simulator.core.report_groups), longest first."""
    from .report_groups import group_rows
    rows = layer_rows(report)
    groups = group_rows(rows, by)
    lines = _network_head(report, title)
    lines.append(f"{len(rows)} ops in {len(groups)} groups by {by} (--all-ops lists every op; "
                 f"--group-by op|layer|kind):")
    lines.append(f"{by:<28}{'count':>6}{'units':>14}{'cycles':>14}{'share':>8}{'util %':>8}"
                 f"{'DRAM':>11}{'energy':>11}")
    for g in groups:
        lines.append(f"{g[by][:27]:<28}{g['count']:>6}{g['units'][:13]:>14}{g['cycles']:>14,}"
                     f"{100 * g['share']:>7.1f}%{100 * g['utilisation']:>8.1f}"
                     f"{format_bytes(g['dram_bytes']):>11}{format_energy(g['energy_pj']):>11}")
    return "\n".join(lines)


def write_layer_csv(report: Report, path, group_by: str | None = None) -> None:
    """Write layer_rows(report) to ``path`` as CSV (LAYER_COLUMNS), or, with ``group_by`` (op,
    layer or kind), the grouped rows (report_groups.group_columns)."""
    import csv
    rows: list[dict[str, Any]] = layer_rows(report)
    columns = list(LAYER_COLUMNS)
    if group_by is not None:
        from .report_groups import group_columns, group_rows
        rows, columns = group_rows(rows, group_by), list(group_columns(group_by))
    # the chip's modelled area (mm2), the same on every row, after the existing columns
    area_mm2 = area_dict(report.chip).get("total_mm2", "")
    columns.append("chip_area_mm2")
    rows = [{**r, "chip_area_mm2": area_mm2} for r in rows]
    from ..tools.outputs import write_with  # every output goes through one helper

    def write(fh) -> None:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    write_with(path, "--csv", write)


def format_bytes(n: float) -> str:
    """Return a byte count as readable text with a unit (B ... GB)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def format_energy(pj: float) -> str:
    """Return an energy in pJ as readable text with a unit (pJ ... J)."""
    for unit, scale in (("J", 1e12), ("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)):
        if pj >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds / 1e-9:.3f} ns"
