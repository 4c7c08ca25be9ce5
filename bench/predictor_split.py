"""Benchmark: how large must the validation split be for the accuracy predictor to rank the packaged
supernet's subnets (Kendall tau >= 0.8)?

The packaged predictor is fitted on top-1 measured on the 2,000-image validation split, and bench/predictor.py
shows that split's sampling noise caps any predictor scored on it near tau 0.7. This benchmark measures the
packaged ``cifar10-mbv3`` subnets once per image on all 7,000 images the supernet never trained on (2,000
validation + 5,000 test; BN recalibrated exactly as ``ofa-edge predictor fit`` does), then redraws measurement
splits of n images from that pool and, for each n:

- fits OFA's MLP (and a 5-seed ensemble) on the 80 % training subnets' top-1 on those n images, and scores the
  held-out 20 % against their top-1 on the same n images (what ``predictor fit --json`` reports) and against
  the other 7,000 - n images (an independent re-measurement);
- reports the noise of a subnet's top-1 relative to the others (paired over the same images) against the
  spread between subnets.

It is a diagnosis: the test images serve only to size a validation split; nothing shipped is fitted on them.

    python bench/predictor_split.py --subnets 600    # ~60 min measuring on 2 quiet cores, ~15 min fitting
    python bench/predictor_split.py --quick          # smoke run (cifar-tiny, a few subnets, nothing written)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10"
OUT = ROOT / "bench" / "results" / "predictor_split.json"
CACHE = ROOT / "bench" / "results" / "work" / "predictor_split_hits.npz"
NAME = "cifar10-mbv3"
from predictor import scores, split  # (the same held-out split and metrics as bench/predictor.py)


def image_hits(net, subnet, task, bn_images: int) -> np.ndarray:
    """One subnet's per-image correctness (bool) on validation then test, after BN recalibration."""
    from ofa_edge.data import make_loader
    from ofa_edge.supernet.bn_calib import recalibrate_bn
    from ofa_edge.train.evaluate import calibration_batches

    net.set_subnet(subnet)
    static = net.get_active_subnet()
    recalibrate_bn(static, calibration_batches(task.train, subnet.r, bn_images), mode="ofa")
    static.eval()
    hits = []
    with torch.no_grad():
        for data in (task.val, task.test):
            for x, y in make_loader(data, subnet.r, 200, train=False):
                hits.append((static(x).argmax(1) == y).numpy())
    return np.concatenate(hits)


def measure(run, task, subnets, bn_images: int, cache: Path | None) -> tuple[np.ndarray, float]:
    """Per-image hits of every subnet (rows) on val + test (columns), resumed from ``cache`` (if measured on
    the same checkpoint), and the measuring seconds they took (all invocations together)."""
    from rich.progress import track

    n_img = len(task.val) + len(task.test)
    ids = [s.id for s in subnets]
    done: dict[str, np.ndarray] = {}
    spent = 0.0
    if cache is not None and cache.is_file():
        z = np.load(cache)
        same = "checkpoint" in z.files and str(z["checkpoint"]) == run.sha256
        if same and int(z["n_images"]) == n_img and int(z["bn_images"]) == bn_images:
            done = dict(zip(z["ids"].tolist(), np.unpackbits(z["hits"], axis=1, count=n_img).astype(bool)))
            spent = float(z["seconds"]) if "seconds" in z.files else 0.0
    todo = [s for s in subnets if s.id not in done]
    start = last = time.monotonic()
    for k, s in enumerate(track(todo, description=f"measuring {len(todo)} subnets on {n_img} images")):
        done[s.id] = image_hits(run.net, s, task, bn_images)
        if cache is not None and (time.monotonic() - last > 60 or k == len(todo) - 1):
            save_cache(cache, done, n_img, bn_images, spent + time.monotonic() - start, run.sha256)
            last = time.monotonic()
            print(f"{k + 1}/{len(todo)} subnets measured, saved to {cache.name}", flush=True)
    return np.stack([done[i] for i in ids]), spent + time.monotonic() - start


