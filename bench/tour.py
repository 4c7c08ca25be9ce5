"""The README's 5-minute tour, timed: wall and CPU seconds of each command as the README types it.

Reads the commands from the README's "A 5-minute tour" code block (so what is timed is what a user types),
runs them one after the other in a fresh folder holding a copy of the committed latency tables (the tour
runs "in the checkout root"; a copy keeps its builds out of the checkout), then, with ``--next-steps``, the
next-steps build (one budget, TFLite + CoreML INT8). Records the 1-minute load average before each command,
since a busy machine inflates the wall times but hardly the CPU times. Prints a table and writes
bench/results/tour.json.

    python bench/tour.py                  # the tour (~1.5 CPU minutes on 2 cores)
    python bench/tour.py --next-steps     # and the TFLite + CoreML INT8 build of one budget (~2 more)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import children_cpu_seconds, cpu_model

ROOT = Path(__file__).resolve().parents[1]
NEXT_STEPS = ("specialize --checkpoint cifar10-mbv3 --device x86-local --latency 0.4ms "
              "--export tflite,coreml --quantize int8 --out builds-tflite")
FORMAT_NAMES = {"onnx": "ONNX", "tflite": "TFLite", "coreml": "CoreML", "pt": "PyTorch"}


def tour_commands(readme: str) -> list[str]:
    """The ``ofa-edge`` commands of the README's tour code block, continuation lines joined, comments cut."""
    section = readme.split("## A 5-minute tour", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", "", block)
    commands = []
    for line in joined.splitlines():
        code = line.split("#", 1)[0].strip()
        if code.startswith("ofa-edge "):
            commands.append(code[len("ofa-edge "):])
    if not commands:
        raise SystemExit("README: no ofa-edge command in the '## A 5-minute tour' bash block")
    return commands


def label(command: str) -> str:
    """A short name for a table row: the (sub)command, and the budgets and formats of a specialize run."""
    words = shlex.split(command)
    name = words[0] + (f" {words[1]}" if len(words) > 1 and words[1].isalpha() else "")
    if words[0] == "specialize":
        budgets = len(words[words.index("--latency") + 1].split(","))
        formats = " + ".join(FORMAT_NAMES.get(f, f) for f in words[words.index("--export") + 1].split(","))
        formats += " + INT8" if "--quantize" in words else ""
        return f"{name} ({budgets} budget{'s' * (budgets > 1)}, {formats})"
    return name


def run(command: str, cwd: Path, env: dict[str, str]) -> dict:
    """Run one ``ofa-edge`` command; its wall and CPU seconds and the load average it started under."""
    load = os.getloadavg()[0]
    c0, t0 = children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ofa_edge", *shlex.split(command)], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - t0, children_cpu_seconds() - c0
    if proc.returncode != 0:
        raise SystemExit(f"ofa-edge {command} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return {"command": f"ofa-edge {command}", "label": label(command), "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "load_1min_before": round(load, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--next-steps", action="store_true", help="also build one budget as TFLite + CoreML INT8")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tour.json"))
    args = ap.parse_args(argv)
    commands = tour_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    with tempfile.TemporaryDirectory(prefix="ofa-edge-tour-") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "latency_tables", work / "latency_tables")
        rows = []
        for command in commands:
            rows.append(run(command, work, env))
            print(f"{rows[-1]['label']:42} {rows[-1]['wall_s']:>8.1f} s wall {rows[-1]['cpu_s']:>7.1f} s CPU "
                  f"(load {rows[-1]['load_1min_before']:.2f})", flush=True)
        extra = [run(NEXT_STEPS, work, env)] if args.next_steps else []
    for r in extra:
        print(f"{r['label']:42} {r['wall_s']:>8.1f} s wall {r['cpu_s']:>7.1f} s CPU (next steps)")
    total = {"wall_s": round(sum(r["wall_s"] for r in rows), 1), "cpu_s": round(sum(r["cpu_s"] for r in rows), 1)}
    print(f"{'all':42} {total['wall_s']:>8.1f} s wall {total['cpu_s']:>7.1f} s CPU")
    result = {"benchmark": "tour", "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                                               "cpu": cpu_model()},
              "date": time.strftime("%Y-%m-%d"), "rows": rows, "total": total, "next_steps": extra}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
