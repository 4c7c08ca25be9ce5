"""Profiling through a real OpenSSH server on 127.0.0.1 (and locally): tables, host keys, injection, faults."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import sys
from pathlib import Path

import pytest

from ofa_edge.cli import main
from ofa_edge.devices import TransportError, check_device, load_profile, measure_models
from ofa_edge.devices.ssh import HostKeyRefused
from ofa_edge.latency import ProfileInterrupted, ProfileOptions, load_table, load_validation, profile_device
from ofa_edge.latency.profiler import profile_fleet, table_paths
from ofa_edge.latency.models import probe_model
from ofa_edge.space import SearchSpace

sshd_mod = pytest.importorskip("sshd")
REASON = sshd_mod.available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    server = sshd_mod.TestSSHD(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


def write_profile(sshd, folder: Path, name: str = "loop", **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    known = kw.pop("known_hosts", None) or sshd.write_known_hosts(folder / "known_hosts")
    path = folder / f"{name}.toml"
    path.write_text(sshd.profile_toml(name, known, kw.pop("work_dir", folder / "remote"),
                                      kw.pop("python", sys.executable), **kw))
    return path


def local_profile(folder: Path, name: str = "here", python: str = "current", runtime: str = "onnxruntime") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'format = 1\nname = "{name}"\n[connection]\ntransport = "local"\n[device]\n'
                    f'python = "{python}"\nwork_dir = "{folder / "local-remote"}"\n[runtime]\nname = "{runtime}"\n'
                    "[benchmark]\nwarmup = 1\nrepeats = 3\nthreads = 1\nbatch = 1\n")
    return path


def opts(tmp_path: Path, cache: Path, **kw) -> ProfileOptions:
    base = dict(space="cifar-tiny", resolutions=(24,), n_classes=10, calibrate=4, validate=3, batch_size=16,
                tables_dir=tmp_path / "tables", cache_dir=cache)
    base.update(kw)
    return ProfileOptions(**base)


def sha256_fingerprint(pub_path: Path) -> str:
    b64 = Path(pub_path).read_text().split()[1]
    return "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(b64)).digest()).decode().rstrip("=")


def test_fleet_ssh_and_local_same_rows_and_resume_is_free(sshd, model_cache, tmp_path):
    ssh = load_profile(write_profile(sshd, tmp_path))
    here = load_profile(local_profile(tmp_path))
    o = opts(tmp_path, model_cache)
    results = profile_fleet([ssh, here], o)  # both devices at once
    r_ssh, r_local = results["loop"], results["here"]
    assert not isinstance(r_ssh, Exception), r_ssh
    assert not isinstance(r_local, Exception), r_local
    t_ssh, t_local = load_table(r_ssh.table), load_table(r_local.table)
    assert list(t_ssh.rows) == list(t_local.rows)
    assert len(t_ssh) == r_ssh.n_layers == 46  # cifar-tiny @24: 2 + 5 stages x 2 slots x 4 (k, e) + 4 head
    total = r_ssh.n_layers + r_ssh.n_subnets
    assert r_ssh.measured == total and r_ssh.uploads == 1 and r_ssh.commands == -(-total // 16)
    assert t_ssh.provenance["transport"] == "ssh" and t_ssh.provenance["runtime_version"]
    assert t_ssh.provenance["cpu"] and t_ssh.provenance["threads"] == 1
    settings, rows = load_validation(r_ssh.validation)
    assert sorted(r.split for r in rows) == ["fit"] * 4 + ["test"] * 3
    for r in rows:  # predictions in the file follow the stored correction
        assert r.predicted_ms == pytest.approx(t_ssh.correction.apply(r.raw_ms, r.n_layers), rel=1e-4)
    assert r_ssh.metrics["n"] == 3 and set(r_ssh.metrics) >= {"mape", "within_10pct", "kendall_tau"}
    again = profile_device(ssh, o)
    assert again.measured == 0 and again.commands == 0 and again.uploads == 0 and again.reused == total


def test_unknown_host_key_refused_with_fingerprint(sshd, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    profile = load_profile(write_profile(sshd, tmp_path, known_hosts=empty))
    with pytest.raises(HostKeyRefused) as err:
        check_device(profile)
    assert sha256_fingerprint(Path(f"{sshd.host_key}.pub")) in str(err.value)
    assert "trust_on_first_use" in str(err.value)
    assert empty.read_text() == ""


def test_changed_host_key_refused(sshd, tmp_path):
    other = sshd_mod.keygen(tmp_path / "other_host_key")
    kind, b64 = Path(f"{other}.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {b64}\n")
    profile = load_profile(write_profile(sshd, tmp_path, known_hosts=known, tofu=True))
    with pytest.raises(HostKeyRefused) as err:
        check_device(profile)  # even with trust-on-first-use: a changed key is never accepted
    msg = str(err.value)
    assert "CHANGED" in msg and sha256_fingerprint(Path(f"{sshd.host_key}.pub")) in msg
    assert sha256_fingerprint(Path(f"{other}.pub")) in msg


def test_trust_on_first_use_records_key(sshd, tmp_path, model_cache):
    known = tmp_path / "sub" / "known_hosts"
    profile = load_profile(write_profile(sshd, tmp_path, known_hosts=known, tofu=True))
    info = check_device(profile, probe_model("onnxruntime", model_cache))
    assert info["runner_ok"] and info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["runtime_version"] and info["free_disk_bytes"] > 0 and info["cpu"]
    assert sshd.host_key_line().split()[1:] == known.read_text().split()[1:]
    strict = load_profile(write_profile(sshd, tmp_path / "strict", known_hosts=known, tofu=False))
    assert check_device(strict)["device"] == "loop"  # the recorded key now verifies


def test_shell_metacharacters_run_nothing(sshd, tmp_path, model_cache):
    marker = tmp_path / "pwned"
    evil_python = f"{sys.executable}; touch {marker}; echo $(touch {marker}2) `touch {marker}3`"
    bad = load_profile(write_profile(sshd, tmp_path / "a", python=evil_python))
    with pytest.raises(TransportError):
        check_device(bad)
    evil_dir = tmp_path / "w $(touch {m}4) `touch {m}5`; touch {m}6 'q\" x".format(m=marker)
    ok = load_profile(write_profile(sshd, tmp_path / "b", work_dir=evil_dir))
    got = []
    measure_models(ok, [probe_model("onnxruntime", model_cache)], got.append)
    assert len(got) == 1 and got[0]["median_ms"] > 0
    assert (evil_dir / "loop-onnxruntime" / "results.jsonl").is_file()  # the literal folder was used
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("pwned")]


def test_kill_sshd_mid_profile_then_resume(sshd, tmp_path, model_cache):
    profile = load_profile(write_profile(sshd, tmp_path, repeats=20))
    o = opts(tmp_path, model_cache, batch_size=8)
    seen = []

    def progress(device, phase, done, total):
        if phase == "measure":
            seen.append(done)
            if done == 12 and sshd.pid() is not None:
                sshd.stop()  # the listener, the session and the runner: like pulling the cable

    try:
        with pytest.raises(ProfileInterrupted) as err:
            profile_device(profile, o, progress)
    finally:
        if sshd.pid() is None:
            sshd.start()
    exc = err.value
    total = 46 + 4 + 3
    assert 12 <= exc.kept < total and exc.kept + exc.missing == total
    assert f"Kept {exc.kept} of {total}" in str(exc)
    journal = table_paths(o.tables_dir, "loop", "onnxruntime")["journal"]
    assert len(journal.read_text().splitlines()) == exc.kept
    assert not table_paths(o.tables_dir, "loop", "onnxruntime")["table"].exists()
    res = profile_device(profile, o)
    assert res.measured + res.recovered == total
    assert res.measured <= exc.missing and res.recovered >= exc.kept
    assert len(load_table(res.table)) == 46 and not journal.exists()


def test_unreachable_host_and_missing_runtime_exit_2(sshd, tmp_path, capsys):
    prof = write_profile(sshd, tmp_path)
    closed = sshd_mod.free_port()
    assert main(["devices", "check", str(prof), "--port", str(closed), "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "cannot reach" in err and str(closed) in err
    # a device whose python cannot import the runtime: a shim hides onnxruntime from it
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "onnxruntime.py").write_text("raise ImportError('onnxruntime is not installed here')\n")
    py = tmp_path / "py-without-ort"
    py.write_text(f"#!/bin/sh\nPYTHONPATH={shim} exec {sys.executable} \"$@\"\n")
    py.chmod(0o755)
    prof = local_profile(tmp_path, "noort", python=str(py))
    assert main(["devices", "check", str(prof), "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "onnxruntime" in err and "runner does not work" in err
    # and one with no python at all
    prof = local_profile(tmp_path, "nopy", python=str(tmp_path / "no-such-python"))
    assert main(["profile", "--device", str(prof), "--space", "cifar-tiny", "-r", "24",
                 "--tables", str(tmp_path / "t"), "--cache", str(tmp_path / "c")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_profile_and_validate_json(sshd, tmp_path, model_cache, capsys):
    import json

    prof = write_profile(sshd, tmp_path)
    base = ["--tables", str(tmp_path / "t"), "--cache", str(model_cache)]
    assert main(["profile", "--device", str(prof), "--space", "cifar-tiny", "-r", "24", "--calibrate", "4",
                 "--json", *base]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["device"] == "loop" and out[0]["n_layers"] == 46
    assert main(["validate", "--device", str(prof), "--samples", "3", "--calibrate", "4", "--json", *base]) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got) >= {"device", "runtime", "n", "mape", "within_10pct", "kendall_tau"} and got["n"] == 3


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None
                    or importlib.util.find_spec("litert_torch") is None, reason="TFLite extra not installed")
@pytest.mark.slow
def test_tflite_over_ssh(sshd, tmp_path, model_cache):
    micro = SearchSpace(name="micro-test", width_mult=0.25, stem="cifar", ks_list=(3,), expand_list=(2,),
                        depth_list=(1,), resolutions=(16,))
    profile = load_profile(write_profile(sshd, tmp_path, runtime="tflite"))
    res = profile_device(profile, opts(tmp_path, model_cache, space=micro, resolutions=None, calibrate=1,
                                       validate=0))
    table = load_table(res.table)
    assert len(table) == 2 + 5 + 4 and res.measured == len(table) + 1
    assert table.provenance["runtime"] == "tflite" and "litert" in table.provenance["runtime_version"]
    assert all(row.median_ms > 0 for row in table.rows.values())
