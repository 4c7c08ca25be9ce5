"""The main job end to end (``ofa-edge demo``) and reports over files already on disk (``ofa-edge report``)."""

from ofa_edge.demo.report import BuildRow, collect_rows, describe_rows, lut_scatter, render_table
from ofa_edge.demo.run import DemoConfig, run_demo

__all__ = ["BuildRow", "DemoConfig", "collect_rows", "describe_rows", "lut_scatter", "render_table", "run_demo"]
