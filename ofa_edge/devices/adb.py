"""adb transport: an Android device over USB (serial) or wireless adb (``host:port``), no root, no Python.

Files go to the profile's work folder (default ``/data/local/tmp/ofa-edge``: the one folder adb's shell user
may write and execute in) with ``adb push``; commands run through ``adb shell`` inside the shell line of
:mod:`ofa_edge.devices.shellwrap`, which reports the exit status (also on old adb without the shell
protocol) and the process group to kill when a command must be stopped.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Sequence

from ofa_edge.devices.profile import DeviceProfile
from ofa_edge.devices.shellwrap import MarkedLines, wrap
from ofa_edge.devices.transport import (MAX_READ_BYTES, CommandResult, ConnectionLost, LineHandler, Transport,
                                        TransportError, kill_group, quote_command, resolve_remote)

#: The folder adb's shell user owns on every Android version; relative work_dir values are taken below it.
ANDROID_TMP = "/data/local/tmp"
_STATE_HELP = {
    "unauthorized": "unlock the phone and accept the 'Allow USB debugging?' prompt (RSA key), then retry",
    "offline": "reconnect the cable or run `adb reconnect`; if it stays offline, restart adb (`adb kill-server`)",
    "recovery": "the device is in recovery mode; boot it normally",
    "bootloader": "the device is in the bootloader; boot it normally",
}


class AdbTransport(Transport):
    """A device reached with the ``adb`` executable of this machine (``connection.adb``)."""

    def __init__(self, profile: DeviceProfile):
        super().__init__(profile)
        self.serial = profile.connection.serial
        self.adb = ""

    def describe(self) -> str:
        return f"{self.profile.name} (adb {self.serial})"

    # -- plumbing --------------------------------------------------------------------------------
    def _call(self, args: Sequence[str], timeout: float | None = None, device: bool = True) -> subprocess.CompletedProcess:
        argv = [self.adb, *(["-s", self.serial] if device else []), *args]
        try:
            return subprocess.run(argv, capture_output=True, timeout=timeout or self.profile.connection.connect_timeout
                                  + 60, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ConnectionLost(f"device {self.describe()}: `adb {' '.join(args[:2])}` did not finish within "
                                 f"{timeout or self.profile.connection.connect_timeout + 60:.0f} s") from None

    def _failed(self, what: str, proc: subprocess.CompletedProcess) -> TransportError:
        text = (proc.stderr or b"").decode("utf-8", "replace").strip() or \
            (proc.stdout or b"").decode("utf-8", "replace").strip() or f"exit {proc.returncode}"
        line = text.splitlines()[-1][:300]
        if "not found" in line or "offline" in line or "no devices" in line or "closed" in line:
            return ConnectionLost(f"device {self.describe()}: {what} failed: {line}; is it still connected "
                                  "(`adb devices`)?")
        return TransportError(f"device {self.describe()}: {what} failed: {line}")

    def _shell(self, command: str, what: str) -> subprocess.CompletedProcess:
        proc = self._call(["shell", wrap(command)])
        marks = MarkedLines(None)
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            marks.feed(line)
        if marks.exit_code is None:
            raise self._failed(what, proc)
        proc.returncode = marks.exit_code
        return proc

    # -- Transport ---------------------------------------------------------------------------------
    def open(self) -> None:
        c = self.profile.connection
        found = shutil.which(os.path.expanduser(c.adb))
        if found is None:
            raise TransportError(f"device {self.profile.name}: the adb executable {c.adb!r} is not found; install "
                                 "Android platform-tools (Debian/Ubuntu: apt-get install adb) or set "
                                 "connection.adb to its path")
        self.adb = found
        if ":" in self.serial:  # wireless adb: host:port
            proc = self._call(["connect", self.serial], device=False)
            out = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip()
            if "connected to" not in out:
                raise TransportError(f"device {self.profile.name}: `adb connect {self.serial}` failed "
                                     f"({out.splitlines()[-1][:200] if out else 'no output'}); enable wireless "
                                     "debugging on the phone (or `adb tcpip 5555` over USB) and check the address")
        proc = self._call(["get-state"])
        state = proc.stdout.decode("utf-8", "replace").strip()
        if proc.returncode != 0 or state != "device":
            text = proc.stderr.decode("utf-8", "replace").strip()
            err = (text.splitlines() or [state or "no answer"])[0]
            hint = next((h for k, h in _STATE_HELP.items() if k in text or k == state), None)
            raise TransportError(f"device {self.profile.name}: adb device {self.serial} is not ready ({err[:200]}); "
                                 + (hint or "`adb devices` lists the connected serials; check the cable and that "
                                    "USB debugging is on"))

    def work_dir(self) -> str:
        return resolve_remote(self.profile.device.work_dir, ANDROID_TMP)

    def makedirs(self, path: str) -> None:
        proc = self._shell(quote_command(["mkdir", "-p", path]), f"mkdir {path}")
        if proc.returncode != 0:
            raise TransportError(f"device {self.describe()}: cannot create {path} "
                                 f"({proc.stderr.decode('utf-8', 'replace').strip()[:200]}); set device.work_dir "
                                 f"to a folder below {ANDROID_TMP}")

    def put(self, local: Path, remote: str) -> None:
        tmp = remote + ".part"
        proc = self._call(["push", str(local), tmp], timeout=self.profile.connection.command_timeout)
        if proc.returncode != 0:
            raise self._failed(f"adb push {Path(local).name}", proc)
        moved = self._shell(quote_command(["mv", "-f", tmp, remote]), f"mv {posixpath.basename(tmp)}")
        if moved.returncode != 0:
            raise TransportError(f"device {self.describe()}: cannot rename {tmp} to {remote}")

    def read(self, remote: str) -> bytes | None:
        if self._shell(quote_command(["test", "-f", remote]), f"test -f {remote}").returncode != 0:
            return None
        proc = self._call(["exec-out", quote_command(["cat", remote])], timeout=self.profile.connection.command_timeout)
        if proc.returncode != 0:
            raise self._failed(f"reading {remote}", proc)
        return proc.stdout[:MAX_READ_BYTES]

    def run(self, argv: Sequence[str], timeout: float, on_line: LineHandler | None = None) -> CommandResult:
        proc = subprocess.Popen([self.adb, "-s", self.serial, "shell", wrap(quote_command(argv))],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        marks = MarkedLines(on_line)
        stderr: list[bytes] = []
        reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
        reader.start()
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            kill_group(proc)

        timer = threading.Timer(timeout, stop)
        timer.start()
        try:
            for raw in proc.stdout:
                marks.feed(raw.decode("utf-8", "replace").rstrip("\r\n"))
            proc.wait()
        except BaseException:
            kill_group(proc)
            proc.wait()
            self._kill_remote(marks.pgid)
            raise
        finally:
            timer.cancel()
        reader.join(5)
        err = b"".join(stderr).decode("utf-8", "replace")
        if timed_out.is_set():
            self._kill_remote(marks.pgid)
            raise ConnectionLost(f"device {self.describe()}: the command did not finish within {timeout:.0f} s "
                                 "(connection.command_timeout) and was stopped")
        if marks.exit_code is None:
            last = (err.strip().splitlines() or [f"adb exit {proc.returncode}"])[-1][:300]
            raise ConnectionLost(f"device {self.describe()}: connection lost while a command ran ({last})")
        return CommandResult(marks.exit_code, err[-4000:])

    def _kill_remote(self, pgid: int | None) -> None:
        """SIGKILL a stopped command's process group on the device (best effort: it may be gone)."""
        if pgid is None or pgid <= 1:
            return
        try:
            self._call(["shell", quote_command(["kill", "-9", f"-{pgid}"])], timeout=10)
        except (OSError, TransportError):
            pass
