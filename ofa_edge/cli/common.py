"""Shared CLI helpers: error handling, JSON output, the rich console."""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ofa_edge.errors import MissingStepError, OfaEdgeError
from ofa_edge.terminal import STDERR, STDOUT

# The real terminal even while converter output is captured into log files (ofa_edge.terminal).
console = Console(file=STDOUT)
err_console = Console(file=STDERR)


#: Folder of latency tables, shared by the commands that read or write them.
TABLES_OPTION = typer.Option(Path("latency_tables"), "--tables",
                             help="Folder of latency tables (<device>/<runtime>.csv).")


#: Stream the converters' output instead of capturing it, shared by the commands that export.
VERBOSE_OPTION = typer.Option(False, "--verbose", "-v", help="Stream the converters' own output (TensorFlow, "
                              "coremltools, ...) instead of writing it to <build>/logs/<artefact>.log.")


def converter_log_lines(manifest: dict[str, Any], folder: str | Path) -> list[str]:
    """One line per artefact whose converters printed something: what it holds and where the log is."""
    lines = []
    for art in manifest.get("artifacts", []):
        log = art.get("log")
        if not log:
            continue
        counts = [f"{log['warnings']} warning{'s' * (log['warnings'] != 1)}"]
        if log.get("errors"):
            counts.append(f"{log['errors']} error{'s' * (log['errors'] != 1)}")
        failed = " (failed)" if art.get("status") == "failed" else ""
        lines.append(f"{art['key']}{failed}: {', '.join(counts)}, log in {Path(folder) / log['file']}")
    return lines


class CommandLineError(OfaEdgeError):
    """A bad command-line input found by the CLI itself; exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def fail(message: str, code: int = 2) -> NoReturn:
    """A user error: ``error: message`` on stderr and exit ``code`` (2 = bad input), raised so that
    open progress bars and signal handlers unwind first."""
    raise CommandLineError(message, code)


@contextlib.contextmanager
def progress_bar(enabled: bool, transient: bool = True) -> Iterator[Callable[..., None] | None]:
    """A rich progress bar fed by a library callback ``(*labels, done, total)``; yields None when disabled."""
    if not enabled:
        yield None
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err_console, transient=transient)
    tasks: dict[tuple, int] = {}

    def update(*args) -> None:
        *labels, done, total = args
        key = tuple(labels)
        if key not in tasks:
            tasks[key] = bar.add_task(" ".join(map(str, labels)), total=total)
        bar.update(tasks[key], completed=done, total=total)

    with bar:
        yield update


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
    """Run ``app`` with ``argv``: a user error (OfaEdgeError) exits 2 with one line and no traceback; any
    other exception is a bug and exits 1 with its traceback."""
    try:
        app(args=argv, prog_name="ofa-edge", standalone_mode=True)
    except SystemExit as exc:  # typer's own exits: usage errors (2), --help (0), typer.Exit(code)
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except OfaEdgeError as exc:
        err_console.print(f"[bold red]error:[/] {user_message(exc)}", highlight=False, soft_wrap=True)
        return exc.exit_code if isinstance(exc, OfaEdgeError) else 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception:  # not a user error: a bug, shown as one
        traceback.print_exc()
        err_console.print("[bold red]internal error[/] (a bug in ofa-edge, not in your input): please report the "
                          "traceback above", highlight=False, soft_wrap=True)
        return 1
    return 0
