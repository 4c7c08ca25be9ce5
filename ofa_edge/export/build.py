"""Build one target: export a static subnet to every requested format, quantise, check, write a manifest."""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ofa_edge.errors import InvalidValueError, OfaEdgeError
from ofa_edge.export import parity
from ofa_edge.export.backends import versions
from ofa_edge.export.formats import TFLITE_INT8_MODES, Artifact, ExportContext, get_exporter, int8_float_entry
from ofa_edge.export.manifest import MANIFEST_NAME, Manifest, file_entry
from ofa_edge.terminal import capture_output, summarise

#: Folder (inside a build) holding each artefact's converter output: ``logs/<artefact file>.log``.
LOGS_DIR = "logs"


class BuildError(OfaEdgeError):
    """A target failed (converter error, parity drift, missing back end); the manifest lists why."""

    def __init__(self, message: str, manifest: Manifest | None = None):
        super().__init__(message)
        self.manifest = manifest


def plan(formats: Sequence[str], quantize: bool, tflite_quantize: str = "int8",
         int8_float_stages: Sequence[int] = (0,)) -> list[Artifact]:
    """The artifacts a build makes for ``formats`` (fp32/fp16 always, int8 variants when ``quantize``).

    Each full-integer INT8 artefact is made once per value of ``int8_float_stages`` (stages after block 0
    kept in float; 0 is the plain ``<format>-int8``, k > 0 adds ``<format>-int8-f<k>``).
    """
    exporters = [get_exporter(f) for f in dict.fromkeys(formats)]
    if tflite_quantize not in TFLITE_INT8_MODES:
        raise InvalidValueError(f"tflite_quantize={tflite_quantize!r}; use one of {', '.join(TFLITE_INT8_MODES)}",
                                "tflite_quantize")
    stages = check_float_stages(int8_float_stages)
    out = []
    for e in exporters:
        for art in e.artifacts(quantize, tflite_quantize):
            variants = stages if e.keeps_float_stages(art) else (0,)
            out.extend(art.with_float_stages(k) for k in variants)
    return out


def check_float_stages(values: Sequence[int]) -> tuple[int, ...]:
    """``int8_float_stages`` as a sorted tuple of distinct non-negative ints (InvalidValueError otherwise)."""
    try:
        stages = tuple(sorted({int(v) for v in values}))
    except (TypeError, ValueError):
        stages = ()
    if not stages or stages[0] < 0 or any(not float(v).is_integer() for v in values):
        raise InvalidValueError(f"int8 float stages: {list(values)!r} must be whole numbers >= 0 (e.g. 0,1,2; "
                                "0 keeps only the stem and block 0 in float)", "int8_float_stages")
    return stages


def _as_array(x) -> np.ndarray:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy()
    if isinstance(x, np.ndarray):
        return x.astype(np.float32, copy=False)
    parts = [b[0] if isinstance(b, (tuple, list)) else b for b in x]
    return np.concatenate([_as_array(p) for p in parts]) if parts else None


def _torch_logits(model: torch.nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch]))).float().numpy())
    return np.concatenate(outs)


