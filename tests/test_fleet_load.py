"""Load: a fleet of 8 SSH devices (8 real sshd on loopback, own ports and host keys) profiled at once.

Asserts every table whole, no leaked file descriptors or threads, and bounded peak fds and RSS growth;
prints the figures (they are quoted in the README).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from ofa_edge.devices import load_profile
from ofa_edge.latency import ProfileOptions, load_table, load_validation
from ofa_edge.latency.profiler import prepare_models, profile_fleet, table_paths

sshd_mod = pytest.importorskip("sshd")
REASON = sshd_mod.available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

DEVICES = 8
FDS_PER_DEVICE = 5  # socket, journal, bundle being built/uploaded, results reads (measured: ~3)
RSS_BUDGET_MB = 100  # paramiko transports, bundles and results of 8 devices (measured: ~25 MB)


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Sampler(threading.Thread):
    """Samples open fds and RSS every 20 ms until stopped; keeps the peaks."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_fds, self.peak_rss, self.done = 0, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak_fds, self.peak_rss = max(self.peak_fds, fds()), max(self.peak_rss, rss_mb())
            time.sleep(0.02)

    def stop(self) -> None:
        self.done.set()
        self.join()


def settle(count, want: int, wait: float = 10.0) -> int:
    """``count()`` once it drops to ``want`` (threads and sockets close asynchronously), or its last value."""
    deadline = time.monotonic() + wait
    while count() > want and time.monotonic() < deadline:
        time.sleep(0.05)
    return count()


@pytest.mark.slow
def test_fleet_of_8_ssh_devices(tmp_path):
    servers = [sshd_mod.TestSSHD(tmp_path / f"sshd{i}").start() for i in range(DEVICES)]
    try:
        profiles = []
        for i, srv in enumerate(servers):
            folder = tmp_path / f"dev{i}"
            folder.mkdir()
            path = folder / "profile.toml"
            path.write_text(srv.profile_toml(f"dev{i}", srv.write_known_hosts(folder / "known_hosts"),
                                             folder / "remote", sys.executable))
            profiles.append(load_profile(path))
        assert len({p.connection.port for p in profiles}) == DEVICES
        assert len({Path(f"{s.host_key}.pub").read_text() for s in servers}) == DEVICES
        o = ProfileOptions(space="cifar-tiny", resolutions=(24,), calibrate=4, validate=2, batch_size=16,
                           tables_dir=tmp_path / "tables", cache_dir=tmp_path / "cache")
        prepare_models(profiles[0], o)  # export once (and import torch/onnx) before the baseline
        active: dict[str, tuple[float, float]] = {}

        def progress(device, phase, done, total):
            if phase == "measure":
                first = active.get(device, (time.monotonic(), 0.0))[0]
                active[device] = (first, time.monotonic())

        fds0, threads0, rss0 = fds(), threading.active_count(), rss_mb()
        sampler = Sampler()
        sampler.start()
        start = time.monotonic()
        results = profile_fleet(profiles, o, progress)
        wall = time.monotonic() - start
        sampler.stop()
        fds1 = settle(fds, fds0)
        threads1 = settle(threading.active_count, threads0)
    finally:
        for srv in servers:
            srv.stop()

    n_layers, total = 46, 46 + 4 + 2
    for name, res in results.items():
        assert not isinstance(res, Exception), f"{name}: {res}"
        assert res.measured == total and res.uploads == 1 and res.commands == -(-total // 16)
        paths = table_paths(o.tables_dir, name, "onnxruntime")
        assert len(load_table(paths["table"])) == n_layers
        assert len(load_validation(paths["validation"])[1]) == 6
        assert not paths["journal"].exists() and not paths["lock"].exists()
    assert len(results) == DEVICES
    # the devices really measured at the same time: one instant when all 8 were between first and last result
    overlap = min(last for _, last in active.values()) - max(first for first, _ in active.values())
    assert len(active) == DEVICES and overlap > 0
    peak_fds, rss_delta = sampler.peak_fds - fds0, sampler.peak_rss - rss0
    print(f"\nfleet load: {DEVICES} SSH devices at once, {DEVICES * total} measurements, wall {wall:.1f} s, "
          f"fds {fds0} before / peak +{peak_fds} / {fds1} after, threads {threads0} before / {threads1} after, "
          f"RSS {rss0:.0f} MB before, peak +{rss_delta:.1f} MB")
    assert fds1 == fds0, "file descriptors leaked"
    assert threads1 == threads0, "threads leaked"
    assert peak_fds <= DEVICES * FDS_PER_DEVICE
    assert rss_delta <= RSS_BUDGET_MB
