"""Every registry: the generic rules, then each registered space, strategy, runtime, format and selector."""

from __future__ import annotations

import ast
import dataclasses
import inspect

import numpy as np
import pytest
import torch

from ofa_edge.devices import runner
from ofa_edge.devices.runtimes import RUNTIMES, RuntimeSpec
from ofa_edge.devices.transports import TRANSPORTS
from ofa_edge.errors import OfaEdgeError, UnknownNameError
from ofa_edge.export import EXPORTERS, Exporter, plan
from ofa_edge.registry import Registry
from ofa_edge.search.select import SELECTORS, SearchSetup, select
from ofa_edge.search.selectors import SampledEntry
from ofa_edge.space import SPACES, LayerSpec, get_space, max_subnet, min_subnet, register_space, sample
from ofa_edge.supernet import SUPERNETS, create_supernet
from ofa_edge.train import TrainConfig
from ofa_edge.train.strategies import STRATEGIES, StepBatch, StrategyParams, make_strategy

torch.set_num_threads(1)


# -- the generic registry -------------------------------------------------------------------------------
def test_registry_refuses_duplicates_and_names_the_known_entries_on_a_miss():
    reg: Registry[int] = Registry("widget", "widget")
    reg.add("b", 2)
    reg.register("a")(1)
    assert reg.list() == ["a", "b"] and reg.names() == ("b", "a") and "a" in reg and len(reg) == 2
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.add("a", 3)
    assert reg.get("a") == 1
    with pytest.raises(UnknownNameError, match=r"unknown widget 'c'; known: a, b") as err:
        reg.get("c")
    assert err.value.field == "widget" and isinstance(err.value, OfaEdgeError)
    assert reg.remove("a") == 1 and reg.list() == ["b"]


def test_register_space_refuses_a_taken_name():
    with pytest.raises(ValueError, match="search space 'cifar-tiny' is already registered"):
        register_space("cifar-tiny")(lambda: get_space("cifar-mbv3"))
    assert get_space("cifar-tiny").width_mult == 0.25  # the original is kept


@pytest.mark.parametrize("kind,registry", [("spaces", SPACES), ("supernet families", SUPERNETS),
                                           ("strategies", STRATEGIES), ("runtimes", RUNTIMES),
                                           ("formats", EXPORTERS), ("selectors", SELECTORS),
                                           ("transports", TRANSPORTS)])
def test_every_registry_has_entries_and_lists_them_on_a_miss(kind, registry):
    assert len(registry) >= 1, kind
    with pytest.raises(UnknownNameError) as err:
        registry.get("no-such-entry")
    assert all(name in str(err.value) for name in registry.list())


# -- spaces and supernet families ------------------------------------------------------------------------
@pytest.mark.parametrize("name", SPACES.list())
def test_every_space_builds_its_supernet_and_runs_min_and_max(name):
    space = get_space(name)
    assert space.name == name and space.family in SUPERNETS
    net = create_supernet(name, n_classes=7).eval()
    for subnet in (min_subnet(space), max_subnet(space)):
        net.set_subnet(subnet)
        with torch.no_grad():
            r = min(space.resolutions)
            assert net(torch.zeros(1, 3, r, r)).shape == (1, 7)


def test_a_space_of_an_unknown_family_is_refused_naming_the_families():
    space = dataclasses.replace(get_space("cifar-tiny"), family="transformer")
    assert "family" in space.to_dict()  # a non-default family is stored; the built-in one is not
    assert "family" not in get_space("cifar-tiny").to_dict()
    with pytest.raises(UnknownNameError, match="unknown supernet family 'transformer'; known: mobilenetv3"):
        create_supernet(space)


# -- strategies --------------------------------------------------------------------------------------
def _cfg(name: str) -> TrainConfig:
    return TrainConfig(strategy=name, space="cifar-tiny", epochs=len(get_space("cifar-tiny").ks_list) + 6,
                       labels_per_class=5, n_random=1)


