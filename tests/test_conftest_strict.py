"""The suite's own rules, run as CI runs them (two pytest-xdist workers): in strict mode a skip fails unless
it is marked [platform], and the emulated Pi's timing lines reach the summary from a worker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

SAMPLE = '''
import pytest
import emulated_rpi


def test_passes():
    emulated_rpi.LOG.append("emulated-rpi up --port 1: 0.5 s")


def test_platform_skip():
    pytest.skip("[platform] no such chip here")


def test_plain_skip():
    pytest.skip("needs sshd")
'''


def run_sample(tmp_path: Path, strict: str) -> subprocess.CompletedProcess:
    """Run SAMPLE beside a copy of tests/conftest.py in two workers; return the finished process."""
    folder = tmp_path / "suite"
    folder.mkdir(exist_ok=True)
    shutil.copy(TESTS / "conftest.py", folder / "conftest.py")
    (folder / "emulated_rpi.py").write_text("LOG: list[str] = []\n")
    (folder / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "OFA_EDGE_STRICT_TESTS": strict, "PYTHONPATH": str(folder)}
    return subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "-p", "no:cacheprovider",
                           "-o", "addopts=-ra", str(folder)], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_strict_mode_fails_a_plain_skip_and_keeps_platform_skips(tmp_path):
    res = run_sample(tmp_path, "1")
    assert res.returncode == 1, res.stdout
    assert "1 failed, 1 passed, 1 skipped" in res.stdout
    assert "skipped in strict mode (OFA_EDGE_STRICT_TESTS=1): needs sshd" in res.stdout
    assert "emulated Raspberry Pi timings" in res.stdout and "emulated-rpi up --port 1: 0.5 s" in res.stdout


def test_without_strict_mode_a_skip_is_a_skip(tmp_path):
    res = run_sample(tmp_path, "0")
    assert res.returncode == 0, res.stdout
    assert "1 passed, 2 skipped" in res.stdout
