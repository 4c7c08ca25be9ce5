"""``ofa-edge demo`` (the main job end to end) and ``ofa-edge report`` (the same table from files on disk)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ofa_edge.cli.common import VERBOSE_OPTION, console, err_console, print_json


def demo_cmd(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Output folder (re-run with the same "
                             "options to resume an interrupted demo)."),
    minutes: float = typer.Option(8.0, "--minutes", "-m", help="Time budget; training gets about 45 % of it."),
    space: str = typer.Option("cifar-mbv3", "--space", help="Search space to train."),
    device: str = typer.Option("x86-local", "--device", "-d", help="Device profile to measure on."),
    from_scratch: bool = typer.Option(False, "--from-scratch", help="Train a supernet in the time budget "
                                      "instead of starting from the packaged pretrained one (cifar10-mbv3)."),
    verbose: bool = VERBOSE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
) -> None:
    """Specialise the packaged CIFAR-10 supernet (or, with --from-scratch, train one on the embedded set) for
    this machine: profile it, specialise three latency budgets, export ONNX + INT8 (TFLite/CoreML when
    installed), measure, report. Refuses (exit 1) to present a model near chance."""
    from ofa_edge.pipelines import DemoConfig, run_demo
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
            result = run_demo(cfg, progress, verbose=verbose)
        except DemoQualityError as exc:
            bar.stop()
            err_console.print(f"[bold red]{exc}[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
    if as_json:
        print_json(result)
        return
    _print_report(out)


def report_cmd(
    folder: Path = typer.Argument(..., help="A demo output, run or builds folder holding manifest.json files."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
) -> None:
    """Print again what the demo printed (or the budgets table of any builds folder) from files on disk."""
    from ofa_edge.pipelines import collect_rows

    if as_json:
        print_json([r.to_dict() for r in collect_rows(folder)])
        return
    _print_report(folder)


def _print_report(folder: Path) -> None:
    """The budgets table, one line per build and, for a demo folder, the demo's summary lines."""
    from ofa_edge.pipelines import collect_rows, describe_rows, read_summary, render_table, summary_lines

    summary = read_summary(folder)
    rows = collect_rows(folder / "builds" if summary and (folder / "builds").is_dir() else folder)
    title = summary["title"] if summary and summary.get("title") else \
        f"ofa-edge builds in {folder} (top-1 on the test split, %)"
    console.print(render_table(rows, title))
    for line in describe_rows(rows):
        console.print(line, soft_wrap=True, highlight=False)
    if summary:
        for line in summary_lines(summary):
            console.print(line, soft_wrap=True, highlight=False)
        return
    for name in ("pareto.png", "lut_scatter.png"):
        for path in sorted(folder.rglob(name)):
            console.print(f"plot: {path}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
    app.command("report")(report_cmd)
