"""Given input values for a model (``--inputs FILE.npz|FILE.npy``) and its saved outputs
(``--save-outputs FILE.npz``), shared by every model road (the zoo, PyTorch, ONNX).

A .npz holds one array per graph input, by input name; a .npy holds the one array of a
single-input model. Every problem is a WorkloadError ``FILE: FIELD: why`` (one line, exit 2):
a missing or unreadable file, a name the model does not have, an input left out, a shape the
model does not take, an array that is not numbers, integers outside the ids' range.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import WorkloadError

__all__ = ["Feed", "load_arrays", "match_feeds", "save_arrays"]

_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


@dataclass(frozen=True)
class Feed:
    """One graph input a model takes: ``dims`` (None: any shape; a None entry: any size on
    that axis), ``dtype`` (None: any numeric type, else values are cast to it when numpy's
    same-kind rule allows), ``bound`` (integer ids must lie in [0, bound)), ``required`` (an
    input the model fills itself, like the zoo's causal mask, may be left out)."""

    name: str
    dims: tuple | None = None
    dtype: np.dtype | None = None
    bound: int | None = None
    required: bool = True


def load_arrays(path: str | Path) -> dict[str, np.ndarray] | np.ndarray:
    """Return the arrays of a .npz (name -> array) or the one array of a .npy, each checked
    to hold numbers; raise WorkloadError naming the file (and the array) otherwise."""
    path = str(path)
    where = f"{path}"
    if Path(path).is_dir():
        raise WorkloadError(where, "inputs", "is a directory, not a .npz or .npy file")
    if not Path(path).is_file():
        raise WorkloadError(where, "inputs", "no such file")
    suffix = Path(path).suffix.lower()
    if suffix not in (".npz", ".npy"):
        raise WorkloadError(where, "inputs", "must be a .npz (one array per input name) or a "
                            ".npy (the one input of a single-input model)")
    from ..io_limits import load_array
    try:
        loaded = load_array(path, WorkloadError, "inputs", line=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            return _numeric(path, "array", loaded)
        with loaded:
            arrays = {k: _npz_array(path, loaded, k) for k in loaded.files}
    except WorkloadError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise WorkloadError(where, "inputs", f"not a readable {suffix} file "
                            f"({type(exc).__name__}: {_first_line(exc)})") from None
    if not arrays:
        raise WorkloadError(where, "inputs", "holds no arrays")
    return arrays


def _first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message (at most 200 characters)."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""


def _npz_array(path: str, loaded, key: str) -> np.ndarray:
    """Return the numeric array ``key`` of an open .npz; raise WorkloadError naming it when it
    holds Python objects (which would need unpickling) or anything but numbers."""
    try:
        value = loaded[key]
    except ValueError as exc:  # object arrays: np.load refuses to unpickle them
        raise WorkloadError(path, f"array {key}", f"holds Python objects, not numbers "
                            f"({_first_line(exc)})") from None
    return _numeric(path, key, value)


def _numeric(path: str, name: str, value) -> np.ndarray:
    """Return ``value`` as an array when it holds numbers; raise WorkloadError otherwise."""
    arr = np.asarray(value)
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise WorkloadError(path, f"array {name}", f"holds {arr.dtype} values, not numbers")
    return arr


def match_feeds(arrays: dict[str, np.ndarray] | np.ndarray, feeds: list[Feed],
                path: str) -> dict[str, np.ndarray]:
    """Return the given value of each of ``feeds`` by name (a .npy's one array for the one
    required input), checked against names, shapes, types and ids' range and cast to the
    feed's dtype; raise WorkloadError naming ``path`` and the array otherwise."""
    names = ", ".join(f.name for f in feeds) or "none"
    if not isinstance(arrays, dict):
        required = [f for f in feeds if f.required]
        if len(required) != 1:
            raise WorkloadError(path, "inputs", f"a .npy holds one array but the model has "
                                f"{len(required)} inputs ({names}); give a .npz with one "
                                "array per input name")
        arrays = {required[0].name: arrays}
    by_name = {f.name: f for f in feeds}
    for key in arrays:
        if key not in by_name:
            raise WorkloadError(path, f"array {key}", f"the model has no input {key!r} "
                                f"(inputs: {names})")
    for f in feeds:
        if f.required and f.name not in arrays:
            raise WorkloadError(path, f"array {f.name}", f"missing: the model's inputs are "
                                f"{names}")
    return {k: _checked(path, by_name[k], v) for k, v in arrays.items()}


def _checked(path: str, feed: Feed, value: np.ndarray) -> np.ndarray:
    """Return ``value`` cast to the feed's dtype after checking its shape and ids' range."""
    where = f"array {feed.name}"
    shape = tuple(value.shape)
    if feed.dims is not None and (len(shape) != len(feed.dims) or any(
            d is not None and d != s for d, s in zip(feed.dims, shape))):
        want = "x".join("?" if d is None else str(d) for d in feed.dims) or "a scalar"
        raise WorkloadError(path, where, f"has shape {'x'.join(map(str, shape)) or '()'}; the "
                            f"model takes {want}")
    if 0 in shape:
        raise WorkloadError(path, where, f"is empty (shape {shape})")
    if feed.dtype is not None and value.dtype != feed.dtype:
        if not np.can_cast(value.dtype, feed.dtype, "same_kind"):
            raise WorkloadError(path, where, f"holds {value.dtype}; the model takes "
                                f"{feed.dtype}")
        value = value.astype(feed.dtype)
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise WorkloadError(path, where, "holds NaN or infinite values")
    if feed.bound is not None:
        if value.dtype.kind not in "iu":
            raise WorkloadError(path, where, f"holds {value.dtype}; ids must be integers")
        if value.min() < 0 or value.max() >= feed.bound:
            raise WorkloadError(path, where, f"ids must lie in [0, {feed.bound}), got "
                                f"[{value.min()}, {value.max()}]")
    return value


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` (name -> array) to the .npz ``path``; raise WorkloadError (the file,
    ``save-outputs``) when it cannot be written."""
    path = str(path)
    if Path(path).suffix.lower() != ".npz":
        raise WorkloadError(path, "save-outputs", "must be a .npz file")
    from ..tools.outputs import write_with  # lazy: frontends do not load tools
    write_with(path, "save-outputs",
               lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()}),
               binary=True)
