"""bench/tour.py times exactly the commands the README's tour types, and its table renders from its JSON."""

from __future__ import annotations

import shlex

from repo_scripts import ROOT, load_script

from ofa_edge.cli import app


def test_the_tour_commands_are_the_readmes_and_each_is_a_real_command():
    tour = load_script("bench/tour.py")
    commands = tour.tour_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert commands[0] == "pretrained list" and commands[-1].startswith("report ")
    assert any(c.startswith("specialize ") and "--export onnx" in c for c in commands)  # continuation joined
    import typer

    root = typer.main.get_command(app)
    root.load_all()
    for command in commands:
        words = shlex.split(command)
        assert words[0] in root.commands, command
        assert not any("#" in w for w in words), command  # comments cut


def test_labels_and_the_readme_table():
    tour = load_script("bench/tour.py")
    assert tour.label("specialize --checkpoint x --latency 0.25ms,0.4ms --export onnx --quantize int8") == \
        "specialize (2 budgets, ONNX + INT8)"
    assert tour.label("pretrained list") == "pretrained list"
    assert tour.label("eval --checkpoint cifar10-mbv3 --subnet max") == "eval"
    row = {"command": "ofa-edge eval", "label": "eval", "wall_s": 60.0, "cpu_s": 30.0, "load_1min_before": 0.5}
    doc = {"machine": {"cpu": "AMD EPYC (avx2)", "cpu_count": 2}, "date": "2026-12-07", "rows": [row],
           "total": {"wall_s": 60.0, "cpu_s": 30.0},
           "next_steps": [{**row, "command": "ofa-edge specialize --export tflite", "load_1min_before": 1.5}]}
    text = load_script("tools/update_bench_tables.py").tour(doc)
    first = "AMD EPYC (avx2), 2 cores, 2026-12-07; 1-minute load average before the commands 0.50-1.50."
    assert text.splitlines()[0] == first
    assert "| `eval` | 60.0 | 30.0 |" in text and "| all | 60.0 (1 min) | 30.0 (0 min) |" in text
    assert text.endswith("Next steps, `ofa-edge specialize --export tflite`: 60.0 s wall, 30.0 s CPU.")
    assert tour.label("report builds/x86-local") == "report"
    assert tour.label("specialize --latency 0.4ms --export tflite,coreml --quantize int8") == \
        "specialize (1 budget, TFLite + CoreML + INT8)"
