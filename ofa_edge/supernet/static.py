"""Plain (non-elastic) MobileNetV3 modules: what an extracted subnet is made of."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ofa_edge.space.arch import LayerSpec
from ofa_edge.supernet.ops import SqueezeExcite, global_pool, make_act

BN_MOMENTUM = 0.1
BN_EPS = 1e-5


def bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM, eps=BN_EPS)


class ConvBnAct(nn.Sequential):
    """Conv (no bias), optional BN, optional activation: ``.conv``, ``.bn``, ``.act``."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: str | None = None, use_bn: bool = True):
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups,
                                          bias=False))
        if use_bn:
            self.add_module("bn", bn(out_ch))
        if act:
            self.add_module("act", make_act(act))


class MBConv(nn.Module):
    """Inverted residual branch: [1x1 expand], depthwise kxk (+SE), 1x1 project."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, mid: int, act: str,
                 se: int = 0, expand: bool = True):
        super().__init__()
        if expand:
            self.inverted_bottleneck = ConvBnAct(in_ch, mid, 1, act=act)
        else:
            self.inverted_bottleneck = None
        self.depth_conv = ConvBnAct(mid, mid, kernel, stride, groups=mid, act=act)
        if se:
            self.depth_conv.add_module("se", SqueezeExcite(mid, se))
        self.point_linear = ConvBnAct(mid, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        return self.point_linear(self.depth_conv(x))


class ResidualBlock(nn.Module):
    """``conv(x)`` plus ``x`` when the block has an identity shortcut."""

    def __init__(self, conv: nn.Module, shortcut: bool):
        super().__init__()
        self.conv = conv
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x if self.shortcut else self.conv(x)


class GlobalPool(nn.Module):
    """Global average pooling (two-step mean) as a module, for per-layer models."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return global_pool(x)


class ClassifierHead(nn.Module):
    """Flatten, dropout, linear: ``.linear``."""

    def __init__(self, in_features: int, n_classes: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(torch.flatten(x, 1)))


def build_layer(spec: LayerSpec, dropout: float = 0.0) -> nn.Module:
    """A freshly initialised module for one layer of a static subnet."""
    if spec.kind == "stem":
        return ConvBnAct(spec.in_ch, spec.out_ch, spec.kernel, spec.stride, act=spec.act)
    if spec.kind == "mbconv":
        conv = MBConv(spec.in_ch, spec.out_ch, spec.kernel, spec.stride, spec.mid, spec.act, spec.se,
                      spec.expand)
        return ResidualBlock(conv, spec.idskip)
    if spec.kind == "final_expand":
        return ConvBnAct(spec.in_ch, spec.out_ch, 1, act="h_swish")
    if spec.kind == "pool":
        return GlobalPool()
    if spec.kind == "feature_mix":
        return ConvBnAct(spec.in_ch, spec.out_ch, 1, act="h_swish", use_bn=False)
    if spec.kind == "classifier":
        return ClassifierHead(spec.in_ch, spec.out_ch, dropout)
    raise ValueError(f"unknown layer kind {spec.kind!r}")


class StaticMobileNetV3(nn.Module):
    """A plain MobileNetV3 built from a subnet's layer list; Conv2d/BatchNorm2d/Linear/activations."""

    def __init__(self, specs: Sequence[LayerSpec], dropout: float = 0.0):
        super().__init__()
        kinds = [s.kind for s in specs]
        if kinds[0] != "stem" or kinds[-4:] != ["final_expand", "pool", "feature_mix", "classifier"]:
            raise ValueError(f"not a MobileNetV3 layer list: {kinds}")
        self.specs = list(specs)
        self.first_conv = build_layer(specs[0])
        self.blocks = nn.ModuleList(build_layer(s) for s in specs[1:-4])
        self.final_expand_layer = build_layer(specs[-4])
        self.feature_mix_layer = build_layer(specs[-2])
        self.classifier = build_layer(specs[-1], dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        x = self.final_expand_layer(x)
        x = global_pool(x)
        x = self.feature_mix_layer(x)
        return self.classifier(x)
