"""Fuzzing every file loader: profiles, OFA yaml tables, validation CSVs, predictors, manifests, targets and
training checkpoints fail only with their documented error, naming the file."""

from __future__ import annotations

import copy
import json
import math
import re
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from fuzz_budget import FUZZ, fuzz_settings
from ofa_edge.devices.profile import load_profile
from ofa_edge.errors import FileFormatError, OfaEdgeError
from ofa_edge.export.manifest import Manifest, read_manifest, summary_row
from ofa_edge.pipelines.build import budget_problem, load_targets
from ofa_edge.latency.ofa_yaml import read_ofa_yaml
from ofa_edge.latency.table import MAX_MS
from ofa_edge.latency.validation import Measured, load_validation, save_validation
from ofa_edge.search.predictor import AccuracyPredictor, Predictor, load_predictor
from ofa_edge.space import encoding_size, get_space
from ofa_edge.train import TrainConfig, train
from ofa_edge.train.checkpoint import read_train_checkpoint

torch.set_num_threads(1)
SPACE = get_space("cifar-tiny")
FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

scalars = (st.none() | st.booleans() | st.integers(-2, 70000) | st.integers(-10**30, 10**30)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
nesting = st.integers(1, 3000).map(lambda n: "[" * n)


def splice(text: str, data) -> str:
    """``text`` with a random slice replaced by random characters (or cut short)."""
    a = data.draw(st.integers(0, len(text)))
    b = data.draw(st.integers(a, min(len(text), a + 40)))
    return text[:a] + data.draw(st.text(max_size=30)) + text[b:]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# -- device profile TOML -----------------------------------------------------------------------------
def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


SECTIONS = {"connection": ["transport", "host", "port", "user", "key_file", "known_hosts", "trust_on_first_use",
                           "connect_timeout", "command_timeout", "keepalive", "bogus"],
            "device": ["python", "work_dir", "bogus"], "runtime": ["name", "providers", "delegate"],
            "benchmark": ["warmup", "repeats", "threads", "batch"]}
toml_scalars = (st.booleans() | st.integers(-2, 70000) | st.integers(-2**63, 2**63 - 1)
                | st.floats(allow_nan=True) | st.sampled_from(["ssh", "local", "onnxruntime", "python3", "h", ""])
                | st.text(max_size=8))
toml_values = toml_scalars | st.lists(toml_scalars, max_size=3)


@fuzz_settings("device-profile", suppress_health_check=FIXTURES)
@given(top=st.dictionaries(st.sampled_from(["format", "name", "description", "bogus"]), toml_values, max_size=3),
       sections=st.dictionaries(st.sampled_from(sorted(SECTIONS)), st.data(), max_size=4), data=st.data())
def test_device_profile_toml_fuzz(folder, top, sections, data):
    lines = [f"{k} = {toml_value(v)}" for k, v in top.items()]
    for section in sections:
        lines.append(f"[{section}]")
        keys = data.draw(st.lists(st.sampled_from(SECTIONS[section]), max_size=4, unique=True))
        lines += [f"{k} = {toml_value(data.draw(toml_values))}" for k in keys]
    text = "\n".join(lines) + "\n"
    if data.draw(st.booleans()):
        text = splice(text, data) if data.draw(st.booleans()) else "a = " + data.draw(nesting)
    path = folder / "fuzz-profile.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        profile = load_profile(path)
    except OfaEdgeError as exc:
        assert "fuzz-profile.toml" in str(exc)
        return
    b, c = profile.benchmark, profile.connection
    assert 1 <= b.repeats <= 100000 and 1 <= b.threads <= 256 and 1 <= c.port <= 65535
    assert all(0 < t <= 7 * 24 * 3600 for t in (c.connect_timeout, c.command_timeout, c.keepalive))


# -- reference OFA yaml tables ------------------------------------------------------------------------
yaml_keys = st.sampled_from(["Conv-input:224x224x3-output:112x112x24", "expanded_conv-input:1", "Logits-x",
                             "AvgPool2D-y", "Other-z", ""]) | st.integers()
yaml_means = st.floats(allow_nan=True) | st.integers(-10**400, 10**400) | st.booleans() | st.text(max_size=4)
yaml_entries = st.fixed_dictionaries({}, optional={"mean": yaml_means, "count": scalars, "var": yaml_means}) | values


@fuzz_settings("ofa-yaml", suppress_health_check=FIXTURES)
@given(table=st.dictionaries(yaml_keys, yaml_entries, max_size=5), data=st.data())
def test_ofa_yaml_fuzz(folder, table, data):
    text = yaml.safe_dump(table)
    mode = data.draw(st.integers(0, 3))
    if mode == 1:
        text = splice(text, data)
    elif mode == 2:
        text = "!!python/object/apply:os.system ['true']\n" if data.draw(st.booleans()) else data.draw(nesting)
    path = folder / "fuzz_lookup_table.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        got = read_ofa_yaml(path)
    except FileFormatError as exc:
        assert "fuzz_lookup_table.yaml" in str(exc)
        return
    assert all(0 <= r.median_ms <= MAX_MS and math.isfinite(r.std_ms) for r in got.rows.values())


# -- validation CSV -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def validation_text(folder):
    rows = [Measured(s, f"v{i}", "cifar-tiny", 10, '{"r":32}', 20, 1.0 + i, 1.1 + i, 1.2 + i, 1.3, 1.4)
            for i, s in enumerate(["fit", "test", "test"])]
    save_validation(folder / "ok.validation.csv", "onnxruntime|t1", rows)
    return (folder / "ok.validation.csv").read_text()


@fuzz_settings("validation-csv", suppress_health_check=FIXTURES)
@given(data=st.data())
def test_validation_csv_fuzz(folder, validation_text, data):
    text = validation_text
    for _ in range(data.draw(st.integers(1, 3))):
        text = splice(text, data)
    if data.draw(st.integers(0, 9)) == 0:
        text += "test," + "x" * 140000 + "\n"
    path = folder / "fuzz.validation.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        _, rows = load_validation(path)
    except FileFormatError as exc:
        assert "fuzz.validation.csv" in str(exc)
        return
    for r in rows:
        assert r.split in ("fit", "test") and r.n_classes >= 1 and r.n_layers >= 1
        assert all(math.isfinite(v) and 0 <= v <= MAX_MS for v in (r.raw_ms, r.predicted_ms, r.measured_ms))


# -- torch files: predictor and training checkpoint ---------------------------------------------------
tensors = st.builds(lambda shape, fill: torch.full(shape, fill),
                    st.lists(st.integers(0, 3), max_size=2).map(tuple),
                    st.floats(allow_nan=True, allow_infinity=True, width=32))
torch_values = values | tensors | st.lists(tensors, max_size=2) | st.integers(10**6, 10**12)


def mutate(payload: dict, data, paths: list[tuple[str, ...]], new=torch_values, most: int = 3) -> dict:
    """A deep copy of ``payload`` with 1..``most`` entries (chosen among ``paths``) replaced or deleted."""
    out = copy.deepcopy(payload)
    for _ in range(data.draw(st.integers(1, most))):
        path = data.draw(st.sampled_from(paths))
        parent = out
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if data.draw(st.integers(0, 4)) == 0:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = data.draw(new)
    return out


def key_paths(payload: dict, prefix: tuple[str, ...] = (), depth: int = 3) -> list[tuple[str, ...]]:
    out = []
    for k, v in payload.items():
        out.append(prefix + (k,))
        if isinstance(v, dict) and depth > 1:
            out += key_paths(v, prefix + (k,), depth - 1)
    return out


@pytest.fixture(scope="module")
def predictor_payload(folder):
    torch.manual_seed(0)
    Predictor(SPACE, AccuracyPredictor(encoding_size(SPACE), hidden=8, n_layers=2)).save(folder / "ok.pt")
    return torch.load(folder / "ok.pt", weights_only=True)


@fuzz_settings("predictor", suppress_health_check=FIXTURES)
@given(data=st.data())
def test_predictor_file_fuzz(folder, predictor_payload, data):
    payload = mutate(predictor_payload, data, key_paths(predictor_payload))
    path = folder / "fuzz-predictor.pt"
    torch.save(payload, path)
    try:
        pred = load_predictor(path, SPACE, checkpoint_sha256="0" * 64)
    except FileFormatError as exc:
        assert "fuzz-predictor.pt" in str(exc)
        return
    from ofa_edge.space import max_subnet

    assert math.isfinite(float(pred.predict([max_subnet(SPACE)])[0]))


def test_predictor_with_pickled_code_or_huge_mlp_is_refused(folder, predictor_payload):
    path = folder / "evil.pt"
    torch.save({**predictor_payload, "meta": Manifest}, path)  # a class: needs unpickling code
    with pytest.raises(FileFormatError, match="evil.pt.*could run code"):
        load_predictor(path)
    torch.save({**predictor_payload, "hidden": 10**7}, path)  # would allocate ~40 GB before loading
    with pytest.raises(FileFormatError, match="evil.pt.*out of range"):
        load_predictor(path)


@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tr") / "run"
    train(TrainConfig(space="cifar-tiny", out=str(out), epochs=2, batch_size=8, steps_per_epoch=2, eval_every=0,
                      strategy="random"))
    payload = torch.load(out / "supernet.pt", weights_only=True)
    state = payload["meta"]["train_state"]
    state["epoch"], state["step"] = 1, 0  # as if stopped after the first epoch
    return payload


STATE_KEYS = ["epoch", "step", "iteration", "optimizer", "torch_rng", "sampled", "metrics", "acc", "world",
              "teacher", "version"]


def state_paths(payload: dict) -> list[tuple[str, ...]]:
    state = [("meta", "train_state", k) for k in STATE_KEYS]
    deep = [("meta", "train_state", "optimizer", k) for k in ("state", "param_groups")]
    config = [("meta", "config", k) for k in ("epochs", "batch_size", "lr", "steps_per_epoch", "strategy", "x")]
    return state + deep + config + [("meta", "config"), ("meta",), ("version",), ("n_classes",)]


@fuzz_settings("train-state", suppress_health_check=FIXTURES)
@given(data=st.data())
def test_training_checkpoint_state_fuzz(folder, train_run, data):
    path = folder / "fuzz-train.pt"
    torch.save(mutate(train_run, data, state_paths(train_run)), path)
    try:
        _, cfg, state = read_train_checkpoint(path)
    except FileFormatError as exc:
        assert "fuzz-train.pt" in str(exc)
        return
    assert type(state["epoch"]) is int and state["epoch"] >= 0 and cfg.epochs >= 1


@fuzz_settings("train-resume", suppress_health_check=FIXTURES)
@given(data=st.data())
def test_training_resume_fuzz_whole_path(tmp_path, train_run, data):
    """The whole --resume path (rebuild, optimizer, RNG, one more epoch) on state-level damage."""
    state_only = [p for p in state_paths(train_run) if p[:2] == ("meta", "train_state")]
    payload = mutate(train_run, data, state_only, st.integers(0, 2) | st.none() | torch_values, most=1)
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "supernet.pt"
    torch.save(payload, path)
    try:
        result = train(resume=path.parent)
    except FileFormatError as exc:
        assert "supernet.pt" in str(exc)
        return
    except OfaEdgeError as exc:  # a valid file of another world size is refused with a hint
        assert "resume" in str(exc)
        return
    assert all(torch.isfinite(v).all() for v in result.net.state_dict().values() if v.is_floating_point())


# -- manifests and targets ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def manifest_dict():
    m = Manifest(subnet={"ks": [3], "e": [3], "d": [2], "r": 32}, subnet_id="s1", space="cifar-tiny",
                 n_classes=10, resolution=32, input_shape=[1, 3, 32, 32], macs=1000, params=100,
                 latency_ms={"predicted": 1.5, "measured": None}, top1={"fp32": 50.0, "onnx-int8": 49.0,
                                                                     "drop_points": {"onnx-int8": 1.0}},
                 files=[{"path": "model.onnx", "bytes": 10, "sha256": "a" * 64}], extra={"budget_ms": 5.0})
    return m.to_dict()


@fuzz_settings("manifest", suppress_health_check=FIXTURES)
@given(data=st.data())
def test_manifest_fuzz(folder, manifest_dict, data):
    d = copy.deepcopy(manifest_dict)
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(d) + ["files", "latency_ms", "top1"]))
        if key in ("files", "latency_ms", "top1") and data.draw(st.booleans()) and isinstance(d.get(key), (dict,
                                                                                                            list)):
            inner = d[key][0] if key == "files" and d[key] else d[key]
            if isinstance(inner, dict):
                inner[data.draw(st.sampled_from(["path", "bytes", "sha256", "predicted", "fp32", "drop_points"]))] = \
                    data.draw(values | st.sampled_from(["../x", "/etc/passwd", "a/../../b"]))
        else:
            d[key] = data.draw(values)
    text = json.dumps(d)
    mode = data.draw(st.integers(0, 5))
    if mode == 1:
        text = splice(text, data)
    elif mode == 2:
        text = '{"a":' + data.draw(nesting)
    path = folder / "fuzz-manifest.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        m = read_manifest(path)
    except FileFormatError as exc:
        assert "fuzz-manifest.json" in str(exc)
        return
    summary_row(m, "x")  # a loaded manifest is usable downstream
    budget_problem(m, 5.0)
    assert all(not f["path"].startswith("/") and ".." not in f["path"].split("/") for f in m.files)


