"""The user-facing flows: ``predictor fit``, ``specialize`` and ``pareto`` as library calls."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ofa_edge.errors import OfaEdgeError
from ofa_edge.export.manifest import sha256_path
from ofa_edge.io import atomic_write_text
from ofa_edge.search.accuracy import collect_accuracy, read_accuracy_csv
from ofa_edge.search.budget import format_ms
from ofa_edge.search.evolution import EvolutionConfig, SearchResult
from ofa_edge.search.pareto import ParetoPoint, pareto_front, plot_pareto, write_pareto_csv
from ofa_edge.search.predictor import Predictor, fit_predictor, load_predictor
from ofa_edge.search.select import SearchSetup, select_budgets
from ofa_edge.search.selectors import read_sampled_log
from ofa_edge.space import SearchSpace, Subnet

EXPORTS = ("pt", "onnx", "tflite", "coreml")


@dataclass
class Run:
    """A trained supernet checkpoint with what it was trained on."""

    path: Path
    net: Any
    sha256: str
    config: dict[str, Any]

    @property
    def space(self) -> SearchSpace:
        return self.net.space

    @property
    def n_classes(self) -> int:
        return self.net.n_classes

    def task(self, data: str | None = None):
        """The training run's data splits (or those of ``data``), checked against the class count."""
        from ofa_edge.data import load_task

        cfg = self.config
        task = load_task(data if data is not None else cfg.get("data"), cfg.get("val_fraction", 0.1),
                         cfg.get("labels_per_class"), cfg.get("seed", 0))
        if task.n_classes != self.n_classes:
            raise OfaEdgeError(f"{self.path} classifies {self.n_classes} classes but the data has "
                               f"{task.n_classes}; pass the --data it was trained on")
        return task


def open_run(checkpoint: str | os.PathLike) -> Run:
    """Load a supernet checkpoint (ofa-edge or OFA format) in eval mode."""
    from ofa_edge.supernet import load_any
    from ofa_edge.supernet.checkpoint import FORMAT, read_torch_file

    from ofa_edge.pretrained import resolve_checkpoint

    path = resolve_checkpoint(checkpoint)
    net = load_any(path).eval()
    obj = read_torch_file(path)
    cfg = ((obj.get("meta") or {}).get("config") or {}) if isinstance(obj, dict) and obj.get("format") == FORMAT else {}
    return Run(path, net, sha256_path(path), cfg)


