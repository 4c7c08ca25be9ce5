"""The on-device runner runs on Python 3.6 (JetPack 4): vermin's verdict and a real 3.6 interpreter."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ofa_edge.devices import build_bundle, profile_from_dict, runner

RUNNER = Path(runner.__file__)


def python36() -> str | None:
    """A working Python 3.6 interpreter on this machine (pyenv's versions, then PATH), or None."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(os.path.join(pyenv, "versions", "3.6*", "bin", "python3.6")))
    for exe in candidates[::-1] + [shutil.which("python3.6")]:
        if exe and subprocess.run([exe, "-c", "import sys; assert sys.version_info[:2] == (3, 6)"],
                                  capture_output=True).returncode == 0:
            return exe
    return None


def test_vermin_says_the_runner_needs_at_most_python_36():
    vermin = shutil.which("vermin")
    if vermin is None:
        pytest.skip("vermin is not installed (pip install -e '.[dev]')")
    out = subprocess.run([vermin, "-t=3.6-", "--no-tips", "--violations", "--eval-annotations", str(RUNNER)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Minimum required versions: 3.6" in out.stdout or "Minimum required versions: 3.0" in out.stdout


PY36 = python36()
needs_36 = pytest.mark.skipif(PY36 is None, reason="[platform] no python3.6 here (Debian 12 packages none)")


def _bundle(tmp_path: Path) -> Path:
    profile = profile_from_dict({"name": "jetpack4", "connection": {"transport": "local"},
                                 "device": {"python": "python3"}})
    return build_bundle([], profile, tmp_path)


@needs_36
def test_bundle_reports_device_facts_under_python_36(tmp_path):
    out = subprocess.run([PY36, str(_bundle(tmp_path)), "--info", "--work-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["python"].startswith("3.6.") and info["type"] == "info"
    assert set(info["runtimes"]) == set(runner.RUNTIMES) and info["free_disk_bytes"] > 0


@needs_36
def test_batch_under_python_36_without_numpy_says_what_to_install(tmp_path):
    probe = subprocess.run([PY36, "-c", "import numpy"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("[platform] this python3.6 has numpy; the missing-numpy path cannot be shown with it")
    out = subprocess.run([PY36, str(_bundle(tmp_path)), "--results", str(tmp_path / "r.jsonl")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 3, out.stderr
    msg = json.loads(out.stdout.splitlines()[-1])
    assert msg["type"] == "fatal" and "numpy is not importable" in msg["message"] and "pip install numpy" in msg["message"]


@needs_36
def test_version_lookup_falls_back_to_pkg_resources_on_python_36():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import runner; "
            "print(runner._distribution_version('setuptools'), runner._distribution_version('no-such-dist'), "
            "runner.runtime_version('onnxruntime'))")
    out = subprocess.run([PY36, "-c", code, str(RUNNER.parent)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    setuptools_version, missing, ort = out.stdout.split()
    assert setuptools_version[0].isdigit() and missing == "None" and ort == "None"