def save_cache(path: Path, done: dict, n_img: int, bn_images: int, seconds: float, checkpoint: str) -> None:
    """Write the hits measured so far (packed bits), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = list(done)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, ids=np.array(ids), hits=np.packbits(np.stack([done[i] for i in ids]), axis=1),
                        n_images=n_img, bn_images=bn_images, seconds=seconds, checkpoint=checkpoint)
    os.replace(tmp, path)


def paired_noise(hits: np.ndarray) -> float:
    """Mean standard error (points) of a subnet's top-1 minus the mean over subnets, on these images."""
    dev = hits.astype(np.float64) - hits.mean(0, keepdims=True)
    return float(100 * np.mean(dev.std(1) / math.sqrt(hits.shape[1])))


def fit_scores(space, subnets, acc: np.ndarray, other: np.ndarray | None, epochs: int, ensemble: int,
               n_train: int | None = None) -> dict:
    """Fit on the (first ``n_train``) training subnets' ``acc``; score the held-out ones against ``acc`` and
    ``other``."""
    from ofa_edge.search.predictor import fit_predictor

    tr, ho = split(len(subnets), 0.2, 0)
    tr = tr[:n_train]
    train_sub, held = [subnets[i] for i in tr], [subnets[i] for i in ho]
    preds = [fit_predictor(space, train_sub, acc[tr].tolist(), holdout=0.0, epochs=epochs, seed=k)
             .predict(held) for k in range(ensemble)]
    out = {"mlp_same": scores(preds[0], acc[ho]), "ensemble_same": scores(np.mean(preds, 0), acc[ho])}
    if other is not None:
        out["mlp_independent"] = scores(preds[0], other[ho])
        out["ensemble_independent"] = scores(np.mean(preds, 0), other[ho])
        out["measurement_vs_independent"] = scores(acc[ho], other[ho])
    return out


