"""``ofa-edge predictor fit``, ``ofa-edge specialize`` and ``ofa-edge pareto``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ofa_edge.cli.common import (TABLES_OPTION, VERBOSE_OPTION, console, converter_log_lines, err_console, fail,
                                 print_json, progress_bar)
from ofa_edge.pipelines.specialization import exports
from ofa_edge.search.select import SELECTORS

predictor_app = typer.Typer(help="Fit the accuracy predictor of a trained supernet.", no_args_is_help=True)

_CKPT = typer.Option(..., "--checkpoint", "-c", help="Trained supernet (runs/<run>/supernet.pt).")
_PREDICTOR = typer.Option(None, "--predictor", help="Accuracy predictor (default: predictor.pt beside the "
                          "checkpoint).")
_DATA = typer.Option(None, "--data", help="Data source (default: the one the checkpoint was trained on).")
_JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")


def _config(population: int, generations: int, seed: int):
    from ofa_edge.search import EvolutionConfig

    return EvolutionConfig(population=population, generations=generations, seed=seed)


@predictor_app.command("fit")
def predictor_fit(
    checkpoint: Path = _CKPT,
    samples: int = typer.Option(1000, "--samples", "-n", help="Subnets to measure on the validation split "
                                "(rows already in the CSV are kept, not re-measured)."),
    accuracy_csv: Optional[Path] = typer.Option(None, "--accuracy-csv", help="Accuracy rows (default: "
                                                "accuracy.csv beside the checkpoint; for a packaged supernet "
                                                "runs/<name>/accuracy.csv, started from its shipped rows)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Predictor file (default: predictor.pt "
                                       "beside the checkpoint; runs/<name>/ for a packaged supernet)."),
    data: Optional[str] = _DATA,
    bn_images: Optional[int] = typer.Option(None, "--bn-images", min=1, help="Training images for BN recalibration "
                                            "per subnet (default: 500; for a packaged supernet, the number its "
                                            "shipped rows were measured with, so that they are reused)."),
    epochs: int = typer.Option(200, "--epochs", help="Predictor training epochs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the subnet sample and the fit."),
    as_json: bool = _JSON,
) -> None:
    """Measure sampled subnets (validation split, resumable) and fit the MLP accuracy predictor."""
    from ofa_edge.pipelines import fit_from_checkpoint

    if samples < 5:
        raise typer.BadParameter(f"{samples}: need at least 5 subnets to fit and hold out", param_hint="--samples")
    with progress_bar(not as_json) as progress:
        info = fit_from_checkpoint(checkpoint, samples, accuracy_csv=str(accuracy_csv) if accuracy_csv else None,
                                   out=str(out) if out else None, data=data, bn_images=bn_images,
                                   epochs=epochs, seed=seed, progress=progress)
    if as_json:
        print_json(info)
        return
    copied = f"; {info['copied_from_package']} copied from the package" if info["copied_from_package"] else ""
    console.print(f"measured {info['evaluated']} subnets ({info['skipped']} already in {info['accuracy_csv']}"
                  f"{copied})")
    if info["unknown_budget_rows"]:
        err_console.print(f"[yellow]{info['unknown_budget_rows']} rows come from an older file that did not "
                          f"record their BN budget; they are taken as measured with --bn-images "
                          f"{info['bn_images']}[/yellow]")
    console.print(f"predictor {info['predictor']}: held-out RMSE {info['rmse']:.3f} pts, Kendall tau "
                  f"{info['kendall_tau']:.3f}, Spearman {info['spearman']:.3f} "
                  f"(train {info['n_train']}, held out {info['n_holdout']})")


def _int_list(text: str, option: str) -> tuple[int, ...]:
    """``"0,1,2"`` as ints; a bad entry is a usage error naming ``option``."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 0:
        raise typer.BadParameter(f"{text!r}: give whole numbers >= 0 separated by commas (e.g. 0,1,2)",
                                 param_hint=option)
    return values