targets_lines = st.sampled_from([
    'format = "ofa-edge-targets/1"', 'format = "ofa-edge-targets/2"', 'checkpoint = "run/supernet.pt"',
    'devices = ["pi4"]', 'budgets = ["20ms", "40ms"]', "budgets = [-1, 1e400]", 'budgets = ["nan ms"]',
    'formats = ["onnx"]', 'formats = ["exe"]', "quantize = 1", "[[target]]", 'device = "x"', 'budget = "5ms"',
    'budget = "inf"', "bogus = 1", 'out = ""', "target = 3", "devices = []"])


@fuzz_settings("targets-toml", suppress_health_check=FIXTURES)
@given(lines=st.lists(targets_lines, max_size=10), data=st.data())
def test_targets_toml_fuzz(folder, lines, data):
    text = "\n".join(lines) + "\n"
    if data.draw(st.integers(0, 3)) == 0:
        text = splice(text, data)
    path = folder / "fuzz-targets.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        spec = load_targets(path)
    except FileFormatError as exc:
        assert "fuzz-targets.toml" in str(exc)
        return
    assert spec.targets and all(math.isfinite(t.budget_ms) and t.budget_ms > 0 for t in spec.targets)


def test_every_fuzz_budget_entry_is_used_by_exactly_one_test():
    used = re.findall(r'fuzz_settings\("([a-z0-9-]+)"', "".join(
        p.read_text() for p in sorted(Path(__file__).parent.glob("test_*.py"))))
    assert sorted(used) == sorted(FUZZ), "tests/fuzz_budget.py and the fuzz tests disagree"


