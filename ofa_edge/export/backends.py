"""Optional converter back ends: import them on demand, or fail naming the extra to install."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from ofa_edge.errors import OfaEdgeError


@dataclass(frozen=True)
class OptionalBackend:
    """One optional back end: the modules it needs and the ``ofa-edge`` extra that installs them."""

    name: str
    modules: tuple[str, ...]
    extra: str
    purpose: str


BACKENDS: dict[str, OptionalBackend] = {
    "tflite": OptionalBackend("tflite", ("litert_torch", "ai_edge_litert", "ai_edge_quantizer"), "tflite",
                      "TFLite export (litert-torch, ai-edge-litert)"),
    "tflite-runtime": OptionalBackend("tflite-runtime", ("ai_edge_litert",), "tflite",
                              "running TFLite models (ai-edge-litert)"),
    "coreml": OptionalBackend("coreml", ("coremltools",), "coreml", "CoreML export (coremltools)"),
}


class MissingBackendError(OfaEdgeError):
    """An optional converter or runtime is not installed; the message names the pip extra."""


def require(backend: str) -> tuple[ModuleType, ...]:
    """Import the modules of ``backend`` or raise :class:`MissingBackendError` naming its extra."""
    spec = BACKENDS[backend]
    loaded = []
    for name in spec.modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError as exc:
            raise MissingBackendError(
                f"{spec.purpose} needs the Python package '{name}', which is not installed "
                f"({exc.__class__.__name__}: {exc}); install it with: pip install 'ofa-edge[{spec.extra}]'"
            ) from exc
    return tuple(loaded)


def available(backend: str) -> bool:
    """True if every module of ``backend`` imports."""
    try:
        require(backend)
    except MissingBackendError:
        return False
    return True


def versions() -> dict[str, str | None]:
    """Installed versions of torch and of every converter/runtime (None when absent)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for dist in ("torch", "onnx", "onnxruntime", "litert-torch", "ai-edge-litert", "ai-edge-quantizer",
                 "coremltools"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out
