"""Time a build's artefacts on its device and record the one to ship (``manifest.recommended``)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ofa_edge.devices.bundle import ModelFile
from ofa_edge.devices.runtimes import get_runtime
from ofa_edge.devices.session import measure_models
from ofa_edge.errors import OfaEdgeError
from ofa_edge.export.manifest import Manifest
from ofa_edge.export.recommend import recommend


def runnable_artifacts(manifest: Manifest, runtime: str) -> list[dict]:
    """The built artefacts the device's runtime loads (files with the runtime's model suffix)."""
    suffix = get_runtime(runtime).suffix
    return [a for a in manifest.artifacts if a.get("status") == "ok" and a["file"].endswith(suffix)]


def time_artifacts(profile, folder: str | Path, manifest: Manifest, max_drop: float) -> Manifest:
    """Measure every runnable artefact of ``manifest`` on ``profile``'s device (all in one session, the
    profile's rounds interleaving them), store each latency (the profile's statistic over the rounds) as
    ``measured_ms`` and in
    ``latency_ms.artifacts``, and set ``manifest.recommended``. A device that cannot be reached leaves a
    note in ``latency_ms.artifacts_note`` and no recommendation."""
    folder = Path(folder)
    sha = {f["path"]: f["sha256"] for f in manifest.files}
    r, batch = manifest.resolution, profile.benchmark.batch
    models: dict[str, tuple[dict, ModelFile]] = {}
    for art in runnable_artifacts(manifest, profile.runtime.name):
        # named by content, so a rebuilt file is never matched with an older file's journalled result
        name = f"a{sha[art['file']][:16]}"
        models[name] = (art, ModelFile(name, folder / art["file"], (batch, 3, r, r)))
    latencies: dict[str, list[dict]] = defaultdict(list)
    how = "fastest run" if profile.benchmark.statistic == "min" else "median"
    note = f"{len(models)} artefact(s) timed on {profile.name} ({profile.runtime.name}, {how} over " \
           f"{profile.benchmark.rounds} round(s))"
    failed: dict[str, str] = {}
    if not models:
        note = f"no artefact of this build runs on {profile.runtime.name} (its models end in " \
               f"{get_runtime(profile.runtime.name).suffix})"
    else:
        try:
            report = measure_models(profile, [m for _, m in models.values()],
                                    lambda msg: latencies[msg["name"]].append(msg))
            failed = report.failed
        except (OfaEdgeError, OSError) as exc:
            note = f"not measured: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    timed = {}
    for name, (art, _) in models.items():
        if latencies.get(name):
            art["measured_ms"] = round(profile.benchmark.latency(latencies[name]), 6)
            timed[art["key"]] = art["measured_ms"]
        elif name in failed:
            art["measure_error"] = failed[name]
    manifest.latency_ms["artifacts"] = timed
    manifest.latency_ms["artifacts_note"] = note
    manifest.recommended = recommend(manifest.artifacts, manifest.top1.get("drop_points", {}), max_drop)
    return manifest
