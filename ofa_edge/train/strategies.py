"""Training strategies: which subnets each step trains and with which loss.

``progressive`` (OFA progressive shrinking), ``random`` (one uniform subnet per step), ``sandwich``
(max + min + n random, in-place distillation from the max net) and ``tofa`` (sandwich + label
smoothing + FixMatch pseudo-labels + distillation on labelled and unlabelled images).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ContextManager

import torch
import torch.nn.functional as F

from ofa_edge.data import derive_seed
from ofa_edge.errors import InvalidValueError
from ofa_edge.registry import Registry
from ofa_edge.space import SearchSpace, Subnet, max_subnet, min_subnet, sample
from ofa_edge.train.losses import TofaTerms, kd_loss, pseudo_labels, smooth_ce, tofa_loss

if TYPE_CHECKING:
    from ofa_edge.train.config import TrainConfig


@dataclass(frozen=True)
class Phase:
    """A stretch of epochs with one sampling space, learning-rate scale and subnets per step."""

    name: str
    epochs: int
    space: SearchSpace          # the (possibly restricted) space subnets are drawn from
    lr_scale: float = 1.0
    n_subnets: int = 1
    sort_stage: int | None = None   # channel sorting (expand stage) when the phase starts
    teacher: bool = False           # distil from the frozen full net


#: OFA's relative phase lengths and base learning rates (train_ofa_net.py; the full net as kernel).
_PS_WEIGHT = {"full": 120, "kernel": 120, "first": 25, "later": 120}
_PS_LR = {"full": 1.0, "kernel": 1.0, "first": 2.5e-3 / 3e-2, "later": 7.5e-3 / 3e-2}


def progressive_phases(space: SearchSpace, epochs: int, phase_epochs=None, phase_lr=None) -> list[Phase]:
    """OFA's phases for ``space``: full, kernel, one per extra depth, one per extra expand ratio.

    Phase lengths follow OFA's ratios (kernel 120, first depth/expand step 25, later ones 120 epochs;
    the full net as long as the kernel phase) scaled to ``epochs``, unless ``phase_epochs`` is given;
    learning-rate multipliers follow OFA's base lrs relative to the kernel phase unless ``phase_lr`` is.
    """
    full = dataclasses.replace(space, ks_list=(max(space.ks_list),), expand_list=(max(space.expand_list),),
                               depth_list=(max(space.depth_list),))
    plan: list[tuple[str, str, SearchSpace, int, int | None, bool]] = [("full", "full", full, 1, None, False)]
    cur = full
    if len(space.ks_list) > 1:
        cur = dataclasses.replace(cur, ks_list=space.ks_list)
        plan.append(("kernel", "kernel", cur, 1, None, True))
    depths = sorted(space.depth_list, reverse=True)
    for i in range(1, len(depths)):
        cur = dataclasses.replace(cur, depth_list=tuple(depths[:i + 1]))
        plan.append((f"depth{i}", "first" if i == 1 else "later", cur, 2, None, True))
    expands = sorted(space.expand_list, reverse=True)
    for i in range(1, len(expands)):
        cur = dataclasses.replace(cur, expand_list=tuple(expands[:i + 1]))
        plan.append((f"expand{i}", "first" if i == 1 else "later", cur, 4, i - 1, True))
    n = len(plan)
    if phase_epochs is not None:
        if len(phase_epochs) != n:
            raise InvalidValueError(f"phase epochs: this space has {n} progressive phases "
                                    f"({', '.join(p[0] for p in plan)}); got {len(phase_epochs)} numbers",
                                    "phase_epochs")
        lengths = list(phase_epochs)
    else:
        if epochs < n:
            raise InvalidValueError(f"epochs: progressive shrinking on {space.name} has {n} phases "
                                    f"({', '.join(p[0] for p in plan)}); train at least {n} epochs", "epochs")
        weights = [_PS_WEIGHT[p[1]] for p in plan]
        raw = [1 + (epochs - n) * w / sum(weights) for w in weights]
        lengths = [math.floor(r) for r in raw]
        for i in sorted(range(n), key=lambda i: lengths[i] - raw[i])[:epochs - sum(lengths)]:
            lengths[i] += 1
    lrs = [_PS_LR[p[1]] for p in plan]
    if phase_lr is not None:
        if len(phase_lr) != n:
            raise InvalidValueError(f"phase lr: this space has {n} progressive phases "
                                    f"({', '.join(p[0] for p in plan)}); got {len(phase_lr)} numbers", "phase_lr")
        lrs = list(phase_lr)
    return [Phase(name, length, sp, lr, k, sort, teacher)
            for (name, kind, sp, k, sort, teacher), length, lr in zip(plan, lengths, lrs) if length > 0]


@dataclass
class StepBatch:
    """One step's inputs at the loader resolution (unlabelled views only for tofa)."""

    x: torch.Tensor
    y: torch.Tensor
    u_weak: torch.Tensor | None = None
    u_strong: torch.Tensor | None = None

    def pin_memory(self) -> "StepBatch":
        """The same batch in page-locked memory (DataLoader calls this with ``pin_memory=True``)."""
        return StepBatch(*(t.pin_memory() if t is not None else None
                           for t in (self.x, self.y, self.u_weak, self.u_strong)))


