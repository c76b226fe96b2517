"""Hostile outputs (issue 32, item 4): a write that cannot happen ends in one line naming the
path, a non-zero exit and no traceback, and leaves no part of a file and no temporary or lock
file behind (none beside a device such as /dev/full).

The commands run in subprocesses (``python -m simulator``), as a user runs them; the write
helper itself is also driven in process with failures injected at each step (write, fsync,
rename) for every errno the issue lists, and with random names and contents (hypothesis).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import CONFIGS, ROOT
from hostile_cli import cli, one_line
from simulator.errors import WorkloadError
from simulator.tools import outputs
from simulator.tools.outputs import OutputError, write_output, write_with

GEMMINI = str(CONFIGS / "gemmini.yaml")
ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.ENOENT, errno.EISDIR, errno.EPIPE)
HAVE_DEV_FULL = os.path.exists("/dev/full")
needs_dev_full = pytest.mark.skipif(not HAVE_DEV_FULL, reason="no /dev/full on this system")


def leftovers(folder: Path) -> list[str]:
    """Return names in ``folder`` that a failed write may have left (temporary, lock files)."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".lock")))


# --------------------------------------------------------------------------- standard output

@needs_dev_full
@pytest.mark.parametrize("args", [["keys"], ["--help"],
                                  ["run", GEMMINI, "--gemm", "64x64x64", "--json"]])
def test_stdout_to_a_full_device_is_one_line(tmp_path, args):
    with open("/dev/full", "w") as full:
        proc = cli(args, tmp_path, stdout=full)
    one_line(proc, "<stdout>", "no space left")


def test_stdout_to_a_closed_pipe_ends_quietly_with_141(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(tmp_path))}
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "keys"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader leaves before the first byte
    status = proc.wait(timeout=120)
    err = proc.stderr.read().decode()
    assert status == 141 and err == "", (status, err)


