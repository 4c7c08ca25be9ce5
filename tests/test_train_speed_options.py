"""Training precision and threads: recorded in the checkpoint, exact resume per precision, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from ofa_edge.cli import main
from ofa_edge.errors import OfaEdgeError
from ofa_edge.supernet.checkpoint import read_supernet_file
from ofa_edge.train import TrainConfig, TrainingInterrupted, train
from ofa_edge.train.precision import resolve_precision
from ofa_edge.train.recipes import get_recipe
from ofa_edge.train.threads import choose_threads

torch.set_num_threads(1)


def tiny(tmp_path, **kw) -> TrainConfig:
    base = dict(space="cifar-tiny", out=str(tmp_path / "run"), epochs=2, batch_size=10, steps_per_epoch=2,
                bn_images=20, eval_every=0, lr=0.2, dropout=0.2, strategy="sandwich", n_random=1)
    base.update(kw)
    return TrainConfig(**base)


def _interrupt_at(step: int):
    def on_event(ev):
        if ev["event"] == "step" and ev["epoch"] * ev["steps"] + ev["step"] == step:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGINT)
    return on_event


def test_auto_precision_is_fp32_on_cpu_and_fp16_needs_cuda():
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(OfaEdgeError, match="fp16 training needs a CUDA GPU"):
        resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(OfaEdgeError, match="precision: 'fp8'"):
        TrainConfig(precision="fp8")


@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_precision_is_recorded_and_resume_is_exact(tmp_path, precision):
    full = train(tiny(tmp_path / "a", precision=precision))
    saved = read_supernet_file(tmp_path / "a" / "run" / "supernet.pt")["meta"]["config"]
    assert saved["precision"] == ("fp32" if precision == "auto" else "bf16")
    with pytest.raises(TrainingInterrupted):
        train(tiny(tmp_path / "b", precision=precision), progress=_interrupt_at(3))
    resumed = train(resume=tmp_path / "b" / "run")
    a, b = full.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics[-1]["loss"] == full.metrics[-1]["loss"]


def test_bf16_autocast_really_runs_and_its_loss_matches_fp32(tmp_path):
    kw = dict(epochs=1, steps_per_epoch=1, dropout=0.0)
    a = train(tiny(tmp_path / "a", precision="fp32", **kw))
    b = train(tiny(tmp_path / "b", precision="bf16", **kw))
    la, lb = a.metrics[0]["loss"], b.metrics[0]["loss"]  # the first step's loss, same weights and batch
    assert la != lb  # bf16 arithmetic really ran
    assert abs(la - lb) < 0.02 * la


def test_thread_choice_is_applied_and_explained(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert choose_threads("auto").reason == "OMP_NUM_THREADS" and torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        one = choose_threads("1")
        assert one.threads == 1 and torch.get_num_threads() == 1 and "as asked" in one.describe()
        auto = choose_threads("auto")
        assert torch.get_num_threads() == auto.threads
        if auto.probe_ms:  # more than one core: both counts were timed, and the pick follows the rule
            (cores,) = set(auto.probe_ms) - {1}
            faster = auto.probe_ms[cores] * 1.25 <= auto.probe_ms[1]
            assert auto.threads == (cores if faster else 1)
            assert "probe" in auto.describe() and "ms" in auto.describe()
        with pytest.raises(OfaEdgeError, match="threads: 'many'"):
            choose_threads("many")
        with pytest.raises(OfaEdgeError, match="at least 1"):
            choose_threads(0)
    finally:
        torch.set_num_threads(before)


def test_cli_says_which_threads_and_precision_it_chose(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `train` makes its output this folder's current supernet
    code = main(["train", "--space", "cifar-tiny", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8",
                 "--eval-every", "0", "--out", str(tmp_path / "r"), "--threads", "1", "--precision", "bf16"])
    assert code == 0
    err = capsys.readouterr().err
    assert "precision bf16" in err and "threads: 1 (as asked)" in err
    assert main(["train", "--space", "cifar-tiny", "--out", str(tmp_path / "x"), "--precision", "fp16",
                 "--device", "cpu"]) == 2
    assert "fp16 training needs a CUDA GPU" in capsys.readouterr().err


def test_recipe_sets_defaults_and_flags_override(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `train` makes its output this folder's current supernet
    r = get_recipe("cifar10-mbv3")
    assert r.settings["strategy"] == "random" and r.settings["weight_decay"] == 5e-4
    code = main(["train", "--recipe", "cifar10-mbv3", "--space", "cifar-tiny", "--epochs", "1", "--steps-per-epoch",
                 "1", "--batch-size", "8", "--eval-every", "0", "--out", str(tmp_path / "r"), "--json",
                 "--threads", "1"])
    assert code == 0
    cfg = read_supernet_file(tmp_path / "r" / "supernet.pt")["meta"]["config"]
    assert (cfg["strategy"], cfg["lr"], cfg["weight_decay"], cfg["warmup_epochs"]) == ("random", 0.15, 5e-4, 1)
    assert (cfg["space"], cfg["epochs"], cfg["batch_size"]) == ("cifar-tiny", 1, 8)  # flags win
    said = json.loads(capsys.readouterr().out)  # --json says where and how it trained (auto resolved)
    assert (said["device"], said["precision"], said["threads"]) == ("cpu", "fp32", 1)
    assert main(["train", "--recipe", "nope"]) == 2
    assert "--recipe: 'nope' is not one of ['cifar10-mbv3']" in capsys.readouterr().err
