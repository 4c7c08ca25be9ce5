"""The ``ofa-edge`` command line: a thin typer layer over the library."""

from __future__ import annotations

import sys

import typer

from ofa_edge.cli import common

app = typer.Typer(
    name="ofa-edge",
    help="Train one once-for-all supernet and turn it into a deployable model per device and latency budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from ofa_edge.cli import space as space_cmds

    for module in (space_cmds,):
        module.register(app)
    for name in ("train", "devices", "search", "export", "demo", "pretrained"):
        try:
            module = __import__(f"ofa_edge.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"ofa_edge.cli.{name}":
                raise
            continue
        module.register(app)


def _print_version(value: bool) -> None:
    if value:
        from ofa_edge import __version__

        typer.echo(f"ofa-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.",
                                       is_eager=True, callback=_print_version)) -> None:
    """Train one once-for-all supernet and turn it into a deployable model per device and latency budget."""


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn user errors into one line on stderr and exit code 2."""
    return common.run(app, argv if argv is not None else sys.argv[1:])
