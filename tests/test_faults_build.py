"""Faults during ``ofa-edge build``: SIGKILL/SIGTERM leave only complete files under final names; a re-run
finishes the matrix, rebuilding only the unfinished targets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
import torch

from ofa_edge.export import read_manifest
from ofa_edge.export.manifest import Manifest, file_entry, sha256_path
from ofa_edge.pipelines.build import Target, TargetsFile, run_matrix
from ofa_edge.latency import enumerate_blocks
from ofa_edge.latency.profiler import table_paths
from ofa_edge.latency.table import LatencyTable, Row
from ofa_edge.space import get_space
from ofa_edge.train import TrainConfig, train

torch.set_num_threads(1)

BUDGETS = ("1000ms", "2000ms", "3000ms")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A tiny trained run and a latency table for x86-local (every layer 0.01 ms)."""
    root = tmp_path_factory.mktemp("build")
    train(TrainConfig(space="cifar-tiny", out=str(root / "run"), epochs=1, batch_size=8, steps_per_epoch=2,
                      eval_every=0, strategy="random"))
    space = get_space("cifar-tiny")
    rows = {b.lut_key(): Row(b.lut_key(), b.kind, 0.01, 0.01, 0.01, 0.0, 0.01, 3)
            for b in enumerate_blocks(space, None, 10)}
    LatencyTable(rows, {"device": "x86-local", "n_classes": 10}).save(
        table_paths(root / "tables", "x86-local", "onnxruntime")["table"])
    return root


def targets_file(project: Path, out: str) -> Path:
    path = project / f"{out}.toml"
    path.write_text('format = "ofa-edge-targets/1"\ncheckpoint = "run/supernet.pt"\ntables = "tables"\n'
                    f'out = "{out}"\nformats = ["onnx"]\nquantize = false\nselector = "last-sampled"\n'
                    f'devices = ["x86-local"]\nbudgets = {json.dumps(list(BUDGETS))}\n')
    return path


def build(targets: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ofa_edge", "build", str(targets), "--json"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def manifests(out: Path) -> list[Path]:
    return sorted(out.rglob("manifest.json"))


def assert_manifests_match(out: Path) -> None:
    """Every manifest loads and lists only files that exist with its size and sha256."""
    for path in manifests(out):
        m = read_manifest(path)
        for f in m.files:
            target = path.parent / f["path"]
            assert target.exists(), f"{path} lists missing {f['path']}"
            assert sha256_path(target) == f["sha256"] and target.stat().st_size == f["bytes"], target


def assert_consistent(out: Path) -> None:
    """Manifests match their files, and every model under its final name is complete."""
    assert_manifests_match(out)
    for model in out.rglob("model.onnx"):
        onnx.checker.check_model(onnx.load(str(model)))
    for model in out.rglob("model.pt"):
        torch.load(model, weights_only=True)
    for sub in out.rglob("subnet.json"):
        json.loads(sub.read_text())


def interrupt_second_target(proc: subprocess.Popen, out: Path, sig: int) -> None:
    """Wait until the first target is built, then send ``sig`` while the second one is being written."""
    first = out / "x86-local" / BUDGETS[0] / "manifest.json"
    second = out / "x86-local" / BUDGETS[1]
    deadline = time.monotonic() + 240
    while not first.is_file():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    while proc.poll() is None and time.monotonic() < deadline:  # aim at a write in progress
        if second.is_dir() and any(p.name.startswith(".") for p in second.iterdir()):
            break
    proc.send_signal(sig)


def rerun_finishes(targets: Path, out: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ofa_edge", "build", str(targets), "--json"], env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    status = {t["target"]: t["status"] for t in json.loads(done.stdout)["targets"]}
    assert status["x86-local/1000ms"] == "skipped"  # finished before the fault: not rebuilt
    assert set(status.values()) <= {"skipped", "built"}
    assert len(manifests(out)) == len(BUDGETS) and all(read_manifest(p).ok for p in manifests(out))
    assert_consistent(out)
    assert not [p for p in out.rglob(".*")], "temp files left after a finished build"
    assert len((out / "summary.csv").read_text().splitlines()) == 1 + len(BUDGETS)


@pytest.mark.slow
def test_sigkill_during_build_leaves_consistent_files_and_rerun_resumes(project):
    targets, out = targets_file(project, "killed"), project / "killed"
    proc = build(targets)
    interrupt_second_target(proc, out, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert_consistent(out)
    assert read_manifest(out / "x86-local" / BUDGETS[0]).ok
    rerun_finishes(targets, out)


@pytest.mark.slow
def test_sigterm_during_build_exits_130_cleanly_and_rerun_resumes(project):
    targets, out = targets_file(project, "termed"), project / "termed"
    proc = build(targets)
    interrupt_second_target(proc, out, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    message = " ".join(stderr.split())
    assert proc.returncode == 130, stderr
    assert "interrupted" in message and "again to build the rest" in message and "Traceback" not in stderr
    assert_consistent(out)
    assert not [p for p in out.rglob(".*")], "SIGTERM must remove temp files"
    rerun_finishes(targets, out)


def test_a_rebuild_interrupted_before_its_manifest_leaves_no_stale_manifest(tmp_path):
    spec = TargetsFile(tmp_path / "t.toml", None, tmp_path / "b", tmp_path / "t", [Target("d", 5.0, ("onnx",))])

    def builder(content: bytes, die: bool):
        def build(target, folder):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "model.onnx").write_bytes(content)
            if die:
                raise KeyboardInterrupt  # killed after replacing the model, before the new manifest
            m = Manifest(subnet={}, subnet_id="s", space="cifar-tiny", n_classes=10, resolution=32,
                         input_shape=[1, 3, 32, 32], macs=1, params=1)
            m.files = [file_entry(folder / "model.onnx", folder)]
            return m
        return build

    first = run_matrix(spec, builder(b"old", False))
    assert first.ok, first.results[0].message
    with pytest.raises(KeyboardInterrupt):
        run_matrix(spec, builder(b"new", True), resume=False)
    assert_manifests_match(tmp_path / "b")
    assert manifests(tmp_path / "b") == []
