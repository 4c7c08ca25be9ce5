"""CLI: ``space show`` and ``subnet`` output, and one-line errors with exit code 2 for bad input."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
import torch
import torchvision

from ofa_edge.cli import main
from ofa_edge.space import SearchSpace, Subnet, count_macs, count_params, get_space
from ofa_edge.supernet import OFAMobileNetV3, save_supernet


def run_cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_space_show_matches_brute_force_count(tmp_path, capsys):
    # Two stages keep full enumeration small: 20 configurations per stage, 400 per resolution.
    space = SearchSpace(name="small", width_mult=0.25, stem="cifar", ks_list=(3, 5), expand_list=(2, 3),
                        depth_list=(1, 2), resolutions=(16, 24), base_widths=(16, 16, 24, 40, 960, 1280),
                        stage_strides=(2, 2), stage_acts=("relu", "h_swish"), stage_se=(False, True))
    path = tmp_path / "space.json"
    path.write_text(space.to_json())
    code, out, _ = run_cli(capsys, "space", "show", "--space", str(path), "--classes", "10", "--json")
    assert code == 0
    data = json.loads(out)
    per_stage = [blocks for depth in space.depth_list
                 for blocks in itertools.product(itertools.product(space.ks_list, space.expand_list),
                                                 repeat=depth)]
    assert len(per_stage) == 4 + 16
    assert data["n_subnets"] == len(per_stage) ** space.n_stages * len(space.resolutions)
    for row in data["per_resolution"]:
        macs, params = [], []
        for choice in itertools.product(per_stage, repeat=space.n_stages):
            ks, e, d = [], [], []
            for blocks in choice:
                ks += [b[0] for b in blocks] + [3] * (space.max_depth - len(blocks))
                e += [b[1] for b in blocks] + [2] * (space.max_depth - len(blocks))
                d.append(len(blocks))
            s = Subnet(ks=ks, e=e, d=d, r=row["r"], max_depth=space.max_depth)
            macs.append(count_macs(space, s, 10))
            params.append(count_params(space, s, 10))
        assert row["min_macs"] == min(macs) and row["max_macs"] == max(macs)
        assert row["min_params"] == min(params) and row["max_params"] == max(params)


def test_space_show_table(capsys):
    code, out, _ = run_cli(capsys, "space", "show", "--space", "ofa-mbv3-w1")
    assert code == 0
    # The reference's exact counts: max net at 224 = 566.170656 M MACs, min net at 128 = 41.476224 M.
    assert "566.17" in out and "41.48" in out
    assert "7.665" in out and "3.411" in out  # max / min params (M)


def test_subnet_json_reports_macs_params_and_id(tmp_path, capsys):
    net = OFAMobileNetV3("cifar-tiny", 10)
    ckpt = save_supernet(net, tmp_path / "supernet.pt")
    code, out, _ = run_cli(capsys, "subnet", "--checkpoint", str(ckpt), "--subnet", "max", "--json")
    assert code == 0
    info = json.loads(out)
    net.set_max_net()
    static = net.get_active_subnet()
    assert info["params"] == sum(p.numel() for p in static.parameters())
    assert info["macs"] == count_macs(get_space("cifar-tiny"), net.active_subnet(), 10)
    assert info["id"] == net.active_subnet().id
    code, out, _ = run_cli(capsys, "subnet", "--subnet", json.dumps(info["subnet"]), "--space", "cifar-tiny",
                           "--json")
    assert code == 0 and json.loads(out)["id"] == info["id"]


@pytest.mark.parametrize("args, needle", [
    (["subnet", "--subnet", '{"ks": 3, "e": 3'], "malformed"),
    (["subnet", "--subnet", '{"ks": 4, "e": 3, "d": 2, "r": 32}'], "ks[0]: 4 is not one of [3, 5, 7]"),
    (["space", "show", "--space", "nope"], "unknown search space 'nope'"),
])
def test_bad_input_is_one_line_exit_2(capsys, args, needle):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_bad_checkpoints_exit_2_through_the_console_script(tmp_path):
    ckpt = save_supernet(OFAMobileNetV3("cifar-tiny", 10), tmp_path / "supernet.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ckpt.read_bytes()[:5000])
    other = tmp_path / "resnet.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), other)
    for path, needle in [(truncated, "corrupt or truncated"), (other, "not an OFA MobileNetV3")]:
        proc = subprocess.run([sys.executable, "-m", "ofa_edge", "subnet", "--checkpoint", str(path)],
                              capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert str(path.name) in proc.stderr and needle in proc.stderr and "Traceback" not in proc.stderr
