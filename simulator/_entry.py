"""The ``systolic-sim`` console script: the command line, with Ctrl-C during start-up (while
numpy, numba and the simulator load) ending in one line and exit 130, as later Ctrl-Cs do,
output piped into a reader that closes early (``| head``) ending quietly with exit 141, and
standard output that cannot be written (``> /dev/full``) ending in one line with exit 2."""

from __future__ import annotations

import sys

from .exit_codes import EXIT_BROKEN_PIPE, EXIT_INPUT, EXIT_INTERRUPTED


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
        if status == EXIT_INTERRUPTED:
            _exit_if_abandoned(status)
    except BrokenPipeError:  # the reader closed the pipe: stop writing, say nothing
        from .tools.stdout_guard import silence_stdout
        silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if not _is_stdout_error(exc):
            raise
        from .tools.outputs import os_error_text
        from .tools.stdout_guard import silence_stdout
        silence_stdout()  # e.g. --help > /dev/full, outside the command's own guard
        print(f"<stdout>: stdout: cannot be written: {os_error_text(exc)}", file=sys.stderr)
        return EXIT_INPUT
    return status


def _exit_if_abandoned(status: int) -> None:
    """End the process now with ``status`` (after flushing stderr) when Ctrl-C left a hot loop
    running in a helper thread (``core.interruptible``): finalizing the interpreter under it
    would take most of a second. Every ``finally`` and ``with`` of the command has run by now
    (files written whole or not at all, lock files removed); returns when no loop was left."""
    loops = sys.modules.get("simulator.core.interruptible")
    if loops is None or not loops.abandoned():
        return
    import os
    sys.stderr.flush()
    os._exit(status)


def _is_stdout_error(exc: OSError) -> bool:
    """Return True when ``exc`` was raised writing standard output (its innermost frame is a
    write or flush of ``sys.stdout``, or argparse printing help), not reading a file."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    code = tb.tb_frame.f_code
    return code.co_name == "_print_message" or code.co_filename == __file__
