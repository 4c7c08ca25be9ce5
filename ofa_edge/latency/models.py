"""Tiny per-layer models and whole subnets exported in a runtime's format, cached by signature."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import torch

from ofa_edge.devices.bundle import ModelFile
from ofa_edge.devices.runtimes import get_runtime
from ofa_edge.export.int8_policy import is_float_layer
from ofa_edge.io import atomic_path, atomic_write_bytes
from ofa_edge.latency.blocks import input_shape
from ofa_edge.space import LayerSpec, SearchSpace, Subnet, layers

#: Bump when the exported models change (their latency or their bytes).
MODEL_VERSION = 5


def default_cache_dir() -> Path:
    """``$OFA_EDGE_CACHE`` or ``$XDG_CACHE_HOME/ofa-edge`` (default ``~/.cache/ofa-edge``) + ``/models``."""
    root = os.environ.get("OFA_EDGE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ofa-edge")
    return Path(root) / "models"


#: Part of the name of every quantised model: bump when the quantisation recipe changes their graphs.
QUANT_RECIPE = "float-stem"


def _precision_tag(precision: str) -> str:
    return "" if precision == "fp32" else f"|{precision}|{QUANT_RECIPE}"  # fp32 names stay those of earlier versions


def block_name(spec: LayerSpec, precision: str = "fp32") -> str:
    """Model name of a one-layer model: a hash of its LUT key (plus the SE width, which the key omits)."""
    text = f"{MODEL_VERSION}|{spec.lut_key()}|se{spec.se}|{spec.kind}{_precision_tag(precision)}"
    return "b" + hashlib.sha256(text.encode()).hexdigest()[:16]


def subnet_name(subnet: Subnet, n_classes: int, space: SearchSpace, precision: str = "fp32") -> str:
    """Model name of a whole subnet of ``space`` with ``n_classes`` outputs."""
    text = f"{MODEL_VERSION}|{space.fingerprint()}|{subnet.to_json()}|{n_classes}{_precision_tag(precision)}"
    return "n" + hashlib.sha256(text.encode()).hexdigest()[:16]


def exporter(runtime: str) -> Callable[[torch.nn.Module, Path, tuple[int, ...]], None]:
    """The function writing a model for ``runtime`` (any registered device runtime)."""
    return get_runtime(runtime).write_model


#: Length of the random pattern tiled over each weight tensor: a prime, so the tiling does not line up
#: with channel boundaries, and 1 KB, well inside deflate's window, so every repeat is one long match.
PATTERN_PERIOD = 251


def compressible_weights(model: torch.nn.Module) -> torch.nn.Module:
    """Replace each weight tensor by a tiled random normal pattern scaled to its init's std.

    Latency does not depend on weight values, but upload time does: the weights keep the scale of the
    random init (no overflow, no denormals), and since each tensor repeats one 1 KB pattern the models
    deflate ~40x in the bundle, so profiling uploads megabytes instead of hundreds of megabytes.
    """
    gen = torch.Generator().manual_seed(0)
    pattern = torch.randn(PATTERN_PERIOD, generator=gen)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                tiled = pattern.repeat(p.numel() // PATTERN_PERIOD + 1)[: p.numel()].view_as(p)
                p.copy_(tiled * p.std().clamp_min(1e-3))
    return model


def _export_cached(name: str, build: Callable[[], torch.nn.Module], shape: tuple[int, ...], runtime: str,
                   cache_dir: Path, write) -> ModelFile:
    path = Path(cache_dir) / runtime / f"{name}_bs{shape[0]}{get_runtime(runtime).suffix}"
    if not path.is_file() or path.stat().st_size == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        with torch.no_grad():
            model = compressible_weights(build().eval())
        with atomic_path(path) as tmp:  # profilers sharing the cache never read a half-written model
            write(model, tmp, shape)
    return ModelFile(name, path, shape)


def _quantized_cached(fp32: ModelFile, name: str, runtime: str, cache_dir: Path, precision: str,
                      keep_float: bool = False) -> ModelFile:
    """The ``precision`` form of the cached fp32 model ``fp32``, quantised by the runtime's ``quantize_model``.

    ``keep_float``: a layer that INT8 models run in float (``int8_policy``): its model is the fp32 one.
    """
    from ofa_edge.latency.precision import calibration_images, check_precision, table_stem

    check_precision(precision, runtime)
    path = Path(cache_dir) / table_stem(runtime, precision) / f"{name}_bs{fp32.input_shape[0]}{fp32.path.suffix}"
    if not path.is_file() or path.stat().st_size == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        if keep_float:
            atomic_write_bytes(path, fp32.path.read_bytes())
        else:
            with atomic_path(path) as tmp:
                get_runtime(runtime).quantize_model(fp32.path, tmp, calibration_images(fp32.input_shape))
    return ModelFile(name, path, fp32.input_shape)


def block_model(spec: LayerSpec, runtime: str, cache_dir: Path, batch: int = 1, write=None,
                precision: str = "fp32") -> ModelFile:
    """The exported one-layer model of ``spec`` at ``precision`` (exported once, then taken from the cache)."""
    from ofa_edge.supernet import build_layer

    fp32 = _export_cached(block_name(spec), lambda: build_layer(spec), input_shape(spec, batch), runtime,
                          cache_dir, write or exporter(runtime))
    return fp32 if precision == "fp32" else _quantized_cached(fp32, block_name(spec, precision), runtime,
                                                               cache_dir, precision, is_float_layer(spec))


def subnet_model(space: SearchSpace, subnet: Subnet, n_classes: int, runtime: str, cache_dir: Path,
                 batch: int = 1, write=None, precision: str = "fp32") -> ModelFile:
    """The exported whole static subnet at ``precision`` (random weights: latency does not depend on them)."""
    from ofa_edge.supernet import StaticMobileNetV3

    fp32 = _export_cached(subnet_name(subnet, n_classes, space),
                          lambda: StaticMobileNetV3(layers(space, subnet, n_classes)),
                          (batch, 3, subnet.r, subnet.r), runtime, cache_dir, write or exporter(runtime))
    return fp32 if precision == "fp32" else _quantized_cached(fp32, subnet_name(subnet, n_classes, space, precision),
                                                               runtime, cache_dir, precision)


def probe_model(runtime: str, cache_dir: Path) -> ModelFile:
    """A tiny 3x3 conv model used by ``devices check`` to see whether the runner works."""
    spec = LayerSpec("stem", 8, 8, 3, 8, kernel=3, stride=1, act="h_swish")
    return block_model(spec, runtime, cache_dir)
