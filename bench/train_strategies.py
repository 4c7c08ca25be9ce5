"""Benchmark: the four training strategies, SOLAR heads and TOFA's unlabelled data, at one budget.

Every run trains a supernet from scratch on ../shared/data/cifar10 (CIFAR stem, 32 px) for the same
number of steps x labelled images per step, then reports max-net and min-net test top-1 and ECE after
BN recalibration, wall time and images/s. Runs:

    progressive, random, sandwich (heads 1)       strategies at one budget (all labels)
    sandwich-heads4                               SOLAR: 4 switchable heads vs sandwich's 1
    tofa-25                                       25 labels per class + the rest unlabelled
    sandwich-25                                   sandwich on the same 250 labelled images alone

With ``--minutes M`` the budget is equal wall-clock instead: each run trains for about M minutes of
training steps (its step count planned from a timing probe of a few real steps of each of its phases, so a
cheap strategy takes more steps), split into ``--segments`` epochs with the max/min subnets validated every
``--eval-every`` epochs; the JSON keeps that accuracy-vs-time curve per run and the gain over its last
quarter. Results go to train_strategies_m<M>.json (plot: docs/train_strategies_m<M>.png). When a run of a
shorter budget with the same settings is there too, each row also gets what the longer budget added to its
test top-1 (``budget_gain``): near 0 means the shorter run was already past its knee. Equal minutes on
another kind of CPU buy other step counts, so ``--host-tag TAG`` keeps such runs in their own file,
train_strategies_m<M>_<TAG>.json (and its own checkpoints and plot), compared only with each other; every
file records the CPU its latest run trained on. ``--steps N`` is the host-independent budget: each run trains
N steps in ``--segments`` epochs, with the same curve and knee as ``--minutes``, into train_strategies_s<N>.json
(for one run taken further than a session's minutes allow, on any CPU and thread count); there a comparison
(SOLAR 4 heads vs 1, TOFA vs sandwich on 25 labels) whose other run is in no file of that budget takes it from
a file of the same recipe where it trained the same number of steps.

Resumable: each run keeps its checkpoint in bench/results/ckpt/<bench>/<run>/ and its result in the
JSON; re-running skips finished runs and resumes an interrupted one. Options that differ from those the
file's runs were made with are refused (exit 2, naming them) unless ``--replace`` starts a new file.
Single-threaded torch by default (2 shared cores: more threads were ~10x slower here under load).

    python bench/train_strategies.py            # equal images (cifar-mbv3, 200 steps x 64 images per run, ~40 min)
    python bench/train_strategies.py --minutes 15 --batch-size 128 --lr 0.15 --weight-decay 5e-4 \
        --warmup-epochs 1                       # equal wall-clock, 15 min of training per run (~1h40 for six)
    python bench/train_strategies.py --minutes 60 --batch-size 128 --lr 0.15 --weight-decay 5e-4 \
        --warmup-epochs 1 --only random,sandwich-heads4,tofa-25 &   # 4x that budget, two runs at a time
    python bench/train_strategies.py --minutes 60 ... --only sandwich,progressive,sandwich-25
    python bench/train_strategies.py --minutes 60 ... --report   # tables and plot from the finished runs only
    python bench/train_strategies.py --minutes 140 ... --only sandwich &   # and --only random beside it: two
                                                # all-label runs in ~2.5 h (a 240-min run outlives one sitting)
    python bench/train_strategies.py --minutes 140 ... --host-tag avx2 --only sandwich &  # another CPU kind:
                                                # and --only sandwich-heads4 beside it, in their own file
    python bench/train_strategies.py --steps 8672 ... --threads 2 --only progressive  # 2x the steps progressive
                                                # took in 140 min on the AVX2 host, alone on both cores
    python bench/train_strategies.py --steps 8912 ... --threads 2 --only sandwich  # SOLAR's pair: 4 heads
                                                # trained 8,912 steps in the 240-min file; 1 head, same steps
    python bench/train_strategies.py --quick    # smoke run (cifar-tiny, a few steps)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import cpu_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FORMAT = "ofa-edge-bench-train-strategies-v1"
PROBE_STEPS = 4
# comparison name -> (run, the run it is measured against): the seeds' claims the table reports as differences
PAIRS = {"solar_heads4_minus_heads1": ("sandwich-heads4", "sandwich"),
         "tofa25_minus_sandwich25": ("tofa-25", "sandwich-25")}
BUDGET_KEYS = {"minutes", "steps", "steps_per_epoch", "host_tag"}  # settings that name a budget, not a recipe


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
    """TrainConfig settings shared by every run (the equal wall-clock mode plans steps per epoch per run)."""
    if args.quick:
        base = {"space": "cifar-tiny", "epochs": 4, "steps_per_epoch": 2, "batch_size": 16, "bn_images": 64,
                "eval_every": 0}
    else:
        base = {"space": args.space, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
                "batch_size": args.batch_size, "bn_images": 500, "eval_every": 0, "lr": args.lr,
                "weight_decay": args.weight_decay, "warmup_epochs": args.warmup_epochs}
    if args.minutes:
        base.update(epochs=args.segments, steps_per_epoch=None, eval_every=args.eval_every)
    elif args.steps:
        base.update(epochs=args.segments, steps_per_epoch=args.steps // args.segments, eval_every=args.eval_every)
    return base


def probe_phase_seconds(cfg, n_phases: int) -> list[float]:
    """Seconds per training step in each of the ``n_phases`` phases of ``cfg``'s run, from a few real steps."""
    from ofa_edge.train import train

    # one extra epoch in the first phase: its first steps pay one-off costs and are not counted
    shape = {"phase_epochs": (2,) + (1,) * (n_phases - 1)} if cfg.strategy == "progressive" else {"epochs": 2}
    with tempfile.TemporaryDirectory() as tmp:
        probe = dataclasses.replace(cfg, out=tmp, steps_per_epoch=PROBE_STEPS, eval_every=0, **shape)
        metrics = train(probe).metrics
    return [m["seconds"] / PROBE_STEPS for m in metrics[1:]]


