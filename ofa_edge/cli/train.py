"""``ofa-edge train`` and ``ofa-edge eval``: train a supernet, evaluate one of its subnets."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ofa_edge.cli.common import console, err_console, fail, print_json
from ofa_edge.train.config import STRATEGIES, TrainConfig

_D = TrainConfig  # the defaults of every training flag are TrainConfig's


def _progress_printer(quiet: bool):
    """A rich progress bar fed by the training loop's events; returns (callback, progress)."""
    progress = Progress(TextColumn("[bold]{task.fields[label]}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total}"),
                        TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[ips]:.0f} img/s"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, disable=quiet)
    state: dict = {}

    def on_event(ev: dict) -> None:
        if ev["event"] == "start":
            if ev.get("rank", 0) != 0:
                return
            if not quiet:
                err_console.print(f"{ev['task']}; phases {ev['phases']}; world {ev['world']}")
                if "precision" in ev:
                    err_console.print(f"device {ev['device']}, precision {ev['precision']}, {ev['threads']}")
                if ev.get("init"):
                    i = ev["init"]
                    err_console.print(f"init: {i['path']} ({i['format']}, space {i['space']}): loaded "
                                      f"{i['loaded']} tensors, classifier {i['classifier']}")
            total = ev["epochs"] * ev["steps"]
            state["task"] = progress.add_task("train", total=total, label="train", loss=float("nan"), ips=0.0,
                                              completed=ev["epoch"] * ev["steps"] + ev["step"])
        elif ev["event"] == "step" and "task" in state:
            progress.update(state["task"], advance=1, loss=ev["loss"], ips=ev["images_per_s"],
                            label=f"epoch {ev['epoch'] + 1}/{ev['epochs']} {ev['phase']}")
        elif ev["event"] == "epoch" and not quiet and "task" in state:
            val = (f"  val max {ev['val_max_top1']:.2f}%  min {ev['val_min_top1']:.2f}%"
                   if "val_max_top1" in ev else "")
            progress.console.print(f"epoch {ev['epoch']} ({ev['phase']}): loss {ev['loss']:.4f}  "
                                   f"{ev['images_per_s']:.0f} img/s{val}")

    return on_event, progress


def _run_training(cfg: Optional[TrainConfig], resume: Optional[str], quiet: bool, threads: str | None = None):
    from ofa_edge.train import train

    on_event, progress = _progress_printer(quiet)
    with progress:
        return train(cfg, resume=resume, progress=on_event, threads=threads)


def _spawned(cfg, resume, quiet, threads=None) -> None:
    import os

    _run_training(cfg, resume, quiet or os.environ.get("RANK", "0") != "0", threads)


def _spawn_training(nproc: int, cfg, resume_arg, quiet: bool, threads: str | None = None) -> None:
    """Run the training in ``nproc`` DDP processes; Ctrl-C reaches the workers, which checkpoint and stop."""
    import signal

    import torch.multiprocessing as mp

    from ofa_edge.train.distributed import spawn

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        spawn(nproc, _spawned, cfg, resume_arg, quiet, threads)
    except mp.ProcessRaisedException as exc:
        last = str(exc).strip().splitlines()[-1]
        kind, _, message = last.partition(": ")
        fail(message or last, code=130 if kind.endswith("TrainingInterrupted") else 2)
    finally:
        signal.signal(signal.SIGINT, previous)


def _with_recipe(ctx: typer.Context, recipe: Optional[str], values: dict) -> TrainConfig:
    """TrainConfig from the options; with --recipe, the recipe's settings replace the defaults of every
    option that was not given on the command line."""
    if recipe is None:
        return TrainConfig(**values)
    from ofa_edge.train.recipes import get_recipe

    from ofa_edge.train.recipes import list_recipes

    if recipe not in list_recipes():
        fail(f"--recipe: {recipe!r} is not one of {list_recipes()}")
    base = get_recipe(recipe)
    typed = {k for k in values if getattr(ctx.get_parameter_source(k), "name", "") == "COMMANDLINE"}
    given = {k: v for k, v in values.items() if k not in base.settings or k in typed}
    if not typed & {"out", "name"}:
        given["out"] = str(Path("runs") / recipe)
    return base.config(**given)


