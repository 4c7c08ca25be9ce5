"""The exported-model cache that profilers (and test workers) share: a model file appears whole or not at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ofa_edge.io import atomic_path
from ofa_edge.latency.models import probe_model


def test_a_failed_writer_leaves_neither_the_file_nor_a_temp(tmp_path):
    target = tmp_path / "onnxruntime" / "b123_bs1.onnx"
    with pytest.raises(RuntimeError, match="converter crashed"), atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".onnx" and tmp != target
        tmp.write_bytes(b"half a mod")
        raise RuntimeError("converter crashed")
    assert list(target.parent.iterdir()) == []


def test_a_writer_that_writes_nothing_is_an_error(tmp_path):
    target = tmp_path / "m.tflite"
    with pytest.raises(OSError, match="left m.tflite empty"), atomic_path(target):
        pass
    assert list(tmp_path.iterdir()) == []


def test_readers_never_see_a_partial_model_while_it_is_written(tmp_path, monkeypatch):
    """A second profiler polling the cache sees no model file until the writer has finished it."""
    from ofa_edge.latency import models

    first = probe_model("onnxruntime", tmp_path / "a")
    target = tmp_path / "b" / first.path.relative_to(tmp_path / "a")
    real = models.exporter("onnxruntime")
    visible_while_writing: list[bool] = []

    def writer(model, path, shape):
        real(model, path, shape)
        visible_while_writing.append(target.exists())

    monkeypatch.setattr(models, "exporter", lambda runtime: writer)
    got = probe_model("onnxruntime", tmp_path / "b")
    assert visible_while_writing == [False] and got.path == target
    assert got.path.read_bytes() == first.path.read_bytes()
    assert [p.name for p in got.path.parent.iterdir()] == [got.path.name]


def test_two_processes_filling_one_cache_get_one_valid_model(tmp_path):
    """Two profilers exporting the same model at once: both end with the same, whole file."""
    import onnx

    code = ("import sys; from pathlib import Path; from ofa_edge.latency.models import probe_model; "
            "print(probe_model('onnxruntime', Path(sys.argv[1])).path)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    paths = [Path(p.communicate(timeout=300)[0].strip()) for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and paths[0] == paths[1]
    onnx.checker.check_model(onnx.load(str(paths[0])))
    assert [p.name for p in paths[0].parent.iterdir()] == [paths[0].name]
