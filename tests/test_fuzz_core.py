"""Fuzzing the core parsers: subnet JSON, search-space files and checkpoints only fail with their documented errors."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from fuzz_budget import fuzz_settings
from ofa_edge.errors import FileFormatError
from ofa_edge.space import SearchSpace, get_space, subnet_from_json
from ofa_edge.supernet import OFAMobileNetV3, load_any, save_supernet

SPACE = get_space("cifar-tiny")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 300) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=12) | st.dictionaries(st.sampled_from(["ks", "e", "d", "r", "x"]),
                                                                 inner, max_size=5),
    max_leaves=30)


@fuzz_settings("subnet-json")
@given(json_values)
def test_subnet_json_fuzz_only_raises_value_error(value):
    try:
        subnet = subnet_from_json(SPACE, json.dumps(value))
    except ValueError:
        return
    assert subnet.r in SPACE.resolutions


@fuzz_settings("subnet-text")
@given(st.text(max_size=40))
def test_subnet_text_fuzz_only_raises_value_error(text):
    with pytest.raises(ValueError):
        subnet_from_json(SPACE, text + "{")


@fuzz_settings("space-dict")
@given(st.dictionaries(st.sampled_from(sorted(SearchSpace.__dataclass_fields__) + ["bogus"]), json_values,
                       max_size=6))
def test_space_dict_fuzz_only_raises_value_or_type_error(data):
    try:
        space = SearchSpace.from_dict(data)
    except (ValueError, TypeError):
        return
    assert space.n_blocks == space.n_stages * space.max_depth


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    path = save_supernet(OFAMobileNetV3(SPACE, 10), tmp_path_factory.mktemp("ck") / "supernet.pt")
    return path.read_bytes()


@fuzz_settings("supernet-checkpoint", suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10**9), flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)),
                                                 max_size=4))
def test_damaged_checkpoints_only_raise_file_format_error(tmp_path, checkpoint_bytes, cut, flips):
    data = bytearray(checkpoint_bytes[: cut % (len(checkpoint_bytes) + 1)])
    for pos, xor in flips:
        if data:
            data[pos % len(data)] ^= xor
    path = tmp_path / "damaged.pt"
    path.write_bytes(bytes(data))
    try:
        net = load_any(path)
    except FileFormatError as exc:
        assert "damaged.pt" in str(exc)
        return
    assert isinstance(net, torch.nn.Module)  # a flip in padding or an unused byte can leave it loadable