def train_cmd(
    ctx: typer.Context,
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Start from a named recipe's settings (e.g. "
                                         "cifar10-mbv3, the packaged supernet's); options given here override it."),
    strategy: str = typer.Option(_D.strategy, "--strategy", help=f"One of {', '.join(STRATEGIES.list())}."),
    space: Optional[str] = typer.Option(None, "--space", "-s", help="Search space (default: the --init "
                                        "checkpoint's, else cifar-mbv3)."),
    data: Optional[str] = typer.Option(None, "--data", help="ImageFolder dir, torchvision CIFAR root or a folder "
                                       "with train.npz/test.npz (default: the embedded CIFAR-10 mini set)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/<name>)."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (default: the strategy)."),
    epochs: int = typer.Option(_D.epochs, "--epochs", help="Training epochs (progressive: over all its phases)."),
    batch_size: int = typer.Option(_D.batch_size, "--batch-size", help="Images per step and process."),
    lr: float = typer.Option(_D.lr, "--lr", help="Base learning rate (x number of processes)."),
    weight_decay: float = typer.Option(_D.weight_decay, "--weight-decay",
                                       help="SGD weight decay (3e-5 is OFA's ImageNet value; the cifar10-mbv3 "
                                            "recipe uses 5e-4)."),
    warmup_epochs: int = typer.Option(_D.warmup_epochs, "--warmup-epochs",
                                      help="Epochs of linear learning-rate warm-up before the cosine decay."),
    label_smoothing: float = typer.Option(_D.label_smoothing, "--label-smoothing",
                                          help="Label smoothing of the labelled loss, in [0, 1)."),
    kd_ratio: float = typer.Option(_D.kd_ratio, "--kd-ratio", help="Weight of distillation from the max net."),
    n_random: int = typer.Option(_D.n_random, "--n-random", help="sandwich/tofa: random subnets per step."),
    max_every: int = typer.Option(_D.max_every, "--max-every",
                                  help="random: every Nth step trains the max subnet instead of a sampled one "
                                       "(0: never)."),
    heads: int = typer.Option(_D.heads, "--heads", help="SOLAR switchable heads (1 = shared head)."),
    init: Optional[Path] = typer.Option(None, "--init", help="OFA or ofa-edge checkpoint to start from."),
    labels_per_class: Optional[int] = typer.Option(None, "--labels-per-class",
                                                   help="Keep N labels per class; the rest are unlabelled."),
    val_fraction: float = typer.Option(_D.val_fraction, "--val-fraction",
                                       help="Share of each class's training images kept out for validation "
                                            "(and for `predictor fit`), in [0, 1)."),
    unlabelled_ratio: int = typer.Option(_D.unlabelled_ratio, "--unlabelled-ratio", help="tofa: unlabelled batch / labelled batch."),
    threshold: float = typer.Option(_D.threshold, "--threshold", help="tofa: FixMatch confidence threshold."),
    lambda_u: float = typer.Option(_D.lambda_u, "--lambda-u", help="tofa: weight of the FixMatch term."),
    fixmatch: bool = typer.Option(_D.fixmatch, "--fixmatch/--no-fixmatch", help="tofa: pseudo-label term."),
    kd_labelled: bool = typer.Option(_D.kd_labelled, "--kd-labelled/--no-kd-labelled", help="tofa: KD on labelled."),
    kd_unlabelled: bool = typer.Option(_D.kd_unlabelled, "--kd-unlabelled/--no-kd-unlabelled", help="tofa: KD on unlabelled."),
    steps_per_epoch: Optional[int] = typer.Option(None, "--steps-per-epoch", help="Steps per epoch (default: one pass over the training set)."),
    phase_epochs: Optional[str] = typer.Option(None, "--phase-epochs",
                                               help="progressive: epochs per phase, e.g. 2,2,1,1."),
    phase_lr: Optional[str] = typer.Option(None, "--phase-lr",
                                           help="progressive: lr multiplier per phase, e.g. 1,1,0.08,0.25."),
    dropout: float = typer.Option(_D.dropout, "--dropout", help="Dropout before the classifier."),
    bn_images: int = typer.Option(_D.bn_images, "--bn-images", help="BN recalibration images for validation."),
    eval_every: int = typer.Option(_D.eval_every, "--eval-every", help="Validate max/min subnets every N epochs (0: never)."),
    seed: int = typer.Option(_D.seed, "--seed",
                             help="Seed of the weights, batches and sampled subnets (same options + seed: same "
                                  "weights)."),
    workers: int = typer.Option(_D.workers, "--workers", help="Batch-preparing worker processes."),
    device: str = typer.Option(_D.device, "--device", help="auto (GPU if available), cpu or cuda."),
    precision: str = typer.Option(_D.precision, "--precision",
                                  help="fp32, bf16 or fp16 (CUDA, with a gradient scaler) autocast; auto: fp32, "
                                       "the fastest measured on a CPU and on a GPU (README, Performance). "
                                       "Saved with the run."),
    threads: str = typer.Option("auto", "--threads",
                                help="torch threads per process; auto: a short probe uses all cores only when "
                                     "they pay (a busy CPU gets 1 thread) and says what it chose."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder/checkpoint."),
    nproc: int = typer.Option(1, "--nproc", help="Processes for DDP training on this machine (gloo on CPU)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the final metrics as JSON."),
) -> None:
    """Train a once-for-all supernet with one of the registered strategies (see --strategy)."""
    if nproc < 1:
        fail(f"--nproc: must be at least 1, got {nproc}")
    if resume is not None:
        cfg = None if out is None else TrainConfig(out=str(out))
        resume_arg = str(resume)
    else:
        if init is not None:
            from ofa_edge.pretrained import resolve_checkpoint

            init = resolve_checkpoint(init)
            if not init.exists():
                fail(f"--init: {init} does not exist (a checkpoint file or a pretrained name: "
                     f"`ofa-edge pretrained list`)")
        phases = lrs = None
        if phase_epochs:
            try:
                phases = tuple(int(p) for p in phase_epochs.split(","))
            except ValueError:
                fail(f"--phase-epochs: {phase_epochs!r} is not a comma-separated list of integers")
        if phase_lr:
            try:
                lrs = tuple(float(p) for p in phase_lr.split(","))
            except ValueError:
                fail(f"--phase-lr: {phase_lr!r} is not a comma-separated list of numbers")
        cfg = _with_recipe(ctx, recipe, dict(strategy=strategy, space=space, data=data,
                          out=str(out or Path("runs") / (name or strategy)), epochs=epochs, batch_size=batch_size,
                          lr=lr, weight_decay=weight_decay, warmup_epochs=warmup_epochs,
                          label_smoothing=label_smoothing, kd_ratio=kd_ratio, n_random=n_random, max_every=max_every,
                          heads=heads,
                          init=str(init) if init else None, dropout=dropout, seed=seed, val_fraction=val_fraction,
                          labels_per_class=labels_per_class, unlabelled_ratio=unlabelled_ratio,
                          threshold=threshold, lambda_u=lambda_u, fixmatch=fixmatch, kd_labelled=kd_labelled,
                          kd_unlabelled=kd_unlabelled, steps_per_epoch=steps_per_epoch, phase_epochs=phases,
                          phase_lr=lrs, bn_images=bn_images, eval_every=eval_every, workers=workers,
                          device=device, precision=precision))
        if data is not None and not Path(data).exists():
            fail(f"--data: folder {data} does not exist")
        resume_arg = None
    if nproc > 1:
        _spawn_training(nproc, cfg, resume_arg, quiet, threads)
        from ofa_edge.train.checkpoint import read_train_checkpoint

        target = Path(resume_arg) if resume_arg else Path(cfg.out)
        _, _, state = read_train_checkpoint(target)
        metrics, ckpt = state.get("metrics", []), target if target.is_file() else target / "supernet.pt"
        init_report = None
        run_info = {"processes": nproc}
    else:
        from ofa_edge.train import TrainingInterrupted

        try:
            result = _run_training(cfg, resume_arg, quiet or as_json, threads)
        except TrainingInterrupted as exc:
            fail(str(exc), code=130)
        metrics, ckpt, init_report = result.metrics, result.checkpoint, result.init_report
        run_info = {"device": result.device, "precision": result.precision,
                    "threads": result.threads.threads if result.threads else None}
    import os

    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return
    from ofa_edge.workspace import set_supernet

    workspace = set_supernet(ckpt)
    if as_json:
        print_json({"checkpoint": str(ckpt), "metrics": metrics, "init": init_report, **run_info})
        return
    table = Table("epoch", "phase", "loss", "img/s", "val max top-1", "val min top-1")
    for m in metrics:
        table.add_row(str(m["epoch"]), m["phase"], f"{m['loss']:.4f}", f"{m['images_per_s']:.0f}",
                      f"{m.get('val_max_top1', float('nan')):.2f}", f"{m.get('val_min_top1', float('nan')):.2f}")
    console.print(table)
    console.print(f"checkpoint: {ckpt} (now the current supernet in {workspace.file.name})", soft_wrap=True)


def eval_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Supernet checkpoint (ofa-edge or OFA)."),
    subnet: str = typer.Option("max", "--subnet", help='max, min, random or a subnet as JSON.'),
    bn_samples: int = typer.Option(2000, "--bn-samples", help="Training images for BN recalibration (0: none)."),
    data: Optional[str] = typer.Option(None, "--data", help="Data (default: the run's own data)."),
    split: str = typer.Option("test", "--split", help="test or val."),
    seed: int = typer.Option(0, "--seed", help="Seed for --subnet random."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Recalibrate BN for one subnet, then report top-1 / top-5 / ECE on the test split."""
    from ofa_edge.train.evaluate import evaluate_checkpoint

    t0 = time.perf_counter()
    result = evaluate_checkpoint(checkpoint, subnet, bn_samples, data, split, random.Random(seed))
    result["seconds"] = round(time.perf_counter() - t0, 3)
    if as_json:
        print_json(result)
        return
    console.print(f"[bold]{result['subnet']}[/] r={result['r']} on {result['split']} ({result['n']} images, "
                  f"BN recalibrated on {bn_samples})")
    console.print(f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  ECE {result['ece']:.2f}%")


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("eval")(eval_cmd)
