"""The shell line a remote command runs in (SSH, adb) and what its exit says: code, signal, process group.

A remote command runs as ``echo <pgid mark>$$; <argv>; printf '\\n<exit mark>%s\\n' "$?"`` in the device's
POSIX shell. The first line names the process group (to kill a timed-out command with its children), the last
one carries the exit status even where the transport loses it (paramiko ignores SSH ``exit-signal``, old
adb reports no status): a status above 128 is a death by signal 128+N, reported by name (SIGSEGV).
"""

from __future__ import annotations

import signal
from typing import Callable

PGID_MARK = "ofa-edge-pgid="
EXIT_MARK = "ofa-edge-exit="


def wrap(command: str) -> str:
    """``command`` (already quoted) inside the shell line that reports its process group and exit status."""
    return f"echo {PGID_MARK}$$; {command}; printf '\\n{EXIT_MARK}%s\\n' \"$?\""


class MarkedLines:
    """Splits a wrapped command's stdout into its own lines (passed on) and the pgid / exit marks."""

    def __init__(self, on_line: Callable[[str], None] | None):
        self.on_line = on_line
        self.pgid: int | None = None
        self.exit_code: int | None = None
        self._pending_blank = False

    def feed(self, text: str) -> None:
        """One line of stdout (without its newline)."""
        if self.pgid is None and text.startswith(PGID_MARK) and text[len(PGID_MARK):].isdigit():
            self.pgid = int(text[len(PGID_MARK):])
            return
        if text.startswith(EXIT_MARK) and text[len(EXIT_MARK):].isdigit():
            self.exit_code = int(text[len(EXIT_MARK):])
            self._pending_blank = False  # the blank line printf put before the mark is not output
            return
        if self._pending_blank and self.on_line is not None:
            self.on_line("")
        self._pending_blank = text == ""
        if text and self.on_line is not None:
            self.on_line(text)


def signal_of(exit_code: int | None) -> int | None:
    """The signal number behind a shell exit status (128+N) or a negative subprocess return code."""
    if exit_code is None:
        return None
    if exit_code < 0:
        return -exit_code
    if 128 < exit_code < 128 + 65:
        return exit_code - 128
    return None


def signal_name(number: int) -> str:
    """``SIGSEGV`` for 11 (Linux numbering, as on every ARM and x86 device), ``signal 42`` if unnamed."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


_MEANING = {"SIGSEGV": "segmentation fault", "SIGBUS": "bus error", "SIGILL": "illegal instruction (a binary "
            "built for another CPU?)", "SIGABRT": "aborted", "SIGKILL": "killed (out of memory, or stopped "
            "by someone)", "SIGFPE": "arithmetic error", "SIGTERM": "terminated", "SIGHUP": "hang-up"}


def crash_message(what: str, number: int, stderr: str, n_lines: int = 3) -> str:
    """``<what> crashed on the device: SIGSEGV (segmentation fault); last stderr lines: ...``."""
    name = signal_name(number)
    lines = [line.strip()[:200] for line in stderr.splitlines() if line.strip()][-n_lines:]
    tail = " | ".join(lines) if lines else "none"
    meaning = f" ({_MEANING[name]})" if name in _MEANING else ""
    return f"{what} crashed on the device: {name}{meaning}; last stderr lines: {tail}"

