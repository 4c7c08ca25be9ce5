"""Print, per parser, how many hypothesis inputs the test suite tries (a markdown table).

The counts come from ``tests/fuzz_budget.py``, the one table the fuzz tests take their ``max_examples``
from; the tests are scanned to name the test using each entry and to list hypothesis tests with their own
literal ``max_examples``. Usage: ``python tools/fuzz_counts.py``.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def load_budget() -> dict:
    """The FUZZ dict of tests/fuzz_budget.py."""
    spec = importlib.util.spec_from_file_location("fuzz_budget", TESTS / "fuzz_budget.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FUZZ


def scan(tests: Path = TESTS) -> tuple[dict[str, list[str]], list[tuple[str, int]]]:
    """(budget key -> tests using it, [(test, literal max_examples)] for hypothesis tests outside the budget)."""
    users: dict[str, list[str]] = {}
    literal: list[tuple[str, int]] = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            name = f"{path.name}::{node.name}"
            for dec in node.decorator_list:
                if not isinstance(dec, ast.Call) or not isinstance(dec.func, ast.Name):
                    continue
                if dec.func.id == "fuzz_settings" and dec.args and isinstance(dec.args[0], ast.Constant):
                    users.setdefault(dec.args[0].value, []).append(name)
                elif dec.func.id == "settings":
                    for kw in dec.keywords:
                        if kw.arg == "max_examples" and isinstance(kw.value, ast.Constant):
                            literal.append((name, int(kw.value.value)))
    return users, literal


def table() -> str:
    """The markdown table (one row per fuzzed parser, then the total)."""
    budget = load_budget()
    users, literal = scan()
    lines = ["| parser | test | only error allowed | inputs tried (max_examples) |", "|---|---|---|---|"]
    for key, fuzz in budget.items():
        tests = ", ".join(f"`{t}`" for t in users.get(key, [])) or "**unused**"
        lines.append(f"| `{fuzz.parser}` | {tests} | {fuzz.error} | {fuzz.examples} |")
    lines.append(f"| **total** ({len(budget)} parsers) | | | **{sum(f.examples for f in budget.values())}** |")
    if literal:
        lines.append("")
        lines.append("Other hypothesis (property) tests: " + ", ".join(f"`{t}` ({n})" for t, n in literal))
    return "\n".join(lines)


def main() -> int:
    """Print the table; exit 1 if a budget entry is unused or used by a test in two places."""
    print(table())
    users, _ = scan()
    budget = load_budget()
    bad = [k for k in budget if len(users.get(k, [])) != 1] + [k for k in users if k not in budget]
    if bad:
        print(f"budget entries not used by exactly one test: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
