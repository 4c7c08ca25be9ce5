"""Export formats: one :class:`Exporter` per format in the ``EXPORTERS`` registry (onnx, tflite, coreml).

An exporter says which files it makes for a build (:meth:`Exporter.artifacts`), writes each one
(:meth:`Exporter.export`) and either runs it (:meth:`Exporter.runner`, for the numeric parity check)
or checks its structure (:meth:`Exporter.check`). ``build_target`` drives them; nothing else needs
to know the format.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ofa_edge.errors import InvalidValueError
from ofa_edge.registry import Registry

TFLITE_INT8_MODES = ("int8", "dynamic")


@dataclass(frozen=True)
class Artifact:
    """One file to produce: its format, precision and whether it is a quantised variant."""

    key: str          # e.g. "onnx", "onnx-int8" (also the top1 key in the manifest)
    format: str       # the exporter's name
    precision: str    # fp32 | int8 | int8-dynamic | fp16 | int8-weights
    filename: str
    quantized: bool
    float_stages: int = 0  # full-integer INT8 only: stages after block 0 kept in float (int8_policy)

    def with_float_stages(self, k: int) -> "Artifact":
        """This INT8 artefact with the first ``k`` stages in float (key ``<key>-f<k>``; ``k`` 0: itself)."""
        if k == 0:
            return self
        stem, _, ext = self.filename.partition(".int8")
        return replace(self, key=f"{self.key}-f{k}", filename=f"{stem}.int8-f{k}{ext}", float_stages=k)


@dataclass
class ExportContext:
    """What every exporter of one build gets: the model, its input, calibration images, metadata."""

    model: Any                          # the static torch module, eval mode, on the CPU
    shape: tuple[int, ...]              # (1, 3, r, r)
    n_classes: int
    calibration: np.ndarray | None      # float32 (N, 3, r, r) or None
    metadata: dict[str, str]
    tflite_quantize: str = "int8"
    fp32_paths: dict[str, Path] = field(default_factory=dict)  # format -> its fp32 file, once written

    def need_calibration(self, what: str) -> np.ndarray:
        """The calibration images, or an error saying that ``what`` needs them."""
        if self.calibration is None:
            raise InvalidValueError(f"{what} needs calibration images", "calibration_images")
        return self.calibration


class Exporter:
    """One export format. Subclass, set ``name``, implement ``artifacts`` and ``export``, then register."""

    name = ""
    #: Its full-integer (``precision == "int8"``) artefacts can keep early stages in float (``float_stages``).
    float_stages = False

    def artifacts(self, quantize: bool, tflite_quantize: str = "int8") -> list[Artifact]:
        """The files a build makes: the float model, plus quantised variants when ``quantize``."""
        raise NotImplementedError

    def keeps_float_stages(self, art: Artifact) -> bool:
        """Whether ``art`` is a full-integer artefact of this format that can keep early stages in float."""
        return self.float_stages and art.precision == "int8"

    def export(self, art: Artifact, path: Path, ctx: ExportContext) -> None:
        """Write ``art`` to ``path`` (quantised variants may read ``ctx.fp32_paths[self.name]``)."""
        raise NotImplementedError

    def runner(self, art: Artifact, path: Path) -> Callable[[np.ndarray], np.ndarray] | None:
        """A callable mapping float32 images to logits, or None when the format cannot run here."""
        return None

    def check(self, art: Artifact, path: Path, ctx: ExportContext) -> dict[str, Any]:
        """For formats without a runner: a structural check of the written file (raises ParityError)."""
        return {}

    def describe(self, art: Artifact, path: Path) -> dict[str, Any]:
        """Facts about the written file for its manifest entry (e.g. how a runtime partitions it)."""
        return {}


def int8_float_modules(art: Artifact, ctx: ExportContext) -> tuple[str, ...]:
    """The module paths a full-integer artefact keeps in float (:mod:`ofa_edge.export.int8_policy`)."""
    from ofa_edge.export.int8_policy import FLOAT_MODULES, float_modules_for

    specs = getattr(ctx.model, "specs", None)
    if specs is None:
        if art.float_stages:
            raise InvalidValueError(f"{art.key}: float stages need a static MobileNetV3 subnet (its layer specs)",
                                    "int8_float_stages")
        return FLOAT_MODULES
    try:
        return float_modules_for(specs, art.float_stages)
    except ValueError as exc:
        raise InvalidValueError(f"{art.key}: {exc}", "int8_float_stages") from exc


def int8_float_entry(art: Artifact, ctx: ExportContext) -> dict[str, Any]:
    """The manifest's record of what a full-integer artefact keeps in float."""
    return {"int8_float": {"stages": art.float_stages, "modules": list(int8_float_modules(art, ctx))}}


#: Export formats by name (the names ``build_target(formats=...)`` and ``targets.toml`` accept).
EXPORTERS: Registry[Exporter] = Registry("export format", "formats")


