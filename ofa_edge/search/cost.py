"""Cost models over genomes (latency, MACs, params) and the constraints built from them.

Every cost the project uses (table latency, MACs, params) is a sum over layers, and the cost of an
elastic block slot depends only on the resolution, the slot and its (kernel, expand) choice. ``decompose``
recovers that additive form from any batched cost function with a few hundred probe subnets, so a search
can price thousands of candidates per millisecond with one gather.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ofa_edge.search.genome import GenomeCodec, Genomes
from ofa_edge.space import Subnet, count_macs, count_params, max_subnet, min_subnet

BatchFn = Callable[[list[Subnet]], Sequence[float]]


class NotAdditiveError(ValueError):
    """The cost function is not a per-layer sum, so it cannot be decomposed."""


class AdditiveCost:
    """cost(subnet) = base[r] + sum over active slots of table[r, slot, kernel, expand] (exact)."""

    def __init__(self, codec: GenomeCodec, base: np.ndarray, table: np.ndarray, name: str, unit: str):
        self.codec, self.base, self.table, self.name, self.unit = codec, base, table, name, unit
        self._slots = np.arange(codec.space.n_blocks)[None, :]

    def __call__(self, g: Genomes) -> np.ndarray:
        """Cost of every row of ``g``."""
        per_slot = self.table[g.r[:, None], self._slots, g.k, g.e]
        return self.base[g.r] + (per_slot * self.codec.active(g)).sum(axis=1)

    def of(self, subnets: list[Subnet]) -> np.ndarray:
        return self(self.codec.from_subnets(subnets))

    def _extreme(self, fn) -> tuple[float, Genomes]:
        sp, c = self.codec.space, self.codec
        best_val, best = None, None
        for ri in range(len(c.rs)):
            flat = self.table[ri].reshape(sp.n_blocks, -1)
            slot_idx = (np.argmin if fn is np.min else np.argmax)(flat, axis=1)
            slot_val = flat[np.arange(sp.n_blocks), slot_idx]
            total, d_idx = float(self.base[ri]), []
            for s in range(sp.n_stages):
                prefix = np.cumsum(slot_val[s * sp.max_depth:(s + 1) * sp.max_depth])
                options = prefix[c.ds - 1]
                j = int((np.argmin if fn is np.min else np.argmax)(options))
                d_idx.append(j)
                total += float(options[j])
            if best_val is None or (total < best_val if fn is np.min else total > best_val):
                k, e = np.divmod(slot_idx, len(c.es))
                best_val = total
                best = Genomes(k[None, :], e[None, :], np.asarray([d_idx]), np.asarray([ri]))
        return best_val, best

    def minimum(self) -> tuple[float, Genomes]:
        """The exact smallest cost in the space and one subnet that has it."""
        return self._extreme(np.min)

    def maximum(self) -> tuple[float, Genomes]:
        """The exact largest cost in the space and one subnet that has it."""
        return self._extreme(np.max)


class CallableCost:
    """A cost that is not a per-layer sum: evaluated subnet by subnet (slow path)."""

    def __init__(self, codec: GenomeCodec, fn: BatchFn, name: str, unit: str):
        self.codec, self.fn, self.name, self.unit = codec, fn, name, unit

    def __call__(self, g: Genomes) -> np.ndarray:
        return np.asarray(self.fn(self.codec.to_subnets(g)), dtype=np.float64)

    def of(self, subnets: list[Subnet]) -> np.ndarray:
        return np.asarray(self.fn(subnets), dtype=np.float64)

    def minimum(self) -> tuple[float, Genomes]:
        """The cheapest of the per-resolution minimum subnets (an estimate for non-additive costs)."""
        sp = self.codec.space
        g = self.codec.from_subnets([min_subnet(sp, r) for r in sp.resolutions])
        vals = self(g)
        i = int(np.argmin(vals))
        return float(vals[i]), g.take([i])

    def maximum(self) -> tuple[float, Genomes]:
        sp = self.codec.space
        g = self.codec.from_subnets([max_subnet(sp, r) for r in sp.resolutions])
        vals = self(g)
        i = int(np.argmax(vals))
        return float(vals[i]), g.take([i])


def decompose(codec: GenomeCodec, fn: BatchFn, name: str, unit: str, check: int = 64,
              seed: int = 0) -> AdditiveCost:
    """Recover the additive form of ``fn`` from probe subnets; raise NotAdditiveError if it is not one."""
    sp = codec.space
    nr, nb, ns = len(codec.rs), sp.n_blocks, sp.n_stages
    nk, ne, nd = len(codec.ks), len(codec.es), len(codec.ds)
    # group[p] = first depth index at which slot position p runs (0 = always runs)
    group = np.array([int(np.searchsorted(codec.ds, p + 1)) for p in range(sp.max_depth)])
    probes: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []

    def probe(ri: int, d: np.ndarray, slot: int = -1, k: int = 0, e: int = 0) -> int:
        kk, ee = np.zeros(nb, dtype=np.int64), np.zeros(nb, dtype=np.int64)
        if slot >= 0:
            kk[slot], ee[slot] = k, e
        probes.append((kk, ee, d.copy(), ri))
        return len(probes) - 1

    plan = []
    for ri in range(nr):
        d0 = np.zeros(ns, dtype=np.int64)
        base_id = probe(ri, d0)
        stage_ids = {}
        for s in range(ns):
            for j in range(1, nd):
                d = d0.copy()
                d[s] = j
                stage_ids[s, j] = probe(ri, d)
        slot_ids = {}
        for i in range(nb):
            s, j = int(codec.slot_stage[i]), int(group[codec.slot_pos[i]])
            d = d0.copy()
            d[s] = j
            for k in range(nk):
                for e in range(ne):
                    slot_ids[i, k, e] = probe(ri, d, i, k, e)
        plan.append((base_id, stage_ids, slot_ids))

    g = Genomes(np.stack([p[0] for p in probes]), np.stack([p[1] for p in probes]),
                np.stack([p[2] for p in probes]), np.asarray([p[3] for p in probes]))
    vals = np.asarray(fn(codec.to_subnets(g)), dtype=np.float64)
    if vals.shape != (len(g),) or not np.isfinite(vals).all():
        raise NotAdditiveError(f"{name}: the cost function returned {vals.shape} values (or NaN/inf) "
                               f"for {len(g)} subnets")
    base = np.zeros(nr)
    table = np.zeros((nr, nb, nk, ne))
    for ri, (base_id, stage_ids, slot_ids) in enumerate(plan):
        base[ri] = vals[base_id]
        for i in range(nb):
            s, p = int(codec.slot_stage[i]), int(codec.slot_pos[i])
            j = int(group[p])
            ref = vals[base_id] if j == 0 else vals[stage_ids[s, j]]
            first_of_group = j > 0 and (p == 0 or group[p - 1] != j)
            extra = 0.0
            if first_of_group:
                prev = vals[base_id] if j == 1 else vals[stage_ids[s, j - 1]]
                extra = vals[stage_ids[s, j]] - prev
            for k in range(nk):
                for e in range(ne):
                    table[ri, i, k, e] = vals[slot_ids[i, k, e]] - ref + extra
    cost = AdditiveCost(codec, base, table, name, unit)
    if check:
        sample = codec.sample(np.random.default_rng(seed), check)
        want = np.asarray(fn(codec.to_subnets(sample)), dtype=np.float64)
        got = cost(sample)
        tol = 1e-6 * np.abs(want).max() + 1e-9
        if not np.allclose(got, want, rtol=1e-6, atol=tol):
            worst = int(np.argmax(np.abs(got - want)))
            raise NotAdditiveError(f"{name}: not a per-layer sum (subnet {worst}: "
                                   f"{want[worst]:.6g} measured vs {got[worst]:.6g} from the parts)")
    return cost


def cost_model(codec: GenomeCodec, fn: BatchFn, name: str, unit: str) -> AdditiveCost | CallableCost:
    """The fast additive model of ``fn`` when it is a per-layer sum, else a per-subnet wrapper."""
    try:
        return decompose(codec, fn, name, unit)
    except NotAdditiveError:
        return CallableCost(codec, fn, name, unit)


def macs_cost(codec: GenomeCodec, n_classes: int) -> AdditiveCost:
    """MACs (OFA's analytic count) as an additive cost."""
    sp = codec.space
    return decompose(codec, lambda subs: [count_macs(sp, s, n_classes) for s in subs], "macs", "MACs")


def params_cost(codec: GenomeCodec, n_classes: int) -> AdditiveCost:
    """Parameters of the static subnet as an additive cost."""
    sp = codec.space
    return decompose(codec, lambda subs: [count_params(sp, s, n_classes) for s in subs], "params", "params")


def batch_fn_of(obj: Any) -> BatchFn:
    """A batched ``subnets -> values`` function from a latency table (``.predict``) or a callable."""
    if hasattr(obj, "predict") and callable(obj.predict):
        return lambda subs: [float(v) for v in obj.predict(subs)]
    if callable(obj):
        def fn(subs: list[Subnet]) -> list[float]:
            try:
                out = obj(subs)
                if np.ndim(out) == 1 and len(out) == len(subs):
                    return [float(v) for v in out]
            except (TypeError, AttributeError):
                pass
            return [float(obj(s)) for s in subs]
        return fn
    raise TypeError(f"expected a latency table with .predict(subnets) or a callable, got {type(obj).__name__}")


@dataclass(frozen=True)
class Constraint:
    """``cost(subnet) <= bound``."""

    cost: AdditiveCost | CallableCost
    bound: float

    @property
    def name(self) -> str:
        return self.cost.name

    def describe(self, value: float | None = None) -> str:
        v = self.bound if value is None else value
        return f"{v:.4g} ms" if self.cost.unit == "ms" else f"{v / 1e6:.4g}M {self.cost.unit}"
