"""``ofa-edge demo`` end to end on a tiny budget: every artefact exists and agrees with the others."""

from __future__ import annotations

import hashlib
import json

import pytest

from ofa_edge.cli import main
from ofa_edge.pipelines import DemoConfig, collect_rows, run_demo
from ofa_edge.export.manifest import sha256_path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    cfg = DemoConfig(out=str(out), minutes=0.2, space="cifar-tiny", steps_per_epoch=4, batch_size=32, budgets=2,
                     predictor_samples=10, bn_images=64, warmup=1, repeats=3, calibrate=4, validate=4,
                     formats=("pt", "onnx"))
    stages = []
    result = run_demo(cfg, lambda stage, done, total, note: stages.append(stage))
    return out, cfg, result, stages


def test_demo_writes_every_artefact_consistently(demo):
    out, cfg, result, stages = demo
    assert [s for s in dict.fromkeys(stages)] == ["plan", "train", "profile", "predictor", "specialize", "report"]
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
    out, _, result, _ = demo
    assert main(["report", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [r.__dict__ | {"files": list(r.files)}
                                                   for r in collect_rows(out)]
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    for row in result["rows"]:
        assert row["subnet_id"] in text


def test_demo_refuses_other_settings_in_the_same_folder(demo):
    out, cfg, _, _ = demo
    with pytest.raises(Exception, match="other settings"):
        run_demo(DemoConfig(**{**cfg.__dict__, "budgets": 3}))
    assert main(["report", str(out / "nope")]) == 2
