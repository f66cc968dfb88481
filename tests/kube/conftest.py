import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch):
    """Compile-time settings at their defaults."""
    for var in ("VLAFORGE_REGISTRY", "VLAFORGE_PROFILE", "VLAFORGE_LAUNCH"):
        monkeypatch.delenv(var, raising=False)
    return os.environ


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def crds() -> Path:
    return REPO / "tests" / "crds"