def plan_steps_per_epoch(cfg, minutes: float) -> tuple[int, list[float]]:
    """Steps per epoch that make ``cfg``'s training steps take about ``minutes`` (and the probe's step times)."""
    from ofa_edge.space import resolve_space
    from ofa_edge.train.strategies import plan_phases

    phases = plan_phases(cfg, resolve_space(cfg.space))
    step_s = probe_phase_seconds(cfg, len(phases))
    per_epoch = sum(ph.epochs * t for ph, t in zip(phases, step_s))
    return max(1, int(minutes * 60 / per_epoch)), step_s


def curve(metrics: list[dict]) -> list[dict]:
    """Validation top-1 of the max/min subnets against cumulative training seconds and images, per validated epoch."""
    points, seconds, images = [], 0.0, 0
    for m in metrics:
        seconds, images = seconds + m["seconds"], images + m["images"]
        if "val_max_top1" in m:
            points.append({"epoch": m["epoch"], "seconds": round(seconds, 1), "images": images,
                           "max_top1": round(m["val_max_top1"], 2), "min_top1": round(m["val_min_top1"], 2)})
    return points


def last_quarter_gain(points: list[dict], key: str) -> float | None:
    """How much validation top-1 the last quarter of training time added (small: the run is past its knee)."""
    if len(points) < 2:
        return None
    cut = 0.75 * points[-1]["seconds"]
    before = [p for p in points if p["seconds"] <= cut] or points[:1]
    return round(points[-1][key] - before[-1][key], 2)


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
    done, probe = False, None
    if ckpt.is_file():
        _, saved, state = read_train_checkpoint(ckpt)
        # what the run resolved when it started: its precision, and in --minutes mode its planned steps
        same = dataclasses.replace(cfg, precision=saved.precision, steps_per_epoch=saved.steps_per_epoch
                                   if args.minutes else cfg.steps_per_epoch)
        if saved.to_dict() != same.to_dict():
            raise SystemExit(f"{out} holds a run with other settings; delete that folder or rerun with the "
                             "options it was started with")
        done = state["epoch"] >= (saved.epochs if saved.strategy != "progressive" or not saved.phase_epochs
                                  else sum(saved.phase_epochs))
    elif args.minutes:
        steps, probe = plan_steps_per_epoch(cfg, args.minutes)
        cfg = dataclasses.replace(cfg, steps_per_epoch=steps)
        print(f"  {name}: probe {', '.join(f'{t:.2f}' for t in probe)} s/step -> {cfg.epochs} epochs x {steps} "
              f"steps for ~{args.minutes:g} min", flush=True)
        out.mkdir(parents=True, exist_ok=True)  # kept beside the checkpoint, so a resumed run still reports it
        (out / "probe.json").write_text(json.dumps(probe) + "\n")
    if probe is None and (out / "probe.json").is_file():
        probe = json.loads((out / "probe.json").read_text())
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
    if args.minutes:
        row["planned_minutes"] = args.minutes
        row["probe_step_seconds"] = [round(t, 3) for t in probe] if probe else None
    if args.minutes or args.steps:
        row["curve"] = curve(metrics)
        row["last_quarter_gain"] = {k: last_quarter_gain(row["curve"], f"{k}_top1") for k in ("max", "min")}
    for kind, sub in (("max", max_subnet(net.space)), ("min", min_subnet(net.space))):
        r = evaluate_subnet(net, sub, task, bn_images=args.bn_eval, split="test")
        row[f"{kind}_top1"], row[f"{kind}_top5"], row[f"{kind}_ece"] = (round(r["top1"], 2), round(r["top5"], 2),
                                                                        round(r["ece"], 2))
    row["eval_seconds"] = round(time.perf_counter() - t0, 1) if done else None
    row["test_images"] = r["n"]
    return row


