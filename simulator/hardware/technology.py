"""Energy by process node: Stillmaker & Baas (2017) energy-vs-VDD fits per CMOS node.

Source: A. Stillmaker and B. Baas, "Scaling equations for the accurate prediction of CMOS
device performance from 180 nm to 7 nm", Integration 58 (2017) 74-81. The paper fits, for each
node, the energy of a fixed circuit as a quadratic in the supply voltage,
``E(node, V) = a V^2 + b V + c`` (relative units), from measured data for 180-65 nm and from
PTM-based predictions for 45-7 nm, with separate high-performance (HP) and low-power (LP)
fits below 65 nm. The energy coefficients below are that fit, as transcribed in the nodeScale
tool (UCLA NanoCAD Laboratory, MIT licence); they were not re-checked against the paper's
printed table. Scaling an energy from (node1, V1) to (node2, V2) multiplies it by
``E(node2, V2) / E(node1, V1)``.

Nodes between the fitted ones (28 nm, 22 nm, ...) are OUR interpolation: log E is taken linear
in log(node) between the two neighbouring fitted nodes at the same voltage. Nodes outside
7-180 nm are rejected. The nominal VDD per node (used when a voltage is not given) is an
ASSUMPTION (typical values per node), not a figure from the paper.
"""

from __future__ import annotations

import math

__all__ = ["MAX_NODE_NM", "MIN_NODE_NM", "FLAVORS", "FITTED_NODES", "energy_factor",
           "nominal_voltage", "scale_factor", "SOURCE"]

SOURCE = ("Stillmaker & Baas, Integration 58 (2017): per-node quadratic energy-vs-VDD fits "
          "(coefficients as transcribed by the nodeScale tool, UCLA NanoCAD)")

# (a, b, c) of E = a V^2 + b V + c. Nodes >= 65 nm have one fit for both flavours.
_ENERGY_FIT: dict[str, dict[int, tuple[float, float, float]]] = {
    "hp": {180: (0.0, 24.64, -17.98), 130: (7.171, -6.709, 2.904),
           90: (4.762, -4.781, 2.092), 65: (3.755, -4.398, 1.975),
           45: (1.018, -0.3107, 0.1539), 32: (0.8367, -0.4341, 0.1701),
           20: (0.373, -0.1582, 0.04104), 16: (0.2958, -0.1241, 0.03024),
           14: (0.2363, -0.09675, 0.02239), 10: (0.2068, -0.09311, 0.02375),
           7: (0.1776, -0.09097, 0.02447)},
    "lp": {180: (0.0, 24.64, -17.98), 130: (7.171, -6.709, 2.904),
           90: (4.762, -4.781, 2.092), 65: (3.755, -4.398, 1.975),
           45: (1.103, -0.362, 0.2767), 32: (0.9559, -0.7823, 0.471),
           20: (0.2632, -0.14, 0.06841), 16: (0.2139, -0.1187, 0.05639),
           14: (0.1556, -0.06472, 0.03066), 10: (0.1261, -0.0518, 0.02769),
           7: (0.09365, -0.03409, 0.02043)},
}
FLAVORS = tuple(_ENERGY_FIT)
FITTED_NODES = tuple(sorted(_ENERGY_FIT["hp"]))
MIN_NODE_NM = float(FITTED_NODES[0])
MAX_NODE_NM = float(FITTED_NODES[-1])

# ASSUMPTION: typical nominal supply voltage per node (V), used when no voltage is given.
_NOMINAL_V = {180: 1.8, 130: 1.3, 90: 1.2, 65: 1.1, 45: 1.0, 32: 0.9, 20: 0.9, 16: 0.85,
              14: 0.8, 10: 0.75, 7: 0.7}


def _check_node(node_nm: float) -> None:
    if not (MIN_NODE_NM <= node_nm <= MAX_NODE_NM):
        raise ValueError(f"{node_nm:g} nm is outside the scaling model's range "
                         f"({MIN_NODE_NM:g}-{MAX_NODE_NM:g} nm, Stillmaker & Baas 2017)")


def _neighbours(node_nm: float) -> tuple[int, int]:
    lo = max(n for n in FITTED_NODES if n <= node_nm)
    hi = min(n for n in FITTED_NODES if n >= node_nm)
    return lo, hi


def nominal_voltage(node_nm: float) -> float:
    """Return the assumed nominal VDD (V) of a node; between fitted nodes, linear in log(node)."""
    _check_node(node_nm)
    lo, hi = _neighbours(node_nm)
    if lo == hi:
        return _NOMINAL_V[lo]
    w = math.log(node_nm / lo) / math.log(hi / lo)
    return _NOMINAL_V[lo] + w * (_NOMINAL_V[hi] - _NOMINAL_V[lo])


def _fit(flavor: str, node: int, voltage: float) -> float:
    a, b, c = _ENERGY_FIT[flavor][node]
    e = a * voltage * voltage + b * voltage + c
    if not e > 0:
        raise ValueError(f"{voltage:g} V is outside the {node} nm fit's range (its fitted energy "
                         f"is not positive there)")
    return e


def energy_factor(node_nm: float, voltage: float, flavor: str = "hp") -> float:
    """Return the relative energy per operation at ``node_nm`` and ``voltage`` (V) from the
    Stillmaker & Baas fit (unitless; only ratios mean anything). Raises ValueError outside the
    model's range (7-180 nm, or a voltage where the fit is not positive)."""
    if flavor not in _ENERGY_FIT:
        raise ValueError(f"unknown flavor {flavor!r} (known: {', '.join(FLAVORS)})")
    _check_node(node_nm)
    if not voltage > 0:
        raise ValueError(f"voltage must be positive, got {voltage!r}")
    lo, hi = _neighbours(node_nm)
    if lo == hi:
        return _fit(flavor, lo, voltage)
    w = math.log(node_nm / lo) / math.log(hi / lo)
    return math.exp((1 - w) * math.log(_fit(flavor, lo, voltage)) +
                    w * math.log(_fit(flavor, hi, voltage)))


def scale_factor(from_node_nm: float, from_voltage: float, to_node_nm: float,
                 to_voltage: float, flavor: str = "hp") -> float:
    """Return the factor that takes an energy at (from_node_nm, from_voltage) to
    (to_node_nm, to_voltage); a voltage of 0 means the node's assumed nominal VDD. Exactly 1.0
    when both ends are the same."""
    v1 = from_voltage or nominal_voltage(from_node_nm)
    v2 = to_voltage or nominal_voltage(to_node_nm)
    if from_node_nm == to_node_nm and v1 == v2:
        _check_node(from_node_nm)
        return 1.0
    return energy_factor(to_node_nm, v2, flavor) / energy_factor(from_node_nm, v1, flavor)
