"""Export benchmark: per format export time, file size, x86 latency (fp32 vs int8) and top-1, for the
max and min subnets of a supernet. Prints a table and writes bench/results/export.json.

    python bench/export.py --checkpoint runs/bench/supernet.pt          # full
    python bench/export.py --quick                                      # smoke run: untrained cifar-tiny
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ofa_edge.export import build_target
from ofa_edge.space import max_subnet, min_subnet


def _latency_ms(run, x: np.ndarray, repeats: int) -> float:
    for _ in range(3):
        run(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="Supernet checkpoint (ofa-edge or OFA format).")
    ap.add_argument("--data", default=None, help="Data set for ofa_edge.data.load_task (default: embedded).")
    ap.add_argument("--formats", default="onnx,tflite,coreml")
    ap.add_argument("--test-images", type=int, default=None, help="Limit the test split (default: all).")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="Untrained cifar-tiny, 200 test images, 20 repeats.")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "export.json"))
    args = ap.parse_args(argv)

    from ofa_edge.data import load_task, make_loader
    from ofa_edge.supernet.bn_calib import recalibrate_bn
    from ofa_edge.train.evaluate import calibration_batches

    torch.set_num_threads(args.threads)
    if args.quick:
        from ofa_edge.supernet import OFAMobileNetV3

        net, label = OFAMobileNetV3("cifar-tiny", 10), "untrained cifar-tiny (quick)"
        args.test_images, args.repeats = args.test_images or 200, 20
    else:
        if not args.checkpoint:
            ap.error("--checkpoint is required (or --quick)")
        from ofa_edge.supernet import load_any

        net, label = load_any(args.checkpoint), args.checkpoint
    task = load_task(args.data)
    formats = [f for f in args.formats.split(",") if f]
    rows, records = [], []
    for which, subnet in (("max", max_subnet(net.space)), ("min", min_subnet(net.space))):
        net.set_subnet(subnet)
        static = net.get_active_subnet().eval()
        calib = calibration_batches(task.train, subnet.r, 500)
        recalibrate_bn(static, calib, mode="ofa")
        xs, ys = zip(*make_loader(task.test, subnet.r, 200, train=False))
        tx, ty = torch.cat(xs), torch.cat(ys).numpy()
        if args.test_images:
            tx, ty = tx[:args.test_images], ty[:args.test_images]
        with tempfile.TemporaryDirectory() as tmp:
            m = build_target(static, subnet, net.space, net.n_classes, tmp, formats, True,
                             torch.cat(list(calib))[:256], (tx, ty), raise_on_failure=False)
            x1 = tx[:1].numpy()
            for art in m.artifacts:
                path = Path(tmp) / art["file"]
                lat = None
                if art["status"] == "ok" and art["format"] == "onnx":
                    from ofa_edge.export.onnx import OnnxRunner

                    lat = _latency_ms(OnnxRunner(path, args.threads), x1, args.repeats)
                elif art["status"] == "ok" and art["format"] == "tflite":
                    from ofa_edge.export.tflite import TFLiteRunner

                    lat = _latency_ms(TFLiteRunner(path, args.threads), x1, args.repeats)
                size = next((f["bytes"] for f in m.files if f["path"] == art["file"]), None)
                rec = {"subnet": which, "subnet_id": m.subnet_id, "macs": m.macs, "artifact": art["key"],
                       "precision": art["precision"], "status": art["status"], "error": art.get("error"),
                       "export_s": art.get("export_seconds"), "bytes": size, "latency_ms": lat,
                       "top1": art.get("top1"), "top1_fp32_torch": m.top1.get("fp32"),
                       "agreement": art.get("top1_agreement")}
                records.append(rec)
    for which in ("max", "min"):
        by = {r["artifact"]: r for r in records if r["subnet"] == which}
        for fmt in ("onnx", "tflite"):
            a, b = by.get(fmt), by.get(f"{fmt}-int8")
            if a and b and a["latency_ms"] and b["latency_ms"]:
                rows.append({"subnet": which, "format": fmt, "speedup_int8": a["latency_ms"] / b["latency_ms"],
                             "drop_points": None if a["top1"] is None else a["top1"] - b["top1"]})
    print(f"supernet: {label}   threads: {args.threads}   test images: {len(ty)}")
    print(f"{'subnet':6} {'artifact':12} {'status':7} {'export s':>8} {'size KB':>9} {'lat ms':>8} {'top1':>6} {'agree':>6}")
    for r in records:
        f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
        print(f"{r['subnet']:6} {r['artifact']:12} {r['status']:7} {f(r['export_s'], '8.2f')} "
              f"{f(None if r['bytes'] is None else r['bytes'] / 1024, '9.1f')} {f(r['latency_ms'], '8.3f')} "
              f"{f(r['top1'], '6.2f')} {f(r['agreement'], '6.3f')}")
    for r in rows:
        print(f"{r['subnet']} {r['format']}: int8 speed-up x{r['speedup_int8']:.2f}, top-1 drop "
              f"{'-' if r['drop_points'] is None else format(r['drop_points'], '.2f')} points")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"supernet": label, "quick": args.quick, "threads": args.threads,
                               "artifacts": records, "int8": rows}, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
