"""Latency tables: layer enumeration, file format, correction fit, metrics, OFA yaml import, lock, profiling."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import random
import statistics
import subprocess
import sys

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from fuzz_budget import fuzz_settings
from ofa_edge.devices import get_device
from ofa_edge.errors import FileFormatError, OfaEdgeError
from ofa_edge.latency import (Correction, LatencyTable, ProfileOptions, Row, accuracy_metrics, enumerate_blocks,
                              fit_correction, kendall_tau, load_table, parse_table, plan_calibration_subnets,
                              load_validation, predict_ofa, profile_device, read_ofa_yaml, read_ofa_yaml_dir)
from ofa_edge.latency.lock import table_lock
from ofa_edge.latency.profiler import table_paths
from ofa_edge.space import Subnet, get_space, lut_keys, sample, subnet_from_json


@pytest.mark.parametrize("name", ["cifar-tiny", "cifar-mbv3", "ofa-mbv3-w1"])
def test_enumerated_blocks_cover_every_sampled_subnet(name):
    space = get_space(name)
    blocks = {b.lut_key() for b in enumerate_blocks(space, n_classes=10)}
    rng = random.Random(1)
    used = set()
    for _ in range(300):
        used |= set(lut_keys(space, sample(space, rng), 10))
    assert used <= blocks
    if name == "cifar-tiny":  # small space: random subnets reach every enumerated layer, and no other
        for _ in range(1500):
            used |= set(lut_keys(space, sample(space, rng), 10))
        assert used == blocks


def test_enumeration_matches_reference_keys(ofa_cases):
    space = get_space("ofa-mbv3-w1")
    for case in ofa_cases:
        keys = {b.lut_key() for b in enumerate_blocks(space, [case["resolution"]], 1000)}
        assert set(case["lut_keys"]) <= keys


def _table(rows: dict[str, float], correction=Correction()) -> LatencyTable:
    return LatencyTable({k: Row(k, "mbconv" if k.startswith("exp") else "stem", v, v * 1.01, v * 1.1, 0.01, v * 0.9,
                                50) for k, v in rows.items()}, {"device": "d", "settings": "s"}, correction)


def test_table_round_trip_and_predict(tmp_path):
    space = get_space("cifar-tiny")
    specs = enumerate_blocks(space, [24], 10)
    rng = random.Random(0)
    table = LatencyTable({s.lut_key(): Row(s.lut_key(), s.kind, rng.uniform(0.01, 1), 0.5, 0.6, 0.01, 0.005, 10)
                          for s in specs}, {"device": "x", "runtime": "onnxruntime", "n_classes": 10},
                         Correction(0.9, 0.002, 0.01, 7))
    path = table.save(tmp_path / "t.csv")
    back = load_table(path)
    assert back.provenance == table.provenance and back.correction == table.correction
    assert list(back.rows) == list(table.rows)
    subnet = sample(space, rng, r=24)
    keys = lut_keys(space, subnet, 10)
    expect = 0.9 * sum(back.rows[k].median_ms for k in keys) + 0.002 * len(keys) + 0.01
    assert back.predict(space, subnet) == pytest.approx(expect, rel=1e-5)
    with pytest.raises(OfaEdgeError, match="resolution 32"):
        back.predict(space, sample(space, rng, r=32))
    # a per-resolution factor round-trips and multiplies that resolution's predictions only
    table.correction = Correction(0.9, 0.002, 0.01, 7, {24: 1.07, 32: 0.95})
    back = load_table(table.save(tmp_path / "r.csv"))
    assert back.correction == table.correction
    assert back.predict(space, subnet) == pytest.approx(1.07 * expect, rel=1e-5)


@pytest.mark.parametrize("mutate,problem", [
    (lambda t: t.replace("# ofa-edge latency table", "# something else"), "not an ofa-edge latency table"),
    (lambda t: t.replace("# format: 1", "# format: 9"), "format '9' is not supported"),
    (lambda t: t.replace(",0.5,", ",nan,", 1), "not a plausible latency"),
    (lambda t: t.replace(",0.5,", ",-1,", 1), "not a plausible latency"),
    (lambda t: t.replace(",0.5,", ",1e9,", 1), "not a plausible latency"),
    (lambda t: t.replace(",0.5,", ",abc,", 1), "is not a number"),
    (lambda t: t + t.splitlines()[-1] + "\n", "duplicate key"),
    (lambda t: t.replace('"scale": 1.0', '"scale": -2'), "correction"),
    (lambda t: t.replace('"scale": 1.0', '"by_resolution": {"32": 0}, "scale": 1.0'), "by_resolution"),
    (lambda t: t.replace('"scale": 1.0', '"by_resolution": {"x": 1}, "scale": 1.0'), "by_resolution"),
    (lambda t: t.replace("# provenance: {", "# provenance: ["), "JSON"),
])
def test_bad_tables_refused_naming_the_file(tmp_path, mutate, problem):
    text = _table({"Conv-a": 0.5, "expanded_conv-b": 0.5}).to_csv()
    path = tmp_path / "bad.csv"
    path.write_text(mutate(text))
    with pytest.raises(FileFormatError) as err:
        load_table(path)
    assert str(path) in str(err.value) and problem in str(err.value)


@fuzz_settings("latency-table", suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=400))
def test_table_parser_fuzz_only_documented_error(text):
    good = _table({"Conv-a": 0.5}).to_csv()
    for candidate in (text, good[: len(text) % (len(good) + 1)] + text):
        try:
            parse_table(candidate, "fuzz.csv")
        except FileFormatError as exc:
            assert "fuzz.csv" in str(exc)


def test_fit_recovers_known_correction():
    rng = np.random.default_rng(0)
    raw = rng.uniform(1, 5, 40)
    n = rng.integers(10, 30, 40)
    measured = 0.8 * raw + 0.01 * n + 0.05
    c = fit_correction(raw, n, measured)
    assert (c.scale, c.per_layer, c.offset, c.n_fit) == (pytest.approx(0.8), pytest.approx(0.01),
                                                         pytest.approx(0.05), 40)
    small = fit_correction([1.0, 2.0], [5, 6], [1.5, 3.0])  # too few for the full model: scale only
    assert small.scale == pytest.approx(1.5) and small.per_layer == 0 and small.offset == 0
    with pytest.raises(ValueError):
        fit_correction([1.0], [3], [float("nan")])
    # the per-call overhead that one-layer models count once per layer: per_layer = -overhead, offset = +overhead
    overhead = 0.02
    true = 1.1 * raw - overhead * n + overhead
    c = fit_correction(raw, n, true, min_layer_ms=0.05)
    assert (c.per_layer, c.offset) == (pytest.approx(-overhead), pytest.approx(overhead))


def test_fit_keeps_the_per_layer_overhead_when_the_offset_comes_out_negative():
    """Measured on x86-local: whole subnets ran ~6 us per layer faster than their summed one-layer models
    (each of which pays the runtime's call once), and the full fit's offset came out slightly negative, so
    the fit fell back to a scale alone and under-predicted the largest subnets of each resolution. The
    fit now drops only the offset and keeps the per-layer term."""
    rng = np.random.default_rng(4)
    raw = rng.uniform(0.40, 0.80, 60)
    n = rng.integers(18, 25, 60)
    measured = (0.97 * raw - 0.0064 * n - 0.004) * rng.normal(1.0, 0.004, 60)
    fit, held = slice(0, 30), slice(30, 60)
    c = fit_correction(raw[fit], n[fit], measured[fit], min_layer_ms=0.0079)
    assert c.offset == 0 and c.per_layer == pytest.approx(-0.0064 - 0.004 / 21, abs=0.002)
    err = np.abs(np.array([c.apply(a, b) for a, b in zip(raw[held], n[held])]) / measured[held] - 1)
    scale_only = float(np.sum(measured[fit] / measured[fit]) / np.sum(raw[fit] / measured[fit]))
    err_scale = np.abs(scale_only * raw[held] / measured[held] - 1)
    assert err.mean() < 0.01 and err.mean() < err_scale.mean() / 3


def test_fit_gives_each_resolution_with_enough_subnets_its_own_factor():
    """Subnets at 32 px run 10 % slower than the layer sum says, those at 24 px as it says; 28 px has too
    few fit subnets for a factor of its own."""
    rng = np.random.default_rng(1)
    res = np.array([24] * 12 + [32] * 10 + [28] * 4)
    raw = rng.uniform(1, 5, len(res))
    n = rng.integers(10, 30, len(res))
    measured = (0.8 * raw + 0.05) * np.where(res == 32, 1.1, 1.0)
    c = fit_correction(raw, n, measured, resolutions=res)
    assert set(c.by_resolution) == {24, 32}
    assert c.by_resolution[32] / c.by_resolution[24] == pytest.approx(1.1, rel=0.02)
    pred = np.array([c.apply(a, b, r) for a, b, r in zip(raw, n, res)])
    shared = fit_correction(raw, n, measured)
    assert shared.by_resolution == {}
    before = np.abs(np.array([shared.apply(a, b) for a, b in zip(raw, n)]) / measured - 1)[res != 28]
    after = np.abs(pred / measured - 1)[res != 28]
    assert after.max() < 0.04 and after.mean() < before.mean() / 3  # the factor takes out most of the error
    assert c.apply(2.0, 10, 28) == c.apply(2.0, 10)  # no factor: the shared fit alone


def test_fit_never_predicts_a_non_positive_latency():
    # Three noisy points whose unconstrained fit has a negative offset (seen on a loaded machine):
    # the kept correction must stay positive for any subnet, down to one layer of the fastest kind.
    raw, n, measured = [0.30, 0.45, 0.60], [12, 16, 20], [0.35, 0.70, 1.02]
    c = fit_correction(raw, n, measured, min_layer_ms=0.004)
    assert c.offset >= 0 and c.scale > 0
    for layers_n in range(1, 40):
        assert c.apply(0.004 * layers_n, layers_n) > 0


def test_kendall_tau_against_pair_count():
    rng = random.Random(3)
    for _ in range(20):
        a = [rng.randint(0, 5) for _ in range(12)]
        b = [rng.randint(0, 5) for _ in range(12)]
        conc = disc = ties_a = ties_b = 0
        for i, j in itertools.combinations(range(12), 2):
            s = (a[i] - a[j]) * (b[i] - b[j])
            conc += s > 0
            disc += s < 0
            ties_a += a[i] == a[j]
            ties_b += b[i] == b[j]
        pairs = 66
        expect = (conc - disc) / math.sqrt((pairs - ties_a) * (pairs - ties_b))
        assert kendall_tau(a, b) == pytest.approx(expect)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0


def test_accuracy_metrics_by_hand():
    m = accuracy_metrics([10, 10, 10, 20], [10.5, 12, 9.5, 19])
    assert m["n"] == 4 and m["mape"] == pytest.approx((5 + 20 + 5 + 5) / 4)
    assert m["within_10pct"] == 0.75


def test_read_ofa_yaml_and_predict_equals_sum_of_means(tmp_path, ofa_cases):
    space = get_space("ofa-mbv3-w1")
    rng = random.Random(5)
    for r in (160, 224):
        entries = {b.lut_key(): {"count": 10, "mean": rng.uniform(0.1, 3), "var": 0.01}
                   for b in enumerate_blocks(space, [r], 1000)}
        (tmp_path / f"{r}_lookup_table.yaml").write_text(yaml.safe_dump(entries))
    tables = read_ofa_yaml_dir(tmp_path)
    assert sorted(tables) == [160, 224]
    raw = yaml.safe_load((tmp_path / "224_lookup_table.yaml").read_text())
    for case in ofa_cases:
        if case["resolution"] in tables:
            subnet = Subnet(tuple(case["ks"]), tuple(case["e"]), tuple(case["d"]), case["resolution"], 4)
            expect = sum(yaml.safe_load((tmp_path / f"{case['resolution']}_lookup_table.yaml").read_text())[k]["mean"]
                         for k in case["lut_keys"])
            assert predict_ofa(tables, space, subnet) == pytest.approx(expect)
    assert raw  # the file really held the entries
    bad = tmp_path / "bad" / "160_lookup_table.yaml"
    bad.parent.mkdir()
    for text, problem in (("!!python/object/apply:os.system ['echo hi']", "YAML"),
                          ("Conv-x: {mean: .nan}", "plausible"), ("Foo-x: {mean: 1}", "LUT key"),
                          ("Conv-x: {count: 3}", "no 'mean'"), ("[1, 2]", "mapping")):
        bad.write_text(text)
        with pytest.raises(FileFormatError) as err:
            read_ofa_yaml(bad)
        assert str(bad) in str(err.value) and problem in str(err.value)


def test_plan_subnets_distinct_and_prefix_stable():
    space = get_space("cifar-mbv3")
    fit, test = plan_calibration_subnets(space, [28, 32], 10, 30, seed=4)
    ids = [s.id for s in fit + test]
    assert len(set(ids)) == 40 and {s.r for s in fit + test} <= {28, 32}
    fit2, test2 = plan_calibration_subnets(space, [28, 32], 10, 50, seed=4)
    assert fit2 == fit and test2[:30] == test


def test_lock_refuses_second_writer_and_takes_over_stale(tmp_path):
    lock = tmp_path / "t.lock"
    code = ("import sys; from ofa_edge.latency.lock import table_lock\n"
            "try:\n    with table_lock(sys.argv[1]): pass\nexcept Exception as e: print(type(e).__name__, e); sys.exit(3)")
    with table_lock(lock):
        out = subprocess.run([sys.executable, "-c", code, str(lock)], capture_output=True, text=True)
        assert out.returncode == 3 and "TableLocked" in out.stdout and str(lock) in out.stdout
    assert not lock.exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    with table_lock(lock):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def _quick_local(tmp_path):
    """x86-local measuring into ``tmp_path/dev``, one round of 1 warm-up + 3 runs."""
    profile = get_device("x86-local")
    return dataclasses.replace(
        profile, device=dataclasses.replace(profile.device, work_dir=str(tmp_path / "dev")),
        benchmark=dataclasses.replace(profile.benchmark, warmup=1, repeats=3, rounds=1))


def test_a_rerun_with_nothing_to_measure_refits_a_stale_correction_and_otherwise_writes_nothing(tmp_path):
    """A table fitted by an earlier version (here: a correction that is not this version's fit) is refitted
    from its own validation subnets on the next ``profile``, without measuring; an up-to-date table is left
    byte for byte as it was."""
    profile = _quick_local(tmp_path)
    o = ProfileOptions(space="cifar-tiny", resolutions=(32,), calibrate=8, validate=2, batch_size=64,
                       tables_dir=tmp_path / "tables", cache_dir=tmp_path / "cache")
    first = profile_device(profile, o)
    paths = table_paths(o.tables_dir, "x86-local", "onnxruntime")
    fitted = load_table(paths["table"]).correction
    assert first.saved and fitted.n_fit == 8
    stale = load_table(paths["table"])
    stale.correction = Correction(scale=fitted.scale * 1.3, n_fit=fitted.n_fit)
    stale.save(paths["table"])
    again = profile_device(profile, o)
    assert (again.measured, again.refitted, again.saved) == (0, True, True)
    refit = load_table(paths["table"]).correction
    assert refit.scale == pytest.approx(fitted.scale, rel=1e-3) and refit.n_fit == fitted.n_fit
    before = paths["table"].read_bytes(), paths["validation"].read_bytes()
    third = profile_device(profile, o)
    assert (third.measured, third.refitted, third.saved) == (0, False, False)
    assert (paths["table"].read_bytes(), paths["validation"].read_bytes()) == before


def test_local_profile_resumes_after_torn_journal(tmp_path):
    profile = _quick_local(tmp_path)
    o = ProfileOptions(space="cifar-tiny", resolutions=(32,), calibrate=3, validate=2, batch_size=64,
                       tables_dir=tmp_path / "tables", cache_dir=tmp_path / "cache")
    first = profile_device(profile, o)
    paths = table_paths(o.tables_dir, "x86-local", "onnxruntime")
    table = load_table(paths["table"])
    # simulate a crash: drop 5 rows from the table, and leave a journal with a torn last line
    keep = dict(list(table.rows.items())[:-5])
    LatencyTable(keep, table.provenance, table.correction).save(paths["table"])
    paths["journal"].write_text('{"type": "result", "name": "b00', encoding="utf-8")
    (tmp_path / "dev").rename(tmp_path / "dev-gone")  # the device's own results are gone too
    again = profile_device(profile, o)
    assert again.measured == 5 and again.reused == first.n_layers - 5 + first.n_subnets
    assert list(load_table(paths["table"]).rows) == list(table.rows)


class _Stop(Exception):
    pass


def test_min_statistic_reads_the_fastest_run_over_rounds_everywhere(tmp_path):
    """With ``statistic = "min"`` the table sums each layer's fastest run over the rounds, and the whole
    subnets that fit and validate it are read the same way (x86-local's setting)."""
    profile = get_device("x86-local")
    assert profile.benchmark.statistic == "min"
    profile = dataclasses.replace(
        profile, device=dataclasses.replace(profile.device, work_dir=str(tmp_path / "dev")),
        benchmark=dataclasses.replace(profile.benchmark, warmup=1, repeats=3, rounds=2, min_span_s=0.0))
    assert profile.settings_id().endswith("|r2|min")
    o = ProfileOptions(space="cifar-tiny", resolutions=(24,), calibrate=2, validate=2, batch_size=16,
                       tables_dir=tmp_path / "tables", cache_dir=tmp_path / "cache")
    res = profile_device(profile, o)
    table = load_table(res.table)
    assert table.provenance["stat"] == "min" and table.column == "min_ms"
    runs: dict[str, list[dict]] = {}
    for f in sorted((tmp_path / "dev" / "x86-local-onnxruntime").glob("results*.jsonl")):
        for x in map(json.loads, f.read_text().splitlines()):
            if x.get("type") == "result":
                runs.setdefault(x["name"], []).append(x)
    from ofa_edge.latency.models import block_name

    space = get_space("cifar-tiny")
    for spec in enumerate_blocks(space, (24,), o.n_classes):
        got = runs[block_name(spec)]
        assert len(got) == 2
        assert table.rows[spec.lut_key()].min_ms == pytest.approx(min(x["min_ms"] for x in got), rel=1e-5)
    _, val = load_validation(res.validation)
    assert len(val) == 4
    for m in val:
        got = runs[m.name]
        assert m.measured_ms == pytest.approx(min(x["min_ms"] for x in got), rel=1e-5)
        assert m.measured_ms <= min(x["median_ms"] for x in got)  # the fastest run, not a round's median
        s = subnet_from_json(space, m.subnet)
        raw = sum(table.rows[k].min_ms for k in lut_keys(space, s, o.n_classes))
        assert m.raw_ms == pytest.approx(raw, rel=1e-5)
        assert table.predict(space, s, o.n_classes) == pytest.approx(table.correction.apply(raw, m.n_layers, s.r))


def test_pacer_starts_round_k_no_earlier_than_its_share_of_the_span():
    """Rounds of a short measurement start ``min_span_s * k / (rounds - 1)`` after the first; a slow round
    is not made up for with extra waits, and rounds recovered from the device do not delay the rest."""
    from ofa_edge.devices.session import _Pacer

    profile = dataclasses.replace(get_device("x86-local"), benchmark=dataclasses.replace(
        get_device("x86-local").benchmark, rounds=5, min_span_s=8.0))
    now = [100.0]
    slept: list[float] = []

    def sleep(s):
        slept.append(round(s, 6))
        now[0] += s

    pace = _Pacer(profile, clock=lambda: now[0], sleep=sleep)
    assert [pace.start(k) for k in range(5)] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert _Pacer(profile, rounds=3).start(2) == 8.0  # a rounds override spreads its own rounds over the span
    starts = []
    for k, took in enumerate([0.5, 3.5, 0.2, 0.2, 0.0]):
        pace(k)
        starts.append(now[0] - 100.0)
        now[0] += took
    assert starts == pytest.approx([0.0, 2.0, 5.5, 6.0, 8.0]) and slept == pytest.approx([1.5, 0.3, 1.8])
    now[0], slept[:] = 0.0, []
    pace = _Pacer(profile, clock=lambda: now[0], sleep=sleep)
    pace(3)  # rounds 0-2 were recovered: round 3 starts now, round 4 one share later
    now[0] += 0.5
    pace(4)
    assert slept == [1.5]
    unpaced = dataclasses.replace(profile, benchmark=dataclasses.replace(profile.benchmark, min_span_s=0.0))
    off = _Pacer(unpaced, clock=lambda: now[0], sleep=sleep)
    for k in range(5):
        off(k)
    assert slept == [1.5]


def test_a_one_model_measurement_spans_min_span_s(tmp_path):
    """One model measured over 3 rounds with ``min_span_s`` = 3 on the real local runner: the rounds are
    spread over at least 3 s, not run back to back (~1.3 s here; x86-local paces its 8 rounds over 10 s,
    since slow phases of this VM last seconds)."""
    import time

    from ofa_edge.devices import measure_models
    from ofa_edge.latency.models import probe_model

    assert get_device("x86-local").benchmark.min_span_s == 10.0
    profile = get_device("x86-local")
    profile = dataclasses.replace(
        profile, device=dataclasses.replace(profile.device, work_dir=str(tmp_path / "dev")),
        benchmark=dataclasses.replace(profile.benchmark, warmup=1, repeats=2, rounds=3, min_span_s=3.0))
    got: list[tuple[float, int]] = []
    t0 = time.monotonic()
    measure_models(profile, [probe_model("onnxruntime", tmp_path / "cache")],
                   lambda msg: got.append((time.monotonic(), msg["round"])))
    elapsed = time.monotonic() - t0
    assert [k for _, k in got] == [0, 1, 2] and elapsed >= 3.0
    assert got[2][0] - t0 >= 3.0  # the last round started no earlier than 3 s after the first


def test_rounds_take_the_median_over_rounds_and_resume_per_round(tmp_path):
    profile = get_device("x86-local")
    profile = dataclasses.replace(
        profile, device=dataclasses.replace(profile.device, work_dir=str(tmp_path / "dev")),
        benchmark=dataclasses.replace(profile.benchmark, warmup=1, repeats=2, rounds=3, statistic="median",
                                      min_span_s=0.0))
    assert profile.settings_id().endswith("|r3")
    o = ProfileOptions(space="cifar-tiny", resolutions=(24,), calibrate=2, validate=1, batch_size=16,
                       tables_dir=tmp_path / "tables", cache_dir=tmp_path / "cache")
    n_models = 46 + 3
    seen = []

    def stop_in_round_two(device, phase, done, total):
        if phase == "measure":
            seen.append((done, total))
            if done == n_models + 10:
                raise _Stop()

    with pytest.raises(_Stop):
        profile_device(profile, o, stop_in_round_two)
    assert seen[-1] == (n_models + 10, 3 * n_models)
    paths = table_paths(o.tables_dir, "x86-local", "onnxruntime")
    lines = [json.loads(x) for x in paths["journal"].read_text().splitlines()]
    assert sorted({x["round"] for x in lines}) == [0, 1] and len(lines) == n_models + 10
    (tmp_path / "dev").rename(tmp_path / "dev-gone")  # nothing to recover on the device: measure the rest
    res = profile_device(profile, o)
    assert res.recovered == n_models + 10 and res.measured == 2 * n_models - 10
    table = load_table(paths["table"])
    assert len(table) == 46 and all(row.repeats == 6 for row in table.rows.values())
    # each row is the median of its three rounds (journal of the first run + device files of the second)
    by_name: dict[str, list[float]] = {}
    for x in lines:
        by_name.setdefault(x["name"], []).append(x["median_ms"])
    folder = tmp_path / "dev" / "x86-local-onnxruntime"
    for f in sorted(folder.glob("results*.jsonl")):
        for x in map(json.loads, f.read_text().splitlines()):
            if x.get("type") == "result":
                by_name.setdefault(x["name"], []).append(x["median_ms"])
    from ofa_edge.latency.models import block_name

    for spec in enumerate_blocks(get_space("cifar-tiny"), (24,), o.n_classes):
        got = by_name[block_name(spec)]
        assert len(got) == 3
        # the table file keeps 6 significant digits (e.g. 0.111449 for 0.1114485003)
        assert table.rows[spec.lut_key()].median_ms == float(f"{statistics.median(got):.6g}")
