"""INT8 accuracy: top-1 of ONNX and TFLite INT8 against fp32 on the CIFAR-10 test split (target: drop <= 1 point).

Takes the packaged ``cifar10-mbv3`` supernet (or ``--checkpoint``), extracts its max and min subnets,
recalibrates their batch norm on training images and builds them with ``build_target`` exactly as
``specialize`` does (ONNX + TFLite, INT8 calibrated on ``--calibration`` training images). Reports top-1 of
PyTorch fp32 and of every artefact on the test split, the drop in points and the agreement with fp32.
Prints a table and writes bench/results/int8_accuracy.json.

    python bench/int8_accuracy.py                                     # ../shared/data/cifar10, 5,000 test images
    python bench/int8_accuracy.py --calibration 64,256,1024           # calibration-size study

The INT8 files are also built with early stages in float (``--int8-float-stages``, default 0,2,5).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import checkpoint_sha256

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ofa_edge.data import make_loader  # noqa: E402
from ofa_edge.export import build_target  # noqa: E402
from ofa_edge.pipelines.checkpoint import open_run  # noqa: E402
from ofa_edge.space import max_subnet, min_subnet  # noqa: E402
from ofa_edge.supernet.bn_calib import recalibrate_bn  # noqa: E402
from ofa_edge.train.evaluate import calibration_batches  # noqa: E402

TARGET_DROP = 1.0


def _split(images, r: int):
    xs, ys = zip(*make_loader(images, r, 200, train=False))
    return torch.cat(xs), torch.cat(ys)


def run(checkpoint: str, data: str | None, calibration: list[int], bn_images: int, formats: list[str],
        float_stages: tuple[int, ...] = (0,)) -> list[dict]:
    """One row per (subnet, calibration size, artefact)."""
    trained = open_run(checkpoint)
    task = trained.task(data)
    net, rows = trained.net, []
    for which, subnet in (("max", max_subnet(net.space)), ("min", min_subnet(net.space))):
        net.set_subnet(subnet)
        static = net.get_active_subnet().eval()
        recalibrate_bn(static, calibration_batches(task.train, subnet.r, bn_images), mode="ofa")
        test = _split(task.test, subnet.r)
        for n in calibration:
            # the calibration images are the first n of the BN-recalibration draw, as in specialize
            calib = torch.cat(calibration_batches(task.train, subnet.r, max(n, bn_images)))[:n]
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                m = build_target(static, subnet, net.space, net.n_classes, tmp, formats, True, calib, test,
                                 raise_on_failure=False, int8_float_stages=float_stages)
                seconds = time.perf_counter() - t0
            fp32 = m.top1["fp32"]
            for art in m.artifacts:
                top1 = art.get("top1")
                rows.append({"subnet": which, "subnet_id": m.subnet_id, "r": subnet.r, "calibration_images": n,
                             "artifact": art["key"], "precision": art["precision"], "status": art["status"],
                             "float_stages": (art.get("int8_float") or {}).get("stages"),
                             "error": art.get("error"), "top1": top1, "top1_fp32_torch": fp32,
                             "drop_points": None if top1 is None else round(fp32 - top1, 3),
                             "agreement": art.get("top1_agreement"), "test_images": m.top1["n_images"],
                             "build_s": round(seconds, 1)})
                r = rows[-1]
                print(f"{which:4} calib {n:5}  {r['artifact']:12} top-1 {top1 if top1 is None else round(top1, 2)}"
                      f"  drop {r['drop_points']}  agreement {r['agreement']}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="cifar10-mbv3", help="supernet (default: the packaged cifar10-mbv3)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"),
                    help="data set with a test split (default ../shared/data/cifar10)")
    ap.add_argument("--calibration", default="256", help="comma-separated calibration set sizes (default 256, "
                                                         "what specialize uses)")
    ap.add_argument("--bn-images", type=int, default=2000)
    ap.add_argument("--formats", default="onnx,tflite")
    ap.add_argument("--int8-float-stages", default="0,2,5", help="INT8 files with that many stages after block 0 "
                                                                 "in float (as build --int8-float-stages)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "int8_accuracy.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sizes = [int(s) for s in args.calibration.split(",")]
    load_before = os.getloadavg()
    rows = run(args.checkpoint, args.data if Path(args.data).exists() else None, sizes, args.bn_images,
               args.formats.split(","), tuple(int(k) for k in args.int8_float_stages.split(",")))
    int8 = [r for r in rows if r["precision"].startswith("int8") and r["drop_points"] is not None]
    worst = max((r["drop_points"] for r in int8), default=None)
    out = {"checkpoint": args.checkpoint, "checkpoint_sha256": checkpoint_sha256(args.checkpoint),
           "data": Path(args.data).name, "bn_images": args.bn_images,
           "target_drop_points": TARGET_DROP, "max_drop_points": worst,
           "met": worst is not None and worst <= TARGET_DROP, "rows": rows,
           "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg())}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"largest INT8 drop: {worst} points (target <= {TARGET_DROP}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
