"""Where a latency table was measured: the machine facts of its provenance, and whether that is this machine."""

from __future__ import annotations

import os
import platform
from typing import Any

#: Provenance facts that identify the machine a table was measured on. ``cpu_features`` tells apart two
#: hosts that report the same model name (a VM's "AMD EPYC" with and without AVX-512 VNNI, whose INT8
#: latencies differ by more than a third).
MACHINE_FACTS = ("hostname", "cpu", "cpu_features", "cpu_count", "machine")


def this_machine() -> dict[str, Any]:
    """The same facts the device runner reports, for this machine."""
    from ofa_edge.devices.runner import cpu_features, cpu_model  # the standalone runner: no torch, no ofa_edge

    return {"hostname": platform.node(), "cpu": cpu_model(), "cpu_features": cpu_features(),
            "cpu_count": os.cpu_count(), "machine": platform.machine()}


def measured_here(provenance: dict[str, Any]) -> bool:
    """Whether a table's provenance names this machine (facts it lacks are not held against it)."""
    here = this_machine()
    return all(provenance.get(k) in (None, here[k]) for k in MACHINE_FACTS if here[k] not in (None, ""))


def origin(provenance: dict[str, Any]) -> str:
    """The machine, CPU and date a table was measured on, as printed beside its numbers."""
    cpu = provenance.get("cpu") or "unknown CPU"
    count = provenance.get("cpu_count")
    date = str(provenance.get("date") or "unknown date")[:10]
    return f"{provenance.get('hostname') or 'unknown machine'} ({cpu}{f' x{count}' if count else ''}), {date}"


def origin_label(provenance: dict[str, Any], local: bool) -> str:
    """``measured on <machine> (<cpu>), <date>``, flagged when a local table comes from another machine."""
    label = f"table measured on {origin(provenance)}"
    return f"{label} [another machine: its numbers are not this machine's]" if local and not \
        measured_here(provenance) else label
