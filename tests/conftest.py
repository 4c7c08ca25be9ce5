"""Shared test fixtures: paths to ../shared material and small helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURE = SHARED / "fixtures" / "ofa_mbv3_w1_seed0"


@pytest.fixture(scope="session")
def ofa_fixture() -> Path:
    """The reference OFA fixture folder (../shared/fixtures/ofa_mbv3_w1_seed0); skipped if absent."""
    if not (FIXTURE / "cases.pt").is_file():
        pytest.skip("../shared/fixtures/ofa_mbv3_w1_seed0 is not beside this checkout")
    return FIXTURE


@pytest.fixture(scope="session")
def ofa_cases(ofa_fixture):
    import torch

    return torch.load(ofa_fixture / "cases.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="session")
def ofa_net(ofa_fixture):
    from ofa_edge.supernet import load_ofa_checkpoint

    return load_ofa_checkpoint(ofa_fixture / "supernet_state_dict.pt")


@pytest.fixture(autouse=True)
def _checkout_workspace_untouched():
    """A test that trains through the CLI must run in its own folder: never leave an ofa-edge.toml here."""
    path = ROOT / "ofa-edge.toml"
    before = path.read_bytes() if path.is_file() else None
    yield
    after = path.read_bytes() if path.is_file() else None
    if after != before:
        path.unlink(missing_ok=True) if before is None else path.write_bytes(before)
        pytest.fail("the test wrote the checkout's ofa-edge.toml (run CLI training in tmp_path: monkeypatch.chdir)")


def pytest_runtest_makereport(item, call):
    """With OFA_EDGE_STRICT_TESTS=1 (CI), a skipped test fails: CI must exercise sshd and every back end."""
    import os

    if os.environ.get("OFA_EDGE_STRICT_TESTS") != "1" or call.when not in ("setup", "call"):
        return None
    if call.excinfo is not None and call.excinfo.errisinstance(pytest.skip.Exception):
        reason = str(call.excinfo.value)
        if "[platform]" not in reason:  # skips that no Linux machine can avoid are marked [platform]
            from _pytest.reports import TestReport

            report = TestReport.from_item_and_call(item, call)
            report.outcome = "failed"
            report.longrepr = f"skipped in strict mode (OFA_EDGE_STRICT_TESTS=1): {reason}"
            return report
    return None


def pytest_collectreport(report):
    """In strict mode a module skipped at import (``importorskip``) fails the run too."""
    import os

    if os.environ.get("OFA_EDGE_STRICT_TESTS") == "1" and report.skipped:
        report.outcome = "failed"


def pytest_terminal_summary(terminalreporter):
    """Print how long the emulated Raspberry Pi took to start and to profile (its tests log them)."""
    import sys

    module = sys.modules.get("emulated_rpi")
    if module is not None and module.LOG:
        terminalreporter.section("emulated Raspberry Pi timings")
        for line in module.LOG:
            terminalreporter.write_line(line)
