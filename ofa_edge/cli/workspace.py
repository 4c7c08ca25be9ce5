"""``ofa-edge use`` and ``ofa-edge status``: the folder's workspace (ofa-edge.toml)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ofa_edge.cli.common import TABLES_OPTION, console, fail, print_json


def use_cmd(checkpoint: str = typer.Argument(..., help="Supernet checkpoint file (or a packaged name, e.g. "
                                              "cifar10-mbv3).")) -> None:
    """Make CHECKPOINT this folder's current supernet (in ofa-edge.toml)."""
    from ofa_edge.workspace import _checkpoint_path, set_supernet

    path = _checkpoint_path(checkpoint)
    if path.is_dir():
        hint = f"; pass {path / 'supernet.pt'}" if (path / "supernet.pt").is_file() else ""
        fail(f"CHECKPOINT: {checkpoint} is a folder{hint}")
    if not path.is_file():
        fail(f"CHECKPOINT: {checkpoint} does not exist (a supernet file, e.g. runs/<run>/supernet.pt)")
    ws = set_supernet(checkpoint)
    console.print(f"current supernet: {ws.supernet} (in {ws.file.name})", soft_wrap=True)


def status_cmd(
    tables: Path = TABLES_OPTION,
    builds: Path = typer.Option(Path("builds"), "--builds", help="Folder of specialised builds."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show this folder's workspace: supernet, predictor, latency tables and builds."""
    from ofa_edge.workspace import describe, load_workspace

    info = describe(load_workspace(), tables, builds)
    if as_json:
        print_json(info)
        return
    net = info["supernet"]
    console.print(f"workspace: {info['workspace'] or 'no ofa-edge.toml (defaults apply)'}", soft_wrap=True)
    if net["checkpoint"] is None:
        console.print(f"supernet:  none ({net['missing']}; run `ofa-edge train` or `ofa-edge use CHECKPOINT`)",
                      soft_wrap=True)
    else:
        missing = "" if net["exists"] else "  [red](file missing)[/]"
        console.print(f"supernet:  {net['checkpoint']} (from {net['source']}){missing}", soft_wrap=True)
    console.print(f"predictor: {info['predictor'] or 'none (run `ofa-edge predictor fit`)'}", soft_wrap=True)
    if info["tables"]:
        table = Table("device", "runtime", "age", "measured on", "cpu", "date", title="latency tables")
        for t in info["tables"]:
            table.add_row(t["device"], t["runtime"], t["age"], t["measured_on"] or "?", t["cpu"] or "?",
                          str(t["date"] or "?")[:10])
        console.print(table)
    else:
        console.print(f"tables:    none under {tables} (run `ofa-edge profile --device D`)", soft_wrap=True)
    console.print(f"builds:    {len(info['builds'])} under {builds}"
                  + "".join(f"\n  {b['device']}/{b['budget']}" for b in info["builds"]), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("use")(use_cmd)
    app.command("status")(status_cmd)
