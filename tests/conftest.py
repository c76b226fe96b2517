"""Shared fixtures and hypothesis profiles (``ci`` is the default; ``HYPOTHESIS_PROFILE=dev``)."""

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


@pytest.fixture
def configs() -> Path:
    """Return the directory of shipped chip configs."""
    return CONFIGS


def write(tmp_path: Path, text: str, name: str = "chip.yaml") -> Path:
    """Write ``text`` to a file under tmp_path and return its path."""
    p = tmp_path / name
    p.write_text(text)
    return p
