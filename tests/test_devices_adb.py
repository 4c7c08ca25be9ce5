"""Android over adb with TFLite's benchmark_model, and trtexec, through fake `adb`, `benchmark_model` and
`trtexec` executables (tests/fakes) that run the real commands on this machine with the real runtimes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ofa_edge.cli import main
from ofa_edge.devices import TransportError, check_device, load_profile, measure_models
from ofa_edge.latency import ProfileInterrupted, ProfileOptions, load_table, profile_device
from ofa_edge.latency.models import probe_model
from ofa_edge.latency.profiler import table_paths
from ofa_edge.space import SearchSpace

pytest.importorskip("ai_edge_litert", reason="benchmark_model's fake runs TFLite models with ai-edge-litert")
FAKES = Path(__file__).parent / "fakes"
DATA = Path(__file__).parent / "data"
SERIAL = "emulator-5554"


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return Path(os.environ.get("OFA_EDGE_TEST_MODEL_CACHE") or tmp_path_factory.mktemp("model-cache"))


@pytest.fixture()
def fake_bin(tmp_path, monkeypatch) -> Path:
    """The fakes, with this interpreter in their shebang, first on PATH; one connected USB device."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("adb", "benchmark_model", "trtexec"):
        text = (FAKES / name).read_text().split("\n", 1)[1]
        (folder / name).write_text(f"#!{sys.executable}\n{text}")
        (folder / name).chmod(0o755)
    state = tmp_path / "adb-state"
    state.mkdir()
    (state / "serials").write_text(SERIAL + "\n")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_STATE", str(state))
    for var in ("FAKE_BM_FORMAT", "FAKE_BM_CRASH_ON", "FAKE_TRT_FORMAT", "ANDROID_SERIAL"):
        monkeypatch.delenv(var, raising=False)
    return folder


def adb_profile(tmp_path: Path, fake_bin: Path, serial: str = SERIAL, binary: str | None = None,
                extra: str = "") -> Path:
    path = tmp_path / "phone.toml"
    path.write_text(f'format = 1\nname = "phone"\n[connection]\ntransport = "adb"\nserial = "{serial}"\n'
                    f'connect_timeout = 5\ncommand_timeout = 120\n[device]\n'
                    f'work_dir = "{tmp_path / "data/local/tmp/ofa-edge"}"\n[runtime]\nname = "benchmark_model"\n'
                    f'binary = "{binary or fake_bin / "benchmark_model"}"\n{extra}\n'
                    "[benchmark]\nwarmup = 1\nrepeats = 5\nthreads = 1\nbatch = 1\n")
    return path


MICRO = SearchSpace(name="micro-test", width_mult=0.25, stem="cifar", ks_list=(3,), expand_list=(2,),
                    depth_list=(1,), resolutions=(16,))


def opts(tmp_path: Path, cache: Path, **kw) -> ProfileOptions:
    """The micro space of test_devices_ssh (11 layer models) and its one whole subnet."""
    base = dict(space=MICRO, resolutions=None, n_classes=10, calibrate=1, validate=0, batch_size=8,
                tables_dir=tmp_path / "tables", cache_dir=cache)
    base.update(kw)
    return ProfileOptions(**base)


def test_check_over_adb_pushes_the_binary_and_times_the_probe(tmp_path, fake_bin, model_cache):
    info = check_device(load_profile(adb_profile(tmp_path, fake_bin)), probe_model("benchmark_model", model_cache))
    assert info["runner_ok"] and info["probe_ms"] > 0 and info["machine"] == os.uname().machine
    assert info["target"] == f"phone (adb {SERIAL})" and info["cpu_count"] == os.cpu_count()
    pushed = list((tmp_path / "data/local/tmp/ofa-edge/bin").iterdir())
    assert len(pushed) == 1 and pushed[0].name.startswith("benchmark_model-") and os.access(pushed[0], os.X_OK)


