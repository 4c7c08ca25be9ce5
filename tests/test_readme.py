"""The README's CLI reference is what ``--help`` says (regenerate with tools/update_cli_reference.py)."""

from pathlib import Path

from ofa_edge.cli import app
from ofa_edge.cli.reference import END, START, cli_reference

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_cli_reference_is_in_sync():
    text = README.read_text()
    current = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert current == cli_reference(app).strip(), "run: python tools/update_cli_reference.py"


def test_readme_set_up_commands():
    text = README.read_text()
    assert "pip install -e . && ofa-edge demo" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "pip install -e '.[dev,all]' && python -m pytest" in text and "pip install -e '.[dev,all]' && python -m pytest" in ci
