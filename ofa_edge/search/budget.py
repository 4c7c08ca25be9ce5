"""Parse latency budgets ("20ms", "20 ms", "0.02s", "20") and counts ("300M") given on the command line."""

from __future__ import annotations

import math
import re

from ofa_edge.errors import OfaEdgeError


class BudgetError(OfaEdgeError, ValueError):
    """A budget that is not a positive finite number with a known unit."""


_LATENCY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|us|µs)?\s*$")
_LATENCY_UNITS = {None: 1.0, "ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3}
_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMgG]?)\s*$")
_COUNT_UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_latency(text: str | float, option: str = "latency") -> float:
    """One latency budget in milliseconds; a bare number means milliseconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
        if not (math.isfinite(value) and value > 0):
            raise BudgetError(f"{option}: {text!r} is not a positive latency; use e.g. 20ms, 0.02s or 20", option)
        return value
    raw = str(text)
    m = _LATENCY.match(raw.strip().lower())
    value = float(m.group(1)) * _LATENCY_UNITS[m.group(2)] if m else math.nan
    if not m or not (math.isfinite(value) and value > 0):
        raise BudgetError(f"{option}: {raw!r} is not a positive latency; use e.g. 20ms, 0.02s or 20 "
                          "(milliseconds)", option)
    return value


def parse_latencies(text: str, option: str = "latency") -> list[float]:
    """A comma-separated list of latency budgets (ms), sorted and de-duplicated."""
    parts = [p for p in str(text).split(",")]
    if not any(p.strip() for p in parts):
        raise BudgetError(f"{option}: empty; give one or more budgets such as 10ms,20ms,40ms", option)
    return sorted({parse_latency(p, option) for p in parts})


def parse_count(text: str | float, option: str) -> float:
    """A positive count such as MACs or parameters: "300M", "1.5m", "2e6", "450k"."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = repr(text)
    raw = str(text)
    m = _COUNT.match(raw)
    value = float(m.group(1)) * _COUNT_UNITS[m.group(2).lower()] if m else math.nan
    if not m or not (math.isfinite(value) and value > 0):
        raise BudgetError(f"{option}: {raw!r} is not a positive count; use e.g. 300M, 450k or 2e6")
    return value


def format_ms(ms: float) -> str:
    """A budget as text for folder names and tables: 20ms, 7.5ms."""
    return f"{ms:g}ms"
