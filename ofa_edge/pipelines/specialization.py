"""``specialize`` as a library call: search per budget, extract, recalibrate BN, test, export, write manifests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ofa_edge.data import make_loader
from ofa_edge.devices import get_device
from ofa_edge.devices.session import measure_models
from ofa_edge.errors import InvalidValueError, MissingStepError, OfaEdgeError, UnknownNameError
from ofa_edge.export import EXPORTERS, build_target
from ofa_edge.export.build import check_float_stages
from ofa_edge.export.manifest import file_entry
from ofa_edge.export.recommend import DEFAULT_MAX_DROP
from ofa_edge.io import atomic_save, atomic_write_text
from ofa_edge.latency import check_precision, enumerate_blocks, load_table, table_paths
from ofa_edge.latency.origin import origin_label
from ofa_edge.latency.models import default_cache_dir, subnet_model
from ofa_edge.pipelines.artifact_timing import time_artifacts
from ofa_edge.pipelines.checkpoint import TrainedRun, open_run
from ofa_edge.search.budget import format_ms
from ofa_edge.search.evolution import EvolutionConfig, SearchResult
from ofa_edge.search.predictor import Predictor, load_predictor
from ofa_edge.search.select import SELECTORS, SearchSetup, select_budgets
from ofa_edge.space import SearchSpace, Subnet
from ofa_edge.supernet.bn_calib import recalibrate_bn
from ofa_edge.train.evaluate import calibration_batches, evaluate


def build_folder(out: str | os.PathLike, device: str, budget_ms: float) -> Path:
    """Where the build of ``device`` at ``budget_ms`` lives: ``<out>/<device>/<budget>ms``."""
    return Path(out) / device / format_ms(budget_ms)


def device_latency(device: str, tables_dir: str | os.PathLike, space: SearchSpace, n_classes: int,
                   precision: str = "fp32"):
    """(profile, table, batched latency fn) for ``device`` at ``precision``; clear errors for unknown devices
    or no table."""
    profile = get_device(device)
    check_precision(precision, profile.runtime.name)
    path = table_paths(Path(tables_dir), profile.name, profile.runtime.name, precision)["table"]
    step = {"device": device, "space": space.name, "classes": n_classes}
    if precision != "fp32":
        step["precision"] = precision
    if not path.is_file():
        raise MissingStepError(f"device {profile.name!r} has no {precision} latency table ({path}); profile the "
                               f"device{'' if precision == 'fp32' else ' at ' + precision} first", "profile", step,
                               "device")
    table = load_table(path)
    covered = [r for r in space.resolutions
               if not table.missing([b.lut_key() for b in enumerate_blocks(space, [r], n_classes)])]
    if not covered:
        raise MissingStepError(f"{path} has no complete rows for space {space.name!r} with {n_classes} classes "
                               f"at any of the resolutions {list(space.resolutions)}; profile the device for it",
                               "profile", step, "device")
    unusable = 1e9  # resolutions the table lacks are priced out of every budget

    def latency(subnets: list[Subnet]) -> list[float]:
        return [table.predict(space, s, n_classes) if s.r in covered else unusable for s in subnets]

    return profile, table, path, latency


def measure_on_device(profile, space: SearchSpace, subnet: Subnet, n_classes: int,
                      cache_dir: str | None = None, precision: str = "fp32") -> tuple[float | None, str]:
    """Latency (ms) of the whole subnet at ``precision`` measured on the device, or (None, why not).

    Read with the profile's statistic (``benchmark.statistic``), as its latency table is.
    """
    try:
        model = subnet_model(space, subnet, n_classes, profile.runtime.name,
                             Path(cache_dir) if cache_dir else default_cache_dir(), profile.benchmark.batch,
                             precision=precision)
        got: list[dict] = []
        report = measure_models(profile, [model], got.append)
    except (OfaEdgeError, OSError) as exc:
        return None, f"not measured: {str(exc).splitlines()[0]}"
    if not got:
        return None, f"not measured: {next(iter(report.failed.values()), 'no result')}"
    return profile.benchmark.latency(got), "measured on the device"


def search_setup(run: TrainedRun, predictor: Predictor | None, latency) -> SearchSetup:
    """The run's search setup: the predictor's score (else MACs) and the device's latency."""
    score = predictor.score_genomes if predictor is not None else None
    return SearchSetup.build(run.space, run.n_classes, score, latency)


