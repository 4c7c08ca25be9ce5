"""Shared CLI helpers: error handling, JSON output, the rich console."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

from ofa_edge.errors import MissingStepError, OfaEdgeError

console = Console(stderr=False)
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on stderr and exit with ``code`` (2 = bad input)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


#: Library field -> CLI flag, where the flag is not ``--`` + the field with dashes.
FLAGS = {"budgets_ms": "--latency", "tables_dir": "--tables", "formats": "--export", "random_n": "--random-samples",
         "accuracy_csv": "--accuracy-csv", "n_random_points": "--random"}


def flag_of(field: str) -> str:
    """The command-line flag that sets library field ``field``."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def user_message(exc: BaseException) -> str:
    """The one-line message of a user error, its field (if any) shown as the flag that sets it."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, MissingStepError):
        args = " ".join(f"{flag_of(k)} {v}" for k, v in exc.inputs.items())
        message = f"{message}; run `ofa-edge {exc.step}{' ' + args if args else ''}`"
    field = getattr(exc, "field", None)
    if not field:
        return message
    flag = flag_of(field)
    for prefix in (f"{field.replace('_', ' ')}: ", f"{field}: "):
        if message.startswith(prefix):
            return f"{flag}: {message[len(prefix):]}"
    return message if message.startswith(flag) else f"{flag}: {message}"


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
        err_console.print(f"[bold red]error:[/] {user_message(exc)}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    return 0
