"""Fault injection while profiling: a hung device, a rebooting device, a killed profiler, two profilers at once.

Every test checks that nothing already measured is lost and no file is left half-written: the journal
parses line by line, a table is absent or whole, no lock or temporary file stays, and the re-run measures
exactly what is missing (counts asserted).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ofa_edge.cli import main
from ofa_edge.devices import load_profile
from ofa_edge.devices.bundle import parse_line
from ofa_edge.latency import ProfileInterrupted, ProfileOptions, load_table, load_validation, profile_device
from ofa_edge.latency.lock import TableLocked, table_lock
from ofa_edge.latency.profiler import table_paths

sshd_mod = pytest.importorskip("sshd")
REASON = sshd_mod.available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

N_LAYERS, N_FIT, N_TEST = 46, 4, 3  # cifar-tiny @ 24
TOTAL = N_LAYERS + N_FIT + N_TEST
K = 3  # results a faulty device delivers before it fails
BATCH = 8  # models per runner command: several commands per profile

# A device python that misbehaves on its first command only (a flag file outside the device's work dir):
# it runs the real runner, forwards K result lines, then either hangs (SIGSTOPs the runner and sleeps:
# "hang") or forwards nothing more while the runner measures on and then sleeps ("mute": a dead link).
FAULTY = '''#!{python}
import os, signal, subprocess, sys, time
REAL, FLAG, PIDS, MODE, K = {real!r}, {flag!r}, {pids!r}, {mode!r}, {k}
if os.path.exists(FLAG):
    os.execv(REAL, [REAL] + sys.argv[1:])
open(FLAG, "w").close()
runner = subprocess.Popen([REAL] + sys.argv[1:], stdout=subprocess.PIPE)
with open(PIDS, "w") as fh:
    fh.write(f"{{os.getpid()}} {{runner.pid}}")
sent = 0
for line in runner.stdout:
    if sent < K:
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
        sent += b'"type": "result"' in line
        if sent == K and MODE == "hang":
            os.kill(runner.pid, signal.SIGSTOP)
            break
while True:
    time.sleep(60)
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """This module's own sshd (the reboot tests stop and start it)."""
    srv = sshd_mod.TestSSHD(tmp_path_factory.mktemp("sshd-faults")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


def faulty_python(folder: Path, mode: str) -> tuple[Path, Path, Path]:
    """Write the faulty device python; returns (script, flag file, file receiving its and the runner's pid)."""
    folder.mkdir(parents=True, exist_ok=True)
    script, flag, pids = folder / "faulty-python", folder / "faulty.flag", folder / "faulty.pids"
    script.write_text(FAULTY.format(python=sys.executable, real=sys.executable, flag=str(flag), pids=str(pids),
                                    mode=mode, k=K))
    script.chmod(0o755)
    return script, flag, pids


def ssh_profile(srv, folder: Path, python: str, name: str = "dev", **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(srv.profile_toml(name, srv.write_known_hosts(folder / "known_hosts"), folder / "remote", python,
                                     **kw))
    return path


def local_profile(folder: Path, python: str, name: str = "dev", repeats: int = 3, timeout: float = 120) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(f'format = 1\nname = "{name}"\n[connection]\ntransport = "local"\ncommand_timeout = {timeout}\n'
                    f'[device]\npython = "{python}"\nwork_dir = "{folder / "remote"}"\n[runtime]\n'
                    f'name = "onnxruntime"\n[benchmark]\nwarmup = 1\nrepeats = {repeats}\nthreads = 1\nbatch = 1\n')
    return path


def options(tmp_path: Path, cache: Path) -> ProfileOptions:
    return ProfileOptions(space="cifar-tiny", resolutions=(24,), calibrate=N_FIT, validate=N_TEST,
                          batch_size=BATCH, tables_dir=tmp_path / "tables", cache_dir=cache)


def cli_args(profile: Path, tmp_path: Path, cache: Path) -> list[str]:
    return ["profile", "--device", str(profile), "--space", "cifar-tiny", "-r", "24", "--calibrate", str(N_FIT),
            "--validate", str(N_TEST), "--batch-size", str(BATCH), "--tables", str(tmp_path / "tables"),
            "--cache", str(cache), "--json"]


def journal_names(path: Path) -> list[str]:
    """Names in a journal, asserting every line is a whole, valid result."""
    lines = path.read_text().splitlines() if path.exists() else []
    msgs = [parse_line(line) for line in lines]
    assert all(m is not None and m["type"] == "result" for m in msgs), lines
    names = [m["name"] for m in msgs]
    assert len(set(names)) == len(names)
    return names


def device_results(work_dir: Path, name: str = "dev") -> list[str]:
    """Names in the device's results file (every line whole)."""
    return journal_names(work_dir / f"{name}-onnxruntime" / "results.jsonl")


def assert_whole(tmp_path: Path, name: str = "dev") -> None:
    """The table and validation load with every row; no journal, lock or temporary file is left."""
    paths = table_paths(tmp_path / "tables", name, "onnxruntime")
    assert len(load_table(paths["table"])) == N_LAYERS
    _, rows = load_validation(paths["validation"])
    assert sorted(r.split for r in rows) == ["fit"] * N_FIT + ["test"] * N_TEST
    assert sorted(p.name for p in paths["table"].parent.iterdir()) == sorted(
        [paths["table"].name, paths["validation"].name])
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith((".part", ".tmp", ".lock"))]
    assert not leftovers


def assert_interrupted_files(tmp_path: Path, kept: int, lock: bool = False, name: str = "dev") -> list[str]:
    """After an interruption: a whole journal of ``kept`` results, no table, a lock only if asked."""
    paths = table_paths(tmp_path / "tables", name, "onnxruntime")
    names = journal_names(paths["journal"])
    assert len(names) == kept
    assert not paths["table"].exists() and not paths["validation"].exists()
    assert paths["lock"].exists() == lock
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith((".part", ".tmp"))]
    return names


