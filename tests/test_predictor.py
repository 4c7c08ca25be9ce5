"""Accuracy predictor (fit, metrics, save/load, refusal of foreign spaces) and resumable accuracy collection."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from ofa_edge.search import (AccuracyPredictor, GenomeCodec, collect_accuracy, fit_predictor, load_predictor,
                             plan_subnets, read_accuracy_csv, write_accuracy_csv)
from ofa_edge.search.metrics import kendall_tau, rankdata, rmse, spearman
from ofa_edge.space import encode, get_space

SPACE = get_space("cifar-tiny")


def smooth_target(space, subnets, seed=1):
    """A known smooth function of the encoding: 60 + 10 tanh(w . x / 4)."""
    w = np.random.default_rng(seed).normal(size=len(encode(space, subnets[0])))
    x = np.asarray([encode(space, s) for s in subnets])
    return 60.0 + 10.0 * np.tanh(x @ w / 4.0)


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    subs = plan_subnets(SPACE, 800, seed=3)
    y = smooth_target(SPACE, subs)
    return fit_predictor(SPACE, subs, y, epochs=40, batch_size=128, lr=2e-3, seed=0,
                         meta={"checkpoint_sha256": "ab" * 32}), subs, y


def test_predictor_fits_a_known_smooth_function(fitted):
    pred, subs, y = fitted
    m = pred.metrics
    assert (m.n_train, m.n_holdout) == (640, 160)
    assert np.std(y) > 3.0  # predicting the mean would give an RMSE of ~5 points
    assert m.rmse < 0.8, m
    assert m.kendall_tau > 0.9 and m.spearman > 0.98
    # the metrics are those of the held-out rows (recompute independently from a fresh prediction)
    p = pred.predict(subs)
    gen = torch.Generator().manual_seed(0)
    hold = torch.randperm(len(subs), generator=gen)[640:].numpy()
    assert rmse(p[hold], y[hold]) == pytest.approx(m.rmse, rel=1e-5)
    # base_acc is the mean training target and is a frozen buffer, not a parameter
    assert "base_acc" not in dict(pred.model.named_parameters())
    assert pred.model.base_acc.item() == pytest.approx(np.delete(y, hold).mean() / 100, rel=1e-5)


def test_predictor_layout_matches_ofa():
    m = AccuracyPredictor(124)
    keys = list(m.state_dict())
    assert keys == ["base_acc", "layers.0.0.weight", "layers.0.0.bias", "layers.1.0.weight", "layers.1.0.bias",
                    "layers.2.0.weight", "layers.2.0.bias", "layers.3.weight"]
    assert m.state_dict()["layers.0.0.weight"].shape == (400, 124)
    assert m.state_dict()["layers.3.weight"].shape == (1, 400)


def test_predictor_batches_and_genome_path_agree(fitted):
    pred, subs, _ = fitted
    codec = GenomeCodec(SPACE)
    one_by_one = np.asarray([pred.predict([s])[0] for s in subs[:20]])
    assert np.allclose(pred.score_genomes(codec.from_subnets(subs[:20])), one_by_one, atol=1e-5)


def test_predictor_save_load_and_refusals(fitted, tmp_path):
    pred, subs, _ = fitted
    path = pred.save(tmp_path / "predictor.pt")
    back = load_predictor(path, SPACE, checkpoint_sha256="ab" * 32)
    assert np.array_equal(back.predict(subs[:50]), pred.predict(subs[:50]))
    assert back.metrics == pred.metrics and back.meta["epochs"] == 40
    with pytest.raises(ValueError, match=r"predictor.pt: predictor was fit for search space 'cifar-tiny'"):
        load_predictor(path, get_space("cifar-mbv3"))
    with pytest.raises(ValueError, match="another checkpoint"):
        load_predictor(path, SPACE, checkpoint_sha256="cd" * 32)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_predictor(junk)
    torch.save({"format": "ofa-edge-predictor", "version": 99}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="future.pt: unknown predictor format version 99"):
        load_predictor(tmp_path / "future.pt")


def test_fit_needs_enough_rows():
    subs = plan_subnets(SPACE, 3)
    with pytest.raises(ValueError, match="need more accuracy rows") as err:
        fit_predictor(SPACE, subs, [50.0, 60.0, 70.0])
    assert err.value.field == "samples"


def test_rank_metrics_against_pair_counting():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 6, 40).astype(float)
    b = a + rng.integers(-2, 3, 40)
    conc = disc = ta = tb = 0
    for i, j in itertools.combinations(range(40), 2):
        da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
        conc += da * db > 0
        disc += da * db < 0
        ta += da == 0 and db != 0
        tb += db == 0 and da != 0
    tau_b = (conc - disc) / np.sqrt((conc + disc + ta) * (conc + disc + tb))
    assert kendall_tau(a, b) == pytest.approx(tau_b)
    assert rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rmse([1, 2], [1, 4]) == pytest.approx(np.sqrt(2))


# -- accuracy collection ---------------------------------------------------------------------------
class Evaluator:
    """Counts calls; can stop after ``fail_after`` evaluations to simulate an interruption."""

    def __init__(self, fail_after=None):
        self.calls, self.fail_after = [], fail_after

    def __call__(self, subnet):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt
        self.calls.append(subnet)
        return 50.0 + (hash(subnet.id) % 1000) / 100


def test_resumed_collection_does_not_re_evaluate(tmp_path):
    path = tmp_path / "accuracy.csv"
    first = Evaluator(fail_after=7)
    with pytest.raises(KeyboardInterrupt):
        collect_accuracy(SPACE, first, path, n_samples=20, seed=1)
    assert len(read_accuracy_csv(path, SPACE)) == 7
    # a crash in the middle of a write leaves a torn last line: it is dropped and re-measured
    with open(path, "a") as fh:
        fh.write("ofa-edge-accuracy/1,deadbeef,12")
    second = Evaluator()
    res = collect_accuracy(SPACE, second, path, n_samples=20, seed=1)
    assert (res.evaluated, res.skipped) == (13, 7)
    done = {s.id for s in first.calls}
    assert not done & {s.id for s in second.calls}
    assert [s.id for s in first.calls + second.calls] == [s.id for s in plan_subnets(SPACE, 20, 1)]
    rows = read_accuracy_csv(path, SPACE)
    assert len(rows) == 20 and {r.split for r in rows} == {"val"}
    third = Evaluator()
    res = collect_accuracy(SPACE, third, path, n_samples=25, seed=1)
    assert (res.evaluated, res.skipped, len(third.calls)) == (5, 20, 5)
    assert [r.top1 for r in read_accuracy_csv(path, SPACE)[:20]] == pytest.approx([r.top1 for r in rows])


def test_collection_refuses_test_split_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="never test"):
        collect_accuracy(SPACE, Evaluator(), tmp_path / "a.csv", 3, split="test")
    path = tmp_path / "other.csv"
    collect_accuracy(get_space("cifar-mbv3"), Evaluator(), path, 2)
    with pytest.raises(ValueError, match="other.csv: line 2: rows of another search space"):
        collect_accuracy(SPACE, Evaluator(), path, 2)
    mine = tmp_path / "mine.csv"
    collect_accuracy(SPACE, Evaluator(), mine, 2, source="aaaa")
    with pytest.raises(ValueError, match="mine.csv: line 2: measured on another checkpoint"):
        collect_accuracy(SPACE, Evaluator(), mine, 3, source="bbbb")
    assert len(read_accuracy_csv(mine, SPACE, source="aaaa")) == 2
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv: not an ofa-edge accuracy file"):
        read_accuracy_csv(tmp_path / "bad.csv", SPACE)
    with pytest.raises(ValueError, match="samples: need at least 1") as err:
        plan_subnets(SPACE, 0)
    assert err.value.field == "samples"


def test_rows_rewritten_for_another_checkpoint_round_trip(tmp_path):
    """Rows measured on one file of some weights, written again as rows of another file of those weights."""
    src = tmp_path / "run.csv"
    collect_accuracy(SPACE, Evaluator(), src, 6, source="aaaa")
    rows = read_accuracy_csv(src, SPACE, source="aaaa")  # as stored (6 significant digits)
    dst = write_accuracy_csv(tmp_path / "pack.csv", SPACE, rows, "bbbb")
    assert read_accuracy_csv(dst, SPACE, source="bbbb") == rows and len(rows) == 6
    with pytest.raises(ValueError, match="pack.csv: line 2: measured on another checkpoint"):
        read_accuracy_csv(dst, SPACE, source="aaaa")
    res = collect_accuracy(SPACE, Evaluator(), dst, 6, source="bbbb")  # nothing left to measure
    assert (res.evaluated, res.skipped) == (0, 6)


def test_rows_record_their_bn_budget_and_another_budget_is_refused(tmp_path):
    path = tmp_path / "accuracy.csv"
    collect_accuracy(SPACE, Evaluator(), path, 4, source="aaaa", bn_images=500)
    assert {r.bn_images for r in read_accuracy_csv(path, SPACE)} == {500}
    # top-1 after another BN budget is another measurement: never appended to these rows
    with pytest.raises(ValueError, match="accuracy.csv: line 2: measured after BN recalibration on 500 "
                                         "images, this call uses 1000.*--bn-images 500"):
        collect_accuracy(SPACE, Evaluator(), path, 6, source="aaaa", bn_images=1000)
    with pytest.raises(ValueError, match="on 500 images, this call uses 20"):
        read_accuracy_csv(path, SPACE, bn_images=20)
    res = collect_accuracy(SPACE, Evaluator(), path, 6, source="aaaa", bn_images=500)
    assert (res.evaluated, res.skipped, res.unknown_budget) == (2, 4, 0)


def test_a_v1_file_without_bn_budget_is_read_and_upgraded_on_append(tmp_path):
    path = tmp_path / "old.csv"
    collect_accuracy(SPACE, Evaluator(), path, 3, source="aaaa")
    old = read_accuracy_csv(path, SPACE)
    # the same rows as ofa-edge-accuracy/1 wrote them: no bn_images column
    lines = path.read_text().splitlines()
    v1 = ["format,space,checkpoint,subnet_id,r,top1,split,subnet"]
    for line in lines[1:]:
        head, subnet = line.split(',"', 1)
        fields = head.split(",")
        assert fields[0] == "ofa-edge-accuracy/2" and fields[7] == ""
        v1.append(",".join(["ofa-edge-accuracy/1", *fields[1:7]]) + ',"' + subnet)
    path.write_text("\n".join(v1) + "\n")
    assert read_accuracy_csv(path, SPACE) == old and all(r.bn_images is None for r in old)
    res = collect_accuracy(SPACE, Evaluator(), path, 5, source="aaaa", bn_images=500)
    assert (res.evaluated, res.skipped, res.unknown_budget) == (2, 3, 3)
    assert path.read_text().startswith("format,space,checkpoint,subnet_id,r,top1,split,bn_images,subnet\n")
    rows = read_accuracy_csv(path, SPACE, bn_images=500)
    assert rows[:3] == old and [r.bn_images for r in rows[3:]] == [500, 500]


def test_planned_subnets_are_distinct_and_seeded():
    a, b = plan_subnets(SPACE, 200, seed=9), plan_subnets(SPACE, 200, seed=9)
    assert [s.id for s in a] == [s.id for s in b]
    assert len({s.id for s in a}) == 200
    assert [s.id for s in plan_subnets(SPACE, 50, seed=9)] == [s.id for s in a[:50]]
