"""ofa-edge: train one once-for-all supernet, ship one model per device and latency budget."""

__version__ = "0.1.0"

from ofa_edge.errors import OfaEdgeError  # noqa: E402

__all__ = ["OfaEdgeError", "__version__"]
