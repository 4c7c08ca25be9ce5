"""Export: static subnet -> ONNX / TFLite / CoreML, INT8 quantisation, parity checks, manifests.

Library entry point (what ``specialize`` and ``ofa-edge build`` call)::

    from ofa_edge.export import build_target
    manifest = build_target(static_model, subnet, space, n_classes, out_dir,
                            formats=("onnx", "tflite", "coreml"), quantize=True,
                            calibration_images=x_train,          # float32 (N, 3, r, r), preprocessed
                            eval_data=(x_test, y_test),          # float32 images + int labels, or None
                            extra_manifest={"device": "pi4", "budget_ms": 20.0, "target": "pi4-20ms"},
                            latency_ms={"predicted": 18.2, "measured": None})

- ``static_model``: the extracted ``StaticMobileNetV3`` (BN already recalibrated), ``subnet``: its
  ``Subnet`` (gives the resolution r), ``space``: its ``SearchSpace``; the input is (1, 3, r, r).
- Writes into ``out_dir``: ``model.onnx`` (opset 17, dynamic batch, input "input", output "output",
  metadata: subnet JSON, subnet id, space, classes, resolution, ofa_edge_version), ``model.int8.onnx``
  (onnxruntime static QDQ, per-channel int8 weights, uint8 activations), ``model.tflite`` (float32,
  NCHW input, batch 1) and ``model.int8.tflite`` (full-integer, or ``tflite_quantize="dynamic"``),
  ``model.mlpackage`` (mlprogram fp16) and ``model.int8.mlpackage`` (8-bit weights), ``manifest.json``.
  ``int8_float_stages=(0, 2)`` adds ``model.int8-f2.onnx`` / ``model.int8-f2.tflite``: the full-integer
  files again with the first 2 stages after block 0 in float (``int8_float`` in their manifest entries).
- Checks: fp32 ONNX/TFLite logits vs PyTorch (max abs diff <= ``tolerance``, default 1e-4, else
  ``ParityError``); INT8 models: top-1 agreement and accuracy on ``eval_data`` (drop in points in the
  manifest); CoreML: the saved package is loaded and its input/output names, shapes and op count checked.
- Returns the :class:`Manifest`; on any failure the manifest is still written (status "failed",
  ``errors``) and :class:`BuildError` is raised (unless ``raise_on_failure=False``).
- A missing back end raises ``MissingBackendError`` naming the extra: ``pip install 'ofa-edge[tflite]'``.

Single exporters: ``export_onnx``, ``quantize_onnx``, ``export_tflite``, ``export_coreml``;
runners ``OnnxRunner``, ``TFLiteRunner``; ``inspect_coreml``. Build matrices (targets.toml): ``ofa_edge.pipelines.build``.
"""

from ofa_edge.export.backends import MissingBackendError, available, require, versions
from ofa_edge.export.build import BuildError, build_target, plan
from ofa_edge.export.formats import EXPORTERS, Artifact, ExportContext, Exporter, get_exporter, register_exporter
from ofa_edge.export.manifest import MANIFEST_FORMAT, Manifest, read_manifest, write_summary_for
from ofa_edge.export.onnx import OnnxRunner, export_onnx, run_onnx
from ofa_edge.export.onnx_int8 import quantize_onnx
from ofa_edge.export.parity import ParityError

__all__ = [
    "EXPORTERS", "MANIFEST_FORMAT", "Artifact", "BuildError", "ExportContext", "Exporter", "Manifest",
    "MissingBackendError", "OnnxRunner", "ParityError", "available", "build_target", "export_onnx", "get_exporter",
    "plan", "quantize_onnx", "read_manifest", "register_exporter", "require", "run_onnx", "versions",
    "write_summary_for",
]


def __getattr__(name):  # optional back ends load on first use
    if name in ("export_tflite", "TFLiteRunner", "run_tflite"):
        from ofa_edge.export import tflite

        return getattr(tflite, name)
    if name in ("export_coreml", "inspect_coreml", "predict_coreml"):
        from ofa_edge.export import coreml

        return getattr(coreml, name)
    raise AttributeError(name)
