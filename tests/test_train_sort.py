"""OFA channel-importance sorting (ofa-facts §4) before the elastic-expand phases."""

from __future__ import annotations

import torch

from ofa_edge.space import max_subnet
from ofa_edge.space.arch import mid_channels
from ofa_edge.supernet import OFAMobileNetV3
from ofa_edge.supernet.sort import middle_importance, sort_block_channels, sort_channels

torch.set_num_threads(1)


def _net():
    torch.manual_seed(0)
    net = OFAMobileNetV3("cifar-mbv3", 10).eval()
    with torch.no_grad():  # non-trivial BN statistics and SE biases so every permutation matters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return net


def test_sorting_keeps_the_max_net_function_and_orders_by_l1():
    net = _net()
    net.set_subnet(max_subnet(net.space))
    x = torch.randn(2, 3, 32, 32)
    before = net(x)
    sort_channels(net, 0)
    assert torch.allclose(net(x), before, atol=1e-5)
    for block in net.elastic_blocks:
        imp = block.point_linear.conv.conv.weight.abs().sum((0, 2, 3))
        assert bool((imp[:-1] >= imp[1:]).all())
        if hasattr(block.depth_conv, "se"):
            se = block.depth_conv.se.fc.expand.weight.abs().sum((0, 2, 3))
            assert bool((se[:-1] >= se[1:]).all())


def test_stage_one_keeps_the_prefix_boundaries():
    net = _net()
    block = net.elastic_blocks[5]
    widths = [mid_channels(block.in_ch, e) for e in (6, 4, 3)]
    w = block.point_linear.conv.conv.weight.detach().clone()
    imp = w.abs().sum((0, 2, 3))
    # reference offsets for stage 1 with ratios (3, 4, 6): channels [4*in, 6*in) get -2e5
    expected = imp.clone()
    expected[widths[1]:widths[0]] += -2e5
    assert torch.equal(middle_importance(block, 1, (3, 4, 6)), expected)
    idx = sort_block_channels(block, 1, (3, 4, 6))
    assert set(idx[:widths[1]].tolist()) == set(range(widths[1]))
    assert set(idx[widths[1]:].tolist()) == set(range(widths[1], widths[0]))
    assert torch.equal(block.point_linear.conv.conv.weight, w[:, idx])
