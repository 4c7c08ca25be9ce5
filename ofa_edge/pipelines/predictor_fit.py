"""``predictor fit`` as a library call: measure sampled subnets of a checkpoint, fit the accuracy predictor."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ofa_edge.io import atomic_write_text
from ofa_edge.pipelines.checkpoint import open_run
from ofa_edge.pretrained import Pretrained, get_pretrained, is_packaged
from ofa_edge.search.accuracy import collect_accuracy
from ofa_edge.search.predictor import fit_predictor
from ofa_edge.train.evaluate import evaluate_subnet


def fit_from_checkpoint(checkpoint: str | os.PathLike, samples: int, *, accuracy_csv: str | None = None,
                        out: str | None = None, data: str | None = None, bn_images: int | None = None,
                        epochs: int = 200, seed: int = 0, holdout: float = 0.2,
                        progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Measure ``samples`` subnets on the validation split (resumable CSV), fit and save the predictor.

    Args:
        checkpoint: The trained supernet.
        samples: Subnets to measure in all (rows already in the CSV count and are not measured again).
        accuracy_csv: The (arch, accuracy) rows (default: ``accuracy.csv`` beside the checkpoint).
        out: The predictor file (default: ``predictor.pt`` beside the checkpoint).
        data: Data source (default: the one the checkpoint was trained on).
        bn_images: Training images for BN recalibration per subnet (default: 500; for a packaged supernet,
            the number its shipped rows were measured with).
        epochs: Predictor training epochs.
        seed: Seed of the subnet sample and of the fit.
        holdout: Fraction of rows held out for the rank metrics.
        progress: Called with (stage, done, total).

    A packaged supernet's shipped rows seed the default CSV (``runs/<name>/accuracy.csv``) when it does not
    exist yet and the rows are asked for as they were measured (its own data, the same ``bn_images``), so
    refitting the packaged predictor measures only the subnets it lacks.

    Returns:
        Paths, row counts (``copied_from_package`` among them) and the held-out metrics (RMSE, Kendall tau,
        Spearman).

    Raises:
        FileFormatError: an unreadable checkpoint or accuracy CSV, or one whose rows were measured on another
            checkpoint or with another ``bn_images``.
        InvalidValueError: data with another number of classes than the checkpoint.
    """
    run = open_run(checkpoint)
    package = get_pretrained(run.path.parent.name) if is_packaged(run.path) else None
    if bn_images is None:
        bn_images = (package.predictor_bn_images if package else None) or 500
    # a packaged supernet is never written into: its files go to runs/<name>/ unless told otherwise
    folder = Path("runs") / package.name if package else run.path.parent
    csv_path = Path(accuracy_csv) if accuracy_csv else folder / "accuracy.csv"
    out_path = Path(out) if out else folder / "predictor.pt"
    copied = 0
    if package and accuracy_csv is None and data is None and not csv_path.exists():
        copied = copy_packaged_rows(package, csv_path, bn_images)
    task = run.task(data)
    evaluate = lambda s: evaluate_subnet(run.net, s, task, bn_images, split="val")["top1"]  # noqa: E731
    report = (lambda i, n, row: progress("measure", i, n)) if progress else None
    res = collect_accuracy(run.space, evaluate, csv_path, samples, seed=seed, split="val",
                           source=run.sha256[:16], bn_images=bn_images, progress=report)
    rows = res.rows
    fit_progress = (lambda e, _: progress("fit", e, epochs)) if progress else None
    pred = fit_predictor(run.space, [r.subnet for r in rows], [r.top1 for r in rows], epochs=epochs,
                         seed=seed, holdout=holdout, progress=fit_progress,
                         meta={"checkpoint_sha256": run.sha256, "checkpoint": str(run.path),
                               "accuracy_csv": str(csv_path), "rows": len(rows), "bn_images": bn_images})
    pred.save(out_path)
    m = pred.metrics
    return {"predictor": str(out_path), "accuracy_csv": str(csv_path), "rows": len(rows),
            "evaluated": res.evaluated, "skipped": res.skipped, "copied_from_package": copied,
            "bn_images": bn_images, "unknown_budget_rows": res.unknown_budget, "rmse": m.rmse,
            "kendall_tau": m.kendall_tau, "spearman": m.spearman, "train_rmse": m.train_rmse, "n_train": m.n_train,
            "n_holdout": m.n_holdout}


def copy_packaged_rows(package: Pretrained, csv_path: Path, bn_images: int) -> int:
    """Start ``csv_path`` from the package's measured rows if they were measured with ``bn_images``; how many."""
    shipped = package.folder / "accuracy.csv"
    if not shipped.is_file() or package.predictor_bn_images != bn_images:
        return 0
    text = shipped.read_text(encoding="utf-8")
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(csv_path, text)
    return max(0, len(text.strip().splitlines()) - 1)