# -- the inputs fuzzing found, kept as plain regression cases ----------------------------------------
DEEP = "[" * 5000


@pytest.mark.parametrize("name, text, load", [
    ("p.toml", "a = " + DEEP, load_profile),
    ("p.toml", "[connection]\nconnect_timeout = inf\n", load_profile),
    ("t.toml", "a = " + DEEP, load_targets),
    ("m.json", '{"a": ' + DEEP, read_manifest),
    ("9_lookup_table.yaml", DEEP, read_ofa_yaml),
    ("9_lookup_table.yaml", "Conv-a: {mean: 1" + "0" * 400 + "}\n", read_ofa_yaml),
    ("v.csv", "# ofa-edge latency validation\n# format: 1\n# settings: s\n" + "x" * 140000 + "\n", load_validation),
    ("v.csv", "# ofa-edge latency validation\n# format: 1\n# settings: s\n" + ",".join(
        ["split", "name", "space", "n_classes", "subnet", "n_layers", "raw_ms", "predicted_ms", "measured_ms",
         "mean_ms", "p90_ms"]) + "\ntest,a,s,-3,{},0,1,1,1,1,1\n", load_validation),
], ids=["profile-deep", "profile-inf-timeout", "targets-deep", "manifest-deep", "yaml-deep", "yaml-huge-int",
        "validation-huge-field", "validation-negative-classes"])
