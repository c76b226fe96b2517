"""Every file a command writes, and its standard output, go through here: a write that fails
(full disk, read-only file system, no permission, missing folder, a folder where a file is
expected, a closed pipe) ends in one line naming the path, and never leaves a part of a file.

A regular file is written to a temporary file in the same folder and renamed over the target
(``os.replace``): a reader, a full disk or a kill sees the old file or the new one, never a part.
A target that exists and is not a regular file (``/dev/null``, ``/dev/full``, a FIFO, a terminal)
is written in place, and nothing is ever created beside it (no temporary or lock file in /dev).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

from ..errors import WorkloadError

__all__ = ["OutputError", "atomic_file", "check_output_path", "is_regular_target", "make_folder",
           "os_error_text", "write_output", "write_with"]


class OutputError(WorkloadError):
    """An output that could not be written: ``PATH: FLAG: cannot be written: REASON``."""


_REASONS = {errno.ENOSPC: "no space left on the device", errno.EROFS: "read-only file system",
            errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
            errno.ENOENT: "no such folder", errno.EISDIR: "is a directory",
            errno.ENOTDIR: "a parent is not a folder", errno.EPIPE: "the reader closed the pipe",
            errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large",
            errno.ENAMETOOLONG: "file name too long"}


def os_error_text(exc: OSError) -> str:
    """Return a short reason for an OSError (``no space left on the device``), never a path."""
    return _REASONS.get(exc.errno, exc.strerror or type(exc).__name__)


def _error(path: str | Path, flag: str, exc: OSError) -> OutputError:
    return OutputError(f"{path}", flag.lstrip("-") or "output",
                       f"cannot be written: {os_error_text(exc)}")


def is_regular_target(path: str | Path) -> bool:
    """Return True when ``path`` is a regular file or does not exist yet (written by temporary
    file and rename); False for a device, FIFO, socket or directory (written in place, if at all)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return True  # e.g. a parent that is not a folder: the write reports it


def check_output_path(path: str, flag: str) -> Path:
    """Return ``path`` as a Path when a file can be written there: a writable device or FIFO, or
    a name (not a directory) in an existing, writable folder. Raises OutputError naming ``flag``
    otherwise; called before a simulation starts, so a bad path costs nothing."""
    p = Path(path)
    name = flag.lstrip("-")
    where = f"{flag} {path}"
    if p.is_dir():
        raise OutputError(where, name, "is a directory; give a file name")
    if p.exists() and not is_regular_target(p):
        if not os.access(p, os.W_OK):
            raise OutputError(where, name, "cannot be written (permission denied)")
        return p
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(where, name, f"directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise OutputError(where, name, "cannot be written (permission denied)")
    return p


@contextmanager
def atomic_file(path: str | Path, flag: str, mode: str = "w",
                newline: str | None = None) -> Iterator[IO]:
    """Open ``path`` for writing for the body of the ``with`` and yield the file object.

    A regular target is written to a temporary file in its folder and renamed over it when the
    body ends without an error (on an error the temporary file is removed and the target keeps
    its old contents); a device or FIFO is written in place. Any OSError (in the body or on
    closing) becomes OutputError: ``PATH: FLAG: cannot be written: REASON``.
    """
    path = Path(path)
    encoding = None if "b" in mode else "utf-8"
    if not is_regular_target(path):
        try:
            with open(path, mode, encoding=encoding, newline=newline) as fh:
                yield fh
        except OSError as exc:
            raise _error(path, flag, exc) from None
        return
    if path.is_dir():
        raise _error(path, flag, OSError(errno.EISDIR, "is a directory"))
    folder = path.parent if str(path.parent) else Path(".")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        try:  # keep the mode a plain open() would give the new file
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        except OSError:
            pass
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise _error(path, flag, exc) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def make_folder(folder: str | Path, flag: str) -> Path:
    """Create ``folder`` and its parents if missing; return it as a Path. Raises OutputError
    naming the folder and ``flag`` when it cannot be created (read-only, a file in the way)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(str(folder), flag.lstrip("-"), "cannot be created: a file or device "
                          "of that name is in the way") from None
    except OSError as exc:
        raise _error(folder, flag, exc) from None
    return folder


def write_output(path: str | Path, flag: str, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) whole to ``path`` through ``atomic_file``;
    return the Path. Raises OutputError naming the path and ``flag`` when it cannot be written."""
    with atomic_file(path, flag, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)
    return Path(path)


def write_with(path: str | Path, flag: str, writer: Callable[[IO], None],
               binary: bool = False) -> Path:
    """Call ``writer(fh)`` on a file opened by ``atomic_file`` (binary or text); return the
    Path. Raises OutputError as ``atomic_file`` does."""
    with atomic_file(path, flag, "wb" if binary else "w", newline=None if binary else "") as fh:
        writer(fh)
    return Path(path)
