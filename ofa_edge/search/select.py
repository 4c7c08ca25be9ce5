"""One entry point for every selector: build the costs once, then pick a subnet per budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ofa_edge.search.cost import AdditiveCost, CallableCost, Constraint, batch_fn_of, cost_model, macs_cost, params_cost
from ofa_edge.search.evolution import EvolutionConfig, ScoreFn, SearchResult, check_feasible, evolve, random_search
from ofa_edge.search.genome import GenomeCodec
from ofa_edge.search.selectors import SampledEntry, last_sampled
from ofa_edge.space import SearchSpace

SELECTORS = ("evolution", "last-sampled", "random")


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
                raise ValueError("a latency budget needs a latency table (give --device)")
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


def select(setup: SearchSetup, selector: str = "evolution", *, latency_ms: float | None = None,
           max_macs: float | None = None, max_params: float | None = None,
           config: EvolutionConfig = EvolutionConfig(), sampled: list[SampledEntry] | None = None,
           random_n: int = 1000, progress: Callable[[int, float], None] | None = None) -> SearchResult:
    """Pick one subnet under the bounds with ``selector`` (evolution | last-sampled | random)."""
    cons = setup.constraints(latency_ms, max_macs, max_params)
    if selector == "evolution":
        return evolve(setup.codec, setup.score, cons, config, progress)
    if selector == "random":
        return random_search(setup.codec, setup.score, cons, random_n, config.seed, config.max_retries)
    if selector == "last-sampled":
        if sampled is None:
            raise ValueError("--selector last-sampled needs the training log (sampled.csv)")
        return last_sampled(setup.codec, sampled, cons, setup.score)
    raise ValueError(f"--selector: {selector!r} is not one of {', '.join(SELECTORS)}")


def select_budgets(setup: SearchSetup, budgets_ms: list[float], selector: str = "evolution",
                   **kwargs: Any) -> list[SearchResult]:
    """One result per latency budget (ascending); an infeasible budget fails before any search runs."""
    budgets = sorted(budgets_ms)
    if selector != "last-sampled":
        check_feasible(setup.codec, setup.constraints(budgets[0], kwargs.get("max_macs"), kwargs.get("max_params")))
    return [select(setup, selector, latency_ms=b, **kwargs) for b in budgets]
