"""Trainer: strategies lower the loss, TOFA/FixMatch terms, exact resume, SOLAR heads, eval, errors."""

from __future__ import annotations

import copy
import json
import math
import os
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ofa_edge.cli import main
from ofa_edge.data import load_task, make_loader
from ofa_edge.errors import FileFormatError, OfaEdgeError
from ofa_edge.space import get_space, max_subnet, min_subnet, sample
from ofa_edge.supernet import HeadMap, OFAMobileNetV3, load_supernet, save_supernet
from ofa_edge.train import TrainConfig, TrainingInterrupted, evaluate, train
from ofa_edge.train.checkpoint import load_init, read_sampled
from ofa_edge.train.losses import fixmatch_loss, kd_loss, pseudo_labels, smooth_ce
from ofa_edge.train.loop import build_net
from ofa_edge.train.strategies import Phase, StepBatch, at_resolution, progressive_phases, run_step

torch.set_num_threads(1)


def tiny_cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(space="cifar-tiny", out=str(tmp_path / "run"), epochs=10, batch_size=25, steps_per_epoch=2,
                labels_per_class=5, bn_images=50, eval_every=0, lr=0.2, dropout=0.0, threshold=0.5)
    base.update(kw)
    return TrainConfig(**base)


def fixed_loss(net, task) -> float:
    """Mean CE of the max and min subnets on a fixed batch of the labelled images (train-mode BN)."""
    x, y = make_loader(task.train, 32, 100, train=False).batch(0, 0)
    n = copy.deepcopy(net).train()
    losses = []
    with torch.no_grad():
        for s in (max_subnet(n.space), min_subnet(n.space)):
            n.set_subnet(s)
            losses.append(float(F.cross_entropy(n(at_resolution(x, s.r)), y)))
    return sum(losses) / 2


@pytest.mark.parametrize("strategy", ["random", "sandwich", "progressive", "tofa"])
def test_each_strategy_lowers_the_loss(tmp_path, strategy):
    cfg = tiny_cfg(tmp_path, strategy=strategy,
                   phase_epochs=(4, 2, 2, 2) if strategy == "progressive" else None)
    task = load_task(None, cfg.val_fraction, cfg.labels_per_class, cfg.seed)
    before = fixed_loss(build_net(cfg, task)[0], task)
    result = train(cfg)
    after = fixed_loss(result.net, task)
    assert after < before - 0.03, (before, after)
    assert len(result.metrics) == 10 and all(math.isfinite(m["loss"]) for m in result.metrics)
    rows = read_sampled(tmp_path / "run" / "sampled.csv")
    per_step = {"random": 1, "sandwich": 4, "progressive": None, "tofa": 4}[strategy]
    if per_step:
        assert sum(r["count"] for r in rows) == 20 * per_step
    assert max(r["last_iteration"] for r in rows) == 19
    metrics = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("format,epoch,phase") and len(metrics) == 11


def test_progressive_phases_follow_ofa():
    phases = progressive_phases(get_space("cifar-mbv3"), 53)
    assert [p.name for p in phases] == ["full", "kernel", "depth1", "depth2", "expand1", "expand2"]
    assert sum(p.epochs for p in phases) == 53
    assert [p.n_subnets for p in phases] == [1, 1, 2, 2, 4, 4]
    assert [p.sort_stage for p in phases] == [None] * 4 + [0, 1]
    assert phases[2].space.depth_list == (3, 4) and phases[4].space.expand_list == (4, 6)
    assert phases[0].epochs == phases[1].epochs > phases[2].epochs
    with pytest.raises(OfaEdgeError, match="train at least 6 epochs"):
        progressive_phases(get_space("cifar-mbv3"), 5)


def test_fixmatch_mask_is_exactly_the_confident_pseudo_labels():
    # softmax confidences: two-class logits [a, 0] give p = sigmoid(a)
    conf = torch.tensor([0.949, 0.95, 0.951, 0.2, 0.99, 0.3])
    a = torch.log(conf / (1 - conf))
    logits = torch.stack([a, torch.zeros_like(a)], 1)
    labels, mask = pseudo_labels(logits, 0.95)
    expected = (torch.softmax(logits, 1).max(1).values >= 0.95).float()
    assert mask.tolist() == expected.tolist()
    assert mask.tolist() == [0.0, float(expected[1]), 1.0, 0.0, 1.0, 0.0]
    assert labels.tolist() == [0, 0, 0, 1, 0, 1]
    strong = torch.randn(6, 2)
    manual = sum(-torch.log_softmax(strong[i], 0)[labels[i]] * mask[i] for i in range(6)) / 6
    assert torch.allclose(fixmatch_loss(strong, labels, mask), manual)


