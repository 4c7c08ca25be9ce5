"""Search: budgets, vectorised genomes, additive costs, evolution vs a known optimum, selectors, Pareto."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ofa_edge.search import (BudgetError, CallableCost, Constraint, EvolutionConfig, GenomeCodec,
                             InfeasibleBudgetError, SearchSetup, cost_model, evolve, last_sampled, macs_cost,
                             pareto_front, parse_count, parse_latencies, parse_latency, random_search,
                             read_sampled_log, select, select_budgets)
from ofa_edge.space import (SearchSpace, count_macs, count_params, encode, get_space, layers, lut_keys,
                            max_subnet, min_subnet, sample)

SPACE = get_space("cifar-tiny")


def fake_layer_ms(key: str) -> float:
    """A deterministic per-layer 'measured' latency: a hash of the LUT key, loosely tied to its size."""
    u = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return 0.05 + 0.5 * u


class FakeTable:
    """Stands in for a device latency table: per-layer rows summed over a subnet's LUT keys."""

    def __init__(self, space):
        self.space = space
        self.calls = 0

    def predict(self, subnets):
        self.calls += 1
        out = []
        for s in subnets:
            out.append(sum(fake_layer_ms(k) * (1 + spec.macs / 2e5)
                           for k, spec in zip(lut_keys(self.space, s, 10), layers(self.space, s, 10))))
        return out


@pytest.fixture(scope="module")
def codec():
    return GenomeCodec(SPACE)


@pytest.fixture(scope="module")
def latency(codec):
    return cost_model(codec, FakeTable(SPACE).predict, "latency_ms", "ms")


# -- budgets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,ms", [("20ms", 20.0), ("20 ms", 20.0), ("0.02s", 20.0), ("20", 20.0),
                                     (" 7.5MS ", 7.5), ("500us", 0.5), (12, 12.0)])
def test_parse_latency(text, ms):
    assert parse_latency(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["abc", "-5ms", "0", "0ms", "", "5 kg", "nan", "inf", "1e999", "ms"])
def test_parse_latency_rejects(text):
    with pytest.raises(BudgetError) as err:
        parse_latency(text)
    assert repr(text) in str(err.value) and "20ms" in str(err.value)


def test_parse_latencies_and_counts():
    assert parse_latencies("40ms,10ms, 20 ms,10") == [10.0, 20.0, 40.0]
    with pytest.raises(BudgetError, match="'x'"):
        parse_latencies("10ms,x")
    assert parse_count("300M", "--macs") == 3e8
    assert parse_count("450k", "--params") == 4.5e5
    with pytest.raises(BudgetError, match="--macs"):
        parse_count("-3M", "--macs")


# -- genomes and costs -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cifar-tiny", "cifar-mbv3", "ofa-mbv3-w1"])
def test_genome_encoding_and_costs_match_the_space(name):
    space = get_space(name)
    c = GenomeCodec(space)
    g = c.sample(np.random.default_rng(3), 64)
    subs = c.to_subnets(g)
    assert np.array_equal(c.encode(g), np.asarray([encode(space, s) for s in subs], dtype=np.float32))
    assert c.keys(c.from_subnets(subs)) == c.keys(g)
    macs, params = macs_cost(c, 10), params_cost_of(c)
    assert macs(g).tolist() == [count_macs(space, s, 10) for s in subs]
    assert params(g).tolist() == [count_params(space, s, 10) for s in subs]
    lo, glo = macs.minimum()
    hi, ghi = macs.maximum()
    assert lo == count_macs(space, min_subnet(space), 10) == count_macs(space, c.to_subnets(glo)[0], 10)
    assert hi == count_macs(space, max_subnet(space), 10) == count_macs(space, c.to_subnets(ghi)[0], 10)


def params_cost_of(c):
    from ofa_edge.search import params_cost
    return params_cost(c, 10)


