"""One writer per results file: an exclusive lock that names its holder, and atomic writes.

The lock is ``flock(2)`` on a companion file ``NAME.lock`` beside the results file (the results
file itself may be replaced atomically, which a lock on it would not survive). The holder writes
``pid host command`` into the companion so that a second writer can say who holds it. The lock
belongs to the open file, so it is released when the holder closes it or dies (even by SIGKILL);
the holder removes the companion before unlocking (on every exit but SIGKILL), and a process
that locked a companion removed meanwhile opens and locks the new one. No companion is created
beside a device (``/dev/full``): such a target is refused. Worker processes forked while a
lock is held close their copy at once (they never write results), so a worker outliving a killed
parent cannot keep the file locked.
"""

from __future__ import annotations

import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..errors import Interrupted, WorkloadError

__all__ = ["exclusive", "holder", "lock_path", "write_atomic"]

_HELD: set[int] = set()  # descriptors of the locks this process holds


def _close_inherited() -> None:
    for fd in list(_HELD):  # the parent still holds them: close our copies only, never unlock
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited)


def lock_path(path: str | Path) -> Path:
    """Return the companion lock file of a results file: ``PATH.lock``."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def holder(path: str | Path) -> str:
    """Return who last took the lock of ``path`` (``pid N on HOST: COMMAND``), or a placeholder."""
    try:
        text = lock_path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    pid, _, rest = text.partition(" ")
    host, _, command = rest.partition(" ")
    if not pid.isdigit():
        return "another process"
    return f"pid {pid} on {host}" + (f" ({command})" if command else "")


def _describe_self() -> str:
    argv = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    command = " ".join(argv).replace("\n", " ")[:300]
    return f"{os.getpid()} {socket.gethostname()} {command}\n"


def _check_regular(path: Path, field: str) -> None:
    """Raise WorkloadError when ``path`` exists and is not a regular file (a device such as
    /dev/full, a FIFO, a directory): results files are read back and replaced, and no lock file
    is ever created beside a device."""
    from .outputs import is_regular_target
    if path.is_dir():
        raise WorkloadError(str(path), field.lstrip("-"), "is a directory; give a file name")
    if not is_regular_target(path):
        raise WorkloadError(str(path), field.lstrip("-"), "is not a regular file (a device, "
                            "FIFO or socket); give a file name")


def _same_file(fd: int, lock: Path) -> bool:
    """Return True when descriptor ``fd`` is still the file at ``lock`` (a holder that
    finished may have removed it after we opened it: then our lock guards nothing)."""
    try:
        a, b = os.fstat(fd), os.stat(lock)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit(143) for the body (main thread only), so ``finally``
    blocks, such as removing a lock file, run when a sweep is terminated."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signal.SIGTERM)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def exclusive(path: str | Path, field: str, wait: bool,
              on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the exclusive lock of results file ``path`` for the body of the ``with``.

    If another process holds it: with ``wait``, call ``on_wait`` with one line naming the holder
    and block until it is released; without, raise WorkloadError (``PATH: FIELD: ...``) naming
    the holder. Ctrl-C while waiting raises Interrupted. The lock file is removed when the body
    ends (normally, by an error, Ctrl-C or SIGTERM; only SIGKILL leaves it, and the next holder
    removes it). Raises WorkloadError for a ``path`` that is not a regular file (no lock file
    beside a device). Needs ``fcntl`` (Linux, macOS, BSD).
    """
    import fcntl
    from .outputs import make_folder
    path = Path(path)
    _check_regular(path, field)
    lock = lock_path(path)
    make_folder(lock.parent, field)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)  # never O_TRUNC: the holder's line
        except OSError as exc:
            raise WorkloadError(str(lock), field, f"cannot create the lock file: "
                                f"{exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                who = holder(path)
                if not wait:
                    raise WorkloadError(str(path), field, f"is being written by {who}; wait for "
                                        "it to finish or choose another file") from None
                if on_wait is not None:
                    on_wait(f"{path}: being written by {who}; waiting for it to finish")
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except KeyboardInterrupt:
                    raise Interrupted(f"while waiting for {path} (held by {who}); nothing "
                                      "written") from None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, lock):
            break
        os.close(fd)  # the previous holder removed the file we locked: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, _describe_self().encode(), 0)
        _HELD.add(fd)
        try:
            with _terminate_as_exit():
                yield
        finally:
            _HELD.discard(fd)
            try:
                os.unlink(lock)  # still holding it: a waiter then sees a removed file, retries
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, text: str, flag: str = "output") -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (tools.outputs): a
    reader, or a run stopped half-way, sees the old file or the new one, never a part. Raises
    OutputError naming the path and ``flag`` when it cannot be written."""
    from .outputs import write_output
    write_output(path, flag, text)
