"""Fixtures of the analysis tests: a private STEP table cache and an S3 bucket on loopback."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def step_cache(tmp_path_factory):
    """Tables synthesised by these tests go to a temporary cache shared by the session."""
    path = tmp_path_factory.mktemp("vlaforge-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLAFORGE_CACHE", str(path))
        yield path


@pytest.fixture
def s3_bucket(s3_server):
    """``s3://bucket`` on the shared loopback S3 server."""
    return "s3://bucket"
