"""A real throw-away OpenSSH server on 127.0.0.1 for tests (Debian openssh-server), stoppable and restartable."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def available() -> str | None:
    """None if a test sshd can run here, else the reason it cannot."""
    if not os.path.exists(SSHD):
        return "openssh-server is not installed (apt-get install -y openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is not installed"
    if os.geteuid() != 0:
        return "the test sshd needs root (it logs in as the current user with StrictModes off)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519") -> Path:
    """A new passphrase-less key pair at ``path`` / ``path.pub``."""
    path.unlink(missing_ok=True)
    Path(f"{path}.pub").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "ofa-edge-test", "-f", str(path)], check=True)
    return path


class TestSSHD:
    """An sshd with its own host key, one authorised user key and a config in ``folder``."""

    __test__ = False  # not a pytest test class

    def __init__(self, folder: Path, port: int | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host_key = keygen(self.folder / "host_key")
        self.user_key = keygen(self.folder / "user_key")
        (self.folder / "authorized_keys").write_text(Path(f"{self.user_key}.pub").read_text())
        self.pid_file = self.folder / "sshd.pid"
        self.config = self.folder / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {self.pid_file}", f"AuthorizedKeysFile {self.folder / 'authorized_keys'}",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "UsePAM no", "StrictModes no", "Subsystem sftp internal-sftp",
            "MaxStartups 64", "MaxSessions 64", "LogLevel ERROR", "PrintMotd no", ""]))
        self.user = os.environ.get("USER") or __import__("getpass").getuser()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "TestSSHD":
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        subprocess.run([SSHD, "-f", str(self.config), "-E", str(self.folder / "sshd.log")], check=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not start; log: {(self.folder / 'sshd.log').read_text()}")

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> int:
        """Kill the listener and every process below it (open sessions and their commands); count them."""
        pid = self.pid()
        if pid is None:
            return 0
        victims = kill_tree(pid)
        for p in victims:  # reap our own child if it is one; wait until the rest are gone
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and os.path.exists(f"/proc/{p}") and _state(p) != "Z":
                time.sleep(0.02)
        self.pid_file.unlink(missing_ok=True)
        return len(victims)

    def restart(self) -> "TestSSHD":
        self.stop()
        return self.start()

    def replace_host_key(self) -> None:
        """Give the server a new host key (as after a re-install); takes effect on restart."""
        keygen(self.host_key)

    # -- client side ----------------------------------------------------------------------------
    def host_key_line(self) -> str:
        kind, b64 = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {b64}\n"

    def write_known_hosts(self, path: Path) -> Path:
        path.write_text(self.host_key_line())
        return path

    def profile_toml(self, name: str, known_hosts: Path, work_dir: Path, python: str, runtime: str = "onnxruntime",
                     tofu: bool = False, warmup: int = 1, repeats: int = 3, command_timeout: float = 120,
                     extra_device: str = "") -> str:
        """A device profile reaching this server as the current user with the test key."""
        def q(v: object) -> str:
            return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

        return "\n".join([
            "format = 1", f"name = {q(name)}", "[connection]", 'transport = "ssh"', 'host = "127.0.0.1"',
            f"port = {self.port}", f"user = {q(self.user)}", f"key_file = {q(self.user_key)}",
            f"known_hosts = {q(known_hosts)}", f"trust_on_first_use = {'true' if tofu else 'false'}",
            "connect_timeout = 5", f"command_timeout = {command_timeout}", "keepalive = 2",
            "[device]", f"python = {q(python)}", f"work_dir = {q(work_dir)}", extra_device,
            "[runtime]", f"name = {q(runtime)}",
            "[benchmark]", f"warmup = {warmup}", f"repeats = {repeats}", "threads = 1", "batch = 1", ""])


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            out.setdefault(ppid, []).append(int(entry))
    return out


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and every process below it; the pids it signalled, ``pid`` first."""
    victims = [pid] + _descendants(pid)
    for p in victims:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return victims


def _descendants(pid: int) -> list[int]:
    children = _children_map()
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "X"


def processes_with(text: str) -> list[int]:
    """Live (not zombie) processes whose command line contains ``text``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and _state(int(entry)) not in ("Z", "X"):
                out.append(int(entry))
    return out


def gone(pid: int, wait: float = 5.0) -> bool:
    """True once ``pid`` has exited (reaped or zombie), waiting up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _state(pid) in ("Z", "X"):
            return True
        time.sleep(0.02)
    return _state(pid) in ("Z", "X")
