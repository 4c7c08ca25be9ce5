"""Benchmark: train the packaged supernet's recipe from scratch and report accuracy against wall time.

Trains `ofa-edge train --recipe cifar10-mbv3` (cifar-mbv3, random subnet sampling) on
../shared/data/cifar10 (the recipe's split: 16k train / 4k validation), then evaluates the max and min
subnets on the 5,000-image test split after BN recalibration (2,000 training images). The curve is the
validation top-1 of the max/min subnets against cumulative training seconds (per-epoch validation excluded).
Writes bench/results/convergence.json and docs/convergence.png; `--package` also writes the slim
packaged checkpoint and its card (ofa_edge/pretrained/cifar10-mbv3/). Resumable: re-running continues
the run in --run; a run already trained to the end (e.g. by `ofa-edge train --recipe cifar10-mbv3`) is
evaluated and packaged as it is, with its training time from its metrics (its wall time only if this
benchmark trained it).

    python bench/convergence.py --run runs/cifar10-mbv3            # < 1 h on 2 quiet cores (2 threads)
    python bench/convergence.py --run runs/cifar10-mbv3 --package  # + package it
    python bench/convergence.py --quick                            # smoke run (2 steps)
    python bench/convergence.py --run runs/c10-seed1 --seed 1      # the recipe with another seed (run-to-run
                                                                   # spread): bench/results/convergence_seed1.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from common import shown

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10"
OUT = ROOT / "bench" / "results" / "convergence.json"
PLOT = ROOT / "docs" / "convergence.png"
RECIPE = "cifar10-mbv3"
TARGETS = {"max_top1": 80.0, "min_top1": 72.0, "train_minutes": 60.0}


def train_run(run: Path, quick: bool, threads: str, seed: int | None = None) -> dict:
    """Train (or resume) the recipe into ``run``; returns wall seconds of this call and the thread choice."""
    from ofa_edge.train import train
    from ofa_edge.train.recipes import get_recipe

    over = {"data": str(DATA), "out": str(run)}
    if seed is not None:
        over["seed"] = seed
    if quick:
        over.update(space="cifar-tiny", epochs=1, steps_per_epoch=2, batch_size=16, bn_images=32, eval_every=1)
    cfg = get_recipe(RECIPE).config(**over)
    t0 = time.perf_counter()
    ckpt = run / "supernet.pt"
    result = train(None, resume=run, threads=threads) if ckpt.is_file() else train(cfg, threads=threads)
    return {"wall_seconds": round(time.perf_counter() - t0, 1),
            "threads": result.threads.describe() if result.threads else None}


def trained_to_end(run: Path) -> bool:
    """Whether ``run`` already holds a checkpoint trained for all of its configured epochs."""
    from ofa_edge.train.checkpoint import read_train_checkpoint

    if not (run / "supernet.pt").is_file() or not (run / "metrics.csv").is_file():
        return False
    return curve(run)[-1]["epoch"] == read_train_checkpoint(run)[1].epochs


def test_accuracy(run: Path, bn_images: int) -> dict:
    """Max and min subnet top-1/top-5/ECE on the test split after BN recalibration."""
    from ofa_edge.train.evaluate import evaluate_checkpoint

    out = {}
    for name in ("max", "min"):
        r = evaluate_checkpoint(run / "supernet.pt", name, bn_images=bn_images, data=str(DATA), split="test")
        out.update({f"{name}_top1": round(r["top1"], 2), f"{name}_top5": round(r["top5"], 2),
                    f"{name}_ece": round(r["ece"], 2), "test_images": r["n"]})
    return out


def curve(run: Path) -> list[dict]:
    """Per-epoch rows of metrics.csv with cumulative training seconds."""
    import csv

    rows, total = [], 0.0
    with open(run / "metrics.csv") as fh:
        for rec in csv.DictReader(fh):
            total += float(rec["seconds"])
            row = {"epoch": int(rec["epoch"]), "train_seconds": round(total, 1), "loss": float(rec["loss"])}
            if rec.get("val_max_top1"):
                row.update(val_max_top1=float(rec["val_max_top1"]), val_min_top1=float(rec["val_min_top1"]))
            rows.append(row)
    return rows


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in result["curve"] if "val_max_top1" in r]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for key, label, colour in (("max", "max subnet", "tab:blue"), ("min", "min subnet", "tab:orange")):
        ax.plot([p["train_seconds"] / 60 for p in pts], [p[f"val_{key}_top1"] for p in pts], "o-", color=colour,
                label=f"{label}, validation ({result['val_images'] / 1000:g}k)")
        end = result["test"][f"{key}_top1"]
        ax.plot([pts[-1]["train_seconds"] / 60], [end], "*", color=colour, markersize=14,
                label=f"{label}, test (5k): {end:.1f}%")
    for key, colour in (("max_top1", "tab:blue"), ("min_top1", "tab:orange")):
        ax.axhline(TARGETS[key], color=colour, linestyle=":", linewidth=1)
    ax.set_xlabel("training wall time (min, 2-core CPU)")
    ax.set_ylabel("top-1 (%) after BN recalibration")
    ax.set_title(f"{RECIPE} recipe: accuracy vs wall time (dotted: targets)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def package(run: Path, result: dict) -> Path:
    """Write the slim packaged checkpoint (weights, space, head map; data: the embedded set) and its card."""
    from ofa_edge.pretrained import CARD, CARD_FORMAT, ROOT as PRETRAINED
    from ofa_edge.supernet import load_supernet, save_supernet
    from ofa_edge.supernet.checkpoint import read_supernet_file

    folder = PRETRAINED / RECIPE
    folder.mkdir(parents=True, exist_ok=True)
    net = load_supernet(run / "supernet.pt")
    cfg = dict((read_supernet_file(run / "supernet.pt").get("meta") or {}).get("config") or {})
    trained_on = cfg.get("data")
    if trained_on and Path(trained_on).resolve() == DATA.resolve():
        trained_on = "../shared/data/cifar10"  # no paths of the machine it was trained on
    cfg.update(data=None, out=f"pretrained/{RECIPE}")  # a user's default data: the embedded set
    save_supernet(net.to(memory_format=torch.contiguous_format), folder / "supernet.pt",
                  config=cfg, pretrained=RECIPE)
    card = {"format": CARD_FORMAT, "name": RECIPE, "space": net.space.name, "classes": net.n_classes,
            "data": "CIFAR-10, 20k training images (../shared/data/cifar10: "
                    f"{result['train_images'] // 1000}k train / {result['val_images'] // 1000}k val), 32 px",
            "trained_on": trained_on, "recipe": {"name": RECIPE, "command": f"python bench/convergence.py --run "
                                                 f"runs/{RECIPE} --package", "config": cfg},
            "metrics": {**result["test"], "split": "test (5,000 images)", "bn_images": result["bn_images"]},
            "train_minutes": round(result["train_seconds"] / 60, 1),
            "provenance": {"date": result["date"], "torch": result["torch"], "cpu": result["cpu"],
                           "benchmark": "bench/results/convergence.json"}}
    from ofa_edge.train.checkpoint import read_train_checkpoint

    state = read_train_checkpoint(run)[2]
    steps = int(state["metrics"][0]["images"]) // int(cfg["batch_size"])  # one process: images / batch
    card["training_log"] = {"steps_per_epoch": steps,
                            "note": f"sampled.csv is not shipped: the last-sampled selector replays it from the "
                                    f"recipe ({steps} steps per epoch)"}
    old = folder / CARD
    if old.is_file():  # keep the predictor section written by bench/predictor.py
        card["predictor"] = json.loads(old.read_text()).get("predictor", {})
    old.write_text(json.dumps(card, indent=2) + "\n")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None,
                    help="run folder, resumed if present (default: runs/cifar10-mbv3; --quick: a temporary one)")
    ap.add_argument("--threads", default="auto")
    ap.add_argument("--bn-images", type=int, default=2000)
    ap.add_argument("--package", action="store_true", help="write ofa_edge/pretrained/cifar10-mbv3/")
    ap.add_argument("--quick", action="store_true", help="smoke run: cifar-tiny, 2 steps, nothing written")
    ap.add_argument("--seed", type=int, default=None,
                    help="the recipe with this seed instead of its own: results go to convergence_seed<N>.json "
                         "(no plot; never packaged), for the run-to-run spread")
    args = ap.parse_args()
    scratch = None
    if args.run is None:  # a smoke run never trains into the real run's folder (a later run would resume it)
        import tempfile

        scratch = Path(tempfile.mkdtemp(prefix="convergence-quick-")) if args.quick else None
        args.run = scratch or ROOT / "runs" / RECIPE
    if args.seed is not None and args.package:
        ap.error("--seed: only the recipe's own run is packaged; drop --package")
    out = OUT if args.seed is None else OUT.with_name(f"convergence_seed{args.seed}.json")
    if not DATA.is_dir():
        raise SystemExit(f"needs ../shared/data/cifar10 beside the checkout ({DATA})")
    load = os.getloadavg()
    prev = json.loads(out.read_text()) if out.is_file() and not args.quick else {}
    finished = trained_to_end(args.run)
    info = train_run(args.run, args.quick, args.threads, args.seed)
    rows = curve(args.run)
    if finished and prev.get("run") == shown(args.run) and prev.get("epochs") == rows[-1]["epoch"]:
        # nothing was trained now (e.g. a re-run with --package): keep the wall time of the call that trained it
        info = {"wall_seconds": prev["wall_seconds"], "threads": prev.get("threads")}
        load = tuple(prev.get("loadavg_at_start", load))
    elif finished:  # trained to the end before, by another command: its training seconds are in its metrics
        note = "an earlier command (wall time not measured here; train_seconds from metrics.csv)"
        info = {"wall_seconds": None, "threads": None, "trained_by": note}
        load = None
    test = test_accuracy(args.run, 64 if args.quick else args.bn_images)
    from ofa_edge.pipelines.checkpoint import open_run
    from ofa_edge.train.checkpoint import read_train_checkpoint

    seed = read_train_checkpoint(args.run)[1].seed  # the run's own (the recipe's unless --seed)
    task = open_run(args.run / "supernet.pt").task(str(DATA))
    result = {"benchmark": "convergence", "format": "ofa-edge-bench-convergence-v1", "recipe": RECIPE,
              "run": shown(args.run), "data": "../shared/data/cifar10", "quick": args.quick, "seed": seed,
              "train_images": len(task.train), "val_images": len(task.val),
              "train_seconds": rows[-1]["train_seconds"], "epochs": rows[-1]["epoch"], **info,
              "bn_images": args.bn_images, "test": test, "curve": rows, "targets": TARGETS,
              "meets": {"max": test["max_top1"] >= TARGETS["max_top1"], "min": test["min_top1"] >= TARGETS["min_top1"],
                        "time": rows[-1]["train_seconds"] <= TARGETS["train_minutes"] * 60},
              "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "loadavg_at_start": [round(v, 2) for v in load] if load else None,
              "date": time.strftime("%Y-%m-%d")}
    print(f"{RECIPE}: {rows[-1]['epoch']} epochs, {rows[-1]['train_seconds'] / 60:.1f} min training; test top-1 "
          f"max {test['max_top1']:.2f}% (target {TARGETS['max_top1']}), min {test['min_top1']:.2f}% "
          f"(target {TARGETS['min_top1']}); ECE max {test['max_ece']:.2f} min {test['min_ece']:.2f}")
    if args.quick:
        if scratch is not None:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
        return
    out.write_text(json.dumps(result, indent=2) + "\n")
    if args.seed is None:
        plot(result, PLOT)
    print(f"wrote {out}" + (f" and {PLOT}" if args.seed is None else ""))
    if args.package:
        print(f"packaged {package(args.run, result)}")


if __name__ == "__main__":
    main()