def test_decomposed_table_latency_is_exact_and_non_additive_costs_fall_back(codec, latency):
    table = FakeTable(SPACE)
    g = codec.sample(np.random.default_rng(7), 200)
    assert np.allclose(latency(g), table.predict(codec.to_subnets(g)), rtol=1e-12, atol=1e-12)
    # non-contiguous depth choices: slots 3..4 of a stage only ever run together
    gapped = SearchSpace(name="gapped", width_mult=0.25, stem="cifar", ks_list=(3, 5), expand_list=(2, 4),
                         depth_list=(2, 4), resolutions=(24, 32))
    gc = GenomeCodec(gapped)
    gg = gc.sample(np.random.default_rng(1), 100)
    assert macs_cost(gc, 10)(gg).tolist() == [count_macs(gapped, s, 10) for s in gc.to_subnets(gg)]
    square = cost_model(codec, lambda subs: [count_macs(SPACE, s, 10) ** 2 / 1e12 for s in subs], "sq", "ms")
    assert isinstance(square, CallableCost)
    assert np.allclose(square(g), [count_macs(SPACE, s, 10) ** 2 / 1e12 for s in codec.to_subnets(g)])


# -- evolution vs an exact optimum -----------------------------------------------------------------
def exact_optimum(codec, weights, cost, budget):
    """Brute force over every architecture of cifar-tiny (stage configs combined by broadcasting)."""
    sp = codec.space
    nk, ne = len(sp.ks_list), len(sp.expand_list)
    k0, e0 = len(sp.resolutions), len(sp.resolutions) + sp.n_blocks * nk
    best = -np.inf
    for ri in range(len(sp.resolutions)):
        vals, costs = [], []
        for s in range(sp.n_stages):
            v, c = [], []
            for d in sp.depth_list:
                slots = [s * sp.max_depth + p for p in range(d)]
                for combo in np.ndindex(*([nk * ne] * d)):
                    vv = cc = 0.0
                    for slot, ke in zip(slots, combo):
                        k, e = divmod(ke, ne)
                        vv += weights[k0 + slot * nk + k] + weights[e0 + slot * ne + e]
                        cc += cost.table[ri, slot, k, e]
                    v.append(vv)
                    c.append(cc)
            vals.append(np.asarray(v))
            costs.append(np.asarray(c))
        tv, tc = weights[ri], cost.base[ri]
        for s in range(sp.n_stages):
            shape = [1] * sp.n_stages
            shape[s] = -1
            tv = tv + vals[s].reshape(shape)
            tc = tc + costs[s].reshape(shape)
        ok = tc <= budget
        if ok.any():
            best = max(best, float(tv[ok].max()))
    return best


@pytest.mark.parametrize("fraction", [0.15, 0.4, 0.7])
def test_evolution_reaches_the_known_optimum(codec, latency, fraction):
    weights = np.random.default_rng(11).random(codec.enc_size)
    score = lambda g: codec.encode(g).astype(np.float64) @ weights  # noqa: E731
    lo, hi = latency.minimum()[0], latency.maximum()[0]
    budget = lo + fraction * (hi - lo)
    optimum = exact_optimum(codec, weights, latency, budget)
    res = evolve(codec, score, [Constraint(latency, budget)], EvolutionConfig(generations=150, seed=1))
    assert res.best.costs["latency_ms"] <= budget
    assert latency.of([res.best.subnet])[0] <= budget
    assert res.best.score >= 0.99 * optimum
    assert res.best.score <= optimum + 1e-9
    assert res.best.score == pytest.approx(float(score(codec.from_subnets([res.best.subnet]))[0]))
    # the final generation is ranked: scores descend, all distinct architectures
    scores = [c.score for c in res.ranking]
    assert scores == sorted(scores, reverse=True) and len({c.subnet for c in res.ranking}) == len(res.ranking)
    assert res.history == sorted(res.history)  # elitist: the best parent never gets worse


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(0.0, 1.2), seed=st.integers(0, 2**16), use_macs=st.booleans())
def test_evolution_never_returns_an_infeasible_subnet(codec, latency, fraction, seed, use_macs):
    macs = macs_cost(codec, 10)
    lo, hi = latency.minimum()[0], latency.maximum()[0]
    budget = lo + fraction * (hi - lo)
    cons = [Constraint(latency, budget)]
    if use_macs:
        cons.append(Constraint(macs, macs.maximum()[0] * 0.6))
    weights = np.random.default_rng(seed).normal(size=codec.enc_size)
    score = lambda g: codec.encode(g) @ weights  # noqa: E731
    try:
        res = evolve(codec, score, cons, EvolutionConfig(population=30, generations=15, seed=seed))
    except InfeasibleBudgetError:
        # only allowed when the combination is truly infeasible: check by exhaustive-ish sampling
        g = codec.sample(np.random.default_rng(0), 20000)
        assert not ((latency(g) <= budget) & (macs(g) <= macs.maximum()[0] * 0.6)).any()
        return
    for cand in res.ranking:
        assert latency.of([cand.subnet])[0] <= budget
        if use_macs:
            assert count_macs(SPACE, cand.subnet, 10) <= macs.maximum()[0] * 0.6


