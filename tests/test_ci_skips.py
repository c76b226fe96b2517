"""conftest's CI rule: with CI set, any skip fails the run; without it, skips are allowed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

SKIP_IN_TEST = """
import pytest

def test_passes():
    assert True

def test_needs_missing_package():
    pytest.importorskip("no_such_package_for_systolic_sim")
"""

SKIP_MODULE = """
import pytest
pytest.importorskip("no_such_package_for_systolic_sim")

def test_never_collected():
    assert True
"""

SKIP_MARK = """
import pytest

@pytest.mark.skip(reason="marked")
def test_marked():
    assert True
"""


def _run(tmp_path, body: str, ci: str | None) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_case.py").write_text(body)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("body", [SKIP_IN_TEST, SKIP_MODULE, SKIP_MARK],
                         ids=["importorskip-in-test", "importorskip-module", "skip-mark"])
def test_skip_fails_in_ci(tmp_path, body):
    proc = _run(tmp_path, body, ci="true")
    assert proc.returncode != 0, proc.stdout
    assert "CI must skip nothing" in proc.stdout, proc.stdout


@pytest.mark.parametrize("ci", [None, "", "0", "false"])
def test_skip_allowed_outside_ci(tmp_path, ci):
    proc = _run(tmp_path, SKIP_IN_TEST, ci=ci)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 1 skipped" in proc.stdout, proc.stdout
