"""The wheel: every module, the packaged device profiles (top-level device_profiles/) and data files install."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "ofa_edge", "device_profiles")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built with pip from a copy of this checkout's packaging sources (the checkout stays clean)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (path,) = (tmp / "dist").glob("ofa_edge-*.whl")
    return path


def test_wheel_holds_every_module_profile_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "ofa_edge").rglob("*.py")}
    assert modules - names == set()  # a subpackage missing from pyproject's package list fails here
    profiles = sorted(p.name for p in (ROOT / "device_profiles").glob("*.toml"))
    assert len(profiles) >= 10
    assert {f"ofa_edge/device_profiles/{p}" for p in profiles} <= names
    data = {p.relative_to(ROOT).as_posix() for p in (ROOT / "ofa_edge").rglob("*")
            if p.suffix in (".npz", ".pt", ".json", ".csv")}
    assert data and data <= names


def test_installed_layout_resolves_the_packaged_profiles(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    (work / "device_profiles").mkdir(parents=True)
    local = (ROOT / "device_profiles" / "x86-local.toml").read_text()
    assert "threads = 1\n" in local
    (work / "device_profiles" / "x86-local.toml").write_text(local.replace("threads = 1\n", "threads = 3\n"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OFA_EDGE_DEVICES")}
    out = subprocess.run([sys.executable, "-m", "ofa_edge", "devices", "list", "--json"], cwd=work, timeout=120,
                         env={**env, "PYTHONPATH": str(site)}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["x86-local"]["source"] == "cwd" and rows["x86-local"]["threads"] == 3
    packaged = [r for n, r in rows.items() if n != "x86-local"]
    assert len(packaged) >= 9 and all(r["source"] == "packaged" for r in packaged)
    assert all(Path(r["path"]).is_relative_to(site / "ofa_edge" / "device_profiles") for r in packaged)

