"""Benchmark: can the accuracy predictor rank the packaged supernet's subnets? Noise vs spread, and predictors
side by side.

1. Measures N sampled subnets of the packaged ``cifar10-mbv3`` supernet on its validation split (4,000
   images with the recipe's 16k / 4k split; BN recalibrated on training images), through `ofa-edge predictor
   fit` (resumable CSV), and fits OFA's MLP; the fitted predictor is the packaged one
   (ofa_edge/pretrained/cifar10-mbv3/predictor.pt). ``--rows-from`` takes rows already measured on the run
   the package was made from (the same weights, saved slim), after re-measuring some of them on the package.
2. Accuracy noise vs the spread between subnets: the binomial standard error of a top-1 on the validation
   split, and the BN-recalibration noise (the same subnets recalibrated on another image sample), against
   the standard deviation of top-1 over the measured subnets.
3. The same held-out split for: OFA's MLP (3 x 400, the baseline), an ensemble of 5 MLPs (seeds), and ridge
   regression on the one-hot encoding plus MACs and parameters.

    python bench/predictor.py --threads 2       # 600 subnets: ~45 min on 2 quiet cores (measuring dominates)
    python bench/predictor.py --threads 2 --rows-from runs/cifar10-mbv3/accuracy.csv   # rows measured already
    python bench/predictor.py --quick           # smoke run (cifar-tiny, a few subnets, nothing written)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from common import shown

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10"
OUT = ROOT / "bench" / "results" / "predictor.json"
NAME = "cifar10-mbv3"


def split(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The fit's own train/held-out split (same generator as fit_predictor)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    n_hold = int(math.floor(n * holdout))
    return perm[: n - n_hold], perm[n - n_hold:]


def scores(pred: np.ndarray, truth: np.ndarray) -> dict:
    from ofa_edge.search.metrics import kendall_tau, rmse, spearman

    return {"kendall_tau": round(kendall_tau(pred, truth), 4), "spearman": round(spearman(pred, truth), 4),
            "rmse": round(rmse(pred, truth), 3)}


def compare(space, subnets, top1, n_classes: int, holdout: float, seed: int, epochs: int) -> dict:
    """Held-out quality of each predictor kind on one split (all fit on the same training rows)."""
    from ofa_edge.search.genome import GenomeCodec
    from ofa_edge.search.predictor import fit_predictor
    from ofa_edge.space.arch import count_macs, count_params

    y = np.asarray(top1, dtype=np.float64)
    tr, ho = split(len(subnets), holdout, seed)
    train_sub, train_y, held = [subnets[i] for i in tr], [top1[i] for i in tr], [subnets[i] for i in ho]
    preds = [fit_predictor(space, train_sub, train_y, holdout=0.0, epochs=epochs, seed=seed + k).predict(held)
             for k in range(5)]
    out = {"n_train": len(tr), "n_holdout": len(ho),
           "mlp": scores(preds[0], y[ho]), "mlp_ensemble5": scores(np.mean(preds, axis=0), y[ho])}
    codec = GenomeCodec(space)
    x = codec.encode(codec.from_subnets(list(subnets))).astype(np.float64)
    macs = np.array([count_macs(space, s, n_classes) / 1e6 for s in subnets])
    params = np.array([count_params(space, s, n_classes) / 1e6 for s in subnets])
    feats = np.column_stack([x, macs, params])
    mu, sd = feats[tr].mean(0), feats[tr].std(0) + 1e-9
    f = np.column_stack([(feats - mu) / sd, np.ones(len(subnets))])
    folds = np.array_split(tr, 5)

    def ridge(rows, lam):
        return np.linalg.solve(f[rows].T @ f[rows] + lam * np.eye(f.shape[1]), f[rows].T @ y[rows])

    cv = {}
    for lam in (0.1, 1.0, 10.0, 100.0):  # ridge strength by 5-fold CV on the training rows only
        cv[lam] = sum(float(((f[folds[k]] @ ridge(np.concatenate([folds[j] for j in range(5) if j != k]), lam)
                              - y[folds[k]]) ** 2).sum()) for k in range(5))
    lam = min(cv, key=cv.get)
    out["ridge_onehot_macs_params"] = {**scores(f[ho] @ ridge(tr, lam), y[ho]), "lambda": lam}
    return out


def noise(run, task, subnets, bn_images: int) -> dict:
    """BN-recalibration noise: top-1 of ``subnets`` recalibrated on two different training-image samples."""
    from ofa_edge.data import make_loader
    from ofa_edge.supernet.bn_calib import recalibrate_bn
    from ofa_edge.train.evaluate import calibration_batches, evaluate

    diffs = []
    for s in subnets:
        accs = []
        for seed in (937162211, 12345):
            run.net.set_subnet(s)
            static = run.net.get_active_subnet()
            recalibrate_bn(static, calibration_batches(task.train, s.r, bn_images, seed=seed), mode="ofa")
            accs.append(evaluate(static, make_loader(task.val, s.r, 200, train=False))["top1"])
        diffs.append(accs[0] - accs[1])
    return {"subnets": len(subnets), "bn_seed_diff_std": round(statistics.pstdev(diffs) / math.sqrt(2), 3),
            "bn_seed_diff_max": round(max(abs(d) for d in diffs), 3)}


def ceiling(run, task, pred_path: Path, subnets, top1, bn_images: int, seed: int) -> dict:
    """How well the validation split can rank at all: the held-out subnets re-measured on the test split.

    The validation images rank subnets only as well as their sampling noise allows. Measuring the
    packaged predictor's held-out subnets again on the 5,000 test images (same BN recalibration) gives
    a second, independent measurement: Kendall tau between the two measurements is the ceiling that
    any predictor scored against validation top-1 can reach, and the predictor is also scored against
    the test measurement. Only the diagnosis uses the test split; nothing is fitted on it.
    """
    from ofa_edge.search.predictor import load_predictor
    from ofa_edge.train.evaluate import evaluate_subnet

    _, ho = split(len(subnets), 0.2, seed)
    held = [subnets[i] for i in ho]
    val = np.array([top1[i] for i in ho])
    test = np.array([evaluate_subnet(run.net, s, task, bn_images, split="test")["top1"] for s in held])
    pred = np.asarray(load_predictor(pred_path).predict(held), dtype=np.float64)
    return {"subnets": len(held), "test_images": len(task.test),
            "val_vs_test": scores(val, test), "predictor_vs_val": scores(pred, val),
            "predictor_vs_test": scores(pred, test), "test_top1_std": round(float(test.std()), 3),
            "test_minus_val_mean": round(float((test - val).mean()), 3),
            "test_minus_val_std": round(float((test - val).std()), 3)}


def adopt_rows(src: Path, dst: Path, run, task, bn_images: int, check: int) -> dict:
    """Take rows measured on the run the package was made from: re-measure ``check`` of them on the package,
    require each within one validation image, and write them all as the package's rows."""
    from ofa_edge.search import read_accuracy_csv, write_accuracy_csv
    from ofa_edge.train.evaluate import evaluate_subnet

    rows = read_accuracy_csv(src, run.space, bn_images=bn_images)
    # rows of a file that did not record their BN budget take this one, which the re-measurement checks
    rows = [dataclasses.replace(r, bn_images=bn_images) for r in rows]
    picked = random.Random(2).sample(rows, min(check, len(rows)))
    diffs = [evaluate_subnet(run.net, r.subnet, task, bn_images, split="val")["top1"] - r.top1
             for r in picked]
    one_image = 100.0 / len(task.val)
    worst = max(abs(d) for d in diffs)
    if worst > one_image + 1e-6:
        raise SystemExit(f"{src}: re-measured on the package, a row differs by {worst:.3f} points (more than "
                         f"one image, {one_image:.3f}): not the same weights; measure on the package instead")
    write_accuracy_csv(dst, run.space, rows, run.sha256[:16])
    print(f"adopted {len(rows)} rows of {src.name}: {len(picked)} re-measured on the package, largest "
          f"difference {worst:.3f} points")
    return {"rows": len(rows), "checked": len(picked), "max_abs_diff": round(worst, 4)}  # CSV: 6 digits