# -- 1. a device that hangs mid-benchmark ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("transport", ["ssh", "local"])
def test_hung_device_times_out_is_killed_and_resumes(server, cache, tmp_path, transport):
    script, flag, pids = faulty_python(tmp_path / "bin", "hang")
    # long enough for the runner to start and deliver K results on a loaded machine (4 s was not, with
    # other jobs on both cores); the hang itself never ends, so only the timeout can stop the command
    timeout = 20
    if transport == "ssh":
        profile = load_profile(ssh_profile(server, tmp_path, str(script), command_timeout=timeout))
    else:
        profile = load_profile(local_profile(tmp_path, str(script), timeout=timeout))
    o = options(tmp_path, cache)
    start = time.monotonic()
    with pytest.raises(ProfileInterrupted) as err:
        profile_device(profile, o)
    waited = time.monotonic() - start
    exc, msg = err.value, str(err.value)
    assert f"did not finish within {timeout} s (connection.command_timeout)" in msg
    assert exc.kept == K and exc.missing == TOTAL - K and f"Kept {K} of {TOTAL}" in msg
    assert timeout <= waited < timeout + 60
    wrapper, runner = map(int, pids.read_text().split())
    assert sshd_mod.gone(wrapper) and sshd_mod.gone(runner), "the hung command must not keep running"
    kept = assert_interrupted_files(tmp_path, K)
    on_device = device_results(tmp_path / "remote")  # the runner may have written more before it stopped
    assert set(kept) <= set(on_device) and K <= len(on_device) <= BATCH

    res = profile_device(profile, o)  # the flag is set: the device behaves now
    assert res.recovered == len(on_device) and res.measured == TOTAL - len(on_device)
    assert res.reused == 0 and res.uploads == 1
    assert_whole(tmp_path)
    assert len(device_results(tmp_path / "remote")) == TOTAL


# -- 2. a device that reboots mid-profile --------------------------------------------------------------
@pytest.mark.parametrize("wiped", [False, True], ids=["workdir-kept", "workdir-wiped"])
def test_rebooted_device_resumes(server, cache, tmp_path, wiped):
    script, flag, pids = faulty_python(tmp_path / "bin", "mute")
    profile = load_profile(ssh_profile(server, tmp_path, str(script)))
    work = tmp_path / "remote"
    results = work / "dev-onnxruntime" / "results.jsonl"
    o = options(tmp_path, cache)
    seen: dict[str, int] = {}

    def reboot(device, phase, done, total):
        if phase == "measure" and done == K and server.pid() is not None:
            deadline = time.monotonic() + 30  # the runner measures on; its results never reach the host
            while time.monotonic() < deadline and len(results.read_text().splitlines()) < K + 2:
                time.sleep(0.02)
            seen["killed"] = server.stop()  # every process of the device dies, the connection drops
            if wiped:
                shutil.rmtree(work)  # tmpfs: the work dir is gone after the reboot
            seen["device"] = 0 if wiped else len(device_results(work))

    try:
        with pytest.raises(ProfileInterrupted) as err:
            profile_device(profile, o, reboot)
    finally:
        if server.pid() is None:
            server.start()  # back up, same host key and port
    msg = str(err.value)
    assert ("connection lost" in msg or "connection closed" in msg) and f"Kept {K} of {TOTAL}" in msg
    assert err.value.kept == K
    assert seen["killed"] >= 3  # listener, session, faulty python, runner
    wrapper, runner = map(int, pids.read_text().split())
    assert sshd_mod.gone(wrapper) and sshd_mod.gone(runner)
    kept = assert_interrupted_files(tmp_path, K)
    if not wiped:
        assert seen["device"] >= K + 2 and set(kept) <= set(device_results(work))

    res = profile_device(profile, o)
    assert res.uploads == 1 and list((work / "dev-onnxruntime").glob("bundle-*.zip"))
    if wiped:
        assert res.recovered == K and res.measured == TOTAL - K
    else:
        assert res.recovered - K == seen["device"] - K > 0  # on the device only, recovered from its results
        assert res.measured == TOTAL - seen["device"]
    assert_whole(tmp_path)