def resolve_predictor(run: TrainedRun, predictor: str | None, required: bool) -> Predictor | None:
    """The run's predictor (default: predictor.pt beside the checkpoint), refused if of another run."""
    path = Path(predictor) if predictor else run.path.parent / "predictor.pt"
    if not path.is_file():
        if required:
            raise MissingStepError(f"no accuracy predictor at {path}; fit one first (or use a selector that "
                                   "needs none, such as last-sampled)", "predictor fit", {"checkpoint": run.path},
                                   "predictor")
        return None
    return load_predictor(path, run.space, checkpoint_sha256=run.sha256)


@dataclass(frozen=True)
class SpecializeRequest:
    """What ``specialize`` builds: a trained checkpoint for one device at one or more latency budgets.

    Args:
        checkpoint: The trained supernet (``runs/<run>/supernet.pt``).
        device: A device profile name or ``.toml`` path; its latency table must exist in ``tables_dir``.
        budgets_ms: Latency budgets in milliseconds (one build each).
        selector: A registered selector (``SELECTORS``).
        predictor: The accuracy predictor (default: ``predictor.pt`` beside the checkpoint).
        out: Builds go to ``<out>/<device>/<budget>ms``.
        export: ``pt`` and/or registered export formats.
        quantize: None or ``"int8"`` (INT8 variants of the exported formats).
        tables_dir: Folder of latency tables.
        data: Data source (default: the one the checkpoint was trained on).
        bn_images: Training images for BN recalibration.
        config: Evolution settings.
        random_n: Subnets drawn by the random selector.
        measure: Also measure the chosen subnet on the device, and time every exported artefact the device's
            runtime runs to recommend one (``manifest["recommended"]``).
        max_drop: Largest top-1 drop (points, test split) a recommended INT8 artefact may have.
        cache_dir: Cache of exported measurement models.
        precision: The deployment's precision: ``fp32``, or ``int8`` (search and measure with the device's INT8
            table and models; the exported formats get their INT8 variants).
        verbose: Stream the converters' own output instead of writing it to ``<build>/logs/<artefact>.log``.
        int8_float_stages: One full-integer INT8 artefact per value, keeping that many stages after block 0
            in float (0: only the stem and block 0); with ``measure`` the fastest within ``max_drop`` is
            recommended.
        latency_margin: Percent of each budget kept free for the latency table's error: the search takes
            subnets predicted within ``budget * (1 - margin / 100)``; the build still answers to ``budget``.
        retries: With ``measure``: a pick measured over its budget is replaced by a search within
            ``budget * predicted / measured`` (1 % less), up to this many times; 0 keeps the first pick.
    """

    checkpoint: str | os.PathLike
    device: str
    budgets_ms: tuple[float, ...]
    selector: str = "evolution"
    predictor: str | None = None
    out: str | os.PathLike = "builds"
    export: tuple[str, ...] = ("pt", "onnx")
    quantize: str | None = None
    tables_dir: str | os.PathLike = "latency_tables"
    data: str | None = None
    bn_images: int = 500
    config: EvolutionConfig = field(default_factory=EvolutionConfig)
    random_n: int = 1000
    measure: bool = False
    cache_dir: str | None = None
    precision: str = "fp32"
    max_drop: float = DEFAULT_MAX_DROP
    verbose: bool = False
    int8_float_stages: tuple[int, ...] = (0,)
    latency_margin: float = 0.0
    retries: int = 2  # the same default as targets.toml's (pipelines.build.DEFAULT_RETRIES)

    def __post_init__(self) -> None:
        object.__setattr__(self, "budgets_ms", tuple(float(b) for b in self.budgets_ms))
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or not 0 <= self.retries <= 10:
            raise InvalidValueError(f"retries: {self.retries} is not a number of searches again from 0 to 10 "
                                    "(e.g. 2)", "retries")
        if not 0.0 <= self.latency_margin < 100.0:
            raise InvalidValueError(f"latency margin: {self.latency_margin:g} is not a percentage of the budget "
                                    "(0 to under 100, e.g. 5 for the table's typical error)", "latency_margin")
        object.__setattr__(self, "export", tuple(self.export))
        SELECTORS.get(self.selector)
        if not 0.0 <= self.max_drop <= 100.0:
            raise InvalidValueError(f"max drop: {self.max_drop:g} is not a top-1 drop in points (0-100)", "max_drop")
        known = exports()
        bad = [f for f in self.export if f not in known]
        if bad:
            raise UnknownNameError("export format", bad[0], known, "export")
        check_precision(self.precision)
        object.__setattr__(self, "int8_float_stages", check_float_stages(self.int8_float_stages))
        if self.precision == "int8" and self.quantize is None and set(self.export) - {"pt"}:
            object.__setattr__(self, "quantize", "int8")  # an INT8 deployment ships the INT8 artefacts
        if self.quantize not in (None, "int8"):
            raise InvalidValueError(f"quantize: {self.quantize!r} is not supported; use int8", "quantize")
        if self.quantize and not set(self.export) - {"pt"}:
            raise InvalidValueError(f"quantize: int8 needs an export format to quantise "
                                    f"({', '.join(EXPORTERS)})", "quantize")


