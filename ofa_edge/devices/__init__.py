"""Devices: profiles (TOML), the registry, transports (local, SSH) and the standalone on-device runner."""

from ofa_edge.devices.bundle import ModelFile, build_bundle, parse_line
from ofa_edge.devices.profile import (Benchmark, Connection, DeviceProfile, DeviceSide, Runtime, load_profile,
                                      profile_from_dict)
from ofa_edge.devices.registry import KnownDevice, get_device, known_devices, list_devices, search_path
from ofa_edge.devices.session import DeviceError, MeasureReport, check_device, measure_models
from ofa_edge.devices.transport import ConnectionLost, Transport, TransportError, open_transport

__all__ = [
    "Benchmark", "Connection", "ConnectionLost", "DeviceError", "DeviceProfile", "DeviceSide", "KnownDevice",
    "MeasureReport", "ModelFile", "Runtime", "Transport", "TransportError", "build_bundle", "check_device",
    "get_device", "known_devices", "list_devices", "load_profile", "measure_models", "open_transport", "parse_line",
    "profile_from_dict", "search_path",
]
