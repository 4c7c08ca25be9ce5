"""Benchmark: the four training strategies, SOLAR heads and TOFA's unlabelled data, at one budget.

Every run trains a supernet from scratch on ../shared/data/cifar10 (CIFAR stem, 32 px) for the same
number of steps x labelled images per step, then reports max-net and min-net test top-1 and ECE after
BN recalibration, wall time and images/s. Runs:

    progressive, random, sandwich (heads 1)       strategies at one budget (all labels)
    sandwich-heads4                               SOLAR: 4 switchable heads vs sandwich's 1
    tofa-25                                       25 labels per class + the rest unlabelled
    sandwich-25                                   sandwich on the same 250 labelled images alone

Resumable: each run keeps its checkpoint in bench/results/ckpt/<bench>/<run>/ and its result in the
JSON; re-running skips finished runs and resumes an interrupted one. Single-threaded torch by default
(2 shared cores: more threads were ~10x slower here under load).

    python bench/train_strategies.py            # full (cifar-mbv3, 200 steps x 64 images per run, ~40 min)
    python bench/train_strategies.py --quick    # smoke run (cifar-tiny, a few steps)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FORMAT = "ofa-edge-bench-train-strategies-v1"


def runs(quick: bool) -> dict[str, dict]:
    """Run name -> TrainConfig overrides."""
    return {
        "progressive": {"strategy": "progressive"},
        "random": {"strategy": "random"},
        "sandwich": {"strategy": "sandwich"},
        "sandwich-heads4": {"strategy": "sandwich", "heads": 4},
        "tofa-25": {"strategy": "tofa", "labels_per_class": 25},
        "sandwich-25": {"strategy": "sandwich", "labels_per_class": 25},
    }


def base_config(args) -> dict:
    if args.quick:
        return dict(space="cifar-tiny", epochs=4, steps_per_epoch=2, batch_size=16, bn_images=64, eval_every=0)
    return dict(space=args.space, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                batch_size=args.batch_size, bn_images=500, eval_every=0, lr=args.lr)


def run_one(name: str, overrides: dict, args, ckpt_root: Path) -> dict:
    from ofa_edge.data import load_task
    from ofa_edge.space import max_subnet, min_subnet
    from ofa_edge.supernet import load_supernet
    from ofa_edge.train import TrainConfig, train
    from ofa_edge.train.checkpoint import read_train_checkpoint
    from ofa_edge.train.evaluate import evaluate_subnet

    out = ckpt_root / name
    if args.init and overrides.get("labels_per_class"):
        overrides = {**overrides, "init": args.init, "space": None}
    cfg = TrainConfig(**{**base_config(args), **overrides, "data": args.data, "out": str(out), "seed": args.seed})
    ckpt = out / "supernet.pt"
    done = False
    if ckpt.is_file():
        _, saved, state = read_train_checkpoint(ckpt)
        if saved.to_dict() != cfg.to_dict():
            raise SystemExit(f"{out} holds a run with other settings; delete that folder or rerun with the "
                             "options it was started with")
        done = state["epoch"] >= (saved.epochs if saved.strategy != "progressive" or not saved.phase_epochs
                                  else sum(saved.phase_epochs))
    t0 = time.perf_counter()
    if not done:
        last = [0.0]

        def progress(ev):
            if ev["event"] == "step" and time.perf_counter() - last[0] > 30:
                last[0] = time.perf_counter()
                print(f"  {name}: epoch {ev['epoch'] + 1}/{ev['epochs']} step {ev['step']}/{ev['steps']} "
                      f"loss {ev['loss']:.3f} {ev['images_per_s']:.0f} img/s", flush=True)

        train(None if ckpt.is_file() else cfg, resume=ckpt if ckpt.is_file() else None, progress=progress)
    _, saved, state = read_train_checkpoint(ckpt)
    metrics = state["metrics"]
    net = load_supernet(ckpt)
    task = load_task(saved.data, saved.val_fraction, saved.labels_per_class, saved.seed)
    row = {"strategy": saved.strategy, "heads": saved.heads, "labels_per_class": saved.labels_per_class,
           "steps": state["iteration"], "labelled_images": sum(m["images"] for m in metrics),
           "train_seconds": round(sum(m["seconds"] for m in metrics), 1),
           "final_loss": metrics[-1]["loss"]}
    row["images_per_s"] = round(row["labelled_images"] / max(row["train_seconds"], 1e-9), 1)
    for kind, sub in (("max", max_subnet(net.space)), ("min", min_subnet(net.space))):
        r = evaluate_subnet(net, sub, task, bn_images=args.bn_eval, split="test")
        row[f"{kind}_top1"], row[f"{kind}_top5"], row[f"{kind}_ece"] = (round(r["top1"], 2), round(r["top5"], 2),
                                                                        round(r["ece"], 2))
    row["eval_seconds"] = round(time.perf_counter() - t0, 1) if done else None
    row["test_images"] = r["n"]
    return row


def markdown(results: dict) -> str:
    lines = ["| run | strategy | heads | labels/class | steps x imgs | max top-1 | min top-1 | max ECE | min ECE "
             "| train s | img/s |", "|" + "---|" * 11]
    for name, r in results.items():
        lines.append(f"| {name} | {r['strategy']} | {r['heads']} | {r['labels_per_class'] or 'all'} | "
                     f"{r['steps']} x {r['labelled_images'] // max(r['steps'], 1)} | {r['max_top1']:.2f} | "
                     f"{r['min_top1']:.2f} | {r['max_ece']:.2f} | {r['min_ece']:.2f} | {r['train_seconds']:.0f} | "
                     f"{r['images_per_s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="cifar-tiny, a few steps: a smoke run")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"),
                    help="data folder (default ../shared/data/cifar10 beside the repo)")
    ap.add_argument("--space", default="cifar-mbv3")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--steps-per-epoch", type=int, default=25)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--init", default=None, help="checkpoint both 25-label runs start from (transfer, as TOFA)")
    ap.add_argument("--bn-eval", type=int, default=1000, help="BN recalibration images before test evaluation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated run names")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.bn_eval = 100
    from ofa_edge.io import atomic_write_text
    from ofa_edge.train import TrainingInterrupted

    tag = "train_strategies" + (".quick" if args.quick else "")
    out_json = RESULTS / f"{tag}.json"
    ckpt_root = RESULTS / "ckpt" / tag
    doc = json.loads(out_json.read_text()) if out_json.is_file() else {}
    # recorded relative to the repo (no machine paths in committed results)
    data = os.path.relpath(args.data, ROOT) if os.path.isabs(args.data) else args.data
    settings = {**base_config(args), "data": data, "seed": args.seed, "init": args.init}
    if doc.get("format") != FORMAT or doc.get("config") != settings:
        doc = {"format": FORMAT, "config": settings, "runs": {}}
    doc.update(threads=args.threads, machine=platform.platform(), torch=torch.__version__)
    wanted = [n for n in args.only.split(",") if n] or list(runs(args.quick))
    for name in wanted:
        if name in doc["runs"]:
            print(f"{name}: done (cached)")
            continue
        print(f"{name}: training", flush=True)
        try:
            doc["runs"][name] = run_one(name, runs(args.quick)[name], args, ckpt_root)
        except TrainingInterrupted as exc:
            print(f"interrupted: {exc}\nre-run the same command to resume", file=sys.stderr)
            sys.exit(130)
        atomic_write_text(out_json, json.dumps(doc, indent=2) + "\n")
        print(f"{name}: {doc['runs'][name]}", flush=True)
    r = doc["runs"]
    comp = {}
    if "sandwich" in r and "sandwich-heads4" in r:
        comp["solar_heads4_minus_heads1"] = {k: round(r["sandwich-heads4"][k] - r["sandwich"][k], 2)
                                             for k in ("max_top1", "min_top1", "max_ece", "min_ece")}
    if "tofa-25" in r and "sandwich-25" in r:
        comp["tofa25_minus_sandwich25"] = {k: round(r["tofa-25"][k] - r["sandwich-25"][k], 2)
                                           for k in ("max_top1", "min_top1", "max_ece", "min_ece")}
    doc["comparisons"] = comp
    doc["readme_table"] = markdown(r)
    atomic_write_text(out_json, json.dumps(doc, indent=2) + "\n")
    print(doc["readme_table"])
    print(json.dumps(comp, indent=2))
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main()
