"""Standalone on-device latency runner (shipped to the device; needs only Python 3, numpy and one runtime).

This file must not import ofa_edge or torch (unless the runtime is torch). The host packs it as
``__main__.py`` into a zip bundle with ``manifest.json`` and ``models/*``; the device runs
``python3 bundle.zip --results results.jsonl --only NAME,NAME,...`` once per batch of measurements.

Every measured model is appended to the results file (one JSON object per line, flushed and fsynced)
and echoed on stdout, so a dropped connection loses at most the model in flight.

Exit codes: 0 ok, 3 the runtime or numpy is missing / the bundle is unusable, 4 bad arguments.

Runs on Python 3.6+ (JetPack 4 ships 3.6): no ``from __future__ import annotations``, ``perf_counter_ns``,
``importlib.metadata``-only lookups, ``statistics.fmean`` or other later constructs; a test runs vermin on it.
"""

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import sys
import time
import zipfile
from typing import List, Optional

RUNNER_FORMAT = 1
RUNTIMES = ("onnxruntime", "tflite", "torch")


class Fatal(Exception):
    """An error that stops the whole batch (missing runtime, unreadable bundle)."""


def emit(obj: dict, results=None) -> None:
    """Print one JSON line on stdout and append it to the results file if given."""
    line = json.dumps(obj, sort_keys=True)
    if results is not None:
        results.write(line + "\n")
        results.flush()
        try:
            os.fsync(results.fileno())
        except OSError:
            pass
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# -- device facts ----------------------------------------------------------------------------------
def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (x86 'model name', ARM 'Hardware'/'Model'), else platform."""
    text = _read("/proc/cpuinfo")
    for field in ("model name", "Hardware", "Model", "cpu model", "Processor"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == field and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value:
                    return value
    return platform.processor() or platform.machine()


#: CPU features that decide which kernels a runtime picks (int8 dot products, fp16/bf16, vector width).
KERNEL_FEATURES = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
                   "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",  # x86 /proc/cpuinfo "flags"
                   "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2", "sme")  # ARM "Features"


def kernel_features(flags: str) -> str:
    """The KERNEL_FEATURES among a space-separated flag list, sorted and space-separated."""
    have = set(flags.split())
    return " ".join(sorted(f for f in KERNEL_FEATURES if f in have))


def cpu_features(text: Optional[str] = None) -> str:
    """The kernel-relevant CPU features of /proc/cpuinfo (x86 'flags', ARM 'Features'); '' when unknown."""
    text = _read("/proc/cpuinfo") if text is None else text
    for line in text.splitlines():
        if line.split(":")[0].strip() in ("flags", "Features") and ":" in line:
            return kernel_features(line.split(":", 1)[1])
    return ""


_DISTRIBUTIONS = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
                  "ai_edge_litert": ("ai-edge-litert", "ai-edge-litert-nightly"),
                  "tflite_runtime": ("tflite-runtime", "tflite_runtime"), "torch": ("torch",)}


def _installed(module: str) -> Optional[str]:
    """Version of an installed top-level module without importing it (None if absent)."""
    import importlib.util

    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    for dist in _DISTRIBUTIONS.get(module, (module,)):
        version = _distribution_version(dist)
        if version is not None:
            return version
    return "unknown"


def _distribution_version(dist: str) -> Optional[str]:
    """Installed version of distribution ``dist``: importlib.metadata (3.8+), else pkg_resources, else None."""
    try:
        import importlib.metadata as metadata  # novermin - guarded: Python 3.8+
    except ImportError:
        metadata = None
    if metadata is not None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None
    try:
        import pkg_resources  # Python 3.6/3.7 with setuptools
    except ImportError:
        return None
    try:
        return pkg_resources.get_distribution(dist).version
    except Exception:  # noqa: BLE001 - DistributionNotFound or a broken install: unknown
        return None


def runtime_version(name: str) -> Optional[str]:
    """Version string of runtime ``name`` if installed here, else None (nothing is imported)."""
    if name == "tflite":
        for module in ("ai_edge_litert", "tflite_runtime"):
            version = _installed(module)
            if version is not None:
                return "{} {}".format(module, version)
        return None
    return _installed(name)


def _tflite_module():
    try:
        from ai_edge_litert import interpreter as tfl  # type: ignore
    except ImportError:
        from tflite_runtime import interpreter as tfl  # type: ignore
    return tfl


def facts(work_dir: str) -> dict:
    """Python, numpy, runtimes, CPU, governor, free disk: what this device runs with."""
    try:
        import numpy

        np_version = numpy.__version__
    except ImportError:
        np_version = None
    try:
        free = shutil.disk_usage(work_dir or ".").free
    except OSError:
        free = None
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").strip() or None
    return {
        "type": "info",
        "runner_format": RUNNER_FORMAT,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "numpy": np_version,
        "runtimes": {name: runtime_version(name) for name in RUNTIMES},
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu": cpu_model(),
        "cpu_features": cpu_features(),
        "cpu_count": os.cpu_count(),
        "governor": governor,
        "free_disk_bytes": free,
        "hostname": platform.node(),
    }


# -- runtimes --------------------------------------------------------------------------------------
class Backend:
    """Load one model from bytes and run it on a fixed random input."""

    def __init__(self, runtime: dict, bench: dict):
        self.runtime = runtime
        self.threads = int(bench.get("threads", 1))
        self.name = runtime.get("name", "onnxruntime")
        if self.name not in RUNTIMES:
            raise Fatal(f"unknown runtime {self.name!r}; use one of {', '.join(RUNTIMES)}")
        self.version = runtime_version(self.name)
        if self.version is not None:
            try:
                self._import()
            except ImportError as exc:
                raise Fatal(f"runtime {self.name} is installed but does not import with {sys.executable} "
                            f"({exc})") from None
        if self.version is None:
            raise Fatal(f"runtime {self.name} is not importable by {sys.executable}; install it on the device "
                        f"({_install_hint(self.name)})")

    def _import(self) -> None:
        if self.name == "onnxruntime":
            import onnxruntime  # noqa: F401
        elif self.name == "tflite":
            _tflite_module()
        else:
            import torch  # noqa: F401

    def load(self, data: bytes, shape: List[int], dtype: str):
        """Return a zero-argument callable that runs the model once."""
        import numpy as np

        rng = np.random.RandomState(0)  # default_rng needs numpy 1.17; JetPack 4 ships 1.13
        if self.name == "onnxruntime":
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            available = set(ort.get_available_providers())
            wanted = [p for p in self.runtime.get("providers") or ["CPUExecutionProvider"]]
            providers = [p for p in wanted if p in available]
            if not providers:
                raise Fatal(f"none of the execution providers {wanted} is available here "
                            f"(available: {sorted(available)})")
            sess = ort.InferenceSession(data, so, providers=providers)
            inp = sess.get_inputs()[0]
            x = rng.standard_normal(shape).astype(dtype)
            feed = {inp.name: x}
            return lambda: sess.run(None, feed)
        if self.name == "tflite":
            tfl = _tflite_module()
            delegates = []
            if self.runtime.get("delegate"):
                delegates = [tfl.load_delegate(self.runtime["delegate"])]
            it = tfl.Interpreter(model_content=data, num_threads=self.threads,
                                 experimental_delegates=delegates or None)
            it.allocate_tensors()
            detail = it.get_input_details()[0]
            x = rng.standard_normal(list(detail["shape"])).astype(detail["dtype"])
            index = detail["index"]

            def call():
                it.set_tensor(index, x)
                it.invoke()

            return call
        import torch

        torch.set_num_threads(self.threads)
        module = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
        x = torch.from_numpy(rng.standard_normal(shape).astype(dtype))

        def call_torch():
            with torch.inference_mode():
                module(x)

        return call_torch


def _install_hint(name: str) -> str:
    return {"onnxruntime": "pip install onnxruntime", "tflite": "pip install ai-edge-litert",
            "torch": "pip install torch"}[name]


def measure(call, warmup: int, repeats: int) -> dict:
    """Warm up, then time ``repeats`` calls; statistics in milliseconds."""
    for _ in range(warmup):
        call()
    times = []
    clock = time.perf_counter
    for _ in range(repeats):
        t0 = clock()
        call()
        times.append((clock() - t0) * 1e3)
    times.sort()
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    return {"median_ms": statistics.median(times), "mean_ms": sum(times) / len(times), "p90_ms": p90,
            "std_ms": statistics.pstdev(times) if len(times) > 1 else 0.0, "min_ms": times[0],
            "repeats": repeats, "warmup": warmup}


# -- bundle ----------------------------------------------------------------------------------------
def read_bundle_manifest(bundle: zipfile.ZipFile) -> dict:
    try:
        manifest = json.loads(bundle.read("manifest.json").decode("utf-8"))
    except (KeyError, ValueError) as exc:
        raise Fatal(f"bundle has no readable manifest.json ({exc})") from None
    if manifest.get("format") != RUNNER_FORMAT:
        raise Fatal(f"bundle manifest format {manifest.get('format')!r} is not {RUNNER_FORMAT}; "
                    "re-run the profiler with a matching ofa-edge")
    return manifest


def run_batch(bundle_path: str, results_path: str, only: Optional[List[str]]) -> int:
    """Measure the bundle's models (or the ``only`` subset, in manifest order); append results."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        raise Fatal(f"numpy is not importable by {sys.executable}; install it on the device "
                    "(pip install numpy)") from None
    with zipfile.ZipFile(bundle_path) as bundle:
        manifest = read_bundle_manifest(bundle)
        bench = manifest.get("bench", {})
        backend = Backend(manifest.get("runtime", {}), bench)
        models = manifest.get("models", [])
        if only is not None:
            wanted = set(only)
            unknown = wanted - {m["name"] for m in models}
            if unknown:
                raise Fatal(f"models not in the bundle: {sorted(unknown)[:5]}")
            models = [m for m in models if m["name"] in wanted]
        info = facts(os.path.dirname(os.path.abspath(results_path)))
        info.update(runtime=backend.name, runtime_version=backend.version, threads=backend.threads)
        emit(info)
        warmup, repeats = int(bench.get("warmup", 10)), int(bench.get("repeats", 50))
        with open(results_path, "a", encoding="utf-8") as results:
            for model in models:
                try:
                    call = backend.load(bundle.read(model["file"]), model.get("input_shape", []),
                                        model.get("input_dtype", "float32"))
                    stats = measure(call, warmup, repeats)
                except Fatal:
                    raise
                except Exception as exc:  # noqa: BLE001 - a broken model is reported, not fatal
                    emit({"type": "error", "name": model["name"], "message": f"{type(exc).__name__}: {exc}"})
                    continue
                stats.update(type="result", name=model["name"], runtime=backend.name,
                             runtime_version=backend.version, threads=backend.threads,
                             batch=int(bench.get("batch", 1)), settings=manifest.get("settings_id", ""))
                emit(stats, results)
    emit({"type": "done"})
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="ofa-edge on-device latency runner")
    parser.add_argument("--bundle", help="zip bundle with manifest.json and models (default: this zip)")
    parser.add_argument("--results", help="results file to append to (JSON lines)")
    parser.add_argument("--only", help="comma-separated model names to measure (default: all)")
    parser.add_argument("--info", action="store_true", help="print the device facts as JSON and exit")
    parser.add_argument("--work-dir", default=".", help="folder whose free disk space --info reports")
    args = parser.parse_args(argv)
    if args.info:
        emit(facts(args.work_dir))
        return 0
    bundle = args.bundle or (sys.argv[0] if zipfile.is_zipfile(sys.argv[0]) else None)
    if not bundle or not args.results:
        emit({"type": "fatal", "message": "usage: runner --bundle ZIP --results FILE [--only A,B]"})
        return 4
    only = [n for n in args.only.split(",") if n] if args.only else None
    try:
        return run_batch(bundle, args.results, only)
    except Fatal as exc:
        emit({"type": "fatal", "message": str(exc)})
        return 3
    except (OSError, zipfile.BadZipFile) as exc:
        emit({"type": "fatal", "message": f"cannot read bundle or results: {exc}"})
        return 3


if __name__ == "__main__":
    sys.exit(main())
