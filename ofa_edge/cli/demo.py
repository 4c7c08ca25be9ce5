"""``ofa-edge demo`` (the main job end to end) and ``ofa-edge report`` (the same table from files on disk)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ofa_edge.cli.common import console, err_console, print_json


def demo_cmd(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Output folder (re-run with the same "
                             "options to resume an interrupted demo)."),
    minutes: float = typer.Option(8.0, "--minutes", "-m", help="Time budget; training gets about 45 % of it."),
    space: str = typer.Option("cifar-mbv3", "--space", help="Search space to train."),
    device: str = typer.Option("x86-local", "--device", "-d", help="Device profile to measure on."),
    from_scratch: bool = typer.Option(False, "--from-scratch", help="Train a supernet in the time budget "
                                      "instead of starting from the packaged pretrained one (cifar10-mbv3)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
) -> None:
    """Specialise the packaged CIFAR-10 supernet (or, with --from-scratch, train one on the embedded set) for
    this machine: profile it, specialise three latency budgets, export ONNX + INT8 (TFLite/CoreML when
    installed), measure, report. Refuses (exit 1) to present a model near chance."""
    from ofa_edge.pipelines import DemoConfig, collect_rows, describe_rows, render_table, run_demo
    from ofa_edge.pipelines.demo import DemoQualityError

    cfg = DemoConfig(out=str(out), minutes=minutes, space=space, device=device, from_scratch=from_scratch)
    columns = (TextColumn("[bold]{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[note]}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, disable=as_json) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int, note: str) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=max(total, 1), note="")
            bar.update(tasks[stage], completed=done, total=max(total, 1), note=note[:48])

        try:
            result = run_demo(cfg, progress)
        except DemoQualityError as exc:
            bar.stop()
            err_console.print(f"[bold red]{exc}[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
    if as_json:
        print_json(result)
        return
    rows = collect_rows(out / "builds")
    console.print(render_table(rows, f"ofa-edge demo: {space} on {device} (top-1 on the test split, %)"))
    for line in describe_rows(rows):
        console.print(line, soft_wrap=True, highlight=False)
    lut = result["lut_metrics"] or {}
    pred = result["predictor"]
    if lut:
        console.print(f"latency table: {lut.get('n', 0)} held-out subnets, MAPE {lut.get('mape', 0):.2f} %, "
                      f"within ±10 % {lut.get('within_10pct', 0):.2f}, Kendall tau {lut.get('kendall_tau', 0):.2f}")
    if result["source"] == "pretrained":
        source = f"{cfg.pretrained} (packaged pretrained supernet, no training)"
    else:
        source = f"{result['checkpoint']} (trained from scratch)"
    console.print(f"supernet: {source}; max subnet {result['quality']['max_val_top1']:.1f} % on the validation "
                  "split", highlight=False, soft_wrap=True)
    console.print(f"accuracy predictor: {pred['rows']} subnets, held-out RMSE {pred['rmse']:.2f} points, "
                  f"Kendall tau {pred['kendall_tau']:.2f}")
    console.print(f"plots: {result['pareto_png']}, {result['lut_scatter_png']}  ({result['seconds']:.0f} s)")


def report_cmd(
    folder: Path = typer.Argument(..., help="A demo output, run or builds folder holding manifest.json files."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
) -> None:
    """Print the budgets table (and list the plots) from files already on disk."""
    from ofa_edge.pipelines import collect_rows, describe_rows, render_table

    rows = collect_rows(folder)
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    console.print(render_table(rows, f"ofa-edge builds in {folder} (top-1 on the test split, %)"))
    for line in describe_rows(rows):
        console.print(line, soft_wrap=True, highlight=False)
    for name in ("pareto.png", "lut_scatter.png"):
        for path in sorted(folder.rglob(name)):
            console.print(f"plot: {path}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
    app.command("report")(report_cmd)
