"""OFA channel-importance sorting of the middle channels before an elastic-expand phase (ofa-facts §4)."""

from __future__ import annotations

import torch
from torch import nn

from ofa_edge.space.arch import mid_channels


def _take(t: torch.Tensor, dim: int, idx: torch.Tensor) -> None:
    t.copy_(torch.index_select(t, dim, idx))


def _take_bn(bn: nn.BatchNorm2d, idx: torch.Tensor) -> None:
    for t in (bn.weight.data, bn.bias.data, bn.running_mean, bn.running_var):
        _take(t, 0, idx)


def middle_importance(block, expand_stage: int, expand_list) -> torch.Tensor:
    """L1 importance of each middle channel, with OFA's prefix offsets for ``expand_stage`` > 0."""
    importance = block.point_linear.conv.conv.weight.detach().abs().sum(dim=(0, 2, 3))
    if expand_stage > 0:
        widths = [mid_channels(block.in_ch, e) for e in sorted(expand_list, reverse=True)]
        n = len(widths)
        offsets = torch.zeros_like(importance)
        for i in range(min(expand_stage, n - 1) + 1):
            upper = importance.numel() if i == 0 else widths[i - 1]
            offsets[widths[i]:upper] += -(n - i) * 1e5
        importance = importance + offsets
    return importance


@torch.no_grad()
def sort_block_channels(block, expand_stage: int, expand_list) -> torch.Tensor:
    """Permute one ElasticMBConv's middle channels (and SE hidden units) by importance; returns the order."""
    idx = torch.sort(middle_importance(block, expand_stage, expand_list), dim=0, descending=True)[1]
    ib, dw, pl = block.inverted_bottleneck, block.depth_conv, block.point_linear
    _take(pl.conv.conv.weight.data, 1, idx)
    _take_bn(dw.bn.bn, idx)
    _take(dw.conv.conv.weight.data, 0, idx)
    if hasattr(dw, "se"):
        fc = dw.se.fc
        _take(fc.expand.weight.data, 0, idx)
        _take(fc.expand.bias.data, 0, idx)
        _take(fc.reduce.weight.data, 1, idx)
        se_importance = fc.expand.weight.detach().abs().sum(dim=(0, 2, 3))
        se_idx = torch.sort(se_importance, dim=0, descending=True)[1]
        _take(fc.expand.weight.data, 1, se_idx)
        _take(fc.reduce.weight.data, 0, se_idx)
        _take(fc.reduce.bias.data, 0, se_idx)
    _take_bn(ib.bn.bn, idx)
    _take(ib.conv.conv.weight.data, 0, idx)
    return idx


def sort_channels(net, expand_stage: int) -> None:
    """Sort every elastic block of ``net`` (an OFAMobileNetV3) as OFA does when expand phase
    ``expand_stage`` (0 = first) starts; the function the network computes is unchanged at max width."""
    for block in net.elastic_blocks:
        sort_block_channels(block, expand_stage, net.space.expand_list)
