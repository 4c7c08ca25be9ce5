"""An emulated Raspberry Pi (arm64 Debian under qemu-user, its own sshd): the runner, numpy and the aarch64
runtime wheels over the real SSH path. Emulated timings mean nothing; machine, tables and resume do."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

import emulated_rpi
from ofa_edge.cli import main
from ofa_edge.devices import check_device, load_profile
from ofa_edge.latency import ProfileInterrupted, ProfileOptions, load_table, profile_device
from ofa_edge.latency.blocks import enumerate_blocks
from ofa_edge.latency.models import probe_model
from ofa_edge.latency.profiler import table_paths
from ofa_edge.space import get_space

REASON = emulated_rpi.available()
pytestmark = [pytest.mark.skipif(REASON is not None, reason=REASON or ""), pytest.mark.slow,
              pytest.mark.timeout(3600)]
RES = (24,)


@pytest.fixture(scope="module")
def pi():
    device = emulated_rpi.EmulatedPi(emulated_rpi.CACHE / "instances" / str(os.getpid())).start()
    yield device
    device.destroy()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return Path(os.environ.get("OFA_EDGE_TEST_MODEL_CACHE") or tmp_path_factory.mktemp("model-cache"))


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return tmp_path_factory.mktemp("tables")


def write_profile(pi, folder: Path, name: str, runtime: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(pi.profile_toml(name, runtime))
    return path


def opts(tables: Path, cache: Path, batch_size: int = 64) -> ProfileOptions:
    return ProfileOptions(space="cifar-tiny", resolutions=RES, n_classes=10, calibrate=4, validate=4,
                          batch_size=batch_size, tables_dir=tables, cache_dir=cache)


@pytest.mark.parametrize("runtime, version", [("tflite", "ai_edge_litert 2.3.0"), ("onnxruntime", "1.32.0")])
def test_check_reports_an_aarch64_board_and_runs_the_probe(pi, tmp_path, cache, runtime, version):
    info = check_device(load_profile(write_profile(pi, tmp_path, "rpi-emu", runtime)), probe_model(runtime, cache))
    assert info["machine"] == "aarch64" and info["system"] == "Linux" and info["cpu"] == "BCM2835"
    assert info["python"].startswith("3.11.") and info["python_executable"] == "/opt/rt/bin/python"
    assert info["runtime_version"] == version and info["runner_ok"] and info["probe_ms"] > 0


def test_profile_tflite_writes_a_whole_aarch64_table(pi, tmp_path, cache, tables):
    profile = load_profile(write_profile(pi, tmp_path, "rpi-emu", "tflite"))
    result = profile_device(profile, opts(tables, cache))
    emulated_rpi.LOG.append(f"profile tflite cifar-tiny r={RES[0]}: {result.measured} models measured "
                            f"(export + measure) in {result.wall_s:.0f} s")
    table = load_table(result.table)
    assert len(table) == len(enumerate_blocks(get_space("cifar-tiny"), RES, 10)) == result.n_layers
    assert table.provenance["machine"] == "aarch64" and table.provenance["runtime_version"] == "ai_edge_litert 2.3.0"
    assert all(row.median_ms > 0 for row in table.rows.values()) and result.metrics["n"] == 4


def test_killing_sshd_mid_profile_then_rerun_measures_only_the_rest(pi, tmp_path, cache, tables):
    profile = load_profile(write_profile(pi, tmp_path, "rpi-emu", "onnxruntime"))
    killed = threading.Event()

    def progress(device, stage, done, total):
        if stage == "measure" and done >= 12 and not killed.is_set():
            killed.set()
            pi.kill_sshd()

    with pytest.raises(ProfileInterrupted) as err:  # 8 models per runner command: 7 commands
        profile_device(profile, opts(tables, cache, batch_size=8), progress=progress)
    journal = table_paths(tables, "rpi-emu", "onnxruntime")["journal"]
    kept = len(journal.read_text().splitlines())
    total = err.value.kept + err.value.missing
    assert killed.is_set() and err.value.kept == kept and 12 <= kept < total
    pi.start()  # the board is back (same root, same host key)
    result = profile_device(profile, opts(tables, cache, batch_size=8))
    emulated_rpi.LOG.append(f"profile onnxruntime cifar-tiny r={RES[0]} after the sshd kill: {result.measured} "
                            f"models measured, {result.recovered} recovered, in {result.wall_s:.0f} s")
    # the journal's results, plus any the runner wrote on the board but could not send, are not measured again
    assert result.recovered >= kept and result.measured + result.recovered == total
    table = load_table(result.table)
    assert len(table) == result.n_layers and table.provenance["machine"] == "aarch64"
    assert not journal.exists()


def test_specialize_measure_and_build_run_the_tflite_artefact_on_it(pi, tmp_path, cache, tables, monkeypatch,
                                                                      capsys):
    from ofa_edge.train import TrainConfig, train

    folder = tmp_path / "devices"
    folder.mkdir()
    write_profile(pi, folder, "rpi-emu", "tflite")
    monkeypatch.setenv("OFA_EDGE_DEVICES", str(folder))
    train(TrainConfig(space="cifar-tiny", out=str(tmp_path / "run"), epochs=1, batch_size=25, steps_per_epoch=2,
                      bn_images=50, eval_every=0))
    ckpt = tmp_path / "run" / "supernet.pt"
    code = main(["specialize", "--checkpoint", str(ckpt), "--device", "rpi-emu", "--latency", "1000ms",
                 "--selector", "last-sampled", "--export", "tflite", "--measure", "--tables", str(tables),
                 "--bn-images", "50", "--out", str(tmp_path / "builds"), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    manifest = json.loads(out.out)[0]
    assert manifest["latency_ms"]["measured"] > 0 and manifest["resolution"] in RES
    (tmp_path / "targets.toml").write_text(
        'format = "ofa-edge-targets/1"\n'
        f'checkpoint = "{ckpt}"\ntables = "{tables}"\nout = "{tmp_path / "matrix"}"\nformats = ["tflite"]\n'
        'devices = ["rpi-emu"]\nbudgets = ["1000ms"]\nselector = "last-sampled"\nmeasure = true\n')
    code = main(["build", str(tmp_path / "targets.toml"), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    built = json.loads(out.out)
    folder = next(Path(p) for p in [tmp_path / "matrix" / "rpi-emu"] if p.exists())
    manifests = [json.loads(p.read_text()) for p in folder.rglob("manifest.json")]
    assert manifests and all(m["latency_ms"]["measured"] > 0 for m in manifests), built
    assert all(any(f["path"].endswith(".tflite") for f in m["files"]) for m in manifests)
