"""Benchmark: search speed with OFA's defaults, and (full mode) evolution vs last-sampled vs random.

Part 1 (always): wall time of one evolutionary search with OFA's defaults (population 100, 500 generations,
25 % parents, 50 % mutants) maximising an OFA-layout MLP predictor (random weights: the cost does not depend
on them) under a table latency budget, for the CIFAR and the ImageNet w1.0 spaces. The latency table is a
deterministic synthetic per-layer table (same code path as a profiled one: per-layer rows summed).

Part 2 (full mode, needs a trained run, its predictor and a device table): for 3 latency budgets and each
selector, ``specialize`` the subnet and report predicted vs measured (test split) top-1 and predicted vs
measured latency on the device.

    python bench/search.py --quick
    python bench/search.py --checkpoint cifar10-mbv3 --device x86-local --latency 0.22ms,0.32ms,0.42ms \
        --latency-margin 0,5                    # fp32 table and models, without and with a 5 % margin
    python bench/search.py --checkpoint cifar10-mbv3 --device x86-local --latency 0.25ms,0.32ms,0.39ms \
        --precision int8 --latency-margin 0,5   # INT8 table and models, without and with a 5 % margin
    python bench/search.py --checkpoint cifar10-mbv3 --device x86-local --latency 0.25ms,0.32ms,0.39ms \
        --precision int8 --retries 2            # no margin; picks measured over budget searched again
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from common import checkpoint_sha256

from ofa_edge.search import EvolutionConfig, SearchSetup, evolve, parse_latencies
from ofa_edge.search.predictor import AccuracyPredictor, Predictor
from ofa_edge.space import encoding_size, get_space, layers

OUT = Path(__file__).resolve().parent / "results" / "search.json"


class SyntheticTable:
    """Per-layer latency = MACs / 50 M per ms, times a per-key hash factor in [0.8, 1.2]."""

    def __init__(self, space, n_classes):
        self.space, self.n_classes = space, n_classes

    def predict(self, subnets):
        out = []
        for s in subnets:
            total = 0.0
            for spec in layers(self.space, s, self.n_classes):
                u = int(hashlib.sha256(spec.lut_key().encode()).hexdigest()[:6], 16) / 0xFFFFFF
                total += 0.01 + spec.macs / 5e7 * (0.8 + 0.4 * u)
            out.append(total)
        return out


def time_search(space_name: str, n_classes: int, repeats: int, generations: int) -> dict:
    space = get_space(space_name)
    torch.manual_seed(0)
    pred = Predictor(space, AccuracyPredictor(encoding_size(space), base_acc=0.7))
    t0 = time.perf_counter()
    setup = SearchSetup.build(space, n_classes, pred.score_genomes, SyntheticTable(space, n_classes))
    build_s = time.perf_counter() - t0
    lo, hi = setup.latency.minimum()[0], setup.latency.maximum()[0]
    budget = lo + 0.4 * (hi - lo)
    times, best = [], None
    for seed in range(repeats):
        res = evolve(setup.codec, setup.score, setup.constraints(budget),
                     EvolutionConfig(generations=generations, seed=seed))
        times.append(res.seconds)
        best = res
    return {"space": space_name, "n_classes": n_classes, "generations": generations, "population": 100,
            "budget_ms": budget, "fastest_ms": lo, "slowest_ms": hi, "setup_s": build_s,
            "search_s_median": statistics.median(times), "search_s_max": max(times),
            "evaluated": best.evaluated, "best_latency_ms": best.best.costs["latency_ms"]}


def compare_selectors(args) -> tuple[list[dict], dict[str, str]]:
    """Rows per (margin, selector, budget), and the selectors skipped with why."""
    from ofa_edge.errors import FileFormatError
    from ofa_edge.pipelines import SpecializeRequest, specialize

    rows = []
    from ofa_edge.search.select import SELECTORS

    skipped: dict[str, str] = {}
    for margin, selector in [(m, s) for m in args.latency_margin for s in SELECTORS]:
        try:
            manifests = specialize(SpecializeRequest(args.checkpoint, args.device, parse_latencies(args.latency),
                                                     selector=selector,
                                                     out=Path(args.out) / f"{selector}-m{margin:g}",
                                                     export=("pt",), tables_dir=args.tables,
                                                     bn_images=args.bn_images, measure=not args.no_measure,
                                                     precision=args.precision, latency_margin=margin,
                                                     retries=args.retries))
        except FileFormatError as exc:  # e.g. last-sampled on a supernet shipped without its training log
            print(f"{selector}: skipped ({exc})")
            skipped[selector] = f"sampled.csv: {exc.problem}"  # no machine path in the JSON
            continue
        for m in manifests:
            rows.append({"selector": selector, "margin_pct": margin, "budget_ms": m["budget_ms"],
                         "subnet": m["subnet_id"],
                         "r": m["resolution"], "macs": m["macs"],
                         "latency_pred_ms": m["latency_ms"]["predicted"],
                         "latency_meas_ms": m["latency_ms"]["measured"],
                         "top1_pred": m["top1"]["predicted"], "top1_test": m["top1"]["measured"],
                         "picks_measured": len(m["latency_ms"].get("attempts", [])) or 1})
    return rows, skipped


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="timing only, 1 repeat per space")
    ap.add_argument("--checkpoint", help="trained supernet for the selector comparison")
    ap.add_argument("--device", default="x86-local")
    ap.add_argument("--latency", default="2ms,4ms,8ms", help="3 budgets for the selector comparison")
    ap.add_argument("--tables", default="latency_tables")
    ap.add_argument("--out", default="builds/bench-search")
    ap.add_argument("--bn-images", type=int, default=500)
    ap.add_argument("--no-measure", action="store_true", help="do not measure the chosen subnets on the device")
    ap.add_argument("--retries", type=int, default=0,
                    help="searches again after a pick measured over budget (specialize's default is 2; 0 here "
                         "measures the table's first pick)")
    ap.add_argument("--latency-margin", default="0", type=lambda t: [float(x) for x in t.split(",")],
                    help="comma-separated margins (percent of the budget) to search with, e.g. 0,5")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "int8"),
                    help="int8: search with the device's INT8 table and measure the INT8 models")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    repeats = 1 if args.quick else 5
    timing = [time_search("cifar-mbv3", 10, repeats, 500), time_search("ofa-mbv3-w1", 1000, repeats, 500)]
    print(f"{'space':<14}{'gens':>6}{'setup s':>10}{'search s (median)':>20}{'max':>8}{'evaluated':>11}")
    for t in timing:
        print(f"{t['space']:<14}{t['generations']:>6}{t['setup_s']:>10.3f}{t['search_s_median']:>20.3f}"
              f"{t['search_s_max']:>8.3f}{t['evaluated']:>11}")
    result = {"benchmark": "search", "quick": args.quick, "precision": args.precision, "python": sys.version.split()[0],
              "torch": torch.__version__, "machine": platform.machine(), "timing": timing}
    if args.checkpoint:
        rows, skipped = compare_selectors(args)
        print(f"\n{'selector':<14}{'margin':>7}{'budget':>8}{'lat pred':>10}{'lat meas':>10}{'top1 pred':>11}"
              f"{'top1 test':>11}")
        for r in rows:
            meas = "-" if r["latency_meas_ms"] is None else f"{r['latency_meas_ms']:.3f}"
            pred = "-" if r["top1_pred"] is None else f"{r['top1_pred']:.2f}"
            print(f"{r['selector']:<14}{r['margin_pct']:>6g}%{r['budget_ms']:>8g}{r['latency_pred_ms']:>10.3f}"
                  f"{meas:>10}{pred:>11}{r['top1_test']:>11.2f}")
        result["checkpoint"] = args.checkpoint
        result["checkpoint_sha256"] = checkpoint_sha256(args.checkpoint)
        result["selectors"] = rows
        result["skipped"] = skipped
        result["retries"] = args.retries
    OUT.parent.mkdir(parents=True, exist_ok=True)
    name = ("search" + ("_int8" if args.precision == "int8" else "") + ("_retries" if args.retries and not args.no_measure else "")
            + (".quick" if args.quick else "") + ".json")
    OUT.with_name(name).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
