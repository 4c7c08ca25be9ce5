#!/usr/bin/env bash
# GPU check (run where a CUDA GPU is present, <= 10 min): a few hundred supernet training steps with AMP,
# bit-exact resume at that precision, export of a subnet trained on the GPU, and GPU vs CPU agreement.
# Prints one JSON line per stage and a summary; the numbers go into the README with the card's name.
#   PYTHONPATH=. bash tools/gpu_check.sh [STEPS]
set -euo pipefail
STEPS="${1:-300}"
OUT="${OUT:-$(mktemp -d)}"
python - "$STEPS" "$OUT" <<'PY'
import json, sys, time
from pathlib import Path

import torch

steps, out = int(sys.argv[1]), Path(sys.argv[2])
assert torch.cuda.is_available(), "no CUDA GPU visible to torch"
card = torch.cuda.get_device_name(0)
print(json.dumps({"stage": "device", "card": card, "torch": torch.__version__, "cuda": torch.version.cuda}),
      flush=True)

from ofa_edge.train import TrainConfig, train
from ofa_edge.train.evaluate import evaluate_checkpoint

results = {"card": card}
for precision in ("auto", "fp16", "fp32"):
    cfg = TrainConfig(space="cifar-mbv3", strategy="sandwich", n_random=1, epochs=1, steps_per_epoch=steps,
                      batch_size=128, eval_every=0, bn_images=500, device="cuda", precision=precision,
                      workers=2, out=str(out / f"run-{precision}"))
    torch.cuda.synchronize()
    t = time.perf_counter()
    res = train(cfg)
    torch.cuda.synchronize()
    sec = time.perf_counter() - t
    top1 = evaluate_checkpoint(res.checkpoint, "max", bn_images=500, split="test")["top1"]
    row = {"stage": "train", "precision": precision, "steps": steps, "seconds": round(sec, 1),
           "images_per_s": round(steps * 128 / sec, 1), "max_top1_embedded_test": round(top1, 2),
           "loss_last": res.metrics[-1]["loss"]}
    results[precision] = row
    print(json.dumps(row), flush=True)

# exact resume at the AMP precision: interrupt half-way, resume, compare to an uninterrupted run
import os, signal
from ofa_edge.train import TrainingInterrupted
half = max(2, steps // 10)
kw = dict(space="cifar-tiny", strategy="sandwich", n_random=1, epochs=2, steps_per_epoch=half, batch_size=32,
          eval_every=0, bn_images=64, device="cuda", precision="fp16")
full = train(TrainConfig(out=str(out / "exact-a"), **kw))
def stop(ev):
    if ev["event"] == "step" and ev["epoch"] == 1 and ev["step"] == 1:
        os.kill(os.getpid(), signal.SIGINT)
try:
    train(TrainConfig(out=str(out / "exact-b"), **kw), progress=stop)
except TrainingInterrupted:
    pass
resumed = train(resume=out / "exact-b")
a, b = full.net.state_dict(), resumed.net.state_dict()
exact = all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)
print(json.dumps({"stage": "resume", "precision": "fp16", "bit_exact": exact}), flush=True)

# export the GPU-trained max subnet and compare onnxruntime (CPU) with torch on the GPU
from ofa_edge.supernet import load_supernet
from ofa_edge.space import max_subnet
net = load_supernet(out / "run-auto" / "supernet.pt")
net.set_subnet(max_subnet(net.space))
static = net.get_active_subnet().eval()
x = torch.randn(8, 3, 32, 32)
with torch.no_grad():
    cpu = static(x)
    gpu = static.cuda()(x.cuda()).cpu()
onnx_diff = None
try:
    import onnxruntime as ort
    path = out / "max.onnx"
    torch.onnx.export(static.cpu(), (x,), str(path), input_names=["input"], output_names=["logits"], dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_out = torch.from_numpy(sess.run(None, {"input": x.numpy()})[0])
    onnx_diff = float((onnx_out - cpu).abs().max())
except Exception as exc:  # report, do not hide
    onnx_diff = f"export failed: {exc}"
row = {"stage": "export", "gpu_vs_cpu_max_abs": float((gpu - cpu).abs().max()), "onnx_vs_torch_max_abs": onnx_diff}
print(json.dumps(row), flush=True)
print(json.dumps({"stage": "summary", **{k: v for k, v in results.items()}, "resume_bit_exact": exact, **row}))
PY
