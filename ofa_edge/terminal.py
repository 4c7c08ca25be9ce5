"""A clean terminal: third-party output captured into a log file at the file-descriptor level.

Converters write to the terminal in several ways: Python warnings, ``logging`` and tqdm write to
``sys.stderr``; TensorFlow/LiteRT, absl and oneDNN write from C++ straight to file descriptors 1 and 2.
:func:`capture_output` points both descriptors (and ``sys.stdout``/``sys.stderr``) at a log file for the
duration of a block and restores them on any exit, exceptions included. :data:`STDOUT` and
:data:`STDERR` always reach the real terminal, so progress bars keep drawing while output is captured.
Descriptors are process-wide: captures nest, but two threads must not capture at the same time.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

_LOCK = threading.RLock()
_terminals: dict[str, IO[str]] = {}   # stream name -> the real terminal while a capture is active
_depth = 0
_fd_writers: dict[int, IO[str]] = {}  # fd -> a text stream over it that is never closed

#: Lines that count as warnings / errors in a converter log (Python warnings, logging, absl's W/E prefix).
WARNING_LINE = re.compile(r"^W\d{4} |[A-Za-z]Warning: |\bWARNING\b|\b[Ww]arning: ")
ERROR_LINE = re.compile(r"^[EF]\d{4} |[A-Za-z]Error: |\bERROR\b|\b[Ee]rror: |^Traceback ")


class TerminalStream:
    """A file-like object for the real stdout or stderr, even while output is being captured."""

    def __init__(self, name: str):
        self.name = name

    def target(self) -> IO[str]:
        """The stream writes go to now: the saved terminal during a capture, else ``sys.<name>``."""
        stream = _terminals.get(self.name) or getattr(sys, self.name)
        return getattr(stream, "rich_proxied_file", stream)  # rich's redirect proxies wrap the real stream

    def write(self, text: str) -> int:
        return self.target().write(text)

    def flush(self) -> None:
        self.target().flush()

    def isatty(self) -> bool:
        try:
            return self.target().isatty()
        except (ValueError, OSError):
            return False

    def __getattr__(self, name: str):
        return getattr(self.target(), name)


#: The real terminal's stdout and stderr (for progress bars and messages that must not be captured).
STDOUT = TerminalStream("stdout")
STDERR = TerminalStream("stderr")


@dataclass(frozen=True)
class LogSummary:
    """What a captured log holds: its file, line count, and how many lines are warnings / errors."""

    path: Path
    lines: int
    warnings: int
    errors: int

    def to_dict(self, relative_to: Path | None = None) -> dict[str, object]:
        path = self.path.relative_to(relative_to) if relative_to else self.path
        return {"file": path.as_posix(), "lines": self.lines, "warnings": self.warnings, "errors": self.errors}


def summarise(path: str | os.PathLike) -> LogSummary:
    """Count the lines, warnings and errors of a captured log (progress-bar redraws count once)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    lines = [line.rsplit("\r", 1)[-1] for line in text.splitlines() if line.strip()]
    return LogSummary(path, len(lines), sum(1 for line in lines if WARNING_LINE.search(line)),
                      sum(1 for line in lines if ERROR_LINE.search(line)))


def _fd_writer(fd: int) -> IO[str]:
    """A text stream over descriptor ``fd`` that stays valid after the capture (loggers may keep it)."""
    if fd not in _fd_writers:
        _fd_writers[fd] = os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    return _fd_writers[fd]


def _flush_all() -> None:
    """Flush Python's streams and C's stdio buffers, so that output lands on the side of the switch it was
    written on."""
    for stream in (sys.stdout, sys.stderr, *_fd_writers.values()):
        try:
            if stream is not None:
                stream.flush()
        except (ValueError, OSError):
            pass
    libc = _libc()
    if libc is not None:
        libc.fflush(None)


_LIBC: list = []


def _libc():
    """The C library (for ``fflush(NULL)``), or None where it cannot be loaded."""
    if not _LIBC:
        try:
            import ctypes

            _LIBC.append(ctypes.CDLL(None))
        except (OSError, AttributeError, TypeError):
            _LIBC.append(None)
    return _LIBC[0]


@contextlib.contextmanager
def capture_output(log_path: str | os.PathLike | None, enabled: bool = True) -> Iterator[Path | None]:
    """Send everything written to fds 1/2 and ``sys.stdout``/``sys.stderr`` inside the block to ``log_path``.

    The log is appended to (its folder is created). With ``enabled`` False (``--verbose``) or no path,
    output streams to the terminal as usual. Yields the log path (or None when not capturing).
    """
    global _depth
    if not enabled or log_path is None:
        yield None
        return
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK:
        _flush_all()
        saved_sys = {"stdout": sys.stdout, "stderr": sys.stderr}
        log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        saved_fds: dict[int, int] = {}
        try:
            for fd in (1, 2):
                saved_fds[fd] = os.dup(fd)
            outermost = _depth == 0
            if outermost:
                for name, fd in (("stdout", 1), ("stderr", 2)):
                    _terminals[name] = _terminal_for(saved_sys[name], fd, saved_fds[fd])
            for fd in (1, 2):
                os.dup2(log_fd, fd)
        except OSError:  # no usable descriptors 1/2 (an embedding host): leave output as it is
            for fd in saved_fds.values():
                os.close(fd)
            os.close(log_fd)
            yield None
            return
        sys.stdout, sys.stderr = _fd_writer(1), _fd_writer(2)
        _depth += 1
    try:
        yield path
    finally:
        with _LOCK:
            _flush_all()
            if outermost:
                for stream in _terminals.values():
                    with contextlib.suppress(ValueError, OSError):
                        stream.flush()
                _terminals.clear()
            for fd, saved in saved_fds.items():
                os.dup2(saved, fd)
                os.close(saved)
            os.close(log_fd)
            sys.stdout, sys.stderr = saved_sys["stdout"], saved_sys["stderr"]
            _depth -= 1


def _terminal_for(stream: IO[str] | None, fd: int, saved_fd: int) -> IO[str]:
    """Where the real terminal is while ``fd`` points at a log: the saved descriptor, or ``stream`` itself
    when ``stream`` does not write to ``fd`` (a test's in-memory capture)."""
    real = getattr(stream, "rich_proxied_file", stream)
    try:
        uses_fd = real is not None and real.fileno() == fd
    except (AttributeError, ValueError, OSError):
        uses_fd = False
    if not uses_fd:
        return real if real is not None else open(os.devnull, "w", encoding="utf-8")
    encoding = getattr(real, "encoding", None) or "utf-8"
    return os.fdopen(saved_fd, "w", buffering=1, encoding=encoding, errors="replace", closefd=False)
