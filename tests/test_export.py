"""Exporters on a tiny trained subnet of "cifar-tiny": ONNX, TFLite, CoreML, INT8, parity checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ofa_edge.space import get_space, min_subnet

MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


def _prep(images: np.ndarray, r: int) -> torch.Tensor:
    x = torch.from_numpy(((images.astype(np.float32) / 255 - MEAN) / STD).transpose(0, 3, 1, 2).copy())
    if r != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)
    return x


def _load_split(name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of the embedded CIFAR-10 set's ``name`` split (shuffled, class-balanced)."""
    from ofa_edge.data.sources import load_embedded

    split = getattr(load_embedded(), name)
    return split.array[split.indices[:n]], split.targets[:n]


@pytest.fixture(scope="module")
def tiny():
    """A min subnet of cifar-tiny, trained for a few seconds on real CIFAR-10 images (non-trivial logits)."""
    from ofa_edge.supernet import OFAMobileNetV3

    torch.manual_seed(0)
    space = get_space("cifar-tiny")
    subnet = min_subnet(space)
    net = OFAMobileNetV3(space, 10)
    net.set_subnet(subnet)
    model = net.get_active_subnet()
    images, labels = _load_split("train", 2000)
    x, y = _prep(images, subnet.r), torch.from_numpy(labels)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(120):
        idx = torch.randint(0, len(x), (32,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test_images, test_labels = _load_split("test", 256)
    return {"space": space, "subnet": subnet, "model": model, "calib": x[:64],
            "test_x": _prep(test_images, subnet.r), "test_y": test_labels}


def _logits(model, x) -> np.ndarray:
    with torch.no_grad():
        return model(x).numpy()


# ---------------------------------------------------------------- TFLite


@pytest.mark.slow
def test_tflite_fp32_parity(tiny, tflite_fp32):
    from ofa_edge.export.tflite import TFLiteRunner

    r = tiny["subnet"].r
    runner = TFLiteRunner(tflite_fp32)
    assert runner.input_shape == (1, 3, r, r) and runner.input_dtype == np.float32
    x = tiny["test_x"][:16]
    ref = _logits(tiny["model"], x)
    got = runner(x)
    assert got.shape == ref.shape == (16, 10)
    assert np.abs(got - ref).max() < 1e-4
    assert np.abs(ref).max() > 0.5  # the logits are not trivially small


@pytest.fixture(scope="module")
def tflite_fp32(tiny, tmp_path_factory):
    pytest.importorskip("litert_torch")
    from ofa_edge.export.tflite import export_tflite

    r = tiny["subnet"].r
    return export_tflite(tiny["model"], tmp_path_factory.mktemp("tfl") / "m.tflite", (1, 3, r, r))


@pytest.mark.parametrize("mode", ["int8", "dynamic"])
def test_tflite_quantized_agrees_on_real_images(tiny, tflite_fp32, tmp_path, mode):
    from ofa_edge.export.tflite import TFLiteRunner, quantize_tflite

    path = quantize_tflite(tflite_fp32, tmp_path / f"m.{mode}.tflite", mode, calibration=tiny["calib"])
    runner = TFLiteRunner(path)
    if mode == "int8":
        assert runner.input_dtype == np.int8 and runner.output_dtype == np.int8
        # float only around hard-swish (XNNPACK has no int8 HARD_SWISH): DEQUANTIZE, HARD_SWISH, QUANTIZE
        names = runner.op_names()
        assert names.count("DEQUANTIZE") == names.count("HARD_SWISH") == names.count("QUANTIZE")
    else:
        assert runner.input_dtype == np.float32
    x = tiny["test_x"]
    ref = _logits(tiny["model"], x).argmax(1)
    got = runner(x).argmax(1)
    assert len(set(ref.tolist())) >= 3  # a real classifier, not a constant
    assert (got == ref).mean() >= 0.8
    assert path.stat().st_size < 0.5 * tflite_fp32.stat().st_size


def test_tflite_bad_arguments(tiny, tmp_path):
    pytest.importorskip("litert_torch")
    from ofa_edge.export.tflite import export_tflite

    r = tiny["subnet"].r
    with pytest.raises(ValueError, match="int16"):
        export_tflite(tiny["model"], tmp_path / "x.tflite", (1, 3, r, r), quantize="int16")
    with pytest.raises(ValueError, match="calibration"):
        export_tflite(tiny["model"], tmp_path / "x.tflite", (1, 3, r, r), quantize="int8")
    with pytest.raises(ValueError, match="calibration images have shape"):
        export_tflite(tiny["model"], tmp_path / "x.tflite", (1, 3, r, r), quantize="int8",
                      calibration=np.zeros((4, 3, r + 8, r + 8), np.float32))
    assert not (tmp_path / "x.tflite").exists()


# ---------------------------------------------------------------- ONNX


def test_onnx_fp32_parity_and_int8_agreement(tiny, tmp_path):
    import onnx

    from ofa_edge.export.onnx import OnnxRunner, export_onnx, read_metadata
    from ofa_edge.export.onnx_int8 import quantize_onnx

    r = tiny["subnet"].r
    fp32 = export_onnx(tiny["model"], tmp_path / "m.onnx", (1, 3, r, r), metadata={"subnet": tiny["subnet"].to_json()})
    proto = onnx.load(str(fp32))
    assert proto.opset_import[0].version >= 17
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == ["output"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    # pooling is one GlobalAveragePool per SE gate / head, never ReduceMean (which makes onnxruntime leave
    # its blocked layout around every SE block: ~1.8x slower fp32 subnets, see bench/export.py)
    kinds = [n.op_type for n in proto.graph.node]
    assert "ReduceMean" not in kinds and kinds.count("GlobalAveragePool") >= 1
    x = tiny["test_x"]
    ref = _logits(tiny["model"], x)
    got = OnnxRunner(fp32)(x)
    assert np.abs(got - ref).max() < 1e-4
    int8 = quantize_onnx(fp32, tmp_path / "m.int8.onnx", tiny["calib"])
    qproto = onnx.load(str(int8))
    ops = {n.op_type for n in qproto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # per-channel: the conv weights' scales are vectors
    scales = [t for t in qproto.graph.initializer if t.name.endswith("_scale") and len(t.dims) == 1 and t.dims[0] > 1]
    assert scales
    # 7-bit weights: full-range int8 weights saturate onnxruntime's U8S8 kernels on AVX2 CPUs without VNNI
    weights = [onnx.numpy_helper.to_array(t) for t in qproto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert weights and all(np.abs(w.astype(np.int32)).max() <= 64 for w in weights)
    assert read_metadata(int8)["subnet"] == tiny["subnet"].to_json()
    got8 = OnnxRunner(int8)(x)
    assert (got8.argmax(1) == ref.argmax(1)).mean() >= 0.8
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size


def test_onnx_refuses_old_opset(tiny, tmp_path):
    from ofa_edge.export.onnx import export_onnx

    with pytest.raises(ValueError, match="opset 17"):
        export_onnx(tiny["model"], tmp_path / "m.onnx", (1, 3, 24, 24), opset=13)


# ---------------------------------------------------------------- CoreML


@pytest.mark.parametrize("precision", ["fp16", "int8-weights"])
def test_coreml_package_loads_with_the_right_io(tiny, tmp_path, precision):
    pytest.importorskip("coremltools")
    from ofa_edge.export.coreml import export_coreml, inspect_coreml

    r = tiny["subnet"].r
    path = export_coreml(tiny["model"], tmp_path / "m.mlpackage", (1, 3, r, r), precision,
                         metadata={"subnet_id": tiny["subnet"].id})
    info = inspect_coreml(path)
    assert info.inputs == {"input": (1, 3, r, r)} and info.outputs == {"output": (1, 10)}
    assert info.input_dtypes == {"input": "float32"}
    n_convs = sum(1 for m in tiny["model"].modules() if isinstance(m, torch.nn.Conv2d))
    assert info.op_types["conv"] == n_convs and info.op_types["linear"] == 1
    assert ("constexpr_affine_dequantize" in info.op_types) == (precision == "int8-weights")
    assert info.metadata["subnet_id"] == tiny["subnet"].id


def test_coreml_inspect_refuses_a_broken_package(tmp_path):
    pytest.importorskip("coremltools")
    from ofa_edge.errors import FileFormatError
    from ofa_edge.export.coreml import inspect_coreml

    bad = tmp_path / "x.mlpackage"
    bad.mkdir()
    (bad / "Manifest.json").write_text("{}")
    with pytest.raises(FileFormatError, match="x.mlpackage"):
        inspect_coreml(bad)


# ---------------------------------------------------------------- missing back ends


@pytest.mark.parametrize("module,extra", [("coremltools", "coreml"), ("litert_torch", "tflite")])
def test_missing_backend_names_the_extra(tiny, tmp_path, monkeypatch, module, extra):
    import sys

    from ofa_edge.export import MissingBackendError, build_target

    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like to import
    fmt = "coreml" if extra == "coreml" else "tflite"
    with pytest.raises(Exception) as err:
        build_target(tiny["model"], tiny["subnet"], tiny["space"], 10, tmp_path, [fmt], quantize=False)
    assert f"pip install 'ofa-edge[{extra}]'" in str(err.value)
    from ofa_edge.export.backends import require

    with pytest.raises(MissingBackendError, match=rf"pip install 'ofa-edge\[{extra}\]'"):
        require(extra)
