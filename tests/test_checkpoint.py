"""Checkpoints: OFA layouts (wrapped, bare, legacy keys), ofa-edge format round trip, bad files refused."""

from __future__ import annotations

import collections

import pytest
import torch
import torchvision

from ofa_edge.errors import FileFormatError
from ofa_edge.space import get_space, sample
from ofa_edge.supernet import (HeadMap, OFAMobileNetV3, load_any, load_ofa_checkpoint, load_supernet,
                               save_supernet)


def _ref_sd(ofa_fixture):
    return torch.load(ofa_fixture / "supernet_state_dict.pt", weights_only=True)["state_dict"]


def _max_abs(net, case):
    net.set_active_subnet(ks=case["ks"], e=case["e"], d=case["d"])
    with torch.no_grad():
        return (net(case["input"]) - case["logits"]).abs().max().item()


@pytest.mark.parametrize("form", ["bare", "legacy", "dataparallel"])
def test_bare_and_legacy_state_dicts_load(tmp_path, ofa_fixture, ofa_cases, form):
    sd = _ref_sd(ofa_fixture)
    if form == "legacy":
        sd = collections.OrderedDict((k.replace("blocks.3.conv.", "blocks.3.mobile_inverted_conv.")
                                      .replace("blocks.0.conv.", "blocks.0.mobile_inverted_conv."), v)
                                     for k, v in sd.items())
        assert any(".mobile_inverted_conv." in k for k in sd)
    if form == "dataparallel":
        sd = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
    path = tmp_path / "ckpt.pth"
    torch.save(sd, path)
    net = load_ofa_checkpoint(path)
    assert not net.training and net.n_classes == 1000
    assert _max_abs(net, ofa_cases[3]) <= 1e-4


def test_ofa_edge_format_round_trips_losslessly(tmp_path):
    space = get_space("cifar-tiny")
    head_map = HeadMap.from_space(space, 3, 7, samples=300)
    net = OFAMobileNetV3(space, 7, head_map, dropout=0.1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = save_supernet(net, tmp_path / "run" / "supernet.pt", epoch=3)
    back = load_supernet(path)
    assert back.space == space and back.head_map == head_map and back.n_classes == 7 and back.dropout == 0.1
    sd_a, sd_b = net.state_dict(), back.state_dict()
    assert sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    subnet = sample(space, 5)
    net.eval().set_subnet(subnet)
    back.set_subnet(subnet)
    x = torch.randn(2, 3, subnet.r, subnet.r)
    assert torch.equal(net(x), back(x))
    assert isinstance(load_any(path), OFAMobileNetV3)
    assert [p.name for p in path.parent.iterdir()] == ["supernet.pt"]  # no temp files left


def test_truncated_checkpoint_is_refused_naming_the_file(tmp_path):
    net = OFAMobileNetV3("cifar-tiny", 10)
    path = save_supernet(net, tmp_path / "supernet.pt")
    data = path.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError) as err:
        load_supernet(bad)
    assert "truncated.pt" in str(err.value) and "corrupt or truncated" in str(err.value)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(FileFormatError, match="garbage.pt"):
        load_any(garbage)


def test_state_dict_of_another_model_is_refused(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"state_dict": torchvision.models.resnet18(weights=None).state_dict()}, path)
    with pytest.raises(FileFormatError, match="resnet.pt: not an OFA MobileNetV3"):
        load_ofa_checkpoint(path)
    other = OFAMobileNetV3("cifar-tiny", 10).state_dict()
    path2 = tmp_path / "tiny_as_ofa.pt"
    torch.save(other, path2)
    with pytest.raises(FileFormatError, match="tiny_as_ofa.pt"):
        load_ofa_checkpoint(path2)


def test_shape_mismatch_and_nan_are_refused(tmp_path, ofa_fixture):
    sd = _ref_sd(ofa_fixture)
    sd["blocks.5.conv.depth_conv.conv.conv.weight"] = torch.zeros(10, 1, 7, 7)
    torch.save(sd, tmp_path / "shape.pt")
    with pytest.raises(FileFormatError, match="shape mismatch for 'blocks.5"):
        load_ofa_checkpoint(tmp_path / "shape.pt")
    sd = _ref_sd(ofa_fixture)
    sd["final_expand_layer.bn.running_var"][3] = float("nan")
    torch.save(sd, tmp_path / "nan.pt")
    with pytest.raises(FileFormatError, match="NaN"):
        load_ofa_checkpoint(tmp_path / "nan.pt")


class Payload:
    """An arbitrary Python object: loading it would run pickle's object reconstruction."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "x": Payload()}, path)
    with pytest.raises(FileFormatError, match="evil.pt: .*refused"):
        load_any(path)
    assert "must never run" not in capsys.readouterr().out


def test_unknown_format_version_is_refused(tmp_path):
    net = OFAMobileNetV3("cifar-tiny", 10)
    path = save_supernet(net, tmp_path / "supernet.pt")
    obj = torch.load(path, weights_only=True)
    obj["version"] = 99
    torch.save(obj, path)
    with pytest.raises(FileFormatError, match="unknown format version 99"):
        load_supernet(path)


@pytest.mark.parametrize("make,needle", [
    (lambda p: (p.mkdir(), save_supernet(OFAMobileNetV3("cifar-tiny", 10), p / "supernet.pt")),
     "is a folder; pass {p}/supernet.pt"),
    (lambda p: p.mkdir(), "is a folder, not a checkpoint file"),
    (lambda p: p.write_text("# My notes\n\nSee runs/x/supernet.pt\n"), "not a torch checkpoint (a text file"),
    (lambda p: p.write_text("101\n"), "not a torch checkpoint (a text file"),
    (lambda p: p.write_bytes(b""), "not a torch checkpoint (an empty file"),
    (lambda p: p.write_bytes(bytes(range(256))), "not a torch checkpoint (an unknown binary file"),
], ids=["folder-with-supernet", "empty-folder", "markdown", "number", "empty", "binary"])
def test_a_wrong_file_is_named_for_what_it_is(tmp_path, capsys, make, needle):
    path = tmp_path / "given"
    make(path)
    with pytest.raises(FileFormatError) as err:
        load_any(path)
    assert needle.format(p=path) in str(err.value)
    from ofa_edge.cli import main

    assert main(["subnet", "--checkpoint", str(path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert needle.format(p=path) in err and "Traceback" not in err
    assert "(101)" not in err and "could run code" not in err


def test_a_torch_file_of_another_kind_is_named(tmp_path):
    path = tmp_path / "predictor.pt"
    torch.save({"format": "ofa-edge-predictor", "version": 1, "state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(FileFormatError, match="this is a predictor file, not a supernet checkpoint"):
        load_any(path)
    with pytest.raises(FileFormatError, match="this is a predictor file, not an ofa-edge supernet checkpoint"):
        load_supernet(path)
