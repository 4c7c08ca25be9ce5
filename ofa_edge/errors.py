"""Errors a user can act on; the CLI prints them on one line and exits with code 2.

Every user error is an :class:`OfaEdgeError`. Those about one input value carry its ``field`` (the
library's parameter or config field name, e.g. ``"strategy"``); the CLI maps the field to its flag.
Library messages never name CLI flags.
"""

from __future__ import annotations

from typing import Iterable


class OfaEdgeError(Exception):
    """A problem with the user's input (a file, a value, a device); the message says how to fix it.

    Args:
        message: What is wrong and how to fix it.
        field: The offending input field (library name, e.g. ``"batch_size"``), or None.
    """

    exit_code = 2

    def __init__(self, message: str = "", field: str | None = None):
        super().__init__(message)
        self.field = field


class InvalidValueError(OfaEdgeError, ValueError):
    """One input value is out of range or of the wrong kind; ``field`` names it."""


class UnknownNameError(InvalidValueError):
    """A name that no registry holds (strategy, runtime, format, selector, space); lists the known ones."""

    def __init__(self, kind: str, name: object, known: Iterable[str], field: str | None = None, hint: str = ""):
        self.kind, self.name, self.known = kind, name, list(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known) or 'none'}"
                         + (f" {hint}" if hint else ""), field or None)


class MissingStepError(OfaEdgeError):
    """The output of an earlier pipeline step is missing; ``step`` names that step, ``inputs`` what it needs.

    The CLI appends the command that makes it, e.g. ``ofa-edge profile --device pi4 --space cifar-mbv3``.
    """

    def __init__(self, message: str, step: str, inputs: dict[str, object] | None = None,
                 field: str | None = None):
        super().__init__(message, field)
        self.step = step
        self.inputs = dict(inputs or {})


class FileFormatError(OfaEdgeError, ValueError):
    """A file that is missing, corrupt, of another kind or of an unknown format version."""

    def __init__(self, path, problem: str, field: str | None = None):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}", field)
