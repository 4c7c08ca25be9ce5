"""The search-space definition: choices per elastic dimension and the fixed MobileNetV3 layout."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ofa_edge.errors import InvalidValueError

#: OFA MobileNetV3 base widths: stem, block 0, five stages, final expand, feature mix.
OFA_BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
#: Stride of the first block of each stage, its activation and whether it uses squeeze-excite.
OFA_STAGE_STRIDES = (2, 2, 2, 1, 2)
OFA_STAGE_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
OFA_STAGE_SE = (False, True, False, True, True)

STEMS = {"imagenet": 2, "cifar": 1}
#: The supernet family of every built-in space; files of spaces of this family do not store it.
DEFAULT_FAMILY = "mobilenetv3"


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to a multiple of ``divisor`` without dropping more than 10% (OFA's rule)."""
    if min_value is None:
        min_value = divisor
    n = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if n < 0.9 * v:
        n += divisor
    return n


@dataclass(frozen=True)
class SearchSpace:
    """Elastic kernel/expand/depth/resolution choices over the OFA MobileNetV3 layout."""

    name: str = "ofa-mbv3-w1"
    width_mult: float = 1.0
    stem: str = "imagenet"
    ks_list: tuple[int, ...] = (3, 5, 7)
    expand_list: tuple[int, ...] = (3, 4, 6)
    depth_list: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = (128, 160, 192, 224)
    base_widths: tuple[int, ...] = OFA_BASE_WIDTHS
    stage_strides: tuple[int, ...] = OFA_STAGE_STRIDES
    stage_acts: tuple[str, ...] = OFA_STAGE_ACTS
    stage_se: tuple[bool, ...] = OFA_STAGE_SE
    family: str = DEFAULT_FAMILY  # the supernet family that builds it (``ofa_edge.supernet.create_supernet``)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not isinstance(self.stem, str) or not isinstance(self.family, str):
            raise InvalidValueError("name, stem and family must be strings")
        if isinstance(self.width_mult, bool) or not isinstance(self.width_mult, (int, float)) \
                or not math.isfinite(self.width_mult):
            raise InvalidValueError(f"width_mult: must be a finite number, got {self.width_mult!r}")
        for name in ("ks_list", "expand_list", "depth_list", "resolutions"):
            object.__setattr__(self, name, tuple(sorted(set(_int_list(name, getattr(self, name))))))
        for name in ("base_widths", "stage_strides"):
            object.__setattr__(self, name, tuple(_int_list(name, getattr(self, name))))
        if not isinstance(self.stage_acts, (list, tuple)) or not isinstance(self.stage_se, (list, tuple)):
            raise InvalidValueError("stage_acts and stage_se must be lists")
        object.__setattr__(self, "stage_acts", tuple(str(a) for a in self.stage_acts))
        if any(not isinstance(v, bool) for v in self.stage_se):
            raise InvalidValueError(f"stage_se: must be a list of booleans, got {list(self.stage_se)!r}")
        object.__setattr__(self, "stage_se", tuple(self.stage_se))
        self._check()

    def _check(self) -> None:
        if self.stem not in STEMS:
            raise InvalidValueError(f"stem: {self.stem!r} is not one of {sorted(STEMS)}")
        if any(w < 1 for w in self.base_widths) or any(st < 1 for st in self.stage_strides):
            raise InvalidValueError("base_widths and stage_strides must be positive")
        if not 0 < self.width_mult <= 4:
            raise InvalidValueError(f"width_mult: must be in (0, 4], got {self.width_mult}")
        for name in ("ks_list", "expand_list", "depth_list", "resolutions"):
            values = getattr(self, name)
            if not values or min(values) < 1:
                raise InvalidValueError(f"{name}: needs at least one positive value, got {list(values)}")
        if any(k % 2 == 0 for k in self.ks_list):
            raise InvalidValueError(f"ks_list: kernel sizes must be odd, got {list(self.ks_list)}")
        n = len(self.stage_strides)
        if not (len(self.stage_acts) == len(self.stage_se) == n and len(self.base_widths) == n + 4):
            raise InvalidValueError("stage_strides, stage_acts, stage_se need one entry per stage and "
                             "base_widths needs stages + 4 entries")
        bad = [a for a in self.stage_acts if a not in ("relu", "h_swish")]
        if bad:
            raise InvalidValueError(f"stage_acts: {bad[0]!r} is not one of ['h_swish', 'relu']")

    # -- derived layout -------------------------------------------------------------------------
    @property
    def n_stages(self) -> int:
        return len(self.stage_strides)

    @property
    def max_depth(self) -> int:
        return max(self.depth_list)

    @property
    def n_blocks(self) -> int:
        """Elastic block slots (the length of the per-block ``ks`` and ``e`` lists)."""
        return self.n_stages * self.max_depth

    @property
    def widths(self) -> tuple[int, ...]:
        """Channel widths after the width multiplier (stem, block 0, stages..., final, mix)."""
        return tuple(make_divisible(w * self.width_mult) for w in self.base_widths)

    @property
    def stem_stride(self) -> int:
        return STEMS[self.stem]

    @property
    def n_subnets(self) -> int:
        """Number of distinct architectures (active blocks only) times resolutions."""
        per_block = len(self.ks_list) * len(self.expand_list)
        per_stage = sum(per_block**d for d in self.depth_list)
        return per_stage**self.n_stages * len(self.resolutions)

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        if d["family"] == DEFAULT_FAMILY:  # keeps files and fingerprints of the built-in family unchanged
            d.pop("family")
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchSpace":
        if not isinstance(data, dict):
            raise InvalidValueError(f"search space must be a mapping, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__) - {"extra"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidValueError(f"search space: unknown field {unknown[0]!r}; known fields: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def fingerprint(self) -> str:
        """A short hash that changes whenever the set of subnets or their shapes change."""
        import hashlib

        d = self.to_dict()
        d.pop("name")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> str:
        return (f"{self.name}: stem={self.stem} width={self.width_mult} ks={list(self.ks_list)} "
                f"e={list(self.expand_list)} d={list(self.depth_list)} r={list(self.resolutions)}")


def _int_list(name: str, values: Any) -> list[int]:
    """Strictly parse a list of integers for field ``name`` (no bools, fractions, inf or strings)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise InvalidValueError(f"{name}: must be a list of integers, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or int(v) != v:
            raise InvalidValueError(f"{name}: {v!r} is not an integer")
        out.append(int(v))
    return out
