"""build_target, manifests, targets.toml and the resumable build matrix (real exporters, tiny subnets)."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa_edge.errors import FileFormatError, InvalidValueError
from ofa_edge.export import BuildError, build_target, read_manifest
from ofa_edge.export.build import plan
from ofa_edge.export.manifest import MANIFEST_FORMAT, sha256_path
from ofa_edge.pipelines.build import Target, TargetsFile, load_targets, run_matrix
from ofa_edge.export.onnx import OnnxRunner, read_metadata
from ofa_edge.space import get_space, max_subnet, min_subnet
from ofa_edge.supernet import OFAMobileNetV3

SPACE = get_space("cifar-tiny")


def _static(subnet, seed=0):
    torch.manual_seed(seed)
    net = OFAMobileNetV3(SPACE, 10)
    net.set_subnet(subnet)
    return net.get_active_subnet().eval()


def _images(n, r, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, 3, r, r)).astype(np.float32))


def test_build_target_onnx_manifest_files_and_metadata(tmp_path):
    subnet = min_subnet(SPACE)
    model = _static(subnet)
    x, y = _images(40, subnet.r, 1), np.arange(40) % 10
    m = build_target(model, subnet, SPACE, 10, tmp_path, formats=["onnx"], quantize=True,
                     calibration_images=_images(32, subnet.r), eval_data=(x, y),
                     extra_manifest={"device": "d"}, latency_ms={"predicted": 1.5})
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["format"] == MANIFEST_FORMAT and on_disk["status"] == "ok" and m.ok
    assert on_disk["subnet"] == subnet.to_dict() and on_disk["resolution"] == subnet.r
    assert on_disk["latency_ms"] == {"predicted": 1.5, "measured": None}
    assert on_disk["versions"]["torch"] == metadata.version("torch")
    assert on_disk["versions"]["onnxruntime"] == metadata.version("onnxruntime")
    assert {f["path"] for f in on_disk["files"]} == {"model.onnx", "model.int8.onnx"}
    for f in on_disk["files"]:
        data = (tmp_path / f["path"]).read_bytes()
        assert f["bytes"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
    # top-1 from an independent computation with PyTorch
    with torch.no_grad():
        ref = model(x).numpy()
    assert on_disk["top1"]["fp32"] == pytest.approx(100.0 * float((ref.argmax(1) == y).mean()))
    art = {a["key"]: a for a in on_disk["artifacts"]}
    assert art["onnx"]["parity"]["passed"] and art["onnx"]["parity"]["max_abs_diff"] < 1e-4
    assert art["onnx-int8"]["top1"] == on_disk["top1"]["onnx-int8"]
    meta = read_metadata(tmp_path / "model.onnx")
    assert json.loads(meta["subnet"]) == subnet.to_dict() and meta["ofa_edge_version"]
    # dynamic batch, named input/output
    runner = OnnxRunner(tmp_path / "model.onnx")
    assert runner.input_name == "input" and runner.output_name == "output"
    assert runner.session.run(None, {"input": x[:5].numpy()})[0].shape == (5, 10)
    assert read_manifest(tmp_path).subnet_id == subnet.id


@pytest.mark.slow
def test_build_target_tflite_manifest_counts_delegate_partitions(tmp_path):
    pytest.importorskip("litert_torch")
    subnet = max_subnet(SPACE)
    m = build_target(_static(subnet), subnet, SPACE, 10, tmp_path, formats=["tflite"], quantize=True,
                     calibration_images=_images(16, subnet.r))
    art = {a["key"]: a for a in json.loads((tmp_path / "manifest.json").read_text())["artifacts"]}
    assert m.ok and set(art) == {"tflite", "tflite-int8"}
    for key in art:
        report = art[key]["tflite"]
        assert report["delegate_partitions"] == 1 and report["delegated_ops"] > 20, (key, report)
        assert report["other_ops"] == {} and report["other_int8_ops"] == {}, (key, report)
    assert art["tflite-int8"]["tflite"]["delegated_ops"] > art["tflite"]["tflite"]["delegated_ops"]  # + DQ/Q


def test_int8_float_stages_make_one_artefact_each_with_those_stages_float(tmp_path):
    pytest.importorskip("litert_torch")
    from ai_edge_litert.interpreter import Interpreter

    subnet = min_subnet(SPACE)
    static = _static(subnet)
    keys = [a.key for a in plan(["onnx", "tflite", "coreml"], True, "int8", (1, 0))]
    assert keys == ["onnx", "onnx-int8", "onnx-int8-f1", "tflite", "tflite-int8", "tflite-int8-f1", "coreml",
                    "coreml-int8"]  # CoreML's INT8 is weights only: no float stages
    assert [a.key for a in plan(["tflite"], True, "dynamic", (0, 1))] == ["tflite", "tflite-int8"]
    m = build_target(static, subnet, SPACE, 10, tmp_path, formats=["tflite"], quantize=True,
                     calibration_images=_images(16, subnet.r), int8_float_stages=(0, 1))
    art = {a["key"]: a for a in m.artifacts}
    assert list(art) == ["tflite", "tflite-int8", "tflite-int8-f1"]
    assert art["tflite-int8"]["int8_float"] == {"stages": 0, "modules": ["first_conv", "blocks.0"]}
    f1 = art["tflite-int8-f1"]
    assert f1["file"] == "model.int8-f1.tflite" and f1["status"] == "ok" and f1["tflite"]["delegate_partitions"] == 1
    first_stage = [f"blocks.{i}" for i in range(1, len(static.blocks)) if static.specs[1 + i].out_ch == static.specs[2].out_ch]
    assert f1["int8_float"]["modules"] == ["first_conv", "blocks.0"] + first_stage
    float_convs = sum(isinstance(x, torch.nn.Conv2d) for name in f1["int8_float"]["modules"]
                      for x in static.get_submodule(name).modules())
    for key, n_float in (("tflite-int8", 3), ("tflite-int8-f1", float_convs)):
        it = Interpreter(model_path=str(tmp_path / art[key]["file"]))
        it.allocate_tensors()
        dtypes = {t["index"]: np.dtype(t["dtype"]) for t in it.get_tensor_details()}
        weights = [dtypes[op["inputs"][1]] for op in it._get_ops_details()
                   if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
        assert weights[:n_float] == [np.float32] * n_float and set(weights[n_float:]) == {np.dtype(np.int8)}, key
    assert n_float > 3
    with pytest.raises(InvalidValueError, match="whole numbers >= 0"):
        build_target(static, subnet, SPACE, 10, tmp_path / "bad", formats=["tflite"], int8_float_stages=(-1,))
    bad = build_target(static, subnet, SPACE, 10, tmp_path / "many", formats=["onnx"], quantize=True,
                       calibration_images=_images(16, subnet.r), int8_float_stages=(9,), raise_on_failure=False)
    (failed,) = [a for a in bad.artifacts if a["key"] == "onnx-int8-f9"]
    assert failed["status"] == "failed" and "stages after block 0" in failed["error"]


class _DataDependent(torch.nn.Module):
    """A model with a Python branch on its input: tracing freezes one path, so the export drifts."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        y = self.inner(x)
        return y + 1.0 if float(x.mean()) > 0 else y


