"""TensorRT's ``trtexec`` as a device runtime (Jetson): its command line and the parser of its summary.

Two summary layouts exist across TensorRT 8.x-10.x:

* one line per metric (TensorRT >= 8.2, JetPack 4.6.1 and later), after ``=== Performance summary ===``:
  ``GPU Compute Time: min = 0.39 ms, max = 0.93 ms, mean = 0.41 ms, median = 0.40 ms, percentile(99%) = 0.55 ms``
  (8.4+ adds ``percentile(90%)`` and ``percentile(95%)``), and ``Latency: ...`` for host latency;
* a block per metric (TensorRT 7.x and 8.0, JetPack 4.6): ``GPU Compute`` then ``min: 0.39 ms``,
  ``max: ...``, ``mean: ...``, ``median: ...``, ``percentile: 0.55 ms at 99%``.

The device's time is ``GPU Compute Time`` (host ``Latency`` adds the copies). Statistics trtexec does not
print are derived and listed in ``approximated``: p90 is the 99th percentile when no 90th is printed; the
standard deviation comes from the printed coefficient of variance, else from (p99 - median) / 2.326.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from ofa_edge.devices.bundle import ModelFile
from ofa_edge.devices.profile import DeviceProfile
from ofa_edge.devices.tool_runtime import device_binary, push_model, run_tool
from ofa_edge.devices.toolout import ToolOutputError, last_lines, number
from ofa_edge.devices.transport import Transport

NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
PRECISIONS = ("fp32", "fp16", "int8", "best")
#: Where JetPack installs trtexec (it is not on PATH there).
DEFAULT_BINARY = "/usr/src/tensorrt/bin/trtexec"
_LINE = re.compile(rf"(?:^|\] |^\s+)(GPU Compute Time|Latency): ((?:\w+(?:\(\d+(?:\.\d+)?%\))? = {NUM} ms,? ?)+)",
                   re.M)
_FIELD = re.compile(rf"(\w+(?:\(\d+(?:\.\d+)?%\))?) = ({NUM}) ms")
_BLOCK_START = re.compile(r"\]?\s*(GPU Compute|Host Latency)\s*$")
_BLOCK_FIELD = re.compile(rf"\b(min|max|mean|median): ({NUM}) ms")
_BLOCK_PCT = re.compile(rf"\bpercentile: ({NUM}) ms at (\d+(?:\.\d+)?)%")
_CV = re.compile(rf"GPU compute time is unstable, with coefficient of variance = ({NUM})%")
_QUERIES = re.compile(r"Timing trace has (\d+) queries")
_VERSION = re.compile(r"&&&& (?:PASSED|RUNNING|FAILED) TensorRT\.trtexec \[TensorRT v(\d+)\]")
_FAILED = re.compile(r"&&&& FAILED TensorRT\.trtexec")


@dataclass(frozen=True)
class TrtexecOptions:
    """How to run trtexec: precision, warm-up time (ms), timed iterations, runs per printed average."""

    precision: str = "fp16"
    warmup_ms: int = 200
    iterations: int = 100
    avg_runs: int = 10
    timing_cache: str = ""  # device path of a timing cache shared by all builds (TensorRT >= 8.0)


def command(binary: str, onnx: str, opts: TrtexecOptions) -> list[str]:
    """The device command that builds an engine from ``onnx`` and times ``iterations`` inferences."""
    argv = [binary, f"--onnx={onnx}", f"--warmUp={opts.warmup_ms}", f"--iterations={opts.iterations}",
            "--duration=0", f"--avgRuns={opts.avg_runs}"]
    if opts.precision in ("fp16", "int8"):
        argv.append(f"--{opts.precision}")
    elif opts.precision == "best":
        argv.append("--best")
    if opts.timing_cache:
        argv.append(f"--timingCacheFile={opts.timing_cache}")
    return argv


def tensorrt_version(text: str) -> str | None:
    """``8.2.1``-style version from trtexec's ``&&&& ... [TensorRT v8201]`` banner (10.x: ``v100300``)."""
    m = _VERSION.search(text)
    if not m:
        return None
    v = m.group(1)
    if len(v) >= 6:  # 10.x: MMmmpp
        return f"{int(v[:-4])}.{int(v[-4:-2])}.{int(v[-2:])}"
    return f"{int(v[:-3])}.{int(v[-3])}.{int(v[-2:])}"  # 8.x: Mmpp


