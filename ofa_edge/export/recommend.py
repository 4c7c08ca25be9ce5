"""The artefact a device should run: the fastest measured one whose top-1 drop stays within a limit.

``recommend(artifacts, drops, max_drop)`` reads the manifest's artefact entries (``key``, ``file``,
``precision``, ``status`` and, once timed on the device, ``measured_ms``) and ``top1.drop_points``
(fp32 minus the artefact's top-1, in points; fp32 artefacts drop 0 by definition). It returns the
manifest's ``recommended`` entry: the artefact, its file, latency and drop, the limit, the basis of the
choice, and for every other artefact why it was not chosen.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

DEFAULT_MAX_DROP = 1.0


def _drop(art: Mapping[str, Any], drops: Mapping[str, Any]) -> float | None:
    """Top-1 drop of an artefact in points: 0 for a float one, the measured drop for a quantised one."""
    if art.get("precision") in ("fp32", "fp16"):
        return 0.0
    value = drops.get(art["key"])
    return None if value is None else float(value)


def recommend(artifacts: Sequence[Mapping[str, Any]], drops: Mapping[str, Any],
              max_drop: float = DEFAULT_MAX_DROP) -> dict[str, Any] | None:
    """The fastest timed artefact with a drop <= ``max_drop`` (ties go to the float one); None if none ran."""
    timed = [a for a in artifacts if a.get("status") == "ok" and a.get("measured_ms") is not None]
    if not timed:
        return None
    eligible, rejected = [], {}
    for art in timed:
        drop = _drop(art, drops)
        if drop is None:
            rejected[art["key"]] = "top-1 not measured (no test images at export)"
        elif drop > max_drop:
            rejected[art["key"]] = f"top-1 drop {drop:.2f} points > {max_drop:g}"
        else:
            quantised = art.get("precision") not in ("fp32", "fp16")
            eligible.append((float(art["measured_ms"]), quantised, art, drop))
    if not eligible:
        return None
    ms, _, best, drop = min(eligible, key=lambda e: (e[0], e[1]))
    for other_ms, _, art, _ in eligible:
        if art is not best:
            rejected[art["key"]] = f"slower: {other_ms:.4g} ms vs {ms:.4g} ms"
    return {"artifact": best["key"], "file": best["file"], "precision": best["precision"],
            "latency_ms": ms, "drop_points": drop, "max_drop_points": max_drop,
            "basis": "fastest artefact measured on the device whose top-1 drop on the test split is within "
                     "max_drop_points", "not_chosen": rejected}
