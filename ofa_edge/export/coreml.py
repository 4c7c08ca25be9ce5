"""CoreML export (mlprogram via coremltools): float16, or 8-bit per-channel weights; spec inspection.

API:
``export_coreml(model, path, input_shape, precision="fp16" | "int8-weights", input_name="input",
output_name="output", metadata=None) -> Path``: writes an ``.mlpackage`` folder (replaced whole:
written beside it, then renamed). Inputs and outputs are float32 tensors of fixed shape.
``inspect_coreml(path) -> CoreMLInfo``: loads the saved package without running it (works on Linux):
input/output names, shapes, dtypes, op count and op types, metadata.
``predict_coreml(path, x) -> np.ndarray``: macOS only (raises ``OfaEdgeError`` elsewhere).
"""

from __future__ import annotations

import os
import platform
import shutil
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from ofa_edge.errors import FileFormatError, OfaEdgeError
from ofa_edge.export.backends import require

PRECISIONS = ("fp16", "int8-weights")
MIN_TARGET = "iOS16"


@dataclass(frozen=True)
class CoreMLInfo:
    """What a saved CoreML package declares: I/O, operations, metadata."""

    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    input_dtypes: dict[str, str]
    output_dtypes: dict[str, str]
    op_count: int
    op_types: dict[str, int] = field(default_factory=dict)
    spec_version: int = 0
    metadata: dict[str, str] = field(default_factory=dict)


def _quiet_import():
    import logging

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (ct,) = require("coreml")
    return ct


def export_coreml(model: torch.nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...],
                  precision: str = "fp16", input_name: str = "input", output_name: str = "output",
                  metadata: Mapping[str, str] | None = None) -> Path:
    """Convert a static torch model to a CoreML mlprogram package at ``path`` (a folder)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; use one of {', '.join(PRECISIONS)}")
    ct = _quiet_import()
    path = Path(path)
    example = torch.zeros(tuple(int(s) for s in input_shape))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model.eval(), example)
        mlmodel = ct.convert(traced, inputs=[ct.TensorType(name=input_name, shape=example.shape, dtype=np.float32)],
                             outputs=[ct.TensorType(name=output_name, dtype=np.float32)],
                             convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
                             minimum_deployment_target=getattr(ct.target, MIN_TARGET))
        if precision == "int8-weights":
            from coremltools.optimize.coreml import (OpLinearQuantizerConfig, OptimizationConfig,
                                                     linear_quantize_weights)

            config = OptimizationConfig(global_config=OpLinearQuantizerConfig(
                mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0))
            mlmodel = linear_quantize_weights(mlmodel, config)
    for key, value in (metadata or {}).items():
        mlmodel.user_defined_metadata[str(key)] = str(value)
    mlmodel.short_description = f"ofa-edge subnet ({precision})"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
    try:
        mlmodel.save(str(tmp))
        if path.exists():
            path.rename(old)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


def _array_type(feature) -> tuple[tuple[int, ...], str]:
    arr = feature.type.multiArrayType
    from coremltools.proto import FeatureTypes_pb2

    dtype = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(arr.dataType)
    return tuple(int(s) for s in arr.shape), dtype.lower()


def inspect_coreml(path: str | os.PathLike) -> CoreMLInfo:
    """Load a saved .mlpackage / .mlmodel (without compiling it) and describe its I/O and operations."""
    ct = _quiet_import()
    path = Path(path)
    if not path.exists():
        raise FileFormatError(path, "no such CoreML package")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except Exception as exc:  # coremltools raises several kinds for a broken package
        raise FileFormatError(path, f"not a readable CoreML package ({exc})") from None
    inputs, outputs, in_dt, out_dt = {}, {}, {}, {}
    for feat in spec.description.input:
        inputs[feat.name], in_dt[feat.name] = _array_type(feat)
    for feat in spec.description.output:
        outputs[feat.name], out_dt[feat.name] = _array_type(feat)
    ops: Counter[str] = Counter()
    if spec.WhichOneof("Type") == "mlProgram":
        for function in spec.mlProgram.functions.values():
            block = function.block_specializations[function.opset]
            ops.update(op.type for op in block.operations)
    else:
        ops.update(layer.WhichOneof("layer") for layer in spec.neuralNetwork.layers)
    return CoreMLInfo(inputs, outputs, in_dt, out_dt, sum(ops.values()), dict(sorted(ops.items())),
                      spec.specificationVersion, dict(spec.description.metadata.userDefined))


def predict_coreml(path: str | os.PathLike, x) -> np.ndarray:
    """Run a CoreML package on float32 NCHW inputs (macOS only), one fixed-shape batch at a time."""
    if platform.system() != "Darwin":
        raise OfaEdgeError("CoreML models run only on macOS; on this system ofa-edge checks the saved "
                           "package's inputs, outputs and operations instead")
    ct = _quiet_import()
    model = ct.models.MLModel(str(path))
    info = inspect_coreml(path)
    (name, shape), = info.inputs.items()
    (out_name,) = info.outputs
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)
    b = shape[0]
    outs = []
    for i in range(0, len(x), b):
        chunk = x[i:i + b]
        n = len(chunk)
        if n < b:
            chunk = np.concatenate([chunk, np.zeros((b - n,) + chunk.shape[1:], np.float32)])
        outs.append(np.asarray(model.predict({name: chunk})[out_name], np.float32)[:n])
    return np.concatenate(outs)
