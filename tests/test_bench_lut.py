"""bench/lut_accuracy.py records the range of its whole subnets' latencies, and the README table shows it."""

from __future__ import annotations

from repo_scripts import load_script

from ofa_edge.latency.validation import Measured, save_validation


def test_subnet_range_spans_fit_and_held_out_subnets_and_reaches_the_readme_table(tmp_path):
    rows = [Measured(split, f"n{i}", "cifar-mbv3", 10, "{}", 20, 0.3, 0.3, ms, ms * 1.1, ms * 1.2)
            for i, (split, ms) in enumerate([("fit", 0.2512), ("test", 0.1932), ("test", 0.4377), ("fit", 0.3)])]
    path = tmp_path / "onnxruntime.validation.csv"
    save_validation(path, "onnxruntime|CPUExecutionProvider||t1|w10|n40|b1|r8|min", rows)
    got = load_script("bench/lut_accuracy.py").subnet_range(path, "min")
    assert got == {"n": 4, "min": 0.1932, "max": 0.4377, "statistic": "min", "source": path.name}
    line = load_script("tools/update_bench_tables.py").lut_accuracy({"precision": "int8", "subnet_ms": got})
    assert "The 4 whole subnets measured (min over the rounds): **0.19-0.44 ms** (int8)." in line
