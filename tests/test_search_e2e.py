"""``predictor fit`` -> ``specialize`` -> ``pareto`` end to end: a tiny trained supernet, a real x86-local table."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa_edge.cli import main
from ofa_edge.devices import get_device
from ofa_edge.latency import ProfileOptions, load_table, profile_device, table_paths
from ofa_edge.search import EvolutionConfig, load_predictor, read_accuracy_csv
from ofa_edge.pipelines import SpecializeRequest, fit_from_checkpoint, specialize
from ofa_edge.space import layers, subnet_from_dict
from ofa_edge.supernet import StaticMobileNetV3, load_supernet
from ofa_edge.train import TrainConfig, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    cfg = TrainConfig(space="cifar-tiny", out=str(root / "run"), epochs=2, batch_size=25, steps_per_epoch=3,
                      bn_images=50, eval_every=0, lr=0.2, dropout=0.0, strategy="sandwich")
    train(cfg)
    profile = get_device("x86-local")
    profile = dataclasses.replace(
        profile, device=dataclasses.replace(profile.device, work_dir=str(root / "dev")),
        benchmark=dataclasses.replace(profile.benchmark, warmup=1, repeats=3))
    opts = ProfileOptions(space="cifar-tiny", n_classes=10, calibrate=3, validate=0, batch_size=64,
                          tables_dir=root / "tables", cache_dir=root / "cache")
    profile_device(profile, opts)
    info = fit_from_checkpoint(root / "run" / "supernet.pt", 12, bn_images=50, epochs=30)
    return root, info


@pytest.mark.slow
def test_predictor_fit_writes_rows_and_predictor(run):
    root, info = run
    ckpt = root / "run" / "supernet.pt"
    net = load_supernet(ckpt)
    rows = read_accuracy_csv(root / "run" / "accuracy.csv", net.space)
    assert len(rows) == 12 and info["evaluated"] == 12 and {r.split for r in rows} == {"val"}
    assert all(0.0 <= r.top1 <= 100.0 for r in rows)
    pred = load_predictor(root / "run" / "predictor.pt", net.space)
    assert pred.meta["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    # resuming with more samples measures only the new ones
    again = fit_from_checkpoint(ckpt, 14, bn_images=50, epochs=5)
    assert (again["evaluated"], again["skipped"]) == (2, 12)


def test_specialize_writes_a_manifest_whose_files_exist_and_match(run):
    root, _ = run
    ckpt = root / "run" / "supernet.pt"
    table = load_table(table_paths(root / "tables", "x86-local", "onnxruntime")["table"])
    net = load_supernet(ckpt)
    from ofa_edge.search import SearchSetup

    lo = SearchSetup.build(net.space, 10, latency=lambda subs: [table.predict(net.space, s, 10) for s in subs])
    fastest, slowest = lo.latency.minimum()[0], lo.latency.maximum()[0]
    budgets = [fastest + 0.3 * (slowest - fastest), slowest]
    manifests = specialize(SpecializeRequest(ckpt, "x86-local", budgets, out=root / "builds",
                                             tables_dir=root / "tables", bn_images=50,
                                             config=EvolutionConfig(population=30, generations=30)))
    assert [m["budget_ms"] for m in manifests] == sorted(budgets)
    for m in manifests:
        folder = root / "builds" / "x86-local" / f"{m['budget_ms']:g}ms"
        on_disk = json.loads((folder / "manifest.json").read_text())
        assert on_disk["format"] == "ofa-edge-manifest/1" and on_disk["subnet_id"] == m["subnet_id"]
        assert on_disk["status"] == "ok" and on_disk["extra"]["budget_ms"] == m["budget_ms"]
        names = {f["path"] for f in on_disk["files"]}
        assert names == {"subnet.json", "model.pt", "model.onnx"}
        for f in on_disk["files"]:
            data = (folder / f["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
        subnet = subnet_from_dict(net.space, on_disk["subnet"])
        assert on_disk["latency_ms"]["predicted"] <= m["budget_ms"]
        assert on_disk["latency_ms"]["predicted"] == pytest.approx(table.predict(net.space, subnet, 10))
        assert 0.0 <= on_disk["top1"]["measured"] <= 100.0 and on_disk["top1"]["split"] == "test"
        assert on_disk["extra"]["checkpoint"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
        # the saved static model and the ONNX file compute the same function
        static = StaticMobileNetV3(layers(net.space, subnet, 10))
        static.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
        static.eval()
        import onnxruntime as ort

        x = torch.randn(2, 3, subnet.r, subnet.r)
        sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        got = sess.run(["output"], {"input": x.numpy()})[0]
        assert np.allclose(got, static(x).detach().numpy(), atol=1e-4)
    # a looser budget never picks a subnet predicted to be less accurate
    assert manifests[1]["top1"]["predicted"] >= manifests[0]["top1"]["predicted"] - 1e-6


def test_latency_margin_searches_below_the_budget_and_builds_for_the_budget(run, capsys):
    """``--latency-margin 20``: the subnet is predicted within 80 % of the budget; folder, manifest and
    summary still name the budget the user gave."""
    root, _ = run
    table = load_table(table_paths(root / "tables", "x86-local", "onnxruntime")["table"])
    net = load_supernet(root / "run" / "supernet.pt")
    from ofa_edge.search import SearchSetup

    setup = SearchSetup.build(net.space, 10, latency=lambda subs: [table.predict(net.space, s, 10) for s in subs])
    fastest, slowest = setup.latency.minimum()[0], setup.latency.maximum()[0]
    budget = round(fastest + 0.6 * (slowest - fastest), 4)
    capsys.readouterr()
    assert main(["specialize", "--checkpoint", str(root / "run" / "supernet.pt"), "--device", "x86-local",
                 "--tables", str(root / "tables"), "--out", str(root / "margin"), "--latency", f"{budget}ms",
                 "--latency-margin", "20", "--export", "pt", "--generations", "30", "--bn-images", "50",
                 "--json"]) == 0
    (m,) = json.loads(capsys.readouterr().out)
    lat = m["latency_ms"]
    assert m["budget_ms"] == budget and m["extra"]["budget_ms"] == budget
    assert Path(m["folder"]) == root / "margin" / "x86-local" / f"{budget:g}ms"
    assert lat["margin_pct"] == 20 and lat["searched_within"] == pytest.approx(0.8 * budget)
    assert lat["predicted"] <= 0.8 * budget
    subnet = subnet_from_dict(net.space, m["subnet"])
    assert lat["predicted"] == pytest.approx(table.predict(net.space, subnet, 10))


def test_cli_last_sampled_and_pareto(run, capsys):
    root, _ = run
    ckpt = root / "run" / "supernet.pt"
    common = ["--checkpoint", str(ckpt), "--device", "x86-local", "--tables", str(root / "tables")]
    code = main(["specialize", *common, "--latency", "1000ms", "--selector", "last-sampled", "--export", "pt",
                 "--out", str(root / "ls"), "--bn-images", "20", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    m = json.loads(out)[0]
    with open(root / "run" / "sampled.csv") as fh:
        rows = list(csv.DictReader(fh))
    newest = max(int(r["last_iteration"]) for r in rows)
    assert m["selector"] == "last-sampled"
    assert any(r["id"] == m["subnet_id"] and int(r["last_iteration"]) == newest for r in rows)
    code = main(["pareto", *common, "--out", str(root / "pareto"), "--random", "30", "--generations", "20",
                 "--population", "20", "--builds", str(root / "ls"), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    info = json.loads(out)
    assert (root / "pareto" / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(root / "pareto" / "pareto.csv") as fh:
        kinds = [r["kind"] for r in csv.DictReader(fh)]
    assert kinds.count("front") == len(info["front"]) >= 1 and kinds.count("measured") == info["n_measured"] >= 12
    with open(root / "pareto" / "pareto.csv") as fh:  # the build above is marked with its test top-1
        (built,) = [r for r in csv.DictReader(fh) if r["kind"] == "built"]
    assert info["n_built"] == 1 and built["subnet_id"] == m["subnet_id"] and float(built["budget_ms"]) == 1000
    assert float(built["measured_top1"]) == pytest.approx(m["top1"]["fp32"], abs=1e-4)
    lat = [p["latency_ms"] for p in info["front"]]
    acc = [p["predicted_top1"] for p in info["front"]]
    assert lat == sorted(lat) and acc == sorted(acc)


@pytest.mark.parametrize("extra,message", [
    (["--latency", "abc"], "--latency: 'abc' is not a positive latency"),
    (["--latency", "-5ms"], "'-5ms' is not a positive latency"),
    (["--latency", "0"], "'0' is not a positive latency"),
    (["--latency", "0.001ms"], "the fastest achievable is"),
    (["--latency", "20ms", "--device", "no-such-device"], "unknown device 'no-such-device'"),
    (["--latency", "20ms", "--device", "raspberry-pi-4"], "ofa-edge profile --device raspberry-pi-4"),
    (["--latency", "20ms", "--selector", "greedy"], "greedy"),
    (["--latency", "20ms", "--int8-float-stages", "1,x"], "--int8-float-stages: '1,x': give whole numbers"),
    (["--latency", "20ms", "--latency-margin", "100"], "--latency-margin: 100 is not a percentage of the budget"),
])
def test_bad_inputs_exit_2(run, capsys, extra, message):
    root, _ = run
    args = ["specialize", "--checkpoint", str(root / "run" / "supernet.pt"), "--device", "x86-local",
            "--tables", str(root / "tables"), "--out", str(root / "bad"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()), err
    assert "Traceback" not in err


def test_predictor_of_another_run_is_refused(run, capsys, tmp_path):
    root, _ = run
    other = tmp_path / "other"
    shutil.copytree(root / "run", other)
    net = load_supernet(other / "supernet.pt")
    from ofa_edge.supernet import save_supernet

    with torch.no_grad():
        net.classifier.heads[0].linear.bias.add_(0.1)  # another run's weights
    save_supernet(net, other / "supernet.pt")
    assert main(["specialize", "--checkpoint", str(other / "supernet.pt"), "--device", "x86-local",
                 "--tables", str(root / "tables"), "--latency", "1000ms", "--predictor",
                 str(root / "run" / "predictor.pt"), "--out", str(tmp_path / "b")]) == 2
    assert "fit on another checkpoint" in " ".join(capsys.readouterr().err.split())


def test_cli_build_matrix_builds_both_and_fails_the_impossible_target(run, capsys):
    root, _ = run
    net = load_supernet(root / "run" / "supernet.pt")
    table = load_table(table_paths(root / "tables", "x86-local", "onnxruntime")["table"])
    from ofa_edge.search import SearchSetup

    setup = SearchSetup.build(net.space, 10, latency=lambda subs: [table.predict(net.space, s, 10) for s in subs])
    fastest, slowest = setup.latency.minimum()[0], setup.latency.maximum()[0]
    budgets = [round(fastest + 0.5 * (slowest - fastest), 4), round(slowest + 0.01, 4)]
    (root / "targets.toml").write_text(
        'format = "ofa-edge-targets/1"\ncheckpoint = "run/supernet.pt"\ntables = "tables"\nout = "matrix"\n'
        f'formats = ["onnx"]\nquantize = true\ndevices = ["x86-local"]\n'
        f'budgets = ["{budgets[0]}ms", "{budgets[1]}ms"]\n'
        '[[target]]\ndevice = "x86-local"\nbudget = "0.000001ms"\n')
    code = main(["build", str(root / "targets.toml"), "--json"])
    out = capsys.readouterr()
    assert code == 1 and json.loads(out.out)["failed"] == ["x86-local/1e-06ms"]
    assert "1 target(s) failed: x86-local/1e-06ms" in out.err
    summary = list(csv.DictReader(open(root / "matrix" / "summary.csv")))
    ok = [r for r in summary if r["status"] == "ok"]
    assert len(ok) == 2 and sorted(float(r["budget_ms"]) for r in ok) == sorted(budgets)
    for row in ok:
        manifest = json.loads((root / "matrix" / row["folder"] / "manifest.json").read_text())
        names = {f["path"] for f in manifest["files"]}
        assert {"model.onnx", "model.int8.onnx", "subnet.json"} <= names
        assert "onnx-int8" in manifest["top1"]["drop_points"]
        assert manifest["latency_ms"]["predicted"] <= manifest["extra"]["budget_ms"]


def test_specialize_as_typed_uses_the_workspace_supernet_and_every_table(run, capsys, tmp_path, monkeypatch):
    """`ofa-edge use CKPT` then `ofa-edge specialize --latency ...` with no --checkpoint and no --device."""
    root, _ = run
    monkeypatch.chdir(tmp_path)
    shutil.copytree(root / "tables", tmp_path / "latency_tables")
    assert main(["use", str(root / "run" / "supernet.pt")]) == 0
    capsys.readouterr()
    code = main(["specialize", "--latency", "1000ms", "--selector", "last-sampled", "--export", "pt",
                 "--bn-images", "20", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    manifests = json.loads(out)
    assert [m["device"] for m in manifests] == ["x86-local"]
    assert (tmp_path / "builds" / "x86-local").is_dir()
    assert all((tmp_path / m["folder"] / "manifest.json").is_file() for m in manifests)
    said = " ".join(err.split())
    assert f"supernet {root / 'run' / 'supernet.pt'} (from ofa-edge.toml)" in said and "device x86-local" in said
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["supernet"]["source"] == "ofa-edge.toml" and status["supernet"]["exists"]
    assert status["predictor"].endswith("predictor.pt")
    assert [t["device"] for t in status["tables"]] == ["x86-local"] and len(status["builds"]) == 1
    # an explicit flag wins over the workspace file
    assert main(["specialize", "--checkpoint", str(tmp_path / "nope.pt"), "--latency", "1000ms"]) == 2
    assert "nope.pt" in capsys.readouterr().err


def test_a_predictor_given_as_checkpoint_is_named(run, capsys):
    root, _ = run
    assert main(["specialize", "--checkpoint", str(root / "run" / "predictor.pt"), "--device", "x86-local",
                 "--tables", str(root / "tables"), "--latency", "1000ms"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "this is a predictor file, not a supernet checkpoint" in err and "Traceback" not in err


def test_numbers_from_another_machines_table_are_labelled(run, capsys, tmp_path):
    """specialize and pareto print whose table their latencies come from, flagging another machine's."""
    root, _ = run
    tables = tmp_path / "tables"
    shutil.copytree(root / "tables", tables)
    csv_path = tables / "x86-local" / "onnxruntime.csv"
    text = csv_path.read_text()
    host = json.loads(text.split("# provenance:", 1)[1].splitlines()[0])["hostname"]
    csv_path.write_text(text.replace(f'"hostname": "{host}"', '"hostname": "lab-box-7"', 1))
    common = ["--checkpoint", str(root / "run" / "supernet.pt"), "--device", "x86-local", "--tables", str(tables)]
    assert main(["specialize", *common, "--latency", "1000ms", "--selector", "last-sampled", "--export", "pt",
                 "--out", str(tmp_path / "b"), "--bn-images", "20"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "ms pred for x86-local: table measured on lab-box-7 (" in out and "[another machine" in out
    manifest = json.loads(next((tmp_path / "b" / "x86-local").glob("*/manifest.json")).read_text())
    assert manifest["latency_ms"]["table_measured_on"].startswith("table measured on lab-box-7 (")
    assert main(["pareto", *common, "--out", str(tmp_path / "p"), "--random", "10", "--generations", "5",
                 "--population", "10"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "latency (ms): table measured on lab-box-7 (" in out and "[another machine" in out


def _quick_x86_local(devices: Path, work_dir: Path, rounds: int, monkeypatch) -> None:
    """An ``x86-local`` profile in ``devices`` (found first through OFA_EDGE_DEVICES) with quick settings."""
    devices.mkdir(exist_ok=True)
    (devices / "x86-local.toml").write_text(
        'format = 1\nname = "x86-local"\n[connection]\ntransport = "local"\n'
        f'[device]\npython = "current"\nwork_dir = "{work_dir}"\n'
        f'[runtime]\nname = "onnxruntime"\n[benchmark]\nwarmup = 2\nrepeats = 10\nthreads = 1\nrounds = {rounds}\n')
    monkeypatch.setenv("OFA_EDGE_DEVICES", str(devices))


def test_measured_build_times_every_artifact_and_recommends_the_fastest_within_the_drop(run, capsys, monkeypatch):
    root, _ = run
    _quick_x86_local(root / "devices", root / "measure-dev", 3, monkeypatch)
    (root / "measured.toml").write_text(
        'format = "ofa-edge-targets/1"\ncheckpoint = "run/supernet.pt"\ntables = "tables"\nout = "measured"\n'
        'formats = ["onnx"]\nquantize = true\nmeasure = true\nmax_drop = 100.0\ndevices = ["x86-local"]\n'
        'budgets = ["1000ms"]\nint8_float_stages = [0, 2]\n')
    assert main(["build", str(root / "measured.toml"), "--json"]) == 0, capsys.readouterr().err
    (row,) = csv.DictReader(open(root / "measured" / "summary.csv"))
    manifest = json.loads((root / "measured" / row["folder"] / "manifest.json").read_text())
    timed = manifest["latency_ms"]["artifacts"]
    assert set(timed) == {"onnx", "onnx-int8", "onnx-int8-f2"} and all(0 < v < 1000 for v in timed.values())
    stages = {a["key"]: a["int8_float"]["stages"] for a in manifest["artifacts"] if "int8_float" in a}
    assert stages == {"onnx-int8": 0, "onnx-int8-f2": 2}
    assert {a["key"]: a["measured_ms"] for a in manifest["artifacts"]} == timed
    rec = manifest["recommended"]
    # any drop is allowed here, so the recommendation is simply the faster file as measured on the device
    fastest = min(timed, key=timed.get)
    assert rec["artifact"] == fastest and rec["latency_ms"] == timed[fastest] and rec["max_drop_points"] == 100.0
    assert (row["recommended"], float(row["recommended_ms"])) == (rec["file"], timed[fastest])
    assert (root / "measured" / row["folder"] / rec["file"]).is_file()


def test_meet_when_measured_searches_again_within_budget_times_predicted_over_measured():
    """A device 25 % slower than the committed x86-local table says: the largest subnet predicted within the
    budget measures over it, the search runs again within budget x predicted / measured (1 % less) and the
    second pick meets the budget; with no retries the first pick is kept; an impossible bound keeps the last
    pick and says why."""
    from ofa_edge.pipelines.specialization import meet_when_measured
    from ofa_edge.search import SearchSetup
    from ofa_edge.search.select import select
    from ofa_edge.space import get_space

    space = get_space("cifar-mbv3")
    tables = Path(__file__).resolve().parents[1] / "latency_tables"
    table = load_table(table_paths(tables, "x86-local", "onnxruntime")["table"])
    setup = SearchSetup.build(space, 10, None, lambda subs: [table.predict(space, s, 10) for s in subs])
    config = EvolutionConfig(population=30, generations=30)  # no predictor: the most MACs within the bound

    def search(bound):
        return select(setup, "evolution", latency_ms=bound, config=config)

    def device(subnet):
        return 1.25 * table.predict(space, subnet, 10), "measured on the device"

    budget = 0.45
    first = search(budget)
    res, pick = meet_when_measured(setup, first, budget, 2, search, device)
    a = pick.attempts
    assert len(a) == 2 and a[0]["measured"] > budget >= a[1]["measured"] == pick.measured_ms
    assert a[1]["searched_within"] == pytest.approx(budget * a[0]["predicted"] / a[0]["measured"] * 0.99)
    assert a[1]["predicted"] <= a[1]["searched_within"]
    assert subnet_from_dict(space, a[1]["subnet"]) == res.best.subnet
    assert "pick 2 of 2" in pick.note
    kept, once = meet_when_measured(setup, first, budget, 0, search, device)
    assert kept.best.subnet == first.best.subnet and once.attempts == [] and once.measured_ms > budget
    slow, stuck = meet_when_measured(setup, first, budget, 2, search, lambda s: (10 * budget, "measured"))
    assert slow.best.subnet == first.best.subnet and len(stuck.attempts) == 1
    assert "no subnet is predicted within" in stuck.note and stuck.measured_ms == 10 * budget
    assert "still over budget after 0 new search(es)" in once.note


def test_specialize_measure_records_every_attempt_and_refuses_bad_retries(run, capsys, monkeypatch):
    """On the real device with a table that predicts half the latency and a budget only the fastest subnets
    meet by it: the first pick runs over; every pick searched again was measured over the budget, each bound
    is budget x predicted / measured (1 % less), the manifest keeps the last and says it is over budget."""
    root, _ = run
    _quick_x86_local(root / "devices-retry", root / "retry-dev", 2, monkeypatch)
    table = load_table(table_paths(root / "tables", "x86-local", "onnxruntime")["table"])
    c = table.correction
    table.correction = dataclasses.replace(c, scale=0.5 * c.scale, per_layer=0.5 * c.per_layer,
                                           offset=0.5 * c.offset)
    low = table_paths(root / "tables-low", "x86-local", "onnxruntime")["table"]
    low.parent.mkdir(parents=True)
    table.save(low)
    net = load_supernet(root / "run" / "supernet.pt")
    from ofa_edge.search import SearchSetup

    setup = SearchSetup.build(net.space, 10, latency=lambda subs: [table.predict(net.space, s, 10) for s in subs])
    # by the halved table the fastest subnets fit; on the device even the fastest runs ~2x that: the first
    # pick is over budget whatever the predictor prefers
    budget = round(1.3 * setup.latency.minimum()[0], 4)
    common = ["specialize", "--checkpoint", str(root / "run" / "supernet.pt"), "--device", "x86-local",
              "--tables", str(root / "tables-low"), "--latency", f"{budget}ms", "--export", "pt", "--measure",
              "--generations", "30", "--bn-images", "20", "--json"]
    capsys.readouterr()
    assert main([*common, "--out", str(root / "retry"), "--retries", "3"]) == 0
    (m,) = json.loads(capsys.readouterr().out)
    lat = m["latency_ms"]
    attempts = lat["attempts"]
    assert attempts[0]["measured"] > budget
    for before, after in zip(attempts, attempts[1:]):
        assert before["measured"] > budget  # only an over-budget pick is searched again
        assert after["searched_within"] == pytest.approx(
            min(budget * before["predicted"] / before["measured"], before["searched_within"]) * 0.99)
        assert after["predicted"] <= after["searched_within"]
    assert attempts[-1]["subnet"] == m["subnet"] and attempts[-1]["measured"] == lat["measured"]
    assert lat["searched_within"] == attempts[-1]["searched_within"] and len(attempts) <= 4
    assert lat["measured"] > budget and "over budget" in lat["note"]
    assert main([*common, "--out", str(root / "retry-bad"), "--retries", "-1"]) == 2
    assert "retries: -1" in capsys.readouterr().err


def _cli(args: list[str], cwd) -> subprocess.CompletedProcess:
    """``ofa-edge ARGS`` in a child process (its fds 1/2 are the pipes a terminal would be)."""
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-m", "ofa_edge", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=1200, env={**os.environ, "PYTHONPATH": str(root)})


@pytest.mark.slow
def test_specialize_with_every_converter_keeps_the_terminal_clean(run, tmp_path):
    """TFLite, CoreML and INT8 converters print ~30 KB; the terminal gets one line per artefact instead."""
    pytest.importorskip("litert_torch")
    pytest.importorskip("coremltools")
    root, _ = run
    args = ["specialize", "--checkpoint", str(root / "run" / "supernet.pt"), "--device", "x86-local",
            "--tables", str(root / "tables"), "--latency", "1000ms", "--selector", "last-sampled",
            "--bn-images", "20", "--export", "onnx,tflite,coreml", "--quantize", "int8", "--out", "builds"]
    out = _cli(args, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stderr.splitlines()
    assert len(lines) <= 40, out.stderr[-3000:]
    for noise in ("absl", "Running Calibration", "MIL", "XNNPACK delegate", "Warning:"):
        assert noise not in out.stderr
    folder = tmp_path / "builds" / "x86-local" / "1000ms"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    logged = {a["key"]: a["log"] for a in manifest["artifacts"] if "log" in a}
    assert {"tflite", "tflite-int8", "coreml", "coreml-int8"} <= set(logged)
    for key, log in logged.items():
        text = (folder / log["file"]).read_text()
        artefact = next(a["file"] for a in manifest["artifacts"] if a["key"] == key)
        assert text.strip() and log["file"] == f"logs/{artefact}.log"
        line = next(x for x in lines if x.startswith(f"{key}: "))
        assert line == f"{key}: {log['warnings']} warning{'s' * (log['warnings'] != 1)}, log in " \
                       f"builds/x86-local/1000ms/{log['file']}"
    assert "Converting PyTorch Frontend" in (folder / "logs" / "model.mlpackage.log").read_text()
    # --verbose streams the converters' output instead and keeps no logs
    out = _cli([*args[:-6], "--export", "coreml", "--out", "loud", "--verbose"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Converting PyTorch Frontend" in out.stderr
    assert not (tmp_path / "loud" / "x86-local" / "1000ms" / "logs").exists()
