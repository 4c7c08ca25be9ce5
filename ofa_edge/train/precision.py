"""Training precision: fp32, or bf16/fp16 autocast (fp16 with a gradient scaler, CUDA only)."""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch

from ofa_edge.errors import OfaEdgeError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision for ``device``: ``auto`` is fp32 on a CPU (bf16 autocast is slower there,
    bench/train_speed.py) and bf16 on a GPU that supports it, else fp16 with a gradient scaler."""
    if precision not in PRECISIONS:
        raise OfaEdgeError(f"precision: {precision!r} is not one of {list(PRECISIONS)}")
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
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
