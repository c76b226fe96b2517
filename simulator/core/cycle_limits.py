"""Cycle counts that would not fit the memory model's int64 counters are refused, not wrapped.

The tile walk (``_memory``, numba) keeps cycles in int64. A DRAM port slow enough that a GEMM's
transfers take more than ``CYCLE_LIMIT`` cycles (2^62: half the int64 range, so the sums of a few
such counts cannot wrap either) is refused with one line naming the slowest port's config key,
the limit, and the least bandwidth the workload accepts. Below the limit no count wraps,
so a slower DRAM never gives fewer cycles than a faster one.
"""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["CYCLE_LIMIT", "check_dram_cycles"]

CYCLE_LIMIT = 2 ** 62  # cycles


def _slowest_port(chip) -> tuple[str, float]:
    """Return (config key, bandwidth in bytes/s) of the slowest DRAM port that is not ideal."""
    dram = chip.dram
    if not dram.per_operand:
        return "dram.bandwidth_bytes_per_s", float(dram.bandwidth_bytes_per_s)
    ports = [(f"dram.{name}.bandwidth_bytes_per_s", float(bw))
             for name, bw in zip("abo", dram.port_bandwidth_bytes_per_s) if bw > 0]
    return min(ports, key=lambda p: p[1])


def check_dram_cycles(chip, nbytes: int, transfers: int, what: str) -> None:
    """Raise ConfigError when moving ``nbytes`` bytes in ``transfers`` transfers over the
    chip's slowest DRAM port could take more than CYCLE_LIMIT cycles (each transfer adds the
    latency and one cycle of rounding). Nothing is checked with ideal DRAM or no bytes; the
    arithmetic is in Python floats and integers, which do not overflow."""
    if nbytes <= 0 or chip.dram.ideal:
        return
    key, bandwidth = _slowest_port(chip)
    per_transfer = transfers * (chip.dram.latency_cycles + 1)
    cycles = nbytes / (bandwidth / chip.clock_hz) + per_transfer  # inf when bandwidth underflows
    if cycles <= CYCLE_LIMIT:
        return
    room = CYCLE_LIMIT - per_transfer
    need = f"at least {nbytes / room * chip.clock_hz:.3g} bytes/s" if room > 0 else \
        "fewer tile transfers (larger buffers)"
    raise ConfigError(chip.where(key), key, f"{bandwidth:g} bytes/s is too slow for {what}: "
                      f"moving {nbytes:,} bytes would take {cycles:.3g} cycles, over the limit "
                      f"of 2^62 cycles (the memory model's int64 counters); give {need}")
