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