def _np_log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def test_tofa_loss_terms_match_a_hand_computation():
    torch.manual_seed(0)
    space = get_space("cifar-tiny")
    net = OFAMobileNetV3(space, 10, dropout=0.0).train()
    cfg = TrainConfig(strategy="tofa", space="cifar-tiny", labels_per_class=5, threshold=0.12,
                      label_smoothing=0.1, lambda_u=0.7, kd_ratio=0.5)
    g = torch.Generator().manual_seed(1)
    batch = StepBatch(torch.randn(6, 3, 32, 32, generator=g), torch.arange(6) % 10,
                      torch.randn(5, 3, 32, 32, generator=g), torch.randn(5, 3, 32, 32, generator=g))
    subs = [("max", max_subnet(space)), ("min", min_subnet(space))]
    stats = run_step(cfg, Phase("tofa", 1, space, 1.0, 2), net, net, subs, batch)
    # independent computation with numpy from the same forward passes
    logits = {}
    with torch.no_grad():
        for role, s in subs:
            net.set_subnet(s)
            x = at_resolution(torch.cat([batch.x, batch.u_weak, batch.u_strong]), s.r)
            logits[role] = net(x).double().numpy()
    y = batch.y.numpy()
    onehot = np.eye(10)[y] * 0.9 + 0.1 / 10
    mx_l, mx_w = logits["max"][:6], logits["max"][6:11]
    p_w = np.exp(_np_log_softmax(mx_w))
    pl, mask = p_w.argmax(1), (p_w.max(1) >= 0.12)
    assert 0 < mask.sum() < 5  # the threshold splits this batch
    for role in ("max", "min"):
        lo = logits[role]
        l_l, l_s = lo[:6], lo[11:]  # lo[6:11]: the weak views (pseudo-labels above)
        ce = -(onehot * _np_log_softmax(l_l)).sum(1).mean()
        fm = 0.7 * (-_np_log_softmax(l_s)[np.arange(5), pl] * mask).mean()
        assert stats[f"{role}_ce"] == pytest.approx(ce, rel=1e-4, abs=1e-5)
        assert stats[f"{role}_fixmatch"] == pytest.approx(fm, rel=1e-4, abs=1e-6)
    kd_l = -(np.exp(_np_log_softmax(mx_l)) * _np_log_softmax(logits["min"][:6])).sum(1).mean() * 0.5
    kd_u = -(p_w * _np_log_softmax(logits["min"][6:11])).sum(1).mean() * 0.5
    assert stats["min_kd_l"] == pytest.approx(kd_l, rel=1e-4)
    assert stats["min_kd_u"] == pytest.approx(kd_u, rel=1e-4)
    assert "max_kd_l" not in stats and stats["mask"] == pytest.approx(mask.mean())
    # switching terms off removes them
    off = TrainConfig(strategy="tofa", space="cifar-tiny", labels_per_class=5, fixmatch=False,
                      kd_unlabelled=False)
    stats_off = run_step(off, Phase("tofa", 1, space, 1.0, 2), net, net, subs, batch)
    assert "min_fixmatch" not in stats_off and "min_kd_u" not in stats_off and "min_kd_l" in stats_off


def test_loss_helpers_against_formulas():
    logits, y = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    lp = torch.log_softmax(logits, 1)[0]
    assert float(smooth_ce(logits, y, 0.3)) == pytest.approx(float(-(0.8 * lp[0] + 0.1 * lp[1] + 0.1 * lp[2])))
    t = torch.tensor([[0.0, 1.0, 0.0]])
    assert float(kd_loss(logits, t)) == pytest.approx(float(-(torch.softmax(t, 1)[0] * lp).sum()))


def _state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def _interrupt_at(epoch=None, step=None):
    def on_event(ev):
        hit = (ev["event"] == "epoch" and epoch is not None and ev["epoch"] == epoch) or \
              (ev["event"] == "step" and step is not None and (ev["epoch"], ev["step"]) == step)
        if hit:
            os.kill(os.getpid(), signal.SIGINT)
    return on_event


