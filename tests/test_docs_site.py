"""The manual builds as a site: `mkdocs build --strict` (mkdocs.yml) passes, offline.

Strict mode fails on any warning: a link to a page or anchor that does not exist, a page the
API reference cannot render. The build must not touch the network (the theme's fonts are off,
no plugin fetches anything): the proxies point at a closed local port, so a fetch would fail.
"""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def test_mkdocs_build_strict_passes_offline(tmp_path):
    site = tmp_path / "site"
    closed = "http://127.0.0.1:9"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", HTTP_PROXY=closed, HTTPS_PROXY=closed,
               http_proxy=closed, https_proxy=closed, NO_PROXY="", no_proxy="")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    home = (site / "index.html").read_text()
    assert "Six commands" in home and "bert-base-timeline.png" in home   # README is the home page
    api = (site / "api.html").read_text()
    for name in ("load_chip", "simulate_gemm", "Report", "OpReport", "ConfigError"):
        assert name in api, name
    assert "fonts.googleapis" not in home


def test_every_page_is_in_the_nav_or_added_by_the_hook():
    """mkdocs.yml names each page, or mkdocs_hooks.py adds it under More: nothing is left off."""
    import yaml

    sys.path.insert(0, str(ROOT))
    try:
        import mkdocs_hooks
    finally:
        sys.path.pop(0)
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    named = mkdocs_hooks._named(config["nav"])
    for page in named:
        assert page == "index.md" or (ROOT / "docs" / page).is_file(), page
    config["docs_dir"] = str(ROOT / "docs")
    every = mkdocs_hooks._named(mkdocs_hooks.on_config(config)["nav"])
    assert every >= {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
