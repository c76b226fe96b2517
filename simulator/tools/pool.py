"""Worker processes of a sweep: how many, and that they die with their parent.

Pool size: ``min(workers, rows, WORKERS_PER_CPU x CPUs)``, where CPUs are those this process
may run on (``os.sched_getaffinity``, else ``os.cpu_count()``) and ``workers`` defaults to the
CPUs. More processes than rows would idle; more than twice the CPUs only adds memory (each
worker holds its own interpreter, numpy and numba, ~170 MB) and switching.

Parent death: a worker asks the kernel for SIGKILL when its parent dies (Linux
``prctl(PR_SET_PDEATHSIG)``), and also runs a watchdog thread that exits the worker once its
parent's pid is no longer its parent (macOS, BSD, or a parent that died before the prctl).
"""

from __future__ import annotations

import os
import signal
import threading

from ..errors import WorkloadError
from .interrupt import worker_initializer

__all__ = ["WATCHDOG_PERIOD_S", "WORKERS_PER_CPU", "check_workers", "cpus",
           "parent_death_initializer", "pool_size"]

WORKERS_PER_CPU = 2
WATCHDOG_PERIOD_S = 0.5  # how often a worker checks that its parent is alive, in seconds
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def cpus() -> int:
    """Return the number of CPUs this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def check_workers(workers: int | None, flag: str = "--workers") -> None:
    """Raise WorkloadError naming ``flag`` when ``workers`` is given and below 1."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise WorkloadError(f"{flag} {workers}", flag.lstrip("-"), "must be at least 1 (worker "
                            "processes; leave it out for one per CPU)")


def pool_size(workers: int | None, rows: int, cpu_count: int | None = None) -> int:
    """Return how many worker processes to start for ``rows`` rows: min(workers (default: the
    CPUs), rows, WORKERS_PER_CPU x CPUs), at least 1; ``cpu_count`` overrides ``cpus()``.
    Raises WorkloadError for workers < 1."""
    check_workers(workers)
    n = cpu_count if cpu_count is not None else cpus()
    return max(1, min(workers if workers is not None else n, rows, WORKERS_PER_CPU * n))


def _set_parent_death_signal() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies; return True if it took."""
    try:
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    """Exit this process (os._exit, no cleanup: it is a worker) once ``parent`` is gone."""
    stop = threading.Event()
    while not stop.wait(WATCHDOG_PERIOD_S):
        if os.getppid() != parent:
            os._exit(1)


def parent_death_initializer(parent: int) -> None:
    """In a worker process: leave Ctrl-C to the parent (``worker_initializer``), and exit when
    the parent ``parent`` (its pid) dies: parent-death signal where the OS has one, and a
    watchdog thread on the parent's pid everywhere."""
    worker_initializer()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler (locking) is not ours
    _set_parent_death_signal()
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watchdog",
                     daemon=True).start()
