"""``ofa-edge profile``, ``ofa-edge devices list|check`` and ``ofa-edge validate``: device latency tables."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.table import Table

from ofa_edge.cli.common import TABLES_OPTION, console, err_console, fail, print_json, progress_bar
from ofa_edge.errors import OfaEdgeError

devices_app = typer.Typer(help="List and check device profiles.", no_args_is_help=True)

_CACHE = typer.Option(None, "--cache", help="Folder caching exported models (default ~/.cache/ofa-edge/models).")
_HOST = typer.Option(None, "--host", help="Override the profile's host (switches it to SSH).")
_PORT = typer.Option(None, "--port", help="Override the profile's SSH port.")
_USER = typer.Option(None, "--user", help="Override the profile's SSH user.")
_PRECISION = typer.Option("fp32", "--precision", help="fp32 | int8: measure the models quantised as the INT8 "
                          "artefacts are (table <runtime>-int8.csv).")


def _resolutions(text: Optional[str]) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        values = tuple(int(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        fail(f"--resolutions {text!r}: give integers separated by commas, e.g. --resolutions 24,32")
    if not values or min(values) < 1:
        fail(f"--resolutions {text!r}: give positive integers, e.g. --resolutions 24,32")
    return values


def profile_cmd(
    device: List[str] = typer.Option(..., "--device", "-d", help="Device profile name or .toml path; repeat "
                                     "for a fleet (profiled concurrently)."),
    resolutions: Optional[str] = typer.Option(None, "--resolutions", "-r", help="Comma-separated input "
                                              "resolutions (default: all of the space)."),
    space: str = typer.Option("cifar-mbv3", "--space", "-s", help="Search space to profile."),
    n_classes: int = typer.Option(10, "--classes", help="Classifier outputs of the models."),
    calibrate: int = typer.Option(20, "--calibrate", help="Whole subnets measured to fit the correction."),
    validate: int = typer.Option(0, "--validate", help="Held-out whole subnets measured to validate."),
    seed: int = typer.Option(0, "--seed", help="Seed of the subnet sample."),
    batch_size: int = typer.Option(256, "--batch-size", help="Models measured per remote command (each result is kept as it arrives, so a dropped connection loses only the model in flight)."),
    precision: str = _PRECISION,
    tables: Path = TABLES_OPTION,
    cache: Optional[Path] = _CACHE,
    host: Optional[str] = _HOST,
    port: Optional[int] = _PORT,
    user: Optional[str] = _USER,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Measure every distinct layer and a sample of whole subnets; write latency_tables/<device>/<runtime>.csv
    (<runtime>-int8.csv with --precision int8)."""
    from ofa_edge.devices import get_device
    from ofa_edge.latency import ProfileOptions, check_precision, profile_fleet

    if calibrate < 0 or validate < 0 or batch_size < 1:
        fail("--calibrate and --validate must be >= 0 and --batch-size >= 1")
    if len(set(device)) != len(device):
        fail(f"--device given twice: {sorted(d for d in device if device.count(d) > 1)[0]}")
    profiles = [get_device(d, host, port, user) for d in device]
    for p in profiles:
        check_precision(precision, p.runtime.name)
    opts = ProfileOptions(space=space, resolutions=_resolutions(resolutions), n_classes=n_classes,
                          calibrate=calibrate, validate=validate, seed=seed, batch_size=batch_size,
                          tables_dir=tables, cache_dir=cache, precision=precision)
    with progress_bar(not as_json, transient=False) as progress, _stop_on_signals() as stopped:
        results = profile_fleet(profiles, opts, _stoppable(progress, stopped))
    ok = {n: r for n, r in results.items() if not isinstance(r, Exception)}
    errors = {n: r for n, r in results.items() if isinstance(r, Exception)}
    if as_json:
        print_json([r.to_dict() for r in ok.values()] + [{"device": n, "error": str(e)} for n, e in errors.items()])
    elif ok:
        table = Table("device", "runtime", "precision", "layers", "subnets", "measured", "reused", "recovered", "wall s",
                      "within ±10%", "kendall tau", "table")
        for r in ok.values():
            m = r.metrics or {}
            table.add_row(r.device, r.runtime, r.precision, str(r.n_layers), str(r.n_subnets), str(r.measured), str(r.reused),
                          str(r.recovered), f"{r.wall_s:.1f}",
                          f"{m['within_10pct']:.2f}" if m.get("n") else "-",
                          f"{m['kendall_tau']:.3f}" if m.get("n", 0) > 1 else "-", str(r.table))
        console.print(table)
        for r in ok.values():
            if r.refitted and r.saved:
                console.print(f"{r.table}: nothing new to measure; its correction was refitted from its "
                              "validation subnets with this version's fit", soft_wrap=True, highlight=False)
    if errors and stopped:  # interrupted: every device says what it kept; exit 130 as training does
        for exc in errors.values():
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(130)
    if errors:
        for exc in list(errors.values())[:-1]:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise OfaEdgeError(str(list(errors.values())[-1]))


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[list[str]]:
    """Record a first SIGINT/SIGTERM by name (main thread only) and restore the usual handling for a second."""
    hit: list[str] = []
    old: dict[int, object] = {}

    def handle(signum: int, frame: object) -> None:
        hit.append(signal.Signals(signum).name)
        for sig, handler in old.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handle)
    try:
        yield hit
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def _stoppable(progress, stopped: list[str]):
    """Wrap the progress callback: after a signal, each device stops at its next result, keeping what it has."""
    from ofa_edge.latency import ProfileInterrupted

    def update(device: str, phase: str, done: int, total: int) -> None:
        if stopped:
            if phase == "measure":  # the result that triggered this call is already in the journal
                raise ProfileInterrupted(f"device {device}: stopped by {stopped[0]}; kept {done} of {total} "
                                         f"measurements; re-run the same command to measure the {total - done} "
                                         "missing", done, total - done)
            raise ProfileInterrupted(f"device {device}: stopped by {stopped[0]} before measuring; re-run the "
                                     "same command", 0, total)
        if progress:
            progress(device, phase, done, total)

    return update


