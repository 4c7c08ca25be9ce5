"""Shared CLI helpers: error handling, JSON output, the rich console."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

from ofa_edge.errors import OfaEdgeError

console = Console(stderr=False)
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on stderr and exit with ``code`` (2 = bad input)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (plain, machine-readable)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def run(app: typer.Typer, argv: list[str]) -> int:
    """Run ``app`` with ``argv``; user errors exit 2 with one line, never a traceback."""
    try:
        app(args=argv, prog_name="ofa-edge", standalone_mode=True)
    except SystemExit as exc:  # typer's own exits: usage errors (2), --help (0), typer.Exit(code)
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except (OfaEdgeError, ValueError, FileNotFoundError) as exc:
        message = str(exc) or type(exc).__name__
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    return 0