def relative_meta(path: Path) -> None:
    """Rewrite a packaged predictor's file references as names beside it (checkpoint, accuracy rows)."""
    from ofa_edge.search.predictor import load_predictor

    pred = load_predictor(path)
    pred.meta.update(checkpoint="supernet.pt", accuracy_csv="accuracy.csv")
    pred.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=NAME)
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument("--bn-images", type=int, default=1000)
    ap.add_argument("--noise-subnets", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=200, help="MLP fit epochs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (2 on a quiet 2-core machine)")
    ap.add_argument("--quick", action="store_true", help="smoke run on a fresh cifar-tiny supernet (nothing kept)")
    ap.add_argument("--rows-from", type=Path, default=None,
                    help="accuracy CSV measured on the run the package was made from (adopted after a check)")
    ap.add_argument("--rows-check", type=int, default=20,
                    help="rows of --rows-from re-measured on the package")
    ap.add_argument("--ceiling-only", action="store_true",
                    help="only (re)measure the noise ceiling into the existing JSON (no refit)")
    args = ap.parse_args()
    if args.ceiling_only:
        return ceiling_only(args)
    from ofa_edge.pretrained import get_pretrained
    from ofa_edge.search.accuracy import read_accuracy_csv
    from ofa_edge.pipelines.checkpoint import open_run
    from ofa_edge.pipelines.predictor_fit import fit_from_checkpoint

    torch.set_num_threads(args.threads)
    if args.quick:
        import tempfile

        from ofa_edge.supernet import OFAMobileNetV3, save_supernet

        tmp = Path(tempfile.mkdtemp())
        save_supernet(OFAMobileNetV3("cifar-tiny", 10), tmp / "supernet.pt")
        ckpt, csv, pred_out, data = str(tmp / "supernet.pt"), tmp / "accuracy.csv", tmp / "predictor.pt", None
        args.samples, args.bn_images, args.noise_subnets, args.epochs = 12, 50, 2, 20
    else:
        pack = get_pretrained(args.checkpoint)
        ckpt, csv, pred_out, data = str(pack.checkpoint), pack.folder / "accuracy.csv", pack.predictor, str(DATA)
    adopted = None
    if args.rows_from is not None and not args.quick:
        pack_run = open_run(ckpt)
        adopted = adopt_rows(args.rows_from, csv, pack_run, pack_run.task(data), args.bn_images,
                             args.rows_check)
        adopted["from"] = shown(args.rows_from)
    t0 = time.perf_counter()
    info = fit_from_checkpoint(ckpt, args.samples, accuracy_csv=str(csv), out=str(pred_out), data=data,
                               bn_images=args.bn_images, epochs=args.epochs, seed=0)
    measure_s = time.perf_counter() - t0
    if not args.quick:  # the packaged predictor names its files relative to its folder (no machine paths)
        relative_meta(pred_out)
    run = open_run(ckpt)
    task = run.task(data)
    rows = read_accuracy_csv(csv, run.space)
    subnets, top1 = [r.subnet for r in rows], [r.top1 for r in rows]
    p = statistics.fmean(top1) / 100
    spread = {"top1_mean": round(statistics.fmean(top1), 3), "top1_std": round(statistics.pstdev(top1), 3),
              "top1_min": round(min(top1), 2), "top1_max": round(max(top1), 2),
              "binomial_se": round(100 * math.sqrt(p * (1 - p) / len(task.val)), 3), "val_images": len(task.val)}
    spread.update(noise(run, task, random.Random(1).sample(subnets, min(args.noise_subnets, len(subnets))),
                        args.bn_images))
    side = compare(run.space, subnets, top1, run.n_classes, 0.2, 0, args.epochs)
    ceil = ceiling(run, task, pred_out, subnets, top1, args.bn_images, 0)
    result = {"benchmark": "predictor", "format": "ofa-edge-bench-predictor-v1", "checkpoint": args.checkpoint,
              "checkpoint_sha256": run.sha256,
              "quick": args.quick, "samples": len(rows), "bn_images": args.bn_images,
              "packaged_predictor": {k: info[k] for k in ("rmse", "kendall_tau", "spearman", "n_train", "n_holdout")},
              "noise_vs_spread": spread, "side_by_side": side, "noise_ceiling": ceil, "targets": {"kendall_tau": 0.8, "rmse": 1.0},
              "measure_seconds": round(measure_s, 1), "adopted_rows": adopted, "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(), "loadavg": [round(v, 2) for v in os.getloadavg()],
              "date": time.strftime("%Y-%m-%d")}
    print(f"{len(rows)} subnets on {spread['val_images']} validation images: top-1 {spread['top1_min']}-"
          f"{spread['top1_max']} % (std {spread['top1_std']}); noise: binomial SE {spread['binomial_se']}, "
          f"BN recalibration {spread['bn_seed_diff_std']} points")
    print(f"{'predictor':<28}{'Kendall tau':>12}{'Spearman':>10}{'RMSE':>8}")
    print(f"{'packaged MLP (fit --json)':<28}{info['kendall_tau']:>12.3f}{info['spearman']:>10.3f}{info['rmse']:>8.3f}")
    for name in ("mlp", "mlp_ensemble5", "ridge_onehot_macs_params"):
        m = side[name]
        print(f"{name:<28}{m['kendall_tau']:>12.3f}{m['spearman']:>10.3f}{m['rmse']:>8.3f}")
    print_ceiling(ceil)
    if args.quick:
        return
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    card_path = get_pretrained(args.checkpoint).folder / "card.json"
    card = json.loads(card_path.read_text())
    card["predictor"] = {**result["packaged_predictor"], "samples": len(rows),
                         "split": f"val ({spread['val_images']:,} images)",
                         "bn_images": args.bn_images, "benchmark": "bench/results/predictor.json"}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {OUT} and {card_path}")


