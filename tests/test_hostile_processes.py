"""Hostile process conditions (issue 32, item 3): the pool is no larger than it can use,
``--workers`` below 1 is one line, workers die with their parent (kill -9 included), and lock
files are removed on every exit path but SIGKILL (and then by the next run).

Sweeps run in subprocesses in their own session, so "no orphaned worker" is checked as "no
process left in that session's group". Waits poll with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from conftest import CONFIGS, ROOT
from simulator.errors import WorkloadError
from simulator.tools import pool
from simulator.tools.locking import exclusive, lock_path
from simulator.tools.sweep import load_sweep, read_results

TIMEOUT_S = 120
linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def group(pgid: int) -> list[int]:
    """Return the pids (zombies excluded) whose process group is ``pgid``, read off /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def wait_for(cond, what: str, timeout: float = TIMEOUT_S) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def sweep_file(tmp_path: Path, points: int) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"base: {CONFIGS / 'gemmini.yaml'}\n"
                    f"grid:\n  array.rows: {{range: [4, {4 * points}, 4]}}\n"
                    "  array.dataflow: [os, ws, is]\n"
                    f"workloads:\n  - topology: {CONFIGS / 'topologies' / 'alexnet.csv'}\n"
                    "  - gemm: 300x200x100\n")
    return path


def start_sweep(tmp_path: Path, out: Path, points: int, workers: int = 2) -> subprocess.Popen:
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR",
                                                           str(tmp_path / ".numba"))}
    return subprocess.Popen([sys.executable, "-m", "simulator", "sweep",
                             str(sweep_file(tmp_path, points)), "--out", str(out), "--executor",
                             "process", "--workers", str(workers)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def has_rows(out: Path) -> bool:
    return out.exists() and len(out.read_bytes().splitlines()) > 1


# --------------------------------------------------------------------------- pool size

@settings(max_examples=200, deadline=None)
@given(workers=st.one_of(st.none(), st.integers(1, 10**6)), rows=st.integers(1, 10**6),
       cpus=st.integers(1, 512))
def test_pool_size_is_the_least_of_workers_rows_and_twice_the_cpus(workers, rows, cpus):
    size = pool.pool_size(workers, rows, cpus)
    want = workers if workers is not None else cpus
    for cap in (rows, 2 * cpus):
        if cap < want:
            want = cap
    assert size == want and 1 <= size <= rows


def test_pool_size_counts_the_cpus_this_process_may_use():
    assert pool.pool_size(None, 10**9) == pool.cpus()
    assert pool.pool_size(10**6, 10**9) == 2 * pool.cpus()
    if hasattr(os, "sched_getaffinity"):
        assert pool.cpus() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("workers", [0, -1, -100000])
def test_workers_below_one_is_one_line(tmp_path, workers):
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(tmp_path))}
    proc = subprocess.run([sys.executable, "-m", "simulator", "sweep", str(sweep_file(tmp_path, 2)),
                           "--out", str(tmp_path / "r.csv"), "--workers", str(workers)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"--workers {workers}: workers: must be at least 1 (worker "
                                   "processes; leave it out for one per CPU)")
    assert not (tmp_path / "r.csv").exists() and not lock_path(tmp_path / "r.csv").exists()


def test_many_workers_for_few_rows_start_no_more_processes_than_rows(tmp_path):
    out = tmp_path / "r.csv"
    proc = start_sweep(tmp_path, out, points=1, workers=100000)  # 3 points x 2 workloads
    seen = set()
    while proc.poll() is None:
        seen.update(group(proc.pid))
        time.sleep(0.02)
    assert proc.returncode == 0, proc.stderr
    assert len(read_results(out)) == 6
    assert len(seen - {proc.pid}) <= 6


# --------------------------------------------------------------------------- parent death

@linux_only
def test_workers_exit_when_the_parent_is_killed(tmp_path):
    out = tmp_path / "r.csv"
    proc = start_sweep(tmp_path, out, points=40)
    try:
        wait_for(lambda: len(group(proc.pid)) >= 3 and has_rows(out), "workers and first rows")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(TIMEOUT_S)
        wait_for(lambda: group(proc.pid) == [], "the workers to exit", timeout=30)
    finally:
        for pid in group(proc.pid):
            os.kill(pid, signal.SIGKILL)
    assert lock_path(out).exists()  # SIGKILL leaves it; the next run removes it
    again = start_sweep(tmp_path, out, points=40)
    assert again.wait(600) == 0, again.stderr.read()
    assert not lock_path(out).exists()
    assert len(read_results(out)) == len(load_sweep(tmp_path / "s.yaml").points) * 2


@linux_only
def test_the_watchdog_alone_stops_an_orphan(tmp_path):
    """Without the parent-death signal (macOS, BSD), the watchdog on the parent pid ends it."""
    script = ("import os, sys, time\n"
              "from simulator.tools import pool\n"
              "pool._set_parent_death_signal = lambda: False\n"
              "if os.fork() == 0:\n"
              "    parent = os.getpid()\n"
              "    if os.fork() == 0:\n"
              "        pool.parent_death_initializer(parent)\n"
              "        print(os.getpid(), flush=True)\n"
              "        time.sleep(600)\n"
              "        os._exit(0)\n"
              "    time.sleep(600)\n"
              "    os._exit(0)\n"
              "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        orphan = int(proc.stdout.readline())
        middle = [p for p in group(proc.pid) if p not in (proc.pid, orphan)]
        assert len(middle) == 1 and orphan in group(proc.pid)
        os.kill(middle[0], signal.SIGKILL)  # the orphan's parent dies
        wait_for(lambda: orphan not in group(proc.pid), "the orphan to exit", timeout=10)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --------------------------------------------------------------------------- lock files

def test_lock_file_removed_after_success_and_error(tmp_path):
    out = tmp_path / "r.csv"
    with exclusive(out, "--out", wait=False):
        assert lock_path(out).exists()
    assert not lock_path(out).exists()
    with pytest.raises(RuntimeError):
        with exclusive(out, "--out", wait=False):
            raise RuntimeError("boom")
    assert not lock_path(out).exists()


def test_a_waiter_whose_lock_file_was_removed_locks_the_new_one(tmp_path):
    out = tmp_path / "r.csv"
    script = ("import sys, time\nfrom simulator.tools.locking import exclusive\n"
              f"with exclusive({str(out)!r}, '--out', wait=True):\n"
              "    print('held', flush=True)\n    sys.stdin.readline()\n")
    first = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline() == "held\n"
    second = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    release_after_checking_the_lock(first, out)
    assert second.stdout.readline() == "held\n"  # it holds the lock on the file now there
    release_after_checking_the_lock(second, out)
    assert not lock_path(out).exists()


def release_after_checking_the_lock(holder: subprocess.Popen, out: Path) -> None:
    """Check that ``out`` is locked (by ``holder``), then let ``holder`` finish."""
    with pytest.raises(WorkloadError, match="is being written by pid"):
        with exclusive(out, "--out", wait=False):
            pass
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.wait(TIMEOUT_S) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_lock_file_removed_when_a_sweep_is_stopped(tmp_path, sig):
    out = tmp_path / "r.csv"
    proc = start_sweep(tmp_path, out, points=40)
    try:
        wait_for(lambda: has_rows(out), "first rows")
        assert lock_path(out).exists()
        os.kill(proc.pid, sig)
        status = proc.wait(TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert status == (130 if sig == signal.SIGINT else 143), proc.stderr.read()
    assert "Traceback" not in proc.stderr.read()
    assert not lock_path(out).exists()
    wait_for(lambda: group(proc.pid) == [], "the workers to exit", timeout=30)
