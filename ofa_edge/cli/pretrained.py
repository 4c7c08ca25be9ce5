"""``ofa-edge pretrained list``: the supernets shipped inside the package."""

from __future__ import annotations

import typer
from rich.table import Table

from ofa_edge.cli.common import console, print_json

pretrained_app = typer.Typer(help="Pretrained supernets shipped with ofa-edge (usable wherever a checkpoint is).",
                             no_args_is_help=True)


@pretrained_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print the cards as JSON.")) -> None:
    """List the packaged supernets with their accuracy, predictor quality, recipe and provenance."""
    from ofa_edge.pretrained import list_pretrained

    items = [p.summary() for p in list_pretrained()]
    if as_json:
        print_json(items)
        return
    if not items:
        console.print("no pretrained supernets are packaged in this installation")
        return
    table = Table("name", "space", "classes", "test top-1 max / min", "predictor tau / RMSE", "MB")
    for it in items:
        m, p = it["metrics"], it["predictor"]
        table.add_row(it["name"], str(it["space"]), str(it["classes"]),
                      f"{m.get('max_top1', float('nan')):.2f} / {m.get('min_top1', float('nan')):.2f}",
                      f"{p.get('kendall_tau', float('nan')):.3f} / {p.get('rmse', float('nan')):.2f}",
                      f"{it['size_mb']}")
    console.print(table)
    for it in items:
        console.print(f"{it['name']}: {it['data']}; reproduce: {it['recipe'].get('command', '-')}",
                      highlight=False, soft_wrap=True)
    console.print("use a name wherever a checkpoint is accepted, e.g. "
                  f"`ofa-edge eval --checkpoint {items[0]['name']} --subnet max`")


def register(app: typer.Typer) -> None:
    app.add_typer(pretrained_app, name="pretrained")
