"""Benchmark: OFA's claim — are the packaged supernet's subnets as good as the same networks trained alone?

Three subnets of the packaged ``cifar10-mbv3`` supernet (small: the min subnet; mid: the measured subnet
with the median MACs in its predictor rows; large: the max subnet) are each trained alone from scratch
as plain static networks with the supernet's recipe: same initial weights (the seeded fresh supernet's,
extracted), the same batches in the same order (same loader and seed), the same epochs, batch, learning
rate schedule, weight decay groups, label smoothing and dropout — so each sees as many images as the
supernet did. The only difference: a standalone network trains at its own resolution every step.

Both are then measured the same way on the 5,000 test images after BN recalibration on 2,000 training
images; the table reports supernet minus standalone (OFA claims >= 0).

Cost: one standalone run per subnet for the recipe's full budget (62 epochs at one thread: ~33 min for the min
subnet, ~1h45 for the mid one, several hours for the max subnet). Resumable: each run saves after every epoch into
``--work`` and the JSON keeps finished rows; re-running continues where it stopped.

    python bench/standalone.py                      # all three (hours on 2 cores)
    python bench/standalone.py --only small         # one of them
    python bench/standalone.py --quick              # smoke run (cifar-tiny, 2 steps, nothing written)
    python bench/standalone.py --only large --device cuda --train-only   # train on a GPU, measure later here
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from common import checkpoint_sha256

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10"
OUT = ROOT / "bench" / "results" / "standalone.json"
NAME = "cifar10-mbv3"
SIZES = ("small", "mid", "large")


def pick_subnets(pack, space, n_classes: int) -> dict:
    """small / mid / large: the min subnet, the predictor row with the median MACs, the max subnet."""
    from ofa_edge.search.accuracy import read_accuracy_csv
    from ofa_edge.space import max_subnet, min_subnet
    from ofa_edge.space.arch import count_macs

    csv = pack.folder / "accuracy.csv"
    rows = read_accuracy_csv(csv, space) if csv.is_file() else []
    by_macs = sorted(rows, key=lambda r: count_macs(space, r.subnet, n_classes))
    mid = by_macs[len(by_macs) // 2].subnet if by_macs else None  # None: the predictor's rows are not measured yet
    return {"small": min_subnet(space), "mid": mid, "large": max_subnet(space)}


def standalone_model(cfg, task, subnet):
    """The subnet extracted from a fresh supernet built exactly as the recipe's run built its own."""
    from ofa_edge.train.loop import build_net

    net, _ = build_net(cfg, task)
    net.set_subnet(subnet)
    return net.get_active_subnet().train()


def train_alone(cfg, task, space, subnet, work: Path, progress: bool = True,
                device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Train ``subnet`` alone with ``cfg``'s schedule on ``device``; resumes from ``work/state.pt``."""
    from ofa_edge.data import make_loader
    from ofa_edge.train.loop import learning_rate, param_groups
    from ofa_edge.train.layout import memory_format
    from ofa_edge.train.losses import smooth_ce
    from ofa_edge.train.strategies import at_resolution, plan_phases

    dev = torch.device(device)
    layout = memory_format(dev)  # the layout ofa-edge trains in there (the GPU epochs of the committed large
    # row ran in channels_last, before the layout change; a static fp32 model, 6 s per epoch on an H200)
    model = standalone_model(cfg, task, subnet).to(dev, memory_format=layout)
    opt = torch.optim.SGD(param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum,
                          nesterov=cfg.momentum > 0)
    (phase,) = plan_phases(cfg, space)
    # the supernet's loader: batches at the largest resolution, resized to the subnet's like each of its steps
    loader = make_loader(task.train, max(space.resolutions), cfg.batch_size, True, cfg.seed)
    steps = cfg.steps_per_epoch or len(loader)
    state_path, epoch, seconds, devices = work / "state.pt", 0, 0.0, {}
    if state_path.is_file():
        state = torch.load(state_path, map_location=dev, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        epoch, seconds = state["epoch"], state["seconds"]
        devices = dict(state.get("devices") or {"cpu": epoch})  # epochs per device (older states: CPU)
    where = device_name(dev)
    total = cfg.epochs * steps
    while epoch < cfg.epochs:
        t0, loss_sum = time.perf_counter(), 0.0
        for step in range(steps):
            k = epoch * steps + step
            x, y = loader.batch(k // len(loader), k % len(loader))
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            lr = learning_rate(cfg, phase, k, total, True, steps, 1)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            x = at_resolution(x, subnet.r).contiguous(memory_format=layout)
            loss = smooth_ce(model(x), y, cfg.label_smoothing)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach())
        epoch += 1
        seconds += time.perf_counter() - t0
        devices[where] = devices.get(where, 0) + 1
        work.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                    "seconds": seconds, "devices": devices}, state_path.with_suffix(".tmp"))
        os.replace(state_path.with_suffix(".tmp"), state_path)
        if progress:
            print(f"  epoch {epoch}/{cfg.epochs}: loss {loss_sum / steps:.4f}, {seconds / 60:.1f} min", flush=True)
    info = {"epochs": epoch, "train_seconds": round(seconds, 1), "images": epoch * steps * cfg.batch_size}
    if set(devices) != {"cpu"}:
        info["trained_on"] = devices  # epochs per device, when not all on this CPU
    return model.cpu(), info


def device_name(dev: torch.device) -> str:
    """'cpu', or 'cuda: <card>' for a GPU (recorded with the epochs trained there)."""
    return f"cuda: {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else dev.type


def task_space(cfg):
    from ofa_edge.space import resolve_space

    return resolve_space(cfg.space)


