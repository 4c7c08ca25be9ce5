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


def test_readme_extension_point_examples_register_and_work():
    """Each ten-line example of the Architecture section runs, and its plug-in is then registered."""
    import re
    import subprocess
    import sys

    text = README.read_text()
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 5
    check = ("\nfrom ofa_edge.train.strategies import STRATEGIES\nfrom ofa_edge.devices.runtimes import RUNTIMES\n"
             "from ofa_edge.export import EXPORTERS\nfrom ofa_edge.search.select import SELECTORS\n"
             "from ofa_edge.space import get_space\n"
             "assert 'max-only' in STRATEGIES and 'sleep' in RUNTIMES and 'onnx-copy' in EXPORTERS\n"
             "assert 'smallest' in SELECTORS and get_space('cifar-k3').ks_list == (3,)\nprint('ok')\n")
    out = subprocess.run([sys.executable, "-c", "\n".join(blocks) + check], capture_output=True, text=True,
                         cwd=README.parent)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
