"""The training loop: phases, steps, checkpoints every epoch and on SIGINT/SIGTERM, exact resume, DDP."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset

from ofa_edge.data import Loader, TaskData, load_task, make_loader
from ofa_edge.errors import FileFormatError, InvalidValueError, OfaEdgeError
from ofa_edge.space import max_subnet, min_subnet, resolve_space
from ofa_edge.supernet import HeadMap, OFAMobileNetV3, create_supernet
from ofa_edge.supernet.sort import sort_channels
from ofa_edge.train import distributed
from ofa_edge.train.checkpoint import (CHECKPOINT_NAME, load_init, read_train_checkpoint, resume_net,
                                       save_train_checkpoint, write_metrics, write_sampled)
from ofa_edge.train.config import TrainConfig
from ofa_edge.train.evaluate import evaluate_subnet
from ofa_edge.train.layout import memory_format, to_device
from ofa_edge.train.precision import autocast, grad_scaler, resolve_precision
from ofa_edge.train.replay import record_sampled
from ofa_edge.train.strategies import (Phase, StepBatch, make_strategy, plan_phases, run_step,
                                       subnets_for_step)
from ofa_edge.train.threads import ThreadChoice, choose_threads


class TrainingInterrupted(OfaEdgeError):
    """SIGINT/SIGTERM arrived; the checkpoint was saved and ``--resume`` continues the run."""

    exit_code = 130


@dataclass
class TrainResult:
    """What a finished run produced."""

    net: OFAMobileNetV3
    out: Path
    checkpoint: Path
    metrics: list[dict[str, Any]] = field(default_factory=list)
    init_report: dict[str, Any] | None = None
    threads: ThreadChoice | None = None
    device: str | None = None  # where it trained (cpu, cuda:0), None for a run that was already complete
    precision: str | None = None  # the concrete precision (auto resolved)


def param_groups(net: torch.nn.Module, weight_decay: float) -> list[dict]:
    """OFA's groups: no weight decay on parameters whose name contains ``bn`` or ``bias``."""
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if ("bn" in name or "bias" in name) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def learning_rate(cfg: TrainConfig, phase: Phase, phase_step: int, phase_steps: int, first_phase: bool,
                  steps_per_epoch: int, world: int) -> float:
    """Linear warm-up (first phase, ``warmup_epochs``) then per-iteration cosine decay to 0 within a phase."""
    base = cfg.lr * phase.lr_scale * world
    warm = cfg.warmup_epochs * steps_per_epoch if first_phase else 0
    warm = min(warm, max(phase_steps - 1, 0))
    if phase_step < warm:
        return base * (phase_step + 1) / warm
    t = (phase_step - warm) / max(1, phase_steps - warm)
    return 0.5 * base * (1 + math.cos(math.pi * t))