def build_target(static_model: torch.nn.Module, subnet, space, n_classes: int, out_dir: str | os.PathLike,
                 formats: Sequence[str] = ("onnx", "tflite"), quantize: bool = True,
                 calibration_images=None, eval_data: tuple[Any, Any] | None = None,
                 extra_manifest: Mapping[str, Any] | None = None, *, tflite_quantize: str = "int8",
                 tolerance: float = parity.FP32_TOLERANCE, latency_ms: Mapping[str, Any] | None = None,
                 raise_on_failure: bool = True, log: Callable[[str], None] | None = None,
                 capture: bool = True, int8_float_stages: Sequence[int] = (0,)) -> Manifest:
    """Export, quantise, parity-check and evaluate one static subnet; write ``out_dir/manifest.json``.

    See ``ofa_edge.export`` for the argument contract. Each artifact's failure is recorded in the
    manifest (status "failed"); with ``raise_on_failure`` a :class:`BuildError` naming every failure is
    raised after the manifest is written.

    Args:
        static_model: The extracted static subnet (BN recalibrated); input (1, 3, r, r).
        subnet, space, n_classes: What it is (for metadata, MACs and params).
        out_dir: Folder for the models and ``manifest.json``.
        formats: Registered export formats (``EXPORTERS``), built in this order.
        quantize: Also build each format's INT8 variants.
        calibration_images, eval_data: Float32 images (and labels) for INT8 calibration and accuracy.
        extra_manifest, latency_ms: Stored in the manifest.
        tflite_quantize, tolerance: TFLite INT8 mode; fp32 parity tolerance (max abs logit difference).
        raise_on_failure, log: Raise BuildError after writing a failed manifest; progress lines.
        capture: Write what the converters and runtimes print to ``out_dir/logs/<artefact file>.log``
            (counted under the artefact's ``log`` in the manifest) instead of the terminal; False streams it.
        int8_float_stages: One full-integer INT8 artefact per value: how many stages after block 0 stay
            in float (see :func:`plan`).

    Returns:
        The manifest written.

    Raises:
        UnknownNameError: an unregistered format.
        BuildError: an artifact failed (with ``raise_on_failure``).
    """
    from ofa_edge import __version__
    from ofa_edge.space import count_macs, count_params

    artifacts = plan(formats, quantize, tflite_quantize, int8_float_stages)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)  # never describes the files about to be replaced
    r = subnet.r
    shape = (1, 3, r, r)
    model = static_model.eval().cpu()
    calib = _as_array(calibration_images)
    eval_x, eval_y = (None, None)
    if eval_data is not None:
        eval_x, eval_y = _as_array(eval_data[0]), np.asarray(eval_data[1]).reshape(-1)
    check_x = eval_x[:64] if eval_x is not None else (calib[:64] if calib is not None else
                                                       np.random.default_rng(0).standard_normal((8, 3, r, r)).astype(np.float32))
    for name, x in (("calibration_images", calib), ("eval_data images", eval_x)):
        if x is not None and tuple(x.shape[1:]) != (3, r, r):
            raise InvalidValueError(f"{name} have shape {tuple(x.shape)}; the subnet takes (N, 3, {r}, {r})")
    ref_check = _torch_logits(model, check_x)
    ref_eval = _torch_logits(model, eval_x) if eval_x is not None else None
    metadata = {"ofa_edge_version": __version__, "subnet": subnet.to_json(), "subnet_id": subnet.id,
                "space": space.name, "n_classes": str(n_classes), "resolution": str(r)}
    manifest = Manifest(subnet=subnet.to_dict(), subnet_id=subnet.id, space=space.name, n_classes=int(n_classes),
                        resolution=int(r), input_shape=list(shape), macs=int(count_macs(space, subnet, n_classes)),
                        params=int(count_params(space, subnet, n_classes)), versions=versions(),
                        extra=dict(extra_manifest or {}), ofa_edge_version=__version__)
    if latency_ms:
        manifest.latency_ms.update(dict(latency_ms))
    if ref_eval is not None:
        manifest.top1 = {"fp32": parity.accuracy(ref_eval, eval_y), "split": "test", "n_images": len(eval_y),
                         "drop_points": {}}
    ctx = ExportContext(model, shape, int(n_classes), calib, metadata, tflite_quantize)
    failed_formats: set[str] = set()
    for art in artifacts:
        entry: dict[str, Any] = {"key": art.key, "format": art.format, "precision": art.precision,
                                 "file": art.filename, "status": "ok"}
        manifest.artifacts.append(entry)
        if art.quantized and art.format in failed_formats:
            entry.update(status="skipped", error=f"the fp32 {art.format} export failed")
            continue
        path = out_dir / art.filename
        log_path = out_dir / LOGS_DIR / f"{art.filename}.log"
        log_path.unlink(missing_ok=True)
        if log:
            log(f"{art.key}: exporting")
        try:
            with capture_output(log_path, capture):
                _make_artifact(art, path, out_dir, entry, manifest, ctx, check_x, ref_check, (eval_x, eval_y),
                               ref_eval, tolerance)
        except Exception as exc:  # any converter/runtime error fails this artifact, not the whole build
            if not art.quantized:
                failed_formats.add(art.format)
            kind = type(exc).__name__
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
            entry.update(status="failed", error=f"{kind}: {message}")
            manifest.errors.append(f"{art.key}: {message}")
            if not isinstance(exc, (OfaEdgeError, ValueError)):
                entry["traceback"] = traceback.format_exc(limit=4)
        finally:
            _record_log(entry, log_path, out_dir)
    with contextlib.suppress(OSError):  # no converter printed anything: no empty logs folder
        (out_dir / LOGS_DIR).rmdir()
    manifest.status = "failed" if manifest.errors else "ok"
    manifest.write(out_dir)
    if manifest.errors and raise_on_failure:
        raise BuildError(f"{out_dir}: " + "; ".join(manifest.errors), manifest)
    return manifest


def _record_log(entry: dict[str, Any], log_path: Path, out_dir: Path) -> None:
    """Describe an artefact's captured converter output in its manifest entry (an empty log is removed)."""
    if not log_path.is_file():
        return
    if log_path.stat().st_size == 0:
        log_path.unlink()
        return
    entry["log"] = summarise(log_path).to_dict(out_dir)


def _make_artifact(art: Artifact, path: Path, out_dir: Path, entry: dict[str, Any], manifest: Manifest,
                   ctx: ExportContext, check_x: np.ndarray, ref_check: np.ndarray, eval_data: tuple,
                   ref_eval: np.ndarray | None, tolerance: float) -> None:
    """Export one artefact, then run its parity check and test accuracy (or its structural check)."""
    eval_x, eval_y = eval_data
    t0 = time.perf_counter()
    exporter = get_exporter(art.format)
    exporter.export(art, path, ctx)
    entry["export_seconds"] = round(time.perf_counter() - t0, 3)
    if not art.quantized:
        ctx.fp32_paths[art.format] = path
    manifest.files.append(file_entry(path, out_dir))
    entry.update(exporter.describe(art, path))
    if exporter.keeps_float_stages(art):
        entry.update(int8_float_entry(art, ctx))
    run = exporter.runner(art, path)
    if run is None:  # a format that cannot run here: its file's structure is checked instead
        entry["spec"] = exporter.check(art, path, ctx)
        return
    got = run(check_x)
    tol = None if art.quantized else tolerance
    entry["parity"] = parity.check(f"{art.filename}", ref_check, got, tol).to_dict()
    if ref_eval is not None:
        got_eval = run(eval_x)
        acc = parity.accuracy(got_eval, eval_y)
        entry["top1"] = acc
        entry["top1_agreement"] = parity.top1_agreement(ref_eval, got_eval)
        if art.quantized:
            manifest.top1[art.key] = acc
            manifest.top1["drop_points"][art.key] = round(manifest.top1["fp32"] - acc, 3)
