"""README.md and docs/ stand alone: they never point users at the development-only ../shared
folder, and every relative link in them names a file of this repository."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT

USER_DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
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
    for name in ("dataflow.md", "scalesim.md", "energy.md", "config.md"):
        assert (ROOT / "docs" / name).is_file(), name