@pytest.mark.parametrize("fmt", ["v2", "v1", "tf1.13-nostats.txt"])
def test_both_output_layouts_give_results(tmp_path, fake_bin, model_cache, monkeypatch, fmt):
    monkeypatch.setenv("FAKE_BM_FORMAT", str(DATA / "benchmark_model" / fmt) if fmt.endswith(".txt") else fmt)
    models = [probe_model("benchmark_model", model_cache)]
    got: list[dict] = []
    report = measure_models(load_profile(adb_profile(tmp_path, fake_bin)), models, got.append)
    assert report.measured == 1 and not report.failed, report.failed
    if fmt.endswith(".txt"):  # the recorded numbers come through unchanged
        assert got[0]["mean_ms"] == pytest.approx(41.0905) and got[0]["repeats"] == 50
    else:
        assert 0 < got[0]["min_ms"] <= got[0]["median_ms"] and got[0]["repeats"] == 5
    assert got[0]["runtime"] == "benchmark_model" and got[0]["settings"].startswith("benchmark_model|")


def test_profile_over_adb_then_resume_after_the_device_drops_mid_batch(tmp_path, fake_bin, model_cache):
    profile = load_profile(adb_profile(tmp_path, fake_bin))
    state = Path(os.environ["FAKE_ADB_STATE"])
    # each model costs 4 adb shells (mkdir once, mv, the run, ...): cut the cable after a few models
    (state / "drop_after").write_text("14")
    with pytest.raises((ProfileInterrupted, TransportError)) as err:
        profile_device(profile, opts(tmp_path, model_cache))
    assert "connected" in str(err.value) or "connection lost" in str(err.value)
    journal = table_paths(tmp_path / "tables", "phone", "benchmark_model")["journal"]
    first = len(journal.read_text().splitlines())
    assert first >= 2
    (state / "serials").write_text(SERIAL + "\n")  # plugged back in
    summary = profile_device(profile, opts(tmp_path, model_cache))
    table = load_table(summary.table)
    assert summary.recovered == first  # nothing measured twice
    assert summary.measured + first == summary.n_layers + summary.n_subnets
    assert table.provenance["runtime"] == "benchmark_model" and table.provenance["machine"] == os.uname().machine
    assert all(r.median_ms > 0 for r in table.rows.values())


def test_crash_is_named_and_other_models_still_run(tmp_path, fake_bin, model_cache, monkeypatch):
    from ofa_edge.latency.models import block_model
    from ofa_edge.latency.blocks import enumerate_blocks

    specs = enumerate_blocks(MICRO, (16,), 10)[:2]
    models = [block_model(s, "benchmark_model", model_cache) for s in specs]
    monkeypatch.setenv("FAKE_BM_CRASH_ON", models[0].name)
    got: list[dict] = []
    report = measure_models(load_profile(adb_profile(tmp_path, fake_bin)), models, got.append)
    assert [m["name"] for m in got] == [models[1].name]
    assert "SIGSEGV (segmentation fault)" in report.failed[models[0].name]
    assert "Applying delegate" in report.failed[models[0].name]  # the last stderr lines come with it


