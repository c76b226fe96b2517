"""Shared fixtures and hypothesis profiles (``ci`` is the default; ``HYPOTHESIS_PROFILE=dev``).

In CI (environment variable ``CI`` set to anything but ``""``, ``0``, ``false`` or ``no``) a
skipped test or module is a failure: every optional package a test needs is in the ``test``
extra, so a skip there means a check silently did not run. Elsewhere tests may skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

settings.register_profile("ci", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def in_ci() -> bool:
    """Return True when the environment says this run is CI (``CI`` set and not false-like)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _fail_skip(report) -> None:
    """Turn a skipped report into a failed one that says why (CI must skip nothing)."""
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped in CI (CI={os.environ.get('CI')!r}); CI must skip nothing: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI, report a skipped test (skip mark, skipif, importorskip in the test) as failed."""
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _fail_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """In CI, report a skipped module (module-level importorskip or skip) as a collection error."""
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped:
        _fail_skip(report)


@pytest.fixture
def configs() -> Path:
    """Return the directory of shipped chip configs."""
    return CONFIGS


def write(tmp_path: Path, text: str, name: str = "chip.yaml") -> Path:
    """Write ``text`` to a file under tmp_path and return its path."""
    p = tmp_path / name
    p.write_text(text)
    return p