# -- predictor fit -------------------------------------------------------------------------------------
def fit_from_checkpoint(checkpoint: str | os.PathLike, samples: int, *, accuracy_csv: str | None = None,
                        out: str | None = None, data: str | None = None, bn_images: int = 500,
                        epochs: int = 200, seed: int = 0, holdout: float = 0.2,
                        progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Measure ``samples`` subnets on the validation split (resumable CSV), fit and save the predictor."""
    from ofa_edge.train.evaluate import evaluate_subnet

    run = open_run(checkpoint)
    from ofa_edge.pretrained import is_packaged

    # a packaged supernet is never written into: its files go to runs/<name>/ unless told otherwise
    folder = Path("runs") / run.path.parent.name if is_packaged(run.path) else run.path.parent
    csv_path = Path(accuracy_csv) if accuracy_csv else folder / "accuracy.csv"
    out_path = Path(out) if out else folder / "predictor.pt"
    task = run.task(data)
    evaluate = lambda s: evaluate_subnet(run.net, s, task, bn_images, split="val")["top1"]  # noqa: E731
    report = (lambda i, n, row: progress("measure", i, n)) if progress else None
    res = collect_accuracy(run.space, evaluate, csv_path, samples, seed=seed, split="val",
                           source=run.sha256[:16], progress=report)
    rows = res.rows
    fit_progress = (lambda e, _: progress("fit", e, epochs)) if progress else None
    pred = fit_predictor(run.space, [r.subnet for r in rows], [r.top1 for r in rows], epochs=epochs,
                         seed=seed, holdout=holdout, progress=fit_progress,
                         meta={"checkpoint_sha256": run.sha256, "checkpoint": str(run.path),
                               "accuracy_csv": str(csv_path), "rows": len(rows)})
    pred.save(out_path)
    m = pred.metrics
    return {"predictor": str(out_path), "accuracy_csv": str(csv_path), "rows": len(rows),
            "evaluated": res.evaluated, "skipped": res.skipped, "rmse": m.rmse, "kendall_tau": m.kendall_tau,
            "spearman": m.spearman, "train_rmse": m.train_rmse, "n_train": m.n_train, "n_holdout": m.n_holdout}


# -- devices and tables --------------------------------------------------------------------------------
def device_latency(device: str, tables_dir: str | os.PathLike, space: SearchSpace, n_classes: int):
    """(profile, table, batched latency fn) for ``device``; clear errors for unknown devices or no table."""
    from ofa_edge.devices import get_device
    from ofa_edge.latency import enumerate_blocks, load_table, table_paths

    profile = get_device(device)
    path = table_paths(Path(tables_dir), profile.name, profile.runtime.name)["table"]
    if not path.is_file():
        raise OfaEdgeError(f"device {profile.name!r} has no latency table ({path}); build it with "
                           f"`ofa-edge profile --device {device} --space {space.name} --classes {n_classes}`")
    table = load_table(path)
    covered = [r for r in space.resolutions
               if not table.missing([b.lut_key() for b in enumerate_blocks(space, [r], n_classes)])]
    if not covered:
        raise OfaEdgeError(f"{path} has no complete rows for space {space.name!r} with {n_classes} classes at "
                           f"any of the resolutions {list(space.resolutions)}; run `ofa-edge profile "
                           f"--device {device} --space {space.name} --classes {n_classes}`")
    unusable = 1e9  # resolutions the table lacks are priced out of every budget

    def latency(subnets: list[Subnet]) -> list[float]:
        return [table.predict(space, s, n_classes) if s.r in covered else unusable for s in subnets]

    return profile, table, path, latency


def measure_on_device(profile, space: SearchSpace, subnet: Subnet, n_classes: int,
                      cache_dir: str | None = None) -> tuple[float | None, str]:
    """Median latency (ms) of the whole subnet measured on the device, or (None, why not)."""
    from ofa_edge.devices.session import measure_models
    from ofa_edge.latency.models import default_cache_dir, subnet_model

    try:
        model = subnet_model(space, subnet, n_classes, profile.runtime.name,
                             Path(cache_dir) if cache_dir else default_cache_dir(), profile.benchmark.batch)
        got: list[float] = []
        report = measure_models(profile, [model], lambda msg: got.append(float(msg["median_ms"])))
    except (OfaEdgeError, OSError) as exc:
        return None, f"not measured: {str(exc).splitlines()[0]}"
    if not got:
        return None, f"not measured: {next(iter(report.failed.values()), 'no result')}"
    return got[0], "measured on the device"


# -- specialize ----------------------------------------------------------------------------------------
def _setup(run: Run, predictor: Predictor | None, latency) -> SearchSetup:
    score = predictor.score_genomes if predictor is not None else None
    return SearchSetup.build(run.space, run.n_classes, score, latency)


def resolve_predictor(run: Run, predictor: str | None, required: bool) -> Predictor | None:
    """The run's predictor (default: predictor.pt beside the checkpoint), refused if of another run."""
    path = Path(predictor) if predictor else run.path.parent / "predictor.pt"
    if not path.is_file():
        if required:
            raise OfaEdgeError(f"no accuracy predictor at {path}; fit one with `ofa-edge predictor fit "
                               f"--checkpoint {run.path}` (or use --selector last-sampled)")
        return None
    return load_predictor(path, run.space, checkpoint_sha256=run.sha256)


def specialize(checkpoint: str | os.PathLike, device: str, budgets_ms: list[float], *,
               selector: str = "evolution", predictor: str | None = None, out: str | os.PathLike = "builds",
               export: tuple[str, ...] = ("pt", "onnx"), quantize: str | None = None,
               tables_dir: str | os.PathLike = "latency_tables", data: str | None = None, bn_images: int = 500,
               config: EvolutionConfig = EvolutionConfig(), random_n: int = 1000, measure: bool = False,
               cache_dir: str | None = None,
               progress: Callable[[str, int, int], None] | None = None) -> list[dict[str, Any]]:
    """Search -> extract -> BN recalibration -> test accuracy -> export -> manifest, per budget."""
    from ofa_edge.supernet.bn_calib import recalibrate_bn
    from ofa_edge.train.evaluate import calibration_batches, evaluate
    from ofa_edge.data import make_loader

    bad = [f for f in export if f not in EXPORTS]
    if bad:
        raise OfaEdgeError(f"--export: {bad[0]!r} is not one of {', '.join(EXPORTS)}")
    if quantize not in (None, "int8"):
        raise OfaEdgeError(f"--quantize: {quantize!r} is not supported; use int8")
    if quantize and not set(export) - {"pt"}:
        raise OfaEdgeError("--quantize int8 needs an --export format to quantise (onnx, tflite or coreml)")
    run = open_run(checkpoint)
    profile, table, table_path, latency = device_latency(device, tables_dir, run.space, run.n_classes)
    pred = resolve_predictor(run, predictor, required=selector != "last-sampled")
    sampled = read_sampled_log(run.path.parent / "sampled.csv", run.space) if selector == "last-sampled" else None
    setup = _setup(run, pred, latency)
    results = select_budgets(setup, budgets_ms, selector, config=config, sampled=sampled, random_n=random_n)
    task = run.task(data)
    manifests = []
    for i, res in enumerate(results):
        if progress:
            progress("build", i, len(results))
        manifests.append(_build(run, profile, table_path, setup, res, pred, task, Path(out), export, quantize,
                                bn_images, measure, cache_dir, recalibrate_bn, calibration_batches, evaluate,
                                make_loader))
    if progress:
        progress("build", len(results), len(results))
    return manifests


def _test_arrays(task, make_loader, r: int):
    """The test split at resolution ``r`` as (float32 images, int labels) tensors."""
    import torch

    xs, ys = [], []
    for x, y in make_loader(task.test, r, 200, train=False):
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def _build(run, profile, table_path, setup, res: SearchResult, pred, task, out: Path, export, quantize,
           bn_images, measure, cache_dir, recalibrate_bn, calibration_batches, evaluate, make_loader):
    import torch

    from ofa_edge.export import build_target
    from ofa_edge.export.manifest import file_entry
    from ofa_edge.io import atomic_save

    subnet = res.best.subnet
    budget = res.bounds["latency_ms"]
    folder = out / profile.name / format_ms(budget)
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
    measured_ms, note = (None, "not measured (pass --measure when the device is reachable)")
    if measure:
        measured_ms, note = measure_on_device(profile, run.space, subnet, run.n_classes, cache_dir)
    predicted_ms = float(info["latency_ms"][0])
    latency = {"predicted": predicted_ms, "measured": measured_ms,
               "error_pct": None if measured_ms is None else 100 * (predicted_ms - measured_ms) / measured_ms,
               "note": note, "table": str(table_path)}
    extra = {"target": f"{profile.name}/{format_ms(budget)}", "device": profile.name,
             "runtime": profile.runtime.name, "budget_ms": budget, "selector": res.selector,
             "space_fingerprint": run.space.fingerprint(), "bn_images": bn_images,
             "checkpoint": {"path": str(run.path), "sha256": run.sha256},
             "search": {"selector": res.selector, "seconds": res.seconds, "evaluated": res.evaluated}}
    test_x, test_y = _test_arrays(task, make_loader, subnet.r)
    calib_x = torch.cat(calib)[:256] if calib else None
    formats = tuple(f for f in export if f != "pt")
    manifest = build_target(static, subnet, run.space, run.n_classes, folder, formats, bool(quantize), calib_x,
                            (test_x, test_y), extra, latency_ms=latency, raise_on_failure=False)
    if not formats:  # nothing exported: the fp32 accuracy still comes from PyTorch
        manifest.top1 = {"fp32": evaluate(static, make_loader(task.test, subnet.r, 200, train=False))["top1"],
                         "split": "test", "n_images": int(test_y.numel()), "drop_points": {}}
    manifest.top1["predicted"] = None if pred is None else float(info["predicted_top1"][0])
    manifest.top1["measured"] = manifest.top1.get("fp32")
    manifest.files = [file_entry(f, folder) for f in own_files] + manifest.files
    manifest.write(folder)
    return manifest.to_dict() | {"folder": str(folder), "budget_ms": budget, "device": profile.name,
                                 "selector": res.selector}


# -- pareto --------------------------------------------------------------------------------------------
def pareto(checkpoint: str | os.PathLike, device: str, budgets_ms: list[float] | None = None, *,
           predictor: str | None = None, out: str | os.PathLike | None = None,
           tables_dir: str | os.PathLike = "latency_tables", n_random: int = 200, n_budgets: int = 8,
           config: EvolutionConfig = EvolutionConfig(), seed: int = 0) -> dict[str, Any]:
    """The search's front over several budgets, random subnets and the measured accuracy rows: PNG + CSV."""
    run = open_run(checkpoint)
    profile, _, _, latency = device_latency(device, tables_dir, run.space, run.n_classes)
    pred = resolve_predictor(run, predictor, required=True)
    setup = _setup(run, pred, latency)
    if not budgets_ms:
        lo, hi = setup.latency.minimum()[0], setup.latency.maximum()[0]
        budgets_ms = list(np.round(np.linspace(lo, hi, n_budgets + 1)[1:], 4))
    results = select_budgets(setup, budgets_ms, "evolution", config=config)
    points = []
    front_subnets = [r.best.subnet for r in results]
    info = setup.describe(front_subnets)
    lat, acc = info["latency_ms"], info["predicted_top1"]
    for j in pareto_front(lat, acc):
        r = results[j]
        points.append(ParetoPoint("front", r.best.subnet.to_dict(), r.best.subnet.id, float(lat[j]),
                                  float(acc[j]), int(info["macs"][j]), int(info["params"][j]), "evolution",
                                  r.bounds["latency_ms"]))
    g = setup.codec.sample(np.random.default_rng(seed), n_random)
    rand = setup.codec.to_subnets(g)
    rinfo = setup.describe(rand)
    for j, s in enumerate(rand):
        if rinfo["latency_ms"][j] < 1e8:
            points.append(ParetoPoint("random", s.to_dict(), s.id, float(rinfo["latency_ms"][j]),
                                      float(rinfo["predicted_top1"][j]), int(rinfo["macs"][j]),
                                      int(rinfo["params"][j])))
    csv_rows = pred.meta.get("accuracy_csv")
    if csv_rows and Path(csv_rows).is_file():
        rows = read_accuracy_csv(csv_rows, run.space)
        minfo = setup.describe([r.subnet for r in rows])
        for j, row in enumerate(rows):
            if minfo["latency_ms"][j] < 1e8:
                points.append(ParetoPoint("measured", row.subnet.to_dict(), row.subnet.id,
                                          float(minfo["latency_ms"][j]), float(minfo["predicted_top1"][j]),
                                          int(minfo["macs"][j]), int(minfo["params"][j]), measured_top1=row.top1))
    folder = Path(out) if out else Path("builds") / profile.name
    png = plot_pareto(folder / "pareto.png", points, f"{run.space.name} on {profile.name}")
    csv_path = write_pareto_csv(folder / "pareto.csv", points)
    return {"png": str(png), "csv": str(csv_path), "front": [p.__dict__ for p in points if p.kind == "front"],
            "n_random": sum(p.kind == "random" for p in points),
            "n_measured": sum(p.kind == "measured" for p in points)}