def markdown(results: dict) -> str:
    """The README table; with the equal wall-clock curves, the validation gain over each run's last quarter."""
    knee = any("last_quarter_gain" in r for r in results.values())
    gains = [r["budget_gain"] for r in results.values() if r.get("budget_gain")]
    unit = "step" if any("from_steps" in g for g in gains) else "min"
    budget = ", ".join(f"{m:g}" for m in sorted({g.get("from_steps", g.get("from_minutes")) for g in gains}))
    head = ("| run | strategy | heads | labels/class | steps x imgs | max top-1 | min top-1 | max ECE | min ECE "
            "| train s | img/s |" + (" last-quarter gain max / min |" if knee else "")
            + (f" test top-1 gain over the {budget} {unit} run, max / min |" if budget else ""))
    lines = [head, "|" + "---|" * (11 + bool(knee) + bool(budget))]
    for name, r in results.items():
        line = (f"| {name} | {r['strategy']} | {r['heads']} | {r['labels_per_class'] or 'all'} | "
                f"{r['steps']} x {r['labelled_images'] // max(r['steps'], 1)} | {r['max_top1']:.2f} | "
                f"{r['min_top1']:.2f} | {r['max_ece']:.2f} | {r['min_ece']:.2f} | {r['train_seconds']:.0f} | "
                f"{r['images_per_s']:.1f} |")
        if knee:
            g = r.get("last_quarter_gain") or {}
            line += " " + " / ".join("-" if g.get(k) is None else f"{g[k]:+.2f}" for k in ("max", "min")) + " |"
        if budget:
            b = r.get("budget_gain")
            line += (f" {b['max_top1']:+.2f} / {b['min_top1']:+.2f} |" if b else " - |")
        lines.append(line)
    return "\n".join(lines)


def file_settings(doc: dict, quick: bool) -> dict | None:
    """The options a results file's runs were made with; None when it holds no results of this benchmark.

    Files written before ``--bn-eval`` was recorded were evaluated with its default (100 for --quick)."""
    if doc.get("format") != FORMAT or not isinstance(doc.get("config"), dict):
        return None
    return {"bn_eval": 100 if quick else 1000, **doc["config"]}


def merge_finished(doc: dict, out_json: Path, settings: dict, quick: bool) -> None:
    """Keep the rows another invocation (other --only runs, started beside this one) wrote to the file."""
    now = json.loads(out_json.read_text()) if out_json.is_file() else {}
    if file_settings(now, quick) == settings:
        doc["runs"] = {**now["runs"], **doc["runs"]}


