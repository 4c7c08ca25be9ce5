"""TFLite export of a static model via litert-torch, INT8 via ai-edge-quantizer, and a small runner.

API (stable; other parts call these):

``export_tflite(model, path, input_shape, quantize=None, calibration=None, float_modules=FLOAT_MODULES) -> Path``
    ``model``: a static ``torch.nn.Module`` (run in eval mode on CPU); input NCHW float32, exactly what
    the PyTorch model takes (already normalised). ``input_shape``: ``(batch, 3, r, r)``; the .tflite has
    this fixed shape (use batch 1 for devices). ``quantize``:
      - ``None``      float32;
      - ``"dynamic"`` dynamic range: int8 per-channel weights, float32 activations and I/O
                      (``calibration`` is accepted and ignored);
      - ``"int8"``    full integer: int8 per-channel weights, int8 activations, int8 input and output
                      tensors (scale/zero point in the tensor details; :class:`TFLiteRunner` applies
                      them); HARD_SWISH runs in float between a DEQUANTIZE and a QUANTIZE, because
                      XNNPACK has no int8 HARD_SWISH and would otherwise split the graph at each one.
                      The ops of ``float_modules`` (default: the stem and the first block) stay in
                      float too, run by XNNPACK in the same partition (why: ``int8_policy``).
                      ``calibration`` is required: float32 images ``(N, 3, r, r)`` (array,
                      tensor, or an iterable of such batches) preprocessed like the model's input.
    The model is converted in its TFLite formulation (:func:`ofa_edge.export.tflite_graph.for_tflite`:
    the same function, with > 5x5 depthwise kernels split into bands XNNPACK runs fast).
    Written atomically. Raises ``MissingBackendError`` (``pip install 'ofa-edge[tflite]'``) when
    litert-torch / ai-edge-litert / ai-edge-quantizer are missing, ``ValueError`` on bad arguments.

``quantize_tflite(float_path, path, quantize="int8", calibration=None, float_modules=FLOAT_MODULES) -> Path``: the same
    quantisation applied to an existing float32 .tflite (no second conversion).

``TFLiteRunner(path, num_threads=None)``: ``runner(x) -> np.ndarray`` float32 outputs for float32
    ``x`` of any batch size (split into the model's fixed batch; int8 I/O is (de)quantised).
    ``.input_shape``, ``.input_dtype``, ``.output_dtype``, ``.op_names()``.

``run_tflite(path, x, num_threads=None) -> np.ndarray``: one-shot version of the runner.

``delegate_report(path) -> DelegateReport``: how much of the graph the XNNPACK delegate takes
    (partitions, delegated ops, ops left to the interpreter by name); ``.to_dict()`` is the manifest's
    ``tflite`` entry.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ofa_edge.export.backends import require
from ofa_edge.export.int8_policy import FLOAT_MODULES, tflite_float_scope
from ofa_edge.export.tflite_graph import for_tflite
from ofa_edge.io import atomic_write_bytes

QUANTIZE_MODES = (None, "dynamic", "int8")
# Ops the full-integer recipe leaves in float: XNNPACK takes no int8 HARD_SWISH, but does take
# DEQUANTIZE -> float HARD_SWISH -> QUANTIZE, so the graph stays one delegate partition.
FLOAT_OPS_IN_INT8 = ("HARD_SWISH",)


def _as_images(calibration, input_shape: tuple[int, ...]) -> np.ndarray:
    """Stack calibration data (array, tensor or iterable of batches) into float32 ``(N, C, H, W)``."""
    if calibration is None:
        raise ValueError("quantize='int8' needs calibration images (float32, shape (N, 3, r, r))")
    if isinstance(calibration, (np.ndarray, torch.Tensor)):
        batches = [calibration]
    else:
        batches = list(calibration)
    arrays = []
    for batch in batches:
        if isinstance(batch, (tuple, list)):  # (images, labels) pairs from a loader
            batch = batch[0]
        arr = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        arrays.append(arr.astype(np.float32, copy=False))
    if not arrays:
        raise ValueError("calibration is empty: give at least one image of shape (3, r, r)")
    images = np.concatenate(arrays, axis=0)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(input_shape[1:]):
        raise ValueError(f"calibration images have shape {tuple(images.shape)}; expected (N, "
                         f"{', '.join(str(s) for s in input_shape[1:])}) to match input_shape {tuple(input_shape)}")
    return images


def _convert_float(model: torch.nn.Module, input_shape: tuple[int, ...]) -> bytes:
    (litert_torch, _, _) = require("tflite")
    litert_torch.config.show_progress = False
    example = torch.zeros(tuple(input_shape), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edge = litert_torch.convert(for_tflite(model), (example,))
    return bytes(edge.model_content())


def _int8_recipe(float_modules: Sequence[str] = FLOAT_MODULES):
    """Static int8 weights and activations; :data:`FLOAT_OPS_IN_INT8` and ``float_modules`` kept in float."""
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                              activation_num_bits=8, weight_num_bits=8,
                              algorithm_key=algorithm_manager.AlgorithmName.MIN_MAX_UNIFORM_QUANT)
    for op in FLOAT_OPS_IN_INT8:  # later rules win
        manager.add_quantization_config(regex=".*", operation_name=qtyping.TFLOperationName(op),
                                        algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    scope = tflite_float_scope(float_modules)
    if scope is not None:
        manager.add_quantization_config(regex=scope, operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                        algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    return manager


def _quantize(float_model: bytes, mode: str, images: np.ndarray | None, batch: int,
              float_modules: Sequence[str] = FLOAT_MODULES) -> bytes:
    require("tflite")
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import calibrator, quantizer, recipe
    from ai_edge_quantizer.utils import qsv_utils

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mode == "dynamic":
            q = quantizer.Quantizer(bytearray(float_model), recipe.dynamic_wi8_afp32())
            result = q.quantize(enable_progress_report=False, enable_progress_bar=False)
            return bytes(result.quantized_model)
        manager = _int8_recipe(float_modules)
        (key, sig), = Interpreter(model_content=float_model).get_signature_list().items()
        (input_key,) = sig["inputs"]
        if len(images) < batch:
            images = np.resize(images, (batch,) + images.shape[1:])
        feeds = [{input_key: images[i:i + batch]} for i in range(0, len(images) - batch + 1, batch)]
        # Global min/max over all calibration images (the quantizer's default is a moving average of
        # per-batch ranges, which with batch 1 clips the tails and loses ~25 % of top-1 agreement).
        calib = calibrator.Calibrator(float_model, num_threads=min(os.cpu_count() or 1, 4),
                                      qsv_update_func=qsv_utils.min_max_update)
        calib.calibrate({key: feeds}, manager)
        q = quantizer.Quantizer(bytearray(float_model), manager.get_quantization_recipe())
        result = q.quantize(calib.get_model_qsvs(), enable_progress_report=False, enable_progress_bar=False)
    return bytes(result.quantized_model)


def export_tflite(model: torch.nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...],
                  quantize: str | None = None, calibration=None, float_modules: Sequence[str] = FLOAT_MODULES) -> Path:
    """Convert a static torch model to a .tflite file (float32, dynamic-range or full-integer INT8)."""
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize={quantize!r} is not supported; use one of None, 'dynamic', 'int8'")
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 4:
        raise ValueError(f"input_shape {input_shape} must be (batch, channels, height, width)")
    images = _as_images(calibration, input_shape) if quantize == "int8" else None
    content = _convert_float(model, input_shape)
    if quantize is not None:
        content = _quantize(content, quantize, images, input_shape[0], float_modules)
    path = Path(path)
    atomic_write_bytes(path, content)
    return path


def quantize_tflite(float_path: str | os.PathLike, path: str | os.PathLike, quantize: str = "int8",
                    calibration=None, float_modules: Sequence[str] = FLOAT_MODULES) -> Path:
    """Quantise an existing float32 .tflite (from :func:`export_tflite`) without converting again."""
    if quantize not in ("dynamic", "int8"):
        raise ValueError(f"quantize={quantize!r} is not supported; use 'dynamic' or 'int8'")
    require("tflite")
    from ai_edge_litert.interpreter import Interpreter

    content = Path(float_path).read_bytes()
    details = Interpreter(model_content=content).get_input_details()[0]
    shape = tuple(int(s) for s in details["shape"])
    images = _as_images(calibration, shape) if quantize == "int8" else None
    path = Path(path)
    atomic_write_bytes(path, _quantize(content, quantize, images, shape[0], float_modules))
    return path


class TFLiteRunner:
    """Run a .tflite classifier on float32 NCHW batches of any size with ai-edge-litert."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        require("tflite-runtime")
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self._in["shape"])

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._in["dtype"])

    @property
    def output_dtype(self) -> np.dtype:
        return np.dtype(self._out["dtype"])

    def op_names(self) -> list[str]:
        """Names of the model's operators, in execution order."""
        return [op["op_name"] for op in self.interpreter._get_ops_details()]

    def _encode(self, x: np.ndarray) -> np.ndarray:
        dtype = self.input_dtype
        if dtype == np.float32:
            return x.astype(np.float32, copy=False)
        scale, zero = self._in["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)

    def _decode(self, y: np.ndarray) -> np.ndarray:
        if self.output_dtype == np.float32:
            return y.astype(np.float32, copy=True)
        scale, zero = self._out["quantization"]
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)

    def __call__(self, x) -> np.ndarray:
        """Outputs (float32) for inputs ``x`` of shape (N, *input_shape[1:])."""
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
        want = self.input_shape
        if tuple(x.shape[1:]) != want[1:]:
            raise ValueError(f"{self.path}: input has shape {tuple(x.shape)}, the model takes (N, "
                             f"{', '.join(map(str, want[1:]))})")
        b, n = want[0], len(x)
        outs = []
        for i in range(0, n, b):
            chunk = x[i:i + b]
            if len(chunk) < b:
                chunk = np.concatenate([chunk, np.zeros((b - len(chunk),) + chunk.shape[1:], np.float32)])
            self.interpreter.set_tensor(self._in["index"], self._encode(chunk))
            self.interpreter.invoke()
            outs.append(self._decode(self.interpreter.get_tensor(self._out["index"])))
        return np.concatenate(outs)[:n]


