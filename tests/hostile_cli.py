"""Helpers of the hostile-input tests: run the command line in a subprocess, as a user does,
and check that a failure is one line, exit status 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

__all__ = ["cli", "one_line"]


def cli(args, cwd=ROOT, stdout=subprocess.PIPE, timeout=300) -> subprocess.CompletedProcess:
    """Run ``python -m simulator ARGS`` in ``cwd``; return the CompletedProcess (text)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR",
                                                           str(Path(cwd) / ".numba"))}
    return subprocess.run([sys.executable, "-m", "simulator", *map(str, args)], cwd=cwd,
                          stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=timeout,
                          env=env)


def one_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Assert ``proc`` failed with exit status 2 and exactly one line on stderr, no traceback,
    holding every needle; return the line."""
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err, (proc.stdout or "")[-500:])
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err.strip()
