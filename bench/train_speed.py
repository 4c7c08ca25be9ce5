"""Benchmark: a supernet training step as ofa-edge runs it vs the same subnets as plain eager fp32 models.

For each (space, resolution, batch, threads) it times, interleaved in one process so load drift hits all
variants alike, one optimizer step of two strategies:

    sandwich  max + min + 2 random subnets, forward + backward each, one SGD step
    random    one random subnet (RSS), forward + backward, one SGD step

with these variants:

    static-fp32    baseline: each subnet extracted as its own plain eager NCHW fp32 model (no elastic slicing)
    supernet-nchw  the elastic supernet in NCHW fp32 (ofa-edge before channels_last)
    supernet       the elastic supernet as `ofa-edge train` runs it: the device's layout (channels_last on a
                   CPU, NCHW on a GPU, ofa_edge/train/layout.py) at the recommended precision (fp32)
    supernet-bf16  the same under bf16 autocast (to show whether bf16 pays on this CPU)

Speed-up = static-fp32 / supernet (mean step time over the same steps). Prints a table and writes bench/results/train_speed.json.
With ``--device cuda`` every variant runs on the GPU (timed with a synchronize around each step), the JSON goes
to bench/results/train_speed_cuda.json, and the variants separate layout and precision there:
supernet (NCHW fp32), supernet-bf16, supernet-fp16 (NCHW, fp16 with a gradient scaler), supernet-cl (channels_last
fp32) and supernet-cl-bf16 (channels_last bf16: ofa-edge's GPU default before 2026-11-28, 16x slower there).

    python bench/train_speed.py                         # full, without bf16 (~15 min on 2 quiet cores)
    python bench/train_speed.py --bf16 --configs cifar-mbv3 --threads 1 --out bench/results/train_speed_bf16.json
    python bench/train_speed.py --quick                 # smoke run
    python bench/train_speed.py --device cuda --steps 30 # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ofa_edge.space import get_space, layers, max_subnet, min_subnet, sample
from ofa_edge.supernet import OFAMobileNetV3, StaticMobileNetV3
from ofa_edge.train.layout import memory_format
from ofa_edge.train.precision import autocast, grad_scaler, resolve_precision

OUT = Path(__file__).resolve().parent / "results" / "train_speed.json"
CONFIGS = [("cifar-mbv3", 32, 64, 10), ("ofa-mbv3-w1", 128, 32, 1000)]
VARIANTS = ("static-fp32", "supernet-nchw", "supernet", "supernet-bf16")
GPU_VARIANTS = ("static-fp32", "supernet", "supernet-bf16", "supernet-fp16", "supernet-cl", "supernet-cl-bf16")
#: supernet variants: (layout, precision); None = what ofa-edge trains with on the device
LAYOUTS = {"supernet-nchw": (torch.contiguous_format, "fp32"), "supernet": (None, "auto"),
           "supernet-bf16": (None, "bf16"), "supernet-fp16": (None, "fp16"),
           "supernet-cl": (torch.channels_last, "fp32"), "supernet-cl-bf16": (torch.channels_last, "bf16")}


def step_subnets(space, strategy: str, rng: random.Random, r: int) -> list:
    """The subnets one step of ``strategy`` trains, all at resolution ``r``."""
    if strategy == "random":
        return [sample(space, rng).replace(r=r)]
    return [max_subnet(space).replace(r=r), min_subnet(space).replace(r=r),
            sample(space, rng).replace(r=r), sample(space, rng).replace(r=r)]


class Runner:
    """One variant's models and optimizers; ``step(subnets)`` runs one timed training step."""

    def __init__(self, variant: str, space, classes: int, steps: list[list],  # noqa: D107
                 device: torch.device = torch.device("cpu")):
        torch.manual_seed(0)
        self.variant, self.space, self.device = variant, space, device
        layout, precision = LAYOUTS.get(variant, (torch.contiguous_format, "fp32"))
        self.layout = layout or memory_format(device)
        self.precision = resolve_precision(precision, device)
        self.amp = autocast(self.precision, device)
        self.scaler = grad_scaler(self.precision, device)
        if variant == "static-fp32":
            self.models = {s.id: StaticMobileNetV3(layers(space, s, classes)).to(device).train()
                           for st in steps for s in st}
            self.opts = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for k, m in self.models.items()}
        else:
            net = OFAMobileNetV3(space, classes).to(device, memory_format=self.layout).train()
            self.net, self.opt = net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def step(self, subnets: list, x: torch.Tensor, y: torch.Tensor) -> float:
        if self.variant != "static-fp32":
            x = x.contiguous(memory_format=self.layout)
        self._sync()
        t = time.perf_counter()
        if self.variant == "static-fp32":
            for s in subnets:
                self.opts[s.id].zero_grad(set_to_none=True)
                F.cross_entropy(self.models[s.id](x), y).backward()
                self.opts[s.id].step()
        else:
            self.opt.zero_grad(set_to_none=True)
            for s in subnets:
                self.net.set_subnet(s)
                with self.amp():
                    loss = F.cross_entropy(self.net(x), y)
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            if self.scaler:
                self.scaler.step(self.opt)
                self.scaler.update()
            else:
                self.opt.step()
        self._sync()
        return time.perf_counter() - t


