"""Training precision: fp32, or bf16/fp16 autocast (fp16 with a gradient scaler, CUDA only)."""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch

from ofa_edge.errors import OfaEdgeError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision for ``device``: ``auto`` is the fastest measured there, fp32 on both.

    On a CPU bf16 autocast is slower (bench/train_speed.py). On the one GPU measured (an H200, CIFAR-size
    supernet, 2026-11-28) a bf16 channels_last step was slower than an fp32 NCHW one (sandwich 2424 vs 150
    ms, one random subnet 55 vs 45 ms); bf16 and fp16 (with a gradient scaler) stay selectable on a GPU.
    """
    if precision not in PRECISIONS:
        raise OfaEdgeError(f"precision: {precision!r} is not one of {list(PRECISIONS)}")
    if precision == "auto":
        return "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise OfaEdgeError("precision: fp16 training needs a CUDA GPU; on a CPU use fp32 (fastest) or bf16")
    return precision


def autocast(precision: str, device: torch.device) -> Callable[[], ContextManager]:
    """A factory of the context the forward passes run under (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = _DTYPES[precision]
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> "torch.amp.GradScaler | None":
    """A gradient scaler for fp16 (its state is saved with the run for an exact resume), else None."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)
