"""Measure a set of models on one device: upload one bundle, run the runner once per batch, stream results."""

from __future__ import annotations

import posixpath
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Sequence

from ofa_edge.devices.bundle import ModelFile, build_bundle, check_result, parse_line
from ofa_edge.devices.profile import DeviceProfile
from ofa_edge.devices.runtimes import RuntimeSpec, get_runtime
from ofa_edge.devices.shellwrap import crash_message, signal_of
from ofa_edge.devices.tool_runtime import check_with_tool, shell_facts
from ofa_edge.devices.transport import Transport, TransportError, open_transport
from ofa_edge.errors import OfaEdgeError

ResultHandler = Callable[[dict[str, Any]], None]


class DeviceError(TransportError):
    """The runner started but reported a fatal problem (runtime missing, unusable bundle)."""


@dataclass
class MeasureReport:
    """What one measuring session did: results recovered from the device, measured, failed; device facts."""

    recovered: int = 0
    measured: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    commands: int = 0
    uploads: int = 0


def run_folder(transport: Transport) -> str:
    """The device folder for this profile's results and bundles (inside the profile's work_dir)."""
    p = transport.profile
    return posixpath.join(transport.work_dir(), f"{p.name}-{p.runtime.name}")


def measure_models(profile: DeviceProfile, models: Sequence[ModelFile], on_result: ResultHandler,
                   batch_size: int = 32, transport: Transport | None = None,
                   skip: Collection[tuple[str, int]] = ()) -> MeasureReport:
    """Measure ``models`` on the device; ``on_result`` gets each validated result as soon as it arrives.

    With ``benchmark.rounds`` = R each model is measured R times, in a new order each round (result
    messages carry ``"round"``); ``skip`` names (model, round) pairs the caller already has. Results
    already in the device's results files (from an interrupted earlier run with the same settings) are
    recovered first and not measured again.
    """
    own = transport is None
    t = transport or open_transport(profile)
    if own:
        t.open()
    try:
        return _measure(t, profile, list(models), on_result, max(1, batch_size), skip=set(skip))
    finally:
        if own:
            t.close()


def round_order(models: Sequence[ModelFile], round_index: int) -> list[ModelFile]:
    """The order of round ``round_index``: as given for round 0, a seeded shuffle for the later ones."""
    out = list(models)
    if round_index:
        random.Random(round_index).shuffle(out)
    return out


def _results_name(base: str, round_index: int) -> str:
    stem, dot, ext = base.rpartition(".")
    return base if round_index == 0 else f"{stem}.r{round_index}{dot}{ext}"


def _measure(t: Transport, profile: DeviceProfile, models: list[ModelFile], on_result: ResultHandler,
             batch_size: int, results_name: str = "results.jsonl", recover: bool = True,
             rounds: int | None = None, skip: set[tuple[str, int]] | None = None) -> MeasureReport:
    report = MeasureReport()
    wanted = {m.name: m for m in models}
    rounds = profile.benchmark.rounds if rounds is None else rounds
    done: set[tuple[str, int]] = set(skip or ())
    folder = run_folder(t)
    t.makedirs(folder)
    settings = profile.settings_id()

    def deliver(msg: dict[str, Any], k: int) -> None:
        done.add((msg["name"], k))
        on_result({**msg, "round": k})

    for k in range(rounds):
        previous = t.read(posixpath.join(folder, _results_name(results_name, k))) if recover else None
        for line in (previous or b"").decode("utf-8", "replace").splitlines():
            msg = parse_line(line)
            if msg and msg["type"] == "result" and msg["name"] in wanted and (msg["name"], k) not in done \
                    and msg["settings"] == settings:
                report.recovered += 1
                deliver(msg, k)
    todo = [[m for m in round_order(models, k) if (m.name, k) not in done] for k in range(rounds)]
    if not any(todo):
        return report
    spec = get_runtime(profile.runtime.name)
    pace = _Pacer(profile, rounds)
    if spec.measure is not None:
        for k, missing in enumerate(todo):
            if missing:
                pace(k)
                _measure_each(t, profile, spec, missing, k, report, deliver)
        return report
    with tempfile.TemporaryDirectory(prefix="ofa-edge-bundle-") as tmp:
        bundle = build_bundle([m for m in models if any((m.name, k) not in done for k in range(rounds))],
                              profile, Path(tmp))
        remote_bundle = posixpath.join(folder, bundle.name)
        t.put(bundle, remote_bundle)
        report.uploads += 1
    for k, missing in enumerate(todo):
        if missing:
            pace(k)
        results_path = posixpath.join(folder, _results_name(results_name, k))
        for start in range(0, len(missing), batch_size):
            _run_batch(t, profile, missing[start:start + batch_size], remote_bundle, results_path, k, report,
                       done, deliver)
    return report


