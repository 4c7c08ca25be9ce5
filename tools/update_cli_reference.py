"""Rewrite the CLI reference section of README.md from the typer app (run after changing a command)."""

from pathlib import Path

from ofa_edge.cli import app
from ofa_edge.cli.reference import cli_reference, replace_section

readme = Path(__file__).resolve().parents[1] / "README.md"
readme.write_text(replace_section(readme.read_text(), cli_reference(app)))
print(f"updated {readme}")
