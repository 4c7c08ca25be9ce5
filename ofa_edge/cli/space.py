"""``ofa-edge space show`` and ``ofa-edge subnet``: inspect the search space and single subnets."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ofa_edge.cli.common import console, print_json
from ofa_edge.space import list_spaces, resolve_space
from ofa_edge.space.summary import describe_subnet, space_summary

space_app = typer.Typer(help="Inspect search spaces.", no_args_is_help=True)


@space_app.command("show")
def space_show(
    space: str = typer.Option("cifar-mbv3", "--space", "-s",
                              help=f"Search space: a name ({', '.join(list_spaces())}) or a .json file."),
    n_classes: int = typer.Option(None, "--classes", help="Classifier outputs (default: 1000 for ofa-* "
                                  "spaces, 10 otherwise)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show a space's choices, its number of subnets, and min/max MACs and params per resolution."""
    sp = resolve_space(space)
    summary = space_summary(sp, n_classes)
    if as_json:
        print_json(summary)
        return
    console.print(f"[bold]{sp.name}[/]  stem={sp.stem}  width x{sp.width_mult}  widths={list(sp.widths)}")
    console.print(f"kernel {list(sp.ks_list)}  expand {list(sp.expand_list)}  depth {list(sp.depth_list)}"
                  f"  resolution {list(sp.resolutions)}  ({sp.n_stages} stages x {sp.max_depth} block slots)")
    console.print(f"subnets: {summary['n_subnets']:.3e} ({summary['n_architectures']:.3e} architectures "
                  f"x {len(sp.resolutions)} resolutions)")
    table = Table("resolution", "min MACs (M)", "max MACs (M)", "min params (M)", "max params (M)")
    for row in summary["per_resolution"]:
        table.add_row(str(row["r"]), f"{row['min_macs'] / 1e6:.2f}", f"{row['max_macs'] / 1e6:.2f}",
                      f"{row['min_params'] / 1e6:.3f}", f"{row['max_params'] / 1e6:.3f}")
    console.print(table)


def subnet_cmd(
    subnet: str = typer.Option("max", "--subnet", help="max, min, random, or a subnet as JSON "
                               '({"ks": [...], "e": [...], "d": [...], "r": 32}).'),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c",
                                              help="Supernet checkpoint (ofa-edge or OFA format); its "
                                              "search space and class count are used."),
    space: str = typer.Option("cifar-mbv3", "--space", "-s", help="Search space when no checkpoint is given."),
    n_classes: int = typer.Option(None, "--classes", help="Classifier outputs when no checkpoint is given."),
    seed: int = typer.Option(0, "--seed", help="Seed for --subnet random."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Show one subnet: its id, MACs and parameter count."""
    if checkpoint is not None:
        from ofa_edge.supernet import load_any

        net = load_any(checkpoint)
        sp, classes = net.space, net.n_classes
    else:
        sp = resolve_space(space)
        classes = n_classes or (1000 if sp.name.startswith("ofa-") else 10)
    info = describe_subnet(sp, subnet, classes, random.Random(seed))
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]{info['id']}[/]  {info['short']}")
    console.print(f"MACs {info['macs'] / 1e6:.3f} M   params {info['params'] / 1e6:.4f} M")
    console.print(f"subnet {info['subnet']}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(space_app, name="space")
    app.command("subnet")(subnet_cmd)
