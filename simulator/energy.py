"""Energy = event counts x the chip's energy table, plus static power x time (DESIGN s.4)."""

from __future__ import annotations

from typing import Any, Mapping

from .chip import Chip

__all__ = ["ENERGY_KEYS", "energy_breakdown"]

ENERGY_KEYS = ("mac", "pe_hops", "buffer_read", "buffer_write", "dram", "vector", "static",
               "total")


def energy_breakdown(chip: Chip, events: Mapping[str, Any], time_s: float) -> dict[str, float]:
    """Return energy in pJ per part (see ENERGY_KEYS) for the event counts of a run.

    ``events`` may hold ``macs``, ``pe_hop_bytes``, ``buffer_read_bytes``, ``buffer_write_bytes``,
    ``dram_bytes`` and ``vector_lane_ops`` (absent counts are 0); ``time_s`` is the run's duration, for
    static power. ``total`` is the sum of the other parts.
    """
    e = chip.energy
    parts = {
        "mac": events.get("macs", 0) * e.mac_pj[chip.dtype],
        "pe_hops": events.get("pe_hop_bytes", 0) * e.pe_hop_pj_per_byte,
        "buffer_read": events.get("buffer_read_bytes", 0) * e.buffer_read_pj_per_byte,
        "buffer_write": events.get("buffer_write_bytes", 0) * e.buffer_write_pj_per_byte,
        "dram": events.get("dram_bytes", 0) * e.dram_pj_per_byte,
        "vector": events.get("vector_lane_ops", 0) * e.vector_lane_op_pj,
        "static": e.static_w * time_s * 1e12,
    }
    parts = {k: float(v) for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts
