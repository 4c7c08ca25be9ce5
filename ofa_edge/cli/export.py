"""``ofa-edge build targets.toml``: build a matrix of devices x budgets x formats (for CI)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ofa_edge.cli.common import VERBOSE_OPTION, console, converter_log_lines, err_console, fail, print_json


def build_cmd(
    targets: Path = typer.Argument(..., help="targets.toml: checkpoint, devices x budgets x formats."),
    fresh: bool = typer.Option(False, "--fresh", help="Rebuild targets that are already built (no resume)."),
    verbose: bool = VERBOSE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Build every target of a targets.toml; exit 1 listing the failed targets (budget, parity, converter)."""
    from ofa_edge.pipelines.build import load_targets, run_matrix, specialize_builder

    spec = load_targets(targets)
    builder = specialize_builder(spec, verbose=verbose)

    def progress(target, i, n, stage):
        if stage == "start" and not as_json:
            err_console.print(f"[{i + 1}/{n}] {target.name} ({', '.join(target.formats)})", highlight=False)

    result = _interruptible(lambda: run_matrix(spec, builder, resume=not fresh, progress=progress), targets)
    rows = [{"target": r.target.name, "status": r.status, "folder": str(r.folder), "message": r.message}
            for r in result.results]
    if as_json:
        print_json({"summary": str(result.summary), "targets": rows, "failed": [r["target"] for r in rows
                                                                              if r["status"] == "failed"]})
    else:
        table = Table("target", "status", "folder", "message")
        for r in rows:
            style = {"failed": "red", "built": "green"}.get(r["status"], "")
            table.add_row(r["target"], f"[{style}]{r['status']}[/]" if style else r["status"], r["folder"],
                          r["message"])
        console.print(table)
        console.print(f"summary: {result.summary}")
        for r in result.results:
            if r.status in ("built", "failed") and r.manifest is not None:
                for line in converter_log_lines(r.manifest.to_dict(), r.folder):
                    err_console.print(line, soft_wrap=True, highlight=False)
    if not result.ok:
        names = ", ".join(r.target.name for r in result.failed)
        err_console.print(f"[bold red]error:[/] {len(result.failed)} target(s) failed: {names}", highlight=False)
        raise typer.Exit(1)


def _interruptible(work, targets: Path):
    """Run ``work()`` with SIGTERM treated like Ctrl-C: temp files are removed, finished targets kept."""
    import signal

    def _stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return work()
    except KeyboardInterrupt:
        fail(f"interrupted; finished targets are kept, run `ofa-edge build {targets}` again to build the rest",
             code=130)
    finally:
        signal.signal(signal.SIGTERM, previous)


def register(app: typer.Typer) -> None:
    app.command("build")(build_cmd)