def test_hostile_inputs_found_by_fuzzing_are_refused(tmp_path, name, text, load):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(OfaEdgeError, match=re.escape(name)):
        load(path)


def test_table_header_overflow_and_huge_runner_numbers_are_refused():
    from ofa_edge.devices.bundle import parse_line
    from ofa_edge.latency.table import parse_table

    head = "# ofa-edge latency table\n# format: 1\n# correction: {\"n_fit\": 1e400}\n"
    with pytest.raises(FileFormatError, match="x.csv"):
        parse_table(head + "key,kind,median_ms,mean_ms,p90_ms,std_ms,min_ms,repeats\n", "x.csv")
    assert parse_line('{"type": "result", "name": "b1", "median_ms": 1' + "0" * 400 + "}") is None
    assert parse_line('{"type": "result", "name": ' + DEEP) is None


def test_training_checkpoint_with_pickled_code_is_refused(tmp_path, train_run):
    path = tmp_path / "supernet.pt"
    torch.save({**train_run, "meta": {**train_run["meta"], "hook": Manifest}}, path)
    with pytest.raises(FileFormatError, match="supernet.pt.*could run code"):
        read_train_checkpoint(path)
    torch.save({**train_run, "meta": {**train_run["meta"], "config": {**train_run["meta"]["config"],
                                                                      "lr": float("nan")}}}, path)
    with pytest.raises(FileFormatError, match="supernet.pt.*finite"):
        read_train_checkpoint(path)


