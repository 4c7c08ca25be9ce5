"""Latency-table accuracy on a device, and the cost of profiling through SSH vs locally.

Profiles the device (every distinct layer + ``--calibrate`` whole subnets for the correction), measures
``--samples`` held-out random subnets, and reports MAPE, the fraction within +-10 % and Kendall's tau.
With ``--ssh`` the same profile is repeated through a throw-away OpenSSH server on 127.0.0.1 (needs
root and openssh-server) and the wall-time ratio ssh/local is reported (models exported beforehand, so
both runs time measuring only).

    python bench/lut_accuracy.py --quick             # cifar-tiny, seconds
    python bench/lut_accuracy.py --ssh --noise --tables latency_tables   # the fp32 table of x86-local (README)
    python bench/lut_accuracy.py --precision int8 --noise --tables latency_tables   # its INT8 table (README)

``--noise`` measures the held-out subnets a second time (new device folder, so nothing is recovered) and
scores the first measurement as if it were a prediction of the second: no table can agree with the
device better than the device agrees with itself.

The same local measurements are also read with every latency statistic (``benchmark.statistic``:
median, min) from the device's per-round results, so the statistics are compared within one run
(``by_statistic`` in the JSON). ``--tables`` must not hold a table of the same settings already (it would
be reused, not measured).

Writes bench/results/lut_accuracy.json (lut_accuracy_int8.json with --precision int8; or --out).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ofa_edge.devices import get_device, load_profile  # noqa: E402
from ofa_edge.devices.profile import STATISTICS  # noqa: E402
from ofa_edge.space import lut_keys  # noqa: E402
from ofa_edge.latency import ProfileOptions, prepare_models, profile_device  # noqa: E402


def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="ofa-edge-lut-bench-"))
    profile = get_device(args.device)
    bench = profile.benchmark
    if args.quick:
        bench = dataclasses.replace(bench, warmup=3, repeats=10)
    profile = dataclasses.replace(profile, benchmark=bench,
                                  device=dataclasses.replace(profile.device, work_dir=str(work / "device")))
    res = tuple(int(r) for r in args.resolutions.split(",")) if args.resolutions else None
    opts = ProfileOptions(space=args.space, resolutions=res, n_classes=args.classes, calibrate=args.calibrate,
                          validate=args.samples, seed=args.seed, tables_dir=Path(args.tables or work / "tables"),
                          cache_dir=Path(args.cache) if args.cache else None, precision=args.precision)
    t0 = time.monotonic()
    prepare_models(profile, opts)
    export_s = time.monotonic() - t0
    local = profile_device(profile, opts)
    out = {"device": profile.name, "runtime": profile.runtime.name, "precision": args.precision,
           "space": args.space, "quick": args.quick,
           "n_layers": local.n_layers, "calibrate": args.calibrate, "export_s": round(export_s, 2),
           "local": {"wall_s": round(local.wall_s, 2), **(local.metrics or {})},
           "subnet_ms": subnet_range(local.validation, profile.benchmark.statistic),
           "provenance": {k: v for k, v in __import__("ofa_edge.latency", fromlist=["load_table"]).load_table(
               local.table).provenance.items() if k in ("cpu", "runtime_version", "threads", "cpu_count")}}
    if args.noise:
        out["noise"] = remeasure(profile, opts, local, work)
    out["statistic"] = profile.benchmark.statistic
    out["by_statistic"] = by_statistic(profile, opts, work)
    if args.ssh:
        sys.path.insert(0, str(ROOT / "tests"))
        import sshd as sshd_mod

        reason = sshd_mod.available()
        if reason:
            raise SystemExit(f"--ssh: {reason}")
        server = sshd_mod.TestSSHD(work / "sshd").start()
        try:
            toml = work / "loopback.toml"
            toml.write_text(server.profile_toml(profile.name, server.write_known_hosts(work / "known_hosts"),
                                                work / "ssh-device", sys.executable, warmup=bench.warmup,
                                                repeats=bench.repeats, command_timeout=7200))
            ssh = load_profile(toml)
            ssh = dataclasses.replace(ssh, benchmark=profile.benchmark, runtime=profile.runtime)
            ssh_res = profile_device(ssh, dataclasses.replace(opts, tables_dir=work / "ssh-tables"))
        finally:
            server.stop()
        out["ssh"] = {"wall_s": round(ssh_res.wall_s, 2), **(ssh_res.metrics or {})}
        out["ssh_over_local_wall"] = round(ssh_res.wall_s / local.wall_s, 3)
    return out


def subnet_range(validation: Path, statistic: str) -> dict:
    """Fastest and slowest whole subnet (fit and held-out) of a profile, as read with its ``statistic``."""
    from ofa_edge.latency.validation import load_validation

    ms = [r.measured_ms for r in load_validation(validation)[1]]
    return {"n": len(ms), "min": round(min(ms), 4), "max": round(max(ms), 4), "statistic": statistic,
            "source": validation.name}


def device_results(folder: Path) -> dict[str, list[dict]]:
    """Every round's result per model name, from a device folder's results files."""
    out: dict[str, list[dict]] = {}
    for f in sorted(folder.glob("*/results*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            msg = json.loads(line)
            if msg.get("type") == "result":
                out.setdefault(msg["name"], []).append(msg)
    return out


def by_statistic(profile, opts: ProfileOptions, work: Path) -> dict:
    """The same measurements read with each statistic: table accuracy and noise floor for median and min.

    Rebuilt from the device's per-round results (profile, and the ``--noise`` re-measurement if present):
    per layer and per subnet the statistic over its rounds, the correction fitted on the same fit subnets,
    the same held-out subnets scored. One run, so the comparison is free of day-to-day noise.
    """
    from ofa_edge.latency import accuracy_metrics, fit_correction
    from ofa_edge.latency.models import block_name, subnet_name
    from ofa_edge.latency.profiler import _plan

    plan = _plan(opts)
    first, again = device_results(work / "device"), device_results(work / "noise")
    names = [block_name(b, opts.precision) for b in plan.blocks] + [
        subnet_name(s, opts.n_classes, plan.space, opts.precision) for s in plan.fit + plan.test]
    if any(n not in first for n in names):
        return {}  # the table was reused from --tables, not measured in this run
    out = {}
    for stat in STATISTICS:
        read = dataclasses.replace(profile.benchmark, statistic=stat).latency
        layer = {b.lut_key(): read(first[block_name(b, opts.precision)]) for b in plan.blocks}

        def raw(s):
            keys = lut_keys(plan.space, s, opts.n_classes)
            return sum(layer[k] for k in keys), len(keys)

        def measured(s, results):
            return read(results[subnet_name(s, opts.n_classes, plan.space, opts.precision)])

        fit = [(*raw(s), measured(s, first)) for s in plan.fit]
        corr = fit_correction(*zip(*fit), min_layer_ms=min(layer.values()), resolutions=[s.r for s in plan.fit])
        truth = [measured(s, first) for s in plan.test]
        pred = [corr.apply(*raw(s), s.r) for s in plan.test]
        row = {"table": {**accuracy_metrics(truth, pred),
                         **largest_bias(plan.test, truth, pred)}}
        shared = fit_correction(*zip(*fit), min_layer_ms=min(layer.values()))  # no per-resolution factors
        row["table_shared_correction"] = accuracy_metrics(truth, [shared.apply(*raw(s)) for s in plan.test])
        if corr.offset == 0 and corr.per_layer != 0:
            # the fit before scale*raw + per_layer*n was a candidate: a negative offset sent it to
            # scale*raw (+ offset), emulated here by giving every subnet the same layer count
            before = fit_correction([f[0] for f in fit], [0] * len(fit), [f[2] for f in fit],
                                    resolutions=[s.r for s in plan.fit])
            pred = [before.apply(raw(s)[0], 0, s.r) for s in plan.test]
            row["table_previous_fit"] = {**accuracy_metrics(truth, pred),
                                         **largest_bias(plan.test, truth, pred)}
        row["by_resolution"] = {str(r): round(f, 4) for r, f in sorted(corr.by_resolution.items())}
        row["correction"] = (f"{corr.scale:.3f} raw {corr.per_layer * 1e3:+.2f} us/layer "
                             f"{corr.offset * 1e3:+.2f} us")
        if again:
            row["noise"] = accuracy_metrics([measured(s, again) for s in plan.test], truth)
        out[stat] = row
    return out


def largest_bias(subnets, truth, pred) -> dict:
    """Median error (%) of the predictions for each resolution's largest third (by prediction) of ``subnets``:
    negative = the table under-predicts the largest subnets."""
    import numpy as np

    errors = []
    for r in sorted({s.r for s in subnets}):
        at = sorted((p, t) for s, t, p in zip(subnets, truth, pred) if s.r == r)
        errors += [100 * (p / t - 1) for p, t in at[len(at) - max(1, len(at) // 3):]]
    return {"largest_third_median_error_pct": round(float(np.median(errors)), 2)}


def remeasure(profile, opts: ProfileOptions, local, work: Path) -> dict:
    """Measure the held-out subnets again and compare with their first measurement (the noise floor)."""
    from ofa_edge.devices.session import measure_models
    from ofa_edge.latency import accuracy_metrics, load_validation

    _, rows = load_validation(local.validation)
    first = {r.name: r.measured_ms for r in rows if r.split == "test"}
    models = prepare_models(profile, opts, set(first))
    again = dataclasses.replace(profile, device=dataclasses.replace(profile.device, work_dir=str(work / "noise")))
    got: dict[str, list[dict]] = {}
    t0 = time.monotonic()
    measure_models(again, list(models.values()), lambda m: got.setdefault(m["name"], []).append(m))
    names = sorted(n for n in first if n in got)
    second = [profile.benchmark.latency(got[n]) for n in names]  # the profile's statistic, as in the table
    return {"wall_s": round(time.monotonic() - t0, 2),
            **accuracy_metrics(second, [first[n] for n in names])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="x86-local")
    ap.add_argument("--space", default="cifar-mbv3")
    ap.add_argument("--resolutions", default=None, help="comma-separated (default: all of the space)")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--samples", type=int, default=100, help="held-out subnets (not used in the fit)")
    ap.add_argument("--calibrate", type=int, default=30, help="whole subnets used to fit the correction")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", action="store_true", help="re-measure the held-out subnets (noise floor)")
    ap.add_argument("--ssh", action="store_true", help="also profile through sshd on 127.0.0.1 and compare")
    ap.add_argument("--tables", default=None, help="write the local table here (default: a temp folder)")
    ap.add_argument("--cache", default=None, help="exported-model cache folder")
    ap.add_argument("--quick", action="store_true", help="cifar-tiny at 24 px, 10 held-out subnets, few repeats")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "int8"),
                    help="int8: the layers and subnets quantised as the exported INT8 artefacts")
    ap.add_argument("--out", default=None, help="JSON results (default bench/results/lut_accuracy[_int8].json)")
    args = ap.parse_args()
    args.out = args.out or str(ROOT / "bench" / "results" / ("lut_accuracy.json" if args.precision == "fp32"
                                                             else f"lut_accuracy_{args.precision}.json"))
    if args.quick:
        args.space, args.resolutions, args.samples, args.calibrate = "cifar-tiny", "24", 10, 8
    out = run(args)
    rows = [("local", out["local"])] + [(k, out[k]) for k in ("noise", "ssh") if k in out]
    print(f"{out['device']} {out['runtime']} {out['precision']} space={out['space']} layers={out['n_layers']} "
          f"fit on {out['calibrate']} subnets; {out['provenance']}")
    print(f"{'path':6} {'n':>4} {'MAPE %':>8} {'within10':>9} {'tau':>7} {'wall s':>8}")
    for name, m in rows:
        print(f"{name:6} {m['n']:>4} {m['mape']:>8.2f} {m['within_10pct']:>9.3f} {m['kendall_tau']:>7.3f} "
              f"{m['wall_s']:>8.1f}")
    if "subnet_ms" in out:
        r = out["subnet_ms"]
        print(f"whole subnets ({r['n']}, {r['statistic']}): {r['min']:.3f}-{r['max']:.3f} ms")
    if "ssh_over_local_wall" in out:
        print(f"ssh / local wall time: {out['ssh_over_local_wall']:.3f}")
    print(f"the same local measurements read with each statistic (the profile uses {out['statistic']}):")
    for stat, row in out["by_statistic"].items():
        for name, m in row.items():
            if name in ("by_resolution", "correction"):
                continue
            bias = m.get("largest_third_median_error_pct")
            print(f"{stat:6} {name:24} {m['n']:>4} {m['mape']:>8.2f} {m['within_10pct']:>9.3f} "
                  f"{m['kendall_tau']:>7.3f}" + ("" if bias is None else f"   largest third: {bias:+.2f} %"))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