def test_top1(model, task, subnet, bn_images: int) -> dict:
    """Top-1 / ECE on the test split after BN recalibration (the same procedure as for the supernet's subnets)."""
    from ofa_edge.data import make_loader
    from ofa_edge.supernet.bn_calib import recalibrate_bn
    from ofa_edge.train.evaluate import calibration_batches, evaluate

    model = model.to(memory_format=torch.contiguous_format)
    recalibrate_bn(model, calibration_batches(task.train, subnet.r, bn_images), mode="ofa")
    r = evaluate(model.eval(), make_loader(task.test, subnet.r, 200, train=False))
    return {"top1": round(r["top1"], 2), "ece": round(r["ece"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=NAME, help="packaged supernet whose recipe and subnets are compared")
    ap.add_argument("--only", choices=SIZES, action="append", help="run only these sizes (repeatable)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "standalone", help="resumable run folders")
    ap.add_argument("--bn-images", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke run: cifar-tiny, 2 steps per epoch, nothing written")
    ap.add_argument("--device", default="cpu", help="where the standalone networks train (cpu, cuda); "
                    "the comparison is measured on the CPU")
    ap.add_argument("--data", type=Path, default=DATA, help="the CIFAR-10 folder (default ../shared/data/cifar10)")
    ap.add_argument("--train-only", action="store_true",
                    help="train (or resume) and stop: the state in --work is measured by a later run without it")
    args = ap.parse_args()
    from ofa_edge.pipelines.checkpoint import open_run
    from ofa_edge.pretrained import get_pretrained
    from ofa_edge.supernet.checkpoint import read_supernet_file
    from ofa_edge.train.config import TrainConfig
    from ofa_edge.train.evaluate import evaluate_subnet

    torch.set_num_threads(args.threads)
    pack = get_pretrained(args.checkpoint)
    saved = dict((read_supernet_file(pack.checkpoint).get("meta") or {}).get("config") or {})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in saved.items() if k in names and k not in ("data", "out", "init")})
    data = str(args.data)
    if args.quick:
        import tempfile

        cfg = dataclasses.replace(cfg, space="cifar-tiny", epochs=1, steps_per_epoch=2, batch_size=16)
        args.work, args.bn_images, data = Path(tempfile.mkdtemp()), 64, None
    elif not args.data.is_dir():
        raise SystemExit(f"needs ../shared/data/cifar10 beside the checkout, or --data ({args.data})")
    run = open_run(str(pack.checkpoint))
    task = run.task(data)
    space = task_space(cfg)
    subnets = pick_subnets(pack, run.space, run.n_classes) if not args.quick else {
        k: s for k, s in zip(SIZES, _tiny_subnets(space))}
    digest = checkpoint_sha256(str(pack.checkpoint))
    prev = json.loads(OUT.read_text()) if OUT.is_file() and not args.quick else {}
    # rows measured against another supernet file (a retrained package) are stale: run them again
    rows = {r["size"]: r for r in prev.get("rows", [])} if prev.get("checkpoint_sha256") == digest else {}
    for size in args.only or SIZES:
        s = subnets[size]
        if s is None:
            raise SystemExit(f"{size}: needs the packaged supernet's accuracy.csv; run bench/predictor.py first")
        if size in rows and rows[size]["subnet"] == s.id:
            print(f"{size}: done ({rows[size]['difference']:+.2f} points)")
            continue
        print(f"{size}: subnet {s.id} @{s.r} px, training alone for {cfg.epochs} epochs", flush=True)
        model, info = train_alone(cfg, task, space, s, args.work / size / digest[:12], device=args.device)
        if args.train_only:
            print(f"{size}: trained ({info}); measure it with a run without --train-only", flush=True)
            continue
        alone = test_top1(model, task, s, args.bn_images)
        shared = evaluate_subnet(run.net, s, task, bn_images=args.bn_images, split="test") if not args.quick \
            else {"top1": float("nan"), "ece": float("nan")}
        rows[size] = {"size": size, "subnet": s.id, "arch": s.to_json(), "resolution": s.r,
                      "supernet_top1": round(shared["top1"], 2), "supernet_ece": round(shared["ece"], 2),
                      "standalone_top1": alone["top1"], "standalone_ece": alone["ece"],
                      "difference": round(shared["top1"] - alone["top1"], 2), **info}
        print(f"{size}: supernet {rows[size]['supernet_top1']:.2f} %, alone {alone['top1']:.2f} % "
              f"({rows[size]['difference']:+.2f} points)", flush=True)
        if not args.quick:
            _write(args, cfg, rows, digest)
    if args.quick:
        print("quick run: nothing written")


def _tiny_subnets(space):
    from ofa_edge.space import max_subnet, min_subnet

    return [min_subnet(space), min_subnet(space), max_subnet(space)]


def _write(args, cfg, rows: dict, digest: str) -> None:
    done = [rows[k] for k in SIZES if k in rows]
    result = {"benchmark": "standalone", "format": "ofa-edge-bench-standalone-v1", "checkpoint": args.checkpoint,
              "checkpoint_sha256": digest,
              "recipe": {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr,
                         "weight_decay": cfg.weight_decay, "label_smoothing": cfg.label_smoothing,
                         "dropout": cfg.dropout, "seed": cfg.seed,
                         "max_every": cfg.max_every},
              "bn_images": args.bn_images, "test_images": 5000, "rows": done,
              "mean_difference": round(statistics.fmean(r["difference"] for r in done), 2),
              "claim": "supernet - standalone >= 0 (OFA)", "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "loadavg": [round(v, 2) for v in os.getloadavg()], "date": time.strftime("%Y-%m-%d")}
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
