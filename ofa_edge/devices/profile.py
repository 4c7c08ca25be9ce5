"""Device profiles: a validated TOML schema naming the connection, the runtime and benchmark settings."""

from __future__ import annotations

import dataclasses
import os
import re
import statistics
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ofa_edge.devices.runtimes import RUNTIMES
from ofa_edge.devices.transports import TRANSPORTS
from ofa_edge.errors import FileFormatError, OfaEdgeError

PROFILE_FORMAT = 1
#: Longest timeout or keep-alive a profile may set (one week, in seconds).
MAX_SECONDS = 7 * 24 * 3600
#: How a model's latency is read from its measurements: the statistic's name -> the result field it uses.
#: ``min`` suits shared machines whose speed changes in phases (a VM's neighbours): the fastest run over
#: all rounds repeats where the median of a slow-phase round does not.
STATISTICS = {"median": "median_ms", "min": "min_ms"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Connection:
    """How to reach the device: ``local`` (subprocess), ``ssh`` (paramiko) or ``adb`` (Android, by serial)."""

    transport: str = "local"
    host: str = ""
    port: int = 22
    user: str = ""
    key_file: str = ""  # empty: use the SSH agent / default keys
    known_hosts: str = "~/.ssh/known_hosts"
    trust_on_first_use: bool = False
    connect_timeout: float = 10.0
    command_timeout: float = 1800.0
    keepalive: float = 15.0
    serial: str = ""  # adb: the device serial (`adb devices`) or host:port for wireless adb
    adb: str = "adb"  # adb: the adb executable on this machine


@dataclass(frozen=True)
class DeviceSide:
    """The device's python and the folder the runner works in."""

    python: str = "python3"  # "current" (local only) = the python running ofa-edge
    work_dir: str = "~/.cache/ofa-edge/device"


@dataclass(frozen=True)
class Runtime:
    """Inference runtime: onnxruntime (providers), tflite (delegate), torch, benchmark_model or trtexec."""

    name: str = "onnxruntime"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    delegate: str = ""
    binary: str = ""  # benchmark_model / trtexec: a file here (pushed to the device) or a path on the device
    use_xnnpack: bool = True  # benchmark_model
    cpu_mask: str = ""  # benchmark_model: taskset mask in hex, e.g. "f0" for the big cores; empty: none
    precision: str = "fp16"  # trtexec: fp32, fp16, int8 or best
    warmup_ms: int = 200  # trtexec: --warmUp, in milliseconds


@dataclass(frozen=True)
class Benchmark:
    """Measurement settings: warm-up runs, timed repeats, threads, batch size, rounds over all models."""

    warmup: int = 10
    repeats: int = 50
    threads: int = 1
    batch: int = 1
    rounds: int = 1  # passes over all models, each in a new order
    statistic: str = "median"  # a model's latency: "median" (median over rounds of each round's median run)
    #                            or "min" (its fastest run over all rounds)
    min_span_s: float = 0.0  # round k of a measurement starts no earlier than min_span_s * k / (rounds - 1) s
    #                          after round 0, so a slow phase of the device cannot hold all rounds of a few models

    @property
    def column(self) -> str:
        """The result field (and latency table column) that holds a model's latency."""
        return STATISTICS[self.statistic]

    def latency(self, results: list[dict[str, Any]]) -> float:
        """One model's latency (ms) from its per-round results."""
        values = [float(r[self.column]) for r in results]
        return min(values) if self.statistic == "min" else float(statistics.median(values))


@dataclass(frozen=True)
class DeviceProfile:
    """One device: name, connection, device side, runtime and benchmark settings."""

    name: str
    description: str = ""
    connection: Connection = field(default_factory=Connection)
    device: DeviceSide = field(default_factory=DeviceSide)
    runtime: Runtime = field(default_factory=Runtime)
    benchmark: Benchmark = field(default_factory=Benchmark)
    path: str = ""  # the file it was read from ("" when built in code)

    def with_overrides(self, host: str | None = None, port: int | None = None,
                       user: str | None = None) -> "DeviceProfile":
        """A copy with ``--host/--port/--user`` applied (switches a local profile to ssh if host given)."""
        changes: dict[str, Any] = {}
        if host is not None:
            changes["host"] = host
            changes["transport"] = "ssh"
        if port is not None:
            changes["port"] = port
        if user is not None:
            changes["user"] = user
        if not changes:
            return self
        conn = dataclasses.replace(self.connection, **changes)
        _check_connection(conn, self.path or self.name)
        return dataclasses.replace(self, connection=conn)

    def settings_id(self) -> str:
        """Identifies the measurement settings: results taken with other settings are not reused."""
        b, r = self.benchmark, self.runtime
        tool = {"benchmark_model": f"|xnn{int(r.use_xnnpack)}|m{r.cpu_mask}",
                "trtexec": f"|{r.precision}|wu{r.warmup_ms}"}.get(r.name, "")
        return (f"{r.name}|{','.join(r.providers)}|{r.delegate}|t{b.threads}|w{b.warmup}|"
                f"n{b.repeats}|b{b.batch}" + (f"|r{b.rounds}" if b.rounds != 1 else "")
                + (f"|{b.statistic}" if b.statistic != "median" else "") + tool)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("path")
        d["runtime"]["providers"] = list(self.runtime.providers)
        return {"format": PROFILE_FORMAT, **d}


_SECTIONS = {"connection": Connection, "device": DeviceSide, "runtime": Runtime, "benchmark": Benchmark}
_TOP = {"format", "name", "description", *_SECTIONS}
_HELP = {
    "host": "a host name or IP address, e.g. host = \"192.168.1.20\"",
    "port": "an integer 1-65535, e.g. port = 22",
}


def _fields(cls) -> dict[str, Any]:
    return {f.name: f.type for f in dataclasses.fields(cls)}


def _closest(word: str, options) -> str:
    import difflib

    match = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _coerce(where: str, key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of the field's default; return it in that type."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where}.{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}.{key} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        low = 0 if default == 0 else 1e-9  # a field that defaults to 0 s (off) may be set to 0
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not low <= value <= MAX_SECONDS:
            sign = "non-negative" if low == 0 else "positive"
            raise ValueError(f"{where}.{key} must be a {sign} number of seconds (at most {MAX_SECONDS}), "
                             f"got {value!r}")
        return float(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"{where}.{key} must be a list of strings, got {value!r}")
        return tuple(value)
    if not isinstance(value, str):
        raise ValueError(f"{where}.{key} must be a string, got {value!r}")
    if "\x00" in value or "\n" in value:
        raise ValueError(f"{where}.{key} must not contain NUL or newline characters")
    return value


def _check_connection(c: Connection, where: str) -> None:
    if c.transport not in TRANSPORTS:
        raise OfaEdgeError(f"{where}: connection.transport {c.transport!r} is not one of "
                           f"{', '.join(TRANSPORTS)}")
    if c.transport == "adb":
        if not c.serial or c.serial.startswith("-") or any(ch.isspace() for ch in c.serial):
            raise OfaEdgeError(f"{where}: connection.serial {c.serial!r} is not an adb serial; set it to a serial "
                               "that `adb devices` lists, or host:port for wireless adb, e.g. "
                               "serial = \"192.168.1.50:5555\"")
    if c.transport == "ssh":
        if not c.host:
            raise OfaEdgeError(f"{where}: connection.host is missing; set {_HELP['host']} "
                               "(or override the host)")
        if c.host.startswith("-") or any(ch.isspace() for ch in c.host):
            raise OfaEdgeError(f"{where}: connection.host {c.host!r} is not a valid host name")
    if not 1 <= c.port <= 65535:
        raise OfaEdgeError(f"{where}: connection.port {c.port} is out of range; use {_HELP['port']}")


def profile_from_dict(data: Any, where: str = "<profile>", default_name: str = "") -> DeviceProfile:
    """Validate a parsed TOML mapping and build the profile; errors name ``where``, the key and the fix."""
    try:
        return _from_dict(data, where, default_name)
    except ValueError as exc:
        raise OfaEdgeError(f"{where}: {exc}") from None


def _from_dict(data: Any, where: str, default_name: str) -> DeviceProfile:
    if not isinstance(data, dict):
        raise ValueError("a device profile must be a TOML table")
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}{_closest(unknown[0], _TOP)}; "
                         f"allowed top-level keys: {', '.join(sorted(_TOP))}")
    fmt = data.get("format", PROFILE_FORMAT)
    if fmt != PROFILE_FORMAT:
        raise ValueError(f"format = {fmt!r} is not supported (this ofa-edge reads format = {PROFILE_FORMAT})")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ValueError("description must be a string")
    parts: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        raw = data.get(section, {})
        if not isinstance(raw, dict):
            raise ValueError(f"[{section}] must be a table")
        defaults = cls()
        allowed = _fields(cls)
        values = {}
        for key, value in raw.items():
            if key not in allowed:
                raise ValueError(f"unknown key {section}.{key}{_closest(key, allowed)}; "
                                 f"allowed in [{section}]: {', '.join(allowed)}")
            values[key] = _coerce(section, key, value, getattr(defaults, key))
        parts[section] = cls(**values)
    conn: Connection = parts["connection"]
    _check_connection(conn, where)
    if conn.transport == "local" and conn.host:
        raise ValueError("connection.host is set but transport = \"local\"; set transport = \"ssh\"")
    rt: Runtime = parts["runtime"]
    if rt.name not in RUNTIMES:
        raise ValueError(f"runtime.name {rt.name!r} is not one of {', '.join(RUNTIMES)}")
    _check_tool_runtime(rt, conn)
    b: Benchmark = parts["benchmark"]
    for key, low, high in (("warmup", 0, 100000), ("repeats", 1, 100000), ("threads", 1, 256),
                           ("batch", 1, 4096), ("rounds", 1, 100)):
        v = getattr(b, key)
        if not low <= v <= high:
            raise ValueError(f"benchmark.{key} = {v} is out of range; use {low}..{high}")
    if b.statistic not in STATISTICS:
        raise ValueError(f"benchmark.statistic = {b.statistic!r} is not one of {', '.join(STATISTICS)}")
    dev: DeviceSide = parts["device"]
    if not dev.python:
        raise ValueError("device.python is empty; name the device's python, e.g. python = \"python3\"")
    if dev.python == "current" and conn.transport != "local":
        raise ValueError("device.python = \"current\" only works with transport = \"local\"")
    if not dev.work_dir:
        raise ValueError("device.work_dir is empty; e.g. work_dir = \"~/.cache/ofa-edge/device\"")
    return DeviceProfile(name=name, description=description, path=where, **parts)