def same_recipe_runs(settings: dict) -> list[tuple[str, dict]]:
    """(file stem, runs) of every budgeted results file made with these settings but for the budget."""
    same = {k: v for k, v in settings.items() if k not in BUDGET_KEYS}
    found = []
    for path in sorted(RESULTS.glob("train_strategies_*.json")):  # a --quick file's settings never match
        other = json.loads(path.read_text())
        cfg = file_settings(other, False) or {}
        if (cfg.get("minutes") or cfg.get("steps")) and {k: v for k, v in cfg.items() if k not in BUDGET_KEYS} == same:
            found.append((path.stem, other["runs"]))
    return found


def pair_rows(doc: dict, settings: dict) -> dict:
    """Each pair of PAIRS that has both runs -> ({run: row}, the file its partner came from or None).

    In a ``--steps`` file a pair's missing run is taken from any file of the same recipe where it trained the
    same number of steps, so a run added at one budget completes a pair begun at another budget that bought
    as many steps."""
    runs_here = doc["runs"]
    others = same_recipe_runs(settings) if settings.get("steps") else []  # read the files once, not per pair
    found = {}
    for key, (first, second) in PAIRS.items():
        rows, source = {n: runs_here[n] for n in (first, second) if n in runs_here}, None
        if others and len(rows) == 1:
            (have, row), = rows.items()
            want = second if have == first else first
            match = [(stem, r[want]) for stem, r in others if r.get(want, {}).get("steps") == row["steps"]]
            if match:
                source, rows[want] = match[0]
        if len(rows) == 2:
            found[key] = (rows, source)
    return found


def comparisons(doc: dict, settings: dict) -> dict:
    """Each pair of PAIRS that has both runs: the first's top-1 and ECE minus the second's (``from_file``
    names the file of a partner taken from another file: pair_rows)."""
    found = {}
    for key, (rows, source) in pair_rows(doc, settings).items():
        first, second = PAIRS[key]
        found[key] = {k: round(rows[first][k] - rows[second][k], 2) for k in ("max_top1", "min_top1", "max_ece", "min_ece")}
        if source:
            found[key]["from_file"] = source
    return found


def partners_from_files(doc: dict, settings: dict) -> dict:
    """Run name -> (label, row) of each pair partner taken from another file, for the plot to draw."""
    return {name: (f"{row['steps']} steps ({source})", row)
            for rows, source in pair_rows(doc, settings).values() if source
            for name, row in rows.items() if name not in doc["runs"]}


def budget_gains(doc: dict, settings: dict) -> dict:
    """Add to each run what its budget added over the same run at the longest shorter budget on file.

    Minutes compare with minutes on one host (same file settings but ``minutes``). A ``--steps`` run compares
    with the same run at the most steps below its own in any file of the same settings but the budget, since
    steps, unlike minutes, mean the same on every CPU; for those, returns run name -> (label, that shorter
    row), which the plot draws beside the run."""
    if settings.get("minutes"):
        budget_gains_minutes(doc, settings)
        return {}
    others = same_recipe_runs(settings)
    drawn = {}
    for name, row in doc["runs"].items():
        row.pop("budget_gain", None)
        shorter = [(r[name]["steps"], stem, r[name]) for stem, r in others if r.get(name, {}).get("steps", 1e18)
                   < row["steps"]]
        if shorter:
            steps, stem, short = max(shorter, key=lambda t: t[0])
            row["budget_gain"] = {"from_steps": steps, "from_file": stem,
                                  **{k: round(row[k] - short[k], 2) for k in ("max_top1", "min_top1")}}
            drawn[name] = (f"{steps} steps ({stem})", short)
    return drawn


def budget_gains_minutes(doc: dict, settings: dict) -> None:
    """budget_gains for a --minutes file: over the same run in the file of the longest shorter budget."""
    minutes, best = settings["minutes"], None
    for path in RESULTS.glob("train_strategies_m*.json"):  # a --quick file's settings never match a full run's
        other = json.loads(path.read_text())
        cfg = file_settings(other, False) or {}
        if not cfg.get("minutes") or cfg["minutes"] >= minutes or {**cfg, "minutes": minutes} != settings:
            continue
        if best is None or cfg["minutes"] > best["config"]["minutes"]:
            best = other
    for name, row in doc["runs"].items():
        short = (best or {}).get("runs", {}).get(name)
        row.pop("budget_gain", None)
        if short:
            row["budget_gain"] = {"from_minutes": best["config"]["minutes"],
                                  **{k: round(row[k] - short[k], 2) for k in ("max_top1", "min_top1")}}