def mean_of(draws: list[dict]) -> dict:
    """Mean (and spread) of each metric over the draws."""
    out = {}
    for key in draws[0]:
        out[key] = {}
        for m in draws[0][key]:
            vals = [d[key][m] for d in draws]
            out[key][m] = round(statistics.fmean(vals), 4)
            if m == "kendall_tau" and len(vals) > 1:
                out[key]["kendall_tau_sd"] = round(statistics.stdev(vals), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=NAME)
    ap.add_argument("--sizes", default="1000,2000,3000,5000,7000",
                    help="measurement split sizes (images) to simulate, comma-separated")
    ap.add_argument("--subnets", type=int, default=None,
                    help="subnets to measure: the packaged accuracy.csv's 300, extended along the same "
                         "sampler plan when larger (about 6 s each on 2 cores)")
    ap.add_argument("--draws", type=int, default=5, help="random image draws per size")
    ap.add_argument("--ensemble", type=int, default=5, help="MLPs (seeds) in the ensemble")
    ap.add_argument("--epochs", type=int, default=200, help="MLP fit epochs")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (2 on a quiet 2-core machine)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run on a fresh cifar-tiny supernet (nothing kept)")
    args = ap.parse_args()
    from ofa_edge.pipelines.checkpoint import open_run
    from ofa_edge.pretrained import get_pretrained
    from ofa_edge.search.accuracy import plan_subnets, read_accuracy_csv

    torch.set_num_threads(args.threads)
    sizes = [int(v) for v in args.sizes.split(",")]
    if args.quick:
        import tempfile

        from ofa_edge.supernet import OFAMobileNetV3, save_supernet

        tmp = Path(tempfile.mkdtemp())
        save_supernet(OFAMobileNetV3("cifar-tiny", 10), tmp / "supernet.pt")
        run = open_run(str(tmp / "supernet.pt"))
        task = run.task(None)
        subnets, bn_images, cache, csv_top1 = plan_subnets(run.space, 12, 0), 50, None, None
        n_pool = len(task.val) + len(task.test)
        sizes, args.draws, args.ensemble, args.epochs = [n_pool // 2, n_pool], 2, 2, 20
    else:
        pack = get_pretrained(args.checkpoint)
        run = open_run(str(pack.checkpoint))
        task = run.task(str(DATA))
        csv_rows = read_accuracy_csv(pack.folder / "accuracy.csv", run.space)
        # the packaged rows are the first of OFA's sampler's plan (seed 0); --subnets extends that plan
        subnets = plan_subnets(run.space, max(args.subnets or len(csv_rows), len(csv_rows)), 0)
        if [s.id for s in subnets[:len(csv_rows)]] != [r.subnet.id for r in csv_rows]:
            raise SystemExit("the packaged accuracy.csv is not the seed-0 plan of `predictor fit`")
        csv_top1 = np.array([r.top1 for r in csv_rows])
        card = json.loads((pack.folder / "card.json").read_text())
        bn_images, cache = int(card.get("predictor", {}).get("bn_images", 1000)), CACHE
    hits, measure_s = measure(run, task, subnets, bn_images, cache)
    n_pool = hits.shape[1]
    full = 100 * hits.mean(1)
    val_top1 = 100 * hits[:, :len(task.val)].mean(1)
    # the same measurement as the packaged accuracy.csv (predictor fit): its validation top-1 must come back
    csv_diff = (None if csv_top1 is None
                else round(float(np.abs(val_top1[:len(csv_top1)] - csv_top1).max()), 3))
    if csv_diff is not None:
        print(f"validation top-1 vs the packaged accuracy.csv: max difference {csv_diff} points")
    for n in sizes:
        if not 0 < n <= n_pool:
            raise SystemExit(f"--sizes: {n} is not between 1 and the {n_pool} pooled images")

    def simulate(n: int, n_train: int | None) -> dict:
        """Mean scores over draws of n images (the same draws for every n_train at one n)."""
        rng, draws = np.random.default_rng(n), []
        for _ in range(args.draws if n < n_pool else 1):
            idx = rng.permutation(n_pool)
            acc = 100 * hits[:, idx[:n]].mean(1)
            rest = 100 * hits[:, idx[n:]].mean(1) if n <= n_pool - 1000 else None  # >= 1,000 images left
            draws.append(fit_scores(run.space, subnets, acc, rest, args.epochs, args.ensemble, n_train))
        return {"draws": len(draws), **mean_of(draws)}

    rows = []
    for n in sizes:
        row = {"images": n, "paired_noise_se": round(paired_noise(hits[:, :n]), 3), **simulate(n, None)}
        rows.append(row)
        same, ind = row["mlp_same"], row.get("ensemble_independent")
        print(f"{n:>6} images: noise {row['paired_noise_se']:.2f} pts; MLP tau {same['kendall_tau']:.3f} "
              f"(RMSE {same['rmse']:.2f}), ensemble tau {row['ensemble_same']['kendall_tau']:.3f}"
              + (f"; vs independent images: ensemble {ind['kendall_tau']:.3f}, measurement "
                 f"{row['measurement_vs_independent']['kendall_tau']:.3f}" if ind else ""))
    # more measured subnets instead of more images: fewer training subnets at the largest two sizes
    counts = []
    n_tr = len(split(len(subnets), 0.2, 0)[0])
    for n in sorted(set(sizes))[-2:]:
        for k in sorted({max(2, n_tr // 4), max(2, n_tr // 2)}):
            counts.append({"images": n, "train_subnets": k, **simulate(n, k)})
            mlp, ens = counts[-1]["mlp_same"], counts[-1]["ensemble_same"]
            print(f"{k:>6} training subnets, {n} images: MLP tau {mlp['kendall_tau']:.3f}, "
                  f"ensemble tau {ens['kendall_tau']:.3f}")
    result = {"benchmark": "predictor_split", "format": "ofa-edge-bench-predictor-split-v1",
              "checkpoint": args.checkpoint, "checkpoint_sha256": run.sha256, "quick": args.quick,
              "subnets": len(subnets),
              "pool_images": {"val": len(task.val), "test": len(task.test)}, "bn_images": bn_images,
              "spread": {"top1_std": round(float(full.std()), 3), "top1_min": round(float(full.min()), 2),
                         "top1_max": round(float(full.max()), 2), "top1_mean": round(float(full.mean()), 3)},
              "val_vs_accuracy_csv_max_diff": csv_diff,
              "val_top1": [round(float(v), 2) for v in val_top1],
              "test_top1": [round(float(v), 2) for v in 100 * hits[:, len(task.val):].mean(1)],
              "train_subnets": n_tr, "sizes": rows, "fewer_train_subnets": counts,
              "targets": {"kendall_tau": 0.8, "rmse": 1.0},
              "measure_seconds": round(measure_s, 1), "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(), "threads": args.threads,
              "loadavg": [round(v, 2) for v in os.getloadavg()], "date": time.strftime("%Y-%m-%d")}
    if args.quick:
        return
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
