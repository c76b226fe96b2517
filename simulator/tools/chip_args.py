"""The chip arguments every subcommand shares (``CONFIG`` and ``--set PATH=VALUE``) and the
loader that turns them into a Chip. It lives below the CLI and the subcommand modules (``llm``)
so that they all use it without importing one another."""

from __future__ import annotations

import argparse

from ..hardware.chip import Chip, load_chip
from ..hardware.config import parse_override

__all__ = ["add_chip_args", "load_chip_args"]


def add_chip_args(p: argparse.ArgumentParser) -> None:
    """Add the positional chip config and the repeatable ``--set`` override to parser ``p``."""
    p.add_argument("config", help="chip config YAML (see docs/config.md)")
    p.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override a config key by dotted path, e.g. --set array.rows=8 (repeatable)")


def load_chip_args(args: argparse.Namespace) -> Chip:
    """Return the Chip of ``args.config`` with the ``args.set`` overrides applied (raises
    ConfigError naming the file line or the ``--set`` text on bad input)."""
    overrides, sources = {}, {}
    for text in args.set or []:
        path, value, where = parse_override(text)
        overrides[path] = value
        sources[path] = where
    return load_chip(args.config, overrides, sources)
