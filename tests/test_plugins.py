"""Plug-in contract: a runtime, an exporter, a strategy, a selector and a JSON space, each defined here and
registered from this test (no ofa_edge module is touched), run through ``train``, ``profile``,
``specialize``, ``build`` and ``space show`` on the real command line."""

from __future__ import annotations

import csv
import json
import shutil
import time

import pytest
import torch

from ofa_edge.cli import main
from ofa_edge.devices import runner
from ofa_edge.devices.runtimes import RUNTIMES, RuntimeSpec, register_runtime
from ofa_edge.export import EXPORTERS, Artifact, Exporter, register_exporter
from ofa_edge.export.onnx import OnnxRunner
from ofa_edge.latency import enumerate_blocks, load_table, table_paths
from ofa_edge.search.evolution import Candidate, SearchResult
from ofa_edge.search.select import SELECTORS, Selector, register_selector
from ofa_edge.space import SearchSpace, get_space, max_subnet, min_subnet, resolve_space, subnet_from_json
from ofa_edge.train.strategies import STRATEGIES, Strategy, register_strategy

torch.set_num_threads(1)
SLEEP_MS = 2.0


# -- the plug-ins --------------------------------------------------------------------------------------
def write_stub(model, path, shape) -> None:
    """The sleeping runtime needs no real model: a small file naming the input shape."""
    path.write_text(json.dumps({"input_shape": list(shape)}))


def measure_by_sleeping(transport, profile, model) -> dict:
    """'Runs' a model by sleeping SLEEP_MS, timed with the runner's own statistics."""
    b = profile.benchmark
    return runner.measure(lambda: time.sleep(SLEEP_MS / 1000), b.warmup, b.repeats)


class OnnxCopy(Exporter):
    """Writes a byte copy of the build's ONNX model (so it must come after "onnx" in the formats)."""

    name = "onnx-copy"

    def artifacts(self, quantize, tflite_quantize="int8"):
        return [Artifact("onnx-copy", self.name, "fp32", "model.copy.onnx", False)]

    def export(self, art, path, ctx):
        shutil.copyfile(ctx.fp32_paths["onnx"], path)

    def runner(self, art, path):
        return OnnxRunner(path)


class MaxOnly(Strategy):
    """Trains the largest subnet only."""

    def subnets(self, phase, seed, iteration):
        return [("max", max_subnet(phase.space))]


class Smallest(Selector):
    """Picks the smallest subnet whatever the budget allows (needs neither predictor nor training log)."""

    name = "smallest"
    needs_predictor = False

    def select(self, setup, constraints, opts):
        subnet = min_subnet(setup.space)
        costs = {k: float(v[0]) for k, v in setup.describe([subnet]).items()}
        best = Candidate(subnet, costs["predicted_top1"], costs)
        return SearchResult(best, [best], [], {c.name: c.bound for c in constraints}, self.name, 0.0, 1)


JSON_SPACE = SearchSpace(name="json-tiny", width_mult=0.25, stem="cifar", ks_list=(3,), expand_list=(2, 3),
                         depth_list=(1, 2), resolutions=(24,))


@pytest.fixture(scope="module")
def plugins():
    # the CLI's modules list the registries in their --help when imported: import them before the test
    # plug-ins exist, so that those never show in the help other tests compare with the README
    import importlib

    from ofa_edge.cli.lazy import COMMANDS

    for command in COMMANDS.values():
        importlib.import_module(command.module)

    register_runtime(RuntimeSpec("sleep-test", ".stub", write_stub, "nothing to install",
                                 measure=measure_by_sleeping))
    register_exporter(OnnxCopy)
    register_strategy("max-only")(MaxOnly)
    register_selector(Smallest)
    yield
    RUNTIMES.remove("sleep-test")
    EXPORTERS.remove("onnx-copy")
    STRATEGIES.remove("max-only")
    SELECTORS.remove("smallest")


