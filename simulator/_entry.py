"""The ``systolic-sim`` console script: the command line, with Ctrl-C during start-up (while
numpy, numba and the simulator load) ending in one line and exit 130, as later Ctrl-Cs do,
output piped into a reader that closes early (``| head``) ending quietly with exit 141, and
standard output that cannot be written (``> /dev/full``) ending in one line with exit 2."""

from __future__ import annotations

import os
import sys

from .exit_codes import EXIT_BROKEN_PIPE, EXIT_INPUT, EXIT_INTERRUPTED


def _silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so the interpreter's flush at exit cannot fail
    again and print a second message."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main() -> int:
    """Load and run the command line; return its exit status (130 if stopped while loading,
    141 when the reader of standard output left, 2 when standard output cannot be written)."""
    try:
        from .tools.cli import main as cli_main
    except KeyboardInterrupt:
        start = "\n" if sys.stderr.isatty() else ""
        print(f"{start}systolic-sim: interrupted (Ctrl-C) while starting: nothing done",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        try:
            status = cli_main()
        except SystemExit as exc:  # --help, usage errors: their text is on stdout or stderr
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader closed the pipe: stop writing, say nothing
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # e.g. > /dev/full after the command's own checks
        _silence_stdout()
        from .tools.outputs import os_error_text
        print(f"<stdout>: stdout: cannot be written: {os_error_text(exc)}", file=sys.stderr)
        return EXIT_INPUT
    return status
