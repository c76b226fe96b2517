"""Long numba loops that Ctrl-C can stop: the one mechanism every hot loop's caller uses.

Python runs a signal handler (Ctrl-C's KeyboardInterrupt) only between bytecodes of the main
thread, so a numba loop of minutes called from the main thread takes Ctrl-C only when it
returns. ``call`` runs such a loop (compiled ``nogil=True``) in a daemon helper thread while the
main thread waits in ``WAIT_S`` slices: a Ctrl-C reaches the main thread within a slice, and the
command ends with one line and exit status 130 (docs/errors.md, "Bounded work"). The loop's
thread is abandoned then (it holds no lock and no file; what it writes is a buffer nobody reads)
and ends with the process: the console script (``simulator._entry``) sees ``abandoned()`` and
ends the process with ``os._exit`` once its line is written, rather than finalizing the
interpreter under a loop that still runs (which took 0.7 s on a loaded two-core machine).

Values and cycles do not change: the same compiled function runs on the same arrays, only in
another thread. Small calls (``work`` at most ``THREADED_WORK``) run in the caller's thread,
where starting a thread would cost more than the loop.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

__all__ = ["THREADED_WORK", "WAIT_S", "abandoned", "call"]

# Work units (tile steps, MACs, PE-cycles: each about 1 to 30 ns) above which a loop runs in a
# helper thread: 2^20 units are 1 to 30 ms, against about 0.1 ms to start a thread.
THREADED_WORK = 1 << 20
# How long the main thread waits on the helper thread between chances to take Ctrl-C (s).
WAIT_S = 0.1

_running: set[str] = set()  # names (with a serial number) of ``call``'s helper threads at work
_serial = [0]


def abandoned() -> bool:
    """Return True when a helper thread of ``call`` still runs its loop: its caller was
    interrupted (Ctrl-C) and left it behind. (Kept by the threads themselves:
    ``Thread.is_alive`` can read False after a KeyboardInterrupt interrupted ``join``.)"""
    return bool(_running)


def call(work: int, fn: Callable[..., Any], *args: Any, name: str = "hot-loop") -> Any:
    """Return ``fn(*args)``; when ``work`` (the loop's size in its own units, an int) exceeds
    ``THREADED_WORK``, run it in a daemon thread named ``name`` and wait in ``WAIT_S`` second
    slices, so that a KeyboardInterrupt (Ctrl-C) is raised in the caller within ``WAIT_S``
    seconds. An exception raised by ``fn`` is re-raised in the caller's thread. ``fn`` must
    release the GIL (numba ``nogil=True``), or the main thread cannot run in the meantime.
    While a loop left running by an earlier Ctrl-C is still at work (in a process that lives
    on, a notebook), a threaded call waits for it first."""
    if work <= THREADED_WORK:
        return fn(*args)
    while _running:  # a loop an earlier Ctrl-C left running (a notebook): one loop at a time,
        time.sleep(WAIT_S)  # as numba's parallel layers are not all safe to enter twice
    out: list = []
    failed: list = []
    _serial[0] += 1
    key = f"{name}-{_serial[0]}"
    _running.add(key)

    def target() -> None:
        try:
            out.append(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failed.append(exc)
        finally:
            _running.discard(key)
    thread = threading.Thread(target=target, name=key, daemon=True)
    try:
        thread.start()
    except BaseException:
        _running.discard(key)
        raise
    while thread.is_alive():
        thread.join(WAIT_S)
    if failed:
        raise failed[0]
    return out[0]
