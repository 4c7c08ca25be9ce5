"""The sampled-subnet log replayed from a run's config equals the one training wrote; the packaged
supernet, shipped without its log, runs the last-sampled selector from the replayed one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ofa_edge.cli import main
from ofa_edge.pipelines.checkpoint import open_run
from ofa_edge.pipelines.specialization import device_latency
from ofa_edge.search.selectors import read_sampled_log, sampled_entries
from ofa_edge.space import get_space, max_subnet
from ofa_edge.supernet.checkpoint import read_supernet_file
from ofa_edge.train import TrainConfig, train
from ofa_edge.train.checkpoint import write_sampled
from ofa_edge.train.replay import replay_sampled

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


@pytest.mark.parametrize("strategy,extra", [("random", {"max_every": 2}), ("sandwich", {"n_random": 2})])
def test_replayed_log_is_the_one_training_wrote(tmp_path, strategy, extra):
    cfg = TrainConfig(space="cifar-tiny", strategy=strategy, epochs=2, steps_per_epoch=3, batch_size=8,
                      bn_images=16, eval_every=0, seed=5, out=str(tmp_path / "run"), **extra)
    train(cfg)
    saved = read_supernet_file(tmp_path / "run" / "supernet.pt")["meta"]["config"]
    space = get_space("cifar-tiny")
    record = replay_sampled(saved, space, 3)
    write_sampled(tmp_path / "replayed.csv", record)
    assert (tmp_path / "replayed.csv").read_bytes() == (tmp_path / "run" / "sampled.csv").read_bytes()
    assert sampled_entries(record, space) == read_sampled_log(tmp_path / "run" / "sampled.csv", space)
    assert open_run(tmp_path / "run" / "supernet.pt").training_log() == sampled_entries(record, space)


def test_packaged_supernet_replays_its_training_log():
    run = open_run("cifar10-mbv3")
    assert not (run.path.parent / "sampled.csv").exists()
    entries = run.training_log()
    card = json.loads((run.path.parent / "card.json").read_text())
    iterations = run.config["epochs"] * card["training_log"]["steps_per_epoch"]
    assert entries[-1].iteration == iterations - 1
    assert len({e.subnet for e in entries}) == len(entries) <= iterations
    # the recipe trains the max subnet every 8th step (max_every): the last of those is in the log
    last_max = max(i for i in range(iterations) if (i + 1) % run.config["max_every"] == 0)
    assert [e.iteration for e in entries if e.subnet == max_subnet(run.space)] == [last_max]


def test_last_sampled_specialises_the_packaged_supernet(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = open_run("cifar10-mbv3")
    entries = run.training_log()
    latency = device_latency("x86-local", ROOT / "latency_tables", run.space, run.n_classes)[3]
    predicted = latency([e.subnet for e in entries])
    budget = sorted(predicted)[len(predicted) // 10] / 0.95  # the 10th percentile, before the 5 % margin
    code = main(["specialize", "--checkpoint", "cifar10-mbv3", "--device", "x86-local", "--latency",
                 f"{budget:.4f}ms", "--selector", "last-sampled", "--export", "onnx", "--tables",
                 str(ROOT / "latency_tables"), "--out", "out", "--latency-margin", "5", "--json"])
    assert code == 0
    manifest = json.loads(capsys.readouterr().out)[0]
    # TOFA's rule: the most recently sampled subnet whose predicted latency fits the (margin-reduced) budget
    bound = float(f"{budget:.4f}") * 0.95
    want = next(e.subnet for e, p in zip(reversed(entries), reversed(predicted)) if p <= bound)
    assert manifest["subnet_id"] == want.id and manifest["extra"]["selector"] == "last-sampled"
    assert manifest["latency_ms"]["predicted"] <= bound
