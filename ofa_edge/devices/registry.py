"""Find device profiles by name: $OFA_EDGE_DEVICES folders, ./device_profiles, then the packaged ones."""

from __future__ import annotations

import os
from pathlib import Path

from ofa_edge.devices.profile import DeviceProfile, load_profile
from ofa_edge.errors import OfaEdgeError

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "device_profiles"
ENV_VAR = "OFA_EDGE_DEVICES"


def search_path() -> list[Path]:
    """Folders searched for ``<name>.toml``, first match wins."""
    dirs = [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return dirs + [Path.cwd() / "device_profiles", PACKAGE_DIR]


def list_devices() -> dict[str, Path]:
    """Known device names and the profile file each resolves to."""
    found: dict[str, Path] = {}
    for folder in search_path():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def get_device(name: str | os.PathLike, host: str | None = None, port: int | None = None,
               user: str | None = None) -> DeviceProfile:
    """The profile named ``name`` (or at path ``name`` if it ends in .toml), with host overrides applied.

    Args:
        name: A profile name (searched in ``$OFA_EDGE_DEVICES``, ./device_profiles, the packaged ones) or a
            ``.toml`` path.
        host, port, user: Overrides of the profile's connection (a host switches it to SSH).

    Returns:
        The validated profile.

    Raises:
        OfaEdgeError: an unknown device (lists the known ones) or an invalid profile (names the key).
    """
    text = str(name)
    if text.endswith(".toml"):
        profile = load_profile(text)
    else:
        known = list_devices()
        if text not in known:
            raise OfaEdgeError(f"unknown device {text!r}; known devices: {', '.join(known) or 'none'} "
                               f"(or pass a profile file path ending in .toml, or add folders to ${ENV_VAR})")
        profile = load_profile(known[text])
    return profile.with_overrides(host=host, port=port, user=user)
