"""SCALE-Sim v3 interop: import its ``.cfg`` files, export its ``COMPUTE_REPORT.csv``.

Conventions (docs/scalesim.md): SCALE-Sim's "Total Cycles" is the index of
the last cycle, i.e. our cycles - 1; its SRAM sizes are in KiB of 1-byte words, and its
``Bandwidth`` is in words per cycle (used when ``InterfaceBandwidth : USER``; ``CALC`` means
it sizes bandwidth to avoid stalls, which we model as ideal DRAM).
"""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Callable

import yaml

from .errors import WorkloadError
from .locking import exclusive, write_atomic
from .report import SCALESIM_CYCLE_OFFSET, Report

__all__ = ["COMPUTE_REPORT_HEADER", "export_compute_report", "import_scalesim_config"]

# The header SCALE-Sim 3.0.0 writes (read off a real run).
COMPUTE_REPORT_HEADER = ("LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, "
                         "Overall Util %, Mapping Efficiency %, Compute Util %,")
# SCALE-Sim has no clock; imported chips get this one, which only converts cycles to seconds.
IMPORT_CLOCK_HZ = 1.0e9


def export_compute_report(report: Report, directory: str | Path,
                          on_wait: Callable[[str], None] | None = None) -> Path:
    """Write ``COMPUTE_REPORT.csv`` in SCALE-Sim's columns and cycle convention; return its path.

    SCALE-Sim counts cycles from 0, so: "Total Cycles" = our compute + stall cycles - 1, and
    "Total Cycles (incl. prefetch)" = our total cycles (which include the exposed first load,
    the last write-back and any launch overhead) - 1. Percentages are ours x 100. Holds the
    file's lock (if another process holds it: calls ``on_wait`` with one line, then waits) and
    replaces the file whole, never in part.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    lines = [COMPUTE_REPORT_HEADER]
    for i, op in enumerate(report.ops):
        m = op.metrics()
        lines.append(f"{i}, {m['total_cycles'] - SCALESIM_CYCLE_OFFSET}, "
                     f"{m['compute_cycles'] + m['stall_cycles'] - SCALESIM_CYCLE_OFFSET}, "
                     f"{m['stall_cycles']}, "
                     f"{100 * m['utilisation']:.6g}, {100 * m['mapping_efficiency']:.6g}, "
                     f"{100 * m['compute_utilisation']:.6g},")
    path = out / "COMPUTE_REPORT.csv"
    with exclusive(path, "--export-scalesim", wait=True, on_wait=on_wait):
        write_atomic(path, "\n".join(lines) + "\n")
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


def import_scalesim_config(cfg_path: str | Path) -> str:
    """Return the YAML text of a chip config equivalent to a SCALE-Sim ``.cfg`` file."""
    cfg_path = Path(cfg_path)
    where = str(cfg_path)
    cp = configparser.ConfigParser()
    cp.optionxform = str  # keep key case
    try:
        with open(cfg_path, encoding="utf-8") as fh:
            cp.read_file(fh)
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
    bandwidth = 0.0
    if mode == "USER":
        words = float(_get(cp, arch, "Bandwidth", where))
        bandwidth = words * IMPORT_CLOCK_HZ  # 1-byte words per cycle at the import clock
    name = cp.get("general", "run_name", fallback=cfg_path.stem).strip() or cfg_path.stem
    config = {
        "name": name,
        "source": f"imported from SCALE-Sim v3 config {cfg_path.name}",
        "clock_hz": IMPORT_CLOCK_HZ,
        "dtype": "int8",
        "array": {"rows": rows, "cols": cols, "dataflow": dataflow, "fill_drain": "full",
                  "preload_overlap": False},
        "buffers": {"unified": False, "double_buffered": True,
                    **{k: {"bytes": v} for k, v in sizes.items()}},
        "dram": {"bandwidth_bytes_per_s": bandwidth},
    }
    head = (f"# Imported from {cfg_path.name} (SCALE-Sim v3). SCALE-Sim semantics: full fill/drain,\n"
            f"# no preload overlap. Its SRAMs hold 1-byte words; our O buffer holds 4-byte\n"
            f"# partial sums, so the same OfmapSramSzkB holds a quarter as many outputs.\n"
            f"# InterfaceBandwidth {mode}: "
            + ("Bandwidth words/cycle x 1 byte x clock_hz.\n" if mode == "USER" else
               "SCALE-Sim sizes bandwidth to avoid stalls: ideal DRAM here.\n"))
    return head + yaml.safe_dump(config, sort_keys=False)
