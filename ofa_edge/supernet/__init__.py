"""Supernet: elastic layers, the OFA MobileNetV3 supernet, static subnets, heads, BN recalibration."""

from ofa_edge.supernet.checkpoint import (load_any, load_ofa_checkpoint, load_supernet, read_supernet_file,
                                          save_supernet)
from ofa_edge.supernet.factory import SUPERNETS, create_supernet, register_supernet
from ofa_edge.supernet.heads import HeadMap, SwitchableHead
from ofa_edge.supernet.mobilenetv3 import OFAMobileNetV3
from ofa_edge.supernet.static import StaticMobileNetV3, build_layer

__all__ = [
    "SUPERNETS", "HeadMap", "OFAMobileNetV3", "StaticMobileNetV3", "SwitchableHead", "build_layer",
    "create_supernet", "load_any", "load_ofa_checkpoint", "load_supernet", "read_supernet_file",
    "register_supernet", "save_supernet",
]
