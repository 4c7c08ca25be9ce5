"""DDP: ``torchrun --nproc_per_node 2`` (gloo, CPU) ends with identical weights on both ranks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ofa_edge.supernet import load_supernet
from ofa_edge.train.checkpoint import read_sampled, read_train_checkpoint

SCRIPT = textwrap.dedent("""
    import sys
    import torch
    torch.set_num_threads(1)
    import torch.distributed as dist
    from ofa_edge.train import TrainConfig, train

    out = sys.argv[1]
    cfg = TrainConfig(strategy="sandwich", space="cifar-tiny", out=out + "/run", epochs=2, batch_size=8,
                      steps_per_epoch=2, bn_images=32, eval_every=1, dropout=0.1, heads=2)
    result = train(cfg)
    torch.save({k: v.clone() for k, v in result.net.state_dict().items()}, f"{out}/rank{dist.get_rank()}.pt")
    dist.destroy_process_group()
""")


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


@pytest.mark.slow
def test_torchrun_two_ranks_identical_weights(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path)], capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # rank 0 alone wrote the run folder, and its checkpoint is what the ranks ended with
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.csv", "sampled.csv", "supernet.pt"]
    saved = load_supernet(tmp_path / "run" / "supernet.pt").state_dict()
    assert all(torch.equal(saved[k], a[k]) for k in a)
    _, cfg, state = read_train_checkpoint(tmp_path / "run")
    assert state["world"] == 2 and state["iteration"] == 4
    assert sum(r["count"] for r in read_sampled(tmp_path / "run" / "sampled.csv")) == 4 * 4


@pytest.mark.slow
def test_cli_nproc_spawns_ddp(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", "import sys; from ofa_edge.cli import main; sys.exit(main())",
                           "train", "--nproc", "2", "--space", "cifar-tiny", "--strategy", "random", "--epochs", "1",
                           "--steps-per-epoch", "2", "--batch-size", "8", "--bn-images", "16", "--quiet", "--json",
                           "--out", str(out)], capture_output=True, text=True, timeout=300, env=_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, _, state = read_train_checkpoint(out)
    assert state["world"] == 2 and state["epoch"] == 1
    assert '"metrics"' in proc.stdout