def test_resume_after_interruption_is_bit_exact(tmp_path):
    # progressive crosses phases (teacher, channel sorting, new optimizers); dropout uses the torch RNG
    kw = dict(strategy="progressive", phase_epochs=(1, 1, 1, 1), epochs=4, dropout=0.2, batch_size=10,
              labels_per_class=None)
    full = train(tiny_cfg(tmp_path / "a", **kw))
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(tiny_cfg(tmp_path / "b", **kw), progress=_interrupt_at(epoch=1))
    ckpt = load_supernet(tmp_path / "b" / "run" / "supernet.pt")
    assert not torch.equal(ckpt.state_dict()["first_conv.conv.weight"], full.net.state_dict()["first_conv.conv.weight"])
    with pytest.raises(TrainingInterrupted, match="step 1/2"):  # mid-epoch, inside the expand phase
        train(resume=tmp_path / "b" / "run", progress=_interrupt_at(step=(3, 1)))
    resumed = train(resume=tmp_path / "b" / "run")
    a, b = _state(full.net), _state(resumed.net)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics[-1]["loss"] == full.metrics[-1]["loss"]
    assert (tmp_path / "a" / "run" / "sampled.csv").read_text() == (tmp_path / "b" / "run" / "sampled.csv").read_text()


def test_corrupt_or_foreign_resume_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "supernet.pt"
    bad.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    with pytest.raises(FileFormatError, match="supernet.pt"):
        train(resume=bad)
    net = OFAMobileNetV3("cifar-tiny", 10)
    save_supernet(net, tmp_path / "plain.pt")
    with pytest.raises(FileFormatError, match="holds no training state"):
        train(resume=tmp_path / "plain.pt")
    cfg = tiny_cfg(tmp_path, epochs=1, steps_per_epoch=1, labels_per_class=None, batch_size=8)
    train(cfg)
    data = (tmp_path / "run" / "supernet.pt").read_bytes()
    (tmp_path / "run" / "supernet.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="corrupt or truncated"):
        train(resume=tmp_path / "run")
    assert main(["train", "--resume", str(tmp_path / "run")]) == 2


def test_solar_heads_extraction_matches_supernet(tmp_path):
    cfg = tiny_cfg(tmp_path, strategy="sandwich", heads=4, epochs=1, steps_per_epoch=2, labels_per_class=None,
                   batch_size=16)
    train(cfg)
    net = load_supernet(tmp_path / "run" / "supernet.pt")
    assert net.head_map.n_heads == 4 and len(net.classifier.heads) == 4
    assert net.head_map == HeadMap.from_space(net.space, 4, 10)
    x = torch.randn(4, 3, 32, 32)
    seen = set()
    rng = __import__("random").Random(0)
    for s in [max_subnet(net.space), min_subnet(net.space)] + [sample(net.space, rng) for _ in range(12)]:
        net.set_subnet(s)
        head = net.classifier.active
        seen.add(head)
        static = net.get_active_subnet().eval()
        assert sum(1 for m in static.modules() if isinstance(m, torch.nn.Linear)) == 1
        xs = at_resolution(x, s.r)
        assert torch.equal(static(xs), net.eval()(xs))
    assert seen == {0, 1, 2, 3}
    # the heads were trained differently (each subnet only updates its own)
    w = [h.linear.weight for h in net.classifier.heads]
    assert not torch.equal(w[0], w[3])


class _FixedLogits(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits, self.i = logits, 0

    def forward(self, x):
        out = self.logits[self.i:self.i + x.size(0)]
        self.i += x.size(0)
        return out


def test_evaluate_top1_top5_ece_against_numpy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 10, generator=g) * 3
    labels = torch.randint(0, 10, (50,), generator=g)
    loader = [(torch.zeros(20, 1), labels[:20]), (torch.zeros(30, 1), labels[20:])]
    r = evaluate(_FixedLogits(logits), loader)
    p = torch.softmax(logits, 1).numpy()
    lab = labels.numpy()
    order = np.argsort(-p, 1)
    assert r["top1"] == pytest.approx(100 * (order[:, 0] == lab).mean())
    assert r["top5"] == pytest.approx(100 * (order[:, :5] == lab[:, None]).any(1).mean())
    conf, pred = p.max(1), p.argmax(1)
    ece = 0.0
    for b in range(15):
        inside = (conf > b / 15) & (conf <= (b + 1) / 15)
        if inside.any():
            ece += inside.mean() * abs((pred[inside] == lab[inside]).mean() - conf[inside].mean())
    assert r["ece"] == pytest.approx(100 * ece, rel=1e-5) and r["n"] == 50


def test_eval_cli_json(tmp_path, capsys):
    cfg = tiny_cfg(tmp_path, epochs=1, steps_per_epoch=1, labels_per_class=None, batch_size=8,
                   val_fraction=0.3)
    train(cfg)
    capsys.readouterr()
    sub = json.dumps(min_subnet(get_space("cifar-tiny")).to_dict())
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "supernet.pt"), "--subnet", sub,
                 "--bn-samples", "40", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 1000 and out["split"] == "test" and 0 <= out["top1"] <= out["top5"] <= 100
    assert out["bn_images"] == 40
    # the run's validation split, also when its data is named again with --data (split as the run split it)
    vals = []
    for extra in ([], ["--data", "embedded"]):
        assert main(["eval", "--checkpoint", str(tmp_path / "run" / "supernet.pt"), "--subnet", sub,
                     "--split", "val", "--bn-samples", "40", "--json", *extra]) == 0
        vals.append(json.loads(capsys.readouterr().out))
    assert vals[0]["n"] == vals[1]["n"] == len(load_task(None, 0.3).val)
    assert vals[0]["top1"] == vals[1]["top1"] and vals[0]["ece"] == vals[1]["ece"]
    assert out["subnet"] == min_subnet(get_space("cifar-tiny")).id and out["r"] == 24
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "supernet.pt"), "--subnet", '{"ks": 9}']) == 2


