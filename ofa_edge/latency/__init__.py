"""Latency tables: layer enumeration, per-layer models, profiling, prediction, correction and validation."""

from ofa_edge.latency.blocks import enumerate_blocks
from ofa_edge.latency.fit import accuracy_metrics, fit_correction, kendall_tau
from ofa_edge.latency.precision import PRECISIONS, check_precision, table_stem
from ofa_edge.latency.ofa_yaml import predict_ofa, read_ofa_yaml, read_ofa_yaml_dir
from ofa_edge.latency.profiler import (ProfileInterrupted, ProfileOptions, ProfileResult,
                                       plan_calibration_subnets, prepare_models, profile_device, profile_fleet,
                                       table_paths, validate_device)
from ofa_edge.latency.table import Correction, LatencyTable, Row, load_table, parse_table
from ofa_edge.latency.validation import Measured, load_validation, save_validation

__all__ = [
    "Correction", "LatencyTable", "Measured", "PRECISIONS", "ProfileInterrupted", "ProfileOptions", "ProfileResult", "Row",
    "accuracy_metrics", "check_precision", "enumerate_blocks", "fit_correction", "kendall_tau", "load_table", "load_validation",
    "parse_table", "plan_calibration_subnets", "predict_ofa", "prepare_models", "profile_device", "profile_fleet",
    "read_ofa_yaml", "read_ofa_yaml_dir", "save_validation", "table_paths", "table_stem", "validate_device",
]
