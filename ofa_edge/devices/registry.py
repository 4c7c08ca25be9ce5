"""Find device profiles by name: ./device_profiles, then $OFA_EDGE_DEVICES folders, then the packaged ones."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ofa_edge.devices.profile import DeviceProfile, load_profile
from ofa_edge.errors import OfaEdgeError

ENV_VAR = "OFA_EDGE_DEVICES"
LOCAL_DIR = "device_profiles"
SOURCES = ("cwd", "env", "packaged")  # search order; a profile found earlier overrides one of the same name


def _package_dir() -> Path:
    """The packaged profiles: ofa_edge/device_profiles when installed, device_profiles/ in a checkout."""
    package = Path(__file__).resolve().parents[1]
    installed = package / LOCAL_DIR
    return installed if installed.is_dir() else package.parent / LOCAL_DIR


PACKAGE_DIR = _package_dir()


@dataclass(frozen=True)
class KnownDevice:
    """A device name, the profile file it resolves to, and where that file was found (one of ``SOURCES``)."""

    name: str
    path: Path
    source: str


def search_path() -> list[tuple[str, Path]]:
    """The folders searched for ``<name>.toml`` with their source, first match wins."""
    cwd = Path.cwd() / LOCAL_DIR
    dirs = [] if _same(cwd, PACKAGE_DIR) else [("cwd", cwd)]  # in the checkout root it is the packaged folder
    dirs += [("env", Path(p).expanduser()) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return dirs + [("packaged", PACKAGE_DIR)]


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def known_devices() -> dict[str, KnownDevice]:
    """Every known device by name, each with the profile that wins for it and that profile's source."""
    found: dict[str, KnownDevice] = {}
    for source, folder in search_path():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, KnownDevice(path.stem, path, source))
    return dict(sorted(found.items()))


def list_devices() -> dict[str, Path]:
    """Known device names and the profile file each resolves to."""
    return {name: d.path for name, d in known_devices().items()}


def get_device(name: str | os.PathLike, host: str | None = None, port: int | None = None,
               user: str | None = None) -> DeviceProfile:
    """The profile named ``name`` (or at path ``name`` if it ends in .toml), with host overrides applied.

    Args:
        name: A profile name (searched in ./device_profiles, ``$OFA_EDGE_DEVICES``, the packaged ones) or a
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
                               f"(or pass a profile file path ending in .toml, put <name>.toml in "
                               f"./{LOCAL_DIR}/, or add folders to ${ENV_VAR})")
        profile = load_profile(known[text])
    return profile.with_overrides(host=host, port=port, user=user)
