"""Two writers on one results file, and Ctrl-C, in real processes.

Every run here is a separate ``systolic-sim`` process in its own session, so SIGINT is sent to
its whole process group as a terminal's Ctrl-C would be (pool workers included), and "no
orphaned workers" is checked as "no process left in that group". Nothing waits on a clock:
each signal is sent after a marker shows the run is mid-way (rows in the results file, a
marker file written from inside the loop, the "waiting" line of a second writer).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CONFIGS, ROOT, write
from simulator import WorkloadError
from simulator.tools.locking import exclusive, holder, lock_path
from simulator.tools.sweep import load_sweep, read_results, run_sweep
from test_sweep import keyed, sweep_text

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg") or not Path("/proc").is_dir(),
                                reason="needs POSIX process groups and /proc")

TIMEOUT_S = 300  # a generous bound for a loaded 2-core machine; never reached when all is well

# Runs the CLI with one function wrapped: its AFTER-th call touches MARKER first (and, with
# SLEEP, then sleeps, so a signal sent on seeing the marker lands inside that call).
DRIVER = """
import importlib, pathlib, sys, time
marker, module, name, after, sleep = sys.argv[1:6]
mod = importlib.import_module(module)
inner = getattr(mod, name)
calls = 0
def counted(*args, **kwargs):
    global calls
    calls += 1
    if calls == int(after):
        pathlib.Path(marker).touch()
        if sleep == "sleep":
            time.sleep(600)
    return inner(*args, **kwargs)
setattr(mod, name, counted)
from simulator.tools.cli import main
sys.exit(main(sys.argv[6:]))
"""


def start(argv: list[str], tmp_path: Path, name: str, driver: list[str] | None = None):
    """Start ``systolic-sim ARGV`` (through DRIVER if given) in a new session; return the Popen
    with ``.out`` and ``.err`` paths of its stdout and stderr."""
    out, err = tmp_path / f"{name}.stdout", tmp_path / f"{name}.stderr"
    cmd = [sys.executable, "-c", DRIVER, *driver] if driver else [sys.executable, "-m", "simulator"]
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen([*cmd, *argv], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=fo,
                                stderr=fe, start_new_session=True)
    proc.out, proc.err = out, err
    return proc


def wait_for(condition, what: str, proc=None) -> None:
    """Poll ``condition`` until true; fail if ``proc`` ends first or after TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before {what}: "
                        f"{proc.err.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {TIMEOUT_S} s")
        time.sleep(0.01)


