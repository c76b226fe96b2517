"""Error types that the CLI turns into one-line messages and exit status 2."""

from __future__ import annotations



class SimulatorInputError(ValueError):
    """Bad user input: a config, an override, a shape or an operand.

    ``str(err)`` is the whole one-line message, ``LOCATION: FIELD: MESSAGE``, where LOCATION is
    ``FILE:LINE`` for a file and the offending argument (``--set array.rows=-3``) otherwise.
    """

    def __init__(self, location: str, field: str, message: str):
        self.location = _one_line(location)
        self.field = _one_line(field)
        self.message = _one_line(message)
        super().__init__(f"{self.location}: {self.field}: {self.message}" if field
                         else f"{self.location}: {self.message}")


def _one_line(text: str) -> str:
    """Return ``text`` with line breaks and other control characters escaped (user input may
    carry them into a message, which must stay on one line)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


class ConfigError(SimulatorInputError):
    """A chip config (YAML file or override) that does not validate."""


class WorkloadError(SimulatorInputError):
    """A workload (GEMM shape, operands) that does not fit the chip or is malformed."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a long loop; ``str(err)`` says what was done and what was written.

    A KeyboardInterrupt, so code that catches Ctrl-C keeps working; the CLI prints the message
    as its one line and exits with status 130.
    """

    def __init__(self, done: str):
        self.done = _one_line(done)
        super().__init__(self.done)
