"""Elastic layers: weight-sharing convs, BN and SE that run at a chosen width or kernel size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ofa_edge.space.arch import se_channels
from ofa_edge.supernet.ops import global_pool, se_fc
from ofa_edge.supernet.small_depthwise import depthwise_as_matrix, use_matrix_form
from ofa_edge.supernet.static import BN_EPS, BN_MOMENTUM


class ElasticPointConv(nn.Module):
    """1x1 conv whose active input width follows the input and output width is ``active_out``."""

    def __init__(self, max_in: int, max_out: int):
        super().__init__()
        self.conv = nn.Conv2d(max_in, max_out, 1, bias=False)
        self.active_out = max_out

    def active_weight(self, in_ch: int, out_ch: int) -> torch.Tensor:
        return self.conv.weight[:out_ch, :in_ch]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.active_weight(x.size(1), self.active_out))


class ElasticDepthwiseConv(nn.Module):
    """Depthwise conv with elastic kernel: centre crops chained through learned transform matrices."""

    def __init__(self, max_ch: int, ks_list: tuple[int, ...], stride: int = 1):
        super().__init__()
        self.ks_list = tuple(sorted(ks_list))
        self.max_kernel = self.ks_list[-1]
        self.stride = stride
        self.conv = nn.Conv2d(max_ch, max_ch, self.max_kernel, stride, groups=max_ch, bias=False)
        for big, small in zip(self.ks_list[::-1], self.ks_list[::-1][1:]):
            self.register_parameter(f"{big}to{small}_matrix", nn.Parameter(torch.eye(small * small)))
        self.active_kernel = self.max_kernel

    def transform_matrix(self, big: int, small: int) -> torch.Tensor:
        return getattr(self, f"{big}to{small}_matrix")

    def active_filter(self, channels: int, kernel: int) -> torch.Tensor:
        """The ``kernel`` x ``kernel`` filters of the first ``channels`` channels."""
        filters = self.conv.weight[:channels]
        if kernel == self.max_kernel:
            return filters
        for big, small in zip(self.ks_list[::-1], self.ks_list[::-1][1:]):
            if big <= kernel:
                break
            start = big // 2 - small // 2
            crop = filters[:, :, start:start + small, start:start + small].contiguous()
            crop = F.linear(crop.view(-1, small * small), self.transform_matrix(big, small))
            filters = crop.view(channels, 1, small, small)
        return filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels, k = x.size(1), self.active_kernel
        filters = self.active_filter(channels, k)
        # training on tiny maps: 5-9x faster there (small_depthwise); in eval the plain conv, so the supernet
        # gives bit for bit what its extracted subnets give
        if self.training and use_matrix_form(x):
            return depthwise_as_matrix(x, filters, self.stride, k // 2)
        return F.conv2d(x, filters, None, self.stride, k // 2, 1, channels)


class ElasticBatchNorm2d(nn.Module):
    """BatchNorm over the first C channels of its statistics and affine parameters."""

    def __init__(self, max_ch: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(max_ch, momentum=BN_MOMENTUM, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn, c = self.bn, x.size(1)
        if c == bn.num_features:
            return bn(x)
        factor = 0.0
        if self.training and bn.track_running_stats:
            bn.num_batches_tracked += 1
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                            self.training or not bn.track_running_stats, factor, bn.eps)


class ElasticSqueezeExcite(nn.Module):
    """Squeeze-excite whose width follows the input and hidden width is ``md(C // 4)``."""

    def __init__(self, max_ch: int):
        super().__init__()
        self.fc = se_fc(max_ch, se_channels(max_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.size(1)
        h = se_channels(c)
        y = global_pool(x)
        y = F.conv2d(y, self.fc.reduce.weight[:h, :c], self.fc.reduce.bias[:h])
        y = self.fc.relu(y)
        y = F.conv2d(y, self.fc.expand.weight[:c, :h], self.fc.expand.bias[:c])
        return x * self.fc.h_sigmoid(y)
