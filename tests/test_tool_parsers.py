"""Parsers of TFLite benchmark_model and TensorRT trtexec outputs, on recorded outputs of each layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_budget import fuzz_settings
from ofa_edge.devices import benchmark_model, trtexec
from ofa_edge.devices.toolout import ToolOutputError

DATA = Path(__file__).parent / "data"


def read(tool: str, name: str) -> str:
    return (DATA / tool / name).read_text()


@pytest.mark.parametrize("name, mean, median, p90, std, min_, repeats, approximated", [
    ("tf2.16-android-xnnpack.txt", 0.40726, 0.398, 0.489, 0.038, 0.383, 50, ["p90_ms"]),
    ("tf2.4-linux.txt", 1.30185, 1.30185, 1.30185 + 1.2816 * 0.029, 0.029, 1.271, 20, ["median_ms", "p90_ms"]),
    ("tf1.14-average.txt", 208.466, 208.466, 208.466 + 1.2816 * 152.312, 152.312, 178.215, 30,
     ["median_ms", "p90_ms"]),
    ("tf1.13-nostats.txt", 41.0905, 41.0905, 41.0905 + 1.2816 * 1.308, 1.308, 39.718, 50, ["median_ms", "p90_ms"]),
])
def test_benchmark_model_layouts(name, mean, median, p90, std, min_, repeats, approximated):
    got = benchmark_model.parse_output(read("benchmark_model", name))
    assert got["mean_ms"] == pytest.approx(mean) and got["median_ms"] == pytest.approx(median)
    assert got["p90_ms"] == pytest.approx(p90) and got["std_ms"] == pytest.approx(std)
    assert got["min_ms"] == pytest.approx(min_) and got["repeats"] == repeats
    assert got["approximated"] == approximated


def test_benchmark_model_scientific_notation_and_timed_count_line():
    got = benchmark_model.parse_output(read("benchmark_model", "tf1.14-average.txt"))
    assert got["init_ms"] == pytest.approx(2950.34)  # "Init: 2.95034e+06" us
    # the statistics come from the timed runs' count line (30 runs), not the warm-up's (3 runs)
    assert got["repeats"] == 30 and got["warmup_mean_ms"] == pytest.approx(194.321)
    new = benchmark_model.parse_output(read("benchmark_model", "tf2.16-android-xnnpack.txt"))
    assert new["first_ms"] == pytest.approx(1.893) and new["init_ms"] == pytest.approx(9.871)


def test_benchmark_model_failure_names_its_last_lines():
    with pytest.raises(ToolOutputError) as err:
        benchmark_model.parse_output(read("benchmark_model", "failed-op.txt"))
    assert "no 'Inference timings in us' summary" in str(err.value) and "Benchmarking failed." in str(err.value)
    with pytest.raises(ToolOutputError, match="no output"):
        benchmark_model.parse_output("")


def test_benchmark_model_command_pins_runs_threads_xnnpack_and_cores():
    opts = benchmark_model.BenchmarkModelOptions(threads=4, repeats=30, warmup=5, use_xnnpack=False, cpu_mask="f0")
    argv = benchmark_model.command("/data/local/tmp/bm", "/data/local/tmp/m.tflite", opts)
    assert argv[:3] == ["taskset", "f0", "/data/local/tmp/bm"]
    assert {"--graph=/data/local/tmp/m.tflite", "--num_threads=4", "--num_runs=30", "--warmup_runs=5",
            "--use_xnnpack=false", "--min_secs=0", "--warmup_min_secs=0"} <= set(argv)
    assert benchmark_model.command("bm", "m", benchmark_model.BenchmarkModelOptions())[0] == "bm"


@pytest.mark.parametrize("name, version, median, mean, min_, p90, std, host, approximated", [
    ("trt8.0-jp4.6.txt", "8.0.1", 0.6038, 0.6075, 0.5866, 0.7659, (0.7659 - 0.6038) / 2.326, 0.6477,
     ["p90_ms", "std_ms"]),
    ("trt8.2-jp4.6.1.txt", "8.2.1", 0.4039, 0.4063, 0.3957, 0.5044, (0.5044 - 0.4039) / 2.326, 0.4473,
     ["p90_ms", "std_ms"]),
    ("trt8.5-jp5.1.txt", "8.5.2", 1.3116, 1.3223, 1.2427, 1.3692, 0.0641275 * 1.3223, 1.3604, []),
    ("trt10.3-jp6.1.txt", "10.3.0", 0.14551, 0.1473, 0.13916, 0.15234, (0.22705 - 0.14551) / 2.326, 0.17285,
     ["std_ms"]),
])
def test_trtexec_layouts(name, version, median, mean, min_, p90, std, host, approximated):
    got = trtexec.parse_output(read("trtexec", name))
    assert got["runtime_version"] == f"TensorRT {version}" and got["repeats"] == 100
    assert got["median_ms"] == pytest.approx(median) and got["mean_ms"] == pytest.approx(mean)
    assert got["min_ms"] == pytest.approx(min_) and got["p90_ms"] == pytest.approx(p90)
    assert got["std_ms"] == pytest.approx(std) and got["host_median_ms"] == pytest.approx(host)
    assert got["approximated"] == approximated


def test_trtexec_failure_is_an_error_naming_the_last_lines():
    with pytest.raises(ToolOutputError) as err:
        trtexec.parse_output(read("trtexec", "failed-parse.txt"))
    assert "trtexec failed" in str(err.value) and "Engine set up failed" in str(err.value)


def test_trtexec_command_precision_iterations_and_timing_cache():
    opts = trtexec.TrtexecOptions(precision="int8", warmup_ms=500, iterations=40, avg_runs=10,
                                  timing_cache="/w/t.cache")
    argv = trtexec.command("/usr/src/tensorrt/bin/trtexec", "/w/m.onnx", opts)
    assert argv[0] == "/usr/src/tensorrt/bin/trtexec"
    assert {"--onnx=/w/m.onnx", "--warmUp=500", "--iterations=40", "--duration=0", "--avgRuns=10", "--int8",
            "--timingCacheFile=/w/t.cache"} <= set(argv)
    assert not any(a in ("--fp16", "--int8") for a in trtexec.command("t", "m", trtexec.TrtexecOptions("fp32")))


def _damaged(tool: str):
    """A recorded output of ``tool`` with one slice replaced by arbitrary text."""
    files = sorted(p.name for p in (DATA / tool).glob("*.txt"))
    return st.tuples(st.sampled_from(files), st.integers(0, 6000), st.integers(0, 200), st.text(max_size=40)).map(
        lambda t: (lambda text: text[:t[1]] + t[3] + text[t[1] + t[2]:])(read(tool, t[0])))


def _plausible_or_refused(parse, text: str) -> None:
    try:
        got = parse(text)
    except ToolOutputError:
        return
    assert all(0 <= got[k] < float("inf") for k in ("median_ms", "mean_ms", "p90_ms", "std_ms", "min_ms"))


@fuzz_settings("benchmark-model-output")
@given(_damaged("benchmark_model"))
def test_damaged_benchmark_model_output_is_refused_or_plausible(text):
    _plausible_or_refused(benchmark_model.parse_output, text)


@fuzz_settings("trtexec-output")
@given(_damaged("trtexec"))
def test_damaged_trtexec_output_is_refused_or_plausible(text):
    _plausible_or_refused(trtexec.parse_output, text)