def specialize_cmd(
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Trained supernet (default: the "
                                              "workspace's, see `ofa-edge status`)."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="Device profile name or .toml path "
                                         "(default: every device with a table under --tables)."),
    latency: str = typer.Option(..., "--latency", "-l", help="Latency budget(s): 20ms, 0.02s, 20 (ms); "
                                "comma-separated for several (10ms,20ms,40ms)."),
    selector: str = typer.Option("evolution", "--selector", help=f"{' | '.join(SELECTORS)}."),
    predictor: Optional[Path] = _PREDICTOR,
    export: str = typer.Option("pt,onnx", "--export", help=f"Comma-separated formats: {', '.join(exports())}."),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="int8 (INT8 variants of the --export "
                                           "formats)."),
    out: Path = typer.Option(Path("builds"), "--out", "-o", help="Output folder (<out>/<device>/<budget>/)."),
    tables: Path = TABLES_OPTION,
    data: Optional[str] = _DATA,
    bn_images: int = typer.Option(500, "--bn-images", help="Training images for BN recalibration."),
    population: int = typer.Option(100, "--population", help="Evolution population."),
    generations: int = typer.Option(500, "--generations", help="Evolution generations."),
    random_n: int = typer.Option(1000, "--random-samples", help="Subnets drawn by --selector random."),
    seed: int = typer.Option(0, "--seed", help="Search seed."),
    measure: bool = typer.Option(False, "--measure", help="Also measure the chosen subnet on the device, and time "
                                 "every exported artefact its runtime runs to recommend the fastest."),
    max_drop: float = typer.Option(1.0, "--max-drop", help="Largest top-1 drop (points, test split) of a "
                                   "recommended INT8 artefact."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 | int8: search (and --measure) with the "
                                  "device's INT8 table and models; implies --quantize int8."),
    int8_float_stages: str = typer.Option("0", "--int8-float-stages", help="Comma-separated: one INT8 "
                                          "artefact per value, keeping that many early stages (after the stem "
                                          "and block 0) in float, e.g. 0,1,2; with --measure the fastest within "
                                          "--max-drop is recommended."),
    latency_margin: float = typer.Option(0.0, "--latency-margin", help="Percent of each budget kept free for the "
                                         "latency table's error (its MAPE, printed by `ofa-edge validate`): the "
                                         "search takes subnets predicted within budget x (1 - margin/100), so "
                                         "the measured latency meets the budget."),
    retries: int = typer.Option(2, "--retries", help="With --measure: a pick measured over its budget is "
                                "replaced by a new search within budget x predicted/measured (1 % less), up to "
                                "this many times; 0 keeps the first pick. The manifest lists every attempt."),
    verbose: bool = VERBOSE_OPTION,
    as_json: bool = _JSON,
) -> None:
    """Pick the most accurate subnet per latency budget, extract, recalibrate, test, export, write a manifest."""
    from ofa_edge.pipelines import SpecializeRequest, specialize
    from ofa_edge.search import parse_latencies

    budgets = parse_latencies(latency)
    if selector not in SELECTORS:
        raise typer.BadParameter(f"{selector!r} is not one of {', '.join(SELECTORS)}", param_hint="--selector")
    formats = tuple(f.strip() for f in export.split(",") if f.strip())
    float_stages = _int_list(int8_float_stages, "--int8-float-stages")
    net, devices = _workspace_inputs(checkpoint, device, tables)
    source = "--checkpoint" if net.source == "given" else net.source
    err_console.print(f"supernet {net.checkpoint} (from {source}); device{'s' if len(devices) > 1 else ''} "
                      f"{', '.join(devices)}", soft_wrap=True, highlight=False)
    manifests = []
    for name in devices:
        request = SpecializeRequest(net.checkpoint, name, tuple(budgets), selector=selector,
                                    predictor=str(predictor) if predictor else None, out=out, export=formats,
                                    quantize=quantize, tables_dir=tables, data=data, bn_images=bn_images,
                                    config=_config(population, generations, seed), random_n=random_n,
                                    measure=measure, max_drop=max_drop, precision=precision,
                                    verbose=verbose, int8_float_stages=float_stages,
                                    latency_margin=latency_margin, retries=retries)
        with progress_bar(not as_json) as progress:
            manifests.extend(specialize(request, progress=progress))
    if as_json:
        print_json(manifests)
        return
    table = Table("device", "budget", "subnet", "r", "MMACs", "ms pred", "ms meas", "top1 pred", "top1 test")
    for m in manifests:
        lat, acc = m["latency_ms"], m["top1"]
        table.add_row(m["device"], f"{m['budget_ms']:g} ms", m["subnet_id"], str(m["resolution"]),
                      f"{m['macs'] / 1e6:.2f}",
                      f"{lat['predicted']:.3f}", "-" if lat["measured"] is None else f"{lat['measured']:.3f}",
                      "-" if acc["predicted"] is None else f"{acc['predicted']:.2f}", f"{acc['measured']:.2f}")
    console.print(table)
    for m in manifests:
        rec = m.get("recommended")
        ship = f" (ship {rec['file']}: {rec['latency_ms']:.3f} ms measured)" if rec else ""
        console.print(f"{m['budget_ms']:g} ms: {m['folder']}/manifest.json{ship}", soft_wrap=True)
        for line in converter_log_lines(m, m["folder"]):
            err_console.print(line, soft_wrap=True, highlight=False)
    labels = {m["device"]: m["latency_ms"]["table_measured_on"] for m in manifests}
    for name, label in labels.items():  # whose numbers "ms pred" are
        console.print(f"ms pred for {name}: {label}", soft_wrap=True, markup=False, highlight=False)


