"""Training strategies: which subnets each step trains and with which loss.

``progressive`` (OFA progressive shrinking), ``random`` (one uniform subnet per step), ``sandwich``
(max + min + n random, in-place distillation from the max net) and ``tofa`` (sandwich + label
smoothing + FixMatch pseudo-labels + distillation on labelled and unlabelled images).
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ofa_edge.data import derive_seed
from ofa_edge.errors import OfaEdgeError
from ofa_edge.space import SearchSpace, Subnet, max_subnet, min_subnet, sample
from ofa_edge.train.config import TrainConfig
from ofa_edge.train.losses import TofaTerms, kd_loss, pseudo_labels, smooth_ce, tofa_loss


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
            raise OfaEdgeError(f"phase epochs: this space has {n} progressive phases "
                               f"({', '.join(p[0] for p in plan)}); got {len(phase_epochs)} numbers")
        lengths = list(phase_epochs)
    else:
        if epochs < n:
            raise OfaEdgeError(f"epochs: progressive shrinking on {space.name} has {n} phases "
                               f"({', '.join(p[0] for p in plan)}); use --epochs >= {n}")
        weights = [_PS_WEIGHT[p[1]] for p in plan]
        raw = [1 + (epochs - n) * w / sum(weights) for w in weights]
        lengths = [math.floor(r) for r in raw]
        for i in sorted(range(n), key=lambda i: lengths[i] - raw[i])[:epochs - sum(lengths)]:
            lengths[i] += 1
    lrs = [_PS_LR[p[1]] for p in plan]
    if phase_lr is not None:
        if len(phase_lr) != n:
            raise OfaEdgeError(f"phase lr: this space has {n} progressive phases "
                               f"({', '.join(p[0] for p in plan)}); got {len(phase_lr)} numbers")
        lrs = list(phase_lr)
    return [Phase(name, length, sp, lr, k, sort, teacher)
            for (name, kind, sp, k, sort, teacher), length, lr in zip(plan, lengths, lrs) if length > 0]


def plan_phases(cfg: TrainConfig, space: SearchSpace) -> list[Phase]:
    """The phases of a run (one phase for every strategy except progressive)."""
    if cfg.strategy == "progressive":
        return progressive_phases(space, cfg.epochs, cfg.phase_epochs, cfg.phase_lr)
    n = 1 if cfg.strategy == "random" else 2 + cfg.n_random
    return [Phase(cfg.strategy, cfg.epochs, space, 1.0, n)]


def subnets_for_step(strategy: str, phase: Phase, seed: int, iteration: int) -> list[tuple[str, Subnet]]:
    """The (role, subnet) pairs trained at ``iteration``; every process draws the same ones (seeded by
    run seed, iteration and position, as OFA re-seeds per subnet)."""
    space = phase.space
    rngs = (random.Random(derive_seed(seed, iteration, k)) for k in range(phase.n_subnets))
    if strategy in ("sandwich", "tofa"):
        out = [("max", max_subnet(space)), ("min", min_subnet(space))]
        out += [("random", sample(space, next(rngs))) for _ in range(phase.n_subnets - 2)]
        return out
    return [("random", sample(space, rng)) for rng in rngs]


@dataclass
class StepBatch:
    """One step's inputs at the loader resolution (unlabelled views only for tofa)."""

    x: torch.Tensor
    y: torch.Tensor
    u_weak: torch.Tensor | None = None
    u_strong: torch.Tensor | None = None


def at_resolution(x: torch.Tensor, r: int) -> torch.Tensor:
    """Resize a batch to r x r (bilinear, antialiased) unless it already is."""
    if x.shape[-1] == r and x.shape[-2] == r:
        return x
    return F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=True)


def run_step(cfg: TrainConfig, phase: Phase, net, model: Callable, subnets: list[tuple[str, Subnet]],
             batch: StepBatch, teacher=None) -> dict[str, float]:
    """Forward and backward every subnet of the step (gradients accumulate); returns loss parts.

    ``net`` is the supernet (to select subnets), ``model`` what to call (the DDP wrapper or ``net``).
    """
    stats: dict[str, float] = {}
    max_logits = max_uw = None
    pseudo = None
    terms = TofaTerms(cfg.label_smoothing, cfg.fixmatch, cfg.threshold, cfg.lambda_u, cfg.kd_labelled,
                      cfg.kd_unlabelled, cfg.kd_ratio)
    teacher_cache: dict[int, torch.Tensor] = {}
    for role, subnet in subnets:
        net.set_subnet(subnet)
        r = subnet.r
        if cfg.strategy == "tofa":
            nl = batch.x.size(0)
            nu = batch.u_weak.size(0) if batch.u_weak is not None else 0
            parts_in = [batch.x] + ([batch.u_weak, batch.u_strong] if nu else [])
            logits = model(at_resolution(torch.cat(parts_in), r))
            logits_l = logits[:nl]
            logits_uw = logits[nl:nl + nu] if nu else None
            logits_us = logits[nl + nu:] if nu else None
            if role == "max":
                max_logits, max_uw = logits_l.detach(), (logits_uw.detach() if nu else None)
                if nu:
                    pseudo = pseudo_labels(logits_uw, cfg.threshold)
                    stats["mask"] = float(pseudo[1].mean())
            use_u = terms.fixmatch and nu > 0
            loss, parts = tofa_loss(dataclasses.replace(terms, fixmatch=use_u), logits_l, batch.y,
                                    logits_uw, logits_us, pseudo,
                                    None if role == "max" else max_logits,
                                    None if role == "max" or not nu else max_uw)
            for k, v in parts.items():
                stats[f"{role}_{k}"] = stats.get(f"{role}_{k}", 0.0) + v
        else:
            logits = model(at_resolution(batch.x, r))
            if cfg.strategy == "sandwich" and role != "max" and cfg.kd_ratio > 0:
                loss = cfg.kd_ratio * kd_loss(logits, max_logits)
            else:
                loss = smooth_ce(logits, batch.y, cfg.label_smoothing)
                if phase.teacher and teacher is not None and cfg.kd_ratio > 0:
                    if r not in teacher_cache:
                        with torch.no_grad():
                            teacher_cache[r] = teacher(at_resolution(batch.x, r)).detach()
                    loss = loss + cfg.kd_ratio * kd_loss(logits, teacher_cache[r])
            if role == "max":
                max_logits = logits.detach()
        loss.backward()
        stats[f"{role}_loss"] = stats.get(f"{role}_loss", 0.0) + float(loss.detach())
        stats["loss"] = stats.get("loss", 0.0) + float(loss.detach()) / len(subnets)
    return stats