def test_parity_drift_fails_the_build_but_writes_the_manifest(tmp_path):
    subnet = min_subnet(SPACE)
    model = _DataDependent(_static(subnet))
    with pytest.raises(BuildError, match="differ from PyTorch by up to 1"):
        build_target(model, subnet, SPACE, 10, tmp_path, formats=["onnx"], quantize=False,
                     eval_data=(_images(8, subnet.r).abs() + 0.1, np.zeros(8)))
    m = read_manifest(tmp_path)
    assert m.status == "failed" and "onnx" in m.errors[0]


def test_manifest_loader_refuses_bad_files(tmp_path):
    p = tmp_path / "manifest.json"
    p.write_text("{not json")
    with pytest.raises(FileFormatError, match="manifest.json: not valid JSON"):
        read_manifest(p)
    p.write_text(json.dumps({"format": "ofa-edge-manifest/99"}))
    with pytest.raises(FileFormatError, match="ofa-edge-manifest/1"):
        read_manifest(p)
    p.write_text(json.dumps({"format": MANIFEST_FORMAT, "subnet": {}}))
    with pytest.raises(FileFormatError, match="lacks field"):
        read_manifest(p)


def test_sha256_of_a_package_folder_changes_with_content(tmp_path):
    d = tmp_path / "m.mlpackage"
    (d / "Data").mkdir(parents=True)
    (d / "Data" / "w.bin").write_bytes(b"abc")
    first = sha256_path(d)
    (d / "Data" / "w.bin").write_bytes(b"abd")
    assert sha256_path(d) != first


