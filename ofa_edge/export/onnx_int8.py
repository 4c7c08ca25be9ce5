"""ONNX INT8: onnxruntime static quantisation (QDQ, per-channel weights) calibrated on training images.

API: ``quantize_onnx(fp32_path, out_path, calibration, per_channel=True, activation="uint8",
batch_size=16, reduce_range=True, float_modules=FLOAT_MODULES) -> Path``. ``calibration``: float32
images ``(N, 3, r, r)`` (array, tensor or an iterable of batches) preprocessed like the model input. The output keeps the fp32 model's input and
output names, dynamic batch and metadata. Written atomically.

Weights are quantised to 7 bits (``reduce_range``) by default: on x86 CPUs without VNNI (AVX2 only)
onnxruntime's U8S8 kernels add pairs of uint8 x int8 products in saturating int16, and with full 8-bit
weights the fused INT8 graph drifts far from the QDQ model it was calibrated as (a trained cifar-tiny
subnet: argmax agreement with fp32 0.57 instead of 0.93). 7-bit weights cannot saturate there; they kept
the agreement (0.93) and, in the README's INT8 study, the speed.

The stem and the first block stay in float (``float_modules``; why: :mod:`ofa_edge.export.int8_policy`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ofa_edge.export.int8_policy import FLOAT_MODULES, onnx_float_nodes
from ofa_edge.io import atomic_write_bytes

ACTIVATION_TYPES = ("uint8", "int8")


def _stack(calibration) -> np.ndarray:
    import torch

    if calibration is None:
        raise ValueError("ONNX INT8 quantisation needs calibration images (float32, shape (N, 3, r, r))")
    batches = [calibration] if isinstance(calibration, (np.ndarray, torch.Tensor)) else list(calibration)
    arrays = []
    for b in batches:
        b = b[0] if isinstance(b, (tuple, list)) else b
        arrays.append(b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b))
    if not arrays:
        raise ValueError("calibration is empty: give at least one image of shape (3, r, r)")
    images = np.concatenate(arrays).astype(np.float32, copy=False)
    if images.ndim != 4:
        raise ValueError(f"calibration images have shape {images.shape}; expected (N, 3, r, r)")
    return images


def quantize_onnx(fp32_path: str | os.PathLike, out_path: str | os.PathLike, calibration,
                  per_channel: bool = True, activation: str = "uint8", batch_size: int = 16, reduce_range: bool = True,
                  float_modules: Sequence[str] = FLOAT_MODULES) -> Path:
    """Write a static INT8 QDQ copy of the fp32 ONNX model at ``fp32_path``, calibrated on images.

    ``float_modules``: module paths whose nodes are not quantised (none: every node is).
    """
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if activation not in ACTIVATION_TYPES:
        raise ValueError(f"activation={activation!r}; use one of {', '.join(ACTIVATION_TYPES)}")
    images = _stack(calibration)
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    proto = onnx.load(str(fp32_path))
    input_name = proto.graph.input[0].name
    want = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim][1:]
    if list(images.shape[1:]) != want:
        raise ValueError(f"calibration images have shape {tuple(images.shape)}; the model {fp32_path.name} "
                         f"takes (N, {', '.join(map(str, want))})")
    metadata = {p.key: p.value for p in proto.metadata_props}

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{input_name: images[i:i + batch_size]}
                                  for i in range(0, len(images), batch_size)])

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(prefix=".ofa-int8-", dir=out_path.parent) as tmp:
        pre, quant = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        logger = logging.getLogger()
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
                pre_proto = onnx.load(str(pre))
                keep_float = onnx_float_nodes(pre_proto.graph, float_modules)  # names unnamed nodes
                onnx.save(pre_proto, str(pre))
                quantize_static(str(pre), str(quant), _Reader(), quant_format=QuantFormat.QDQ,
                                per_channel=per_channel, reduce_range=reduce_range,
                                activation_type=QuantType.QUInt8 if activation == "uint8" else QuantType.QInt8,
                                weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                                extra_options={"ActivationSymmetric": activation == "int8"},
                                nodes_to_exclude=keep_float)
        finally:
            logger.setLevel(level)
        qproto = onnx.load(str(quant))
    del qproto.metadata_props[:]
    for key, value in metadata.items():
        entry = qproto.metadata_props.add()
        entry.key, entry.value = key, value
    entry = qproto.metadata_props.add()
    entry.key, entry.value = "quantization", (f"int8 static QDQ, per_channel={per_channel}, "
                                            f"activations={activation}, reduce_range={reduce_range}, "
                                            f"float={','.join(float_modules) or 'none'} ({len(keep_float)} nodes)")
    onnx.checker.check_model(qproto)
    atomic_write_bytes(out_path, qproto.SerializeToString())
    return out_path
