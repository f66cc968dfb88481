"""Fixtures of the robotics tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def s3_root(s3_server):
    """The folder served by the shared loopback S3 server (bucket ``bucket``)."""
    return s3_server[1]
