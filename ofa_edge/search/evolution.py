"""Evolutionary search (OFA's EvolutionFinder, vectorised and bounded) and the random baseline."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from ofa_edge.errors import InvalidValueError, OfaEdgeError
from ofa_edge.search.cost import Constraint
from ofa_edge.search.genome import GenomeCodec, Genomes
from ofa_edge.space import Subnet

ScoreFn = Callable[[Genomes], np.ndarray]


class InfeasibleBudgetError(OfaEdgeError, ValueError):
    """No subnet of the space meets the constraints."""


@dataclass(frozen=True)
class EvolutionConfig:
    """OFA's defaults (population 100, 500 generations, 25 % parents, 50 % mutants, p = 0.1 / 0.5)."""

    population: int = 100
    generations: int = 500
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutation_prob: float = 0.1
    resolution_prob: float = 0.5
    max_retries: int = 100  # rounds of re-drawing infeasible children before giving up on them
    seed: int = 0

    def __post_init__(self) -> None:
        if self.population < 2:
            raise InvalidValueError(f"population: need at least 2, got {self.population}", "population")
        if self.generations < 0:
            raise InvalidValueError(f"generations: must be >= 0, got {self.generations}", "generations")
        for name in ("parent_ratio", "mutation_ratio", "mutation_prob", "resolution_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise InvalidValueError(f"{name}: must be in [0, 1], got {v}", name)
        if self.n_parents < 1:
            raise InvalidValueError(f"parent_ratio: {self.parent_ratio} x population {self.population} leaves "
                                    "no parent", "parent_ratio")
        if self.max_retries < 1:
            raise InvalidValueError(f"max_retries: must be >= 1, got {self.max_retries}", "max_retries")

    @property
    def n_parents(self) -> int:
        return int(round(self.population * self.parent_ratio))

    @property
    def n_mutants(self) -> int:
        return int(round(self.population * self.mutation_ratio))

    @property
    def n_crossovers(self) -> int:
        return self.population - self.n_mutants


@dataclass
class Candidate:
    """A subnet with its score (e.g. predicted top-1 in %) and its constrained costs."""

    subnet: Subnet
    score: float
    costs: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.subnet.id, "subnet": self.subnet.to_dict(), "score": self.score, **self.costs}


@dataclass
class SearchResult:
    """The best candidate, the ranked final generation, the best score per generation."""

    best: Candidate
    ranking: list[Candidate]
    history: list[float]
    bounds: dict[str, float]
    selector: str
    seconds: float
    evaluated: int
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"selector": self.selector, "bounds": self.bounds, "best": self.best.to_dict(),
                "seconds": self.seconds, "evaluated": self.evaluated, "config": self.config,
                "top": [c.to_dict() for c in self.ranking[:10]]}


def feasible(constraints: list[Constraint], g: Genomes) -> np.ndarray:
    """Boolean mask of the rows of ``g`` meeting every constraint."""
    mask = np.ones(len(g), dtype=bool)
    for c in constraints:
        mask &= c.cost(g) <= c.bound
    return mask


def check_feasible(codec: GenomeCodec, constraints: list[Constraint]) -> list[Genomes]:
    """Raise InfeasibleBudgetError naming the cheapest achievable value; else return cheapest subnets."""
    seeds = []
    for c in constraints:
        low, g = c.cost.minimum()
        if low > c.bound:
            sub = codec.to_subnets(g)[0]
            what = "latency" if c.cost.unit == "ms" else c.name
            raise InfeasibleBudgetError(
                f"no subnet of space {codec.space.name!r} meets {what} <= {c.describe()}: the "
                f"{'fastest' if c.cost.unit == 'ms' else 'smallest'} achievable is {c.describe(low)} "
                f"(subnet {sub.short()}); raise the budget to at least that")
        seeds.append(g)
    return seeds


def _fill(make: Callable[[int], Genomes], n: int, constraints: list[Constraint],
          retries: int) -> Genomes | None:
    """Up to ``n`` feasible genomes from ``make``, re-drawing the infeasible ones at most ``retries`` times."""
    got, have = [], 0
    for attempt in range(retries):
        cand = make(n - have if attempt == 0 else 2 * (n - have) + 8)
        ok = cand.take(feasible(constraints, cand))
        if len(ok):
            got.append(ok)
            have += len(ok)
        if have >= n:
            break
    if not got:
        return None
    return Genomes.concat(got).take(np.arange(min(n, have)))