def run_tflite(path: str | os.PathLike, x, num_threads: int | None = None) -> np.ndarray:
    """Run the .tflite model at ``path`` on float32 NCHW inputs ``x``; returns float32 outputs."""
    return TFLiteRunner(path, num_threads)(x)



@dataclass(frozen=True)
class DelegateReport:
    """How a .tflite graph splits between the XNNPACK delegate and the interpreter's own kernels."""

    delegate_partitions: int
    delegated_ops: int
    other_ops: dict[str, int] = field(default_factory=dict)   # op name -> count, run outside the delegate
    other_int8_ops: dict[str, int] = field(default_factory=dict)  # those of them reading int8 tensors

    def to_dict(self) -> dict[str, Any]:
        return {"delegate_partitions": self.delegate_partitions, "delegated_ops": self.delegated_ops,
                "other_ops": dict(self.other_ops), "other_int8_ops": dict(self.other_int8_ops)}


def delegate_report(path: str | os.PathLike) -> DelegateReport:
    """Count XNNPACK partitions and the ops each side runs, as the interpreter plans them for ``path``."""
    require("tflite-runtime")
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    original = {op["index"]: op for op in ops if op["op_name"] != "DELEGATE"}
    producer = {t: op["index"] for op in original.values() for t in op["outputs"]}
    # After delegation the interpreter still lists the replaced nodes; a partition is the set of nodes
    # reached walking back from its DELEGATE node's outputs, stopping at that node's inputs.
    inside: set[int] = set()
    for node in delegates:
        stop = set(node["inputs"])
        todo = [producer[t] for t in node["outputs"] if t in producer]
        while todo:
            i = todo.pop()
            if i not in inside:
                inside.add(i)
                todo += [producer[t] for t in original[i]["inputs"] if t not in stop and t in producer]
    outside = [op for i, op in original.items() if i not in inside]
    int8 = [op for op in outside if any(dtypes.get(t) == np.int8 for t in op["inputs"] if t >= 0)]
    return DelegateReport(len(delegates), len(inside), dict(Counter(op["op_name"] for op in outside)),
                          dict(Counter(op["op_name"] for op in int8)))
