"""Chip area in mm2 by component, from cited per-node figures scaled to ``technology.node_nm``.

Figures (docs/area.md lists each with its source):

- Logic (multipliers, adders, registers): Aladdin (Shao et al., ISCA 2014) 40 nm standard-cell
  figures, as tabulated in the Accelergy project's hwcomponents-library
  (``hwcomponents_library/library/aladdin.py``): a 32x32-bit integer multiplier 6350 um2 (area
  linear in each operand's width), a 32-bit adder 278 um2 (linear in width), a 1-bit register
  5.98 um2 (linear in width).
- SRAM: the rule of thumb "about 600 square lambda for an SRAM bit cell, where lambda is the
  feature size" (D. J. Greaves, University of Cambridge Computer Laboratory, System-on-Chip
  lecture slides "45nm SRAM Memory Area and Power Consumption", after CACTI), applied at the
  chip's own node (lambda = technology.node_nm), single-ported.
- Node scaling of logic: Stillmaker & Baas (Integration 58, 2017) area factors relative to
  45 nm, as transcribed in Accelergy's hwcomponents (``hwcomponents/scaling``, AREA_SCALING row
  45 nm); between the tabulated nodes, log(factor) is OUR interpolation, linear in log(node),
  the rule technology.py uses for energy.
- Control and I/O: a stated share of the die (``area.control_io_share``, default 0.12: I/O 10 %
  plus control 2 % of TPU v1's die, Jouppi et al., ISCA 2017, Figure 2 caption).

A chip without a node (technology.node_nm 0) gets its area at 40 nm, the logic figures' own
node, and says so in ``sources["node"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping


if TYPE_CHECKING:  # pragma: no cover
    from .chip import Chip

__all__ = ["AreaReport", "chip_area", "chip_area_mm2", "area_scale_factor", "sram_mm2_per_bit",
           "AREA_MIN_NODE_NM", "AREA_MAX_NODE_NM", "REFERENCE_NODE_NM", "LOGIC_SOURCE",
           "SRAM_SOURCE", "SCALING_SOURCE", "mac_area_um2", "register_area_um2", "CONTROL_IO_SOURCE", "DEFAULT_CONTROL_IO_SHARE"]

LOGIC_SOURCE = ("Aladdin (Shao et al., ISCA 2014) 40 nm figures as tabulated in Accelergy "
                "hwcomponents-library aladdin.py: 32x32-bit multiplier 6350 um2, 32-bit adder "
                "278 um2, 1-bit register 5.98 um2")
SRAM_SOURCE = ("Greaves (Cambridge SoC lectures, after CACTI): ~600 lambda^2 per SRAM bit, "
               "lambda = feature size; single-ported")
SCALING_SOURCE = ("Stillmaker & Baas, Integration 58 (2017), area factors as transcribed in "
                  "Accelergy hwcomponents scaling (row 45 nm); log-log interpolation ours")
CONTROL_IO_SOURCE = ("Jouppi et al., ISCA 2017, Figure 2 caption: TPU v1's I/O is 10 % and "
                     "control 2 % of the die")
DEFAULT_CONTROL_IO_SHARE = 0.12  # I/O 10 % + control 2 % (Jouppi et al., ISCA 2017, Figure 2)

# Aladdin 40 nm logic figures (Shao et al., ISCA 2014; hwcomponents-library aladdin.py)
REFERENCE_NODE_NM = 40.0
_MULT32_UM2 = 6350.0  # 32x32-bit integer multiplier, um2 at 40 nm; linear in each width
_ADD32_UM2 = 278.0  # 32-bit integer adder, um2 at 40 nm; linear in width
_REG_BIT_UM2 = 5.98  # 1-bit register, um2 at 40 nm; linear in width

# Greaves: ~600 lambda^2 per SRAM bit, lambda = the feature size
_SRAM_LAMBDA2_PER_BIT = 600.0

# Stillmaker & Baas area factor of each node relative to 45 nm (hwcomponents AREA_SCALING,
# the 45 nm row: area at 45 nm times this factor is the area at that node)
_AREA_VS_45NM = {130: 6.4, 90: 2.8, 65: 1.5, 45: 1.0, 32: 0.46, 20: 0.21, 16: 0.19, 14: 0.17,
                 10: 0.1, 7: 0.059}
AREA_MIN_NODE_NM = float(min(_AREA_VS_45NM))
AREA_MAX_NODE_NM = float(max(_AREA_VS_45NM))


@dataclass(frozen=True)
class AreaReport:
    """A chip's area: ``components_mm2`` (mm2 per component), ``total_mm2`` (their sum, mm2),
    ``node_nm`` (the node the figures were scaled to, nm), ``sources`` (where each component's
    figure comes from), ``die_mm2`` (the chip's stated die area in mm2, 0 = not stated)."""

    components_mm2: Mapping[str, float]
    total_mm2: float
    node_nm: float
    sources: Mapping[str, str] = field(compare=False, hash=False)
    die_mm2: float = 0.0
    pe_format: str = ""  # the number format the PEs were sized for

    @property
    def die_ratio(self) -> float | None:
        """Return total_mm2 / die_mm2 (model over the stated die), or None when no die is stated."""
        return self.total_mm2 / self.die_mm2 if self.die_mm2 else None

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        """Return the ``n`` largest components as (name, mm2), largest first."""
        return sorted(self.components_mm2.items(), key=lambda kv: -kv[1])[:n]

    def to_dict(self) -> dict:
        """Return the report as a JSON-ready dict (areas in mm2, node in nm)."""
        out = {"total_mm2": self.total_mm2, "node_nm": self.node_nm,
               "pe_format": self.pe_format,
               "components_mm2": dict(self.components_mm2), "sources": dict(self.sources)}
        if self.die_mm2:
            out["die_mm2"] = self.die_mm2
            out["model_over_die"] = self.die_ratio
        return out

    def text(self) -> str:
        """Return the one-line text summary: total, top components with shares, die check."""
        parts = ", ".join(f"{k} {v:.3g} ({100 * v / self.total_mm2:.0f} %)"
                          for k, v in self.top(4)) if self.total_mm2 > 0 else ""
        line = f"area        {self.total_mm2:.4g} mm2 at {self.node_nm:g} nm ({parts})"
        if self.die_mm2:
            line += f"; stated die {self.die_mm2:g} mm2, model/die {self.die_ratio:.2f}"
        return line


def _check_node(node_nm: float) -> None:
    if not (AREA_MIN_NODE_NM <= node_nm <= AREA_MAX_NODE_NM):
        raise ValueError(f"{node_nm:g} nm is outside the area model's range "
                         f"({AREA_MIN_NODE_NM:g}-{AREA_MAX_NODE_NM:g} nm, Stillmaker & Baas "
                         f"2017 area factors)")


def _vs_45nm(node_nm: float) -> float:
    """Return the Stillmaker & Baas area factor of ``node_nm`` relative to 45 nm, log(factor)
    linear in log(node) between tabulated nodes."""
    _check_node(node_nm)
    nodes = sorted(_AREA_VS_45NM)
    lo = max(n for n in nodes if n <= node_nm)
    hi = min(n for n in nodes if n >= node_nm)
    if lo == hi:
        return _AREA_VS_45NM[lo]
    w = math.log(node_nm / lo) / math.log(hi / lo)
    return math.exp((1 - w) * math.log(_AREA_VS_45NM[lo]) + w * math.log(_AREA_VS_45NM[hi]))


def area_scale_factor(from_node_nm: float, to_node_nm: float) -> float:
    """Return the factor (unitless) that takes a logic area at ``from_node_nm`` to
    ``to_node_nm`` (Stillmaker & Baas area factors; exactly 1.0 for the same node). Raises
    ValueError outside 7-130 nm."""
    if from_node_nm == to_node_nm:
        _check_node(from_node_nm)
        return 1.0
    return _vs_45nm(to_node_nm) / _vs_45nm(from_node_nm)


def sram_mm2_per_bit(node_nm: float) -> float:
    """Return the area of one SRAM bit in mm2 at ``node_nm`` (Greaves: 600 lambda^2, lambda =
    the feature size)."""
    lam_mm = node_nm * 1e-6
    return _SRAM_LAMBDA2_PER_BIT * lam_mm * lam_mm


# (significand bits with the hidden bit, exponent bits) of each float format, as the formats
# define them (IEEE 754 binary16/binary32, bfloat16, OCP FP8 E4M3/E5M2: the names say the
# widths); tests/test_area.py holds the table to ml_dtypes.finfo. A table, not ml_dtypes, so a
# timing-only run imports no ml_dtypes (tests/test_cold_start.py).
_FLOAT_BITS = {"fp32": (24, 8), "fp16": (11, 5), "bf16": (8, 8), "fp8_e4m3": (4, 4),
               "fp8_e5m2": (3, 5)}


def _significand_exponent_bits(fmt: str) -> tuple[int, int]:
    """Return (significand bits with the hidden bit, exponent bits) of a number format (an
    integer format: (its width, 0))."""
    ints = {"int8": 8, "int4": 4}
    if fmt in ints:
        return ints[fmt], 0
    return _FLOAT_BITS[fmt]


def _mac_um2_40nm(fmt: str, acc_bits: int) -> float:
    """Return one MAC datapath of format ``fmt`` with an ``acc_bits``-bit accumulating adder,
    um2 at 40 nm: the significand multiplier (Aladdin's, linear in each operand's width), an
    exponent adder for float formats, and the accumulator adder. Float alignment and
    normalisation shifters are not modelled (docs/area.md)."""
    sig, exp = _significand_exponent_bits(fmt)
    mult = _MULT32_UM2 * (sig / 32) * (sig / 32)
    exp_add = _ADD32_UM2 * exp / 32
    acc_add = _ADD32_UM2 * acc_bits / 32
    return mult + exp_add + acc_add


def mac_area_um2(multiplier_bits: int, exponent_bits: int, acc_bits: int,
                 node_nm: float) -> float:
    """Return one MAC datapath's area in um2 at ``node_nm``: a ``multiplier_bits`` x
    ``multiplier_bits`` multiplier, an ``exponent_bits`` adder (0 for integers) and an
    ``acc_bits`` accumulating adder, Aladdin's 40 nm figures scaled by area_scale_factor."""
    mult = _MULT32_UM2 * (multiplier_bits / 32) * (multiplier_bits / 32)
    return (mult + _ADD32_UM2 * (exponent_bits + acc_bits) / 32) * \
        area_scale_factor(REFERENCE_NODE_NM, node_nm)


def register_area_um2(bits: float, node_nm: float) -> float:
    """Return the area in um2 of ``bits`` register bits at ``node_nm`` (Aladdin's 5.98 um2 per
    bit at 40 nm, scaled by area_scale_factor)."""
    return bits * _REG_BIT_UM2 * area_scale_factor(REFERENCE_NODE_NM, node_nm)


def _pe_register_bits(chip: "Chip", in_bits: int, acc_bits: int) -> int:
    """Return the register bits of one PE: the A operand latch, the B operand latch (two with
    double-buffered stationary weights or inputs: array.preload_overlap under ws/is), and the
    partial sum."""
    arr = chip.array
    stationary_copies = 2 if (arr.preload_overlap and arr.dataflow in ("ws", "is")) else 1
    return in_bits + stationary_copies * in_bits + acc_bits


def chip_area(chip: "Chip") -> AreaReport:
    """Return the chip's AreaReport: mm2 per component (pe_array, registers, each SRAM buffer,
    vector_lanes, dma_noc, control_io) at the chip's technology.node_nm, their sum and the
    sources. Raises ValueError for a node outside 7-130 nm."""
    cfg = chip.config or {}
    cfg_area = cfg.get("area", {})
    node_cfg = float(cfg.get("technology", {}).get("node_nm", 0.0))
    node = node_cfg or REFERENCE_NODE_NM
    logic = area_scale_factor(REFERENCE_NODE_NM, node)  # 40 nm figures -> chip node
    um2 = 1e-6  # mm2 per um2
    fmt = chip.compute_dtype
    sig, _exp = _significand_exponent_bits(fmt)
    from .chip import ELEMENT_BITS, INTEGER_FORMATS
    acc_bits = chip.accumulator_bits if fmt in INTEGER_FORMATS else 32
    in_bits = ELEMENT_BITS[fmt]
    rate = chip.mac_rate_of(fmt)
    comps: dict[str, float] = {}
    sources: dict[str, str] = {}
    comps["pe_array"] = chip.pes * rate * _mac_um2_40nm(fmt, acc_bits) * logic * um2
    sources["pe_array"] = (f"{chip.pes:,} PEs x {rate} {fmt} MAC(s) ({sig}-bit significand "
                           f"multiplier, {acc_bits}-bit accumulator adder): {LOGIC_SOURCE}")
    reg_bits = _pe_register_bits(chip, in_bits, acc_bits)
    comps["registers"] = chip.pes * reg_bits * _REG_BIT_UM2 * logic * um2
    sources["registers"] = f"{reg_bits} register bits per PE x 5.98 um2/bit at 40 nm (Aladdin)"
    bit_mm2 = sram_mm2_per_bit(node)
    bufs = chip.buffers
    names = ("unified_buffer",) if bufs.unified else ("a", "b", "o")
    for name in names:
        buf = getattr(bufs, name)
        key = name if name == "unified_buffer" else f"buffer_{name}"
        comps[key] = buf.bytes * 8 * bit_mm2
        sources[key] = (f"{buf.bytes:,} B x 8 bits x 600 lambda^2 at lambda {node:g} nm "
                        f"({SRAM_SOURCE})" if buf.bytes else "unbounded buffer (bytes 0): no area")
    lane_um2 = _MULT32_UM2 + _ADD32_UM2  # a 32-bit multiply and add per lane (Aladdin)
    comps["vector_lanes"] = chip.vector.lanes * lane_um2 * logic * um2
    sources["vector_lanes"] = (f"{chip.vector.lanes} lanes x (32x32-bit multiplier + 32-bit "
                               f"adder) at 40 nm (Aladdin)")
    port_bits = sum(8 * float(getattr(bufs, n).port_bytes_per_cycle) for n in names)
    comps["dma_noc"] = 2 * port_bits * _REG_BIT_UM2 * logic * um2
    sources["dma_noc"] = ("ASSUMPTION: two staging registers per buffer port bit "
                          f"({port_bits:g} port bits), 5.98 um2/bit at 40 nm (Aladdin); "
                          "DRAM/PCIe PHYs not modelled")
    share = float(cfg_area.get("control_io_share", DEFAULT_CONTROL_IO_SHARE))
    modelled = sum(comps.values())
    comps["control_io"] = modelled * share / (1.0 - share)
    sources["control_io"] = f"{100 * share:g} % of the die (area.control_io_share); " + (
        CONTROL_IO_SOURCE if share == DEFAULT_CONTROL_IO_SHARE else "stated in the chip config")
    sources["node"] = (f"{node:g} nm: logic x{logic:.3g} from 40 nm ({SCALING_SOURCE})"
                       if node_cfg else
                       "technology.node_nm not set: area at 40 nm, the logic figures' node")
    total = sum(comps.values())
    return AreaReport(components_mm2=comps, total_mm2=total, node_nm=node, sources=sources,
                      die_mm2=float(cfg_area.get("die_mm2", 0.0)), pe_format=fmt)


def chip_area_mm2(chip: "Chip") -> float:
    """Return the chip's modelled total area in mm2 (chip_area(chip).total_mm2)."""
    return chip_area(chip).total_mm2
