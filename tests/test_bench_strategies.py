"""bench/train_strategies.py keeps runs from other CPUs apart, and runs made side by side together."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from repo_scripts import ROOT
from repo_scripts import load_script as _load


@pytest.mark.parametrize("extra", [[], ["--minutes", "1", "--host-tag", "epyc-avx2"]])
def test_a_host_tag_needs_minutes_and_a_plain_name(extra, tmp_path):
    args = extra or ["--host-tag", "avx2"]
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "train_strategies.py"), *args],
                         capture_output=True, text=True, cwd=tmp_path, check=False)
    assert res.returncode == 2, res.stderr
    assert "--host-tag" in res.stderr and "needs --minutes and a plain name" in res.stderr
    assert "Traceback" not in res.stderr


def test_budget_gains_compare_only_runs_of_the_same_host_tag(tmp_path, monkeypatch):
    bench = _load("bench/train_strategies.py")
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    base = {"batch_size": 128, "lr": 0.15, "seed": 0, "bn_eval": 1000}

    def write(name: str, minutes: int, tag: str | None, top1: tuple[float, float]) -> dict:
        cfg = {**base, "minutes": minutes, **({"host_tag": tag} if tag else {})}
        doc = {"format": bench.FORMAT, "config": cfg,
               "runs": {"sandwich": {"max_top1": top1[0], "min_top1": top1[1]}}}
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
        return doc

    write("train_strategies_m60", 60, None, (70.0, 60.0))
    write("train_strategies_m60_avx2", 60, "avx2", (65.0, 50.0))
    plain = write("train_strategies_m140", 140, None, (80.0, 75.0))
    tagged = write("train_strategies_m140_avx2", 140, "avx2", (78.0, 70.0))
    bench.budget_gains(plain, plain["config"])
    bench.budget_gains(tagged, tagged["config"])
    assert plain["runs"]["sandwich"]["budget_gain"] == {"from_minutes": 60, "max_top1": 10.0, "min_top1": 15.0}
    assert tagged["runs"]["sandwich"]["budget_gain"] == {"from_minutes": 60, "max_top1": 13.0, "min_top1": 20.0}
    (tmp_path / "train_strategies_m60_avx2.json").unlink()
    bench.budget_gains(tagged, tagged["config"])  # no shorter run on that CPU: no gain rather than a wrong one
    assert "budget_gain" not in tagged["runs"]["sandwich"]


@pytest.mark.parametrize("args, says", [
    (["--minutes", "60", "--steps", "1600"], "--minutes and --steps are two kinds of budget"),
    (["--steps", "1000"], "--steps 1000: needs a multiple of --segments (16)"),
    (["--steps", "8"], "--steps 8: needs a multiple of --segments (16)"),
])
def test_a_steps_budget_is_refused_when_it_cannot_be_split_evenly(args, says, tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "train_strategies.py"), *args],
                         capture_output=True, text=True, cwd=tmp_path, check=False)
    assert res.returncode == 2, res.stderr
    assert says in res.stderr and "Traceback" not in res.stderr


def test_a_steps_run_gains_over_the_same_run_with_the_most_steps_below_it(tmp_path, monkeypatch):
    bench = _load("bench/train_strategies.py")
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    base = {"epochs": 16, "batch_size": 128, "lr": 0.15, "seed": 0, "bn_eval": 1000}

    def write(name: str, budget: dict, runs: dict) -> dict:
        doc = {"format": bench.FORMAT, "config": {**base, "steps_per_epoch": budget.pop("spe", None), **budget},
               "runs": {k: {"steps": st, "max_top1": a, "min_top1": b} for k, (st, a, b) in runs.items()}}
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
        return doc

    write("train_strategies_m60", {"minutes": 60}, {"progressive": (3008, 65.0, 60.0)})
    write("train_strategies_m140_avx2", {"minutes": 140, "host_tag": "avx2"}, {"progressive": (4336, 71.0, 65.0)})
    write("train_strategies_m140", {"minutes": 140, "lr": 0.1}, {"progressive": (5000, 1.0, 1.0)})  # other lr
    long = write("train_strategies_s8672", {"steps": 8672, "spe": 542}, {"progressive": (8672, 75.5, 72.0)})
    drawn = bench.budget_gains(long, long["config"])
    # steps mean the same on every CPU: the AVX2 host's 140-minute run is the nearest shorter budget
    assert long["runs"]["progressive"]["budget_gain"] == {
        "from_steps": 4336, "from_file": "train_strategies_m140_avx2", "max_top1": 4.5, "min_top1": 7.0}
    # its plot draws that shorter run beside it
    assert drawn == {"progressive": (
        "4336 steps (train_strategies_m140_avx2)", {"steps": 4336, "max_top1": 71.0, "min_top1": 65.0})}
    assert "test top-1 gain over the 4336 step run" in bench.markdown(
        {"progressive": {**long["runs"]["progressive"], "strategy": "progressive", "heads": 1,
                         "labels_per_class": None, "labelled_images": 8672 * 128, "max_ece": 1.0, "min_ece": 1.0,
                         "train_seconds": 1.0, "images_per_s": 1.0}})


def test_the_readme_table_names_the_cpu_when_the_file_records_it():
    tables = _load("tools/update_bench_tables.py")
    doc = {"readme_table": "| run |", "cpu": "AMD EPYC (avx2)", "threads": 1}
    assert tables.train_strategies(doc).startswith("CPU: AMD EPYC (avx2), 1 thread(s) per run.\n\n| run |")
    assert tables.train_strategies({"readme_table": "| run |"}) == "| run |"  # older files: table alone


def test_a_run_finishing_beside_another_keeps_the_others_row(tmp_path):
    bench = _load("bench/train_strategies.py")
    cfg = {"batch_size": 128, "lr": 0.15, "seed": 0, "bn_eval": 1000, "minutes": 140}
    out = tmp_path / "train_strategies_m140.json"
    mine = {"format": bench.FORMAT, "config": cfg, "runs": {"progressive": {"max_top1": 70.0}}}
    # the run beside this one wrote its row after this one had read the file
    out.write_text(json.dumps({"format": bench.FORMAT, "config": cfg, "runs": {"random": {"max_top1": 84.0}},
                               "threads": 1}))
    bench.merge_finished(mine, out, cfg, quick=False)
    assert mine["runs"] == {"random": {"max_top1": 84.0}, "progressive": {"max_top1": 70.0}}
    # rows made with other options are never mixed in
    other = {"format": bench.FORMAT, "config": {**cfg, "lr": 0.1}, "runs": {"sandwich": {"max_top1": 1.0}}}
    out.write_text(json.dumps(other))
    bench.merge_finished(mine, out, cfg, quick=False)
    assert set(mine["runs"]) == {"random", "progressive"}


def test_a_steps_run_completes_a_pair_with_the_same_steps_from_another_file(tmp_path, monkeypatch):
    bench = _load("bench/train_strategies.py")
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    base = {"epochs": 16, "batch_size": 128, "lr": 0.15, "seed": 0, "bn_eval": 1000}

    def write(name: str, budget: dict, runs: dict) -> dict:
        doc = {"format": bench.FORMAT, "config": {**base, **budget},
               "runs": {k: {"steps": st, "max_top1": a, "min_top1": b, "max_ece": 5.0, "min_ece": e}
                        for k, (st, a, b, e) in runs.items()}}
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
        return doc

    write("train_strategies_m140_avx2", {"minutes": 140, "host_tag": "avx2"},
          {"sandwich-heads4": (3696, 79.9, 74.1, 5.5)})  # other steps: no partner
    write("train_strategies_m240", {"minutes": 240}, {"sandwich-heads4": (8912, 84.2, 80.6, 5.2)})
    write("train_strategies_m300", {"minutes": 300, "lr": 0.1}, {"sandwich-heads4": (8912, 1.0, 1.0, 1.0)})  # other lr
    long = write("train_strategies_s8912", {"steps": 8912, "steps_per_epoch": 557},
                 {"sandwich": (8912, 83.0, 79.0, 6.0)})
    assert bench.comparisons(long, long["config"]) == {"solar_heads4_minus_heads1": {
        "max_top1": 1.2, "min_top1": 1.6, "max_ece": 0.0, "min_ece": -0.8, "from_file": "train_strategies_m240"}}
    # the plot draws that partner beside the run, named with its file
    assert bench.partners_from_files(long, long["config"]) == {"sandwich-heads4": (
        "8912 steps (train_strategies_m240)",
        {"steps": 8912, "max_top1": 84.2, "min_top1": 80.6, "max_ece": 5.0, "min_ece": 5.2})}
    # a --minutes file compares only the runs it holds: equal minutes on another host are not equal work
    m140 = json.loads((tmp_path / "train_strategies_m140_avx2.json").read_text())
    m140["runs"]["sandwich"] = {"steps": 3696, "max_top1": 79.3, "min_top1": 74.6, "max_ece": 5.3, "min_ece": 5.6}
    assert bench.comparisons(m140, m140["config"])["solar_heads4_minus_heads1"] == {
        "max_top1": 0.6, "min_top1": -0.5, "max_ece": -0.3, "min_ece": -0.1}
    assert bench.comparisons({"runs": {"sandwich": m140["runs"]["sandwich"]}}, m140["config"]) == {}
    tables = _load("tools/update_bench_tables.py")
    text = tables.train_strategies({"readme_table": "| run |", "comparisons": bench.comparisons(long, long["config"])})
    assert text.endswith("`solar_heads4_minus_heads1`: max_top1 +1.20, min_top1 +1.60, max_ece +0.00, min_ece -0.80"
                         " (one of the two runs from train_strategies_m240.json, same steps)")
