"""A subnet: kernel and expand per block slot, depth per stage, input resolution (immutable)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

from ofa_edge.errors import InvalidValueError
from ofa_edge.space.config import SearchSpace


@dataclass(frozen=True, eq=False)
class Subnet:
    """One architecture of a search space; equality and ``id`` ignore entries of skipped blocks."""

    ks: tuple[int, ...]
    e: tuple[int, ...]
    d: tuple[int, ...]
    r: int
    max_depth: int = 4

    def __post_init__(self) -> None:
        for name in ("ks", "e", "d"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise InvalidValueError(f"{name}: must be a list of integers, got {value!r}")
            object.__setattr__(self, name, tuple(_as_int(name, v) for v in value))
        object.__setattr__(self, "r", _as_int("r", self.r))
        if len(self.ks) != len(self.e) or len(self.ks) != len(self.d) * self.max_depth:
            raise InvalidValueError(f"ks/e: need {len(self.d) * self.max_depth} entries (stages x max depth), "
                             f"got {len(self.ks)} and {len(self.e)}")

    # -- structure ------------------------------------------------------------------------------
    def active_blocks(self) -> list[int]:
        """Block slots that run, in order (the first ``d[s]`` slots of each stage)."""
        return [s * self.max_depth + i for s, depth in enumerate(self.d) for i in range(depth)]

    def canonical(self) -> tuple:
        active = self.active_blocks()
        return (tuple(self.ks[i] for i in active), tuple(self.e[i] for i in active), self.d, self.r)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Subnet) and self.canonical() == other.canonical()

    def __hash__(self) -> int:
        return hash(self.canonical())

    @property
    def id(self) -> str:
        """A stable 10-character id of the architecture (skipped blocks do not count)."""
        ks, e, d, r = self.canonical()
        text = json.dumps({"ks": ks, "e": e, "d": d, "r": r}, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def short(self) -> str:
        """Human-readable form: per stage ``k/e`` codes, then the resolution."""
        parts = []
        for s, depth in enumerate(self.d):
            blocks = [f"{self.ks[s * self.max_depth + i]}{self.e[s * self.max_depth + i]}"
                      for i in range(depth)]
            parts.append(".".join(blocks))
        return "|".join(parts) + f"@{self.r}"

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"ks": list(self.ks), "e": list(self.e), "d": list(self.d), "r": self.r}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def replace(self, **changes: Any) -> "Subnet":
        data = self.to_dict() | changes
        return Subnet(max_depth=self.max_depth, **data)


def _as_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        raise InvalidValueError(f"{name}: {v!r} is not an integer")
    return int(v)


def validate(space: SearchSpace, subnet: Subnet) -> Subnet:
    """Raise ValueError naming the field and the allowed values if ``subnet`` is not in ``space``."""
    if subnet.max_depth != space.max_depth or len(subnet.d) != space.n_stages:
        raise InvalidValueError(f"d: need {space.n_stages} stage depths, got {len(subnet.d)}")
    for s, depth in enumerate(subnet.d):
        if depth not in space.depth_list:
            raise InvalidValueError(f"d[{s}]: {depth} is not one of {list(space.depth_list)}")
    for i in subnet.active_blocks():
        if subnet.ks[i] not in space.ks_list:
            raise InvalidValueError(f"ks[{i}]: {subnet.ks[i]} is not one of {list(space.ks_list)}")
        if subnet.e[i] not in space.expand_list:
            raise InvalidValueError(f"e[{i}]: {subnet.e[i]} is not one of {list(space.expand_list)}")
    if subnet.r not in space.resolutions:
        raise InvalidValueError(f"r: {subnet.r} is not one of {list(space.resolutions)}")
    return subnet


def subnet_from_dict(space: SearchSpace, data: Any) -> Subnet:
    """Build and validate a subnet from ``{"ks", "e", "d", "r"}``; scalars broadcast as in OFA."""
    if not isinstance(data, dict):
        raise InvalidValueError(f"subnet must be a JSON object with keys ks, e, d, r; got {type(data).__name__}")
    unknown = sorted(set(data) - {"ks", "e", "d", "r", "resolution", "image_size"})
    if unknown:
        raise InvalidValueError(f"subnet: unknown field {unknown[0]!r}; allowed: ks, e, d, r")
    missing = [k for k in ("ks", "e", "d") if k not in data]
    if missing:
        raise InvalidValueError(f"subnet: missing field {missing[0]!r}; need ks, e, d and r")
    r = data.get("r", data.get("resolution", data.get("image_size", max(space.resolutions))))
    if isinstance(r, list) and len(r) == 1:
        r = r[0]

    def expand(name: str, n: int) -> list:
        value = data[name]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return [value] * n
        if not isinstance(value, list):
            raise InvalidValueError(f"{name}: must be an integer or a list of {n} integers, got {value!r}")
        if len(value) != n:
            raise InvalidValueError(f"{name}: need {n} entries, got {len(value)}")
        return value

    d = [min(_as_int("d", v), space.max_depth) for v in expand("d", space.n_stages)]
    subnet = Subnet(ks=expand("ks", space.n_blocks), e=expand("e", space.n_blocks), d=d, r=r,
                    max_depth=space.max_depth)
    return validate(space, subnet)


def subnet_from_json(space: SearchSpace, text: str) -> Subnet:
    """Parse a subnet from JSON text; malformed JSON raises ValueError with the parser's position."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidValueError(f"subnet JSON is malformed: {exc}") from None
    return subnet_from_dict(space, data)
