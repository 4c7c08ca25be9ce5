"""The workspace file (ofa-edge.toml): what it remembers, its defaults and the errors of a bare folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ofa_edge import workspace
from ofa_edge.cli import main
from ofa_edge.errors import FileFormatError, MissingStepError

TABLE = Path(__file__).resolve().parents[1] / "latency_tables" / "x86-local" / "onnxruntime.csv"


@pytest.fixture
def no_packaged(monkeypatch):
    """A default pretrained name that no install ships (as on an install without packaged supernets)."""
    monkeypatch.setattr(workspace, "DEFAULT_PRETRAINED", "no-such-pretrained-supernet")


def test_use_remembers_the_checkpoint_relative_to_the_folder(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "supernet.pt").write_bytes(b"x")
    ws = workspace.set_supernet(tmp_path / "runs" / "a" / "supernet.pt", tmp_path)
    assert ws.supernet == "runs/a/supernet.pt"
    again = workspace.load_workspace(tmp_path)
    assert again.supernet == "runs/a/supernet.pt"
    net = workspace.current_supernet(again)
    assert (Path(net.checkpoint), net.source) == (tmp_path / "runs/a/supernet.pt", "ofa-edge.toml")
    assert workspace.current_supernet(again, "other.pt").source == "given"


def test_a_workspace_supernet_that_is_gone_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latency_tables" / "x86-local").mkdir(parents=True)
    shutil.copy(TABLE, tmp_path / "latency_tables" / "x86-local" / "onnxruntime.csv")
    (tmp_path / "ofa-edge.toml").write_text('format = 1\n[supernet]\ncheckpoint = "runs/old/supernet.pt"\n')
    assert main(["specialize", "--latency", "20ms"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "runs/old/supernet.pt, does not exist" in err and "ofa-edge.toml" in err
    assert "`ofa-edge train`" in err and "`ofa-edge use CHECKPOINT`" in err and "Traceback" not in err


def test_a_file_of_another_format_version_is_refused(tmp_path):
    (tmp_path / "ofa-edge.toml").write_text("format = 7\n")
    with pytest.raises(FileFormatError, match="unknown workspace format 7"):
        workspace.load_workspace(tmp_path)


def test_devices_are_those_with_tables(tmp_path):
    (tmp_path / "t" / "pi").mkdir(parents=True)
    (tmp_path / "t" / "pi" / "tflite.validation.csv").write_text("")
    (tmp_path / "t" / "x86").mkdir()
    shutil.copy(TABLE, tmp_path / "t" / "x86" / "onnxruntime.csv")
    assert workspace.table_devices(tmp_path / "t") == ["x86"]
    assert workspace.table_devices(tmp_path / "none") == []


def test_empty_folder_without_packaged_supernet_names_train(tmp_path, monkeypatch, capsys, no_packaged):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingStepError):
        workspace.current_supernet(workspace.load_workspace())
    assert main(["specialize", "--latency", "20ms", "--json"]) == 2
    out, err = capsys.readouterr()
    err = " ".join(err.split())
    assert out == "" and "Traceback" not in err
    assert "no supernet" in err and "`ofa-edge train`" in err and "ofa-edge use CHECKPOINT" in err


def test_no_table_and_no_device_names_profile(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.pt").write_bytes(b"x")
    assert main(["specialize", "--checkpoint", "s.pt", "--latency", "20ms"]) == 2
    assert "ofa-edge profile --device D" in " ".join(capsys.readouterr().err.split())


def test_status_of_a_folder_with_a_table(tmp_path, monkeypatch, capsys, no_packaged):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latency_tables" / "x86-local").mkdir(parents=True)
    shutil.copy(TABLE, tmp_path / "latency_tables" / "x86-local" / "onnxruntime.csv")
    assert main(["status", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["workspace"] is None and info["supernet"]["checkpoint"] is None
    (table,) = info["tables"]
    assert (table["device"], table["runtime"]) == ("x86-local", "onnxruntime")
    assert table["measured_on"] and table["cpu"] and table["date"]
    assert main(["status"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "x86-local" in text and "ofa-edge predictor fit" in text


def test_use_refuses_a_folder_and_a_missing_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "supernet.pt").write_bytes(b"x")
    assert main(["use", "run"]) == 2
    assert f"pass {Path('run') / 'supernet.pt'}" in " ".join(capsys.readouterr().err.split())
    assert main(["use", "missing.pt"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "ofa-edge.toml").exists()


def test_empty_folder_with_the_packaged_supernet_names_profile(tmp_path, monkeypatch, capsys):
    """As typed in an empty folder: the packaged supernet is found, the missing tables are named."""
    assert workspace.packaged_supernet() == "cifar10-mbv3"
    monkeypatch.chdir(tmp_path)
    assert main(["specialize", "--latency", "20ms", "--json"]) == 2
    out, err = capsys.readouterr()
    err = " ".join(err.split())
    assert out == "" and "Traceback" not in err
    assert "no latency table under latency_tables" in err and "`ofa-edge profile --device D`" in err
    assert list(tmp_path.iterdir()) == []


def test_specialize_as_typed_with_the_packaged_supernet(tmp_path, monkeypatch, capsys):
    """No ofa-edge.toml, no flags but the budget: the packaged supernet, one manifest per device with a table."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(TABLE.parents[1], tmp_path / "latency_tables")
    devices = workspace.table_devices(tmp_path / "latency_tables")
    assert "x86-local" in devices
    # small search and BN set: the defaults are what this test is about, not the search's size
    code = main(["specialize", "--latency", "20ms", "--json", "--population", "16", "--generations", "3",
                 "--bn-images", "20", "--export", "pt"])
    out, err = capsys.readouterr()
    assert code == 0, err
    said = " ".join(err.split())
    assert "supernet cifar10-mbv3 (from packaged)" in said and f"device {devices[0]}" in said
    manifests = json.loads(out)
    assert sorted(m["device"] for m in manifests) == devices
    for m in manifests:
        manifest = json.loads((tmp_path / m["folder"] / "manifest.json").read_text())
        assert manifest["latency_ms"]["predicted"] <= 20.0 and manifest["extra"]["budget_ms"] == 20.0
    assert not (tmp_path / "ofa-edge.toml").exists()
