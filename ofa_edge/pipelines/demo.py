"""``ofa-edge demo``: train, profile this machine, fit the predictor, specialise three budgets, export, report.

Every stage reads only what the stage before it wrote into the output folder and skips work already done,
so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import dataclasses
import random

import torch

from ofa_edge.devices import get_device
from ofa_edge.errors import InvalidValueError, OfaEdgeError
from ofa_edge.export.backends import available
from ofa_edge.export.manifest import MANIFEST_NAME, write_summary_for
from ofa_edge.io import atomic_write_text
from ofa_edge.latency import ProfileOptions, profile_device
from ofa_edge.pipelines.checkpoint import open_run
from ofa_edge.pipelines.front import pareto
from ofa_edge.pipelines.predictor_fit import fit_from_checkpoint
from ofa_edge.pipelines.report import REPORT_NAME, collect_rows, lut_scatter, write_rows_json
from ofa_edge.pipelines.specialization import SpecializeRequest, build_folder, device_latency, specialize
from ofa_edge.search.evolution import EvolutionConfig
from ofa_edge.search.select import SearchSetup
from ofa_edge.space import max_subnet, resolve_space, sample
from ofa_edge.supernet import create_supernet
from ofa_edge.train import TrainConfig, evaluate_subnet, train

#: (stage, done, total, note) -> None
Progress = Callable[[str, int, int, str], None]
STAGES = ("plan", "train", "profile", "predictor", "specialize", "report")


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs; the defaults finish in about ``minutes`` on a 2-core CPU."""

    out: str = "demo-out"
    minutes: float = 8.0
    space: str = "cifar-mbv3"
    strategy: str = "sandwich"
    device: str = "x86-local"
    batch_size: int = 64
    steps_per_epoch: int = 40
    budgets: int = 3
    predictor_samples: int = 60
    bn_images: int = 300
    warmup: int = 10
    repeats: int = 30
    calibrate: int = 20
    validate: int = 20
    formats: tuple[str, ...] | None = None  # None: ONNX, plus TFLite and CoreML when installed
    seed: int = 0
    from_scratch: bool = False              # False: start from the packaged pretrained supernet (if any)
    pretrained: str = "cifar10-mbv3"
    chance_margin: float = 5.0              # refuse a model whose max subnet is within this many points of chance

    def __post_init__(self) -> None:
        if not self.minutes > 0:
            raise InvalidValueError(f"minutes: must be positive, got {self.minutes}", "minutes")
        if self.budgets < 1:
            raise InvalidValueError(f"budgets: must be at least 1, got {self.budgets}", "budgets")


def _time_share(cfg: DemoConfig) -> dict[str, float]:
    """Seconds per stage: training gets what the others (sized by their counts) leave."""
    total = cfg.minutes * 60
    return {"train": max(20.0, 0.45 * total)}


def probe_step_seconds(cfg: DemoConfig) -> float:
    """Seconds of one training step of the strategy (max + min + one random subnet) on random images."""
    space = resolve_space(cfg.space)
    net = create_supernet(space, 10).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    r = max(space.resolutions)
    x, y = torch.randn(cfg.batch_size, 3, r, r), torch.randint(0, 10, (cfg.batch_size,))
    rng = random.Random(0)
    times = []
    for i in range(3):
        t = time.perf_counter()
        opt.zero_grad()
        for fn in (net.set_max_net, net.set_min_net, lambda: net.set_subnet(sample(space, rng))):
            fn()
            torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t)
    return 1.15 * min(times)  # data augmentation and distillation targets add ~15 %


class DemoQualityError(OfaEdgeError):
    """The demo's model is near chance, so nothing worth presenting was made; exit code 1."""

    exit_code = 1


#: What a demo run leaves in its folder (kept: latency_tables/ and cache/, which are reused when valid).
_RUN_STATE = ("demo_plan.json", "run", "builds", "report.json", "pareto.png", "pareto.csv", "lut_scatter.png")


def _clear_run_state(out: Path) -> None:
    """Remove a previous run's plan, training and builds so that the demo re-plans from scratch."""
    import shutil

    for name in _RUN_STATE:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _plan(cfg: DemoConfig, out: Path, progress: Progress) -> dict[str, Any]:
    """The saved plan when it is for these settings and passed its quality check, else a new one."""
    path = out / "demo_plan.json"
    if path.is_file():
        plan = json.loads(path.read_text())
        same = plan.get("config") == json.loads(json.dumps(asdict(cfg)))
        if same and not plan.get("failed"):
            return plan
        why = f"the last run failed its quality check ({plan['failed']})" if same else "the settings changed"
        progress("plan", 0, 1, f"re-planning: {why}")
        _clear_run_state(out)
    if not cfg.from_scratch and _packaged(cfg) is not None:
        plan = {"format": "ofa-edge-demo-plan/1", "config": asdict(cfg), "source": "pretrained",
                "checkpoint": cfg.pretrained, "epochs": 0, "steps_per_epoch": 0}
    else:
        step_s = probe_step_seconds(cfg)
        steps = max(1, int(_time_share(cfg)["train"] / step_s))  # what the probe says fits, never padded
        per_epoch = min(cfg.steps_per_epoch, steps)
        epochs = max(1, round(steps / per_epoch))
        plan = {"format": "ofa-edge-demo-plan/1", "config": asdict(cfg), "source": "scratch",
                "step_seconds": round(step_s, 4), "epochs": epochs, "steps_per_epoch": per_epoch}
    atomic_write_text(path, json.dumps(plan, indent=2) + "\n")
    return plan


