"""Collective communication costs with the alpha-beta model (seconds).

``alpha`` is the latency of one message over one link (s), ``bw`` the bandwidth a chip drives
into the collective (bytes/s), ``size`` the bytes each chip holds (all-reduce: the whole buffer;
all-gather: the gathered result; reduce-scatter: the input; all-to-all: what each chip sends
out, its own share included). ``n`` chips take part; one chip costs nothing.

Formulas (Thakur, Rabenseifner and Gropp, "Optimization of Collective Communication Operations
in MPICH", IJHPCA 2005; Patarasuk and Yuan, "Bandwidth optimal all-reduce algorithms for
clusters of workstations", JPDC 2009):

* ring all-reduce: ``2 (n-1)/n x size / bw + 2 (n-1) x alpha`` (reduce-scatter then all-gather,
  n-1 steps each);
* ring all-gather and reduce-scatter: half of that each, ``(n-1)/n x size / bw + (n-1) alpha``;
* tree all-reduce (binomial-tree reduce, then broadcast): ``2 ceil(log2 n) x (alpha + size / bw)``;
* all-to-all by pairwise exchange: ``(n-1) alpha + (n-1)/n x size / bw``;
* a k-dimensional torus (Mikami et al., "Massively distributed SGD: ImageNet/ResNet-50 training
  in a flash", arXiv:1811.05233, 2-D-torus all-reduce; the same on any number of dimensions):
  a ring collective along each dimension in turn, dimension i over ``d_i`` chips moving the
  ``size / (d_1 ... d_{i-1})`` bytes left by the earlier ones;
* on a ring topology an all-to-all message travels ``n/4`` hops on average (bidirectional
  ring), so its bandwidth term is multiplied by ``max(1, n/4)``.
"""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["all_gather", "all_reduce_ring", "all_reduce_tree", "all_to_all", "reduce_scatter",
           "torus_all_gather", "torus_all_reduce", "torus_all_to_all"]


def all_reduce_ring(size: float, n: int, bw: float, alpha: float) -> float:
    """Return the seconds of a ring all-reduce of ``size`` bytes over ``n`` chips."""
    if n <= 1:
        return 0.0
    return 2.0 * (n - 1) / n * size / bw + 2.0 * (n - 1) * alpha


def all_gather(size: float, n: int, bw: float, alpha: float) -> float:
    """Return the seconds of a ring all-gather whose result is ``size`` bytes per chip."""
    if n <= 1:
        return 0.0
    return (n - 1) / n * size / bw + (n - 1) * alpha


def reduce_scatter(size: float, n: int, bw: float, alpha: float) -> float:
    """Return the seconds of a ring reduce-scatter of a ``size``-byte buffer per chip."""
    return all_gather(size, n, bw, alpha)


def all_reduce_tree(size: float, n: int, bw: float, alpha: float) -> float:
    """Return the seconds of a binomial-tree reduce then broadcast of ``size`` bytes."""
    if n <= 1:
        return 0.0
    return 2.0 * math.ceil(math.log2(n)) * (alpha + size / bw)


def all_to_all(size: float, n: int, bw: float, alpha: float, hops: float = 1.0) -> float:
    """Return the seconds of a pairwise-exchange all-to-all of ``size`` bytes per chip; each
    byte crossing ``hops`` links on average (1 through a switch)."""
    if n <= 1:
        return 0.0
    return (n - 1) * alpha + (n - 1) / n * size / bw * max(1.0, hops)


def torus_all_reduce(size: float, dims: Sequence[int], bw_dim: float, alpha: float) -> float:
    """Return the seconds of an all-reduce on a torus of ``dims`` chips: reduce-scatter along
    each dimension in turn, then all-gather back (``bw_dim``: bytes/s along one dimension)."""
    total = 0.0
    share = float(size)
    for d in dims:
        total += all_reduce_ring(share, d, bw_dim, alpha)
        share /= d
    return total


def torus_all_gather(size: float, dims: Sequence[int], bw_dim: float, alpha: float) -> float:
    """Return the seconds of an all-gather (or reduce-scatter) of ``size`` bytes on a torus."""
    return torus_all_reduce(size, dims, bw_dim, alpha) / 2.0


def torus_all_to_all(size: float, dims: Sequence[int], bw_dim: float, alpha: float) -> float:
    """Return the seconds of a dimension-ordered all-to-all on a torus: one all-to-all of all
    ``size`` bytes along each dimension, messages crossing ``d/4`` links on average."""
    return sum(all_to_all(size, d, bw_dim, alpha, d / 4.0) for d in dims if d > 1)
