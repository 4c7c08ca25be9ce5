"""ONNX export of a static model (TorchScript-based exporter: fast and dependable for these nets)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Mapping

import torch

DEFAULT_OPSET = 17


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...],
                metadata: Mapping[str, str] | None = None, opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = True, input_name: str = "input", output_name: str = "output") -> Path:
    """Export ``model`` (eval mode, CPU) for an input of ``input_shape`` (batch first) to ``path``."""
    import onnx

    from ofa_edge.io import atomic_write_bytes

    path = Path(path)
    model = model.eval()
    example = torch.zeros(input_shape)
    axes = {input_name: {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    tmp = path.with_name(f".{path.name}.export")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, input_names=[input_name],
                              output_names=[output_name], dynamic_axes=axes, opset_version=opset,
                              do_constant_folding=True)
        proto = onnx.load(str(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    onnx.checker.check_model(proto)
    atomic_write_bytes(path, proto.SerializeToString())
    return path
