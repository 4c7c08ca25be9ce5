"""ofa-edge: train one once-for-all supernet, ship one model per device and latency budget.

The main entry points load on first use, so ``import ofa_edge`` stays fast (it does not import torch)::

    import ofa_edge
    ofa_edge.train_supernet(ofa_edge.TrainConfig(space="cifar-tiny", epochs=1, out="runs/tiny"))
    ofa_edge.specialize(ofa_edge.SpecializeRequest("runs/tiny/supernet.pt", "x86-local", (20.0,)))
"""

from __future__ import annotations

import importlib

from ofa_edge.errors import OfaEdgeError

__version__ = "0.1.0"

#: name -> module that defines it (imported on first access); ``train_supernet`` is ``ofa_edge.train.train``
#: (the package ``ofa_edge.train`` owns the plain name).
_ENTRY_POINTS = {
    "Registry": "ofa_edge.registry",
    "SearchSpace": "ofa_edge.space", "resolve_space": "ofa_edge.space", "register_space": "ofa_edge.space",
    "create_supernet": "ofa_edge.supernet", "load_supernet": "ofa_edge.supernet",
    "TrainConfig": "ofa_edge.train", "train_supernet": "ofa_edge.train",
    "register_strategy": "ofa_edge.train.strategies",
    "get_device": "ofa_edge.devices", "register_runtime": "ofa_edge.devices.runtimes",
    "RuntimeSpec": "ofa_edge.devices.runtimes",
    "ProfileOptions": "ofa_edge.latency", "profile_device": "ofa_edge.latency", "load_table": "ofa_edge.latency",
    "build_target": "ofa_edge.export", "register_exporter": "ofa_edge.export",
    "register_selector": "ofa_edge.search.select",
    "fit_from_checkpoint": "ofa_edge.pipelines", "SpecializeRequest": "ofa_edge.pipelines",
    "specialize": "ofa_edge.pipelines", "pareto": "ofa_edge.pipelines", "run_demo": "ofa_edge.pipelines",
    "DemoConfig": "ofa_edge.pipelines",
}

_ALIASES = {"train_supernet": "train"}

__all__ = ["OfaEdgeError", "__version__", *sorted(_ENTRY_POINTS)]


def __getattr__(name: str):
    if name in _ENTRY_POINTS:
        return getattr(importlib.import_module(_ENTRY_POINTS[name]), _ALIASES.get(name, name))
    raise AttributeError(f"module 'ofa_edge' has no attribute {name!r}")
