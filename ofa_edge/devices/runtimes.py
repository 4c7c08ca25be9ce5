"""Device runtimes: one :class:`RuntimeSpec` per inference runtime, in the ``RUNTIMES`` registry.

A spec says which ``[runtime]`` profile keys the runtime reads, the suffix and writer of the models it
runs, how to install it on a device and, for runtimes the standalone runner does not know, how to
measure one model (``measure``). Profiles, the latency profiler and ``devices check`` all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ofa_edge.registry import Registry

if TYPE_CHECKING:
    from ofa_edge.devices.bundle import ModelFile
    from ofa_edge.devices.profile import DeviceProfile
    from ofa_edge.devices.transport import Transport

#: (torch module, output path, input shape) -> None: writes a model file the runtime loads.
ModelWriter = Callable[[Any, Path, tuple[int, ...]], None]
#: (open transport, profile, model) -> statistics in ms (``median_ms``, ``mean_ms``, ``p90_ms``, ``std_ms``,
#: ``min_ms``, ``repeats``, ``warmup``), e.g. ``ofa_edge.devices.runner.measure(call, warmup, repeats)``.
ModelMeasurer = Callable[["Transport", "DeviceProfile", "ModelFile"], dict[str, Any]]
#: (fp32 model path, output path, calibration images (N, C, H, W) float32) -> None: writes the INT8 model.
ModelQuantizer = Callable[[Path, Path, Any], None]


@dataclass(frozen=True)
class RuntimeSpec:
    """What ofa-edge needs to know about one inference runtime.

    Args:
        name: The ``runtime.name`` of device profiles.
        suffix: File suffix of the models it runs (``.onnx``).
        write_model: Writes a torch module as such a model.
        install_hint: How to install the runtime on a device (shown when it is missing).
        options: The ``[runtime]`` profile keys it reads besides ``name``.
        measure: Measures one model on the device; None: the standalone runner does (it must know ``name``).
        quantize_model: Writes the INT8 form of one of its fp32 models, quantised as the exported INT8
            artefacts are (INT8 latency tables); None: the runtime has no INT8 tables.
    """

    name: str
    suffix: str
    write_model: ModelWriter
    install_hint: str
    options: tuple[str, ...] = ()
    measure: ModelMeasurer | None = None
    quantize_model: ModelQuantizer | None = None


#: Runtimes by name (the names a device profile's ``runtime.name`` accepts).
RUNTIMES: Registry[RuntimeSpec] = Registry("device runtime", "runtime")


def register_runtime(spec: RuntimeSpec) -> RuntimeSpec:
    """Make ``spec`` usable as ``runtime.name = "<spec.name>"`` in device profiles (a taken name is refused)."""
    return RUNTIMES.add(spec.name, spec)


def get_runtime(name: str) -> RuntimeSpec:
    """The runtime registered as ``name`` (UnknownNameError lists the known ones)."""
    return RUNTIMES.get(name)


# -- the built-in runtimes (the standalone runner loads their models itself) -------------------------
def _write_onnx(model, path: Path, shape: tuple[int, ...]) -> None:
    from ofa_edge.export.onnx import export_onnx

    export_onnx(model, path, shape, dynamic_batch=False)


def _write_tflite(model, path: Path, shape: tuple[int, ...]) -> None:
    from ofa_edge.export.backends import MissingBackendError

    try:
        from ofa_edge.export.tflite import export_tflite
    except ImportError as exc:  # an optional back end: name the extra that installs it
        raise MissingBackendError(f"TFLite export is not available here ({exc}); install the extra: "
                                  "pip install 'ofa-edge[tflite]'") from None
    export_tflite(model, path, shape)


def _write_torchscript(model, path: Path, shape: tuple[int, ...]) -> None:
    import torch

    from ofa_edge.io import atomic_save

    traced = torch.jit.trace(model.eval(), torch.zeros(shape))
    atomic_save(path, lambda fh: torch.jit.save(traced, fh))


def _quantize_onnx(fp32: Path, path: Path, calibration) -> None:
    import onnx

    from ofa_edge.export.onnx_int8 import quantize_onnx

    batch = onnx.load(str(fp32), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0].dim_value
    # static QDQ with 7-bit weights (the onnx-int8 artefact's settings), calibrated in the model's fixed batch
    quantize_onnx(fp32, path, calibration, batch_size=batch or 16)


def _quantize_tflite(fp32: Path, path: Path, calibration) -> None:
    from ofa_edge.export.tflite import quantize_tflite

    quantize_tflite(fp32, path, "int8", calibration)  # as the tflite-int8 artefact (int8_policy's float layers)


register_runtime(RuntimeSpec("onnxruntime", ".onnx", _write_onnx, "pip install onnxruntime", ("providers",),
                             quantize_model=_quantize_onnx))
register_runtime(RuntimeSpec("tflite", ".tflite", _write_tflite, "pip install ai-edge-litert", ("delegate",),
                             quantize_model=_quantize_tflite))
register_runtime(RuntimeSpec("torch", ".pt", _write_torchscript, "pip install torch"))


# -- benchmark binaries on the device (no Python there): ofa-edge pushes the model and parses the output --
def _measure_benchmark_model(transport: Transport, profile: DeviceProfile, model: ModelFile) -> dict[str, Any]:
    from ofa_edge.devices.benchmark_model import measure

    return measure(transport, profile, model)


def _measure_trtexec(transport: Transport, profile: DeviceProfile, model: ModelFile) -> dict[str, Any]:
    from ofa_edge.devices.trtexec import measure

    return measure(transport, profile, model)


register_runtime(RuntimeSpec("benchmark_model", ".tflite", _write_tflite,
                             "download TFLite's prebuilt benchmark_model for the device and set runtime.binary",
                             ("binary", "use_xnnpack", "cpu_mask"), _measure_benchmark_model, _quantize_tflite))
register_runtime(RuntimeSpec("trtexec", ".onnx", _write_onnx,
                             "JetPack ships it in /usr/src/tensorrt/bin (set runtime.binary if it is elsewhere)",
                             ("binary", "precision", "warmup_ms"), _measure_trtexec))
