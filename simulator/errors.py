"""Error types that the CLI turns into one-line messages and exit status 2."""

from __future__ import annotations


class SimulatorInputError(ValueError):
    """Bad user input: a config, an override, a shape or an operand.

    ``str(err)`` is the whole one-line message, ``LOCATION: FIELD: MESSAGE``, where LOCATION is
    ``FILE:LINE`` for a file and the offending argument (``--set array.rows=-3``) otherwise.
    """

    def __init__(self, location: str, field: str, message: str):
        self.location = location
        self.field = field
        self.message = message
        super().__init__(f"{location}: {field}: {message}" if field else f"{location}: {message}")


class ConfigError(SimulatorInputError):
    """A chip config (YAML file or override) that does not validate."""


class WorkloadError(SimulatorInputError):
    """A workload (GEMM shape, operands) that does not fit the chip or is malformed."""
