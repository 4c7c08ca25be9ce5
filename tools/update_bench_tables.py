"""Render the README's benchmark tables from bench/results/*.json (run after a benchmark)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PRETRAINED = ROOT / "ofa_edge" / "pretrained"


def provenance(d: dict) -> str:
    """A line above a table measured on other weights than the packaged supernet of that name has now."""
    name, sha = d.get("checkpoint"), d.get("checkpoint_sha256")
    pack = PRETRAINED / str(name) / "supernet.pt"
    if not name or not sha or not pack.is_file():
        return ""
    from ofa_edge.export.manifest import sha256_path

    now = sha256_path(pack)
    if now == sha:
        return ""
    return (f"*Measured on an earlier `{name}` package (supernet sha256 `{sha[:12]}`; the packaged one is "
            f"now `{now[:12]}`): re-run this benchmark to refresh it.*\n\n")


def supernet_overhead(d: dict) -> str:
    rows = ["| space | r | batch | supernet s/step | static s/step | ratio | peak MiB supernet / static |",
            "|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        rows.append(f"| {r['space']} | {r['resolution']} | {r['batch']} | {r['supernet_s']:.3f} | {r['static_s']:.3f} "
                    f"| {r['ratio']:.3f} | {r['supernet_peak_mib']:.0f} / {r['static_peak_mib']:.0f} |")
    return "\n".join(rows)


def lut_accuracy(d: dict) -> str:
    rows = ["| path | subnets | MAPE % | within ±10 % | Kendall tau | wall s |", "|---|---|---|---|---|---|"]
    labels = {"local": "local", "noise": "local, measured again (noise floor)", "ssh": "ssh"}
    for name in ("local", "noise", "ssh"):
        if name in d:
            m = d[name]
            label = labels[name] + (f", {d['precision']}" if "precision" in d else "")
            rows.append(f"| {label} | {m['n']} | {m['mape']:.2f} | {m['within_10pct']:.2f} | {m['kendall_tau']:.3f} "
                        f"| {m['wall_s']:.1f} |")
    if "ssh_over_local_wall" in d:
        rows.append(f"\nSSH / local wall time: **{d['ssh_over_local_wall']:.3f}x**.")
    if "subnet_ms" in d:
        r = d["subnet_ms"]
        rows.append(f"\nThe {r['n']} whole subnets measured ({r['statistic']} over the rounds): "
                    f"**{r['min']:.2f}-{r['max']:.2f} ms** ({d.get('precision', 'fp32')}).")
    if d.get("by_statistic"):
        rows += ["", (f"The same local measurements read with each statistic (the profile uses "
                     f"`{d.get('statistic', 'median')}`):"), "",
                 ("| statistic | table: MAPE % | within ±10 % | Kendall tau | measured again: MAPE % | within ±10 % "
                 "| Kendall tau |"), "|---|---|---|---|---|---|---|"]
        for stat, r in d["by_statistic"].items():
            t, n = r["table"], r.get("noise")
            again = (f"{n['mape']:.2f} | {n['within_10pct']:.2f} | {n['kendall_tau']:.3f}" if n else "- | - | -")
            rows.append(f"| {stat} | {t['mape']:.2f} | {t['within_10pct']:.2f} | {t['kendall_tau']:.3f} | {again} |")
        for stat, r in d["by_statistic"].items():
            if stat == d.get("statistic") and "table_shared_correction" in r:
                t = r["table_shared_correction"]
                factors = ", ".join(f"{k} px {v:.3f}" for k, v in r.get("by_resolution", {}).items())
                rows.append(f"\nPer-resolution factors ({factors or 'none'}); the `{stat}` table with one shared "
                            f"correction instead: MAPE {t['mape']:.2f} %, within ±10 % {t['within_10pct']:.2f}, "
                            f"Kendall tau {t['kendall_tau']:.3f}.")
            if stat == d.get("statistic") and "table_previous_fit" in r:
                t, p = r["table"], r["table_previous_fit"]
                rows.append(f"\nThe correction `scale * raw + per_layer * layers` (c = {r['correction']}) "
                            "against the fit it replaced (a scale, plus an offset where positive, with its own "
                            f"per-resolution factors): MAPE {t['mape']:.2f} vs {p['mape']:.2f} %, within ±10 % "
                            f"{t['within_10pct']:.2f} vs {p['within_10pct']:.2f}, Kendall tau "
                            f"{t['kendall_tau']:.3f} vs {p['kendall_tau']:.3f}; median error of each "
                            f"resolution's largest third {t['largest_third_median_error_pct']:+.2f} vs "
                            f"{p['largest_third_median_error_pct']:+.2f} %.")
    return "\n".join(rows)


def train_strategies(d: dict) -> str:
    text = d["readme_table"]
    if d.get("cpu"):  # files since --host-tag say which CPU their minutes were spent on
        text = f"CPU: {d['cpu']}, {d.get('threads', 1)} thread(s) per run.\n\n" + text
    for key, diff in d.get("comparisons", {}).items():
        parts = ", ".join(f"{k} {v:+.2f}" for k, v in diff.items() if k != "from_file")
        source = f" (one of the two runs from {diff['from_file']}.json, same steps)" if "from_file" in diff else ""
        text += f"\n\n`{key}`: {parts}{source}"
    return text


def search(d: dict) -> str:
    rows = ["| space | population x generations | candidates scored | setup s | search s (median) |",
            "|---|---|---|---|---|"]
    for t in d["timing"]:
        rows.append(f"| {t['space']} | {t['population']} x {t['generations']} | {t['evaluated']} | "
                    f"{t['setup_s']:.2f} | {t['search_s_median']:.2f} |")
    if d.get("selectors"):
        margins = any("margin_pct" in r for r in d["selectors"])
        picks = bool(d.get("retries"))
        rows += ["", "| selector |" + (" margin % |" if margins else "") + " budget ms | subnet | MMACs | "
                 "latency pred / measured ms | measured within budget | top-1 pred / test % |"
                 + (" picks measured |" if picks else ""),
                 "|---|---|---|---|---|---|---|" + ("---|" if margins else "") + ("---|" if picks else "")]
        for r in d["selectors"]:
            meas = "-" if r["latency_meas_ms"] is None else f"{r['latency_meas_ms']:.3f}"
            fits = "-" if r["latency_meas_ms"] is None else (
                "yes" if r["latency_meas_ms"] <= r["budget_ms"] else
                f"**no** (+{100 * (r['latency_meas_ms'] / r['budget_ms'] - 1):.1f} %)")
            pred = "-" if r["top1_pred"] is None else f"{r['top1_pred']:.2f}"
            rows.append(f"| {r['selector']} |" + (f" {r.get('margin_pct', 0):g} |" if margins else "")
                        + f" {r['budget_ms']:g} | {r['subnet']} | {r['macs'] / 1e6:.2f} | "
                        f"{r['latency_pred_ms']:.3f} / {meas} | {fits} | {pred} / {r['top1_test']:.2f} |"
                        + (f" {r.get('picks_measured', 1)} |" if picks else ""))
        if d.get("skipped"):
            rows += [""] + [f"{k}: skipped ({v})" for k, v in d["skipped"].items()]
    return "\n".join(rows)


def export(d: dict) -> str:
    rows = [("| runtime | space | r | batch | subnet | fp32 ms | INT8 ms | INT8 speed-up | target | fastest INT8 with "
            "float stages: stages, ms, speed-up | INT8 partitions |"),
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        met = "met" if r["speedup"] >= r["target"] else "**missed**"
        best = "-"
        if "speedup_best" in r:
            best_met = "met" if r["speedup_best"] >= r["target"] else "**missed**"
            best = (f"{r['float_stages_best']}, {r['int8_best_ms']:.3f}, x{r['speedup_best']:.2f} ({best_met})"
                    if r["float_stages_best"] else "0 (the INT8 file)")
        rows.append(f"| {r['runtime']} | {r['space']} | {r['r']} | {r['batch']} | {r['subnet']} | {r['fp32_ms']:.3f} | "
                    f"{r['int8_ms']:.3f} | x{r['speedup']:.2f} | x{r['target']:g} ({met}) | {best} | "
                    f"{r.get('partitions_int8', '-')} |")
    variants = [r for r in d["rows"] if r.get("variants_speedup")]
    if variants:
        n = max(len(r["variants_speedup"]) for r in variants)
        rows += ["", "TFLite INT8 speed-up over fp32 by stages kept in float after block 0 (first timing pass):", "",
                 "| subnet | " + " | ".join(f"{k} float stages" for k in range(n)) + " |",
                 "|---|" + "---|" * n]
        for r in variants:
            v = {str(k): x for k, x in r["variants_speedup"].items()}  # JSON keys are strings
            cells = [f"x{v[str(k)]:.2f}" if str(k) in v else "-" for k in range(n)]
            rows.append(f"| {r['space']} {r['subnet']} | " + " | ".join(cells) + " |")
    if d.get("stages"):
        rows += ["", "| subnet | stage (blocks) | input | depthwise kernels | fp32 ms | INT8 ms | INT8 speed-up |",
                 "|---|---|---|---|---|---|---|"]
        for s in d["stages"]:
            rows.append(f"| {s['space']} {s['subnet']} | {s['stage']} ({','.join(map(str, s['blocks']))}) | "
                        f"{'x'.join(map(str, s['input'][1:]))} | {', '.join(s['depthwise_kernels'])} | "
                        f"{s['fp32_ms']:.3f} | {s['int8_ms']:.3f} | x{s['speedup']:.2f} |")
    rows.append(f"\nCPU: {d['cpu']} ({', '.join(d['cpu_flags'])}); ai-edge-litert {d['ai_edge_litert']}, onnxruntime "
                f"{d['onnxruntime']}, 1 thread. Load average before / after: {d['loadavg_before'][0]:.1f} / "
                f"{d['loadavg_after'][0]:.1f}.")
    return "\n".join(rows)


def int8_accuracy(d: dict) -> str:
    rows = ["| subnet | artifact | calibration images | top-1 % | drop (points) | agreement with fp32 |",
            "|---|---|---|---|---|---|"]
    for r in d["rows"]:
        if r["top1"] is None:
            continue
        rows.append(f"| {r['subnet']} | {r['artifact']} | {r['calibration_images']} | {r['top1']:.2f} | "
                    f"{r['drop_points']:.2f} | {r['agreement']:.3f} |")
    n = d["rows"][0]["test_images"] if d["rows"] else 0
    rows.append(f"\n`{d['checkpoint']}` on {n} test images of `{d['data']}` (BN recalibrated on {d['bn_images']} "
                f"training images). Largest INT8 drop **{d['max_drop_points']:.2f} points** (target <= "
                f"{d['target_drop_points']:g}: {'met' if d['met'] else 'missed'}).")
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
    rows = [("| space | r | batch | threads | step | static fp32 ms | supernet NCHW ms | supernet (ofa-edge) ms | "
            "speed-up vs static | bf16 / fp32 speed |"), "|---|---|---|---|---|---|---|---|---|---|"]
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
            (f"| `{d['recipe']}` | {d['epochs']} | {d['train_seconds'] / 60:.1f} | {t['max_top1']:.2f} | "
            f"{t['min_top1']:.2f} | {t['max_ece']:.2f} / {t['min_ece']:.2f} | {t['test_images']} | "
            f"max >= {d['targets']['max_top1']:g}, min >= {d['targets']['min_top1']:g}, <= "
            f"{d['targets']['train_minutes']:g} min |"),
            "", "| epoch | training min | val max top-1 | val min top-1 |", "|---|---|---|---|"]
    for c in d["curve"]:
        if "val_max_top1" in c:
            rows.append(f"| {c['epoch']} | {c['train_seconds'] / 60:.1f} | {c['val_max_top1']:.2f} | "
                        f"{c['val_min_top1']:.2f} |")
    return "\n".join(rows)


def predictor(d: dict) -> str:
    n, side = d["noise_vs_spread"], d["side_by_side"]
    rows = [(f"{d['samples']} subnets measured on {n['val_images']} validation images (BN recalibrated on "
            f"{d['bn_images']} training images): top-1 {n['top1_min']:.2f}-{n['top1_max']:.2f} %, spread (std) "
            f"**{n['top1_std']:.2f}** points; noise: binomial standard error {n['binomial_se']:.2f}, "
            f"BN-recalibration noise {n['bn_seed_diff_std']:.2f} points ({n['subnets']} subnets recalibrated twice)."),
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


def predictor_split(d: dict) -> str:
    sp, pool = d["spread"], d["pool_images"]
    intro = (f"{d['subnets']} subnets of `{d['checkpoint']}`, each measured image by image on the "
             f"{pool['val']} validation + {pool['test']} test images (BN recalibrated on {d['bn_images']} training "
             f"images): top-1 over all {pool['val'] + pool['test']:,} images {sp['top1_min']:.2f}-"
             f"{sp['top1_max']:.2f} %, spread (std) **{sp['top1_std']:.2f}** points. Each row fits on its "
             f"training subnets and scores the same {d['subnets'] - d['train_subnets']} held-out subnets; means "
             "over random image draws.")
    head = ("| measurement split (images) | training subnets | noise (points) | MLP tau | 5 MLPs tau | MLP RMSE "
            "| 5 MLPs tau vs the other images | re-measurement tau |")
    rows = [intro, "", head, "|---|---|---|---|---|---|---|---|"]

    def line(r: dict, k: int, noise: str) -> str:
        ind, meas = (f"{r[key]['kendall_tau']:.3f}" if key in r else "-"
                     for key in ("ensemble_independent", "measurement_vs_independent"))
        return (f"| {r['images']} | {k} | {noise} | {r['mlp_same']['kendall_tau']:.3f} | "
                f"{r['ensemble_same']['kendall_tau']:.3f} | {r['mlp_same']['rmse']:.2f} | {ind} | {meas} |")

    for r in d["sizes"]:
        rows.append(line(r, d["train_subnets"], f"{r['paired_noise_se']:.2f}"))
    for r in d["fewer_train_subnets"]:
        rows.append(line(r, r["train_subnets"], "-"))
    return "\n".join(rows)


def standalone(d: dict) -> str:
    rows = [("| size | subnet | px | supernet top-1 | trained alone top-1 | difference (points) | ECE supernet / alone "
            "| images seen | alone: training min |"), "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for r in d["rows"]:
        where = ""
        if r.get("trained_on"):  # epochs per device when not all on this CPU: the minutes are not comparable
            where = " *"
            parts = ", ".join(f"{n} on {'this CPU' if dev == 'cpu' else dev.replace('cuda: ', 'an ')}"
                              for dev, n in r["trained_on"].items())
            notes.append(f"\\* {r['size']}: epochs {parts} (resumed from the saved state); its training minutes "
                         "add the two devices' times.")
        rows.append(f"| {r['size']} | `{r['subnet']}` | {r['resolution']} | {r['supernet_top1']:.2f} | "
                    f"{r['standalone_top1']:.2f} | {r['difference']:+.2f} | {r['supernet_ece']:.2f} / "
                    f"{r['standalone_ece']:.2f} | {r['images']:,} | {r['train_seconds'] / 60:.1f}{where} |")
    if len(d["rows"]) > 1:
        rows.append(f"\nMean difference: {d['mean_difference']:+.2f} points.")
    return "\n".join(rows + ([""] + notes if notes else []))


def gpu_check(d: dict) -> str:
    t = d["train"][0]
    rows = [f"{d['card']}, torch {d['torch']}, CUDA {d['cuda']}, {d['date']}; code: {d['code']}.", "",
            ("| space | r | batch | step | static fp32 ms | supernet NCHW fp32 ms | supernet channels_last bf16 ms | "
            "NCHW fp32 / channels_last bf16 speed |"), "|---|---|---|---|---|---|---|---|"]
    for r in d["train_speed"]["rows"]:
        rows.append(f"| {r['space']} | {r['resolution']} | {r['batch']} | {r['strategy']} | "
                    f"{r['static-fp32_ms']:.1f} | {r['supernet-nchw_ms']:.1f} | {r['supernet-cl-bf16_ms']:.1f} | "
                    f"x{r['supernet-cl-bf16_ms'] / r['supernet-nchw_ms']:.1f} |")
    rows += ["", f"Training ({t['space']}, {t['strategy']}, batch {t['batch']}, {t['layout']}, precision "
             f"{t['precision']} = {t['resolved']}): {t['steps']} steps in {t['seconds']:.1f} s "
             f"({t['images_per_s']:.0f} images/s), max subnet {t['max_top1_embedded_test']:.1f} % on the embedded "
             f"test images. `tests/test_cuda.py`: {d['tests']['tests/test_cuda.py'].split(',')[0]} "
             "(AMP auto/fp16/bf16 training with exact resume, pinned batches). Not run: " + "; ".join(d["not_run"]) + "."]
    return "\n".join(rows)


def tour(d: dict) -> str:
    m, loads = d["machine"], [r["load_1min_before"] for r in d["rows"] + d.get("next_steps", [])]
    rows = [(f"{m['cpu']}, {m['cpu_count']} cores, {d['date']}; 1-minute load average before the commands "
            f"{min(loads):.2f}-{max(loads):.2f}."), "", "| command | wall s | CPU s |", "|---|---|---|"]
    for r in d["rows"]:
        name, _, what = r["label"].partition(" (")
        rows.append(f"| `{name}`{' (' + what if what else ''} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} |")
    t = d["total"]
    rows.append(f"| all | {t['wall_s']:.1f} ({t['wall_s'] / 60:.0f} min) | {t['cpu_s']:.1f} ({t['cpu_s'] / 60:.0f} min) |")
    for r in d.get("next_steps", []):
        rows.append(f"\nNext steps, `{r['command']}`: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU.")
    return "\n".join(rows)


RENDER = {"search": search, "search_int8": search, "search_retries": search, "search_int8_retries": search, "export": export, "int8_accuracy": int8_accuracy, "supernet_overhead": supernet_overhead,
          "lut_accuracy": lut_accuracy,
          "lut_accuracy_int8": lut_accuracy,
          "train_strategies": train_strategies,
          "int8_speed": int8_speed, "train_speed": train_speed,
          "convergence": convergence, "predictor": predictor, "predictor_split": predictor_split, "standalone": standalone, "standalone_18k2k": standalone,
          "cli_startup": cli_startup,
          "gpu_check": gpu_check, "tour": tour}


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    budgets = {p.stem: train_strategies for p in sorted(RESULTS.glob("train_strategies_[ms]*.json"))}  # --minutes, --steps
    for name, render in {**RENDER, **budgets}.items():
        path = RESULTS / f"{name}.json"
        marker = f"<!-- bench:{name} -->"
        if not path.is_file() or marker not in text:
            continue
        data = json.loads(path.read_text())
        table = provenance(data) + render(data)
        pattern = re.compile(re.escape(marker) + r"\n(?:.*\n)*?<!-- /bench:" + re.escape(name) + r" -->\n?")
        block = f"{marker}\n{table}\n<!-- /bench:{name} -->\n"
        text = pattern.sub(lambda _, block=block: block, text) if pattern.search(text) else text.replace(marker + "\n", block)
        print(f"README: {name} table from {path.relative_to(ROOT)}")
    readme.write_text(text)


if __name__ == "__main__":
    main()