# -- training log sampled.csv (read on resume, and by the last-sampled selector) -----------------------
@pytest.fixture(scope="module")
def sampled_text(folder):
    from ofa_edge.space import max_subnet, min_subnet
    from ofa_edge.train.checkpoint import write_sampled

    log = {f"s{i}": [s.to_json(), 10 * i, i + 1, 0] for i, s in enumerate([min_subnet(SPACE), max_subnet(SPACE)])}
    write_sampled(folder / "ok.sampled.csv", log)
    return (folder / "ok.sampled.csv").read_text()


def _mutated_sampled(folder: Path, text: str, data) -> Path:
    if data.draw(st.booleans()):  # one cell of one row replaced, the rest of the file well formed
        lines = text.splitlines()
        row = data.draw(st.integers(1, len(lines) - 1))
        cells = lines[row].split(",", 4)
        cells[data.draw(st.integers(0, 4))] = data.draw(st.text(max_size=12) | st.integers(-10**20, 10**20).map(str))
        lines[row] = ",".join(cells)
        text = "\n".join(lines) + "\n"
    for _ in range(data.draw(st.integers(0, 3))):
        text = splice(text, data)
    if data.draw(st.integers(0, 9)) == 0:
        text += "ofa-edge-sampled-v1,x," + "9" * data.draw(st.integers(1, 400)) + ",1,{}\n"
    path = folder / "fuzz.sampled.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


@fuzz_settings("sampled-csv", suppress_health_check=FIXTURES)
@given(data=st.data())
def test_sampled_csv_fuzz(folder, sampled_text, data):
    from ofa_edge.train.checkpoint import read_sampled

    path = _mutated_sampled(folder, sampled_text, data)
    try:
        rows = read_sampled(path)
    except FileFormatError as exc:
        assert "fuzz.sampled.csv" in str(exc)
        return
    assert all(r["last_iteration"] >= 0 and r["count"] >= 0 for r in rows)


@fuzz_settings("sampled-log", suppress_health_check=FIXTURES)
@given(data=st.data())
def test_sampled_log_fuzz(folder, sampled_text, data):
    from ofa_edge.search.selectors import read_sampled_log

    path = _mutated_sampled(folder, sampled_text, data)
    try:
        entries = read_sampled_log(path, SPACE)
    except FileFormatError as exc:
        assert "fuzz.sampled.csv" in str(exc)
        return
    assert entries and all(e.subnet.r in SPACE.resolutions for e in entries)
