"""CLI start-up benchmark: median wall and CPU time of the light commands (``--help``, ``--version``,
``devices list``, ``space show``, ``status``) over N runs each, and the heavy modules each imports. Prints a
table and writes bench/results/cli_startup.json.

    python bench/cli_startup.py            # 5 runs per command
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import children_cpu_seconds as _cpu

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (("--help",), ("--version",), ("devices", "list"), ("space", "show"), ("status",))
HEAVY = ("torch", "onnx", "onnxruntime", "tensorflow")


def _run(args: tuple[str, ...], env: dict[str, str], importtime: bool = False) -> tuple[float, float, str]:
    """(wall s, CPU s, stderr) of one ``python -m ofa_edge *args``."""
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "ofa_edge", *args]
    c0, t0 = _cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, _cpu() - c0, proc.stderr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cli_startup.json"))
    args = ap.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    rows = []
    for command in COMMANDS:
        _run(command, env)  # warm the file cache
        runs = [_run(command, env) for _ in range(args.runs)]
        times, cpu = [r[0] for r in runs], [r[1] for r in runs]
        trace = _run(command, env, importtime=True)[2]
        loaded = {ln.rsplit("|", 1)[1].strip() for ln in trace.splitlines() if ln.startswith("import time:")}
        rows.append({"command": "ofa-edge " + " ".join(command), "median_s": round(statistics.median(times), 3),
                     "median_cpu_s": round(statistics.median(cpu), 3),
                     "min_s": round(min(times), 3), "max_s": round(max(times), 3), "runs": args.runs,
                     "heavy_imports": sorted(h for h in HEAVY if h in loaded)})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = {"machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "load_1min": load},
              "rows": rows}
    print(f"{'command':28} {'median s':>9} {'min s':>7} {'max s':>7} {'CPU s':>6}  heavy imports")
    for r in rows:
        print(f"{r['command']:28} {r['median_s']:9.3f} {r['min_s']:7.3f} {r['max_s']:7.3f} {r['median_cpu_s']:6.2f}  "
              f"{', '.join(r['heavy_imports']) or 'none'}")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} (load average {load})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
