"""ONNX export of a static model (TorchScript-based exporter: fast and dependable for these nets).

API: ``export_onnx(model, path, input_shape, metadata=None, opset=17, dynamic_batch=True,
input_name="input", output_name="output") -> Path`` (checked with onnx.checker, written atomically);
``OnnxRunner(path, num_threads=None)(x) -> np.ndarray``; ``run_onnx(path, x)``; ``read_metadata(path)``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

DEFAULT_OPSET = 17


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...],
                metadata: Mapping[str, str] | None = None, opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = True, input_name: str = "input", output_name: str = "output") -> Path:
    """Export ``model`` (eval mode, CPU) for an input of ``input_shape`` (batch first) to ``path``."""
    import onnx

    from ofa_edge.io import atomic_write_bytes

    if opset < 17:
        raise ValueError(f"opset={opset}: ofa-edge exports need opset 17 or newer")
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


class OnnxRunner:
    """Run an ONNX classifier with onnxruntime (CPU) on float32 NCHW batches of any size."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self._in = self.session.get_inputs()[0]
        self._out = self.session.get_outputs()[0]

    @property
    def input_name(self) -> str:
        return self._in.name

    @property
    def output_name(self) -> str:
        return self._out.name

    @property
    def input_shape(self) -> tuple:
        return tuple(self._in.shape)

    def __call__(self, x, batch_size: int = 256) -> np.ndarray:
        """Outputs (float32) for float32 inputs ``x`` of shape (N, C, H, W)."""
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        x = x.astype(np.float32, copy=False)
        fixed = self._in.shape[0] if isinstance(self._in.shape[0], int) else None
        step = fixed or batch_size
        outs = []
        for i in range(0, len(x), step):
            chunk = x[i:i + step]
            n = len(chunk)
            if fixed and n < fixed:
                chunk = np.concatenate([chunk, np.zeros((fixed - n,) + chunk.shape[1:], np.float32)])
            outs.append(self.session.run([self._out.name], {self._in.name: chunk})[0][:n])
        return np.concatenate(outs).astype(np.float32, copy=False)


def run_onnx(path: str | os.PathLike, x, num_threads: int | None = None) -> np.ndarray:
    """Run the ONNX model at ``path`` on float32 NCHW inputs ``x``; returns float32 outputs."""
    return OnnxRunner(path, num_threads)(x)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