class _Pacer:
    """Holds round k back until ``min_span_s * (k - k0) / (rounds - 1)`` seconds after the first round
    measured in this call (k0) started; rounds recovered from the device before k0 take no time."""

    def __init__(self, profile: DeviceProfile, rounds: int | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.span, self.rounds = profile.benchmark.min_span_s, rounds or profile.benchmark.rounds
        self.clock, self.sleep = clock, sleep
        self.origin: float | None = None

    def start(self, k: int) -> float:
        return self.span * k / max(1, self.rounds - 1)

    def __call__(self, k: int) -> None:
        now = self.clock()
        if self.origin is None:
            self.origin = now - self.start(k)
            return
        wait = self.origin + self.start(k) - now
        if wait > 0:
            self.sleep(wait)


def _measure_each(t: Transport, profile: DeviceProfile, spec: RuntimeSpec, models: list[ModelFile], k: int,
                  report: MeasureReport, deliver: Callable[[dict[str, Any], int], None]) -> None:
    """Round ``k`` of a runtime that measures by itself (``RuntimeSpec.measure``), one model at a time."""
    b = profile.benchmark
    if not report.info:  # no Python runner reports the device's facts: read them with its shell
        report.info = shell_facts(t)
    for m in models:
        try:
            stats = spec.measure(t, profile, m)
        except TransportError:
            raise
        except OfaEdgeError as exc:  # the tool's own words (a crash by signal, a refused model)
            report.failed[m.name] = str(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - a model that fails to run is reported, as the runner does
            report.failed[m.name] = f"{type(exc).__name__}: {exc}"
            continue
        msg = check_result({"threads": b.threads, "batch": b.batch, "warmup": b.warmup, "runtime_version": spec.name,
                            **stats, "type": "result", "name": m.name, "runtime": spec.name,
                            "settings": profile.settings_id()})
        if msg is None:
            report.failed[m.name] = f"runtime {spec.name} returned implausible statistics {stats!r}"
            continue
        report.info.setdefault("runtime_version", msg["runtime_version"])
        report.measured += 1
        report.commands += 1
        deliver(msg, k)


def _run_batch(t: Transport, profile: DeviceProfile, batch: list[ModelFile], remote_bundle: str,
               results_path: str, k: int, report: MeasureReport, done: set[tuple[str, int]],
               deliver: Callable[[dict[str, Any], int], None]) -> None:
    """One runner command over ``batch`` (round ``k``), streaming its results to ``deliver``."""
    names = {m.name for m in batch}
    fatal: list[str] = []

    def handle(line: str) -> None:
        msg = parse_line(line)
        if msg is None:
            return
        if msg["type"] == "info":
            report.info = msg
        elif msg["type"] == "fatal":
            fatal.append(msg["message"])
        elif msg["type"] == "error" and msg["name"] in names:
            report.failed[msg["name"]] = msg["message"]
        elif msg["type"] == "result" and msg["name"] in names and (msg["name"], k) not in done:
            report.measured += 1
            deliver(msg, k)

    argv = [t.python(), remote_bundle, "--results", results_path, "--only", ",".join(m.name for m in batch)]
    result = t.run(argv, profile.connection.command_timeout, handle)
    report.commands += 1
    if fatal:
        raise DeviceError(f"device {profile.name}: {fatal[0]}")
    number = signal_of(result.exit_code)
    if number is not None:
        raise DeviceError(f"device {profile.name}: " + crash_message(
            f"runtime {profile.runtime.name} (run by {t.python()})", number, result.stderr)
            + f"; {report.measured} result(s) of this run are kept, a re-run measures the rest")
    if result.exit_code != 0:
        tail = result.stderr.strip().splitlines()[-1:] or ["no error output"]
        raise TransportError(f"device {profile.name}: the runner could not start with {t.python()!r} "
                             f"(exit {result.exit_code}: {tail[0][:300]}); check device.python in the "
                             "profile and that python3 + numpy are installed on the device")


def check_device(profile: DeviceProfile, probe: ModelFile | None = None) -> dict[str, Any]:
    """Connect, report python/runtime/CPU/governor/free disk, and run the runner on ``probe`` if given."""
    with open_transport(profile) as t:
        if get_runtime(profile.runtime.name).measure is not None:
            return check_with_tool(t, profile, probe)
        work = t.work_dir()
        t.makedirs(work)
        lines: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="ofa-edge-check-") as tmp:
            bundle = build_bundle([probe] if probe else [], profile, Path(tmp))
            folder = run_folder(t)
            t.makedirs(folder)
            remote_bundle = posixpath.join(folder, bundle.name)
            t.put(bundle, remote_bundle)
        res = t.run([t.python(), remote_bundle, "--info", "--work-dir", work], profile.connection.connect_timeout
                    + 60, lambda line: lines.append(parse_line(line) or {}))
        info = next((m for m in lines if m.get("type") == "info"), None)
        if res.exit_code != 0 or info is None:
            tail = res.stderr.strip().splitlines()[-1:] or ["no output"]
            raise TransportError(f"device {profile.name}: python {t.python()!r} could not run the runner "
                                 f"(exit {res.exit_code}: {tail[0][:300]}); check device.python")
        out = {"device": profile.name, "transport": profile.connection.transport, "target": t.describe(),
               "work_dir": work, **{k: v for k, v in info.items() if k != "type"},
               "runtime": profile.runtime.name, "runtime_version": (info.get("runtimes") or {}).get(
                   profile.runtime.name)}
        out["runner_ok"] = False
        if probe is not None and out["runtime_version"]:
            got: list[dict[str, Any]] = []
            try:
                rep = _measure(t, profile, [probe], got.append, 1, "check-results.jsonl", recover=False,
                               rounds=1)
                out["runner_ok"] = bool(got) and not rep.failed
                out["probe_ms"] = got[0]["median_ms"] if got else None
            except DeviceError as exc:
                out["runner_error"] = str(exc)
        elif not out["runtime_version"]:
            out["runner_error"] = f"runtime {profile.runtime.name} is not installed for {t.python()}"
        return out