def print_ceiling(ceil: dict) -> None:
    """One line per comparison of the noise-ceiling diagnosis."""
    print(f"noise ceiling: {ceil['subnets']} held-out subnets re-measured on {ceil['test_images']} test images")
    for name in ("val_vs_test", "predictor_vs_val", "predictor_vs_test"):
        m = ceil[name]
        print(f"  {name:<26}{m['kendall_tau']:>12.3f}{m['spearman']:>10.3f}{m['rmse']:>8.3f}")
    if "test_minus_val_mean" in ceil:
        print(f"  test minus validation top-1: mean {ceil['test_minus_val_mean']:+.2f}, "
              f"std {ceil['test_minus_val_std']:.2f} points")


def ceiling_only(args) -> None:
    """Add the noise-ceiling diagnosis to the existing JSON, measured on the packaged files as they are."""
    from ofa_edge.pipelines.checkpoint import open_run
    from ofa_edge.pretrained import get_pretrained
    from ofa_edge.search.accuracy import read_accuracy_csv

    torch.set_num_threads(args.threads)
    pack = get_pretrained(args.checkpoint)
    run = open_run(str(pack.checkpoint))
    task = run.task(str(DATA))
    rows = read_accuracy_csv(pack.folder / "accuracy.csv", run.space)
    result = json.loads(OUT.read_text())
    ceil = ceiling(run, task, pack.predictor, [r.subnet for r in rows], [r.top1 for r in rows],
                   result["bn_images"], 0)
    print_ceiling(ceil)
    result["noise_ceiling"] = ceil
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
