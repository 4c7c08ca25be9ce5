"""Shared test fixtures: paths to ../shared material and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURE_ENV = "OFA_EDGE_OFA_FIXTURE"
FIXTURE = Path(os.environ.get(FIXTURE_ENV) or SHARED / "fixtures" / "ofa_mbv3_w1_seed0")
FIXTURE_FILES = ("cases.pt", "supernet_state_dict.pt")


@pytest.fixture(scope="session")
def ofa_fixture() -> Path:
    """The reference OFA fixture folder (../shared/fixtures/ofa_mbv3_w1_seed0 or $OFA_EDGE_OFA_FIXTURE)."""
    missing = [name for name in FIXTURE_FILES if not (FIXTURE / name).is_file()]
    if missing:
        pytest.skip(f"needs the OFA reference fixture, which is not in the repository: "
                    f"no {' or '.join(missing)} in {FIXTURE}. Place the shared material's "
                    f"fixtures/ofa_mbv3_w1_seed0/ folder "
                    f"({', '.join(FIXTURE_FILES)}, made with mit-han-lab/once-for-all as its README says) "
                    f"at ../shared/fixtures/ beside this checkout, or set {FIXTURE_ENV} to that folder")
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


def pytest_collection_modifyitems(items):
    """Run the test files with the most ``slow`` tests first, each file's tests in their order.

    pytest-xdist hands whole files to workers in this order, so the long files start early instead of
    leaving one worker busy at the end while the other idles.
    """
    def file_of(item) -> str:
        return item.nodeid.split("::")[0]

    slow: dict[str, int] = {}
    for item in items:
        slow[file_of(item)] = slow.get(file_of(item), 0) + bool(item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[file_of(item)])  # stable: files and tests keep their order otherwise


def pytest_collectreport(report):
    """In strict mode a module skipped at import (``importorskip``) fails the run too."""
    if os.environ.get("OFA_EDGE_STRICT_TESTS") == "1" and report.skipped:
        report.outcome = "failed"


#: The emulated Raspberry Pi's timing lines, gathered from every test report (also from pytest-xdist workers).
_EMULATED_LOG: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Strict mode (OFA_EDGE_STRICT_TESTS=1, CI): a skipped test fails, since CI must exercise sshd and every
    back end. And the emulated Pi's new log lines go into the test's user properties, which reach the
    controller from pytest-xdist workers too."""
    import sys

    module = sys.modules.get("emulated_rpi")
    if module is not None and module.LOG:
        item.user_properties.extend(("emulated-rpi", line) for line in module.LOG)
        module.LOG.clear()
    report = yield
    strict = os.environ.get("OFA_EDGE_STRICT_TESTS") == "1" and call.when in ("setup", "call")
    if strict and call.excinfo is not None and call.excinfo.errisinstance(pytest.skip.Exception):
        reason = str(call.excinfo.value)
        if "[platform]" not in reason:  # skips that no Linux machine can avoid are marked [platform]
            report.outcome = "failed"
            report.longrepr = f"skipped in strict mode (OFA_EDGE_STRICT_TESTS=1): {reason}"
    return report


def pytest_runtest_logreport(report):
    """Collect those lines once per test (its teardown report carries all of them)."""
    if report.when == "teardown":
        _EMULATED_LOG.extend(value for key, value in report.user_properties if key == "emulated-rpi")


def pytest_terminal_summary(terminalreporter):
    """Print how long the emulated Raspberry Pi took to start and to profile (its tests log them)."""
    if _EMULATED_LOG:
        terminalreporter.section("emulated Raspberry Pi timings")
        for line in _EMULATED_LOG:
            terminalreporter.write_line(line)
