"""README.md and docs/ stand alone: they never point users at the development-only ../shared
folder, and every relative link in them names a file of this repository."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT

USER_DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md"),
                    *(ROOT / "notebooks").glob("*.ipynb")])
SHARED = re.compile(r"\.\./shared|shared/(reference|DESIGN)")
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_docs_do_not_point_at_shared(path):
    hits = [f"{path.name}:{i}: {line.strip()}"
            for i, line in enumerate(path.read_text().splitlines(), 1) if SHARED.search(line)]
    assert not hits, "\n".join(hits)


@pytest.mark.parametrize("path", [p for p in USER_DOCS if p.suffix == ".md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    missing = [target for target, _anchor in LINK.findall(path.read_text())
               if "://" not in target and not (path.parent / target).exists()]
    assert not missing, missing


def test_the_user_docs_exist():
    for name in ("dataflow.md", "scalesim.md", "energy.md", "config.md", "tutorial.md", "api.md",
                 "install.md", "cycles.md", "memory.md", "numerics.md", "llm.md", "calibration.md",
                 "scalesim-interop.md", "models.md"):
        assert (ROOT / "docs" / name).is_file(), name


def test_the_readme_is_short():
    """README.md is the front door (what, one picture, install, six commands, links): the
    manual lives in docs/."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150


def test_ci_runs_exactly_the_readmes_test_command():
    """The README's set-up-and-test command is the project's contract; .ci/run runs it verbatim."""
    readme = (ROOT / "README.md").read_text()
    command = readme.split("and run the whole test suite:", 1)[1].split("```bash\n", 1)[1]
    command = command.split("\n", 1)[0]
    assert command.startswith("python3 -m venv .venv && ") and "pytest" in command
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci, command


def test_model_coverage_page_is_generated():
    """docs/models-coverage.md is `python -m simulator.tools.coverage` (zoo, ATen and ONNX ops)."""
    from simulator.tools.coverage import coverage_markdown

    assert (ROOT / "docs" / "models-coverage.md").read_text() == coverage_markdown(), \
        "regenerate: python -m simulator.tools.coverage > docs/models-coverage.md"
