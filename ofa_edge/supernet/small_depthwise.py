"""Depthwise convolution on tiny feature maps as one batched matrix product per channel.

On CPU, PyTorch's depthwise convolution backward is pathologically slow when the map is tiny and the
kernel large: a 7x7 depthwise conv over a 64 x 480 x 2 x 2 batch took 32-54 ms forward + backward
(1 thread, either memory format), most of a CIFAR supernet step (bench/train_speed.py). On an H x W map
every output pixel is a weighted sum of the H*W input pixels of its channel, so the conv is a
``(Ho*Wo) x (H*W)`` matrix per channel whose entries are kernel taps (or zero where the tap falls into
the padding). Built by one gather from the taps and applied with ``bmm``, the same sums run 5-9x faster
for maps of at most 16 pixels; larger maps are left to the convolution (the matrix grows as pixels^2).
"""

from __future__ import annotations

import torch

#: Largest input map (H * W pixels) run as a matrix product; above it the convolution is faster.
MAX_PIXELS = 16

_TAPS: dict[tuple, tuple[torch.Tensor, int, int]] = {}


def _tap_index(h: int, w: int, k: int, stride: int, pad: int, device: torch.device) -> tuple[torch.Tensor, int, int]:
    """For each (output pixel, input pixel) the index of the kernel tap joining them, ``k*k`` for none."""
    key = (h, w, k, stride, pad, str(device))
    hit = _TAPS.get(key)
    if hit is None:
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        oy, ox = torch.meshgrid(torch.arange(ho), torch.arange(wo), indexing="ij")
        iy, ix = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        dy = iy.reshape(1, -1) - (oy.reshape(-1, 1) * stride - pad)
        dx = ix.reshape(1, -1) - (ox.reshape(-1, 1) * stride - pad)
        inside = (dy >= 0) & (dy < k) & (dx >= 0) & (dx < k)
        hit = _TAPS[key] = (torch.where(inside, dy * k + dx, k * k).to(device), ho, wo)
    return hit


class _ContiguousBmm(torch.autograd.Function):
    """``torch.bmm`` whose backward also multiplies contiguous operands.

    On CPU, bmm with a transposed (strided) operand, as autograd's own backward passes, copies every
    matrix of the batch separately: tens of thousands of small copies per training step.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return torch.bmm(a, b)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, b = ctx.saved_tensors
        grad = grad.contiguous()  # under autocast: the forward's (lower) precision; autograd casts the results back
        grad_a = torch.bmm(grad, b.transpose(1, 2).to(grad.dtype).contiguous()) if ctx.needs_input_grad[0] else None
        grad_b = torch.bmm(a.transpose(1, 2).to(grad.dtype).contiguous(), grad) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def use_matrix_form(x: torch.Tensor) -> bool:
    """Whether a depthwise conv over ``x`` should run as :func:`depthwise_as_matrix`."""
    return (x.size(2) * x.size(3) <= MAX_PIXELS and x.device.type == "cpu"
            and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export())


def depthwise_as_matrix(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """``F.conv2d(x, weight, None, stride, padding, 1, C)`` for square kernels, as per-channel matrices.

    Args:
        x: Input ``(B, C, H, W)``, any memory format.
        weight: Depthwise filters ``(C, 1, k, k)``.
        stride, padding: As for the convolution (zero padding).

    Returns:
        ``(B, C, Ho, Wo)`` in the memory format of ``x``, equal to the convolution up to float rounding.
    """
    b, c, h, w = x.shape
    k = weight.size(-1)
    index, ho, wo = _tap_index(h, w, k, stride, padding, x.device)
    taps = torch.cat([weight.reshape(c, k * k), weight.new_zeros(c, 1)], 1)
    matrix = taps[:, index.t()]  # (C, H*W, Ho*Wo)
    y = _ContiguousBmm.apply(x.reshape(b, c, h * w).transpose(0, 1).contiguous(), matrix)  # (C, B, Ho*Wo)
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return y.transpose(0, 1).reshape(b, c, ho, wo).contiguous(memory_format=fmt)
