"""The TFLite formulation of a static model: the same function, written so that XNNPACK runs it fast.

XNNPACK (the CPU delegate of TFLite/LiteRT) has single-pass depthwise kernels for up to 25 taps (5x5).
Larger depthwise kernels take a multi-pass path that is 20-200x slower on x86 (a 7x7 depthwise layer on
56x56x96 takes 50 ms in fp32 and 180 ms in INT8, a 5x5 one 0.8 ms; bench/export.py). ``for_tflite``
rewrites every depthwise convolution with more than 25 taps as a sum of row bands of at most 25 taps
each, with its batch norm folded in and the taps that only ever read padding dropped. The result computes
the same function (up to float summation order); only the exported graph changes.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

MAX_DEPTHWISE_TAPS = 25


def _used_taps(size: int, kernel: int, stride: int, pad: int) -> tuple[int, int, int]:
    """First and last kernel tap that ever reads a real (non-padding) input, and the output size."""
    out = (size + 2 * pad - kernel) // stride + 1
    return max(0, pad - (out - 1) * stride), min(kernel - 1, size - 1 + pad), out


def _band_heights(rows: int, width: int) -> list[int]:
    """Split ``rows`` kernel rows into the fewest near-equal bands of at most 25 taps each."""
    per_band = max(1, MAX_DEPTHWISE_TAPS // width)
    n = -(-rows // per_band)
    return [rows // n + (1 if i < rows % n else 0) for i in range(n)]


class BandedDepthwiseConv2d(nn.Module):
    """A depthwise convolution computed as a sum of row bands of <= 25 taps (XNNPACK's fast kernels)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                 padding: tuple[int, int]):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.stride, self.padding = tuple(stride), tuple(padding)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None) -> "BandedDepthwiseConv2d":
        """The banded form of ``conv`` (followed by eval-mode ``bn``, folded in when given)."""
        weight, bias = conv.weight.detach(), None if conv.bias is None else conv.bias.detach()
        if bn is not None:
            scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
            shift = (bn.bias - bn.running_mean * scale).detach()
            weight = weight * scale[:, None, None, None]
            bias = shift if bias is None else bias * scale + shift
        return cls(weight, bias, conv.stride, conv.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (sh, sw), (ph, pw) = self.stride, self.padding
        kh, kw = self.weight.shape[2:]
        r0, r1, out_h = _used_taps(x.shape[2], kh, sh, ph)
        c0, c1, out_w = _used_taps(x.shape[3], kw, sw, pw)
        weight = self.weight[:, :, r0:r1 + 1, c0:c1 + 1]
        width = c1 - c0 + 1
        xp = F.pad(x, (pw, pw, ph, ph))
        cols = slice(c0, c0 + (out_w - 1) * sw + width)
        out, top = None, 0
        for i, height in enumerate(_band_heights(r1 - r0 + 1, width)):
            rows = slice(r0 + top, r0 + top + (out_h - 1) * sh + height)
            y = F.conv2d(xp[:, :, rows, cols], weight[:, :, top:top + height], self.bias if i == 0 else None,
                         (sh, sw), groups=x.shape[1])
            out = y if out is None else out + y
            top += height
        return out


def _is_large_depthwise(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv2d) and m.groups == m.in_channels == m.out_channels
            and m.kernel_size[0] * m.kernel_size[1] > MAX_DEPTHWISE_TAPS and m.dilation == (1, 1)
            and m.padding_mode == "zeros" and isinstance(m.padding, tuple))


def for_tflite(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every > 25-tap depthwise conv (and its BN) in banded form."""
    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for i, (name, child) in enumerate(children):
            if not _is_large_depthwise(child):
                continue
            nxt = children[i + 1] if i + 1 < len(children) else None
            bn = nxt[1] if isinstance(parent, nn.Sequential) and nxt and isinstance(nxt[1], nn.BatchNorm2d) else None
            setattr(parent, name, BandedDepthwiseConv2d.from_conv(child, bn))
            if bn is not None:
                setattr(parent, nxt[0], nn.Identity())
    return model