@pytest.mark.parametrize("name", STRATEGIES.list())
def test_every_strategy_takes_its_params_from_the_config_and_trains_a_step(name):
    cfg = _cfg(name)
    strategy = make_strategy(cfg)
    assert dataclasses.is_dataclass(strategy.Params) and issubclass(strategy.Params, StrategyParams)
    for f in dataclasses.fields(strategy.params):
        assert getattr(strategy.params, f.name) == getattr(cfg, f.name)
    space = get_space("cifar-tiny")
    phase = strategy.phases(cfg, space)[0]
    subnets = strategy.subnets(phase, 0, 0)
    assert subnets and all(s.r in space.resolutions for _, s in subnets)
    torch.manual_seed(0)
    net = create_supernet(space, 10).train()
    x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
    unl = (torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)) if strategy.needs_unlabelled else (None, None)
    stats = strategy.step(phase, net, net, subnets, StepBatch(x, y, *unl))
    assert np.isfinite(stats["loss"])
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_a_registered_strategy_is_accepted_by_the_config_and_an_unknown_one_refused():
    with pytest.raises(UnknownNameError, match="unknown training strategy 'magic'") as err:
        TrainConfig(strategy="magic")
    assert err.value.field == "strategy"
    with pytest.raises(OfaEdgeError) as err:
        TrainConfig(strategy="tofa")
    assert err.value.field == "labels_per_class" and "--" not in str(err.value)


# -- runtimes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", RUNTIMES.list())
def test_every_runtime_spec_is_complete(name):
    spec = RUNTIMES.get(name)
    assert isinstance(spec, RuntimeSpec) and spec.name == name
    assert spec.suffix.startswith(".") and spec.install_hint and callable(spec.write_model)
    if spec.measure is None:  # the standalone runner measures it: its own table must know the runtime
        assert name in runner.RUNTIMES and runner._install_hint(name) == spec.install_hint


def test_the_runner_knows_exactly_the_host_runtimes_it_measures():
    host = {n for n in RUNTIMES if RUNTIMES.get(n).measure is None}
    assert set(runner.RUNTIMES) == host
    tree = ast.parse(inspect.getsource(runner))  # and it stays standalone: its table is its own
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names] + \
               [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [m for m in imported if m.startswith("ofa_edge")]


@pytest.mark.parametrize("name", RUNTIMES.list())
def test_every_runtime_writes_a_model_the_runner_loads(name, tmp_path):
    from ofa_edge.export.backends import available
    from ofa_edge.latency.models import block_model

    if RUNTIMES.get(name).suffix == ".tflite" and not available("tflite"):
        pytest.skip("TFLite converter (litert-torch) not installed")
    spec = LayerSpec("stem", 8, 8, 3, 8, kernel=3, stride=1, act="h_swish")
    model = block_model(spec, name, tmp_path)
    assert model.path.suffix == RUNTIMES.get(name).suffix and model.path.stat().st_size > 0
    # benchmark binaries (benchmark_model, trtexec) run the files of a runtime the runner knows
    loader = name if name in runner.RUNTIMES else {".tflite": "tflite", ".onnx": "onnxruntime"}[model.path.suffix]
    backend = runner.Backend({"name": loader, "providers": ["CPUExecutionProvider"]}, {"threads": 1})
    backend.load(model.path.read_bytes(), list(model.input_shape), "float32")()


# -- export formats ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", EXPORTERS.list())
def test_every_exporter_plans_distinct_artifacts(name):
    exporter = EXPORTERS.get(name)
    assert isinstance(exporter, Exporter) and exporter.name == name
    for quantize in (False, True):
        arts = exporter.artifacts(quantize)
        assert arts and all(a.format == name for a in arts)
        assert [a.quantized for a in arts][0] is False and (len(arts) > 1) == quantize
    everything = plan(EXPORTERS.list(), quantize=True)
    assert len({a.key for a in everything}) == len({a.filename for a in everything}) == len(everything)


def test_an_unknown_format_is_refused_naming_the_formats():
    with pytest.raises(UnknownNameError, match="unknown export format 'png'; known: coreml, onnx, tflite"):
        plan(["onnx", "png"], quantize=False)


# -- selectors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SELECTORS.list())
def test_every_selector_picks_a_subnet_within_the_bound(name):
    import random

    space = get_space("cifar-tiny")
    setup = SearchSetup.build(space, 10)
    bound = float(setup.macs(setup.codec.from_subnets([max_subnet(space)]))[0]) * 0.6
    rng = random.Random(0)
    log = [SampledEntry(sample(space, rng), i, i) for i in range(40)] + [SampledEntry(min_subnet(space), 40, 40)]
    from ofa_edge.search import EvolutionConfig

    res = select(setup, name, max_macs=bound, sampled=log, random_n=200,
                 config=EvolutionConfig(population=20, generations=10))
    assert res.selector == name and res.best.costs["macs"] <= bound
    if SELECTORS.get(name).needs_training_log:
        assert res.best.subnet in {e.subnet for e in log}
