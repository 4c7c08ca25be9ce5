"""INT8 vs fp32 speed of onnxruntime on this machine, by search space, resolution and batch (speed only).

Exports the max and min subnets of an (untrained: speed does not depend on weight values) supernet to ONNX
fp32 and to static INT8 (QDQ, per-channel weights, the export path `ofa-edge build` uses, calibrated on
random images), then times both in interleaved rounds (1 thread by default, median of round medians).
Prints a table and writes bench/results/int8_speed.json.

    python bench/int8_speed.py                                   # cifar-mbv3 @32 and ofa-mbv3-w1 @224, batch 1
    python bench/int8_speed.py --case cifar-mbv3:32 --batch 1,64
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ofa_edge.export.onnx import export_onnx  # noqa: E402
from ofa_edge.export.onnx_int8 import quantize_onnx  # noqa: E402
from ofa_edge.space import max_subnet, min_subnet  # noqa: E402
from ofa_edge.supernet import OFAMobileNetV3  # noqa: E402


def _session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _time(sessions: dict, x: np.ndarray, rounds: int, repeats: int) -> dict[str, float]:
    """Median over ``rounds`` of the median of ``repeats`` timed runs, the variants taking turns."""
    per: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(rounds):
        for name, sess in sessions.items():
            for _ in range(3):
                sess.run(None, {"input": x})
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                sess.run(None, {"input": x})
                times.append(time.perf_counter() - t0)
            per[name].append(statistics.median(times) * 1000)
    return {k: statistics.median(v) for k, v in per.items()}


def run_case(space: str, r: int, batches: list[int], threads: int, rounds: int, budget_s: float) -> list[dict]:
    """Rows for the max and min subnets of ``space`` at resolution ``r``."""
    net = OFAMobileNetV3(space, 1000 if space.startswith("ofa-") else 10).eval()
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((32, 3, r, r)).astype(np.float32)
    rows = []
    for which, subnet in (("max", max_subnet(net.space)), ("min", min_subnet(net.space))):
        subnet = dataclasses.replace(subnet, r=r)
        net.set_subnet(subnet)
        static = net.get_active_subnet().eval()
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(static, Path(tmp) / "m.onnx", (1, 3, r, r))
            int8 = quantize_onnx(fp32, Path(tmp) / "m.int8.onnx", calib)
            sessions = {"fp32": _session(fp32, threads), "int8": _session(int8, threads)}
            for b in batches:
                x = rng.standard_normal((b, 3, r, r)).astype(np.float32)
                t0 = time.perf_counter()
                sessions["fp32"].run(None, {"input": x})
                one = time.perf_counter() - t0
                repeats = int(min(50, max(3, budget_s / max(one, 1e-4) / rounds / 2)))
                ms = _time(sessions, x, rounds, repeats)
                rows.append({"space": space, "r": r, "subnet": which, "batch": b, "threads": threads,
                             "fp32_ms": round(ms["fp32"], 4), "int8_ms": round(ms["int8"], 4),
                             "speedup": round(ms["fp32"] / ms["int8"], 3), "repeats": repeats, "rounds": rounds})
                print(f"{space:12} {r:4} {which:4} batch {b:3}  fp32 {ms['fp32']:8.3f} ms  int8 {ms['int8']:8.3f} ms"
                      f"  int8 speed-up x{ms['fp32'] / ms['int8']:.2f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", help="SPACE:RESOLUTION (repeatable; default cifar-mbv3:32 and "
                                                    "ofa-mbv3-w1:224)")
    ap.add_argument("--batch", default="1", help="comma-separated batch sizes (default 1)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=4.0, help="timing budget per case and batch (roughly)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "int8_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = args.case or ["cifar-mbv3:32", "ofa-mbv3-w1:224"]
    batches = [int(b) for b in args.batch.split(",")]
    rows = []
    for case in cases:
        space, _, r = case.partition(":")
        rows += run_case(space, int(r), batches, args.threads, args.rounds, args.seconds)
    import onnxruntime

    out = {"onnxruntime": onnxruntime.__version__, "threads": args.threads, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
