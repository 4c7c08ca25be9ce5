"""INT8 latency tables on this machine (real onnxruntime): profile, validate, specialize and build at int8."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from ofa_edge.cli import main
from ofa_edge.devices.runtimes import get_runtime
from ofa_edge.latency import enumerate_blocks, load_table, load_validation, table_paths
from ofa_edge.export.int8_policy import is_float_layer
from ofa_edge.latency.models import block_model, block_name, subnet_name
from ofa_edge.pipelines.build import load_targets
from ofa_edge.errors import FileFormatError
from ofa_edge.space import get_space, max_subnet, min_subnet, subnet_from_dict
from ofa_edge.train import TrainConfig, train

torch.set_num_threads(1)

SPACE = get_space("cifar-tiny")


def device_toml(root, runtime: str = "onnxruntime", name: str = "x86-int8") -> str:
    """This machine as device ``name`` (a profile in ``root``), measured in a subprocess with short runs."""
    path = root / f"{name}.toml"
    path.write_text(f'format = 1\nname = "{name}"\n[connection]\ntransport = "local"\n[device]\n'
                    f'python = "current"\nwork_dir = "{root / "dev"}"\n[runtime]\nname = "{runtime}"\n'
                    '[benchmark]\nwarmup = 5\nrepeats = 30\nthreads = 1\nbatch = 1\nrounds = 1\n')
    return name


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny trained supernet, and fp32 + int8 tables of this machine for cifar-tiny at 24 px."""
    root = tmp_path_factory.mktemp("int8")
    env = pytest.MonkeyPatch()
    env.setenv("OFA_EDGE_DEVICES", str(root))  # the device by name, as a user's ./device_profiles
    train(TrainConfig(space="cifar-tiny", out=str(root / "run"), epochs=1, batch_size=16, steps_per_epoch=3,
                      bn_images=32, eval_every=0, strategy="sandwich"))
    dev = device_toml(root)
    common = ["profile", "--device", dev, "--space", "cifar-tiny", "-r", "24", "--calibrate", "4",
              "--tables", str(root / "tables"), "--cache", str(root / "cache"), "--json"]
    assert main(common) == 0
    assert main(common + ["--precision", "int8", "--validate", "2"]) == 0
    yield root, dev
    env.undo()


