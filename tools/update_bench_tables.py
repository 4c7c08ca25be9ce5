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


def search(d: dict) -> str:
    rows = ["| space | population x generations | candidates scored | setup s | search s (median) |",
            "|---|---|---|---|---|"]
    for t in d["timing"]:
        rows.append(f"| {t['space']} | {t['population']} x {t['generations']} | {t['evaluated']} | "
                    f"{t['setup_s']:.2f} | {t['search_s_median']:.2f} |")
    if d.get("selectors"):
        rows += ["", "| selector | budget ms | subnet | MMACs | latency pred / measured ms | top-1 pred / test % |",
                 "|---|---|---|---|---|---|"]
        for r in d["selectors"]:
            meas = "-" if r["latency_meas_ms"] is None else f"{r['latency_meas_ms']:.3f}"
            pred = "-" if r["top1_pred"] is None else f"{r['top1_pred']:.2f}"
            rows.append(f"| {r['selector']} | {r['budget_ms']:g} | {r['subnet']} | {r['macs'] / 1e6:.2f} | "
                        f"{r['latency_pred_ms']:.3f} / {meas} | {pred} / {r['top1_test']:.2f} |")
    return "\n".join(rows)


def export(d: dict) -> str:
    rows = ["| subnet | artifact | export s | size KB | x86 latency ms | top-1 % | top-1 agreement with fp32 |",
            "|---|---|---|---|---|---|---|"]
    for a in d["artifacts"]:
        f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
        rows.append(f"| {a['subnet']} | {a['artifact']} | {f(a['export_s'], '.2f')} | "
                    f"{f(None if a['bytes'] is None else a['bytes'] / 1024, '.0f')} | {f(a['latency_ms'], '.3f')} | "
                    f"{f(a['top1'], '.2f')} | {f(a['agreement'], '.3f')} |")
    for i in d.get("int8", []):
        rows.append(f"\n{i['subnet']} {i['format']}: INT8 speed-up x{i['speedup_int8']:.2f}, "
                    f"top-1 drop {i['drop_points']:.2f} points.")
    return "\n".join(rows)


def int8_speed(d: dict) -> str:
    rows = ["| space | r | subnet | batch | fp32 ms | INT8 ms | INT8 speed-up |", "|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        rows.append(f"| {r['space']} | {r['r']} | {r['subnet']} | {r['batch']} | {r['fp32_ms']:.3f} | "
                    f"{r['int8_ms']:.3f} | x{r['speedup']:.2f} |")
    return "\n".join(rows)


def cli_startup(d: dict) -> str:
    rows = ["| command | wall s (median) | CPU s (median) | heavy imports |", "|---|---|---|---|"]
    for r in d["rows"]:
        rows.append(f"| `{r['command']}` | {r['median_s']:.2f} | {r['median_cpu_s']:.2f} | "
                    f"{', '.join(r['heavy_imports']) or 'none'} |")
    return "\n".join(rows)


def _bf16(row: dict) -> str:
    return "-" if row.get("bf16_vs_fp32") is None else f"x{row['bf16_vs_fp32']:.2f}"


def train_speed(d: dict) -> str:
    rows = ["| space | r | batch | threads | step | static fp32 ms | supernet NCHW ms | supernet (ofa-edge) ms | "
            "speed-up vs static | bf16 / fp32 speed |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        rows.append(f"| {r['space']} | {r['resolution']} | {r['batch']} | {r['threads']} | {r['strategy']} | "
                    f"{r['static-fp32_ms']:.0f} | {r['supernet-nchw_ms']:.0f} | {r['supernet_ms']:.0f} | "
                    f"**x{r['speedup']:.2f}** | {_bf16(r)} |")
    rows.append(f"\nRecommended CPU precision: {d['recommended_precision_cpu']} ({d['precision_accuracy_cost']}). "
                f"Load average before / after: {d['loadavg_before'][0]} / {d['loadavg_after'][0]}.")
    bf16 = RESULTS / "train_speed_bf16.json"
    if bf16.is_file():
        b = json.loads(bf16.read_text())
        parts = ", ".join(f"{r['strategy']} x{r['bf16_vs_fp32']:.2f}" for r in b["rows"] if r.get("bf16_vs_fp32"))
        rows.append(f"bf16 autocast vs fp32 (supernet, channels_last, `--bf16` run, {b['rows'][0]['space']}, "
                    f"{b['rows'][0]['threads']} thread): {parts}, i.e. slower on this CPU.")
    return "\n".join(rows)


def convergence(d: dict) -> str:
    t = d["test"]
    rows = ["| recipe | epochs | training min | max top-1 | min top-1 | max / min ECE | test images | targets |",
            "|---|---|---|---|---|---|---|---|",
            f"| `{d['recipe']}` | {d['epochs']} | {d['train_seconds'] / 60:.1f} | {t['max_top1']:.2f} | "
            f"{t['min_top1']:.2f} | {t['max_ece']:.2f} / {t['min_ece']:.2f} | {t['test_images']} | "
            f"max >= {d['targets']['max_top1']:g}, min >= {d['targets']['min_top1']:g}, <= "
            f"{d['targets']['train_minutes']:g} min |",
            "", "| epoch | training min | val max top-1 | val min top-1 |", "|---|---|---|---|"]
    for c in d["curve"]:
        if "val_max_top1" in c:
            rows.append(f"| {c['epoch']} | {c['train_seconds'] / 60:.1f} | {c['val_max_top1']:.2f} | "
                        f"{c['val_min_top1']:.2f} |")
    return "\n".join(rows)


def predictor(d: dict) -> str:
    n, side = d["noise_vs_spread"], d["side_by_side"]
    rows = [f"{d['samples']} subnets measured on {n['val_images']} validation images (BN recalibrated on "
            f"{d['bn_images']} training images): top-1 {n['top1_min']:.2f}-{n['top1_max']:.2f} %, spread (std) "
            f"**{n['top1_std']:.2f}** points; noise: binomial standard error {n['binomial_se']:.2f}, "
            f"BN-recalibration noise {n['bn_seed_diff_std']:.2f} points ({n['subnets']} subnets recalibrated twice).",
            "", "| predictor (held-out 20 %) | Kendall tau | Spearman | RMSE (points) |", "|---|---|---|---|"]
    p = d["packaged_predictor"]
    rows.append(f"| packaged: OFA MLP 3x400 (`predictor fit --json`) | {p['kendall_tau']:.3f} | {p['spearman']:.3f} "
                f"| {p['rmse']:.2f} |")
    names = {"mlp": "OFA MLP, seed 0 (same training rows)", "mlp_ensemble5": "5 MLPs averaged",
             "ridge_onehot_macs_params": "ridge: one-hot + MACs + params"}
    for key, label in names.items():
        m = side[key]
        rows.append(f"| {label} | {m['kendall_tau']:.3f} | {m['spearman']:.3f} | {m['rmse']:.2f} |")
    return "\n".join(rows)


RENDER = {"search": search, "export": export, "supernet_overhead": supernet_overhead, "lut_accuracy": lut_accuracy,
          "train_strategies": train_strategies, "int8_speed": int8_speed, "train_speed": train_speed,
          "convergence": convergence, "predictor": predictor, "cli_startup": cli_startup}


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
