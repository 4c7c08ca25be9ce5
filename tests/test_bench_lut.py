"""bench/lut_accuracy.py records the range of its whole subnets' latencies, and the README table shows it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ofa_edge.latency.validation import Measured, save_validation

ROOT = Path(__file__).resolve().parents[1]


def _load(rel: str):
    """Import a script of the repo (bench/, tools/) as a module."""
    spec = importlib.util.spec_from_file_location(Path(rel).stem, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_subnet_range_spans_fit_and_held_out_subnets_and_reaches_the_readme_table(tmp_path):
    rows = [Measured(split, f"n{i}", "cifar-mbv3", 10, "{}", 20, 0.3, 0.3, ms, ms * 1.1, ms * 1.2)
            for i, (split, ms) in enumerate([("fit", 0.2512), ("test", 0.1932), ("test", 0.4377), ("fit", 0.3)])]
    path = tmp_path / "onnxruntime.validation.csv"
    save_validation(path, "onnxruntime|CPUExecutionProvider||t1|w10|n40|b1|r8|min", rows)
    got = _load("bench/lut_accuracy.py").subnet_range(path, "min")
    assert got == {"n": 4, "min": 0.1932, "max": 0.4377, "statistic": "min", "source": path.name}
    line = _load("tools/update_bench_tables.py").lut_accuracy({"precision": "int8", "subnet_ms": got})
    assert "The 4 whole subnets measured (min over the rounds): **0.19-0.44 ms** (int8)." in line
