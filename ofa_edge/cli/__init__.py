"""The ``ofa-edge`` command line: a thin typer layer over the library."""

from __future__ import annotations

import sys

import typer

from ofa_edge.cli import common
from ofa_edge.cli.lazy import LazyGroup

app = typer.Typer(
    cls=LazyGroup,
    name="ofa-edge",
    help="Train one once-for-all supernet and turn it into a deployable model per device and latency budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from ofa_edge import __version__

        typer.echo(f"ofa-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.", metavar="",
                                       is_eager=True, callback=_print_version)) -> None:
    """Train one once-for-all supernet and turn it into a deployable model per device and latency budget."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn user errors into one line on stderr and exit code 2."""
    return common.run(app, argv if argv is not None else sys.argv[1:])