class _StopFlag:
    """Sets itself on SIGINT/SIGTERM while installed (main thread only)."""

    def __init__(self) -> None:
        self.hit = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.hit = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class BatchSource:
    """Step batches of a run: labelled (and, for strategies that need them, unlabelled weak/strong) views."""

    lab: Loader
    unl: Loader | None
    steps: int

    def batch(self, epoch: int, step: int) -> StepBatch:
        """Global step k = epoch * steps + step; each loader walks through its own epochs (data
        epochs), so a run epoch may be shorter or longer than a pass over a data set."""
        k = epoch * self.steps + step
        x, y = self.lab.batch(k // len(self.lab), k % len(self.lab))
        if self.unl is None:
            return StepBatch(x, y)
        (uw, us), _ = self.unl.batch(k // len(self.unl), k % len(self.unl))
        return StepBatch(x, y, uw, us)

    def iterate(self, epoch: int, start: int, workers: int = 0, pin_memory: bool = False):
        """Batches ``start..steps-1`` of ``epoch`` (prepared by ``workers`` processes when > 0; in pinned
        memory for a fast copy to a GPU when ``pin_memory``)."""
        if workers <= 0:
            return (self.batch(epoch, b) for b in range(start, self.steps))
        return iter(DataLoader(_StepData(self, epoch, start), batch_size=None, num_workers=workers,
                               collate_fn=_identity, pin_memory=pin_memory))


def _identity(item):
    return item


class _StepData(Dataset):
    def __init__(self, source: BatchSource, epoch: int, start: int):
        self.source, self.epoch, self.start = source, epoch, start

    def __len__(self) -> int:
        return self.source.steps - self.start

    def __getitem__(self, i: int) -> StepBatch:
        return self.source.batch(self.epoch, self.start + i)


def _to_device(t: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    """Move a batch tensor to ``device``; images (4-d) in the device's layout, as the weights."""
    return None if t is None else to_device(t, device, non_blocking=device.type == "cuda")


def pick_device(cfg: TrainConfig) -> torch.device:
    """cuda:<LOCAL_RANK> when asked for (or ``auto`` and a GPU exists), else the CPU."""
    if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise OfaEdgeError("device: cuda was requested but torch sees no GPU; use cpu", field="device")
    index = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


class _Run:
    """State of one run; methods are the pieces of ``train``."""

    def __init__(self, cfg: TrainConfig, task: TaskData, net: OFAMobileNetV3, info: distributed.DistInfo,
                 progress: Callable[[dict], None] | None, device: torch.device | None = None):
        self.device = device or torch.device("cpu")
        # channels_last end to end on a CPU: ~1.7-2.4x faster training steps (bench/train_speed.py); NCHW on a GPU
        net.to(self.device, memory_format=memory_format(self.device))
        self.cfg, self.task, self.net, self.info, self.progress = cfg, task, net, info, progress
        self.out = Path(cfg.out)
        self.ckpt = self.out / CHECKPOINT_NAME
        self.phases = plan_phases(cfg, net.space)
        self.res = max(net.space.resolutions)
        w, r = info.world, info.rank
        self.lab = make_loader(task.train, self.res, cfg.batch_size, True, cfg.seed, rank=r, world=w)
        self.unl = None
        if make_strategy(cfg).needs_unlabelled and task.unlabelled is not None:
            self.unl = make_loader(task.unlabelled, self.res, cfg.batch_size * cfg.unlabelled_ratio, True,
                                   cfg.seed + 1, views=("weak", "strong"), rank=r, world=w)
        driver = self.unl if self.unl is not None else self.lab
        self.steps = cfg.steps_per_epoch or len(driver)
        self.source = BatchSource(self.lab, self.unl, self.steps)
        self.teacher: OFAMobileNetV3 | None = None
        self.sampled: dict[str, list] = {}
        self.metrics: list[dict[str, Any]] = []
        self.epoch = self.step = self.iteration = 0
        self.acc = {"loss": 0.0, "images": 0, "seconds": 0.0}
        self.model: Callable = net
        self.optimizer: torch.optim.Optimizer | None = None
        self.amp = autocast(cfg.precision, self.device)
        self.scaler = grad_scaler(cfg.precision, self.device)

    # -- phases ----------------------------------------------------------------------------------
    def phase_at(self, epoch: int) -> tuple[int, Phase, int]:
        """(phase index, phase, first epoch of the phase) for a global epoch."""
        start = 0
        for i, ph in enumerate(self.phases):
            if epoch < start + ph.epochs:
                return i, ph, start
            start += ph.epochs
        raise IndexError(epoch)

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def new_optimizer(self) -> None:
        self.optimizer = torch.optim.SGD(param_groups(self.net, self.cfg.weight_decay), lr=self.cfg.lr,
                                         momentum=self.cfg.momentum, nesterov=self.cfg.momentum > 0)

    def start_phase(self, phase: Phase) -> None:
        """Channel sorting and teacher creation happen when a phase's first step runs."""
        if phase.sort_stage is not None:
            sort_channels(self.net, phase.sort_stage)
        if phase.teacher and self.teacher is None:
            self.teacher = copy.deepcopy(self.net)
            self.teacher.set_max_net()
            self.teacher.train()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        self.new_optimizer()

    def wrap(self) -> None:
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DDP(self.net, device_ids=ids, find_unused_parameters=True)

    @property
    def resume_hint(self) -> str:
        return f" --nproc {self.info.world}" if self.info.enabled else ""

    # -- state ------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "iteration": self.iteration,
                "optimizer": self.optimizer.state_dict() if self.optimizer else None,
                "torch_rng": torch.get_rng_state(), "sampled": self.sampled, "metrics": self.metrics,
                "acc": dict(self.acc), "world": self.info.world,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "threads": torch.get_num_threads(),
                "teacher": self.teacher.state_dict() if self.teacher is not None else None}

    def load_state(self, state: dict[str, Any]) -> None:
        self.epoch, self.step, self.iteration = int(state["epoch"]), int(state["step"]), int(state["iteration"])
        self.sampled = {k: list(v) for k, v in state["sampled"].items()}
        self.metrics = list(state.get("metrics", []))
        self.acc = dict(state.get("acc", self.acc))
        if state.get("teacher") is not None:
            self.teacher = copy.deepcopy(self.net)
            self.teacher.load_state_dict(state["teacher"])
            self.teacher.set_max_net()
            self.teacher.train()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        if state["optimizer"] is not None:
            self.new_optimizer()
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])

    def save(self, complete: bool) -> None:
        if not self.info.is_main:
            return
        # the checkpoint first: the CSV logs never describe training that the checkpoint does not hold
        save_train_checkpoint(self.ckpt, self.net, self.cfg, self.state(), complete)
        write_sampled(self.out / "sampled.csv", self.sampled)
        write_metrics(self.out / "metrics.csv", self.metrics)

    # -- one step ---------------------------------------------------------------------------------

    def train_step(self, batch: StepBatch, phase: Phase, phase_index: int, phase_step: int,
                   phase_steps: int) -> dict:
        lr = learning_rate(self.cfg, phase, phase_step, phase_steps, phase_index == 0, self.steps,
                           self.info.world)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = StepBatch(*(_to_device(t, self.device) for t in (batch.x, batch.y, batch.u_weak, batch.u_strong)))
        subnets = subnets_for_step(self.cfg, phase, self.cfg.seed, self.iteration)
        self.optimizer.zero_grad(set_to_none=True)
        stats = run_step(self.cfg, phase, self.net, self.model, subnets, batch, self.teacher, self.amp,
                         self.scaler)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        record_sampled(self.sampled, subnets, self.iteration)
        stats["lr"] = lr
        return stats

    # -- epochs -----------------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        if not self.cfg.eval_every or (self.epoch + 1) % self.cfg.eval_every and \
                self.epoch + 1 != self.total_epochs:
            return {}
        if not self.info.is_main:
            return {}
        out = {}
        was = self.net.active_subnet()
        for name, sub in (("max", max_subnet(self.net.space)), ("min", min_subnet(self.net.space))):
            r = evaluate_subnet(self.net, sub, self.task, bn_images=self.cfg.bn_images, split="val")
            out[f"val_{name}_top1"], out[f"val_{name}_ece"] = round(r["top1"], 4), round(r["ece"], 4)
        self.net.set_subnet(was)
        return out

    def run(self, stop: _StopFlag) -> None:
        while self.epoch < self.total_epochs:
            index, phase, first = self.phase_at(self.epoch)
            phase_steps = phase.epochs * self.steps
            if self.step == 0 and self.epoch == first:
                self.start_phase(phase)
            t0 = time.perf_counter()
            batches = self.source.iterate(self.epoch, self.step, self.cfg.workers, self.device.type == "cuda")
            while self.step < self.steps:
                stats = self.train_step(next(batches), phase, index, (self.epoch - first) * self.steps + self.step, phase_steps)
                n_img = self.cfg.batch_size * self.info.world
                self.acc["loss"] += stats["loss"]
                self.acc["images"] += n_img
                self.step += 1
                self.iteration += 1
                elapsed = self.acc["seconds"] + time.perf_counter() - t0
                if self.progress:
                    self.progress({"event": "step", "epoch": self.epoch, "epochs": self.total_epochs,
                                   "step": self.step, "steps": self.steps, "phase": phase.name,
                                   "loss": stats["loss"], "lr": stats["lr"], "stats": stats,
                                   "images_per_s": self.acc["images"] / max(elapsed, 1e-9)})
                if distributed.any_flag(stop.hit, self.info) and self.step < self.steps:
                    self.acc["seconds"] = elapsed
                    distributed.broadcast_module(self.net, self.info)
                    self.save(complete=False)
                    raise TrainingInterrupted(
                        f"interrupted at epoch {self.epoch + 1}, step {self.step}/{self.steps}; checkpoint saved "
                        f"to {self.ckpt}; continue with: ofa-edge train --resume {self.out}{self.resume_hint}")
            self.acc["seconds"] += time.perf_counter() - t0
            distributed.broadcast_module(self.net, self.info)
            row = {"epoch": self.epoch + 1, "phase": phase.name, "lr": round(stats["lr"], 8),
                   "loss": round(self.acc["loss"] / self.steps, 6), "images": self.acc["images"],
                   "seconds": round(self.acc["seconds"], 3),
                   "images_per_s": round(self.acc["images"] / max(self.acc["seconds"], 1e-9), 2)}
            row.update(self.validate())
            self.metrics.append(row)
            self.epoch += 1
            self.step = 0
            self.acc = {"loss": 0.0, "images": 0, "seconds": 0.0}
            if self.progress:
                self.progress({"event": "epoch", **row})
            self.save(complete=self.epoch == self.total_epochs)
            if distributed.any_flag(stop.hit, self.info) and self.epoch < self.total_epochs:
                raise TrainingInterrupted(f"interrupted after epoch {self.epoch}; checkpoint saved to "
                                          f"{self.ckpt}; continue with: ofa-edge train --resume {self.out}{self.resume_hint}")