def _workspace_inputs(checkpoint: Optional[Path], device: Optional[str], tables: Path):
    """The supernet and devices to use: the flags when given, else the workspace's (ofa-edge.toml, tables)."""
    from ofa_edge.errors import MissingStepError
    from ofa_edge.workspace import current_supernet, load_workspace, table_devices

    try:
        net = current_supernet(load_workspace(), checkpoint)
    except MissingStepError as exc:
        fail(f"--checkpoint: {exc}; run `ofa-edge train`, or set one with `ofa-edge use CHECKPOINT`")
    if device is not None:
        return net, [device]
    devices = table_devices(tables)
    if not devices:
        fail(f"--device: no device given and no latency table under {tables}/; run "
             "`ofa-edge profile --device D` (or pass --device D)")
    return net, devices


def pareto_cmd(
    checkpoint: Path = _CKPT,
    device: str = typer.Option(..., "--device", "-d", help="Device profile name or .toml path."),
    latency: Optional[str] = typer.Option(None, "--latency", "-l", help="Budgets (default: 8 spread between "
                                          "the fastest and the slowest subnet)."),
    predictor: Optional[Path] = _PREDICTOR,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for pareto.png and pareto.csv "
                                       "(default builds/<device>)."),
    tables: Path = TABLES_OPTION,
    builds: Optional[Path] = typer.Option(None, "--builds", help="Folder of builds to mark on the plot "
                                          "(default: the --out folder)."),
    n_random: int = typer.Option(200, "--random", help="Random subnets to plot."),
    population: int = typer.Option(100, "--population", help="Evolution population."),
    generations: int = typer.Option(500, "--generations", help="Evolution generations."),
    seed: int = typer.Option(0, "--seed", help="Seed."),
    as_json: bool = _JSON,
) -> None:
    """Accuracy vs latency: the search's front, random subnets and measured points (PNG + CSV)."""
    from ofa_edge.pipelines import pareto
    from ofa_edge.search import parse_latencies

    budgets = parse_latencies(latency) if latency is not None else None
    info = pareto(checkpoint, device, budgets, predictor=str(predictor) if predictor else None, out=out,
                  tables_dir=tables, n_random=n_random, config=_config(population, generations, seed), seed=seed,
                  builds=builds)
    if as_json:
        print_json(info)
        return
    table = Table("budget (ms)", "latency (ms)", "predicted top-1", "MACs (M)", "subnet")
    for p in info["front"]:
        table.add_row(f"{p['budget_ms']:g}", f"{p['latency_ms']:.3f}", f"{p['predicted_top1']:.2f}",
                      f"{p['macs'] / 1e6:.2f}", p["subnet_id"])
    console.print(table)
    console.print(f"latency (ms): {info['table_measured_on']}", soft_wrap=True, markup=False, highlight=False)
    console.print(f"wrote {info['png']} and {info['csv']}")


def register(app: typer.Typer) -> None:
    app.add_typer(predictor_app, name="predictor")
    app.command("specialize")(specialize_cmd)
    app.command("pareto")(pareto_cmd)
