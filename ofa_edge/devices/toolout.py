"""Shared helpers for parsing the text output of device-side benchmark tools (benchmark_model, trtexec)."""

from __future__ import annotations

import math

from ofa_edge.errors import OfaEdgeError


class ToolOutputError(OfaEdgeError):
    """A device-side tool ran but its output holds no latency summary (the model failed to load or run)."""

    def __init__(self, tool: str, problem: str, tail: list[str]):
        self.tool, self.problem, self.tail = tool, problem, tail
        shown = " | ".join(tail) if tail else "no output"
        super().__init__(f"{tool} {problem}; its last lines: {shown}")


class ToolCrashed(OfaEdgeError):
    """A device-side tool was killed by a signal while it ran one model (the message names the signal)."""


def number(text: str) -> float:
    """A finite, non-negative float from the tool's text (plain or scientific notation)."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"not a plausible timing: {text!r}")
    return value


def last_lines(text: str, n: int = 3, width: int = 200) -> list[str]:
    """The last ``n`` non-empty lines of ``text``, each cut to ``width`` characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [line[:width] for line in lines[-n:]]