def remove_stale_temps(out: Path) -> list[str]:
    """Delete temp files that a killed run left beside its checkpoint and logs; returns their names."""
    gone = []
    for name in (CHECKPOINT_NAME, "sampled.csv", "metrics.csv"):
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            gone.append(tmp.name)
    return gone


def build_net(cfg: TrainConfig, task: TaskData) -> tuple[OFAMobileNetV3, dict | None]:
    """A fresh supernet for the task (seeded), optionally initialised from ``cfg.init``."""
    space = resolve_space(cfg.space)
    head_map = HeadMap.from_space(space, cfg.heads, task.n_classes)
    torch.manual_seed(cfg.seed)
    net = create_supernet(space, task.n_classes, head_map, cfg.dropout)
    report = load_init(net, cfg.init) if cfg.init else None
    return net.train(), report


def fill_space(cfg: TrainConfig) -> TrainConfig:
    """Fill in ``space`` from the --init checkpoint when it was not given."""
    if cfg.space:
        return cfg
    space = "cifar-mbv3"
    if cfg.init:
        from ofa_edge.supernet import load_any

        space = load_any(cfg.init).space.name
    return dataclasses.replace(cfg, space=space)


def train(cfg: TrainConfig | None = None, resume: str | Path | None = None,
          progress: Callable[[dict], None] | None = None, threads: int | str | None = None) -> TrainResult:
    """Train a supernet as ``cfg`` says (or continue the run whose checkpoint/folder is ``resume``).

    Writes ``supernet.pt``, ``sampled.csv`` and ``metrics.csv`` into ``cfg.out`` after every epoch
    (rank 0 only). Under torchrun (WORLD_SIZE > 1) it trains with DDP. On SIGINT/SIGTERM it saves and
    raises TrainingInterrupted. ``threads``: a torch thread count, ``auto`` (a probe picks 1 thread
    when the CPU is too busy for more) or None (torch's default); the choice is reported in the start
    event and in the result.
    """
    report = None
    state = None
    if resume is not None:
        payload, saved_cfg, state = read_train_checkpoint(resume)
        if cfg is not None and Path(cfg.out) != Path(saved_cfg.out):
            saved_cfg = dataclasses.replace(saved_cfg, out=cfg.out)
        cfg = saved_cfg
    elif cfg is None:
        raise ValueError("train: give a config or a checkpoint to resume")
    else:
        if (Path(cfg.out) / CHECKPOINT_NAME).is_file():
            raise InvalidValueError(f"out: {cfg.out} already holds a training run; resume it, or choose another "
                                    "output folder", "out")
        cfg = fill_space(cfg)
    device = pick_device(cfg)
    cfg = dataclasses.replace(cfg, precision=resolve_precision(cfg.precision, device))
    if device.type != "cpu":
        choice = ThreadChoice(torch.get_num_threads(), "GPU run")
    elif threads == "auto" and state is not None and isinstance(state.get("threads"), int) and state["threads"] >= 1:
        torch.set_num_threads(state["threads"])  # float sums depend on the thread count: resume exactly
        choice = ThreadChoice(state["threads"], "as the run started, for a bit-exact resume")
    else:
        choice = choose_threads(threads)
    info = distributed.setup("nccl" if device.type == "cuda" else "gloo")
    task = load_task(cfg.data, cfg.val_fraction, cfg.labels_per_class, cfg.seed)
    if state is not None and info.is_main:
        remove_stale_temps(Path(cfg.out))
    if state is not None:
        if state.get("world", 1) != info.world:
            raise OfaEdgeError(f"resume: the run was trained with {state.get('world')} process(es); "
                               f"resume it with the same number (now {info.world})")
        net = resume_net(Path(resume), payload)
    else:
        net, report = build_net(cfg, task)
    run = _Run(cfg, task, net, info, progress, device)
    if state is not None:
        if int(state["epoch"]) >= run.total_epochs:  # already complete
            return TrainResult(net, run.out, run.ckpt, list(state.get("metrics", [])))
        ckpt = Path(resume) / CHECKPOINT_NAME if Path(resume).is_dir() else Path(resume)
        if int(state["step"]) >= run.steps:
            raise FileFormatError(ckpt, f"bad training state (step {state['step']} of an epoch of {run.steps})")
        _, phase, first = run.phase_at(int(state["epoch"]))
        mid_phase = (int(state["step"]), int(state["epoch"])) != (0, first)
        if mid_phase and (state["optimizer"] is None or phase.teacher and state.get("teacher") is None):
            raise FileFormatError(ckpt, "bad training state (no optimizer or teacher state in the middle of a phase)")
        try:
            run.load_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise FileFormatError(ckpt, f"bad training state ({(str(exc) or type(exc).__name__).splitlines()[0]})") \
                from None
    run.wrap()
    if progress:
        progress({"event": "start", "task": task.describe(), "epochs": run.total_epochs, "steps": run.steps,
                  "epoch": run.epoch, "step": run.step, "phases": [(p.name, p.epochs) for p in run.phases],
                  "init": report, "rank": info.rank, "world": info.world, "precision": cfg.precision,
                  "device": str(device), "threads": choice.describe()})
    with _StopFlag() as stop:
        run.run(stop)
    return TrainResult(net, run.out, run.ckpt, run.metrics, report, choice, str(device), cfg.precision)