# ---------------------------------------------------------------- targets.toml


def test_load_targets_matrix_and_errors(tmp_path):
    p = tmp_path / "targets.toml"
    p.write_text('checkpoint = "run/supernet.pt"\nformats = ["onnx", "tflite"]\ndevices = ["a", "b"]\n'
                 'budgets = ["20ms", 0.04]\n[[target]]\ndevice = "a"\nbudget = "5 ms"\nformats = ["coreml"]\n')
    spec = load_targets(p)
    assert [t.name for t in spec.targets] == ["a/20ms", "a/0.04ms", "b/20ms", "b/0.04ms", "a/5ms"]
    assert spec.targets[-1].formats == ("coreml",) and spec.checkpoint == tmp_path / "run" / "supernet.pt"
    assert spec.out == tmp_path / "builds"
    assert all(t.int8_float_stages == (0,) for t in spec.targets)
    p.write_text('devices = ["a"]\nbudgets = ["1ms"]\nint8_float_stages = [2, 0]\n[[target]]\ndevice = "b"\n'
                 'budget = "1ms"\nint8_float_stages = [1]\n')
    a, b = load_targets(p).targets
    assert (a.int8_float_stages, b.int8_float_stages) == ((0, 2), (1,))
    assert a.settings_key() != Target("a", 1.0, ("onnx",)).settings_key()
    p.write_text('devices = ["a"]\nbudgets = ["1ms"]\nlatency_margin = 5\n[[target]]\ndevice = "b"\n'
                 'budget = "1ms"\nlatency_margin = 0\n')
    a, b = load_targets(p).targets
    assert (a.latency_margin, b.latency_margin) == (5.0, 0.0)
    assert a.settings_key() != Target("a", 1.0, ("onnx",)).settings_key()  # a changed margin rebuilds
    assert b.settings_key() == Target("b", 1.0, ("onnx",)).settings_key()  # no margin: earlier builds' keys
    p.write_text('devices = ["a"]\nbudgets = ["1ms"]\nmeasure = true\nretries = 0\n[[target]]\ndevice = "b"\n'
                 'budget = "1ms"\nretries = 2\n')
    a, b = load_targets(p).targets
    assert (a.retries, b.retries) == (0, 2)
    assert a.settings_key() != Target("a", 1.0, ("onnx",), measure=True).settings_key()  # other picks: rebuilt
    assert b.settings_key() == Target("b", 1.0, ("onnx",), measure=True).settings_key()  # the default's key
    for text, match in [
                        ('devices = ["a"]\nbudgets = ["1ms"]\nlatency_margin = 100', "latency_margin must be a "
                                                                                    "percentage"),
                        ('devices = ["a"]\nbudgets = ["1ms"]\nretries = -1', "retries must be a whole number"),
                        ('devices = ["a"]\nbudgets = ["1ms"]\nretries = true', "retries must be a whole number"),('devices = ["a"]\nbudgets = ["fast"]', "budget 'fast'"),
                        ('devices = ["a"]\nbudgets = ["1ms"]\nformats = ["pt2"]', "'pt2' is not one of"),
                        ('devices = ["a"]', "give both devices and budgets"),
                        ('devise = ["a"]', "unknown key 'devise'"),
                        ('devices = ["a", "a"]\nbudgets = ["1ms"]', "listed twice"),
                        ('devices = [', "not valid TOML"),
                        ('devices = ["a"]\nbudgets = ["1ms"]\nint8_float_stages = [0, -1]', "int8_float_stages must be"),
                        ('devices = ["a"]\nbudgets = ["1ms"]\nint8_float_stages = 2', r"such as \[0, 1, 2\], not 2")]:
        p.write_text(text)
        with pytest.raises(FileFormatError, match=match):
            load_targets(p)


