"""`ofa-edge validate` is read-only for what it did not measure, and says whose table it printed numbers of."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ofa_edge.cli import main
from ofa_edge.latency.origin import measured_here, this_machine

TABLES = Path(__file__).resolve().parents[1] / "latency_tables"


def _table_day() -> str:
    """The day the committed x86-local table was measured (its provenance ``date``)."""
    from ofa_edge.latency import load_table

    return load_table(TABLES / "x86-local" / "onnxruntime.csv").provenance["date"][:10]


@pytest.fixture
def tables(tmp_path):
    shutil.copytree(TABLES / "x86-local", tmp_path / "tables" / "x86-local")
    return tmp_path / "tables"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_validate_of_subnets_already_measured_writes_nothing(tables, tmp_path, capsys):
    before = _files(tables / "x86-local")
    args = ["validate", "--device", "x86-local", "--samples", "20", "--tables", str(tables),
            "--cache", str(tmp_path / "cache")]
    assert main([*args, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 20 and metrics["saved"] is False
    assert _files(tables / "x86-local") == before
    assert main(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"table measured on vm (AMD EPYC x2), {_table_day()}" in out and "nothing written" in out


def test_another_machines_table_is_labelled_and_never_written(tables, tmp_path, capsys):
    csv = tables / "x86-local" / "onnxruntime.csv"
    text = csv.read_text()
    assert '"hostname": "vm"' in text
    csv.write_text(text.replace('"hostname": "vm"', '"hostname": "lab-box-7"'))
    before = _files(tables / "x86-local")
    # 101 held-out subnets: one more than the table's validation file holds, so one is measured here
    assert main(["validate", "--device", "x86-local", "--samples", "101", "--tables", str(tables),
                 "--cache", str(tmp_path / "cache")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "n=101" in out
    assert f"table measured on lab-box-7 (AMD EPYC x2), {_table_day()} [another machine" in out
    assert "nothing written" in out
    assert _files(tables / "x86-local") == before


def test_this_machine_matches_its_own_facts():
    here = this_machine()
    assert measured_here(here) and measured_here({})
    assert not measured_here({**here, "hostname": here["hostname"] + "-other"})


X86_VNNI = "flags\t\t: fpu sse2 avx fma avx2 avx512f avx512bw avx512_vnni avx512_bf16 sha_ni\n"
ARM_DOTPROD = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 asimdhp asimddp i8mm\n"


def test_cpu_features_keep_the_kernel_relevant_flags():
    from ofa_edge.devices.runner import cpu_features

    assert cpu_features(X86_VNNI) == "avx2 avx512_bf16 avx512_vnni avx512bw avx512f fma"
    assert cpu_features(ARM_DOTPROD) == "asimd asimddp asimdhp i8mm"
    assert cpu_features("model name\t: Something\n") == ""


def test_same_cpu_name_with_other_features_is_another_machine():
    """Two VM hosts both report "AMD EPYC"; one with VNNI runs INT8 a third faster: its table is not ours."""
    here = this_machine()
    if not here["cpu_features"]:
        pytest.skip("[platform] no CPU feature flags in /proc/cpuinfo here")
    assert measured_here({k: v for k, v in here.items() if k != "cpu_features"})  # an older table: no features
    other = "avx2 fma" if here["cpu_features"] != "avx2 fma" else "avx2 avx512_vnni avx512f fma"
    assert not measured_here({**here, "cpu_features": other})
