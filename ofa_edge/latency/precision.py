"""Numeric precision of a latency table: fp32 models, or the INT8 models a deployment actually runs.

An INT8 table measures the same layers (same keys) quantised the way the exported INT8 artefacts are
(the runtime's ``quantize_model``: ONNX static QDQ with 7-bit weights, TFLite full integer with
HARD_SWISH in float; both keep the stem and the first block in float, ``ofa_edge.export.int8_policy``).
Its files carry the precision in their name: ``<runtime>-int8.csv``; fp32 tables keep the plain
``<runtime>.csv``.
"""

from __future__ import annotations

import numpy as np

from ofa_edge.devices.runtimes import RUNTIMES, get_runtime
from ofa_edge.errors import InvalidValueError

#: The precisions a latency table can be measured at.
PRECISIONS = ("fp32", "int8")
#: Random images each INT8 measurement model is calibrated on (latency does not depend on the ranges).
CALIBRATION_IMAGES = 8


def check_precision(precision: str, runtime: str | None = None) -> str:
    """``precision`` if it is known (and ``runtime`` can quantise its models for it), else a clear error."""
    if precision not in PRECISIONS:
        raise InvalidValueError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}", "precision")
    if precision != "fp32" and runtime is not None and get_runtime(runtime).quantize_model is None:
        able = [n for n in RUNTIMES.names() if RUNTIMES.get(n).quantize_model is not None]
        raise InvalidValueError(f"precision: runtime {runtime} has no {precision} models to measure; "
                                f"{precision} tables are measured with {', '.join(able)}", "precision")
    return precision


def table_stem(runtime: str, precision: str = "fp32") -> str:
    """File stem of a table: ``<runtime>`` for fp32, ``<runtime>-<precision>`` otherwise."""
    return runtime if precision == "fp32" else f"{runtime}-{precision}"


def calibration_images(shape: tuple[int, ...], n: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """Seeded standard-normal images ``(n, *shape[1:])`` to calibrate a measurement model's quantisation."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + tuple(int(s) for s in shape[1:])).astype(np.float32)
