"""The OFA MobileNetV3 supernet: elastic kernel, expand and depth over one set of shared weights."""

from __future__ import annotations

import copy
import random
from typing import Sequence

import torch
from torch import nn

from ofa_edge.space import (SearchSpace, Subnet, get_space, layers, max_subnet, min_subnet, sample,
                            subnet_from_dict)
from ofa_edge.space.arch import block_io, mid_channels, se_channels
from ofa_edge.supernet.elastic import (ElasticBatchNorm2d, ElasticDepthwiseConv, ElasticPointConv,
                                       ElasticSqueezeExcite)
from ofa_edge.supernet.heads import HeadMap, SwitchableHead
from ofa_edge.supernet.ops import global_pool, he_fout_init, make_act
from ofa_edge.supernet.static import ConvBnAct, MBConv, ResidualBlock, StaticMobileNetV3


class ElasticMBConv(nn.Module):
    """Inverted residual block with elastic kernel size and expand ratio."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, act: str, use_se: bool,
                 ks_list: Sequence[int], expand_list: Sequence[int]):
        super().__init__()
        self.in_ch, self.out_ch, self.stride, self.act, self.use_se = in_ch, out_ch, stride, act, use_se
        mid_max = mid_channels(in_ch, max(expand_list))
        self.inverted_bottleneck = nn.Sequential()
        self.inverted_bottleneck.add_module("conv", ElasticPointConv(in_ch, mid_max))
        self.inverted_bottleneck.add_module("bn", ElasticBatchNorm2d(mid_max))
        self.inverted_bottleneck.add_module("act", make_act(act))
        self.depth_conv = nn.Sequential()
        self.depth_conv.add_module("conv", ElasticDepthwiseConv(mid_max, tuple(ks_list), stride))
        self.depth_conv.add_module("bn", ElasticBatchNorm2d(mid_max))
        self.depth_conv.add_module("act", make_act(act))
        if use_se:
            self.depth_conv.add_module("se", ElasticSqueezeExcite(mid_max))
        self.point_linear = nn.Sequential()
        self.point_linear.add_module("conv", ElasticPointConv(mid_max, out_ch))
        self.point_linear.add_module("bn", ElasticBatchNorm2d(out_ch))
        self.active_kernel = max(ks_list)
        self.active_expand = max(expand_list)

    @property
    def active_mid(self) -> int:
        return mid_channels(self.in_ch, self.active_expand)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inverted_bottleneck.conv.active_out = self.active_mid
        self.depth_conv.conv.active_kernel = self.active_kernel
        return self.point_linear(self.depth_conv(self.inverted_bottleneck(x)))

    def extract(self) -> MBConv:
        """A static copy of the active block (transformed kernels, sliced channels)."""
        mid, k = self.active_mid, self.active_kernel
        se = se_channels(mid) if self.use_se else 0
        static = MBConv(self.in_ch, self.out_ch, k, self.stride, mid, self.act, se)
        with torch.no_grad():
            ib, dw, pl = self.inverted_bottleneck, self.depth_conv, self.point_linear
            static.inverted_bottleneck.conv.weight.copy_(ib.conv.active_weight(self.in_ch, mid))
            _copy_bn(static.inverted_bottleneck.bn, ib.bn.bn, mid)
            static.depth_conv.conv.weight.copy_(dw.conv.active_filter(mid, k))
            _copy_bn(static.depth_conv.bn, dw.bn.bn, mid)
            if se:
                src, dst = dw.se.fc, static.depth_conv.se.fc
                dst.reduce.weight.copy_(src.reduce.weight[:se, :mid])
                dst.reduce.bias.copy_(src.reduce.bias[:se])
                dst.expand.weight.copy_(src.expand.weight[:mid, :se])
                dst.expand.bias.copy_(src.expand.bias[:mid])
            static.point_linear.conv.weight.copy_(pl.conv.active_weight(mid, self.out_ch))
            _copy_bn(static.point_linear.bn, pl.bn.bn, self.out_ch)
        return static


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, c: int) -> None:
    dst.weight.copy_(src.weight[:c])
    dst.bias.copy_(src.bias[:c])
    dst.running_mean.copy_(src.running_mean[:c])
    dst.running_var.copy_(src.running_var[:c])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


class OFAMobileNetV3(nn.Module):
    """Elastic MobileNetV3 supernet, state-dict compatible with OFA's ``OFAMobileNetV3``.

    The only layout difference is the classifier: OFA's ``classifier.linear.*`` is head 0 here,
    ``classifier.heads.0.linear.*`` (``load_ofa_checkpoint`` maps it).
    """

    def __init__(self, space: SearchSpace | str = "ofa-mbv3-w1", n_classes: int = 1000,
                 head_map: HeadMap | None = None, dropout: float = 0.0):
        super().__init__()
        self.space = get_space(space) if isinstance(space, str) else space
        self.n_classes = n_classes
        self.head_map = head_map or HeadMap()
        self.dropout = dropout
        s, w = self.space, self.space.widths
        self.first_conv = ConvBnAct(3, w[0], 3, s.stem_stride, act="h_swish")
        block0 = MBConv(w[0], w[1], 3, 1, w[0], "relu", expand=False)
        blocks: list[nn.Module] = [ResidualBlock(block0, w[0] == w[1])]
        for in_ch, out_ch, stride, act, use_se in block_io(s):
            conv = ElasticMBConv(in_ch, out_ch, stride, act, use_se, s.ks_list, s.expand_list)
            blocks.append(ResidualBlock(conv, stride == 1 and in_ch == out_ch))
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = ConvBnAct(w[-3], w[-2], 1, act="h_swish")
        self.feature_mix_layer = ConvBnAct(w[-2], w[-1], 1, act="h_swish", use_bn=False)
        self.classifier = SwitchableHead(w[-1], n_classes, self.head_map.n_heads, dropout)
        self.runtime_depth = [s.max_depth] * s.n_stages
        he_fout_init(self)

    # -- subnet selection ---------------------------------------------------------------------------
    @property
    def elastic_blocks(self) -> list[ElasticMBConv]:
        return [b.conv for b in self.blocks[1:]]

    def set_active_subnet(self, ks=None, e=None, d=None, **_ignored) -> None:
        """Activate a subnet from OFA-style per-block lists (scalars broadcast, depth clipped)."""
        current = self.active_subnet()
        data = {"ks": current.ks if ks is None else ks, "e": current.e if e is None else e,
                "d": current.d if d is None else d, "r": current.r}
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
        self.set_subnet(subnet_from_dict(self.space, data))

    def set_subnet(self, subnet: Subnet) -> None:
        """Activate ``subnet`` (and the head the head map assigns to it)."""
        for i, block in enumerate(self.elastic_blocks):
            block.active_kernel = subnet.ks[i]
            block.active_expand = subnet.e[i]
        self.runtime_depth = list(subnet.d)
        self._active_r = subnet.r
        self.classifier.active = self.head_map.head_for(self.space, subnet, self.n_classes)

    def active_subnet(self) -> Subnet:
        """The currently active subnet (resolution: the last one set, else the largest)."""
        blocks = self.elastic_blocks
        return Subnet(ks=[b.active_kernel for b in blocks], e=[b.active_expand for b in blocks],
                      d=self.runtime_depth, r=getattr(self, "_active_r", max(self.space.resolutions)),
                      max_depth=self.space.max_depth)

    def set_max_net(self) -> None:
        self.set_subnet(max_subnet(self.space))

    def set_min_net(self) -> None:
        self.set_subnet(min_subnet(self.space))

    def sample_active_subnet(self, rng: random.Random | None = None) -> Subnet:
        """Sample (with Python's ``random`` unless ``rng`` is given), activate and return a subnet."""
        subnet = sample(self.space, rng or random._inst)  # type: ignore[attr-defined]
        self.set_subnet(subnet)
        return subnet

    # -- forward ------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        x = self.blocks[0](x)
        md = self.space.max_depth
        for stage, depth in enumerate(self.runtime_depth):
            for i in range(depth):
                x = self.blocks[1 + stage * md + i](x)
        x = self.final_expand_layer(x)
        return self.feature_mix_layer(global_pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))

    # -- extraction ---------------------------------------------------------------------------------
    def get_active_subnet(self) -> StaticMobileNetV3:
        """A plain static copy of the active subnet with only its own head, in the same train/eval mode."""
        subnet = self.active_subnet()
        static = StaticMobileNetV3(layers(self.space, subnet, self.n_classes), self.dropout)
        with torch.no_grad():
            static.first_conv.load_state_dict(self.first_conv.state_dict())
            static.blocks[0].load_state_dict(self.blocks[0].state_dict())
            for j, i in enumerate(subnet.active_blocks()):
                static.blocks[1 + j].conv = self.blocks[1 + i].conv.extract()
            static.final_expand_layer.load_state_dict(self.final_expand_layer.state_dict())
            static.feature_mix_layer.load_state_dict(self.feature_mix_layer.state_dict())
            head = self.classifier.heads[self.classifier.active]
            static.classifier.load_state_dict(copy.deepcopy(head.state_dict()))
        return static.train(self.training)
