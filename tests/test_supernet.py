"""Supernet: reference logits, static extraction, ONNX export, MACs/params, BN recalibration, heads."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ofa_edge.export.onnx import export_onnx
from ofa_edge.space import count_macs, count_params, get_space, max_subnet, min_subnet, sample
from ofa_edge.supernet import HeadMap, OFAMobileNetV3, StaticMobileNetV3
from ofa_edge.supernet.bn_calib import recalibrate_bn
from ofa_edge.supernet.ops import SqueezeExcite
from ofa_edge.supernet.static import ClassifierHead, ConvBnAct, GlobalPool, MBConv, ResidualBlock

PLAIN = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.ReLU, nn.Hardswish, nn.Hardsigmoid, nn.Dropout)
CONTAINERS = (StaticMobileNetV3, nn.ModuleList, nn.Sequential, ConvBnAct, MBConv, ResidualBlock,
              ClassifierHead, SqueezeExcite, GlobalPool)


def _activate(net, case):
    net.set_active_subnet(ks=case["ks"], e=case["e"], d=case["d"])


def test_supernet_and_static_subnet_reproduce_reference_logits(ofa_net, ofa_cases):
    for case in ofa_cases:
        _activate(ofa_net, case)
        with torch.no_grad():
            logits = ofa_net(case["input"])
            static = ofa_net.get_active_subnet().eval()
            static_logits = static(case["input"])
        assert (logits - case["logits"]).abs().max().item() <= 1e-4, case["name"]
        assert (static_logits - case["subnet_logits"]).abs().max().item() <= 1e-4, case["name"]
        assert sum(p.numel() for p in static.parameters()) == case["subnet_params"]


def test_static_subnet_has_only_plain_modules(ofa_net, ofa_cases):
    _activate(ofa_net, ofa_cases[2])
    static = ofa_net.get_active_subnet()
    kinds = {type(m) for m in static.modules()}
    assert kinds <= set(PLAIN) | set(CONTAINERS), kinds - set(PLAIN) - set(CONTAINERS)
    assert not any("matrix" in name for name, _ in static.named_parameters())
    depthwise = [m for m in static.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 1 + sum(ofa_cases[2]["d"])


def test_static_subnet_exports_to_onnx_and_matches(tmp_path):
    import onnxruntime as ort

    space = get_space("cifar-mbv3")
    net = OFAMobileNetV3(space, 10).eval()
    for i, subnet in enumerate([max_subnet(space), min_subnet(space), sample(space, 4)]):
        net.set_subnet(subnet)
        static = net.get_active_subnet().eval()
        path = export_onnx(static, tmp_path / f"m{i}.onnx", (1, 3, subnet.r, subnet.r),
                           metadata={"subnet": subnet.to_json()})
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        x = torch.randn(3, 3, subnet.r, subnet.r)  # dynamic batch
        out = sess.run(None, {"input": x.numpy()})[0]
        assert np.abs(out - static(x).detach().numpy()).max() < 1e-4


@pytest.mark.parametrize("space_name, classes", [("ofa-mbv3-w1", 1000), ("cifar-mbv3", 10), ("cifar-tiny", 10)])
def test_macs_and_params_agree_with_torch_counts(space_name, classes):
    space = get_space(space_name)
    net = OFAMobileNetV3(space, classes).eval()
    rng = random.Random(1)
    subnets = [max_subnet(space), min_subnet(space)] + [sample(space, rng) for _ in range(3)]
    for subnet in subnets:
        net.set_subnet(subnet)
        static = net.get_active_subnet().eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            static(torch.zeros(1, 3, subnet.r, subnet.r))
        macs = count_macs(space, subnet, classes)
        assert abs(counter.get_total_flops() / 2 - macs) <= 0.01 * macs
        assert count_params(space, subnet, classes) == sum(p.numel() for p in static.parameters())


def _bn_inputs(model, batches):
    """Record every BN layer's input during a recalibration pass."""
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_hook(lambda mod, inp, out, n=name: seen.setdefault(n, []).append(inp[0])))
    try:
        recalibrate_bn(model, batches)
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_bn_recalibration_gives_exact_statistics_of_bn_inputs_static():
    space = get_space("cifar-tiny")
    net = OFAMobileNetV3(space, 10)
    net.set_subnet(sample(space, 2))
    static = net.get_active_subnet()
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(6, 3, 32, 32, generator=gen) * 1.5 + 0.3 for _ in range(3)]
    seen = _bn_inputs(static, batches)
    assert len(seen) == sum(isinstance(m, nn.BatchNorm2d) for m in static.modules())
    for name, m in static.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            x = torch.cat(seen[name]).double()
            torch.testing.assert_close(m.running_mean.double(), x.mean((0, 2, 3)), atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(m.running_var.double(), x.var((0, 2, 3), unbiased=False),
                                       atol=1e-6, rtol=1e-5)
    assert static.training  # mode restored


def test_bn_recalibration_on_supernet_writes_active_slice_and_matches_static():
    space = get_space("cifar-tiny")
    net = OFAMobileNetV3(space, 10).eval()
    subnet = min_subnet(space, 32)
    net.set_subnet(subnet)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(8, 3, 32, 32, generator=gen) for _ in range(2)]
    before = net.blocks[1].conv.depth_conv.bn.bn.running_mean.clone()
    static_first = net.get_active_subnet()
    recalibrate_bn(net, batches)
    recalibrate_bn(static_first, batches)
    after = net.blocks[1].conv.depth_conv.bn.bn.running_mean
    mid = net.blocks[1].conv.active_mid
    assert not torch.equal(after[:mid], before[:mid]) and torch.equal(after[mid:], before[mid:])
    static_after = net.get_active_subnet().eval()
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(static_after(x), static_first.eval()(x), atol=1e-5, rtol=1e-5)


