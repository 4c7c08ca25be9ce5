"""Generate the README's CLI reference (markdown) from the typer app, so the two never drift."""

from __future__ import annotations

from typing import Any

import typer

START = "<!-- cli-reference:start -->"
END = "<!-- cli-reference:end -->"


def _commands(cmd: Any, path: list[str]):
    if hasattr(cmd, "commands"):
        for name in sorted(cmd.commands):
            yield from _commands(cmd.commands[name], path + [name])
    else:
        yield path, cmd


def _option_row(param: Any) -> str:
    is_arg = param.param_type_name == "argument"
    if is_arg:
        name = (param.metavar or param.name or "").upper()
    else:
        name = ", ".join(f"`{o}`" for o in param.opts + param.secondary_opts)
        name = name if name else param.name
    help_text = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
    default = getattr(param, "default", None)
    shown = "" if default in (None, False, (), []) or callable(default) else f" (default: `{default}`)"
    if is_arg:
        name = f"`{name}`"
    return f"| {name} | {help_text}{shown} |"


def cli_reference(app: typer.Typer) -> str:
    """Markdown: one section per command with its help text and options."""
    root = typer.main.get_command(app)
    if hasattr(root, "load_all"):  # the lazy root group imports its commands on demand
        root.load_all()
    out = []
    for path, cmd in _commands(root, []):
        out.append(f"#### `ofa-edge {' '.join(path)}`\n")
        out.append((cmd.help or "").strip().split("\n\n")[0].replace("\n", " ") + "\n")
        params = [p for p in cmd.params if p.name != "help"]
        if params:
            out.append("| option | meaning |\n|---|---|")
            out.extend(_option_row(p) for p in params)
            out.append("")
    return "\n".join(out).strip() + "\n"


def replace_section(text: str, section: str) -> str:
    """Put ``section`` between the START and END markers of ``text``."""
    if START not in text or END not in text:
        raise ValueError("README has no cli-reference markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{section}{END}{tail}"
