"""The end-to-end flows, composed from the libraries below them: specialize, pareto, predictor fit, build, demo.

Nothing under ``ofa_edge`` imports this package except the CLI; the names load on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainedRun": "checkpoint", "open_run": "checkpoint",
    "fit_from_checkpoint": "predictor_fit",
    "SpecializeRequest": "specialization", "build_folder": "specialization", "specialize": "specialization",
    "pareto": "front",
    "Target": "build", "TargetsFile": "build", "load_targets": "build", "run_matrix": "build",
    "specialize_builder": "build",
    "DemoConfig": "demo", "run_demo": "demo",
    "BuildRow": "report", "collect_rows": "report", "describe_rows": "report", "lut_scatter": "report",
    "render_table": "report", "read_summary": "report", "summary_lines": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"ofa_edge.pipelines.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'ofa_edge.pipelines' has no attribute {name!r}")