def test_infeasible_budget_names_the_fastest_latency(codec, latency):
    lo, g = latency.minimum()
    fastest = FakeTable(SPACE).predict(codec.to_subnets(g))[0]
    assert fastest == pytest.approx(lo)
    assert min(FakeTable(SPACE).predict([min_subnet(SPACE, r) for r in SPACE.resolutions])) >= lo - 1e-12
    with pytest.raises(InfeasibleBudgetError) as err:
        evolve(codec, lambda g: codec.encode(g).sum(1), [Constraint(latency, lo * 0.99)])
    assert f"{lo:.4g} ms" in str(err.value) and "fastest" in str(err.value)
    # exactly the fastest budget is feasible: the only subnets are the cheapest ones
    res = evolve(codec, lambda g: codec.encode(g).sum(1), [Constraint(latency, lo)],
                 EvolutionConfig(population=20, generations=5))
    assert res.best.costs["latency_ms"] <= lo


def test_jointly_infeasible_constraints_stop_instead_of_looping(codec, latency):
    """Each bound alone is feasible, together they are not: bounded retries, then an error."""
    lo, hi = latency.minimum()[0], latency.maximum()[0]
    anti = cost_model(codec, lambda subs: [hi - v for v in FakeTable(SPACE).predict(subs)], "anti", "ms")
    with pytest.raises(InfeasibleBudgetError):
        evolve(codec, lambda g: codec.encode(g).sum(1),
               [Constraint(latency, lo + 0.05 * (hi - lo)), Constraint(anti, 0.05 * (hi - lo))],
               EvolutionConfig(max_retries=20))


def test_random_selector_is_best_of_its_feasible_samples(codec, latency):
    weights = np.random.default_rng(2).random(codec.enc_size)
    score = lambda g: codec.encode(g) @ weights  # noqa: E731
    budget = latency.minimum()[0] + 0.3 * (latency.maximum()[0] - latency.minimum()[0])
    res = random_search(codec, score, [Constraint(latency, budget)], n=300, seed=5)
    assert res.evaluated == 300 and res.selector == "random"
    assert all(c.costs["latency_ms"] <= budget for c in res.ranking)
    assert res.best.score == max(c.score for c in res.ranking)
    evo = evolve(codec, score, [Constraint(latency, budget)], EvolutionConfig(generations=60))
    assert evo.best.score >= res.best.score - 1e-9


# -- TOFA last-sampled -----------------------------------------------------------------------------
def write_log(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["format", "iteration", "subnet_id", "subnet"])
        for it, s in rows:
            w.writerow(["ofa-edge-sampled/1", it, s.id, s.to_json()])


def algorithm2(rows, fits):
    """TOFA Algorithm 2 written independently: walk the log from the newest sample back, return the first
    subnet that fits the budget."""
    for it, s in sorted(enumerate(rows), key=lambda t: (t[1][0], t[0]), reverse=True):
        if fits(s[1]):
            return s[1]
    return None


def test_last_sampled_picks_what_algorithm_2_picks(tmp_path, codec, latency):
    import random

    rng = random.Random(4)
    rows = []
    for step in range(300):  # several subnets per step, some re-sampled later
        for _ in range(2):
            s = sample(SPACE, rng) if rng.random() > 0.2 or not rows else rows[rng.randrange(len(rows))][1]
            rows.append((step, s))
    write_log(tmp_path / "sampled.csv", rows)
    entries = read_sampled_log(tmp_path / "sampled.csv", SPACE)
    assert len(entries) == len({s for _, s in rows})
    setup_table = FakeTable(SPACE)
    lat = lambda s: setup_table.predict([s])[0]  # noqa: E731
    lo, hi = latency.minimum()[0], latency.maximum()[0]
    for frac in (0.05, 0.1, 0.2, 0.35, 0.5, 0.8, 1.0):
        budget = lo + frac * (hi - lo)
        want = algorithm2(rows, lambda s: lat(s) <= budget)
        if want is None:
            with pytest.raises(InfeasibleBudgetError, match="logged"):
                last_sampled(codec, entries, [Constraint(latency, budget)])
            continue
        got = last_sampled(codec, entries, [Constraint(latency, budget)])
        assert got.best.subnet == want
        assert got.best.costs["latency_ms"] <= budget


