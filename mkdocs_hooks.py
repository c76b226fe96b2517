"""MkDocs hooks for the manual (mkdocs.yml names this file).

- Every page under docs/ that the nav does not name is added under "More", so a new page is on
  the site (and checked by the strict build) before mkdocs.yml gives it its place.
- The home page, index.md, is README.md with its links into docs/ made site-relative.
- A link from a page to a file of the repository outside docs/ (an example model, a config, a
  benchmark) cannot resolve on the site; it is shown as the file's path in code instead. A link
  to a missing file is left alone, so the strict build still fails on it.
"""

from __future__ import annotations

import re
from pathlib import Path

LINK = re.compile(r"\[([^\]]*)\]\(([^)#\s]+)(#[^)]*)?\)")


def _named(nav) -> set[str]:
    """Return the page paths a nav (nested lists and dicts) names."""
    found: set[str] = set()
    if isinstance(nav, str):
        found.add(nav)
    elif isinstance(nav, dict):
        for value in nav.values():
            found |= _named(value)
    elif isinstance(nav, list):
        for item in nav:
            found |= _named(item)
    return found


def on_config(config):
    docs = Path(config["docs_dir"])
    named = _named(config["nav"] or [])
    extra = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md"))
    extra = [p for p in extra if p not in named]
    if extra and config["nav"] is not None:
        config["nav"].append({"More": extra})
    return config


def on_page_markdown(markdown, page, config, files):
    docs = Path(config["docs_dir"]).resolve()
    here = (docs / page.file.src_path).parent

    def repl(m: re.Match) -> str:
        text, target = m.group(1), m.group(2)
        if "://" in target or target.startswith("mailto:"):
            return m.group(0)
        path = (here / target).resolve()
        if path.exists() and docs not in path.parents:
            label = text if text.startswith("`") else f"`{path.relative_to(docs.parent).as_posix()}`"
            return label if text.startswith("`") else f"{text} ({label})"
        return m.group(0)

    return LINK.sub(repl, markdown)


def on_files(files, config):
    """The site's home page is README.md, its links into docs/ made relative to the site."""
    from mkdocs.structure.files import File

    readme = (Path(config["config_file_path"]).parent / "README.md").read_text()
    home = re.sub(r"\]\(docs/", "](", readme)
    if files.get_file_from_path("index.md") is None:
        files.append(File.generated(config, "index.md", content=home))
    return files