def group(pgid: int) -> list[int]:
    """Return the pids of every process (zombies included) whose process group is ``pgid``."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def ignores_sigint(pid: int) -> bool:
    """Return whether process ``pid`` ignores or blocks SIGINT (read off /proc/PID/status)."""
    masks = dict(line.split(":\t") for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                 if line.startswith(("SigIgn", "SigBlk")))
    return any(int(mask, 16) >> (signal.SIGINT - 1) & 1 for mask in masks.values())


def interrupt(proc) -> tuple[int, list[str]]:
    """Send SIGINT to the run's process group (a terminal's Ctrl-C); return its exit status and
    its stderr lines, once it and every process of its group are gone."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        status = proc.wait(TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30  # orphans would be reparented and live on: none may
    while group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = group(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not left, f"processes of the interrupted run outlived it: {left}"
    return status, proc.err.read_text().splitlines()


def one_line(lines: list[str], pattern: str) -> re.Match:
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    match = re.fullmatch(pattern, lines[0])
    assert match, lines[0]
    return match


# --------------------------------------------------------------------------- two writers

@pytest.mark.parametrize("executor", ["process", "dask"])
def test_two_sweeps_started_at_once_write_every_row_once(tmp_path, executor):
    if executor == "dask":
        pytest.importorskip("dask.distributed")
    sweep_file = write(tmp_path, sweep_text(4), "s.yaml")
    total = len(load_sweep(sweep_file).points) * 3
    run_sweep(load_sweep(sweep_file), tmp_path / "serial.csv", "serial")
    out = tmp_path / "r.csv"
    argv = ["sweep", str(sweep_file), "--out", str(out), "--executor", executor, "--workers", "2"]
    procs = [start(argv, tmp_path, f"w{i}") for i in range(2)]
    counts = []
    for proc in procs:
        assert proc.wait(TIMEOUT_S) == 0, proc.err.read_text()
        text = proc.out.read_text()
        match = re.search(r"(\d+) already in .*, (\d+) written now", text)
        assert match, text
        counts.append((int(match[1]), int(match[2])))
    # one wrote everything; the other found it all done once it had the lock
    assert sorted(counts) == [(0, total), (total, 0)]
    rows = read_results(out)
    assert len(rows) == total == len(keyed(rows))
    assert keyed(rows) == keyed(read_results(tmp_path / "serial.csv"))


def test_second_sweep_waits_then_resumes_what_an_interrupted_first_left(tmp_path):
    sweep_file = write(tmp_path, sweep_text(20), "s.yaml")
    sweep = load_sweep(sweep_file)
    total = len(sweep.points) * 3
    run_sweep(sweep, tmp_path / "serial.csv", "serial")
    out = tmp_path / "r.csv"
    argv = ["sweep", str(sweep_file), "--out", str(out), "--executor", "process", "--workers", "2"]
    first = start(argv, tmp_path, "first")
    header_bytes = len(",".join(sweep.columns)) + 1
    wait_for(lambda: out.exists() and out.stat().st_size > header_bytes, "first rows", first)
    second = start(argv, tmp_path, "second")
    wait_for(lambda: "waiting" in second.err.read_text(), "waiting line", second)
    assert f"pid {first.pid} on " in second.err.read_text()
    status, lines = interrupt(first)
    assert status == 130
    done = int(one_line(lines, r"systolic-sim sweep: interrupted \(Ctrl-C\): (\d+) rows written "
                        r"now, \1 of \d+ in .*; run the same command again to resume")[1])
    assert 0 < done < total
    assert second.wait(TIMEOUT_S) == 0, second.err.read_text()
    assert f"{done} already in {out}, {total - done} written now" in second.out.read_text()
    rows = read_results(out)
    assert len(rows) == total == len(keyed(rows))
    assert keyed(rows) == keyed(read_results(tmp_path / "serial.csv"))


def test_calibrate_measure_refuses_a_locked_file_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "cal.json"
    with exclusive(out, "--out", wait=False):
        assert holder(out).startswith(f"pid {os.getpid()} on ")
        proc = subprocess.run([sys.executable, "-m", "simulator", "calibrate", "measure", "--quick",
                               "--kernels", "gemm", "--out", str(out)], cwd=ROOT,
                              capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 2
    one_line(proc.stderr.splitlines(), re.escape(f"{out}: --out: is being written by pid "
                                                 f"{os.getpid()} on ") + r".*; wait for it to "
             r"finish or choose another file")
    assert not out.exists()


def test_export_scalesim_waits_for_the_holder_then_writes(tmp_path):
    target = tmp_path / "export" / "COMPUTE_REPORT.csv"
    with exclusive(target, "test", wait=False):
        proc = start(["run", str(CONFIGS / "gemmini.yaml"), "--gemm", "64x64x64",
                      "--export-scalesim", str(tmp_path / "export")], tmp_path, "export")
        wait_for(lambda: "waiting" in proc.err.read_text(), "waiting line", proc)
        assert proc.poll() is None and not target.exists()
    assert proc.wait(TIMEOUT_S) == 0, proc.err.read_text()
    lines = target.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("0, ")


def test_lock_is_exclusive_and_released(tmp_path):
    out = tmp_path / "r.csv"
    with exclusive(out, "--out", wait=False):
        with pytest.raises(WorkloadError, match=r"r\.csv: --out: is being written by pid"):
            with exclusive(out, "--out", wait=False):
                pass
    with exclusive(out, "--out", wait=False):  # free again
        pass


def test_a_worker_outliving_a_killed_holder_does_not_keep_the_lock(tmp_path):
    out = tmp_path / "r.csv"
    script = ("import os, sys, time\nfrom simulator.tools.locking import exclusive\n"
              f"with exclusive({str(out)!r}, '--out', wait=False):\n"
              "    if os.fork() == 0:\n        time.sleep(600)\n        os._exit(0)\n"
              "    print('ready', flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        with pytest.raises(WorkloadError):
            with exclusive(out, "--out", wait=False):
                pass
        os.kill(proc.pid, signal.SIGKILL)  # the holder dies; its forked child lives on
        proc.wait()
        assert len(group(proc.pid)) == 1
        with exclusive(out, "--out", wait=False):
            pass
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not lock_path(out).exists()  # the last holder removed it


# --------------------------------------------------------------------------- Ctrl-C

def test_ctrl_c_stops_train_with_one_line(tmp_path):
    marker = tmp_path / "marker"
    proc = start(["train", str(CONFIGS / "tpu-v4-mxu.yaml"), "--model", "mlp:10:32:1",
                  "--steps", "100000"], tmp_path, "train",
                 driver=[str(marker), "simulator.kernels.train", "run", "50", "no-sleep"])
    wait_for(marker.exists, "50th step", proc)
    status, lines = interrupt(proc)
    assert status == 130
    steps = int(one_line(lines, r"systolic-sim train: interrupted \(Ctrl-C\): (\d+) of 100000 "
                         r"steps done; nothing printed or written")[1])
    assert 49 <= steps < 100000
    assert proc.out.read_text() == ""


def test_ctrl_c_stops_run_topology_with_one_line(tmp_path):
    marker = tmp_path / "marker"
    topo = write(tmp_path, "Layer, M, N, K,\n" + "".join(
        f"l{i}, {64 + i}, {32 + 2 * i}, {48 + 3 * i},\n" for i in range(30)), "t.csv")
    proc = start(["run", str(CONFIGS / "gemmini.yaml"), "--topology", str(topo),
                  "--export-scalesim", str(tmp_path / "export")], tmp_path, "run",
                 driver=[str(marker), "simulator.core.engine", "gemm_op", "13", "sleep"])
    wait_for(marker.exists, "13th layer", proc)
    status, lines = interrupt(proc)
    assert status == 130
    one_line(lines, r"systolic-sim run: interrupted \(Ctrl-C\): 12 of 30 layers simulated; "
             r"nothing printed or written")
    assert proc.out.read_text() == "" and not (tmp_path / "export" / "COMPUTE_REPORT.csv").exists()


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_ctrl_c_stops_a_sweep_and_a_rerun_resumes(tmp_path, executor):
    if executor == "dask":
        pytest.importorskip("dask.distributed")
    sweep_file = write(tmp_path, sweep_text(20), "s.yaml")
    sweep = load_sweep(sweep_file)
    total = len(sweep.points) * 3
    run_sweep(sweep, tmp_path / "serial.csv", "serial")
    out = tmp_path / "r.csv"
    argv = ["sweep", str(sweep_file), "--out", str(out), "--executor", executor, "--workers", "2"]
    proc = start(argv, tmp_path, "sweep")
    header_bytes = len(",".join(sweep.columns)) + 1
    wait_for(lambda: out.exists() and out.stat().st_size > header_bytes, "first rows", proc)
    workers = [pid for pid in group(proc.pid) if pid != proc.pid]
    assert len(workers) >= 2  # the workers are there to be stopped
    # a terminal's Ctrl-C reaches them too: they must leave it to the parent (no tracebacks)
    assert all(ignores_sigint(pid) for pid in workers)
    status, lines = interrupt(proc)
    assert status == 130
    match = one_line(lines, r"systolic-sim sweep: interrupted \(Ctrl-C\): (\d+) rows written now, "
                     rf"(\d+) of {total} in {re.escape(str(out))}; run the same command again "
                     r"to resume")
    assert out.read_bytes().endswith(b"\n")  # no torn line
    partial = read_results(out)
    assert int(match[1]) == int(match[2]) == len(partial) and 0 < len(partial) < total
    again = subprocess.run([sys.executable, "-m", "simulator", *argv], cwd=ROOT,
                           capture_output=True, text=True, timeout=TIMEOUT_S)
    assert again.returncode == 0, again.stderr
    assert f"{len(partial)} already in {out}, {total - len(partial)} written now" in again.stdout
    rows = read_results(out)
    assert len(rows) == total == len(keyed(rows))
    assert keyed(rows) == keyed(read_results(tmp_path / "serial.csv"))


def test_sweep_interrupted_while_waiting_for_the_lock(tmp_path):
    sweep_file = write(tmp_path, sweep_text(2), "s.yaml")
    out = tmp_path / "r.csv"
    with exclusive(out, "test", wait=False):
        proc = start(["sweep", str(sweep_file), "--out", str(out), "--executor", "serial"],
                     tmp_path, "waiter")
        wait_for(lambda: "waiting" in proc.err.read_text(), "waiting line", proc)
        status, lines = interrupt(proc)
    assert status == 130 and len(lines) == 2, lines
    assert re.fullmatch(rf"{re.escape(str(out))}: being written by pid {os.getpid()} on .*; "
                        r"waiting for it to finish", lines[0]), lines[0]
    one_line(lines[1:], r"systolic-sim sweep: interrupted \(Ctrl-C\): while waiting for "
             rf"{re.escape(str(out))} \(held by pid {os.getpid()} on .*\); nothing written")
    assert not out.exists()


# --------------------------------------------------------------------------- in-process pieces

def test_deferred_finishes_the_body_then_raises():
    from simulator.tools.interrupt import deferred
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the signal is handled by now, and held off
            steps.append("body done")
        steps.append("after")  # never reached
    assert steps == ["body done"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_other_commands_print_one_generic_line(monkeypatch, capsys):
    from simulator.tools import cli

    def stop(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("simulator.tools.compare.compare_chips", stop)
    assert cli.main(["compare", str(CONFIGS / "gemmini.yaml"), "--gemm", "8x8x8"]) == 130
    err = capsys.readouterr().err.splitlines()
    assert err == ["systolic-sim compare: interrupted (Ctrl-C): stopped before finishing; "
                   "nothing printed or written"]


def test_calibrate_measure_interrupted_leaves_the_file_as_it_was(monkeypatch, tmp_path):
    from simulator.tools import calibrate
    from simulator.errors import Interrupted
    out = tmp_path / "cal.json"
    out.write_text("old\n")
    inner, calls = calibrate._time_host, []

    def timed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return inner(*args, **kwargs)
    monkeypatch.setattr(calibrate, "_time_host", timed)
    with pytest.raises(Interrupted, match=rf"^2 points timed; {re.escape(str(out))} not written$"):
        calibrate.measure("numpy", ["gemm"], ["fp32"], out, quick=True)
    assert out.read_text() == "old\n"
    with exclusive(out, "--out", wait=False):  # and the lock was released
        pass


_CTRL_C_WHILE_LOADING = r"""
import sys

class CtrlC:  # raises KeyboardInterrupt when the engine module starts loading, as Ctrl-C would
    def find_spec(self, name, path=None, target=None):
        if name == "simulator.core.engine":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
from simulator._entry import main
sys.argv = ["systolic-sim", "run", sys.argv[1], "--gemm", "8x8x8"]
sys.exit(main())
"""


def test_ctrl_c_while_the_command_line_loads_is_one_line_and_exit_130():
    """The console script's entry loads the command line inside a handler: a Ctrl-C during
    the imports (here raised when simulator.core.engine starts loading) ends in one line, exit 130,
    no traceback; importing the package itself loads nothing heavy."""
    proc = subprocess.run([sys.executable, "-c", _CTRL_C_WHILE_LOADING,
                           str(CONFIGS / "tpu-v1.yaml")], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "systolic-sim: interrupted (Ctrl-C) while starting: nothing done"]
    assert "Traceback" not in proc.stderr
    light = subprocess.run([sys.executable, "-c", "import sys, simulator; "
                            "print('numpy' in sys.modules, 'simulator.core.engine' in sys.modules)"],
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert light.stdout.split() == ["False", "False"]


def test_output_into_a_pipe_closed_early_ends_quietly():
    """``systolic-sim ... | head -1``: the reader leaves, the writer stops without a traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "run", str(CONFIGS / "tpu-v1.yaml"),
                             "--gemm", "64x64x64"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""
