"""Placing an op's independent GEMMs on a chip's arrays, and cutting GEMMs too large for the
hot loops into pieces (DESIGN section 14).

An array op runs ``count`` independent GEMMs of one shape (a batched matmul's batch x heads, a
grouped convolution's groups). On a chip of ``A = array.count`` arrays they can go on:

- **split**: each GEMM split over all A arrays (``array.split``), the GEMMs one after another
  (one array group of A arrays);
- **whole**: each array runs whole GEMMs, ``A`` at once, in ``ceil(count / A)`` rounds;
- **mix**: groups of ``g`` arrays share one GEMM, ``A // g`` GEMMs at once.

A placement is ``g`` arrays per GEMM and ``P = A // g`` GEMMs at once (at most ``count``), in
``rounds = ceil(count / P)``. The P GEMMs of a round share the chip: each sees ``1 / P`` of every
buffer's capacity and read port and of the DRAM bandwidth (``sub_chip``), and the round lasts as
long as one of them on that share. Its cycles are ``rounds x`` that GEMM's (compute, stall),
while MACs, folds, busy PE-cycles, bytes and events are ``count x`` one GEMM's: each array reads
its own operands. The last round may run fewer than P GEMMs; it is charged as a full one (an
upper bound: those GEMMs would each get more than ``1 / P`` of the bandwidth). On a
double-buffered chip the rounds (and the GEMMs of a split placement) follow each other with
the next one's operands loading during the current one's compute (``scaled``). ``auto`` times
the candidate placements with the memory model and keeps the fastest (ties: less DRAM traffic,
then more arrays per GEMM); the candidates are, for rounds r = ceil(count / A), 2r, 4r, ...,
count, the fewest GEMMs at once that finish in r rounds, so every placement that some round
count makes best is tried. A chip with one array, or an op of one GEMM, is today's split.

**Pieces.** The hot loops keep every count in int64 for GEMM sides up to ``MAX_GEMM_DIM``
(2^20). A larger M or N is cut into ``p = ceil(side / MAX_GEMM_DIM)`` pieces as equal as
integers allow (``side % p`` of them one longer), each an independent GEMM reading its share
of that side, so MACs and outputs add up exactly; the pieces are placed like a batch. A K above
the bound would need the pieces' partial sums added outside the array and is refused. A
feeder-lowered conv (``memory.conv_lowering: feeder``) is cut between images of its batch where
one image fits the bound (each piece keeps the conv geometry of its images); otherwise its
pieces are costed as plain GEMMs of the im2col matrix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import WorkloadError
from ..hardware.chip import Buffer, Chip
from ..hardware.dataflow import MAX_GEMM_DIM, map_gemm
from .conv_geometry import ConvGeometry
from .memory import MemoryResult, run_gemm_memory

__all__ = ["GemmGroup", "add_results", "PlacedGemms", "Placement", "cut_sizes", "gemm_pieces", "place_gemms",
           "placement_candidates", "scaled", "sub_chip"]

PLACEMENTS = ("auto", "whole", "split")


@dataclass(frozen=True)
class Placement:
    """``arrays_per_gemm`` arrays share each GEMM, ``gemms_at_once`` GEMMs run side by side,
    in ``rounds`` rounds, on a chip of ``arrays`` arrays."""

    arrays: int
    arrays_per_gemm: int
    gemms_at_once: int
    rounds: int

    @property
    def choice(self) -> str:
        """Return "split" (every GEMM over all arrays), "whole" (one array per GEMM) or "mix"."""
        if self.gemms_at_once == 1:
            return "split"
        return "whole" if self.arrays_per_gemm == 1 else "mix"

    def to_dict(self) -> dict[str, Any]:
        """Return the placement as a JSON-ready dict."""
        return {"choice": self.choice, "arrays_per_gemm": self.arrays_per_gemm,
                "gemms_at_once": self.gemms_at_once, "rounds": self.rounds}


@dataclass(frozen=True)
class GemmGroup:
    """``count`` GEMMs of one ``shape`` (M, N, K), placed as ``placement`` on ``chip`` (the
    share of the chip each GEMM runs on); ``one`` is one GEMM's memory result there."""

    shape: tuple[int, int, int]
    count: int
    placement: Placement
    chip: Chip
    one: MemoryResult
    conv: ConvGeometry | None = None


@dataclass(frozen=True)
class PlacedGemms:
    """An op's GEMMs, by shape group, and their totals: ``mem`` adds the groups run one after
    another (cycles, bytes, events); ``folds`` is the folds of every GEMM."""

    groups: tuple[GemmGroup, ...]
    mem: MemoryResult
    folds: int
    cut_m: tuple[int, ...]  # the rows of each piece of one GEMM's output, in order
    cut_n: tuple[int, ...]  # the columns of each piece

    @property
    def placement(self) -> Placement:
        """Return the placement of the first (largest) group."""
        return self.groups[0].placement

    def to_dict(self) -> dict[str, Any]:
        """Return the placement (and the pieces, when the op was cut) as a JSON-ready dict."""
        out = self.placement.to_dict()
        if len(self.cut_m) > 1 or len(self.cut_n) > 1:
            out["pieces"] = [{"shape": list(g.shape), "count": g.count,
                              **g.placement.to_dict()} for g in self.groups]
        return out

    @property
    def count_gemms(self) -> int:
        """Return the number of GEMMs the op runs, pieces counted."""
        return sum(g.count for g in self.groups)