def test_int8_profile_writes_its_own_table_with_the_fp32_keys(project, capsys):
    root, _ = project
    fp32 = load_table(table_paths(root / "tables", "x86-int8", "onnxruntime")["table"])
    paths = table_paths(root / "tables", "x86-int8", "onnxruntime", "int8")
    assert paths["table"].name == "onnxruntime-int8.csv" and paths["validation"].name == "onnxruntime-int8.validation.csv"
    int8 = load_table(paths["table"])
    keys = {b.lut_key() for b in enumerate_blocks(SPACE, (24,), 10)}
    assert set(int8.rows) == set(fp32.rows) == keys
    assert (int8.provenance["precision"], fp32.provenance["precision"]) == ("int8", "fp32")
    assert int8.correction.n_fit == 4 and not paths["journal"].exists()
    settings, rows = load_validation(paths["validation"])
    assert sorted(r.split for r in rows) == ["fit"] * 4 + ["test"] * 2
    assert all(r.measured_ms > 0 and r.predicted_ms > 0 for r in rows)
    # the measured models are the export's INT8 (static QDQ, 7-bit weights), one per layer and subnet;
    # the layers INT8 models keep in float (stem, first block) are timed as their fp32 models
    models = sorted((root / "cache" / "onnxruntime-int8").glob("*.onnx"))
    assert len(models) == len(keys) + 6
    blocks = enumerate_blocks(SPACE, (24,), 10)
    assert sum(is_float_layer(b) for b in blocks) == 2
    for spec in blocks:
        path = root / "cache" / "onnxruntime-int8" / f"{block_name(spec, 'int8')}_bs1.onnx"
        if is_float_layer(spec):
            assert path.read_bytes() == (root / "cache" / "onnxruntime" / f"{block_name(spec)}_bs1.onnx").read_bytes()
            continue
        proto = onnx.load(str(path))
        ops = {n.op_type for n in proto.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops, spec
        meta = {p.key: p.value for p in proto.metadata_props}
        assert "reduce_range=True" in meta["quantization"] and "QDQ" in meta["quantization"]


def test_validate_int8_measures_held_out_int8_subnets(project, capsys):
    root, dev = project
    capsys.readouterr()
    assert main(["validate", "--device", dev, "--precision", "int8", "--samples", "3", "--calibrate", "4", "--tables",
                 str(root / "tables"), "--cache", str(root / "cache"), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert (m["precision"], m["runtime"], m["n"], m["n_fit"]) == ("int8", "onnxruntime", 3, 4)
    assert 0.0 <= m["within_10pct"] <= 1.0 and m["mape"] >= 0.0
    _, rows = load_validation(table_paths(root / "tables", "x86-int8", "onnxruntime", "int8")["validation"])
    assert sum(r.split == "test" for r in rows) == 3
    # the fp32 table's validation was not touched: it has no held-out rows
    _, fp32_rows = load_validation(table_paths(root / "tables", "x86-int8", "onnxruntime")["validation"])
    assert {r.split for r in fp32_rows} == {"fit"}


def _int8_budget(root) -> float:
    """Half-way between the smallest and the largest subnet at 24 px by the INT8 table."""
    table = load_table(table_paths(root / "tables", "x86-int8", "onnxruntime", "int8")["table"])
    fastest, slowest = (table.predict(SPACE, f(SPACE, 24), 10) for f in (min_subnet, max_subnet))
    return round(fastest + 0.5 * (slowest - fastest), 4)


def test_specialize_int8_searches_the_int8_table_and_measures_the_int8_model(project, capsys, monkeypatch):
    root, dev = project
    monkeypatch.setenv("OFA_EDGE_CACHE", str(root / "specialize-cache"))
    table = load_table(table_paths(root / "tables", "x86-int8", "onnxruntime", "int8")["table"])
    budget = _int8_budget(root)
    capsys.readouterr()
    assert main(["specialize", "--checkpoint", str(root / "run" / "supernet.pt"), "--device", dev, "--latency",
                 f"{budget}ms", "--selector", "last-sampled", "--export", "onnx", "--precision", "int8",
                 "--measure", "--retries", "0", "--tables", str(root / "tables"), "--out",
                 str(root / "builds"), "--bn-images", "16", "--json"]) == 0
    (m,) = json.loads(capsys.readouterr().out)
    lat = m["latency_ms"]
    subnet = subnet_from_dict(SPACE, m["subnet"])
    assert lat["precision"] == "int8" and lat["table"].endswith("onnxruntime-int8.csv")
    assert lat["predicted"] == pytest.approx(table.predict(SPACE, subnet, 10)) and lat["predicted"] <= budget
    # --measure timed the INT8 model of the chosen subnet (how close it came to the budget is a benchmark's
    # business: under load, two measurements of one subnet differ by more than the table's error; no retries,
    # so the pick is the table's, and the note says when its measurement ran over)
    over = "; still over budget after 0 new search(es)" if lat["measured"] > budget else ""
    assert lat["note"] == "measured on the device" + over and lat["measured"] > 0
    int8_model = (root / "specialize-cache" / "models" / "onnxruntime-int8"
                  / f"{subnet_name(subnet, 10, SPACE, 'int8')}_bs1.onnx")
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx.load(str(int8_model)).graph.node}
    assert {f["path"] for f in m["files"]} >= {"model.onnx", "model.int8.onnx"}  # int8 implies the INT8 artefacts


def test_missing_int8_table_is_a_clear_error(project, capsys, tmp_path):
    root, dev = project
    fp32_only = tmp_path / "tables"
    (fp32_only / "x86-int8").mkdir(parents=True)
    src = table_paths(root / "tables", "x86-int8", "onnxruntime")["table"]
    (fp32_only / "x86-int8" / src.name).write_text(src.read_text())
    capsys.readouterr()
    assert main(["specialize", "--checkpoint", str(root / "run" / "supernet.pt"), "--device", dev, "--latency",
                 "5ms", "--precision", "int8", "--tables", str(fp32_only), "--out", str(tmp_path / "b")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"ofa-edge profile --device {dev}" in err and "--precision int8" in err and "Traceback" not in err
    assert main(["validate", "--device", dev, "--precision", "int8", "--tables", str(fp32_only)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"ofa-edge profile --device {dev} --precision int8" in err and "Traceback" not in err
    assert main(["profile", "--device", dev, "--precision", "int4", "--tables", str(fp32_only)]) == 2
    assert "--precision: 'int4' is not one of fp32, int8" in " ".join(capsys.readouterr().err.split())


def test_runtime_without_int8_models_is_refused(tmp_path, capsys, monkeypatch):
    assert get_runtime("torch").quantize_model is None
    monkeypatch.setenv("OFA_EDGE_DEVICES", str(tmp_path))
    dev = device_toml(tmp_path, "torch")
    assert main(["profile", "--device", dev, "--space", "cifar-tiny", "-r", "24", "--precision", "int8",
                 "--tables", str(tmp_path / "tables")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "runtime torch has no int8 models" in err and "onnxruntime" in err
    assert not (tmp_path / "tables").exists()


def test_build_matrix_reads_precision(project, capsys):
    root, dev = project
    budget = _int8_budget(root)
    targets = root / "targets.toml"
    targets.write_text('format = "ofa-edge-targets/1"\ncheckpoint = "run/supernet.pt"\ntables = "tables"\n'
                       'out = "matrix"\nformats = ["onnx"]\nquantize = false\nselector = "last-sampled"\n'
                       f'precision = "int8"\ndevices = ["{dev}"]\nbudgets = ["{budget}ms"]\n')
    spec = load_targets(targets)
    assert [t.precision for t in spec.targets] == ["int8"]
    capsys.readouterr()
    assert main(["build", str(targets), "--json"]) == 0, capsys.readouterr().err
    (manifest_path,) = (root / "matrix").rglob("manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["extra"]["precision"] == "int8"
    assert manifest["latency_ms"]["table"].endswith("onnxruntime-int8.csv")
    assert manifest["latency_ms"]["predicted"] <= budget
    targets.write_text(targets.read_text().replace('precision = "int8"', 'precision = "int4"'))
    with pytest.raises(FileFormatError, match="precision must be one of 'fp32', 'int8', not 'int4'"):
        load_targets(targets)


def test_tflite_int8_measurement_model_is_the_full_integer_graph(tmp_path):
    pytest.importorskip("ai_edge_quantizer", reason="[platform] TFLite export extra not installed")
    from ofa_edge.export.tflite import delegate_report

    spec = next(b for b in enumerate_blocks(SPACE, (24,), 10) if b.kind == "mbconv" and b.se and b.act == "h_swish")
    model = block_model(spec, "tflite", tmp_path, precision="int8")
    assert model.path.parent.name == "tflite-int8"
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model.path))
    assert it.get_input_details()[0]["dtype"] == np.int8
    report = delegate_report(model.path)
    assert report.delegate_partitions == 1 and not report.other_int8_ops
