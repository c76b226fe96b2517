"""The one boundary for untrusted input files (issue 32, item 1).

Every file a user names (a chip config, a model YAML, a topology CSV, a sweep spec, an ONNX
model and its external data, a .npy / .npz, a PyTorch factory file) is opened through this
module, which

- refuses anything that is not a regular file where a file is expected (``/dev/zero``, a FIFO,
  a directory, a socket) without blocking on it (``O_NONBLOCK``);
- caps the size per kind (:data:`LIMITS`, overridable by ``SYSTOLIC_SIM_MAX_BYTES_<KIND>``,
  e.g. ``SYSTOLIC_SIM_MAX_BYTES_CONFIG=4M``) and never reads more than the cap plus one byte;
- confines files that a format references (ONNX external data) to the referencing file's
  folder: no absolute paths, no ``..``, no symlinks that lead out, no NUL, bounded length.

Every refusal is a :class:`~simulator.errors.SimulatorInputError` subclass chosen by the caller,
so the command line prints it as one line naming the file and the limit, exit status 2.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import SimulatorInputError

__all__ = ["LIMITS", "check_planned_bytes", "check_regular", "confine", "limit", "load_array",
           "memory_budget", "open_regular", "read_bytes", "read_text"]

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

# kind -> (default cap in bytes, what the file is, in messages)
LIMITS: dict[str, tuple[int, str]] = {
    "config": (1 * MIB, "a chip config file"),
    "model": (1 * MIB, "a model YAML file"),
    "topology": (16 * MIB, "a topology CSV file"),
    "sweep": (1 * MIB, "a sweep spec file"),
    "results": (1 * GIB, "a results CSV file"),
    "onnx": (2 * GIB, "an ONNX model file"),
    "tflite": (2 * GIB, "a TFLite flatbuffer"),  # 2 GiB: all a flatbuffer addresses
    "onnx_data": (64 * GIB, "an ONNX external data file"),
    "npy": (1 * GIB, "a .npy / .npz array file"),
    "torch": (1 * MIB, "a PyTorch factory file"),
    "keras": (1 * MIB, "a Keras factory file"),
    "json": (64 * MIB, "a JSON file"),
}
ENV_PREFIX = "SYSTOLIC_SIM_MAX_BYTES_"
MAX_LOCATION_CHARS = 1024  # an external data location longer than this is refused
_SUFFIX = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": 1 << 40}


def _format_bytes(n: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n:,} bytes"


def limit(kind: str) -> int:
    """Return the size cap in bytes of files of ``kind``: ``SYSTOLIC_SIM_MAX_BYTES_<KIND>``
    (an integer with an optional K, M, G or T suffix, powers of 1024) or the default."""
    default, _ = LIMITS[kind]
    raw = os.environ.get(ENV_PREFIX + kind.upper(), "").strip()
    return _parse_bytes(kind, raw) if raw else default


def _parse_bytes(kind: str, raw: str) -> int:
    """Return the byte count of ``SYSTOLIC_SIM_MAX_BYTES_<KIND>=raw``; raise otherwise."""
    num, suffix = (raw[:-1], raw[-1].upper()) if raw[-1].upper() in _SUFFIX else (raw, "")
    try:
        value = int(num) * _SUFFIX[suffix]
    except ValueError:
        raise SimulatorInputError(f"{ENV_PREFIX}{kind.upper()}={raw}", "",
                                  "expected a byte count such as 4194304 or 4M") from None
    if value < 0:
        raise SimulatorInputError(f"{ENV_PREFIX}{kind.upper()}={raw}", "",
                                  "must be 0 or more bytes")
    return value


def _kind_text(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _where(path, line: bool) -> str:
    return f"{path}:1" if line else str(path)


def _check_size(path, kind: str, size: int, error, field: str, line: bool) -> None:
    cap = limit(kind)
    if size > cap:
        raise error(_where(path, line), field,
                    f"{_format_bytes(size) if size < 10 * GIB else f'{size:,} bytes'} is over the "
                    f"limit of {_format_bytes(cap)} for {LIMITS[kind][1]} (set "
                    f"{ENV_PREFIX}{kind.upper()} to raise it)")


def _os_error(path, exc: OSError, error, field: str, line: bool):
    if exc.errno == errno.ENOENT:
        return error(_where(path, line), field, "no such file")
    if exc.errno == errno.ENAMETOOLONG:
        return error(_where(str(path)[:200] + "...", line), field, "file name too long")
    return error(_where(path, line), field, exc.strerror or str(exc))


def open_regular(path, kind: str, error: type[SimulatorInputError], field: str = "",
                 line: bool = True) -> tuple[int, int]:
    """Open ``path`` read-only without blocking; return (fd, size). Raise ``error`` (located at
    ``FILE:1`` when ``line``) when it is missing, not a regular file, or over the cap of
    ``kind``. The caller closes the fd."""
    if "\0" in str(path):
        raise error(_where(repr(str(path))[1:-1], line), field, "file name holds a NUL byte")
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _os_error(path, exc, error, field, line) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(_where(path, line), field, f"is {_kind_text(st.st_mode)}, not "
                        f"{LIMITS[kind][1]}")
        _check_size(path, kind, st.st_size, error, field, line)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def check_regular(path, kind: str, error: type[SimulatorInputError], field: str = "",
                  line: bool = True) -> int:
    """Check that ``path`` is a regular file within the cap of ``kind`` (for libraries that
    open the file themselves); return its size. Raises ``error`` as :func:`open_regular`."""
    fd, size = open_regular(path, kind, error, field, line)
    os.close(fd)
    return size


def read_bytes(path, kind: str, error: type[SimulatorInputError], field: str = "",
               line: bool = True) -> bytes:
    """Return the bytes of the regular file ``path``, never reading more than the cap of
    ``kind`` plus one byte (a file that grows while read is refused as well)."""
    fd, _ = open_regular(path, kind, error, field, line)
    cap = limit(kind)
    chunks, total = [], 0
    try:
        while True:
            chunk = os.read(fd, min(1 << 20, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                _check_size(path, kind, total, error, field, line)
    except OSError as exc:
        raise _os_error(path, exc, error, field, line) from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_text(path, kind: str, error: type[SimulatorInputError], field: str = "",
              line: bool = True) -> str:
    """Return the UTF-8 text of ``path`` read through :func:`read_bytes`."""
    data = read_bytes(path, kind, error, field, line)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(_where(path, line), field, f"not UTF-8 text ({exc.reason} at byte "
                    f"{exc.start:,})") from None


def confine(base: str | Path, location: str, error: type[SimulatorInputError], where: str,
            field: str) -> Path:
    """Return the resolved path of ``location`` (a file name a format references, such as an
    ONNX tensor's external data) inside the folder ``base``. Raise ``error`` when it is empty,
    longer than :data:`MAX_LOCATION_CHARS`, holds a NUL byte, is absolute, has a ``..``
    component, or resolves (following symlinks) outside ``base``."""
    shown = repr(location if len(location) <= 80 else location[:80] + "...")
    if not location:
        raise error(where, field, "external data location is empty")
    if len(location) > MAX_LOCATION_CHARS:
        raise error(where, field, f"external data location of {len(location):,} characters is "
                    f"over the limit of {MAX_LOCATION_CHARS:,}")
    if "\0" in location:
        raise error(where, field, f"external data location {shown} holds a NUL byte")
    pure = Path(location)
    if pure.is_absolute() or location.startswith(("/", "\\")) or (len(location) > 1
                                                                   and location[1] == ":"):
        raise error(where, field, f"external data location {shown} is an absolute path; it "
                    "must name a file in the model's folder")
    if ".." in pure.parts or ".." in location.replace("\\", "/").split("/"):
        raise error(where, field, f"external data location {shown} climbs out with '..'; it "
                    "must name a file in the model's folder")
    root = Path(base).resolve()
    try:
        target = (root / pure).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise error(where, field, f"external data location {shown} cannot be resolved "
                    f"({exc})") from None
    if root not in target.parents:
        raise error(where, field, f"external data location {shown} leads outside the model's "
                    f"folder {root} (through a symlink)")
    return target


def load_array(path, error: type[SimulatorInputError], field: str = "", line: bool = True,
               npz: bool = True):
    """Return ``np.load(path)`` (an array, or an NpzFile when ``npz``) after the boundary's
    checks: a regular file within the ``npy`` cap, and, before anything is allocated, a .npy
    header (or every .npz member's) that declares no more bytes than the cap and than the file
    holds, and no Python objects. Raise ``error`` naming the file otherwise (0 bytes, not a
    .npy, truncated, a header declaring terabytes)."""
    import zipfile

    import numpy as np
    fd, size = open_regular(path, "npy", error, field, line)
    cap = limit("npy")
    where = _where(path, line)
    try:
        with os.fdopen(fd, "rb") as fh:
            magic = fh.read(6)
            if size == 0:
                raise error(where, field, "is empty (0 bytes), not a .npy array")
            if magic.startswith(b"PK"):
                if not npz:
                    raise error(where, field, "is a .npz archive; give one array as a .npy")
                fh.seek(0)
                with zipfile.ZipFile(fh) as zf:
                    members = zf.infolist()
                    total = sum(m.file_size for m in members)
                    if total > cap:
                        raise error(where, field, f"its arrays unpack to {total:,} bytes, over "
                                    f"the limit of {_format_bytes(cap)} for {LIMITS['npy'][1]} "
                                    f"(set {ENV_PREFIX}NPY to raise it)")
                    for m in members:
                        with zf.open(m) as member:
                            _check_npy_header(member, m.file_size, f"{where}", field, error,
                                              cap, f"array {m.filename}")
            elif magic != b"\x93NUMPY":
                raise error(where, field, "not a .npy array (no NUMPY header)")
            else:
                fh.seek(0)
                _check_npy_header(fh, size, where, field, error, cap, "")
    except SimulatorInputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise error(where, field, f"not a readable array file ({type(exc).__name__}: "
                    f"{text})") from None
    try:
        return np.load(os.fspath(path), allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise error(where, field, f"not a readable array file ({type(exc).__name__}: "
                    f"{text})") from None


def _check_npy_header(fh, size: int, where: str, field: str, error, cap: int,
                      what: str) -> None:
    """Raise ``error`` when the .npy header read from ``fh`` is malformed, declares Python
    objects, or declares more bytes than ``cap`` or than the ``size`` bytes the file holds."""
    import math

    from numpy.lib import format as npf
    label = f"{what}: " if what else ""
    version = npf.read_magic(fh)
    if version == (1, 0):
        shape, _fortran, dtype = npf.read_array_header_1_0(fh, max_header_size=10000)
    elif version == (2, 0):
        shape, _fortran, dtype = npf.read_array_header_2_0(fh, max_header_size=10000)
    else:  # 3.0: a UTF-8 header, read by numpy's own private reader
        impl = getattr(npf, "_read_array_header", None)
        if impl is None:
            from numpy.lib import _format_impl
            impl = _format_impl._read_array_header
        shape, _fortran, dtype = impl(fh, version, max_header_size=10000)
    if dtype.hasobject:
        raise error(where, field, f"{label}holds Python objects, not numbers")
    if any(int(d) < 0 for d in shape):
        raise error(where, field, f"{label}declares a negative dimension {shape}")
    nbytes = math.prod(int(d) for d in shape) * dtype.itemsize
    if nbytes > cap:
        raise error(where, field, f"{label}its header declares {nbytes:,} bytes "
                    f"(shape {'x'.join(map(str, shape)) or 'scalar'}, {dtype}), over the limit "
                    f"of {_format_bytes(cap)} for {LIMITS['npy'][1]} (set {ENV_PREFIX}NPY to "
                    "raise it)")
    body = size - fh.tell()
    if nbytes > body:
        raise error(where, field, f"{label}is truncated: its header declares {nbytes:,} bytes "
                    f"(shape {'x'.join(map(str, shape)) or 'scalar'}, {dtype}), the file holds "
                    f"{max(body, 0):,}")


def memory_budget() -> int:
    """Return the bytes a command may plan to allocate for arrays that scale with a count the
    user gives (a batch, a dataset): ``SYSTOLIC_SIM_MAX_BYTES_MEMORY`` (K, M, G, T suffixes)
    or half this machine's physical memory (4 GiB where it cannot be read)."""
    raw = os.environ.get(ENV_PREFIX + "MEMORY", "").strip()
    if raw:
        return _parse_bytes("memory", raw)
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 4 * GIB


def check_planned_bytes(nbytes: int, error: type[SimulatorInputError], location: str,
                        field: str, what: str, of: str = "arrays") -> None:
    """Raise ``error`` (one line) when ``nbytes`` of planned ``of`` (arrays, rows) exceed
    :func:`memory_budget`, before anything is allocated; return None otherwise."""
    budget = memory_budget()
    if nbytes > budget:
        raise error(location, field, f"{what} needs about {nbytes:,} bytes of {of}, over the "
                    f"limit of {budget:,} (half this machine's memory; set "
                    f"{ENV_PREFIX}MEMORY to change it)")


def read_user_file(path: str | Path, error: type[SimulatorInputError], what: str,
                   kind: str = "config") -> str:
    """Return the UTF-8 text of a user-given file through the input boundary
    (:mod:`simulator.io_limits`: a regular file within the size cap of ``kind``), or raise
    ``error`` located at ``FILE:1`` (no such file, a directory or device, too big, not UTF-8,
    unreadable); ``what`` names the kind expected."""
    return read_text(path, kind, error)
