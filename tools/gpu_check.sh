#!/usr/bin/env bash
# GPU check (run where a CUDA GPU is present, <= 10 min): first bench/train_speed.py on the GPU (layout x
# precision, <= 150 s; its JSON beside the summary), then supernet training steps at each precision (AMP),
# top-1 after them, bit-exact resume at fp16, `ofa-edge train --device auto` as typed, export of a subnet
# trained on the GPU and GPU vs CPU agreement. Prints one JSON line per stage and a summary; the numbers go
# into the README with the card's name.
#   PYTHONPATH=. bash tools/gpu_check.sh [STEPS] [SUMMARY.json]     # PYTHON=... picks the interpreter (python3)
#   GPU_CHECK_DEVICE=cpu bash tools/gpu_check.sh 2     # dry run on a CPU (tests/test_gpu_check.py): bf16 for fp16
# Measured on an H200 (2026-11-28) before the layout change: 300 steps of the old default (channels_last +
# bf16) took 173 s, so STEPS defaults to 150 and each precision gets at most TRAIN_LIMIT_S seconds.
set -euo pipefail
STEPS="${1:-150}"
SUMMARY="${2:-}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if [ "${GPU_CHECK_DEVICE:-cuda}" = cuda ] && [ -n "$SUMMARY" ]; then
  timeout "${SPEED_LIMIT_S:-150}" "${PYTHON:-python3}" "$(dirname "$0")/../bench/train_speed.py" --device cuda \
    --steps 6 --out "$(dirname "$SUMMARY")/train_speed_cuda.json" || echo '{"stage": "speed", "error": "timed out or failed"}'
fi
"${PYTHON:-python3}" - "$STEPS" "$WORK" "$SUMMARY" <<'PY'
import json, os, signal, subprocess, sys, time
from pathlib import Path

import torch

steps, work, summary_path = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
dev = os.environ.get("GPU_CHECK_DEVICE", "cuda")
gpu = dev == "cuda"
if gpu:
    assert torch.cuda.is_available(), "no CUDA GPU visible to torch"
card = torch.cuda.get_device_name(0) if gpu else "cpu (dry run)"
batch = 128 if gpu else 8
amp = "fp16" if gpu else "bf16"  # fp16 (gradient scaler) is CUDA only


def sync():
    if gpu:
        torch.cuda.synchronize()


def emit(row):
    print(json.dumps(row), flush=True)
    return row


from ofa_edge.train import TrainConfig, TrainingInterrupted, train
from ofa_edge.train.evaluate import evaluate_checkpoint

results = {"card": card, "torch": torch.__version__, "cuda": torch.version.cuda, "steps": steps, "batch": batch}
emit({"stage": "device", **results})
limit = float(os.environ.get("TRAIN_LIMIT_S", "120"))


def over_time(t0):
    """A progress callback that stops a stage past ``limit`` seconds (a slow precision must not eat the rest)."""
    def check(ev):
        if ev["event"] == "step" and time.perf_counter() - t0 > limit:
            os.kill(os.getpid(), signal.SIGINT)
    return check


from ofa_edge.train.precision import resolve_precision

results["auto_resolves_to"] = resolve_precision("auto", torch.device(dev))
for precision in ("fp32", "bf16", amp):
    if precision in results:
        continue
    cfg = TrainConfig(space="cifar-mbv3", strategy="sandwich", n_random=1, epochs=1, steps_per_epoch=steps,
                      batch_size=batch, eval_every=0, bn_images=500, device=dev, precision=precision,
                      workers=2, out=str(work / f"run-{precision}"))
    sync()
    t = time.perf_counter()
    try:
        res = train(cfg, progress=over_time(t))
    except TrainingInterrupted:
        results[precision] = emit({"stage": "train", "precision": precision, "steps": steps,
                                   "stopped_after_s": limit, "error": "too slow: stopped"})
        continue
    sync()
    sec = time.perf_counter() - t
    saved = res.precision
    top1 = evaluate_checkpoint(res.checkpoint, "max", bn_images=500, split="test")["top1"]
    results[precision] = emit({"stage": "train", "precision": precision, "resolved": saved, "steps": steps,
                               "seconds": round(sec, 1), "images_per_s": round(steps * batch / sec, 1),
                               "max_top1_embedded_test": round(top1, 2), "loss_last": res.metrics[-1]["loss"]})

# exact resume at the AMP precision: interrupt in epoch 2, resume, compare with an uninterrupted run
half = max(2, steps // 10)
kw = dict(space="cifar-tiny", strategy="sandwich", n_random=1, epochs=2, steps_per_epoch=half, batch_size=32,
          eval_every=0, bn_images=64, device=dev, precision=amp)
full = train(TrainConfig(out=str(work / "exact-a"), **kw))


def stop(ev):
    if ev["event"] == "step" and ev["epoch"] == 1 and ev["step"] == 1:
        os.kill(os.getpid(), signal.SIGINT)


try:
    train(TrainConfig(out=str(work / "exact-b"), **kw), progress=stop)
    interrupted = False
except TrainingInterrupted:
    interrupted = True
resumed = train(resume=work / "exact-b")
a, b = full.net.state_dict(), resumed.net.state_dict()
exact = interrupted and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)
results["resume"] = emit({"stage": "resume", "precision": amp, "interrupted": interrupted, "bit_exact": exact})

# the command as a user types it: --device auto must pick the GPU and its AMP precision
cli_out = work / "cli"
cmd = [sys.executable, "-m", "ofa_edge", "train", "--space", "cifar-tiny", "--epochs", "1", "--steps-per-epoch",
       "5", "--batch-size", "16", "--bn-images", "32", "--eval-every", "0", "--out", str(cli_out), "--json",
       "--device", "auto" if gpu else "cpu"]
proc = subprocess.run(cmd, capture_output=True, text=True)
try:
    said = json.loads(proc.stdout)
except ValueError:
    said = {}
results["cli"] = emit({"stage": "cli", "exit": proc.returncode, "device": said.get("device"),
                       "precision": said.get("precision"), "stderr_tail": proc.stderr[-300:] if proc.returncode else ""})

# export the GPU-trained max subnet; compare torch on the GPU and onnxruntime (CPU) with torch on the CPU
from ofa_edge.space import max_subnet
from ofa_edge.supernet import load_supernet

net = load_supernet(work / "run-fp32" / "supernet.pt")
net.set_subnet(max_subnet(net.space))
static = net.get_active_subnet().eval()
x = torch.randn(8, 3, 32, 32)
with torch.no_grad():
    cpu = static(x)
    other = static.to(dev)(x.to(dev)).cpu()
static = static.cpu()
try:
    import onnxruntime as ort

    path = work / "max.onnx"
    torch.onnx.export(static, (x,), str(path), input_names=["input"], output_names=["logits"], dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_diff = float((torch.from_numpy(sess.run(None, {"input": x.numpy()})[0]) - cpu).abs().max())
except Exception as exc:  # report, do not hide
    onnx_diff = f"export failed: {exc}"
results["export"] = emit({"stage": "export", "gpu_vs_cpu_max_abs": float((other - cpu).abs().max()),
                          "onnx_vs_torch_max_abs": onnx_diff, "logit_scale": float(cpu.abs().max())})
results["date"] = time.strftime("%Y-%m-%d")
print(json.dumps({"stage": "summary", **results}))
if summary_path:
    Path(summary_path).write_text(json.dumps(results, indent=2) + "\n")
PY
