"""Training configuration: one typed value that a run is fully described by (saved in its checkpoint)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ofa_edge.errors import InvalidValueError
from ofa_edge.train.strategies import STRATEGIES

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (same config + seed = same weights, bit for bit)."""

    strategy: str = "sandwich"
    space: str | None = "cifar-mbv3"     # None: the --init checkpoint's space, else cifar-mbv3
    data: str | None = None              # None = embedded CIFAR-10 mini set
    out: str = "runs/run"
    epochs: int = 10
    batch_size: int = 64                 # per process
    lr: float = 0.05                     # per process batch; scaled by the number of processes
    momentum: float = 0.9
    weight_decay: float = 3e-5           # not on BN or bias parameters (OFA)
    warmup_epochs: int = 0
    label_smoothing: float = 0.1
    kd_ratio: float = 1.0
    n_random: int = 2                    # sandwich / tofa: random subnets per step besides max and min
    max_every: int = 0                   # random: every Nth step trains the max subnet (0 = never)
    heads: int = 1                       # SOLAR switchable heads
    init: str | None = None              # OFA or ofa-edge checkpoint to start from
    dropout: float = 0.1
    seed: int = 0
    val_fraction: float = 0.1
    labels_per_class: int | None = None
    unlabelled_ratio: int = 1            # tofa: unlabelled batch = ratio * batch_size
    threshold: float = 0.95              # FixMatch confidence threshold
    lambda_u: float = 1.0
    fixmatch: bool = True
    kd_labelled: bool = True
    kd_unlabelled: bool = True
    steps_per_epoch: int | None = None   # None: one pass over the (unlabelled for tofa) training set
    phase_epochs: tuple[int, ...] | None = None  # progressive: explicit epochs per phase
    phase_lr: tuple[float, ...] | None = None    # progressive: lr multiplier per phase (default OFA's)
    bn_images: int = 500                 # BN recalibration images for the per-epoch validation
    eval_every: int = 1                  # validate max/min subnets every N epochs (0 = never)
    workers: int = 0                     # batch-preparing worker processes
    device: str = "auto"                 # auto (cuda if available) | cpu | cuda
    precision: str = "auto"              # auto | fp32 | bf16 | fp16; a run records what auto resolved to

    def __post_init__(self) -> None:
        if self.phase_epochs is not None:
            object.__setattr__(self, "phase_epochs", tuple(int(p) for p in self.phase_epochs))
        if self.phase_lr is not None:
            object.__setattr__(self, "phase_lr", tuple(float(p) for p in self.phase_lr))
        self.validate()

    def validate(self) -> None:
        """Raise InvalidValueError naming the bad field (``.field``) and its allowed values."""
        for name in ("lr", "momentum", "weight_decay", "label_smoothing", "kd_ratio", "dropout", "val_fraction",
                     "threshold", "lambda_u"):
            if not math.isfinite(getattr(self, name)):
                _bad(name, f"must be a finite number, got {getattr(self, name)}")
        strategy = STRATEGIES.get(self.strategy)
        for name in ("epochs", "batch_size", "heads", "unlabelled_ratio"):
            if getattr(self, name) < 1:
                _bad(name, f"must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            _bad("lr", f"must be positive, got {self.lr}")
        if not 0 <= self.label_smoothing < 1:
            _bad("label_smoothing", f"must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.threshold <= 1:
            _bad("threshold", f"must be in [0, 1], got {self.threshold}")
        if self.n_random < 0:
            _bad("n_random", f"must be >= 0, got {self.n_random}")
        if self.max_every < 0:
            _bad("max_every", f"must be >= 0 (0 = never train the max subnet on its own), got {self.max_every}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            _bad("steps_per_epoch", f"must be at least 1, got {self.steps_per_epoch}")
        strategy.check_config(self)
        if self.device not in DEVICES:
            _bad("device", f"{self.device!r} is not one of {list(DEVICES)}")
        if self.precision not in PRECISIONS:
            _bad("precision", f"{self.precision!r} is not one of {list(PRECISIONS)}")
        if self.workers < 0:
            _bad("workers", f"must be >= 0, got {self.workers}")
        if self.phase_lr is not None and any(p <= 0 for p in self.phase_lr):
            _bad("phase_lr", f"multipliers must be positive, got {list(self.phase_lr)}")
        if self.phase_epochs is not None and any(p < 0 for p in self.phase_epochs):
            _bad("phase_epochs", f"must be >= 0, got {list(self.phase_epochs)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("phase_epochs", "phase_lr"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"train config: unknown field {unknown[0]!r}")
        for f in fields(cls):
            if f.name in data and not _fits(data[f.name], str(f.type)):
                raise ValueError(f"train config: {f.name} = {data[f.name]!r} is not of type {f.type}")
        return cls(**data)


def _bad(name: str, problem: str) -> None:
    raise InvalidValueError(f"{name.replace('_', ' ')}: {problem}", name)


def _fits(value: Any, annotation: str) -> bool:
    """Whether a value read from a file matches a field annotation such as ``int | None`` (no bool for int)."""
    for kind in (p.strip() for p in annotation.split("|")):
        if kind == "None" and value is None or kind == "bool" and isinstance(value, bool):
            return True
        if isinstance(value, bool):
            continue
        if kind == "int" and isinstance(value, int) or kind == "str" and isinstance(value, str):
            return True
        if kind == "float" and isinstance(value, (int, float)):
            return True
        if kind.startswith("tuple[") and isinstance(value, (list, tuple)) and all(
                not isinstance(v, bool) and isinstance(v, (int, float)) for v in value):
            return True
    return False
