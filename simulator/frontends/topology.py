"""SCALE-Sim topology CSV files -> named GEMM layers (conv layers lowered by im2col).

Two formats, told apart by the header (see docs/scalesim.md):

- GEMM: ``Layer, M, N, K,`` then rows ``name, M, N, K,``
- conv: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
  Num Filter, Strides,`` then one row per layer.

SCALE-Sim drops the last field of every row (the trailing comma, or a ``Target`` column some
published files carry); we drop it too when a row has one field more than the format, and
accept rows without it. Blank lines and lines starting with ``#`` are skipped. Every problem
is one line: ``FILE:LINE: field: message``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from simulator.kernels.conv import ConvLayer

from ..errors import WorkloadError
from ..io_limits import check_planned_bytes, read_user_file

__all__ = ["LAYER_BYTES", "Layer", "load_topology"]

# Bytes a run holds per topology layer (its row, Layer, op and report line): measured 9.4 KiB a
# layer on 20,000 distinct GEMM layers (run timing-only on gemmini); the rule takes 16 KiB. A
# topology is refused before its layers are parsed when they would hold more than half this
# machine's memory (io_limits.memory_budget).
LAYER_BYTES = 16 * 1024

GEMM_FIELDS = ("M", "N", "K")
CONV_FIELDS = ("IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels",
               "Num Filter", "Strides")


@dataclass(frozen=True)
class Layer:
    """One layer of a topology: its name, GEMM shape (M, N, K) and, for convs, the conv."""

    name: str
    m: int
    n: int
    k: int
    conv: ConvLayer | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """Return (M, N, K) of the layer's GEMM."""
        return self.m, self.n, self.k

    @property
    def entry(self) -> tuple:
        """Return (name, M, N, K, ConvGeometry or None), an entry of engine.simulate_gemms."""
        from ..core.conv_geometry import conv_geometry_of_layer
        return (self.name, self.m, self.n, self.k,
                None if self.conv is None else conv_geometry_of_layer(self.conv))


def _fields(row: list[str], expected: int, where: str) -> list[str]:
    row = [f.strip() for f in row]
    if row and row[-1] == "":  # the trailing comma
        row = row[:-1]
    elif len(row) == expected + 1:  # a trailing Target-like column, which SCALE-Sim drops
        row = row[:-1]
    if len(row) != expected:
        raise WorkloadError(where, "row", f"expected {expected} fields (name and "
                            f"{expected - 1} numbers, then a trailing comma), got {len(row)}")
    return row


def _positive(text: str, where: str, field: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise WorkloadError(where, field, f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise WorkloadError(where, field, f"must be a positive integer, got {value}")
    return value


def load_topology(path: str | Path) -> list[Layer]:
    """Read a SCALE-Sim topology CSV (GEMM or conv format) and return its layers in order.

    Raises WorkloadError with ``FILE:LINE: field: message`` on any malformed row.
    """
    text = read_user_file(path, WorkloadError, "a CSV file", "topology")
    rows, reader = [], csv.reader(text.splitlines())
    try:
        for i, r in enumerate(reader):
            if r and any(f.strip() for f in r) and not r[0].lstrip().startswith("#"):
                rows.append((i + 1, r))
    except csv.Error as exc:  # a field over csv's limit (131,072 characters), a NUL byte
        raise WorkloadError(f"{path}:{reader.line_num}", "", f"not a CSV row ({exc})") from None
    if not rows:
        raise WorkloadError(f"{path}:1", "", "empty topology: expected a header and layers")
    header_line, header = rows[0]
    names = [h.strip().lower() for h in header if h.strip()]
    if names[1:4] == ["m", "n", "k"] and len(names) <= 5:
        fields, conv = GEMM_FIELDS, False
    elif [n.lower() for n in CONV_FIELDS] == names[1:8]:
        fields, conv = CONV_FIELDS, True
    else:
        raise WorkloadError(f"{path}:{header_line}", "header", "expected SCALE-Sim's GEMM header "
                            "'Layer, M, N, K,' or its conv header 'Layer name, IFMAP Height, IFMAP "
                            "Width, Filter Height, Filter Width, Channels, Num Filter, Strides,'")
    check_planned_bytes((len(rows) - 1) * LAYER_BYTES, WorkloadError, f"{path}:{header_line}",
                        "layers", f"a topology of {len(rows) - 1:,} layers ({LAYER_BYTES:,} bytes "
                        "a layer)", of="layers and reports")
    layers = []
    seen: dict[str, int] = {}
    for line, row in rows[1:]:
        where = f"{path}:{line}"
        values = _fields(row, 1 + len(fields), where)
        name = values[0]
        if not name:
            raise WorkloadError(where, "name", "must not be empty")
        if name in seen:
            raise WorkloadError(where, "name", f"duplicate layer name (first on line {seen[name]})")
        seen[name] = line
        nums = [_positive(v, where, f) for v, f in zip(values[1:], fields)]
        if conv:
            try:
                layer = ConvLayer(*nums)
            except WorkloadError as exc:
                raise WorkloadError(where, exc.field, exc.message) from None
            m, n, k = layer.gemm_shape
            layers.append(Layer(name, m, n, k, layer))
        else:
            layers.append(Layer(name, nums[0], nums[1], nums[2]))
    if not layers:
        raise WorkloadError(f"{path}:{header_line}", "", "no layers after the header")
    return layers
