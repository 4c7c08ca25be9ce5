"""The recommended artefact: the fastest measured one whose top-1 drop is within the limit; fp32 when INT8 loses."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ofa_edge.errors import FileFormatError
from ofa_edge.export.manifest import Manifest, read_manifest, summary_row
from ofa_edge.export.recommend import recommend


def _art(key: str, precision: str, ms: float | None, status: str = "ok") -> dict:
    file = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx", "tflite": "model.tflite",
            "tflite-int8": "model.int8.tflite"}[key]
    art = {"key": key, "format": key.split("-")[0], "precision": precision, "file": file, "status": status}
    if ms is not None:
        art["measured_ms"] = ms
    return art


def test_fastest_within_the_drop_limit_wins():
    arts = [_art("onnx", "fp32", 0.40), _art("onnx-int8", "int8", 0.30), _art("tflite", "fp32", 0.35),
            _art("tflite-int8", "int8", 0.25)]
    rec = recommend(arts, {"onnx-int8": 0.6, "tflite-int8": 1.4}, max_drop=1.0)
    assert (rec["artifact"], rec["file"], rec["latency_ms"], rec["drop_points"]) == \
        ("onnx-int8", "model.int8.onnx", 0.30, 0.6)
    assert "1.40 points > 1" in rec["not_chosen"]["tflite-int8"]
    assert rec["not_chosen"]["tflite"].startswith("slower") and rec["not_chosen"]["onnx"].startswith("slower")
    # a looser limit lets the faster, less accurate file through
    assert recommend(arts, {"onnx-int8": 0.6, "tflite-int8": 1.4}, max_drop=1.5)["artifact"] == "tflite-int8"


def test_fp32_when_int8_is_slower():
    arts = [_art("tflite", "fp32", 0.070), _art("tflite-int8", "int8", 0.125)]
    rec = recommend(arts, {"tflite-int8": -0.1})
    assert rec["artifact"] == "tflite" and rec["drop_points"] == 0.0
    assert "slower: 0.125 ms" in rec["not_chosen"]["tflite-int8"]


def test_fp32_when_int8_loses_accuracy():
    arts = [_art("onnx", "fp32", 0.40), _art("onnx-int8", "int8", 0.20)]
    rec = recommend(arts, {"onnx-int8": 6.5})
    assert rec["artifact"] == "onnx" and "6.50 points" in rec["not_chosen"]["onnx-int8"]
    # an INT8 file whose accuracy was never measured is not shipped on speed alone
    assert recommend(arts, {})["artifact"] == "onnx"


def test_only_timed_working_artifacts_count():
    arts = [_art("onnx", "fp32", None), _art("onnx-int8", "int8", 0.2, status="failed")]
    assert recommend(arts, {"onnx-int8": 0.0}) is None
    assert recommend([_art("onnx", "fp32", 0.4)], {}, max_drop=0.0)["artifact"] == "onnx"


def _manifest(**kw) -> Manifest:
    return Manifest(subnet={"ks": [3], "e": [3], "d": [2], "r": 32}, subnet_id="abc", space="cifar-mbv3",
                    n_classes=10, resolution=32, input_shape=[1, 3, 32, 32], macs=1, params=1, **kw)


def test_manifest_keeps_and_validates_the_recommendation(tmp_path):
    arts = [_art("onnx", "fp32", 0.40), _art("onnx-int8", "int8", 0.30)]
    m = _manifest(artifacts=arts, top1={"fp32": 70.0, "onnx-int8": 69.5, "drop_points": {"onnx-int8": 0.5}},
                  latency_ms={"predicted": 0.4, "measured": 0.41, "artifacts": {"onnx": 0.40, "onnx-int8": 0.30}})
    m.recommended = recommend(m.artifacts, m.top1["drop_points"])
    m.write(tmp_path)
    back = read_manifest(tmp_path)
    assert back.recommended["file"] == "model.int8.onnx"
    row = summary_row(back, "x")
    assert (row["recommended"], row["recommended_ms"]) == ("model.int8.onnx", 0.30)
    data = json.loads((tmp_path / "manifest.json").read_text())
    for bad in ({"artifact": "onnx", "file": "../../etc/passwd", "latency_ms": 0.3}, {"file": "model.onnx"}, "onnx"):
        (tmp_path / "manifest.json").write_text(json.dumps({**data, "recommended": bad}))
        with pytest.raises(FileFormatError, match="recommended"):
            read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({**data, "latency_ms": {"artifacts": {"onnx": -1}}}))
    with pytest.raises(FileFormatError, match="latency_ms.artifacts"):
        read_manifest(tmp_path)


def test_targets_toml_max_drop(tmp_path):
    from ofa_edge.pipelines.build import load_targets

    path = tmp_path / "targets.toml"
    head = 'format = "ofa-edge-targets/1"\ncheckpoint = "c.pt"\nmeasure = true\ndevices = ["x86-local"]\n' \
           'budgets = ["1ms"]\n'
    path.write_text(head + 'max_drop = 0.5\n[[target]]\ndevice = "x86-local"\nbudget = "2ms"\nmax_drop = 2\n')
    spec = load_targets(path)
    assert [(t.measure, t.max_drop) for t in spec.targets] == [(True, 0.5), (True, 2.0)]
    # a changed limit rebuilds the target instead of resuming it
    first = spec.targets[0]
    assert first.settings_key() != dataclasses.replace(first, max_drop=1.0).settings_key()
    for bad in ("-1", '"1.0"', "true"):
        path.write_text(head + f"max_drop = {bad}\n")
        with pytest.raises(FileFormatError, match="max_drop must be a top-1 drop"):
            load_targets(path)