def test_init_from_ofa_checkpoint_reinitialises_classifier(ofa_fixture):
    path = ofa_fixture / "supernet_state_dict.pt"
    sd = torch.load(path, map_location="cpu", weights_only=True)
    sd = sd.get("state_dict", sd)
    torch.manual_seed(0)
    net = OFAMobileNetV3("ofa-mbv3-w1", 10, HeadMap.from_space(get_space("ofa-mbv3-w1"), 2, 10, samples=50))
    head_before = net.classifier.heads[1].linear.weight.clone()
    report = load_init(net, path)
    assert report["classifier"] == "reinitialised" and report["file_classes"] == 1000 and report["format"] == "ofa"
    key = "blocks.5.conv.depth_conv.conv.conv.weight"
    assert torch.equal(net.state_dict()[key], sd[key])
    assert torch.equal(net.classifier.heads[1].linear.weight, head_before)
    same = OFAMobileNetV3("ofa-mbv3-w1", 1000)
    assert load_init(same, path)["classifier"] == "loaded"
    assert torch.equal(same.classifier.heads[0].linear.weight, sd["classifier.linear.weight"])
    wrong = OFAMobileNetV3("cifar-tiny", 10)
    with pytest.raises(OfaEdgeError, match="use space ofa-mbv3-w1") as err:
        load_init(wrong, path)
    assert err.value.field == "space"


