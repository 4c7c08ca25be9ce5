"""One entry point for every selector: build the costs once, then pick a subnet per budget."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ofa_edge.errors import InvalidValueError
from ofa_edge.registry import Registry
from ofa_edge.search.cost import AdditiveCost, CallableCost, Constraint, batch_fn_of, cost_model, macs_cost, params_cost
from ofa_edge.search.evolution import EvolutionConfig, ScoreFn, SearchResult, check_feasible, evolve, random_search
from ofa_edge.search.genome import GenomeCodec
from ofa_edge.search.selectors import SampledEntry, last_sampled
from ofa_edge.space import SearchSpace



@dataclass
class SearchSetup:
    """A space with its objective (predicted top-1 %) and cost models (latency ms, MACs, params)."""

    space: SearchSpace
    n_classes: int
    codec: GenomeCodec
    score: ScoreFn
    latency: AdditiveCost | CallableCost | None
    macs: AdditiveCost
    params: AdditiveCost

    @classmethod
    def build(cls, space: SearchSpace, n_classes: int, score: ScoreFn | None = None,
              latency: Any = None) -> "SearchSetup":
        """``score`` maps Genomes to values to maximise (default: MACs, i.e. the biggest net that fits);
        ``latency`` is a latency table (``.predict(subnets)`` in ms) or a callable, or None."""
        codec = GenomeCodec(space)
        macs = macs_cost(codec, n_classes)
        lat = cost_model(codec, batch_fn_of(latency), "latency_ms", "ms") if latency is not None else None
        return cls(space, n_classes, codec, score or macs, lat, macs, params_cost(codec, n_classes))

    def constraints(self, latency_ms: float | None = None, max_macs: float | None = None,
                    max_params: float | None = None) -> list[Constraint]:
        """The constraints for the given bounds (None = unconstrained)."""
        out = []
        if latency_ms is not None:
            if self.latency is None:
                raise InvalidValueError("a latency budget needs a latency table (name a device)", "device")
            out.append(Constraint(self.latency, float(latency_ms)))
        if max_macs is not None:
            out.append(Constraint(self.macs, float(max_macs)))
        if max_params is not None:
            out.append(Constraint(self.params, float(max_params)))
        return out

    def describe(self, subnets) -> dict[str, np.ndarray]:
        """Predicted latency (if a table is set), MACs and params of each subnet."""
        g = self.codec.from_subnets(list(subnets))
        out = {"macs": self.macs(g), "params": self.params(g)}
        if self.latency is not None:
            out["latency_ms"] = self.latency(g)
        out["predicted_top1"] = np.asarray(self.score(g), dtype=np.float64)
        return out


@dataclass
class SelectOptions:
    """Selector settings besides the bounds: evolution settings, the training log, random draws, progress."""

    config: EvolutionConfig = field(default_factory=EvolutionConfig)
    sampled: list[SampledEntry] | None = None
    random_n: int = 1000
    progress: Callable[[int, float], None] | None = None


class Selector:
    """Picks one subnet of a SearchSetup under constraints. Subclass, set the flags, register."""

    name = ""
    #: Whether it ranks by the accuracy predictor (else the predictor is optional).
    needs_predictor = True
    #: Whether it picks from the training log (``runs/<run>/sampled.csv``) instead of the whole space.
    needs_training_log = False

    def select(self, setup: SearchSetup, constraints: list[Constraint], opts: SelectOptions) -> SearchResult:
        """The chosen subnet and the ranking it was chosen from."""
        raise NotImplementedError


#: Selectors by name (the names ``select`` and ``specialize`` accept).
SELECTORS: Registry[Selector] = Registry("selector", "selector")


def register_selector(cls: type[Selector]) -> type[Selector]:
    """Class decorator: register an instance of ``cls`` under ``cls.name`` (a taken name is refused)."""
    SELECTORS.add(cls.name, cls())
    return cls


@register_selector
class Evolution(Selector):
    """OFA's evolutionary search, maximising the predicted accuracy."""

    name = "evolution"

    def select(self, setup, constraints, opts):
        return evolve(setup.codec, setup.score, constraints, opts.config, opts.progress)


@register_selector
class LastSampled(Selector):
    """TOFA's rule: of the subnets the training log holds, the one sampled last that meets the bounds."""

    name = "last-sampled"
    needs_predictor = False
    needs_training_log = True

    def select(self, setup, constraints, opts):
        if opts.sampled is None:
            raise InvalidValueError("the last-sampled selector needs the training log (sampled.csv)", "selector")
        return last_sampled(setup.codec, opts.sampled, constraints, setup.score)


@register_selector
class RandomDraw(Selector):
    """The best predicted of ``random_n`` uniformly drawn feasible subnets."""

    name = "random"

    def select(self, setup, constraints, opts):
        return random_search(setup.codec, setup.score, constraints, opts.random_n, opts.config.seed,
                             opts.config.max_retries)


def select(setup: SearchSetup, selector: str = "evolution", *, latency_ms: float | None = None,
           max_macs: float | None = None, max_params: float | None = None,
           config: EvolutionConfig = EvolutionConfig(), sampled: list[SampledEntry] | None = None,
           random_n: int = 1000, progress: Callable[[int, float], None] | None = None) -> SearchResult:
    """Pick one subnet under the bounds with a registered ``selector`` (evolution | last-sampled | random).

    Args:
        setup: The space with its score (predicted top-1) and cost models.
        selector: A name in ``SELECTORS``.
        latency_ms, max_macs, max_params: Upper bounds (None: unbounded).
        config, sampled, random_n, progress: Evolution settings, the training log (for last-sampled),
            draws of the random selector, a per-generation callback.

    Returns:
        The best subnet, the ranking it came from and the bounds.

    Raises:
        UnknownNameError: an unregistered selector.
        InfeasibleBudgetError: no subnet meets the bounds.
    """
    chosen = SELECTORS.get(selector)
    cons = setup.constraints(latency_ms, max_macs, max_params)
    return chosen.select(setup, cons, SelectOptions(config, sampled, random_n, progress))


def select_budgets(setup: SearchSetup, budgets_ms: list[float], selector: str = "evolution",
                   **kwargs: Any) -> list[SearchResult]:
    """One result per latency budget (ascending); an infeasible budget fails before any search runs."""
    budgets = sorted(budgets_ms)
    if not SELECTORS.get(selector).needs_training_log:
        check_feasible(setup.codec, setup.constraints(budgets[0], kwargs.get("max_macs"), kwargs.get("max_params")))
    ranked = SELECTORS.get(selector).needs_predictor
    results: list[SearchResult] = []
    for b in budgets:
        res = select(setup, selector, latency_ms=b, **kwargs)
        if results and ranked:
            res = keep_tighter_pick(results[-1], res)
        results.append(res)
    return results


def keep_tighter_pick(tighter: SearchResult, looser: SearchResult) -> SearchResult:
    """A looser budget's result that never ranks below the tighter budget's pick (which meets it too).

    A search is a heuristic: with a small population the looser budget's search can end on a subnet predicted
    less accurate than one a tighter budget already found. That pick meets every bound of the looser budget
    (only the latency bound differs, and it is larger), so it is a candidate of the looser search as well.
    """
    if tighter.best.score <= looser.best.score:
        return looser
    ranking = sorted([tighter.best] + [c for c in looser.ranking if c.subnet.id != tighter.best.subnet.id],
                     key=lambda c: -c.score)
    return dataclasses.replace(looser, best=tighter.best, ranking=ranking)
