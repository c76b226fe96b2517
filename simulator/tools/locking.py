"""One writer per results file: an exclusive lock that names its holder, and atomic writes.

The lock is ``flock(2)`` on a companion file ``NAME.lock`` beside the results file (the results
file itself may be replaced atomically, which a lock on it would not survive). The holder writes
``pid host command`` into the companion so that a second writer can say who holds it. The lock
belongs to the open file, so it is released when the holder closes it or dies (even by SIGKILL);
the companion file stays behind, empty of meaning once unlocked. Worker processes forked while a
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


@contextmanager
def exclusive(path: str | Path, field: str, wait: bool,
              on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the exclusive lock of results file ``path`` for the body of the ``with``.

    If another process holds it: with ``wait``, call ``on_wait`` with one line naming the holder
    and block until it is released; without, raise WorkloadError (``PATH: FIELD: ...``) naming
    the holder. Ctrl-C while waiting raises Interrupted. Needs ``fcntl`` (Linux, macOS, BSD).
    """
    import fcntl
    path = Path(path)
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
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
                raise WorkloadError(str(path), field, f"is being written by {who}; wait for it "
                                    "to finish or choose another file") from None
            if on_wait is not None:
                on_wait(f"{path}: being written by {who}; waiting for it to finish")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except KeyboardInterrupt:
                raise Interrupted(f"while waiting for {path} (held by {who}); nothing "
                                  "written") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, _describe_self().encode(), 0)
        _HELD.add(fd)
        try:
            yield
        finally:
            _HELD.discard(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a reader, or a run
    stopped half-way, sees the old file or the new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
