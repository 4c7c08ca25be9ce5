"""The sampled-subnet log, kept during training or rebuilt afterwards without training.

Which subnets a step trains is a pure function of the run's config, seed and iteration
(``subnets_for_step``), so a run's ``sampled.csv`` can be recreated exactly from its config and the
number of steps per epoch, e.g. for a packaged supernet that ships without its log.
"""

from __future__ import annotations

from typing import Any

from ofa_edge.space import SearchSpace, Subnet


def record_sampled(sampled: dict[str, list], subnets: list[tuple[str, Subnet]], iteration: int) -> None:
    """Note the subnets trained at ``iteration`` in ``sampled`` (id -> [json, last iteration, count, k])."""
    for k, (_, s) in enumerate(subnets):
        entry = sampled.setdefault(s.id, [s.to_json(), iteration, 0, 0])
        entry[1] = iteration
        entry[2] += 1
        entry[3] = k  # position within the step: orders subnets sampled at the same iteration


def replay_sampled(config: dict[str, Any], space: SearchSpace, steps_per_epoch: int) -> dict[str, list]:
    """The ``sampled`` record a finished run of ``config`` (a saved TrainConfig dict) kept, rebuilt."""
    from ofa_edge.train.config import TrainConfig
    from ofa_edge.train.strategies import plan_phases, subnets_for_step

    cfg = TrainConfig.from_dict(config)
    sampled: dict[str, list] = {}
    iteration = 0
    for phase in plan_phases(cfg, space):
        for _ in range(phase.epochs * steps_per_epoch):
            record_sampled(sampled, subnets_for_step(cfg, phase, cfg.seed, iteration), iteration)
            iteration += 1
    return sampled
