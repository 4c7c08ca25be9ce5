"""A lock file so two ofa-edge processes never write the same latency table at once.

The lock is a kernel advisory lock (``flock``) on ``<runtime>.lock``: the kernel drops it the moment its
process dies, however it dies, so there is no stale lock to detect and no race between two processes
taking over the same dead one. The file also names its holder (pid, host) for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Iterator

from ofa_edge.errors import OfaEdgeError


class TableLocked(OfaEdgeError):
    """Another live process holds the lock."""


def _holder(path: Path) -> str:
    """Who the lock file says holds it, for messages."""
    try:
        data = json.loads(path.read_text(errors="replace") or "{}")
    except (OSError, ValueError):
        return "unknown"
    if isinstance(data, dict) and isinstance(data.get("pid"), int):
        return f"pid {data['pid']} on {data.get('host', '?')}"
    return "unknown"


def _acquire(path: Path) -> int:
    """An fd of ``path`` holding its exclusive flock, or TableLocked if a live process holds it."""
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TableLocked(f"{path}: another ofa-edge process ({_holder(path)}) is writing this latency table; "
                              "wait for it to finish and run the command again") from None
        try:  # the holder before us may have unlinked the file between our open and our flock
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def table_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the lock ``path`` while the block runs; the kernel releases it if this process dies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still holding the flock: a waiting process re-checks the inode
        os.close(fd)
