"""Standard output that fails in one line: a full device (``> /dev/full``), a read-only or
missing target, and, for the caller to end quietly, a reader that closed the pipe (``| head``).

``guarded()`` swaps ``sys.stdout`` for a wrapper for the body of a ``with``: a write or flush
that fails with OSError points file descriptor 1 at /dev/null (so the interpreter's own flush at
exit cannot print a second message) and raises OutputError naming ``<stdout>``, or
BrokenPipeError when the reader has gone.
"""

from __future__ import annotations

import errno
import os
import sys
from contextlib import contextmanager
from typing import Iterator, TextIO

from .outputs import OutputError, os_error_text

__all__ = ["GuardedStream", "guarded", "silence_stdout"]


def silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null: text still buffered in ``sys.stdout`` then goes
    nowhere instead of failing again when the interpreter flushes it at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
        os.close(devnull)
    except (OSError, ValueError):
        pass


class GuardedStream:
    """A text stream whose write and flush turn OSError into OutputError (``<stdout>``), or
    re-raise BrokenPipeError; everything else is the wrapped stream's."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def _fail(self, exc: OSError):
        if self._stream is sys.__stdout__:
            silence_stdout()
        if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
            return BrokenPipeError(errno.EPIPE, "broken pipe")
        return OutputError("<stdout>", "stdout", f"cannot be written: {os_error_text(exc)}")

    def write(self, text: str) -> int:
        """Write ``text``; return the characters written."""
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise self._fail(exc) from None

    def flush(self) -> None:
        """Flush the wrapped stream."""
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._fail(exc) from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextmanager
def guarded() -> Iterator[None]:
    """Guard ``sys.stdout`` for the body of the ``with`` and flush it at the end (so a full
    device is reported inside the body's error handling); restore the stream afterwards."""
    original = sys.stdout
    if original is None or isinstance(original, GuardedStream):
        yield
        return
    sys.stdout = GuardedStream(original)
    try:
        yield
        sys.stdout.flush()
    finally:
        sys.stdout = original
