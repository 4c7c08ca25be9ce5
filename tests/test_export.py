"""Exporters on a tiny trained subnet of "cifar-tiny": ONNX, TFLite, CoreML, INT8, parity checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ofa_edge.space import get_space, min_subnet

CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"
MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


def _prep(images: np.ndarray, r: int) -> torch.Tensor:
    x = torch.from_numpy(((images.astype(np.float32) / 255 - MEAN) / STD).transpose(0, 3, 1, 2).copy())
    if r != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)
    return x


def _load_split(name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    try:  # the project's embedded slice, once it exists
        from ofa_edge import data as ofa_data  # noqa: F401

        loader = getattr(ofa_data, "load_embedded", None)
    except ImportError:
        loader = None
    path = CIFAR / f"{name}.npz"
    if not path.is_file():
        pytest.skip(f"../shared/data/cifar10/{name}.npz is not beside this checkout")
    with np.load(path) as d:
        return d["images"][:n], d["labels"][:n]


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


def test_tflite_fp32_parity(tiny, tmp_path):
    pytest.importorskip("litert_torch")
    from ofa_edge.export.tflite import TFLiteRunner, export_tflite

    r = tiny["subnet"].r
    path = export_tflite(tiny["model"], tmp_path / "m.tflite", (1, 3, r, r))
    runner = TFLiteRunner(path)
    assert runner.input_shape == (1, 3, r, r) and runner.input_dtype == np.float32
    x = tiny["test_x"][:16]
    ref = _logits(tiny["model"], x)
    got = runner(x)
    assert got.shape == ref.shape == (16, 10)
    assert np.abs(got - ref).max() < 1e-4
    assert np.abs(ref).max() > 0.5  # the logits are not trivially small


@pytest.mark.parametrize("mode", ["int8", "dynamic"])
def test_tflite_quantized_agrees_on_real_images(tiny, tmp_path, mode):
    pytest.importorskip("litert_torch")
    from ofa_edge.export.tflite import TFLiteRunner, export_tflite

    r = tiny["subnet"].r
    path = export_tflite(tiny["model"], tmp_path / f"m.{mode}.tflite", (1, 3, r, r), quantize=mode,
                         calibration=tiny["calib"])
    runner = TFLiteRunner(path)
    ops = set(runner.op_names())
    if mode == "int8":
        assert runner.input_dtype == np.int8 and runner.output_dtype == np.int8
        assert "DEQUANTIZE" not in ops
    else:
        assert runner.input_dtype == np.float32
    x = tiny["test_x"]
    ref = _logits(tiny["model"], x).argmax(1)
    got = runner(x).argmax(1)
    assert len(set(ref.tolist())) >= 3  # a real classifier, not a constant
    assert (got == ref).mean() >= 0.8
    assert path.stat().st_size < 0.5 * export_size_fp32(tiny, tmp_path)


def export_size_fp32(tiny, tmp_path) -> int:
    from ofa_edge.export.tflite import export_tflite

    r = tiny["subnet"].r
    p = tmp_path / "ref.tflite"
    if not p.exists():
        export_tflite(tiny["model"], p, (1, 3, r, r))
    return p.stat().st_size


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
