"""Errors a user can act on; the CLI prints them on one line and exits with code 2."""

from __future__ import annotations


class OfaEdgeError(Exception):
    """A problem with the user's input (a file, a flag, a device); the message says how to fix it."""

    exit_code = 2


class FileFormatError(OfaEdgeError, ValueError):
    """A file that is missing, corrupt, of another kind or of an unknown format version."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
