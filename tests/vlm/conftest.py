"""Caption shards for the VLM tests."""

import pytest
from synthetic_data import write_caption_shards


@pytest.fixture(scope="session")
def caption_shards(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("captions"))
    write_caption_shards(out, 240)
    return out
