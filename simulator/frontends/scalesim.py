"""SCALE-Sim v3 interop: import its ``.cfg`` files, export its ``COMPUTE_REPORT.csv``.

Conventions (SCALE-Sim 3.0.0's code; docs/scalesim.md): its "Total Cycles" is the index of the
last cycle, i.e. our cycles - 1; its SRAM sizes are in KiB of 1-byte words. With
``InterfaceBandwidth : USER`` each operand has its own DRAM port: ifmap at ``[layout]
IfmapSRAMBankBandwidth``, filter at ``FilterSRAMBankBandwidth``, ofmap at ``Bandwidth`` (words
per cycle); ``CALC`` means it sizes bandwidth to avoid stalls, which we model as ideal DRAM.
"""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Callable

import yaml

from ..errors import WorkloadError
from ..core.report import SCALESIM_CYCLE_OFFSET, OpReport, Report

__all__ = ["COMPUTE_REPORT_HEADER", "export_compute_report", "import_scalesim_config",
           "scalesim_columns"]

# The header SCALE-Sim 3.0.0 writes (read off a real run), then our own figures under our names.
COMPUTE_REPORT_HEADER = ("LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, "
                         "Overall Util %, Mapping Efficiency %, Compute Util %, "
                         "ours: total_cycles, ours: stall_cycles, ours: utilisation %, "
                         "ours: mapping_efficiency %, ours: compute_utilisation %,")
# SCALE-Sim has no clock; imported chips get this one, which only converts cycles to seconds.
IMPORT_CLOCK_HZ = 1.0e9


