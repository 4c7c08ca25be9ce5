"""Losses: label-smoothed CE, distillation to soft targets, FixMatch pseudo-label loss, TOFA's sum."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def smooth_ce(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Cross entropy against one-hot targets mixed with the uniform distribution (OFA's formula)."""
    n = logits.size(1)
    soft = torch.full_like(logits, smoothing / n)
    soft.scatter_add_(1, target.view(-1, 1), torch.full((target.numel(), 1), 1.0 - smoothing,
                                                         dtype=logits.dtype, device=logits.device))
    return soft_ce(logits, soft)


def soft_ce(logits: torch.Tensor, soft_target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum(p * log_softmax(logits)) (OFA's KD loss with temperature 1)."""
    return torch.mean(torch.sum(-soft_target * F.log_softmax(logits, dim=1), dim=1))


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Distillation: soft CE of the student against the (detached) teacher's softmax."""
    return soft_ce(student_logits, F.softmax(teacher_logits.detach(), dim=1))


def pseudo_labels(weak_logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch: hard labels from the weak view and a mask of those with confidence >= threshold."""
    probs = F.softmax(weak_logits.detach(), dim=1)
    conf, labels = probs.max(dim=1)
    return labels, (conf >= threshold).to(weak_logits.dtype)


def fixmatch_loss(strong_logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over ALL unlabelled images of mask * CE(strong view, pseudo-label) (FixMatch's L_u)."""
    return (F.cross_entropy(strong_logits, labels, reduction="none") * mask).mean()


@dataclass(frozen=True)
class TofaTerms:
    """Which TOFA loss terms are on, and their weights (switch any off for an ablation)."""

    label_smoothing: float = 0.1
    fixmatch: bool = True
    threshold: float = 0.95
    lambda_u: float = 1.0
    kd_labelled: bool = True
    kd_unlabelled: bool = True
    kd_ratio: float = 1.0


def tofa_loss(terms: TofaTerms, logits_l: torch.Tensor, y: torch.Tensor, logits_uw: torch.Tensor,
              logits_us: torch.Tensor, pseudo: tuple[torch.Tensor, torch.Tensor],
              teacher_l: torch.Tensor | None = None, teacher_uw: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """One subnet's TOFA loss on a labelled batch and the weak/strong views of an unlabelled batch.

    L = CE_ls(l) + lambda_u * FixMatch(strong, pseudo-labels of the max net's weak view)
        + kd_ratio * [KD(l, max net) + KD(weak u, max net)]   (KD terms only when a teacher is given,
    i.e. for the min and random subnets; the max net is the teacher).
    """
    parts: dict[str, torch.Tensor] = {"ce": smooth_ce(logits_l, y, terms.label_smoothing)}
    if terms.fixmatch:
        parts["fixmatch"] = terms.lambda_u * fixmatch_loss(logits_us, *pseudo)
    if teacher_l is not None and terms.kd_labelled:
        parts["kd_l"] = terms.kd_ratio * kd_loss(logits_l, teacher_l)
    if teacher_uw is not None and terms.kd_unlabelled:
        parts["kd_u"] = terms.kd_ratio * kd_loss(logits_uw, teacher_uw)
    total = sum(parts.values())
    return total, {k: float(v.detach()) for k, v in parts.items()}
