"""Accuracy predictor, evolutionary search, TOFA's last-sampled rule, Pareto fronts and ``specialize``."""

from ofa_edge.search.accuracy import (AccuracyRow, CollectResult, collect_accuracy, plan_subnets,
                                     read_accuracy_csv, write_accuracy_csv)
from ofa_edge.search.budget import BudgetError, parse_count, parse_latencies, parse_latency
from ofa_edge.search.cost import AdditiveCost, CallableCost, Constraint, cost_model, decompose, macs_cost, params_cost
from ofa_edge.search.evolution import (Candidate, EvolutionConfig, InfeasibleBudgetError, SearchResult, evolve,
                                       random_search)
from ofa_edge.search.genome import GenomeCodec, Genomes
from ofa_edge.search.pareto import ParetoPoint, pareto_front, plot_pareto, write_pareto_csv
from ofa_edge.search.predictor import AccuracyPredictor, Predictor, PredictorMetrics, fit_predictor, load_predictor
from ofa_edge.search.select import SELECTORS, SearchSetup, select, select_budgets
from ofa_edge.search.selectors import SampledEntry, last_sampled, read_sampled_log

__all__ = [
    "AccuracyPredictor", "AccuracyRow", "AdditiveCost", "BudgetError", "CallableCost", "Candidate",
    "CollectResult", "Constraint", "EvolutionConfig", "GenomeCodec", "Genomes", "InfeasibleBudgetError",
    "ParetoPoint", "Predictor", "PredictorMetrics", "SELECTORS", "SampledEntry", "SearchResult", "SearchSetup",
    "collect_accuracy", "cost_model", "decompose", "evolve", "fit_predictor", "last_sampled", "load_predictor",
    "macs_cost", "params_cost", "pareto_front", "parse_count", "parse_latencies", "parse_latency",
    "plan_subnets", "plot_pareto", "random_search", "read_accuracy_csv", "read_sampled_log", "select",
    "select_budgets", "write_accuracy_csv", "write_pareto_csv",
]
