"""Choosing the number of torch threads: a short probe tells a busy CPU from an idle one."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import torch

from ofa_edge.errors import OfaEdgeError


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count chosen and why (probe times per thread count, in ms per step)."""

    threads: int
    reason: str
    probe_ms: dict[int, float] = field(default_factory=dict)

    def describe(self) -> str:
        times = ", ".join(f"{n} thread{'s' if n > 1 else ''} {ms:.1f} ms" for n, ms in sorted(self.probe_ms.items()))
        return f"threads: {self.threads} ({self.reason}{'; probe ' + times if times else ''})"


def _probe_workload() -> tuple[torch.nn.Module, torch.Tensor]:
    """A small conv block (pointwise + depthwise + BN), forward and backward, as a training step is."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(16, 96, 1, bias=False), torch.nn.BatchNorm2d(96), torch.nn.ReLU(),
                              torch.nn.Conv2d(96, 96, 5, padding=2, groups=96, bias=False),
                              torch.nn.BatchNorm2d(96), torch.nn.Hardswish(), torch.nn.Conv2d(96, 16, 1, bias=False))
    x = torch.randn(32, 16, 32, 32)
    return net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)


def _time_once(net: torch.nn.Module, x: torch.Tensor, threads: int) -> float:
    torch.set_num_threads(threads)
    t = time.perf_counter()
    net(x).square().mean().backward()
    return (time.perf_counter() - t) * 1000


def probe_threads(candidates: tuple[int, ...], repeats: int = 5) -> dict[int, float]:
    """Median ms per probe step for each thread count (interleaved, so load drift hits all alike)."""
    net, x = _probe_workload()
    saved = torch.get_num_threads()
    times: dict[int, list[float]] = {n: [] for n in candidates}
    try:
        for n in candidates:  # warm-up
            _time_once(net, x, n)
        for _ in range(repeats):
            for n in candidates:
                times[n].append(_time_once(net, x, n))
    finally:
        torch.set_num_threads(saved)
    return {n: sorted(v)[len(v) // 2] for n, v in times.items()}


def choose_threads(request: int | str | None, gain: float = 1.25) -> ThreadChoice:
    """Apply ``request`` (a count, ``auto`` or None = torch's default) and say what was chosen.

    ``auto`` keeps OMP_NUM_THREADS when it is set, else probes 1 thread against all cores: more threads
    are used only when they are at least ``gain`` times faster; on a busy (oversubscribed) CPU they are
    often several times slower.
    """
    if request is None:
        return ThreadChoice(torch.get_num_threads(), "torch default")
    if request != "auto":
        try:
            n = int(request)
        except (TypeError, ValueError):
            raise OfaEdgeError(f"threads: {request!r} is neither a positive number nor 'auto'") from None
        if n < 1:
            raise OfaEdgeError(f"threads: must be at least 1 or 'auto', got {n}")
        torch.set_num_threads(n)
        return ThreadChoice(n, "as asked")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:  # the user (or a job scheduler) fixed the count: keep it
        torch.set_num_threads(int(env))
        return ThreadChoice(int(env), "OMP_NUM_THREADS")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores <= 1:
        torch.set_num_threads(1)
        return ThreadChoice(1, "one core")
    probe = probe_threads((1, cores))
    if probe[cores] * gain <= probe[1]:
        chosen, reason = cores, f"{probe[1] / probe[cores]:.1f}x faster than 1 thread"
    else:
        chosen = 1
        slow = probe[cores] / probe[1]
        reason = (f"CPU busy: {cores} threads {slow:.1f}x slower than 1" if slow > 1 else
                  f"{cores} threads only {1 / slow:.2f}x faster than 1")
    torch.set_num_threads(chosen)
    return ThreadChoice(chosen, reason, probe)