def _packaged(cfg: DemoConfig):
    """The packaged pretrained supernet the demo starts from, or None (not packaged / other space)."""
    from ofa_edge.pretrained import list_pretrained

    for p in list_pretrained():
        if p.name == cfg.pretrained and p.card.get("space") == cfg.space and p.predictor.is_file():
            return p
    return None


def check_quality(ckpt: Path, cfg: DemoConfig, out: Path, plan: dict[str, Any]) -> dict[str, float]:
    """Top-1 of the max subnet; raise DemoQualityError near chance (and mark the plan failed so that the next
    run re-plans).

    A supernet trained here is checked on the validation split. The packaged one is checked on the test split:
    the embedded validation images are CIFAR-10 training images that it was trained on, so they read high.
    """
    run = open_run(ckpt)
    task = run.task()
    space = run.space
    split, split_name = ("val", "validation") if plan.get("source") == "scratch" else ("test", "test")
    top1 = evaluate_subnet(run.net, max_subnet(space), task, bn_images=cfg.bn_images, split=split)["top1"]
    chance = 100.0 / run.n_classes
    result = {"max_top1": round(top1, 2), "split": split_name, "chance": round(chance, 2)}
    if top1 > chance + cfg.chance_margin:
        return result
    if plan.get("source") == "scratch":
        steps = plan["epochs"] * plan["steps_per_epoch"]
        cause = (f"likely cause: too few training steps ({steps} planned from a timing probe of "
                 f"{plan.get('step_seconds')} s/step), e.g. because the CPU was busy; free the CPU, give more "
                 f"--minutes, or start from the packaged supernet (drop --from-scratch)")
    else:
        cause = "likely cause: the packaged supernet does not fit this data (another class list or image size)"
    failed = f"max subnet {top1:.1f} % on the {split_name} split, chance is {chance:.1f} %"
    plan = {**plan, "failed": failed}
    atomic_write_text(out / "demo_plan.json", json.dumps(plan, indent=2) + "\n")
    raise DemoQualityError(f"the demo's model is near chance: {failed}; nothing worth presenting was made. {cause}")


def _train(cfg: DemoConfig, out: Path, plan: dict[str, Any], progress: Progress) -> Path:
    run = out / "run"
    tcfg = TrainConfig(strategy=cfg.strategy, space=cfg.space, out=str(run), epochs=plan["epochs"],
                       batch_size=cfg.batch_size, steps_per_epoch=plan["steps_per_epoch"], n_random=1, lr=0.1,
                       warmup_epochs=0, eval_every=0, bn_images=cfg.bn_images, seed=cfg.seed, dropout=0.0)
    total = plan["epochs"] * plan["steps_per_epoch"]

    def on_event(ev: dict) -> None:
        if ev["event"] == "step":
            done = ev["epoch"] * ev["steps"] + ev["step"]
            progress("train", done, total, f"loss {ev['loss']:.3f}, {ev['images_per_s']:.0f} img/s")

    resume = run if (run / "supernet.pt").is_file() else None
    train(None if resume else tcfg, resume=resume, progress=on_event, threads="auto")
    progress("train", total, total, "done")
    return run / "supernet.pt"


def _profile(cfg: DemoConfig, out: Path, progress: Progress):
    profile = get_device(cfg.device)
    profile = dataclasses.replace(profile, benchmark=dataclasses.replace(profile.benchmark, warmup=cfg.warmup,
                                                                         repeats=cfg.repeats))
    opts = ProfileOptions(space=cfg.space, n_classes=10, calibrate=cfg.calibrate, validate=cfg.validate,
                          seed=cfg.seed, tables_dir=out / "latency_tables", cache_dir=out / "cache")
    return profile_device(profile, opts, lambda dev, phase, done, total: progress("profile", done, total, phase))


def _budgets(ckpt: Path, device: str, tables: Path, n: int) -> list[float]:
    """``n`` budgets spread over the table's range (from just above the fastest subnet to the slowest)."""
    run = open_run(ckpt)
    _, _, _, latency = device_latency(device, tables, run.space, run.n_classes)
    setup = SearchSetup.build(run.space, run.n_classes, None, latency)
    lo, hi = setup.latency.minimum()[0], setup.latency.maximum()[0]
    fractions = [0.15 + 0.7 * i / max(1, n - 1) for i in range(n)] if n > 1 else [0.5]
    return [round(lo + f * (hi - lo), 3) for f in fractions]