def at_resolution(x: torch.Tensor, r: int) -> torch.Tensor:
    """Resize a batch to r x r (bilinear, antialiased) unless it already is."""
    if x.shape[-1] == r and x.shape[-2] == r:
        return x
    return F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=True)


def _rngs(seed: int, iteration: int, n: int) -> list[random.Random]:
    """One RNG per subnet of a step, seeded by (run seed, iteration, position) as OFA re-seeds."""
    return [random.Random(derive_seed(seed, iteration, k)) for k in range(n)]


@dataclass(frozen=True)
class StrategyParams:
    """A strategy's own settings; ``from_config`` takes each field from the TrainConfig field of that name."""

    label_smoothing: float = 0.1

    @classmethod
    def from_config(cls, cfg: "TrainConfig") -> "StrategyParams":
        """The params of ``cfg`` (fields TrainConfig lacks keep their defaults)."""
        return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls) if hasattr(cfg, f.name)})

    def get_state(self) -> dict:
        """The params as a plain dict (for logs and checkpoints)."""
        return dataclasses.asdict(self)


class Strategy:
    """How a run is split into phases, which subnets a step trains, and each subnet's loss.

    A new strategy is one subclass registered with ``@register_strategy("name")``: it declares its
    ``Params`` dataclass, whether it trains on unlabelled images (``needs_unlabelled``) and overrides
    ``subnets`` and/or ``subnet_loss``.
    """

    name = ""
    Params: type[StrategyParams] = StrategyParams
    #: Whether the step wants an unlabelled batch (``StepBatch.u_weak``/``u_strong``).
    needs_unlabelled = False

    def __init__(self, params: StrategyParams | None = None):
        self.params = params if params is not None else self.Params()

    @classmethod
    def from_config(cls, cfg: "TrainConfig") -> "Strategy":
        """The strategy with the params of ``cfg``."""
        return cls(cls.Params.from_config(cfg))

    @classmethod
    def check_config(cls, cfg: "TrainConfig") -> None:
        """Raise InvalidValueError (naming the field) if ``cfg`` cannot run this strategy."""

    def phases(self, cfg: "TrainConfig", space: SearchSpace) -> list[Phase]:
        """The run's phases (default: one phase over the whole space)."""
        return [Phase(self.name, cfg.epochs, space, 1.0, self.subnets_per_step())]

    def subnets_per_step(self) -> int:
        """Subnets trained per step."""
        return 1

    def subnets(self, phase: Phase, seed: int, iteration: int) -> list[tuple[str, Subnet]]:
        """(role, subnet) pairs of a step; every process draws the same ones."""
        return [("random", sample(phase.space, rng)) for rng in _rngs(seed, iteration, phase.n_subnets)]

    def step(self, phase: Phase, net, model: Callable, subnets: list[tuple[str, Subnet]],
             batch: StepBatch, teacher=None, amp: Callable[[], ContextManager] = contextlib.nullcontext,
             scaler=None) -> dict[str, float]:
        """Forward (under ``amp``) and backward every subnet (gradients accumulate, scaled by ``scaler``
        when given); returns the loss parts."""
        stats: dict[str, float] = {}
        context: dict = {}
        for role, subnet in subnets:
            net.set_subnet(subnet)
            with amp():
                loss = self.subnet_loss(phase, model, role, subnet.r, batch, teacher, context, stats)
            (scaler.scale(loss) if scaler is not None else loss).backward()
            value = float(loss.detach())
            stats[f"{role}_loss"] = stats.get(f"{role}_loss", 0.0) + value
            stats["loss"] = stats.get("loss", 0.0) + value / len(subnets)
        return stats

    def subnet_loss(self, phase, model, role, r, batch, teacher, context, stats) -> torch.Tensor:
        """Label-smoothed CE on the labelled batch."""
        return smooth_ce(model(at_resolution(batch.x, r)), batch.y, self.params.label_smoothing)