def exports() -> tuple[str, ...]:
    """What ``specialize`` can write: ``pt`` (the static subnet's state dict) and every export format."""
    return ("pt",) + EXPORTERS.names()


def specialize(request: SpecializeRequest,
               progress: Callable[[str, int, int], None] | None = None) -> list[dict[str, Any]]:
    """Search -> extract -> BN recalibration -> test accuracy -> export -> manifest, per budget.

    Args:
        request: The checkpoint, device, budgets and build settings.
        progress: Called with (stage, done, total) while building.

    Returns:
        One manifest dict per budget (ascending), each with ``folder``, ``budget_ms``, ``device``, ``selector``.

    Raises:
        MissingStepError: no latency table for the device, or no predictor where the selector needs one.
        InfeasibleBudgetError: a budget below the fastest subnet.
        OfaEdgeError: any other bad input (device, checkpoint, data).
    """
    r = request
    run = open_run(r.checkpoint)
    profile, table, table_path, latency = device_latency(r.device, r.tables_dir, run.space, run.n_classes,
                                                         r.precision)
    selector = SELECTORS.get(r.selector)
    pred = resolve_predictor(run, r.predictor, required=selector.needs_predictor)
    sampled = run.training_log() if selector.needs_training_log else None
    setup = search_setup(run, pred, latency)
    budgets = sorted(r.budgets_ms)
    keep = 1.0 - r.latency_margin / 100.0
    results = select_budgets(setup, [b * keep for b in budgets], r.selector, config=r.config, sampled=sampled,
                             random_n=r.random_n)
    task = run.task(r.data)
    manifests = []
    for i, (budget, res) in enumerate(zip(budgets, results)):  # both ascending
        if progress:
            progress("build", i, len(results))
        fit = None
        if r.measure:
            fit = meet_when_measured(
                setup, res, budget, r.retries,
                lambda bound: select_budgets(setup, [bound], r.selector, config=r.config, sampled=sampled,
                                             random_n=r.random_n)[0],
                lambda s: measure_on_device(profile, run.space, s, run.n_classes, r.cache_dir, r.precision))
        manifests.append(_build(run, profile, table, table_path, setup, fit[0] if fit else res, pred, task, r,
                                budget, fit[1] if fit else None))
    if progress:
        progress("build", len(results), len(results))
    return manifests


@dataclass
class MeasuredPick:
    """The measured latency of a build's subnet; ``attempts``: every pick measured, when one was over budget
    and a search ran again (empty otherwise)."""

    measured_ms: float | None
    note: str
    attempts: list[dict[str, Any]] = field(default_factory=list)


def meet_when_measured(setup: SearchSetup, res: SearchResult, budget: float, retries: int,
                       search: Callable[[float], SearchResult],
                       measure: Callable[[Subnet], tuple[float | None, str]]) -> tuple[SearchResult, MeasuredPick]:
    """Measure the pick; while it runs over ``budget``, ``search`` again within ``budget * predicted / measured``
    (1 % less, and below the last bound), at most ``retries`` times. Returns the pick kept and its measure."""
    bound = res.bounds["latency_ms"]
    attempts: list[dict[str, Any]] = []
    while True:
        predicted = float(setup.describe([res.best.subnet])["latency_ms"][0])
        ms, note = measure(res.best.subnet)
        attempts.append({"subnet": json.loads(res.best.subnet.to_json()), "searched_within": bound,
                         "predicted": predicted, "measured": ms})
        if ms is None or ms <= budget or len(attempts) > retries:
            break
        bound = min(budget * predicted / ms, bound) * 0.99
        try:
            again = search(bound)
        except OfaEdgeError as exc:  # nothing predicted within the tighter bound: keep the last pick
            note += f"; over budget, and no subnet is predicted within {bound:.4g} ms ({str(exc).splitlines()[0]})"
            break
        if again.best.subnet == res.best.subnet:
            note += f"; over budget, and the search within {bound:.4g} ms found no other subnet"
            break
        res = again
    if len(attempts) > 1:
        note += f"; pick {len(attempts)} of {len(attempts)}: the earlier ones measured over the budget"
    if ms is not None and ms > budget and len(attempts) > retries:
        note += f"; still over budget after {retries} new search(es)"
    searched_again = len(attempts) > 1 or (retries > 0 and ms is not None and ms > budget)
    return res, MeasuredPick(ms, note, attempts if searched_again else [])


