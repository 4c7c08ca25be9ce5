"""tools/gpu_check.sh stays runnable: its CPU dry run trains, resumes exactly, runs the CLI and exports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu(tmp_path):
    env = {**os.environ, "GPU_CHECK_DEVICE": "cpu", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "PYTHON": sys.executable}
    summary = tmp_path / "gpu_check.json"
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), "2", str(summary)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(summary.read_text())
    assert got["card"] == "cpu (dry run)" and got["steps"] == 2
    assert got["auto_resolves_to"] == "fp32"
    assert [got[p]["resolved"] for p in ("fp32", "bf16")] == ["fp32", "bf16"]
    assert all(0 <= got[p]["max_top1_embedded_test"] <= 100 for p in ("fp32", "bf16"))
    assert got["resume"] == {"stage": "resume", "precision": "bf16", "interrupted": True, "bit_exact": True}
    assert (got["cli"]["exit"], got["cli"]["device"], got["cli"]["precision"]) == (0, "cpu", "fp32")
    assert got["export"]["gpu_vs_cpu_max_abs"] == 0.0 and got["export"]["onnx_vs_torch_max_abs"] < 1e-4
