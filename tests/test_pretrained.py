"""The packaged pretrained supernet: listed, resolvable by name anywhere a checkpoint is, good, never written."""

from __future__ import annotations

import json

import pytest
import torch

from ofa_edge.cli import main
from ofa_edge.pretrained import get_pretrained, is_packaged, list_pretrained, resolve_checkpoint

torch.set_num_threads(1)
NAME = "cifar10-mbv3"


def test_the_packaged_supernet_is_listed_with_its_card(capsys):
    assert NAME in [p.name for p in list_pretrained()]
    pack = get_pretrained(NAME)
    assert pack.checkpoint.stat().st_size <= 10 * 2**20 and pack.predictor.is_file()
    assert main(["pretrained", "list", "--json"]) == 0
    (item,) = [i for i in json.loads(capsys.readouterr().out) if i["name"] == NAME]
    assert item["space"] == "cifar-mbv3" and item["classes"] == 10
    assert item["metrics"]["test_images"] == 5000 and item["metrics"]["max_top1"] > item["metrics"]["min_top1"] > 60
    assert item["recipe"]["command"].startswith("python bench/convergence.py")
    assert 0 < item["predictor"]["samples"] and -1 <= item["predictor"]["kendall_tau"] <= 1
    assert main(["pretrained", "list"]) == 0 and NAME in capsys.readouterr().out


def test_a_name_resolves_to_the_package_unless_a_file_of_that_name_exists(tmp_path, monkeypatch):
    assert resolve_checkpoint(NAME) == get_pretrained(NAME).checkpoint and is_packaged(resolve_checkpoint(NAME))
    monkeypatch.chdir(tmp_path)
    (tmp_path / NAME).write_bytes(b"mine")
    assert resolve_checkpoint(NAME) == tmp_path / NAME or resolve_checkpoint(NAME).name == NAME
    assert not is_packaged(resolve_checkpoint(NAME))
    assert resolve_checkpoint("no-such-model") == tmp_path / "no-such-model" or \
        str(resolve_checkpoint("no-such-model")) == "no-such-model"


@pytest.mark.slow
def test_eval_by_name_on_the_embedded_test_split(capsys):
    assert main(["eval", "--checkpoint", NAME, "--subnet", "max", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "test" and out["n"] == 1000
    assert out["top1"] > 65.0  # the shipped max subnet classifies real CIFAR-10 test images (chance: 10 %)


def test_packaged_predictor_belongs_to_the_packaged_checkpoint():
    from ofa_edge.export.manifest import sha256_path
    from ofa_edge.search.predictor import load_predictor
    from ofa_edge.space import max_subnet, min_subnet
    from ofa_edge.supernet import load_any

    pack = get_pretrained(NAME)
    net = load_any(NAME)
    pred = load_predictor(pack.predictor, net.space, checkpoint_sha256=sha256_path(pack.checkpoint))
    big, small = pred.predict([max_subnet(net.space), min_subnet(net.space)])
    assert big > small  # it ranks the largest subnet above the smallest
    # its rows were measured with the BN budget the card declares (a refit asks for the same one)
    assert pred.meta["bn_images"] == pack.predictor_bn_images == pack.card["predictor"]["bn_images"]


def test_refitting_the_predictor_never_writes_into_the_package(tmp_path, monkeypatch, capsys):
    pack = get_pretrained(NAME)
    before = {p.name: p.stat().st_mtime_ns for p in pack.folder.iterdir()}
    monkeypatch.chdir(tmp_path)
    assert main(["predictor", "fit", "--checkpoint", NAME, "--samples", "10", "--bn-images", "20", "--epochs", "5",
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (tmp_path / "runs" / NAME / "predictor.pt").is_file()
    assert info["predictor"] == str((tmp_path / "runs" / NAME / "predictor.pt").relative_to(tmp_path))
    # rows measured with another BN budget than the shipped ones: nothing copied, all measured
    assert info["copied_from_package"] == 0 and info["evaluated"] == 10 and info["bn_images"] == 20
    assert {p.name: p.stat().st_mtime_ns for p in pack.folder.iterdir()} == before


def test_refitting_the_packaged_predictor_reuses_its_shipped_rows(tmp_path, monkeypatch, capsys):
    pack = get_pretrained(NAME)
    shipped = pack.card["predictor"]
    monkeypatch.chdir(tmp_path)
    assert main(["predictor", "fit", "--checkpoint", NAME, "--samples", str(shipped["samples"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    # no subnet measured again: the shipped rows are the planned ones, at the BN budget they were measured with
    assert info["copied_from_package"] == shipped["samples"] == info["skipped"] and info["evaluated"] == 0
    assert info["bn_images"] == shipped["bn_images"]
    assert (tmp_path / "runs" / NAME / "accuracy.csv").read_text() == (pack.folder / "accuracy.csv").read_text()
    # the same rows, seed and epochs give the packaged predictor's held-out figures
    assert info["kendall_tau"] == pytest.approx(shipped["kendall_tau"], abs=1e-6)
    assert info["rmse"] == pytest.approx(shipped["rmse"], abs=1e-6)
    # those rows are of the shipped BN budget: another budget is refused before anything is measured
    assert main(["predictor", "fit", "--checkpoint", NAME, "--samples", "610", "--bn-images", "20"]) == 2
    assert "--bn-images 1000" in capsys.readouterr().err


def test_an_unknown_pretrained_name_is_a_clear_error(capsys):
    assert main(["eval", "--checkpoint", "cifar100-nope", "--subnet", "max"]) == 2
    assert "cifar100-nope" in capsys.readouterr().err
    with pytest.raises(Exception, match="no pretrained supernet named 'x'"):
        get_pretrained("x")
