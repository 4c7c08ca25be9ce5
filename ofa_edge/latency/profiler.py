"""Build a device's latency table: measure every distinct layer and a sample of whole subnets, resumably.

Results are appended to a journal (``<runtime>.journal.jsonl`` beside the table) the moment they arrive,
so an interrupted run keeps everything measured; re-running measures only what is missing.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import threading

from ofa_edge.devices import DeviceProfile, ModelFile, TransportError, measure_models, open_transport
from ofa_edge.devices.bundle import parse_line
from ofa_edge.errors import OfaEdgeError
from ofa_edge.latency.blocks import enumerate_blocks
from ofa_edge.latency.fit import accuracy_metrics, fit_correction
from ofa_edge.latency.lock import table_lock
from ofa_edge.latency.origin import measured_here, origin, origin_label
from ofa_edge.latency.models import (MODEL_VERSION, block_model, block_name, default_cache_dir, subnet_model,
                                     subnet_name)
from ofa_edge.latency.precision import check_precision, table_stem
from ofa_edge.latency.table import Correction, LatencyTable, Row, load_table
from ofa_edge.latency.validation import Measured, load_validation, save_validation
from ofa_edge.space import SearchSpace, Subnet, get_space, layers, resolve_space, sample, subnet_from_json

Progress = Callable[[str, str, int, int], None]  # (device, phase, done, total)
#: The torch exporters are not thread-safe: fleet threads export one at a time (cache hits are instant).
_EXPORT_LOCK = threading.Lock()


@dataclass(frozen=True)
class ProfileOptions:
    """What to profile: space, resolutions, classes, how many whole subnets to fit and to validate."""

    space: str | SearchSpace = "cifar-mbv3"  # a registered name, a .json space file or a SearchSpace
    resolutions: tuple[int, ...] | None = None
    n_classes: int = 10
    calibrate: int = 20
    validate: int = 0
    seed: int = 0
    batch_size: int = 256  # models per remote command; results are kept one by one as they arrive
    tables_dir: Path = Path("latency_tables")
    cache_dir: Path | None = None
    read_only: bool = False  # measure and report, but write no table or validation file
    precision: str = "fp32"  # fp32 | int8: the models measured, quantised as the exported INT8 artefacts


@dataclass
class ProfileResult:
    """What a profiling run did and where it wrote."""

    device: str
    runtime: str
    table: Path
    validation: Path
    precision: str = "fp32"
    n_layers: int = 0
    n_subnets: int = 0
    measured: int = 0
    recovered: int = 0
    reused: int = 0
    commands: int = 0
    uploads: int = 0
    metrics: dict[str, Any] | None = None
    saved: bool = False
    refitted: bool = False  # nothing new measured, but this version's fit changed the table's correction
    wall_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "runtime": self.runtime, "precision": self.precision, "table": str(self.table),
                "validation": str(self.validation), "n_layers": self.n_layers, "n_subnets": self.n_subnets,
                "measured": self.measured, "recovered": self.recovered, "reused": self.reused,
                "commands": self.commands, "uploads": self.uploads, "metrics": self.metrics, "saved": self.saved,
                "refitted": self.refitted, "wall_s": round(self.wall_s, 3)}


class ProfileInterrupted(OfaEdgeError):
    """Measuring stopped (connection lost, timeout); what was measured is kept for the re-run."""

    def __init__(self, message: str, kept: int, missing: int):
        super().__init__(message)
        self.kept, self.missing = kept, missing


def table_paths(tables_dir: Path, device: str, runtime: str, precision: str = "fp32") -> dict[str, Path]:
    """The table, validation, journal and lock files of one device + runtime at ``precision``
    (``<runtime>.csv`` for fp32, ``<runtime>-int8.csv`` for int8)."""
    folder, stem = Path(tables_dir) / device, table_stem(runtime, precision)
    return {"table": folder / f"{stem}.csv", "validation": folder / f"{stem}.validation.csv",
            "journal": folder / f"{stem}.journal.jsonl", "lock": folder / f"{stem}.lock"}


def plan_calibration_subnets(space: SearchSpace, resolutions: Sequence[int], calibrate: int, validate: int,
                             seed: int = 0) -> tuple[list[Subnet], list[Subnet]]:
    """Distinct random subnets: ``calibrate`` for the fit, then ``validate`` others for the held-out test.

    Deterministic in ``seed``, and prefix-stable: asking for more test subnets later keeps the first ones.
    """
    rng = random.Random(seed)
    res = sorted(resolutions)
    seen: set[str] = set()

    def draw(count: int) -> list[Subnet]:
        out: list[Subnet] = []
        tries = 0
        while len(out) < count:
            tries += 1
            if tries > 100 * count + 1000:
                raise OfaEdgeError(f"space {space.name} has fewer than {count} distinct subnets at {res}")
            s = sample(space, rng, r=rng.choice(res))
            if s.id not in seen:
                seen.add(s.id)
                out.append(s)
        return out

    fit = draw(calibrate)
    rng = random.Random(seed + 1_000_003)
    return fit, draw(validate)


def _read_journal(path: Path, settings: str) -> dict[str, dict[int, dict[str, Any]]]:
    """The journal's results with ``settings``: model name -> round -> result message."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        msg = parse_line(line)  # a torn last line (crash mid-write) is simply skipped
        if msg and msg["type"] == "result" and msg["settings"] == settings:
            rnd = _round_of(line)
            if rnd is not None:
                out.setdefault(msg["name"], {}).setdefault(rnd, msg)
    return out


