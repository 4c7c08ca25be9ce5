"""Batched augmentations: eval, weak (crop, flip, colour jitter) and strong (RandAugment, then weak).

Small images (stored size <= 1.5 r) are resized to r and cropped with r/8 reflect padding, as on
CIFAR; large images get OFA's random-resized crop (train) or resize to ceil(r / 0.875) + centre crop
(eval). Random draws come from torch's global RNG: callers seed it per batch.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms import v2 as T

AUGMENTATIONS = ("eval", "weak", "strong")
BRIGHTNESS = 32 / 255   # OFA's colour jitter
SATURATION = 0.5


class BatchAugment:
    """Turns a list of uint8 CHW images into one normalised float batch at ``resolution``."""

    def __init__(self, kind: str, resolution: int, mean: Sequence[float], std: Sequence[float],
                 native: int | None = None):
        if kind not in AUGMENTATIONS:
            raise ValueError(f"augmentation: {kind!r} is not one of {list(AUGMENTATIONS)}")
        self.kind, self.r = kind, int(resolution)
        # None: decided from the first image seen (file sources of unknown size)
        self.small: bool | None = None if native is None else native <= resolution * 1.5
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.randaugment = T.RandAugment(num_ops=2, magnitude=10) if kind == "strong" else None
        self.rrc = T.RandomResizedCrop(self.r, scale=(0.08, 1.0), antialias=True)
        self.eval_large = T.Compose([T.Resize(int(math.ceil(self.r / 0.875)), antialias=True),
                                     T.CenterCrop(self.r)])

    def _geometry(self, img: torch.Tensor) -> torch.Tensor:
        if self.randaugment is not None:
            img = self.randaugment(img)
        if self.small:
            if img.shape[-1] != self.r or img.shape[-2] != self.r:
                img = T.functional.resize(img, [self.r, self.r], antialias=True)
            return img
        return self.eval_large(img) if self.kind == "eval" else self.rrc(img)

    def __call__(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.small is None:
            self.small = max(images[0].shape[-2:]) <= self.r * 1.5
        x = torch.stack([self._geometry(img) for img in images]).to(torch.float32) / 255.0
        if self.kind != "eval":
            x = self.random_crop_flip(x) if self.small else self.flip(x)
            x = self.colour_jitter(x)
        return (x - self.mean) / self.std

    def random_crop_flip(self, x: torch.Tensor) -> torch.Tensor:
        """Random r x r crop of the reflect-padded batch (pad r/8), then random horizontal flips."""
        pad = max(1, self.r // 8)
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        offs = torch.randint(0, 2 * pad + 1, (x.size(0), 2))
        x = torch.stack([padded[i, :, int(a):int(a) + self.r, int(b):int(b) + self.r]
                         for i, (a, b) in enumerate(offs)])
        return self.flip(x)

    @staticmethod
    def flip(x: torch.Tensor) -> torch.Tensor:
        mask = torch.rand(x.size(0)) < 0.5
        return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)

    @staticmethod
    def colour_jitter(x: torch.Tensor) -> torch.Tensor:
        """Per-image brightness factor in [1 - 32/255, 1 + 32/255] and saturation factor in [0.5, 1.5]."""
        n = x.size(0)
        b = 1.0 + (torch.rand(n) * 2 - 1) * BRIGHTNESS
        s = 1.0 + (torch.rand(n) * 2 - 1) * SATURATION
        x = (x * b.view(-1, 1, 1, 1)).clamp(0, 1)
        gray = (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
        return (gray + s.view(-1, 1, 1, 1) * (x - gray)).clamp(0, 1)


def make_transform(kind: str, resolution: int, mean, std, native: int | None = None) -> BatchAugment:
    """The batch transform named ``kind`` (eval | weak | strong)."""
    return BatchAugment(kind, resolution, mean, std, native)