def _check_tool_runtime(rt: Runtime, conn: Connection) -> None:
    if conn.transport == "adb" and RUNTIMES.get(rt.name).measure is None:
        raise ValueError(f"runtime.name {rt.name!r} needs Python on the device, which adb does not give; use "
                         "runtime.name = \"benchmark_model\" over adb, or Termux's sshd (transport = \"ssh\", "
                         "port 8022) for onnxruntime / tflite")
    if rt.name == "benchmark_model" and not rt.binary:
        raise ValueError("runtime.binary is empty; set it to the benchmark_model binary you downloaded for the "
                         "device (TFLite's android_aarch64 / linux_aarch64 benchmark_model), e.g. "
                         "binary = \"~/Downloads/android_aarch64_benchmark_model\"")
    if rt.name == "trtexec" and rt.precision not in ("fp32", "fp16", "int8", "best"):
        raise ValueError(f"runtime.precision {rt.precision!r} is not one of fp32, fp16, int8, best")
    if rt.cpu_mask and not re.fullmatch(r"(0x)?[0-9a-fA-F]{1,16}", rt.cpu_mask):
        raise ValueError(f"runtime.cpu_mask {rt.cpu_mask!r} is not a hexadecimal CPU mask, e.g. cpu_mask = \"f0\"")
    if not 0 <= rt.warmup_ms <= 600000:
        raise ValueError(f"runtime.warmup_ms = {rt.warmup_ms} is out of range; use 0..600000")


def load_profile(path: str | os.PathLike) -> DeviceProfile:
    """Read and validate one profile file; the profile name defaults to the file stem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OfaEdgeError(f"{path}: device profile not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(path, f"cannot read device profile ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FileFormatError(path, f"not valid TOML ({exc}); fix the syntax") from None
    except RecursionError:
        raise FileFormatError(path, "not valid TOML (nested too deeply)") from None
    return profile_from_dict(data, str(path), default_name=path.stem)
