"""Hot loops: the adder of a PE and of the accumulator, in the chip's number format (numba).

Values travel as float32 (fp16/bf16/fp32 inputs, already rounded to their type) or int64 (int8
inputs). ``mode`` selects the adder: 0 float32 (one rounding per add), 1 integer wrap-around,
2 integer saturation, both at ``bits`` wide (lo = -2**(bits-1), hi = 2**(bits-1) - 1,
span = 2**bits). ``lo``, ``hi`` and ``span`` are passed in the values' own type (see
``adder_limits``) so that every branch returns that type and float32 stays float32.
"""

from __future__ import annotations

from numba import njit

from .adder_modes import MODE_FLOAT, MODE_SATURATE, MODE_WRAP, adder_limits  # noqa: F401


@njit(cache=True, inline="always")
def _add(x, y, mode, lo, hi, span):
    """Return (x + y in the adder's format, 1 if the integer add overflowed else 0).

    For integer modes both operands lie in [lo, hi] and products of int8 fit in 16 bits, so one
    wrap (+- 2**bits) always brings the sum back into range.
    """
    s = x + y
    if mode == MODE_FLOAT:
        return s, 0
    if s > hi:
        return (hi if mode == MODE_SATURATE else s - span), 1
    if s < lo:
        return (lo if mode == MODE_SATURATE else s + span), 1
    return s, 0
