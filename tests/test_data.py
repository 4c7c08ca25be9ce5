"""Data: embedded set, sources, splits, augmentation and deterministic loaders."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from ofa_edge.data import bn_batches, load_task, make_loader, open_source
from ofa_edge.data.sources import EMBEDDED
from ofa_edge.errors import OfaEdgeError

torch.set_num_threads(1)


def test_embedded_set_is_balanced_real_cifar_slice():
    d = np.load(EMBEDDED)
    assert str(d["format"]) == "ofa-edge-cifar10-mini-v1"
    assert d["train_images"].shape == (5000, 32, 32, 3) and d["train_images"].dtype == np.uint8
    assert np.bincount(d["train_labels"]).tolist() == [500] * 10
    assert np.bincount(d["test_labels"]).tolist() == [100] * 10
    assert EMBEDDED.stat().st_size < 20e6
    # real images, not noise: neighbouring pixels are strongly correlated
    x = d["train_images"][:200].astype(np.float64)
    corr = np.corrcoef(x[:, :, :-1].ravel(), x[:, :, 1:].ravel())[0, 1]
    assert corr > 0.8


def test_default_task_splits_are_disjoint_and_stratified():
    task = load_task()
    assert task.classes[0] == "airplane" and task.n_classes == 10
    assert len(task.train) == 4500 and len(task.val) == 500 and len(task.test) == 1000
    assert task.unlabelled is None
    assert np.bincount(task.val.targets).tolist() == [50] * 10
    assert not set(task.train.indices) & set(task.val.indices)


def test_labels_per_class_split():
    task = load_task(labels_per_class=25, seed=3)
    assert np.bincount(task.train.targets).tolist() == [25] * 10
    assert len(task.unlabelled) == 4500 - 250
    all_idx = np.concatenate([task.train.indices, task.unlabelled.indices, task.val.indices])
    assert len(np.unique(all_idx)) == 5000
    with pytest.raises(OfaEdgeError, match="labels per class: 450 is not smaller"):
        load_task(labels_per_class=450)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(OfaEdgeError, match="does not exist"):
        load_task(tmp_path / "nope")


def _write_png(path, colour, size=40):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)


def test_image_folder_flat_and_split(tmp_path):
    for c, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        for i in range(10):
            _write_png(tmp_path / "flat" / c / f"{i}.png", colour)
            _write_png(tmp_path / "split" / "train" / c / f"{i}.png", colour)
            _write_png(tmp_path / "split" / "val" / c / f"{i}.png", colour)
    task = load_task(tmp_path / "flat", val_fraction=0.2)
    assert task.classes == ("cat", "dog")
    assert len(task.test) == 2 and len(task.val) == 4 and len(task.train) == 14
    x, y = next(iter(make_loader(task.test, 24, 2, train=False)))
    assert x.shape == (2, 3, 24, 24)
    # red cat images -> channel 0 high after normalisation, blue dog -> channel 2
    for xi, yi in zip(x, y):
        ch = int(xi.mean((1, 2)).argmax())
        assert ch == (0 if int(yi) == 0 else 2)
    split = load_task(tmp_path / "split")
    assert len(split.test) == 20 and len(split.train) + len(split.val) == 20


def test_image_folder_with_one_class_is_refused(tmp_path):
    for i in range(3):
        _write_png(tmp_path / "only" / f"{i}.png", (1, 2, 3))
    with pytest.raises(OfaEdgeError, match="needs at least 2"):
        load_task(tmp_path)


def test_torchvision_cifar10_format(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    expected = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (20, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, 20))
        expected.append((data, labels))
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    src = open_source(tmp_path)
    assert len(src.train) == 100 and len(src.test) == 20 and src.train.classes[3] == "c3"
    img = src.train.image(0).numpy()  # CHW
    assert np.array_equal(img.reshape(-1), expected[0][0][0])
    assert src.test.label(5) == expected[5][1][5]


def test_npz_folder(tmp_path):
    rng = np.random.default_rng(1)
    for name, n in (("train", 40), ("test", 10)):
        np.savez(tmp_path / f"{name}.npz", images=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                 labels=np.arange(n) % 2, classes=np.array(["a", "b"]))
    task = load_task(tmp_path, val_fraction=0.25)
    assert len(task.train) == 30 and len(task.val) == 10 and len(task.test) == 10


def test_loader_is_deterministic_and_sharded():
    task = load_task()
    a = make_loader(task.train, 32, 16, train=True, seed=5)
    b = make_loader(task.train, 32, 16, train=True, seed=5)
    a.set_epoch(2)
    it = iter(a)
    first, second = next(it), next(it)
    assert torch.equal(first[0], b.batch(2, 0)[0]) and torch.equal(second[1], b.batch(2, 1)[1])
    assert not torch.equal(b.batch(3, 0)[0], first[0])
    a.set_epoch(2, start_batch=1)
    assert torch.equal(next(iter(a))[0], second[0])
    r0 = make_loader(task.train, 32, 8, train=True, seed=5, rank=0, world=2)
    r1 = make_loader(task.train, 32, 8, train=True, seed=5, rank=1, world=2)
    assert len(r0) == len(r1) == 4500 // 16
    i0, i1 = r0._order(), r1._order()
    assert not set(i0) & set(i1) and len(set(i0) | set(i1)) == len(r0) * 16


def test_augmentations_differ_and_keep_scale():
    task = load_task()
    sub = task.train.subset(range(64))
    ev = make_loader(sub, 32, 64, train=False).batch(0, 0)[0]
    weak = make_loader(sub, 32, 64, train=True, views=("weak",)).batch(0, 0)
    (w, s), y = make_loader(sub, 32, 64, train=True, views=("weak", "strong")).batch(0, 0)
    assert w.shape == s.shape == ev.shape == (64, 3, 32, 32)
    assert not torch.allclose(w, s)
    # eval view of the same images (shuffled order differs): compare per-image statistics loosely
    assert abs(float(ev.mean()) - float(weak[0].mean())) < 0.3
    assert abs(float(ev.std()) - 1.0) < 0.3
    small = make_loader(sub, 24, 8, train=False).batch(0, 0)[0]
    assert small.shape == (8, 3, 24, 24)


def test_bn_batches_fixed():
    task = load_task()
    a = bn_batches(task.train, 24, n_images=50, batch_size=20, seed=1)
    b = bn_batches(task.train, 24, n_images=50, batch_size=20, seed=1)
    assert [t.shape[0] for t in a] == [20, 20, 10]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    c = bn_batches(task.train, 24, n_images=50, batch_size=20, seed=2)
    assert not torch.equal(a[0], c[0])


def test_large_image_folder_images_get_imagenet_style_crops(tmp_path):
    for c, colour in (("a", (200, 10, 10)), ("b", (10, 10, 200))):
        for i in range(4):
            _write_png(tmp_path / c / f"{i}.png", colour, size=100)
    task = load_task(tmp_path, val_fraction=0.25, test_fraction=0.25)
    for train in (True, False):
        x, _ = make_loader(task.train, 32, 4, train=train).batch(0, 0)
        assert x.shape == (4, 3, 32, 32) and torch.isfinite(x).all()
