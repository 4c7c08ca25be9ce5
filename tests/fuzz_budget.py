"""How many hypothesis inputs each fuzz test tries: one table, read by the tests and by tools/fuzz_counts.py."""

from __future__ import annotations

from typing import Any, NamedTuple


class Fuzz(NamedTuple):
    """One fuzzed parser: the function under test, the only error it may raise, and the example budget."""

    parser: str
    error: str
    examples: int


FUZZ: dict[str, Fuzz] = {
    "subnet-json": Fuzz("ofa_edge.space.subnet_from_json (JSON values)", "ValueError", 400),
    "subnet-text": Fuzz("ofa_edge.space.subnet_from_json (text)", "ValueError", 200),
    "space-dict": Fuzz("ofa_edge.space.SearchSpace.from_dict", "ValueError/TypeError", 300),
    "supernet-checkpoint": Fuzz("ofa_edge.supernet.load_any (damaged bytes)", "FileFormatError", 150),
    "runner-line": Fuzz("ofa_edge.devices.bundle.parse_line", "None (rejected)", 400),
    "latency-table": Fuzz("ofa_edge.latency.table.parse_table", "FileFormatError", 300),
    "device-profile": Fuzz("ofa_edge.devices.profile.load_profile (TOML)", "OfaEdgeError", 300),
    "ofa-yaml": Fuzz("ofa_edge.latency.ofa_yaml.read_ofa_yaml", "FileFormatError", 200),
    "validation-csv": Fuzz("ofa_edge.latency.validation.load_validation", "FileFormatError", 300),
    "predictor": Fuzz("ofa_edge.search.predictor.load_predictor", "FileFormatError", 150),
    "manifest": Fuzz("ofa_edge.export.manifest.read_manifest", "FileFormatError", 300),
    "targets-toml": Fuzz("ofa_edge.pipelines.build.load_targets", "FileFormatError", 200),
    "train-state": Fuzz("ofa_edge.train.checkpoint.read_train_checkpoint", "FileFormatError", 80),
    "train-resume": Fuzz("ofa_edge.train.train(resume=...) (whole resume path)", "FileFormatError", 12),
    "sampled-csv": Fuzz("ofa_edge.train.checkpoint.read_sampled", "FileFormatError", 200),
    "sampled-log": Fuzz("ofa_edge.search.selectors.read_sampled_log", "FileFormatError", 200),
    "benchmark-model-output": Fuzz("ofa_edge.devices.benchmark_model.parse_output", "ToolOutputError", 200),
    "trtexec-output": Fuzz("ofa_edge.devices.trtexec.parse_output", "ToolOutputError", 200),
}


def fuzz_settings(name: str, **kwargs: Any):
    """Deterministic hypothesis settings with the budget of ``name`` (no deadline)."""
    from hypothesis import settings

    return settings(max_examples=FUZZ[name].examples, deadline=None, derandomize=True, database=None, **kwargs)
