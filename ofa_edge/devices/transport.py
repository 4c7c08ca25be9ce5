"""Transports: run the runner on a device and move files there. ``local`` (subprocess) and ``ssh``."""

from __future__ import annotations

import abc

import os
import posixpath
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ofa_edge.devices.profile import DeviceProfile
from ofa_edge.errors import OfaEdgeError

#: Largest file read back from a device (results files are a few hundred bytes per model).
MAX_READ_BYTES = 64 * 1024 * 1024


class TransportError(OfaEdgeError):
    """The device could not be reached or a command on it failed to run."""


class ConnectionLost(TransportError):
    """The connection dropped (or the command timed out) while a command was running."""


@dataclass
class CommandResult:
    """Exit code (None if the command never reported one) and the tail of its stderr."""

    exit_code: int | None
    stderr: str


LineHandler = Callable[[str], None]


class Transport(abc.ABC):
    """Base class: a connection to one device, used as a context manager."""

    def __init__(self, profile: DeviceProfile):
        self.profile = profile

    def __enter__(self) -> "Transport":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Connect (no-op for local)."""

    def close(self) -> None:
        """Disconnect."""

    def python(self) -> str:
        """The device's python executable as the profile names it."""
        return self.profile.device.python

    @abc.abstractmethod
    def work_dir(self) -> str:
        """Absolute path of the profile's work folder on the device."""

    @abc.abstractmethod
    def makedirs(self, path: str) -> None:
        """Create the device folder ``path`` (absolute) and its parents."""

    @abc.abstractmethod
    def put(self, local: Path, remote: str) -> None:
        """Copy a local file to ``remote`` (absolute), atomically (upload then rename)."""

    @abc.abstractmethod
    def read(self, remote: str) -> bytes | None:
        """Contents of the device file ``remote``, or None if it does not exist."""

    @abc.abstractmethod
    def run(self, argv: Sequence[str], timeout: float, on_line: LineHandler | None = None) -> CommandResult:
        """Run ``argv`` on the device, calling ``on_line`` for each stdout line as it arrives."""

    def describe(self) -> str:
        return self.profile.name


def quote_command(argv: Sequence[str]) -> str:
    """One shell command line with every argument quoted (nothing reaches the shell unquoted)."""
    import shlex

    return " ".join(shlex.quote(str(a)) for a in argv)


class LocalTransport(Transport):
    """The device is this machine: files are copied, commands run as subprocesses (no shell)."""

    def python(self) -> str:
        py = self.profile.device.python
        return sys.executable if py == "current" else py

    def work_dir(self) -> str:
        return str(Path(os.path.expanduser(self.profile.device.work_dir)).resolve())

    def makedirs(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def put(self, local: Path, remote: str) -> None:
        tmp = remote + ".part"
        shutil.copyfile(local, tmp)
        os.replace(tmp, remote)

    def read(self, remote: str) -> bytes | None:
        try:
            with open(remote, "rb") as fh:
                return fh.read(MAX_READ_BYTES)
        except FileNotFoundError:
            return None

    def run(self, argv: Sequence[str], timeout: float, on_line: LineHandler | None = None) -> CommandResult:
        try:
            proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except FileNotFoundError:
            raise TransportError(f"device {self.profile.name}: python {argv[0]!r} not found; set "
                                 "device.python in the profile to an installed interpreter") from None
        except PermissionError:
            raise TransportError(f"device {self.profile.name}: {argv[0]!r} is not executable") from None
        stderr: list[str] = []
        reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
        reader.start()
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            kill_group(proc)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            for line in proc.stdout:
                if on_line is not None:
                    on_line(line.rstrip("\n"))
            code = proc.wait()
        except BaseException:
            kill_group(proc)
            proc.wait()
            raise
        finally:
            timer.cancel()
        reader.join(5)
        if timed_out.is_set():
            raise ConnectionLost(f"device {self.profile.name}: the command did not finish within "
                                 f"{timeout:.0f} s (connection.command_timeout) and was stopped")
        return CommandResult(code, "".join(stderr)[-4000:])


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group ``proc`` leads (started with a new session): children die with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def open_transport(profile: DeviceProfile) -> Transport:
    """The transport the profile asks for (not yet connected), from the ``TRANSPORTS`` registry."""
    from ofa_edge.devices.transports import TRANSPORTS

    return TRANSPORTS.get(profile.connection.transport)(profile)


def resolve_remote(path: str, home: str) -> str:
    """A device path with ``~`` and relative paths resolved against ``home`` (no shell expansion)."""
    if path == "~":
        return home
    if path.startswith("~/"):
        path = posixpath.join(home, path[2:])
    elif not path.startswith("/"):
        path = posixpath.join(home, path)
    return posixpath.normpath(path)

