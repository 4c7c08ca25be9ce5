"""Small functional pieces shared by the elastic supernet and the static subnets."""

from __future__ import annotations

import torch
from torch import nn


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling as OFA computes it: mean over width, then over height."""
    if torch.onnx.is_in_onnx_export():
        # One GlobalAveragePool node instead of two ReduceMean: onnxruntime keeps its blocked (NCHWc)
        # layout through it, which makes fp32 MobileNetV3 subnets ~1.8x faster on x86 (bench/export.py).
        return torch.nn.functional.adaptive_avg_pool2d(x, 1)
    return x.mean(3, keepdim=True).mean(2, keepdim=True)


def make_act(name: str) -> nn.Module:
    """The activation module for an OFA act name (``relu`` or ``h_swish``)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


def se_fc(channels: int, hidden: int) -> nn.Sequential:
    """The squeeze-excite gate with OFA's names: reduce (1x1, bias), relu, expand (1x1, bias), h_sigmoid."""
    fc = nn.Sequential()
    fc.add_module("reduce", nn.Conv2d(channels, hidden, 1, bias=True))
    fc.add_module("relu", nn.ReLU(inplace=True))
    fc.add_module("expand", nn.Conv2d(hidden, channels, 1, bias=True))
    fc.add_module("h_sigmoid", nn.Hardsigmoid(inplace=True))
    return fc


class SqueezeExcite(nn.Module):
    """Static squeeze-excite: pool, 1x1 reduce (bias), ReLU, 1x1 expand (bias), h_sigmoid, scale."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc = se_fc(channels, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(global_pool(x))


def he_fout_init(module: nn.Module) -> None:
    """OFA's ``he_fout`` initialisation (conv normal std sqrt(2/(k*k*out)), BN 1/0, linear uniform)."""
    import math

    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.weight.size(1))
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