@pytest.mark.parametrize("args, message", [
    (["--data", "{tmp}/missing"], "does not exist"),
    (["--data", "{tmp}/oneclass"], "at least 2"),
    (["--labels-per-class", "1000"], "labels per class"),
    (["--heads", "0"], "heads"),
    (["--init", "{tmp}/foreign.pt"], "foreign.pt"),
    (["--strategy", "magic"], "strategy"),
    (["--strategy", "tofa"], "labels-per-class"),
])
def test_bad_inputs_exit_2(tmp_path, capsys, args, message):
    from PIL import Image

    (tmp_path / "oneclass" / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "oneclass" / "cat" / "a.png")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    argv = ["train", "--space", "cifar-tiny", "--epochs", "1", "--steps-per-epoch", "1", "--quiet",
            "--out", str(tmp_path / "run")] + [a.format(tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_worker_processes_do_not_change_the_result(tmp_path):
    kw = dict(strategy="random", epochs=1, steps_per_epoch=3, labels_per_class=None, batch_size=8)
    a = train(tiny_cfg(tmp_path / "a", **kw)).net.state_dict()
    b = train(tiny_cfg(tmp_path / "b", workers=1, **kw)).net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # resuming a finished run is a no-op that returns its metrics
    again = train(resume=tmp_path / "a" / "run")
    assert len(again.metrics) == 1


def test_sampled_log_is_read_by_the_last_sampled_selector(tmp_path):
    from ofa_edge.search import read_sampled_log

    cfg = tiny_cfg(tmp_path, strategy="sandwich", epochs=1, steps_per_epoch=3, labels_per_class=None, batch_size=8)
    train(cfg)
    entries = read_sampled_log(tmp_path / "run" / "sampled.csv", get_space("cifar-tiny"))
    last = entries[-1]
    assert last.iteration == 2
    rows = read_sampled(tmp_path / "run" / "sampled.csv")
    # the last row is the last random subnet of the last step (sandwich order: max, min, random, random)
    assert rows[-1]["last_iteration"] == 2 and rows[0]["last_iteration"] <= rows[-1]["last_iteration"]
    maxid, minid = max_subnet(get_space("cifar-tiny")).id, min_subnet(get_space("cifar-tiny")).id
    by_id = {r["id"]: r for r in rows}
    assert by_id[maxid]["count"] == by_id[minid]["count"] == 3
    assert rows[-1]["id"] not in (maxid, minid)


def test_random_max_every_trains_the_max_subnet_on_every_nth_step(tmp_path):
    """--max-every 3: steps 2, 5, 8 train the max subnet, the others one sampled subnet each."""
    cfg = tiny_cfg(tmp_path, strategy="random", max_every=3, epochs=3, steps_per_epoch=3, labels_per_class=None,
                   batch_size=8)
    assert main(["train", "--space", "cifar-tiny", "--strategy", "random", "--max-every", "-1", "--quiet",
                 "--out", str(tmp_path / "bad")]) == 2
    train(cfg)
    rows = read_sampled(tmp_path / "run" / "sampled.csv")
    by_id = {r["id"]: r for r in rows}
    maxid = max_subnet(get_space("cifar-tiny")).id
    assert sum(r["count"] for r in rows) == 9
    assert by_id[maxid]["count"] >= 3 and by_id[maxid]["last_iteration"] == 8
    # the other steps draw exactly what the plain random strategy draws at those iterations
    from ofa_edge.train.strategies import plan_phases, subnets_for_step

    plain = tiny_cfg(tmp_path, strategy="random", labels_per_class=None)
    phase = plan_phases(plain, get_space("cifar-tiny"))[0]
    for i in range(9):
        roles = subnets_for_step(cfg, phase, 0, i)
        if i % 3 == 2:
            assert roles == [("max", max_subnet(get_space("cifar-tiny")))]
        else:
            assert roles == subnets_for_step(plain, phase, 0, i)


def test_init_from_an_ofa_edge_run_takes_its_space_and_weights(tmp_path):
    a = train(tiny_cfg(tmp_path / "a", strategy="random", epochs=1, steps_per_epoch=1, labels_per_class=None,
                       batch_size=8))
    seen = {}
    cfg = tiny_cfg(tmp_path / "b", strategy="random", epochs=1, steps_per_epoch=1, labels_per_class=None,
                   batch_size=8, space=None, heads=2, init=str(tmp_path / "a" / "run" / "supernet.pt"), lr=1e-9)
    b = train(cfg, progress=lambda ev: seen.update(ev) if ev["event"] == "start" else None)
    assert b.net.space.name == "cifar-tiny"
    assert seen["init"]["format"] == "ofa-edge" and seen["init"]["classifier"] == "loaded"
    wa = a.net.state_dict()["blocks.1.conv.point_linear.conv.conv.weight"]
    wb = b.net.state_dict()["blocks.1.conv.point_linear.conv.conv.weight"]
    assert torch.allclose(wa, wb, atol=1e-6)  # lr 1e-9: one step barely moves them
    # the file's single head was copied into both heads
    assert torch.allclose(b.net.classifier.heads[1].linear.bias, a.net.classifier.heads[0].linear.bias, atol=1e-6)


def test_a_new_run_refuses_to_overwrite_an_existing_one(tmp_path, capsys):
    cfg = tiny_cfg(tmp_path, strategy="random", epochs=1, steps_per_epoch=1, labels_per_class=None, batch_size=8)
    train(cfg)
    with pytest.raises(OfaEdgeError, match="already holds a training run; resume it") as err:
        train(cfg)
    assert err.value.field == "out"
    assert main(["train", "--space", "cifar-tiny", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "--out: " in capsys.readouterr().err


def test_steps_per_epoch_can_exceed_a_small_labelled_set(tmp_path):
    from ofa_edge.train.checkpoint import read_train_checkpoint

    cfg = tiny_cfg(tmp_path, strategy="random", epochs=2, steps_per_epoch=5, labels_per_class=5, batch_size=25)
    result = train(cfg)
    _, _, state = read_train_checkpoint(tmp_path / "run")
    assert state["iteration"] == 10 and [m["images"] for m in result.metrics] == [125, 125]
