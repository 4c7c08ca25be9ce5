"""Atomic file writes: write to a temp file in the target folder, fsync, then rename."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

from ofa_edge.errors import OfaEdgeError

#: errno values that mean the disk (or the user's quota) is full.
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: How the temp file is opened (one place, so tests can simulate a full disk).
_fdopen = os.fdopen


class DiskFullError(OfaEdgeError):
    """A write failed for lack of space; the file it would have replaced is unchanged."""


class _Recorder:
    """A file proxy that remembers the OSError a write raised (torch.save re-raises it as RuntimeError)."""

    def __init__(self, fh: IO) -> None:
        self._fh = fh
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self._fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str):
        return getattr(self._fh, name)


def _full_disk(path: Path, exc: OSError) -> DiskFullError:
    return DiskFullError(f"{path}: no space left on device while writing it ({os.strerror(exc.errno)}); "
                         f"the previous {path.name}, if any, is unchanged; free some space and retry")


@contextlib.contextmanager
def _discard_on_failure(path: Path, tmp: str | os.PathLike) -> Iterator[None]:
    """On any failure inside, remove ``tmp``; a full disk becomes a DiskFullError naming ``path``."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _FULL:
            raise _full_disk(path, exc) from None
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of ``path``; on success it replaces ``path`` in one rename.

    On any failure the temp file is removed and ``path`` is left as it was; a full disk raises
    :class:`DiskFullError` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with _discard_on_failure(path, tmp):
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        fh = _Recorder(_fdopen(fd, mode))
        with fh._fh:
            try:
                yield fh  # type: ignore[misc]
            except Exception as exc:
                if fh.error is not None and exc is not fh.error:
                    raise fh.error from exc  # the real cause (e.g. ENOSPC under torch's RuntimeError)
                raise
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(path: str | os.PathLike, writer: Callable[[IO], None]) -> None:
    """Call ``writer(fh)`` on a temp file and move it over ``path`` once it is complete."""
    with atomic_open(path, "wb") as fh:
        writer(fh)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temp sibling of ``path`` (same suffix) for a writer that needs a name; on success it becomes ``path``.

    Two processes filling one cache never see each other's half-written file: the last rename wins.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    with _discard_on_failure(path, tmp):
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise OSError(errno.EIO, f"the writer left {path.name} empty")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
