"""The ``systolic-sim`` console script: the command line, with Ctrl-C during start-up (while
numpy, numba and the simulator load) ending in one line and exit 130, as later Ctrl-Cs do, and
output piped into a reader that closes early (``| head``) ending quietly."""

from __future__ import annotations

import os
import sys

from .exit_codes import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED


def main() -> int:
    """Load and run the command line; return its exit status (130 if stopped while loading)."""
    try:
        from .tools.cli import main as cli_main
    except KeyboardInterrupt:
        start = "\n" if sys.stderr.isatty() else ""
        print(f"{start}systolic-sim: interrupted (Ctrl-C) while starting: nothing done",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        status = cli_main()
        sys.stdout.flush()
    except BrokenPipeError:  # the reader closed the pipe: stop writing, say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return status
