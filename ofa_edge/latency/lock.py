"""A lock file so two ofa-edge processes never write the same latency table at once."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from ofa_edge.errors import OfaEdgeError


#: A lock file still without its owner after this many seconds was left by a process killed while creating it.
UNWRITTEN_STALE_S = 5.0


class TableLocked(OfaEdgeError):
    """Another live process holds the lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def table_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold ``path`` (created exclusively) while the block runs; a stale lock of a dead process is taken over."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(200):  # each pass takes over a stale lock or waits 50 ms on a lock being written
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                text, age = path.read_text(errors="replace"), time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile
            try:
                holder = json.loads(text or "{}")
            except ValueError:
                holder = {}
            pid = holder.get("pid") if isinstance(holder, dict) else None
            same_host = isinstance(holder, dict) and holder.get("host") == me["host"]
            if isinstance(pid, int) and same_host and not _alive(pid):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            if not isinstance(pid, int):  # no owner written (yet): a process killed between create and write
                if age > UNWRITTEN_STALE_S:
                    path.unlink(missing_ok=True)
                else:
                    time.sleep(0.05)
                continue
            raise TableLocked(f"{path}: another ofa-edge process ({holder or 'unknown'}) is writing this latency "
                              "table; wait for it to finish, or delete the lock file if that process is gone") \
                from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:
        raise TableLocked(f"{path}: could not take the lock file")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
