"""Faults during training: SIGTERM, SIGKILL and a full disk lose no finished epoch and leave no half file."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import ofa_edge.io
from ofa_edge.cli import main
from ofa_edge.supernet import load_supernet
from ofa_edge.train.checkpoint import read_train_checkpoint

torch.set_num_threads(1)

EPOCHS = 30
TRAIN_ARGS = ["--space", "cifar-tiny", "--strategy", "random", "--epochs", str(EPOCHS), "--steps-per-epoch", "3",
              "--batch-size", "10", "--eval-every", "0", "--dropout", "0.1", "--lr", "0.2", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(*args: str) -> list[str]:
    """The ofa-edge CLI as a subprocess argv."""
    return [sys.executable, "-m", "ofa_edge", *args]


def temp_files(folder: Path) -> list[str]:
    """Leftover atomic-write temp files in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


def final_state(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of a finished run, loaded the safe way."""
    payload, _, state = read_train_checkpoint(folder)
    assert state["epoch"] == EPOCHS
    return payload["state_dict"]


def assert_same_run(a: Path, b: Path) -> None:
    sa, sb = final_state(a), final_state(b)
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa), "resumed run differs from the uninterrupted one"
    assert (a / "sampled.csv").read_text() == (b / "sampled.csv").read_text()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of the same configuration (subprocess, one thread)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run(cli("train", *TRAIN_ARGS, "--out", str(out)), env=ENV, check=True, capture_output=True,
                   timeout=300, cwd=out.parent)  # `train` makes its output the current folder's supernet
    return out


def start_training(out: Path) -> subprocess.Popen:
    return subprocess.Popen(cli("train", *TRAIN_ARGS, "--out", str(out)), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=out.parent)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll ``predicate`` until it holds; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"training ended before the fault could be injected: {proc.communicate()}"
        assert time.monotonic() < deadline, "timed out waiting for the first checkpoint"
        time.sleep(0.002)


@pytest.mark.slow
def test_sigterm_saves_exits_130_and_resume_is_bit_exact(tmp_path, reference):
    out = tmp_path / "run"
    proc = start_training(out)
    wait_for(lambda: (out / "supernet.pt").is_file(), proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    message = " ".join(stderr.split())
    assert "interrupted" in message and "checkpoint saved" in message and f"--resume {out}" in message
    assert "Traceback" not in stderr
    _, _, state = read_train_checkpoint(out)  # weights_only load + header and state validation
    assert 1 <= state["epoch"] < EPOCHS
    assert temp_files(out) == []
    load_supernet(out / "supernet.pt")
    done = subprocess.run(cli("train", "--resume", str(out), "--quiet"), env=ENV, capture_output=True, text=True,
                          timeout=300, cwd=out.parent)
    assert done.returncode == 0, done.stderr
    assert_same_run(reference, out)
    assert temp_files(out) == []


def test_sigkill_keeps_the_last_checkpoint_and_resume_finishes(tmp_path, reference):
    out = tmp_path / "run"
    proc = start_training(out)
    wait_for(lambda: (out / "supernet.pt").is_file(), proc)
    # try to land the kill while a later checkpoint is being written (its temp file exists)
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        names = os.listdir(out)
        if any(n.startswith(".supernet.pt.") for n in names):
            break
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    _, _, state = read_train_checkpoint(out)  # the last completed checkpoint is intact
    assert 1 <= state["epoch"] < EPOCHS
    net = load_supernet(out / "supernet.pt")
    assert all(torch.isfinite(v).all() for v in net.state_dict().values() if v.is_floating_point())
    if temp_files(out):  # killed mid-write: the partial file is not under the checkpoint's name
        assert all(not n.startswith("supernet") for n in os.listdir(out) if n.endswith(".tmp"))
    done = subprocess.run(cli("train", "--resume", str(out), "--quiet"), env=ENV, capture_output=True, text=True,
                          timeout=300, cwd=out.parent)
    assert done.returncode == 0, done.stderr
    assert temp_files(out) == [], "resume should remove the temp files a killed run left"
    assert_same_run(reference, out)


class _FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` bytes have been written."""

    def __init__(self, fh, room: int):
        self.fh, self.room = fh, room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.fh.write(bytes(data[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # `train` makes its output this folder's current supernet
    # one thread in both runs, as OMP_NUM_THREADS=1 above: float sums depend on the thread count, and
    # "auto" probes the CPU, so two runs could choose differently (a resume restores its run's count)
    args = ["--space", "cifar-tiny", "--strategy", "random", "--epochs", "3", "--steps-per-epoch", "2",
            "--batch-size", "8", "--eval-every", "0", "--quiet", "--threads", "1"]
    assert main(["train", *args, "--out", str(tmp_path / "ref")]) == 0
    ref = (tmp_path / "ref" / "supernet.pt").read_bytes()
    out = tmp_path / "run"
    real_fdopen = os.fdopen
    checkpoints = []

    def fdopen(fd, mode):
        name = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        fh = real_fdopen(fd, mode)
        if name.startswith(".supernet.pt."):
            checkpoints.append(name)
            if len(checkpoints) == 2:  # the second epoch's checkpoint hits a full disk
                return _FullDisk(fh, room=20000)
        return fh

    monkeypatch.setattr(ofa_edge.io, "_fdopen", fdopen)
    capsys.readouterr()
    code = main(["train", *args, "--out", str(out)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    assert "supernet.pt" in err and "no space left" in err and "Traceback" not in err
    assert temp_files(out) == []
    _, _, state = read_train_checkpoint(out)
    assert state["epoch"] == 1  # the epoch-1 checkpoint is intact
    load_supernet(out / "supernet.pt")
    monkeypatch.setattr(ofa_edge.io, "_fdopen", real_fdopen)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    a = torch.load(tmp_path / "ref" / "supernet.pt", weights_only=True)["state_dict"]
    b = torch.load(out / "supernet.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a) and len(ref) > 0
