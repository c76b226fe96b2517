"""A system of chips (the ``system.*`` keys of a chip config): interconnect and collectives.

Chips are numbered in row-major order over the topology (first torus dimension fastest). A
parallel group of ``n`` consecutive chips (a tensor-parallel group) occupies whole leading
dimensions of a torus and a divisor of the next one; a group strided over them (data parallel
replicas) takes the dimensions left. Bandwidth a chip drives into one collective:

* ``switch``: all its links, ``links_per_chip x link bandwidth``; an all-reduce takes the faster
  of ring and tree (as NCCL's tuner picks between them);
* ``ring``: all its links, half each way round a bidirectional ring (each direction carries half
  the data, so the ring formula holds with the sum of the links);
* ``torus2d`` / ``torus3d``: ``links_per_chip / dimensions`` links per dimension, collectives
  dimension by dimension (see :mod:`simulator.llm.collectives`).

A point-to-point transfer (pipeline stages) uses the links facing one neighbour: all of them
through a switch, half of a ring's, ``1 / (2 x dimensions)`` of a torus's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..hardware.chip import Chip
from ..errors import ConfigError
from . import collectives as col

__all__ = ["System", "system_of"]


def _even_dims(n: int, k: int) -> tuple[int, ...]:
    """Return the most even factorisation of n into k factors (largest first)."""
    best: tuple[int, ...] | None = None

    def rec(left: int, parts: int, lo: int, acc: tuple[int, ...]) -> None:
        nonlocal best
        if parts == 1:
            if left >= lo:
                cand = tuple(sorted(acc + (left,), reverse=True))
                if best is None or max(cand) - min(cand) < max(best) - min(best):
                    best = cand
            return
        for f in range(lo, int(round(left ** (1.0 / parts))) + 2):
            if left % f == 0:
                rec(left // f, parts - 1, f, acc + (f,))

    rec(n, k, 1, ())
    return best or (n,) + (1,) * (k - 1)


@dataclass(frozen=True)
class System:
    """The chips of a system and their interconnect; collectives return seconds."""

    chip: Chip
    chips: int
    topology: str
    dims: tuple[int, ...]  # torus shape (product = chips); (chips,) for ring and switch
    link_bandwidth_bytes_per_s: float
    link_latency_s: float
    links_per_chip: int

    @property
    def chip_bandwidth(self) -> float:
        """Return the bytes/s one chip drives into a ring or switch collective (all links)."""
        return self.links_per_chip * self.link_bandwidth_bytes_per_s

    @property
    def dim_bandwidth(self) -> float:
        """Return the bytes/s along one torus dimension (the chip's links split evenly)."""
        return self.chip_bandwidth / len(self.dims)

    @property
    def p2p_bandwidth(self) -> float:
        """Return the bytes/s from one chip to one neighbour (pipeline transfers)."""
        if self.topology == "switch":
            return self.chip_bandwidth
        if self.topology == "ring":
            return self.chip_bandwidth / 2
        return self.chip_bandwidth / (2 * len(self.dims))

    def need(self, chips: int, what: str) -> None:
        """Raise ConfigError (at system.chips or the link bandwidth) unless ``chips`` chips
        joined by links are available for ``what``."""
        if chips > self.chips:
            raise ConfigError(self.chip.where("system.chips"), "system.chips",
                              f"{what} needs {chips} chips, the system has {self.chips}")
        if chips > 1 and self.link_bandwidth_bytes_per_s <= 0:
            raise ConfigError(self.chip.where("system.link_bandwidth_bytes_per_s"),
                              "system.link_bandwidth_bytes_per_s",
                              f"is 0 (no interconnect) but {what} spans {chips} chips")

    def group_dims(self, n: int, inner: int = 1) -> tuple[int, ...]:
        """Return the torus dimensions a group of ``n`` chips spans when ``inner`` consecutive
        chips form each of its members' inner groups (n = 1: ()). Raises ConfigError when the
        group does not tile the torus."""
        if n <= 1:
            return ()
        if self.topology != "ring" and self.topology != "switch":
            dims = list(self.dims)
            left = inner
            i = 0
            while left > 1 and i < len(dims):  # skip what the inner groups occupy
                d = dims[i]
                if left % d == 0:
                    left //= d
                    dims[i] = 1
                    i += 1
                elif d % left == 0:
                    dims[i] = d // left
                    left = 1
                else:
                    break
            out = []
            want = n
            for d in dims:
                if want == 1:
                    break
                if d == 1:
                    continue
                if want % d == 0:
                    out.append(d)
                    want //= d
                elif d % want == 0:
                    out.append(want)
                    want = 1
                else:
                    break
            if want == 1 and left == 1:
                return tuple(out)
            raise ConfigError(self.chip.where("system.torus_dims"), "system.torus_dims",
                              f"a group of {n} chips (over {inner}-chip inner groups) does not "
                              f"tile the {'x'.join(map(str, self.dims))} torus")
        return (n,)

    def all_reduce(self, size: float, n: int, inner: int = 1) -> float:
        """Return the seconds of an all-reduce of ``size`` bytes over a group of ``n`` chips."""
        if n <= 1 or size <= 0:
            return 0.0
        a = self.link_latency_s
        if self.topology == "switch":
            bw = self.chip_bandwidth
            return min(col.all_reduce_ring(size, n, bw, a), col.all_reduce_tree(size, n, bw, a))
        if self.topology == "ring":
            return col.all_reduce_ring(size, n, self.chip_bandwidth, a)
        return col.torus_all_reduce(size, self.group_dims(n, inner), self.dim_bandwidth, a)

    def all_gather(self, size: float, n: int, inner: int = 1) -> float:
        """Return the seconds of an all-gather (or reduce-scatter) of ``size`` bytes per chip."""
        if n <= 1 or size <= 0:
            return 0.0
        a = self.link_latency_s
        if self.topology in ("switch", "ring"):
            return col.all_gather(size, n, self.chip_bandwidth, a)
        return col.torus_all_gather(size, self.group_dims(n, inner), self.dim_bandwidth, a)

    def all_to_all(self, size: float, n: int, inner: int = 1) -> float:
        """Return the seconds of an all-to-all where each chip sends ``size`` bytes."""
        if n <= 1 or size <= 0:
            return 0.0
        a = self.link_latency_s
        if self.topology == "switch":
            return col.all_to_all(size, n, self.chip_bandwidth, a)
        if self.topology == "ring":
            return col.all_to_all(size, n, self.chip_bandwidth, a, n / 4.0)
        return col.torus_all_to_all(size, self.group_dims(n, inner), self.dim_bandwidth, a)

    def p2p(self, size: float) -> float:
        """Return the seconds to send ``size`` bytes to a neighbouring chip (one message)."""
        if size <= 0:
            return 0.0
        return self.link_latency_s + size / self.p2p_bandwidth

    def to_dict(self) -> dict:
        """Return the system's description as a JSON-ready dict."""
        return {"chips": self.chips, "topology": self.topology, "dims": list(self.dims),
                "link_bandwidth_bytes_per_s": self.link_bandwidth_bytes_per_s,
                "link_latency_s": self.link_latency_s, "links_per_chip": self.links_per_chip}


def system_of(chip: Chip) -> System:
    """Return the System described by ``chip``'s ``system.*`` keys. Raises ConfigError at the
    torus shape's line when it does not match the chip count or topology."""
    cfg = chip.config.get("system", {})
    chips = int(cfg.get("chips", 1))
    topo = cfg.get("topology", "switch")
    dims: tuple[int, ...] = (chips,)
    if topo.startswith("torus"):
        k = 2 if topo == "torus2d" else 3
        text = str(cfg.get("torus_dims", "")).strip()
        where = chip.where("system.torus_dims")
        if text:
            try:
                dims = tuple(int(p) for p in text.lower().split("x"))
            except ValueError:
                raise ConfigError(where, "system.torus_dims",
                                  f"must be AxB or AxBxC (positive integers), got {text!r}") from None
            if len(dims) != k or min(dims) <= 0:
                raise ConfigError(where, "system.torus_dims",
                                  f"{topo} needs {k} positive dimensions, got {text!r}")
            if math.prod(dims) != chips:
                raise ConfigError(where, "system.torus_dims", f"{text} holds "
                                  f"{math.prod(dims)} chips but system.chips is {chips}")
        else:
            dims = _even_dims(chips, k)
    return System(chip=chip, chips=chips, topology=topo, dims=dims,
                  link_bandwidth_bytes_per_s=float(cfg.get("link_bandwidth_bytes_per_s", 0.0)),
                  link_latency_s=float(cfg.get("link_latency_s", 0.0)),
                  links_per_chip=int(cfg.get("links_per_chip", 1)))
