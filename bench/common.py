"""Helpers shared by the benchmark scripts (imported as ``common``: a script's own folder is on sys.path)."""

from __future__ import annotations

import platform
import resource
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shown(path: Path) -> str:
    """``path`` relative to the checkout when inside it, else its last two parts (no machine paths)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else "/".join(path.parts[-2:])


def checkpoint_sha256(checkpoint: str) -> str:
    """SHA-256 of a checkpoint file or packaged name: which weights a result was measured on."""
    from ofa_edge.export.manifest import sha256_path
    from ofa_edge.pretrained import resolve_checkpoint

    return sha256_path(resolve_checkpoint(checkpoint))


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished children so far."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def cpu_model() -> str:
    """The CPU's model name and widest vector ISA (runs at equal minutes on other CPUs take other step counts)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "unknown")
    flags = next((set(ln.split(":", 1)[1].split()) for ln in info.splitlines() if ln.startswith("flags")), set())
    isa = next((f for f in ("avx512_vnni", "avx512f", "avx2") if f in flags), "no avx2")
    return f"{name} ({isa})"
