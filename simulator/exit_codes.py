"""Exit statuses of the ``systolic-sim`` command, shared by the entry point and the CLI (a module
below both, so neither imports the other for them)."""

from __future__ import annotations

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_INPUT", "EXIT_INTERRUPTED"]

EXIT_INPUT = 2  # bad input: one line on stderr naming the flag or FILE:LINE
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
