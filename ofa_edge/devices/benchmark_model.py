"""TFLite's ``benchmark_model`` binary as a device runtime: its command line and the parser of its output.

The binary prints (on stdout/stderr) one ``count=N first=.. curr=.. min=.. max=.. avg=.. std=..`` line for the
warm-up runs and one for the timed runs (recent builds add ``p5= median= p95=``), then a summary line:

* ``Inference timings in us: Init: X, First inference: Y, Warmup (avg): Z, Inference (avg): W`` (TF >= 1.15);
* ``Average inference timings in us: Warmup: Z, Init: X, Inference: W`` (older; oldest say ``no stats: W``).

Values are microseconds, possibly in scientific notation (``2.95034e+06``). Statistics the binary does not
print are filled from the nearest one it does and listed in the result's ``approximated`` field: the median
is the mean when no ``median=`` is printed, p90 is the printed p95 (or mean + 1.2816 std without
percentiles).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from ofa_edge.devices.bundle import ModelFile
from ofa_edge.devices.profile import DeviceProfile
from ofa_edge.devices.tool_runtime import device_binary, push_model, run_tool
from ofa_edge.devices.toolout import ToolOutputError, last_lines, number
from ofa_edge.devices.transport import Transport

NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NEW = re.compile(rf"Inference timings in us: Init: ({NUM}), First inference: ({NUM}), "
                  rf"Warmup \(avg\): ({NUM}), Inference \(avg\): ({NUM})")
_OLD = re.compile(rf"Average inference timings in us: Warmup: ({NUM}), Init: ({NUM}), "
                  rf"(?:Inference|no stats): ({NUM})")
_COUNT = re.compile(rf"count=(\d+)((?: \w+={NUM})+)")
_PAIR = re.compile(rf"(\w+)=({NUM})")
_US = 1e-3  # microseconds -> milliseconds


@dataclass(frozen=True)
class BenchmarkModelOptions:
    """How to run the binary: threads, runs, warm-up runs, XNNPACK, CPU affinity mask (hex, ``taskset``)."""

    threads: int = 1
    repeats: int = 50
    warmup: int = 10
    use_xnnpack: bool = True
    cpu_mask: str = ""  # e.g. "f0": the big cores of a 4+4 phone; empty: no taskset


def command(binary: str, graph: str, opts: BenchmarkModelOptions) -> list[str]:
    """The device command measuring ``graph``: exactly ``repeats`` timed and ``warmup`` warm-up runs."""
    argv = [binary, f"--graph={graph}", f"--num_threads={opts.threads}", f"--num_runs={opts.repeats}",
            f"--warmup_runs={opts.warmup}", "--min_secs=0", "--warmup_min_secs=0",
            f"--use_xnnpack={'true' if opts.use_xnnpack else 'false'}"]
    return ["taskset", opts.cpu_mask, *argv] if opts.cpu_mask else argv


def parse_output(text: str) -> dict[str, Any]:
    """Latency statistics in milliseconds from one run's output; ToolOutputError if there are none."""
    try:
        return _parse(text)
    except ValueError as exc:
        raise ToolOutputError("benchmark_model", f"printed an implausible number ({exc})",
                              last_lines(text)) from None


def _parse(text: str) -> dict[str, Any]:
    new, old = list(_NEW.finditer(text)), list(_OLD.finditer(text))
    if new:
        m = new[-1]
        init_us, first_us, warm_us, mean_us = (number(g) for g in m.groups())
        end = m.start()
    elif old:
        m = old[-1]
        warm_us, init_us, mean_us = (number(g) for g in m.groups())
        first_us, end = None, m.start()
    else:
        raise ToolOutputError("benchmark_model", "printed no 'Inference timings in us' summary", last_lines(text))
    counts = [c for c in _COUNT.finditer(text[:end])]
    timed = _stats(counts[-1]) if counts else {}
    out: dict[str, Any] = {"mean_ms": mean_us * _US, "init_ms": init_us * _US, "warmup_mean_ms": warm_us * _US}
    if first_us is not None:
        out["first_ms"] = first_us * _US
    approximated = []
    if "median" in timed:
        out["median_ms"] = timed["median"] * _US
    else:
        out["median_ms"] = out["mean_ms"]
        approximated.append("median_ms")
    std = timed.get("std")
    if "p95" in timed:
        out["p90_ms"] = timed["p95"] * _US
        approximated.append("p90_ms")
    elif std is not None:
        out["p90_ms"] = (mean_us + 1.2816 * std) * _US
        approximated.append("p90_ms")
    else:
        out["p90_ms"] = out["mean_ms"]
        approximated.append("p90_ms")
    if std is None:
        approximated.append("std_ms")
    out["std_ms"] = (std or 0.0) * _US
    out["min_ms"] = timed.get("min", mean_us) * _US
    if "min" not in timed:
        approximated.append("min_ms")
    if "count" in timed:
        out["repeats"] = int(timed["count"])
    out["approximated"] = approximated
    return out


def _stats(match: re.Match) -> dict[str, float]:
    stats = {"count": float(match.group(1))}
    stats.update((k, number(v)) for k, v in _PAIR.findall(match.group(2)))
    return stats


def version_command(binary: str) -> Sequence[str]:
    """A command that makes the binary print its flags (and proves it runs on the device)."""
    return [binary, "--help"]


def measure(t: Transport, profile: DeviceProfile, model: ModelFile) -> dict[str, Any]:
    """Push ``model`` (and the binary, once) and time it with benchmark_model; statistics in ms."""
    rt, b = profile.runtime, profile.benchmark
    binary = device_binary(t, rt.binary, "benchmark_model")
    graph = push_model(t, model)
    opts = BenchmarkModelOptions(threads=b.threads, repeats=b.repeats, warmup=b.warmup,
                                 use_xnnpack=rt.use_xnnpack, cpu_mask=rt.cpu_mask)
    stats = parse_output(run_tool(t, "benchmark_model", command(binary, graph, opts)))
    stats.setdefault("repeats", b.repeats)
    return {**stats, "warmup": b.warmup}
