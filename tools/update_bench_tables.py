"""Render the README's benchmark tables from bench/results/*.json (run after a benchmark)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def supernet_overhead(d: dict) -> str:
    rows = ["| space | r | batch | supernet s/step | static s/step | ratio | peak MiB supernet / static |",
            "|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        rows.append(f"| {r['space']} | {r['resolution']} | {r['batch']} | {r['supernet_s']:.3f} | {r['static_s']:.3f} "
                    f"| {r['ratio']:.3f} | {r['supernet_peak_mib']:.0f} / {r['static_peak_mib']:.0f} |")
    return "\n".join(rows)


def lut_accuracy(d: dict) -> str:
    rows = ["| path | subnets | MAPE % | within ±10 % | Kendall tau | wall s |", "|---|---|---|---|---|---|"]
    for name in ("local", "ssh"):
        if name in d:
            m = d[name]
            rows.append(f"| {name} | {m['n']} | {m['mape']:.2f} | {m['within_10pct']:.2f} | {m['kendall_tau']:.3f} "
                        f"| {m['wall_s']:.1f} |")
    if "ssh_over_local_wall" in d:
        rows.append(f"\nSSH / local wall time: **{d['ssh_over_local_wall']:.3f}x**.")
    return "\n".join(rows)


def train_strategies(d: dict) -> str:
    text = d["readme_table"]
    for key, diff in d.get("comparisons", {}).items():
        parts = ", ".join(f"{k} {v:+.2f}" for k, v in diff.items())
        text += f"\n\n`{key}`: {parts}"
    return text


RENDER = {"supernet_overhead": supernet_overhead, "lut_accuracy": lut_accuracy,
          "train_strategies": train_strategies}


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    for name, render in RENDER.items():
        path = RESULTS / f"{name}.json"
        marker = f"<!-- bench:{name} -->"
        if not path.is_file() or marker not in text:
            continue
        table = render(json.loads(path.read_text()))
        pattern = re.compile(re.escape(marker) + r"\n(?:.*\n)*?<!-- /bench:" + re.escape(name) + r" -->\n?")
        block = f"{marker}\n{table}\n<!-- /bench:{name} -->\n"
        text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.replace(marker + "\n", block)
        print(f"README: {name} table from {path.relative_to(ROOT)}")
    readme.write_text(text)


if __name__ == "__main__":
    main()