def _round_of(line: str) -> int | None:
    """The round a journal line belongs to (0 for lines written before rounds existed)."""
    try:
        rnd = json.loads(line).get("round", 0)
    except ValueError:
        return None
    return rnd if isinstance(rnd, int) and not isinstance(rnd, bool) and 0 <= rnd <= 100 else None


def combine_rounds(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One model's statistics over its rounds: medians of the per-round median/mean/p90/std, the minimum
    of the minima, the sum of the repeats. With one round, that round's statistics unchanged."""
    if len(results) == 1:
        return dict(results[0])
    out = dict(results[0])
    for key in ("median_ms", "mean_ms", "p90_ms", "std_ms"):
        out[key] = float(statistics.median(r[key] for r in results))
    out["min_ms"] = min(r["min_ms"] for r in results)
    out["repeats"] = sum(r["repeats"] for r in results)
    return out


def _device_facts(info: dict[str, Any], profile: DeviceProfile) -> dict[str, Any]:
    from ofa_edge import __version__

    keep = ("runtime_version", "threads", "cpu", "cpu_features", "cpu_count", "governor", "python", "numpy",
            "machine", "system", "hostname", "android", "model")
    facts = {k: info.get(k) for k in keep if k in info}
    facts.update(device=profile.name, description=profile.description, transport=profile.connection.transport,
                 runtime=profile.runtime.name, providers=list(profile.runtime.providers),
                 delegate=profile.runtime.delegate, warmup=profile.benchmark.warmup,
                 repeats=profile.benchmark.repeats, batch=profile.benchmark.batch,
                 threads=profile.benchmark.threads, settings=profile.settings_id(),
                 date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 ofa_edge_version=__version__, model_version=MODEL_VERSION, stat=profile.benchmark.statistic)
    return facts


@dataclass
class _Plan:
    space: SearchSpace
    resolutions: tuple[int, ...]
    blocks: list = field(default_factory=list)
    fit: list[Subnet] = field(default_factory=list)
    test: list[Subnet] = field(default_factory=list)


def _plan(opts: ProfileOptions) -> _Plan:
    space = resolve_space(opts.space)
    res = tuple(sorted(set(opts.resolutions or space.resolutions)))
    blocks = enumerate_blocks(space, res, opts.n_classes)
    fit, test = plan_calibration_subnets(space, res, opts.calibrate, opts.validate, opts.seed)
    return _Plan(space, res, blocks, fit, test)


def prepare_models(profile: DeviceProfile, opts: ProfileOptions, names: set[str] | None = None,
                   progress: Progress | None = None) -> dict[str, ModelFile]:
    """Export (or take from the cache) the models of the plan, restricted to ``names`` if given."""
    plan = _plan(opts)
    cache = Path(opts.cache_dir or default_cache_dir())
    rt, batch, prec = profile.runtime.name, profile.benchmark.batch, opts.precision
    todo: list[tuple[str, Callable[[], ModelFile]]] = []
    for spec in plan.blocks:
        todo.append((block_name(spec, prec), lambda s=spec: block_model(s, rt, cache, batch, precision=prec)))
    for s in plan.fit + plan.test:
        todo.append((subnet_name(s, opts.n_classes, plan.space, prec),
                     lambda s=s: subnet_model(plan.space, s, opts.n_classes, rt, cache, batch, precision=prec)))
    todo = [(n, f) for n, f in todo if names is None or n in names]
    out: dict[str, ModelFile] = {}
    for i, (name, make) in enumerate(todo):
        with _EXPORT_LOCK:
            out[name] = make()
        if progress:
            progress(profile.name, "export", i + 1, len(todo))
    return out


def profile_device(profile: DeviceProfile, opts: ProfileOptions, progress: Progress | None = None) -> ProfileResult:
    """Measure what the table of ``profile`` is missing for ``opts``, then write the table and validation.

    Args:
        profile: The device (``ofa_edge.devices.get_device``); its runtime must be registered.
        opts: Space (name, .json file or SearchSpace), resolutions, classes, whole subnets to fit/validate,
            tables and cache folders, precision (fp32 or int8).
        progress: Called with (device, phase, done, total).

    Returns:
        The table and validation paths, what was measured, recovered or reused, and the validation metrics.

    Raises:
        TableLocked: another process is writing this table.
        ProfileInterrupted: the connection dropped; the measurements so far are kept, a re-run resumes.
        OfaEdgeError: an unknown space or runtime, or models that fail on the device.
    """
    check_precision(opts.precision, profile.runtime.name)
    folder = table_paths(opts.tables_dir, profile.name, profile.runtime.name)["table"].parent
    existed = folder.exists()
    try:
        return _profile_device(profile, opts, progress)
    except BaseException:
        if not existed:  # a run that failed before keeping anything leaves no empty device folder behind
            _remove_if_only_locks(folder)
        raise


def _remove_if_only_locks(folder: Path) -> None:
    try:
        entries = list(folder.iterdir())
        if all(e.suffix == ".lock" and e.is_file() for e in entries):
            for e in entries:
                e.unlink()
            folder.rmdir()
    except OSError:
        pass  # another run is using the folder now


def _profile_device(profile: DeviceProfile, opts: ProfileOptions, progress: Progress | None) -> ProfileResult:
    start = time.monotonic()
    plan = _plan(opts)
    rt = profile.runtime.name
    prec = opts.precision
    paths = table_paths(opts.tables_dir, profile.name, rt, prec)
    settings = profile.settings_id()
    result = ProfileResult(profile.name, rt, paths["table"], paths["validation"], prec, n_layers=len(plan.blocks),
                           n_subnets=len(plan.fit) + len(plan.test))
    with table_lock(paths["lock"]):
        old = load_table(paths["table"]) if paths["table"].is_file() else None
        if old is not None and (old.provenance.get("settings") != settings
                                or old.provenance.get("model_version") != MODEL_VERSION
                                or old.provenance.get("precision", "fp32") != prec):
            old = None  # measured with other settings or other exported models: rebuilt from scratch
        if old is not None and not opts.read_only and profile.connection.transport == "local" \
                and not measured_here(old.provenance):
            old = None  # another machine's table: this machine's own is measured from scratch
        old_rows = dict(old.rows) if old else {}
        old_val: dict[str, Measured] = {}
        if old is not None and paths["validation"].is_file():
            val_settings, val_rows = load_validation(paths["validation"])
            if val_settings == settings:
                old_val = {r.name: r for r in val_rows}
        journal = _read_journal(paths["journal"], settings)
        rounds = profile.benchmark.rounds

        def complete(name: str) -> bool:
            return all(k in journal.get(name, {}) for k in range(rounds))
        block_names = {block_name(b, prec): b for b in plan.blocks}
        subnets = {subnet_name(s, opts.n_classes, plan.space, prec): ("fit", s) for s in plan.fit}
        subnets.update({subnet_name(s, opts.n_classes, plan.space, prec): ("test", s) for s in plan.test})
        have = {n for n, b in block_names.items() if b.lut_key() in old_rows} | (set(subnets) & set(old_val))
        result.reused = len(have)
        total = len(block_names) + len(subnets)
        needed = [n for n in list(block_names) + list(subnets) if n not in have and not complete(n)]
        # Interleave layers and whole subnets: a slow drift of the device's speed (clock, heat, load)
        # then biases the layer sum and the subnets it is compared with alike.
        random.Random(opts.seed).shuffle(needed)
        result.recovered = sum(len(journal[n]) for n in journal if n in block_names or n in subnets)
        info: dict[str, Any] = {}
        if needed:
            with open_transport(profile) as transport:  # connect first: an unreachable device fails fast
                _measure_missing(profile, opts, needed, transport, paths, journal, result, total, progress,
                                 lambda: sum(1 for n in list(block_names) + list(subnets)
                                             if n in have or complete(n)))
            info = result.info

        rows = dict(old_rows)
        for name, spec in block_names.items():
            if complete(name):
                m = combine_rounds([journal[name][k] for k in range(rounds)])
                rows[spec.lut_key()] = Row(spec.lut_key(), spec.kind, m["median_ms"], m["mean_ms"], m["p90_ms"],
                                           m["std_ms"], m["min_ms"], m["repeats"])
        provenance = dict(old.provenance) if old else {}
        if info or not provenance:
            provenance.update(_device_facts(info, profile))
        provenance.update(space=plan.space.name, n_classes=opts.n_classes, precision=prec,
                          resolutions=sorted(set(provenance.get("resolutions", [])) | set(plan.resolutions)))
        table = LatencyTable(rows, provenance, path=str(paths["table"]))
        val = dict(old_val)
        for name, (split, s) in subnets.items():
            if complete(name):
                m = combine_rounds([journal[name][k] for k in range(rounds)])
                val[name] = Measured(split, name, plan.space.name, opts.n_classes, s.to_json(),
                                     len(layers(plan.space, s, opts.n_classes)), 0.0, 0.0,
                                     profile.benchmark.latency([journal[name][k] for k in range(rounds)]),
                                     m["mean_ms"], m["p90_ms"])
        val_rows = _refit(table, val, plan.space)
        new = any(complete(n) for n in list(block_names) + list(subnets) if n not in have)
        # a table whose correction an upgraded fit changes is rewritten from its own validation file (its
        # layer rows stay as measured); otherwise it is never rewritten without new measurements
        result.refitted = not new and old is not None and _predictions_moved(old.correction, val_rows)
        if (new or result.refitted or not paths["table"].is_file()) and not opts.read_only:
            table.save(paths["table"])
            save_validation(paths["validation"], settings, val_rows)
            result.saved = True
        paths["journal"].unlink(missing_ok=True)
        test_names = [subnet_name(s, opts.n_classes, plan.space, prec) for s in plan.test]
        result.metrics = _metrics(profile, [val[n] for n in test_names if n in val] if test_names else
                                  [r for r in val_rows if r.split == "test"], val_rows, prec)
    result.wall_s = time.monotonic() - start
    return result


def _measure_missing(profile: DeviceProfile, opts: ProfileOptions, needed: list[str], transport,
                     paths: dict[str, Path], journal: dict[str, dict[int, dict[str, Any]]],
                     result: ProfileResult, total: int, progress: Progress | None, kept: Callable[[], int]) -> None:
    """Export the missing models, measure them (every round), journal each result as it arrives."""
    models = prepare_models(profile, opts, set(needed), progress)
    rounds = profile.benchmark.rounds
    skip = {(n, k) for n in needed for k in journal.get(n, {})}
    units = total * rounds  # progress counts one measurement of one model in one round
    done = units - (len(needed) * rounds - len(skip))
    paths["journal"].parent.mkdir(parents=True, exist_ok=True)
    with open(paths["journal"], "a", encoding="utf-8") as jf:
        def on_result(msg: dict[str, Any]) -> None:
            nonlocal done
            jf.write(json.dumps(msg, sort_keys=True) + "\n")
            jf.flush()
            os.fsync(jf.fileno())
            journal.setdefault(msg["name"], {})[msg["round"]] = msg
            done += 1
            if progress:
                progress(profile.name, "measure", done, units)

        if progress:
            progress(profile.name, "measure", done, units)
        try:
            report = measure_models(profile, [models[n] for n in needed], on_result, opts.batch_size, transport,
                                    skip=skip)
        except TransportError as exc:
            k = kept()
            raise ProfileInterrupted(
                f"{exc}. Kept {k} of {total} measurements (journal {paths['journal']}); re-run the same "
                f"command to measure the {total - k} missing", k, total - k) from None
    result.measured = report.measured
    result.recovered += report.recovered
    result.commands, result.uploads, result.info = report.commands, report.uploads, report.info
    if report.failed:
        name, message = next(iter(report.failed.items()))
        raise OfaEdgeError(f"device {profile.name}: {len(report.failed)} model(s) failed to run, e.g. "
                           f"{name}: {message}")


def _refit(table: LatencyTable, val: dict[str, Measured], current: SearchSpace) -> list[Measured]:
    """Fit the table's correction on the ``fit`` subnets and recompute every prediction."""
    rows = []
    for m in val.values():
        try:
            space = current if m.space == current.name else get_space(m.space)
            subnet = subnet_from_json(space, m.subnet)
            keys = [spec.lut_key() for spec in layers(space, subnet, m.n_classes)]
        except ValueError:  # a subnet of a space unknown here: kept, but neither fitted nor predicted
            rows.append((m, 0.0, m.n_layers, None))
            continue
        raw = 0.0 if table.missing(keys) else sum(table.latency(k) for k in keys)
        rows.append((m, raw, len(keys), subnet.r))
    fit = [(raw, n, m.measured_ms, r) for m, raw, n, r in rows if m.split == "fit" and raw > 0]
    if fit:
        fastest = min((table.latency(k) for k in table.rows), default=0.0)
        raws, ns, measured, res = zip(*fit)
        table.correction = fit_correction(raws, ns, measured, min_layer_ms=fastest, resolutions=res)
    out = [m.with_prediction(raw, table.correction.apply(raw, n, r) if raw > 0 else 0.0) for m, raw, n, r in rows]
    # refresh the predictions in the measured dict too (used for the metrics)
    for m in out:
        val[m.name] = m
    return out


def _predictions_moved(before: Correction, rows: list[Measured], rel: float = 1e-4) -> bool:
    """Whether the refit ``rows`` predict any subnet more than ``rel`` away from the correction ``before``
    (a changed fit, not the rounding of the table's rows)."""
    for m in rows:
        if m.raw_ms > 0:
            old = before.apply(m.raw_ms, m.n_layers, json.loads(m.subnet).get("r"))
            if abs(m.predicted_ms - old) > rel * old:
                return True
    return False


def _metrics(profile: DeviceProfile, test: list[Measured], all_rows: list[Measured],
             precision: str = "fp32") -> dict[str, Any]:
    usable = [m for m in test if m.raw_ms > 0]
    out: dict[str, Any] = {"device": profile.name, "runtime": profile.runtime.name, "precision": precision}
    out.update(accuracy_metrics([m.measured_ms for m in usable], [m.predicted_ms for m in usable]))
    out["n_fit"] = sum(1 for m in all_rows if m.split == "fit")
    return out


def validate_device(profile: DeviceProfile, samples: int, opts: ProfileOptions,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Measure ``samples`` held-out subnets (only those not measured yet) and report the table's accuracy.

    Returns {"device", "runtime", "precision", "n", "mape", "within_10pct", "kendall_tau", "n_fit"}.
    """
    check_precision(opts.precision, profile.runtime.name)
    paths = table_paths(opts.tables_dir, profile.name, profile.runtime.name, opts.precision)
    table = load_table(paths["table"])
    if table.provenance.get("precision", "fp32") != opts.precision:
        raise OfaEdgeError(f"{paths['table']} holds {table.provenance.get('precision', 'fp32')} latencies, not "
                           f"{opts.precision}; re-profile the device at {opts.precision}")
    if table.provenance.get("settings") != profile.settings_id():
        raise OfaEdgeError(f"{paths['table']} was measured with other settings "
                           f"({table.provenance.get('settings')}); re-profile the device first")
    if table.provenance.get("model_version") != MODEL_VERSION:
        raise OfaEdgeError(f"{paths['table']} was measured on models of an older ofa-edge (model version "
                           f"{table.provenance.get('model_version')}, now {MODEL_VERSION}); re-profile the device first")
    space = opts.space if opts.space else table.provenance.get("space", "cifar-mbv3")
    from dataclasses import replace

    local = profile.connection.transport == "local"
    opts = replace(opts, space=space, validate=samples, read_only=local and not measured_here(table.provenance))
    res = profile_device(profile, opts, progress)
    assert res.metrics is not None
    return {**res.metrics, "table_origin": origin(table.provenance), "table_label":
            origin_label(table.provenance, local), "saved": res.saved}


def profile_fleet(profiles: Sequence[DeviceProfile], opts: ProfileOptions,
                  progress: Progress | None = None) -> dict[str, ProfileResult | Exception]:
    """Profile several devices concurrently, each with its own table, lock and journal (resumable alone)."""
    results: dict[str, ProfileResult | Exception] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(profiles))) as pool:
        futures = {p.name: pool.submit(profile_device, p, opts, progress) for p in profiles}
        for name, fut in futures.items():
            try:
                results[name] = fut.result()
            except Exception as exc:  # noqa: BLE001 - each device fails independently
                results[name] = exc
    return results