# -- 3. SIGTERM / SIGKILL of `ofa-edge profile` ----------------------------------------------------------
def start_cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ofa_edge", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} never reached {n} lines (exit {proc.poll()}): {proc.stderr and proc.stderr.read()}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_profiler_resumes(cache, tmp_path, sig, capsys):
    profile = local_profile(tmp_path, sys.executable, repeats=20)
    paths = table_paths(tmp_path / "tables", "dev", "onnxruntime")
    results = tmp_path / "remote" / "dev-onnxruntime" / "results.jsonl"
    proc = start_cli(cli_args(profile, tmp_path, cache))
    wait_for_lines(paths["journal"], BATCH + 2, proc)  # inside the second runner command
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert all(sshd_mod.gone(p, 10) for p in sshd_mod.processes_with(str(results)))  # no runner measures on
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and "Traceback" not in err
        said = err.split("kept ")[1].split()
        kept = int(said[0])
        assert said[1:3] == ["of", str(TOTAL)] and "stopped by SIGTERM" in err and "re-run" in err
        names = assert_interrupted_files(tmp_path, kept, lock=False)
    else:
        assert proc.returncode == -signal.SIGKILL
        assert json.loads(paths["lock"].read_text())["pid"] == proc.pid  # left by the dead process
        names = assert_interrupted_files(tmp_path, len(journal_names(paths["journal"])), lock=True)
    assert len(names) >= BATCH + 2
    done = set(names) | set(journal_names(results))  # journal, plus what the device wrote after

    capsys.readouterr()
    assert main(cli_args(profile, tmp_path, cache)) == 0  # takes the dead process's lock over
    got = json.loads(capsys.readouterr().out)[0]
    assert got["recovered"] == len(done) and got["measured"] == TOTAL - len(done) and got["reused"] == 0
    assert_whole(tmp_path)


def test_lock_never_written_is_taken_over(tmp_path):
    lock = tmp_path / "t.lock"
    lock.touch()  # what a kill between creating the file and writing its owner leaves
    start = time.monotonic()
    with table_lock(lock):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert time.monotonic() - start < 1 and not lock.exists()
    # a live holder is refused by name; once it is SIGKILLed its lock is free at once (the kernel drops it)
    code = ("import sys, time; from ofa_edge.latency.lock import table_lock\n"
            "with table_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TableLocked, match=f"pid {holder.pid}"):
            with table_lock(lock):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert json.loads(lock.read_text())["pid"] == holder.pid  # the dead holder's file is still there
    start = time.monotonic()
    with table_lock(lock):
        pass
    assert time.monotonic() - start < 1 and not lock.exists()


def test_processes_racing_for_a_stale_lock_never_overlap(tmp_path):
    lock, log = tmp_path / "t.lock", tmp_path / "log"
    stale = json.dumps({"pid": 999999999, "host": os.uname().nodename}).encode()  # an owner that is dead
    lock.write_bytes(stale)
    # 6 processes take the lock 15 times each; after each turn a dead owner's lock file is left behind,
    # so most turns start by taking over a stale lock while others try the same
    code = ("import os, sys, time; from ofa_edge.latency.lock import TableLocked, table_lock\n"
            "time.sleep(max(0.0, float(sys.argv[3]) - time.time()))\n"
            "turns = 0\n"
            "while turns < 15:\n"
            "    try:\n"
            "        with table_lock(sys.argv[1]):\n"
            "            fd = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
            "            os.write(fd, b'in\\n'); time.sleep(0.002); os.write(fd, b'out\\n'); os.close(fd)\n"
            "        turns += 1\n"
            "        try:\n"
            "            fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL)\n"
            "            os.write(fd, sys.argv[4].encode()); os.close(fd)\n"
            "        except FileExistsError:\n"
            "            pass\n"
            "    except TableLocked:\n"
            "        time.sleep(0.001)\n")
    go = time.time() + 1.5  # every process starts at the same moment
    procs = [subprocess.Popen([sys.executable, "-c", code, str(lock), str(log), str(go), stale.decode()])
             for _ in range(6)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 6
    assert log.read_text().split() == ["in", "out"] * 90  # one holder at a time, every turn taken


# -- 4. two profilers writing the same table at once ---------------------------------------------------
def test_two_profilers_same_table(cache, tmp_path, capsys):
    slow = tmp_path / "slow-python"  # a device that takes 0.3 s to start each command: the first holds the lock longer
    slow.write_text(f'#!/bin/sh\nsleep 0.3\nexec "{sys.executable}" "$@"\n')
    slow.chmod(0o755)
    profile = local_profile(tmp_path, str(slow))
    args = cli_args(profile, tmp_path, cache)
    procs = [start_cli(args), start_cli(args)]
    outs = [p.communicate(timeout=180) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], outs
    loser = outs[codes.index(2)][1]
    assert "is writing this latency table" in loser and "Traceback" not in loser
    winner = json.loads(outs[codes.index(0)][0])[0]
    assert winner["measured"] == TOTAL
    assert_whole(tmp_path)
    capsys.readouterr()
    assert main(args) == 0  # the refused one, re-run: everything is there
    again = json.loads(capsys.readouterr().out)[0]
    assert again["measured"] == 0 and again["reused"] == TOTAL
    assert_whole(tmp_path)
