"""SSH transport (paramiko): verified host keys, key/agent auth, one SFTP session, keep-alive, timeouts."""

from __future__ import annotations

import base64
import getpass
import hashlib
import logging
import os
import posixpath
import socket
import stat
import time
from pathlib import Path
from typing import Sequence

import paramiko

from ofa_edge.devices.profile import DeviceProfile
from ofa_edge.devices.shellwrap import MarkedLines, wrap
from ofa_edge.devices.transport import (MAX_READ_BYTES, CommandResult, ConnectionLost, LineHandler, Transport,
                                        TransportError, quote_command, resolve_remote)


# paramiko logs its transport thread's failures (a bad banner, a reset) with tracebacks; with no handler
# Python prints them on stderr. The transport turns every such failure into one clear error instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a host key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class HostKeyRefused(TransportError):
    """The server's host key is unknown (and trust-on-first-use is off) or differs from known_hosts."""


class _Verify(paramiko.MissingHostKeyPolicy):
    """Unknown keys: refuse (naming the fingerprint) or, with trust-on-first-use, record them."""

    def __init__(self, known_hosts: Path, tofu: bool, device: str):
        self.known_hosts, self.tofu, self.device = known_hosts, tofu, device

    def missing_host_key(self, client, hostname, key) -> None:
        fp = fingerprint(key)
        if not self.tofu:
            raise HostKeyRefused(
                f"device {self.device}: host key of {hostname} is not in {self.known_hosts} "
                f"({key.get_name()} {fp}); verify it (ssh-keyscan / ssh-keygen -lf) and add it to that file, "
                "or set connection.trust_on_first_use = true to record it on first connect")
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with open(self.known_hosts, "a", encoding="utf-8") as fh:
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class SSHTransport(Transport):
    """A device reached over SSH; commands run through ``exec_command`` with every argument quoted."""

    def __init__(self, profile: DeviceProfile):
        super().__init__(profile)
        self.client: paramiko.SSHClient | None = None
        self.sftp: paramiko.SFTPClient | None = None
        self._home = ""

    def describe(self) -> str:
        c = self.profile.connection
        return f"{self.profile.name} ({c.user + '@' if c.user else ''}{c.host}:{c.port})"

    def open(self) -> None:
        c = self.profile.connection
        known = Path(os.path.expanduser(c.known_hosts))
        client = paramiko.SSHClient()
        if known.is_file():
            try:
                client.load_host_keys(str(known))
            except (OSError, paramiko.SSHException, ValueError) as exc:
                raise TransportError(f"device {self.profile.name}: cannot read known_hosts {known} "
                                     f"({exc})") from None
        client.set_missing_host_key_policy(_Verify(known, c.trust_on_first_use, self.profile.name))
        key_file = os.path.expanduser(c.key_file) if c.key_file else None
        if key_file and not os.path.isfile(key_file):
            raise TransportError(f"device {self.profile.name}: connection.key_file {key_file} does not exist")
        where = f"{c.host}:{c.port}"
        try:
            client.connect(c.host, port=c.port, username=c.user or getpass.getuser(), key_filename=key_file,
                           allow_agent=True, look_for_keys=key_file is None, timeout=c.connect_timeout,
                           banner_timeout=c.connect_timeout, auth_timeout=c.connect_timeout)
        except HostKeyRefused:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyRefused(
                f"device {self.profile.name}: host key of {where} CHANGED - got {exc.key.get_name()} "
                f"{fingerprint(exc.key)}, {known} has {fingerprint(exc.expected_key)}; this may be an attack. "
                f"If the device was re-installed, remove its old line from {known} and verify the new key") \
                from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise TransportError(f"device {self.profile.name}: authentication to {where} as "
                                 f"{c.user or getpass.getuser()} failed ({exc}); check connection.user and "
                                 "connection.key_file, or load the key into ssh-agent") from None
        except (OSError, socket.timeout, paramiko.SSHException, EOFError) as exc:
            client.close()
            if "banner" in str(exc).lower():
                raise TransportError(f"device {self.profile.name}: {where} answered, but not as an SSH server "
                                     f"({exc}); check the port (--port): sshd listens on 22, Termux's on 8022") \
                    from None
            raise TransportError(f"device {self.profile.name}: cannot reach {where} ({exc or type(exc).__name__}); "
                                 "check the host and port and that sshd runs there") from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(max(1, int(c.keepalive)))
        try:  # small request/reply messages: without this each command can wait out a 40 ms delayed ACK
            transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # a proxied socket without TCP options
        self.client = client
        try:
            self.sftp = client.open_sftp()
            self.sftp.get_channel().settimeout(c.command_timeout)
            self._home = self.sftp.normalize(".")
        except (OSError, paramiko.SSHException, EOFError) as exc:
            self.close()
            raise TransportError(f"device {self.profile.name}: SFTP is not available on {where} ({exc}); "
                                 "enable the sftp subsystem in sshd_config") from None

    def close(self) -> None:
        for obj in (self.sftp, self.client):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001 - closing a dead connection
                    pass
        self.sftp = self.client = None

    def _lost(self, exc: BaseException) -> ConnectionLost:
        return ConnectionLost(f"device {self.describe()}: connection lost ({exc or type(exc).__name__})")

    def work_dir(self) -> str:
        return resolve_remote(self.profile.device.work_dir, self._home)

    def makedirs(self, path: str) -> None:
        assert self.sftp is not None
        parts = [p for p in path.split("/") if p]
        current = "/"
        try:
            for part in parts:
                current = posixpath.join(current, part)
                try:
                    if not stat.S_ISDIR(self.sftp.stat(current).st_mode):
                        raise TransportError(f"device {self.profile.name}: {current} exists and is not a folder")
                except FileNotFoundError:
                    self.sftp.mkdir(current)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            if isinstance(exc, PermissionError):
                raise TransportError(f"device {self.profile.name}: cannot create {current} (permission denied); "
                                     "set device.work_dir to a writable folder") from None
            raise self._lost(exc) from None

    def put(self, local: Path, remote: str) -> None:
        assert self.sftp is not None
        tmp = remote + ".part"
        try:
            self.sftp.put(str(local), tmp)
            self.sftp.posix_rename(tmp, remote)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._lost(exc) from None

    def read(self, remote: str) -> bytes | None:
        assert self.sftp is not None
        try:
            with self.sftp.open(remote, "rb") as fh:
                return fh.read(MAX_READ_BYTES)
        except FileNotFoundError:
            return None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._lost(exc) from None

    def run(self, argv: Sequence[str], timeout: float, on_line: LineHandler | None = None) -> CommandResult:
        assert self.client is not None
        # sshd starts the command's shell in a new session, so $$ is its process group: reported first,
        # it lets a timed-out or abandoned command be killed with everything it started. The exit mark
        # carries a death by signal, which paramiko drops (it ignores SSH's exit-signal message).
        command = wrap(quote_command(argv))
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise self._lost(EOFError("not connected"))
        deadline = time.monotonic() + timeout
        marks = MarkedLines(on_line)
        chan = None
        try:
            chan = transport.open_session(timeout=self.profile.connection.connect_timeout)
            chan.settimeout(0.2)
            chan.exec_command(command)
            buf, err = b"", []

            def line_out(raw: bytes) -> None:
                marks.feed(raw.decode("utf-8", "replace"))

            while True:
                if time.monotonic() > deadline:
                    raise ConnectionLost(f"device {self.describe()}: the command did not finish within "
                                         f"{timeout:.0f} s (connection.command_timeout) and was stopped")
                while chan.recv_stderr_ready():
                    err.append(chan.recv_stderr(65536))
                try:
                    data = chan.recv(65536)
                except socket.timeout:
                    if not transport.is_active():
                        raise ConnectionLost(f"device {self.describe()}: connection lost") from None
                    continue
                if not data:
                    break
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    line_out(line)
            if buf:
                line_out(buf)
            while not chan.exit_status_ready():
                if not transport.is_active() or time.monotonic() > deadline:
                    raise ConnectionLost(f"device {self.describe()}: connection lost before the command "
                                         "reported its exit status")
                time.sleep(0.02)
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(65536))
            code = chan.recv_exit_status()
            chan.close()
            chan = None
        except BaseException as exc:
            if chan is not None:  # timed out, lost, or the caller stopped: leave nothing running
                self._abandon(chan, marks.pgid)
            if isinstance(exc, (OSError, paramiko.SSHException, EOFError)) and not isinstance(exc, ConnectionLost):
                raise self._lost(exc) from None
            raise
        stderr = b"".join(err).decode("utf-8", "replace")[-4000:]
        if marks.exit_code is not None:
            return CommandResult(marks.exit_code, stderr)
        if code == -1:  # no exit mark and no status: the shell itself was killed, or the connection closed
            tail = " | ".join(line.strip()[:200] for line in stderr.splitlines()[-2:] if line.strip())
            raise ConnectionLost(f"device {self.describe()}: the command's shell ended without an exit status "
                                 f"(killed, or the connection closed){'; last stderr: ' + tail if tail else ''}")
        return CommandResult(code, stderr)

    def _abandon(self, chan: paramiko.Channel, pgid: int | None) -> None:
        """Close ``chan`` and SIGKILL its remote process group (closing alone leaves a hung command running)."""
        try:
            chan.close()
        except Exception:  # noqa: BLE001 - the connection may already be gone
            pass
        transport = self.client.get_transport() if self.client is not None else None
        if pgid is None or pgid <= 1 or transport is None or not transport.is_active():
            return
        try:
            wait = self.profile.connection.connect_timeout
            kill = transport.open_session(timeout=wait)
            kill.exec_command(quote_command(["kill", "-s", "KILL", "--", f"-{pgid}"]))  # POSIX sh and bash
            deadline = time.monotonic() + wait
            while not kill.exit_status_ready() and time.monotonic() < deadline and transport.is_active():
                time.sleep(0.02)
            kill.close()
        except Exception:  # noqa: BLE001 - best effort: a dead connection took the command with it
            pass
