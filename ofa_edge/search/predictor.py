"""OFA's accuracy predictor: an MLP on the one-hot subnet encoding; fit, rank metrics, save, load."""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ofa_edge.errors import FileFormatError, InvalidValueError
from ofa_edge.io import atomic_save
from ofa_edge.search.genome import GenomeCodec, Genomes
from ofa_edge.search.metrics import kendall_tau, rmse, spearman
from ofa_edge.space import SearchSpace, Subnet, encoding_size

FORMAT = "ofa-edge-predictor"
FORMAT_VERSION = 1
#: Largest MLP a predictor file may declare (OFA's is 3 x 400).
MAX_HIDDEN, MAX_LAYERS = 4096, 16
ENCODING = "ofa-mbv3-onehot"  # [one-hot r][per slot one-hot kernel][per slot one-hot expand], skipped = 0


@contextlib.contextmanager
def _threads(n: int):
    """Run a small MLP on ``n`` intra-op threads (more threads only add contention at this size)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class AccuracyPredictor(nn.Module):
    """``n_layers`` x (Linear -> ReLU), a bias-free Linear to one output, plus a frozen ``base_acc``.

    Same layout and state-dict keys as ``ofa.nas.accuracy_predictor.AccuracyPredictor``; the output is
    top-1 as a fraction.
    """

    def __init__(self, n_inputs: int, hidden: int = 400, n_layers: int = 3, base_acc: float = 0.0):
        super().__init__()
        blocks: list[nn.Module] = []
        width = n_inputs
        for _ in range(n_layers):
            blocks.append(nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True)))
            width = hidden
        blocks.append(nn.Linear(width, 1, bias=False))
        self.layers = nn.Sequential(*blocks)
        self.register_buffer("base_acc", torch.tensor(float(base_acc)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1) + self.base_acc


@dataclass(frozen=True)
class PredictorMetrics:
    """Quality on the held-out rows (RMSE in top-1 percentage points)."""

    rmse: float
    kendall_tau: float
    spearman: float
    train_rmse: float
    n_train: int
    n_holdout: int


class Predictor:
    """A fitted AccuracyPredictor bound to its search space; predicts top-1 in percent, batched."""

    def __init__(self, space: SearchSpace, model: AccuracyPredictor, metrics: PredictorMetrics | None = None,
                 meta: dict[str, Any] | None = None):
        self.space, self.model = space, model.eval()
        self.codec = GenomeCodec(space)
        self.metrics, self.meta = metrics, dict(meta or {})

    @torch.no_grad()
    def predict_encoded(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Top-1 (%) of rows of encoded features."""
        t = torch.as_tensor(x, dtype=torch.float32)
        with _threads(1):
            return self.model(t).double().numpy() * 100.0

    def score_genomes(self, g: Genomes) -> np.ndarray:
        """Top-1 (%) of a population (used as the search objective)."""
        return self.predict_encoded(self.codec.encode(g))

    def predict(self, subnets: Sequence[Subnet]) -> np.ndarray:
        """Top-1 (%) of each subnet."""
        return self.score_genomes(self.codec.from_subnets(list(subnets)))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the predictor with its encoding and search space (atomic, versioned)."""
        path = Path(path)
        head = self.model.layers[0][0]
        payload = {
            "format": FORMAT, "version": FORMAT_VERSION,
            "space": self.space.to_dict(), "fingerprint": self.space.fingerprint(),
            "encoding": {"name": ENCODING, "size": encoding_size(self.space),
                         "resolutions": list(self.space.resolutions), "ks_list": list(self.space.ks_list),
                         "expand_list": list(self.space.expand_list), "n_blocks": self.space.n_blocks},
            "hidden": head.out_features, "n_layers": len(self.model.layers) - 1,
            "metrics": asdict(self.metrics) if self.metrics else None,
            "meta": self.meta, "state_dict": self.model.state_dict(),
        }
        atomic_save(path, lambda fh: torch.save(payload, fh))
        return path


def load_predictor(path: str | os.PathLike, space: SearchSpace | None = None,
                   checkpoint_sha256: str | None = None) -> Predictor:
    """Load a saved predictor; refuse one fit for another search space or another checkpoint."""
    from ofa_edge.supernet.checkpoint import is_value, read_versioned_file

    path = Path(path)
    obj = read_versioned_file(path, FORMAT, FORMAT_VERSION, "accuracy predictor",
                              "make one with `ofa-edge predictor fit`", short="predictor ")
    try:
        own = SearchSpace.from_dict(obj["space"])
        enc = obj["encoding"]
        hidden, n_layers = obj["hidden"], obj["n_layers"]
        sd = obj["state_dict"]
        if not isinstance(enc, dict) or not isinstance(sd, dict):
            raise TypeError("encoding and state_dict must be dicts")
        if type(hidden) is not int or type(n_layers) is not int or not 1 <= hidden <= MAX_HIDDEN \
                or not 1 <= n_layers <= MAX_LAYERS:
            raise InvalidValueError(f"hidden {hidden!r} / n_layers {n_layers!r} out of range "
                             f"(1..{MAX_HIDDEN} / 1..{MAX_LAYERS})")
        metrics = PredictorMetrics(**obj["metrics"]) if obj.get("metrics") is not None else None
        meta = obj.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise TypeError("meta must be a dict")
    except (KeyError, TypeError, ValueError) as exc:
        raise FileFormatError(path, f"bad predictor header: {exc}") from None
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor) or
           (v.is_floating_point() and not torch.isfinite(v).all())]
    if bad:
        raise FileFormatError(path, f"predictor weight {bad[0]!r} is not a tensor of finite values")
    if not is_value(enc.get("name"), ENCODING) or not is_value(enc.get("size"), encoding_size(own)):
        raise FileFormatError(path, f"unknown encoding {enc.get('name')!r} of size {enc.get('size')}")
    if space is not None and own.fingerprint() != space.fingerprint():
        raise FileFormatError(path, f"predictor was fit for search space {own.name!r} "
                                    f"(fingerprint {own.fingerprint()}), not {space.name!r} "
                                    f"(fingerprint {space.fingerprint()}); fit one for this checkpoint")
    fit_on = (meta or {}).get("checkpoint_sha256")
    if fit_on is not None and not isinstance(fit_on, str):
        raise FileFormatError(path, "bad predictor header: meta.checkpoint_sha256 must be a string")
    if checkpoint_sha256 is not None and fit_on is not None and fit_on != checkpoint_sha256:
        raise FileFormatError(path, f"predictor was fit on another checkpoint (sha256 {fit_on[:12]}..., "
                                    f"this one is {checkpoint_sha256[:12]}...); fit one for this checkpoint")
    model = AccuracyPredictor(encoding_size(own), hidden, n_layers)
    try:
        model.load_state_dict(sd)
    except (RuntimeError, TypeError, AttributeError, ValueError) as exc:
        raise FileFormatError(path, f"predictor weights do not match its header: "
                                    f"{(str(exc) or type(exc).__name__).splitlines()[0]}") from None
    return Predictor(own, model, metrics, meta)


def fit_predictor(space: SearchSpace, subnets: Sequence[Subnet], top1: Sequence[float], *,
                  holdout: float = 0.2, epochs: int = 200, lr: float = 1e-3, batch_size: int = 64,
                  weight_decay: float = 1e-4, hidden: int = 400, n_layers: int = 3, seed: int = 0, threads: int = 1,
                  meta: dict[str, Any] | None = None,
                  progress: Callable[[int, float], None] | None = None) -> Predictor:
    """Fit the MLP to (subnet, top-1 %) rows: shuffle, hold out the last ``holdout`` part, Adam + cosine
    decay on MSE of fractions; ``base_acc`` = mean training target. Returns the predictor with metrics."""
    n = len(subnets)
    if n != len(top1):
        raise InvalidValueError(f"got {n} subnets but {len(top1)} accuracies")
    n_hold = int(math.floor(n * holdout))
    if n - n_hold < 2 or (holdout > 0 and n_hold < 2):
        raise InvalidValueError(f"need more accuracy rows to fit a predictor: {n} rows with holdout {holdout} "
                                "(measure more subnets)", "samples")
    codec = GenomeCodec(space)
    x = torch.from_numpy(codec.encode(codec.from_subnets(list(subnets))))
    y = torch.as_tensor(np.asarray(top1, dtype=np.float64) / 100.0, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    tr, ho = perm[: n - n_hold], perm[n - n_hold:]
    torch.manual_seed(seed)
    model = AccuracyPredictor(x.shape[1], hidden, n_layers, base_acc=float(y[tr].mean()))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(tr) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * steps_per_epoch))
    model.train()
    with _threads(threads):
        _train(model, opt, sched, x, y, tr, epochs, batch_size, gen, progress)
    model.eval()
    with torch.no_grad(), _threads(threads):
        pred = model(x).double().numpy() * 100.0
    truth = y.double().numpy() * 100.0
    tr_np, ho_np = tr.numpy(), ho.numpy()
    if n_hold:
        metrics = PredictorMetrics(rmse(pred[ho_np], truth[ho_np]), kendall_tau(pred[ho_np], truth[ho_np]),
                                   spearman(pred[ho_np], truth[ho_np]), rmse(pred[tr_np], truth[tr_np]),
                                   len(tr_np), n_hold)
    else:
        metrics = PredictorMetrics(float("nan"), float("nan"), float("nan"), rmse(pred[tr_np], truth[tr_np]),
                                   len(tr_np), 0)
    info = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "weight_decay": weight_decay, "seed": seed,
            "holdout": holdout} | dict(meta or {})
    return Predictor(space, model, metrics, info)


def _train(model, opt, sched, x, y, tr, epochs, batch_size, gen, progress) -> None:
    for epoch in range(epochs):
        order = tr[torch.randperm(len(tr), generator=gen)]
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = nn.functional.mse_loss(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if progress is not None:
            progress(epoch + 1, math.sqrt(total / len(tr)) * 100.0)
