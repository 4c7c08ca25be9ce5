"""CUDA path: AMP training with a gradient scaler, exact resume, pinned batches. Skipped without a GPU."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from ofa_edge.supernet.checkpoint import read_supernet_file
from ofa_edge.train import TrainConfig, TrainingInterrupted, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="[platform] no CUDA GPU on this machine")


def cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(space="cifar-tiny", strategy="sandwich", n_random=1, epochs=2, steps_per_epoch=3, batch_size=16,
                eval_every=0, bn_images=32, device="cuda", out=str(tmp_path / "run"), workers=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("precision", ["auto", "fp16", "bf16"])
def test_amp_training_on_cuda_records_precision_and_resumes_exactly(tmp_path, precision):
    full = train(cfg(tmp_path / "a", precision=precision))
    saved = read_supernet_file(tmp_path / "a" / "run" / "supernet.pt")["meta"]["config"]["precision"]
    assert saved == ("fp32" if precision == "auto" else precision)  # auto: fp32, the fastest measured on a GPU

    def stop(ev):
        if ev["event"] == "step" and ev["epoch"] == 1 and ev["step"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(cfg(tmp_path / "b", precision=precision), progress=stop)
    resumed = train(resume=tmp_path / "b" / "run")
    a, b = full.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)
    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in full.metrics)
