"""Runtimes that are a benchmark binary on the device (benchmark_model, trtexec): no Python needed there.

The host pushes the binary (when the profile names a file on this machine) and each model to the device,
runs the binary once per model through the transport, and parses its output here. A binary that cannot
start (not found, not executable, built for another CPU) stops the run; a model the binary refuses is
reported as that model's failure, as the Python runner does.
"""

from __future__ import annotations

import hashlib
import posixpath
import weakref
from pathlib import Path
from typing import Any, Sequence

from ofa_edge.devices.bundle import ModelFile
from ofa_edge.devices.runner import kernel_features
from ofa_edge.devices.shellwrap import crash_message, signal_of
from ofa_edge.devices.toolout import ToolCrashed, last_lines
from ofa_edge.devices.transport import Transport, TransportError
from ofa_edge.errors import OfaEdgeError

#: Shell facts of a device without Python: ``key=value`` lines (getprop exists on Android only).
_FACTS_SCRIPT = ("echo machine=$(uname -m); echo system=$(uname -s); "
                 "echo cpu_count=$(grep -c ^processor /proc/cpuinfo 2>/dev/null); "
                 "echo cpu=$(grep -m1 -E '^(model name|Hardware)' /proc/cpuinfo 2>/dev/null | cut -d: -f2-); "
                 "echo cpu_flags=$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null | cut -d: -f2-); "
                 "echo android=$(getprop ro.build.version.release 2>/dev/null); "
                 "echo model=$(getprop ro.product.model 2>/dev/null); "
                 "echo governor=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null); "
                 "echo hostname=$(hostname 2>/dev/null)")


#: Per open transport: binaries already pushed (hash -> device path) and whether models/ exists.
_PUSHED: "weakref.WeakKeyDictionary[Transport, dict[str, str]]" = weakref.WeakKeyDictionary()


def device_binary(t: Transport, local_or_remote: str, tool: str) -> str:
    """The binary's path on the device: a file on this machine is pushed once (named by its hash)."""
    local = Path(local_or_remote).expanduser()
    if not local.is_file():
        return local_or_remote  # already on the device (e.g. /usr/src/tensorrt/bin/trtexec)
    data = local.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:12]
    pushed = _PUSHED.setdefault(t, {})
    if digest not in pushed:
        folder = posixpath.join(t.work_dir(), "bin")
        t.makedirs(folder)
        remote = posixpath.join(folder, f"{tool}-{digest}")
        t.put(local, remote)
        res = t.run(["chmod", "755", remote], t.profile.connection.connect_timeout + 30)
        if res.exit_code != 0:
            raise TransportError(f"device {t.profile.name}: cannot make {remote} executable "
                                 f"({res.stderr.strip()[:200]})")
        pushed[digest] = remote
    return pushed[digest]


def push_model(t: Transport, model: ModelFile) -> str:
    """Copy ``model`` into the work folder's ``models/`` on the device; its device path."""
    folder = posixpath.join(t.work_dir(), "models")
    pushed = _PUSHED.setdefault(t, {})
    if "models/" not in pushed:
        t.makedirs(folder)
        pushed["models/"] = folder
    remote = posixpath.join(folder, f"{model.name}{model.path.suffix}")
    t.put(model.path, remote)
    return remote


def run_tool(t: Transport, tool: str, argv: Sequence[str]) -> str:
    """Run a benchmark binary with stderr merged into stdout; its whole output.

    Raises TransportError when the binary cannot start at all (exit 126/127, SIGILL: wrong CPU) and
    ToolOutputError (a per-model failure) when it crashed or failed on this model.
    """
    lines: list[str] = []
    merged = ["sh", "-c", 'exec "$0" "$@" 2>&1', *argv]
    res = t.run(merged, t.profile.connection.command_timeout, lines.append)
    text = "\n".join(lines + ([res.stderr] if res.stderr.strip() else []))
    number = signal_of(res.exit_code)
    if res.exit_code in (126, 127) or number == 4:  # 4 = SIGILL
        why = crash_message(tool, number, text) if number else f"exit {res.exit_code}: " + " | ".join(last_lines(text))
        raise TransportError(f"device {t.profile.name}: {tool} {argv[0] if argv[0] != 'taskset' else argv[2]!r} "
                             f"cannot run there ({why}); check runtime.binary in the profile (an {tool} built for "
                             "this device's CPU)")
    if number is not None:
        raise ToolCrashed(crash_message(tool, number, text))
    return text


def shell_facts(t: Transport) -> dict[str, Any]:
    """Machine, system, CPU, core count, governor (and Android version/model) read with the device's shell."""
    lines: list[str] = []
    res = t.run(["sh", "-c", _FACTS_SCRIPT], t.profile.connection.connect_timeout + 30, lines.append)
    if res.exit_code != 0:
        raise TransportError(f"device {t.profile.name}: the device shell did not answer "
                             f"(exit {res.exit_code}: {' | '.join(last_lines(res.stderr))})")
    facts: dict[str, Any] = {"type": "info"}
    for line in lines:
        key, _, value = line.partition("=")
        if key in ("machine", "system", "cpu", "android", "model", "governor", "hostname") and value.strip():
            facts[key] = value.strip()[:200]
        elif key == "cpu_count" and value.strip().isdigit():
            facts[key] = int(value.strip())
        elif key == "cpu_flags":
            facts["cpu_features"] = kernel_features(value)
    return facts


def check_with_tool(t: Transport, profile, probe: ModelFile | None) -> dict[str, Any]:
    """``devices check`` for a runtime that measures by itself (benchmark_model, trtexec, a plug-in): shell
    facts, then the runtime timing ``probe``."""
    from ofa_edge.devices.runtimes import get_runtime

    work = t.work_dir()
    t.makedirs(work)
    facts = shell_facts(t)
    out: dict[str, Any] = {"device": profile.name, "transport": profile.connection.transport,
                           "target": t.describe(), "work_dir": work,
                           **{k: v for k, v in facts.items() if k != "type"},
                           "runtime": profile.runtime.name, "runtime_version": None, "runner_ok": False}
    if probe is None:
        return out
    try:
        stats = get_runtime(profile.runtime.name).measure(t, profile, probe)
    except OfaEdgeError as exc:
        if isinstance(exc, TransportError):
            raise
        out["runner_error"] = str(exc)
        return out
    out.update(runner_ok=True, probe_ms=stats["median_ms"], runtime_version=stats.get("runtime_version",
                                                                                     profile.runtime.name))
    return out