def validate_cmd(
    device: str = typer.Option(..., "--device", "-d", help="Device profile name or .toml path."),
    samples: int = typer.Option(100, "--samples", "-n", help="Held-out whole subnets (measured if missing)."),
    space: Optional[str] = typer.Option(None, "--space", "-s", help="Search space (default: the table's)."),
    n_classes: Optional[int] = typer.Option(None, "--classes", help="Classifier outputs (default: the table's)."),
    resolutions: Optional[str] = typer.Option(None, "--resolutions", "-r", help="Resolutions to sample "
                                              "(default: the table's)."),
    calibrate: int = typer.Option(20, "--calibrate", help="Whole subnets used for the fit (as when profiled)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the subnet sample (as when profiled)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 | int8: which of the device's tables."),
    tables: Path = TABLES_OPTION,
    cache: Optional[Path] = _CACHE,
    host: Optional[str] = _HOST,
    port: Optional[int] = _PORT,
    user: Optional[str] = _USER,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Measure held-out subnets and report MAPE, the fraction within ±10 % and Kendall's tau."""
    from ofa_edge.devices import get_device
    from ofa_edge.latency import ProfileOptions, check_precision, load_table, table_paths, validate_device

    if samples < 2:
        fail(f"--samples {samples}: need at least 2 subnets to rank")
    profile = get_device(device, host, port, user)
    check_precision(precision, profile.runtime.name)
    path = table_paths(tables, profile.name, profile.runtime.name, precision)["table"]
    if not path.is_file():
        fail(f"--device {device}: no {precision} latency table ({path}); run `ofa-edge profile --device {device}"
             f"{'' if precision == 'fp32' else ' --precision ' + precision}` first")
    prov = load_table(path).provenance
    opts = ProfileOptions(space=space or prov.get("space", "cifar-mbv3"),
                          n_classes=n_classes or int(prov.get("n_classes", 10)),
                          resolutions=_resolutions(resolutions) or tuple(prov.get("resolutions") or ()) or None,
                          calibrate=calibrate, seed=seed, tables_dir=tables, cache_dir=cache, precision=precision)
    with progress_bar(not as_json, transient=False) as progress:
        metrics = validate_device(profile, samples, opts, progress)
    if as_json:
        print_json(metrics)
        return
    console.print(f"[bold]{metrics['device']}[/] {metrics['runtime']} {metrics['precision']}: n={metrics['n']}  "
                  f"MAPE {metrics['mape']:.2f}%  within ±10% {metrics['within_10pct']:.3f}  "
                  f"Kendall tau {metrics['kendall_tau']:.3f}  (fit on {metrics['n_fit']})", soft_wrap=True)
    console.print(metrics["table_label"] + ("" if metrics["saved"] else "; nothing written"), soft_wrap=True,
                  markup=False, highlight=False)


@devices_app.command("list")
def devices_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the known device profiles and where each comes from: ./device_profiles (cwd), $OFA_EDGE_DEVICES (env)
    or the package (packaged); the first of these that has a name wins."""
    from ofa_edge.devices import known_devices, load_profile

    rows = []
    for name, known in known_devices().items():
        p = load_profile(known.path)
        c = p.connection
        rows.append({"name": name, "transport": c.transport,
                     "target": f"{c.user + '@' if c.user else ''}{c.host}:{c.port}" if c.transport == "ssh" else "-",
                     "runtime": p.runtime.name, "threads": p.benchmark.threads, "description": p.description,
                     "source": known.source, "path": str(known.path)})
    if as_json:
        print_json(rows)
        return
    table = Table("name", "runtime", "threads", "target", "source")  # readable at 80 columns
    for col in table.columns:
        col.no_wrap = col.header != "target"
    table.columns[3].overflow = "fold"
    for r in rows:
        target = "local" if r["transport"] == "local" else r["target"]
        table.add_row(r["name"], r["runtime"], str(r["threads"]), target, r["source"])
    console.print(table)


@devices_app.command("check")
def devices_check(
    device: str = typer.Argument(..., help="Device profile name or .toml path."),
    host: Optional[str] = _HOST,
    port: Optional[int] = _PORT,
    user: Optional[str] = _USER,
    cache: Optional[Path] = _CACHE,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Connect and report python, runtime versions, CPU, governor, free disk and whether the runner works."""
    from ofa_edge.devices import check_device, get_device
    from ofa_edge.latency.models import default_cache_dir, probe_model

    profile = get_device(device, host, port, user)
    probe = probe_model(profile.runtime.name, cache or default_cache_dir())
    info = check_device(profile, probe)
    if as_json:
        print_json(info)
    else:
        table = Table("field", "value", show_header=False)
        for key in ("device", "target", "python", "numpy", "runtime", "runtime_version", "cpu", "cpu_features",
                    "cpu_count", "governor", "free_disk_bytes", "work_dir", "runner_ok", "probe_ms", "runner_error"):
            if key in info:
                table.add_row(key, str(info[key]))
        console.print(table)
    if not info.get("runner_ok"):
        fail(f"device {profile.name}: the runner does not work: {info.get('runner_error', 'no result')}")


def register(app: typer.Typer) -> None:
    app.add_typer(devices_app, name="devices")
    app.command("profile")(profile_cmd)
    app.command("validate")(validate_cmd)
