"""Benchmark: training-step cost of the supernet (max subnet active) vs the extracted static max subnet.

Forward + backward + SGD step, batch 64, for the CIFAR stem at 32 px ("cifar-mbv3") and the ImageNet stem at
224 px ("ofa-mbv3-w1"). Steps of the two models are interleaved so load drift hits both equally; peak
memory is the max RSS of a fresh subprocess per (model, variant). Prints a table, writes JSON.

    python bench/supernet_overhead.py            # full run (~5 min on 2 cores)
    python bench/supernet_overhead.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from ofa_edge.space import get_space, layers, max_subnet
from ofa_edge.supernet import OFAMobileNetV3, StaticMobileNetV3

CONFIGS = [("cifar-mbv3", 32, 10), ("ofa-mbv3-w1", 224, 1000)]
OUT = Path(__file__).resolve().parent / "results" / "supernet_overhead.json"


def build(space_name: str, classes: int, variant: str) -> torch.nn.Module:
    """The supernet with its max subnet active, or a static max subnet built directly (no supernet in memory)."""
    space = get_space(space_name)
    if variant == "static":
        return StaticMobileNetV3(layers(space, max_subnet(space), classes))
    net = OFAMobileNetV3(space, classes)
    net.set_max_net()
    return net


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    return time.perf_counter() - t


def time_pair(space_name: str, r: int, classes: int, batch: int, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    supernet = build(space_name, classes, "supernet").train()
    models = {"supernet": supernet, "static": supernet.get_active_subnet().train()}
    opts = {v: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for v, m in models.items()}
    x, y = torch.randn(batch, 3, r, r), torch.randint(0, classes, (batch,))
    times: dict[str, list[float]] = {v: [] for v in models}
    for i in range(warmup + steps):
        for v in (("supernet", "static") if i % 2 == 0 else ("static", "supernet")):
            dt = train_step(models[v], opts[v], x, y)
            if i >= warmup:
                times[v].append(dt)
    med = {v: statistics.median(t) for v, t in times.items()}
    return {"supernet_s": med["supernet"], "static_s": med["static"], "ratio": med["supernet"] / med["static"]}


def _vm_hwm_kib() -> int:
    """Peak resident memory of this process image (VmHWM; unlike ru_maxrss it is not inherited over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_child(space_name: str, r: int, classes: int, variant: str, batch: int) -> None:
    model = build(space_name, classes, variant).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, r, r), torch.randint(0, classes, (batch,))
    base = _vm_hwm_kib()
    for _ in range(2):
        train_step(model, opt, x, y)
    peak = _vm_hwm_kib()
    print(json.dumps({"peak_mib": peak / 1024, "step_mib": (peak - base) / 1024}))


def peak_rss(space_name: str, r: int, classes: int, variant: str, batch: int) -> dict:
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
            f"import supernet_overhead as b; b.peak_rss_child({space_name!r}, {r}, {classes}, {variant!r}, {batch})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few steps, small batch (smoke test)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--memory-only", action="store_true", help="re-measure peak memory only, keep the timings "
                    "of the last full run")
    args = ap.parse_args()
    if args.memory_only:
        result = json.loads(OUT.read_text())
        for row in result["rows"]:
            for v in ("supernet", "static"):
                mem = peak_rss(row["space"], row["resolution"], 1000 if row["space"].startswith("ofa") else 10, v,
                               row["batch"])
                row[f"{v}_peak_mib"], row[f"{v}_step_mib"] = mem["peak_mib"], mem["step_mib"]
        OUT.write_text(json.dumps(result, indent=2))
        print(json.dumps(result["rows"], indent=1))
        return
    batch, steps, warmup = (8, 2, 1) if args.quick else (args.batch, args.steps, 2)
    rows = []
    for space_name, r, classes in CONFIGS:
        timing = time_pair(space_name, r, classes, batch, steps, warmup)
        mem = {v: peak_rss(space_name, r, classes, v, batch) for v in ("supernet", "static")}
        rows.append({"space": space_name, "resolution": r, "batch": batch, "steps": steps, **timing,
                     "supernet_peak_mib": mem["supernet"]["peak_mib"], "static_peak_mib": mem["static"]["peak_mib"],
                     "supernet_step_mib": mem["supernet"]["step_mib"], "static_step_mib": mem["static"]["step_mib"]})
    print(f"{'space':<13}{'r':>5}{'batch':>7}{'supernet s/step':>17}{'static s/step':>15}{'ratio':>8}"
          f"{'peak MiB super/static':>24}")
    for row in rows:
        print(f"{row['space']:<13}{row['resolution']:>5}{row['batch']:>7}{row['supernet_s']:>17.3f}"
              f"{row['static_s']:>15.3f}{row['ratio']:>8.3f}"
              f"{row['supernet_peak_mib']:>13.0f} / {row['static_peak_mib']:<8.0f}")
    result = {"benchmark": "supernet_overhead", "quick": args.quick, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
              "date": time.strftime("%Y-%m-%d"), "target_ratio": 1.15, "rows": rows}
    if not args.quick:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(result, indent=2))
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