def test_ofa_mode_averages_per_batch_statistics():
    conv = nn.Sequential(nn.BatchNorm2d(3))
    b1, b2 = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5) + 2
    recalibrate_bn(conv, [b1, b2], mode="ofa")
    mean = (b1.mean((0, 2, 3)) + b2.mean((0, 2, 3))) / 2
    var = (b1.var((0, 2, 3), unbiased=False) + b2.var((0, 2, 3), unbiased=False)) / 2
    torch.testing.assert_close(conv[0].running_mean, mean, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(conv[0].running_var, var, atol=1e-6, rtol=1e-5)


def test_switchable_heads_extract_one_head_with_equal_logits():
    space = get_space("cifar-tiny")
    head_map = HeadMap.from_space(space, 4, 10, samples=400)
    assert head_map.n_heads == 4 and list(head_map.boundaries) == sorted(head_map.boundaries)
    net = OFAMobileNetV3(space, 10, head_map).eval()
    for head in net.classifier.heads:  # make heads differ
        nn.init.normal_(head.linear.weight)
    used = set()
    rng = random.Random(0)
    for _ in range(30):
        subnet = sample(space, rng)
        net.set_subnet(subnet)
        used.add(net.classifier.active)
        static = net.get_active_subnet().eval()
        assert sum(isinstance(m, nn.Linear) for m in static.modules()) == 1
        x = torch.randn(2, 3, subnet.r, subnet.r)
        torch.testing.assert_close(static(x), net(x), atol=1e-5, rtol=0)
    assert len(used) >= 3
    assert HeadMap.from_dict(head_map.to_dict()) == head_map


def test_elastic_kernel_uses_transform_matrices():
    space = get_space("cifar-tiny")
    net = OFAMobileNetV3(space, 10).eval()
    subnet = min_subnet(space, 24)
    net.set_subnet(subnet)
    x = torch.randn(1, 3, 24, 24)
    y0 = net(x)
    with torch.no_grad():
        net.blocks[1].conv.depth_conv.conv.transform_matrix(5, 3).mul_(0.5)
    assert (net(x) - y0).abs().max() > 1e-3 * y0.abs().max()
    static = net.get_active_subnet().eval()
    torch.testing.assert_close(static(x), net(x), atol=0, rtol=1e-5)
