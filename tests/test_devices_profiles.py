"""Device profiles (schema, registry, overrides), the runner's messages as data, and the runner's imports."""

from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_budget import fuzz_settings
from ofa_edge.cli import main
from ofa_edge.devices import get_device, known_devices, list_devices, load_profile, parse_line, search_path
from ofa_edge.devices import runner
from ofa_edge.devices.registry import PACKAGE_DIR
from ofa_edge.devices.transport import quote_command
from ofa_edge.errors import OfaEdgeError

REQUIRED = {"jetson-nano", "jetson-xavier", "jetson-orin-nano", "raspberry-pi-4", "raspberry-pi-5",
            "raspberry-pi-emulated", "android", "android-adb", "x86-ssh", "x86-local"}


def test_packaged_profiles_load_and_cover_the_devices():
    known = list_devices()
    assert REQUIRED <= set(known)
    for name in REQUIRED:
        p = load_profile(PACKAGE_DIR / f"{name}.toml")
        assert p.name == name and p.description
        assert p.connection.trust_on_first_use is False
        assert (p.connection.transport == "local") == (name == "x86-local")
    assert load_profile(PACKAGE_DIR / "raspberry-pi-4.toml").runtime.name == "tflite"
    android = load_profile(PACKAGE_DIR / "android.toml")
    assert android.connection.port == 8022 and android.runtime.name == "tflite"
    assert "python-tflite-runtime" in (PACKAGE_DIR / "android.toml").read_text()
    adb = load_profile(PACKAGE_DIR / "android-adb.toml")
    assert (adb.connection.transport, adb.runtime.name) == ("adb", "benchmark_model")
    assert [load_profile(PACKAGE_DIR / f"{n}.toml").runtime.name for n in ("jetson-nano", "jetson-orin-nano")] \
        == ["trtexec", "trtexec"]
    assert "TensorrtExecutionProvider" in load_profile(PACKAGE_DIR / "jetson-xavier.toml").runtime.providers
    for name, text in (("jetson-nano", "Python 3.6"), ("jetson-xavier", "Python 3.8"),
                       ("jetson-orin-nano", "Python 3.10"), ("raspberry-pi-emulated", "timings meaningless")):
        assert text in load_profile(PACKAGE_DIR / f"{name}.toml").description


GOOD = """format = 1
name = "board"
[connection]
transport = "ssh"
host = "10.0.0.2"
port = 22
[runtime]
name = "onnxruntime"
[benchmark]
repeats = 20
"""


