"""Energy = event counts x the chip's energy table, plus static power x time (DESIGN s.4)."""

from __future__ import annotations

from typing import Any, Mapping

from .chip import Chip

__all__ = ["ENERGY_KEYS", "energy_breakdown"]

ENERGY_KEYS = ("mac", "pe_hops", "register_read", "register_write", "buffer_read",
               "buffer_write", "dram", "vector", "static", "total")


def energy_breakdown(chip: Chip, events: Mapping[str, Any], time_s: float) -> dict[str, float]:
    """Return energy in pJ per part (see ENERGY_KEYS) for the event counts of a run.

    ``events`` may hold ``macs``, ``pe_hop_bytes``, ``register_read_bytes``,
    ``register_write_bytes`` (PE registers), ``buffer_read_bytes``, ``buffer_write_bytes``,
    ``dram_bytes`` and ``vector_lane_ops`` (absent counts are 0); ``time_s`` is the run's duration, for
    static power. ``total`` is the sum of the other parts. Buffer bytes split per buffer
    (``buffer_a_read_bytes`` ...) are charged at that buffer's pJ/byte (which grows with its
    capacity); the rest at the accumulator's (or the unified buffer's).
    """
    e = chip.energy
    parts = {
        "mac": events.get("macs", 0) * e.mac_pj[chip.compute_dtype],
        "pe_hops": events.get("pe_hop_bytes", 0) * e.pe_hop_pj_per_byte,
        "register_read": events.get("register_read_bytes", 0) * e.register_read_pj_per_byte,
        "register_write": events.get("register_write_bytes", 0) * e.register_write_pj_per_byte,
        "buffer_read": _buffer_pj(chip, events, "read"),
        "buffer_write": _buffer_pj(chip, events, "write"),
        "dram": events.get("dram_bytes", 0) * e.dram_pj_per_byte,
        "vector": events.get("vector_lane_ops", 0) * e.vector_lane_op_pj,
        "static": e.static_w * time_s * 1e12,
    }
    parts = {k: float(v) for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


def _buffer_pj(chip: Chip, events: Mapping[str, Any], kind: str) -> float:
    """Return pJ of all buffer reads or writes (``kind``) of ``events``."""
    e = chip.energy
    cost = e.buffer_read_pj if kind == "read" else e.buffer_write_pj
    total = events.get(f"buffer_{kind}_bytes", 0)
    pj = 0.0
    for b in "abo":
        nbytes = events.get(f"buffer_{b}_{kind}_bytes", 0)
        total -= nbytes
        pj += nbytes * cost("unified_buffer" if chip.buffers.unified else b)
    return pj + total * cost("unified_buffer" if chip.buffers.unified else "o")