def cut_sizes(size: int, limit: int = MAX_GEMM_DIM) -> list[tuple[int, int]]:
    """Return [(length, how many)] cutting ``size`` into ceil(size / limit) pieces as equal as
    integers allow (longest first); [(size, 1)] when it fits."""
    if size <= limit:
        return [(size, 1)]
    p = -(-size // limit)
    q, rem = divmod(size, p)
    return [(q + 1, rem), (q, p - rem)] if rem else [(q, p)]


def gemm_pieces(m: int, n: int, k: int, where: str = "gemm") -> list[tuple[tuple[int, int, int], int]]:
    """Return [((m, n, k), how many)]: an M x N x K GEMM cut along M and N into pieces no side
    of which exceeds MAX_GEMM_DIM, their MACs adding up to m*n*k exactly. Raises WorkloadError
    for K above the bound (partial sums would leave the array)."""
    if k > MAX_GEMM_DIM:
        raise WorkloadError(where, "gemm.K", f"must be <= {MAX_GEMM_DIM:,} (a reduction this "
                            f"long is not cut into pieces), got {k:,}")
    return [((mm, nn, k), cm * cn) for mm, cm in cut_sizes(m) for nn, cn in cut_sizes(n)]


def _conv_pieces(conv: ConvGeometry, m: int, n: int) -> list[tuple[tuple[int, int, int], int, ConvGeometry]] | None:
    """Return a feeder conv cut between images: [((m, n, k), how many, geometry)], or None
    when one image alone exceeds the bound (or N does)."""
    per_image = conv.oh * conv.ow
    if per_image > MAX_GEMM_DIM or n > MAX_GEMM_DIM:
        return None
    out = []
    for nb, cnt in cut_sizes(conv.nb, MAX_GEMM_DIM // per_image):
        geom = dataclasses.replace(conv, nb=nb)
        out.append(((geom.gemm_m, n, geom.gemm_k), cnt, geom))
    return out


def sub_chip(chip: Chip, arrays_per_gemm: int, gemms_at_once: int) -> Chip:
    """Return the share of ``chip`` one of ``gemms_at_once`` concurrent GEMMs runs on: its
    ``arrays_per_gemm`` arrays, 1 / gemms_at_once of every buffer's bytes (rounded down) and
    read port and of the DRAM bandwidth; the chip itself for (array.count, 1)."""
    if arrays_per_gemm == chip.array.count and gemms_at_once == 1:
        return chip
    p = gemms_at_once

    def share(buf: Buffer) -> Buffer:
        return Buffer(bytes=buf.bytes // p if buf.bytes else 0,
                      port_bytes_per_cycle=buf.port_bytes_per_cycle / p)
    b = chip.buffers
    buffers = dataclasses.replace(b, a=share(b.a), b=share(b.b), o=share(b.o),
                                  unified_buffer=share(b.unified_buffer))
    d = chip.dram
    dram = dataclasses.replace(d, bandwidth_bytes_per_s=d.bandwidth_bytes_per_s / p,
                               port_bandwidth_bytes_per_s=tuple(
                                   bw / p for bw in d.port_bandwidth_bytes_per_s))
    return dataclasses.replace(chip, array=dataclasses.replace(chip.array, count=arrays_per_gemm),
                               buffers=buffers, dram=dram)


def placement_candidates(arrays: int, count: int, mode: str = "auto") -> list[Placement]:
    """Return the placements of ``count`` GEMMs on ``arrays`` arrays worth timing (see the
    module doc); ``mode`` "split" or "whole" returns that one placement."""
    split = Placement(arrays, arrays, 1, count)
    if arrays == 1 or count == 1 or mode == "split":
        return [split]
    at_once = min(count, arrays)
    whole = Placement(arrays, 1, at_once, -(-count // at_once))
    if mode == "whole":
        return [whole]
    seen: dict[tuple[int, int], Placement] = {}
    r = -(-count // arrays)
    rounds = []
    while r < count:
        rounds.append(r)
        r *= 2
    rounds.append(count)
    for r in rounds:
        p = -(-count // r)  # the fewest GEMMs at once that finish in r rounds
        g = arrays // p
        pl = Placement(arrays, g, p, -(-count // p))
        seen.setdefault((g, p), pl)
    seen.setdefault((1, at_once), whole)
    return list(seen.values())


# MemoryResult fields that add up over the rounds (times) and over the GEMMs (counts)
_PER_ROUND = ("compute_cycles", "dram_transfer_cycles", "port_stall_cycles")
_PER_GEMM = ("busy_pe_cycles", "steps", "dram_a_read_bytes", "dram_b_read_bytes",
             "dram_o_read_bytes", "dram_o_write_bytes", "buffer_read_bytes", "buffer_write_bytes",
             "buffer_a_read_bytes", "buffer_b_read_bytes", "pe_hop_bytes", "register_read_bytes",
             "register_write_bytes", "dram_a_halo_bytes")


def scaled(one: MemoryResult, count: int, rounds: int, pipelined: bool = False) -> MemoryResult:
    """Return ``count`` GEMMs whose memory result is ``one`` run in ``rounds`` rounds: compute
    and DRAM transfer cycles x rounds, events and bytes x count; the exposed prefetch and drain
    are one GEMM's.

    Total cycles: without double buffering (``pipelined`` False) each round repeats the whole
    GEMM, ``rounds x total``. With it, the next round's first tiles load while the current
    round computes, as the tile steps inside one GEMM do: the first load and the last write-back
    stay exposed and the rounds' steady parts follow each other, unless DRAM needs longer for
    all the rounds' bytes: ``max(prefetch + rounds x (total - prefetch - drain) + drain,
    rounds x transfer)``, never more than ``rounds x total``."""
    if count == 1 and rounds == 1:
        return one
    total = one.total_cycles * rounds
    if pipelined and rounds > 1:
        steady = one.total_cycles - one.prefetch_cycles - one.drain_cycles
        total = min(total, max(one.prefetch_cycles + rounds * steady + one.drain_cycles,
                               rounds * one.dram_transfer_cycles))
    return dataclasses.replace(
        one, total_cycles=total, **{f: getattr(one, f) * rounds for f in _PER_ROUND},
        **{f: getattr(one, f) * count for f in _PER_GEMM})


def add_results(a: MemoryResult, b: MemoryResult) -> MemoryResult:
    """Return two memory results run one after the other (the first one's plan named)."""
    fields = ("total_cycles", *_PER_ROUND, *_PER_GEMM, "prefetch_cycles", "drain_cycles")
    return dataclasses.replace(a, **{f: getattr(a, f) + getattr(b, f) for f in fields})


def _rank(chip: Chip, mem: MemoryResult, pl: Placement) -> tuple:
    if chip.tiling.objective == "compute":
        return mem.compute_cycles, mem.total_cycles, mem.dram_bytes, -pl.arrays_per_gemm
    return mem.total_cycles, mem.dram_bytes, -pl.arrays_per_gemm


def _place_group(chip: Chip, shape: tuple[int, int, int], count: int,
                 conv: ConvGeometry | None, cache: dict | None) -> tuple[GemmGroup, MemoryResult]:
    """Return the fastest placement of ``count`` GEMMs of ``shape`` and their total."""
    m, n, k = shape
    best = None
    for pl in placement_candidates(chip.array.count, count, chip.array.batch_placement):
        key = (m, n, k, conv, pl.arrays_per_gemm, pl.gemms_at_once)
        one = cache.get(key) if cache is not None else None
        sub = sub_chip(chip, pl.arrays_per_gemm, pl.gemms_at_once)
        if one is None:
            one = run_gemm_memory(sub, m, n, k, conv=conv)
            if cache is not None:
                cache[key] = one
        total = scaled(one, count, pl.rounds, chip.buffers.double_buffered)
        if best is None or _rank(chip, total, pl) < _rank(chip, best[1], best[0].placement):
            best = (GemmGroup(shape, count, pl, sub, one, conv), total)
    return best


def place_gemms(chip: Chip, m: int, n: int, k: int, count: int = 1,
                conv: ConvGeometry | None = None, cache: dict | None = None,
                where: str = "gemm") -> PlacedGemms:
    """Return ``count`` independent m x n x k GEMMs placed on ``chip``'s arrays (see the
    module doc): cut into pieces where a side exceeds MAX_GEMM_DIM, each shape's placement the
    fastest under the memory model, totals exact (integers). ``conv``: the GEMMs are this
    conv's im2col (feeder lowering). ``cache`` (a dict) remembers memory results across calls.
    Raises WorkloadError for a K above the bound."""
    cut = _conv_pieces(conv, m, n) if conv is not None and \
        (m > MAX_GEMM_DIM or n > MAX_GEMM_DIM) else None
    if cut is not None:
        pieces = [(s, c * count, g) for s, c, g in cut]
        cut_m = tuple(s[0] for s, c, _g in cut for _ in range(c))
        cut_n = (n,)
    else:
        if m > MAX_GEMM_DIM or n > MAX_GEMM_DIM:
            conv = None  # an image larger than the bound: pieces of the im2col matrix
        pieces = [(s, c * count, conv) for s, c in gemm_pieces(m, n, k, where)]
        cut_m = tuple(x for x, c in cut_sizes(m) for _ in range(c))
        cut_n = tuple(x for x, c in cut_sizes(n) for _ in range(c))
    groups = []
    mem = None
    folds = 0
    for shape, cnt, geom in pieces:
        group, total = _place_group(chip, shape, cnt, geom, cache)
        groups.append(group)
        mem = total if mem is None else add_results(mem, total)
        folds += map_gemm(chip.array, *shape).folds * cnt
    return PlacedGemms(tuple(groups), mem, folds, cut_m, cut_n)
