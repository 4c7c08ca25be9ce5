"""Search space: elastic choices, the Subnet value, sampling/mutation/crossover, encoding, layer list."""

from ofa_edge.space.arch import LayerSpec, count_macs, count_params, layers, lut_keys
from ofa_edge.space.config import SearchSpace, make_divisible
from ofa_edge.space.encoding import encode, encoding_size
from ofa_edge.space.registry import SPACES, get_space, list_spaces, register_space, resolve_space
from ofa_edge.space.sampling import crossover, max_subnet, min_subnet, mutate, sample
from ofa_edge.space.subnet import Subnet, subnet_from_dict, subnet_from_json, validate

__all__ = [
    "SPACES", "LayerSpec", "SearchSpace", "Subnet", "count_macs", "count_params", "crossover", "encode",
    "encoding_size", "get_space", "layers", "list_spaces", "lut_keys", "make_divisible", "max_subnet",
    "min_subnet", "mutate", "register_space", "resolve_space", "sample", "subnet_from_dict",
    "subnet_from_json", "validate",
]
