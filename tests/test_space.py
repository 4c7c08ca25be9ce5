"""Search space: subnet values, sampling against the reference, counts, MACs/params, encoding, LUT keys."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from ofa_edge.space import (SearchSpace, Subnet, count_macs, count_params, crossover, encode, get_space,
                            lut_keys, max_subnet, min_subnet, mutate, sample, subnet_from_dict,
                            subnet_from_json, validate)

W1 = get_space("ofa-mbv3-w1")


def test_seeded_sampling_reproduces_reference_sampler(ofa_cases):
    # The fixture's random cases are random.seed(S) followed by the reference sample_active_subnet().
    for case in ofa_cases:
        if not case["name"].startswith("random"):
            continue
        seed = int(case["name"].split("pyseed")[1])
        random.seed(seed)
        s = sample(W1, random._inst, r=case["resolution"])  # type: ignore[attr-defined]
        assert list(s.ks) == case["ks"] and list(s.e) == case["e"] and list(s.d) == case["d"]


def test_macs_params_and_lut_keys_match_reference(ofa_cases):
    for case in ofa_cases:
        s = subnet_from_dict(W1, {"ks": case["ks"], "e": case["e"], "d": case["d"], "r": case["resolution"]})
        assert count_macs(W1, s) == round(case["flops_M_from_config"] * 1e6)
        assert count_params(W1, s) == case["subnet_params"]
        assert lut_keys(W1, s) == case["lut_keys"]


def test_encoding_matches_reference_arch_encoder(ofa_cases):
    for case in ofa_cases:
        s = subnet_from_dict(W1, {"ks": case["ks"], "e": case["e"], "d": case["d"], "r": case["resolution"]})
        assert encode(W1, s) == case["arch_feature_124"].tolist()


def test_json_round_trip_and_id_ignore_skipped_blocks():
    space = get_space("cifar-mbv3")
    rng = random.Random(3)
    for _ in range(50):
        s = sample(space, rng)
        back = subnet_from_json(space, s.to_json())
        assert back == s and back.id == s.id and back.to_dict() == s.to_dict()
    s = min_subnet(space)  # depth 2: slots 2 and 3 of every stage are skipped
    changed = s.replace(ks=[7 if i % 4 == 3 else k for i, k in enumerate(s.ks)])
    assert changed == s and changed.id == s.id and hash(changed) == hash(s)
    assert s.replace(r=28) != s and s.replace(r=28).id != s.id
    assert len(s.id) == 10 and s.id == Subnet(**{**s.to_dict(), "max_depth": 4}).id


def test_subnet_is_immutable():
    s = max_subnet(W1)
    with pytest.raises(AttributeError):
        s.r = 160  # type: ignore[misc]


def test_sampling_is_seeded_uniform_and_valid():
    space = get_space("cifar-mbv3")
    assert sample(space, 11) == sample(space, 11)
    draws = [sample(space, random.Random(i)) for i in range(600)]
    for s in draws:
        validate(space, s)
    kernels = [k for s in draws for k in s.ks]
    for k in space.ks_list:  # uniform per gene: each choice ~1/3 of 12000 draws
        assert abs(kernels.count(k) / len(kernels) - 1 / 3) < 0.03
    assert {s.r for s in draws} == set(space.resolutions)


def test_min_max_are_extremes():
    space = get_space("cifar-mbv3")
    lo, hi = min_subnet(space), max_subnet(space)
    rng = random.Random(0)
    for _ in range(200):
        m = count_macs(space, sample(space, rng), 10)
        assert count_macs(space, lo, 10) <= m <= count_macs(space, hi, 10)


def test_mutation_and_crossover_stay_in_space_and_are_seeded():
    space = get_space("cifar-mbv3")
    a, b = sample(space, 1), sample(space, 2)
    m1 = mutate(space, a, random.Random(5), prob=0.5)
    assert m1 == mutate(space, a, random.Random(5), prob=0.5)
    assert m1 != a
    validate(space, m1)
    assert mutate(space, a, random.Random(5), prob=0.0, resolution_prob=0.0) == a
    c = crossover(a, b, random.Random(9))
    validate(space, c)
    for i in range(space.n_blocks):
        assert c.ks[i] in (a.ks[i], b.ks[i]) and c.e[i] in (a.e[i], b.e[i])
    assert all(c.d[s] in (a.d[s], b.d[s]) for s in range(space.n_stages))


@pytest.mark.parametrize("data, field, allowed", [
    ({"ks": 4, "e": 3, "d": 2, "r": 32}, "ks[0]", "[3, 5, 7]"),
    ({"ks": 3, "e": 5, "d": 2, "r": 32}, "e[0]", "[3, 4, 6]"),
    ({"ks": 3, "e": 3, "d": [2, 2, 1, 2, 2], "r": 32}, "d[2]", "[2, 3, 4]"),
    ({"ks": 3, "e": 3, "d": 2, "r": 30}, "r", "[24, 28, 32]"),
])
def test_invalid_subnets_name_field_and_allowed_values(data, field, allowed):
    with pytest.raises(ValueError) as err:
        subnet_from_dict(get_space("cifar-mbv3"), data)
    assert field in str(err.value) and allowed in str(err.value)


@pytest.mark.parametrize("text", ['{"ks": 3, "e": 3', '[1, 2]', '{"ks": 3, "e": 3, "d": 2, "x": 1}',
                                  '{"ks": [3, 3], "e": 3, "d": 2}', '{"ks": "3", "e": 3, "d": 2}',
                                  '{"ks": 3.5, "e": 3, "d": 2}'])
def test_malformed_subnet_json_is_a_value_error(text):
    with pytest.raises(ValueError):
        subnet_from_json(get_space("cifar-mbv3"), text)


def _small_space() -> SearchSpace:
    return SearchSpace(name="small", width_mult=0.25, stem="cifar", ks_list=(3, 5), expand_list=(3,),
                       depth_list=(1, 2), resolutions=(16, 24))


def test_subnet_count_matches_brute_force_enumeration():
    space = _small_space()
    seen = set()
    for ks in itertools.product(space.ks_list, repeat=space.n_blocks):
        for d in itertools.product(space.depth_list, repeat=space.n_stages):
            for r in space.resolutions:
                s = Subnet(ks=ks, e=[3] * space.n_blocks, d=d, r=r, max_depth=space.max_depth)
                seen.add(s.canonical())
    assert len(seen) == space.n_subnets == 7776 * 2
    assert W1.n_subnets == ((3 * 3) ** 2 + 9 ** 3 + 9 ** 4) ** 5 * 4


def test_space_json_round_trip_and_fingerprint():
    space = get_space("cifar-mbv3")
    back = SearchSpace.from_dict(json.loads(space.to_json()))
    assert back == space and back.fingerprint() == space.fingerprint()
    assert get_space("cifar-tiny").fingerprint() != space.fingerprint()
    with pytest.raises(ValueError, match="unknown field 'kernel'"):
        SearchSpace.from_dict({"kernel": [3]})
    with pytest.raises(ValueError, match="stem"):
        SearchSpace(stem="tiny")