def test_stdout_to_head_never_gives_a_traceback(tmp_path):
    proc = subprocess.run(f"{sys.executable} -m simulator keys | head -1", shell=True,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("# Chip config keys") and proc.stderr == ""


# --------------------------------------------------------------------------- files

@needs_dev_full
@pytest.mark.parametrize("flag", ["--trace", "--html"])
def test_run_report_file_on_a_full_device(tmp_path, flag):
    proc = cli(["run", GEMMINI, "--gemm", "64x64x64", flag, "/dev/full"], tmp_path)
    one_line(proc, "/dev/full", "no space left")


@pytest.mark.parametrize("where", ["missing", "directory", "under-a-file"])
@pytest.mark.parametrize("flag", ["--trace", "--html", "--csv"])
def test_run_report_file_that_cannot_be_created(tmp_path, flag, where):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    target = {"missing": "nodir/out.x", "directory": "adir", "under-a-file": "afile/out.x"}[where]
    what = ["--model", "zoo:small-cnn"] if flag == "--csv" else ["--gemm", "64x64x64"]
    proc = cli(["run", GEMMINI, *what, flag, target], tmp_path)
    one_line(proc, target.split("/")[0])
    assert (tmp_path / "afile").read_text() == "x" and not (tmp_path / "nodir").exists()
    assert leftovers(tmp_path) == [] and list((tmp_path / "adir").iterdir()) == []


@needs_dev_full
def test_sweep_out_on_a_device_leaves_no_lock(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"base: {GEMMINI}\ngrid:\n  array.rows: [4, 8]\n"
                     "workloads:\n  - gemm: 32x32x32\n")
    proc = cli(["sweep", sweep, "--out", "/dev/full", "--executor", "serial"], tmp_path)
    one_line(proc, "/dev/full", "not a regular file")
    assert not os.path.exists("/dev/full.lock")


@needs_dev_full
@pytest.mark.parametrize("args", [
    ["plot", "roofline", "REPORT", "--out", "/dev/full/x.png"],
    ["prune", "M", "/dev/full", "--nm", "2:4"],
    ["run", GEMMINI, "--gemm", "32x32x32", "--export-scalesim", "/dev/full"],
])
def test_other_writers_on_a_full_device(tmp_path, args):
    report = tmp_path / "r.json"
    report.write_text(cli(["run", GEMMINI, "--gemm", "32x32x32", "--json"], tmp_path).stdout)
    np.save(tmp_path / "m.npy", np.arange(16.0).reshape(4, 4))
    args = [str(report) if a == "REPORT" else str(tmp_path / "m.npy") if a == "M" else a
            for a in args]
    one_line(cli(args, tmp_path), "/dev/full")
    assert not [p for p in Path("/dev").iterdir() if p.name.startswith((".full", "full."))]


def test_prune_reports_the_path_it_wrote(tmp_path):
    np.save(tmp_path / "m.npy", np.arange(16.0).reshape(4, 4))
    proc = cli(["prune", "m.npy", "out", "--nm", "2:4"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("out: ")
    assert np.count_nonzero(np.load(tmp_path / "out")) == 8
    assert not (tmp_path / "out.npy").exists()


# --------------------------------------------------------------------------- the helper

def _fail_at(monkeypatch, stage: str, code: int) -> None:
    """Make ``stage`` (write, fsync or replace) of the next atomic write fail with ``code``."""
    def boom(*_a, **_k):
        raise OSError(code, os.strerror(code))
    if stage == "fsync":
        monkeypatch.setattr(outputs.os, "fsync", boom)
    elif stage == "replace":
        monkeypatch.setattr(outputs.os, "replace", boom)
    else:
        monkeypatch.setattr(outputs.tempfile, "mkstemp", boom)


@pytest.mark.parametrize("code", ERRNOS)
@pytest.mark.parametrize("stage", ["create", "fsync", "replace"])
def test_a_failed_write_keeps_the_old_file_whole(tmp_path, monkeypatch, stage, code):
    target = tmp_path / "report.json"
    target.write_text("old contents\n")
    _fail_at(monkeypatch, stage, code)
    with pytest.raises(OutputError) as info:
        write_output(target, "--trace", "new contents " * 1000)
    msg = str(info.value)
    assert msg.startswith(f"{target}: trace: cannot be written: ") and "\n" not in msg
    assert msg.endswith(outputs.os_error_text(OSError(code, "")))
    assert target.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_an_error_inside_the_writer_removes_the_temporary_file(tmp_path):
    def half(fh):
        fh.write("half a row,")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OutputError, match="no space left on the device"):
        write_with(tmp_path / "t.csv", "--csv", half)
    assert list(tmp_path.iterdir()) == []


names = st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1,
                max_size=40).filter(lambda s: s not in (".", ".."))


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(names, min_size=1, max_size=3), data=st.binary(max_size=4096),
       make_parents=st.booleans())
def test_random_paths_write_whole_or_fail_in_one_line(tmp_path_factory, parts, data,
                                                      make_parents):
    root = tmp_path_factory.mktemp("w")
    target = root.joinpath(*parts)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_output(target, "--out", data)
    except OutputError as exc:  # a missing folder, a name too long: one line naming the path
        msg = str(exc)
        assert "\n" not in msg and "cannot be written" in msg
        assert not target.exists() or target.is_dir()
    else:
        assert target.read_bytes() == data
    assert [p for p in root.rglob("*") if p.name.endswith(".tmp")] == []


def test_writing_in_place_to_a_device(tmp_path):
    assert write_output(os.devnull, "--trace", "x") == Path(os.devnull)
    if HAVE_DEV_FULL:
        with pytest.raises(OutputError, match="^/dev/full: trace: cannot be written: no space"):
            write_output("/dev/full", "--trace", "x" * 100_000)


def test_check_output_path_accepts_a_device_and_refuses_a_folder(tmp_path):
    assert outputs.check_output_path(os.devnull, "--trace") == Path(os.devnull)
    with pytest.raises(WorkloadError, match="is a directory"):
        outputs.check_output_path(str(tmp_path), "--trace")


def test_a_successful_write_replaces_the_file_and_keeps_a_plain_mode(tmp_path):
    target = tmp_path / "t.json"
    write_output(target, "--trace", json.dumps({"a": 1}))
    write_output(target, "--trace", json.dumps({"a": 2}))
    assert json.loads(target.read_text()) == {"a": 2}
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
