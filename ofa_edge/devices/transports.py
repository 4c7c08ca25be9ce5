"""Device transports: one factory per ``connection.transport`` name, in the ``TRANSPORTS`` registry.

A factory takes the device profile and returns a :class:`~ofa_edge.devices.transport.Transport` (not yet
connected). The built-in ones import their module only when used (paramiko for ``ssh``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ofa_edge.registry import Registry

if TYPE_CHECKING:
    from ofa_edge.devices.profile import DeviceProfile
    from ofa_edge.devices.transport import Transport

TransportFactory = Callable[["DeviceProfile"], "Transport"]

#: Transports by name (the names a device profile's ``connection.transport`` accepts).
TRANSPORTS: Registry[TransportFactory] = Registry("device transport", "transport")


def register_transport(name: str, factory: TransportFactory) -> TransportFactory:
    """Make ``factory`` usable as ``connection.transport = "<name>"`` (a taken name is refused)."""
    return TRANSPORTS.add(name, factory)


def _local(profile: DeviceProfile) -> Transport:
    from ofa_edge.devices.transport import LocalTransport

    return LocalTransport(profile)


def _ssh(profile: DeviceProfile) -> Transport:
    from ofa_edge.devices.ssh import SSHTransport

    return SSHTransport(profile)


def _adb(profile: DeviceProfile) -> Transport:
    from ofa_edge.devices.adb import AdbTransport

    return AdbTransport(profile)


register_transport("local", _local)
register_transport("ssh", _ssh)
register_transport("adb", _adb)