def register_exporter(cls: type[Exporter]) -> type[Exporter]:
    """Class decorator: register an instance of ``cls`` under ``cls.name`` (a taken name is refused)."""
    EXPORTERS.add(cls.name, cls())
    return cls


def get_exporter(name: str) -> Exporter:
    """The exporter registered as ``name`` (UnknownNameError lists the known ones)."""
    return EXPORTERS.get(name)


@register_exporter
class OnnxExporter(Exporter):
    """ONNX opset 17 (dynamic batch, metadata) and onnxruntime static QDQ INT8."""

    name = "onnx"
    float_stages = True

    def artifacts(self, quantize: bool, tflite_quantize: str = "int8") -> list[Artifact]:
        out = [Artifact("onnx", "onnx", "fp32", "model.onnx", False)]
        if quantize:
            out.append(Artifact("onnx-int8", "onnx", "int8", "model.int8.onnx", True))
        return out

    def export(self, art: Artifact, path: Path, ctx: ExportContext) -> None:
        if not art.quantized:
            from ofa_edge.export.onnx import export_onnx

            export_onnx(ctx.model, path, ctx.shape, metadata=ctx.metadata)
            return
        from ofa_edge.export.onnx_int8 import quantize_onnx

        quantize_onnx(ctx.fp32_paths["onnx"], path, ctx.need_calibration("ONNX INT8"),
                      float_modules=int8_float_modules(art, ctx))

    def runner(self, art: Artifact, path: Path):
        from ofa_edge.export.onnx import OnnxRunner

        return OnnxRunner(path)


@register_exporter
class TFLiteExporter(Exporter):
    """TFLite float32 (litert-torch) and full-integer or dynamic-range INT8."""

    name = "tflite"
    float_stages = True

    def artifacts(self, quantize: bool, tflite_quantize: str = "int8") -> list[Artifact]:
        out = [Artifact("tflite", "tflite", "fp32", "model.tflite", False)]
        if quantize:
            precision = "int8" if tflite_quantize == "int8" else "int8-dynamic"
            out.append(Artifact("tflite-int8", "tflite", precision, "model.int8.tflite", True))
        return out

    def export(self, art: Artifact, path: Path, ctx: ExportContext) -> None:
        from ofa_edge.export.tflite import export_tflite, quantize_tflite

        if not art.quantized:
            export_tflite(ctx.model, path, ctx.shape)
            return
        calibration = ctx.need_calibration("TFLite INT8") if ctx.tflite_quantize == "int8" else ctx.calibration
        quantize_tflite(ctx.fp32_paths["tflite"], path, ctx.tflite_quantize, calibration,
                        float_modules=int8_float_modules(art, ctx))

    def runner(self, art: Artifact, path: Path):
        from ofa_edge.export.tflite import TFLiteRunner

        return TFLiteRunner(path)

    def describe(self, art: Artifact, path: Path) -> dict[str, Any]:
        from ofa_edge.export.tflite import delegate_report

        return {"tflite": delegate_report(path).to_dict()}


@register_exporter
class CoreMLExporter(Exporter):
    """CoreML mlprogram (fp16) and 8-bit weights; cannot run on Linux, so its spec is checked instead."""

    name = "coreml"

    def artifacts(self, quantize: bool, tflite_quantize: str = "int8") -> list[Artifact]:
        out = [Artifact("coreml", "coreml", "fp16", "model.mlpackage", False)]
        if quantize:
            out.append(Artifact("coreml-int8", "coreml", "int8-weights", "model.int8.mlpackage", True))
        return out

    def export(self, art: Artifact, path: Path, ctx: ExportContext) -> None:
        from ofa_edge.export.coreml import export_coreml

        export_coreml(ctx.model, path, ctx.shape, precision=art.precision, metadata=ctx.metadata)

    def check(self, art: Artifact, path: Path, ctx: ExportContext) -> dict[str, Any]:
        from ofa_edge.export.coreml import inspect_coreml
        from ofa_edge.export.parity import ParityError

        shape, n_classes = ctx.shape, ctx.n_classes
        info = inspect_coreml(path)
        problems = []
        if info.inputs != {"input": tuple(shape)}:
            problems.append(f"inputs {info.inputs}, expected {{'input': {tuple(shape)}}}")
        if info.outputs != {"output": (shape[0], n_classes)}:
            problems.append(f"outputs {info.outputs}, expected {{'output': {(shape[0], n_classes)}}}")
        if info.op_count == 0:
            problems.append("the program has no operations")
        if problems:
            raise ParityError(f"{path.name}: " + "; ".join(problems))
        return {"inputs": {k: list(v) for k, v in info.inputs.items()},
                "outputs": {k: list(v) for k, v in info.outputs.items()}, "op_count": info.op_count,
                "op_types": info.op_types}