def test_sampled_log_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv.*subnet column"):
        read_sampled_log(bad, SPACE)
    with pytest.raises(ValueError, match="no such file"):
        read_sampled_log(tmp_path / "missing.csv", SPACE)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text('format,iteration,subnet\nofa-edge-accuracy/1,3,"{}"\n')
    with pytest.raises(ValueError, match="wrong.csv: line 2: format 'ofa-edge-accuracy/1'"):
        read_sampled_log(wrong, SPACE)
    other = tmp_path / "other.csv"
    write_log(other, [(1, sample(get_space("cifar-mbv3"), 0))])
    with pytest.raises(ValueError, match="other.csv: line 2"):
        read_sampled_log(other, SPACE)


# -- selection API, budgets and Pareto -------------------------------------------------------------
def test_select_budgets_gives_a_front(codec):
    setup = SearchSetup.build(SPACE, 10, latency=FakeTable(SPACE))
    lo, hi = setup.latency.minimum()[0], setup.latency.maximum()[0]
    budgets = [lo + f * (hi - lo) for f in (0.6, 0.1, 0.3)]
    results = select_budgets(setup, budgets, config=EvolutionConfig(generations=40))
    assert [r.bounds["latency_ms"] for r in results] == sorted(budgets)
    scores = [r.best.score for r in results]  # default objective: MACs; looser budget -> no fewer MACs
    assert scores == sorted(scores)
    with pytest.raises(InfeasibleBudgetError, match="fastest achievable"):
        select_budgets(setup, [lo / 2, hi])
    with pytest.raises(ValueError, match="unknown selector 'greedy'; known: evolution, last-sampled, random") as err:
        select(setup, "greedy", latency_ms=hi)
    assert err.value.field == "selector"
    info = setup.describe([results[0].best.subnet])
    assert info["latency_ms"][0] == pytest.approx(results[0].best.costs["latency_ms"])


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    lat, acc = rng.integers(0, 30, 300).astype(float), rng.integers(0, 30, 300).astype(float)
    front = pareto_front(lat, acc)
    dominated = lambda i: any((lat[j] <= lat[i] and acc[j] >= acc[i]) and (lat[j] < lat[i] or acc[j] > acc[i])  # noqa
                              for j in range(300))
    expected = {i for i in range(300) if not dominated(i)}
    assert {(lat[i], acc[i]) for i in front} == {(lat[i], acc[i]) for i in expected}
    assert list(lat[front]) == sorted(lat[front])


def test_a_looser_budget_never_picks_a_subnet_predicted_worse():
    """A small search can end below what a tighter budget found; that pick meets the looser budget too."""
    from ofa_edge.search.select import keep_tighter_pick

    setup = SearchSetup.build(SPACE, 10, latency=FakeTable(SPACE))
    lo, hi = setup.latency.minimum()[0], setup.latency.maximum()[0]
    budgets = [lo + f * (hi - lo) for f in (0.2, 0.22, 0.24, 0.26, 0.28, 0.3, 0.32, 0.34)]
    tiny = EvolutionConfig(population=4, generations=1, seed=3)
    plain = [select(setup, latency_ms=b, config=tiny) for b in budgets]
    assert any(b.best.score < a.best.score for a, b in zip(plain, plain[1:]))  # the heuristic alone is not monotone
    results = select_budgets(setup, budgets, config=tiny)
    assert [r.best.score for r in results] == sorted(r.best.score for r in results)
    for r, b in zip(results, budgets):
        assert r.bounds["latency_ms"] == b and r.best.costs["latency_ms"] <= b
        assert r.ranking[0].subnet.id == r.best.subnet.id
    kept = keep_tighter_pick(plain[0], plain[0])
    assert kept is plain[0]