def measure(space_name: str, r: int, batch: int, classes: int, threads: int, strategy: str, steps: int,
            warmup: int, variants: tuple[str, ...] = VARIANTS, device: torch.device = torch.device("cpu")) -> dict:
    torch.set_num_threads(threads)
    space = get_space(space_name)
    rng = random.Random(1)
    plan = [step_subnets(space, strategy, rng, r) for _ in range(steps)]
    runners = {v: Runner(v, space, classes, plan, device) for v in variants}
    x, y = torch.randn(batch, 3, r, r, device=device), torch.randint(0, classes, (batch,), device=device)
    times: dict[str, list[float]] = {v: [] for v in variants}
    for i, subnets in enumerate([plan[0]] * warmup + plan):
        order = variants if i % 2 == 0 else variants[::-1]
        for v in order:
            dt = runners[v].step(subnets, x, y)
            if i >= warmup:
                times[v].append(dt)
    # every step trains other subnets (of other sizes): compare mean step times over the same steps
    mean = {v: statistics.fmean(t) * 1000 for v, t in times.items()}
    return {"space": space_name, "resolution": r, "batch": batch, "threads": threads, "strategy": strategy,
            "steps": steps, **{f"{v}_ms": round(m, 1) for v, m in mean.items()},
            "speedup": round(mean["static-fp32"] / mean["supernet"], 3),
            **({"vs_supernet": {v: round(mean["supernet"] / m, 3) for v, m in mean.items() if v != "supernet"}}
               if device.type == "cuda" else {}),
            "bf16_vs_fp32": round(mean["supernet"] / mean["supernet-bf16"], 3) if "supernet-bf16" in mean else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (cifar-tiny, 2 steps)")
    ap.add_argument("--steps", type=int, default=12, help="timed steps per variant (each a new set of subnets; "
                    "random runs twice as many). Random subnets differ in size, so few steps are noisy: cifar at 2 "
                    "threads, random, measured 1.40x over 12 steps and 1.54x over 24")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--bf16", action="store_true", help="also time bf16 autocast (about 10x slower on CPUs)")
    ap.add_argument("--configs", default=",".join(c[0] for c in CONFIGS), help="spaces to run")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default bench/results/train_speed.json, "
                    "train_speed_cuda.json with --device cuda)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda: where every variant runs")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU visible to torch")
    gpu = device.type == "cuda"
    args.out = args.out or OUT.with_name("train_speed_cuda.json" if gpu else OUT.name)
    # on a GPU the thread count does not matter; layout and precision are the variants there
    threads = [torch.get_num_threads()] if gpu else [int(t) for t in args.threads.split(",")]
    configs = [("cifar-tiny", 32, 8, 10)] if args.quick else [c for c in CONFIGS if c[0] in args.configs.split(",")]
    variants = GPU_VARIANTS if gpu else VARIANTS if args.bf16 else VARIANTS[:3]
    steps, warmup = (2, 1) if args.quick else (args.steps, 1)
    rows = []
    load_before = os.getloadavg()
    for space_name, r, batch, classes in configs:
        for n in threads:
            for strategy in ("sandwich", "random"):
                n_steps = steps * (2 if strategy == "random" else 1)  # one subnet per step: more steps
                rows.append(measure(space_name, r, batch, classes, n, strategy, n_steps, warmup, variants, device))
                row = rows[-1]
                bf16 = f"{row['bf16_vs_fp32']:>7.2f}x" if row["bf16_vs_fp32"] is not None else ""
                print(f"{row['space']:<12}{row['resolution']:>5}{row['batch']:>6}{n:>4} {strategy:<9}"
                      + "".join(f"{row[v + '_ms']:>15.1f}" for v in variants)
                      + f"{row['speedup']:>9.2f}x{bf16}", flush=True)
    result = {"benchmark": "train_speed", "format": "ofa-edge-bench-train-speed-v1", "quick": args.quick,
              "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
              "loadavg_before": [round(v, 2) for v in load_before],
              "loadavg_after": [round(v, 2) for v in os.getloadavg()],
              "device": torch.cuda.get_device_name(device) if gpu else "cpu",
              "recommended_precision_cpu": resolve_precision("auto", torch.device("cpu")),
              **({"recommended_precision_gpu": resolve_precision("auto", device)} if gpu else {}),
              "precision_accuracy_cost": "none: the recommended precision is fp32, the same arithmetic as the "
                                         "baseline (the layout changes only the memory order); bf16/fp16 top-1 "
                                         "after the same steps: tools/gpu_check.sh",
              "variants": list(variants), "target_speedup": 1.5, "rows": rows}
    print(f"columns: space r batch threads strategy | ms/step {' '.join(variants)} | speed-up | bf16 gain")
    if not args.quick:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
