"""Every command shown in README.md and docs/ is either run here or says why it is not.

A fenced ``bash`` (``sh``, ``shell``, ``console``) block must be preceded, on the line just
above its opening fence, by one of two HTML comments (invisible on GitHub and on the site):

    <!-- docs-test: run -->
    <!-- docs-test: skip: REASON -->

``run`` blocks of a page run in order, one bash script each (``set -euo pipefail``), in one
temporary directory holding a copy of the repository's data folders (configs, examples,
calibration, benchmarks, notebooks), so commands that write files write there. ``.venv/bin``
in that directory holds two shims, ``systolic-sim`` (``python -P -m simulator``) and
``python``, both the interpreter running the tests, so the commands are tested as printed.
A command that starts with the set-up step ``python3 -m venv .venv && .venv/bin/pip install
... &&`` runs only what follows it: the tests already run inside that environment.
``skip`` is for commands that take minutes, need a GPU or another machine, install packages,
or are the test suite itself; the reason is required. A ``python`` block may carry ``run`` too
(then it runs with the interpreter, in the same directory); python blocks are not required to.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT

PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
SHELL = {"bash", "sh", "shell", "console"}
MARK = re.compile(r"^<!--\s*docs-test:\s*(run|skip)\s*(?::\s*(.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
SETUP = re.compile(r"^python3 -m venv \.venv && \.venv/bin/pip install -q -e \S+ && ")
DATA = ("configs", "examples", "calibration", "benchmarks", "notebooks")
BLOCK_TIMEOUT_S = 300


@dataclass
class Block:
    path: Path
    line: int           # 1-based line of the opening fence
    lang: str
    mark: str | None    # "run", "skip" or None
    reason: str
    code: str

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Return the fenced code blocks of a Markdown page with the marker line above each."""
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i].strip())
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        indent = len(lines[i]) - len(lines[i].lstrip())
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        above = lines[i - 1].strip() if i > 0 else ""
        mk = MARK.match(above)
        code = "\n".join(line[indent:] for line in lines[i + 1:j])
        out.append(Block(path, i + 1, lang, mk.group(1) if mk else None,
                         (mk.group(2) or "") if mk else "", code))
        i = j + 1
    return out


ALL = [b for p in PAGES for b in blocks(p)]


def test_every_shell_block_is_marked():
    unmarked = [b.where() for b in ALL if b.lang in SHELL and b.mark is None]
    assert not unmarked, ("put <!-- docs-test: run --> or <!-- docs-test: skip: REASON --> on the "
                          "line above each of these blocks: " + ", ".join(unmarked))


def test_every_skip_says_why():
    bare = [b.where() for b in ALL if b.mark == "skip" and len(b.reason) < 10]
    assert not bare, bare


def test_the_readme_and_the_tutorial_run_their_commands():
    for name in ("README.md", "docs/tutorial.md"):
        runs = [b for b in ALL if b.path == ROOT / name and b.mark == "run" and b.lang in SHELL]
        assert runs, f"{name} runs none of its commands"


def _workdir(tmp: Path) -> dict[str, str]:
    """Lay out the data folders and the .venv/bin shims in tmp; return the environment."""
    for name in DATA:
        shutil.copytree(ROOT / name, tmp / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build"))
    bindir = tmp / ".venv" / "bin"
    bindir.mkdir(parents=True)
    shims = {"systolic-sim": f'exec "{sys.executable}" -P -m simulator "$@"\n',
             "python": f'exec "{sys.executable}" "$@"\n'}
    for name, body in shims.items():
        shim = bindir / name
        shim.write_text("#!/usr/bin/env bash\n" + body)
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop("CI", None)   # the commands are a user's, not the suite's CI rule
    return env


RUN_PAGES = sorted({b.path for b in ALL if b.mark == "run"})


@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_of_page_run(page, tmp_path):
    env = _workdir(tmp_path)
    timings = []
    for b in [b for b in ALL if b.path == page and b.mark == "run"]:
        if b.lang in SHELL:
            script = "\n".join(SETUP.sub("", line) for line in b.code.splitlines())
            argv = ["bash", "-c", "set -euo pipefail\n" + script]
        elif b.lang == "python":
            argv = [sys.executable, "-P", "-c", b.code]
        else:
            pytest.fail(f"{b.where()}: a {b.lang or 'plain'} block cannot be run")
        start = time.perf_counter()
        try:
            done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{b.where()}: over {BLOCK_TIMEOUT_S} s")
        timings.append(f"{b.where()} {time.perf_counter() - start:.1f} s")
        assert done.returncode == 0, (f"{b.where()} exited {done.returncode}\n--- block\n{b.code}\n"
                                      f"--- stdout\n{done.stdout[-3000:]}\n"
                                      f"--- stderr\n{done.stderr[-3000:]}")
    print("\n".join(timings))
