"""``ofa-edge demo`` end to end on a tiny budget: every artefact exists and agrees with the others."""

from __future__ import annotations

import hashlib
import json

import pytest

from ofa_edge.cli import main
from ofa_edge.pipelines import DemoConfig, collect_rows, read_summary, run_demo, summary_lines
from ofa_edge.export.manifest import sha256_path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    cfg = DemoConfig(out=str(out), minutes=0.2, space="cifar-tiny", steps_per_epoch=4, batch_size=32, budgets=2,
                     predictor_samples=10, bn_images=64, warmup=1, repeats=3, calibrate=4, validate=4,
                     formats=("pt", "onnx"), from_scratch=True,
                     chance_margin=-100.0)  # these tests check the artefacts; the quality check has its own test
    stages = []
    result = run_demo(cfg, lambda stage, done, total, note: stages.append(stage))
    return out, cfg, result, stages


@pytest.mark.slow
def test_demo_writes_every_artefact_consistently(demo):
    out, cfg, result, stages = demo
    assert [s for s in dict.fromkeys(stages)] == ["plan", "train", "check", "profile", "predictor", "specialize",
                                                       "report"]
    for name in ("run/supernet.pt", "run/sampled.csv", "run/metrics.csv", "run/accuracy.csv", "run/predictor.pt",
                 "latency_tables/x86-local/onnxruntime.csv", "latency_tables/x86-local/onnxruntime.validation.csv",
                 "builds/summary.csv", "pareto.csv", "report.json"):
        assert (out / name).is_file(), name
    for png in ("pareto.png", "lut_scatter.png"):
        data = (out / png).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 2000
    manifests = sorted((out / "builds").rglob("manifest.json"))
    assert len(manifests) == cfg.budgets == len(result["budgets_ms"])
    rows = {r["folder"]: r for r in result["rows"]}
    for path in manifests:
        m = json.loads(path.read_text())
        assert m["status"] == "ok"
        for f in m["files"]:
            assert sha256_path(path.parent / f["path"]) == f["sha256"]
        assert {f["path"] for f in m["files"]} >= {"subnet.json", "model.pt", "model.onnx", "model.int8.onnx"}
        row = rows[str(path.parent.relative_to(out / "builds"))]
        assert row["subnet_id"] == m["subnet_id"] and row["macs"] == m["macs"]
        assert row["top1_fp32"] == m["top1"]["fp32"] and row["top1_int8"] == m["top1"]["onnx-int8"]
        assert row["predicted_ms"] == m["latency_ms"]["predicted"] <= m["extra"]["budget_ms"]
        assert m["latency_ms"]["measured"] is not None and m["latency_ms"]["measured"] > 0
        assert 0 <= m["top1"]["fp32"] <= 100
    assert json.loads((out / "report.json").read_text())["rows"] == result["rows"]


def test_demo_resumes_without_redoing_work(demo):
    out, cfg, result, _ = demo
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "builds").rglob("model.onnx")}
    ckpt = (out / "run" / "supernet.pt").stat().st_mtime_ns
    again = run_demo(cfg)
    assert (out / "run" / "supernet.pt").stat().st_mtime_ns == ckpt
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "builds").rglob("model.onnx")} == before
    assert again["predictor"]["evaluated"] == 0 and again["rows"] == result["rows"]


def test_report_command_prints_the_table_from_disk(demo, capsys):
    out, cfg, result, _ = demo
    assert main(["report", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [r.__dict__ | {"files": list(r.files)}
                                                   for r in collect_rows(out)]
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    for row in result["rows"]:
        assert row["subnet_id"] in text
    # everything the demo printed under its table, from the files alone
    lines = text.splitlines()
    lut, pred = result["lut_metrics"], result["predictor"]
    assert f"latency table: {lut['n']} held-out subnets, MAPE {lut['mape']:.2f} %" in text
    assert f"accuracy predictor: {pred['rows']} subnets, held-out RMSE {pred['rmse']:.2f} points" in text
    q = result["quality"]
    assert f"max subnet {q['max_top1']:.1f} % on the {q['split']} split" in text
    assert f"plots: {result['pareto_png']}, {result['lut_scatter_png']}" in text
    assert lines[-4:] == summary_lines(read_summary(out))  # the last (resumed) run's time
    assert "ofa-edge demo: cifar-tiny on x86-local" in text  # the demo's title, not a generic one


def test_demo_refuses_a_model_near_chance_and_replans(tmp_path, monkeypatch, capsys):
    import ofa_edge.pipelines.demo as demo_module

    # a CPU so busy that the timing probe says a step takes 20 s: the plan gets one training step
    monkeypatch.setattr(demo_module, "probe_step_seconds", lambda cfg: 20.0)
    args = ["demo", "--from-scratch", "--space", "cifar-tiny", "--minutes", "0.1", "--out", str(tmp_path / "d")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "near chance" in err and "too few training steps (1 planned" in err and "CPU was busy" in err
    plan = json.loads((tmp_path / "d" / "demo_plan.json").read_text())
    assert plan["failed"].startswith("max subnet") and plan["epochs"] * plan["steps_per_epoch"] == 1
    assert not (tmp_path / "d" / "builds").exists()  # nothing was presented
    notes = []
    cfg = DemoConfig(out=str(tmp_path / "d"), minutes=0.1, space="cifar-tiny", from_scratch=True)
    with pytest.raises(demo_module.DemoQualityError):  # the same settings again: re-planned, not reprinted
        run_demo(cfg, lambda stage, done, total, note: notes.append(note))
    assert "re-planning: the last run failed its quality check" in " ".join(notes)
    notes.clear()
    with pytest.raises(demo_module.DemoQualityError):
        run_demo(DemoConfig(**{**cfg.__dict__, "budgets": 2}), lambda stage, done, total, note: notes.append(note))
    assert "re-planning: the settings changed" in " ".join(notes)


def test_report_of_a_missing_folder_is_a_user_error(demo):
    out, _, _, _ = demo
    assert main(["report", str(out / "nope")]) == 2


def test_the_packaged_supernet_is_checked_on_the_test_split(tmp_path):
    """The embedded validation images are training images of the packaged supernet: its check uses test images."""
    import ofa_edge.pipelines.demo as demo_module
    from ofa_edge.pipelines.checkpoint import open_run
    from ofa_edge.pretrained import get_pretrained
    from ofa_edge.space import max_subnet
    from ofa_edge.train.evaluate import evaluate_subnet

    pack = get_pretrained("cifar10-mbv3")
    cfg = DemoConfig(out=str(tmp_path), bn_images=64)
    quality = demo_module.check_quality(pack.checkpoint, cfg, tmp_path, {"source": "pretrained"})
    run = open_run(pack.checkpoint)
    test = evaluate_subnet(run.net, max_subnet(run.space), run.task(), bn_images=64, split="test")["top1"]
    assert quality["split"] == "test" and quality["max_top1"] == round(test, 2)
    assert quality["max_top1"] > quality["chance"] + 50
    scratch = demo_module.check_quality(pack.checkpoint, cfg, tmp_path, {"source": "scratch"})
    assert scratch["split"] == "validation"
