"""The CLI starts without the heavy libraries: help, --version and the light commands never import torch/ONNX."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from ofa_edge.cli import app
from ofa_edge.cli.lazy import COMMANDS, load_commands

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "onnx", "onnxruntime", "tensorflow", "torchvision", "coremltools")


def imported_modules(*args: str, cwd: Path = ROOT) -> set[str]:
    """Top-level packages that ``python -X importtime -m ofa_edge *args`` imports."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "ofa_edge", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "ofa_edge" in names
    return names


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("devices", "list"), ("space", "show")],
                         ids=lambda a: " ".join(a))
def test_light_commands_import_no_heavy_library(args):
    heavy = imported_modules(*args) & set(HEAVY)
    assert not heavy, f"ofa-edge {' '.join(args)} imported {sorted(heavy)}"


def test_status_imports_no_heavy_library(tmp_path):
    heavy = imported_modules("status", cwd=tmp_path) & set(HEAVY)
    assert not heavy, f"ofa-edge status imported {sorted(heavy)}"


def test_help_lists_every_command_with_its_own_summary():
    """The static table behind the fast help agrees with the commands' docstrings, and misses none."""
    real: dict = {}
    for module in {c.module for c in COMMANDS.values()}:
        real.update(load_commands(module))
    assert set(real) == set(COMMANDS)
    for name, cmd in real.items():
        assert COMMANDS[name].summary == cmd.get_short_help_str(limit=10_000), name


def test_version_is_a_plain_flag():
    root = typer.main.get_command(app)
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "100", "TERM": "dumb"})
    line = next(ln for ln in result.output.splitlines() if "--version" in ln)
    assert "<bool>" not in line and "Print the version" in line
    assert CliRunner().invoke(app, ["--version"]).output.startswith("ofa-edge ")
    assert "train" in root.list_commands(None)


@pytest.mark.parametrize("args", [("--help",), ("train", "--help"), ("space", "show", "--help")],
                         ids=["root", "train", "space-show"])
def test_help_shows_no_type_beside_flags(args):
    """Flags take no value, so help shows no ``<bool>`` beside them (``--help`` included); valued options keep
    their type."""
    env = {**os.environ, "COLUMNS": "120", "TERM": "dumb", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "ofa_edge", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--help" in proc.stdout and "<bool>" not in proc.stdout
    if args[0] == "train":
        json_line = next(ln for ln in proc.stdout.splitlines() if "--json" in ln)
        assert "Print" in json_line or "JSON" in json_line.upper()
        assert "<integer>" in proc.stdout or "<int>" in proc.stdout
