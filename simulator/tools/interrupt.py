"""Ctrl-C (SIGINT) handling: finish a write before stopping; worker processes that leave
Ctrl-C to their parent.

A terminal sends SIGINT to every process of the foreground group, pool workers included. The
workers ignore it (``start_workers`` blocks it while they are created, ``worker_initializer``
ignores it in each worker), so only the parent stops: it stops its workers itself and prints
one line, instead of each worker printing a traceback.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["deferred", "ignored", "start_workers", "worker_initializer"]


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def deferred() -> Iterator[None]:
    """Hold off Ctrl-C until the body of the ``with`` is done (a write must not be torn), then
    raise the KeyboardInterrupt it would have raised. A no-op off the main thread."""
    if not _main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(signal.SIGINT, None)
        elif caught and previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)


@contextmanager
def start_workers() -> Iterator[None]:
    """Block SIGINT in this thread while worker processes and helper threads are started in the
    body (they inherit the mask, so they cannot be stopped before ``worker_initializer`` runs);
    a Ctrl-C in the meantime is delivered when the body ends."""
    if not (_main_thread() and hasattr(signal, "pthread_sigmask")):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def ignored() -> Iterator[None]:
    """Ignore SIGINT in this process for the body of the ``with``: processes it spawns (which
    start a fresh interpreter) keep ignoring it for life. A Ctrl-C in the body is lost."""
    if not _main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def worker_initializer() -> None:
    """In a worker process: ignore SIGINT from now on (the parent stops the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