@pytest.mark.parametrize("text,needle", [
    (GOOD.replace("repeats = 20", "repeat = 20"), "unknown key benchmark.repeat (did you mean 'repeats'?)"),
    (GOOD.replace('host = "10.0.0.2"\n', ""), "connection.host is missing"),
    (GOOD.replace("port = 22", "port = 70000"), "connection.port 70000 is out of range"),
    (GOOD.replace("port = 22", 'port = "22"'), "connection.port must be an integer"),
    (GOOD.replace('transport = "ssh"', 'transport = "telnet"'), "connection.transport 'telnet'"),
    (GOOD.replace('name = "onnxruntime"', 'name = "tensorrt"'), "runtime.name 'tensorrt'"),
    (GOOD + "colour = 3\n", "unknown key benchmark.colour"),
    ("hots = 1\n" + GOOD, "unknown key 'hots'"),
    (GOOD.replace("format = 1", "format = 2"), "format = 2 is not supported"),
    (GOOD.replace("repeats = 20", "repeats = 0"), "benchmark.repeats = 0 is out of range"),
    (GOOD.replace("repeats = 20", "repeats = 20\nstatistic = \"mean\""),
     "benchmark.statistic = 'mean' is not one of median, min"),
    (GOOD.replace("repeats = 20", "repeats = 20\nmin_span_s = -1"),
     "benchmark.min_span_s must be a non-negative number of seconds"),
    (GOOD.replace('host = "10.0.0.2"', 'host = "-oProxyCommand=x"'), "not a valid host name"),
    (GOOD + "[device]\npython = \"current\"\n", "only works with transport = \"local\""),
    ("name = [", "not valid TOML"),
])
def test_bad_profiles_name_file_key_and_fix(tmp_path, text, needle):
    path = tmp_path / "board.toml"
    path.write_text(text)
    with pytest.raises(OfaEdgeError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and needle in str(err.value)
    assert main(["devices", "check", str(path)]) == 2


def test_overrides_and_registry(tmp_path, monkeypatch):
    (tmp_path / "mine.toml").write_text(GOOD.replace('name = "board"', 'name = "mine"'))
    monkeypatch.setenv("OFA_EDGE_DEVICES", str(tmp_path))
    p = get_device("mine", host="192.168.9.9", port=2222, user="ci")
    assert (p.connection.host, p.connection.port, p.connection.user) == ("192.168.9.9", 2222, "ci")
    assert get_device("x86-local", host="box").connection.transport == "ssh"
    with pytest.raises(OfaEdgeError, match="out of range"):
        get_device("mine", port=0)
    with pytest.raises(OfaEdgeError) as err:
        get_device("rasberry-pi-4")
    assert "known devices:" in str(err.value) and "raspberry-pi-4" in str(err.value) and "mine" in str(err.value)


def test_devices_list_json(capsys):
    assert main(["devices", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert REQUIRED <= {r["name"] for r in rows}


def _profile(folder: Path, name: str, threads: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(GOOD.replace('name = "board"', f'name = "{name}"') + f"threads = {threads}\n")
    return path


def test_profiles_resolve_from_cwd_then_env_folders_then_the_package(tmp_path, monkeypatch, capsys):
    cwd, env1, env2 = tmp_path / "project", tmp_path / "env1", tmp_path / "env2"
    _profile(cwd / "device_profiles", "x86-local", 3)         # overrides the packaged one
    _profile(env1, "x86-local", 5)                              # loses to ./device_profiles
    _profile(env1, "jetson-nano", 6)                            # overrides the packaged one
    _profile(env1, "board-a", 7)
    _profile(env2, "board-a", 8)                                # the first $OFA_EDGE_DEVICES folder wins
    _profile(env2, "board-b", 9)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("OFA_EDGE_DEVICES", os.pathsep.join([str(env1), str(env2)]))
    known = known_devices()
    assert [s for s, _ in search_path()] == ["cwd", "env", "env", "packaged"]
    assert {n: (d.source, d.path.parent) for n, d in known.items() if n in ("x86-local", "jetson-nano", "board-a",
                                                                             "board-b", "raspberry-pi-4")} == {
        "x86-local": ("cwd", Path("device_profiles").resolve()), "jetson-nano": ("env", env1),
        "board-a": ("env", env1), "board-b": ("env", env2), "raspberry-pi-4": ("packaged", PACKAGE_DIR)}
    threads = [get_device(n).benchmark.threads for n in ("x86-local", "jetson-nano", "board-a", "board-b")]
    assert threads == [3, 6, 7, 9]
    assert get_device("jetson-xavier").connection.transport == "ssh"  # untouched packaged profiles still resolve

    assert main(["devices", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {n: rows[n]["source"] for n in ("x86-local", "jetson-nano", "board-b", "android")} == {
        "x86-local": "cwd", "jetson-nano": "env", "board-b": "env", "android": "packaged"}
    assert rows["x86-local"]["threads"] == 3 and Path(rows["board-b"]["path"]) == env2 / "board-b.toml"
    assert main(["devices", "list"]) == 0
    cells = [[c.strip() for c in line.strip("│ ").split("│")] for line in capsys.readouterr().out.splitlines()]
    shown = {row[0]: row for row in cells}
    assert "cwd" in shown["x86-local"] and "env" in shown["jetson-nano"] and "packaged" in shown["android"]


def test_in_the_checkout_root_the_profiles_folder_is_the_packaged_one(monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    monkeypatch.delenv("OFA_EDGE_DEVICES", raising=False)
    assert PACKAGE_DIR == Path("device_profiles").resolve()
    assert {d.source for d in known_devices().values()} == {"packaged"} and REQUIRED <= set(known_devices())


def test_quote_command_keeps_metacharacters_literal():
    import shlex

    argv = ["python3; rm -rf /", "$(id)", "`id`", "a b", "it's", "x\ny"]
    assert shlex.split(quote_command(argv)) == argv


def test_runner_messages_are_validated_data():
    ok = {"type": "result", "name": "b0123", "median_ms": 1.0, "mean_ms": 1.1, "p90_ms": 1.3, "std_ms": 0.1,
          "min_ms": 0.9, "repeats": 5, "warmup": 1, "threads": 1, "batch": 1, "runtime": "onnxruntime",
          "runtime_version": "1", "settings": "s", "extra": "ignored"}
    got = parse_line(json.dumps(ok))
    assert got["median_ms"] == 1.0 and "extra" not in got
    for bad in ({"name": "../../etc/passwd"}, {"name": "/abs"}, {"median_ms": float("nan")},
                {"mean_ms": -1}, {"p90_ms": 1e12}, {"repeats": "5"}, {"min_ms": True}, {"type": "exec"}):
        assert parse_line(json.dumps({**ok, **bad})) is None
    assert parse_line("not json") is None and parse_line('["result"]') is None


@fuzz_settings("runner-line")
@given(st.one_of(st.text(max_size=300), st.dictionaries(
    st.sampled_from(["type", "name", "median_ms", "mean_ms", "p90_ms", "std_ms", "min_ms", "repeats", "warmup",
                     "threads", "batch", "message", "settings"]),
    st.one_of(st.sampled_from(["result", "error", "fatal", "info", "b1", "../x"]), st.floats(), st.integers(),
              st.text(max_size=20), st.none(), st.booleans()), max_size=13).map(json.dumps)))
def test_runner_message_fuzz(line):
    msg = parse_line(line)
    if msg is not None and msg["type"] == "result":
        assert all(math.isfinite(msg[k]) and 0 <= msg[k] <= 1e6
                   for k in ("median_ms", "mean_ms", "p90_ms", "std_ms", "min_ms"))
        assert "/" not in msg["name"] and not msg["name"].startswith(".")


def test_runner_imports_only_stdlib_numpy_and_runtimes():
    tree = ast.parse(Path(runner.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    allowed = {"argparse", "io", "json", "os", "platform", "shutil", "statistics", "sys", "time", "typing",
               "zipfile", "importlib", "pkg_resources", "numpy", "onnxruntime", "ai_edge_litert", "tflite_runtime", "torch"}
    assert names <= allowed, names - allowed


def test_runner_measure_statistics():
    calls = []
    stats = runner.measure(lambda: calls.append(1), warmup=3, repeats=11)
    assert len(calls) == 14 and stats["repeats"] == 11
    assert stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"] and stats["std_ms"] >= 0


def test_devices_list_is_readable_at_80_columns():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "ofa_edge", "devices", "list"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(ln) for ln in lines) <= 80
    from ofa_edge.devices import list_devices

    for name in list_devices():
        assert any(f" {name} " in ln for ln in lines), name  # every name whole, never cut