def scalesim_columns(op: OpReport, rows: int, cols: int) -> dict[str, float]:
    """Return SCALE-Sim 3.0.0's COMPUTE_REPORT columns for one array op, as its code defines
    them (``single_layer_sim.calc_report_data``, ``systolic_compute_*``), from our timing.

    Cycles count from 0 (the index of the last cycle). "Total Cycles (incl. prefetch)": from
    the first DRAM read to the last DRAM write = our total_cycles - 1. "Stall Cycles": cycles
    the array waits for memory between its first and last demand, i.e. our stall_cycles less
    the exposed first load (SCALE-Sim prefetches before cycle 0) and the exposed last write-back
    (SCALE-Sim drains after its last demand). "Total Cycles": compute + those stalls - 1.
    "Overall Util %": 100 MACs / (Total Cycles x PEs). "Mapping Efficiency %": the mean over
    the layer's folds (SCALE-Sim does not tile) of used PEs / PEs. "Compute Util %": the mean
    over folds of used PEs x T / (PEs x the fold's cycles), which SCALE-Sim takes as T + R + C
    - 2 (os) and 2R + 2C + T - 3 (ws, is; T = the streamed dimension). Percentages as numbers.
    """
    m, n, k = op.shape
    if op.dataflow == "os":
        s_rows, s_cols, t_len = m, n, k
        fold_cycles = t_len + rows + cols - 2
    else:
        s_rows, s_cols, t_len = (k, n, m) if op.dataflow == "ws" else (k, m, n)
        fold_cycles = 2 * rows + 2 * cols + t_len - 3
    folds = -(-s_rows // rows) * -(-s_cols // cols)
    stalls = op.stall_cycles - op.prefetch_cycles - op.drain_cycles
    total = op.compute_cycles + stalls - SCALESIM_CYCLE_OFFSET
    return {
        "Total Cycles (incl. prefetch)": op.total_cycles - SCALESIM_CYCLE_OFFSET,
        "Total Cycles": total,
        "Stall Cycles": stalls,
        "Overall Util %": 100.0 * op.macs / (max(total, 1) * op.pes),
        "Mapping Efficiency %": 100.0 * s_rows * s_cols / (folds * rows * cols),
        "Compute Util %": 100.0 * op.macs / (folds * rows * cols * fold_cycles),
    }


def export_compute_report(report: Report, directory: str | Path,
                          on_wait: Callable[[str], None] | None = None) -> Path:
    """Write ``COMPUTE_REPORT.csv`` with SCALE-Sim's columns as SCALE-Sim defines them (see
    ``scalesim_columns``), one row per array op, then our own figures under our names
    (``ours: ...``, percentages x 100); return its path. Holds the file's lock (if another
    process holds it: calls ``on_wait`` with one line, then waits) and replaces the file whole,
    never in part."""
    from ..tools.locking import exclusive, write_atomic  # lazy: frontends do not load tools

    out = Path(directory)
    from ..tools.outputs import make_folder
    make_folder(out, "--export-scalesim")
    lines = [COMPUTE_REPORT_HEADER]
    arr = report.chip.array
    for i, op in enumerate(o for o in report.ops if o.unit == "array"):
        col = scalesim_columns(op, arr.rows, arr.cols)
        m = op.metrics()
        lines.append(f"{i}, {col['Total Cycles (incl. prefetch)']}, {col['Total Cycles']}, "
                     f"{col['Stall Cycles']}, {col['Overall Util %']:.6g}, "
                     f"{col['Mapping Efficiency %']:.6g}, {col['Compute Util %']:.6g}, "
                     f"{m['total_cycles']}, {m['stall_cycles']}, "
                     f"{100 * m['utilisation']:.6g}, {100 * m['mapping_efficiency']:.6g}, "
                     f"{100 * m['compute_utilisation']:.6g},")
    path = out / "COMPUTE_REPORT.csv"
    with exclusive(path, "--export-scalesim", wait=True, on_wait=on_wait):
        write_atomic(path, "\n".join(lines) + "\n", "--export-scalesim")
    return path


def _get(cp: configparser.ConfigParser, section: str, key: str, where: str) -> str:
    try:
        return cp[section][key].strip()
    except KeyError:
        raise WorkloadError(where, f"[{section}] {key}", "missing") from None


def _int(text: str, where: str, field: str, minimum: int = 1) -> int:
    try:
        v = int(float(text))
    except ValueError:
        raise WorkloadError(where, field, f"must be an integer, got {text!r}") from None
    if v < minimum:
        raise WorkloadError(where, field, f"must be >= {minimum}, got {v}")
    return v


def _words(text: str, where: str, field: str) -> float:
    """Return a bandwidth in words per cycle (> 0), or raise WorkloadError naming ``field``."""
    try:
        v = float(text.strip())
    except ValueError:
        raise WorkloadError(where, field, f"must be a number, got {text.strip()!r}") from None
    if not v > 0 or v == float("inf"):
        raise WorkloadError(where, field, f"must be a positive number, got {text.strip()}")
    return v


def import_scalesim_config(cfg_path: str | Path) -> str:
    """Return the YAML text of a chip config equivalent to a SCALE-Sim ``.cfg`` file."""
    cfg_path = Path(cfg_path)
    where = str(cfg_path)
    cp = configparser.ConfigParser()
    cp.optionxform = str  # keep key case
    try:
        from ..io_limits import read_text
        cp.read_string(read_text(cfg_path, "config", WorkloadError), source=str(cfg_path))
    except FileNotFoundError:
        raise WorkloadError(f"{where}:1", "", "no such file") from None
    except configparser.Error as exc:
        line = getattr(exc, "lineno", 1) or 1
        raise WorkloadError(f"{where}:{line}", "", f"not a SCALE-Sim config: "
                            f"{' '.join(str(exc).split())[:160]}") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise WorkloadError(f"{where}:1", "", f"not a SCALE-Sim config ({exc})") from None
    arch = "architecture_presets"
    rows = _int(_get(cp, arch, "ArrayHeight", where), where, "ArrayHeight")
    cols = _int(_get(cp, arch, "ArrayWidth", where), where, "ArrayWidth")
    sizes = {name: _int(_get(cp, arch, key, where), where, key, 0) * 1024
             for name, key in (("a", "IfmapSramSzkB"), ("b", "FilterSramSzkB"),
                               ("o", "OfmapSramSzkB"))}
    dataflow = _get(cp, arch, "Dataflow", where).lower()
    if dataflow not in ("os", "ws", "is"):
        raise WorkloadError(where, "Dataflow", f"must be os, ws or is, got {dataflow!r}")
    mode = cp.get("run_presets", "InterfaceBandwidth", fallback="CALC").strip().upper()
    dram: dict = {"bandwidth_bytes_per_s": 0.0}
    if mode == "USER":
        # SCALE-Sim 3.0.0 (single_layer_sim.run) feeds the ifmap and filter buffers from DRAM
        # at [layout] IfmapSRAMBankBandwidth / FilterSRAMBankBandwidth words per cycle and
        # drains the ofmap at the first Bandwidth entry, each on its own port
        words = {"a": _words(_get(cp, "layout", "IfmapSRAMBankBandwidth", where), where,
                             "IfmapSRAMBankBandwidth"),
                 "b": _words(_get(cp, "layout", "FilterSRAMBankBandwidth", where), where,
                             "FilterSRAMBankBandwidth"),
                 "o": _words(_get(cp, arch, "Bandwidth", where).split(",")[0], where,
                             "Bandwidth")}
        # 1-byte words per cycle at the import clock
        dram = {"bandwidth_bytes_per_s": words["o"] * IMPORT_CLOCK_HZ, "ports": "per_operand",
                **{x: {"bandwidth_bytes_per_s": w * IMPORT_CLOCK_HZ} for x, w in words.items()}}
    name = cp.get("general", "run_name", fallback=cfg_path.stem).strip() or cfg_path.stem
    config = {
        "name": name,
        "source": f"imported from SCALE-Sim v3 config {cfg_path.name}",
        "clock_hz": IMPORT_CLOCK_HZ,
        "dtype": "int8",
        "array": {"rows": rows, "cols": cols, "dataflow": dataflow, "fill_drain": "full",
                  "preload_overlap": False, "fold_pipelining": False},
        "buffers": {"unified": False, "double_buffered": True,
                    **{k: {"bytes": v} for k, v in sizes.items()}},
        "dram": dram,
        # SCALE-Sim's compute runs the whole layer fold by fold whatever its SRAMs hold; memory
        # only adds stalls: choose the tiling with its array cycles, then the fastest
        "tiling": {"objective": "compute"},
    }
    head = (f"# Imported from {cfg_path.name} (SCALE-Sim v3). SCALE-Sim semantics: full fill/drain,\n"
            f"# no preload overlap. Its SRAMs hold 1-byte words; our O buffer holds 4-byte\n"
            f"# partial sums, so the same OfmapSramSzkB holds a quarter as many outputs.\n"
            f"# InterfaceBandwidth {mode}: "
            + ("one DRAM port per operand, as SCALE-Sim: A at [layout] IfmapSRAMBankBandwidth,\n"
               "# B at FilterSRAMBankBandwidth, O at Bandwidth; words/cycle x 1 byte x clock_hz.\n"
               if mode == "USER" else
               "SCALE-Sim sizes bandwidth to avoid stalls: ideal DRAM here.\n"))
    return head + yaml.safe_dump(config, sort_keys=False)