def initial_population(codec: GenomeCodec, constraints: list[Constraint], n: int,
                       rng: np.random.Generator, retries: int = 100) -> Genomes:
    """``n`` feasible subnets: rejection sampling (bounded), topped up with mutants of the cheapest ones."""
    seeds = [g for g in check_feasible(codec, constraints) if feasible(constraints, g).all()]
    sampled = _fill(lambda m: codec.sample(rng, max(m, 16)), n, constraints, retries)
    parts = seeds + ([sampled] if sampled is not None else [])
    if not parts:
        raise InfeasibleBudgetError(
            f"no subnet found that meets all of {', '.join(c.name + ' <= ' + c.describe() for c in constraints)} "
            f"after {retries} rounds of sampling; loosen one of the budgets")
    pool = Genomes.concat(parts)
    if len(pool) < n:
        more = _fill(lambda m: codec.mutate(rng, pool.take(rng.integers(0, len(pool), max(m, 16))), 0.3, 0.5),
                     n - len(pool), constraints, retries)
        if more is not None:
            pool = Genomes.concat([pool, more])
    if len(pool) < n:  # a tiny feasible region: repeat members rather than loop
        pool = pool.take(np.resize(np.arange(len(pool)), n))
    return pool.take(np.arange(n))


def _rank(codec: GenomeCodec, g: Genomes, scores: np.ndarray, constraints: list[Constraint],
          limit: int | None = None) -> list[Candidate]:
    order = np.argsort(-scores, kind="stable")
    keys = codec.keys(g)
    seen, rows = set(), []
    for i in order:
        if keys[i] in seen:
            continue
        seen.add(keys[i])
        rows.append(int(i))
        if limit is not None and len(rows) >= limit:
            break
    sel = g.take(np.asarray(rows))
    costs = {c.name: c.cost(sel) for c in constraints}
    subs = codec.to_subnets(sel)
    return [Candidate(subs[j], float(scores[i]), {k: float(v[j]) for k, v in costs.items()})
            for j, i in enumerate(rows)]


def evolve(codec: GenomeCodec, score: ScoreFn, constraints: list[Constraint],
           config: EvolutionConfig = EvolutionConfig(),
           progress: Callable[[int, float], None] | None = None) -> SearchResult:
    """Maximise ``score`` under ``constraints``; returns the best of the ranked final generation."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    pop = initial_population(codec, constraints, config.population, rng, config.max_retries)
    scores = np.asarray(score(pop), dtype=np.float64)
    evaluated = len(pop)
    history: list[float] = []
    n_par = config.n_parents
    for gen in range(config.generations):
        order = np.argsort(-scores, kind="stable")[:n_par]
        parents, parent_scores = pop.take(order), scores[order]
        history.append(float(parent_scores[0]))
        kids = []
        if config.n_mutants:
            m = _fill(lambda n: codec.mutate(rng, parents.take(rng.integers(0, n_par, n)),
                                             config.mutation_prob, config.resolution_prob),
                      config.n_mutants, constraints, config.max_retries)
            kids += [m] if m is not None else []
        if config.n_crossovers:
            c = _fill(lambda n: codec.crossover(rng, parents.take(rng.integers(0, n_par, n)),
                                                parents.take(rng.integers(0, n_par, n))),
                      config.n_crossovers, constraints, config.max_retries)
            kids += [c] if c is not None else []
        if kids:
            children = Genomes.concat(kids)
            child_scores = np.asarray(score(children), dtype=np.float64)
            evaluated += len(children)
            pop = Genomes.concat([parents, children])
            scores = np.concatenate([parent_scores, child_scores])
        else:
            pop, scores = parents, parent_scores
        if progress is not None:
            progress(gen + 1, history[-1])
    ranking = _rank(codec, pop, scores, constraints)
    return SearchResult(ranking[0], ranking, history, {c.name: c.bound for c in constraints}, "evolution",
                        time.perf_counter() - t0, evaluated, asdict(config))


def random_search(codec: GenomeCodec, score: ScoreFn, constraints: list[Constraint], n: int = 1000,
                  seed: int = 0, retries: int = 100) -> SearchResult:
    """Baseline: the best by ``score`` of ``n`` random feasible subnets."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    check_feasible(codec, constraints)
    pool = _fill(lambda m: codec.sample(rng, max(m, 16)), n, constraints, retries)
    if pool is None:
        pool = Genomes.concat([g for g in check_feasible(codec, constraints)
                               if feasible(constraints, g).all()] or [codec.sample(rng, 0)])
        if not len(pool):
            raise InfeasibleBudgetError("no random subnet meets all constraints; loosen one of the budgets")
    scores = np.asarray(score(pool), dtype=np.float64)
    ranking = _rank(codec, pool, scores, constraints)
    return SearchResult(ranking[0], ranking, [float(scores.max())], {c.name: c.bound for c in constraints},
                        "random", time.perf_counter() - t0, len(pool), {"n": n, "seed": seed})
