"""Adder mode codes and limits, shared by the numba adder (``_arith``) and the plain-Python
numerics (``numerics``) without importing numba.

``mode`` 0 is float32 (one rounding per add), 1 integer wrap-around, 2 integer saturation, both
``bits`` wide (lo = -2**(bits-1), hi = 2**(bits-1) - 1, span = 2**bits).
"""

from __future__ import annotations

MODE_FLOAT = 0
MODE_WRAP = 1
MODE_SATURATE = 2


def adder_limits(bits, value_type):
    """Return (lo, hi, span) of a ``bits``-wide two's-complement adder, cast to ``value_type``."""
    return value_type(-(1 << (bits - 1))), value_type((1 << (bits - 1)) - 1), value_type(1 << bits)