def _onnx_builder(calls):
    """A builder that exports a real subnet per target and measures its onnxruntime latency here."""

    def build(target: Target, folder: Path):
        calls.append(target.name)
        subnet = max_subnet(SPACE) if target.device == "big" else min_subnet(SPACE)
        m = build_target(_static(subnet), subnet, SPACE, 10, folder, target.formats, target.quantize,
                         _images(16, subnet.r), raise_on_failure=False)
        runner = OnnxRunner(folder / "model.onnx")
        x = _images(1, subnet.r).numpy()
        runner(x)
        t0 = time.perf_counter()
        for _ in range(5):
            runner(x)
        m.latency_ms["measured"] = (time.perf_counter() - t0) / 5 * 1000
        return m

    return build


def test_run_matrix_builds_both_reports_impossible_budget_and_resumes(tmp_path):
    targets = [Target("small", 1000.0, ("onnx",), quantize=False), Target("big", 1000.0, ("onnx",), True),
               Target("small", 1e-6, ("onnx",), quantize=False)]
    spec = TargetsFile(tmp_path / "targets.toml", None, tmp_path / "builds", tmp_path / "tables", targets)
    calls: list[str] = []
    result = run_matrix(spec, _onnx_builder(calls))
    assert [r.status for r in result.results] == ["built", "built", "failed"]
    assert "budget missed" in result.results[2].message and not result.ok
    for name in ("small/1000ms", "big/1000ms", "small/1e-06ms"):
        assert (tmp_path / "builds" / name / "manifest.json").is_file()
    assert read_manifest(tmp_path / "builds" / "small/1e-06ms").status == "failed"
    with open(tmp_path / "builds" / "summary.csv") as fh:
        rows = {r["target"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"small/1000ms", "big/1000ms", "small/1e-06ms"}
    assert rows["small/1e-06ms"]["status"] == "failed" and rows["big/1000ms"]["status"] == "ok"
    assert rows["big/1000ms"]["files"] == "model.onnx model.int8.onnx"
    assert int(rows["big/1000ms"]["macs"]) > int(rows["small/1000ms"]["macs"])
    # resume: the two good targets are skipped, the failed one is tried again
    calls.clear()
    again = run_matrix(spec, _onnx_builder(calls))
    assert [r.status for r in again.results] == ["skipped", "skipped", "failed"] and calls == ["small/1e-06ms"]


def test_run_matrix_records_a_builder_exception_and_goes_on(tmp_path):
    targets = [Target("x", 5.0, ("onnx",)), Target("y", 5.0, ("onnx",), quantize=False)]
    spec = TargetsFile(tmp_path / "t.toml", None, tmp_path / "b", tmp_path / "t", targets)

    def build(target, folder):
        if target.device == "x":
            raise RuntimeError("no subnet meets 5 ms on x")
        return _onnx_builder([])(target, folder)

    result = run_matrix(spec, build)
    assert [r.status for r in result.results][0] == "failed"
    assert result.results[0].message == "no subnet meets 5 ms on x"
    assert (tmp_path / "b" / "y" / "5ms" / "manifest.json").is_file()
