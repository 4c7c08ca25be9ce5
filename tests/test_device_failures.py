"""Device failures that say what happened: signals by name, one line instead of a paramiko traceback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ofa_edge.devices import DeviceError, load_profile, measure_models
from ofa_edge.latency.models import probe_model

ROOT = Path(__file__).resolve().parents[1]
sshd_mod = pytest.importorskip("sshd")
REASON = sshd_mod.available()


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


def crashing_python(folder: Path) -> Path:
    """A device 'python' that writes to stderr, then dies of a real SIGSEGV (a runtime crashing on import)."""
    path = folder / "crashing-python"
    path.write_text("#!/bin/sh\necho 'loading onnxruntime' >&2\necho 'cpuinfo: unknown CPU part' >&2\n"
                    f"exec {sys.executable} -c 'import ctypes; ctypes.string_at(0)'\n")
    path.chmod(0o755)
    return path


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_runtime_killed_by_a_signal_is_named_over_ssh(tmp_path, model_cache):
    server = sshd_mod.TestSSHD(tmp_path / "sshd").start()
    try:
        known = server.write_known_hosts(tmp_path / "known_hosts")
        path = tmp_path / "board.toml"
        path.write_text(server.profile_toml("board", known, tmp_path / "remote", str(crashing_python(tmp_path))))
        with pytest.raises(DeviceError) as err:
            measure_models(load_profile(path), [probe_model("onnxruntime", model_cache)], lambda msg: None)
    finally:
        server.stop()
    text = str(err.value)
    assert "runtime onnxruntime" in text and "crashed on the device: SIGSEGV (segmentation fault)" in text
    assert "cpuinfo: unknown CPU part" in text and "without an exit status" not in text


def test_runtime_killed_by_a_signal_is_named_locally(tmp_path, model_cache):
    path = tmp_path / "here.toml"
    path.write_text(f'format = 1\nname = "here"\n[connection]\ntransport = "local"\n[device]\n'
                    f'python = "{crashing_python(tmp_path)}"\nwork_dir = "{tmp_path / "w"}"\n')
    with pytest.raises(DeviceError, match=r"crashed on the device: SIGSEGV \(segmentation fault\).*unknown CPU"):
        measure_models(load_profile(path), [probe_model("onnxruntime", model_cache)], lambda msg: None)


@contextlib.contextmanager
def not_ssh_server(payload: bytes):
    """A TCP server on 127.0.0.1 that answers every connection with ``payload`` and closes it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if payload:
                conn.sendall(payload)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def _ofa_edge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ofa_edge", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _assert_one_line(out: subprocess.CompletedProcess, port: int) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "paramiko" not in out.stderr and "Exception (client)" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"127.0.0.1:{port} answered, but not as an SSH server" in lines[0] and "check the port (--port)" in lines[0]


@pytest.mark.parametrize("payload", [b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
                                     b"HTTP/1.1 200 OK\r\n", b""], ids=["http-400", "http-200-closes", "closes"])
def test_a_port_that_is_not_ssh_is_one_line_without_a_traceback(tmp_path, payload):
    with not_ssh_server(payload) as port:
        out = _ofa_edge("devices", "check", "x86-ssh", "--host", "127.0.0.1", "--port", str(port), cwd=ROOT)
    _assert_one_line(out, port)


def test_profile_against_a_port_that_is_not_ssh_is_one_line_and_writes_nothing(tmp_path):
    with not_ssh_server(b"HTTP/1.1 200 OK\r\n") as port:
        out = _ofa_edge("profile", "--device", "x86-ssh", "--host", "127.0.0.1", "--port", str(port), "--space",
                        "cifar-tiny", "-r", "24", "--tables", str(tmp_path / "tables"), "--cache",
                        str(tmp_path / "cache"), cwd=tmp_path)
    _assert_one_line(out, port)
    assert not (tmp_path / "tables").exists() or not any((tmp_path / "tables").iterdir())