def _summary_lines(text: str) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for m in _LINE.finditer(text):
        key = "gpu" if m.group(1) == "GPU Compute Time" else "host"
        found[key] = {_field_name(k): number(v) for k, v in _FIELD.findall(m.group(2))}
    return found


def _field_name(label: str) -> str:
    pct = re.match(r"percentile\((\d+(?:\.\d+)?)%\)", label)
    return f"p{pct.group(1)}" if pct else label


def _summary_blocks(text: str) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    current: dict[str, float] | None = None
    for line in text.splitlines():
        start = _BLOCK_START.search(line)
        if start:
            current = found.setdefault("gpu" if start.group(1) == "GPU Compute" else "host", {})
            continue
        if current is None:
            continue
        field = _BLOCK_FIELD.search(line)
        pct = _BLOCK_PCT.search(line)
        if field and line.split("]")[-1].strip().startswith(field.group(1)):
            current.setdefault(field.group(1), number(field.group(2)))
        elif pct:
            current.setdefault(f"p{pct.group(2)}", number(pct.group(1)))
        elif line.split("]")[-1].strip():
            current = None  # the block ended
    return found


def parse_output(text: str) -> dict[str, Any]:
    """GPU compute statistics in milliseconds from one trtexec run; ToolOutputError if it printed none."""
    try:
        return _parse(text)
    except ValueError as exc:
        raise ToolOutputError("trtexec", f"printed an implausible number ({exc})", last_lines(text)) from None


def _parse(text: str) -> dict[str, Any]:
    metrics = _summary_lines(text) or _summary_blocks(text)
    gpu = metrics.get("gpu") or metrics.get("host")
    if _FAILED.search(text) or not gpu or not {"min", "mean", "median"} <= set(gpu):
        raise ToolOutputError("trtexec", "failed" if _FAILED.search(text) else "printed no 'GPU Compute Time' "
                              "summary", last_lines(text))
    approximated = []
    out: dict[str, Any] = {"median_ms": gpu["median"], "mean_ms": gpu["mean"], "min_ms": gpu["min"]}
    if "max" in gpu:
        out["max_ms"] = gpu["max"]
    if "p90" in gpu:
        out["p90_ms"] = gpu["p90"]
    else:
        out["p90_ms"] = gpu.get("p99", gpu.get("max", gpu["mean"]))
        approximated.append("p90_ms")
    cv = _CV.search(text)
    if cv:
        out["std_ms"] = number(cv.group(1)) / 100.0 * gpu["mean"]
    else:
        out["std_ms"] = max(0.0, gpu.get("p99", gpu["median"]) - gpu["median"]) / 2.326
        approximated.append("std_ms")
    if "host" in metrics and "median" in metrics["host"]:
        out["host_median_ms"] = metrics["host"]["median"]
    queries = _QUERIES.search(text)
    if queries:
        out["repeats"] = int(queries.group(1))
    version = tensorrt_version(text)
    if version:
        out["runtime_version"] = f"TensorRT {version}"
    out["approximated"] = approximated
    return out


def measure(t: Transport, profile: DeviceProfile, model: ModelFile) -> dict[str, Any]:
    """Push the ONNX ``model`` and build + time a TensorRT engine with trtexec; GPU compute statistics in ms."""
    rt, b = profile.runtime, profile.benchmark
    binary = device_binary(t, rt.binary or DEFAULT_BINARY, "trtexec")
    onnx = push_model(t, model)
    cache = posixpath.join(t.work_dir(), f"trtexec-{rt.precision}.timing-cache")
    opts = TrtexecOptions(precision=rt.precision, warmup_ms=rt.warmup_ms, iterations=b.repeats,
                          avg_runs=min(10, b.repeats), timing_cache=cache)
    stats = parse_output(run_tool(t, "trtexec", command(binary, onnx, opts)))
    stats.setdefault("repeats", b.repeats)
    return {**stats, "warmup": b.warmup}
