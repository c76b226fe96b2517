"""SRAM energy per access that grows with the array's capacity (a cited power-law fit).

Horowitz ("Computing's Energy Problem", ISSCC 2014, 45 nm) lists a 64-bit read from an 8 KB SRAM
at about 10 pJ, and (secondary copies, unverified) 20 pJ from 32 KB and 100 pJ from 1 MB. A
least-squares line through these three points in log-log space gives
``E(S) = E(S_ref) * (S / S_ref) ** exponent`` with exponent 0.473: energy grows roughly with the
square root of capacity, as wire length across a square array does (the trend CACTI models).
``HOROWITZ_SRAM_POINTS`` and ``fit_power_law`` reproduce the default exponent (a test checks).
"""

from __future__ import annotations

import math

__all__ = ["HOROWITZ_SRAM_POINTS", "SRAM_SOURCE", "fit_power_law", "sram_pj_per_byte"]

# (capacity in bytes, pJ per 64-bit read), Horowitz ISSCC 2014 at 45 nm
HOROWITZ_SRAM_POINTS = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))
SRAM_SOURCE = ("power-law fit through Horowitz ISSCC 2014 45 nm SRAM reads: 8 KB 10 pJ, 32 KB "
               "20 pJ, 1 MB 100 pJ per 64 bits (the last two unverified copies)")


def fit_power_law(points: tuple[tuple[float, float], ...]) -> float:
    """Return the exponent of the least-squares line through (log capacity, log energy)."""
    xs = [math.log(s) for s, _e in points]
    ys = [math.log(e) for _s, e in points]
    mx = sum(xs) / len(xs)
    my = sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def sram_pj_per_byte(ref_pj_per_byte: float, capacity_bytes: int, ref_bytes: int,
                     exponent: float) -> float:
    """Return pJ per byte accessed in an SRAM of ``capacity_bytes``, given the energy
    ``ref_pj_per_byte`` of one of ``ref_bytes``; an unbounded buffer (capacity 0) gets the
    reference energy."""
    if capacity_bytes <= 0:
        return ref_pj_per_byte
    return ref_pj_per_byte * (capacity_bytes / ref_bytes) ** exponent