def _specialize(cfg: DemoConfig, out: Path, ckpt: Path, budgets: list[float], progress: Progress,
                verbose: bool = False) -> None:
    def done(b: float) -> bool:
        manifest = build_folder(out / "builds", cfg.device, b) / MANIFEST_NAME
        return manifest.is_file() and json.loads(manifest.read_text()).get("status") == "ok"

    todo = [b for b in budgets if not done(b)]
    formats = cfg.formats or ("pt", "onnx") + tuple(f for f in ("tflite", "coreml") if available(f))
    if todo:
        specialize(SpecializeRequest(ckpt, cfg.device, tuple(todo), out=out / "builds",
                                     tables_dir=out / "latency_tables", export=formats, quantize="int8",
                                     bn_images=cfg.bn_images, measure=True, cache_dir=str(out / "cache"),
                                     verbose=verbose),
                   progress=lambda phase, i, n: progress("specialize", i, n, phase))
    progress("specialize", len(budgets), len(budgets), "done")


def run_demo(cfg: DemoConfig = DemoConfig(), progress: Progress | None = None, *,
             verbose: bool = False) -> dict[str, Any]:
    """Run (or resume) the whole pipeline into ``cfg.out``: train, profile, predictor, specialize, report.

    Args:
        cfg: What to run and the time budget; the same ``cfg`` resumes an interrupted demo.
        progress: Called with (stage, done, total, note).
        verbose: Converter output on the terminal instead of each build's ``logs/``.

    Returns:
        The paths written (checkpoint, table, plots), the budgets, the metrics, the report rows and the
        summary that ``ofa-edge report`` reprints.

    Raises:
        InvalidValueError: ``cfg.out`` holds a demo run with other settings.
    """
    progress = progress or (lambda *a: None)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    progress("plan", 0, 1, "planning")
    plan = _plan(cfg, out, progress)
    if plan["source"] == "pretrained":
        pack = _packaged(cfg)
        progress("plan", 1, 1, f"packaged supernet {pack.name} (no training)")
        ckpt = pack.checkpoint
    else:
        progress("plan", 1, 1, f"{plan['epochs']} epochs x {plan['steps_per_epoch']} steps")
        ckpt = _train(cfg, out, plan, progress)
    progress("check", 0, 1, "max subnet vs chance")
    quality = check_quality(ckpt, cfg, out, plan)
    progress("check", 1, 1, f"max subnet {quality['max_top1']:.1f} % ({quality['split']})")
    prof = _profile(cfg, out, progress)
    if plan["source"] == "pretrained":
        pred = _packaged_predictor(pack)
        progress("predictor", 1, 1, f"packaged ({pred['rows']} subnets)")
    else:
        pred = fit_from_checkpoint(ckpt, cfg.predictor_samples, bn_images=cfg.bn_images, epochs=150,
                                   seed=cfg.seed,
                                   progress=lambda phase, done, total: progress("predictor", done, total, phase))
    budgets = _budgets(ckpt, cfg.device, out / "latency_tables", cfg.budgets)
    _specialize(cfg, out, ckpt, budgets, progress, verbose)
    progress("report", 0, 1, "plots")
    write_summary_for(out / "builds")
    front = pareto(ckpt, cfg.device, out=out, tables_dir=out / "latency_tables", n_random=150,
                   config=_search_config(), builds=out / "builds")
    scatter = lut_scatter(prof.validation, out / "lut_scatter.png", f"{cfg.device} / {prof.runtime}")
    rows = collect_rows(out / "builds")
    source = (f"{cfg.pretrained} (packaged pretrained supernet, no training)" if plan["source"] == "pretrained"
              else f"{ckpt} (trained from scratch)")
    summary = {"title": f"ofa-edge demo: {cfg.space} on {cfg.device} (top-1 on the test split, %)",
               "lut_metrics": prof.metrics, "supernet": source, "max_top1": quality["max_top1"],
               "max_split": quality["split"],
               "predictor": {k: pred.get(k) for k in ("rows", "rmse", "kendall_tau")},
               "plots": [str(front["png"]), str(scatter)],
               "seconds": round(time.perf_counter() - t0, 1)}
    write_rows_json(rows, out / REPORT_NAME, summary)
    progress("report", 1, 1, "done")
    return {"out": str(out), "checkpoint": str(ckpt), "source": plan["source"], "quality": quality,
            "table": str(prof.table), "predictor": pred,
            "lut_metrics": prof.metrics, "budgets_ms": budgets, "pareto_png": front["png"],
            "pareto_csv": front["csv"], "lut_scatter_png": str(scatter), "rows": [r.to_dict() for r in rows],
            "summary": summary, "seconds": summary["seconds"]}


def _packaged_predictor(pack) -> dict[str, Any]:
    """The packaged predictor's figures, in the shape ``fit_from_checkpoint`` returns."""
    p = pack.card.get("predictor", {})
    return {"predictor": str(pack.predictor), "accuracy_csv": str(pack.folder / "accuracy.csv"),
            "rows": p.get("samples", 0), "evaluated": 0, "skipped": p.get("samples", 0),
            "rmse": p.get("rmse", float("nan")), "kendall_tau": p.get("kendall_tau", float("nan")),
            "spearman": p.get("spearman", float("nan")), "n_train": p.get("n_train", 0),
            "n_holdout": p.get("n_holdout", 0)}


def _search_config() -> EvolutionConfig:
    return EvolutionConfig(population=60, generations=60)