@pytest.fixture(scope="module")
def work(plugins, tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    (root / "space.json").write_text(JSON_SPACE.to_json())
    (root / "devices").mkdir()
    (root / "devices" / "sleepy.toml").write_text(
        'name = "sleepy"\n[connection]\ntransport = "local"\n[device]\npython = "current"\n'
        f'work_dir = "{root / "dev"}"\n[runtime]\nname = "sleep-test"\n'
        "[benchmark]\nwarmup = 1\nrepeats = 3\n")
    return root


def _cli(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_json_space_show(work, capsys):
    out = json.loads(_cli(capsys, "space", "show", "--space", work / "space.json", "--json"))
    assert SearchSpace.from_dict(out["space"]) == JSON_SPACE and out["n_subnets"] == JSON_SPACE.n_subnets


def test_plugin_strategy_trains_the_json_space(work, capsys, monkeypatch):
    monkeypatch.chdir(work)  # `train` makes its output this folder's current supernet
    _cli(capsys, "train", "--strategy", "max-only", "--space", work / "space.json", "--epochs", "1",
         "--steps-per-epoch", "2", "--batch-size", "16", "--eval-every", "0", "--out", work / "run", "--quiet")
    ckpt = torch.load(work / "run" / "supernet.pt", map_location="cpu", weights_only=False)
    assert SearchSpace.from_dict(ckpt["space"]) == JSON_SPACE
    with open(work / "run" / "sampled.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 1
    assert {subnet_from_json(JSON_SPACE, r["subnet"]) for r in rows} == {max_subnet(JSON_SPACE)}


def test_plugin_runtime_profiles_the_json_space(work, capsys, monkeypatch):
    monkeypatch.setenv("OFA_EDGE_DEVICES", str(work / "devices"))
    _cli(capsys, "profile", "--device", "sleepy", "--space", work / "space.json", "--classes", "10",
         "--calibrate", "2", "--tables", work / "tables", "--cache", work / "cache", "--json")
    table = load_table(table_paths(work / "tables", "sleepy", "sleep-test")["table"])
    assert len(table.rows) > 0
    assert all(SLEEP_MS <= row.median_ms < 50 * SLEEP_MS for row in table.rows.values())
    assert not table.missing([b.lut_key() for b in enumerate_blocks(JSON_SPACE, [24], 10)])


def test_plugin_selector_specialises_the_json_space(work, capsys, monkeypatch):
    monkeypatch.setenv("OFA_EDGE_DEVICES", str(work / "devices"))
    out = json.loads(_cli(capsys, "specialize", "--checkpoint", work / "run" / "supernet.pt", "--device", "sleepy",
                          "--tables", work / "tables", "--latency", "10000ms", "--selector", "smallest",
                          "--export", "pt", "--bn-images", "20", "--out", work / "builds", "--json"))
    (m,) = out
    assert m["selector"] == "smallest" and m["subnet"] == min_subnet(JSON_SPACE).to_dict()
    # the table's correction is fitted on whole subnets, which the sleeping runtime "runs" in SLEEP_MS too
    assert 0.5 * SLEEP_MS < m["latency_ms"]["predicted"] < 5 * SLEEP_MS and m["space"] == "json-tiny"
    assert (work / "builds" / "sleepy" / "10000ms" / "model.pt").is_file()


def test_plugin_exporter_builds_through_targets_toml(work, capsys, monkeypatch):
    monkeypatch.setenv("OFA_EDGE_DEVICES", str(work / "devices"))
    (work / "targets.toml").write_text(
        f'checkpoint = "{work / "run" / "supernet.pt"}"\ntables = "{work / "tables"}"\nout = "{work / "ci"}"\n'
        'formats = ["onnx", "onnx-copy"]\nquantize = false\nselector = "smallest"\n'
        'devices = ["sleepy"]\nbudgets = ["10000ms"]\n')
    _cli(capsys, "build", work / "targets.toml", "--json")
    folder = work / "ci" / "sleepy" / "10000ms"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    onnx, copy = (next(a for a in manifest["artifacts"] if a["key"] == k) for k in ("onnx", "onnx-copy"))
    assert copy["status"] == "ok" and copy["parity"]["passed"]
    assert copy["parity"]["max_abs_diff"] == onnx["parity"]["max_abs_diff"]  # the same model, run the same way
    assert (folder / "model.copy.onnx").read_bytes() == (folder / "model.onnx").read_bytes()


def test_unknown_plugin_names_list_the_registered_ones(plugins, capsys):
    assert main(["train", "--strategy", "nope", "--space", "cifar-tiny", "--epochs", "1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--strategy: unknown training strategy 'nope'" in err and "max-only" in err
    assert resolve_space("cifar-tiny") == get_space("cifar-tiny")