def _test_arrays(task, r: int):
    """The test split at resolution ``r`` as (float32 images, int labels) tensors."""
    xs, ys = [], []
    for x, y in make_loader(task.test, r, 200, train=False):
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def _build(run: TrainedRun, profile, table, table_path, setup: SearchSetup, res: SearchResult, pred, task,
           r: SpecializeRequest, budget: float, measured: MeasuredPick | None = None) -> dict[str, Any]:
    """Extract, recalibrate, test, export and describe the subnet ``res`` chose for ``budget`` (ms); returns
    its manifest dict."""
    export, quantize, bn_images = r.export, r.quantize, r.bn_images
    subnet = res.best.subnet
    folder = build_folder(r.out, profile.name, budget)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").unlink(missing_ok=True)  # never describes the files about to be replaced
    run.net.set_subnet(subnet)
    static = run.net.get_active_subnet().eval()
    calib = calibration_batches(task.train, subnet.r, bn_images) if bn_images > 0 else []
    if calib:
        recalibrate_bn(static, calib, mode="ofa")
    atomic_write_text(folder / "subnet.json", subnet.to_json() + "\n")
    own_files = [folder / "subnet.json"]
    if "pt" in export:
        atomic_save(folder / "model.pt", lambda fh: torch.save(static.state_dict(), fh))
        own_files.append(folder / "model.pt")
    info = setup.describe([subnet])
    measured_ms, note = (None, "not measured (ask for a measurement when the device is reachable)")
    if measured is not None:  # measured by specialize (meet_when_measured) when asked to
        measured_ms, note = measured.measured_ms, measured.note
    predicted_ms = float(info["latency_ms"][0])
    latency = {"predicted": predicted_ms, "measured": measured_ms,
               "error_pct": None if measured_ms is None else 100 * (predicted_ms - measured_ms) / measured_ms,
               "note": note, "table": str(table_path), "precision": r.precision,
               "table_measured_on": origin_label(table.provenance, profile.connection.transport == "local")}
    if r.latency_margin:
        latency.update(margin_pct=r.latency_margin, searched_within=res.bounds["latency_ms"])
    if measured is not None and measured.attempts:
        latency.update(searched_within=res.bounds["latency_ms"], attempts=measured.attempts)
    extra = {"target": f"{profile.name}/{format_ms(budget)}", "device": profile.name,
             "runtime": profile.runtime.name, "budget_ms": budget, "selector": res.selector,
             "space_fingerprint": run.space.fingerprint(), "bn_images": bn_images,
             "checkpoint": {"path": str(run.path), "sha256": run.sha256},
             "search": {"selector": res.selector, "seconds": res.seconds, "evaluated": res.evaluated}}
    test_x, test_y = _test_arrays(task, subnet.r)
    calib_x = torch.cat(calib)[:256] if calib else None
    formats = tuple(f for f in export if f != "pt")
    manifest = build_target(static, subnet, run.space, run.n_classes, folder, formats, bool(quantize), calib_x,
                            (test_x, test_y), extra, latency_ms=latency, raise_on_failure=False,
                            capture=not r.verbose, int8_float_stages=r.int8_float_stages)
    if not formats:  # nothing exported: the fp32 accuracy still comes from PyTorch
        manifest.top1 = {"fp32": evaluate(static, make_loader(task.test, subnet.r, 200, train=False))["top1"],
                         "split": "test", "n_images": int(test_y.numel()), "drop_points": {}}
    manifest.top1["predicted"] = None if pred is None else float(info["predicted_top1"][0])
    manifest.top1["measured"] = manifest.top1.get("fp32")
    manifest.files = [file_entry(f, folder) for f in own_files] + manifest.files
    if r.measure and formats:
        time_artifacts(profile, folder, manifest, r.max_drop)
    manifest.write(folder)
    return manifest.to_dict() | {"folder": str(folder), "budget_ms": budget, "device": profile.name,
                                 "selector": res.selector}
