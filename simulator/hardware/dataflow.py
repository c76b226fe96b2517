"""Mapping a GEMM ``O[M,N] = A[M,K] @ B[K,N]`` onto the array: folds per dataflow (DESIGN s.2).

| dataflow | stationary | fold of                    | outer loop | inner loop | streamed T |
|----------|------------|----------------------------|------------|------------|------------|
| os       | O          | R rows of M x C cols of N  | M (by R)   | N (by C)   | K          |
| ws       | B          | R rows of K x C cols of N  | N (by C)   | K (by R)   | M          |
| is       | A          | R rows of K x C cols of M  | M (by C)   | K (by R)   | N          |

Folds run outer-major: for ws/is every column block finishes all its K folds (in increasing k, the
order the accumulator adds them) before the next block starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from .chip import SystolicArray
from ..errors import WorkloadError

__all__ = ["GemmMapping", "map_gemm", "check_gemm_shape", "ceil_div", "parse_gemm"]


def ceil_div(a: int, b: int) -> int:
    """Return ceil(a / b) for positive integers."""
    return -(-a // b)


@dataclass(frozen=True)
class GemmMapping:
    """How one GEMM is folded onto one array.

    ``outer``/``inner`` are the two folded GEMM dimensions (size and tile per fold); the PE rows of
    a fold come from the outer extent when ``rows_from_outer`` (os) and from the inner extent
    otherwise (ws/is, whose rows hold K). ``stream_len`` is T, the operand stream per fold.
    """

    dataflow: str
    rows: int
    cols: int
    m: int
    n: int
    k: int
    outer_size: int
    outer_tile: int
    inner_size: int
    inner_tile: int
    rows_from_outer: bool
    stream_len: int
    has_stationary_load: bool

    @property
    def outer_folds(self) -> int:
        """Return the number of folds along the outer dimension."""
        return ceil_div(self.outer_size, self.outer_tile)

    @property
    def inner_folds(self) -> int:
        """Return the number of folds along the inner dimension."""
        return ceil_div(self.inner_size, self.inner_tile)

    @property
    def folds(self) -> int:
        """Return the total number of folds (tiles mapped onto the array in turn)."""
        return self.outer_folds * self.inner_folds

    @property
    def macs(self) -> int:
        """Return the useful multiply-accumulates, M*N*K."""
        return self.m * self.n * self.k


# Largest GEMM dimension: keeps every count (MACs, cycles, bytes) inside int64 in the hot loops.
MAX_GEMM_DIM = 1 << 20


def check_gemm_shape(m: object, n: object, k: object, where: str = "gemm",
                     bounded: bool = True) -> tuple[int, int, int]:
    """Return (M, N, K) as ints, or raise WorkloadError unless all are positive integers, and
    (``bounded``) at most MAX_GEMM_DIM (callers that cut larger GEMMs into pieces,
    ``simulator.core.placement``, pass bounded=False)."""
    out = []
    for name, v in (("M", m), ("N", n), ("K", k)):
        ok = not isinstance(v, bool) and (isinstance(v, int) or (hasattr(v, "__index__")))
        if not ok or int(v) <= 0:
            raise WorkloadError(where, f"gemm.{name}", f"must be a positive integer, got {v!r}")
        if bounded and int(v) > MAX_GEMM_DIM:
            raise WorkloadError(where, f"gemm.{name}", f"must be <= {MAX_GEMM_DIM:,}, got {v!r}")
        out.append(int(v))
    return out[0], out[1], out[2]


def parse_gemm(text: str) -> tuple[int, int, int]:
    """Parse ``MxNxK`` (e.g. ``512x512x512``) into positive ints; raise WorkloadError otherwise."""
    where = f"--gemm {text}"
    parts = text.lower().replace("*", "x").split("x")
    if len(parts) != 3:
        raise WorkloadError(where, "gemm", "expected MxNxK, e.g. --gemm 512x512x512")
    dims = []
    for name, p in zip("MNK", parts):
        try:
            v = int(p.strip())
        except ValueError:
            raise WorkloadError(where, f"gemm.{name}",
                                f"must be a positive integer, got {p.strip()!r}") from None
        dims.append(v)
    return check_gemm_shape(*dims, where=where)


def map_gemm(array: SystolicArray, m: int, n: int, k: int) -> GemmMapping:
    """Return the fold structure of an M x N x K GEMM on ``array`` for its dataflow."""
    m, n, k = check_gemm_shape(m, n, k)
    r, c = array.rows, array.cols
    df = array.dataflow
    if df == "os":
        return GemmMapping(df, r, c, m, n, k, m, r, n, c, True, k, False)
    if df == "ws":
        return GemmMapping(df, r, c, m, n, k, n, c, k, r, False, m, True)
    if df == "is":
        return GemmMapping(df, r, c, m, n, k, m, c, k, r, False, n, True)
    raise ValueError(f"unknown dataflow {df!r}")  # pragma: no cover - config validates it
