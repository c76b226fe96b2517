"""Files a command writes besides its printed report (``--trace``, ``--html``): checked before
the simulation starts, so a bad path costs nothing, and written with one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import WorkloadError

__all__ = ["check_output_path", "write_output"]


def check_output_path(path: str, flag: str) -> Path:
    """Return ``path`` as a Path when a file can be written there (an existing directory that
    is writable, and not itself a directory); raise WorkloadError naming ``flag`` otherwise."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    where = f"{flag} {path}"
    name = flag.lstrip("-")
    if p.is_dir():
        raise WorkloadError(where, name, "is a directory; give a file name")
    if not parent.is_dir():
        raise WorkloadError(where, name, f"directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise WorkloadError(where, name, "cannot be written (permission denied)")
    return p


def write_output(path: str, flag: str, text: str) -> Path:
    """Write ``text`` to ``path``; return the Path. Raises WorkloadError naming ``flag`` when
    the file cannot be written."""
    p = check_output_path(path, flag)
    try:
        p.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise WorkloadError(f"{flag} {path}", flag.lstrip("-"),
                            f"cannot be written: {exc.strerror or exc}") from None
    return p
