"""Memory layout of weights and batches for training and evaluation, per device.

On a CPU, channels_last end to end makes a supernet training step 1.6-2.4x as fast as NCHW
(bench/train_speed.py). On the one GPU measured so far (an H200, CIFAR-size supernet, 2026-11-28),
channels_last with bf16 autocast made a sandwich step 16x slower than NCHW fp32 (2424 vs 150 ms), so a
GPU keeps PyTorch's default NCHW layout until a measurement there says otherwise (``--device cuda`` in
bench/train_speed.py times both).
"""

from __future__ import annotations

import torch


def memory_format(device: torch.device | str) -> torch.memory_format:
    """The layout ofa-edge trains and evaluates in on ``device``: channels_last on a CPU, NCHW elsewhere."""
    return torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format


def to_device(t: torch.Tensor, device: torch.device | str, non_blocking: bool = False) -> torch.Tensor:
    """``t`` on ``device``; images (4-d) in that device's layout."""
    if t.dim() == 4:
        return t.to(device, memory_format=memory_format(device), non_blocking=non_blocking)
    return t.to(device, non_blocking=non_blocking)