def test_binary_missing_on_the_device_stops_with_a_clear_line(tmp_path, fake_bin, model_cache, capsys):
    path = adb_profile(tmp_path, fake_bin, binary="/data/local/tmp/no-such-benchmark_model")
    code = main(["devices", "check", str(path), "--cache", str(model_cache)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot run there (exit 127" in err and "runtime.binary" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("setup, needle", [
    (lambda s: (s / "unauthorized").write_text(SERIAL), "Allow USB debugging"),
    (lambda s: (s / "serials").write_text(""), "not ready"),
])
def test_device_states_are_explained(tmp_path, fake_bin, model_cache, capsys, setup, needle):
    setup(Path(os.environ["FAKE_ADB_STATE"]))
    code = main(["devices", "check", str(adb_profile(tmp_path, fake_bin)), "--cache", str(model_cache)])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err


def test_wireless_adb_connects_or_says_how_to_enable_it(tmp_path, fake_bin, model_cache, capsys):
    info = check_device(load_profile(adb_profile(tmp_path, fake_bin, serial="127.0.0.1:5555")))
    assert info["target"] == "phone (adb 127.0.0.1:5555)"
    (Path(os.environ["FAKE_ADB_STATE"]) / "refuse").write_text("10.0.0.9:5555")
    code = main(["devices", "check", str(adb_profile(tmp_path, fake_bin, serial="10.0.0.9:5555")),
                 "--cache", str(model_cache)])
    err = capsys.readouterr().err
    assert code == 2 and "Connection refused" in err and "wireless debugging" in err


def test_missing_adb_executable_is_named(tmp_path, fake_bin, capsys, monkeypatch):
    path = adb_profile(tmp_path, fake_bin, extra="")
    path.write_text(path.read_text().replace('transport = "adb"', 'transport = "adb"\nadb = "no-such-adb"'))
    code = main(["devices", "check", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "'no-such-adb' is not found" in err and "platform-tools" in err


@pytest.mark.parametrize("text, needle", [
    ('[connection]\ntransport = "adb"\n[runtime]\nname = "benchmark_model"\nbinary = "bm"', "connection.serial"),
    ('[connection]\ntransport = "adb"\nserial = "x"\n[runtime]\nname = "onnxruntime"', "Termux"),
    ('[connection]\ntransport = "adb"\nserial = "x"\n[runtime]\nname = "benchmark_model"', "runtime.binary"),
    ('[runtime]\nname = "trtexec"\nprecision = "fp8"', "runtime.precision"),
    ('[runtime]\nname = "benchmark_model"\nbinary = "b"\ncpu_mask = "zz"', "hexadecimal CPU mask"),
])
def test_bad_tool_profiles_name_the_key(tmp_path, text, needle, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(f"format = 1\n{text}\n")
    assert main(["devices", "check", str(path)]) == 2
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize("fmt, version", [("8.0", "8.0.1"), ("8.5", "8.5.2"), ("trt10.3-jp6.1.txt", "10.3.0")])
def test_trtexec_runtime_every_layout(tmp_path, fake_bin, model_cache, monkeypatch, fmt, version):
    monkeypatch.setenv("FAKE_TRT_FORMAT", str(DATA / "trtexec" / fmt) if fmt.endswith(".txt") else fmt)
    path = tmp_path / "jetson.toml"
    path.write_text(f'format = 1\nname = "jetson"\n[connection]\ntransport = "local"\n[device]\n'
                    f'work_dir = "{tmp_path / "jetson-home"}"\n[runtime]\nname = "trtexec"\n'
                    f'binary = "{fake_bin / "trtexec"}"\nprecision = "fp16"\nwarmup_ms = 20\n'
                    "[benchmark]\nwarmup = 1\nrepeats = 7\n")
    got: list[dict] = []
    report = measure_models(load_profile(path), [probe_model("trtexec", model_cache)], got.append)
    assert report.measured == 1 and not report.failed, report.failed
    assert report.info["runtime_version"] == f"TensorRT {version}"
    if fmt.endswith(".txt"):
        assert got[0]["median_ms"] == pytest.approx(0.14551) and got[0]["repeats"] == 100
    else:
        assert got[0]["repeats"] == 7 and 0 < got[0]["min_ms"] <= got[0]["median_ms"]


def test_failed_profile_leaves_no_empty_table_folder(tmp_path, fake_bin, model_cache, capsys):
    (Path(os.environ["FAKE_ADB_STATE"]) / "serials").write_text("")  # the phone is unplugged
    tables = tmp_path / "latency_tables"
    code = main(["profile", "--device", str(adb_profile(tmp_path, fake_bin)), "--space", "cifar-tiny",
                 "--resolutions", "24", "--calibrate", "1", "--validate", "0", "--tables", str(tables),
                 "--cache", str(model_cache)])
    err = capsys.readouterr().err
    assert code == 2 and "not ready" in err and "Traceback" not in err
    assert not (tables / "phone").exists()