def plot(results: dict, path: Path, by_steps: bool = False, shorter: dict | None = None,
         partners: dict | None = None) -> None:
    """Validation top-1 of each run's max (solid) and min (dashed) subnet against training minutes (or steps).

    ``shorter`` (run name -> (label, row)) adds, thin and in the same colour, the same run at a smaller
    budget, so a --steps plot shows what the extra steps added; ``partners`` (run name -> (label, row)) adds, in
    their own colours, the pair partners taken from other files (partners_from_files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def x(r: dict, p: dict) -> float:
        return p["images"] / (r["labelled_images"] / r["steps"]) if by_steps else p["seconds"] / 60

    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    drawn = [(name, r, "") for name, r in results.items()]
    drawn += [(name, r, f", {label}") for name, (label, r) in (partners or {}).items()]
    for i, (name, r, suffix) in enumerate(drawn):
        pts, colour = r.get("curve") or [], f"C{i}"
        for key, style in (("max", "o-"), ("min", "s--")):
            ax.plot([x(r, p) for p in pts], [p[f"{key}_top1"] for p in pts], style, color=colour,
                    markersize=3, label=f"{name} {key}{suffix}")
            if name in (shorter or {}) and not suffix:  # not for a partner from another file
                label, short = shorter[name]
                ax.plot([x(short, p) for p in short.get("curve") or []],
                        [p[f"{key}_top1"] for p in short.get("curve") or []], style, color=colour, markersize=2,
                        linewidth=0.8, alpha=0.45, label=f"{name} {key}, {label}")
    ax.set_xlabel("training steps" if by_steps else "training time (min, one thread)")
    ax.set_ylabel("validation top-1 (%), BN recalibrated")
    ax.set_title(f"Strategies at equal {'steps' if by_steps else 'wall-clock'}: max (solid) and min (dashed) subnets")
    ax.grid(alpha=0.3)
    # below the axes: inside them, the legend of four or more curves covers some of them
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


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
    ap.add_argument("--weight-decay", type=float, default=3e-5)
    ap.add_argument("--warmup-epochs", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=None,
                    help="equal wall-clock: about this many minutes of training steps per run (steps planned by a probe)")
    ap.add_argument("--steps", type=int, default=None,
                    help="equal steps: this many training steps per run (the budget that does not depend on the CPU)")
    ap.add_argument("--segments", type=int, default=16, help="--minutes/--steps: epochs each run is split into")
    ap.add_argument("--eval-every", type=int, default=2,
                    help="--minutes/--steps: validate max/min every N epochs (the curve)")
    ap.add_argument("--init", default=None, help="checkpoint both 25-label runs start from (transfer, as TOFA)")
    ap.add_argument("--bn-eval", type=int, default=1000, help="BN recalibration images before test evaluation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated run names")
    ap.add_argument("--host-tag", default="",
                    help="--minutes on another kind of CPU: its runs go to train_strategies_m<M>_<TAG>.json "
                         "(equal minutes buy other step counts there, so they are compared only with each other)")
    ap.add_argument("--report", action="store_true",
                    help="train nothing: rebuild the comparisons, budget gains, README table and plot from "
                         "the finished runs on file (e.g. while the other runs are interrupted)")
    ap.add_argument("--replace", action="store_true",
                    help="when the results file on file was made with other options, start a new one and drop "
                         "its runs (without it such a run is refused, exit 2)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.bn_eval = 100
    from ofa_edge.io import atomic_write_text
    from ofa_edge.train import TrainingInterrupted

    if args.minutes and args.steps:
        print("--minutes and --steps are two kinds of budget: give one", file=sys.stderr)
        sys.exit(2)
    if args.steps is not None and (args.steps < args.segments or args.steps % args.segments):
        print(f"--steps {args.steps}: needs a multiple of --segments ({args.segments}), so every epoch has as many "
              f"steps (e.g. --steps {max(1, round(args.steps / args.segments)) * args.segments})", file=sys.stderr)
        sys.exit(2)
    if args.host_tag and (not args.minutes or not args.host_tag.isidentifier()):
        print(f"--host-tag {args.host_tag!r}: needs --minutes and a plain name (letters, digits, _)", file=sys.stderr)
        sys.exit(2)
    tag = ("train_strategies" + (f"_m{args.minutes:g}" if args.minutes else "") + (f"_s{args.steps}" if args.steps else "")
           + (f"_{args.host_tag}" if args.host_tag else "") + (".quick" if args.quick else ""))
    out_json = RESULTS / f"{tag}.json"
    ckpt_root = RESULTS / "ckpt" / tag
    doc = json.loads(out_json.read_text()) if out_json.is_file() else {}
    # recorded relative to the repo (no machine paths in committed results)
    data = os.path.relpath(args.data, ROOT) if os.path.isabs(args.data) else args.data
    settings = {**base_config(args), "data": data, "seed": args.seed, "init": args.init, "bn_eval": args.bn_eval}
    if args.minutes:
        settings["minutes"] = args.minutes
    if args.steps:
        settings["steps"] = args.steps
    if args.host_tag:  # only then: files made before the option keep their settings
        settings["host_tag"] = args.host_tag
    old = file_settings(doc, args.quick)
    if args.report and old is None:
        print(f"--report: {out_json.name} holds no runs of this benchmark yet", file=sys.stderr)
        sys.exit(2)
    if old is not None and old != settings and (args.report or (doc.get("runs") and not args.replace)):
        # never drop finished runs (hours of training) because one option was typed differently
        diff = [f"--{k.replace('_', '-')} {old.get(k)} (now {settings.get(k)})"
                for k in sorted(set(settings) | set(old)) if settings.get(k) != old.get(k)]
        fix = "." if args.report else ", or add --replace to start a new file without them."
        print(f"{out_json.name} holds {len(doc.get('runs') or {})} finished runs made with other options: "
              f"{', '.join(diff)}. Rerun with the options they were started with{fix}", file=sys.stderr)
        sys.exit(2)
    if old != settings:
        doc = {"format": FORMAT, "config": settings, "runs": {}}
    doc["config"] = settings
    wanted = [n for n in args.only.split(",") if n] or list(runs(args.quick))
    for name in wanted:
        if name in doc["runs"]:
            print(f"{name}: done (cached)")
            continue
        if args.report:
            print(f"{name}: not finished yet (re-run without --report to train or resume it)")
            continue
        print(f"{name}: training", flush=True)
        try:
            row = run_one(name, runs(args.quick)[name], args, ckpt_root)
        except TrainingInterrupted as exc:
            where = str(exc).replace(f"{ROOT}{os.sep}", "")  # checkout-relative: no machine paths in the log
            print(f"interrupted: {where}\nre-run the same command to resume", file=sys.stderr)
            sys.exit(130)
        merge_finished(doc, out_json, settings, args.quick)
        doc["runs"][name] = row
        # where the latest run trained (--report trains nothing and leaves these as they are)
        doc.update(threads=args.threads, machine=platform.platform(), cpu=cpu_model(), torch=torch.__version__)
        atomic_write_text(out_json, json.dumps(doc, indent=2) + "\n")
        print(f"{name}: {doc['runs'][name]}", flush=True)
    merge_finished(doc, out_json, settings, args.quick)  # again: a run beside this one may have ended since
    r = doc["runs"]
    doc["comparisons"] = comp = comparisons(doc, settings)
    shorter = budget_gains(doc, settings) if args.minutes or args.steps else {}
    doc["readme_table"] = markdown(r)
    atomic_write_text(out_json, json.dumps(doc, indent=2) + "\n")
    if (args.minutes or args.steps) and not args.quick:
        png = ROOT / "docs" / f"{tag}.png"
        plot(r, png, by_steps=bool(args.steps), shorter=shorter,
             partners=partners_from_files(doc, settings) if args.steps else None)
        print(f"wrote {png.relative_to(ROOT)}")
    print(doc["readme_table"])
    print(json.dumps(comp, indent=2))
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main()
