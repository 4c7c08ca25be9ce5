"""The emulated Raspberry Pi (tools/emulated-device) for tests: one instance per test session, its own port."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

from sshd import free_port, kill_tree

TOOL = Path(__file__).resolve().parents[1] / "tools" / "emulated-device" / "emulated-rpi"
CACHE = Path(os.environ.get("OFA_EDGE_EMULATED_DIR") or Path.home() / ".cache" / "ofa-edge" / "emulated-rpi")


def available() -> str | None:
    """None if the emulated device can run here, else why not (a failure in strict mode)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64"):
        return f"[platform] the emulated Pi needs Linux on x86_64/aarch64, not {platform.system()} {platform.machine()}"
    if os.geteuid() != 0:
        return "the emulated Pi needs root (chroot, mount); run the tests as root or with sudo"
    missing = [t for t in ("debootstrap", "zstd", "ssh-keygen") if shutil.which(t) is None]
    if platform.machine() != "aarch64" and not Path("/usr/bin/qemu-aarch64-static").exists():
        missing.append("qemu-user-static")
    if missing:
        return (f"missing {', '.join(missing)}: run `tools/emulated-device/emulated-rpi build` once "
                "(it installs them with apt-get --no-upgrade and builds the root)")
    if not cached() and os.environ.get("OFA_EDGE_STRICT_TESTS") != "1":
        # outside CI a test run does not start an 8-minute build by itself; CI (.ci/run) builds it first
        return "the emulated Pi's root is not built here: run `sudo tools/emulated-device/emulated-rpi build` once"
    return None


def cached() -> bool:
    """Whether the root tarball of the current recipe is in the cache (``up`` then only restores it)."""
    key = subprocess.run([str(TOOL), "key"], capture_output=True, text=True).stdout.strip()
    return bool(key) and (CACHE / "cache" / f"root-{key}.tar.zst").is_file()


class EmulatedPi:
    """A running emulated Pi: sshd on 127.0.0.1:``port`` as user ``pi``, the runtimes in /opt/rt."""

    __test__ = False
    python = "/opt/rt/bin/python"

    def __init__(self, instance: Path):
        self.instance = Path(instance)
        self.port = free_port()
        self.env = {**os.environ, "OFA_EDGE_EMULATED_DIR": str(CACHE), "OFA_EDGE_EMULATED_INSTANCE": str(instance)}

    def _tool(self, *args: str, timeout: float = 60) -> str:
        t0 = time.monotonic()
        out = subprocess.run([str(TOOL), *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        LOG.append(f"emulated-rpi {' '.join(args)}: {time.monotonic() - t0:.1f} s")
        if out.returncode != 0:
            raise RuntimeError(f"emulated-rpi {' '.join(args)} failed ({out.returncode}): {out.stderr or out.stdout}")
        return out.stdout

    def start(self) -> "EmulatedPi":
        self._tool("up", "--port", str(self.port), timeout=3600)  # builds the root if no cache holds it
        return self

    def kill_sshd(self) -> int:
        """SIGKILL sshd and every process below it (sessions, the runner), as when the board drops off."""
        pid = int((self.instance / "root" / "run" / "ofa-edge-sshd.pid").read_text())
        victims = kill_tree(pid)
        LOG.append(f"killed the emulated sshd and {len(victims) - 1} process(es) below it")
        return len(victims)

    def destroy(self) -> None:
        self._tool("destroy", timeout=300)

    def profile_toml(self, name: str, runtime: str, work_dir: str = "~/ofa-edge", repeats: int = 3) -> str:
        """A device profile for this instance (as the packaged raspberry-pi-emulated, on this port)."""
        return "\n".join([
            "format = 1", f'name = "{name}"', "[connection]", 'transport = "ssh"', 'host = "127.0.0.1"',
            f"port = {self.port}", 'user = "pi"', f'key_file = "{self.instance / "user_key"}"',
            f'known_hosts = "{self.instance / "known_hosts"}"', "connect_timeout = 20", "command_timeout = 900",
            "keepalive = 5", "[device]", f'python = "{self.python}"', f'work_dir = "{work_dir}"',
            "[runtime]", f'name = "{runtime}"', "[benchmark]", "warmup = 1", f"repeats = {repeats}", "threads = 1",
            "batch = 1", ""])

#: Timings of this session's emulated-device steps, printed at the end of the pytest run (see conftest).
LOG: list[str] = []