#: Training strategies by name (the names ``TrainConfig.strategy`` accepts).
STRATEGIES: Registry[type[Strategy]] = Registry("training strategy", "strategy")


def register_strategy(name: str):
    """Class decorator: make a Strategy available as ``TrainConfig(strategy=name)``; a taken name is refused."""

    def wrap(cls: type[Strategy]) -> type[Strategy]:
        STRATEGIES.add(name, cls)
        cls.name = name
        return cls

    return wrap


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered as ``name`` (UnknownNameError lists the known ones)."""
    return STRATEGIES.get(name)


def make_strategy(cfg: "TrainConfig") -> Strategy:
    """The strategy ``cfg.strategy`` with its params taken from ``cfg``."""
    return get_strategy(cfg.strategy).from_config(cfg)


@dataclass(frozen=True)
class RandomParams(StrategyParams):
    """Random subnet sampling: how often a step trains the max subnet instead of a sampled one."""

    max_every: int = 0


@register_strategy("random")
class RandomSampling(Strategy):
    """One uniformly sampled subnet per step, label-smoothed CE (random subnet sampling).

    With ``max_every=N`` every Nth step trains the max subnet instead (role ``max``): uniform sampling
    almost never draws it, and the largest subnet is the one users ship when latency allows.
    """

    Params = RandomParams

    def subnets(self, phase: Phase, seed: int, iteration: int) -> list[tuple[str, Subnet]]:
        n = self.params.max_every
        if n > 0 and iteration % n == n - 1:
            return [("max", max_subnet(phase.space))]
        return super().subnets(phase, seed, iteration)


@dataclass(frozen=True)
class ProgressiveParams(StrategyParams):
    """Progressive shrinking: distillation weight, explicit phase lengths and lr multipliers."""

    kd_ratio: float = 1.0
    phase_epochs: tuple[int, ...] | None = None
    phase_lr: tuple[float, ...] | None = None


@register_strategy("progressive")
class ProgressiveShrinking(Strategy):
    """OFA: full net, then elastic kernel, depth, expand; later phases distil from the full net."""

    Params = ProgressiveParams

    def phases(self, cfg: "TrainConfig", space: SearchSpace) -> list[Phase]:
        p = self.params
        return progressive_phases(space, cfg.epochs, p.phase_epochs, p.phase_lr)

    def subnet_loss(self, phase, model, role, r, batch, teacher, context, stats) -> torch.Tensor:
        p = self.params
        logits = model(at_resolution(batch.x, r))
        loss = smooth_ce(logits, batch.y, p.label_smoothing)
        if phase.teacher and teacher is not None and p.kd_ratio > 0:
            cache = context.setdefault("teacher", {})
            if r not in cache:  # the teacher runs in train mode under no-grad, as OFA's
                with torch.no_grad():
                    cache[r] = teacher(at_resolution(batch.x, r)).detach()
            loss = loss + p.kd_ratio * kd_loss(logits, cache[r])
        return loss


@dataclass(frozen=True)
class SandwichParams(StrategyParams):
    """Sandwich rule: distillation weight and random subnets per step besides max and min."""

    kd_ratio: float = 1.0
    n_random: int = 2


@register_strategy("sandwich")
class Sandwich(Strategy):
    """Max + min + n random subnets per step; the max net learns from labels, the others distil from it."""

    Params = SandwichParams

    def subnets_per_step(self) -> int:
        return 2 + self.params.n_random

    def subnets(self, phase: Phase, seed: int, iteration: int) -> list[tuple[str, Subnet]]:
        space = phase.space
        rngs = _rngs(seed, iteration, phase.n_subnets)
        return [("max", max_subnet(space)), ("min", min_subnet(space))] + \
               [("random", sample(space, rng)) for rng in rngs[:phase.n_subnets - 2]]

    def subnet_loss(self, phase, model, role, r, batch, teacher, context, stats) -> torch.Tensor:
        p = self.params
        logits = model(at_resolution(batch.x, r))
        if role == "max":
            context["max_logits"] = logits.detach()
        if role != "max" and p.kd_ratio > 0:
            return p.kd_ratio * kd_loss(logits, context["max_logits"])
        return smooth_ce(logits, batch.y, p.label_smoothing)


@dataclass(frozen=True)
class TofaParams(SandwichParams):
    """TOFA: FixMatch threshold and weight, which distillation terms, unlabelled batch ratio."""

    threshold: float = 0.95
    lambda_u: float = 1.0
    fixmatch: bool = True
    kd_labelled: bool = True
    kd_unlabelled: bool = True
    unlabelled_ratio: int = 1


@register_strategy("tofa")
class Tofa(Sandwich):
    """Sandwich + TOFA's semi-supervised loss (see ``losses.tofa_loss``); each subnet sees the labelled
    batch and both views of the unlabelled batch in one forward pass."""

    Params = TofaParams

    @property
    def needs_unlabelled(self) -> bool:  # type: ignore[override]
        return self.params.fixmatch or self.params.kd_unlabelled

    @classmethod
    def check_config(cls, cfg: "TrainConfig") -> None:
        if cfg.labels_per_class is None and cfg.fixmatch:
            raise InvalidValueError("strategy tofa needs unlabelled images: set labels_per_class to N "
                                    "(N labelled images per class, the rest unlabelled)", "labels_per_class")

    def subnet_loss(self, phase, model, role, r, batch, teacher, context, stats) -> torch.Tensor:
        p = self.params
        terms = TofaTerms(p.label_smoothing, p.fixmatch, p.threshold, p.lambda_u, p.kd_labelled,
                          p.kd_unlabelled, p.kd_ratio)
        nl = batch.x.size(0)
        nu = batch.u_weak.size(0) if batch.u_weak is not None else 0
        parts_in = [batch.x] + ([batch.u_weak, batch.u_strong] if nu else [])
        logits = model(at_resolution(torch.cat(parts_in), r))
        logits_l = logits[:nl]
        logits_uw = logits[nl:nl + nu] if nu else None
        logits_us = logits[nl + nu:] if nu else None
        if role == "max":
            context["max_l"] = logits_l.detach()
            context["max_uw"] = logits_uw.detach() if nu else None
            if nu:
                context["pseudo"] = pseudo_labels(logits_uw, p.threshold)
                stats["mask"] = float(context["pseudo"][1].mean())
        terms = dataclasses.replace(terms, fixmatch=terms.fixmatch and nu > 0)
        student = role != "max"
        loss, parts = tofa_loss(terms, logits_l, batch.y, logits_uw, logits_us, context.get("pseudo"),
                                context["max_l"] if student else None,
                                context["max_uw"] if student and nu else None)
        for k, v in parts.items():
            stats[f"{role}_{k}"] = stats.get(f"{role}_{k}", 0.0) + v
        return loss


def plan_phases(cfg: "TrainConfig", space: SearchSpace) -> list[Phase]:
    """The phases of a run (one phase for every strategy except progressive)."""
    return make_strategy(cfg).phases(cfg, space)


def subnets_for_step(cfg: "TrainConfig", phase: Phase, seed: int, iteration: int) -> list[tuple[str, Subnet]]:
    """The (role, subnet) pairs ``cfg.strategy`` trains at ``iteration`` (identical on every process)."""
    return make_strategy(cfg).subnets(phase, seed, iteration)


def run_step(cfg: "TrainConfig", phase: Phase, net, model: Callable, subnets: list[tuple[str, Subnet]],
             batch: StepBatch, teacher=None, amp: Callable[[], ContextManager] = contextlib.nullcontext,
             scaler=None) -> dict[str, float]:
    """One step of ``cfg.strategy``: ``net`` selects subnets, ``model`` (the DDP wrapper or ``net``) runs."""
    return make_strategy(cfg).step(phase, net, model, subnets, batch, teacher, amp, scaler)
